// Policy files (the YAML format documented in agent/policy/policy.h and
// docs/policies.md) -> a validated PolicySet.
//
// Every problem is reported, not only the first: a PolicyError carries the
// file, line and column (1-based) it is about and a message of the form
// "<field path>: <what is wrong> (<what was expected>)", e.g.
//   spec.mode: "block" is not a mode (expected audit or enforce)
//   spec.deny[0]: unknown field "buildid" (expected buildId, note)
//
// Rules beyond the syntax of each field:
//  - Empty documents (nothing, or a null) are skipped.
//  - A document with any error adds no policy to the set; its name still
//    counts for duplicate detection.
//  - Within one policy a build ID listed twice in the same list (inline,
//    or in list files, or both) is fine: the first entry wins (inline
//    entries come before denyFrom/allowFrom files, files in list order).
//  - A build ID in both the deny and the allow list of one policy is an
//    error (the policy would contradict itself).
//  - Duplicate mapping keys are errors (YAML forbids them; a silent
//    "last one wins" would hide mistakes in a security policy).
//  - Null values are never accepted: write [] for an empty list.
//  - metadata may carry Kubernetes-style labels/annotations (mappings,
//    ignored); other metadata fields are errors.
//  - YAML aliases are followed; merge keys ("<<") are not supported.
#ifndef EXECMON_AGENT_POLICY_PARSER_H_
#define EXECMON_AGENT_POLICY_PARSER_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/policy/policy.h"

namespace execmon {

struct PolicyError {
  SourcePos pos;
  std::string message;

  // "file:line:col: message", or "file: message" when the line is unknown
  // (0), e.g. for a policy directory that cannot be read.
  std::string ToString() const;
};

struct ParseResult {
  // Only policies without errors. ParsePolicyDir sorts them by name;
  // ParsePolicyText appends in document order.
  PolicySet set;
  std::vector<PolicyError> errors;
  // Errors counted but not listed (past a list file's first
  // kMaxListFileErrors): the real count is errors.size() + this.
  size_t errors_not_shown = 0;
  // metadata.name -> where its value was written, for every document
  // parsed into this result (valid or not): duplicate names are detected
  // across everything parsed into one result.
  absl::flat_hash_map<std::string, SourcePos> names;
};

// Limits that bound time and memory on hostile input.
inline constexpr size_t kMaxPolicyFileBytes = 16 << 20;
// Errors reported per policy file before giving up on the rest of it.
inline constexpr size_t kMaxErrorsPerFile = 100;

// Parses one file's text (multi-document). `file` names it in positions;
// `base_dir` resolves relative denyFrom/allowFrom paths (empty: relative to
// the working directory). Appends policies and errors to `*result`.
// Never throws.
void ParsePolicyText(absl::string_view text, const std::string& file,
                     const std::string& base_dir, ParseResult* result);

// Every *.yaml / *.yml regular file (following symlinks) directly in `dir`,
// in name order, skipping names that start with "." (which also skips the
// Kubernetes ConfigMap internals "..data" and "..2024_..."). A missing or
// unreadable directory, and a listed file that cannot be read, are errors.
// At the end sorts set.policies by name.
ParseResult ParsePolicyDir(const std::string& dir);

// ParsePolicyDir, then OK with the set, or InvalidArgument whose message
// is all errors, one "file:line:col: message" per line.
absl::StatusOr<PolicySet> LoadPolicyDir(const std::string& dir);

// Hex (2 to 40 digits, an even number, either case) -> raw bytes.
// InvalidArgument: "\"<hex>\" is not a build ID (expected 2 to 40 hex
// digits, an even number)".
absl::StatusOr<std::string> ParseBuildIdHex(absl::string_view hex);

// A sha256 digest as sha256sum prints it (64 hex digits, either case) ->
// its 32 raw bytes. InvalidArgument: "\"<hex>\" is not a sha256 digest
// (expected 64 hex digits, as sha256sum prints)".
absl::StatusOr<std::string> ParseSha256Hex(absl::string_view hex);

// A Debian version range: comma-separated clauses "OP VERSION", OP one of
// << <= = >= >> (Debian's relations), VERSION a Debian version
// ([epoch:]upstream[-revision], upstream starting with a digit). Empty
// text: no clause (every version). InvalidArgument says what is wrong.
absl::StatusOr<std::vector<VersionClause>> ParseVersionRange(
    absl::string_view text);

// Raw build-ID bytes -> lowercase hex.
std::string BuildIdToHex(absl::string_view raw);

// Helpers shared by the policy files.
// User text for a message: in double quotes, C-escaped (non-printable and
// non-ASCII bytes as \xNN), cut to about 64 characters ("..." appended).
std::string QuoteForMessage(absl::string_view s);

// What a build ID looks like, for error messages.
inline constexpr absl::string_view kBuildIdExpected =
    "expected 2 to 40 hex digits, an even number";
// Well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF)
// without NUL bytes.
bool IsValidUtf8(absl::string_view s);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_PARSER_H_
