#include "agent/bpf/bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/bpf/page_cache_calibration.h"
#include "agent/common/log.h"
#include "bpf/execmon_abi.h"
#include "execmon_bpf.skel.h"
#include "execmon_iter_bpf.skel.h"
#include "execmon_lsm_bpf.skel.h"
#include "execmon_pc_bpf.skel.h"
#include "execmon_tw2_bpf.skel.h"
#include "execmon_tw_bpf.skel.h"

namespace execmon {
namespace {

constexpr char kVmlinuxBtf[] = "/sys/kernel/btf/vmlinux";
// While a unit loads, libbpf's warnings (the verifier's log among them)
// are collected here instead of logged: a refused optional path is one
// line with the kernel's reason, not a page of verifier log.
std::string* g_capture = nullptr;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !LogEnabled(LogLevel::kDebug)) return 0;
  std::string text;
  {
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return 0;
    text.resize(n + 1);
    std::vsnprintf(text.data(), text.size(), fmt, args);
    text.resize(n);
  }
  if (g_capture != nullptr && level != LIBBPF_DEBUG) {
    absl::StrAppend(g_capture, text);
    return 0;
  }
  absl::string_view line(text);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  Log(level == LIBBPF_WARN ? LogLevel::kWarning : LogLevel::kDebug,
      "libbpf: ", line);
  return 0;
}

// The lines of a failed load's libbpf output that say why: the last lines
// of the verifier's log before its statistics, else libbpf's own last
// complaint.
std::string RefusalReason(absl::string_view captured) {
  std::vector<std::string> lines;
  bool in_log = false;
  std::vector<std::string> verifier;
  for (absl::string_view raw : absl::StrSplit(captured, '\n')) {
    absl::string_view l = absl::StripAsciiWhitespace(raw);
    if (l.empty()) continue;
    if (absl::StrContains(l, "-- BEGIN PROG LOAD LOG --")) {
      in_log = true;
      verifier.clear();
      continue;
    }
    if (absl::StrContains(l, "-- END PROG LOAD LOG --")) {
      in_log = false;
      continue;
    }
    if (in_log) {
      if (absl::StartsWith(l, "processed ") ||
          absl::StartsWith(l, "verification time") ||
          absl::StartsWith(l, "stack depth") ||
          absl::StartsWith(l, "max_states_per_insn") ||
          absl::StartsWith(l, "func#") || absl::StartsWith(l, ";")) {
        continue;
      }
      verifier.emplace_back(l);
    } else {
      lines.emplace_back(l);
    }
  }
  if (!verifier.empty()) {
    size_t from = verifier.size() > 2 ? verifier.size() - 2 : 0;
    std::vector<std::string> tail(verifier.begin() + from, verifier.end());
    return absl::StrCat("verifier: ", absl::StrJoin(tail, " / "));
  }
  // libbpf's lines: skip its generic "failed to load object" trailer.
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (absl::StrContains(*it, "failed to load object") ||
        absl::StrContains(*it, "failed to load BPF skeleton")) {
      continue;
    }
    std::string line(absl::StripPrefix(*it, "libbpf: "));
    // The kernel refused the program before the verifier ran (no log):
    // say so rather than show only libbpf's "failed to load: -1".
    if (absl::StrContains(line, "failed to load: -")) {
      absl::StrAppend(&line, " (refused before verification: no verifier log)");
    }
    return line;
  }
  return "refused (no reason given)";
}

// Loads with libbpf's output captured; on failure returns the reason.
template <typename LoadFn>
absl::Status LoadCaptured(LoadFn load, absl::string_view what) {
  std::string captured;
  g_capture = &captured;
  int err = load();
  g_capture = nullptr;
  if (err == 0) return absl::OkStatus();
  err = err < 0 ? -err : err;
  return absl::FailedPreconditionError(
      absl::StrCat(what, " refused by kernel ", "(", std::strerror(err),
                   "): ", RefusalReason(captured)));
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

// Calls fn(program, its bpf_prog_info) for each loaded program of obj.
template <typename Fn>
void ForEachProgramInfo(bpf_object* obj, Fn fn) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) fn(prog, info);
  }
}

uint32_t VerifiedInsns(bpf_object* obj) {
  uint32_t total = 0;
  ForEachProgramInfo(obj, [&](bpf_program*, const bpf_prog_info& info) {
    total += info.verified_insns;
  });
  return total;
}

bool HasCap(const __user_cap_data_struct data[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

// log2 of the page size: the units' em_page_shift / em_pc_page_shift.
uint32_t PageShift() { return __builtin_ctzl(sysconf(_SC_PAGESIZE)); }

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
  auto has_func = [btf](const char* name) {
    return btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) >= 0;
  };
  f.task_work_impl = has_func("bpf_task_work_schedule_resume_impl");
  f.task_work_implicit = has_func("bpf_task_work_schedule_resume");
  f.send_signal_task = has_func("bpf_send_signal_task");
  btf__free(btf);
  return f;
}

const char* ResolverPathName(ResolverPath path) {
  switch (path) {
    case ResolverPath::kPageCache:
      return "page_cache";
    case ResolverPath::kTaskWork:
      return "task_work";
    case ResolverPath::kIterator:
      return "iterator";
  }
  return "?";
}

absl::StatusOr<ResolverChoice> ParseResolverChoice(absl::string_view s) {
  ResolverChoice c;
  if (s == "auto") return c;
  c.automatic = false;
  c.paths.clear();
  for (absl::string_view name : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    bool found = false;
    for (ResolverPath p : kAllResolverPaths) {
      if (name == ResolverPathName(p)) {
        if (std::find(c.paths.begin(), c.paths.end(), p) == c.paths.end()) {
          c.paths.push_back(p);
        }
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--build_id_resolver: unknown path '", name,
          "': want auto, or a comma-separated list of page_cache, task_work "
          "and iterator"));
    }
  }
  if (c.paths.empty()) {
    return absl::InvalidArgumentError("--build_id_resolver: empty list");
  }
  // Chain order is fixed, whatever order they were named in.
  std::sort(c.paths.begin(), c.paths.end());
  return c;
}

// Rodata every unit has (bpf/common.bpf.h), set identically in each.
#define EM_SET_COMMON_RODATA(skel, options, features)                      \
  do {                                                                     \
    (skel)->rodata->em_cache_min_age_ns = (options).cache_min_age_ns;      \
    (skel)->rodata->em_wakeup_bytes = (options).wakeup_bytes;              \
    (skel)->rodata->em_has_send_signal_task = (features).send_signal_task; \
  } while (0)

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
  loader->ncpus_ = libbpf_num_possible_cpus();
  if (loader->ncpus_ <= 0) return ErrnoStatus(-loader->ncpus_, "possible CPUs");

  // The core unit: exec capture. Without it there is nothing to run.
  execmon_bpf* skel = execmon_bpf__open();
  if (skel == nullptr) return ErrnoStatus(errno, "opening the BPF object");
  loader->skel_ = skel;
  EM_SET_COMMON_RODATA(skel, options, loader->features_);
  int err =
      bpf_map__set_max_entries(skel->maps.em_events, options.ring_buffer_bytes);
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_bid_cache,
                                   options.cache_entries);
  }
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_sha_cache,
                                   options.cache_entries);
  }
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_policy_ids,
                                   2 * options.max_policy_ids);
  }
  if (!err) {
    err = bpf_map__set_max_entries(skel->maps.em_policy_hashes,
                                   2 * options.max_policy_hashes);
  }
  loader->max_policy_ids_ = options.max_policy_ids;
  loader->max_policy_hashes_ = options.max_policy_hashes;
  if (err) return ErrnoStatus(err, "sizing BPF maps");
  bpf_program__set_autoattach(skel->progs.em_snap_tasks, false);
  bpf_program__set_autoattach(skel->progs.em_snap_vmas, false);
  if (absl::Status s = LoadCaptured([&] { return execmon_bpf__load(skel); },
                                    "exec capture (the core BPF unit) was");
      !s.ok()) {
    return s;
  }

  // Optional units, in chain order. An explicit choice makes its paths
  // required; auto takes what the kernel accepts.
  for (ResolverPath path : kAllResolverPaths) {
    PathStatus st;
    st.path = path;
    st.requested =
        std::find(options.resolver.paths.begin(), options.resolver.paths.end(),
                  path) != options.resolver.paths.end();
    if (!st.requested) {
      st.reason = "not selected by --build_id_resolver";
    } else if (std::find(options.refuse.begin(), options.refuse.end(), path) !=
               options.refuse.end()) {
      st.reason = "treated as refused (--resolver_refuse)";
    } else if (absl::Status s = loader->LoadUnit(path, options); !s.ok()) {
      st.reason = std::string(s.message());
    } else {
      st.loaded = true;
      st.verified_insns = VerifiedInsns(loader->UnitObject(path));
    }
    loader->paths_.push_back(st);
    if (st.requested && !st.loaded && !options.resolver.automatic) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--build_id_resolver=", ResolverPathName(path), ": ", st.reason));
    }
  }
  // Exec denial (BPF LSM): optional like the paths, never required.
  if (!options.exec_lsm) {
    loader->lsm_status_.reason = "turned off (--exec_lsm=false)";
  } else if (absl::Status s = loader->LoadExecLsm(options); !s.ok()) {
    loader->lsm_status_.reason = std::string(s.message());
  } else {
    loader->lsm_status_.loaded = true;
    loader->lsm_status_.sha256 = options.exe_sha256;
    loader->lsm_status_.verified_insns = VerifiedInsns(loader->lsm_->obj);
  }
  const size_t globals_size = sizeof(em_globals);
  void* g = mmap(nullptr, std::max<size_t>(globals_size, sysconf(_SC_PAGESIZE)),
                 PROT_READ | PROT_WRITE, MAP_SHARED,
                 bpf_map__fd(skel->maps.em_globals), 0);
  if (g == MAP_FAILED) return ErrnoStatus(errno, "mapping em_globals");
  loader->globals_ = static_cast<em_globals*>(g);
  loader->RefreshClockOffset();
  loader->globals_->agent_tgid = getpid();
  // An exec no path resolved is sent "pending" when the iterator will
  // resolve it late, else as unresolved (and judged as unknown).
  // Exec events look content hashes up only where something computes them.
  loader->globals_->sha256 =
      loader->lsm_status_.loaded && loader->lsm_status_.sha256 ? 1 : 0;
  loader->globals_->late_resolve =
      loader->path_loaded(ResolverPath::kIterator) ? 1 : 0;

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

absl::Status BpfLoader::ShareCoreMaps(bpf_object* unit) {
  bpf_map* map;
  bpf_object__for_each_map(map, unit) {
    if (bpf_map__is_internal(map)) continue;
    bpf_map* core =
        bpf_object__find_map_by_name(skel_->obj, bpf_map__name(map));
    if (core == nullptr) continue;  // the unit's own
    int err = bpf_map__reuse_fd(map, bpf_map__fd(core));
    if (err) {
      return ErrnoStatus(err, absl::StrCat("sharing map ", bpf_map__name(map)));
    }
  }
  return absl::OkStatus();
}

absl::Status BpfLoader::LoadUnit(ResolverPath path, const BpfOptions& options) {
  const std::string what =
      absl::StrCat("the ", ResolverPathName(path), " unit was");
  const uint32_t page_shift = PageShift();
  switch (path) {
    case ResolverPath::kPageCache: {
      execmon_pc_bpf* u = execmon_pc_bpf__open();
      if (u == nullptr) return ErrnoStatus(errno, "opening page_cache");
      pc_ = u;
      EM_SET_COMMON_RODATA(u, options, features_);
      u->rodata->em_pc_page_shift = page_shift;
      bpf_program__set_autoattach(u->progs.em_pc_calibrate, false);
      if (absl::Status s = ShareCoreMaps(u->obj); !s.ok()) return s;
      if (absl::Status s =
              LoadCaptured([&] { return execmon_pc_bpf__load(u); }, what);
          !s.ok()) {
        UnloadUnit(path);
        return s;
      }
      if (absl::Status s = CalibratePageCache(); !s.ok()) {
        UnloadUnit(path);
        return s;
      }
      return absl::OkStatus();
    }
    case ResolverPath::kTaskWork: {
      // Two builds of bpf/task_work.bpf.c, one per kfunc flavour: the
      // kernel's BTF says which one it has.
      auto load = [&](auto* u, auto load_fn) -> absl::Status {
        EM_SET_COMMON_RODATA(u, options, features_);
        u->rodata->em_page_shift = page_shift;
        int err = bpf_map__set_max_entries(u->maps.em_pending,
                                           options.pending_entries);
        if (err) return ErrnoStatus(err, "sizing em_pending");
        tw_obj_ = u->obj;
        tw_exec_ = u->progs.em_exec_tw;
        tw_exit_ = u->progs.em_exit_tw;
        if (absl::Status s = ShareCoreMaps(u->obj); !s.ok()) return s;
        return LoadCaptured([&] { return load_fn(u); }, what);
      };
      absl::Status s;
      if (features_.task_work_implicit) {
        execmon_tw2_bpf* u = execmon_tw2_bpf__open();
        if (u == nullptr) return ErrnoStatus(errno, "opening task_work");
        tw2_ = u;
        s = load(u, execmon_tw2_bpf__load);
      } else {
        execmon_tw_bpf* u = execmon_tw_bpf__open();
        if (u == nullptr) return ErrnoStatus(errno, "opening task_work");
        tw_ = u;
        s = load(u, execmon_tw_bpf__load);
      }
      if (!s.ok()) {
        UnloadUnit(path);
        if (!features_.task_work_impl && !features_.task_work_implicit) {
          // The verifier's words for a call to a kfunc the kernel lacks
          // ("invalid kernel function call not eliminated") say little.
          return absl::FailedPreconditionError(absl::StrCat(
              s.message(),
              " (this kernel has no bpf_task_work_schedule_resume kfunc)"));
        }
        return s;
      }
      return absl::OkStatus();
    }
    case ResolverPath::kIterator: {
      auto load = [&](const KernelFeatures& features) -> absl::Status {
        execmon_iter_bpf* u = execmon_iter_bpf__open();
        if (u == nullptr) return ErrnoStatus(errno, "opening iterator");
        iter_ = u;
        EM_SET_COMMON_RODATA(u, options, features);
        u->rodata->em_page_shift = page_shift;
        bpf_program__set_autoattach(u->progs.em_resolve, false);
        bpf_program__set_autoattach(u->progs.em_sweep, false);
        if (absl::Status s = ShareCoreMaps(u->obj); !s.ok()) return s;
        return LoadCaptured([&] { return execmon_iter_bpf__load(u); }, what);
      };
      absl::Status s = load(features_);
      if (!s.ok() && features_.send_signal_task) {
        // The kernel lists bpf_send_signal_task but may refuse it here:
        // without it the agent kills from user space.
        UnloadUnit(path);
        LogWarning("iterator unit: ", s.message(),
                   "; retrying without bpf_send_signal_task");
        KernelFeatures without = features_;
        without.send_signal_task = false;
        s = load(without);
      }
      if (!s.ok()) {
        UnloadUnit(path);
        return s;
      }
      // Late reads go to the file's page cache first: with the bases the
      // page_cache unit validated (loaded before, in chain order).
      if (pc_ != nullptr) iter_->bss->em_pc_bases = pc_->bss->em_pc_bases;
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown path");
}

// Where a kernel has no "bpf" in its active LSM list, an LSM program loads
// and attaches but is never called: run an exec and see that it was.
absl::Status BpfLoader::LoadExecLsm(const BpfOptions& options) {
  execmon_lsm_bpf* u = execmon_lsm_bpf__open();
  if (u == nullptr) return ErrnoStatus(errno, "opening the exec-denial unit");
  lsm_ = u;
  EM_SET_COMMON_RODATA(u, options, features_);
  u->rodata->em_pc_page_shift = PageShift();
  u->rodata->em_lsm_hash = options.exe_sha256;
  u->rodata->em_lsm_hash_max_bytes = options.exe_sha256_max_bytes;
  absl::Status s = ShareCoreMaps(u->obj);
  if (s.ok()) {
    s = LoadCaptured([&] { return execmon_lsm_bpf__load(u); },
                     "the exec-denial unit (lsm.s/bprm_check_security) was");
  }
  if (!s.ok()) {
    UnloadExecLsm();
    return s;
  }
  // Reads the page cache with the bases the page_cache unit validated.
  if (pc_ != nullptr) u->bss->em_pc_bases = pc_->bss->em_pc_bases;
  lsm_link_ = bpf_program__attach(u->progs.em_bprm_check);
  if (lsm_link_ == nullptr) {
    int err = errno;
    UnloadExecLsm();
    return absl::FailedPreconditionError(absl::StrCat(
        "attaching lsm.s/bprm_check_security: ", std::strerror(err),
        err == EOPNOTSUPP || err == 524 /* ENOTSUPP */
            ? " (this kernel has no BPF trampolines)"
            : ""));
  }
  auto before = ReadStats();
  if (!before.ok()) {
    UnloadExecLsm();
    return before.status();
  }
  // An exec of the agent's own binary, printing nothing; the program is
  // not armed yet and only counts it.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char arg0[] = "execmon", arg1[] = "version";
  char* argv[] = {arg0, arg1, nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int err = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  if (err == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  auto after = ReadStats();
  if (!after.ok()) {
    UnloadExecLsm();
    return after.status();
  }
  if ((*after)[EM_STAT_LSM_RAN] == (*before)[EM_STAT_LSM_RAN]) {
    std::string lsms = "unreadable";
    if (FILE* f = std::fopen("/sys/kernel/security/lsm", "r")) {
      char buf[256] = {};
      size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
      std::fclose(f);
      lsms = std::string(buf, n);
    }
    UnloadExecLsm();
    return absl::FailedPreconditionError(absl::StrCat(
        "loaded and attached, but the kernel did not run it on an exec: the "
        "BPF LSM is not active (/sys/kernel/security/lsm: ",
        lsms, "; boot with lsm=<that list>,bpf)"));
  }
  return absl::OkStatus();
}

void BpfLoader::UnloadExecLsm() {
  if (lsm_link_ != nullptr) bpf_link__destroy(lsm_link_);
  lsm_link_ = nullptr;
  if (lsm_ != nullptr) execmon_lsm_bpf__destroy(lsm_);
  lsm_ = nullptr;
}

void BpfLoader::UnloadUnit(ResolverPath path) {
  switch (path) {
    case ResolverPath::kPageCache:
      if (pc_ != nullptr) execmon_pc_bpf__destroy(pc_);
      pc_ = nullptr;
      break;
    case ResolverPath::kTaskWork:
      if (tw_ != nullptr) execmon_tw_bpf__destroy(tw_);
      if (tw2_ != nullptr) execmon_tw2_bpf__destroy(tw2_);
      tw_ = nullptr;
      tw2_ = nullptr;
      tw_obj_ = nullptr;
      tw_exec_ = tw_exit_ = nullptr;
      break;
    case ResolverPath::kIterator:
      if (iter_ != nullptr) execmon_iter_bpf__destroy(iter_);
      iter_ = nullptr;
      break;
  }
}

absl::Status BpfLoader::CalibratePageCache() {
  PageCacheCalibrator::RunFn run =
      [this](const em_pc_calib_req& req) -> absl::StatusOr<em_pc_calib_out> {
    pc_->bss->em_pc_cal_req = req;
    auto out = RunIterator(pc_->progs.em_pc_calibrate, 0);
    if (!out.ok()) return out.status();
    if (out->size() != sizeof(em_pc_calib_out)) {
      return absl::InternalError(absl::StrCat("calibration iterator returned ",
                                              out->size(), " bytes"));
    }
    em_pc_calib_out r;
    std::memcpy(&r, out->data(), sizeof(r));
    return r;
  };
  auto bases = PageCacheCalibrator(run).Calibrate();
  if (!bases.ok()) return bases.status();
  pc_->bss->em_pc_bases.page_offset_base = bases->page_offset_base;
  pc_->bss->em_pc_bases.vmemmap_base = bases->vmemmap_base;
  LogInfo("page cache: direct map at 0x", absl::Hex(bases->page_offset_base),
          ", struct pages at 0x", absl::Hex(bases->vmemmap_base), " (",
          bases->how, "; validated by reading back a page the agent wrote)");
  return absl::OkStatus();
}

bpf_object* BpfLoader::UnitObject(ResolverPath path) const {
  switch (path) {
    case ResolverPath::kPageCache:
      return pc_ != nullptr ? pc_->obj : nullptr;
    case ResolverPath::kTaskWork:
      return tw_obj_;
    case ResolverPath::kIterator:
      return iter_ != nullptr ? iter_->obj : nullptr;
  }
  return nullptr;
}

int BpfLoader::task_work_last_error() const {
  if (tw_ != nullptr)
    return __atomic_load_n(&tw_->bss->em_tw_last_err, __ATOMIC_RELAXED);
  if (tw2_ != nullptr) {
    return __atomic_load_n(&tw2_->bss->em_tw_last_err, __ATOMIC_RELAXED);
  }
  return 0;
}

bool BpfLoader::path_loaded(ResolverPath path) const {
  for (const PathStatus& p : paths_) {
    if (p.path == path) return p.loaded;
  }
  return false;
}

std::string BpfLoader::chain() const {
  std::vector<std::string> names;
  for (const PathStatus& p : paths_) {
    if (p.loaded) names.push_back(ResolverPathName(p.path));
  }
  return names.empty() ? "none" : absl::StrJoin(names, ",");
}

std::string BpfLoader::first_seen_path() const {
  for (const PathStatus& p : paths_) {
    if (p.loaded) return ResolverPathName(p.path);
  }
  return "none";
}

bool BpfLoader::judges_at_exec() const {
  return path_loaded(ResolverPath::kPageCache) ||
         path_loaded(ResolverPath::kTaskWork);
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
  for (bpf_object* obj : {skel_->obj, UnitObject(ResolverPath::kPageCache),
                          UnitObject(ResolverPath::kTaskWork),
                          UnitObject(ResolverPath::kIterator),
                          lsm_ != nullptr ? lsm_->obj : nullptr}) {
    if (obj == nullptr) continue;
    ForEachProgramInfo(obj, [&](bpf_program* prog, const bpf_prog_info& info) {
      out.push_back({bpf_program__name(prog), info.run_time_ns, info.run_cnt});
    });
  }
  return out;
}

BpfLoader::~BpfLoader() {
  if (stats_fd_ >= 0) close(stats_fd_);
  Detach();
  if (ring_ != nullptr) ring_buffer__free(ring_);
  if (globals_ != nullptr) {
    munmap(globals_,
           std::max<size_t>(sizeof(em_globals), sysconf(_SC_PAGESIZE)));
  }
  UnloadExecLsm();
  for (ResolverPath p : kAllResolverPaths) UnloadUnit(p);
  if (skel_ != nullptr) execmon_bpf__destroy(skel_);
}

absl::Status BpfLoader::Attach() {
  // Programs on one tracepoint run in the order they were attached: the
  // exec chain em_exec -> page_cache -> task_work -> em_exec_tail, and a
  // task_work exec that died before its callback is sent before the exit
  // record of its process. cgroup records first: a container's cgroup is
  // known before its execs.
  std::vector<bpf_program*> order = {skel_->progs.em_cgroup_mkdir,
                                     skel_->progs.em_cgroup_rmdir,
                                     skel_->progs.em_exec};
  if (pc_ != nullptr) order.push_back(pc_->progs.em_exec_pc);
  if (tw_exec_ != nullptr) order.push_back(tw_exec_);
  order.push_back(skel_->progs.em_exec_tail);
  if (tw_exit_ != nullptr) order.push_back(tw_exit_);
  order.push_back(skel_->progs.em_fork);
  order.push_back(skel_->progs.em_exit);
  for (bpf_program* prog : order) {
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      return ErrnoStatus(errno,
                         absl::StrCat("attaching ", bpf_program__name(prog)));
    }
    links_.push_back(link);
  }
  // The whole chain is in place: start reporting.
  __atomic_store_n(&globals_->armed, 1, __ATOMIC_SEQ_CST);
  return absl::OkStatus();
}

void BpfLoader::Detach() {
  if (globals_ != nullptr)
    __atomic_store_n(&globals_->armed, 0, __ATOMIC_SEQ_CST);
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
  __atomic_store_n(&globals_->boot_to_real_ns,
                   ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_BOOTTIME),
                   __ATOMIC_RELAXED);
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
  if (iter_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("late resolution unavailable: ",
                     paths_.empty() ? "" : paths_.back().reason));
  }
  std::vector<uint8_t> all;
  for (size_t start = 0; start < items.size(); start += EM_RESOLVE_MAX) {
    size_t n = std::min<size_t>(EM_RESOLVE_MAX, items.size() - start);
    em_resolve_req& req = iter_->bss->em_req;
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
    iter_->data->em_req_source = static_cast<uint32_t>(source);
    auto out = RunIterator(iter_->progs.em_resolve, pid);
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
  if (c.hashes.size() > max_policy_hashes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "policies pin ", c.hashes.size(), " distinct sha256 hashes; at most ",
        max_policy_hashes_, " fit"));
  }
  const uint32_t gen = active_gen_ + 1;
  const int ids_fd = bpf_map__fd(skel_->maps.em_policy_ids);
  const int hashes_fd = bpf_map__fd(skel_->maps.em_policy_hashes);
  // Pinned hashes: this generation's slot of each entry. Undone on
  // failure (the generation number is reused by the next attempt).
  const uint32_t hslot = gen & 1;
  std::vector<std::pair<em_sha256, em_hash_pins>> hash_undo;
  auto undo_hashes = [&] {
    for (auto& [k, old] : hash_undo) {
      if (old.gen[0] == 0 && old.gen[1] == 0) {
        bpf_map_delete_elem(hashes_fd, &k);
      } else {
        bpf_map_update_elem(hashes_fd, &k, &old, BPF_ANY);
      }
    }
  };
  for (const auto& [hash, mask] : c.hashes) {
    em_sha256 k{};
    std::memcpy(k.b, hash.data(), std::min(sizeof(k.b), hash.size()));
    em_hash_pins v{};
    if (bpf_map_lookup_elem(hashes_fd, &k, &v) != 0) v = em_hash_pins{};
    hash_undo.emplace_back(k, v);
    v.mask[hslot] = mask;
    v.gen[hslot] = gen;
    if (bpf_map_update_elem(hashes_fd, &k, &v, BPF_ANY) != 0) {
      int e = errno;
      undo_hashes();
      return ErrnoStatus(e, "loading pinned sha256 hashes");
    }
  }
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
      undo_hashes();
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
  __atomic_store_n(&globals_->active_gen, gen, __ATOMIC_SEQ_CST);
  active_gen_ = gen;
  gen_keys_.emplace_back(gen, std::move(keys));
  // Hashes that neither this generation nor the one before pins.
  {
    em_sha256 k{}, next{};
    const void* prev = nullptr;
    std::vector<em_sha256> stale;
    while (bpf_map_get_next_key(hashes_fd, prev, &next) == 0) {
      em_hash_pins v{};
      if (bpf_map_lookup_elem(hashes_fd, &next, &v) == 0) {
        bool live = false;
        for (uint32_t g : v.gen) live = live || (g != 0 && g + 1 >= gen);
        if (!live) stale.push_back(next);
      }
      k = next;
      prev = &k;
    }
    for (const em_sha256& sk : stale) bpf_map_delete_elem(hashes_fd, &sk);
  }
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
  if (iter_ == nullptr) {
    return absl::UnavailableError(
        "the policy sweep of running processes needs the iterator unit");
  }
  return RunIterator(iter_->progs.em_sweep, 0);
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
