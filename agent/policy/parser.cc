#include "agent/policy/parser.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/types/optional.h"
#include "agent/policy/list_file.h"
#include "bpf/execmon_abi.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/mark.h"
#include "yaml-cpp/parser.h"

namespace execmon {
namespace {

constexpr absl::string_view kApiVersion = "execmon.io/v1alpha1";
constexpr absl::string_view kKind = "ExecPolicy";
constexpr absl::string_view kDnsLabelExpected =
    "expected a DNS-1123 label: lowercase letters, digits and '-', starting "
    "and ending with a letter or digit, at most 63 characters";
constexpr absl::string_view kDnsSubdomainExpected =
    "expected a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
    "each dot-separated part starting and ending with a letter or digit, at "
    "most 253 characters";
constexpr absl::string_view kLabelKeyExpected =
    "expected an optional DNS-1123 subdomain prefix and '/', then a name of "
    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
    "letter or digit";
constexpr absl::string_view kLabelValueExpected =
    "expected at most 63 letters, digits, '-', '_' and '.', starting and "
    "ending with a letter or digit, or empty";

// ---------------------------------------------------------------------------
// Name syntax (Kubernetes' validation rules).

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?, any length.
bool IsDnsLabelPattern(absl::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDnsLabel(absl::string_view s) {
  return s.size() <= 63 && IsDnsLabelPattern(s);
}

bool IsDnsSubdomain(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view part : absl::StrSplit(s, '.')) {
    if (!IsDnsLabelPattern(part)) return false;
  }
  return true;
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63.
bool IsQualifiedName(absl::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsLabelKey(absl::string_view s) {
  size_t slash = s.find('/');
  if (slash == absl::string_view::npos) return IsQualifiedName(s);
  return IsDnsSubdomain(s.substr(0, slash)) &&
         IsQualifiedName(s.substr(slash + 1));
}

bool IsLabelValue(absl::string_view s) {
  return s.empty() || IsQualifiedName(s);
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PosText(const SourcePos& pos) {
  if (pos.line <= 0) return pos.file;
  return absl::StrCat(pos.file, ":", pos.line, ":", pos.column);
}

// ---------------------------------------------------------------------------
// A YAML document as a tree of nodes in an arena: building it and
// destroying it never recurses, and aliases are indices (no copies).

struct YNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  int line = 0;        // 1-based
  int column = 0;      // 1-based
  bool plain = false;  // a scalar written without quotes or tag
  std::string value;
  std::vector<int> children;  // map: key, value, key, value, ...
};

const char* KindName(YNode::Kind k) {
  switch (k) {
    case YNode::Kind::kNull:
      return "null";
    case YNode::Kind::kScalar:
      return "scalar";
    case YNode::Kind::kSequence:
      return "sequence";
    case YNode::Kind::kMap:
      return "mapping";
  }
  return "?";
}

// Thrown by TreeBuilder when yaml-cpp produces more nodes than the input
// can hold: a parser loop, cut short.
struct TooManyNodes {
  YAML::Mark mark;
};

class TreeBuilder : public YAML::EventHandler {
 public:
  // Every node takes at least one byte of input, and an alias two: more
  // than this many nodes is a parser loop.
  explicit TreeBuilder(size_t input_size) : max_nodes_(2 * input_size + 64) {}

  void Reset() {
    nodes_.clear();
    stack_.clear();
    anchors_.clear();
    root_ = -1;
    aliases_ = 0;
    start_ = YAML::Mark::null_mark();
  }
  const std::vector<YNode>& nodes() const { return nodes_; }
  int root() const { return root_; }
  const YAML::Mark& start() const { return start_; }

  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Attach(New(YNode::Kind::kNull, mark, anchor));
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (++aliases_ > max_nodes_) throw TooManyNodes{mark};
    auto it = anchors_.find(anchor);
    Attach(it != anchors_.end() ? it->second
                                : New(YNode::Kind::kNull, mark, 0));
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag,
                YAML::anchor_t anchor, const std::string& value) override {
    int i = New(YNode::Kind::kScalar, mark, anchor);
    nodes_[i].plain = tag == "?";
    nodes_[i].value = value;
    Attach(i);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    int i = New(YNode::Kind::kSequence, mark, anchor);
    Attach(i);
    stack_.push_back(i);
  }
  void OnSequenceEnd() override { Pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&,
                  YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    int i = New(YNode::Kind::kMap, mark, anchor);
    Attach(i);
    stack_.push_back(i);
  }
  void OnMapEnd() override { Pop(); }

 private:
  int New(YNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (nodes_.size() >= max_nodes_) throw TooManyNodes{mark};
    YNode n;
    n.kind = kind;
    n.line = mark.line >= 0 ? mark.line + 1 : 0;
    n.column = mark.column >= 0 ? mark.column + 1 : 0;
    nodes_.push_back(std::move(n));
    int i = static_cast<int>(nodes_.size() - 1);
    if (anchor != 0) anchors_[anchor] = i;
    return i;
  }
  void Attach(int i) {
    if (stack_.empty()) {
      if (root_ < 0) root_ = i;
      return;
    }
    nodes_[stack_.back()].children.push_back(i);
  }
  void Pop() {
    if (!stack_.empty()) stack_.pop_back();
  }

  size_t max_nodes_;
  std::vector<YNode> nodes_;
  std::vector<int> stack_;
  absl::flat_hash_map<YAML::anchor_t, int> anchors_;
  int root_ = -1;
  size_t aliases_ = 0;
  YAML::Mark start_ = YAML::Mark::null_mark();
};

// ---------------------------------------------------------------------------
// Validation of one document.

// Shared by the documents of one file.
struct FileContext {
  const std::string& file;
  const std::string& base_dir;
  ParseResult* result;
  size_t errors = 0;
  bool gave_up = false;
  // `file`, shared by its inline deny/allow entries (made at the first).
  std::shared_ptr<const std::string> shared_file;
};

// A value and where to report problems with it: a null map value (often
// "key:" with nothing after it) is reported at its key, since yaml-cpp
// places it at the next token.
struct Ref {
  int node = -1;
  int line = 0;
  int column = 0;
};

struct Field {
  Ref key;
  Ref value;
};

using Fields = absl::flat_hash_map<std::string, Field>;

std::string Join(absl::string_view path, absl::string_view field) {
  if (path.empty()) return std::string(field);
  return absl::StrCat(path, ".", field);
}

std::string Index(absl::string_view path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

class DocumentParser {
 public:
  DocumentParser(const std::vector<YNode>& nodes, FileContext* ctx)
      : nodes_(nodes), ctx_(ctx) {}

  void Run(int root) {
    Ref doc = At(root);
    policy_.pos = SourcePos{ctx_->file, doc.line, doc.column};
    if (Node(doc).kind != YNode::Kind::kMap) {
      Error(doc, absl::StrCat("document: expected a mapping (an ExecPolicy), "
                              "got a ",
                              KindName(Node(doc).kind)));
      return;
    }
    // A document of another kind: its other fields mean nothing here.
    if (OtherKind(doc)) return;
    Fields top;
    CheckFields(doc, "", {"apiVersion", "kind", "metadata", "spec"}, &top);
    if (!CheckConstant(doc, top, "kind", kKind)) return;
    CheckConstant(doc, top, "apiVersion", kApiVersion);
    ParseMetadata(doc, top);
    if (auto it = top.find("spec"); it == top.end()) {
      Error(doc, "spec: required");
    } else {
      ParseSpec(it->second.value);
    }
    if (doc_errors_ == 0) {
      ctx_->result->set.policies.push_back(std::move(policy_));
    }
  }

 private:
  const YNode& Node(const Ref& r) const { return nodes_[r.node]; }

  Ref At(int node) const {
    return Ref{node, nodes_[node].line, nodes_[node].column};
  }

  bool Stop() const { return ctx_->gave_up; }

  void AddError(SourcePos pos, std::string message) {
    ++doc_errors_;
    if (ctx_->gave_up) return;
    if (++ctx_->errors >= kMaxErrorsPerFile) {
      ctx_->gave_up = true;
      absl::StrAppend(
          &message, " (too many errors; the rest of the file is not checked)");
    }
    ctx_->result->errors.push_back(
        PolicyError{std::move(pos), std::move(message)});
  }

  void Error(const Ref& at, std::string message) {
    AddError(SourcePos{ctx_->file, at.line, at.column}, std::move(message));
  }

  void Error(const Ref& at, absl::string_view path, absl::string_view what) {
    Error(at, absl::StrCat(path, ": ", what));
  }

  bool ExpectKind(const Ref& r, absl::string_view path, YNode::Kind want,
                  absl::string_view what) {
    const YNode& n = Node(r);
    if (n.kind == want) return true;
    std::string got = absl::StrCat("got a ", KindName(n.kind));
    if (n.kind == YNode::Kind::kNull) {
      got = want == YNode::Kind::kSequence
                ? "got null (write [] for an empty list)"
                : "got null";
    } else if (n.kind == YNode::Kind::kScalar) {
      absl::StrAppend(&got, " (", QuoteForMessage(n.value), ")");
    }
    Error(r, path, absl::StrCat("expected ", what, ", ", got));
    return false;
  }

  // Fills `*out` with the allowed fields of mapping `map`; reports
  // non-scalar keys, unknown and duplicate fields.
  void CheckFields(const Ref& map, absl::string_view path,
                   std::initializer_list<absl::string_view> allowed,
                   Fields* out) {
    const std::vector<int>& c = Node(map).children;
    for (size_t i = 0; i + 1 < c.size() && !Stop(); i += 2) {
      Ref key = At(c[i]);
      Ref value = At(c[i + 1]);
      const YNode& k = Node(key);
      if (Node(value).kind == YNode::Kind::kNull) {
        value.line = key.line;
        value.column = key.column;
      }
      if (k.kind != YNode::Kind::kScalar) {
        Error(key, path.empty() ? "document" : path,
              absl::StrCat("expected a field name, got a ", KindName(k.kind)));
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), k.value) == allowed.end()) {
        std::string message =
            absl::StrCat("unknown field ", QuoteForMessage(k.value),
                         " (expected ", absl::StrJoin(allowed, ", "), ")");
        if (path.empty()) {
          Error(key, absl::StrCat("unknown top-level field ",
                                  QuoteForMessage(k.value), " (expected ",
                                  absl::StrJoin(allowed, ", "), ")"));
        } else {
          Error(key, path, message);
        }
        continue;
      }
      auto [it, inserted] = out->try_emplace(k.value, Field{key, value});
      if (!inserted) {
        Error(key, Join(path, k.value),
              absl::StrCat("duplicate field (first at ",
                           PosText(SourcePos{ctx_->file, it->second.key.line,
                                             it->second.key.column}),
                           ")"));
      }
    }
  }

  const Field* Find(const Fields& fields, absl::string_view name) {
    auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
  }

  absl::optional<std::string> String(const Ref& r, absl::string_view path) {
    if (!ExpectKind(r, path, YNode::Kind::kScalar, "a string")) {
      return absl::nullopt;
    }
    return Node(r).value;
  }

  // false: `value` must be `want`. Reports a missing or different value.
  bool CheckConstant(const Ref& doc, const Fields& top, absl::string_view name,
                     absl::string_view want) {
    const Field* f = Find(top, name);
    if (f == nullptr) {
      Error(doc, name,
            absl::StrCat("required (expected ", name, ": ", want, ")"));
      return true;
    }
    absl::optional<std::string> v = String(f->value, name);
    if (!v.has_value()) return false;
    if (*v != want) {
      Error(f->value, name,
            absl::StrCat(QuoteForMessage(*v), " is not supported (expected ",
                         want, ")"));
      return false;
    }
    return true;
  }

  // True (reported) when the document says it is of another kind.
  bool OtherKind(const Ref& doc) {
    const std::vector<int>& c = Node(doc).children;
    for (size_t i = 0; i + 1 < c.size(); i += 2) {
      const YNode& k = nodes_[c[i]];
      const YNode& v = nodes_[c[i + 1]];
      if (k.kind == YNode::Kind::kScalar && k.value == "kind" &&
          v.kind == YNode::Kind::kScalar && v.value != kKind) {
        Error(At(c[i + 1]), "kind",
              absl::StrCat(QuoteForMessage(v.value),
                           " is not supported (expected ", kKind, ")"));
        return true;
      }
    }
    return false;
  }

  void ParseMetadata(const Ref& doc, const Fields& top) {
    const Field* meta = Find(top, "metadata");
    if (meta == nullptr) {
      Error(doc, "metadata: required");
      return;
    }
    if (!ExpectKind(meta->value, "metadata", YNode::Kind::kMap, "a mapping")) {
      return;
    }
    Fields fields;
    CheckFields(meta->value, "metadata", {"name", "labels", "annotations"},
                &fields);
    for (absl::string_view name : {"labels", "annotations"}) {
      if (const Field* f = Find(fields, name)) {
        ExpectKind(f->value, Join("metadata", name), YNode::Kind::kMap,
                   "a mapping");
      }
    }
    const Field* name = Find(fields, "name");
    if (name == nullptr) {
      Error(meta->value, "metadata.name: required");
      return;
    }
    absl::optional<std::string> v = String(name->value, "metadata.name");
    if (!v.has_value()) return;
    if (!IsDnsSubdomain(*v)) {
      Error(name->value, "metadata.name",
            absl::StrCat(QuoteForMessage(*v), " is not a valid name (",
                         kDnsSubdomainExpected, ")"));
      return;
    }
    policy_.name = *v;
    SourcePos pos{ctx_->file, name->value.line, name->value.column};
    auto [it, inserted] = ctx_->result->names.try_emplace(*v, pos);
    if (!inserted) {
      Error(name->value, "metadata.name",
            absl::StrCat(QuoteForMessage(*v), " is already defined at ",
                         PosText(it->second)));
    }
  }

  // Parses scalar `r` as one of `choices` (name -> value).
  template <typename T>
  absl::optional<T> Enum(
      const Ref& r, absl::string_view path, absl::string_view noun,
      std::initializer_list<std::pair<absl::string_view, T>> choices) {
    absl::optional<std::string> v = String(r, path);
    if (!v.has_value()) return absl::nullopt;
    std::vector<absl::string_view> names;
    for (const auto& [name, value] : choices) {
      if (*v == name) return value;
      names.push_back(name);
    }
    std::string expected =
        names.size() == 2
            ? absl::StrCat(names[0], " or ", names[1])
            : absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "),
                           " or ", names.back());
    Error(r, path,
          absl::StrCat(QuoteForMessage(*v), " is not ", noun, " (expected ",
                       expected, ")"));
    return absl::nullopt;
  }

  absl::optional<bool> Bool(const Ref& r, absl::string_view path) {
    if (!ExpectKind(r, path, YNode::Kind::kScalar, "true or false")) {
      return absl::nullopt;
    }
    const YNode& n = Node(r);
    if (n.plain) {
      if (n.value == "true" || n.value == "True" || n.value == "TRUE") {
        return true;
      }
      if (n.value == "false" || n.value == "False" || n.value == "FALSE") {
        return false;
      }
    }
    Error(r, path,
          absl::StrCat(QuoteForMessage(n.value),
                       n.plain ? " is not" : " is a quoted string, not",
                       " a boolean (expected true or false)"));
    return absl::nullopt;
  }

  void ParseSpec(const Ref& spec) {
    if (!ExpectKind(spec, "spec", YNode::Kind::kMap, "a mapping")) return;
    Fields f;
    CheckFields(spec, "spec",
                {"mode", "action", "deny", "allow", "denyFrom", "allowFrom",
                 "denyPackages", "unknownBuildId", "selector"},
                &f);
    if (const Field* mode = Find(f, "mode")) {
      if (auto v = Enum<PolicyMode>(mode->value, "spec.mode", "a mode",
                                    {{"audit", PolicyMode::kAudit},
                                     {"enforce", PolicyMode::kEnforce}})) {
        policy_.mode = *v;
      }
    }
    if (const Field* action = Find(f, "action")) {
      if (auto v = Enum<PolicyAction>(action->value, "spec.action", "an action",
                                      {{"alert", PolicyAction::kAlert},
                                       {"kill", PolicyAction::kKill},
                                       {"block", PolicyAction::kBlock}})) {
        policy_.action = *v;
        if (*v != PolicyAction::kAlert &&
            policy_.mode != PolicyMode::kEnforce) {
          Error(action->value,
                absl::StrCat("spec.action: ",
                             *v == PolicyAction::kKill ? "kill" : "block",
                             " requires spec.mode: enforce"));
        }
      }
    }
    if (const Field* u = Find(f, "unknownBuildId")) {
      if (auto v = Enum<UnknownBuildId>(u->value, "spec.unknownBuildId",
                                        "a valid choice",
                                        {{"allow", UnknownBuildId::kAllow},
                                         {"deny", UnknownBuildId::kDeny}})) {
        policy_.unknown_build_id = *v;
      }
    }
    if (const Field* deny = Find(f, "deny")) {
      ParseEntries(deny->value, "spec.deny", &policy_.deny, false);
    }
    if (const Field* allow = Find(f, "allow")) {
      policy_.has_allow_list = true;
      ParseEntries(allow->value, "spec.allow", &policy_.allow, true);
    }
    if (const Field* deny_from = Find(f, "denyFrom")) {
      ParseListFiles(deny_from->value, "spec.denyFrom", &policy_.deny);
    }
    if (const Field* allow_from = Find(f, "allowFrom")) {
      policy_.has_allow_list = true;
      ParseListFiles(allow_from->value, "spec.allowFrom", &policy_.allow);
    }
    if (const Field* pkgs = Find(f, "denyPackages")) {
      ParsePackageRules(pkgs->value, "spec.denyPackages");
    }
    CheckConflicts();
    if (const Field* selector = Find(f, "selector")) {
      ParseSelector(selector->value);
    }
  }

  // An entry's optional "note": UTF-8 text (errors reported; "" then).
  std::string Note(const Fields& f, absl::string_view item_path) {
    const Field* note = Find(f, "note");
    if (note == nullptr) return "";
    std::string note_path = Join(item_path, "note");
    absl::optional<std::string> v = String(note->value, note_path);
    if (!v.has_value()) return "";
    if (!IsValidUtf8(*v)) {
      Error(note->value, note_path,
            "not valid UTF-8 text (expected UTF-8 without NUL bytes)");
      return "";
    }
    return *std::move(v);
  }

  void ParsePackageRules(const Ref& list, absl::string_view path) {
    if (!ExpectKind(list, path, YNode::Kind::kSequence, "a sequence")) return;
    const std::vector<int>& items = Node(list).children;
    for (size_t i = 0; i < items.size() && !Stop(); ++i) {
      std::string item_path = Index(path, i);
      Ref item = At(items[i]);
      if (!ExpectKind(item, item_path, YNode::Kind::kMap,
                      "a mapping {name: PACKAGE, versions: RANGE, note: "
                      "TEXT}")) {
        continue;
      }
      Fields f;
      CheckFields(item, item_path, {"name", "versions", "note"}, &f);
      PackageRule rule;
      const Field* name = Find(f, "name");
      if (name == nullptr) {
        Error(item, Join(item_path, "name"), "required");
        continue;
      }
      std::string name_path = Join(item_path, "name");
      absl::optional<std::string> n = String(name->value, name_path);
      if (!n.has_value()) continue;
      // Debian package names: lowercase letters, digits, + - . (policy 5.6.1).
      bool valid = n->size() >= 2 && absl::ascii_isalnum(n->front());
      for (char c : *n) {
        valid = valid && (absl::ascii_islower(c) || absl::ascii_isdigit(c) ||
                          c == '+' || c == '-' || c == '.');
      }
      if (!valid) {
        Error(name->value, name_path,
              absl::StrCat(QuoteForMessage(*n),
                           " is not a Debian package name (lowercase "
                           "letters, digits, + - .; at least two characters)"));
        continue;
      }
      rule.name = *n;
      rule.pos = SourcePos{ctx_->file, name->value.line, name->value.column};
      if (const Field* versions = Find(f, "versions")) {
        std::string v_path = Join(item_path, "versions");
        absl::optional<std::string> v = String(versions->value, v_path);
        if (!v.has_value()) continue;
        absl::StatusOr<std::vector<VersionClause>> clauses =
            ParseVersionRange(*v);
        if (!clauses.ok()) {
          Error(versions->value, v_path, clauses.status().message());
          continue;
        }
        rule.clauses = *std::move(clauses);
        rule.versions = *v;
      }
      rule.note = Note(f, item_path);
      policy_.deny_packages.push_back(std::move(rule));
    }
  }

  // An allow entry's "sha256": a list of 64-hex-digit digests.
  std::shared_ptr<const std::vector<std::string>> Pins(
      const Field& field, absl::string_view item_path) {
    std::string path = Join(item_path, "sha256");
    if (!ExpectKind(field.value, path, YNode::Kind::kSequence,
                    "a sequence of sha256 digests (64 hex digits)")) {
      return nullptr;
    }
    auto pins = std::make_shared<std::vector<std::string>>();
    const std::vector<int>& items = Node(field.value).children;
    if (items.empty()) {
      Error(field.value, path,
            "empty: pin at least one sha256, or leave the field out");
      return nullptr;
    }
    for (size_t i = 0; i < items.size(); ++i) {
      std::string pin_path = Index(path, i);
      Ref item = At(items[i]);
      absl::optional<std::string> hex = String(item, pin_path);
      if (!hex.has_value()) return nullptr;
      absl::StatusOr<std::string> raw = ParseSha256Hex(*hex);
      if (!raw.ok()) {
        Error(item, pin_path, raw.status().message());
        return nullptr;
      }
      if (std::find(pins->begin(), pins->end(), *raw) == pins->end()) {
        pins->push_back(*std::move(raw));
      }
    }
    return pins;
  }

  void ParseEntries(const Ref& list, absl::string_view path, BuildIdMap* out,
                    bool allow) {
    if (!ExpectKind(list, path, YNode::Kind::kSequence, "a sequence")) return;
    const std::vector<int>& items = Node(list).children;
    for (size_t i = 0; i < items.size() && !Stop(); ++i) {
      std::string item_path = Index(path, i);
      Ref item = At(items[i]);
      if (!ExpectKind(item, item_path, YNode::Kind::kMap,
                      "a mapping {buildId: HEX, note: TEXT}")) {
        continue;
      }
      Fields f;
      CheckFields(item, item_path, {"buildId", "note", "sha256"}, &f);
      BuildIdEntry entry;
      entry.note = Note(f, item_path);
      if (const Field* pins = Find(f, "sha256")) {
        if (!allow) {
          Error(pins->value, Join(item_path, "sha256"),
                "sha256 pins belong to allow entries (a deny entry matches "
                "every file with its build ID)");
          continue;
        }
        entry.sha256 = Pins(*pins, item_path);
        if (entry.sha256 == nullptr) continue;
      }
      const Field* id = Find(f, "buildId");
      if (id == nullptr) {
        Error(item, Join(item_path, "buildId"), "required");
        continue;
      }
      std::string id_path = Join(item_path, "buildId");
      absl::optional<std::string> hex = String(id->value, id_path);
      if (!hex.has_value()) continue;
      absl::StatusOr<std::string> raw = ParseBuildIdHex(*hex);
      if (!raw.ok()) {
        Error(id->value, id_path, raw.status().message());
        continue;
      }
      if (out->contains(*raw)) continue;  // The first entry wins.
      if (ctx_->shared_file == nullptr) {
        ctx_->shared_file = std::make_shared<const std::string>(ctx_->file);
      }
      entry.file = ctx_->shared_file;
      entry.line = id->value.line;
      entry.column = id->value.column;
      out->emplace(BuildIdKey(*raw), std::move(entry));
    }
  }

  void ParseListFiles(const Ref& list, absl::string_view path,
                      BuildIdMap* out) {
    if (!ExpectKind(list, path, YNode::Kind::kSequence, "a sequence")) return;
    const std::vector<int>& items = Node(list).children;
    for (size_t i = 0; i < items.size() && !Stop(); ++i) {
      std::string item_path = Index(path, i);
      Ref item = At(items[i]);
      absl::optional<std::string> file = String(item, item_path);
      if (!file.has_value()) continue;
      if (file->empty()) {
        Error(item, item_path, "expected a file path, got an empty string");
        continue;
      }
      if (file->find('\0') != std::string::npos) {
        Error(item, item_path,
              absl::StrCat(QuoteForMessage(*file),
                           " is not a file path (it contains a NUL byte)"));
        continue;
      }
      // List files live in the policy directory tree: a policy cannot
      // make the agent (root) read /etc/shadow and echo it as errors.
      if (file->front() == '/') {
        Error(item, item_path,
              absl::StrCat(QuoteForMessage(*file),
                           ": list files are named relative to the policy "
                           "directory, not by absolute path"));
        continue;
      }
      bool escapes = false;
      for (absl::string_view part : absl::StrSplit(*file, '/')) {
        if (part == "..") escapes = true;
      }
      if (escapes) {
        Error(item, item_path,
              absl::StrCat(QuoteForMessage(*file),
                           ": a list file path may not contain \"..\""));
        continue;
      }
      std::string resolved = *file;
      if (!ctx_->base_dir.empty()) {
        resolved =
            absl::StrCat(ctx_->base_dir,
                         absl::EndsWith(ctx_->base_dir, "/") ? "" : "/", *file);
        // Symlinks may point within the tree (a ConfigMap's ..data), not
        // out of it.
        char real_base[PATH_MAX], real_file[PATH_MAX];
        if (realpath(ctx_->base_dir.c_str(), real_base) != nullptr &&
            realpath(resolved.c_str(), real_file) != nullptr &&
            !absl::StartsWith(real_file, absl::StrCat(real_base, "/"))) {
          Error(item, item_path,
                absl::StrCat(QuoteForMessage(*file),
                             " leads out of the policy directory (to ",
                             QuoteForMessage(real_file), ")"));
          continue;
        }
      }
      absl::StatusOr<std::string> text =
          ReadSmallFile(resolved, kMaxListFileBytes);
      if (!text.ok()) {
        Error(item, item_path, text.status().message());
        continue;
      }
      std::vector<PolicyError> errors;
      ParseBuildIdList(*text, resolved, out, &errors,
                       &ctx_->result->errors_not_shown);
      for (PolicyError& e : errors) {
        AddError(std::move(e.pos), std::move(e.message));
      }
    }
  }

  // A build ID both denied and allowed: reported at the allow entry.
  void CheckConflicts() {
    // (ID, its allow entry), in the order they were written.
    std::vector<std::pair<absl::string_view, SourcePos>> conflicts;
    const BuildIdMap& small = policy_.deny.size() < policy_.allow.size()
                                  ? policy_.deny
                                  : policy_.allow;
    const BuildIdMap& large =
        &small == &policy_.deny ? policy_.allow : policy_.deny;
    for (const auto& [id, entry] : small) {
      if (large.contains(id.view())) {
        auto allowed = policy_.allow.find(id.view());
        conflicts.emplace_back(allowed->first.view(), allowed->second.pos());
      }
    }
    std::sort(conflicts.begin(), conflicts.end(),
              [](const auto& a, const auto& b) {
                return std::tie(a.second.file, a.second.line, a.second.column) <
                       std::tie(b.second.file, b.second.line, b.second.column);
              });
    for (const auto& [id, allowed] : conflicts) {
      if (Stop()) return;
      const BuildIdEntry& denied = policy_.deny.find(id)->second;
      AddError(allowed,
               absl::StrCat("spec.allow: build ID ", BuildIdToHex(id),
                            " is also denied (at ", PosText(denied.pos()),
                            "); a policy cannot both deny and allow a build "
                            "ID"));
    }
  }

  // A sequence of strings, each checked by `valid`.
  void ParseNames(const Ref& list, absl::string_view path,
                  bool (*valid)(absl::string_view), absl::string_view noun,
                  absl::string_view expected, std::vector<std::string>* out) {
    if (!ExpectKind(list, path, YNode::Kind::kSequence, "a sequence")) return;
    const std::vector<int>& items = Node(list).children;
    for (size_t i = 0; i < items.size() && !Stop(); ++i) {
      std::string item_path = Index(path, i);
      Ref item = At(items[i]);
      absl::optional<std::string> v = String(item, item_path);
      if (!v.has_value()) continue;
      if (!valid(*v)) {
        Error(item, item_path,
              absl::StrCat(QuoteForMessage(*v), " is not ", noun, " (",
                           expected, ")"));
        continue;
      }
      out->push_back(std::move(*v));
    }
  }

  void ParseSelector(const Ref& sel) {
    constexpr absl::string_view kPath = "spec.selector";
    if (!ExpectKind(sel, kPath, YNode::Kind::kMap, "a mapping")) return;
    Fields f;
    CheckFields(
        sel, kPath,
        {"namespaces", "matchLabels", "matchExpressions", "containers", "host"},
        &f);
    Selector& s = policy_.selector;
    if (const Field* ns = Find(f, "namespaces")) {
      ParseNames(ns->value, "spec.selector.namespaces", IsDnsLabel,
                 "a namespace name", kDnsLabelExpected, &s.namespaces);
    }
    if (const Field* c = Find(f, "containers")) {
      ParseNames(c->value, "spec.selector.containers", IsDnsLabel,
                 "a container name", kDnsLabelExpected, &s.containers);
    }
    if (const Field* labels = Find(f, "matchLabels")) {
      ParseMatchLabels(labels->value);
    }
    if (const Field* exprs = Find(f, "matchExpressions")) {
      ParseMatchExpressions(exprs->value);
    }
    if (const Field* host = Find(f, "host")) {
      absl::optional<bool> v = Bool(host->value, "spec.selector.host");
      if (v.has_value()) {
        s.host = *v;
        // Judged on what was written, valid or not.
        bool pod_fields = false;
        for (absl::string_view name :
             {"namespaces", "matchLabels", "matchExpressions", "containers"}) {
          const Field* field = Find(f, name);
          if (field != nullptr && !Node(field->value).children.empty()) {
            pod_fields = true;
          }
        }
        if (*v && pod_fields) {
          Error(host->value,
                "spec.selector.host: true cannot be combined with "
                "namespaces/matchLabels/matchExpressions/containers (host "
                "processes have no pod)");
        }
      }
    }
  }

  void ParseMatchLabels(const Ref& map) {
    constexpr absl::string_view kPath = "spec.selector.matchLabels";
    if (!ExpectKind(map, kPath, YNode::Kind::kMap, "a mapping")) return;
    const std::vector<int>& c = Node(map).children;
    absl::flat_hash_map<std::string, Ref> seen;
    for (size_t i = 0; i + 1 < c.size() && !Stop(); i += 2) {
      Ref key = At(c[i]);
      Ref value = At(c[i + 1]);
      if (Node(value).kind == YNode::Kind::kNull) {
        value.line = key.line;
        value.column = key.column;
      }
      absl::optional<std::string> k = String(key, kPath);
      if (!k.has_value()) continue;
      if (!IsLabelKey(*k)) {
        Error(key, kPath,
              absl::StrCat(QuoteForMessage(*k), " is not a label key (",
                           kLabelKeyExpected, ")"));
        continue;
      }
      std::string value_path =
          absl::StrCat(kPath, "[", QuoteForMessage(*k), "]");
      if (auto it = seen.find(*k); it != seen.end()) {
        Error(key, value_path,
              absl::StrCat("duplicate key (first at ",
                           PosText(SourcePos{ctx_->file, it->second.line,
                                             it->second.column}),
                           ")"));
        continue;
      }
      seen.emplace(*k, key);
      absl::optional<std::string> v = String(value, value_path);
      if (!v.has_value()) continue;
      if (!IsLabelValue(*v)) {
        Error(value, value_path,
              absl::StrCat(QuoteForMessage(*v), " is not a label value (",
                           kLabelValueExpected, ")"));
        continue;
      }
      policy_.selector.match_labels.emplace(std::move(*k), std::move(*v));
    }
  }

  void ParseMatchExpressions(const Ref& list) {
    constexpr absl::string_view kPath = "spec.selector.matchExpressions";
    if (!ExpectKind(list, kPath, YNode::Kind::kSequence, "a sequence")) return;
    const std::vector<int>& items = Node(list).children;
    for (size_t i = 0; i < items.size() && !Stop(); ++i) {
      std::string item_path = Index(kPath, i);
      Ref item = At(items[i]);
      if (!ExpectKind(item, item_path, YNode::Kind::kMap,
                      "a mapping {key, operator, values}")) {
        continue;
      }
      Fields f;
      CheckFields(item, item_path, {"key", "operator", "values"}, &f);
      LabelRequirement r;
      bool ok = true;
      const Field* key = Find(f, "key");
      std::string key_path = Join(item_path, "key");
      if (key == nullptr) {
        Error(item, key_path, "required");
        ok = false;
      } else if (absl::optional<std::string> k = String(key->value, key_path)) {
        if (IsLabelKey(*k)) {
          r.key = std::move(*k);
        } else {
          Error(key->value, key_path,
                absl::StrCat(QuoteForMessage(*k), " is not a label key (",
                             kLabelKeyExpected, ")"));
          ok = false;
        }
      } else {
        ok = false;
      }
      const Field* op = Find(f, "operator");
      std::string op_path = Join(item_path, "operator");
      absl::optional<LabelRequirement::Op> parsed_op;
      if (op == nullptr) {
        Error(item, op_path,
              "required (expected In, NotIn, Exists or DoesNotExist)");
        ok = false;
      } else {
        parsed_op = Enum<LabelRequirement::Op>(
            op->value, op_path, "an operator",
            {{"In", LabelRequirement::Op::kIn},
             {"NotIn", LabelRequirement::Op::kNotIn},
             {"Exists", LabelRequirement::Op::kExists},
             {"DoesNotExist", LabelRequirement::Op::kDoesNotExist}});
        if (!parsed_op.has_value()) ok = false;
      }
      const Field* values = Find(f, "values");
      std::string values_path = Join(item_path, "values");
      bool values_ok = true;
      if (values != nullptr) {
        size_t before = doc_errors_;
        ParseNames(values->value, values_path, IsLabelValue, "a label value",
                   kLabelValueExpected, &r.values);
        values_ok = doc_errors_ == before;
        if (!values_ok) ok = false;
      }
      if (parsed_op.has_value()) {
        r.op = *parsed_op;
        const char* op_name = Node(op->value).value.c_str();
        bool wants_values = r.op == LabelRequirement::Op::kIn ||
                            r.op == LabelRequirement::Op::kNotIn;
        if (wants_values && values == nullptr) {
          Error(item, values_path,
                absl::StrCat("required for operator ", op_name,
                             " (expected a non-empty list of label values)"));
          ok = false;
        } else if (wants_values && values_ok && r.values.empty()) {
          Error(values->value, values_path,
                absl::StrCat("operator ", op_name,
                             " needs at least one value (expected a non-empty "
                             "list)"));
          ok = false;
        } else if (!wants_values && values != nullptr &&
                   !Node(values->value).children.empty()) {
          Error(values->value, values_path,
                absl::StrCat("operator ", op_name,
                             " takes no values (expected none)"));
          ok = false;
        }
      }
      if (ok) policy_.selector.match_expressions.push_back(std::move(r));
    }
  }

  const std::vector<YNode>& nodes_;
  FileContext* ctx_;
  Policy policy_;
  size_t doc_errors_ = 0;
};

// yaml-cpp's messages may quote input bytes: keep them printable ASCII.
std::string Printable(absl::string_view s) {
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

void AddFileError(ParseResult* result, const std::string& file,
                  const YAML::Mark& mark, std::string message) {
  SourcePos pos{file, 0, 0};
  if (!mark.is_null() && mark.line >= 0 && mark.column >= 0) {
    pos.line = mark.line + 1;
    pos.column = mark.column + 1;
  }
  result->errors.push_back(PolicyError{std::move(pos), std::move(message)});
}

}  // namespace

std::string PolicyError::ToString() const {
  return absl::StrCat(PosText(pos), ": ", message);
}

namespace {

// A Debian version (policy 5.6.12): [epoch:]upstream[-revision].
bool ValidDebianVersion(absl::string_view v) {
  if (v.empty()) return false;
  const size_t colon = v.find(':');
  if (colon != absl::string_view::npos) {
    const absl::string_view epoch = v.substr(0, colon);
    if (epoch.empty()) return false;
    for (char c : epoch) {
      if (!absl::ascii_isdigit(c)) return false;
    }
    v.remove_prefix(colon + 1);
  }
  absl::string_view upstream = v, revision;
  const size_t dash = v.rfind('-');
  if (dash != absl::string_view::npos) {
    upstream = v.substr(0, dash);
    revision = v.substr(dash + 1);
    if (revision.empty()) return false;
    for (char c : revision) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '+' && c != '~') {
        return false;
      }
    }
  }
  if (upstream.empty() || !absl::ascii_isdigit(upstream.front())) return false;
  for (char c : upstream) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '+' && c != '~' &&
        c != '-' && !(c == ':' && colon != absl::string_view::npos)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<VersionClause>> ParseVersionRange(
    absl::string_view text) {
  std::vector<VersionClause> out;
  if (absl::StripAsciiWhitespace(text).empty()) return out;
  for (absl::string_view clause : absl::StrSplit(text, ',')) {
    clause = absl::StripAsciiWhitespace(clause);
    VersionClause c;
    static constexpr std::pair<absl::string_view, VersionClause::Op> kOps[] = {
        {"<<", VersionClause::Op::kLt},
        {"<=", VersionClause::Op::kLe},
        {">>", VersionClause::Op::kGt},
        {">=", VersionClause::Op::kGe},
        {"=", VersionClause::Op::kEq}};
    bool found = false;
    for (const auto& [op, value] : kOps) {
      if (absl::ConsumePrefix(&clause, op)) {
        c.op = value;
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          QuoteForMessage(clause),
          " has no relation (expected << <= = >= >> and a Debian version, "
          "clauses separated by commas)"));
    }
    clause = absl::StripAsciiWhitespace(clause);
    if (!ValidDebianVersion(clause)) {
      return absl::InvalidArgumentError(absl::StrCat(
          QuoteForMessage(clause),
          " is not a Debian version ([epoch:]upstream[-revision], the "
          "upstream version starting with a digit)"));
    }
    c.version = std::string(clause);
    out.push_back(std::move(c));
  }
  return out;
}

std::string QuoteForMessage(absl::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  size_t n = std::min(s.size(), kMax);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out.push_back(static_cast<char>(c));
        } else {
          constexpr char kHex[] = "0123456789abcdef";
          out += "\\x";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        }
    }
  }
  out += "\"";
  if (s.size() > kMax) out += "...";
  return out;
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Hex of an even length -> raw bytes; nullopt at a digit that is not hex.
static absl::optional<std::string> DecodeHex(absl::string_view hex) {
  std::string raw(hex.size() / 2, '\0');
  for (size_t i = 0; i < raw.size(); ++i) {
    int hi = HexDigit(hex[2 * i]);
    int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return absl::nullopt;
    raw[i] = static_cast<char>((hi << 4) | lo);
  }
  return raw;
}

absl::StatusOr<std::string> ParseBuildIdHex(absl::string_view hex) {
  absl::optional<std::string> raw;
  if (hex.size() >= 2 && hex.size() <= 40 && hex.size() % 2 == 0) {
    raw = DecodeHex(hex);
  }
  if (!raw.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        QuoteForMessage(hex), " is not a build ID (", kBuildIdExpected, ")"));
  }
  return *std::move(raw);
}

absl::StatusOr<std::string> ParseSha256Hex(absl::string_view hex) {
  absl::optional<std::string> raw;
  if (hex.size() == 64) raw = DecodeHex(hex);
  if (!raw.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteForMessage(hex),
                     " is not a sha256 digest (expected 64 hex digits, as "
                     "sha256sum prints)"));
  }
  return *std::move(raw);
}

std::string BuildIdToHex(absl::string_view raw) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (char ch : raw) {
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

void ParsePolicyText(absl::string_view text, const std::string& file,
                     const std::string& base_dir, ParseResult* result) {
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    TreeBuilder builder(text.size());
    FileContext ctx{file, base_dir, result};
    int last_start = -1;
    while (!ctx.gave_up) {
      builder.Reset();
      try {
        if (!parser.HandleNextDocument(builder)) break;
      } catch (const TooManyNodes& e) {
        AddFileError(result, file, e.mark,
                     "YAML error: the parser does not make progress");
        break;
      } catch (const YAML::DeepRecursion& e) {
        AddFileError(result, file, e.mark,
                     "YAML error: nested too deeply (expected a policy, at "
                     "most a few levels deep)");
        break;
      } catch (const YAML::Exception& e) {
        AddFileError(result, file, e.mark,
                     absl::StrCat("YAML syntax error: ", Printable(e.msg)));
        break;
      }
      // yaml-cpp 0.7 returns the same empty document forever on a stray
      // flow indicator (",": jbeder/yaml-cpp#1040): every document must
      // start past the previous one.
      const YAML::Mark& start = builder.start();
      if (start.pos <= last_start) {
        std::string message = "YAML syntax error: unexpected input";
        if (start.pos >= 0 && static_cast<size_t>(start.pos) < text.size()) {
          absl::StrAppend(&message, " ",
                          QuoteForMessage(text.substr(start.pos, 1)));
        }
        AddFileError(result, file, start, std::move(message));
        break;
      }
      last_start = start.pos;
      int root = builder.root();
      if (root < 0 || builder.nodes()[root].kind == YNode::Kind::kNull) {
        continue;  // An empty document.
      }
      DocumentParser(builder.nodes(), &ctx).Run(root);
    }
  } catch (const std::exception& e) {
    // Not expected (e.g. std::bad_alloc): reported, never thrown.
    result->errors.push_back(PolicyError{
        SourcePos{file, 0, 0}, absl::StrCat("internal error: ", e.what())});
  }
}

ParseResult ParsePolicyDir(const std::string& dir) {
  ParseResult result;
  try {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      char buf[256];
      result.errors.push_back(
          PolicyError{SourcePos{dir, 0, 0},
                      absl::StrCat("cannot read the policy directory: ",
                                   strerror_r(errno, buf, sizeof(buf)))});
      return result;
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(d)) {
      absl::string_view name = e->d_name;
      if (absl::StartsWith(name, ".")) continue;
      if (!absl::EndsWith(name, ".yaml") && !absl::EndsWith(name, ".yml")) {
        continue;
      }
      names.emplace_back(name);
    }
    int read_errno = errno;
    closedir(d);
    if (read_errno != 0) {
      char buf[256];
      result.errors.push_back(
          PolicyError{SourcePos{dir, 0, 0},
                      absl::StrCat("cannot read the policy directory: ",
                                   strerror_r(read_errno, buf, sizeof(buf)))});
      return result;
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string path =
          absl::StrCat(dir, absl::EndsWith(dir, "/") ? "" : "/", name);
      struct stat st;
      if (stat(path.c_str(), &st) != 0) {
        char buf[256];
        result.errors.push_back(
            PolicyError{SourcePos{path, 0, 0},
                        absl::StrCat("cannot read the policy file: ",
                                     strerror_r(errno, buf, sizeof(buf)))});
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;  // e.g. a directory named x.yaml
      absl::StatusOr<std::string> text =
          ReadSmallFile(path, kMaxPolicyFileBytes);
      if (!text.ok()) {
        result.errors.push_back(PolicyError{
            SourcePos{path, 0, 0}, std::string(text.status().message())});
        continue;
      }
      ParsePolicyText(*text, path, dir, &result);
    }
    std::sort(result.set.policies.begin(), result.set.policies.end(),
              [](const Policy& a, const Policy& b) { return a.name < b.name; });
    // The kernel judges with one bit per policy.
    if (result.set.policies.size() > EM_MAX_POLICIES) {
      result.errors.push_back(PolicyError{
          SourcePos{dir, 0, 0},
          absl::StrCat(
              result.set.policies.size(), " policies; at most ",
              EM_MAX_POLICIES,
              " can be loaded at once (merge lists into fewer "
              "policies, or move IDs into denyFrom/allowFrom files)")});
    }
  } catch (const std::exception& e) {
    result.errors.push_back(PolicyError{
        SourcePos{dir, 0, 0}, absl::StrCat("internal error: ", e.what())});
  }
  return result;
}

absl::StatusOr<PolicySet> LoadPolicyDir(const std::string& dir) {
  ParseResult result = ParsePolicyDir(dir);
  if (!result.errors.empty()) {
    std::vector<std::string> lines;
    lines.reserve(result.errors.size());
    for (const PolicyError& e : result.errors) lines.push_back(e.ToString());
    return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  }
  return std::move(result.set);
}

}  // namespace execmon
