// Prometheus metrics of the agent (docs/metrics.md). Names follow the
// Prometheus conventions: execmon_ prefix, _total counters, seconds and
// bytes; labels are bounded (event type, decision, action, mode, source,
// reason) — never pid or build ID.
//
// Written by the agent thread; collected by the HTTP server's threads
// (prometheus-cpp metrics are thread-safe).
#ifndef EXECMON_AGENT_METRICS_METRICS_H_
#define EXECMON_AGENT_METRICS_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "agent/event/event.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace execmon {

struct BuildInfo {
  std::string version;
  std::string kernel;
  // The path that judges a first-seen binary: page_cache | task_work (at
  // exec), iterator (late) or none; chain: every loaded path, in order.
  std::string resolver;
  std::string chain;
  // The exec-denial unit: "bprm_check+sha256", "bprm_check" or "none".
  std::string exec_lsm;
};

class Metrics {
 public:
  explicit Metrics(const BuildInfo& info);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // One event handed to the sinks.
  void OnEvent(absl::string_view type);
  // An exec, with its verdict as shown in the event.
  // namespace and workload are the pod's ("" outside pods, or while the
  // pod is unknown): bounded by the pods of one node.
  void OnExec(const ExecEvent& e, absl::string_view decision,
              absl::string_view action, absl::string_view mode,
              absl::string_view ns = "", absl::string_view workload = "");
  void OnSweep(absl::string_view action);
  void SetDecodeErrors(uint64_t total);
  void OnSinkError(absl::string_view sink);

  // Kernel-side counters (enum em_stat order, cumulative).
  void SetKernelStats(const std::vector<uint64_t>& stats);
  void SetCacheEntries(uint64_t entries, uint64_t fills);
  void SetProcessTable(size_t entries, uint64_t evictions);
  void OnPolicyReload(bool ok);
  void SetPolicies(size_t loaded, uint32_t generation);
  void SetLateResolutions(uint64_t ok, uint64_t failed);
  // Per BPF program, when --bpf_stats is on (cumulative).
  void SetProgramStats(const std::string& program, uint64_t run_ns,
                       uint64_t run_count);
  // Creates a sink's series at 0 (called once per sink at start-up).
  void AddSink(absl::string_view sink, bool reports_delivery);
  void SetSinkUp(absl::string_view sink, bool up);
  // Sink delivery, for sinks that report it (Kafka).
  void SetSinkQueue(absl::string_view sink, uint64_t depth);
  void SetSinkDelivered(absl::string_view sink, uint64_t delivered);
  void SetSinkFailed(absl::string_view sink, uint64_t failed);
  void SetSinkDropped(absl::string_view sink, absl::string_view reason,
                      uint64_t dropped);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* events_;
  prometheus::Family<prometheus::Counter>* verdicts_;
  prometheus::Family<prometheus::Counter>* sweep_;
  prometheus::Family<prometheus::Counter>* build_ids_;
  prometheus::Family<prometheus::Histogram>* resolution_;
  prometheus::Family<prometheus::Counter>* kernel_;
  prometheus::Family<prometheus::Counter>* ringbuf_drops_;
  prometheus::Family<prometheus::Counter>* sink_errors_;
  prometheus::Family<prometheus::Counter>* prog_run_seconds_;
  prometheus::Family<prometheus::Counter>* prog_runs_;
  prometheus::Family<prometheus::Gauge>* sink_queue_;
  prometheus::Family<prometheus::Counter>* sink_delivered_;
  prometheus::Family<prometheus::Counter>* sink_failed_;
  prometheus::Family<prometheus::Counter>* sink_dropped_;
  prometheus::Family<prometheus::Gauge>* sink_up_;
  prometheus::Counter* cache_hits_;
  prometheus::Counter* cache_misses_;
  prometheus::Counter* cache_evictions_;
  prometheus::Gauge* cache_entries_;
  prometheus::Counter* decode_errors_;
  prometheus::Gauge* process_entries_;
  prometheus::Counter* process_evictions_;
  prometheus::Counter* reloads_ok_;
  prometheus::Counter* reloads_error_;
  prometheus::Gauge* policies_loaded_;
  prometheus::Gauge* policy_generation_;
  prometheus::Gauge* last_reload_ok_;
  prometheus::Counter* late_ok_;
  prometheus::Counter* late_failed_;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_METRICS_METRICS_H_
