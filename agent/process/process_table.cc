#include "agent/process/process_table.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace execmon {

ProcessTable::ProcessTable(size_t max_entries, std::string boot_id)
    : max_entries_(max_entries == 0 ? 1 : max_entries),
      boot_id_(std::move(boot_id)) {}

std::string ProcessTable::ExecId(uint32_t pid, uint64_t ktime_ns) const {
  return absl::StrCat(boot_id_, ":", ktime_ns, ":", pid);
}

ProcessInfo& ProcessTable::Insert(ProcessInfo info) {
  auto it = by_pid_.find(info.pid);
  if (it != by_pid_.end()) {
    by_seq_.erase(it->second.seq);
    by_pid_.erase(it);
  }
  // Full: the oldest entries go, except the new entry's parent, which its
  // event is about to be rendered with (unless nothing else is left).
  auto victim = by_seq_.begin();
  while (by_pid_.size() >= max_entries_ && !by_seq_.empty()) {
    if (victim != by_seq_.end() && victim->second == info.ppid &&
        info.ppid != info.pid) {
      ++victim;
    }
    if (victim == by_seq_.end()) victim = by_seq_.begin();
    by_pid_.erase(victim->second);
    victim = by_seq_.erase(victim);
    ++evictions_;
  }
  info.seq = next_seq_++;
  by_seq_[info.seq] = info.pid;
  auto [pos, inserted] = by_pid_.emplace(info.pid, std::move(info));
  return pos->second;
}

const ProcessInfo& ProcessTable::OnExec(const ExecEvent& e) {
  return Insert(ExecInfo(e));
}

ProcessInfo ProcessTable::ExecInfo(const ExecEvent& e) const {
  ProcessInfo info;
  info.pid = e.pid;
  info.ppid = e.ppid;
  info.exec_id = ExecId(e.pid, e.ktime_ns);
  // A pid is never its own parent: its old entry is not one.
  const ProcessInfo* parent = e.ppid != e.pid ? Find(e.ppid) : nullptr;
  if (parent != nullptr) info.parent_exec_id = parent->exec_id;
  info.start_ns = e.start_ns;
  info.exec_ns = e.ktime_ns;
  info.binary = e.binary;
  info.build_id = e.build_id;
  info.cgroup_id = e.cgroup_id;
  info.origin = ProcessInfo::Origin::kExec;
  return info;
}

const ProcessInfo& ProcessTable::OnFork(const ForkEvent& e) {
  ProcessInfo info;
  info.pid = e.pid;
  info.ppid = e.ppid;
  info.exec_id = ExecId(e.pid, e.ktime_ns);
  const ProcessInfo* parent = e.ppid != e.pid ? Find(e.ppid) : nullptr;
  if (parent != nullptr) {
    info.parent_exec_id = parent->exec_id;
    info.binary = parent->binary;
    info.build_id = parent->build_id;
    info.cgroup_id = parent->cgroup_id;
  }
  info.start_ns = e.start_ns;
  info.exec_ns = e.ktime_ns;
  info.origin = ProcessInfo::Origin::kFork;
  return Insert(std::move(info));
}

const ProcessInfo& ProcessTable::OnSnapshot(const SnapTask& t,
                                            std::string binary,
                                            BuildId build_id) {
  ProcessInfo info;
  info.pid = t.pid;
  info.ppid = t.ppid;
  // The exec time of a process older than the agent is unknown; its start
  // time names it just as uniquely.
  info.exec_id = ExecId(t.pid, t.start_ns);
  info.start_ns = t.start_ns;
  info.exec_ns = t.start_ns;
  info.binary = std::move(binary);
  info.build_id = std::move(build_id);
  info.cgroup_id = t.cgroup_id;
  info.origin = ProcessInfo::Origin::kSnapshot;
  return Insert(std::move(info));
}

std::optional<ProcessInfo> ProcessTable::OnExit(const ExitEvent& e) {
  auto it = by_pid_.find(e.pid);
  if (it == by_pid_.end()) return std::nullopt;
  ProcessInfo info = std::move(it->second);
  by_seq_.erase(info.seq);
  by_pid_.erase(it);
  return info;
}

const ProcessInfo* ProcessTable::Find(uint32_t pid) const {
  auto it = by_pid_.find(pid);
  return it == by_pid_.end() ? nullptr : &it->second;
}

void ProcessTable::LinkParents() {
  for (auto& [pid, info] : by_pid_) {
    if (!info.parent_exec_id.empty()) continue;
    auto parent = by_pid_.find(info.ppid);
    if (parent != by_pid_.end() && parent->first != pid) {
      info.parent_exec_id = parent->second.exec_id;
    }
  }
}

}  // namespace execmon
