// Verdict semantics, in user space: `execmon policy test`, the "rule" of
// kernel verdicts, and the reference the kernel's bitmask evaluation
// (bpf/policy.bpf.h) is tested against. Rules (docs/policies.md):
//
//  - A policy governs an exec when its selector matches the workload.
//  - A governing policy is violated when the build ID is on its deny list,
//    or it has an allow list that does not list the ID, or the ID is
//    unknown and it says unknownBuildId: deny.
//  - Any violation makes the decision "deny": deny beats allow, whatever
//    the order of policies. The deciding policy is, among the violated
//    ones, first an enforce+kill policy, then any enforce policy, then an
//    audit policy; ties go to the lowest index (policies sort by name).
//  - action: kill when the deciding policy is enforce+kill, else alert.
//  - A build ID read from memory the process could have written
//    (IdTrust::kFromMemory) is never credited by an allow list: a deny
//    list that names it is still violated (forging a denied ID only hurts
//    the forger), and otherwise it is judged like an unknown ID.
//  - Otherwise "allow" when the ID is known (the deciding policy, if any,
//    is the first one whose allow list names it) and "unknown" when not;
//    action none.
#ifndef EXECMON_AGENT_POLICY_EVALUATOR_H_
#define EXECMON_AGENT_POLICY_EVALUATOR_H_

#include <string>

#include "absl/types/optional.h"
#include "agent/policy/policy.h"

namespace execmon {

enum class Decision { kAllow, kDeny, kUnknown };
// Where a build ID came from: the file (or before the first instruction),
// or the memory of a process that has run (EM_BID_F_MEMORY).
enum class IdTrust { kTrusted, kFromMemory };
// kDenyExec: the exec failed with EPERM (action block, BPF LSM).
enum class VerdictAction { kNone, kAlert, kKill, kDenyExec };

struct Verdict {
  Decision decision = Decision::kUnknown;
  VerdictAction action = VerdictAction::kNone;
  int policy = -1;  // index into PolicySet::policies; -1 = none decided
  PolicyMode mode = PolicyMode::kAudit;
  std::string rule;  // e.g. "deny: CVE-2023-38545", "allow: not listed"
};

const char* DecisionName(Decision d);
const char* VerdictActionName(VerdictAction a);
const char* PolicyModeName(PolicyMode m);

bool SelectorMatches(const Selector& s, const Workload& w);

// build_id: raw bytes, or nullopt when the exec has no build ID. sha256:
// the file's raw content hash where known; an allow entry that pins
// hashes credits only those contents then, and any file with its build ID
// where no hash is known. A block policy's action is kDenyExec (what it
// does where the BPF LSM runs).
Verdict Evaluate(const PolicySet& set,
                 const absl::optional<std::string>& build_id,
                 const Workload& workload, IdTrust trust = IdTrust::kTrusted,
                 const absl::optional<std::string>& sha256 = absl::nullopt);

// The rule text for a decision the kernel made with policy `policy`.
std::string RuleFor(const Policy& policy,
                    const absl::optional<std::string>& build_id,
                    Decision decision, IdTrust trust = IdTrust::kTrusted,
                    const absl::optional<std::string>& sha256 = absl::nullopt);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_EVALUATOR_H_
