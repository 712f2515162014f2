// Tests of policy parsing and validation (agent/policy/parser.h), build-ID
// list files (agent/policy/list_file.h) and the lint report
// (agent/policy/lint.h). Every error message is asserted with its
// file:line:col.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "agent/policy/lint.h"
#include "agent/policy/list_file.h"
#include "agent/policy/parser.h"
#include "agent/policy/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace execmon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

namespace fs = std::filesystem;

// The first five lines of a valid policy named "p"; spec fields follow on
// line 6, indented by two.
constexpr absl::string_view kHead =
    "apiVersion: execmon.io/v1alpha1\n"
    "kind: ExecPolicy\n"
    "metadata:\n"
    "  name: p\n"
    "spec:\n";

std::string Doc(absl::string_view name, absl::string_view spec_lines) {
  return absl::StrCat("apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n",
                      "metadata:\n  name: ", name, "\nspec:\n", spec_lines);
}

ParseResult Parse(absl::string_view text, const std::string& base_dir = "") {
  ParseResult r;
  ParsePolicyText(text, "p.yaml", base_dir, &r);
  return r;
}

std::vector<std::string> Errors(const std::vector<PolicyError>& errors) {
  std::vector<std::string> out;
  for (const PolicyError& e : errors) out.push_back(e.ToString());
  return out;
}

std::vector<std::string> Errors(const ParseResult& r) {
  return Errors(r.errors);
}

std::string Raw(absl::string_view hex) {
  absl::StatusOr<std::string> raw = ParseBuildIdHex(hex);
  EXPECT_TRUE(raw.ok()) << raw.status();
  return raw.ok() ? *raw : std::string();
}

std::vector<std::string> Names(const PolicySet& set) {
  std::vector<std::string> out;
  for (const Policy& p : set.policies) out.push_back(p.name);
  return out;
}

// A fresh directory, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/policy_test.XXXXXX";
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Write(absl::string_view name, absl::string_view content) const {
    std::string p = absl::StrCat(path_, "/", name);
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream f(p, std::ios::binary);
    f << content;
    EXPECT_TRUE(f.good()) << p;
    return p;
  }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// Build IDs.

TEST(ParseBuildIdHexTest, AcceptsEvenHexOf2To40DigitsInEitherCase) {
  EXPECT_EQ(*ParseBuildIdHex("ab"), std::string("\xab", 1));
  EXPECT_EQ(*ParseBuildIdHex("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(*ParseBuildIdHex("AbCd"), *ParseBuildIdHex("abcd"));
  std::string forty(40, 'f');
  ASSERT_TRUE(ParseBuildIdHex(forty).ok());
  EXPECT_EQ(*ParseBuildIdHex(forty), std::string(20, '\xff'));
}

TEST(ParseBuildIdHexTest, RejectsEverythingElseWithOneMessage) {
  for (absl::string_view bad : {"", "a", "abc", "xyz0", "0x12", "ab cd", "g0",
                                "0123456789012345678901234567890123456789ab"}) {
    absl::StatusOr<std::string> r = ParseBuildIdHex(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              absl::StrCat("\"", bad,
                           "\" is not a build ID (expected 2 to 40 hex "
                           "digits, an even number)"));
  }
}

TEST(BuildIdToHexTest, LowercaseRoundTrip) {
  EXPECT_EQ(BuildIdToHex(Raw("00ABcd7F")), "00abcd7f");
  EXPECT_EQ(BuildIdToHex(""), "");
}

TEST(PolicyErrorTest, ToStringWithAndWithoutLine) {
  EXPECT_EQ((PolicyError{SourcePos{"f.yaml", 3, 9}, "m"}).ToString(),
            "f.yaml:3:9: m");
  EXPECT_EQ((PolicyError{SourcePos{"/dir", 0, 0}, "m"}).ToString(), "/dir: m");
}

TEST(QuoteForMessageTest, EscapesAndTruncates) {
  EXPECT_EQ(QuoteForMessage("a\"b\\c\n\x01\xc3\xa9"),
            "\"a\\\"b\\\\c\\n\\x01\\xc3\\xa9\"");
  EXPECT_EQ(QuoteForMessage(std::string(70, 'x')),
            absl::StrCat("\"", std::string(64, 'x'), "\"..."));
}

TEST(IsValidUtf8Test, Cases) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

// ---------------------------------------------------------------------------
// Valid policies.

TEST(ParsePolicyTextTest, MinimalPolicyGetsEveryDefault) {
  ParseResult r = Parse(absl::StrCat(kHead, "  {}\n"));
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  const Policy& p = r.set.policies[0];
  EXPECT_EQ(p.name, "p");
  EXPECT_EQ(p.pos.file, "p.yaml");
  EXPECT_EQ(p.pos.line, 1);
  EXPECT_EQ(p.pos.column, 1);
  EXPECT_EQ(p.mode, PolicyMode::kAudit);
  EXPECT_EQ(p.action, PolicyAction::kAlert);
  EXPECT_EQ(p.unknown_build_id, UnknownBuildId::kAllow);
  EXPECT_FALSE(p.has_allow_list);
  EXPECT_TRUE(p.deny.empty());
  EXPECT_TRUE(p.allow.empty());
  EXPECT_TRUE(p.selector.Empty());
  EXPECT_FALSE(p.selector.host.has_value());
  ASSERT_TRUE(r.names.contains("p"));
  EXPECT_EQ(r.names.at("p").line, 4);
  EXPECT_EQ(r.names.at("p").column, 9);
}

TEST(ParsePolicyTextTest, FullPolicy) {
  // Lines 1-5: kHead.
  ParseResult r = Parse(absl::StrCat(kHead, R"(  mode: enforce
  action: kill
  unknownBuildId: deny
  deny:
  - buildId: ABCDEF01
    note: CVE-2023-38545
  - {buildId: "0011"}
  - buildId: abcdef01
    note: second
  allow: [{buildId: 99, note: ok}]
  selector:
    namespaces: [prod, kube-system]
    matchLabels: {app: web, example.com/tier: ""}
    matchExpressions:
    - {key: tier, operator: In, values: [front, back]}
    - {key: env, operator: NotIn, values: [dev]}
    - {key: canary, operator: Exists}
    - {key: legacy, operator: DoesNotExist, values: []}
    containers: [nginx]
    host: false
)"));
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  const Policy& p = r.set.policies[0];
  EXPECT_EQ(p.mode, PolicyMode::kEnforce);
  EXPECT_EQ(p.action, PolicyAction::kKill);
  EXPECT_EQ(p.unknown_build_id, UnknownBuildId::kDeny);
  // Duplicates in one list: the first entry wins.
  ASSERT_THAT(p.deny, SizeIs(2));
  const BuildIdEntry& curl = p.deny.at(std::string("\xab\xcd\xef\x01", 4));
  EXPECT_EQ(curl.note, "CVE-2023-38545");
  EXPECT_EQ(curl.pos().file, "p.yaml");
  EXPECT_EQ(curl.pos().line, 10);
  EXPECT_EQ(curl.pos().column, 14);
  EXPECT_EQ(p.deny.at(std::string("\x00\x11", 2)).note, "");
  EXPECT_EQ(p.deny.at(std::string("\x00\x11", 2)).pos().line, 12);
  EXPECT_TRUE(p.has_allow_list);
  ASSERT_THAT(p.allow, SizeIs(1));
  EXPECT_EQ(p.allow.at("\x99").note, "ok");
  const Selector& s = p.selector;
  EXPECT_THAT(s.namespaces, ElementsAre("prod", "kube-system"));
  EXPECT_THAT(s.match_labels,
              UnorderedElementsAre(std::make_pair("app", "web"),
                                   std::make_pair("example.com/tier", "")));
  ASSERT_THAT(s.match_expressions, SizeIs(4));
  EXPECT_EQ(s.match_expressions[0].key, "tier");
  EXPECT_EQ(s.match_expressions[0].op, LabelRequirement::Op::kIn);
  EXPECT_THAT(s.match_expressions[0].values, ElementsAre("front", "back"));
  EXPECT_EQ(s.match_expressions[1].op, LabelRequirement::Op::kNotIn);
  EXPECT_THAT(s.match_expressions[1].values, ElementsAre("dev"));
  EXPECT_EQ(s.match_expressions[2].op, LabelRequirement::Op::kExists);
  EXPECT_THAT(s.match_expressions[2].values, IsEmpty());
  EXPECT_EQ(s.match_expressions[3].op, LabelRequirement::Op::kDoesNotExist);
  EXPECT_THAT(s.containers, ElementsAre("nginx"));
  ASSERT_TRUE(s.host.has_value());
  EXPECT_FALSE(*s.host);
}

TEST(ParsePolicyTextTest, EmptyAllowListMakesAnAllowList) {
  ParseResult r = Parse(absl::StrCat(kHead, "  allow: []\n"));
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  EXPECT_TRUE(r.set.policies[0].has_allow_list);
  EXPECT_TRUE(r.set.policies[0].allow.empty());
}

TEST(ParsePolicyTextTest, EnumsAndBooleans) {
  ParseResult r = Parse(absl::StrCat(kHead,
                                     "  mode: enforce\n"
                                     "  action: alert\n"
                                     "  unknownBuildId: allow\n"
                                     "  selector: {host: TRUE}\n"));
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  EXPECT_EQ(r.set.policies[0].mode, PolicyMode::kEnforce);
  EXPECT_EQ(r.set.policies[0].action, PolicyAction::kAlert);
  EXPECT_EQ(r.set.policies[0].unknown_build_id, UnknownBuildId::kAllow);
  EXPECT_EQ(r.set.policies[0].selector.host, absl::optional<bool>(true));
}

TEST(ParsePolicyTextTest, MetadataLabelsAndAnnotationsAreAccepted) {
  ParseResult r = Parse(
      "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
      "metadata: {name: a.b-c, labels: {team: sec}, annotations: {x: y}}\n"
      "spec: {}\n");
  ASSERT_THAT(Errors(r), IsEmpty());
  EXPECT_THAT(Names(r.set), ElementsAre("a.b-c"));
}

TEST(ParsePolicyTextTest, AliasesAreFollowed) {
  ParseResult r = Parse(
      absl::StrCat(kHead, "  deny: &ids [{buildId: abcd, note: shared}]\n",
                   "  selector: {namespaces: &ns [prod], containers: *ns}\n"));
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  EXPECT_THAT(r.set.policies[0].deny, SizeIs(1));
  EXPECT_THAT(r.set.policies[0].selector.containers, ElementsAre("prod"));
}

TEST(ParsePolicyTextTest, MultipleDocumentsSkippingEmptyOnes) {
  std::string text = absl::StrCat("---\n",                          // 1
                                  "# only a comment\n",             // 2
                                  "---\n",                          // 3
                                  Doc("one", "  {}\n"),             // 4-9
                                  "---\n",                          // 10
                                  "~\n",                            // 11
                                  "---\n",                          // 12
                                  Doc("two", "  mode: enforce\n"),  // 13-18
                                  "...\n");
  ParseResult r = Parse(text);
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(Names(r.set), ElementsAre("one", "two"));
  EXPECT_EQ(r.set.policies[0].pos.line, 4);
  EXPECT_EQ(r.set.policies[1].pos.line, 13);
  EXPECT_EQ(r.set.policies[1].mode, PolicyMode::kEnforce);
}

TEST(ParsePolicyTextTest, EmptyTextHasNoPoliciesAndNoErrors) {
  for (absl::string_view text : {"", "\n\n", "# nothing\n", "---\n", "~\n"}) {
    ParseResult r = Parse(text);
    EXPECT_THAT(Errors(r), IsEmpty()) << text;
    EXPECT_THAT(r.set.policies, IsEmpty()) << text;
  }
}

TEST(ParsePolicyTextTest, AnInvalidDocumentDoesNotDropTheOthers) {
  std::string text = absl::StrCat(Doc("good", "  {}\n"), "---\n",
                                  Doc("bad", "  mode: block\n"), "---\n",
                                  Doc("also-good", "  {}\n"));
  ParseResult r = Parse(text);
  EXPECT_THAT(Errors(r),
              ElementsAre(HasSubstr("p.yaml:13:9: spec.mode: \"block\" is "
                                    "not a mode (expected audit or enforce)")));
  EXPECT_THAT(Names(r.set), ElementsAre("good", "also-good"));
  EXPECT_TRUE(r.names.contains("bad"));
}

TEST(ParsePolicyTextTest, DuplicateNameInOneFile) {
  ParseResult r =
      Parse(absl::StrCat(Doc("x", "  {}\n"), "---\n", Doc("x", "  {}\n")));
  EXPECT_THAT(Errors(r), ElementsAre("p.yaml:11:9: metadata.name: \"x\" is "
                                     "already defined at p.yaml:4:9"));
  EXPECT_THAT(Names(r.set), ElementsAre("x"));
}

TEST(ParsePolicyTextTest, DuplicateNameAcrossCallsIntoOneResult) {
  ParseResult r;
  ParsePolicyText(Doc("x", "  {}\n"), "other.yaml", "", &r);
  ParsePolicyText(absl::StrCat("\n", Doc("x", "  {}\n")), "this.yaml", "", &r);
  EXPECT_THAT(Errors(r), ElementsAre("this.yaml:5:9: metadata.name: \"x\" is "
                                     "already defined at other.yaml:4:9"));
  EXPECT_THAT(r.set.policies, SizeIs(1));
}

// ---------------------------------------------------------------------------
// Errors: each case is a document and the exact errors it must produce.

struct ErrorCase {
  std::string name;
  std::string text;
  std::vector<std::string> errors;  // full "file:line:col: message"
};

std::vector<ErrorCase> ErrorCases() {
  const std::string bid =
      "is not a build ID (expected 2 to 40 hex digits, an even number)";
  const std::string label =
      "(expected a DNS-1123 label: lowercase letters, digits and '-', "
      "starting and ending with a letter or digit, at most 63 characters)";
  const std::string subdomain =
      "(expected a DNS-1123 subdomain: lowercase letters, digits, '-' and "
      "'.', each dot-separated part starting and ending with a letter or "
      "digit, at most 253 characters)";
  const std::string key =
      "(expected an optional DNS-1123 subdomain prefix and '/', then a name "
      "of at most 63 letters, digits, '-', '_' and '.', starting and ending "
      "with a letter or digit)";
  const std::string value =
      "(expected at most 63 letters, digits, '-', '_' and '.', starting and "
      "ending with a letter or digit, or empty)";
  const std::string h(kHead);
  return {
      {"BadMode",
       h + "  mode: block\n",
       {"p.yaml:6:9: spec.mode: \"block\" is not a mode (expected audit or "
        "enforce)"}},
      {"BadAction",
       h + "  action: explode\n",
       {"p.yaml:6:11: spec.action: \"explode\" is not an action (expected "
        "alert, kill or block)"}},
      {"BlockWithoutEnforce",
       h + "  action: block\n",
       {"p.yaml:6:11: spec.action: block requires spec.mode: enforce"}},
      {"PinOnDenyEntry",
       h + "  deny: [{buildId: ab, sha256: [" + std::string(64, 'a') + "]}]\n",
       {"p.yaml:6:32: spec.deny[0].sha256: sha256 pins belong to allow "
        "entries (a deny entry matches every file with its build ID)"}},
      {"PinNotADigest",
       h + "  allow: [{buildId: ab, sha256: [abcd]}]\n",
       {"p.yaml:6:34: spec.allow[0].sha256[0]: \"abcd\" is not a sha256 "
        "digest (expected 64 hex digits, as sha256sum prints)"}},
      {"PinsEmpty",
       h + "  allow: [{buildId: ab, sha256: []}]\n",
       {"p.yaml:6:33: spec.allow[0].sha256: empty: pin at least one sha256, "
        "or leave the field out"}},
      {"KillWithoutEnforce",
       h + "  action: kill\n",
       {"p.yaml:6:11: spec.action: kill requires spec.mode: enforce"}},
      {"KillWithAudit",
       h + "  mode: audit\n  action: kill\n",
       {"p.yaml:7:11: spec.action: kill requires spec.mode: enforce"}},
      {"BadUnknownBuildId",
       h + "  unknownBuildId: maybe\n",
       {"p.yaml:6:19: spec.unknownBuildId: \"maybe\" is not a valid choice "
        "(expected allow or deny)"}},
      {"BadBuildIdThirdEntry",
       h + "  deny:\n  - buildId: ab\n  - buildId: cd\n  - buildId: xyz\n",
       {"p.yaml:9:14: spec.deny[2].buildId: \"xyz\" " + bid}},
      {"OddBuildId",
       h + "  allow: [{buildId: abc}]\n",
       {"p.yaml:6:21: spec.allow[0].buildId: \"abc\" " + bid}},
      {"LongBuildId",
       h + "  deny: [{buildId: " + std::string(42, 'a') + "}]\n",
       {"p.yaml:6:20: spec.deny[0].buildId: \"" + std::string(42, 'a') + "\" " +
        bid}},
      {"EntryUnknownField",
       h + "  deny:\n  - buildid: ab\n",
       {"p.yaml:7:5: spec.deny[0]: unknown field \"buildid\" (expected "
        "buildId, note, sha256)",
        "p.yaml:7:5: spec.deny[0].buildId: required"}},
      {"EntryNotAMapping",
       h + "  deny: [abcd]\n",
       {"p.yaml:6:10: spec.deny[0]: expected a mapping {buildId: HEX, note: "
        "TEXT}, got a scalar (\"abcd\")"}},
      {"NoteNotAString",
       h + "  deny: [{buildId: ab, note: [x]}]\n",
       {"p.yaml:6:30: spec.deny[0].note: expected a string, got a sequence"}},
      {"NoteNotUtf8",
       h + "  deny: [{buildId: ab, note: \"a\\0b\"}]\n",
       {"p.yaml:6:30: spec.deny[0].note: not valid UTF-8 text (expected "
        "UTF-8 without NUL bytes)"}},
      {"PackageNoteNotUtf8",
       h + "  denyPackages: [{name: curl, note: \"a\\0b\"}]\n",
       {"p.yaml:6:37: spec.denyPackages[0].note: not valid UTF-8 text "
        "(expected UTF-8 without NUL bytes)"}},
      {"DenyAndAllowConflict",
       h + "  deny: [{buildId: ABCD}]\n  allow:\n  - buildId: 00\n  - "
           "buildId: abcd\n",
       {"p.yaml:9:14: spec.allow: build ID abcd is also denied (at "
        "p.yaml:6:20); a policy cannot both deny and allow a build ID"}},
      {"MissingName",
       "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
       "metadata: {labels: {a: b}}\nspec: {}\n",
       {"p.yaml:3:11: metadata.name: required"}},
      {"BadName",
       Doc("Foo_Bar", "  {}\n"),
       {"p.yaml:4:9: metadata.name: \"Foo_Bar\" is not a valid name " +
        subdomain}},
      {"NameWithEmptyPart",
       Doc("a..b", "  {}\n"),
       {"p.yaml:4:9: metadata.name: \"a..b\" is not a valid name " +
        subdomain}},
      {"NameTooLong",
       Doc(std::string(254, 'a'), "  {}\n"),
       {"p.yaml:4:9: metadata.name: \"" + std::string(64, 'a') +
        "\"... is not a valid name " + subdomain}},
      {"NameNotAString",
       "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
       "metadata: {name: [a]}\nspec: {}\n",
       {"p.yaml:3:18: metadata.name: expected a string, got a sequence"}},
      {"MetadataUnknownField",
       "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
       "metadata: {name: a, namespace: b}\nspec: {}\n",
       {"p.yaml:3:21: metadata: unknown field \"namespace\" (expected name, "
        "labels, annotations)"}},
      {"MissingMetadata",
       "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\nspec: {}\n",
       {"p.yaml:1:1: metadata: required"}},
      {"MissingSpec",
       "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\nmetadata: {name: "
       "a}\n",
       {"p.yaml:1:1: spec: required"}},
      {"SpecNull", h, {"p.yaml:5:1: spec: expected a mapping, got null"}},
      {"MissingApiVersion",
       "kind: ExecPolicy\nmetadata: {name: a}\nspec: {}\n",
       {"p.yaml:1:1: apiVersion: required (expected apiVersion: "
        "execmon.io/v1alpha1)"}},
      {"WrongApiVersion",
       "apiVersion: execmon.io/v1\nkind: ExecPolicy\nmetadata: {name: "
       "a}\nspec: {}\n",
       {"p.yaml:1:13: apiVersion: \"execmon.io/v1\" is not supported "
        "(expected execmon.io/v1alpha1)"}},
      {"MissingKind",
       "apiVersion: execmon.io/v1alpha1\nmetadata: {name: a}\nspec: {}\n",
       {"p.yaml:1:1: kind: required (expected kind: ExecPolicy)"}},
      // Another kind: nothing else is checked.
      {"WrongKind",
       "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
       {"p.yaml:2:7: kind: \"ConfigMap\" is not supported (expected "
        "ExecPolicy)"}},
      {"UnknownTopLevelField",
       Doc("a", "  {}\n") + "status: {}\n",
       {"p.yaml:7:1: unknown top-level field \"status\" (expected "
        "apiVersion, kind, metadata, spec)"}},
      {"UnknownSpecField",
       h + "  modes: enforce\n",
       {"p.yaml:6:3: spec: unknown field \"modes\" (expected mode, action, "
        "deny, allow, denyFrom, allowFrom, denyPackages, unknownBuildId, "
        "selector)"}},
      {"UnknownSelectorField",
       h + "  selector: {namespace: [a]}\n",
       {"p.yaml:6:14: spec.selector: unknown field \"namespace\" (expected "
        "namespaces, matchLabels, matchExpressions, containers, host)"}},
      {"DuplicateField",
       h + "  mode: enforce\n  mode: audit\n",
       {"p.yaml:7:3: spec.mode: duplicate field (first at p.yaml:6:3)"}},
      {"DenyNotASequence",
       h + "  deny: abc\n",
       {"p.yaml:6:9: spec.deny: expected a sequence, got a scalar (\"abc\")"}},
      {"AllowNull",
       h + "  allow:\n  mode: audit\n",
       {"p.yaml:6:3: spec.allow: expected a sequence, got null (write [] "
        "for an empty list)"}},
      {"ModeNotAScalar",
       h + "  mode: [enforce]\n",
       {"p.yaml:6:9: spec.mode: expected a string, got a sequence"}},
      {"SelectorNotAMapping",
       h + "  selector: []\n",
       {"p.yaml:6:13: spec.selector: expected a mapping, got a sequence"}},
      {"DocumentNotAMapping",
       "- a\n- b\n",
       {"p.yaml:1:1: document: expected a mapping (an ExecPolicy), got a "
        "sequence"}},
      {"DocumentScalar",
       "---\nhello\n",
       {"p.yaml:2:1: document: expected a mapping (an ExecPolicy), got a "
        "scalar"}},
      {"NonScalarKey",
       Doc("a", "  {}\n") + "[x]: y\n",
       {"p.yaml:7:1: document: expected a field name, got a sequence"}},
      {"SyntaxErrorFlow",
       h + "  deny: [{buildId: ab}\n",
       {"p.yaml:7:1: YAML syntax error: end of sequence flow not found"}},
      {"SyntaxErrorIndent",
       "a: b\n  c: d\n",
       {"p.yaml:2:4: YAML syntax error: illegal map value"}},
      {"SyntaxErrorUndefinedAlias",
       h + "  deny: *nope\n",
       {"p.yaml:6:9: YAML syntax error: the referenced anchor is not "
        "defined"}},
      {"HostWithPodSelector",
       h + "  selector:\n    namespaces: [prod]\n    host: true\n",
       {"p.yaml:8:11: spec.selector.host: true cannot be combined with "
        "namespaces/matchLabels/matchExpressions/containers (host "
        "processes have no pod)"}},
      {"HostNotABool",
       h + "  selector: {host: yes}\n",
       {"p.yaml:6:20: spec.selector.host: \"yes\" is not a boolean "
        "(expected true or false)"}},
      {"HostQuoted",
       h + "  selector: {host: \"true\"}\n",
       {"p.yaml:6:20: spec.selector.host: \"true\" is a quoted string, not "
        "a boolean (expected true or false)"}},
      {"BadNamespace",
       h + "  selector: {namespaces: [prod, Prod]}\n",
       {"p.yaml:6:33: spec.selector.namespaces[1]: \"Prod\" is not a "
        "namespace name " +
        label}},
      {"NamespaceTooLong",
       h + "  selector: {namespaces: [" + std::string(64, 'n') + "]}\n",
       {"p.yaml:6:27: spec.selector.namespaces[0]: \"" + std::string(64, 'n') +
        "\" is not a namespace name " + label}},
      {"BadContainer",
       h + "  selector: {containers: [-nginx]}\n",
       {"p.yaml:6:27: spec.selector.containers[0]: \"-nginx\" is not a "
        "container name " +
        label}},
      {"BadLabelKey",
       h + "  selector: {matchLabels: {\"a b\": c}}\n",
       {"p.yaml:6:28: spec.selector.matchLabels: \"a b\" is not a label key " +
        key}},
      {"BadLabelKeyPrefix",
       h + "  selector: {matchLabels: {Ex.com/a: c}}\n",
       {"p.yaml:6:28: spec.selector.matchLabels: \"Ex.com/a\" is not a "
        "label key " +
        key}},
      {"BadLabelValue",
       h + "  selector: {matchLabels: {app: -web}}\n",
       {"p.yaml:6:33: spec.selector.matchLabels[\"app\"]: \"-web\" is not a "
        "label value " +
        value}},
      {"NullLabelValue",
       h + "  selector: {matchLabels: {app: }}\n",
       {"p.yaml:6:28: spec.selector.matchLabels[\"app\"]: expected a string, "
        "got null"}},
      {"DuplicateLabelKey",
       h + "  selector: {matchLabels: {app: a, app: b}}\n",
       {"p.yaml:6:36: spec.selector.matchLabels[\"app\"]: duplicate key "
        "(first at p.yaml:6:28)"}},
      {"ExpressionMissingKeyAndOperator",
       h + "  selector: {matchExpressions: [{values: [a]}]}\n",
       {"p.yaml:6:33: spec.selector.matchExpressions[0].key: required",
        "p.yaml:6:33: spec.selector.matchExpressions[0].operator: required "
        "(expected In, NotIn, Exists or DoesNotExist)"}},
      {"ExpressionBadOperator",
       h + "  selector: {matchExpressions: [{key: a, operator: in, "
           "values: [b]}]}\n",
       {"p.yaml:6:52: spec.selector.matchExpressions[0].operator: \"in\" is "
        "not an operator (expected In, NotIn, Exists or DoesNotExist)"}},
      {"ExpressionInWithoutValues",
       h + "  selector: {matchExpressions: [{key: a, operator: In}]}\n",
       {"p.yaml:6:33: spec.selector.matchExpressions[0].values: required for "
        "operator In (expected a non-empty list of label values)"}},
      {"ExpressionNotInWithEmptyValues",
       h + "  selector: {matchExpressions: [{key: a, operator: NotIn, "
           "values: []}]}\n",
       {"p.yaml:6:67: spec.selector.matchExpressions[0].values: operator "
        "NotIn needs at least one value (expected a non-empty list)"}},
      {"ExpressionExistsWithValues",
       h + "  selector: {matchExpressions: [{key: a, operator: Exists, "
           "values: [b]}]}\n",
       {"p.yaml:6:68: spec.selector.matchExpressions[0].values: operator "
        "Exists takes no values (expected none)"}},
      {"ExpressionDoesNotExistWithValues",
       h + "  selector: {matchExpressions: [{key: a, operator: "
           "DoesNotExist, values: [b]}]}\n",
       {"p.yaml:6:74: spec.selector.matchExpressions[0].values: operator "
        "DoesNotExist takes no values (expected none)"}},
      {"ExpressionBadKeyAndValue",
       h + "  selector: {matchExpressions: [{key: \"a b\", operator: In, "
           "values: [\"c d\"]}]}\n",
       {"p.yaml:6:39: spec.selector.matchExpressions[0].key: \"a b\" is not a "
        "label key " +
            key,
        "p.yaml:6:69: spec.selector.matchExpressions[0].values[0]: \"c d\" "
        "is not a label value " +
            value}},
      {"ExpressionUnknownField",
       h + "  selector: {matchExpressions: [{key: a, operator: Exists, "
           "op: x}]}\n",
       {"p.yaml:6:60: spec.selector.matchExpressions[0]: unknown field "
        "\"op\" (expected key, operator, values)"}},
      {"ListFileEmptyPath",
       h + "  denyFrom: [\"\"]\n",
       {"p.yaml:6:14: spec.denyFrom[0]: expected a file path, got an empty "
        "string"}},
      {"ListFileNotAString",
       h + "  allowFrom: [[a]]\n",
       {"p.yaml:6:15: spec.allowFrom[0]: expected a string, got a sequence"}},
      {"SelfReferentialAlias",
       h + "  deny: &x [*x]\n",
       {"p.yaml:6:9: spec.deny[0]: expected a mapping {buildId: HEX, note: "
        "TEXT}, got a sequence"}},
  };
}

TEST(ParsePolicyTextTest, EveryErrorWithPosition) {
  for (const ErrorCase& c : ErrorCases()) {
    SCOPED_TRACE(c.name);
    ParseResult r = Parse(c.text);
    EXPECT_EQ(Errors(r), c.errors) << c.text;
    EXPECT_THAT(r.set.policies, IsEmpty()) << c.text;
  }
}

TEST(ParsePolicyTextTest, DeepNestingIsAnErrorNotACrash) {
  ParseResult r =
      Parse(absl::StrCat(kHead, "  deny: ", std::string(5000, '['), "\n"));
  EXPECT_THAT(Errors(r),
              ElementsAre("p.yaml:7:1: YAML error: nested too deeply (expected "
                          "a policy, at most a few levels deep)"));
}

// yaml-cpp 0.7 returns the same empty document forever after a stray ","
// (jbeder/yaml-cpp#1040); found by tests/fuzz.
TEST(ParsePolicyTextTest, StrayFlowIndicatorDoesNotHang) {
  EXPECT_THAT(Errors(Parse(",")),
              ElementsAre("p.yaml:1:1: YAML syntax error: unexpected input "
                          "\",\""));
  ParseResult r = Parse(absl::StrCat(Doc("ok", "  {}\n"), "--- ,\n"));
  EXPECT_THAT(Errors(r),
              ElementsAre("p.yaml:7:5: YAML syntax error: unexpected input "
                          "\",\""));
  EXPECT_THAT(Names(r.set), ElementsAre("ok"));
}

TEST(ParsePolicyTextTest, SyntaxErrorMessagesArePrintable) {
  ParseResult r = Parse("a: \"\\\xff\"\n");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].ToString(),
            "p.yaml:1:7: YAML syntax error: unknown escape character: \\xff");
}

TEST(ParsePolicyTextTest, ErrorsPerFileAreCapped) {
  std::string text(kHead);
  text += "  deny:\n";
  for (int i = 0; i < 500; ++i) text += "  - buildId: x\n";
  ParseResult r = Parse(text);
  ASSERT_THAT(r.errors, SizeIs(kMaxErrorsPerFile));
  EXPECT_THAT(r.errors.back().message,
              HasSubstr("(too many errors; the rest of the file is not "
                        "checked)"));
}

// ---------------------------------------------------------------------------
// List files.

TEST(ListFileTest, CommentsNotesBlankLinesCrlfAndBom) {
  TempDir dir;
  std::string path = dir.Write("ids.txt",
                               "\xEF\xBB\xBF# header comment\r\n"        // 1
                               "\r\n"                                    // 2
                               "abcd1234  curl 7.88 CVE-2023-38545\r\n"  // 3
                               "   # indented comment\n"                 // 4
                               "EF015678 # with hash\n"                  // 5
                               "0011#tight\n"                            // 6
                               "  2233\t\n"                              // 7
                               "   \t \n"                                // 8
                               "4455 #\n"                                // 9
                               "abcd1234 second entry loses\n"           // 10
                               "6677");                                  // 11
  BuildIdMap out;
  std::vector<PolicyError> errors;
  EXPECT_EQ(ReadBuildIdList(path, &out, &errors), 7u);
  EXPECT_THAT(Errors(errors), IsEmpty());
  ASSERT_THAT(out, SizeIs(6));
  const BuildIdEntry& curl = out.at(Raw("abcd1234"));
  EXPECT_EQ(curl.note, "curl 7.88 CVE-2023-38545");
  EXPECT_EQ(curl.pos().file, path);
  EXPECT_EQ(curl.pos().line, 3);
  EXPECT_EQ(curl.pos().column, 1);
  EXPECT_EQ(out.at(Raw("ef015678")).note, "with hash");
  EXPECT_EQ(out.at(Raw("ef015678")).pos().line, 5);
  EXPECT_EQ(out.at(Raw("0011")).note, "tight");
  EXPECT_EQ(out.at(Raw("2233")).note, "");
  EXPECT_EQ(out.at(Raw("2233")).pos().column, 3);
  EXPECT_EQ(out.at(Raw("4455")).note, "");
  EXPECT_EQ(out.at(Raw("6677")).pos().line, 11);
}

TEST(ListFileTest, BadLinesReportFileLineAndColumn) {
  TempDir dir;
  std::string path = dir.Write("ids.txt",
                               "abcd\n"
                               "  xyz1 note\n"
                               "abc\n"
                               "ef01 \xff\xfe\n"
                               "ab12cd\n");
  BuildIdMap out;
  std::vector<PolicyError> errors;
  EXPECT_EQ(ReadBuildIdList(path, &out, &errors), 2u);
  EXPECT_THAT(
      Errors(errors),
      ElementsAre(
          absl::StrCat(path,
                       ":2:3: \"xyz1\" is not a build ID (expected 2 to "
                       "40 hex digits, an even number)"),
          absl::StrCat(path,
                       ":3:1: \"abc\" is not a build ID (expected 2 to "
                       "40 hex digits, an even number)"),
          absl::StrCat(path,
                       ":4:6: the note is not valid UTF-8 text "
                       "(expected UTF-8 without NUL bytes)")));
  EXPECT_THAT(out, SizeIs(2));
}

TEST(ListFileTest, ErrorsAreCapped) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "zz\n";
  BuildIdMap out;
  std::vector<PolicyError> errors;
  EXPECT_EQ(ParseBuildIdList(text, "l.txt", &out, &errors), 0u);
  ASSERT_THAT(errors, SizeIs(kMaxListFileErrors));
  EXPECT_THAT(errors.back().ToString(),
              HasSubstr("l.txt:20:1: \"zz\" is not a build ID"));
  EXPECT_THAT(errors.back().message,
              HasSubstr("(too many errors: the rest of this file's are "
                        "counted, not listed)"));
  // The rest are counted: the real count is known.
  size_t not_shown = 0;
  errors.clear();
  ParseBuildIdList(text, "l.txt", &out, &errors, &not_shown);
  EXPECT_EQ(errors.size() + not_shown, 1000u);
}

TEST(ListFileTest, UnparsableLineIsQuotedAsAShortExcerpt) {
  BuildIdMap out;
  std::vector<PolicyError> errors;
  ParseBuildIdList(
      "root:$y$j9T$abcdefghijklmnopqrstuvwxyz:20228:0:99999:7:::\n", "l.txt",
      &out, &errors);
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_EQ(errors[0].message,
            "\"root:$y$j9T$\"... is not a build ID (expected 2 to 40 hex "
            "digits, an even number)");
}

TEST(ListFileTest, ListFilesStayInThePolicyDirectory) {
  TempDir dir;
  TempDir outside;
  std::string secret = outside.Write("secret.txt", "root:x:0:0\n");
  dir.Write("ok.txt", "00ff\n");
  ASSERT_EQ(symlink(secret.c_str(), (dir.path() + "/link.txt").c_str()), 0);
  for (const auto& [ref, want] :
       std::vector<std::pair<std::string, std::string>>{
           {secret, "list files are named relative to the policy directory"},
           {"../x/secret.txt", "may not contain \"..\""},
           {"link.txt", "leads out of the policy directory"}}) {
    ParseResult r =
        Parse(absl::StrCat(kHead, "  denyFrom: [\"", ref, "\"]\n"), dir.path());
    EXPECT_THAT(Errors(r), ElementsAre(HasSubstr(want))) << ref;
    // Nothing of the file is echoed.
    EXPECT_THAT(absl::StrJoin(Errors(r), "\n"), Not(HasSubstr("root:x")));
  }
  ParseResult ok =
      Parse(absl::StrCat(kHead, "  denyFrom: [ok.txt]\n"), dir.path());
  EXPECT_THAT(Errors(ok), IsEmpty());
}

TEST(ListFileTest, KeepsEntriesAlreadyPresent) {
  BuildIdMap out;
  out[BuildIdKey(Raw("abcd"))] = BuildIdEntry{
      "inline", std::make_shared<const std::string>("p.yaml"), 7, 3};
  std::vector<PolicyError> errors;
  EXPECT_EQ(ParseBuildIdList("abcd from file\n", "l.txt", &out, &errors), 1u);
  EXPECT_EQ(out.at(Raw("abcd")).note, "inline");
  EXPECT_EQ(out.at(Raw("abcd")).pos().file, "p.yaml");
}

TEST(ListFileTest, MissingFile) {
  TempDir dir;
  std::string path = dir.path() + "/missing.txt";
  BuildIdMap out;
  std::vector<PolicyError> errors;
  EXPECT_EQ(ReadBuildIdList(path, &out, &errors), 0u);
  EXPECT_THAT(Errors(errors),
              ElementsAre(absl::StrCat(path, ": cannot read \"", path,
                                       "\": No such file or directory")));
}

TEST(ListFileTest, ReadSmallFileLimitsAndTypes) {
  TempDir dir;
  std::string path = dir.Write("f.txt", "0123456789");
  EXPECT_EQ(*ReadSmallFile(path, 10), "0123456789");
  absl::StatusOr<std::string> big = ReadSmallFile(path, 9);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(
      big.status().message(),
      absl::StrCat("\"", path, "\" is too large (10 bytes; the limit is 9)"));
  absl::StatusOr<std::string> d = ReadSmallFile(dir.path(), 100);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            absl::StrCat("\"", dir.path(), "\" is not a regular file"));
  std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<std::string> f = ReadSmallFile(fifo, 100);  // must not hang
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("is not a regular file"));
  absl::StatusOr<std::string> missing =
      ReadSmallFile(dir.path() + "/nope", 100);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(ListFileTest, HundredThousandIdsLoadFastAndAllArePresent) {
  constexpr int kCount = 100000;
  auto hex = [](uint64_t i) {
    return absl::StrFormat("%08x%016x%016x", i, i * 0x9E3779B97F4A7C15ull, ~i);
  };
  std::string text = "# generated\n";
  for (int i = 0; i < kCount; ++i) {
    absl::StrAppend(&text, hex(i), i % 3 == 0 ? "  note for " : "",
                    i % 3 == 0 ? absl::StrCat(i) : "", i % 2 ? "\r\n" : "\n");
  }
  TempDir dir;
  std::string path = dir.Write("big.txt", text);
  BuildIdMap out;
  std::vector<PolicyError> errors;
  auto start = std::chrono::steady_clock::now();
  size_t n = ReadBuildIdList(path, &out, &errors);
  auto elapsed = std::chrono::steady_clock::now() - start;
  // "Well under a second" (about 0.3 s in a Debug build); sanitizers slow
  // everything down several times, so only the other checks apply there.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LT(elapsed, std::chrono::seconds(1))
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
      << " ms";
#endif
  EXPECT_EQ(n, static_cast<size_t>(kCount));
  EXPECT_THAT(errors, IsEmpty());
  ASSERT_EQ(out.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    auto it = out.find(Raw(hex(i)));
    ASSERT_NE(it, out.end()) << i;
    EXPECT_EQ(it->second.pos().line, i + 2);
    if (i % 3 == 0) {
      ASSERT_EQ(it->second.note, absl::StrCat("note for ", i));
    } else {
      ASSERT_EQ(it->second.note, "");
    }
  }
}

TEST(ListFileTest, PolicyDenyFromAndAllowFrom) {
  TempDir dir;
  dir.Write("lists/deny.txt", "# bad\nabcd1234 curl CVE\n00ff\n");
  std::string allow_abs = dir.Write("allow.txt", "1122 distro\n");
  dir.Write("empty.txt", "");
  std::string text =
      absl::StrCat(kHead, "  deny: [{buildId: 00FF, note: inline}]\n",
                   "  denyFrom: [lists/deny.txt]\n",
                   "  allowFrom: [allow.txt, empty.txt]\n");
  ParseResult r = Parse(text, dir.path());
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  const Policy& p = r.set.policies[0];
  ASSERT_THAT(p.deny, SizeIs(2));
  // Inline entries come first: they win over the list file's.
  EXPECT_EQ(p.deny.at(Raw("00ff")).note, "inline");
  EXPECT_EQ(p.deny.at(Raw("00ff")).pos().file, "p.yaml");
  const BuildIdEntry& listed = p.deny.at(Raw("abcd1234"));
  EXPECT_EQ(listed.note, "curl CVE");
  EXPECT_EQ(listed.pos().file, dir.path() + "/lists/deny.txt");
  EXPECT_EQ(listed.pos().line, 2);
  EXPECT_EQ(listed.pos().column, 1);
  EXPECT_TRUE(p.has_allow_list);
  ASSERT_THAT(p.allow, SizeIs(1));
  EXPECT_EQ(p.allow.at(Raw("1122")).pos().file, allow_abs);
}

TEST(ListFileTest, EmptyAllowFromMakesAnAllowList) {
  TempDir dir;
  dir.Write("empty.txt", "# nothing yet\n");
  ParseResult r =
      Parse(absl::StrCat(kHead, "  allowFrom: [empty.txt]\n"), dir.path());
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(r.set.policies, SizeIs(1));
  EXPECT_TRUE(r.set.policies[0].has_allow_list);
  EXPECT_TRUE(r.set.policies[0].allow.empty());
}

TEST(ListFileTest, MissingListFileIsReportedAtThePathInThePolicy) {
  TempDir dir;
  ParseResult r =
      Parse(absl::StrCat(kHead, "  denyFrom:\n  - gone.txt\n"), dir.path());
  EXPECT_THAT(Errors(r),
              ElementsAre(absl::StrCat(
                  "p.yaml:7:5: spec.denyFrom[0]: cannot read \"", dir.path(),
                  "/gone.txt\": No such file or directory")));
  EXPECT_THAT(r.set.policies, IsEmpty());
}

TEST(ListFileTest, ListFileThatIsADirectory) {
  TempDir dir;
  dir.Write("sub/x", "");
  ParseResult r =
      Parse(absl::StrCat(kHead, "  allowFrom: [sub]\n"), dir.path());
  EXPECT_THAT(Errors(r), ElementsAre(absl::StrCat(
                             "p.yaml:6:15: spec.allowFrom[0]: \"", dir.path(),
                             "/sub\" is not a regular file")));
}

TEST(ListFileTest, BadLineInAListFileInvalidatesThePolicy) {
  TempDir dir;
  std::string list = dir.Write("deny.txt", "abcd\nnot-hex here\n");
  ParseResult r =
      Parse(absl::StrCat(kHead, "  denyFrom: [deny.txt]\n"), dir.path());
  EXPECT_THAT(Errors(r),
              ElementsAre(absl::StrCat(
                  list,
                  ":2:1: \"not-hex\" is not a build ID (expected 2 to 40 hex "
                  "digits, an even number)")));
  EXPECT_THAT(r.set.policies, IsEmpty());
}

TEST(ListFileTest, ConflictBetweenDenyListFileAndAllow) {
  TempDir dir;
  std::string list = dir.Write("deny.txt", "# x\n  AABB vulnerable\n");
  ParseResult r = Parse(absl::StrCat(kHead, "  denyFrom: [deny.txt]\n",
                                     "  allow: [{buildId: aabb}]\n"),
                        dir.path());
  EXPECT_THAT(
      Errors(r),
      ElementsAre(absl::StrCat(
          "p.yaml:7:21: spec.allow: build ID aabb is also denied (at ", list,
          ":2:3); a policy cannot both deny and allow a build ID")));
  EXPECT_THAT(r.set.policies, IsEmpty());
}

// ---------------------------------------------------------------------------
// Directories.

TEST(ParsePolicyDirTest, ManyFilesSortedByNameSkippingOthers) {
  TempDir dir;
  dir.Write("b.yaml", absl::StrCat(Doc("zeta", "  {}\n"), "---\n",
                                   Doc("alpha", "  {}\n")));
  dir.Write("a.yml", Doc("mid", "  mode: enforce\n"));
  dir.Write("c.yaml", "# empty\n");
  dir.Write("notes.txt", "not yaml: [");
  dir.Write("README.md", "# not a policy");
  // Would be a duplicate name if read.
  dir.Write(".hidden.yaml", Doc("alpha", "  {}\n"));
  // A directory named like a policy file.
  dir.Write("d.yaml/inner.yaml", Doc("inner", "  {}\n"));
  fs::create_symlink(dir.path() + "/a.yml", dir.path() + "/link.txt");
  ParseResult r = ParsePolicyDir(dir.path());
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(Names(r.set), ElementsAre("alpha", "mid", "zeta"));
  EXPECT_EQ(r.set.policies[0].pos.file, dir.path() + "/b.yaml");
  EXPECT_EQ(r.set.policies[0].pos.line, 8);
  EXPECT_EQ(r.set.policies[1].pos.file, dir.path() + "/a.yml");
}

TEST(ParsePolicyDirTest, SymlinkedFilesAreFollowed) {
  TempDir dir;
  TempDir elsewhere;
  std::string target = elsewhere.Write("real.txt", Doc("linked", "  {}\n"));
  fs::create_symlink(target, dir.path() + "/linked.yaml");
  ParseResult r = ParsePolicyDir(dir.path());
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(Names(r.set), ElementsAre("linked"));
  EXPECT_EQ(r.set.policies[0].pos.file, dir.path() + "/linked.yaml");
}

TEST(ParsePolicyDirTest, DuplicateNamesAcrossFilesNameBothPositions) {
  TempDir dir;
  dir.Write("a.yaml", Doc("dup", "  {}\n"));
  dir.Write("b.yaml", absl::StrCat("# second\n", Doc("dup", "  {}\n")));
  ParseResult r = ParsePolicyDir(dir.path());
  EXPECT_THAT(Errors(r),
              ElementsAre(absl::StrCat(
                  dir.path(),
                  "/b.yaml:5:9: metadata.name: \"dup\" is already defined at ",
                  dir.path(), "/a.yaml:4:9")));
  ASSERT_THAT(r.set.policies, SizeIs(1));
  EXPECT_EQ(r.set.policies[0].pos.file, dir.path() + "/a.yaml");
}

TEST(ParsePolicyDirTest, ErrorsInOneFileDoNotStopTheOthers) {
  TempDir dir;
  dir.Write("a.yaml", "a: [\n");
  dir.Write("b.yaml", Doc("b", "  {}\n"));
  ParseResult r = ParsePolicyDir(dir.path());
  EXPECT_THAT(Errors(r),
              ElementsAre(absl::StrCat(dir.path(),
                                       "/a.yaml:2:1: YAML syntax error: end "
                                       "of sequence flow not found")));
  EXPECT_THAT(Names(r.set), ElementsAre("b"));
}

TEST(ParsePolicyDirTest, MissingDirectory) {
  TempDir dir;
  std::string missing = dir.path() + "/nope";
  ParseResult r = ParsePolicyDir(missing);
  EXPECT_THAT(Errors(r), ElementsAre(absl::StrCat(
                             missing,
                             ": cannot read the policy directory: No such "
                             "file or directory")));
  absl::StatusOr<PolicySet> s = LoadPolicyDir(missing);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParsePolicyDirTest, DanglingSymlinkIsAnError) {
  TempDir dir;
  fs::create_symlink(dir.path() + "/gone.yaml", dir.path() + "/p.yaml");
  ParseResult r = ParsePolicyDir(dir.path());
  EXPECT_THAT(Errors(r), ElementsAre(absl::StrCat(
                             dir.path(),
                             "/p.yaml: cannot read the policy file: No such "
                             "file or directory")));
}

// A ConfigMap volume: every key is a symlink "<key> -> ..data/<key>", and
// "..data" is a symlink to the timestamped directory holding the files.
TEST(ParsePolicyDirTest, ConfigMapLayoutLoadsEachPolicyOnce) {
  TempDir dir;
  const std::string ts = "..2024_05_01_12_00_00.123456789";
  dir.Write(ts + "/deny.yaml", Doc("deny-curl", "  denyFrom: [curl.txt]\n"));
  dir.Write(ts + "/audit.yml",
            absl::StrCat(Doc("audit-all", "  unknownBuildId: deny\n"), "---\n",
                         Doc("allow-distro", "  allow: []\n")));
  dir.Write(ts + "/curl.txt", "abcd1234 curl\n");
  fs::create_directory_symlink(ts, dir.path() + "/..data");
  for (const char* key : {"deny.yaml", "audit.yml", "curl.txt"}) {
    fs::create_symlink(absl::StrCat("..data/", key),
                       absl::StrCat(dir.path(), "/", key));
  }
  ParseResult r = ParsePolicyDir(dir.path());
  ASSERT_THAT(Errors(r), IsEmpty());
  ASSERT_THAT(Names(r.set),
              ElementsAre("allow-distro", "audit-all", "deny-curl"));
  EXPECT_EQ(r.set.policies[2].deny.at(Raw("abcd1234")).pos().file,
            dir.path() + "/curl.txt");
  absl::StatusOr<PolicySet> s = LoadPolicyDir(dir.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->policies, SizeIs(3));
}

TEST(LoadPolicyDirTest, AllErrorsOnePerLine) {
  TempDir dir;
  dir.Write("a.yaml", Doc("a", "  mode: x\n  action: y\n"));
  dir.Write("b.yaml", Doc("b", "  {}\n"));
  absl::StatusOr<PolicySet> s = LoadPolicyDir(dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            absl::StrCat(dir.path(),
                         "/a.yaml:6:9: spec.mode: \"x\" is not a mode "
                         "(expected audit or enforce)\n",
                         dir.path(),
                         "/a.yaml:7:11: spec.action: \"y\" is not an action "
                         "(expected alert, kill or block)"));
}

// ---------------------------------------------------------------------------
// Lint.

TEST(LintTest, TextOk) {
  TempDir dir;
  dir.Write("a.yaml",
            absl::StrCat(Doc("a", "  {}\n"), "---\n", Doc("b", "  {}\n")));
  std::string out;
  EXPECT_EQ(LintPolicyDir(dir.path(), false, &out), 0);
  EXPECT_EQ(out, "2 policies OK\n");
}

TEST(LintTest, TextErrors) {
  TempDir dir;
  dir.Write("a.yaml",
            absl::StrCat(Doc("a", "  mode: x\n"), "---\n", Doc("b", "  {}\n"),
                         "---\n", Doc("c", "  action: kill\n")));
  std::string out = "replaced";
  EXPECT_EQ(LintPolicyDir(dir.path(), false, &out), 1);
  EXPECT_EQ(out, absl::StrCat(dir.path(),
                              "/a.yaml:6:9: spec.mode: \"x\" is not a mode "
                              "(expected audit or enforce)\n",
                              dir.path(),
                              "/a.yaml:20:11: spec.action: kill requires "
                              "spec.mode: enforce\n"
                              "1 policies, 2 errors\n"));
}

TEST(LintTest, JsonReport) {
  TempDir dir;
  dir.Write("ids.txt", "aa\nbb\n");
  dir.Write("p.yaml", absl::StrCat(Doc("web", R"(  mode: enforce
  action: kill
  deny: [{buildId: 01}]
  denyFrom: [ids.txt]
  allow: []
  unknownBuildId: deny
  selector:
    namespaces: [prod]
    matchLabels: {b: "2", a: "1"}
    matchExpressions: [{key: t, operator: In, values: [x]}]
    containers: [nginx]
    host: false
)"),
                                   "---\n", Doc("all", "  {}\n"), "---\n",
                                   Doc("bad", "  mode: x\n")));
  std::string out;
  EXPECT_EQ(LintPolicyDir(dir.path(), true, &out), 1);
  ASSERT_TRUE(absl::EndsWith(out, "}\n"));
  rapidjson::Document d;
  d.Parse(out.c_str());
  ASSERT_FALSE(d.HasParseError()) << out;
  EXPECT_FALSE(d["ok"].GetBool());
  const auto& policies = d["policies"];
  ASSERT_EQ(policies.Size(), 2u);
  const auto& all = policies[0];
  EXPECT_STREQ(all["name"].GetString(), "all");
  EXPECT_EQ(all["file"].GetString(), dir.path() + "/p.yaml");
  EXPECT_STREQ(all["mode"].GetString(), "audit");
  EXPECT_STREQ(all["action"].GetString(), "alert");
  EXPECT_EQ(all["deny"].GetUint64(), 0u);
  EXPECT_EQ(all["allow"].GetUint64(), 0u);
  EXPECT_FALSE(all["allowList"].GetBool());
  EXPECT_STREQ(all["unknownBuildId"].GetString(), "allow");
  EXPECT_TRUE(all["selector"]["host"].IsNull());
  EXPECT_EQ(all["selector"]["namespaces"].Size(), 0u);
  const auto& web = policies[1];
  EXPECT_STREQ(web["name"].GetString(), "web");
  EXPECT_EQ(web["line"].GetInt(), 1);
  EXPECT_STREQ(web["mode"].GetString(), "enforce");
  EXPECT_STREQ(web["action"].GetString(), "kill");
  EXPECT_EQ(web["deny"].GetUint64(), 3u);
  EXPECT_EQ(web["allow"].GetUint64(), 0u);
  EXPECT_TRUE(web["allowList"].GetBool());
  EXPECT_STREQ(web["unknownBuildId"].GetString(), "deny");
  const auto& sel = web["selector"];
  ASSERT_EQ(sel["namespaces"].Size(), 1u);
  EXPECT_STREQ(sel["namespaces"][0].GetString(), "prod");
  ASSERT_EQ(sel["matchLabels"].MemberCount(), 2u);
  // Label keys are sorted.
  EXPECT_STREQ(sel["matchLabels"].MemberBegin()->name.GetString(), "a");
  EXPECT_STREQ(sel["matchLabels"]["b"].GetString(), "2");
  ASSERT_EQ(sel["matchExpressions"].Size(), 1u);
  EXPECT_STREQ(sel["matchExpressions"][0]["key"].GetString(), "t");
  EXPECT_STREQ(sel["matchExpressions"][0]["operator"].GetString(), "In");
  EXPECT_STREQ(sel["matchExpressions"][0]["values"][0].GetString(), "x");
  EXPECT_STREQ(sel["containers"][0].GetString(), "nginx");
  EXPECT_FALSE(sel["host"].GetBool());
  const auto& errors = d["errors"];
  ASSERT_EQ(errors.Size(), 1u);
  EXPECT_EQ(errors[0]["file"].GetString(), dir.path() + "/p.yaml");
  EXPECT_EQ(errors[0]["line"].GetInt(), 31);
  EXPECT_EQ(errors[0]["column"].GetInt(), 9);
  EXPECT_STREQ(errors[0]["message"].GetString(),
               "spec.mode: \"x\" is not a mode (expected audit or enforce)");
}

// A policy that would kill every process on the node it does not allow
// is valid, and warned about; scoped, audited or alerting ones are not.
TEST(LintTest, WarnsAboutNodeWideEnforceAllowlists) {
  TempDir dir;
  dir.Write(
      "a.yaml",
      absl::StrCat(Doc("allow-all-node",
                       "  mode: enforce\n  action: kill\n"
                       "  allow: [{buildId: 99}]\n"),
                   "---\n",
                   Doc("unknown-deny",
                       "  mode: enforce\n  action: kill\n"
                       "  unknownBuildId: deny\n"),
                   "---\n",
                   Doc("scoped",
                       "  mode: enforce\n  action: kill\n"
                       "  selector: {host: false}\n"
                       "  allow: [{buildId: 99}]\n"),
                   "---\n",
                   Doc("audited", "  mode: audit\n  allow: [{buildId: 99}]\n"),
                   "---\n",
                   Doc("alerting",
                       "  mode: enforce\n  action: alert\n"
                       "  allow: [{buildId: 99}]\n"),
                   "---\n",
                   Doc("deny-only",
                       "  mode: enforce\n  action: kill\n"
                       "  deny: [{buildId: 99}]\n")));
  std::string out;
  EXPECT_EQ(LintPolicyDir(dir.path(), false, &out), 0);
  const std::string tail =
      " with an empty selector governs every process on the node; the sweep "
      "kills every running process it does not allow (scope it with a "
      "selector, e.g. host: false; docs/policies.md, Enforcement)\n";
  EXPECT_EQ(out, absl::StrCat(dir.path(),
                              "/a.yaml:1:1: warning: policy allow-all-node: "
                              "an enforce+kill allowlist",
                              tail, dir.path(),
                              "/a.yaml:10:1: warning: policy unknown-deny: "
                              "an enforce+kill unknownBuildId: deny",
                              tail, "6 policies OK, 2 warnings\n"));

  EXPECT_EQ(LintPolicyDir(dir.path(), true, &out), 0);
  rapidjson::Document d;
  d.Parse(out.c_str());
  ASSERT_FALSE(d.HasParseError()) << out;
  EXPECT_TRUE(d["ok"].GetBool());
  ASSERT_EQ(d["warnings"].Size(), 2u);
  EXPECT_STREQ(d["warnings"][0]["policy"].GetString(), "allow-all-node");
  EXPECT_EQ(d["warnings"][1]["line"].GetInt(), 10);
  EXPECT_STREQ(d["warnings"][1]["policy"].GetString(), "unknown-deny");
}

TEST(LintTest, JsonOkAndMissingDirectory) {
  TempDir dir;
  dir.Write("a.yaml", Doc("a", "  {}\n"));
  std::string out;
  EXPECT_EQ(LintPolicyDir(dir.path(), true, &out), 0);
  rapidjson::Document d;
  d.Parse(out.c_str());
  ASSERT_FALSE(d.HasParseError()) << out;
  EXPECT_TRUE(d["ok"].GetBool());
  EXPECT_EQ(d["policies"].Size(), 1u);
  EXPECT_EQ(d["errors"].Size(), 0u);
  EXPECT_EQ(d["warnings"].Size(), 0u);

  EXPECT_EQ(LintPolicyDir(dir.path() + "/nope", true, &out), 1);
  d.Parse(out.c_str());
  ASSERT_FALSE(d.HasParseError()) << out;
  EXPECT_FALSE(d["ok"].GetBool());
  ASSERT_EQ(d["errors"].Size(), 1u);
  EXPECT_EQ(d["errors"][0]["line"].GetInt(), 0);
  EXPECT_THAT(d["errors"][0]["message"].GetString(),
              HasSubstr("cannot read the policy directory"));
}

}  // namespace
}  // namespace execmon

namespace execmon {
namespace {

TEST(ParsePolicyDirLimitTest, MoreThanTheKernelsPolicyBitsIsAnError) {
  std::string dir = testing::TempDir() + "/limit_policies";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (int i = 0; i < 65; ++i) {
    std::ofstream(dir + "/p" + std::to_string(i) + ".yaml")
        << "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
        << "metadata: {name: p" << i << "}\nspec: {mode: audit}\n";
  }
  ParseResult r = ParsePolicyDir(dir);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].pos.file, dir);
  EXPECT_NE(r.errors[0].message.find("65 policies; at most 64 can be loaded"),
            std::string::npos)
      << r.errors[0].message;
  std::filesystem::remove(dir + "/p64.yaml");
  EXPECT_TRUE(ParsePolicyDir(dir).errors.empty());
}

}  // namespace
}  // namespace execmon
