// exec_bench: the timing loop of the exec latency benchmark.
//
// Runs --count timed execs, one after another: fork (or posix_spawn, which
// glibc implements with clone(CLONE_VM|CLONE_VFORK)) + execve + waitpid of
// a program, each timed on CLOCK_MONOTONIC from just before the fork to just
// after waitpid returns. Writes one latency in nanoseconds per line to
// --out and a one-line JSON summary to stdout.
//
//   exec_bench --binary=PATH --count=N [--warmup=W] [--copies=DIR]
//              [--spawn=fork|vfork] [--cpu=K] [--out=FILE]
//
// --binary   the program; --warmup untimed execs of it come first.
// --copies   time execs of N distinct files instead: before the timed loop,
//            write N copies of --binary into DIR (DIR/tiny.000000, ...), exec
//            each exactly once, delete them afterwards. Every timed exec then
//            runs a file no one has executed before.
// --cpu      pin this process (and so its children) to CPU K.
//
// The child's argv is {"tiny", "w"} for warm-up and {"tiny", "t"} for timed
// execs, so the driver can tell them apart in the agent's events; its
// environment is empty. The summary's cpu_ns is the CPU time (user + system)
// of exec_bench and all its children, for the driver's check that nothing
// else ran during the batch. Any exec that fails or exits non-zero aborts the
// run.
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
using execmon_bench::ToLong;

struct Options {
  std::string binary;
  std::string copies;
  std::string out;
  std::string spawn = "fork";
  long count = 1000;
  long warmup = 20;
  int cpu = -1;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string v;
    if (Flag(a, "binary", &o.binary)) continue;
    if (Flag(a, "copies", &o.copies)) continue;
    if (Flag(a, "out", &o.out)) continue;
    if (Flag(a, "spawn", &o.spawn)) continue;
    if (Flag(a, "count", &v)) {
      o.count = ToLong(v, "count");
      continue;
    }
    if (Flag(a, "warmup", &v)) {
      o.warmup = ToLong(v, "warmup");
      continue;
    }
    if (Flag(a, "cpu", &v)) {
      o.cpu = static_cast<int>(ToLong(v, "cpu"));
      continue;
    }
    Die("unknown argument '" + std::string(a) +
        "' (see the comment at the top of exec_bench.cc)");
  }
  if (o.binary.empty()) Die("--binary=PATH is required");
  if (o.spawn != "fork" && o.spawn != "vfork")
    Die("--spawn: want fork or vfork");
  if (o.count == 0) Die("--count must be positive");
  return o;
}

std::vector<char> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) DieErrno("open " + path);
  std::vector<char> data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) DieErrno("read " + path);
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
  }
  close(fd);
  return data;
}

void WriteFile(const std::string& path, const std::vector<char>& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
  if (fd < 0) DieErrno("create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) DieErrno("write " + path);
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd, 0755) != 0) DieErrno("chmod " + path);
  // Closed before any exec: an open writer would make execve fail (ETXTBSY).
  if (close(fd) != 0) DieErrno("close " + path);
}

// One fork/spawn + execve + waitpid. Returns its duration in ns.
int64_t RunOnce(const Options& o, const char* path, char* const* argv) {
  int64_t t0 = execmon_bench::MonotonicNs();
  int status = execmon_bench::SpawnAndWait(path, argv, o.spawn == "vfork");
  int64_t t1 = execmon_bench::MonotonicNs();
  if (status < 0) {
    DieErrno(
        std::string(o.spawn == "vfork" ? "posix_spawn " : "fork/waitpid ") +
        path);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Die(std::string(path) + ": exec failed or exited abnormally (status " +
        std::to_string(status) + ")");
  }
  return t1 - t0;
}

// CPU time (user + system) of this process and its waited-for children.
int64_t CpuNs() {
  int64_t total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage ru{};
    getrusage(who, &ru);
    for (const timeval& tv : {ru.ru_utime, ru.ru_stime}) {
      total +=
          static_cast<int64_t>(tv.tv_sec) * 1000000000LL + tv.tv_usec * 1000LL;
    }
  }
  return total;
}

// Linear interpolation between closest ranks; `v` sorted.
double Quantile(const std::vector<int64_t>& v, double q) {
  double pos = q * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return static_cast<double>(v[lo]) * (1 - frac) +
         static_cast<double>(v[hi]) * frac;
}

}  // namespace

int main(int argc, char** argv) {
  execmon_bench::g_tool = "exec_bench";
  Options o = Parse(argc, argv);
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
      DieErrno("sched_setaffinity");
  }

  // Everything that touches the file system happens before the timed loop.
  std::vector<std::string> paths;
  if (!o.copies.empty()) {
    std::vector<char> image = ReadFile(o.binary);
    paths.reserve(static_cast<size_t>(o.count));
    for (long i = 0; i < o.count; ++i) {
      char name[32];
      std::snprintf(name, sizeof(name), "/tiny.%06ld", i);
      paths.push_back(o.copies + name);
      WriteFile(paths.back(), image);
    }
  }
  std::vector<int64_t> ns(static_cast<size_t>(o.count));
  FILE* out = nullptr;
  if (!o.out.empty()) {
    out = std::fopen(o.out.c_str(), "w");
    if (out == nullptr) DieErrno("open " + o.out);
  }

  char arg0[] = "tiny";
  char warm[] = "w";
  char timed[] = "t";
  char* warm_argv[] = {arg0, warm, nullptr};
  char* timed_argv[] = {arg0, timed, nullptr};

  for (long i = 0; i < o.warmup; ++i) RunOnce(o, o.binary.c_str(), warm_argv);
  int64_t start = execmon_bench::MonotonicNs();
  for (long i = 0; i < o.count; ++i) {
    const char* path = paths.empty() ? o.binary.c_str()
                                     : paths[static_cast<size_t>(i)].c_str();
    ns[static_cast<size_t>(i)] = RunOnce(o, path, timed_argv);
  }
  int64_t elapsed = execmon_bench::MonotonicNs() - start;

  for (const std::string& p : paths) {
    if (unlink(p.c_str()) != 0) DieErrno("unlink " + p);
  }
  if (out != nullptr) {
    for (int64_t v : ns) std::fprintf(out, "%lld\n", static_cast<long long>(v));
    if (std::fclose(out) != 0) DieErrno("write " + o.out);
  }
  std::vector<int64_t> sorted = ns;
  std::sort(sorted.begin(), sorted.end());
  std::printf(
      "{\"count\":%ld,\"spawn\":\"%s\",\"distinct_files\":%s,\"elapsed_ns\":%"
      "lld,"
      "\"median_ns\":%.0f,\"p90_ns\":%.0f,\"min_ns\":%lld,\"max_ns\":%lld,"
      "\"cpu_ns\":%lld}\n",
      o.count, o.spawn.c_str(), paths.empty() ? "false" : "true",
      static_cast<long long>(elapsed), Quantile(sorted, 0.5),
      Quantile(sorted, 0.9), static_cast<long long>(sorted.front()),
      static_cast<long long>(sorted.back()), static_cast<long long>(CpuNs()));
  return 0;
}
