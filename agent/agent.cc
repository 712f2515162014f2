#include "agent/agent.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/common/log.h"
#include "agent/common/version.h"
#include "agent/event/decoder.h"
#include "agent/index/package_rules.h"
#include "agent/policy/compiler.h"
#include "agent/policy/evaluator.h"
#include "agent/policy/lint.h"
#include "agent/policy/parser.h"
#include "bpf/execmon_abi.h"

namespace execmon {
namespace {

// Kernel counters that mean an event or a build ID was lost.
struct LossCounter {
  int stat;
  const char* what;
};
constexpr LossCounter kLossCounters[] = {
    {EM_STAT_RB_DROP_EXEC, "exec events lost: ring buffer full"},
    {EM_STAT_RB_DROP_EXIT, "exit events lost: ring buffer full"},
    {EM_STAT_RB_DROP_FORK, "fork records lost: ring buffer full"},
    {EM_STAT_RB_DROP_CGROUP, "cgroup records lost: ring buffer full"},
    {EM_STAT_PENDING_FULL, "execs sent without build ID: pending table full"},
    {EM_STAT_TW_SCHEDULE_FAIL, "execs sent without build ID: task_work failed"},
    {EM_STAT_PENDING_REPLACED, "pending resolutions replaced before running"},
    {EM_STAT_KILL_FAILED, "policy kills that could not be sent"},
    {EM_STAT_STATE_LOST, "execs lost between chained exec programs"},
};

const char* KernelDecisionName(uint8_t d) {
  switch (d) {
    case EM_DEC_ALLOW:
      return "allow";
    case EM_DEC_DENY:
      return "deny";
    case EM_DEC_PENDING:
      return "pending";
    default:
      return "unknown";
  }
}

const char* KernelActionName(uint8_t a) {
  switch (a) {
    case EM_ACT_ALERT:
      return "alert";
    case EM_ACT_KILL:
      return "kill";
    case EM_ACT_DENY_EXEC:
      return "deny_exec";
    default:
      return "none";
  }
}

int64_t ClockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Splits concatenated iterator output into decoded records.
std::vector<KernelRecord> DecodeAll(absl::Span<const uint8_t> data,
                                    uint64_t* errors) {
  std::vector<KernelRecord> out;
  while (!data.empty()) {
    size_t n = RecordSize(data);
    if (n == 0 || n > data.size()) {
      ++*errors;
      LogError("iterator output: truncated record (", data.size(),
               " bytes left)");
      break;
    }
    auto rec = DecodeRecord(data.subspan(0, n));
    if (rec.ok()) {
      out.push_back(*std::move(rec));
    } else {
      ++*errors;
      LogError("iterator output: ", rec.status().message());
    }
    data.remove_prefix(n);
  }
  return out;
}

// Whether /proc/cpuinfo lacks the "cx16" flag (CMPXCHG16B). Newer kernels
// (7.x) allocate the bpf_task_work context with kmalloc_nolock(), which
// needs that instruction on x86: without it every schedule fails with
// -ENOMEM (seen in qemu guests started with -cpu ...,-cx16). Read once.
bool CpuLacksCx16() {
  static const bool lacks = [] {
#if defined(__x86_64__)
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (!line.starts_with("flags")) continue;
      return !absl::StrContains(absl::StrCat(line, " "), " cx16 ");
    }
#endif
    return false;
  }();
  return lacks;
}

}  // namespace

int64_t BootToRealtimeNs() {
  return ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_BOOTTIME);
}

std::string ShortBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  id = absl::StrReplaceAll(id, {{"-", ""}});
  return id.substr(0, 8);
}

Agent::Agent(AgentOptions options,
             std::vector<std::unique_ptr<EventSink>> sinks)
    : options_(std::move(options)),
      sinks_(std::move(sinks)),
      table_(options_.max_processes, options_.boot_id),
      writer_(options_.node) {
  writer_.set_boot_to_real_ns(BootToRealtimeNs());
  writer_.set_cluster(options_.cluster);
  writer_.set_package_lookup([this](absl::string_view id, PackageView* out) {
    std::optional<PackageRef> p =
        packages_ ? packages_->Find(id) : std::nullopt;
    if (!p.has_value()) return false;
    *out = {p->name, p->version, p->arch, p->source};
    return true;
  });
  auto cgroups = CgroupResolver::Create(options_.max_cgroups);
  if (cgroups.ok()) {
    cgroups_ = *std::move(cgroups);
  } else {
    LogWarning("container attribution disabled: ", cgroups.status().message());
  }
}

const ContainerRef* Agent::ContainerOf(uint64_t cgroup_id) {
  if (cgroups_ == nullptr || cgroup_id == 0) return nullptr;
  const ContainerRef& ref = cgroups_->Resolve(cgroup_id).container;
  scopes_.OnCgroup(cgroup_id, ref);
  return &ref;
}

Agent::Placement Agent::PlacementOf(uint64_t cgroup_id) {
  Placement p;
  p.container = ContainerOf(cgroup_id);
  if (p.container != nullptr) p.pod = LookupPod(*p.container);
  return p;
}

std::shared_ptr<const PodMeta> Agent::LookupPod(const ContainerRef& ref) const {
  if (pods_ == nullptr || ref.pod_uid.empty()) return nullptr;
  // Read first: a change after it makes the next lookup start over.
  const uint64_t generation = pods_->Generation();
  if (generation != pod_cache_generation_) {
    pod_cache_.clear();
    pod_cache_generation_ = generation;
  }
  auto per_pod = pod_cache_.find(ref.pod_uid);
  if (per_pod != pod_cache_.end()) {
    auto it = per_pod->second.find(ref.container_id);
    if (it != per_pod->second.end()) return it->second;
  }
  absl::optional<k8s::PodInfo> pod = pods_->FindPod(ref.pod_uid);
  if (!pod.has_value()) return nullptr;
  PodMeta m;
  m.uid = pod->uid;
  m.namespace_name = pod->namespace_name;
  m.name = pod->name;
  m.labels.assign(pod->labels.begin(), pod->labels.end());
  m.annotations.assign(pod->annotations.begin(), pod->annotations.end());
  m.workload = pod->workload;
  m.workload_kind = pod->workload_kind;
  if (ref.in_container()) {
    if (absl::optional<k8s::ContainerMeta> c =
            pods_->FindContainer(ref.container_id)) {
      m.container_name = c->container_name;
      m.image = c->image;
      m.image_id = c->image_id;
    }
  }
  m.enriched = true;
  auto meta = std::make_shared<const PodMeta>(std::move(m));
  // A deleted pod's tombstone expires with time, not with a generation.
  if (!pod->deleted) pod_cache_[ref.pod_uid].emplace(ref.container_id, meta);
  return meta;
}

absl::Status Agent::StartPodWatcher() {
  if (options_.kubernetes == "off") return absl::OkStatus();
  auto config = k8s::LoadDefaultConfig(options_.kubeconfig);
  if (!config.ok()) {
    if (options_.kubernetes == "on") return config.status();
    LogInfo("Kubernetes API not configured (", config.status().message(),
            "): pod metadata limited to the pod UID from cgroups");
    return absl::OkStatus();
  }
  k8s::PodWatcherOptions opts;
  opts.node_name = options_.node;
  opts.cluster_name = options_.cluster;
  opts.include_annotations = options_.pod_annotations;
  opts.logger = [](LogLevel level, absl::string_view message) {
    Log(level, "kubernetes: ", message);
  };
  auto watcher = k8s::PodWatcher::Create(*std::move(config), opts);
  if (!watcher.ok()) return watcher.status();
  if (absl::Status s = (*watcher)->Start(); !s.ok()) return s;
  pods_ = *std::move(watcher);
  if (!pods_->WaitForSync(absl::Seconds(5))) {
    LogWarning("Kubernetes API: pods of node ", options_.node,
               " not listed within 5 s; continuing, events wait up to ",
               absl::FormatDuration(options_.pod_wait), " for their pod");
  }
  return absl::OkStatus();
}

bool Agent::PushScopes(
    const std::vector<std::pair<uint64_t, uint64_t>>& masks) {
  std::vector<std::pair<uint64_t, uint64_t>> changed;
  for (const auto& [id, mask] : masks) {
    auto it = pushed_scopes_.find(id);
    if (it == pushed_scopes_.end() || it->second != mask)
      changed.emplace_back(id, mask);
  }
  if (changed.empty()) return true;
  if (absl::Status s = loader_->SetScopes(changed); !s.ok()) {
    LogError("pod policy scopes: ", s.message());
    return false;
  }
  for (const auto& [id, mask] : changed) pushed_scopes_[id] = mask;
  return true;
}

void Agent::RefreshScopes() {
  if (sets_.empty() || pods_ == nullptr) return;
  const std::tuple<uint64_t, uint64_t, uint32_t> state{
      pods_->Generation(), scopes_.version(), sets_.back().first};
  if (state == scopes_state_) return;
  if (PushScopes(scopes_.Masks(*sets_.back().second, pod_lookup()))) {
    scopes_state_ = state;
  }
}

void Agent::EmitExec(const ExecEvent& e, const ProcessInfo& self,
                     const ProcessInfo* parent, const VerdictView& verdict,
                     const ContainerRef& container, const PodMeta* pod) {
  WorkloadView wl{&container, pod};
  if (!container.pod_uid.empty() && (pod == nullptr || !pod->enriched)) {
    ++counters_.events_unenriched;
  }
  Emit("exec", writer_.Exec(e, self, parent, &verdict, &wl), container.pod_uid);
}

size_t Agent::ReleaseWaiting(bool all, uint32_t pid) {
  size_t sent = 0;
  absl::Time now = absl::Now();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    std::shared_ptr<const PodMeta> pod = LookupPod(it->container);
    bool complete = pod != nullptr && (!it->container.in_container() ||
                                       !pod->container_name.empty());
    if (all || complete || now >= it->deadline ||
        (pid != 0 && it->event.pid == pid)) {
      EmitExec(it->event, it->self, it->parent ? &*it->parent : nullptr,
               it->verdict, it->container, pod.get());
      it = waiting_.erase(it);
      ++sent;
    } else {
      ++it;
    }
  }
  return sent;
}

void Agent::Emit(const char* type, absl::string_view json,
                 absl::string_view pod_uid) {
  EventMeta meta;
  meta.type = type;
  meta.node = options_.node;
  meta.pod_uid = pod_uid;
  for (auto& sink : sinks_) {
    absl::Status s = sink->Write(meta, json);
    if (!s.ok()) {
      ++counters_.sink_errors;
      if (metrics_) metrics_->OnSinkError(sink->name());
      LogError(s.message());
    }
  }
  if (metrics_) metrics_->OnEvent(type);
}

void Agent::CloseSinks(absl::Duration deadline) {
  for (auto& sink : sinks_) {
    absl::Status s = sink->Close(deadline);
    if (!s.ok()) {
      ++counters_.sink_errors;
      LogError(s.message());
    }
  }
}

void Agent::FlushSinks() {
  for (auto& sink : sinks_) {
    absl::Status s = sink->Flush();
    if (!s.ok()) {
      ++counters_.sink_errors;
      LogError(s.message());
    }
  }
}

void Agent::ResolveLate(ExecEvent& e) {
  ResolveItem item;
  item.addr = EM_RESOLVE_EXE;
  item.key = e.exe;
  auto raw = loader_->Resolve(e.pid, absl::MakeConstSpan(&item, 1),
                              BuildIdSource::kIterator);
  e.build_id.source = BuildIdSource::kIterator;
  if (!raw.ok()) {
    ++counters_.late_resolution_errors;
    LogWarning("late build-ID resolution of pid ", e.pid, ": ",
               raw.status().message());
    e.build_id.error = EM_BID_ERR_READ_FAULT;
    e.verdict = KernelVerdict{};
    e.verdict.decision = EM_DEC_UNKNOWN;
    return;
  }
  for (KernelRecord& rec : DecodeAll(*raw, &counters_.decode_errors)) {
    if (auto* r = std::get_if<Resolved>(&rec)) {
      e.build_id = r->build_id;
      e.verdict = r->verdict;
      e.resolved_ns = r->ktime_ns;
      ++counters_.late_resolutions;
      return;
    }
  }
  // The iterator found no such process: it exited before we got to it.
  // Nothing was judged or done.
  e.build_id.error = EM_BID_ERR_EXITED;
  e.verdict = KernelVerdict{};
  e.verdict.decision = EM_DEC_UNKNOWN;
  ++counters_.late_resolution_errors;
}

VerdictView Agent::ViewOf(const KernelVerdict& v, const BuildId& bid,
                          const std::string& sha256) const {
  VerdictView out;
  out.decision = KernelDecisionName(v.decision);
  out.action = KernelActionName(v.action);
  out.protected_process = (v.flags & EM_V_PROTECTED) != 0;
  if (v.policy < 0) return out;
  out.mode = (v.flags & EM_V_ENFORCE) ? "enforce" : "audit";
  for (const auto& [gen, set] : sets_) {
    if (gen != v.gen) continue;
    if (static_cast<size_t>(v.policy) < set->policies.size()) {
      const Policy& p = set->policies[v.policy];
      out.policy = p.name;
      absl::optional<std::string> id;
      if (bid.known()) id = bid.bytes;
      out.rule = RuleFor(
          p, id, v.decision == EM_DEC_DENY ? Decision::kDeny : Decision::kAllow,
          bid.from_memory ? IdTrust::kFromMemory : IdTrust::kTrusted,
          sha256.empty() ? absl::nullopt : absl::make_optional(sha256));
    }
    return out;
  }
  // A generation older than the two kept: say which, not a wrong name.
  out.policy = absl::StrCat("#", v.policy, "@generation-", v.gen);
  return out;
}

// Signals process pid if it is still the one that started at start_ns
// (boot-based), through a pidfd so the pid cannot be reused in between.
static absl::Status SignalProcess(uint32_t pid, uint64_t start_ns, int sig) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("pid ", pid, ": ", std::strerror(errno)));
  }
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // Field 22 (starttime, clock ticks since boot), counted after the
  // command name's closing parenthesis (field 2 may hold spaces).
  size_t close_paren = stat.rfind(')');
  std::vector<absl::string_view> fields;
  if (close_paren != std::string::npos) {
    fields =
        absl::StrSplit(absl::string_view(stat).substr(close_paren + 2), ' ');
  }
  uint64_t ticks = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &ticks)) {
    close(fd);
    return absl::NotFoundError(absl::StrCat("pid ", pid, ": no start time"));
  }
  const int64_t hz = sysconf(_SC_CLK_TCK);
  const int64_t start_ticks =
      static_cast<int64_t>(start_ns / (1000000000 / hz));
  if (std::llabs(static_cast<int64_t>(ticks) - start_ticks) > 1) {
    close(fd);
    return absl::NotFoundError(
        absl::StrCat("pid ", pid, " is another process now"));
  }
  int rc =
      static_cast<int>(syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0));
  int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("signal ", sig, " to pid ", pid,
                                            ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

void Agent::ReleaseHeld(const ExecEvent& e) {
  ++counters_.held;
  const bool kill = e.verdict.action == EM_ACT_KILL;
  if (kill && !(e.verdict.flags & EM_V_KILL_BY_AGENT))
    return;  // the kernel did
  absl::Status s = SignalProcess(e.pid, e.start_ns, kill ? SIGKILL : SIGCONT);
  if (!s.ok()) {
    ++counters_.held_release_errors;
    LogWarning("releasing held exec of pid ", e.pid, ": ", s.message());
  }
}

void Agent::HandleExec(ExecEvent e) {
  if (e.build_id.error == EM_BID_ERR_PENDING && loader_ != nullptr) {
    ResolveLate(e);
  }
  if (e.flags & EM_F_HELD) {
    ReleaseHeld(e);
  } else if (e.verdict.action == EM_ACT_KILL &&
             (e.verdict.flags & EM_V_KILL_BY_AGENT)) {
    // A late kill on a kernel without bpf_send_signal_task.
    if (absl::Status s = SignalProcess(e.pid, e.start_ns, SIGKILL); !s.ok()) {
      LogWarning("late kill of pid ", e.pid, ": ", s.message());
    }
  }
  ++counters_.exec_events;
  // An exec denied with EPERM never ran: the process keeps its old image
  // (and its table entry); the event describes the attempt.
  ProcessInfo attempted;
  const bool denied = e.verdict.action == EM_ACT_DENY_EXEC;
  if (denied) attempted = table_.ExecInfo(e);
  const ProcessInfo& self = denied ? attempted : table_.OnExec(e);
  // Looked up after the insert, which never evicts the parent: both stay
  // valid until the table changes again.
  const ProcessInfo* parent = e.ppid != e.pid ? table_.Find(e.ppid) : nullptr;
  VerdictView verdict = ViewOf(e.verdict, e.build_id, e.sha256);
  static const ContainerRef kNoContainer;
  const ContainerRef* found = ContainerOf(e.cgroup_id);
  const ContainerRef& container = found != nullptr ? *found : kNoContainer;
  std::shared_ptr<const PodMeta> pod = LookupPod(container);
  if (metrics_) {
    // The pod as known now (a pod described later still counts as "").
    metrics_->OnExec(e, verdict.decision, verdict.action,
                     verdict.mode ? verdict.mode : "",
                     pod ? absl::string_view(pod->namespace_name) : "",
                     pod ? absl::string_view(pod->workload) : "");
  }
  bool complete = pod != nullptr &&
                  (!container.in_container() || !pod->container_name.empty());
  // In a pod the API has not described yet: wait (bounded) for it, without
  // holding up other events. What the event is rendered with is copied, as
  // the table changes meanwhile.
  if (pods_ != nullptr && !container.pod_uid.empty() && !complete &&
      waiting_.size() < options_.max_waiting_events) {
    ++counters_.events_waited_for_pod;
    WaitingExec& w = waiting_.emplace_back();
    w.deadline = absl::Now() + options_.pod_wait;
    w.self = self;
    if (parent != nullptr) w.parent = *parent;
    w.verdict = std::move(verdict);
    w.container = container;
    w.event = std::move(e);
    return;
  }
  EmitExec(e, self, parent, verdict, container, pod.get());
}

void Agent::Sweep() {
  auto raw = loader_->RunSweep();
  if (!raw.ok()) {
    LogError("policy sweep: ", raw.status().message());
    return;
  }
  size_t n = 0;
  for (KernelRecord& rec : DecodeAll(*raw, &counters_.decode_errors)) {
    auto* r = std::get_if<SweepRecord>(&rec);
    if (r == nullptr) continue;
    ++n;
    ++counters_.sweep_events;
    if (r->verdict.action == EM_ACT_KILL &&
        (r->verdict.flags & EM_V_KILL_BY_AGENT)) {
      if (absl::Status s = SignalProcess(r->pid, r->start_ns, SIGKILL);
          !s.ok()) {
        LogWarning("sweep kill of pid ", r->pid, ": ", s.message());
      }
    }
    VerdictView v = ViewOf(r->verdict, r->build_id);
    if (metrics_) metrics_->OnSweep(v.action);
    Placement where = PlacementOf(r->cgroup_id);
    WorkloadView wl = where.view();
    Emit("sweep", writer_.Sweep(*r, table_.Find(r->pid), v, &wl),
         where.pod_uid());
  }
  FlushSinks();
  LogInfo("policy sweep: ", n, " running processes violate the policies");
}

absl::StatusOr<PolicySet> Agent::ParsePolicies() const {
  ParseResult parsed = ParsePolicyDir(options_.policy_dir);
  if (parsed.errors.empty()) return std::move(parsed.set);
  std::string msg = absl::StrCat(options_.policy_dir, ": ",
                                 parsed.errors.size(), " policy errors:");
  for (const PolicyError& e : parsed.errors) {
    absl::StrAppend(&msg, "\n  ", e.ToString());
  }
  return absl::InvalidArgumentError(msg);
}

absl::Status Agent::LoadPolicies() {
  absl::StatusOr<PolicySet> parsed;
  if (validated_.has_value()) {
    parsed = *std::move(validated_);
    validated_.reset();
  } else {
    parsed = ParsePolicies();
  }
  if (!parsed.ok()) return parsed.status();
  // denyPackages: package version ranges, to build IDs through the indexes.
  for (const RuleExpansion& x : ExpandPackageRules(&*parsed, packages_.get())) {
    if (packages_ == nullptr) {
      LogWarning("policy ", x.policy, ": denyPackages ", x.rule->name,
                 " denies nothing: no build-ID index is loaded (--index)");
    } else {
      LogInfo("policy ", x.policy, ": denyPackages ", x.rule->name,
              x.rule->versions.empty() ? "" : " ", x.rule->versions, ": ",
              x.builds.size(), " indexed build IDs");
    }
  }
  // Said every time such a policy is loaded, as `policy lint` says it.
  for (const PolicyWarning& w : PolicyWarnings(*parsed)) {
    LogWarning(w.ToString());
  }
  auto compiled = CompilePolicies(*parsed);
  if (!compiled.ok()) return compiled.status();
  std::vector<std::pair<uint64_t, uint64_t>> scopes;
  if (pods_ != nullptr) scopes = scopes_.Masks(*parsed, pod_lookup());
  auto gen = loader_->LoadPolicies(*compiled, scopes);
  if (!gen.ok()) return gen.status();
  pushed_scopes_.clear();
  for (const auto& [id, mask] : scopes) pushed_scopes_[id] = mask;
  auto set = std::make_shared<const PolicySet>(*std::move(parsed));
  sets_.emplace_back(*gen, set);
  while (sets_.size() > 2) sets_.erase(sets_.begin());
  counters_.policies_loaded = set->policies.size();
  // List files may live outside the directory: watch their homes too.
  if (watcher_ != nullptr) {
    absl::flat_hash_set<const std::string*> files;  // shared by entries
    absl::flat_hash_set<std::string> dirs;
    for (const Policy& p : set->policies) {
      for (const auto* list : {&p.deny, &p.allow}) {
        for (const auto& [id, entry] : *list) {
          if (entry.file == nullptr || !files.insert(entry.file.get()).second) {
            continue;
          }
          size_t slash = entry.file->rfind('/');
          if (slash != std::string::npos)
            dirs.insert(entry.file->substr(0, slash));
        }
      }
    }
    watcher_->WatchDirs(std::vector<std::string>(dirs.begin(), dirs.end()));
  }
  if (metrics_) metrics_->SetPolicies(set->policies.size(), *gen);
  LogInfo("policies: ", set->policies.size(), " loaded from ",
          options_.policy_dir, " (generation ", *gen, ", ",
          compiled->ids.size(), " build IDs)");
  Sweep();
  return absl::OkStatus();
}

absl::Status Agent::LoadPoliciesCounted() {
  absl::Status s = LoadPolicies();
  if (metrics_) metrics_->OnPolicyReload(s.ok());
  return s;
}

void Agent::UpdateMetrics(const std::vector<uint64_t>* kernel_stats) {
  if (!metrics_) return;
  if (kernel_stats != nullptr) metrics_->SetKernelStats(*kernel_stats);
  metrics_->SetProcessTable(table_.size(), table_.evictions());
  metrics_->SetDecodeErrors(counters_.decode_errors);
  metrics_->SetLateResolutions(counters_.late_resolutions,
                               counters_.late_resolution_errors);
  // Walking the cache map costs a syscall per entry: every 10 s.
  absl::Time now = absl::Now();
  if (kernel_stats != nullptr && now - last_cache_walk_ >= absl::Seconds(10)) {
    last_cache_walk_ = now;
    auto entries = loader_->CacheEntries();
    if (entries.ok()) {
      metrics_->SetCacheEntries(*entries, (*kernel_stats)[EM_STAT_CACHE_FILL]);
    }
  }
  if (options_.bpf_stats) {
    for (const auto& p : loader_->ReadProgramStats()) {
      metrics_->SetProgramStats(p.name, p.run_time_ns, p.run_count);
    }
  }
  bool healthy = true;
  std::string detail;
  for (const auto& sink : sinks_) {
    SinkStats st = sink->Stats();
    if (st.reports_delivery) {
      metrics_->SetSinkQueue(sink->name(), st.queue_depth);
      metrics_->SetSinkDelivered(sink->name(), st.delivered);
      metrics_->SetSinkFailed(sink->name(), st.failed);
      for (const auto& [reason, n] : st.dropped) {
        metrics_->SetSinkDropped(sink->name(), reason, n);
      }
    }
    metrics_->SetSinkUp(sink->name(), sink->Healthy());
    if (!sink->Healthy()) {
      healthy = false;
      absl::StrAppend(&detail, detail.empty() ? "" : ",", sink->name(),
                      " down");
    }
  }
  health_.sinks_healthy.store(healthy);
  absl::MutexLock lock(&health_.mu);
  health_.sinks_detail = detail;
}

bool Agent::Settled(bool changed, absl::Time* seen) const {
  const absl::Time now = absl::Now();
  if (changed) *seen = now;  // debounce bursts of writes
  if (*seen == absl::InfiniteFuture() ||
      now - *seen < options_.reload_debounce) {
    return false;
  }
  *seen = absl::InfiniteFuture();
  return true;
}

void Agent::ReloadPolicies() {
  ++counters_.policy_reloads;
  absl::Status s = LoadPoliciesCounted();
  if (!s.ok()) {
    ++counters_.policy_reload_errors;
    LogError("policy reload rejected, previous policies stay in force: ",
             s.message());
  }
}

void Agent::MaybeReload() {
  if (watcher_ == nullptr) return;
  if (Settled(watcher_->Changed(), &change_seen_)) ReloadPolicies();
}

absl::Status Agent::LoadIndexes() {
  absl::StatusOr<PackageMap> map = PackageMap::Load(options_.index_paths);
  if (!map.ok()) return map.status();
  LogInfo("index: ", map->size(), " build IDs of ", map->packages(),
          " package versions from ", map->files(), " files");
  packages_ = std::make_shared<const PackageMap>(*std::move(map));
  return absl::OkStatus();
}

void Agent::MaybeReloadIndexes() {
  if (index_watchers_.empty()) return;
  bool changed = false;
  for (auto& w : index_watchers_) changed |= w->Changed();
  if (!Settled(changed, &index_change_seen_)) return;
  ++counters_.index_reloads;
  if (absl::Status s = LoadIndexes(); !s.ok()) {
    ++counters_.index_reload_errors;
    LogError("index reload rejected, previous indexes stay loaded: ",
             s.message());
    return;
  }
  // denyPackages rules expand through the indexes: recompile them.
  if (watcher_ != nullptr) ReloadPolicies();
}

void Agent::OnRecord(absl::Span<const uint8_t> data) {
  auto rec = DecodeRecord(data);
  if (!rec.ok()) {
    ++counters_.decode_errors;
    LogError("ring buffer: ", rec.status().message());
    return;
  }
  if (auto* e = std::get_if<ExecEvent>(&*rec)) {
    HandleExec(std::move(*e));
  } else if (auto* f = std::get_if<ForkEvent>(&*rec)) {
    ++counters_.fork_records;
    table_.OnFork(*f);
  } else if (auto* x = std::get_if<ExitEvent>(&*rec)) {
    ++counters_.exit_events;
    // Its exec, if still waiting for pod metadata, goes first.
    if (!waiting_.empty()) ReleaseWaiting(false, x->pid);
    std::optional<ProcessInfo> info = table_.OnExit(*x);
    Placement where = info ? PlacementOf(info->cgroup_id) : Placement{};
    WorkloadView wl = where.view();
    Emit("exit", writer_.Exit(*x, info ? &*info : nullptr, &wl),
         where.pod_uid());
  } else if (auto* c = std::get_if<CgroupEvent>(&*rec)) {
    if (cgroups_ != nullptr) {
      if (c->removed) {
        cgroups_->OnRmdir(c->id);
        scopes_.OnCgroupRemoved(c->id);
        if (pushed_scopes_.erase(c->id) > 0) loader_->ClearScope(c->id);
      } else {
        cgroups_->OnMkdir(c->id, std::move(c->path));
        const ContainerRef* ref = ContainerOf(c->id);
        // A pod's cgroup, created before its containers run: scope it now
        // so its first exec is judged with its pod's policies.
        if (ref != nullptr && !ref->pod_uid.empty() && !sets_.empty() &&
            pods_ != nullptr) {
          PushScopes(scopes_.MasksOfPod(*sets_.back().second, pod_lookup(),
                                        ref->pod_uid));
        }
      }
    }
  } else {
    ++counters_.decode_errors;
    LogError("ring buffer: unexpected iterator record");
  }
}

absl::Status Agent::Snapshot() {
  auto tasks_raw = loader_->RunSnapshotTasks();
  if (!tasks_raw.ok()) return tasks_raw.status();
  auto objects_raw = loader_->RunSnapshotObjects();
  if (!objects_raw.ok()) return objects_raw.status();

  std::vector<SnapTask> tasks;
  for (KernelRecord& r : DecodeAll(*tasks_raw, &counters_.decode_errors)) {
    if (auto* t = std::get_if<SnapTask>(&r)) tasks.push_back(std::move(*t));
  }
  absl::flat_hash_map<uint32_t, std::vector<SnapObject>> objects;
  for (KernelRecord& r : DecodeAll(*objects_raw, &counters_.decode_errors)) {
    if (auto* o = std::get_if<SnapObject>(&r)) {
      objects[o->pid].push_back(std::move(*o));
    }
  }

  // Read each distinct file once, in one of the processes mapping it.
  absl::flat_hash_map<FileKey, BuildId> resolved;
  absl::flat_hash_map<uint32_t, std::vector<ResolveItem>> work;
  for (auto& [pid, objs] : objects) {
    for (SnapObject& o : objs) {
      if (o.build_id.error != EM_BID_ERR_PENDING) {
        resolved.emplace(o.file, o.build_id);
        continue;
      }
      if (resolved.contains(o.file)) continue;
      resolved.emplace(o.file, o.build_id);  // claimed; filled below
      work[pid].push_back(ResolveItem{o.vm_start, o.vm_size, o.file});
    }
  }
  for (auto& [pid, items] : work) {
    auto raw = loader_->Resolve(pid, items, BuildIdSource::kSnapshot);
    if (!raw.ok()) {
      LogWarning("snapshot: resolving pid ", pid, ": ", raw.status().message());
      continue;
    }
    for (KernelRecord& r : DecodeAll(*raw, &counters_.decode_errors)) {
      if (auto* res = std::get_if<Resolved>(&r)) {
        if (res->index < items.size())
          resolved[items[res->index].key] = res->build_id;
      }
    }
  }

  for (const SnapTask& t : tasks) {
    auto it = objects.find(t.pid);
    const SnapObject* exe = nullptr;
    if (it != objects.end()) {
      for (SnapObject& o : it->second) {
        auto r = resolved.find(o.file);
        if (r != resolved.end()) o.build_id = r->second;
        if (o.build_id.error == EM_BID_ERR_PENDING) {
          o.build_id.error = EM_BID_ERR_EXITED;  // vanished meanwhile
        }
        if (o.is_exe && exe == nullptr) exe = &o;
      }
    }
    table_.OnSnapshot(t, exe ? exe->path : std::string(),
                      exe ? exe->build_id : BuildId{});
  }
  table_.LinkParents();
  if (!options_.emit_snapshot) return absl::OkStatus();

  for (const SnapTask& t : tasks) {
    const ProcessInfo* self = table_.Find(t.pid);
    if (self == nullptr) continue;
    auto it = objects.find(t.pid);
    const SnapObject* exe = nullptr;
    std::vector<const SnapObject*> elf_objects;
    if (it != objects.end()) {
      for (const SnapObject& o : it->second) {
        if (o.is_exe && exe == nullptr) exe = &o;
        // Mapped files that are not ELF (locale archives, fonts) are not
        // objects of the process in the sense of the event contract.
        if (o.build_id.error == EM_BID_ERR_NOT_ELF) continue;
        elf_objects.push_back(&o);
      }
    }
    ++counters_.snapshot_events;
    Placement where = PlacementOf(t.cgroup_id);
    WorkloadView wl = where.view();
    Emit("snapshot", writer_.Snapshot(t, *self, exe, elf_objects, &wl),
         where.pod_uid());
  }
  FlushSinks();
  LogInfo("snapshot: ", tasks.size(), " processes, ", resolved.size(),
          " distinct mapped files");
  return absl::OkStatus();
}

void Agent::ReportKernelLoss(bool final_report) {
  auto stats = loader_->ReadStats();
  if (!stats.ok()) {
    LogWarning("reading kernel counters: ", stats.status().message());
    return;
  }
  if (last_stats_.size() != stats->size()) last_stats_.assign(stats->size(), 0);
  for (const LossCounter& c : kLossCounters) {
    uint64_t now = (*stats)[c.stat];
    if (now > last_stats_[c.stat]) {
      std::string why;
      if (c.stat == EM_STAT_TW_SCHEDULE_FAIL) {
        // What the kernel said, so a refusal can be told from a full queue.
        const int err = loader_->task_work_last_error();
        if (err != 0) {
          why = absl::StrCat("; bpf_task_work_schedule_resume last returned ",
                             err, " (", std::strerror(-err), ")");
          if (err == -ENOMEM && CpuLacksCx16()) {
            absl::StrAppend(&why,
                            ": this CPU has no CMPXCHG16B (no cx16 in "
                            "/proc/cpuinfo), which the kernel's lock-free "
                            "allocator behind bpf_task_work needs");
          }
        }
      }
      LogWarning(now - last_stats_[c.stat], " ", c.what, " (", now, " total)",
                 why);
    }
  }
  last_stats_ = *stats;
  UpdateMetrics(&*stats);
  if (final_report) {
    LogInfo("kernel: execs=", (*stats)[EM_STAT_EXEC],
            " cache_hits=", (*stats)[EM_STAT_CACHE_HIT],
            " cache_misses=", (*stats)[EM_STAT_CACHE_MISS],
            " page_cache=", (*stats)[EM_STAT_PC_RESOLVED],
            " task_work=", (*stats)[EM_STAT_TW_RAN], " ring_buffer_drops=",
            (*stats)[EM_STAT_RB_DROP_EXEC] + (*stats)[EM_STAT_RB_DROP_EXIT] +
                (*stats)[EM_STAT_RB_DROP_FORK]);
    LogInfo("agent: exec=", counters_.exec_events,
            " exit=", counters_.exit_events,
            " snapshot=", counters_.snapshot_events,
            " decode_errors=", counters_.decode_errors,
            " waited_for_pod=", counters_.events_waited_for_pod,
            " unenriched=", counters_.events_unenriched,
            " sink_errors=", counters_.sink_errors);
  }
}

void Agent::Tick() {
  absl::Time now = absl::Now();
  if (now - last_tick_ < absl::Seconds(1)) return;
  last_tick_ = now;
  loader_->RefreshClockOffset();
  writer_.set_boot_to_real_ns(BootToRealtimeNs());
  ReportKernelLoss(false);
  RefreshScopes();
}

absl::Status Agent::Run(const std::atomic<bool>& stop) {
  metrics_ = std::make_unique<Metrics>(
      BuildInfo{EXECMON_VERSION, loader_->features().release,
                loader_->first_seen_path(), loader_->chain(),
                !loader_->exec_lsm().loaded  ? "none"
                : loader_->exec_lsm().sha256 ? "bprm_check+sha256"
                                             : "bprm_check"});
  for (const auto& sink : sinks_) {
    metrics_->AddSink(sink->name(), sink->Stats().reports_delivery);
  }
  if (!options_.metrics_address.empty()) {
    auto http = HttpServer::Start(options_.metrics_address,
                                  metrics_->registry(), &health_);
    if (!http.ok()) return http.status();
    http_ = *std::move(http);
  }
  if (options_.bpf_stats) {
    if (absl::Status s = loader_->EnableProgramStats(); !s.ok()) return s;
  }
  if (!options_.policy_dir.empty()) {
    // Fail fast, before anything is attached or reported.
    auto parsed = ParsePolicies();
    if (!parsed.ok()) return parsed.status();
    validated_ = *std::move(parsed);
  }
  if (absl::Status s = loader_->Attach(); !s.ok()) return s;
  health_.bpf_attached.store(true);
  health_.loop_heartbeat_ns.store(MonotonicNs());
  if (absl::Status s = StartPodWatcher(); !s.ok()) return s;
  if (!options_.index_paths.empty()) {
    // Loaded before the snapshot, so its objects name their packages.
    for (const std::string& path : options_.index_paths) {
      std::error_code ec;
      const bool dir = std::filesystem::is_directory(path, ec);
      auto w = PolicyWatcher::Create(
          dir ? path : std::filesystem::path(path).parent_path().string());
      if (!w.ok()) return w.status();
      index_watchers_.push_back(*std::move(w));
    }
    if (absl::Status s = LoadIndexes(); !s.ok()) return s;
  }
  if (options_.snapshot) {
    if (absl::Status s = Snapshot(); !s.ok()) {
      LogWarning("snapshot failed, continuing without it: ", s.message());
    }
  }
  if (!options_.policy_dir.empty()) {
    auto watcher = PolicyWatcher::Create(options_.policy_dir);
    if (!watcher.ok()) return watcher.status();
    watcher_ = *std::move(watcher);
    if (absl::Status s = LoadPoliciesCounted(); !s.ok()) return s;
  }
  health_.ready.store(true);
  LogInfo("ready: build-ID resolver cache,", loader_->chain(), ", node ",
          options_.node);
  absl::Status status;
  while (!stop.load()) {
    health_.loop_heartbeat_ns.store(MonotonicNs());
    auto n = loader_->Poll(absl::ToInt64Milliseconds(options_.poll_interval));
    if (!n.ok()) {
      status = n.status();
      break;
    }
    size_t released = waiting_.empty() ? 0 : ReleaseWaiting(false);
    if (*n > 0 || released > 0) FlushSinks();
    Tick();
    MaybeReload();
    MaybeReloadIndexes();
  }
  health_.ready.store(false);
  loader_->Detach();
  health_.bpf_attached.store(false);
  auto drained = loader_->Drain();
  if (!drained.ok()) LogWarning(drained.status().message());
  ReleaseWaiting(true);
  if (pods_ != nullptr) pods_->Stop();
  CloseSinks(options_.sink_close_deadline);
  ReportKernelLoss(true);
  return status;
}

}  // namespace execmon
