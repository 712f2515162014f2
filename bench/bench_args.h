// Command-line and error helpers shared by the C++ benchmark tools
// (exec_bench, exec_storm, record_events, sink_bench). Plain libc and std:
// exec_bench and exec_storm stay small processes, since a larger parent
// makes every fork they time slower.
#ifndef EXECMON_BENCH_BENCH_ARGS_H_
#define EXECMON_BENCH_BENCH_ARGS_H_

#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace execmon_bench {

// The tool's name in messages: set it first thing in main().
inline const char* g_tool = "bench";

[[noreturn]] inline void Die(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", g_tool, msg.c_str());
  std::exit(1);
}

[[noreturn]] inline void DieErrno(const std::string& what) {
  Die(what + ": " + std::strerror(errno));
}

// True if `arg` is --name=VALUE (VALUE may be empty); sets *value.
inline bool Flag(std::string_view arg, std::string_view name,
                 std::string* value) {
  if (arg.size() < name.size() + 3 || arg.substr(0, 2) != "--" ||
      arg.substr(2, name.size()) != name || arg[2 + name.size()] != '=') {
    return false;
  }
  *value = std::string(arg.substr(3 + name.size()));
  return true;
}

// A non-negative integer flag value, or Die naming the flag.
inline long ToLong(const std::string& s, const char* name) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0' || v < 0) {
    Die(std::string("--") + name + "=" + s + ": want a non-negative integer");
  }
  return v;
}

// CLOCK_MONOTONIC in seconds.
inline double MonotonicSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

}  // namespace execmon_bench

#endif  // EXECMON_BENCH_BENCH_ARGS_H_
