# BPF objects and their libbpf skeletons.
#
# execmon_bpf_object(<name> <source.bpf.c>) compiles <source> with clang for
# the BPF target (CO-RE, BTF, -MD depfile so editing any included header
# rebuilds), generates <name>.skel.h with bpftool, and exposes both through
# the INTERFACE target <name>_skel.

find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(EXECMON_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH
    "BTF the vmlinux.h for CO-RE is dumped from (see docs/build.md)")

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

if(NOT EXISTS ${EXECMON_VMLINUX_BTF})
  message(FATAL_ERROR
    "No BTF at ${EXECMON_VMLINUX_BTF}: execmon needs a kernel built with "
    "CONFIG_DEBUG_INFO_BTF=y, or -DEXECMON_VMLINUX_BTF=<file> pointing at a "
    "BTF blob of a 6.18+ kernel.")
endif()

add_custom_command(
  OUTPUT ${VMLINUX_H}
  COMMAND ${BPFTOOL} btf dump file ${EXECMON_VMLINUX_BTF} format c > ${VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${VMLINUX_H}.tmp ${VMLINUX_H}
  COMMENT "Dumping vmlinux.h from ${EXECMON_VMLINUX_BTF}"
  VERBATIM)

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
