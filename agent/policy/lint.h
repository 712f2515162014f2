// `execmon policy lint DIR`: parse and validate a policy directory and
// report, for people (text) or tools (JSON).
#ifndef EXECMON_AGENT_POLICY_LINT_H_
#define EXECMON_AGENT_POLICY_LINT_H_

#include <string>
#include <vector>

#include "agent/policy/policy.h"

namespace execmon {

// A valid policy that probably does not do what its author meant.
struct PolicyWarning {
  SourcePos pos;       // of the policy's document
  std::string policy;  // its name
  std::string message;
  // "file:line:col: warning: policy NAME: message"
  std::string ToString() const;
};

// The warnings about `set`, in policy order. Today one kind: an enforce
// policy that kills, with an allowlist or unknownBuildId: deny and an empty
// selector, governs every process on the node, and the sweep at load kills
// every running process it does not allow.
std::vector<PolicyWarning> PolicyWarnings(const PolicySet& set);

// Runs ParsePolicyDir(dir) and writes the report to `*out` (replacing it).
//
// Text: one "file:line:col: message" line per error and one
// "file:line:col: warning: policy NAME: message" line per warning
// (PolicyWarnings), then a summary line: "N policies, M errors" or
// "N policies OK", followed by ", W warnings" when there are any (N counts
// valid policies).
//
// JSON (one object and a newline):
//   {"ok": bool,
//    "policies": [{"name", "file", "line", "mode", "action", "deny": N,
//                  "allow": N, "allowList": bool, "unknownBuildId",
//                  "selector": {"namespaces": [...], "matchLabels": {...},
//                               "matchExpressions": [{"key", "operator",
//                                                     "values": [...]}],
//                               "containers": [...],
//                               "host": bool or null}}],
//    "errors": [{"file", "line", "column", "message"}],
//    "warnings": [{"file", "line", "column", "policy", "message"}]}
// Policies in name order, label keys sorted; line/column 0 = unknown.
//
// Returns the exit code: 0 without errors, 1 with. Warnings do not fail.
int LintPolicyDir(const std::string& dir, bool json, std::string* out);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_LINT_H_
