// Watches a policy directory for changes with inotify, including the
// Kubernetes ConfigMap volume update (a new timestamped directory, then an
// atomic rename of the "..data" symlink), and the directories of list
// files the policies reference.
#ifndef EXECMON_AGENT_POLICY_WATCHER_H_
#define EXECMON_AGENT_POLICY_WATCHER_H_

#include <memory>
#include <string>
#include <vector>

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
  // the watched directories.
  bool Changed();

 private:
  explicit PolicyWatcher(int fd) : fd_(fd) {}
  void Add(const std::string& dir);

  int fd_;
  absl::flat_hash_set<std::string> watched_;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_POLICY_WATCHER_H_
