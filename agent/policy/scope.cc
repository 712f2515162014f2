#include "agent/policy/scope.h"

#include "agent/policy/evaluator.h"

namespace execmon {

uint64_t PodScopeMask(const PolicySet& set, const PodMeta& pod,
                      bool container_known) {
  Workload w;
  w.host = false;
  w.namespace_name = pod.namespace_name;
  for (const auto& [k, v] : pod.labels) w.labels[k] = v;
  w.container = pod.container_name;
  uint64_t mask = 0;
  for (size_t i = 0; i < set.policies.size() && i < 64; ++i) {
    const Selector& s = set.policies[i].selector;
    // At the pod level the container is not known: a policy that names
    // containers waits for the container's own cgroup.
    if (!container_known && !s.containers.empty()) continue;
    if (SelectorMatches(s, w)) mask |= 1ULL << i;
  }
  return mask;
}

void ScopeTable::OnCgroup(uint64_t id, const ContainerRef& ref) {
  if (ref.pod_uid.empty()) return;
  // Called for every event of a pod's process: copies only what is new.
  auto [it, inserted] = cgroups_.try_emplace(id, ref);
  if (inserted) {
    ++version_;
  } else if (it->second != ref) {
    it->second = ref;
    ++version_;
  }
}

void ScopeTable::OnCgroupRemoved(uint64_t id) {
  if (cgroups_.erase(id) > 0) ++version_;
}

absl::optional<uint64_t> ScopeTable::MaskOf(const PolicySet& set,
                                            const PodLookup& lookup,
                                            const ContainerRef& ref) const {
  std::shared_ptr<const PodMeta> pod = lookup(ref);
  if (pod == nullptr || !pod->enriched) return absl::nullopt;
  return PodScopeMask(set, *pod,
                      ref.in_container() && !pod->container_name.empty());
}

std::vector<std::pair<uint64_t, uint64_t>> ScopeTable::Masks(
    const PolicySet& set, const PodLookup& lookup) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [id, ref] : cgroups_) {
    if (auto m = MaskOf(set, lookup, ref)) out.emplace_back(id, *m);
  }
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> ScopeTable::MasksOfPod(
    const PolicySet& set, const PodLookup& lookup,
    const std::string& pod_uid) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [id, ref] : cgroups_) {
    if (ref.pod_uid != pod_uid) continue;
    if (auto m = MaskOf(set, lookup, ref)) out.emplace_back(id, *m);
  }
  return out;
}

}  // namespace execmon
