// Compiles a PolicySet into what the kernel evaluates (bpf/policy.bpf.h):
// one bit per policy, a build-ID -> (deny, allow) mask table and
// per-generation attribute masks. Pure: no BPF calls.
#ifndef EXECMON_AGENT_POLICY_COMPILER_H_
#define EXECMON_AGENT_POLICY_COMPILER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/policy/policy.h"
#include "bpf/execmon_abi.h"

namespace execmon {

struct CompiledPolicies {
  em_policy_meta meta{};  // gen is set by the loader
  // Raw build ID -> masks, one entry per distinct ID named by any policy.
  std::vector<std::pair<std::string, em_policy_val>> ids;
  // Raw sha256 -> policies whose allow entries pin it.
  std::vector<std::pair<std::string, uint64_t>> hashes;
};

// Fails when the set has more than EM_MAX_POLICIES policies.
absl::StatusOr<CompiledPolicies> CompilePolicies(const PolicySet& set);

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_COMPILER_H_
