// Tests of the verdict semantics (agent/policy/evaluator.h): precedence
// across policies, allow lists, unknown build IDs and selectors.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "agent/policy/evaluator.h"
#include "agent/policy/parser.h"
#include "agent/policy/policy.h"
#include "gtest/gtest.h"

namespace execmon {
namespace {

const std::string kCurl = "\xab\xcd\x01";
const std::string kBash = "\x11\x22";
const std::string kOther = "\x99";

Policy MakePolicy(absl::string_view name, PolicyMode mode = PolicyMode::kAudit,
                  PolicyAction action = PolicyAction::kAlert) {
  Policy p;
  p.name = std::string(name);
  p.mode = mode;
  p.action = action;
  return p;
}

Policy Enforce(absl::string_view name) {
  return MakePolicy(name, PolicyMode::kEnforce);
}

Policy Kill(absl::string_view name) {
  return MakePolicy(name, PolicyMode::kEnforce, PolicyAction::kKill);
}

Policy& Deny(Policy& p, const std::string& id, absl::string_view note = "") {
  p.deny[BuildIdKey(id)] = BuildIdEntry{std::string(note), nullptr, 1, 1};
  return p;
}

Policy& Allow(Policy& p, const std::string& id, absl::string_view note = "") {
  p.has_allow_list = true;
  p.allow[BuildIdKey(id)] = BuildIdEntry{std::string(note), nullptr, 1, 1};
  return p;
}

Workload Host() { return Workload{}; }

Workload Pod(absl::string_view ns,
             absl::flat_hash_map<std::string, std::string> labels = {},
             absl::string_view container = "app") {
  Workload w;
  w.host = false;
  w.namespace_name = std::string(ns);
  w.labels = std::move(labels);
  w.container = std::string(container);
  return w;
}

PolicySet Set(std::vector<Policy> policies) {
  PolicySet s;
  s.policies = std::move(policies);
  return s;
}

// ---------------------------------------------------------------------------
// Single policies.

TEST(EvaluateTest, NoPoliciesAllowsKnownAndLeavesUnknownUnknown) {
  PolicySet set;
  Verdict v = Evaluate(set, kCurl, Host());
  EXPECT_EQ(v.decision, Decision::kAllow);
  EXPECT_EQ(v.action, VerdictAction::kNone);
  EXPECT_EQ(v.policy, -1);
  EXPECT_EQ(v.rule, "");
  Verdict u = Evaluate(set, absl::nullopt, Host());
  EXPECT_EQ(u.decision, Decision::kUnknown);
  EXPECT_EQ(u.action, VerdictAction::kNone);
  EXPECT_EQ(u.policy, -1);
}

TEST(EvaluateTest, DenyListedIdWithAndWithoutNote) {
  Policy p = MakePolicy("a");
  Deny(p, kCurl, "CVE-2023-38545");
  Deny(p, kBash);
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, kCurl, Host());
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kAlert);
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.mode, PolicyMode::kAudit);
  EXPECT_EQ(v.rule, "deny: CVE-2023-38545");
  EXPECT_EQ(Evaluate(set, kBash, Host()).rule, "deny");
  Verdict other = Evaluate(set, kOther, Host());
  EXPECT_EQ(other.decision, Decision::kAllow);
  EXPECT_EQ(other.policy, -1);
  EXPECT_EQ(other.action, VerdictAction::kNone);
}

TEST(EvaluateTest, AllowListDeniesWhatItDoesNotList) {
  Policy p = Enforce("a");
  Allow(p, kBash, "distro bash");
  Allow(p, kCurl);
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, kOther, Pod("prod"));
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kAlert);
  EXPECT_EQ(v.mode, PolicyMode::kEnforce);
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.rule, "allow: not listed");
  Verdict ok = Evaluate(set, kBash, Pod("prod"));
  EXPECT_EQ(ok.decision, Decision::kAllow);
  EXPECT_EQ(ok.action, VerdictAction::kNone);
  EXPECT_EQ(ok.policy, 0);
  EXPECT_EQ(ok.mode, PolicyMode::kEnforce);
  EXPECT_EQ(ok.rule, "allow: distro bash");
  EXPECT_EQ(Evaluate(set, kCurl, Pod("prod")).rule, "allow");
}

TEST(EvaluateTest, EmptyAllowListDeniesEveryKnownId) {
  Policy p = MakePolicy("a");
  p.has_allow_list = true;
  PolicySet set = Set({p});
  EXPECT_EQ(Evaluate(set, kCurl, Host()).decision, Decision::kDeny);
  EXPECT_EQ(Evaluate(set, kCurl, Host()).rule, "allow: not listed");
  // An unknown ID is not "not listed": unknownBuildId decides.
  EXPECT_EQ(Evaluate(set, absl::nullopt, Host()).decision, Decision::kUnknown);
}

TEST(EvaluateTest, UnknownBuildIdDeny) {
  Policy p = Kill("a");
  p.unknown_build_id = UnknownBuildId::kDeny;
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, absl::nullopt, Host());
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.rule, "unknownBuildId: deny");
  // Known IDs are not affected.
  EXPECT_EQ(Evaluate(set, kCurl, Host()).decision, Decision::kAllow);
}

TEST(EvaluateTest, UnknownBuildIdAllow) {
  Policy p = Kill("a");
  Deny(p, kCurl);
  p.unknown_build_id = UnknownBuildId::kAllow;
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, absl::nullopt, Host());
  EXPECT_EQ(v.decision, Decision::kUnknown);
  EXPECT_EQ(v.action, VerdictAction::kNone);
  EXPECT_EQ(v.policy, -1);
  EXPECT_EQ(v.rule, "");
}

// An ID read from memory the process could have written (issue 11): no
// allow list credits it; a deny list still matches; otherwise it is judged
// like an unknown ID.
TEST(EvaluateTest, IdFromMemoryIsNotCreditedByAnAllowList) {
  Policy p = Kill("a");
  Allow(p, kCurl);
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, kCurl, Host(), IdTrust::kFromMemory);
  EXPECT_EQ(v.decision, Decision::kAllow);  // as an unknown ID: allowed
  EXPECT_EQ(v.policy, -1);                  // but no allow list named it
  EXPECT_EQ(v.rule, "");
  p.unknown_build_id = UnknownBuildId::kDeny;
  set = Set({p});
  v = Evaluate(set, kCurl, Host(), IdTrust::kFromMemory);
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(v.rule, "unknownBuildId: deny (build ID read from process memory)");
  // The same ID read from the file is listed.
  EXPECT_EQ(Evaluate(set, kCurl, Host()).decision, Decision::kAllow);
  EXPECT_EQ(Evaluate(set, kCurl, Host()).policy, 0);
}

TEST(EvaluateTest, IdFromMemoryOnADenyListIsDenied) {
  Policy p = Kill("a");
  Deny(p, kCurl, "curl");
  PolicySet set = Set({p});
  Verdict v = Evaluate(set, kCurl, Host(), IdTrust::kFromMemory);
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.rule, "deny: curl");
  EXPECT_EQ(Evaluate(set, kBash, Host(), IdTrust::kFromMemory).decision,
            Decision::kAllow);
}

TEST(EvaluateTest, UnlistedIdFromMemoryIsJudgedAsUnknownByAnAllowList) {
  Policy p = Kill("a");
  Allow(p, kBash);
  PolicySet set = Set({p});
  EXPECT_EQ(Evaluate(set, kCurl, Host()).decision, Decision::kDeny);
  EXPECT_EQ(Evaluate(set, kCurl, Host(), IdTrust::kFromMemory).decision,
            Decision::kAllow);
}

// ---------------------------------------------------------------------------
// Precedence across policies.

TEST(EvaluateTest, DenyBeatsAllowWhateverTheOrder) {
  Policy allow = Kill("allow");
  Allow(allow, kCurl, "approved");
  Policy deny = MakePolicy("deny");
  Deny(deny, kCurl, "vulnerable");
  for (bool deny_first : {false, true}) {
    SCOPED_TRACE(deny_first);
    PolicySet set = deny_first ? Set({deny, allow}) : Set({allow, deny});
    Verdict v = Evaluate(set, kCurl, Host());
    EXPECT_EQ(v.decision, Decision::kDeny);
    EXPECT_EQ(v.policy, deny_first ? 0 : 1);
    EXPECT_EQ(v.rule, "deny: vulnerable");
    EXPECT_EQ(v.action, VerdictAction::kAlert);
    EXPECT_EQ(v.mode, PolicyMode::kAudit);
  }
}

TEST(EvaluateTest, EnforceKillBeatsEnforceBeatsAudit) {
  Policy audit = MakePolicy("a-audit");
  Deny(audit, kCurl, "audit");
  Policy enforce = Enforce("b-enforce");
  Deny(enforce, kCurl, "enforce");
  Policy kill = Kill("c-kill");
  Deny(kill, kCurl, "kill");

  Verdict v = Evaluate(Set({audit, enforce, kill}), kCurl, Host());
  EXPECT_EQ(v.policy, 2);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(v.mode, PolicyMode::kEnforce);
  EXPECT_EQ(v.rule, "deny: kill");

  v = Evaluate(Set({kill, enforce, audit}), kCurl, Host());
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.action, VerdictAction::kKill);

  v = Evaluate(Set({audit, enforce}), kCurl, Host());
  EXPECT_EQ(v.policy, 1);
  EXPECT_EQ(v.action, VerdictAction::kAlert);
  EXPECT_EQ(v.mode, PolicyMode::kEnforce);
  EXPECT_EQ(v.rule, "deny: enforce");

  v = Evaluate(Set({enforce, audit}), kCurl, Host());
  EXPECT_EQ(v.policy, 0);

  v = Evaluate(Set({audit}), kCurl, Host());
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.action, VerdictAction::kAlert);
  EXPECT_EQ(v.mode, PolicyMode::kAudit);
}

TEST(EvaluateTest, TiesGoToTheLowestIndex) {
  Policy k1 = Kill("k1");
  Deny(k1, kCurl, "first");
  Policy k2 = Kill("k2");
  Deny(k2, kCurl, "second");
  EXPECT_EQ(Evaluate(Set({k1, k2}), kCurl, Host()).rule, "deny: first");
  EXPECT_EQ(Evaluate(Set({k2, k1}), kCurl, Host()).rule, "deny: second");

  Policy e1 = Enforce("e1");
  Deny(e1, kCurl);
  Policy e2 = Enforce("e2");
  Allow(e2, kBash);  // kCurl: not listed
  Verdict v = Evaluate(Set({e1, e2}), kCurl, Host());
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.rule, "deny");
  v = Evaluate(Set({e2, e1}), kCurl, Host());
  EXPECT_EQ(v.policy, 0);
  EXPECT_EQ(v.rule, "allow: not listed");

  Policy a1 = MakePolicy("a1");
  Deny(a1, kCurl, "a1");
  Policy a2 = MakePolicy("a2");
  Deny(a2, kCurl, "a2");
  Policy a3 = MakePolicy("a3");
  Deny(a3, kCurl, "a3");
  EXPECT_EQ(Evaluate(Set({a1, a2, a3}), kCurl, Host()).policy, 0);
}

TEST(EvaluateTest, UnknownIdPrecedence) {
  Policy audit = MakePolicy("audit");
  audit.unknown_build_id = UnknownBuildId::kDeny;
  Policy kill = Kill("kill");
  kill.unknown_build_id = UnknownBuildId::kDeny;
  Policy lenient = Kill("lenient");  // allows unknown IDs: does not veto
  Verdict v = Evaluate(Set({lenient, audit, kill}), absl::nullopt, Host());
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.policy, 2);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(v.rule, "unknownBuildId: deny");
}

TEST(EvaluateTest, AllowVerdictNamesTheFirstGoverningAllowList) {
  Policy other_ns = MakePolicy("a");
  other_ns.selector.namespaces = {"dev"};
  Allow(other_ns, kCurl, "dev");
  Policy plain = MakePolicy("b");
  Deny(plain, kBash);
  Policy prod = MakePolicy("c");
  prod.selector.namespaces = {"prod"};
  Allow(prod, kCurl, "prod");
  Policy prod2 = MakePolicy("d");
  Allow(prod2, kCurl, "later");
  Verdict v = Evaluate(Set({other_ns, plain, prod, prod2}), kCurl, Pod("prod"));
  EXPECT_EQ(v.decision, Decision::kAllow);
  EXPECT_EQ(v.policy, 2);
  EXPECT_EQ(v.rule, "allow: prod");
  EXPECT_EQ(v.action, VerdictAction::kNone);
}

// action block: the exec itself fails (deny_exec) where the BPF LSM runs;
// it ranks with kill.
TEST(EvaluateTest, BlockDeniesTheExecAndRanksWithKill) {
  Policy block =
      MakePolicy("a-block", PolicyMode::kEnforce, PolicyAction::kBlock);
  Deny(block, kCurl);
  Policy kill = Kill("b-kill");
  Deny(kill, kCurl);
  Policy enforce = Enforce("0-enforce");
  Deny(enforce, kCurl);
  Verdict v = Evaluate(Set({enforce, block, kill}), kCurl, Host());
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kDenyExec);
  EXPECT_EQ(v.policy, 1);
  // Kill wins a tie by name order only.
  Verdict k = Evaluate(Set({kill, enforce}), kCurl, Host());
  EXPECT_EQ(k.action, VerdictAction::kKill);
}

// An allow entry pinning sha256 hashes credits those contents only, where
// the hash is known; without a hash it allows by build ID.
TEST(EvaluateTest, PinnedAllowEntry) {
  const std::string good(32, '\x11'), forged(32, '\x22'), other(32, '\x33');
  Policy p = Kill("pinned");
  Allow(p, kCurl, "curl 8.5");
  p.allow.find(kCurl)->second.sha256 =
      std::make_shared<const std::vector<std::string>>(
          std::vector<std::string>{good, other});
  Allow(p, kBash);  // not pinned
  PolicySet set = Set({p});
  EXPECT_EQ(Evaluate(set, kCurl, Host(), IdTrust::kTrusted, good).decision,
            Decision::kAllow);
  EXPECT_EQ(Evaluate(set, kCurl, Host(), IdTrust::kTrusted, other).decision,
            Decision::kAllow);
  Verdict v = Evaluate(set, kCurl, Host(), IdTrust::kTrusted, forged);
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(v.rule,
            "allow: sha256 not pinned (the build ID is listed, this content "
            "is not)");
  // No hash known: allowed by the build ID alone.
  Verdict n = Evaluate(set, kCurl, Host());
  EXPECT_EQ(n.decision, Decision::kAllow);
  EXPECT_EQ(n.rule, "allow: curl 8.5");
  // An unpinned entry ignores the hash.
  EXPECT_EQ(Evaluate(set, kBash, Host(), IdTrust::kTrusted, forged).decision,
            Decision::kAllow);
}

TEST(EvaluateTest, PoliciesWhoseSelectorDoesNotMatchDoNotGovern) {
  Policy prod = Kill("prod-only");
  prod.selector.namespaces = {"prod"};
  Deny(prod, kCurl);
  Policy allowlist = Enforce("host-allowlist");
  allowlist.selector.host = true;
  Allow(allowlist, kBash);
  PolicySet set = Set({prod, allowlist});
  EXPECT_EQ(Evaluate(set, kCurl, Pod("prod")).decision, Decision::kDeny);
  EXPECT_EQ(Evaluate(set, kCurl, Pod("dev")).decision, Decision::kAllow);
  // On the host the prod policy does not apply; the host allow list does.
  Verdict v = Evaluate(set, kCurl, Host());
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.policy, 1);
  EXPECT_EQ(v.rule, "allow: not listed");
  EXPECT_EQ(Evaluate(set, kBash, Host()).decision, Decision::kAllow);
}

// ---------------------------------------------------------------------------
// Selectors.

TEST(SelectorMatchesTest, EmptyMatchesEverything) {
  Selector s;
  EXPECT_TRUE(s.Empty());
  EXPECT_TRUE(SelectorMatches(s, Host()));
  EXPECT_TRUE(SelectorMatches(s, Pod("prod")));
  EXPECT_TRUE(SelectorMatches(s, Pod("")));
}

TEST(SelectorMatchesTest, HostTrueAndFalse) {
  Selector host;
  host.host = true;
  EXPECT_TRUE(SelectorMatches(host, Host()));
  EXPECT_FALSE(SelectorMatches(host, Pod("prod")));
  Selector pods;
  pods.host = false;
  EXPECT_FALSE(SelectorMatches(pods, Host()));
  EXPECT_TRUE(SelectorMatches(pods, Pod("prod")));
}

TEST(SelectorMatchesTest, Namespaces) {
  Selector s;
  s.namespaces = {"prod", "staging"};
  EXPECT_TRUE(SelectorMatches(s, Pod("prod")));
  EXPECT_TRUE(SelectorMatches(s, Pod("staging")));
  EXPECT_FALSE(SelectorMatches(s, Pod("dev")));
  EXPECT_FALSE(SelectorMatches(s, Pod("")));
}

TEST(SelectorMatchesTest, MatchLabelsNeedsEveryLabel) {
  Selector s;
  s.match_labels = {{"app", "web"}, {"tier", "front"}};
  EXPECT_TRUE(
      SelectorMatches(s, Pod("x", {{"app", "web"}, {"tier", "front"}})));
  EXPECT_TRUE(SelectorMatches(
      s, Pod("x", {{"app", "web"}, {"tier", "front"}, {"extra", "1"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"app", "web"}})));
  EXPECT_FALSE(
      SelectorMatches(s, Pod("x", {{"app", "web"}, {"tier", "back"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x")));
  Selector empty_value;
  empty_value.match_labels = {{"flag", ""}};
  EXPECT_TRUE(SelectorMatches(empty_value, Pod("x", {{"flag", ""}})));
  EXPECT_FALSE(SelectorMatches(empty_value, Pod("x")));
}

LabelRequirement Req(absl::string_view key, LabelRequirement::Op op,
                     std::vector<std::string> values = {}) {
  LabelRequirement r;
  r.key = std::string(key);
  r.op = op;
  r.values = std::move(values);
  return r;
}

TEST(SelectorMatchesTest, MatchExpressionIn) {
  Selector s;
  s.match_expressions = {
      Req("tier", LabelRequirement::Op::kIn, {"front", "edge"})};
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {{"tier", "front"}})));
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {{"tier", "edge"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"tier", "back"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x")));
}

TEST(SelectorMatchesTest, MatchExpressionNotIn) {
  Selector s;
  s.match_expressions = {
      Req("env", LabelRequirement::Op::kNotIn, {"dev", "test"})};
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {{"env", "prod"}})));
  EXPECT_TRUE(SelectorMatches(s, Pod("x")));  // no label: not in the set
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"env", "dev"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"env", "test"}})));
}

TEST(SelectorMatchesTest, MatchExpressionExistsAndDoesNotExist) {
  Selector exists;
  exists.match_expressions = {Req("canary", LabelRequirement::Op::kExists)};
  EXPECT_TRUE(SelectorMatches(exists, Pod("x", {{"canary", ""}})));
  EXPECT_TRUE(SelectorMatches(exists, Pod("x", {{"canary", "yes"}})));
  EXPECT_FALSE(SelectorMatches(exists, Pod("x", {{"other", "1"}})));
  Selector absent;
  absent.match_expressions = {
      Req("legacy", LabelRequirement::Op::kDoesNotExist)};
  EXPECT_TRUE(SelectorMatches(absent, Pod("x")));
  EXPECT_TRUE(SelectorMatches(absent, Pod("x", {{"other", "1"}})));
  EXPECT_FALSE(SelectorMatches(absent, Pod("x", {{"legacy", "1"}})));
}

TEST(SelectorMatchesTest, AllExpressionsMustMatch) {
  Selector s;
  s.match_expressions = {Req("a", LabelRequirement::Op::kExists),
                         Req("b", LabelRequirement::Op::kIn, {"1"})};
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {{"a", "0"}, {"b", "1"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"a", "0"}, {"b", "2"}})));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {{"b", "1"}})));
}

TEST(SelectorMatchesTest, Containers) {
  Selector s;
  s.containers = {"nginx", "sidecar"};
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {}, "nginx")));
  EXPECT_TRUE(SelectorMatches(s, Pod("x", {}, "sidecar")));
  EXPECT_FALSE(SelectorMatches(s, Pod("x", {}, "app")));
}

TEST(SelectorMatchesTest, EverythingCombined) {
  Selector s;
  s.namespaces = {"prod"};
  s.match_labels = {{"app", "web"}};
  s.match_expressions = {Req("env", LabelRequirement::Op::kNotIn, {"dev"})};
  s.containers = {"nginx"};
  s.host = false;
  Workload w = Pod("prod", {{"app", "web"}}, "nginx");
  EXPECT_TRUE(SelectorMatches(s, w));
  Workload wrong_ns = w;
  wrong_ns.namespace_name = "dev";
  EXPECT_FALSE(SelectorMatches(s, wrong_ns));
  Workload wrong_container = w;
  wrong_container.container = "app";
  EXPECT_FALSE(SelectorMatches(s, wrong_container));
  Workload wrong_label = w;
  wrong_label.labels["env"] = "dev";
  EXPECT_FALSE(SelectorMatches(s, wrong_label));
}

// Even selectors a label-less workload would satisfy (NotIn, DoesNotExist)
// never match a host process: it has no pod.
TEST(SelectorMatchesTest, HostProcessesNeverMatchPodSelectors) {
  Selector not_in;
  not_in.match_expressions = {
      Req("env", LabelRequirement::Op::kNotIn, {"dev"})};
  EXPECT_FALSE(SelectorMatches(not_in, Host()));
  EXPECT_TRUE(SelectorMatches(not_in, Pod("x")));
  Selector absent;
  absent.match_expressions = {Req("x", LabelRequirement::Op::kDoesNotExist)};
  EXPECT_FALSE(SelectorMatches(absent, Host()));
  Selector ns;
  ns.namespaces = {""};
  EXPECT_FALSE(SelectorMatches(ns, Host()));
  Selector labels;
  labels.match_labels = {{"a", ""}};
  Workload host_with_labels = Host();
  host_with_labels.labels = {{"a", ""}};
  EXPECT_FALSE(SelectorMatches(labels, host_with_labels));
  Selector containers;
  containers.containers = {""};
  EXPECT_FALSE(SelectorMatches(containers, Host()));
}

// ---------------------------------------------------------------------------
// Names and rules.

TEST(NamesTest, AllValues) {
  EXPECT_STREQ(DecisionName(Decision::kAllow), "allow");
  EXPECT_STREQ(DecisionName(Decision::kDeny), "deny");
  EXPECT_STREQ(DecisionName(Decision::kUnknown), "unknown");
  EXPECT_STREQ(VerdictActionName(VerdictAction::kNone), "none");
  EXPECT_STREQ(VerdictActionName(VerdictAction::kAlert), "alert");
  EXPECT_STREQ(VerdictActionName(VerdictAction::kKill), "kill");
  EXPECT_STREQ(PolicyModeName(PolicyMode::kAudit), "audit");
  EXPECT_STREQ(PolicyModeName(PolicyMode::kEnforce), "enforce");
}

TEST(RuleForTest, KernelDecisions) {
  Policy p = Kill("p");
  Deny(p, kCurl, "CVE");
  Deny(p, kOther);
  Allow(p, kBash, "distro");
  EXPECT_EQ(RuleFor(p, kCurl, Decision::kDeny), "deny: CVE");
  EXPECT_EQ(RuleFor(p, kOther, Decision::kDeny), "deny");
  EXPECT_EQ(RuleFor(p, std::string("\x42"), Decision::kDeny),
            "allow: not listed");
  EXPECT_EQ(RuleFor(p, kBash, Decision::kAllow), "allow: distro");
  EXPECT_EQ(RuleFor(p, absl::nullopt, Decision::kDeny), "unknownBuildId: deny");
  EXPECT_EQ(RuleFor(p, absl::nullopt, Decision::kUnknown),
            "unknownBuildId: allow");
}

// Parsed policies, evaluated: the sorted order is the precedence order for
// ties.
TEST(EvaluateTest, ParsedPolicies) {
  ParseResult r;
  ParsePolicyText(
      "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
      "metadata: {name: z-kill-curl}\n"
      "spec: {mode: enforce, action: kill,"
      " deny: [{buildId: ABCD01, note: CVE}],"
      " selector: {namespaces: [prod]}}\n"
      "---\n"
      "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\n"
      "metadata: {name: a-audit-allowlist}\n"
      "spec: {allow: [{buildId: 1122, note: bash}], selector: {host: false}}\n",
      "p.yaml", "", &r);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  ASSERT_EQ(r.set.policies.size(), 2u);
  Verdict v = Evaluate(r.set, kCurl, Pod("prod"));
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kKill);
  EXPECT_EQ(r.set.policies[v.policy].name, "z-kill-curl");
  EXPECT_EQ(v.rule, "deny: CVE");
  v = Evaluate(r.set, kCurl, Pod("dev"));
  EXPECT_EQ(v.decision, Decision::kDeny);
  EXPECT_EQ(v.action, VerdictAction::kAlert);
  EXPECT_EQ(v.rule, "allow: not listed");
  v = Evaluate(r.set, kBash, Pod("dev"));
  EXPECT_EQ(v.decision, Decision::kAllow);
  EXPECT_EQ(v.rule, "allow: bash");
  EXPECT_EQ(Evaluate(r.set, kCurl, Host()).decision, Decision::kAllow);
}

}  // namespace
}  // namespace execmon
