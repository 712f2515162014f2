// Tests of the pod watcher's model and state (agent/k8s/pod_watcher.h):
// container ID parsing, owner -> workload rules, and the PodStore fed with
// LIST and WATCH responses recorded from a real kube-apiserver; plus the
// watcher's option checks and its bounded behaviour with no server at all.
// (The watcher against a live apiserver: tests/k8s/test_pod_watcher.py.)
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/k8s/kube_config.h"
#include "agent/k8s/pod_watcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace execmon {
namespace k8s {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// Recorded from a real kube-apiserver v1.31.14 (tests/k8s harness):
// GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1 (re-serialized by
// Python's json module, content unchanged).
constexpr absl::string_view kRecordedList =
    R"json({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "184"}, "items": [{"metadata": {"name": "web-7d9f8b6c5d-x2x9q", "namespace": "shop", "uid": "e5dd8dfb-98f1-4b87-818e-8a0abb5df3cf", "resourceVersion": "184", "creationTimestamp": "2026-11-23T04:13:56Z", "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d"}, "annotations": {"team": "payments"}, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "uid": "00000000-0000-0000-0000-000000000001", "controller": true}], "managedFields": [{"manager": "Python-urllib", "operation": "Update", "apiVersion": "v1", "time": "2026-11-23T04:13:56Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:team": {}}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}, "f:ownerReferences": {".": {}, "k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}}, "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:initContainers": {".": {}, "k:{\"name\":\"setup\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}}, "f:nodeName": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}, {"manager": "Python-urllib", "operation": "Update", "apiVersion": "v1", "time": "2026-11-23T04:13:56Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:containerStatuses": {}, "f:initContainerStatuses": {}, "f:phase": {}}}, "subresource": "status"}]}, "spec": {"initContainers": [{"name": "setup", "image": "registry.test/setup:1.0", "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}], "containers": [{"name": "nginx", "image": "registry.test/nginx:1.0", "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "nodeName": "node-1", "securityContext": {}, "schedulerName": "default-scheduler", "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}, {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}], "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"}, "status": {"phase": "Running", "initContainerStatuses": [{"name": "setup", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:00:01Z", "containerID": "containerd://b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"}}, "lastState": {}, "ready": false, "restartCount": 0, "image": "registry.test/setup:1.0", "imageID": "registry.test/setup@sha256:abababababababababababababababababababababababababababababababab", "containerID": "containerd://b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"}], "containerStatuses": [{"name": "nginx", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}, "lastState": {}, "ready": true, "restartCount": 0, "image": "registry.test/nginx:1.0", "imageID": "registry.test/nginx@sha256:abababababababababababababababababababababababababababababababab", "containerID": "containerd://a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"}], "qosClass": "BestEffort"}}]})json";
// The watch stream from that list's resourceVersion: db-0 created, its
// status set, relabeled, deleted (grace 0: MODIFIED with a deletionTimestamp,
// then DELETED), then a bookmark. One event per line, verbatim.
constexpr absl::string_view kDbAdded =
    R"json({"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"db-0","namespace":"shop","uid":"28f0e351-de79-4988-9753-02801da1124d","resourceVersion":"185","creationTimestamp":"2026-11-23T04:13:57Z","labels":{"app":"db"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"00000000-0000-0000-0000-000000000001","controller":true}],"managedFields":[{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:nodeName":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}]},"spec":{"containers":[{"name":"app","image":"registry.test/app:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node-1","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Pending","qosClass":"BestEffort"}}})json";
constexpr absl::string_view kDbStatus =
    R"json({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"db-0","namespace":"shop","uid":"28f0e351-de79-4988-9753-02801da1124d","resourceVersion":"186","creationTimestamp":"2026-11-23T04:13:57Z","labels":{"app":"db"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"00000000-0000-0000-0000-000000000001","controller":true}],"managedFields":[{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:nodeName":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:containerStatuses":{},"f:phase":{}}},"subresource":"status"}]},"spec":{"containers":[{"name":"app","image":"registry.test/app:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node-1","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.test/app:1.0","imageID":"registry.test/app@sha256:abababababababababababababababababababababababababababababababab","containerID":"cri-o://c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"}],"qosClass":"BestEffort"}}})json";
constexpr absl::string_view kDbRelabeled =
    R"json({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"db-0","namespace":"shop","uid":"28f0e351-de79-4988-9753-02801da1124d","resourceVersion":"187","creationTimestamp":"2026-11-23T04:13:57Z","labels":{"app":"db","tier":"gold"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"00000000-0000-0000-0000-000000000001","controller":true}],"managedFields":[{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:nodeName":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:containerStatuses":{},"f:phase":{}}},"subresource":"status"}]},"spec":{"containers":[{"name":"app","image":"registry.test/app:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node-1","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.test/app:1.0","imageID":"registry.test/app@sha256:abababababababababababababababababababababababababababababababab","containerID":"cri-o://c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"}],"qosClass":"BestEffort"}}})json";
constexpr absl::string_view kDbDeleting =
    R"json({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"db-0","namespace":"shop","uid":"28f0e351-de79-4988-9753-02801da1124d","resourceVersion":"189","creationTimestamp":"2026-11-23T04:13:57Z","deletionTimestamp":"2026-11-23T04:13:57Z","deletionGracePeriodSeconds":0,"labels":{"app":"db","tier":"gold"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"00000000-0000-0000-0000-000000000001","controller":true}],"managedFields":[{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:nodeName":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:containerStatuses":{},"f:phase":{}}},"subresource":"status"}]},"spec":{"containers":[{"name":"app","image":"registry.test/app:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node-1","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.test/app:1.0","imageID":"registry.test/app@sha256:abababababababababababababababababababababababababababababababab","containerID":"cri-o://c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"}],"qosClass":"BestEffort"}}})json";
constexpr absl::string_view kDbDeleted =
    R"json({"type":"DELETED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"db-0","namespace":"shop","uid":"28f0e351-de79-4988-9753-02801da1124d","resourceVersion":"190","creationTimestamp":"2026-11-23T04:13:57Z","deletionTimestamp":"2026-11-23T04:13:57Z","deletionGracePeriodSeconds":0,"labels":{"app":"db","tier":"gold"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"00000000-0000-0000-0000-000000000001","controller":true}],"managedFields":[{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"00000000-0000-0000-0000-000000000001\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:nodeName":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},{"manager":"Python-urllib","operation":"Update","apiVersion":"v1","time":"2026-11-23T04:13:57Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:containerStatuses":{},"f:phase":{}}},"subresource":"status"}]},"spec":{"containers":[{"name":"app","image":"registry.test/app:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"node-1","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.test/app:1.0","imageID":"registry.test/app@sha256:abababababababababababababababababababababababababababababababab","containerID":"cri-o://c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"}],"qosClass":"BestEffort"}}})json";
constexpr absl::string_view kBookmark =
    R"json({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"190","creationTimestamp":null},"spec":{"containers":null},"status":{}}})json";
// What a restarted apiserver answers to a watch from an older version.
constexpr absl::string_view kExpired =
    R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 180 (183)","reason":"Expired","code":410}})json";

constexpr absl::string_view kWebUid = "e5dd8dfb-98f1-4b87-818e-8a0abb5df3cf";
constexpr absl::string_view kDbUid = "28f0e351-de79-4988-9753-02801da1124d";
std::string Repeat(absl::string_view two, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += std::string(two);
  return s;
}
const std::string kA1 = Repeat("a1", 32);  // web's nginx
const std::string kB2 = Repeat("b2", 32);  // web's init container "setup"
const std::string kC3 = Repeat("c3", 32);  // db-0's app (cri-o)

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// ---------------------------------------------------------------------------
// Container IDs

TEST(ParseContainerIdTest, AcceptsTheRuntimesKubeletReports) {
  for (const auto& [uri, runtime] :
       std::vector<std::pair<std::string, std::string>>{
           {"containerd://" + kA1, "containerd"},
           {"cri-o://" + kA1, "cri-o"},
           {"docker://" + kA1, "docker"}}) {
    absl::StatusOr<ContainerId> id = ParseContainerId(uri);
    ASSERT_TRUE(id.ok()) << uri << ": " << id.status();
    EXPECT_EQ(id->runtime, runtime);
    EXPECT_EQ(id->id, kA1);
  }
}

TEST(ParseContainerIdTest, RejectsMalformedIds) {
  for (absl::string_view bad :
       {"", "abc", "containerd:/abc", "containerd://", "://abc",
        "Containerd://abc", "containerd://ab cd", "containerd://ab/cd",
        "con tainerd://abc"}) {
    absl::StatusOr<ContainerId> id = ParseContainerId(bad);
    EXPECT_FALSE(id.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// ---------------------------------------------------------------------------
// Workloads

OwnerReference Owner(std::string kind, std::string name,
                     bool controller = true) {
  return OwnerReference{"apps/v1", std::move(kind), std::move(name),
                        controller};
}

std::pair<std::string, std::string> W(
    absl::string_view pod, const std::map<std::string, std::string>& labels,
    const std::vector<OwnerReference>& owners) {
  Workload w = ResolveWorkload(pod, labels, owners);
  return {w.name, w.kind};
}

TEST(ResolveWorkloadTest, DeploymentThroughReplicaSetNameAndTemplateHash) {
  EXPECT_THAT(W("web-7d9f8b6c5d-x2x9q", {{"pod-template-hash", "7d9f8b6c5d"}},
                {Owner("ReplicaSet", "web-7d9f8b6c5d")}),
              Pair("web", "Deployment"));
  // Dashes in the deployment name are kept.
  EXPECT_THAT(
      W("my-api-v2-5c8d7b9f4-abcde", {{"pod-template-hash", "5c8d7b9f4"}},
        {Owner("ReplicaSet", "my-api-v2-5c8d7b9f4")}),
      Pair("my-api-v2", "Deployment"));
}

TEST(ResolveWorkloadTest, ReplicaSetWithoutTheConventionStaysAReplicaSet) {
  // No pod-template-hash label: a bare ReplicaSet.
  EXPECT_THAT(W("rs-abcde", {}, {Owner("ReplicaSet", "rs-7d9f8b6c5d")}),
              Pair("rs-7d9f8b6c5d", "ReplicaSet"));
  // A hash that is not the name's suffix.
  EXPECT_THAT(W("rs-abcde", {{"pod-template-hash", "0000"}},
                {Owner("ReplicaSet", "rs-7d9f8b6c5d")}),
              Pair("rs-7d9f8b6c5d", "ReplicaSet"));
  // The hash is the whole name: nothing would be left for the deployment.
  EXPECT_THAT(
      W("abc-x", {{"pod-template-hash", "abc"}}, {Owner("ReplicaSet", "abc")}),
      Pair("abc", "ReplicaSet"));
  EXPECT_THAT(
      W("x", {{"pod-template-hash", "abc"}}, {Owner("ReplicaSet", "-abc")}),
      Pair("-abc", "ReplicaSet"));
}

TEST(ResolveWorkloadTest, DirectOwners) {
  EXPECT_THAT(W("db-0", {}, {Owner("StatefulSet", "db")}),
              Pair("db", "StatefulSet"));
  EXPECT_THAT(W("agent-x7k2p", {}, {Owner("DaemonSet", "agent")}),
              Pair("agent", "DaemonSet"));
  EXPECT_THAT(W("migrate-4xk2l", {}, {Owner("Job", "migrate")}),
              Pair("migrate", "Job"));
  EXPECT_THAT(W("legacy-abcde", {}, {Owner("ReplicationController", "legacy")}),
              Pair("legacy", "ReplicationController"));
  EXPECT_THAT(W("r-1", {}, {Owner("Rollout", "r")}), Pair("r", "Rollout"));
}

TEST(ResolveWorkloadTest, CronJobThroughJobNameWithScheduledTime) {
  EXPECT_THAT(W("backup-28512345-pq8zt", {}, {Owner("Job", "backup-28512345")}),
              Pair("backup", "CronJob"));
  EXPECT_THAT(
      W("db-backup-1700000000-x", {}, {Owner("Job", "db-backup-1700000000")}),
      Pair("db-backup", "CronJob"));
  // Short numeric suffixes are ordinary Job names, not scheduled times.
  EXPECT_THAT(W("migrate-2-x", {}, {Owner("Job", "migrate-2")}),
              Pair("migrate-2", "Job"));
  EXPECT_THAT(W("j-x", {}, {Owner("Job", "job-1234567a")}),
              Pair("job-1234567a", "Job"));
  EXPECT_THAT(W("j-x", {}, {Owner("Job", "-12345678")}),
              Pair("-12345678", "Job"));
}

TEST(ResolveWorkloadTest, BarePodsAndStaticPodsAreThemselves) {
  EXPECT_THAT(W("debug", {}, {}), Pair("debug", "Pod"));
  EXPECT_THAT(W("kube-apiserver-node-1", {}, {Owner("Node", "node-1")}),
              Pair("kube-apiserver-node-1", "Pod"));
}

TEST(ResolveWorkloadTest, ControllerOwnerWinsOverOthers) {
  EXPECT_THAT(W("db-0", {},
                {Owner("ConfigMap", "cm", false), Owner("StatefulSet", "db")}),
              Pair("db", "StatefulSet"));
  // No controller: the first owner.
  EXPECT_THAT(W("p", {}, {Owner("Foo", "a", false), Owner("Bar", "b", false)}),
              Pair("a", "Foo"));
}

// ---------------------------------------------------------------------------
// Parsing recorded API objects

TEST(ParseListPageTest, RecordedList) {
  absl::StatusOr<PodListPage> page =
      PodStore::ParseListPage(kRecordedList, /*include_annotations=*/false);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->resource_version, "184");
  EXPECT_EQ(page->continue_token, "");
  ASSERT_THAT(page->pods, SizeIs(1));
  const PodInfo& web = page->pods[0];
  EXPECT_EQ(web.uid, kWebUid);
  EXPECT_EQ(web.name, "web-7d9f8b6c5d-x2x9q");
  EXPECT_EQ(web.namespace_name, "shop");
  EXPECT_EQ(web.node_name, "node-1");
  EXPECT_EQ(web.phase, "Running");
  EXPECT_EQ(web.resource_version, "184");
  EXPECT_THAT(web.labels,
              UnorderedElementsAre(Pair("app", "web"),
                                   Pair("pod-template-hash", "7d9f8b6c5d")));
  EXPECT_THAT(web.annotations, IsEmpty());  // not asked for
  EXPECT_EQ(web.workload, "web");
  EXPECT_EQ(web.workload_kind, "Deployment");
  ASSERT_THAT(web.owners, SizeIs(1));
  EXPECT_EQ(web.owners[0].kind, "ReplicaSet");
  EXPECT_TRUE(web.owners[0].controller);
  ASSERT_THAT(web.containers, SizeIs(2));
  EXPECT_EQ(web.containers[0].container_name, "setup");
  EXPECT_EQ(web.containers[0].type, "init");
  EXPECT_EQ(web.containers[0].container_id, kB2);
  const ContainerMeta& nginx = web.containers[1];
  EXPECT_EQ(nginx.container_name, "nginx");
  EXPECT_EQ(nginx.type, "container");
  EXPECT_EQ(nginx.pod_uid, kWebUid);
  EXPECT_EQ(nginx.runtime, "containerd");
  EXPECT_EQ(nginx.container_id, kA1);
  EXPECT_EQ(nginx.image, "registry.test/nginx:1.0");
  EXPECT_EQ(nginx.image_id, "registry.test/nginx@sha256:" + Repeat("ab", 32));
  EXPECT_FALSE(nginx.previous);

  page = PodStore::ParseListPage(kRecordedList, /*include_annotations=*/true);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->pods[0].annotations, ElementsAre(Pair("team", "payments")));
}

TEST(ParseListPageTest, ContinueTokenAndEmptyList) {
  absl::StatusOr<PodListPage> page = PodStore::ParseListPage(
      R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"77",)"
      R"("continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},"items":[]})",
      false);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->resource_version, "77");
  EXPECT_EQ(page->continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ");
  EXPECT_THAT(page->pods, IsEmpty());
  // "items": null is what an empty list looks like from some servers.
  page = PodStore::ParseListPage(
      R"({"kind":"PodList","metadata":{"resourceVersion":"5"},"items":null})",
      false);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->pods, IsEmpty());
}

TEST(ParseListPageTest, Errors) {
  EXPECT_FALSE(PodStore::ParseListPage("", false).ok());
  EXPECT_FALSE(PodStore::ParseListPage("{\"kind\":\"PodList\",", false).ok());
  EXPECT_FALSE(PodStore::ParseListPage("[]", false).ok());
  EXPECT_FALSE(
      PodStore::ParseListPage(R"({"kind":"NodeList","items":[]})", false).ok());
  EXPECT_FALSE(
      PodStore::ParseListPage(R"({"kind":"PodList","items":{}})", false).ok());
  absl::StatusOr<PodListPage> page = PodStore::ParseListPage(
      R"({"kind":"PodList","items":[{"metadata":{"name":"x"}}]})", false);
  ASSERT_FALSE(page.ok());
  EXPECT_THAT(page.status().message(), HasSubstr("uid"));
}

TEST(ParsePodJsonTest, RestartedContainerKeepsItsPreviousInstance) {
  std::string json = absl::StrCat(
      R"({"metadata":{"name":"p","namespace":"n","uid":"u1"},)",
      R"("spec":{"nodeName":"node-1","serviceAccountName":"sa"},)",
      R"("status":{"containerStatuses":[{"name":"app","image":"img:2",)",
      R"("imageID":"img@sha256:01","containerID":"containerd://)", kA1,
      R"(","lastState":{"terminated":{"exitCode":1,"containerID":"containerd://)",
      kB2, R"("}}}],"ephemeralContainerStatuses":[{"name":"debugger",)",
      R"("image":"busybox","containerID":"containerd://)", kC3, R"("},)",
      R"({"name":"waiting","image":"x","containerID":""}]}})");
  absl::StatusOr<PodInfo> pod = ParsePodJson(json, false);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->service_account, "sa");
  ASSERT_THAT(pod->containers, SizeIs(3));
  EXPECT_EQ(pod->containers[0].container_id, kA1);
  EXPECT_FALSE(pod->containers[0].previous);
  EXPECT_EQ(pod->containers[1].container_id, kB2);
  EXPECT_TRUE(pod->containers[1].previous);
  EXPECT_EQ(pod->containers[1].container_name, "app");
  EXPECT_EQ(pod->containers[2].type, "ephemeral");
  EXPECT_EQ(pod->containers[2].container_name, "debugger");
  EXPECT_EQ(pod->workload_kind, "Pod");
}

// ---------------------------------------------------------------------------
// PodStore fed with the recorded list and watch stream

PodStoreOptions StoreOptions() {
  PodStoreOptions o;
  o.node_name = "node-1";
  o.cluster_name = "prod-eu1";
  o.tombstone_ttl = absl::Seconds(60);
  return o;
}

void LoadRecordedList(PodStore& store, absl::Time now) {
  absl::StatusOr<PodListPage> page =
      PodStore::ParseListPage(kRecordedList, false);
  ASSERT_TRUE(page.ok()) << page.status();
  store.ReplaceAll(std::move(page->pods), now);
}

WatchEventResult Apply(PodStore& store, absl::string_view line,
                       absl::Time now) {
  absl::StatusOr<WatchEventResult> r = store.ApplyWatchEvent(line, now);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : WatchEventResult{};
}

TEST(PodStoreTest, ListThenRecordedWatchStream) {
  PodStore store(StoreOptions());
  LoadRecordedList(store, kT0);
  absl::optional<PodInfo> web = store.FindPod(kWebUid, kT0);
  ASSERT_TRUE(web.has_value());
  EXPECT_EQ(web->cluster, "prod-eu1");
  EXPECT_EQ(web->workload, "web");
  absl::optional<ContainerMeta> nginx = store.FindContainer(kA1, kT0);
  ASSERT_TRUE(nginx.has_value());
  EXPECT_EQ(nginx->pod_uid, kWebUid);
  EXPECT_EQ(nginx->container_name, "nginx");
  // The runtime://id form resolves too.
  EXPECT_TRUE(store.FindContainer("containerd://" + kA1, kT0).has_value());
  EXPECT_TRUE(store.FindContainer(kB2, kT0).has_value());  // init container

  // db-0 is created: known at once, without containers yet.
  WatchEventResult r = Apply(store, kDbAdded, kT0);
  EXPECT_EQ(r.type, WatchEventType::kAdded);
  EXPECT_EQ(r.resource_version, "185");
  absl::optional<PodInfo> db = store.FindPod(kDbUid, kT0);
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->workload, "db");
  EXPECT_EQ(db->workload_kind, "StatefulSet");
  EXPECT_EQ(db->phase, "Pending");
  EXPECT_THAT(db->containers, IsEmpty());
  EXPECT_FALSE(store.FindContainer(kC3, kT0).has_value());

  // Its status arrives: the cri-o container resolves.
  r = Apply(store, kDbStatus, kT0);
  EXPECT_EQ(r.type, WatchEventType::kModified);
  EXPECT_EQ(r.resource_version, "186");
  absl::optional<ContainerMeta> app =
      store.FindContainer("cri-o://" + kC3, kT0);
  ASSERT_TRUE(app.has_value());
  EXPECT_EQ(app->runtime, "cri-o");
  EXPECT_EQ(app->pod_uid, kDbUid);
  EXPECT_EQ(app->image, "registry.test/app:1.0");

  // Relabeled.
  Apply(store, kDbRelabeled, kT0);
  EXPECT_THAT(store.FindPod(kDbUid, kT0)->labels,
              UnorderedElementsAre(Pair("app", "db"), Pair("tier", "gold")));

  // Terminating (deletionTimestamp) is still alive; DELETED makes a
  // tombstone that still resolves, with its containers.
  Apply(store, kDbDeleting, kT0);
  EXPECT_FALSE(store.FindPod(kDbUid, kT0)->deleted);
  r = Apply(store, kDbDeleted, kT0);
  EXPECT_EQ(r.type, WatchEventType::kDeleted);
  EXPECT_EQ(r.resource_version, "190");
  absl::Time t1 = kT0 + absl::Seconds(59);
  db = store.FindPod(kDbUid, t1);
  ASSERT_TRUE(db.has_value());
  EXPECT_TRUE(db->deleted);
  EXPECT_EQ(db->deleted_at, kT0);
  EXPECT_TRUE(store.FindContainer(kC3, t1).has_value());
  EXPECT_EQ(store.live_pods(), 1u);
  EXPECT_EQ(store.tombstones(), 1u);
  EXPECT_THAT(store.Pods(false, t1), SizeIs(1));
  EXPECT_THAT(store.Pods(true, t1), SizeIs(2));

  // A bookmark only moves the version.
  r = Apply(store, kBookmark, t1);
  EXPECT_EQ(r.type, WatchEventType::kBookmark);
  EXPECT_EQ(r.resource_version, "190");

  // After the tombstone's time: gone, containers too.
  absl::Time t2 = kT0 + absl::Seconds(60);
  EXPECT_FALSE(store.FindPod(kDbUid, t2).has_value());
  EXPECT_FALSE(store.FindContainer(kC3, t2).has_value());
  store.ExpireTombstones(t2);
  EXPECT_EQ(store.tombstones(), 0u);
  EXPECT_EQ(store.containers(), 2u);  // web's two
  EXPECT_TRUE(store.FindPod(kWebUid, t2).has_value());
}

TEST(PodStoreTest, ExpiredErrorEvent) {
  PodStore store(StoreOptions());
  LoadRecordedList(store, kT0);
  WatchEventResult r = Apply(store, kExpired, kT0);
  EXPECT_EQ(r.type, WatchEventType::kError);
  EXPECT_EQ(r.error_code, 410);
  EXPECT_THAT(r.error_message, HasSubstr("too old resource version"));
  EXPECT_TRUE(store.FindPod(kWebUid, kT0).has_value());  // state untouched
}

TEST(PodStoreTest, MalformedEventsChangeNothing) {
  PodStore store(StoreOptions());
  LoadRecordedList(store, kT0);
  for (absl::string_view bad :
       {absl::string_view(""), absl::string_view("{"), absl::string_view("[1]"),
        absl::string_view(R"({"type":"ADDED"})"),
        absl::string_view(R"({"type":"ADDED","object":{"metadata":{}}})"),
        absl::string_view(
            R"({"type":"EXPLODED","object":{"metadata":{"uid":"u"}}})"),
        kDbAdded.substr(0, kDbAdded.size() / 2)}) {
    EXPECT_FALSE(store.ApplyWatchEvent(bad, kT0).ok()) << bad;
  }
  EXPECT_EQ(store.live_pods(), 1u);
  EXPECT_EQ(store.containers(), 2u);
}

TEST(PodStoreTest, RelistTombstonesPodsThatVanished) {
  PodStore store(StoreOptions());
  LoadRecordedList(store, kT0);
  Apply(store, kDbStatus, kT0);  // MODIFIED of an unknown pod adds it
  ASSERT_EQ(store.live_pods(), 2u);
  // A relist (after a 410) that no longer has web.
  absl::StatusOr<PodInfo> db = ParsePodJson(
      kDbRelabeled.substr(
          kDbRelabeled.find("\"object\":") + 9,
          kDbRelabeled.size() - kDbRelabeled.find("\"object\":") - 10),
      false);
  ASSERT_TRUE(db.ok()) << db.status();
  std::vector<PodInfo> pods;
  pods.push_back(*db);
  absl::Time t1 = kT0 + absl::Seconds(5);
  store.ReplaceAll(std::move(pods), t1);
  EXPECT_EQ(store.live_pods(), 1u);
  absl::optional<PodInfo> web = store.FindPod(kWebUid, t1);
  ASSERT_TRUE(web.has_value());
  EXPECT_TRUE(web->deleted);
  EXPECT_THAT(store.FindPod(kDbUid, t1)->labels, SizeIs(2));
  EXPECT_FALSE(store.FindPod(kWebUid, t1 + absl::Seconds(60)).has_value());
}

// The agent keeps pod metadata while the generation stays the same: every
// change moves it, lookups and rejected events do not.
TEST(PodStoreTest, GenerationMovesWithEveryChangeOnly) {
  PodStore store(StoreOptions());
  uint64_t g = store.generation();
  LoadRecordedList(store, kT0);
  EXPECT_GT(store.generation(), g);
  g = store.generation();
  (void)store.FindPod(kWebUid, kT0);
  (void)store.FindContainer(kC3, kT0);
  (void)store.Pods(true, kT0);
  EXPECT_FALSE(store.ApplyWatchEvent("{", kT0).ok());
  EXPECT_EQ(store.generation(), g) << "lookups or a bad event moved it";
  Apply(store, kDbStatus, kT0);
  EXPECT_GT(store.generation(), g) << "an ADDED/MODIFIED event";
  g = store.generation();
  Apply(store, kDbRelabeled, kT0);
  EXPECT_GT(store.generation(), g) << "a relabel";
  g = store.generation();
  store.Remove(kDbUid, kT0);
  EXPECT_GT(store.generation(), g) << "a removal";
  g = store.generation();
  store.ExpireTombstones(kT0 + absl::Seconds(1));
  EXPECT_EQ(store.generation(), g) << "nothing expired yet";
  store.ExpireTombstones(kT0 + absl::Seconds(61));
  EXPECT_GT(store.generation(), g) << "a tombstone expired";
}

TEST(PodStoreTest, PodsOfOtherNodesAreIgnored) {
  PodStoreOptions o = StoreOptions();
  o.node_name = "node-2";
  PodStore store(o);
  LoadRecordedList(store, kT0);  // all on node-1
  EXPECT_EQ(store.live_pods(), 0u);
  Apply(store, kDbStatus, kT0);
  EXPECT_FALSE(store.FindPod(kDbUid, kT0).has_value());
  EXPECT_FALSE(store.FindContainer(kC3, kT0).has_value());

  // A pod of ours that the server reports on another node leaves.
  PodStore mine(StoreOptions());
  Apply(mine, kDbStatus, kT0);
  ASSERT_TRUE(mine.FindPod(kDbUid, kT0).has_value());
  std::string moved = absl::StrReplaceAll(
      kDbRelabeled, {{R"("nodeName":"node-1")", R"("nodeName":"node-9")"}});
  Apply(mine, moved, kT0);
  EXPECT_TRUE(mine.FindPod(kDbUid, kT0)->deleted);
}

TEST(PodStoreTest, StaticPodResolvesByKubeletUidAndUnderscores) {
  PodStore store(StoreOptions());
  std::string json =
      R"({"metadata":{"name":"etcd-node-1","namespace":"kube-system",)"
      R"("uid":"9b1f2c3d-0000-4000-8000-000000000001","annotations":{)"
      R"("kubernetes.io/config.mirror":"3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b",)"
      R"("other":"x"},"ownerReferences":[{"apiVersion":"v1","kind":"Node",)"
      R"("name":"node-1","controller":true}]},"spec":{"nodeName":"node-1"}})";
  absl::StatusOr<PodInfo> pod = ParsePodJson(json, false);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->mirror_of, "3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b");
  EXPECT_THAT(pod->annotations, IsEmpty());
  store.Upsert(*pod, kT0);
  absl::optional<PodInfo> found =
      store.FindPod("3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b", kT0);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "etcd-node-1");
  EXPECT_EQ(found->workload_kind, "Pod");
  // systemd cgroup names spell pod UIDs with '_'.
  EXPECT_TRUE(
      store.FindPod("9b1f2c3d_0000_4000_8000_000000000001", kT0).has_value());
}

TEST(PodStoreTest, WaitForPodReturnsAtOnceWhenKnown) {
  PodStore store(StoreOptions());
  LoadRecordedList(store, absl::Now());
  absl::Time start = absl::Now();
  EXPECT_TRUE(store.WaitForPod(kWebUid, start + absl::Seconds(10)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

TEST(PodStoreTest, WaitForPodNeverBlocksPastTheDeadline) {
  PodStore store(StoreOptions());
  // Unrelated changes keep waking the waiter; it must still give up in time.
  std::atomic<bool> done{false};
  std::thread noise([&] {
    while (!done.load()) {
      store.Remove("nothing", absl::Now());
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  absl::Time start = absl::Now();
  EXPECT_FALSE(
      store.WaitForPod(kDbUid, start + absl::Milliseconds(300)).has_value());
  absl::Duration took = absl::Now() - start;
  done = true;
  noise.join();
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Milliseconds(800));
  // A deadline in the past returns at once.
  start = absl::Now();
  EXPECT_FALSE(store.WaitForPod(kDbUid, start - absl::Seconds(1)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
}

TEST(PodStoreTest, WaitForPodWakesWhenThePodArrives) {
  PodStore store(StoreOptions());
  std::thread feeder([&] {
    absl::SleepFor(absl::Milliseconds(100));
    absl::StatusOr<WatchEventResult> r =
        store.ApplyWatchEvent(kDbAdded, absl::Now());
    EXPECT_TRUE(r.ok());
  });
  absl::Time start = absl::Now();
  absl::optional<PodInfo> pod =
      store.WaitForPod(kDbUid, start + absl::Seconds(10));
  absl::Duration took = absl::Now() - start;
  feeder.join();
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->name, "db-0");
  EXPECT_LT(took, absl::Seconds(5));
}

TEST(PodStoreTest, ShutdownEndsWaits) {
  PodStore store(StoreOptions());
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(100));
    store.Shutdown();
  });
  absl::Time start = absl::Now();
  EXPECT_FALSE(store.WaitForPod(kDbUid, start + absl::Seconds(30)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  stopper.join();
  start = absl::Now();
  EXPECT_FALSE(store.WaitForPod(kDbUid, start + absl::Seconds(30)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

// ---------------------------------------------------------------------------
// PodWatcher without a server

KubeConfig LocalConfig(int port) {
  KubeConfig c;
  c.server = absl::StrCat("https://127.0.0.1:", port);
  c.token = "t";
  return c;
}

PodWatcherOptions FastOptions() {
  PodWatcherOptions o;
  o.node_name = "node-1";
  o.backoff_initial = absl::Milliseconds(50);
  o.backoff_max = absl::Milliseconds(200);
  o.connect_timeout = absl::Seconds(1);
  o.request_timeout = absl::Seconds(2);
  o.logger = [](LogLevel, absl::string_view) {};
  return o;
}

// A port on which nothing listens (bound, then closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(PodWatcherTest, CreateChecksOptions) {
  PodWatcherOptions o = FastOptions();
  o.node_name = "";
  EXPECT_EQ(PodWatcher::Create(LocalConfig(1), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = FastOptions();
  o.backoff_max = absl::Milliseconds(1);
  EXPECT_EQ(PodWatcher::Create(LocalConfig(1), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  KubeConfig c = LocalConfig(1);
  c.server = "";
  EXPECT_FALSE(PodWatcher::Create(c, FastOptions()).ok());
  c = LocalConfig(1);
  c.ca_file = "/nonexistent/ca.crt";
  EXPECT_EQ(PodWatcher::Create(c, FastOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  c = LocalConfig(1);
  c.token_file = "/nonexistent/token";
  EXPECT_EQ(PodWatcher::Create(c, FastOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PodWatcherTest, UnreachableServerIsBoundedEverywhere) {
  absl::StatusOr<std::unique_ptr<PodWatcher>> w =
      PodWatcher::Create(LocalConfig(ClosedPort()), FastOptions());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->ConnectionState(), PodWatcherState::kIdle);
  ASSERT_TRUE((*w)->Start().ok());
  EXPECT_FALSE((*w)->Start().ok());  // once only
  EXPECT_FALSE((*w)->WaitForSync(absl::Milliseconds(300)));
  EXPECT_FALSE((*w)->Synced());
  absl::Time start = absl::Now();
  EXPECT_FALSE((*w)->WaitForPod(kWebUid, absl::Milliseconds(200)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(700));
  EXPECT_FALSE((*w)->FindPod(kWebUid).has_value());
  EXPECT_FALSE((*w)->FindContainer(kA1).has_value());
  PodWatcherCounters c = (*w)->Counters();
  EXPECT_GE(c.errors, 1u);
  EXPECT_THAT(c.last_error, HasSubstr("list pods"));
  EXPECT_EQ(c.lists, 0u);
  PodWatcherState s = (*w)->ConnectionState();
  EXPECT_TRUE(s == PodWatcherState::kBackoff || s == PodWatcherState::kListing)
      << PodWatcherStateName(s);
  start = absl::Now();
  (*w)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ((*w)->ConnectionState(), PodWatcherState::kStopped);
  (*w)->Stop();  // idempotent
  EXPECT_FALSE((*w)->Start().ok());
}

TEST(PodWatcherTest, StopWhileBackingOffForLong) {
  PodWatcherOptions o = FastOptions();
  o.backoff_initial = absl::Seconds(20);
  o.backoff_max = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<PodWatcher>> w =
      PodWatcher::Create(LocalConfig(ClosedPort()), o);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Start().ok());
  for (int i = 0;
       i < 100 && (*w)->ConnectionState() != PodWatcherState::kBackoff; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ((*w)->ConnectionState(), PodWatcherState::kBackoff);
  absl::Time start = absl::Now();
  w->reset();  // the destructor stops
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(PodWatcherTest, StateNames) {
  EXPECT_EQ(PodWatcherStateName(PodWatcherState::kIdle), "idle");
  EXPECT_EQ(PodWatcherStateName(PodWatcherState::kListing), "listing");
  EXPECT_EQ(PodWatcherStateName(PodWatcherState::kWatching), "watching");
  EXPECT_EQ(PodWatcherStateName(PodWatcherState::kBackoff), "backoff");
  EXPECT_EQ(PodWatcherStateName(PodWatcherState::kStopped), "stopped");
}

}  // namespace
}  // namespace k8s
}  // namespace execmon
