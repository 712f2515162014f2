// The JSON Schema of the events (docs/events.schema.json, embedded at
// build time): what `execmon schema` prints.
#ifndef EXECMON_AGENT_EVENT_SCHEMA_H_
#define EXECMON_AGENT_EVENT_SCHEMA_H_

#include "absl/strings/string_view.h"

namespace execmon {

// The schema document, ending in a newline.
absl::string_view EventSchema();

}  // namespace execmon

#endif  // EXECMON_AGENT_EVENT_SCHEMA_H_
