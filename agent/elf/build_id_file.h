// The GNU build ID of an ELF file on disk, read with libelf. Used by the
// CLI (`execmon buildid FILE...`) and, in tests, as an oracle independent
// of the note-walking rules the kernel side runs (agent/elf/note_walker.h).
#ifndef EXECMON_AGENT_ELF_BUILD_ID_FILE_H_
#define EXECMON_AGENT_ELF_BUILD_ID_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace execmon {

// Build ID (raw bytes) of the ELF file at `path`: the first NT_GNU_BUILD_ID
// note named "GNU" in the PT_NOTE segments, or, for files without program
// headers (relocatable objects), in the SHT_NOTE sections. Fails closed: a
// malformed note met before the build ID is an error, not a skipped note.
//
// Errors (every message starts with `path`):
//   NotFound          "<path>: no GNU build-ID note"
//   InvalidArgument   "<path>: not an ELF file"
//                     "<path>: not a regular file"
//                     "<path>: malformed ELF: <what>"
//                     "<path>: build-ID note of N bytes (want 1..20)"
//   open/read errors  "<path>: <strerror>": NotFound (ENOENT, ENOTDIR),
//                     PermissionDenied (EACCES, EPERM), Unavailable
//                     (transient: EIO, EAGAIN, EINTR, EMFILE, ENFILE,
//                     ENOMEM), Internal otherwise.
absl::StatusOr<std::string> ReadBuildIdFile(const std::string& path);

// The same for an ELF image held in memory (a file read from an archive);
// `name` starts every error message. The bytes must outlive the call only.
absl::StatusOr<std::string> ReadBuildIdBytes(const std::string& name,
                                             absl::string_view bytes);

}  // namespace execmon

#endif  // EXECMON_AGENT_ELF_BUILD_ID_FILE_H_
