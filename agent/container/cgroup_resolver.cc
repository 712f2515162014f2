#include "agent/container/cgroup_resolver.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/log.h"

namespace execmon {
namespace {

// kernfs exports its nodes by 64-bit id under this handle type
// (FILEID_KERNFS in include/linux/exportfs.h).
constexpr int kFileIdKernfs = 0xfe;

// The first cgroup2 mount in /proc/self/mountinfo.
std::string FindCgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "... mountpoint opts ... - fstype source superopts"
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 1 == f.end()) continue;
    if (*(dash + 1) == "cgroup2") return f[4];
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupResolver>> CgroupResolver::Create(
    size_t max_entries) {
  auto r = std::unique_ptr<CgroupResolver>(new CgroupResolver());
  r->max_entries_ = max_entries == 0 ? 1 : max_entries;
  r->mount_point_ = FindCgroup2Mount();
  if (r->mount_point_.empty()) {
    return absl::FailedPreconditionError(
        "no cgroup v2 hierarchy mounted: container attribution needs cgroup v2 "
        "(unified or hybrid /sys/fs/cgroup/unified)");
  }
  r->mount_fd_ =
      open(r->mount_point_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r->mount_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("opening cgroup v2 mount ", r->mount_point_, ": ",
                     std::strerror(errno)));
  }
  return r;
}

CgroupResolver::~CgroupResolver() {
  if (mount_fd_ >= 0) close(mount_fd_);
}

std::string CgroupResolver::PathOf(uint64_t id) {
  if (id == 1) return "/";  // the root cgroup
  struct {
    file_handle fh;
    uint64_t id;
  } h{};
  h.fh.handle_bytes = sizeof(uint64_t);
  h.fh.handle_type = kFileIdKernfs;
  std::memcpy(h.fh.f_handle, &id, sizeof(id));
  int fd =
      open_by_handle_at(mount_fd_, &h.fh, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) return "";  // removed already, or no CAP_DAC_READ_SEARCH
  char link[64];
  char buf[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return "";
  std::string path(buf, n);
  if (absl::StartsWith(path, mount_point_)) path.erase(0, mount_point_.size());
  return path.empty() ? "/" : path;
}

CgroupInfo& CgroupResolver::Insert(uint64_t id, std::string path) {
  auto it = by_id_.find(id);
  if (it != by_id_.end()) {
    by_seq_.erase(it->second.seq);
    by_id_.erase(it);
  }
  while (by_id_.size() >= max_entries_ && !by_seq_.empty()) {
    by_id_.erase(by_seq_.begin()->second);
    by_seq_.erase(by_seq_.begin());
    ++evictions_;
  }
  Entry e;
  e.info.container = ParseCgroupPath(path);
  e.info.path = std::move(path);
  e.seq = next_seq_++;
  by_seq_[e.seq] = id;
  return by_id_.insert_or_assign(id, std::move(e)).first->second.info;
}

void CgroupResolver::OnMkdir(uint64_t id, std::string path) {
  Insert(id, std::move(path));
}

void CgroupResolver::OnRmdir(uint64_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  by_seq_.erase(it->second.seq);
  by_id_.erase(it);
}

const CgroupInfo& CgroupResolver::Resolve(uint64_t id) {
  auto it = by_id_.find(id);
  if (it != by_id_.end()) return it->second.info;
  std::string path = PathOf(id);
  if (path.empty()) ++unresolved_;
  return Insert(id, std::move(path));
}

}  // namespace execmon
