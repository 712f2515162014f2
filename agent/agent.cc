#include "agent/agent.h"

#include <time.h>

#include <fstream>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/common/log.h"
#include "agent/event/decoder.h"
#include "bpf/execmon_abi.h"

namespace execmon {
namespace {

// Kernel counters that mean an event or a build ID was lost.
struct LossCounter {
  int stat;
  const char* what;
};
constexpr LossCounter kLossCounters[] = {
    {EM_STAT_RB_DROP_EXEC, "exec events lost: ring buffer full"},
    {EM_STAT_RB_DROP_EXIT, "exit events lost: ring buffer full"},
    {EM_STAT_RB_DROP_FORK, "fork records lost: ring buffer full"},
    {EM_STAT_PENDING_FULL, "execs sent without build ID: pending table full"},
    {EM_STAT_TW_SCHEDULE_FAIL, "execs sent without build ID: task_work failed"},
    {EM_STAT_PENDING_REPLACED, "pending resolutions replaced before running"},
};

int64_t ClockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Splits concatenated iterator output into decoded records.
std::vector<KernelRecord> DecodeAll(absl::Span<const uint8_t> data,
                                    uint64_t* errors) {
  std::vector<KernelRecord> out;
  while (!data.empty()) {
    size_t n = RecordSize(data);
    if (n == 0 || n > data.size()) {
      ++*errors;
      LogError("iterator output: truncated record (", data.size(), " bytes left)");
      break;
    }
    auto rec = DecodeRecord(data.subspan(0, n));
    if (rec.ok()) {
      out.push_back(*std::move(rec));
    } else {
      ++*errors;
      LogError("iterator output: ", rec.status().message());
    }
    data.remove_prefix(n);
  }
  return out;
}

}  // namespace

int64_t BootToRealtimeNs() {
  return ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_BOOTTIME);
}

std::string ShortBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  id = absl::StrReplaceAll(id, {{"-", ""}});
  return id.substr(0, 8);
}

Agent::Agent(AgentOptions options, std::vector<std::unique_ptr<EventSink>> sinks)
    : options_(std::move(options)),
      sinks_(std::move(sinks)),
      table_(options_.max_processes, options_.boot_id),
      writer_(options_.node) {
  writer_.set_boot_to_real_ns(BootToRealtimeNs());
}

void Agent::Emit(const char* type, const std::string& json) {
  for (auto& sink : sinks_) {
    absl::Status s = sink->Write(type, json);
    if (!s.ok()) {
      ++counters_.sink_errors;
      LogError(s.message());
    }
  }
}

void Agent::FlushSinks() {
  for (auto& sink : sinks_) {
    absl::Status s = sink->Flush();
    if (!s.ok()) {
      ++counters_.sink_errors;
      LogError(s.message());
    }
  }
}

void Agent::ResolveLate(ExecEvent& e) {
  ResolveItem item;
  item.addr = EM_RESOLVE_EXE;
  item.key = e.exe;
  auto raw = loader_->Resolve(e.pid, absl::MakeConstSpan(&item, 1),
                              BuildIdSource::kIterator);
  e.build_id.source = BuildIdSource::kIterator;
  if (!raw.ok()) {
    ++counters_.late_resolution_errors;
    LogWarning("late build-ID resolution of pid ", e.pid, ": ",
               raw.status().message());
    e.build_id.error = EM_BID_ERR_READ_FAULT;
    return;
  }
  for (KernelRecord& rec : DecodeAll(*raw, &counters_.decode_errors)) {
    if (auto* r = std::get_if<Resolved>(&rec)) {
      e.build_id = r->build_id;
      e.resolved_ns = r->ktime_ns;
      ++counters_.late_resolutions;
      return;
    }
  }
  // The iterator found no such process: it exited before we got to it.
  e.build_id.error = EM_BID_ERR_EXITED;
  ++counters_.late_resolution_errors;
}

void Agent::HandleExec(ExecEvent e) {
  if (e.build_id.error == EM_BID_ERR_PENDING && loader_ != nullptr) {
    ResolveLate(e);
  }
  ++counters_.exec_events;
  const ProcessInfo* parent = table_.Find(e.ppid);
  // Copy what the parent entry says before the insert may move it.
  std::optional<ProcessInfo> parent_copy;
  if (parent != nullptr) parent_copy = *parent;
  const ProcessInfo& self = table_.OnExec(e);
  Emit("exec", writer_.Exec(e, self, parent_copy ? &*parent_copy : nullptr));
}

void Agent::OnRecord(absl::Span<const uint8_t> data) {
  auto rec = DecodeRecord(data);
  if (!rec.ok()) {
    ++counters_.decode_errors;
    LogError("ring buffer: ", rec.status().message());
    return;
  }
  if (auto* e = std::get_if<ExecEvent>(&*rec)) {
    HandleExec(std::move(*e));
  } else if (auto* f = std::get_if<ForkEvent>(&*rec)) {
    ++counters_.fork_records;
    table_.OnFork(*f);
  } else if (auto* x = std::get_if<ExitEvent>(&*rec)) {
    ++counters_.exit_events;
    std::optional<ProcessInfo> info = table_.OnExit(*x);
    Emit("exit", writer_.Exit(*x, info ? &*info : nullptr));
  } else {
    ++counters_.decode_errors;
    LogError("ring buffer: unexpected iterator record");
  }
}

absl::Status Agent::Snapshot() {
  auto tasks_raw = loader_->RunSnapshotTasks();
  if (!tasks_raw.ok()) return tasks_raw.status();
  auto objects_raw = loader_->RunSnapshotObjects();
  if (!objects_raw.ok()) return objects_raw.status();

  std::vector<SnapTask> tasks;
  for (KernelRecord& r : DecodeAll(*tasks_raw, &counters_.decode_errors)) {
    if (auto* t = std::get_if<SnapTask>(&r)) tasks.push_back(std::move(*t));
  }
  absl::flat_hash_map<uint32_t, std::vector<SnapObject>> objects;
  for (KernelRecord& r : DecodeAll(*objects_raw, &counters_.decode_errors)) {
    if (auto* o = std::get_if<SnapObject>(&r)) {
      objects[o->pid].push_back(std::move(*o));
    }
  }

  // Read each distinct file once, in one of the processes mapping it.
  absl::flat_hash_map<FileKey, BuildId> resolved;
  absl::flat_hash_map<uint32_t, std::vector<ResolveItem>> work;
  for (auto& [pid, objs] : objects) {
    for (SnapObject& o : objs) {
      if (o.build_id.error != EM_BID_ERR_PENDING) {
        resolved.emplace(o.file, o.build_id);
        continue;
      }
      if (resolved.contains(o.file)) continue;
      resolved.emplace(o.file, o.build_id);  // claimed; filled below
      work[pid].push_back(ResolveItem{o.vm_start, o.vm_size, o.file});
    }
  }
  for (auto& [pid, items] : work) {
    auto raw = loader_->Resolve(pid, items, BuildIdSource::kSnapshot);
    if (!raw.ok()) {
      LogWarning("snapshot: resolving pid ", pid, ": ", raw.status().message());
      continue;
    }
    for (KernelRecord& r : DecodeAll(*raw, &counters_.decode_errors)) {
      if (auto* res = std::get_if<Resolved>(&r)) {
        if (res->index < items.size()) resolved[items[res->index].key] = res->build_id;
      }
    }
  }

  for (const SnapTask& t : tasks) {
    auto it = objects.find(t.pid);
    const SnapObject* exe = nullptr;
    if (it != objects.end()) {
      for (SnapObject& o : it->second) {
        auto r = resolved.find(o.file);
        if (r != resolved.end()) o.build_id = r->second;
        if (o.build_id.error == EM_BID_ERR_PENDING) {
          o.build_id.error = EM_BID_ERR_EXITED;  // vanished meanwhile
        }
        if (o.is_exe && exe == nullptr) exe = &o;
      }
    }
    table_.OnSnapshot(t, exe ? exe->path : std::string(),
                      exe ? exe->build_id : BuildId{});
  }
  table_.LinkParents();
  if (!options_.emit_snapshot) return absl::OkStatus();

  for (const SnapTask& t : tasks) {
    const ProcessInfo* self = table_.Find(t.pid);
    if (self == nullptr) continue;
    auto it = objects.find(t.pid);
    const SnapObject* exe = nullptr;
    std::vector<const SnapObject*> elf_objects;
    if (it != objects.end()) {
      for (const SnapObject& o : it->second) {
        if (o.is_exe && exe == nullptr) exe = &o;
        // Mapped files that are not ELF (locale archives, fonts) are not
        // objects of the process in the sense of the event contract.
        if (o.build_id.error == EM_BID_ERR_NOT_ELF) continue;
        elf_objects.push_back(&o);
      }
    }
    ++counters_.snapshot_events;
    Emit("snapshot", writer_.Snapshot(t, *self, exe, elf_objects));
  }
  FlushSinks();
  LogInfo("snapshot: ", tasks.size(), " processes, ", resolved.size(),
          " distinct mapped files");
  return absl::OkStatus();
}

void Agent::ReportKernelLoss(bool final_report) {
  auto stats = loader_->ReadStats();
  if (!stats.ok()) {
    LogWarning("reading kernel counters: ", stats.status().message());
    return;
  }
  if (last_stats_.size() != stats->size()) last_stats_.assign(stats->size(), 0);
  for (const LossCounter& c : kLossCounters) {
    uint64_t now = (*stats)[c.stat];
    if (now > last_stats_[c.stat]) {
      LogWarning(now - last_stats_[c.stat], " ", c.what, " (", now, " total)");
    }
  }
  last_stats_ = *stats;
  if (final_report) {
    LogInfo("kernel: execs=", (*stats)[EM_STAT_EXEC],
            " cache_hits=", (*stats)[EM_STAT_CACHE_HIT],
            " cache_misses=", (*stats)[EM_STAT_CACHE_MISS],
            " task_work=", (*stats)[EM_STAT_TW_RAN],
            " ring_buffer_drops=",
            (*stats)[EM_STAT_RB_DROP_EXEC] + (*stats)[EM_STAT_RB_DROP_EXIT] +
                (*stats)[EM_STAT_RB_DROP_FORK]);
    LogInfo("agent: exec=", counters_.exec_events, " exit=",
            counters_.exit_events, " snapshot=", counters_.snapshot_events,
            " decode_errors=", counters_.decode_errors,
            " sink_errors=", counters_.sink_errors);
  }
}

void Agent::Tick() {
  absl::Time now = absl::Now();
  if (now - last_tick_ < absl::Seconds(1)) return;
  last_tick_ = now;
  loader_->RefreshClockOffset();
  writer_.set_boot_to_real_ns(BootToRealtimeNs());
  ReportKernelLoss(false);
}

absl::Status Agent::Run(const std::atomic<bool>& stop) {
  if (absl::Status s = loader_->Attach(); !s.ok()) return s;
  if (options_.snapshot) {
    if (absl::Status s = Snapshot(); !s.ok()) {
      LogWarning("snapshot failed, continuing without it: ", s.message());
    }
  }
  LogInfo("ready: build-ID resolver ",
          loader_->uses_task_work() ? "task_work" : "iterator", ", node ",
          options_.node);
  absl::Status status;
  while (!stop.load()) {
    auto n = loader_->Poll(100);
    if (!n.ok()) {
      status = n.status();
      break;
    }
    if (*n > 0) FlushSinks();
    Tick();
  }
  loader_->Detach();
  auto drained = loader_->Drain();
  if (!drained.ok()) LogWarning(drained.status().message());
  FlushSinks();
  ReportKernelLoss(true);
  return status;
}

}  // namespace execmon
