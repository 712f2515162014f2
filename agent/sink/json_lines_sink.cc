#include "agent/sink/json_lines_sink.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace execmon {

absl::StatusOr<std::unique_ptr<JsonLinesSink>> JsonLinesSink::Open(
    const std::string& target) {
  if (target.empty() || target == "stdout" || target == "-") {
    return std::unique_ptr<JsonLinesSink>(
        new JsonLinesSink(stdout, false, "stdout"));
  }
  FILE* f = std::fopen(target.c_str(), "ae");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--output=", target,
                     ": cannot open for append: ", std::strerror(errno)));
  }
  return std::unique_ptr<JsonLinesSink>(
      new JsonLinesSink(f, true, absl::StrCat("file:", target)));
}

JsonLinesSink::~JsonLinesSink() {
  if (owned_) {
    std::fclose(file_);
  } else {
    std::fflush(file_);
  }
}

absl::Status JsonLinesSink::Write(const EventMeta& /*meta*/,
                                  absl::string_view json) {
  if (std::fwrite(json.data(), 1, json.size(), file_) != json.size() ||
      std::fputc('\n', file_) == EOF) {
    return absl::UnavailableError(
        absl::StrCat(name_, ": write failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status JsonLinesSink::Flush() {
  if (std::fflush(file_) != 0) {
    return absl::UnavailableError(
        absl::StrCat(name_, ": flush failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace execmon
