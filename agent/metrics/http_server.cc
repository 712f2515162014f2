#include "agent/metrics/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace execmon {
namespace {

// The event loop polls every 100 ms: 5 s without a pass means it is stuck.
constexpr int64_t kLoopStaleNs = 5'000'000'000;
// An idle (or too slow) connection is closed after this many seconds.
constexpr unsigned kConnectionTimeoutS = 10;
// Sockets the server holds at most; more are refused at accept.
constexpr unsigned kConnectionLimit = 1000;

// HOST:PORT or [V6]:PORT into a socket address.
absl::Status ParseAddress(const std::string& address, sockaddr_storage* out,
                          socklen_t* len) {
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError("want [ADDRESS]:PORT");
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos)
      return absl::InvalidArgumentError("want HOST:PORT");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  uint32_t p = 0;
  if (!absl::SimpleAtoi(port, &p) || p == 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port '", port, "'"));
  }
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(p);
    *len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(p);
    *len = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host, "' is not an IP address"));
  }
  return absl::OkStatus();
}

MHD_Result Dispatch(void* cls, MHD_Connection* conn, const char* url,
                    const char* method, const char* /*version*/,
                    const char* /*upload_data*/, size_t* upload_data_size,
                    void** /*con_cls*/) {
  auto* self = static_cast<const HttpServer*>(cls);
  if (*upload_data_size != 0) {
    *upload_data_size = 0;  // a body is ignored
    return MHD_YES;
  }
  std::string body;
  const char* content_type = "text/plain";
  int code;
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
    code = MHD_HTTP_METHOD_NOT_ALLOWED;
    body = "GET only\n";
  } else {
    code = self->Respond(url, &body, &content_type);
  }
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_Result r = MHD_queue_response(conn, code, response);
  MHD_destroy_response(response);
  return r;
}

}  // namespace

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry,
    HealthState* health) {
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->registry_ = std::move(registry);
  server->health_ = health;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (absl::Status s = ParseAddress(address, &addr, &addr_len); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_address=", address, ": ", s.message()));
  }
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD;
  if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  server->daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Dispatch, server.get(), MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<sockaddr*>(&addr), MHD_OPTION_CONNECTION_TIMEOUT,
      kConnectionTimeoutS, MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
      MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "--metrics_address=", address,
        ": cannot listen: ", std::strerror(errno != 0 ? errno : EADDRINUSE)));
  }
  return server;
}

HttpServer::~HttpServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

int HttpServer::Respond(const char* path, std::string* body,
                        const char** content_type) const {
  if (std::strcmp(path, "/metrics") == 0) {
    prometheus::TextSerializer serializer;
    *body = serializer.Serialize(registry_->Collect());
    *content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 200;
  }
  *content_type = "application/json";
  if (std::strcmp(path, "/healthz") == 0) {
    bool attached = health_->bpf_attached.load();
    int64_t age = MonotonicNs() - health_->loop_heartbeat_ns.load();
    bool loop_alive =
        health_->loop_heartbeat_ns.load() != 0 && age < kLoopStaleNs;
    bool ok = attached && loop_alive;
    *body =
        absl::StrCat("{\"status\":\"", ok ? "ok" : "unhealthy",
                     "\",\"bpf_attached\":", attached ? "true" : "false",
                     ",\"event_loop_alive\":", loop_alive ? "true" : "false",
                     ",\"event_loop_age_ms\":", age / 1000000, "}\n");
    return ok ? 200 : 503;
  }
  if (std::strcmp(path, "/readyz") == 0) {
    bool ready = health_->ready.load();
    bool sinks = health_->sinks_healthy.load();
    std::string detail;
    {
      absl::MutexLock lock(&health_->mu);
      detail = health_->sinks_detail;
    }
    // Sinks do not decide readiness: a DaemonSet pod that is not ready
    // drops out of its metrics Service's endpoints, which would hide a
    // Kafka outage from Prometheus exactly when it matters. Their state is
    // in the body and in execmon_sink_up.
    *body = absl::StrCat("{\"status\":\"", ready ? "ready" : "not ready",
                         "\",\"started\":", ready ? "true" : "false",
                         ",\"sinks_healthy\":", sinks ? "true" : "false",
                         ",\"sinks\":\"", detail, "\"}\n");
    return ready ? 200 : 503;
  }
  *content_type = "text/plain";
  *body = "not found\n";
  return 404;
}

}  // namespace execmon
