// The agent's HTTP endpoint (libmicrohttpd): /metrics (Prometheus text
// format), /healthz (liveness: BPF attached and the event loop alive) and
// /readyz (readiness: started, snapshot and policies loaded, sinks
// delivering). Probes answer 200 or 503 with a JSON body saying why.
//
// One epoll thread serves every connection: an idle or slow (slowloris)
// client holds a socket, never a worker, so probes and scrapes keep
// answering while such clients wait out the connection timeout. A
// thread-per-connection server (civetweb with two threads, before) was
// taken down by two idle connections.
#ifndef EXECMON_AGENT_METRICS_HTTP_SERVER_H_
#define EXECMON_AGENT_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/registry.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace execmon {

// Written by the agent loop, read by probe requests.
struct HealthState {
  std::atomic<bool> bpf_attached{false};
  std::atomic<bool> ready{false};
  std::atomic<bool> sinks_healthy{true};
  std::atomic<int64_t> loop_heartbeat_ns{
      0};  // CLOCK_MONOTONIC of last loop pass
  absl::Mutex mu;
  std::string sinks_detail ABSL_GUARDED_BY(mu);
};

class HttpServer {
 public:
  // address: HOST:PORT (IPv6 as [addr]:port).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& address,
      std::shared_ptr<prometheus::Registry> registry, HealthState* health);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Status code, body and content type of a GET of path (404 for others).
  int Respond(const char* path, std::string* body,
              const char** content_type) const;

 private:
  HttpServer() = default;

  ::MHD_Daemon* daemon_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  HealthState* health_ = nullptr;
};

// Monotonic clock in ns, the heartbeat's time base.
int64_t MonotonicNs();

}  // namespace execmon

#endif  // EXECMON_AGENT_METRICS_HTTP_SERVER_H_
