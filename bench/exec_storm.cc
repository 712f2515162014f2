// exec_storm: sustained exec rate. --workers processes each run a tight
// fork (or posix_spawn) + execve + waitpid loop of --binary until
// --seconds have passed, counting the execs that succeeded (the child exited
// 0, which the program only does after a successful execve). Prints one
// JSON line: execs made in total and per worker, elapsed time, rate, and
// the CPU time (user + system) of exec_storm, its workers and their children.
//
//   exec_storm --binary=PATH [--workers=2] [--seconds=10]
//              [--spawn=fork|vfork] [--pin]
//
// --pin   pin worker i to CPU i (default: let the scheduler place them).
//
// The child's argv is {"tiny", "s"}; its environment is empty. All workers
// start together (they block on a pipe until the parent closes it).
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
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
#include <vector>

#include "bench/bench_util.h"

namespace {

using execmon_bench::Die;
using execmon_bench::DieErrno;
using execmon_bench::Flag;

struct Options {
  std::string binary;
  std::string spawn = "fork";
  long workers = 2;
  double seconds = 10;
  bool pin = false;
};

struct WorkerResult {
  uint64_t made = 0;
  uint64_t failed = 0;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string v;
    if (Flag(a, "binary", &o.binary)) continue;
    if (Flag(a, "spawn", &o.spawn)) continue;
    if (Flag(a, "workers", &v)) {
      o.workers = std::strtol(v.c_str(), nullptr, 10);
      continue;
    }
    if (Flag(a, "seconds", &v)) {
      o.seconds = std::strtod(v.c_str(), nullptr);
      continue;
    }
    if (a == "--pin") {
      o.pin = true;
      continue;
    }
    Die("unknown argument '" + std::string(a) +
        "' (see the comment at the top of exec_storm.cc)");
  }
  if (o.binary.empty()) Die("--binary=PATH is required");
  if (o.spawn != "fork" && o.spawn != "vfork")
    Die("--spawn: want fork or vfork");
  if (o.workers < 1 || o.workers > 256) Die("--workers: want 1..256");
  if (!(o.seconds > 0 && o.seconds <= 600)) Die("--seconds: want (0, 600]");
  return o;
}

bool RunOnce(const Options& o, char* const* argv) {
  int status =
      execmon_bench::SpawnAndWait(o.binary.c_str(), argv, o.spawn == "vfork");
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Runs in worker `index`: waits for the start signal, execs until the
// deadline, writes its WorkerResult to `result_fd`.
[[noreturn]] void Worker(const Options& o, long index, int start_fd,
                         int result_fd) {
  if (o.pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(index), &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
      DieErrno("sched_setaffinity");
  }
  char c;
  if (read(start_fd, &c, 1) < 0) DieErrno("read start pipe");
  int64_t deadline =
      execmon_bench::MonotonicNs() + static_cast<int64_t>(o.seconds * 1e9);
  char arg0[] = "tiny";
  char arg1[] = "s";
  char* argv[] = {arg0, arg1, nullptr};
  WorkerResult r;
  while (execmon_bench::MonotonicNs() < deadline) {
    if (RunOnce(o, argv)) {
      ++r.made;
    } else {
      ++r.failed;
    }
  }
  if (write(result_fd, &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) {
    DieErrno("write result");
  }
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  execmon_bench::g_tool = "exec_storm";
  Options o = Parse(argc, argv);
  if (access(o.binary.c_str(), X_OK) != 0) DieErrno(o.binary);
  int start[2];
  if (pipe(start) != 0) DieErrno("pipe");
  std::vector<int> result_fds;
  std::vector<pid_t> pids;
  for (long i = 0; i < o.workers; ++i) {
    int res[2];
    if (pipe(res) != 0) DieErrno("pipe");
    pid_t pid = fork();
    if (pid < 0) DieErrno("fork");
    if (pid == 0) {
      close(start[1]);
      close(res[0]);
      Worker(o, i, start[0], res[1]);
    }
    close(res[1]);
    result_fds.push_back(res[0]);
    pids.push_back(pid);
  }
  close(start[0]);
  int64_t t0 = execmon_bench::MonotonicNs();
  close(start[1]);  // read() returns 0 in every worker: go

  std::vector<WorkerResult> results(pids.size());
  for (size_t i = 0; i < pids.size(); ++i) {
    if (read(result_fds[i], &results[i], sizeof(WorkerResult)) !=
        static_cast<ssize_t>(sizeof(WorkerResult))) {
      Die("worker " + std::to_string(i) + " sent no result");
    }
    int status = 0;
    if (waitpid(pids[i], &status, 0) < 0) DieErrno("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      Die("worker " + std::to_string(i) + " failed");
    }
  }
  double elapsed = static_cast<double>(execmon_bench::MonotonicNs() - t0) / 1e9;
  // CPU time of this process, the workers and all their children.
  double cpu = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage ru{};
    getrusage(who, &ru);
    for (const timeval& tv : {ru.ru_utime, ru.ru_stime}) {
      cpu += static_cast<double>(tv.tv_sec) +
             static_cast<double>(tv.tv_usec) / 1e6;
    }
  }

  uint64_t made = 0, failed = 0;
  std::string per;
  for (const WorkerResult& r : results) {
    made += r.made;
    failed += r.failed;
    per += (per.empty() ? "" : ",") + std::to_string(r.made);
  }
  std::printf(
      "{\"made\":%llu,\"failed\":%llu,\"workers\":%ld,\"per_worker\":[%s],"
      "\"elapsed_s\":%.3f,\"execs_per_s\":%.1f,\"spawn\":\"%s\",\"cpu_s\":%.3f}"
      "\n",
      static_cast<unsigned long long>(made),
      static_cast<unsigned long long>(failed), o.workers, per.c_str(), elapsed,
      static_cast<double>(made) / elapsed, o.spawn.c_str(), cpu);
  return failed == 0 ? 0 : 1;
}
