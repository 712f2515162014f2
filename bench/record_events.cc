// record_events: records real kernel records for the sink benchmark.
//
// Loads and attaches execmon's BPF programs (agent/bpf/bpf_loader.h, the
// same loader the agent uses), and for --seconds appends every ring-buffer
// record, byte for byte as the agent's OnRecord would receive it, to --out:
//
//   [u32 little-endian length][record bytes] ...
//
// Meanwhile the driver (bench/run_sink_bench.py) runs a mix of real execs.
// Prints a one-line JSON summary (records by type). Needs root (BPF).
//
//   record_events --out=FILE [--seconds=5]
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bpf/bpf_loader.h"
#include "bench/bench_util.h"
#include "bpf/execmon_abi.h"

namespace {

using execmon_bench::Die;
using execmon_bench::Flag;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  execmon_bench::g_tool = "record_events";
  std::string out;
  double seconds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (Flag(argv[i], "out", &out)) continue;
    if (Flag(argv[i], "seconds", &v)) {
      seconds = std::strtod(v.c_str(), nullptr);
      continue;
    }
    Die(std::string("unknown argument ") + argv[i]);
  }
  if (out.empty()) Die("--out=FILE is required");
  if (absl::Status s = execmon::CheckPrerequisites(); !s.ok()) {
    Die(std::string(s.message()));
  }

  std::vector<uint8_t> buf;
  std::map<int, uint64_t> by_type;
  auto loader = execmon::BpfLoader::Create(
      execmon::BpfOptions{}, [&](absl::Span<const uint8_t> rec) {
        uint32_t n = static_cast<uint32_t>(rec.size());
        const uint8_t* p = reinterpret_cast<const uint8_t*>(&n);
        buf.insert(buf.end(), p, p + sizeof(n));
        buf.insert(buf.end(), rec.begin(), rec.end());
        if (rec.size() >= sizeof(em_header)) {
          em_header h;
          std::memcpy(&h, rec.data(), sizeof(h));
          ++by_type[h.type];
        }
      });
  if (!loader.ok()) Die(std::string(loader.status().message()));
  if (absl::Status s = (*loader)->Attach(); !s.ok())
    Die(std::string(s.message()));

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // Tell the driver we are attached (it starts its execs after this line).
  std::fprintf(stderr, "record_events: attached\n");
  std::fflush(stderr);

  const double t0 = execmon_bench::MonotonicSeconds();
  double last_clock = t0;
  while (!g_stop.load() && execmon_bench::MonotonicSeconds() - t0 < seconds) {
    auto n = (*loader)->Poll(100);
    if (!n.ok()) Die(std::string(n.status().message()));
    if (execmon_bench::MonotonicSeconds() - last_clock >= 1) {
      (*loader)->RefreshClockOffset();
      last_clock = execmon_bench::MonotonicSeconds();
    }
  }
  (*loader)->Detach();
  if (auto d = (*loader)->Drain(); !d.ok())
    Die(std::string(d.status().message()));
  auto stats = (*loader)->ReadStats();

  FILE* f = std::fopen(out.c_str(), "wb");
  if (f == nullptr) Die(out + ": " + std::strerror(errno));
  if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size() ||
      std::fclose(f) != 0) {
    Die(out + ": write failed");
  }
  uint64_t drops = 0;
  if (stats.ok()) {
    drops = (*stats)[EM_STAT_RB_DROP_EXEC] + (*stats)[EM_STAT_RB_DROP_EXIT] +
            (*stats)[EM_STAT_RB_DROP_FORK];
  }
  std::printf(
      "{\"bytes\":%zu,\"exec\":%lu,\"exit\":%lu,\"fork\":%lu,"
      "\"cgroup\":%lu,\"ring_buffer_drops\":%lu}\n",
      buf.size(), static_cast<unsigned long>(by_type[EM_EV_EXEC]),
      static_cast<unsigned long>(by_type[EM_EV_EXIT]),
      static_cast<unsigned long>(by_type[EM_EV_FORK]),
      static_cast<unsigned long>(by_type[EM_EV_CGROUP_MKDIR] +
                                 by_type[EM_EV_CGROUP_RMDIR]),
      static_cast<unsigned long>(drops));
  return 0;
}
