#include "agent/metrics/http_server.h"

#include <civetweb.h>
#include <time.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace execmon {
namespace {

// The event loop polls every 100 ms: 5 s without a pass means it is stuck.
constexpr int64_t kLoopStaleNs = 5'000'000'000;

std::once_flag g_civetweb_init;

void Reply(mg_connection* conn, int code, const char* content_type,
           const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            code, code == 200 ? "OK" : "Service Unavailable", content_type,
            body.size());
  mg_write(conn, body.data(), body.size());
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
  std::call_once(g_civetweb_init, [] { mg_init_library(0); });
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->registry_ = std::move(registry);
  server->health_ = health;
  const char* options[] = {"listening_ports", address.c_str(), "num_threads",
                           "2", nullptr};
  mg_callbacks callbacks{};
  char error[256] = {};
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = options;
  unsigned code = 0;
  mg_error_data err{};
  err.code = &code;
  err.text = error;
  err.text_buffer_size = sizeof(error);
  server->ctx_ = mg_start2(&init, &err);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("--metrics_address=", address,
                     ": cannot listen: ", error[0] ? error : "unknown error"));
  }
  mg_set_request_handler(server->ctx_, "/metrics", &HttpServer::HandleMetrics,
                         server.get());
  mg_set_request_handler(server->ctx_, "/healthz", &HttpServer::HandleHealthz,
                         server.get());
  mg_set_request_handler(server->ctx_, "/readyz", &HttpServer::HandleReadyz,
                         server.get());
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

int HttpServer::HandleMetrics(mg_connection* conn, void* self) {
  auto* s = static_cast<HttpServer*>(self);
  prometheus::TextSerializer serializer;
  std::string body = serializer.Serialize(s->registry_->Collect());
  Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", body);
  return 200;
}

int HttpServer::HandleHealthz(mg_connection* conn, void* self) {
  auto* s = static_cast<HttpServer*>(self);
  bool attached = s->health_->bpf_attached.load();
  int64_t age = MonotonicNs() - s->health_->loop_heartbeat_ns.load();
  bool loop_alive =
      s->health_->loop_heartbeat_ns.load() != 0 && age < kLoopStaleNs;
  bool ok = attached && loop_alive;
  std::string body =
      absl::StrCat("{\"status\":\"", ok ? "ok" : "unhealthy",
                   "\",\"bpf_attached\":", attached ? "true" : "false",
                   ",\"event_loop_alive\":", loop_alive ? "true" : "false",
                   ",\"event_loop_age_ms\":", age / 1000000, "}\n");
  Reply(conn, ok ? 200 : 503, "application/json", body);
  return ok ? 200 : 503;
}

int HttpServer::HandleReadyz(mg_connection* conn, void* self) {
  auto* s = static_cast<HttpServer*>(self);
  bool ready = s->health_->ready.load();
  bool sinks = s->health_->sinks_healthy.load();
  std::string detail;
  {
    absl::MutexLock lock(&s->health_->mu);
    detail = s->health_->sinks_detail;
  }
  // Sinks do not decide readiness: a DaemonSet pod that is not ready drops
  // out of its metrics Service's endpoints, which would hide a Kafka outage
  // from Prometheus exactly when it matters. Their state is in the body and
  // in execmon_sink_up.
  bool ok = ready;
  std::string body =
      absl::StrCat("{\"status\":\"", ok ? "ready" : "not ready",
                   "\",\"started\":", ready ? "true" : "false",
                   ",\"sinks_healthy\":", sinks ? "true" : "false",
                   ",\"sinks\":\"", detail, "\"}\n");
  Reply(conn, ok ? 200 : 503, "application/json", body);
  return ok ? 200 : 503;
}

}  // namespace execmon
