// The agent's data path: kernel records -> decode -> process table ->
// JSON -> sinks, plus the start-up snapshot and late (iterator) build-ID
// resolution. Owns no kernel objects: it is driven by a BpfLoader.
#ifndef EXECMON_AGENT_AGENT_H_
#define EXECMON_AGENT_AGENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "agent/bpf/bpf_loader.h"
#include "agent/container/cgroup_resolver.h"
#include "agent/event/event.h"
#include "agent/event/json_writer.h"
#include "agent/index/package_map.h"
#include "agent/k8s/pod_watcher.h"
#include "agent/metrics/http_server.h"
#include "agent/metrics/metrics.h"
#include "agent/policy/policy.h"
#include "agent/policy/scope.h"
#include "agent/policy/watcher.h"
#include "agent/process/process_table.h"
#include "agent/sink/event_sink.h"

namespace execmon {

struct AgentOptions {
  std::string node;
  std::string boot_id;
  size_t max_processes = 65536;
  bool snapshot = true;
  bool emit_snapshot = true;
  std::string policy_dir;  // empty: no policies
  // Build-ID indexes (files or directories, docs/index.md): events name the
  // Debian package of indexed build IDs. Hot-reloaded.
  std::vector<std::string> index_paths;
  std::string cluster;  // reported as "cluster" when set
  size_t max_cgroups = 65536;
  // Kubernetes pod metadata: "auto" (in-cluster or a kubeconfig when one is
  // found), "on" (required), "off".
  std::string kubernetes = "auto";
  std::string kubeconfig;
  // How long an exec in a pod the API has not told us about yet may wait
  // for its metadata before it is sent unenriched.
  absl::Duration pod_wait = absl::Seconds(2);
  size_t max_waiting_events = 10000;
  bool pod_annotations = false;
  absl::Duration reload_debounce = absl::Milliseconds(200);
  absl::Duration sink_close_deadline = absl::Seconds(10);
  // How long the loop waits for a ring-buffer wakeup before draining anyway:
  // the most an event waits in the kernel when wakeups are batched.
  absl::Duration poll_interval = absl::Milliseconds(50);
  std::string metrics_address;  // empty: no metrics/health server
  bool bpf_stats = false;
};

// User-space counters; kernel-side ones come from BpfLoader::ReadStats().
struct AgentCounters {
  uint64_t exec_events = 0;
  uint64_t exit_events = 0;
  uint64_t fork_records = 0;
  uint64_t snapshot_events = 0;
  uint64_t decode_errors = 0;
  uint64_t sink_errors = 0;
  uint64_t late_resolutions = 0;
  uint64_t late_resolution_errors = 0;
  uint64_t held = 0;  // execs the kernel held for late judgement
  uint64_t held_release_errors = 0;
  uint64_t policy_reloads = 0;
  uint64_t policy_reload_errors = 0;
  uint64_t index_reloads = 0;
  uint64_t index_reload_errors = 0;
  uint64_t sweep_events = 0;
  uint64_t policies_loaded = 0;
  uint64_t events_waited_for_pod = 0;
  uint64_t events_unenriched = 0;  // in a pod, sent without its metadata
};

class Agent {
 public:
  Agent(AgentOptions options, std::vector<std::unique_ptr<EventSink>> sinks);

  void set_loader(BpfLoader* loader) { loader_ = loader; }

  // One ring-buffer record.
  void OnRecord(absl::Span<const uint8_t> data);

  // Reports every process running now (iterators) and fills the process
  // table with them.
  absl::Status Snapshot();

  // Parses, compiles and loads the policy directory as a new generation,
  // then sweeps running processes. On any error the previous policies stay
  // in force and the error (every problem, file:line:col) is returned.
  absl::Status LoadPolicies();

  // Attaches, snapshots, loads policies (an invalid policy directory fails
  // start-up), then processes events until *stop, reloading policies when
  // their directory changes. On stop: detaches, drains the ring buffer and
  // flushes the sinks.
  absl::Status Run(const std::atomic<bool>& stop);

  const AgentCounters& counters() const { return counters_; }
  HealthState& health() { return health_; }
  const ProcessTable& processes() const { return table_; }

 private:
  void Emit(const char* type, absl::string_view json,
            absl::string_view pod_uid = "");
  void CloseSinks(absl::Duration deadline);
  void FlushSinks();
  void HandleExec(ExecEvent e);
  void ResolveLate(ExecEvent& e);
  // An exec the kernel held (EM_F_HELD, stopped before its first
  // instruction): killed or continued now that it is judged.
  void ReleaseHeld(const ExecEvent& e);
  void Tick();
  void ReportKernelLoss(bool final_report);
  void Sweep();
  // True once a change (noted in *seen when `changed`) has been quiet for
  // options_.reload_debounce; resets *seen then.
  bool Settled(bool changed, absl::Time* seen) const;
  // Reloads the policies, counting the reload and a rejection.
  void ReloadPolicies();
  void MaybeReload();
  // Loads options_.index_paths; on success the new map replaces the old.
  absl::Status LoadIndexes();
  void MaybeReloadIndexes();
  // The policy directory parsed, or every error (file:line:col) in one.
  absl::StatusOr<PolicySet> ParsePolicies() const;
  // LoadPolicies, counted in the reload metrics.
  absl::Status LoadPoliciesCounted();
  void UpdateMetrics(const std::vector<uint64_t>* kernel_stats);
  // sha256: the file's raw content hash, empty when unknown.
  VerdictView ViewOf(const KernelVerdict& v, const BuildId& bid,
                     const std::string& sha256 = std::string()) const;

  AgentOptions options_;
  std::vector<std::unique_ptr<EventSink>> sinks_;
  BpfLoader* loader_ = nullptr;
  ProcessTable table_;
  JsonWriter writer_;
  AgentCounters counters_;
  std::vector<uint64_t> last_stats_;
  absl::Time last_tick_ = absl::InfinitePast();
  // Policy sets by generation: the active one and the previous one (events
  // judged just before a reload name the previous generation).
  std::vector<std::pair<uint32_t, std::shared_ptr<const PolicySet>>> sets_;
  std::unique_ptr<PolicyWatcher> watcher_;
  std::shared_ptr<const PackageMap> packages_;
  std::vector<std::unique_ptr<PolicyWatcher>> index_watchers_;
  absl::Time index_change_seen_ = absl::InfiniteFuture();
  // The set validated before attaching, loaded by the first LoadPolicies()
  // (the directory is not parsed twice at start-up).
  std::optional<PolicySet> validated_;
  absl::Time change_seen_ = absl::InfiniteFuture();
  std::unique_ptr<Metrics> metrics_;
  HealthState health_;
  std::unique_ptr<HttpServer> http_;
  absl::Time last_cache_walk_ = absl::InfinitePast();
  std::unique_ptr<CgroupResolver> cgroups_;
  // Container of a cgroup (null when unknown or no resolver).
  const ContainerRef* ContainerOf(uint64_t cgroup_id);
  // Where a process runs, as an event shows it: container and pod.
  struct Placement {
    const ContainerRef* container = nullptr;
    std::shared_ptr<const PodMeta> pod;
    WorkloadView view() const { return {container, pod.get()}; }
    absl::string_view pod_uid() const {
      return container != nullptr ? absl::string_view(container->pod_uid) : "";
    }
  };
  Placement PlacementOf(uint64_t cgroup_id);

  // Kubernetes.
  absl::Status StartPodWatcher();
  // The pod (and container) of a cgroup as the API describes it, or null.
  // Made once per pod, container and change of the pods known (the
  // watcher's generation), then shared: every event of a pod's processes
  // needs it.
  std::shared_ptr<const PodMeta> LookupPod(const ContainerRef& ref) const;
  PodLookup pod_lookup() const {
    return [this](const ContainerRef& r) { return LookupPod(r); };
  }
  // False if the kernel refused them (tried again at the next refresh).
  bool PushScopes(const std::vector<std::pair<uint64_t, uint64_t>>& masks);
  // Recomputes the pod scopes when the pods, the pod cgroups or the
  // policies changed since the last successful push.
  void RefreshScopes();
  std::unique_ptr<k8s::PodWatcher> pods_;
  // pod UID -> container ID ("" for the pod's own cgroup) -> metadata, for
  // pod_cache_generation_ of the watcher.
  mutable absl::flat_hash_map<
      std::string,
      absl::flat_hash_map<std::string, std::shared_ptr<const PodMeta>>>
      pod_cache_;
  mutable uint64_t pod_cache_generation_ = 0;
  // (pods generation, ScopeTable::version, policy generation) last pushed.
  std::tuple<uint64_t, uint64_t, uint32_t> scopes_state_{~0ULL, ~0ULL, 0};
  ScopeTable scopes_;
  absl::flat_hash_map<uint64_t, uint64_t> pushed_scopes_;  // as in the kernel

  // Execs waiting (bounded, briefly) for their pod's metadata.
  struct WaitingExec {
    absl::Time deadline;
    ExecEvent event;
    ProcessInfo self;
    std::optional<ProcessInfo> parent;
    VerdictView verdict;
    ContainerRef container;
  };
  std::deque<WaitingExec> waiting_;
  void EmitExec(const ExecEvent& e, const ProcessInfo& self,
                const ProcessInfo* parent, const VerdictView& verdict,
                const ContainerRef& container, const PodMeta* pod);
  // Sends waiting execs whose metadata arrived or whose time is up (all of
  // them with all=true; those of pid first, for an exit, with pid != 0).
  // Returns how many were sent.
  size_t ReleaseWaiting(bool all, uint32_t pid = 0);
};

// CLOCK_REALTIME - CLOCK_BOOTTIME now.
int64_t BootToRealtimeNs();
// /proc/sys/kernel/random/boot_id, first 8 hex digits ("" if unreadable).
std::string ShortBootId();

}  // namespace execmon

#endif  // EXECMON_AGENT_AGENT_H_
