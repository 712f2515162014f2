#include "agent/policy/evaluator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace execmon {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool RequirementMatches(
    const LabelRequirement& r,
    const absl::flat_hash_map<std::string, std::string>& labels) {
  auto it = labels.find(r.key);
  switch (r.op) {
    case LabelRequirement::Op::kIn:
      return it != labels.end() && Contains(r.values, it->second);
    case LabelRequirement::Op::kNotIn:
      return it == labels.end() || !Contains(r.values, it->second);
    case LabelRequirement::Op::kExists:
      return it != labels.end();
    case LabelRequirement::Op::kDoesNotExist:
      return it == labels.end();
  }
  return false;
}

// Whether p's allow list credits id (with content hash sha, if known).
bool Allowed(const Policy& p, const std::string& id,
             const absl::optional<std::string>& sha) {
  auto it = p.allow.find(id);
  if (it == p.allow.end()) return false;
  const auto& pins = it->second.sha256;
  return pins == nullptr || !sha.has_value() || Contains(*pins, *sha);
}

bool Violates(const Policy& p, const absl::optional<std::string>& id,
              IdTrust trust, const absl::optional<std::string>& sha) {
  if (!id.has_value()) return p.unknown_build_id == UnknownBuildId::kDeny;
  if (p.deny.contains(*id)) return true;
  if (trust == IdTrust::kFromMemory) {
    return p.unknown_build_id == UnknownBuildId::kDeny;
  }
  return p.has_allow_list && !Allowed(p, *id, sha);
}

// Lower is stronger.
int Rank(const Policy& p) {
  if (p.mode == PolicyMode::kEnforce && p.action != PolicyAction::kAlert)
    return 0;
  if (p.mode == PolicyMode::kEnforce) return 1;
  return 2;
}

}  // namespace

const char* DecisionName(Decision d) {
  switch (d) {
    case Decision::kAllow:
      return "allow";
    case Decision::kDeny:
      return "deny";
    case Decision::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const char* VerdictActionName(VerdictAction a) {
  switch (a) {
    case VerdictAction::kNone:
      return "none";
    case VerdictAction::kAlert:
      return "alert";
    case VerdictAction::kKill:
      return "kill";
    case VerdictAction::kDenyExec:
      return "deny_exec";
  }
  return "none";
}

const char* PolicyModeName(PolicyMode m) {
  return m == PolicyMode::kEnforce ? "enforce" : "audit";
}

bool SelectorMatches(const Selector& s, const Workload& w) {
  if (s.host.has_value() && *s.host != w.host) return false;
  if (!s.NeedsPodMetadata()) return true;
  // Pod selectors describe containers; a host process has no pod.
  if (w.host) return false;
  if (!s.namespaces.empty() && !Contains(s.namespaces, w.namespace_name)) {
    return false;
  }
  for (const auto& [k, v] : s.match_labels) {
    auto it = w.labels.find(k);
    if (it == w.labels.end() || it->second != v) return false;
  }
  for (const LabelRequirement& r : s.match_expressions) {
    if (!RequirementMatches(r, w.labels)) return false;
  }
  if (!s.containers.empty() && !Contains(s.containers, w.container))
    return false;
  return true;
}

std::string RuleFor(const Policy& p, const absl::optional<std::string>& id,
                    Decision decision, IdTrust trust,
                    const absl::optional<std::string>& sha) {
  if (!id.has_value()) {
    return decision == Decision::kDeny ? "unknownBuildId: deny"
                                       : "unknownBuildId: allow";
  }
  if (decision == Decision::kDeny) {
    if (auto it = p.deny.find(*id); it != p.deny.end()) {
      return it->second.note.empty() ? "deny"
                                     : absl::StrCat("deny: ", it->second.note);
    }
    if (trust == IdTrust::kFromMemory) {
      return "unknownBuildId: deny (build ID read from process memory)";
    }
    if (p.allow.contains(*id) && !Allowed(p, *id, sha)) {
      return "allow: sha256 not pinned (the build ID is listed, this content "
             "is not)";
    }
    return "allow: not listed";
  }
  if (trust == IdTrust::kFromMemory) return "";
  if (auto it = p.allow.find(*id); it != p.allow.end()) {
    return it->second.note.empty() ? "allow"
                                   : absl::StrCat("allow: ", it->second.note);
  }
  return "";
}

Verdict Evaluate(const PolicySet& set, const absl::optional<std::string>& id,
                 const Workload& workload, IdTrust trust,
                 const absl::optional<std::string>& sha) {
  Verdict v;
  int best = -1;
  for (size_t i = 0; i < set.policies.size(); ++i) {
    const Policy& p = set.policies[i];
    if (!SelectorMatches(p.selector, workload) || !Violates(p, id, trust, sha))
      continue;
    if (best < 0 || Rank(p) < Rank(set.policies[best]))
      best = static_cast<int>(i);
  }
  if (best >= 0) {
    const Policy& p = set.policies[best];
    v.decision = Decision::kDeny;
    v.policy = best;
    v.mode = p.mode;
    v.action = Rank(p) != 0                       ? VerdictAction::kAlert
               : p.action == PolicyAction::kBlock ? VerdictAction::kDenyExec
                                                  : VerdictAction::kKill;
    v.rule = RuleFor(p, id, Decision::kDeny, trust, sha);
    return v;
  }
  v.decision = id.has_value() ? Decision::kAllow : Decision::kUnknown;
  if (!id.has_value() || trust == IdTrust::kFromMemory) return v;
  for (size_t i = 0; i < set.policies.size(); ++i) {
    const Policy& p = set.policies[i];
    if (SelectorMatches(p.selector, workload) && Allowed(p, *id, sha)) {
      v.policy = static_cast<int>(i);
      v.mode = p.mode;
      v.rule = RuleFor(p, id, Decision::kAllow);
      break;
    }
  }
  return v;
}

}  // namespace execmon
