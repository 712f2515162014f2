// Watches a policy directory for changes with inotify, including the
// Kubernetes ConfigMap volume update (a new timestamped directory, then an
// atomic rename of the "..data" symlink), and the directories of list
// files the policies reference.
#ifndef EXECMON_AGENT_POLICY_WATCHER_H_
#define EXECMON_AGENT_POLICY_WATCHER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace execmon {

class PolicyWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyWatcher>> Create(
      const std::string& dir);
  ~PolicyWatcher();
  PolicyWatcher(const PolicyWatcher&) = delete;
  PolicyWatcher& operator=(const PolicyWatcher&) = delete;

  // Also watches these directories (list files' homes); idempotent.
  void WatchDirs(const std::vector<std::string>& dirs);

  // Drains pending notifications without blocking; true if any concerned
  // the watched directories. A policy directory that was removed is
  // watched again as soon as it exists again (true then too); until it
  // does, the agent says so once and keeps the policies it loaded.
  bool Changed();

  // Whether the policy directory itself is being watched.
  bool watching() const { return watched_.contains(root_); }

 private:
  PolicyWatcher(int fd, std::string root) : fd_(fd), root_(std::move(root)) {}
  bool Add(const std::string& dir);

  int fd_;
  std::string root_;
  absl::flat_hash_set<std::string> watched_;
  absl::flat_hash_map<int, std::string> dirs_;  // watch descriptor -> dir
};

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_WATCHER_H_
