// Which policies govern each pod's cgroups: the per-cgroup scopes the
// kernel's verdict walks up to (bpf/policy.bpf.h em_scope). A pod's own
// cgroup gets the policies its namespace and labels select (so they apply
// from the pod's first exec); a container's cgroup adds those selecting its
// container name, once the name is known.
#ifndef EXECMON_AGENT_POLICY_SCOPE_H_
#define EXECMON_AGENT_POLICY_SCOPE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/optional.h"
#include "agent/container/cgroup_path.h"
#include "agent/container/pod_meta.h"
#include "agent/policy/policy.h"

namespace execmon {

// Pod metadata for a cgroup's pod (and container), or null if unknown.
using PodLookup =
    std::function<std::shared_ptr<const PodMeta>(const ContainerRef&)>;

// The policies (bit i = policies[i]) governing a workload in a pod.
uint64_t PodScopeMask(const PolicySet& set, const PodMeta& pod,
                      bool container_known);

class ScopeTable {
 public:
  // Remembers pod and container cgroups (others are ignored).
  void OnCgroup(uint64_t id, const ContainerRef& ref);
  void OnCgroupRemoved(uint64_t id);

  // Scope mask of every remembered cgroup whose pod is known.
  std::vector<std::pair<uint64_t, uint64_t>> Masks(
      const PolicySet& set, const PodLookup& lookup) const;
  // The same for the cgroups of one pod.
  std::vector<std::pair<uint64_t, uint64_t>> MasksOfPod(
      const PolicySet& set, const PodLookup& lookup,
      const std::string& pod_uid) const;

  size_t size() const { return cgroups_.size(); }
  // Changes whenever a cgroup is remembered, changed or forgotten.
  uint64_t version() const { return version_; }

 private:
  absl::optional<uint64_t> MaskOf(const PolicySet& set, const PodLookup& lookup,
                                  const ContainerRef& ref) const;
  absl::flat_hash_map<uint64_t, ContainerRef> cgroups_;
  uint64_t version_ = 0;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_SCOPE_H_
