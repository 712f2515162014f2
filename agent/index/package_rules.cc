#include "agent/index/package_rules.h"

#include <apt-pkg/debversion.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace execmon {

bool VersionSatisfies(absl::string_view version,
                      const std::vector<VersionClause>& clauses) {
  const std::string v(version);
  for (const VersionClause& c : clauses) {
    const int cmp = debVS.CmpVersion(v, c.version);
    bool ok = false;
    switch (c.op) {
      case VersionClause::Op::kLt:
        ok = cmp < 0;
        break;
      case VersionClause::Op::kLe:
        ok = cmp <= 0;
        break;
      case VersionClause::Op::kEq:
        ok = cmp == 0;
        break;
      case VersionClause::Op::kGe:
        ok = cmp >= 0;
        break;
      case VersionClause::Op::kGt:
        ok = cmp > 0;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

std::vector<RuleExpansion> ExpandPackageRules(PolicySet* set,
                                              const PackageMap* map) {
  std::vector<RuleExpansion> out;
  for (Policy& p : set->policies) {
    for (const PackageRule& rule : p.deny_packages) {
      RuleExpansion x;
      x.policy = p.name;
      x.rule = &rule;
      if (map != nullptr) {
        map->ForEach([&](absl::string_view id, const PackageRef& pkg) {
          if (pkg.name == rule.name &&
              VersionSatisfies(pkg.version, rule.clauses)) {
            x.builds.emplace_back(std::string(id), pkg);
          }
        });
      }
      auto file = std::make_shared<const std::string>(rule.pos.file);
      for (const auto& [id, pkg] : x.builds) {
        if (p.deny.contains(id)) continue;  // a deny entry of its own wins
        BuildIdEntry e;
        e.note = absl::StrCat(rule.note.empty() ? "" : rule.note,
                              rule.note.empty() ? "" : " ", "(", pkg.name, " ",
                              pkg.version, " ", pkg.arch, ")");
        e.file = file;
        e.line = rule.pos.line;
        e.column = rule.pos.column;
        p.deny.emplace(BuildIdKey(id), std::move(e));
      }
      out.push_back(std::move(x));
    }
  }
  return out;
}

}  // namespace execmon
