#include "agent/policy/lint.h"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/policy/evaluator.h"
#include "agent/policy/parser.h"
#include "agent/policy/policy.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace execmon {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

const char* ActionName(PolicyAction a) {
  switch (a) {
    case PolicyAction::kKill:
      return "kill";
    case PolicyAction::kBlock:
      return "block";
    case PolicyAction::kAlert:
      break;
  }
  return "alert";
}

const char* UnknownBuildIdName(UnknownBuildId u) {
  return u == UnknownBuildId::kDeny ? "deny" : "allow";
}

const char* OpName(LabelRequirement::Op op) {
  switch (op) {
    case LabelRequirement::Op::kIn:
      return "In";
    case LabelRequirement::Op::kNotIn:
      return "NotIn";
    case LabelRequirement::Op::kExists:
      return "Exists";
    case LabelRequirement::Op::kDoesNotExist:
      return "DoesNotExist";
  }
  return "?";
}

void String(Writer& w, absl::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void StringArray(Writer& w, const char* key,
                 const std::vector<std::string>& values) {
  w.Key(key);
  w.StartArray();
  for (const std::string& v : values) String(w, v);
  w.EndArray();
}

void WriteSelector(Writer& w, const Selector& s) {
  w.StartObject();
  StringArray(w, "namespaces", s.namespaces);
  w.Key("matchLabels");
  w.StartObject();
  std::vector<std::pair<std::string, std::string>> labels(
      s.match_labels.begin(), s.match_labels.end());
  std::sort(labels.begin(), labels.end());
  for (const auto& [k, v] : labels) {
    String(w, k);
    String(w, v);
  }
  w.EndObject();
  w.Key("matchExpressions");
  w.StartArray();
  for (const LabelRequirement& r : s.match_expressions) {
    w.StartObject();
    w.Key("key");
    String(w, r.key);
    w.Key("operator");
    w.String(OpName(r.op));
    StringArray(w, "values", r.values);
    w.EndObject();
  }
  w.EndArray();
  StringArray(w, "containers", s.containers);
  w.Key("host");
  if (s.host.has_value()) {
    w.Bool(*s.host);
  } else {
    w.Null();
  }
  w.EndObject();
}

void WritePos(Writer& w, const SourcePos& pos) {
  w.Key("file");
  String(w, pos.file);
  w.Key("line");
  w.Int(pos.line);
  w.Key("column");
  w.Int(pos.column);
}

std::string Json(const ParseResult& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("ok");
  w.Bool(r.errors.empty());
  w.Key("error_count");
  w.Uint64(r.errors.size() + r.errors_not_shown);
  w.Key("policies");
  w.StartArray();
  for (const Policy& p : r.set.policies) {
    w.StartObject();
    w.Key("name");
    String(w, p.name);
    w.Key("file");
    String(w, p.pos.file);
    w.Key("line");
    w.Int(p.pos.line);
    w.Key("mode");
    w.String(PolicyModeName(p.mode));
    w.Key("action");
    w.String(ActionName(p.action));
    w.Key("deny");
    w.Uint64(p.deny.size());
    w.Key("allow");
    w.Uint64(p.allow.size());
    w.Key("allowList");
    w.Bool(p.has_allow_list);
    w.Key("unknownBuildId");
    w.String(UnknownBuildIdName(p.unknown_build_id));
    w.Key("selector");
    WriteSelector(w, p.selector);
    w.EndObject();
  }
  w.EndArray();
  w.Key("errors");
  w.StartArray();
  for (const PolicyError& e : r.errors) {
    w.StartObject();
    WritePos(w, e.pos);
    w.Key("message");
    String(w, e.message);
    w.EndObject();
  }
  w.EndArray();
  w.Key("warnings");
  w.StartArray();
  for (const PolicyWarning& warning : PolicyWarnings(r.set)) {
    w.StartObject();
    WritePos(w, warning.pos);
    w.Key("policy");
    String(w, warning.policy);
    w.Key("message");
    String(w, warning.message);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return absl::StrCat(absl::string_view(buf.GetString(), buf.GetSize()), "\n");
}

std::string Text(const ParseResult& r) {
  std::string out;
  for (const PolicyError& e : r.errors) {
    absl::StrAppend(&out, e.ToString(), "\n");
  }
  const std::vector<PolicyWarning> warnings = PolicyWarnings(r.set);
  for (const PolicyWarning& w : warnings) {
    absl::StrAppend(&out, w.ToString(), "\n");
  }
  if (r.errors.empty()) {
    absl::StrAppend(&out, r.set.policies.size(), " policies OK");
  } else {
    absl::StrAppend(&out, r.set.policies.size(), " policies, ",
                    r.errors.size() + r.errors_not_shown, " errors");
    if (r.errors_not_shown != 0) {
      absl::StrAppend(&out, " (", r.errors_not_shown, " not listed)");
    }
  }
  if (!warnings.empty())
    absl::StrAppend(&out, ", ", warnings.size(), " warnings");
  absl::StrAppend(&out, "\n");
  return out;
}

}  // namespace

std::string PolicyWarning::ToString() const {
  return PolicyError{pos,
                     absl::StrCat("warning: policy ", policy, ": ", message)}
      .ToString();
}

std::vector<PolicyWarning> PolicyWarnings(const PolicySet& set) {
  std::vector<PolicyWarning> out;
  for (const Policy& p : set.policies) {
    // Correct by the spec, and a foot-gun.
    if (p.mode == PolicyMode::kEnforce && p.action != PolicyAction::kAlert &&
        p.selector.Empty() &&
        (p.has_allow_list || p.unknown_build_id == UnknownBuildId::kDeny)) {
      out.push_back(
          {p.pos, p.name,
           absl::StrCat(
               "an enforce+", ActionName(p.action), " ",
               p.has_allow_list ? "allowlist" : "unknownBuildId: deny",
               " with an empty selector governs every process on the node; "
               "the sweep kills every running process it does not allow "
               "(scope it with a selector, e.g. host: false; "
               "docs/policies.md, Enforcement)")});
    }
    size_t pinned = 0;
    for (const auto& [id, entry] : p.allow) pinned += entry.sha256 != nullptr;
    if (pinned > 0) {
      out.push_back(
          {p.pos, p.name,
           absl::StrCat(
               pinned, " allow entr", pinned == 1 ? "y pins" : "ies pin",
               " sha256 content hashes: enforced only on nodes where the "
               "agent hashes executed files (BPF LSM with bpf_ima_file_hash; "
               "the start-up log says 'sha256: on' and events carry "
               "process.exe.sha256); elsewhere such an entry allows every "
               "file with its build ID (docs/policies.md, Pinning)")});
    }
  }
  return out;
}

int LintPolicyDir(const std::string& dir, bool json, std::string* out) {
  try {
    ParseResult r = ParsePolicyDir(dir);
    *out = json ? Json(r) : Text(r);
    return r.errors.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    *out = absl::StrCat("internal error: ", e.what(), "\n");
    return 1;
  }
}

}  // namespace execmon
