#include "agent/policy/compiler.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "agent/policy/evaluator.h"

namespace execmon {

absl::StatusOr<CompiledPolicies> CompilePolicies(const PolicySet& set) {
  if (set.policies.size() > EM_MAX_POLICIES) {
    return absl::InvalidArgumentError(absl::StrCat(
        set.policies.size(), " policies loaded; at most ", EM_MAX_POLICIES,
        " are supported: merge lists into fewer "
        "policies"));
  }
  CompiledPolicies out;
  out.meta.npolicies = set.policies.size();
  absl::flat_hash_map<std::string, em_policy_val> ids;
  absl::flat_hash_map<std::string, uint64_t> hashes;
  Workload host;  // host = true
  for (size_t i = 0; i < set.policies.size(); ++i) {
    const Policy& p = set.policies[i];
    const uint64_t bit = 1ULL << i;
    if (p.has_allow_list) out.meta.allowlist_mask |= bit;
    if (p.unknown_build_id == UnknownBuildId::kDeny) {
      out.meta.unknown_deny_mask |= bit;
    }
    if (p.mode == PolicyMode::kEnforce) {
      out.meta.enforce_mask |= bit;
      // block kills where the exec cannot be denied (no BPF LSM, or the
      // verdict is learned after bprm_check).
      if (p.action != PolicyAction::kAlert) out.meta.kill_mask |= bit;
      if (p.action == PolicyAction::kBlock) out.meta.block_mask |= bit;
    }
    if (SelectorMatches(p.selector, host)) out.meta.scope_host |= bit;
    // A container whose pod is not known (yet): only selectors that need
    // no pod metadata can govern it. Pod selectors get per-cgroup scopes.
    if (!p.selector.NeedsPodMetadata() &&
        (!p.selector.host.has_value() || !*p.selector.host)) {
      out.meta.scope_container |= bit;
    }
    for (const auto& [id, entry] : p.deny) ids[id.str()].deny_mask |= bit;
    for (const auto& [id, entry] : p.allow) {
      em_policy_val& val = ids[id.str()];
      val.allow_mask |= bit;
      if (entry.sha256 == nullptr) continue;
      val.pinned_mask |= bit;
      for (const std::string& h : *entry.sha256) hashes[h] |= bit;
    }
  }
  out.ids.reserve(ids.size());
  for (auto& [id, val] : ids) out.ids.emplace_back(id, val);
  out.hashes.assign(hashes.begin(), hashes.end());
  return out;
}

}  // namespace execmon
