// Per-node process table: which exec each live process is running, so
// events carry exec_id and parent_exec_id (Tetragon-style process
// identity). Bounded: past max_entries the least recently started entry is
// evicted (counted); exits remove entries.
#ifndef EXECMON_AGENT_PROCESS_PROCESS_TABLE_H_
#define EXECMON_AGENT_PROCESS_PROCESS_TABLE_H_

#include <cstdint>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "agent/event/event.h"

namespace execmon {

struct ProcessInfo {
  uint32_t pid = 0;
  uint32_t ppid = 0;
  std::string exec_id;
  std::string parent_exec_id;
  uint64_t start_ns = 0;  // task start (boot clock)
  uint64_t exec_ns = 0;   // exec (or fork, or snapshot) time
  std::string binary;
  BuildId build_id;
  uint64_t cgroup_id = 0;
  enum class Origin { kExec, kFork, kSnapshot } origin = Origin::kExec;
  uint64_t seq = 0;  // insertion order, for eviction
};

class ProcessTable {
 public:
  // boot_id names this boot (e.g. /proc/sys/kernel/random/boot_id) so exec
  // IDs are unique across reboots as well as within one.
  ProcessTable(size_t max_entries, std::string boot_id);

  // Records an exec; returns the entry (with exec_id and parent_exec_id).
  const ProcessInfo& OnExec(const ExecEvent& e);
  // What OnExec would record, without recording it (an exec that failed).
  ProcessInfo ExecInfo(const ExecEvent& e) const;
  // Records a new process (fork without exec yet): it runs its parent's
  // binary under an exec_id of its own.
  const ProcessInfo& OnFork(const ForkEvent& e);
  // Records a process found by the start-up snapshot.
  const ProcessInfo& OnSnapshot(const SnapTask& t, std::string binary,
                                BuildId build_id);
  // Removes the process; returns what it was running, if known.
  std::optional<ProcessInfo> OnExit(const ExitEvent& e);

  const ProcessInfo* Find(uint32_t pid) const;
  // Fills in parent_exec_id of every entry whose parent is now known
  // (after a snapshot, parents may be recorded after their children).
  void LinkParents();

  size_t size() const { return by_pid_.size(); }
  uint64_t evictions() const { return evictions_; }

  std::string ExecId(uint32_t pid, uint64_t ktime_ns) const;

 private:
  ProcessInfo& Insert(ProcessInfo info);

  size_t max_entries_;
  std::string boot_id_;
  uint64_t next_seq_ = 1;
  uint64_t evictions_ = 0;
  absl::flat_hash_map<uint32_t, ProcessInfo> by_pid_;
  absl::btree_map<uint64_t, uint32_t> by_seq_;  // seq -> pid
};

}  // namespace execmon

#endif  // EXECMON_AGENT_PROCESS_PROCESS_TABLE_H_
