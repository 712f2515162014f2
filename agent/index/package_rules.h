// denyPackages (docs/policies.md): package version ranges compiled to
// build IDs through the loaded build-ID indexes, versions compared by
// Debian's own rules (libapt-pkg).
#ifndef EXECMON_AGENT_INDEX_PACKAGE_RULES_H_
#define EXECMON_AGENT_INDEX_PACKAGE_RULES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/index/package_map.h"
#include "agent/policy/policy.h"

namespace execmon {

// Whether `version` satisfies every clause (dpkg's comparison).
bool VersionSatisfies(absl::string_view version,
                      const std::vector<VersionClause>& clauses);

// What one rule expanded to.
struct RuleExpansion {
  std::string policy;
  const PackageRule* rule = nullptr;                       // into the set
  std::vector<std::pair<std::string, PackageRef>> builds;  // raw ID, package
};

// Adds to each policy's deny list the build IDs its denyPackages rules
// select in `map` (nullptr: no index loaded, nothing added). An entry's
// note names the package and version, and the rule's note if it has one.
std::vector<RuleExpansion> ExpandPackageRules(PolicySet* set,
                                              const PackageMap* map);

}  // namespace execmon

#endif  // EXECMON_AGENT_INDEX_PACKAGE_RULES_H_
