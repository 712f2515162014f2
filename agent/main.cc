// execmon: container-aware exec security monitor.
//
//   execmon run [flags]                     the agent
//   execmon buildid FILE...                 print build IDs (libelf)
//   execmon policy lint DIR [--format=json]
//   execmon policy test DIR --build-id=HEX [--namespace=NS] [--labels=k=v,..]
//                           [--container=NAME] [--host]
//   execmon schema                          the events' JSON Schema
//   execmon version
//   execmon help [COMMAND]
//
// Each command takes only its own flags (agent/cli/commands.cc); flag names
// may be written with dashes or underscores (--build-id is --build_id).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/bpf/bpf_loader.h"
#include "agent/cli/commands.h"
#include "agent/common/log.h"
#include "agent/common/version.h"
#include "agent/elf/build_id_file.h"
#include "agent/event/schema.h"
#include "agent/index/index.h"
#include "agent/index/package_map.h"
#include "agent/index/package_rules.h"
#include "agent/policy/evaluator.h"
#include "agent/policy/lint.h"
#include "agent/policy/parser.h"
#include "agent/sink/json_lines_sink.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

ABSL_FLAG(std::string, output, "stdout",
          "run: where JSON-lines events go: stdout, a file path (appended), "
          "or none (with --kafka_brokers: Kafka only). index build: the index "
          "file to write.");
ABSL_FLAG(std::string, node, "",
          "Node name reported in events (default: the host name; in "
          "Kubernetes set it from spec.nodeName).");
ABSL_FLAG(std::string, build_id_resolver, "auto",
          "How the build ID of a binary not in the cache is learned: auto "
          "(every path the kernel accepts, in the order page_cache, "
          "task_work, iterator), or a comma-separated list of those paths, "
          "all required (start-up fails with the kernel's reason if one is "
          "refused). page_cache and task_work judge before the program's "
          "first instruction; iterator is late. See docs/kernels.md.");
ABSL_FLAG(std::string, resolver_refuse, "",
          "Comma-separated resolver paths to treat as refused by the kernel "
          "(for testing the fallbacks; default none).");
ABSL_FLAG(bool, exec_lsm, true,
          "Load the exec-denial unit (BPF LSM bprm_check_security) where the "
          "kernel runs BPF LSM programs: policies with action block then "
          "fail a denied exec with EPERM. Probed at start-up; see "
          "docs/kernels.md.");
ABSL_FLAG(bool, exe_sha256, true,
          "With the exec-denial unit: hash (sha256, bpf_ima_file_hash) every "
          "executed file not yet cached, for process.exe.sha256 and pinned "
          "allow entries. Reads the whole file on first sight.");
ABSL_FLAG(uint32_t, exe_sha256_max_mb, 256,
          "Files larger than this (MiB) are not hashed: an exec waits for its "
          "file's hash (execmon_kernel_events_total{event=\"sha256_failed\"} "
          "counts them).");
ABSL_FLAG(uint32_t, ring_buffer_mb, 16,
          "BPF ring buffer size in MiB (power of two).");
ABSL_FLAG(uint32_t, cache_entries, 16384,
          "Build-ID cache entries (BPF LRU hash; ~100 bytes each).");
ABSL_FLAG(uint32_t, pending_entries, 4096,
          "Execs that can await build-ID resolution at once.");
ABSL_FLAG(absl::Duration, cache_min_age, absl::Seconds(2),
          "A file changed (ctime) more recently than this is not cached, so "
          "an in-place rewrite within one clock tick cannot serve a stale ID.");
ABSL_FLAG(uint32_t, max_processes, 65536, "Process table bound.");
ABSL_FLAG(uint64_t, ringbuf_wakeup_bytes, 262144,
          "Wake the agent when this many bytes of events are pending in the "
          "ring buffer (0: on every event). Between wakeups events are "
          "drained every --poll_interval: fewer wakeups (each an IPI) for at "
          "most that much latency. Enforcement is not delayed: it happens in "
          "the kernel.");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(50),
          "How often the agent drains the ring buffer without a wakeup.");
ABSL_FLAG(bool, snapshot, true,
          "Report processes running at start-up (BPF task/VMA iterators).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(std::string, policies, "",
          "Directory of ExecPolicy YAML files (docs/policies.md), hot "
          "reloaded on change. Empty: no policies (verdicts allow/unknown).");
ABSL_FLAG(uint32_t, max_policy_ids, 262144,
          "Distinct build IDs the loaded policies may name.");
ABSL_FLAG(
    std::string, cluster, "",
    "Cluster name reported in events as \"cluster\" (omitted when empty).");
ABSL_FLAG(std::string, kubernetes, "auto",
          "Pod metadata from the Kubernetes API: auto (in-cluster, or a "
          "kubeconfig when one is found), on (required), off.");
ABSL_FLAG(std::string, kubeconfig, "",
          "kubeconfig file for the Kubernetes API (default: in-cluster "
          "service account, then $KUBECONFIG, then ~/.kube/config).");
ABSL_FLAG(absl::Duration, pod_wait, absl::Seconds(2),
          "How long an exec in a pod not yet known to the API waits for its "
          "metadata before it is sent unenriched (other events never wait).");
ABSL_FLAG(bool, pod_annotations, false, "Include pod annotations in events.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9470",
          "HOST:PORT serving Prometheus /metrics and the /healthz and "
          "/readyz probes. Empty: disabled.");
ABSL_FLAG(bool, bpf_stats, false,
          "Enable kernel BPF run-time statistics (BPF_ENABLE_STATS) and export "
          "per-program run time and count. Costs a few ns per program run.");
// --- Kafka sink flags (agent/sink/kafka_sink.h) ---
// Included here to keep the Kafka additions within these markers; it may move
// up to the other includes.
#include "agent/sink/kafka_sink.h"  // NOLINT(build/include_order)
ABSL_FLAG(std::string, kafka_brokers, "",
          "Kafka bootstrap brokers, HOST:PORT,... Empty: no Kafka export. "
          "Kafka is an additional sink: --output stays active unless it is "
          "none (docs/kafka.md).");
ABSL_FLAG(std::string, kafka_topic, "execmon.events",
          "Kafka topic the events go to (see --kafka_topic_by_type).");
ABSL_FLAG(bool, kafka_topic_by_type, false,
          "Send each event to <kafka_topic>.<type> (execmon.events.exec, "
          ".exit, .snapshot, .sweep) instead of one topic.");
ABSL_FLAG(execmon::KafkaPropertyList, kafka_property,
          execmon::KafkaPropertyList{},
          "librdkafka property key=value, applied after (overriding) "
          "execmon's defaults: security.protocol, sasl.*, ssl.*... Repeat "
          "the flag, or separate several with commas.");
ABSL_FLAG(std::string, kafka_key, "node",
          "Kafka message key: node, pod_uid (the node while the pod is "
          "unknown) or none.");
ABSL_FLAG(uint64_t, kafka_queue_max_events, 100000,
          "Events buffered for Kafka at most (queued or in flight); beyond "
          "it events are dropped and counted (queue_full).");
ABSL_FLAG(uint64_t, kafka_queue_max_bytes, 268435456,
          "Bytes of events buffered for Kafka at most (rounded up to KiB).");
ABSL_FLAG(absl::Duration, kafka_queue_max_age, absl::Minutes(5),
          "An event not delivered to Kafka within this time is dropped and "
          "counted (timeout).");
ABSL_FLAG(absl::Duration, kafka_flush_timeout, absl::Seconds(10),
          "At shutdown, how long to wait for queued events to be delivered; "
          "what is left is dropped and counted (shutdown).");
// --- end of Kafka sink flags ---
// `execmon policy ...`
// (agent/cli/commands.cc says which command takes which flag.)
ABSL_FLAG(std::string, format, "text", "Output: text or json.");
ABSL_FLAG(std::string, build_id, "",
          "The build ID (hex) of the exec; empty: an exec without a build "
          "ID.");
ABSL_FLAG(std::string, sha256, "",
          "The executed file's sha256 (64 hex digits, as sha256sum prints); "
          "empty: not known (pinned allow entries then allow by build ID).");
ABSL_FLAG(std::string, namespace, "", "The pod's namespace.");
ABSL_FLAG(std::string, labels, "", "The pod's labels, k=v,k2=v2.");
ABSL_FLAG(std::string, container, "", "The container's name.");
ABSL_FLAG(bool, host, false, "A process outside containers.");
ABSL_FLAG(std::string, index, "",
          "Build-ID indexes (execmon index build), comma-separated files or "
          "directories: events name the Debian package of every indexed "
          "build ID (process.package). Hot-reloaded; docs/index.md.");
// `execmon index ...` and `execmon policy generate`
ABSL_FLAG(std::string, package, "", "Only entries of this package (name).");
ABSL_FLAG(std::string, under, "",
          "Only these subtrees of a root filesystem source, comma-separated "
          "absolute paths inside it (e.g. /usr/bin,/usr/sbin); empty: all.");
ABSL_FLAG(std::string, from_index, "", "The index file to read.");
ABSL_FLAG(std::string, name, "", "The generated policy's metadata.name.");
ABSL_FLAG(std::string, mode, "audit", "The generated policy's mode.");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

// This file defines the agent's flags: the commands' flag lists refer to it.
constexpr absl::string_view kFlagsFile = "agent/main.cc";

// No command, or an unknown one: the command list on stderr, status 2.
int Usage(absl::string_view problem = "") {
  if (!problem.empty()) {
    std::fprintf(stderr, "execmon: %.*s\n\n", static_cast<int>(problem.size()),
                 problem.data());
  }
  std::fputs(execmon::TopHelp().c_str(), stderr);
  return 2;
}

// A command's usage error: what is wrong and its usage line, status 2.
int CommandUsage(absl::string_view name, absl::string_view problem) {
  const execmon::Command* c = execmon::FindCommand(name);
  std::fprintf(stderr,
               "execmon %.*s: %.*s\nusage: execmon %.*s %.*s\n"
               "see 'execmon help %.*s'\n",
               static_cast<int>(name.size()), name.data(),
               static_cast<int>(problem.size()), problem.data(),
               static_cast<int>(name.size()), name.data(),
               static_cast<int>(c->args.size()), c->args.data(),
               static_cast<int>(name.size()), name.data());
  return 2;
}

bool IsHelpFlag(absl::string_view a) {
  return a == "--help" || a == "-h" || a == "-help" || a == "--helpfull" ||
         a == "--helpshort";
}

// Help asked for with `execmon help [WORDS]` or `execmon WORDS --help`:
// prints it and returns the exit status; -1 when no help was asked for.
int MaybeHelp(int argc, char** argv) {
  std::vector<std::string> words;
  bool flag = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (IsHelpFlag(a)) {
      flag = true;
    } else if (!a.empty() && a[0] != '-') {
      words.emplace_back(a);
    }
  }
  // `execmon help WORDS`; `execmon WORDS --help` (so `help --help` is the
  // help of `help`).
  if (!flag) {
    if (words.empty() || words[0] != "help") return -1;
    words.erase(words.begin());
  }
  // The command path: "policy lint" takes two words, the others one.
  std::string name;
  if (!words.empty()) name = words[0];
  const bool group = name == "policy" || name == "index";
  if (group && words.size() >= 2) name += " " + words[1];
  if (name.empty()) {
    std::fputs(execmon::TopHelp().c_str(), stdout);
    return 0;
  }
  if (name == "policy" || name == "index") {
    std::fputs(execmon::GroupHelp(name).c_str(), stdout);
    return 0;
  }
  const execmon::Command* c = execmon::FindCommand(name);
  if (c == nullptr) return Usage(absl::StrCat("unknown command '", name, "'"));
  std::fputs(execmon::CommandHelp(*c, kFlagsFile).c_str(), stdout);
  return 0;
}

// absl flags are spelled with underscores; accept --build-id too.
void NormalizeFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (a[0] != '-' || a[1] != '-' || a[2] == '\0') continue;
    for (char* c = a + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

int CmdPolicyLint(const std::vector<char*>& args) {
  if (args.size() != 4) return CommandUsage("policy lint", "want one DIR");
  std::string format = absl::GetFlag(FLAGS_format);
  if (format != "text" && format != "json") {
    std::fprintf(stderr, "execmon: --format=%s: want text or json\n",
                 format.c_str());
    return 2;
  }
  std::string out;
  int rc = execmon::LintPolicyDir(args[3], format == "json", &out);
  std::fputs(out.c_str(), stdout);
  if (!out.empty() && out.back() != '\n') std::fputc('\n', stdout);
  return rc;
}

int CmdPolicyTest(const std::vector<char*>& args) {
  if (args.size() != 4) return CommandUsage("policy test", "want one DIR");
  auto set = execmon::LoadPolicyDir(args[3]);
  if (!set.ok()) {
    std::fprintf(stderr, "execmon: %s\n",
                 std::string(set.status().message()).c_str());
    return 1;
  }
  // denyPackages rules expand through the indexes given with --index.
  std::optional<execmon::PackageMap> packages;
  if (const std::string idx = absl::GetFlag(FLAGS_index); !idx.empty()) {
    absl::StatusOr<execmon::PackageMap> map =
        execmon::PackageMap::Load(absl::StrSplit(idx, ',', absl::SkipEmpty()));
    if (!map.ok()) {
      std::fprintf(stderr, "execmon: %s\n",
                   std::string(map.status().message()).c_str());
      return 1;
    }
    packages = *std::move(map);
  }
  const std::vector<execmon::RuleExpansion> expansions =
      execmon::ExpandPackageRules(&*set, packages ? &*packages : nullptr);
  absl::optional<std::string> id;
  std::string hex = absl::GetFlag(FLAGS_build_id);
  if (!hex.empty()) {
    auto raw = execmon::ParseBuildIdHex(hex);
    if (!raw.ok()) {
      std::fprintf(stderr, "execmon: --build-id: %s\n",
                   std::string(raw.status().message()).c_str());
      return 2;
    }
    id = *raw;
  }
  absl::optional<std::string> sha;
  if (std::string h = absl::GetFlag(FLAGS_sha256); !h.empty()) {
    absl::StatusOr<std::string> raw = execmon::ParseSha256Hex(h);
    if (!raw.ok()) {
      std::fprintf(stderr,
                   "execmon: --sha256: '%s' is not a sha256 digest (expected "
                   "64 hex digits)\n",
                   h.c_str());
      return 2;
    }
    sha = *std::move(raw);
  }
  execmon::Workload w;
  w.host = absl::GetFlag(FLAGS_host);
  w.namespace_name = absl::GetFlag(FLAGS_namespace);
  w.container = absl::GetFlag(FLAGS_container);
  for (absl::string_view kv :
       absl::StrSplit(absl::GetFlag(FLAGS_labels), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    w.labels[p.first] = p.second;
  }
  if (w.host && (!w.namespace_name.empty() || !w.labels.empty() ||
                 !w.container.empty())) {
    std::fprintf(stderr,
                 "execmon: --host describes a process outside containers: "
                 "it has no namespace, labels or container\n");
    return 2;
  }
  if (!w.host && w.namespace_name.empty() && w.labels.empty() &&
      w.container.empty()) {
    std::fprintf(stderr,
                 "execmon: say where the exec runs: --host, or a container "
                 "(--namespace, --labels, --container)\n");
    return 2;
  }
  execmon::Verdict v =
      execmon::Evaluate(*set, id, w, execmon::IdTrust::kTrusted, sha);
  const std::string policy = v.policy >= 0 ? set->policies[v.policy].name : "";
  if (absl::GetFlag(FLAGS_format) == "json") {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> jw(sb);
    jw.StartObject();
    jw.Key("decision");
    jw.String(execmon::DecisionName(v.decision));
    jw.Key("action");
    jw.String(execmon::VerdictActionName(v.action));
    jw.Key("policy");
    v.policy >= 0 ? jw.String(policy.c_str()) : jw.Null();
    jw.Key("rule");
    v.rule.empty() ? jw.Null() : jw.String(v.rule.c_str());
    jw.Key("mode");
    v.policy >= 0 ? jw.String(execmon::PolicyModeName(v.mode)) : jw.Null();
    jw.EndObject();
    std::printf("%s\n", sb.GetString());
  } else {
    std::printf(
        "decision: %s\naction:   %s\npolicy:   %s\nrule:     %s\nmode:     "
        "%s\n",
        execmon::DecisionName(v.decision), execmon::VerdictActionName(v.action),
        policy.empty() ? "-" : policy.c_str(),
        v.rule.empty() ? "-" : v.rule.c_str(),
        v.policy >= 0 ? execmon::PolicyModeName(v.mode) : "-");
    // Why: every policy, whether it governs this exec and what it says.
    for (const execmon::Policy& p : set->policies) {
      bool governs = execmon::SelectorMatches(p.selector, w);
      std::string says = "-";
      if (governs) {
        execmon::PolicySet one;
        one.policies.push_back(p);
        execmon::Verdict pv =
            execmon::Evaluate(one, id, w, execmon::IdTrust::kTrusted, sha);
        says = absl::StrCat(
            execmon::DecisionName(pv.decision),
            pv.rule.empty() ? "" : absl::StrCat(" (", pv.rule, ")"));
      }
      std::printf("  %-32s %-8s %s\n", p.name.c_str(),
                  governs ? "governs" : "no scope", says.c_str());
    }
    // What each denyPackages rule expanded to (the first 20 builds).
    for (const execmon::RuleExpansion& x : expansions) {
      std::printf(
          "denyPackages %s%s%s (policy %s): %s\n", x.rule->name.c_str(),
          x.rule->versions.empty() ? "" : " ", x.rule->versions.c_str(),
          x.policy.c_str(),
          packages ? absl::StrCat(x.builds.size(), " indexed build IDs").c_str()
                   : "no --index given: expands to nothing");
      for (size_t i = 0; i < x.builds.size() && i < 20; ++i) {
        const auto& [id, pkg] = x.builds[i];
        std::printf("  %s  %.*s %.*s %.*s\n",
                    absl::BytesToHexString(id).c_str(),
                    static_cast<int>(pkg.name.size()), pkg.name.data(),
                    static_cast<int>(pkg.version.size()), pkg.version.data(),
                    static_cast<int>(pkg.arch.size()), pkg.arch.data());
      }
      if (x.builds.size() > 20) {
        std::printf("  ... %zu more\n", x.builds.size() - 20);
      }
    }
  }
  return v.decision == execmon::Decision::kDeny ? 3 : 0;
}

int CmdIndexBuild(const std::vector<char*>& args) {
  if (args.size() < 4) {
    return CommandUsage("index build", "want at least one SOURCE");
  }
  const std::string out = absl::GetFlag(FLAGS_output);
  if (out.empty() || out == "stdout" || out == "none") {
    return CommandUsage("index build",
                        "--output=FILE names the index to write");
  }
  execmon::Index index;
  const std::vector<std::string> under =
      absl::StrSplit(absl::GetFlag(FLAGS_under), ',', absl::SkipEmpty());
  for (size_t i = 3; i < args.size(); ++i) {
    if (absl::Status s = execmon::AddIndexSource(args[i], under, &index);
        !s.ok()) {
      std::fprintf(stderr, "execmon: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  if (absl::Status s = execmon::WriteIndex(index, out); !s.ok()) {
    std::fprintf(stderr, "execmon: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  size_t packaged = 0;
  for (const execmon::IndexEntry& e : index.entries) {
    if (!e.package.name.empty()) ++packaged;
  }
  std::fprintf(stderr,
               "execmon: %s: %zu entries (%zu from packages) from %zu "
               "sources; %llu files looked at, %llu ELF files without a "
               "build ID, %llu unreadable\n",
               out.c_str(), index.entries.size(), packaged,
               index.sources.size(),
               static_cast<unsigned long long>(index.stats.files),
               static_cast<unsigned long long>(index.stats.elf_without_id),
               static_cast<unsigned long long>(index.stats.unreadable));
  return 0;
}

int CmdIndexCompile(const std::vector<char*>& args) {
  if (args.size() < 4) {
    return CommandUsage("index compile", "want at least one INDEX");
  }
  const std::string out = absl::GetFlag(FLAGS_output);
  if (out.empty() || out == "stdout" || out == "none") {
    return CommandUsage("index compile",
                        "--output=FILE names the compiled index to write");
  }
  std::vector<std::string> inputs(args.begin() + 3, args.end());
  absl::StatusOr<execmon::PackageMap> map = execmon::PackageMap::Load(inputs);
  if (!map.ok()) {
    std::fprintf(stderr, "execmon: %s\n",
                 std::string(map.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = map->Save(out); !s.ok()) {
    std::fprintf(stderr, "execmon: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::fprintf(stderr,
               "execmon: %s: %zu build IDs of %zu package versions from %zu "
               "indexes\n",
               out.c_str(), map->size(), map->packages(), map->files());
  return 0;
}

int CmdIndexQuery(const std::vector<char*>& args) {
  if (args.size() < 4)
    return CommandUsage("index query", "want at least one FILE");
  std::string want_id;
  if (const std::string hex = absl::GetFlag(FLAGS_build_id); !hex.empty()) {
    auto raw = execmon::ParseBuildIdHex(hex);
    if (!raw.ok()) {
      std::fprintf(stderr, "execmon: --build_id: %s\n",
                   std::string(raw.status().message()).c_str());
      return 2;
    }
    want_id = *raw;
  }
  const std::string want_pkg = absl::GetFlag(FLAGS_package);
  const bool json = absl::GetFlag(FLAGS_format) == "json";
  int found = 0;
  for (size_t i = 3; i < args.size(); ++i) {
    absl::StatusOr<execmon::Index> index = execmon::ReadIndex(args[i]);
    if (!index.ok()) {
      std::fprintf(stderr, "execmon: %s\n",
                   std::string(index.status().message()).c_str());
      return 1;
    }
    for (const execmon::IndexEntry& e : index->entries) {
      if (!want_id.empty() && e.build_id != want_id) continue;
      if (!want_pkg.empty() && e.package.name != want_pkg) continue;
      ++found;
      const std::string id = absl::BytesToHexString(e.build_id);
      if (json) {
        std::printf("%s\n", execmon::IndexEntryJson(e, args[i]).c_str());
      } else {
        std::printf("%s  %s %s %s  %s\n", id.c_str(),
                    e.package.name.empty() ? "-" : e.package.name.c_str(),
                    e.package.version.empty() ? "-" : e.package.version.c_str(),
                    e.package.arch.empty() ? "-" : e.package.arch.c_str(),
                    e.path.c_str());
      }
    }
  }
  return found > 0 ? 0 : 1;
}

// YAML double-quoted scalar (JSON string syntax is valid YAML).
std::string Quoted(absl::string_view s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return sb.GetString();
}

int CmdPolicyGenerate(const std::vector<char*>& args) {
  if (args.size() != 3) {
    return CommandUsage("policy generate",
                        absl::StrCat("unexpected argument '", args[3], "'"));
  }
  const std::string from = absl::GetFlag(FLAGS_from_index);
  const std::string name = absl::GetFlag(FLAGS_name);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (from.empty() || name.empty()) {
    return CommandUsage("policy generate",
                        "--from_index and --name are needed");
  }
  if (mode != "audit" && mode != "enforce") {
    return CommandUsage("policy generate", "--mode: want audit or enforce");
  }
  absl::StatusOr<execmon::Index> index = execmon::ReadIndex(from);
  if (!index.ok()) {
    std::fprintf(stderr, "execmon: %s\n",
                 std::string(index.status().message()).c_str());
    return 1;
  }
  // One entry per build ID (the first path that has it names it).
  std::vector<const execmon::IndexEntry*> unique;
  absl::flat_hash_set<std::string> seen;
  for (const execmon::IndexEntry& e : index->entries) {
    if (seen.insert(e.build_id).second) unique.push_back(&e);
  }
  std::printf(
      "# Generated by `execmon policy generate --from_index=%s`: every build "
      "ID\n# in the index (%zu). A build ID names a build; it does not prove "
      "a\n# file's content (docs/policies.md).\n"
      "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\nmetadata:\n"
      "  name: %s\nspec:\n  mode: %s\n  action: %s\n  allow:\n",
      from.c_str(), unique.size(), Quoted(name).c_str(), mode.c_str(),
      mode == "enforce" ? "kill" : "alert");
  for (const execmon::IndexEntry* e : unique) {
    const std::string note =
        e->package.name.empty()
            ? e->path
            : absl::StrCat(e->package.name, " ", e->package.version, " ",
                           e->path);
    std::printf("    - {buildId: %s, note: %s}\n",
                absl::BytesToHexString(e->build_id).c_str(),
                Quoted(note).c_str());
  }
  return 0;
}

int CmdBuildId(const std::vector<char*>& args) {
  if (args.size() < 3) return CommandUsage("buildid", "want at least one FILE");
  int rc = 0;
  for (size_t i = 2; i < args.size(); ++i) {
    auto id = execmon::ReadBuildIdFile(args[i]);
    if (!id.ok()) {
      std::fprintf(stderr, "execmon: %s\n",
                   std::string(id.status().message()).c_str());
      rc = 1;
      continue;
    }
    execmon::BuildId b;
    b.bytes = *id;
    std::printf("%s  %s\n", b.Hex().c_str(), args[i]);
  }
  return rc;
}

absl::Status ParseLogLevel(const std::string& s) {
  if (s == "debug") {
    execmon::SetLogLevel(execmon::LogLevel::kDebug);
  } else if (s == "info") {
    execmon::SetLogLevel(execmon::LogLevel::kInfo);
  } else if (s == "warning") {
    execmon::SetLogLevel(execmon::LogLevel::kWarning);
  } else if (s == "error") {
    execmon::SetLogLevel(execmon::LogLevel::kError);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log_level=", s, ": want debug, info, warning or error"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<execmon::ResolverPath>> ParseRefused(
    const std::string& s) {
  std::vector<execmon::ResolverPath> out;
  if (s.empty()) return out;
  auto c = execmon::ParseResolverChoice(s);
  if (!c.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resolver_refuse: ", c.status().message()));
  }
  return c->paths;
}

absl::StatusOr<execmon::ResolverChoice> ParseResolver(const std::string& s) {
  return execmon::ParseResolverChoice(s);
}

absl::Status CmdRun() {
  if (absl::Status s = ParseLogLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    return s;
  }
  auto resolver = ParseResolver(absl::GetFlag(FLAGS_build_id_resolver));
  if (!resolver.ok()) return resolver.status();
  auto refused = ParseRefused(absl::GetFlag(FLAGS_resolver_refuse));
  if (!refused.ok()) return refused.status();
  uint32_t rb_mb = absl::GetFlag(FLAGS_ring_buffer_mb);
  if (rb_mb == 0 || (rb_mb & (rb_mb - 1)) != 0 || rb_mb > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--ring_buffer_mb=", rb_mb, ": want a power of two from 1 to 1024"));
  }
  if (absl::Status s = execmon::CheckPrerequisites(); !s.ok()) return s;

  std::vector<std::unique_ptr<execmon::EventSink>> sinks;
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output == "none") {
    if (absl::GetFlag(FLAGS_kafka_brokers).empty()) {
      return absl::InvalidArgumentError(
          "--output=none without --kafka_brokers: events would go nowhere");
    }
  } else {
    auto out = execmon::JsonLinesSink::Open(output);
    if (!out.ok()) return out.status();
    sinks.push_back(*std::move(out));
  }

  execmon::AgentOptions opts;
  opts.node = absl::GetFlag(FLAGS_node);
  if (opts.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    opts.node = host;
  }
  opts.boot_id = execmon::ShortBootId();
  opts.max_processes = absl::GetFlag(FLAGS_max_processes);
  opts.snapshot = absl::GetFlag(FLAGS_snapshot);
  opts.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  if (opts.poll_interval < absl::Milliseconds(1) ||
      opts.poll_interval > absl::Seconds(1)) {
    return absl::InvalidArgumentError("--poll_interval: want 1ms to 1s");
  }
  opts.policy_dir = absl::GetFlag(FLAGS_policies);
  opts.index_paths =
      absl::StrSplit(absl::GetFlag(FLAGS_index), ',', absl::SkipEmpty());
  opts.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  opts.cluster = absl::GetFlag(FLAGS_cluster);
  opts.kubernetes = absl::GetFlag(FLAGS_kubernetes);
  if (opts.kubernetes != "auto" && opts.kubernetes != "on" &&
      opts.kubernetes != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kubernetes=", opts.kubernetes, ": want auto, on or off"));
  }
  opts.kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
  opts.pod_wait = absl::GetFlag(FLAGS_pod_wait);
  opts.pod_annotations = absl::GetFlag(FLAGS_pod_annotations);
  opts.bpf_stats = absl::GetFlag(FLAGS_bpf_stats);
  // --- Kafka sink construction ---
  if (!absl::GetFlag(FLAGS_kafka_brokers).empty()) {
    execmon::KafkaOptions kafka;
    kafka.brokers = absl::GetFlag(FLAGS_kafka_brokers);
    kafka.topic = absl::GetFlag(FLAGS_kafka_topic);
    kafka.topic_by_type = absl::GetFlag(FLAGS_kafka_topic_by_type);
    auto key = execmon::ParseKafkaKey(absl::GetFlag(FLAGS_kafka_key));
    if (!key.ok()) return key.status();
    kafka.key = *key;
    auto props = execmon::ParseKafkaProperties(
        absl::GetFlag(FLAGS_kafka_property).items);
    if (!props.ok()) return props.status();
    kafka.properties = *std::move(props);
    kafka.queue_max_events = absl::GetFlag(FLAGS_kafka_queue_max_events);
    kafka.queue_max_bytes = absl::GetFlag(FLAGS_kafka_queue_max_bytes);
    kafka.queue_max_age = absl::GetFlag(FLAGS_kafka_queue_max_age);
    kafka.flush_timeout = absl::GetFlag(FLAGS_kafka_flush_timeout);
    // The sinks' shutdown deadline is Kafka's flush timeout (the other
    // sinks do not wait).
    opts.sink_close_deadline = kafka.flush_timeout;
    auto kafka_sink = execmon::KafkaSink::Create(kafka);
    if (!kafka_sink.ok()) return kafka_sink.status();
    sinks.push_back(*std::move(kafka_sink));
  }
  // --- end of Kafka sink construction ---
  execmon::Agent agent(opts, std::move(sinks));

  execmon::BpfOptions bpf;
  bpf.resolver = *resolver;
  bpf.refuse = *refused;
  bpf.ring_buffer_bytes = rb_mb << 20;
  bpf.cache_entries = absl::GetFlag(FLAGS_cache_entries);
  bpf.pending_entries = absl::GetFlag(FLAGS_pending_entries);
  bpf.cache_min_age_ns =
      absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_cache_min_age));
  bpf.max_policy_ids = absl::GetFlag(FLAGS_max_policy_ids);
  bpf.wakeup_bytes = absl::GetFlag(FLAGS_ringbuf_wakeup_bytes);
  bpf.exec_lsm = absl::GetFlag(FLAGS_exec_lsm);
  bpf.exe_sha256 = absl::GetFlag(FLAGS_exe_sha256);
  bpf.exe_sha256_max_bytes =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_exe_sha256_max_mb)) << 20;
  auto loader = execmon::BpfLoader::Create(
      bpf, [&agent](absl::Span<const uint8_t> rec) { agent.OnRecord(rec); });
  if (!loader.ok()) return loader.status();
  agent.set_loader(loader->get());
  for (const execmon::PathStatus& p : (*loader)->paths()) {
    if (p.loaded) {
      execmon::LogInfo("build-ID path ", execmon::ResolverPathName(p.path),
                       ": loaded (", p.verified_insns,
                       " instructions verified)");
    } else if (p.requested) {
      execmon::LogWarning("build-ID path ", execmon::ResolverPathName(p.path),
                          ": not available: ", p.reason);
    }
  }
  execmon::LogInfo("build-ID resolver chain: cache,", (*loader)->chain(),
                   " on kernel ", (*loader)->features().release);
  if (const execmon::ExecLsmStatus& l = (*loader)->exec_lsm(); l.loaded) {
    execmon::LogInfo(
        "exec denial (BPF LSM bprm_check_security): active (", l.verified_insns,
        " instructions verified); action block fails a denied exec with "
        "EPERM; sha256: ",
        l.sha256 ? "on (bpf_ima_file_hash)" : "off (--exe_sha256=false)");
  } else {
    execmon::LogWarning(
        "exec denial (BPF LSM bprm_check_security): not available: ", l.reason,
        "; action block kills before the first instruction instead; "
        "sha256: off");
  }
  if (!(*loader)->judges_at_exec()) {
    execmon::LogWarning(
        "build IDs of first-seen binaries are learned only after the "
        "program started (iterator) or not at all",
        opts.policy_dir.empty()
            ? ""
            : "; under an enforce+kill policy such an exec is held (stopped "
              "before its first instruction) until it is judged");
  }

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return agent.Run(g_stop);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "execmon COMMAND [ARGS] [flags]; see 'execmon help'");
  absl::FlagsUsageConfig cfg;
  cfg.contains_help_flags = [](absl::string_view f) {
    return absl::EndsWith(f, kFlagsFile);
  };
  cfg.version_string = [] { return std::string(EXECMON_VERSION "\n"); };
  absl::SetFlagsUsageConfig(cfg);
  NormalizeFlagNames(argc, argv);
  if (int rc = MaybeHelp(argc, argv); rc >= 0) return rc;
  const std::vector<std::string> given = execmon::FlagsGiven(argc, argv);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage();
  std::string name = args[1];
  if (name == "policy" || name == "index") {
    if (args.size() < 3) {
      std::fputs(execmon::GroupHelp(name).c_str(), stderr);
      return 2;
    }
    name = absl::StrCat(name, " ", args[2]);
  }
  const execmon::Command* cmd = execmon::FindCommand(name);
  if (cmd == nullptr || cmd->name == "help") {
    return Usage(absl::StrCat("unknown command '", name, "'"));
  }
  if (absl::Status s = execmon::CheckFlags(*cmd, kFlagsFile, given); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (name == "version" || name == "schema") {
    if (args.size() > 2) {
      return CommandUsage(name,
                          absl::StrCat("unexpected argument '", args[2], "'"));
    }
    if (name == "version") {
      std::printf("execmon %s\n", EXECMON_VERSION);
    } else {
      absl::string_view schema = execmon::EventSchema();
      std::fwrite(schema.data(), 1, schema.size(), stdout);
    }
    return 0;
  }
  if (name == "buildid") return CmdBuildId(args);
  if (name == "policy lint") return CmdPolicyLint(args);
  if (name == "policy test") return CmdPolicyTest(args);
  if (name == "policy generate") return CmdPolicyGenerate(args);
  if (name == "index build") return CmdIndexBuild(args);
  if (name == "index query") return CmdIndexQuery(args);
  if (name == "index compile") return CmdIndexCompile(args);
  if (args.size() > 2) {
    return CommandUsage("run",
                        absl::StrCat("unexpected argument '", args[2], "'"));
  }
  absl::Status s = CmdRun();
  if (!s.ok()) {
    std::fprintf(stderr, "execmon: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
