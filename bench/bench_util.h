// Helpers shared by the C++ benchmark tools (exec_bench, exec_storm,
// record_events, sink_bench): arguments, errors, clocks, and the
// fork/spawn + execve + waitpid of one exec. Plain libc and std:
// exec_bench and exec_storm stay small processes, since a larger parent
// makes every fork they time slower.
#ifndef EXECMON_BENCH_BENCH_UTIL_H_
#define EXECMON_BENCH_BENCH_UTIL_H_

#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

// CLOCK_MONOTONIC in seconds, and in nanoseconds.
inline double MonotonicSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

inline int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Runs `path` with `argv` and an empty environment, by fork + execve or,
// with `vfork`, posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK)), and waits
// for it. Returns its wait status, or -1 with errno set when it could not
// be started or waited for.
inline int SpawnAndWait(const char* path, char* const* argv, bool vfork) {
  static char* const kEmptyEnv[] = {nullptr};
  pid_t pid;
  if (vfork) {
    int rc = posix_spawn(&pid, path, nullptr, nullptr, argv, kEmptyEnv);
    if (rc != 0) {
      errno = rc;
      return -1;
    }
  } else {
    pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      execve(path, argv, kEmptyEnv);
      _exit(127);
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace execmon_bench

#endif  // EXECMON_BENCH_BENCH_UTIL_H_
