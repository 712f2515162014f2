// Build-ID list files, referenced by a policy's denyFrom/allowFrom:
// UTF-8 text, one build ID (hex) per line, optionally followed by a note
// after whitespace and/or '#':
//
//   # vulnerable curl builds
//   abcd1234  curl 7.88 CVE-2023-38545
//   ef015678 # note
//
// Blank lines and lines whose first non-blank character is '#' are
// ignored; CRLF line ends and a leading UTF-8 byte-order mark are
// tolerated. A build ID listed twice keeps its first entry (and note).
// Entries are positioned at the list file, line and column of the ID.
//
// Loading reads the whole file (at most kMaxListFileBytes) and splits it
// in place: 100k IDs load in well under a second.
#ifndef EXECMON_AGENT_POLICY_LIST_FILE_H_
#define EXECMON_AGENT_POLICY_LIST_FILE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/policy/parser.h"
#include "agent/policy/policy.h"

namespace execmon {

inline constexpr size_t kMaxListFileBytes = 64 << 20;
// Errors reported per list file before the rest of it is skipped.
inline constexpr size_t kMaxListFileErrors = 20;

// The contents of the regular file at `path` (symlinks followed), at most
// `max_bytes`. Errors: "cannot read \"<path>\": <strerror>" (NotFound,
// PermissionDenied, or Unavailable), "\"<path>\" is not a regular file"
// and "\"<path>\" is too large (N bytes; the limit is M)"
// (InvalidArgument).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes);

// Parses list-file text named `file` (for positions). Appends entries not
// already in `*out`; errors (file:line:col of the bad token, quoting at
// most a short escaped excerpt of it) go to `*errors`, the first
// kMaxListFileErrors of them; the others are counted in `*not_shown`.
// Returns the number of valid ID lines, duplicates included.
size_t ParseBuildIdList(absl::string_view text, const std::string& file,
                        BuildIdMap* out, std::vector<PolicyError>* errors,
                        size_t* not_shown = nullptr);

// ReadSmallFile(path, kMaxListFileBytes) + ParseBuildIdList. A file that
// cannot be read is one error positioned at `path` with line 0.
size_t ReadBuildIdList(const std::string& path, BuildIdMap* out,
                       std::vector<PolicyError>* errors);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_LIST_FILE_H_
