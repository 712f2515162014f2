// The user-space twin of the kernel's build-ID reader (em_read_build_id in
// bpf/buildid.bpf.h): the same walk over the ELF header, the program headers
// and the PT_NOTE segments of an image in memory, with the same limits, the
// same rule functions (bpf/elf_rules.h) in the same order, and the same
// error codes (enum em_bid_error). Unit tests of the twin are tests of the
// rules the kernel runs.
#ifndef EXECMON_AGENT_ELF_NOTE_WALKER_H_
#define EXECMON_AGENT_ELF_NOTE_WALKER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"

namespace execmon {

// Reads len bytes at address addr of the image into dst; false = fault.
using MemoryReader =
    absl::FunctionRef<bool(uint64_t addr, void* dst, size_t len)>;

struct WalkResult {
  uint8_t error = 0;     // enum em_bid_error (EM_BID_OK on success)
  std::string build_id;  // raw bytes, set only when error == EM_BID_OK
};

// Build ID of the ELF image whose file offset 0 is mapped at `base`;
// `map_size` bounds where the program header table may lie (the size of
// that first mapping); `file_size` is the mapped file's size, which every
// PT_NOTE's file range must lie within. A note segment is located by its
// p_offset and read where the PT_LOAD holding that file range maps it (so
// the bytes read are the file's bytes at p_offset, as readelf reads them),
// never at its own p_vaddr; a note no PT_LOAD maps is EM_BID_ERR_BAD_NOTE.
// Mirrors em_read_build_id step for step.
WalkResult WalkBuildId(MemoryReader read, uint64_t base, uint64_t map_size,
                       uint64_t file_size);

// Build ID of a whole ELF file held in memory, "loaded" as the kernel's ELF
// loader would place it: ET_EXEC at the p_vaddr of its PT_LOAD at offset 0,
// anything else at kFileLoadBase. Addresses translate to file offsets
// through the PT_LOAD segments ([p_vaddr + bias, + p_filesz)) and through
// the first mapping ([base, base + map_size) is file [0, map_size));
// reads outside them or past the end of the file fault. map_size is the
// p_filesz of the PT_LOAD at offset 0, or the file size if there is none.
WalkResult WalkBuildIdInFile(absl::Span<const uint8_t> file);

// Where WalkBuildIdInFile loads images that are not ET_EXEC.
inline constexpr uint64_t kFileLoadBase = 0x400000;

}  // namespace execmon

#endif  // EXECMON_AGENT_ELF_NOTE_WALKER_H_
