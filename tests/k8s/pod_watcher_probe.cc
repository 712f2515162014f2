// Runs a PodWatcher against a real API server (via a kubeconfig) and answers
// commands read from stdin, one JSON line on stdout each. Driven by
// tests/k8s/test_pod_watcher.py.
//
//   state               {"cmd":"state","synced":..,"state":..,"counters":{..},
//                        "pods":[..live pods..]}
//   pod <uid>           {"cmd":"pod","found":..,"pod":{..}}   (tombstones too)
//   container <id>      {"cmd":"container","found":..,"container":{..}}
//   wait <uid> <ms>     {"cmd":"wait","found":..,"elapsed_ms":..,"pod":{..}}
//   rewatch <rv>        {"cmd":"rewatch"}  (drop the watch, resume from rv)
//   stop                {"cmd":"stop","elapsed_ms":..}, then exits
// End of input also stops. The first line, once started, is
//   {"cmd":"started","cluster":..,"node":..}
#include <stdio.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/k8s/kube_config.h"
#include "agent/k8s/pod_watcher.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

ABSL_FLAG(std::string, kubeconfig, "", "kubeconfig file");
ABSL_FLAG(std::string, context, "", "kubeconfig context (default: current)");
ABSL_FLAG(std::string, node, "", "node name");
ABSL_FLAG(std::string, cluster, "test-cluster", "cluster name to report");
ABSL_FLAG(bool, include_annotations, false, "keep annotations");
ABSL_FLAG(int, tombstone_ttl_ms, 60000, "tombstone TTL");
ABSL_FLAG(int, backoff_initial_ms, 200, "first reconnect delay");
ABSL_FLAG(int, backoff_max_ms, 2000, "reconnect delay cap");
ABSL_FLAG(int, watch_timeout_s, 300, "watch timeoutSeconds");
ABSL_FLAG(int, request_timeout_ms, 10000, "LIST/GET timeout");
ABSL_FLAG(int, connect_timeout_ms, 3000, "connect timeout");

namespace {

using execmon::k8s::ContainerMeta;
using execmon::k8s::PodInfo;
using execmon::k8s::PodWatcher;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, absl::string_view key, absl::string_view value) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void WriteContainer(Writer& w, const ContainerMeta& c) {
  w.StartObject();
  Str(w, "pod_uid", c.pod_uid);
  Str(w, "name", c.container_name);
  Str(w, "image", c.image);
  Str(w, "image_id", c.image_id);
  Str(w, "runtime", c.runtime);
  Str(w, "id", c.container_id);
  Str(w, "type", c.type);
  w.Key("previous");
  w.Bool(c.previous);
  w.EndObject();
}

void WriteMap(Writer& w, absl::string_view key,
              const std::map<std::string, std::string>& m) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.StartObject();
  for (const auto& [k, v] : m) Str(w, k, v);
  w.EndObject();
}

void WritePod(Writer& w, const PodInfo& p) {
  w.StartObject();
  Str(w, "cluster", p.cluster);
  Str(w, "namespace", p.namespace_name);
  Str(w, "name", p.name);
  Str(w, "uid", p.uid);
  Str(w, "node", p.node_name);
  Str(w, "service_account", p.service_account);
  Str(w, "phase", p.phase);
  Str(w, "workload", p.workload);
  Str(w, "workload_kind", p.workload_kind);
  Str(w, "mirror_of", p.mirror_of);
  WriteMap(w, "labels", p.labels);
  WriteMap(w, "annotations", p.annotations);
  w.Key("containers");
  w.StartArray();
  for (const ContainerMeta& c : p.containers) WriteContainer(w, c);
  w.EndArray();
  w.Key("deleted");
  w.Bool(p.deleted);
  w.EndObject();
}

void Emit(const rapidjson::StringBuffer& buf) {
  fwrite(buf.GetString(), 1, buf.GetSize(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

void WriteState(Writer& w, const PodWatcher& watcher) {
  execmon::k8s::PodWatcherCounters c = watcher.Counters();
  w.Key("synced");
  w.Bool(watcher.Synced());
  Str(w, "state", execmon::k8s::PodWatcherStateName(watcher.ConnectionState()));
  w.Key("counters");
  w.StartObject();
  const std::pair<const char*, uint64_t> fields[] = {
      {"lists", c.lists},
      {"list_pages", c.list_pages},
      {"watches", c.watches},
      {"watch_restarts", c.watch_restarts},
      {"relists_410", c.relists_410},
      {"errors", c.errors},
      {"events", c.events},
      {"bookmarks", c.bookmarks},
      {"pods", c.pods},
      {"tombstones", c.tombstones},
      {"containers", c.containers}};
  for (const auto& [k, v] : fields) {
    w.Key(k);
    w.Uint64(v);
  }
  Str(w, "last_error", c.last_error);
  Str(w, "resource_version", c.resource_version);
  w.EndObject();
  w.Key("pods");
  w.StartArray();
  for (const PodInfo& p : watcher.Pods()) WritePod(w, p);
  w.EndArray();
}

int Fail(absl::string_view what) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Str(w, "cmd", "error");
  Str(w, "error", what);
  w.EndObject();
  Emit(buf);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<execmon::k8s::KubeConfig> config =
      execmon::k8s::LoadKubeConfigFile(absl::GetFlag(FLAGS_kubeconfig),
                                       absl::GetFlag(FLAGS_context));
  if (!config.ok()) return Fail(config.status().ToString());

  execmon::k8s::PodWatcherOptions options;
  options.node_name = absl::GetFlag(FLAGS_node);
  options.cluster_name = absl::GetFlag(FLAGS_cluster);
  options.include_annotations = absl::GetFlag(FLAGS_include_annotations);
  options.tombstone_ttl =
      absl::Milliseconds(absl::GetFlag(FLAGS_tombstone_ttl_ms));
  options.backoff_initial =
      absl::Milliseconds(absl::GetFlag(FLAGS_backoff_initial_ms));
  options.backoff_max = absl::Milliseconds(absl::GetFlag(FLAGS_backoff_max_ms));
  options.watch_timeout = absl::Seconds(absl::GetFlag(FLAGS_watch_timeout_s));
  options.request_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_request_timeout_ms));
  options.connect_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms));
  options.user_agent = "execmon-pod-watcher-probe";
  options.logger = [](execmon::LogLevel level, absl::string_view msg) {
    static const char* const kNames[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    fprintf(stderr, "%s %s %.*s\n",
            absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::UTCTimeZone())
                .c_str(),
            kNames[static_cast<int>(level)], static_cast<int>(msg.size()),
            msg.data());
  };
  absl::StatusOr<std::unique_ptr<PodWatcher>> watcher =
      PodWatcher::Create(*config, options);
  if (!watcher.ok()) return Fail(watcher.status().ToString());
  absl::Status started = (*watcher)->Start();
  if (!started.ok()) return Fail(started.ToString());
  {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Str(w, "cmd", "started");
    Str(w, "cluster", (*watcher)->cluster_name());
    Str(w, "node", (*watcher)->node_name());
    w.EndObject();
    Emit(buf);
  }

  std::string line;
  bool stopped = false;
  while (!stopped && std::getline(std::cin, line)) {
    std::vector<std::string> args =
        absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (args.empty()) continue;
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Str(w, "cmd", args[0]);
    if (args[0] == "state") {
      WriteState(w, **watcher);
    } else if (args[0] == "pod" && args.size() == 2) {
      absl::optional<PodInfo> p = (*watcher)->FindPod(args[1]);
      w.Key("found");
      w.Bool(p.has_value());
      if (p) {
        w.Key("pod");
        WritePod(w, *p);
      }
    } else if (args[0] == "container" && args.size() == 2) {
      absl::optional<ContainerMeta> c = (*watcher)->FindContainer(args[1]);
      w.Key("found");
      w.Bool(c.has_value());
      if (c) {
        w.Key("container");
        WriteContainer(w, *c);
      }
    } else if (args[0] == "wait" && args.size() == 3) {
      int ms = 0;
      if (!absl::SimpleAtoi(args[2], &ms)) ms = 0;
      absl::Time start = absl::Now();
      absl::optional<PodInfo> p =
          (*watcher)->WaitForPod(args[1], absl::Milliseconds(ms));
      w.Key("elapsed_ms");
      w.Int64(absl::ToInt64Milliseconds(absl::Now() - start));
      w.Key("found");
      w.Bool(p.has_value());
      if (p) {
        w.Key("pod");
        WritePod(w, *p);
      }
    } else if (args[0] == "rewatch" && args.size() == 2) {
      (*watcher)->RestartWatchForTesting(args[1]);
    } else if (args[0] == "stop") {
      absl::Time start = absl::Now();
      (*watcher)->Stop();
      w.Key("elapsed_ms");
      w.Int64(absl::ToInt64Milliseconds(absl::Now() - start));
      Str(w, "state",
          execmon::k8s::PodWatcherStateName((*watcher)->ConnectionState()));
      stopped = true;
    } else {
      Str(w, "error", "unknown command");
    }
    w.EndObject();
    Emit(buf);
  }
  (*watcher)->Stop();
  return 0;
}
