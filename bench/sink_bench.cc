// sink_bench: throughput of the agent's user-space pipeline, no BPF.
//
// Replays kernel records recorded by bench/record_events (real ring-buffer
// records: [u32 length][bytes]...) through execmon::Agent::OnRecord
// (decode -> process table -> verdict -> JSON -> sinks) until --events
// events (exec + exit) have been emitted, on this one thread, and prints one
// JSON line with wall time, CPU time and the sinks' delivery counters.
//
//   sink_bench --records=FILE --events=N --mode=MODE [--brokers=HOST:PORT]
//              [--topic=T] [--flush_every=256] [--max_outstanding=50000]
//              [--property=KEY=VALUE ...]
//
// MODE
//   decode  execmon::DecodeRecord of each record only (no Agent)
//   render  Agent with one sink that only counts (decode + table + JSON)
//   null    Agent -> JsonLinesSink("/dev/null") (+ the counting sink)
//   kafka   Agent -> JsonLinesSink("/dev/null") + KafkaSink(--brokers)
//           (+ the counting sink): what `execmon run --output=/dev/null
//           --kafka-brokers=...` does per event. Timing ends when Close()
//           returned, i.e. when every event was acknowledged (acks=all).
//
// Records are patched for replay without a kernel: exec records get
// cgroup_id 1 (the root cgroup: no cgroup lookups), cgroup records are
// skipped, and an exec whose build ID is still PENDING (iterator fallback)
// would need the kernel, so none may be present (checked).
//
// Kafka back-pressure: KafkaSink::Write never blocks and drops (counted)
// beyond its queue bound. A replay can produce faster than any broker
// takes, so while more than --max_outstanding events are undelivered the
// replay sleeps 1 ms at a time (counted as wait_s). Throughput is then the
// sustained rate the sink delivers; events per CPU second is its cost.
//
// CPU: getrusage(RUSAGE_SELF) (all threads: the replay thread plus
// librdkafka's) and RUSAGE_THREAD (the replay thread) over the timed part,
// and per thread name from /proc/self/task/*/stat (librdkafka names its
// threads rdk:main, rdk:broker<id>, ...; the sink's poller thread keeps the
// name sink_bench; the replay thread is "replay") over the produce phase
// (until the last Write), plus the process CPU during Close() (cpu_close_s):
// where the CPU goes, without perf.
// --property adds a librdkafka property (after the sink's defaults, as
// --kafka_property does), e.g. compression.codec=none for a diagnosis.
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/common/log.h"
#include "agent/event/decoder.h"
#include "agent/sink/event_sink.h"
#include "agent/sink/json_lines_sink.h"
#include "agent/sink/kafka_sink.h"
#include "bench/bench_util.h"
#include "bpf/execmon_abi.h"

namespace {

using execmon_bench::Die;
using execmon_bench::Flag;

double CpuS(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// Counts what the agent emits (and its JSON bytes). Costs two additions.
class CountingSink : public execmon::EventSink {
 public:
  absl::Status Write(const execmon::EventMeta&,
                     absl::string_view json) override {
    ++events;
    bytes += json.size();
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::string_view name() const override { return "count"; }
  uint64_t events = 0;
  uint64_t bytes = 0;
};

// CPU seconds so far of each thread of this process, by tid: {name, s}.
std::map<int, std::pair<std::string, double>> ThreadCpu() {
  std::map<int, std::pair<std::string, double>> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  static const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    std::getline(in, line);
    size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> f; ++i) {
      if (i == 14 || i == 15)
        ticks += std::strtod(f.c_str(), nullptr);  // utime, stime
    }
    const int tid = std::atoi(e->d_name);
    // The replay thread; the sink's poller thread keeps the process name.
    std::string name =
        tid == getpid() ? "replay" : line.substr(open + 1, close - open - 1);
    out[tid] = {name, ticks / tck};
  }
  closedir(d);
  return out;
}

// {"name": seconds, ...} of the CPU each thread name used between a and b.
std::string ThreadCpuJson(
    const std::map<int, std::pair<std::string, double>>& a,
    const std::map<int, std::pair<std::string, double>>& b) {
  std::map<std::string, double> by_name;
  for (const auto& [tid, nb] : b) {
    auto it = a.find(tid);
    by_name[nb.first] += nb.second - (it != a.end() ? it->second.second : 0.0);
  }
  std::string out = "{";
  for (const auto& [name, sec] : by_name) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%s\"%s\":%.2f", out.size() > 1 ? "," : "",
                  name.c_str(), sec);
    out += buf;
  }
  return out + "}";
}

struct Record {
  std::vector<uint8_t> data;
  bool emits = false;  // exec and exit records emit one event each
};

std::vector<Record> LoadRecords(const std::string& path, size_t* skipped) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Die(path + ": " + std::strerror(errno));
  std::vector<Record> out;
  for (;;) {
    uint32_t n = 0;
    if (std::fread(&n, 1, sizeof(n), f) != sizeof(n)) break;
    Record r;
    r.data.resize(n);
    if (std::fread(r.data.data(), 1, n, f) != n) Die(path + ": truncated");
    if (n < sizeof(em_header)) Die(path + ": short record");
    em_header h;
    std::memcpy(&h, r.data.data(), sizeof(h));
    if (h.type == EM_EV_EXEC) {
      if (n < sizeof(em_exec_event)) Die(path + ": short exec record");
      uint64_t root = 1;
      std::memcpy(r.data.data() + offsetof(em_exec_event, cgroup_id), &root,
                  sizeof(root));
      uint8_t err =
          r.data[offsetof(em_exec_event, bid) + offsetof(em_build_id, error)];
      if (err == EM_BID_ERR_PENDING)
        Die(path + ": exec record with a PENDING build ID");
      r.emits = true;
    } else if (h.type == EM_EV_EXIT) {
      r.emits = true;
    } else if (h.type != EM_EV_FORK) {
      ++*skipped;  // cgroup records: not replayable without the kernel
      continue;
    }
    out.push_back(std::move(r));
  }
  std::fclose(f);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  execmon_bench::g_tool = "sink_bench";
  std::string records_path, mode, brokers, topic = "execmon.bench";
  uint64_t events = 1000000, flush_every = 256, max_outstanding = 50000;
  std::vector<std::pair<std::string, std::string>> properties;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (Flag(argv[i], "property", &v)) {
      size_t eq = v.find('=');
      if (eq == std::string::npos) Die("--property: want KEY=VALUE");
      properties.emplace_back(v.substr(0, eq), v.substr(eq + 1));
      continue;
    }
    if (Flag(argv[i], "records", &records_path)) continue;
    if (Flag(argv[i], "mode", &mode)) continue;
    if (Flag(argv[i], "brokers", &brokers)) continue;
    if (Flag(argv[i], "topic", &topic)) continue;
    if (Flag(argv[i], "events", &v)) {
      events = std::strtoull(v.c_str(), nullptr, 10);
      continue;
    }
    if (Flag(argv[i], "flush_every", &v)) {
      flush_every = std::strtoull(v.c_str(), nullptr, 10);
      continue;
    }
    if (Flag(argv[i], "max_outstanding", &v)) {
      max_outstanding = std::strtoull(v.c_str(), nullptr, 10);
      continue;
    }
    Die(std::string("unknown argument ") + argv[i] +
        " (see the comment at the top of sink_bench.cc)");
  }
  if (records_path.empty() || events == 0 || flush_every == 0) {
    Die("--records=FILE and --events=N > 0 are required");
  }
  if (mode != "decode" && mode != "render" && mode != "null" &&
      mode != "kafka") {
    Die("--mode: want decode, render, null or kafka");
  }
  if (mode == "kafka" && brokers.empty()) Die("--mode=kafka needs --brokers");
  execmon::SetLogLevel(execmon::LogLevel::kWarning);

  size_t skipped = 0;
  std::vector<Record> recs = LoadRecords(records_path, &skipped);
  uint64_t per_pass = 0;
  for (const Record& r : recs) per_pass += r.emits;
  if (per_pass == 0) Die(records_path + ": no exec or exit records");

  // decode: the decoder alone.
  if (mode == "decode") {
    uint64_t emitted = 0, decoded = 0, errors = 0;
    const double c0 = CpuS(RUSAGE_SELF), w0 = execmon_bench::MonotonicSeconds();
    while (emitted < events) {
      for (const Record& r : recs) {
        auto rec = execmon::DecodeRecord(absl::MakeConstSpan(r.data));
        if (!rec.ok()) ++errors;
        ++decoded;
        if (r.emits && ++emitted == events) break;
      }
    }
    const double wall = execmon_bench::MonotonicSeconds() - w0,
                 cpu = CpuS(RUSAGE_SELF) - c0;
    std::printf(
        "{\"mode\":\"decode\",\"events\":%lu,\"records\":%lu,"
        "\"decode_errors\":%lu,\"wall_s\":%.6f,\"cpu_s\":%.6f,"
        "\"cpu_main_s\":%.6f,\"events_per_s\":%.0f,"
        "\"events_per_cpu_s\":%.0f}\n",
        (unsigned long)emitted, (unsigned long)decoded, (unsigned long)errors,
        wall, cpu, cpu, emitted / wall, emitted / cpu);
    return errors == 0 ? 0 : 1;
  }

  std::vector<std::unique_ptr<execmon::EventSink>> sinks;
  auto counting = std::make_unique<CountingSink>();
  CountingSink* count = counting.get();
  sinks.push_back(std::move(counting));
  execmon::EventSink* null_sink = nullptr;
  execmon::KafkaSink* kafka = nullptr;
  if (mode == "null" || mode == "kafka") {
    auto s = execmon::JsonLinesSink::Open("/dev/null");
    if (!s.ok()) Die(std::string(s.status().message()));
    null_sink = s->get();
    sinks.push_back(*std::move(s));
  }
  if (mode == "kafka") {
    execmon::KafkaOptions ko;
    ko.brokers = brokers;
    ko.topic = topic;
    ko.flush_timeout = absl::Seconds(120);
    ko.properties = properties;
    auto s = execmon::KafkaSink::Create(ko);
    if (!s.ok()) Die(std::string(s.status().message()));
    kafka = s->get();
    sinks.push_back(*std::move(s));
  }
  execmon::AgentOptions ao;
  ao.node = "bench-node";
  ao.boot_id = execmon::ShortBootId();
  ao.snapshot = false;
  ao.kubernetes = "off";
  execmon::Agent agent(ao, std::move(sinks));

  auto outstanding = [&]() -> uint64_t {
    execmon::KafkaStats st = kafka->KafkaCounters();
    return st.produced - st.delivered - st.failed - st.dropped_timeout -
           st.dropped_shutdown;
  };
  // Kafka warm-up, untimed: connect, create the topic (auto-create),
  // deliver a first batch.
  uint64_t warm_delivered = 0;
  if (kafka != nullptr) {
    const double until = execmon_bench::MonotonicSeconds() + 60;
    size_t i = 0;
    uint64_t warm = 0;
    while (warm < 2000) {
      const Record& r = recs[i++ % recs.size()];
      agent.OnRecord(absl::MakeConstSpan(r.data));
      warm += r.emits;
    }
    while (outstanding() > 0 && execmon_bench::MonotonicSeconds() < until)
      usleep(10000);
    execmon::KafkaStats st = kafka->KafkaCounters();
    if (st.delivered != st.produced ||
        st.dropped_queue_full + st.dropped_other > 0) {
      Die("kafka warm-up: not every event was delivered within 60 s (broker "
          "down?)");
    }
    warm_delivered = st.delivered;
  }
  const uint64_t count0 = count->events, bytes0 = count->bytes;

  uint64_t emitted = 0, since_flush = 0;
  double wait_s = 0;
  const auto threads0 = ThreadCpu();
  const double c0 = CpuS(RUSAGE_SELF), t0 = CpuS(RUSAGE_THREAD),
               w0 = execmon_bench::MonotonicSeconds();
  while (emitted < events) {
    for (const Record& r : recs) {
      agent.OnRecord(absl::MakeConstSpan(r.data));
      if (!r.emits) continue;
      ++emitted;
      if (++since_flush == flush_every) {
        // What Agent::Run does after each ring-buffer batch (FlushSinks).
        since_flush = 0;
        if (null_sink != nullptr) (void)null_sink->Flush();
        if (kafka != nullptr) (void)kafka->Flush();
        if (kafka != nullptr && outstanding() > max_outstanding) {
          const double ws = execmon_bench::MonotonicSeconds();
          while (outstanding() > max_outstanding / 2) usleep(1000);
          wait_s += execmon_bench::MonotonicSeconds() - ws;
        }
      }
      if (emitted == events) break;
    }
  }
  if (null_sink != nullptr) (void)null_sink->Flush();
  const double produce_wall = execmon_bench::MonotonicSeconds() - w0;
  // Per-thread split of the produce phase (the sink's poller thread ends in
  // Close(); its CPU is in the process total, not in a later /proc read).
  const std::string threads = ThreadCpuJson(threads0, ThreadCpu());
  const double cpu_close0 = CpuS(RUSAGE_SELF);
  double close_s = 0;
  if (kafka != nullptr) {
    const double cs = execmon_bench::MonotonicSeconds();
    (void)kafka->Close(absl::Seconds(120));
    close_s = execmon_bench::MonotonicSeconds() - cs;
  }
  const double wall = execmon_bench::MonotonicSeconds() - w0;
  const double cpu = CpuS(RUSAGE_SELF) - c0,
               cpu_main = CpuS(RUSAGE_THREAD) - t0;
  const double cpu_close = CpuS(RUSAGE_SELF) - cpu_close0;
  const uint64_t got = count->events - count0;
  const uint64_t bytes = count->bytes - bytes0;

  std::string kstats = "null";
  bool ok = got == events && agent.counters().decode_errors == 0 &&
            agent.counters().sink_errors == 0;
  if (kafka != nullptr) {
    execmon::KafkaStats st = kafka->KafkaCounters();
    const uint64_t delivered = st.delivered - warm_delivered;
    ok = ok && delivered == events && st.failed == 0 &&
         st.dropped_queue_full == 0 && st.dropped_timeout == 0 &&
         st.dropped_shutdown == 0 && st.dropped_other == 0;
    char b[512];
    std::snprintf(
        b, sizeof(b),
        "{\"delivered\":%lu,\"warmup_delivered\":%lu,\"produced\":%lu,"
        "\"failed\":%lu,\"dropped_queue_full\":%lu,\"dropped_timeout\":%lu,"
        "\"dropped_shutdown\":%lu,\"dropped_other\":%lu}",
        (unsigned long)delivered, (unsigned long)warm_delivered,
        (unsigned long)st.produced, (unsigned long)st.failed,
        (unsigned long)st.dropped_queue_full, (unsigned long)st.dropped_timeout,
        (unsigned long)st.dropped_shutdown, (unsigned long)st.dropped_other);
    kstats = b;
  }
  std::printf(
      "{\"mode\":\"%s\",\"ok\":%s,\"events\":%lu,\"records_per_pass\":%zu,"
      "\"events_per_pass\":%lu,\"skipped_records\":%zu,\"json_bytes\":%lu,"
      "\"wall_s\":%.6f,\"produce_wall_s\":%.6f,\"close_s\":%.6f,"
      "\"wait_s\":%.6f,\"cpu_s\":%.6f,\"cpu_main_s\":%.6f,"
      "\"events_per_s\":%.0f,\"events_per_cpu_s\":%.0f,"
      "\"events_per_main_cpu_s\":%.0f,\"exec_events\":%lu,"
      "\"exit_events\":%lu,\"thread_cpu_s\":%s,\"cpu_close_s\":%.3f,"
      "\"kafka\":%s}\n",
      mode.c_str(), ok ? "true" : "false", (unsigned long)got, recs.size(),
      (unsigned long)per_pass, skipped, (unsigned long)bytes, wall,
      produce_wall, close_s, wait_s, cpu, cpu_main, got / wall, got / cpu,
      got / cpu_main, (unsigned long)agent.counters().exec_events,
      (unsigned long)agent.counters().exit_events, threads.c_str(), cpu_close,
      kstats.c_str());
  return ok ? 0 : 1;
}
