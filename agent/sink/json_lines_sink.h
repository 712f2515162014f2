#ifndef EXECMON_AGENT_SINK_JSON_LINES_SINK_H_
#define EXECMON_AGENT_SINK_JSON_LINES_SINK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/sink/event_sink.h"

namespace execmon {

// One JSON document per line, to stdout ("stdout" or "-") or appended to a
// file. Lines are buffered and written whole by Flush(), which the
// pipeline calls after each batch.
//
// Every event is either written whole or counted as dropped; a partial
// line is never left behind: when a write stops short (a full disk), a
// regular file is truncated back to its last complete line and the lines
// not written are kept (up to kMaxPendingBytes) and retried at the next
// flush; where the destination cannot be truncated (a pipe, a device), the
// partial line is ended and counted as dropped. While writes fail the sink
// reports down (execmon_sink_up 0); it logs once when it goes down and
// once when it recovers, with the count dropped meanwhile.
class JsonLinesSink : public EventSink {
 public:
  static constexpr size_t kMaxPendingBytes = 8 << 20;

  static absl::StatusOr<std::unique_ptr<JsonLinesSink>> Open(
      const std::string& target);
  ~JsonLinesSink() override;

  absl::Status Write(const EventMeta& meta, absl::string_view json) override;
  absl::Status Flush() override;
  absl::Status Close(absl::Duration deadline) override;
  bool Healthy() const override { return up_; }
  SinkStats Stats() const override;
  absl::string_view name() const override { return name_; }

 private:
  JsonLinesSink(int fd, bool owned, bool seekable, std::string name)
      : fd_(fd), owned_(owned), seekable_(seekable), name_(std::move(name)) {}
  // Counts lines dropped, under one of the dropped_* reasons.
  void Drop(size_t lines, uint64_t* reason_count);

  int fd_;
  bool owned_;
  bool seekable_;  // a regular file: a short write can be truncated away
  std::string name_;
  std::string pending_;            // whole lines not written yet
  std::vector<size_t> line_ends_;  // end offset of each line in pending_
  bool up_ = true;
  uint64_t delivered_ = 0;
  uint64_t dropped_write_error_ = 0;
  uint64_t dropped_buffer_full_ = 0;
  uint64_t dropped_while_down_ = 0;  // for the recovery log line
};

}  // namespace execmon

#endif  // EXECMON_AGENT_SINK_JSON_LINES_SINK_H_
