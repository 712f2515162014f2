// cgroup v2 id -> path -> container. Paths come from the kernel's
// cgroup_mkdir records (every cgroup created while the agent runs, known
// before any exec in it) and, for older cgroups, from the id itself
// (open_by_handle_at on the cgroup2 mount: kernfs ids are file handles).
// Bounded; entries are forgotten when the kernel reports the rmdir.
#ifndef EXECMON_AGENT_CONTAINER_CGROUP_RESOLVER_H_
#define EXECMON_AGENT_CONTAINER_CGROUP_RESOLVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "agent/container/cgroup_path.h"

namespace execmon {

struct CgroupInfo {
  std::string path;  // relative to the cgroup v2 root; "" if unresolvable
  ContainerRef container;
};

class CgroupResolver {
 public:
  // Finds the cgroup v2 mount (pure v2 or hybrid /sys/fs/cgroup/unified).
  static absl::StatusOr<std::unique_ptr<CgroupResolver>> Create(
      size_t max_entries);
  ~CgroupResolver();
  CgroupResolver(const CgroupResolver&) = delete;
  CgroupResolver& operator=(const CgroupResolver&) = delete;

  void OnMkdir(uint64_t id, std::string path);
  void OnRmdir(uint64_t id);
  // The cgroup's path and container; resolved and cached on first use.
  const CgroupInfo& Resolve(uint64_t id);

  const std::string& mount_point() const { return mount_point_; }
  size_t size() const { return by_id_.size(); }
  uint64_t evictions() const { return evictions_; }
  uint64_t unresolved() const { return unresolved_; }

 private:
  CgroupResolver() = default;
  std::string PathOf(uint64_t id);
  CgroupInfo& Insert(uint64_t id, std::string path);

  std::string mount_point_;
  int mount_fd_ = -1;
  size_t max_entries_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t evictions_ = 0;
  uint64_t unresolved_ = 0;
  struct Entry {
    CgroupInfo info;
    uint64_t seq;
  };
  absl::flat_hash_map<uint64_t, Entry> by_id_;
  absl::btree_map<uint64_t, uint64_t> by_seq_;  // seq -> id, oldest first
};

}  // namespace execmon

#endif  // EXECMON_AGENT_CONTAINER_CGROUP_RESOLVER_H_
