// The agent's data path: kernel records -> decode -> process table ->
// JSON -> sinks, plus the start-up snapshot and late (iterator) build-ID
// resolution. Owns no kernel objects: it is driven by a BpfLoader.
#ifndef EXECMON_AGENT_AGENT_H_
#define EXECMON_AGENT_AGENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "agent/bpf/bpf_loader.h"
#include "agent/event/event.h"
#include "agent/event/json_writer.h"
#include "agent/process/process_table.h"
#include "agent/sink/event_sink.h"

namespace execmon {

struct AgentOptions {
  std::string node;
  std::string boot_id;
  size_t max_processes = 65536;
  bool snapshot = true;
  bool emit_snapshot = true;
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

  // Attaches, snapshots, then processes events until *stop. On stop:
  // detaches, drains the ring buffer and flushes the sinks.
  absl::Status Run(const std::atomic<bool>& stop);

  const AgentCounters& counters() const { return counters_; }
  const ProcessTable& processes() const { return table_; }

 private:
  void Emit(const char* type, const std::string& json);
  void FlushSinks();
  void HandleExec(ExecEvent e);
  void ResolveLate(ExecEvent& e);
  void Tick();
  void ReportKernelLoss(bool final_report);

  AgentOptions options_;
  std::vector<std::unique_ptr<EventSink>> sinks_;
  BpfLoader* loader_ = nullptr;
  ProcessTable table_;
  JsonWriter writer_;
  AgentCounters counters_;
  std::vector<uint64_t> last_stats_;
  absl::Time last_tick_ = absl::InfinitePast();
};

// CLOCK_REALTIME - CLOCK_BOOTTIME now.
int64_t BootToRealtimeNs();
// /proc/sys/kernel/random/boot_id, first 8 hex digits ("" if unreadable).
std::string ShortBootId();

}  // namespace execmon

#endif  // EXECMON_AGENT_AGENT_H_
