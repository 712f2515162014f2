#include "agent/bpf/bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/common/log.h"
#include "bpf/execmon_abi.h"
#include "execmon_bpf.skel.h"

namespace execmon {
namespace {

constexpr char kVmlinuxBtf[] = "/sys/kernel/btf/vmlinux";
constexpr char kTaskWorkKfunc[] = "bpf_task_work_schedule_resume_impl";

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !LogEnabled(LogLevel::kDebug)) return 0;
  char buf[2048];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  absl::string_view line(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  Log(level == LIBBPF_WARN ? LogLevel::kWarning : LogLevel::kDebug,
      "libbpf: ", line);
  return 0;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == EPERM || err == EACCES) {
    return absl::PermissionDeniedError(absl::StrCat(
        msg,
        " (loading BPF needs CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE, "
        "or root; in Kubernetes see deploy/helm securityContext)"));
  }
  return absl::InternalError(msg);
}

bool HasCap(const __user_cap_data_struct data[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

int64_t ClockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

absl::Status CheckPrerequisites() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) {
    return ErrnoStatus(errno, "capget");
  }
  std::vector<std::string> missing;
  if (!HasCap(data, CAP_BPF) && !HasCap(data, CAP_SYS_ADMIN)) {
    missing.push_back("CAP_BPF");
  }
  if (!HasCap(data, CAP_PERFMON) && !HasCap(data, CAP_SYS_ADMIN)) {
    missing.push_back("CAP_PERFMON");
  }
  if (!missing.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "missing ", absl::StrJoin(missing, " and "),
        ": run execmon as root (sudo build/bin/execmon run), or grant "
        "cap_bpf,cap_perfmon,cap_sys_resource,cap_kill"));
  }
  if (access(kVmlinuxBtf, R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kVmlinuxBtf,
                     " is missing: execmon needs a kernel built with "
                     "CONFIG_DEBUG_INFO_BTF=y (all major distributions since "
                     "2021), or the BTF mounted into its container"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KernelFeatures> ProbeKernel() {
  KernelFeatures f;
  utsname u{};
  if (uname(&u) == 0) f.release = u.release;
  struct btf* btf = btf__load_vmlinux_btf();
  if (btf == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load kernel BTF from ", kVmlinuxBtf, ": ",
                     std::strerror(errno)));
  }
  f.btf = true;
  f.task_work = btf__find_by_name_kind(btf, kTaskWorkKfunc, BTF_KIND_FUNC) >= 0;
  btf__free(btf);
  return f;
}

absl::StatusOr<std::unique_ptr<BpfLoader>> BpfLoader::Create(
    const BpfOptions& options, RecordCallback on_record) {
  libbpf_set_print(LibbpfPrint);
  auto loader = std::unique_ptr<BpfLoader>(new BpfLoader());
  loader->on_record_ = std::move(on_record);
  {
    auto f = ProbeKernel();
    if (!f.ok()) return f.status();
    loader->features_ = *f;
  }
  switch (options.resolver) {
    case ResolverMode::kAuto:
      loader->use_task_work_ = loader->features_.task_work;
      break;
    case ResolverMode::kTaskWork:
      if (!loader->features_.task_work) {
        return absl::FailedPreconditionError(
            absl::StrCat("--build-id-resolver=task_work: kernel ",
                         loader->features_.release, " has no ", kTaskWorkKfunc,
                         " (needs 6.18+); use auto or iterator"));
      }
      loader->use_task_work_ = true;
      break;
    case ResolverMode::kIterator:
      loader->use_task_work_ = false;
      break;
  }
  loader->ncpus_ = libbpf_num_possible_cpus();
  if (loader->ncpus_ <= 0) return ErrnoStatus(-loader->ncpus_, "possible CPUs");

  execmon_bpf* skel = execmon_bpf__open();
  if (skel == nullptr) return ErrnoStatus(errno, "opening the BPF object");
  loader->skel_ = skel;
  skel->rodata->em_use_task_work = loader->use_task_work_;
  skel->rodata->em_wakeup_bytes = options.wakeup_bytes;
  skel->rodata->em_cache_min_age_ns = options.cache_min_age_ns;
  skel->rodata->em_page_shift = __builtin_ctzl(sysconf(_SC_PAGESIZE));
  int err =
      bpf_map__set_max_entries(skel->maps.em_events, options.ring_buffer_bytes);
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_bid_cache,
                                   options.cache_entries);
  }
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_pending,
                                   options.pending_entries);
  }
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_policy_ids,
                                   2 * options.max_policy_ids);
  }
  loader->max_policy_ids_ = options.max_policy_ids;
  if (err) return ErrnoStatus(err, "sizing BPF maps");
  // Iterators run on demand, never at attach time.
  bpf_program__set_autoattach(skel->progs.em_snap_tasks, false);
  bpf_program__set_autoattach(skel->progs.em_snap_vmas, false);
  bpf_program__set_autoattach(skel->progs.em_resolve, false);
  bpf_program__set_autoattach(skel->progs.em_sweep, false);

  err = execmon_bpf__load(skel);
  if (err) return ErrnoStatus(err, "loading BPF programs");
  loader->RefreshClockOffset();
  skel->bss->em_agent_tgid = getpid();

  loader->ring_ = ring_buffer__new(
      bpf_map__fd(skel->maps.em_events),
      [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<BpfLoader*>(ctx);
        self->on_record_(
            absl::MakeConstSpan(static_cast<const uint8_t*>(data), size));
        return 0;
      },
      loader.get(), nullptr);
  if (loader->ring_ == nullptr) return ErrnoStatus(errno, "ring buffer");
  return loader;
}

absl::Status BpfLoader::EnableProgramStats() {
  if (stats_fd_ >= 0) return absl::OkStatus();
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0)
    return ErrnoStatus(errno, "--bpf_stats: enabling BPF run-time stats");
  stats_fd_ = fd;
  return absl::OkStatus();
}

std::vector<BpfLoader::ProgramStats> BpfLoader::ReadProgramStats() const {
  std::vector<ProgramStats> out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    out.push_back({bpf_program__name(prog), info.run_time_ns, info.run_cnt});
  }
  return out;
}

BpfLoader::~BpfLoader() {
  if (stats_fd_ >= 0) close(stats_fd_);
  for (bpf_link* link : links_) bpf_link__destroy(link);
  if (ring_ != nullptr) ring_buffer__free(ring_);
  if (skel_ != nullptr) execmon_bpf__destroy(skel_);
}

absl::Status BpfLoader::Attach() {
  // cgroup records first: a container's cgroup is known before its execs.
  for (bpf_program* prog :
       {skel_->progs.em_cgroup_mkdir, skel_->progs.em_cgroup_rmdir,
        skel_->progs.em_exec, skel_->progs.em_fork, skel_->progs.em_exit}) {
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      return ErrnoStatus(errno,
                         absl::StrCat("attaching ", bpf_program__name(prog)));
    }
    links_.push_back(link);
  }
  return absl::OkStatus();
}

void BpfLoader::Detach() {
  for (bpf_link* link : links_) bpf_link__destroy(link);
  links_.clear();
}

absl::StatusOr<int> BpfLoader::Poll(int timeout_ms) {
  int n = ring_buffer__poll(ring_, timeout_ms);
  if (n == -EINTR) n = 0;
  if (n < 0) return ErrnoStatus(n, "polling the ring buffer");
  // Records submitted without a wakeup (BPF_RB_NO_WAKEUP) wake nobody.
  if (n == 0) {
    n = ring_buffer__consume(ring_);
    if (n < 0) return ErrnoStatus(n, "draining the ring buffer");
  }
  return n;
}

absl::StatusOr<int> BpfLoader::Drain() {
  int n = ring_buffer__consume(ring_);
  if (n < 0) return ErrnoStatus(n, "draining the ring buffer");
  return n;
}

void BpfLoader::RefreshClockOffset() {
  skel_->bss->em_boot_to_real_ns =
      ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_BOOTTIME);
}

absl::StatusOr<std::vector<uint8_t>> BpfLoader::RunIterator(bpf_program* prog,
                                                            uint32_t tid) {
  LIBBPF_OPTS(bpf_iter_attach_opts, opts);
  union bpf_iter_link_info info;
  std::memset(&info, 0, sizeof(info));
  if (tid != 0) {
    info.task.tid = tid;
    opts.link_info = &info;
    opts.link_info_len = sizeof(info);
  }
  bpf_link* link = bpf_program__attach_iter(prog, &opts);
  if (link == nullptr) {
    return ErrnoStatus(
        errno, absl::StrCat("attaching iterator ", bpf_program__name(prog)));
  }
  int fd = bpf_iter_create(bpf_link__fd(link));
  if (fd < 0) {
    int e = errno;
    bpf_link__destroy(link);
    return ErrnoStatus(e, "creating iterator");
  }
  std::vector<uint8_t> out;
  uint8_t buf[16384];
  absl::Status status;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoStatus(
          errno, absl::StrCat("reading iterator ", bpf_program__name(prog)));
      break;
    }
    out.insert(out.end(), buf, buf + n);
  }
  close(fd);
  bpf_link__destroy(link);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<uint8_t>> BpfLoader::RunSnapshotTasks() {
  return RunIterator(skel_->progs.em_snap_tasks, 0);
}

absl::StatusOr<std::vector<uint8_t>> BpfLoader::RunSnapshotObjects() {
  return RunIterator(skel_->progs.em_snap_vmas, 0);
}

absl::StatusOr<std::vector<uint8_t>> BpfLoader::Resolve(
    uint32_t pid, absl::Span<const ResolveItem> items, BuildIdSource source) {
  std::vector<uint8_t> all;
  for (size_t start = 0; start < items.size(); start += EM_RESOLVE_MAX) {
    size_t n = std::min<size_t>(EM_RESOLVE_MAX, items.size() - start);
    em_resolve_req& req = skel_->bss->em_req;
    req.pid = pid;
    req.n = n;
    for (size_t i = 0; i < n; ++i) {
      const ResolveItem& item = items[start + i];
      req.addrs[i] = item.addr;
      req.sizes[i] = item.size;
      em_file_key& k = req.keys[i];
      k.ino = item.key.ino;
      k.ctime_sec = item.key.ctime_sec;
      k.ctime_nsec = item.key.ctime_nsec;
      k.dev = item.key.dev;
      k.generation = item.key.generation;
      k.pad = 0;
      k.size = item.key.size;
    }
    skel_->data->em_req_source = static_cast<uint32_t>(source);
    auto out = RunIterator(skel_->progs.em_resolve, pid);
    if (!out.ok()) return out.status();
    // Indices in the records are relative to this batch: rebase them.
    for (size_t off = 0; off + sizeof(em_resolved) <= out->size();
         off += sizeof(em_resolved)) {
      auto* r = reinterpret_cast<em_resolved*>(out->data() + off);
      r->index += start;
    }
    all.insert(all.end(), out->begin(), out->end());
  }
  return all;
}

absl::Status BpfLoader::WriteScopes(
    uint32_t gen, const std::vector<std::pair<uint64_t, uint64_t>>& scopes) {
  const int fd = bpf_map__fd(skel_->maps.em_scope);
  for (const auto& [cgroup, mask] : scopes) {
    em_scope_key k{};
    k.gen = gen;
    k.cgroup_id = cgroup;
    if (bpf_map_update_elem(fd, &k, &mask, BPF_ANY) != 0) {
      return ErrnoStatus(errno, "writing a pod policy scope");
    }
  }
  return absl::OkStatus();
}

absl::Status BpfLoader::SetScopes(
    const std::vector<std::pair<uint64_t, uint64_t>>& scopes) {
  return WriteScopes(active_gen_, scopes);
}

void BpfLoader::ClearScope(uint64_t cgroup_id) {
  em_scope_key k{};
  k.gen = active_gen_;
  k.cgroup_id = cgroup_id;
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.em_scope), &k);
}

absl::StatusOr<uint32_t> BpfLoader::LoadPolicies(
    const CompiledPolicies& c,
    const std::vector<std::pair<uint64_t, uint64_t>>& scopes) {
  if (c.ids.size() > max_policy_ids_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "policies name ", c.ids.size(), " distinct build IDs; at most ",
        max_policy_ids_, " fit (--max_policy_ids)"));
  }
  const uint32_t gen = active_gen_ + 1;
  const int ids_fd = bpf_map__fd(skel_->maps.em_policy_ids);
  std::vector<em_policy_key> keys(c.ids.size());
  std::vector<em_policy_val> vals(c.ids.size());
  for (size_t i = 0; i < c.ids.size(); ++i) {
    em_policy_key& k = keys[i];
    std::memset(&k, 0, sizeof(k));
    k.gen = gen;
    k.len = c.ids[i].first.size();
    std::memcpy(k.id, c.ids[i].first.data(), k.len);
    vals[i] = c.ids[i].second;
  }
  constexpr size_t kBatch = 8192;
  for (size_t off = 0; off < keys.size(); off += kBatch) {
    __u32 n = std::min(kBatch, keys.size() - off);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(ids_fd, &keys[off], &vals[off], &n, &opts) != 0) {
      int e = errno;
      // Undo the partial generation: it never became active.
      for (size_t i = 0; i < off + n && i < keys.size(); ++i) {
        bpf_map_delete_elem(ids_fd, &keys[i]);
      }
      return ErrnoStatus(e, "loading policy build IDs");
    }
  }
  if (absl::Status s = WriteScopes(gen, scopes); !s.ok()) return s;
  em_policy_meta meta = c.meta;
  meta.gen = gen;
  uint32_t slot = gen & 1;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.em_policy_meta), &slot, &meta,
                          BPF_ANY) != 0) {
    return ErrnoStatus(errno, "loading policy attributes");
  }
  // The flip: from here on every exec is judged with the new generation.
  __atomic_store_n(&skel_->bss->em_active_gen, gen, __ATOMIC_SEQ_CST);
  active_gen_ = gen;
  gen_keys_.emplace_back(gen, std::move(keys));
  // Keep the previous generation (an exec that read the old number just
  // before the flip still finds its set); free anything older.
  while (gen_keys_.size() > 2) {
    std::vector<em_policy_key>& old = gen_keys_.front().second;
    for (size_t off = 0; off < old.size(); off += kBatch) {
      __u32 n = std::min(kBatch, old.size() - off);
      LIBBPF_OPTS(bpf_map_batch_opts, opts);
      if (bpf_map_delete_batch(ids_fd, &old[off], &n, &opts) != 0) {
        LogWarning("freeing policy generation ", gen_keys_.front().first, ": ",
                   std::strerror(errno));
        break;
      }
    }
    // And that generation's pod scopes.
    const uint32_t old_gen = gen_keys_.front().first;
    const int scope_fd = bpf_map__fd(skel_->maps.em_scope);
    em_scope_key k{}, next{};
    const void* prev = nullptr;
    std::vector<em_scope_key> stale;
    while (bpf_map_get_next_key(scope_fd, prev, &next) == 0) {
      if (next.gen <= old_gen) stale.push_back(next);
      k = next;
      prev = &k;
    }
    for (const em_scope_key& sk : stale) bpf_map_delete_elem(scope_fd, &sk);
    gen_keys_.erase(gen_keys_.begin());
  }
  return gen;
}

absl::StatusOr<std::vector<uint8_t>> BpfLoader::RunSweep() {
  return RunIterator(skel_->progs.em_sweep, 0);
}

absl::StatusOr<std::vector<uint64_t>> BpfLoader::ReadStats() const {
  std::vector<uint64_t> totals(EM_STAT_MAX, 0);
  std::vector<uint64_t> per_cpu(ncpus_);
  int fd = bpf_map__fd(skel_->maps.em_stats);
  for (uint32_t key = 0; key < EM_STAT_MAX; ++key) {
    if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) != 0) {
      return ErrnoStatus(errno, "reading em_stats");
    }
    for (uint64_t v : per_cpu) totals[key] += v;
  }
  return totals;
}

absl::StatusOr<uint64_t> BpfLoader::CacheEntries() const {
  int fd = bpf_map__fd(skel_->maps.em_bid_cache);
  em_file_key key{}, next{};
  uint64_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return ErrnoStatus(errno, "walking em_bid_cache");
  return n;
}

}  // namespace execmon
