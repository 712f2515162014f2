// Minimal leveled logging to stderr. Debian's Abseil has no absl/log; this
// keeps one line per message with an RFC 3339 timestamp and a level, which
// is what container log collectors expect. Events never go through here:
// stdout belongs to the JSON event stream.
#ifndef EXECMON_AGENT_COMMON_LOG_H_
#define EXECMON_AGENT_COMMON_LOG_H_

#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace execmon {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, absl::string_view message);

template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrCat(args...));
}

template <typename... Args>
void LogInfo(const Args&... args) {
  Log(LogLevel::kInfo, args...);
}
template <typename... Args>
void LogWarning(const Args&... args) {
  Log(LogLevel::kWarning, args...);
}
template <typename... Args>
void LogError(const Args&... args) {
  Log(LogLevel::kError, args...);
}
template <typename... Args>
void LogDebug(const Args&... args) {
  Log(LogLevel::kDebug, args...);
}

}  // namespace execmon

#endif  // EXECMON_AGENT_COMMON_LOG_H_
