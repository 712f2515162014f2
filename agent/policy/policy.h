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
//     denyPackages:            # through the loaded build-ID indexes
//       - {name: curl, versions: "<< 7.88.1-10+deb12u7", note: CVE-...}
//     unknownBuildId: allow    # allow | deny: execs without a build ID
//     selector:                # empty = everything on the node
//       namespaces: [prod]
//       matchLabels: {app: web}
//       matchExpressions: [{key: tier, operator: In, values: [front]}]
//       containers: [nginx]
//       host: false            # processes outside containers
#ifndef EXECMON_AGENT_POLICY_POLICY_H_
#define EXECMON_AGENT_POLICY_POLICY_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace execmon {

enum class PolicyMode { kAudit, kEnforce };
// block: the exec fails with EPERM where the BPF LSM runs and the verdict
// is known at bprm_check_security; otherwise it is killed like kill.
enum class PolicyAction { kAlert, kKill, kBlock };
enum class UnknownBuildId { kAllow, kDeny };

// Where something was written, for error messages and verdict "rule"s.
struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

// A build ID's raw bytes (1..20) held inline: a list of 100k IDs is 100k
// table slots, without a heap block each.
class BuildIdKey {
 public:
  static constexpr size_t kMaxSize = 20;
  // `raw` must be 1..kMaxSize bytes (ParseBuildIdHex's output).
  explicit BuildIdKey(absl::string_view raw)
      : size_(static_cast<uint8_t>(std::min(raw.size(), kMaxSize))) {
    std::memcpy(bytes_, raw.data(), size_);
  }
  absl::string_view view() const { return absl::string_view(bytes_, size_); }
  std::string str() const { return std::string(view()); }

 private:
  uint8_t size_;
  char bytes_[kMaxSize];
};

// Hash and equality for tables keyed by BuildIdKey, looked up by the raw
// bytes as well (any string_view-like key: no BuildIdKey is built).
struct BuildIdKeyHash {
  using is_transparent = void;
  size_t operator()(absl::string_view raw) const {
    return absl::Hash<absl::string_view>()(raw);
  }
  size_t operator()(const BuildIdKey& k) const { return (*this)(k.view()); }
};
struct BuildIdKeyEq {
  using is_transparent = void;
  static absl::string_view View(const BuildIdKey& k) { return k.view(); }
  static absl::string_view View(absl::string_view raw) { return raw; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

// One deny/allow entry: its note, and where it was written (the policy's
// file, or the list file and line it came from). Kept compact: list files
// can hold many thousands of entries, and the agent keeps two generations.
struct BuildIdEntry {
  std::string note;
  std::shared_ptr<const std::string> file;  // shared by a file's entries
  int line = 0;
  int column = 0;
  // Allow entries only: the raw sha256 digests of the contents this entry
  // allows (null: any file with the build ID). Enforced where the file's
  // hash is known (the BPF LSM unit); docs/policies.md, "Pinning".
  std::shared_ptr<const std::vector<std::string>> sha256;

  SourcePos pos() const {
    return SourcePos{file != nullptr ? *file : std::string(), line, column};
  }
};

// Raw build-ID bytes -> entry.
using BuildIdMap =
    absl::flat_hash_map<BuildIdKey, BuildIdEntry, BuildIdKeyHash, BuildIdKeyEq>;

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

// One clause of a Debian version range: "<< 7.88.1-10+deb12u7".
struct VersionClause {
  enum class Op { kLt, kLe, kEq, kGe, kGt };  // << <= = >= >>
  Op op = Op::kEq;
  std::string version;
};

// A denyPackages entry: the indexed builds of package `name` whose version
// satisfies every clause (no clauses: every version) are denied. Expanded
// to build IDs through the loaded indexes when policies are compiled.
struct PackageRule {
  std::string name;
  std::vector<VersionClause> clauses;
  std::string versions;  // as written, for notes and messages
  std::string note;
  SourcePos pos;  // of the entry's name
};

struct Policy {
  std::string name;
  SourcePos pos;  // of the document
  PolicyMode mode = PolicyMode::kAudit;
  PolicyAction action = PolicyAction::kAlert;
  // Deny and allow lists include what came from denyFrom/allowFrom files.
  BuildIdMap deny;
  BuildIdMap allow;
  bool has_allow_list = false;  // "allow" or "allowFrom" present (even empty)
  std::vector<PackageRule> deny_packages;
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
