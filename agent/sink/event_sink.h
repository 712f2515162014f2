// Where rendered events go. Implementations: JSON lines to stdout or a file
// (json_lines_sink.h); Kafka follows the same interface.
#ifndef EXECMON_AGENT_SINK_EVENT_SINK_H_
#define EXECMON_AGENT_SINK_EVENT_SINK_H_

#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"

namespace execmon {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // type is the event's "type" field ("exec", "exit", "snapshot").
  virtual absl::Status Write(absl::string_view type, absl::string_view json) = 0;
  // Makes everything written so far visible to readers.
  virtual absl::Status Flush() = 0;
  virtual absl::string_view name() const = 0;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_SINK_EVENT_SINK_H_
