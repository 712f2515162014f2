// The policy model: what security teams write (docs/policies.md), after
// parsing and validation. Kubernetes-style documents:
//
//   apiVersion: execmon.io/v1alpha1
//   kind: ExecPolicy
//   metadata: {name: deny-vulnerable-curl}
//   spec:
//     mode: enforce            # audit | enforce
//     action: kill             # alert | kill (kill needs enforce)
//     deny:  [{buildId: "ab12...", note: "CVE-2023-38545"}]
//     allow: [{buildId: "...", note: "..."}]   # an allow list: others violate
//     denyFrom: [lists/vulnerable.txt]          # one ID a line, '#' comments
//     allowFrom: [lists/distro.txt]
//     unknownBuildId: allow    # allow | deny: execs without a build ID
//     selector:                # empty = everything on the node
//       namespaces: [prod]
//       matchLabels: {app: web}
//       matchExpressions: [{key: tier, operator: In, values: [front]}]
//       containers: [nginx]
//       host: false            # processes outside containers
#ifndef EXECMON_AGENT_POLICY_POLICY_H_
#define EXECMON_AGENT_POLICY_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/types/optional.h"

namespace execmon {

enum class PolicyMode { kAudit, kEnforce };
enum class PolicyAction { kAlert, kKill };
enum class UnknownBuildId { kAllow, kDeny };

// Where something was written, for error messages and verdict "rule"s.
struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

// One deny/allow entry. Entries from list files have the file and line as
// their note source.
struct BuildIdEntry {
  std::string build_id;  // raw bytes, 1..20
  std::string note;
  SourcePos pos;
};

struct LabelRequirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kIn;
  std::vector<std::string> values;  // In/NotIn: non-empty; else empty
};

struct Selector {
  std::vector<std::string> namespaces;
  absl::flat_hash_map<std::string, std::string> match_labels;
  std::vector<LabelRequirement> match_expressions;
  std::vector<std::string> containers;
  absl::optional<bool> host;  // unset: both host and containers

  // True when the selector says nothing: the policy governs every exec.
  bool Empty() const {
    return namespaces.empty() && match_labels.empty() &&
           match_expressions.empty() && containers.empty() && !host.has_value();
  }
  // True when matching needs pod/container metadata.
  bool NeedsPodMetadata() const {
    return !namespaces.empty() || !match_labels.empty() ||
           !match_expressions.empty() || !containers.empty();
  }
};

struct Policy {
  std::string name;
  SourcePos pos;  // of the document
  PolicyMode mode = PolicyMode::kAudit;
  PolicyAction action = PolicyAction::kAlert;
  // Raw build-ID bytes -> entry. Deny and allow lists include what came
  // from denyFrom/allowFrom files.
  absl::flat_hash_map<std::string, BuildIdEntry> deny;
  absl::flat_hash_map<std::string, BuildIdEntry> allow;
  bool has_allow_list = false;  // "allow" or "allowFrom" present (even empty)
  UnknownBuildId unknown_build_id = UnknownBuildId::kAllow;
  Selector selector;
};

// Policies sorted by name (names are unique): a policy's index in this
// vector is its bit in the kernel's masks.
struct PolicySet {
  std::vector<Policy> policies;
};

// What a workload looks like to a selector.
struct Workload {
  bool host = true;  // outside any container
  std::string namespace_name;
  absl::flat_hash_map<std::string, std::string> labels;
  std::string container;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_POLICY_H_
