// Pods of this node, from the Kubernetes API: LIST (fieldSelector
// spec.nodeName=<node>) then WATCH from the list's resourceVersion on a
// background thread, with reconnects (exponential, capped, jittered backoff)
// and a relist when the resourceVersion has expired (410 Gone).
//
// What it keeps, in memory:
//   pod UID       -> PodInfo (namespace, name, labels, workload, ...)
//   container ID  -> ContainerMeta (pod UID, container name, image, imageID)
// Deleted pods stay as tombstones for a while (default 60 s), so that the
// last events of a pod's processes still resolve.
//
// Lookups are thread-safe and never block, except WaitForPod(), which blocks
// at most for the duration it is given. Nothing here throws.
#ifndef EXECMON_AGENT_K8S_POD_WATCHER_H_
#define EXECMON_AGENT_K8S_POD_WATCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "agent/common/log.h"
#include "agent/k8s/kube_config.h"

namespace execmon {
namespace k8s {

// ---------------------------------------------------------------------------
// Model

// A container ID as the kubelet reports it: "<runtime>://<id>".
struct ContainerId {
  std::string runtime;  // "containerd", "cri-o", "docker", ...
  std::string id;       // the bare ID (64 hex digits for the common runtimes)
};

// Parses "containerd://<id>", "cri-o://<id>", "docker://<id>" (any runtime
// name of [a-z0-9.-]). Errors on anything else, including an empty ID.
absl::StatusOr<ContainerId> ParseContainerId(absl::string_view container_id);

struct OwnerReference {
  std::string api_version;
  std::string kind;
  std::string name;
  bool controller = false;
};

struct Workload {
  std::string name;
  std::string kind;  // "Deployment", "StatefulSet", ..., or "Pod"
};

// The workload a pod belongs to, from its controlling owner (or first owner):
//   ReplicaSet "<deploy>-<hash>" and label pod-template-hash=<hash>
//                                      -> <deploy>, Deployment
//   ReplicaSet otherwise               -> the ReplicaSet
//   StatefulSet, DaemonSet, Job, any other kind -> the owner itself
//   Job "<cronjob>-<8+ digits>"        -> <cronjob>, CronJob (the CronJob
//                                         controller names Jobs after the
//                                         scheduled time in minutes)
//   Node (a static pod's mirror)       -> the pod, Pod
//   no owner                           -> the pod, Pod
Workload ResolveWorkload(absl::string_view pod_name,
                         const std::map<std::string, std::string>& labels,
                         const std::vector<OwnerReference>& owners);

struct ContainerMeta {
  std::string pod_uid;
  std::string container_name;
  std::string image;         // as the runtime reports it (status.*.image)
  std::string image_id;      // status.*.imageID (usually repo@sha256:...)
  std::string runtime;       // from the containerID scheme
  std::string container_id;  // bare ID
  std::string type;          // "container", "init" or "ephemeral"
  // An earlier instance of a restarted container (lastState.terminated).
  bool previous = false;
};

struct PodInfo {
  std::string cluster;  // PodWatcherOptions::cluster_name
  std::string namespace_name;
  std::string name;
  std::string uid;
  // For a static pod's mirror: the UID the kubelet uses for the pod itself
  // (in cgroup paths), from the kubernetes.io/config.mirror annotation.
  std::string mirror_of;
  std::string node_name;
  std::string service_account;
  std::string phase;
  std::map<std::string, std::string> labels;
  // Only with PodWatcherOptions::include_annotations.
  std::map<std::string, std::string> annotations;
  std::vector<OwnerReference> owners;
  std::string workload;
  std::string workload_kind;
  std::vector<ContainerMeta> containers;  // those with a container ID
  std::string resource_version;
  // A tombstone: the pod was deleted at deleted_at and is kept briefly.
  bool deleted = false;
  absl::Time deleted_at = absl::InfinitePast();
};

// Parses one Pod object (JSON, as the API serves it). Workload and
// containers are filled in; `cluster` is left empty.
absl::StatusOr<PodInfo> ParsePodJson(absl::string_view json,
                                     bool include_annotations);

// ---------------------------------------------------------------------------
// PodStore: the state the watcher maintains, fed with API responses. Public
// so that it can be tested from recorded responses, without a server.

struct PodStoreOptions {
  std::string node_name;  // pods of other nodes are ignored ("" = accept all)
  std::string cluster_name;
  bool include_annotations = false;
  absl::Duration tombstone_ttl = absl::Seconds(60);
};

// One page of a LIST response (a PodList).
struct PodListPage {
  std::vector<PodInfo> pods;
  std::string resource_version;
  std::string continue_token;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEventResult {
  WatchEventType type = WatchEventType::kError;
  std::string resource_version;  // of the object (pods, bookmarks)
  int error_code = 0;            // kError: the Status' code (410 = expired)
  std::string error_message;     // kError
};

class PodStore {
 public:
  explicit PodStore(PodStoreOptions options);
  PodStore(const PodStore&) = delete;
  PodStore& operator=(const PodStore&) = delete;

  static absl::StatusOr<PodListPage> ParseListPage(absl::string_view json,
                                                   bool include_annotations);

  // A complete list (all pages): becomes the state. Live pods that are not
  // in it become tombstones.
  void ReplaceAll(std::vector<PodInfo> pods, absl::Time now);

  // Applies one line of a watch stream (a WatchEvent object). Malformed
  // lines are an error and change nothing.
  absl::StatusOr<WatchEventResult> ApplyWatchEvent(absl::string_view line,
                                                   absl::Time now);

  void Upsert(PodInfo pod, absl::Time now);
  void Remove(absl::string_view uid, absl::Time now);
  void ExpireTombstones(absl::Time now);

  // A live pod or an unexpired tombstone, by UID (also a static pod's own
  // UID; '_' is read as '-', as in systemd cgroup names).
  absl::optional<PodInfo> FindPod(absl::string_view uid, absl::Time now) const;
  // By bare ID, or "<runtime>://<id>".
  absl::optional<ContainerMeta> FindContainer(absl::string_view container_id,
                                              absl::Time now) const;
  // Blocks until the pod is known, `deadline` passes or Shutdown().
  absl::optional<PodInfo> WaitForPod(absl::string_view uid,
                                     absl::Time deadline) const;
  // Wakes and ends every WaitForPod(); later ones return at once.
  void Shutdown();

  // Snapshot, sorted by namespace then name.
  std::vector<PodInfo> Pods(bool include_tombstones, absl::Time now) const;
  // Changes whenever the pods or containers known change (a lookup made at
  // one generation gives the same answer at the same generation, except
  // that a deleted pod's tombstone also expires with time).
  uint64_t generation() const { return generation_.load(); }
  size_t live_pods() const;
  size_t tombstones() const;
  size_t containers() const;

 private:
  void UpsertLocked(PodInfo pod, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(const std::string& uid, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropContainersLocked(const PodInfo& pod)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const PodInfo* FindLocked(absl::string_view uid, absl::Time now) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const PodStoreOptions options_;
  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, PodInfo> pods_ ABSL_GUARDED_BY(mu_);
  // Static pods: kubelet-side UID -> mirror pod UID.
  absl::flat_hash_map<std::string, std::string> mirrors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ContainerMeta> containers_
      ABSL_GUARDED_BY(mu_);
  size_t tombstones_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> generation_{0};
};

// ---------------------------------------------------------------------------
// PodWatcher

struct PodWatcherOptions {
  std::string node_name;     // required: spec.nodeName of this node's pods
  std::string cluster_name;  // reported in PodInfo::cluster
  bool include_annotations = false;
  absl::Duration tombstone_ttl = absl::Seconds(60);
  // Reconnect delays: doubling from initial up to max, each drawn uniformly
  // from [d/2, d].
  absl::Duration backoff_initial = absl::Milliseconds(500);
  absl::Duration backoff_max = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(10);
  // A whole LIST page or GET, connection included.
  absl::Duration request_timeout = absl::Seconds(60);
  // A watch's timeoutSeconds (the server ends it; we then watch again from
  // the last resourceVersion). Drawn from [t, 2t) like client-go does, so
  // that the agents of a cluster do not reconnect in step. The client gives
  // up on a watch 30 s after that.
  absl::Duration watch_timeout = absl::Minutes(5);
  int list_page_size = 500;
  std::string user_agent = "execmon";
  // Where messages go; unset: warnings and errors to stderr.
  std::function<void(LogLevel, absl::string_view)> logger;
};

enum class PodWatcherState {
  kIdle,      // not started
  kListing,   // LIST in progress
  kWatching,  // a watch stream is open (HTTP 200 received)
  kBackoff,   // waiting before a retry after an error
  kStopped,
};
absl::string_view PodWatcherStateName(PodWatcherState state);

struct PodWatcherCounters {
  uint64_t lists = 0;           // complete LISTs applied
  uint64_t list_pages = 0;      // LIST requests answered 200
  uint64_t watches = 0;         // watch streams opened (HTTP 200)
  uint64_t watch_restarts = 0;  // watches resumed from a resourceVersion
  uint64_t relists_410 = 0;     // relists because the version had expired
  uint64_t errors = 0;          // failed requests, bad responses, error events
  uint64_t events = 0;          // ADDED/MODIFIED/DELETED applied
  uint64_t bookmarks = 0;
  uint64_t pods = 0;             // live pods known now
  uint64_t tombstones = 0;       // deleted pods still kept
  uint64_t containers = 0;       // container IDs known now
  std::string last_error;        // the most recent error, "" if none yet
  std::string resource_version;  // the last one seen
};

class PodWatcher {
 public:
  // Validates the options (node_name is required) and the configuration's
  // files (CA, client certificate and key must be readable).
  static absl::StatusOr<std::unique_ptr<PodWatcher>> Create(
      KubeConfig config, PodWatcherOptions options);
  ~PodWatcher();  // Stop()
  PodWatcher(const PodWatcher&) = delete;
  PodWatcher& operator=(const PodWatcher&) = delete;

  // Starts the background thread; returns at once. Once only.
  absl::Status Start();
  // Ends any request in flight and joins the thread: returns within about
  // a second (curl's progress callback polls the stop flag). Idempotent.
  void Stop();

  // Lookups (thread-safe, non-blocking).
  absl::optional<PodInfo> FindPod(absl::string_view uid) const;
  absl::optional<ContainerMeta> FindContainer(
      absl::string_view container_id) const;
  // PodStore::generation(): unchanged means the lookups above still give
  // the same answers (for pods not deleted).
  uint64_t Generation() const;
  // For an exec that arrives before its pod is known: waits at most `max`
  // for the pod to appear (returns at once when known, or after Stop()).
  absl::optional<PodInfo> WaitForPod(absl::string_view uid,
                                     absl::Duration max) const;
  // All live pods (no tombstones), sorted by namespace and name.
  std::vector<PodInfo> Pods() const;

  // Health.
  bool Synced() const;  // the first complete LIST has been applied
  bool WaitForSync(absl::Duration max) const;
  PodWatcherState ConnectionState() const;
  PodWatcherCounters Counters() const;
  const std::string& cluster_name() const { return options_.cluster_name; }
  const std::string& node_name() const { return options_.node_name; }

  // Tests: drop the current watch and resume from `resource_version` (an
  // expired one exercises the 410 path against a real server).
  void RestartWatchForTesting(absl::string_view resource_version);

 private:
  class Http;
  enum class WatchEnd { kStopped, kExpired, kClosed, kFailed, kRestart };

  PodWatcher(KubeConfig config, PodWatcherOptions options);
  void Run();
  // LIST, all pages; returns the resourceVersion to watch from.
  absl::StatusOr<std::string> ListAll(bool consistent, bool* expired);
  WatchEnd Watch(std::string* resource_version, bool resumed, bool* got_events);
  void CheckNode();
  bool SleepFor(absl::Duration d);  // false when stopped meanwhile
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  void SetState(PodWatcherState state);
  void RecordError(absl::string_view message);
  void Logf(LogLevel level, absl::string_view message) const;
  std::string PodsUrl(bool watch, absl::string_view resource_version,
                      absl::string_view continue_token,
                      absl::Duration timeout) const;

  const KubeConfig config_;
  const PodWatcherOptions options_;
  mutable PodStore store_;  // mutable: Counters() expires tombstones
  BearerToken token_;
  std::unique_ptr<Http> http_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> restart_watch_{false};
  std::thread thread_;
  absl::Mutex stop_mu_;  // serializes Stop()

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // mirrors stop_ for Await
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  PodWatcherState state_ ABSL_GUARDED_BY(mu_) = PodWatcherState::kIdle;
  PodWatcherCounters counters_ ABSL_GUARDED_BY(mu_);
  std::string forced_resource_version_ ABSL_GUARDED_BY(mu_);
};

}  // namespace k8s
}  // namespace execmon

#endif  // EXECMON_AGENT_K8S_POD_WATCHER_H_
