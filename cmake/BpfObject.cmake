# BPF objects and their libbpf skeletons.
#
# execmon_bpf_object(<name> <source.bpf.c>) compiles <source> with clang for
# the BPF target (CO-RE, BTF, -MD depfile so editing any included header
# rebuilds), generates <name>.skel.h with bpftool, and exposes both through
# the INTERFACE target <name>_skel.

find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

# The kernel types the programs are compiled against: by default the pinned
# bpf/vmlinux/<arch>/vmlinux.h (scripts/gen-vmlinux-h.sh: one Debian kernel's
# BTF), so the build does not depend on the build host's kernel and one
# build serves every kernel (CO-RE). -DEXECMON_VMLINUX_BTF=<file> dumps them
# from another BTF instead (e.g. /sys/kernel/btf/vmlinux).
set(EXECMON_VMLINUX_BTF "" CACHE FILEPATH
    "BTF to dump vmlinux.h from instead of the pinned header (see docs/build.md)")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
else()
  message(FATAL_ERROR "unsupported architecture ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_GEN_DIR})
set(VMLINUX_H ${BPF_GEN_DIR}/vmlinux.h)
set(PINNED_VMLINUX_H ${CMAKE_SOURCE_DIR}/bpf/vmlinux/${BPF_TARGET_ARCH}/vmlinux.h)

if(EXECMON_VMLINUX_BTF STREQUAL "" AND NOT EXISTS ${PINNED_VMLINUX_H})
  # No pinned types for this architecture: the host's.
  set(EXECMON_VMLINUX_BTF /sys/kernel/btf/vmlinux)
endif()

if(EXECMON_VMLINUX_BTF STREQUAL "")
  message(STATUS "BPF: kernel types from the pinned ${PINNED_VMLINUX_H}")
  add_custom_command(
    OUTPUT ${VMLINUX_H}
    COMMAND ${CMAKE_COMMAND} -E copy ${PINNED_VMLINUX_H} ${VMLINUX_H}
    DEPENDS ${PINNED_VMLINUX_H}
    COMMENT "Using the pinned vmlinux.h"
    VERBATIM)
else()
  if(NOT EXISTS ${EXECMON_VMLINUX_BTF})
    message(FATAL_ERROR
      "No BTF at ${EXECMON_VMLINUX_BTF}: -DEXECMON_VMLINUX_BTF=<file> must "
      "name the BTF of a 6.18+ kernel (CONFIG_DEBUG_INFO_BTF=y).")
  endif()
  message(STATUS "BPF: kernel types dumped from ${EXECMON_VMLINUX_BTF}")
  add_custom_command(
    OUTPUT ${VMLINUX_H}
    COMMAND ${BPFTOOL} btf dump file ${EXECMON_VMLINUX_BTF} format c > ${VMLINUX_H}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${VMLINUX_H}.tmp ${VMLINUX_H}
    COMMENT "Dumping vmlinux.h from ${EXECMON_VMLINUX_BTF}"
    VERBATIM)
endif()

# Extra arguments are compile definitions (a variant of one source).
function(execmon_bpf_object name source)
  get_filename_component(src ${source} ABSOLUTE)
  set(defs)
  foreach(d ${ARGN})
    list(APPEND defs -D${d})
  endforeach()
  set(obj ${BPF_GEN_DIR}/${name}.bpf.o)
  set(dep ${BPF_GEN_DIR}/${name}.bpf.d)
  set(skel ${BPF_GEN_DIR}/${name}.skel.h)

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3
            -D__TARGET_ARCH_${BPF_TARGET_ARCH}
            -Wall -Werror -Wno-unused-function ${defs}
            -I${BPF_GEN_DIR} -I${CMAKE_SOURCE_DIR}/bpf
            -MD -MF ${dep}
            -c ${src} -o ${obj}
    DEPENDS ${src} ${VMLINUX_H}
    DEPFILE ${dep}
    COMMENT "BPF ${name}.bpf.o"
    VERBATIM)

  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Skeleton ${name}.skel.h"
    VERBATIM)

  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  target_include_directories(${name}_skel INTERFACE ${BPF_GEN_DIR}
                                                    ${CMAKE_SOURCE_DIR}/bpf)
  add_dependencies(${name}_skel ${name}_skel_gen)
endfunction()
