#include "agent/policy/list_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace execmon {
namespace {

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r: returns the message, which may or may not be in buf.
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

absl::Status ReadError(const std::string& path, int err) {
  std::string message =
      absl::StrCat("cannot read ", QuoteForMessage(path), ": ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not hang; regular files ignore it.
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return ReadError(path, errno);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ReadError(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteForMessage(path), " is not a regular file"));
  }
  if (st.st_size < 0 || static_cast<size_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteForMessage(path), " is too large (", st.st_size,
                     " bytes; the limit is ", max_bytes, ")"));
  }
  std::string data;
  data.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  // The file may change size under us: read what is there, up to the limit.
  while (true) {
    if (got == data.size()) {
      if (data.size() >= max_bytes) {
        // Probe for growth past the limit.
        char probe;
        ssize_t n = read(fd.get(), &probe, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ReadError(path, errno);
        if (n == 0) break;
        return absl::InvalidArgumentError(
            absl::StrCat(QuoteForMessage(path), " is too large (the limit is ",
                         max_bytes, " bytes)"));
      }
      data.resize(std::min(max_bytes, data.size() + 4096));
    }
    ssize_t n = read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadError(path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

size_t ParseBuildIdList(absl::string_view text, const std::string& file,
                        BuildIdMap* out, std::vector<PolicyError>* errors,
                        size_t* not_shown) {
  size_t ids = 0;
  size_t error_count = 0;
  auto add_error = [&](int line, size_t column, std::string message) {
    ++error_count;
    if (error_count > kMaxListFileErrors) {
      if (not_shown != nullptr) ++*not_shown;
      return;
    }
    if (error_count == kMaxListFileErrors) {
      absl::StrAppend(&message,
                      " (too many errors: the rest of this file's are "
                      "counted, not listed)");
    }
    errors->push_back(PolicyError{
        SourcePos{file, line, static_cast<int>(column)}, std::move(message)});
  };
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  // One allocation for the table instead of log(n) rehashes.
  size_t lines =
      static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  out->reserve(out->size() + lines);
  const auto shared_file = std::make_shared<const std::string>(file);
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    size_t start = 0;
    while (start < line.size() && IsBlank(line[start])) ++start;
    if (start == line.size() || line[start] == '#') continue;
    size_t end = start;
    while (end < line.size() && !IsBlank(line[end]) && line[end] != '#') ++end;
    absl::string_view token = line.substr(start, end - start);
    absl::StatusOr<std::string> raw = ParseBuildIdHex(token);
    if (!raw.ok()) {
      // A list file may be anything: quote a short escaped excerpt of the
      // token only, never the line.
      if (error_count < kMaxListFileErrors) {
        constexpr size_t kExcerpt = 12;
        add_error(line_no, start + 1,
                  absl::StrCat(QuoteForMessage(token.substr(0, kExcerpt)),
                               token.size() > kExcerpt ? "..." : "",
                               " is not a build ID (", kBuildIdExpected, ")"));
      } else {
        add_error(line_no, start + 1, "");
      }
      continue;
    }
    size_t note_start = end;
    while (note_start < line.size() && IsBlank(line[note_start])) ++note_start;
    if (note_start < line.size() && line[note_start] == '#') {
      ++note_start;
      while (note_start < line.size() && IsBlank(line[note_start])) {
        ++note_start;
      }
    }
    absl::string_view note = line.substr(note_start);
    while (!note.empty() && IsBlank(note.back())) note.remove_suffix(1);
    if (!IsValidUtf8(note)) {
      add_error(line_no, note_start + 1,
                "the note is not valid UTF-8 text (expected UTF-8 without NUL "
                "bytes)");
      continue;
    }
    ++ids;
    auto [it, inserted] = out->try_emplace(BuildIdKey(*raw));
    if (!inserted) continue;  // The first entry wins.
    BuildIdEntry& entry = it->second;
    entry.note = std::string(note);
    entry.file = shared_file;
    entry.line = line_no;
    entry.column = static_cast<int>(start + 1);
  }
  return ids;
}

size_t ReadBuildIdList(const std::string& path, BuildIdMap* out,
                       std::vector<PolicyError>* errors) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxListFileBytes);
  if (!text.ok()) {
    errors->push_back(PolicyError{SourcePos{path, 0, 0},
                                  std::string(text.status().message())});
    return 0;
  }
  return ParseBuildIdList(*text, path, out, errors);
}

}  // namespace execmon
