#include "agent/metrics/metrics.h"

#include "bpf/execmon_abi.h"

namespace execmon {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;

// Cumulative values read elsewhere (kernel maps, librdkafka) become
// Prometheus counters by adding the difference; they never go down.
void AdvanceTo(Counter& c, double total) {
  double now = c.Value();
  if (total > now) c.Increment(total - now);
}

// Exec-to-build-ID latencies: a cache hit is 0, a task_work read a few
// microseconds, an iterator resolution up to milliseconds.
const prometheus::Histogram::BucketBoundaries kResolutionBuckets = {
    1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
    5e-4, 1e-3,   2.5e-3, 1e-2, 0.1,    0.5,  1,    5};

struct KernelCounter {
  int stat;
  const char* name;
};

// Kernel counters exported as execmon_kernel_events_total{event}.
constexpr KernelCounter kKernelCounters[] = {
    {EM_STAT_EXEC, "exec"},
    {EM_STAT_TW_SCHEDULED, "task_work_scheduled"},
    {EM_STAT_TW_SCHEDULE_FAIL, "task_work_schedule_failed"},
    {EM_STAT_TW_RAN, "task_work_ran"},
    {EM_STAT_PENDING_FULL, "pending_table_full"},
    {EM_STAT_PENDING_EXITED, "exited_before_resolution"},
    {EM_STAT_PENDING_REPLACED, "pending_replaced"},
    {EM_STAT_CACHE_SKIP_FRESH, "cache_skip_fresh"},
    {EM_STAT_ITER_RESOLVED, "iterator_resolved"},
    {EM_STAT_VERDICT_DENY, "verdict_deny"},
    {EM_STAT_KILL, "kill"},
    {EM_STAT_KILL_FAILED, "kill_failed"},
    {EM_STAT_SWEEP_VIOLATIONS, "sweep_violation"},
    {EM_STAT_PC_RESOLVED, "page_cache_resolved"},
    {EM_STAT_PC_NOT_RESIDENT, "page_cache_not_resident"},
    {EM_STAT_STATE_LOST, "exec_state_lost"},
    {EM_STAT_HELD, "held"},
    {EM_STAT_LSM_RAN, "bprm_check"},
    {EM_STAT_EXEC_DENIED, "exec_denied"},
    {EM_STAT_LSM_BUSY, "bprm_check_busy"},
    {EM_STAT_HASHED, "sha256_hashed"},
    {EM_STAT_HASH_FAIL, "sha256_failed"},
};

}  // namespace

Metrics::Metrics(const BuildInfo& info)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  BuildGauge()
      .Name("execmon_build_info")
      .Help("execmon version, kernel release and build-ID resolver (value 1)")
      .Register(r)
      .Add({{"version", info.version},
            {"kernel", info.kernel},
            {"resolver", info.resolver},
            {"chain", info.chain},
            {"exec_lsm", info.exec_lsm}})
      .Set(1);
  events_ = &BuildCounter()
                 .Name("execmon_events_total")
                 .Help("Events handed to the sinks, by type")
                 .Register(r);
  verdicts_ = &BuildCounter()
                   .Name("execmon_exec_verdicts_total")
                   .Help("Exec verdicts by decision, action taken and mode")
                   .Register(r);
  sweep_ = &BuildCounter()
                .Name("execmon_sweep_violations_total")
                .Help("Running processes found violating policy by the sweep")
                .Register(r);
  build_ids_ =
      &BuildCounter()
           .Name("execmon_build_id_results_total")
           .Help(
               "Exec build-ID outcomes by source and result (ok or the "
               "build_id_error)")
           .Register(r);
  resolution_ = &BuildHistogram()
                     .Name("execmon_build_id_resolution_seconds")
                     .Help("Exec to build ID known, by source")
                     .Register(r);
  kernel_ = &BuildCounter()
                 .Name("execmon_kernel_events_total")
                 .Help("Kernel-side counters of the BPF programs")
                 .Register(r);
  ringbuf_drops_ =
      &BuildCounter()
           .Name("execmon_ringbuf_dropped_total")
           .Help("Records lost because the BPF ring buffer was full")
           .Register(r);
  sink_errors_ = &BuildCounter()
                      .Name("execmon_sink_errors_total")
                      .Help("Events a sink failed to accept")
                      .Register(r);
  prog_run_seconds_ = &BuildCounter()
                           .Name("execmon_bpf_program_run_seconds_total")
                           .Help("Time spent in each BPF program (--bpf_stats)")
                           .Register(r);
  prog_runs_ = &BuildCounter()
                    .Name("execmon_bpf_program_runs_total")
                    .Help("Runs of each BPF program (--bpf_stats)")
                    .Register(r);
  sink_queue_ = &BuildGauge()
                     .Name("execmon_sink_queue_events")
                     .Help("Events buffered in a sink awaiting delivery")
                     .Register(r);
  sink_delivered_ = &BuildCounter()
                         .Name("execmon_sink_delivered_total")
                         .Help("Events a sink's destination acknowledged")
                         .Register(r);
  sink_failed_ = &BuildCounter()
                      .Name("execmon_sink_failed_total")
                      .Help("Events a sink's destination rejected")
                      .Register(r);
  sink_dropped_ = &BuildCounter()
                       .Name("execmon_sink_dropped_total")
                       .Help("Events a sink dropped, by reason")
                       .Register(r);
  sink_up_ = &BuildGauge()
                  .Name("execmon_sink_up")
                  .Help(
                      "1 when a sink can deliver (Kafka: a broker is "
                      "reachable), else 0")
                  .Register(r);
  auto& cache =
      BuildCounter()
          .Name("execmon_build_id_cache_total")
          .Help("Build-ID cache lookups at exec, by result, and evictions")
          .Register(r);
  cache_hits_ = &cache.Add({{"result", "hit"}});
  cache_misses_ = &cache.Add({{"result", "miss"}});
  cache_evictions_ = &cache.Add({{"result", "eviction"}});
  cache_entries_ = &BuildGauge()
                        .Name("execmon_build_id_cache_entries")
                        .Help("Entries in the kernel build-ID cache")
                        .Register(r)
                        .Add({});
  decode_errors_ = &BuildCounter()
                        .Name("execmon_decode_errors_total")
                        .Help("Kernel records the agent could not decode")
                        .Register(r)
                        .Add({});
  process_entries_ = &BuildGauge()
                          .Name("execmon_process_table_entries")
                          .Help("Processes in the agent's process table")
                          .Register(r)
                          .Add({});
  process_evictions_ = &BuildCounter()
                            .Name("execmon_process_table_evictions_total")
                            .Help("Process-table entries evicted by its bound")
                            .Register(r)
                            .Add({});
  auto& reloads = BuildCounter()
                      .Name("execmon_policy_reloads_total")
                      .Help("Policy loads and reloads by result")
                      .Register(r);
  reloads_ok_ = &reloads.Add({{"result", "ok"}});
  reloads_error_ = &reloads.Add({{"result", "error"}});
  policies_loaded_ = &BuildGauge()
                          .Name("execmon_policies_loaded")
                          .Help("Policies in force")
                          .Register(r)
                          .Add({});
  policy_generation_ = &BuildGauge()
                            .Name("execmon_policy_generation")
                            .Help("Generation of the policies in force")
                            .Register(r)
                            .Add({});
  last_reload_ok_ =
      &BuildGauge()
           .Name("execmon_policy_last_reload_success")
           .Help("1 if the last policy (re)load succeeded, else 0")
           .Register(r)
           .Add({});
  last_reload_ok_->Set(1);
  auto& late = BuildCounter()
                   .Name("execmon_late_resolutions_total")
                   .Help(
                       "Build IDs resolved by iterator after the program "
                       "started (kernels without bpf_task_work), by result")
                   .Register(r);
  late_ok_ = &late.Add({{"result", "ok"}});
  late_failed_ = &late.Add({{"result", "error"}});
  // Every type and known label value exists from the start, so rate()
  // and absent() behave from the first scrape.
  for (const char* t : {"exec", "exit", "snapshot", "sweep"})
    events_->Add({{"type", t}});
  for (const char* rec : {"exec", "exit", "fork", "cgroup"}) {
    ringbuf_drops_->Add({{"record", rec}});
  }
  for (const KernelCounter& k : kKernelCounters)
    kernel_->Add({{"event", k.name}});
  // Verdicts that can happen, so the first deny or kill is an increase
  // from 0 rather than a new series (which increase() cannot see).
  // (Host processes: empty namespace and workload.)
  auto verdict = [this](const char* d, const char* a, const char* m) {
    verdicts_->Add({{"decision", d},
                    {"action", a},
                    {"mode", m},
                    {"namespace", ""},
                    {"workload", ""}});
  };
  for (const char* mode : {"audit", "enforce"}) {
    verdict("deny", "alert", mode);
    verdict("allow", "none", mode);
  }
  verdict("deny", "kill", "enforce");
  verdict("allow", "none", "none");
  verdict("unknown", "none", "none");
  for (const char* a : {"alert", "kill"}) sweep_->Add({{"action", a}});
}

void Metrics::AddSink(absl::string_view sink, bool reports_delivery) {
  std::string name(sink);
  sink_errors_->Add({{"sink", name}});
  sink_up_->Add({{"sink", name}}).Set(1);
  if (!reports_delivery) return;
  sink_queue_->Add({{"sink", name}});
  sink_delivered_->Add({{"sink", name}});
  sink_failed_->Add({{"sink", name}});
  for (const char* reason : {"queue_full", "timeout", "shutdown", "other"}) {
    sink_dropped_->Add({{"sink", name}, {"reason", reason}});
  }
}

void Metrics::SetSinkUp(absl::string_view sink, bool up) {
  sink_up_->Add({{"sink", std::string(sink)}}).Set(up ? 1 : 0);
}

void Metrics::OnEvent(absl::string_view type) {
  events_->Add({{"type", std::string(type)}}).Increment();
}

void Metrics::OnExec(const ExecEvent& e, absl::string_view decision,
                     absl::string_view action, absl::string_view mode,
                     absl::string_view ns, absl::string_view workload) {
  verdicts_
      ->Add({{"decision", std::string(decision)},
             {"action", std::string(action)},
             {"mode", mode.empty() ? "none" : std::string(mode)},
             {"namespace", std::string(ns)},
             {"workload", std::string(workload)}})
      .Increment();
  const char* source = BuildIdSourceName(e.build_id.source);
  build_ids_
      ->Add(
          {{"source", source},
           {"result",
            e.build_id.error == 0 ? "ok" : BuildIdErrorName(e.build_id.error)},
           {"namespace", std::string(ns)},
           {"workload", std::string(workload)}})
      .Increment();
  if (e.resolved_ns >= e.ktime_ns && e.resolved_ns != 0) {
    resolution_->Add({{"source", source}}, kResolutionBuckets)
        .Observe(static_cast<double>(e.resolved_ns - e.ktime_ns) / 1e9);
  }
}

void Metrics::OnSweep(absl::string_view action) {
  sweep_->Add({{"action", std::string(action)}}).Increment();
}

void Metrics::SetDecodeErrors(uint64_t total) {
  AdvanceTo(*decode_errors_, total);
}

void Metrics::OnSinkError(absl::string_view sink) {
  sink_errors_->Add({{"sink", std::string(sink)}}).Increment();
}

void Metrics::SetKernelStats(const std::vector<uint64_t>& s) {
  if (s.size() < EM_STAT_MAX) return;
  AdvanceTo(*cache_hits_, s[EM_STAT_CACHE_HIT]);
  AdvanceTo(*cache_misses_, s[EM_STAT_CACHE_MISS]);
  AdvanceTo(ringbuf_drops_->Add({{"record", "exec"}}), s[EM_STAT_RB_DROP_EXEC]);
  AdvanceTo(ringbuf_drops_->Add({{"record", "exit"}}), s[EM_STAT_RB_DROP_EXIT]);
  AdvanceTo(ringbuf_drops_->Add({{"record", "fork"}}), s[EM_STAT_RB_DROP_FORK]);
  AdvanceTo(ringbuf_drops_->Add({{"record", "cgroup"}}),
            s[EM_STAT_RB_DROP_CGROUP]);
  for (const KernelCounter& k : kKernelCounters) {
    AdvanceTo(kernel_->Add({{"event", k.name}}), s[k.stat]);
  }
}

void Metrics::SetCacheEntries(uint64_t entries, uint64_t fills) {
  cache_entries_->Set(static_cast<double>(entries));
  // The cache is never deleted from: whatever was filled and is gone was
  // evicted by the LRU.
  if (fills > entries) AdvanceTo(*cache_evictions_, fills - entries);
}

void Metrics::SetProcessTable(size_t entries, uint64_t evictions) {
  process_entries_->Set(static_cast<double>(entries));
  AdvanceTo(*process_evictions_, evictions);
}

void Metrics::OnPolicyReload(bool ok) {
  (ok ? reloads_ok_ : reloads_error_)->Increment();
  last_reload_ok_->Set(ok ? 1 : 0);
}

void Metrics::SetPolicies(size_t loaded, uint32_t generation) {
  policies_loaded_->Set(static_cast<double>(loaded));
  policy_generation_->Set(generation);
}

void Metrics::SetLateResolutions(uint64_t ok, uint64_t failed) {
  AdvanceTo(*late_ok_, ok);
  AdvanceTo(*late_failed_, failed);
}

void Metrics::SetProgramStats(const std::string& program, uint64_t run_ns,
                              uint64_t run_count) {
  AdvanceTo(prog_run_seconds_->Add({{"program", program}}),
            static_cast<double>(run_ns) / 1e9);
  AdvanceTo(prog_runs_->Add({{"program", program}}), run_count);
}

void Metrics::SetSinkQueue(absl::string_view sink, uint64_t depth) {
  sink_queue_->Add({{"sink", std::string(sink)}})
      .Set(static_cast<double>(depth));
}

void Metrics::SetSinkDelivered(absl::string_view sink, uint64_t n) {
  AdvanceTo(sink_delivered_->Add({{"sink", std::string(sink)}}), n);
}

void Metrics::SetSinkFailed(absl::string_view sink, uint64_t n) {
  AdvanceTo(sink_failed_->Add({{"sink", std::string(sink)}}), n);
}

void Metrics::SetSinkDropped(absl::string_view sink, absl::string_view reason,
                             uint64_t n) {
  AdvanceTo(sink_dropped_->Add(
                {{"sink", std::string(sink)}, {"reason", std::string(reason)}}),
            n);
}

}  // namespace execmon
