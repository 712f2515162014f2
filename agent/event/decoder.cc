#include "agent/event/decoder.h"

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "bpf/execmon_abi.h"

namespace execmon {

// The wire layout is a contract with the BPF side: pin it. A change to
// bpf/execmon_abi.h that moves a field fails to compile here until the
// decoder (and EM_ABI_VERSION) is updated with it.
static_assert(sizeof(em_header) == 16);
static_assert(sizeof(em_file_key) == 40);
static_assert(offsetof(em_file_key, ctime_sec) == 8);
static_assert(offsetof(em_file_key, dev) == 20);
static_assert(offsetof(em_file_key, size) == 32);
static_assert(sizeof(em_build_id) == 24);
static_assert(offsetof(em_build_id, len) == 20);
static_assert(sizeof(em_cache_val) == 32);
static_assert(sizeof(em_lsm_stash) == 80);
static_assert(sizeof(em_sha256) == 32);
static_assert(sizeof(em_hash_pins) == 24);
static_assert(offsetof(em_exec_event, pid) == 16);
static_assert(offsetof(em_exec_event, cgroup_id) == 64);
static_assert(offsetof(em_exec_event, exe) == 88);
static_assert(offsetof(em_exec_event, bid) == 136);
static_assert(sizeof(em_verdict) == 8);
static_assert(offsetof(em_exec_event, verdict) == 160);
static_assert(offsetof(em_exec_event, filename_len) == 168);
static_assert(offsetof(em_exec_event, comm) == 176);
static_assert(offsetof(em_exec_event, filename) == 192);
static_assert(offsetof(em_exec_event, args) == 192 + 3 * EM_PATH_MAX);
static_assert(offsetof(em_exec_event, sha256) ==
              192 + 3 * EM_PATH_MAX + EM_ARGS_MAX);
static_assert(sizeof(em_exec_event) ==
              192 + 3 * EM_PATH_MAX + EM_ARGS_MAX + EM_SHA256_LEN);
static_assert(sizeof(em_fork_event) == 32);
static_assert(sizeof(em_exit_event) == 32);
static_assert(offsetof(em_snap_object, file) == 40);
static_assert(offsetof(em_snap_object, path) == 112);
static_assert(sizeof(em_snap_object) == 112 + EM_PATH_MAX);
static_assert(offsetof(em_snap_task, args) == 88);
static_assert(sizeof(em_resolved) == 104);
static_assert(offsetof(em_sweep, verdict) == 104);
static_assert(sizeof(em_sweep) == 128);
static_assert(sizeof(em_policy_key) == 28);
static_assert(sizeof(em_policy_val) == 24);
static_assert(sizeof(em_policy_meta) == 64);
static_assert(sizeof(em_scope_key) == 16);
static_assert(offsetof(em_cgroup_event, path) == 32);
static_assert(sizeof(em_cgroup_event) == 32 + EM_PATH_MAX);
static_assert(sizeof(em_resolve_req) == 8 + EM_RESOLVE_MAX * (8 + 8 + 40));

namespace {

template <typename T>
absl::StatusOr<const T*> As(absl::Span<const uint8_t> data, const char* what) {
  if (data.size() < sizeof(T)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " record of ", data.size(), " bytes, want ", sizeof(T)));
  }
  return reinterpret_cast<const T*>(data.data());
}

FileKey KeyOf(const em_file_key& k) {
  FileKey out;
  out.ino = k.ino;
  out.ctime_sec = k.ctime_sec;
  out.ctime_nsec = k.ctime_nsec;
  out.dev = k.dev;
  out.generation = k.generation;
  out.size = k.size;
  return out;
}

absl::StatusOr<BuildId> BuildIdOf(const em_build_id& b) {
  BuildId out;
  if (b.source >= EM_BID_SRC_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("build-ID source ", b.source, " out of range"));
  }
  if (b.error >= EM_BID_ERR_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("build-ID error ", b.error, " out of range"));
  }
  out.source = static_cast<BuildIdSource>(b.source);
  out.error = b.error;
  out.from_memory = (b.flags & EM_BID_F_MEMORY) != 0;
  if (b.error == EM_BID_OK) {
    if (b.len == 0 || b.len > EM_BUILD_ID_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("build-ID length ", b.len, " out of range"));
    }
    out.bytes.assign(reinterpret_cast<const char*>(b.id), b.len);
  }
  return out;
}

absl::StatusOr<KernelVerdict> VerdictOf(const em_verdict& v) {
  if (v.decision > EM_DEC_PENDING || v.action > EM_ACT_DENY_EXEC) {
    return absl::InvalidArgumentError(absl::StrCat("verdict decision ",
                                                   v.decision, " / action ",
                                                   v.action, " out of range"));
  }
  if (v.policy != EM_POLICY_NONE && v.policy >= EM_MAX_POLICIES) {
    return absl::InvalidArgumentError(
        absl::StrCat("verdict policy ", v.policy, " out of range"));
  }
  KernelVerdict out;
  out.decision = v.decision;
  out.action = v.action;
  out.policy = v.policy == EM_POLICY_NONE ? -1 : v.policy;
  out.flags = v.flags;
  out.gen = v.gen;
  return out;
}

absl::StatusOr<std::string> Field(const char* data, size_t len, size_t cap,
                                  const char* name) {
  if (len > cap) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " length ", len, " exceeds ", cap));
  }
  return std::string(data, len);
}

std::string CString(const char* data, size_t cap) {
  return std::string(data, strnlen(data, cap));
}

absl::StatusOr<KernelRecord> DecodeExec(absl::Span<const uint8_t> data) {
  const em_exec_event* e;
  {
    auto p = As<em_exec_event>(data, "exec");
    if (!p.ok()) return p.status();
    e = *p;
  }
  ExecEvent out;
  out.ktime_ns = e->hdr.ktime_ns;
  out.pid = e->pid;
  out.tid = e->tid;
  out.ppid = e->ppid;
  out.uid = e->uid;
  out.gid = e->gid;
  out.euid = e->euid;
  out.egid = e->egid;
  out.loginuid = e->loginuid;
  out.flags = e->flags;
  out.mnt_ns = e->mnt_ns;
  out.pid_ns = e->pid_ns;
  out.argc = e->argc;
  out.cgroup_id = e->cgroup_id;
  out.start_ns = e->start_ns;
  out.resolved_ns = e->resolved_ns;
  out.exe = KeyOf(e->exe);
  out.exe_nlink = e->exe_nlink;
  out.exe_mode = e->exe_mode;
  ASSIGN_OR_RETURN(out.build_id, BuildIdOf(e->bid));
  ASSIGN_OR_RETURN(out.verdict, VerdictOf(e->verdict));
  out.comm = CString(e->comm, sizeof(e->comm));
  ASSIGN_OR_RETURN(out.filename, Field(e->filename, e->filename_len,
                                       EM_PATH_MAX - 1, "filename"));
  ASSIGN_OR_RETURN(out.binary,
                   Field(e->binary, e->binary_len, EM_PATH_MAX - 1, "binary"));
  ASSIGN_OR_RETURN(out.cwd, Field(e->cwd, e->cwd_len, EM_PATH_MAX - 1, "cwd"));
  if (e->args_len > EM_ARGS_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("args length ", e->args_len, " exceeds ", EM_ARGS_MAX));
  }
  out.args = SplitArgs(e->args, e->args_len);
  if (e->flags & EM_F_SHA256) {
    out.sha256.assign(reinterpret_cast<const char*>(e->sha256),
                      sizeof(e->sha256));
  }
  return out;
}

absl::StatusOr<KernelRecord> DecodeSnapObject(absl::Span<const uint8_t> data) {
  ASSIGN_OR_RETURN(const em_snap_object* r,
                   As<em_snap_object>(data, "snapshot object"));
  SnapObject out;
  out.pid = r->pid;
  out.is_exe = r->is_exe != 0;
  out.vm_start = r->vm_start;
  out.vm_size = r->vm_size;
  out.file = KeyOf(r->file);
  ASSIGN_OR_RETURN(out.build_id, BuildIdOf(r->bid));
  ASSIGN_OR_RETURN(out.path,
                   Field(r->path, r->path_len, EM_PATH_MAX - 1, "path"));
  out.path_truncated = (r->flags & EM_F_BINARY_TRUNC) != 0;
  return out;
}

absl::StatusOr<KernelRecord> DecodeSnapTask(absl::Span<const uint8_t> data) {
  ASSIGN_OR_RETURN(const em_snap_task* r,
                   As<em_snap_task>(data, "snapshot task"));
  if (r->args_len > EM_ARGS_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("args length ", r->args_len, " exceeds ", EM_ARGS_MAX));
  }
  SnapTask out;
  out.ktime_ns = r->hdr.ktime_ns;
  out.pid = r->pid;
  out.ppid = r->ppid;
  out.uid = r->uid;
  out.gid = r->gid;
  out.euid = r->euid;
  out.loginuid = r->loginuid;
  out.mnt_ns = r->mnt_ns;
  out.pid_ns = r->pid_ns;
  out.cgroup_id = r->cgroup_id;
  out.start_ns = r->start_ns;
  out.flags = r->flags;
  out.comm = CString(r->comm, sizeof(r->comm));
  out.args = SplitArgs(r->args, r->args_len);
  return out;
}

absl::StatusOr<KernelRecord> DecodeResolved(absl::Span<const uint8_t> data) {
  ASSIGN_OR_RETURN(const em_resolved* r, As<em_resolved>(data, "resolved"));
  // index refers to the caller's request list (BpfLoader::Resolve rebases
  // batches); the caller checks it against that list.
  Resolved out;
  out.ktime_ns = r->hdr.ktime_ns;
  out.pid = r->pid;
  out.index = r->index;
  out.file = KeyOf(r->file);
  ASSIGN_OR_RETURN(out.build_id, BuildIdOf(r->bid));
  ASSIGN_OR_RETURN(out.verdict, VerdictOf(r->verdict));
  return out;
}

absl::StatusOr<KernelRecord> DecodeSweep(absl::Span<const uint8_t> data) {
  ASSIGN_OR_RETURN(const em_sweep* r, As<em_sweep>(data, "sweep"));
  SweepRecord out;
  out.ktime_ns = r->hdr.ktime_ns;
  out.pid = r->pid;
  out.ppid = r->ppid;
  out.start_ns = r->start_ns;
  out.cgroup_id = r->cgroup_id;
  out.exe = KeyOf(r->exe);
  ASSIGN_OR_RETURN(out.build_id, BuildIdOf(r->bid));
  ASSIGN_OR_RETURN(out.verdict, VerdictOf(r->verdict));
  out.comm = CString(r->comm, sizeof(r->comm));
  return out;
}

}  // namespace

size_t RecordSize(absl::Span<const uint8_t> data) {
  if (data.size() < sizeof(em_header)) return 0;
  em_header h;
  std::memcpy(&h, data.data(), sizeof(h));
  return h.size;
}

absl::StatusOr<KernelRecord> DecodeRecord(absl::Span<const uint8_t> data) {
  if (data.size() < sizeof(em_header)) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of ", data.size(), " bytes has no header"));
  }
  em_header h;
  std::memcpy(&h, data.data(), sizeof(h));
  if (h.abi != EM_ABI_VERSION) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record ABI version ", h.abi, ", agent speaks ", EM_ABI_VERSION));
  }
  if (h.size > data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record says ", h.size, " bytes, only ", data.size(), " present"));
  }
  data = data.subspan(0, h.size);
  switch (h.type) {
    case EM_EV_EXEC:
      return DecodeExec(data);
    case EM_EV_FORK: {
      auto p = As<em_fork_event>(data, "fork");
      if (!p.ok()) return p.status();
      return ForkEvent{(*p)->hdr.ktime_ns, (*p)->pid, (*p)->ppid,
                       (*p)->start_ns};
    }
    case EM_EV_EXIT: {
      auto p = As<em_exit_event>(data, "exit");
      if (!p.ok()) return p.status();
      return ExitEvent{(*p)->hdr.ktime_ns, (*p)->pid, (*p)->exit_code,
                       (*p)->start_ns};
    }
    case EM_EV_SNAP_OBJECT:
      return DecodeSnapObject(data);
    case EM_EV_SNAP_TASK:
      return DecodeSnapTask(data);
    case EM_EV_RESOLVED:
      return DecodeResolved(data);
    case EM_EV_SWEEP:
      return DecodeSweep(data);
    case EM_EV_CGROUP_MKDIR:
    case EM_EV_CGROUP_RMDIR: {
      auto p = As<em_cgroup_event>(data, "cgroup");
      if (!p.ok()) return p.status();
      CgroupEvent out;
      out.ktime_ns = (*p)->hdr.ktime_ns;
      out.id = (*p)->id;
      out.removed = h.type == EM_EV_CGROUP_RMDIR;
      auto path =
          Field((*p)->path, (*p)->path_len, EM_PATH_MAX - 1, "cgroup path");
      if (!path.ok()) return path.status();
      out.path = *std::move(path);
      return out;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown record type ", h.type));
}

}  // namespace execmon
