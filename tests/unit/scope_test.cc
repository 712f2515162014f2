// Tests of the per-cgroup policy scopes of pods (agent/policy/scope.h):
// which policies a pod's cgroups get, and when the table changes.
#include "agent/policy/scope.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace execmon {
namespace {

constexpr char kPod[] = "0d3f1c2e-1111-4a2b-9c3d-5e6f7a8b9c0d";
const std::string kCtr(64, 'a');

ContainerRef PodCgroup() { return ContainerRef{"", "", kPod, "besteffort"}; }
ContainerRef CtrCgroup() {
  return ContainerRef{"containerd", kCtr, kPod, "besteffort"};
}

Policy Named(std::string name, Selector s) {
  Policy p;
  p.name = std::move(name);
  p.selector = std::move(s);
  return p;
}

// Policies (bit = index): 0 prod namespace, 1 app=web, 2 container nginx,
// 3 host only, 4 other namespace.
PolicySet Set() {
  PolicySet set;
  Selector prod;
  prod.namespaces = {"prod"};
  set.policies.push_back(Named("a-prod", prod));
  Selector web;
  web.match_labels = {{"app", "web"}};
  set.policies.push_back(Named("b-web", web));
  Selector nginx;
  nginx.containers = {"nginx"};
  set.policies.push_back(Named("c-nginx", nginx));
  Selector host;
  host.host = true;
  set.policies.push_back(Named("d-host", host));
  Selector dev;
  dev.namespaces = {"dev"};
  set.policies.push_back(Named("e-dev", dev));
  return set;
}

std::shared_ptr<const PodMeta> Meta(std::string container_name) {
  auto m = std::make_shared<PodMeta>();
  m->uid = kPod;
  m->namespace_name = "prod";
  m->name = "web-0";
  m->labels = {{"app", "web"}};
  m->container_name = std::move(container_name);
  m->enriched = true;
  return m;
}

TEST(PodScopeMaskTest, PodLevelLeavesContainerPoliciesToTheContainer) {
  const PolicySet set = Set();
  EXPECT_EQ(PodScopeMask(set, *Meta(""), false), 0b00011u);
  EXPECT_EQ(PodScopeMask(set, *Meta("nginx"), true), 0b00111u);
  EXPECT_EQ(PodScopeMask(set, *Meta("sidecar"), true), 0b00011u);
}

TEST(ScopeTableTest, MasksOfKnownPodsOnly) {
  const PolicySet set = Set();
  ScopeTable t;
  t.OnCgroup(10, PodCgroup());
  t.OnCgroup(11, CtrCgroup());
  t.OnCgroup(12, ContainerRef{});  // not in a pod: ignored
  EXPECT_EQ(t.size(), 2u);
  int lookups = 0;
  auto lookup = [&](const ContainerRef& r) -> std::shared_ptr<const PodMeta> {
    ++lookups;
    return Meta(r.in_container() ? "nginx" : "");
  };
  auto masks = t.Masks(set, lookup);
  std::sort(masks.begin(), masks.end());
  EXPECT_EQ(masks, (std::vector<std::pair<uint64_t, uint64_t>>{{10, 0b00011},
                                                               {11, 0b00111}}));
  EXPECT_EQ(lookups, 2);
  // A pod the API has not described: no mask (nothing is pushed).
  EXPECT_TRUE(t.Masks(set, [](const ContainerRef&) {
                 return std::shared_ptr<const PodMeta>();
               }).empty());
  EXPECT_EQ(t.MasksOfPod(set, lookup, "other-pod").size(), 0u);
  EXPECT_EQ(t.MasksOfPod(set, lookup, kPod).size(), 2u);
}

// The agent recomputes the scopes only when this version (or the pods or
// the policies) changed: it must move with every change, and only then.
TEST(ScopeTableTest, VersionMovesWithChangesOnly) {
  ScopeTable t;
  const uint64_t v0 = t.version();
  t.OnCgroup(10, PodCgroup());
  const uint64_t v1 = t.version();
  EXPECT_GT(v1, v0);
  t.OnCgroup(10, PodCgroup());  // every event of the pod: no change
  t.OnCgroup(12, ContainerRef{});
  t.OnCgroupRemoved(99);
  EXPECT_EQ(t.version(), v1);
  ContainerRef moved = PodCgroup();
  moved.qos = "burstable";
  t.OnCgroup(10, moved);
  const uint64_t v2 = t.version();
  EXPECT_GT(v2, v1);
  t.OnCgroupRemoved(10);
  EXPECT_GT(t.version(), v2);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace execmon
