// Where rendered events go. Implementations: JSON lines to stdout or a file
// (json_lines_sink.h); Kafka follows the same interface.
#ifndef EXECMON_AGENT_SINK_EVENT_SINK_H_
#define EXECMON_AGENT_SINK_EVENT_SINK_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace execmon {

// What a sink may need besides the JSON document itself (Kafka: topic per
// type, message key, headers).
struct EventMeta {
  absl::string_view type;     // the event's "type": exec, exit, snapshot, sweep
  absl::string_view node;     // the event's "node"
  absl::string_view pod_uid;  // empty until the pod is known
};

// Delivery accounting of a sink that buffers (Kafka), for metrics.
struct SinkStats {
  bool reports_delivery = false;  // false: the fields below mean nothing
  uint64_t queue_depth = 0;
  uint64_t delivered = 0;
  uint64_t failed = 0;
  std::vector<std::pair<std::string, uint64_t>> dropped;  // reason, count
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Must not block on a slow or absent destination: a sink that cannot
  // deliver now buffers within its bounds and counts what it drops.
  virtual absl::Status Write(const EventMeta& meta, absl::string_view json) = 0;
  // Makes everything written so far visible to readers (as far as the
  // destination allows without blocking).
  virtual absl::Status Flush() = 0;
  // Called once at shutdown: deliver what is buffered, waiting at most
  // `deadline`; what is still undelivered then is counted as dropped.
  virtual absl::Status Close(absl::Duration deadline) {
    (void)deadline;
    return Flush();
  }
  // False when the sink currently cannot deliver (health endpoint).
  virtual bool Healthy() const { return true; }
  virtual SinkStats Stats() const { return {}; }
  virtual absl::string_view name() const = 0;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_SINK_EVENT_SINK_H_
