#include "agent/sink/json_lines_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace execmon {

absl::StatusOr<std::unique_ptr<JsonLinesSink>> JsonLinesSink::Open(
    const std::string& target) {
  int fd = STDOUT_FILENO;
  bool owned = false;
  std::string name = "stdout";
  if (!(target.empty() || target == "stdout" || target == "-")) {
    fd = open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--output=", target,
                       ": cannot open for append: ", std::strerror(errno)));
    }
    owned = true;
    name = absl::StrCat("file:", target);
  }
  struct stat st {};
  bool seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  return std::unique_ptr<JsonLinesSink>(
      new JsonLinesSink(fd, owned, seekable, std::move(name)));
}

JsonLinesSink::~JsonLinesSink() {
  if (owned_) close(fd_);
}

void JsonLinesSink::Drop(size_t lines, uint64_t* reason_count) {
  *reason_count += lines;
  dropped_while_down_ += lines;
}

absl::Status JsonLinesSink::Write(const EventMeta& /*meta*/,
                                  absl::string_view json) {
  if (pending_.size() + json.size() + 1 > kMaxPendingBytes) {
    // The destination has not taken anything for a while: count, don't
    // grow without bound.
    Drop(1, &dropped_buffer_full_);
    return absl::OkStatus();
  }
  pending_.append(json.data(), json.size());
  pending_.push_back('\n');
  line_ends_.push_back(pending_.size());
  return absl::OkStatus();
}

absl::Status JsonLinesSink::Flush() {
  size_t written = 0;
  int err = 0;
  off_t start = -1;
  if (seekable_) {
    struct stat st {};
    if (fstat(fd_, &st) == 0) start = st.st_size;
  }
  while (written < pending_.size()) {
    ssize_t n =
        write(fd_, pending_.data() + written, pending_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<size_t>(n);
  }
  // Whole lines written.
  size_t lines =
      std::upper_bound(line_ends_.begin(), line_ends_.end(), written) -
      line_ends_.begin();
  size_t whole = lines == 0 ? 0 : line_ends_[lines - 1];
  if (written > whole) {
    // A line cut short: take it back, or end it where that is impossible.
    if (seekable_ && start >= 0 &&
        ftruncate(fd_, start + static_cast<off_t>(whole)) == 0) {
      written = whole;
    } else {
      ssize_t ignored = write(fd_, "\n", 1);
      (void)ignored;
      Drop(1, &dropped_write_error_);
      whole = line_ends_[lines];
      pending_.erase(0, whole);
      line_ends_.erase(line_ends_.begin(), line_ends_.begin() + lines + 1);
      for (size_t& end : line_ends_) end -= whole;
      delivered_ += lines;
      whole = 0;
      lines = 0;
    }
  }
  delivered_ += lines;
  pending_.erase(0, whole);
  line_ends_.erase(line_ends_.begin(), line_ends_.begin() + lines);
  for (size_t& end : line_ends_) end -= whole;
  if (err == 0) {
    if (!up_) {
      LogInfo(name_, ": writing again; ", dropped_while_down_,
              " events dropped while it failed");
      up_ = true;
    }
    return absl::OkStatus();
  }
  if (up_) {
    LogError(name_, ": write failed: ", std::strerror(err), "; keeping up to ",
             kMaxPendingBytes >> 20,
             " MiB of events to retry, dropping (and counting) the rest");
    up_ = false;
    dropped_while_down_ = 0;
  }
  return absl::OkStatus();
}

absl::Status JsonLinesSink::Close(absl::Duration /*deadline*/) {
  absl::Status s = Flush();
  // What could not be written by now never will be.
  Drop(line_ends_.size(), &dropped_write_error_);
  pending_.clear();
  line_ends_.clear();
  return s;
}

SinkStats JsonLinesSink::Stats() const {
  SinkStats s;
  s.reports_delivery = true;
  s.queue_depth = line_ends_.size();
  s.delivered = delivered_;
  s.failed = dropped_write_error_ + dropped_buffer_full_;
  s.dropped = {{"write_error", dropped_write_error_},
               {"buffer_full", dropped_buffer_full_}};
  return s;
}

}  // namespace execmon
