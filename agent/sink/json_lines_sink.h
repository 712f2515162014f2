#ifndef EXECMON_AGENT_SINK_JSON_LINES_SINK_H_
#define EXECMON_AGENT_SINK_JSON_LINES_SINK_H_

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/sink/event_sink.h"

namespace execmon {

// One JSON document per line, to stdout ("stdout" or "-") or appended to a
// file. Buffered; Flush() is called by the pipeline after each batch.
class JsonLinesSink : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<JsonLinesSink>> Open(
      const std::string& target);
  ~JsonLinesSink() override;

  absl::Status Write(const EventMeta& meta, absl::string_view json) override;
  absl::Status Flush() override;
  absl::string_view name() const override { return name_; }

 private:
  JsonLinesSink(FILE* f, bool owned, std::string name)
      : file_(f), owned_(owned), name_(std::move(name)) {}
  FILE* file_;
  bool owned_;
  std::string name_;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_SINK_JSON_LINES_SINK_H_
