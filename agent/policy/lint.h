// `execmon policy lint DIR`: parse and validate a policy directory and
// report, for people (text) or tools (JSON).
#ifndef EXECMON_AGENT_POLICY_LINT_H_
#define EXECMON_AGENT_POLICY_LINT_H_

#include <string>

namespace execmon {

// Runs ParsePolicyDir(dir) and writes the report to `*out` (replacing it).
//
// Text: one "file:line:col: message" line per error, then a summary line,
// "N policies, M errors" or "N policies OK" (N counts valid policies).
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
//    "errors": [{"file", "line", "column", "message"}]}
// Policies in name order, label keys sorted; line/column 0 = unknown.
//
// Returns the exit code: 0 without errors, 1 with.
int LintPolicyDir(const std::string& dir, bool json, std::string* out);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_LINT_H_
