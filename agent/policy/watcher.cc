#include "agent/policy/watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace execmon {
namespace {

// Everything that can change what a directory's files say: edits, new and
// removed files, renames (editors' and kubelet's atomic swaps), chmod.
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                           IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY;

}  // namespace

absl::StatusOr<std::unique_ptr<PolicyWatcher>> PolicyWatcher::Create(
    const std::string& dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("inotify_init1: ", std::strerror(errno)));
  }
  auto w = std::unique_ptr<PolicyWatcher>(new PolicyWatcher(fd, dir));
  int wd = inotify_add_watch(fd, dir.c_str(), kMask);
  if (wd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "watching policy directory ", dir, ": ", std::strerror(errno)));
  }
  w->watched_.insert(dir);
  w->dirs_[wd] = dir;
  return w;
}

PolicyWatcher::~PolicyWatcher() { close(fd_); }

bool PolicyWatcher::Add(const std::string& dir) {
  if (watched_.contains(dir)) return true;
  int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
  if (wd < 0) {
    if (dir != root_) {
      LogWarning("watching ", dir,
                 " for policy list changes: ", std::strerror(errno));
    }
    return false;
  }
  watched_.insert(dir);
  dirs_[wd] = dir;
  return true;
}

void PolicyWatcher::WatchDirs(const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) Add(d);
}

bool PolicyWatcher::Changed() {
  bool changed = false;
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) break;  // EAGAIN: drained
    changed = true;
    for (ssize_t off = 0;
         off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += sizeof(inotify_event) + ev->len;
      // The watch is gone (directory removed or unmounted): forget it, so
      // it is added again when the directory comes back.
      if (!(ev->mask & IN_IGNORED)) continue;
      auto it = dirs_.find(ev->wd);
      if (it == dirs_.end()) continue;
      if (it->second == root_) {
        LogWarning("policy directory ", root_,
                   " is gone: not watching it; the loaded policies stay in "
                   "force until it exists again");
      }
      watched_.erase(it->second);
      dirs_.erase(it);
    }
  }
  // Recreated (rm -rf D; mkdir D): watch it again and reload.
  if (!watched_.contains(root_) && Add(root_)) {
    LogInfo("policy directory ", root_, " exists again: watching it");
    changed = true;
  }
  return changed;
}

}  // namespace execmon
