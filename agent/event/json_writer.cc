#include "agent/event/json_writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bpf/execmon_abi.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace execmon {
namespace {

// RapidJSON's writer, plus strings already known to need no escaping,
// copied as a whole (RapidJSON's String() looks at every byte again).
class Writer : public rapidjson::Writer<rapidjson::StringBuffer> {
 public:
  using rapidjson::Writer<rapidjson::StringBuffer>::Writer;

  // `s` must be valid UTF-8 without '"', '\\' or control characters
  // (PlainAscii). Works as a key too: RapidJSON keys are strings.
  void Plain(const char* s, size_t n) {
    Prefix(rapidjson::kStringType);
    char* p = os_->Push(n + 2);
    p[0] = '"';
    std::memcpy(p + 1, s, n);
    p[n + 1] = '"';
    EndValue(true);
  }
};

// True if every byte is ASCII that JSON takes as is: no control
// characters, '"' or '\\'. Eight bytes at a time (bit tricks: a byte below
// 0x20, a byte equal to '"' or '\\', a byte with the high bit).
bool PlainAscii(absl::string_view v) {
  constexpr uint64_t k01 = 0x0101010101010101ULL;
  constexpr uint64_t k80 = 0x8080808080808080ULL;
  auto bad = [](uint64_t x) {
    const uint64_t quote = x ^ (k01 * '"');
    const uint64_t slash = x ^ (k01 * '\\');
    return ((x | ((x - k01 * 0x20) & ~x) | ((quote - k01) & ~quote) |
             ((slash - k01) & ~slash)) &
            k80) != 0;
  };
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, v.data() + i, sizeof(word));
    if (bad(word)) return false;
  }
  for (; i < v.size(); ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF).
size_t Utf8SeqLen(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  }
  return len;
}

// JSON text must be UTF-8 (RFC 8259 8.1), but argv and paths are bytes:
// each byte of an invalid sequence becomes U+FFFD. Valid input (nearly
// all) is passed through without a copy. Returns false when a byte was
// replaced (the caller records the exact bytes: Lossy).
bool Utf8String(Writer& w, absl::string_view v) {
  // Nearly all argv, paths and names: copied as they are.
  if (PlainAscii(v)) {
    w.Plain(v.data(), v.size());
    return true;
  }
  const auto* s = reinterpret_cast<const unsigned char*>(v.data());
  size_t i = 0;
  while (i < v.size()) {
    size_t len = Utf8SeqLen(s + i, v.size() - i);
    if (len == 0) break;
    i += len;
  }
  if (i == v.size()) {
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    return true;
  }
  std::string fixed(v.substr(0, i));
  while (i < v.size()) {
    size_t len = Utf8SeqLen(s + i, v.size() - i);
    if (len == 0) {
      fixed += "\xef\xbf\xbd";
      ++i;
    } else {
      fixed.append(v.data() + i, len);
      i += len;
    }
  }
  w.String(fixed.data(), static_cast<rapidjson::SizeType>(fixed.size()));
  return false;
}

// Every key is a plain ASCII literal. The helpers taking a key are inlined
// so that its length is known at compile time.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Key(Writer& w, const char* k) {
  w.Plain(k, std::strlen(k));
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Str(Writer& w, const char* k,
                                             absl::string_view v) {
  Key(w, k);
  Utf8String(w, v);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void U64(Writer& w, const char* k,
                                             uint64_t v) {
  Key(w, k);
  w.Uint64(v);
}

// The string, or null when it is empty (unknown).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StrOrNull(Writer& w, const char* k,
                                                   absl::string_view v) {
  Key(w, k);
  if (v.empty()) {
    w.Null();
  } else {
    Utf8String(w, v);
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Bool(Writer& w, const char* k,
                                              bool v) {
  Key(w, k);
  w.Bool(v);
}

// The byte-string fields of one object (argv, paths, comm) that are not
// valid UTF-8, so were written with U+FFFD: listed under "invalid_utf8"
// with their exact bytes in base64, so a consumer can tell two such values
// apart and recover them (docs/events.md). Allocates only when used.
class Lossy {
 public:
  void Str(Writer& w, const char* k, absl::string_view v) {
    Key(w, k);
    if (!Utf8String(w, v)) fields_.emplace_back(k, v);
  }
  void Args(Writer& w, const std::vector<std::string>& args) {
    Key(w, "args");
    w.StartArray();
    for (size_t i = 0; i < args.size(); ++i) {
      if (!Utf8String(w, args[i])) {
        fields_.emplace_back(absl::StrCat("args.", i), args[i]);
      }
    }
    w.EndArray();
  }
  // "invalid_utf8": {"<field>": "<base64 of its bytes>", ...}, if any.
  void Write(Writer& w) const {
    if (fields_.empty()) return;
    Key(w, "invalid_utf8");
    w.StartObject();
    for (const auto& [k, bytes] : fields_) {
      w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      const std::string b64 = absl::Base64Escape(bytes);
      w.String(b64.data(), static_cast<rapidjson::SizeType>(b64.size()));
    }
    w.EndObject();
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// build_id, build_id_source, build_id_error: the ID is null when unknown,
// and then the error says why.
void BuildIdFields(Writer& w, const BuildId& b) {
  StrOrNull(w, "build_id", b.known() ? b.Hex() : std::string());
  Str(w, "build_id_source", BuildIdSourceName(b.source));
  Key(w, "build_id_error");
  if (b.error == 0) {
    w.Null();
  } else {
    w.String(BuildIdErrorName(b.error));
  }
  // Only where it is so: an ID the process could have forged in its own
  // memory (docs/events.md).
  if (b.known() && b.from_memory) Bool(w, "build_id_from_memory", true);
}

// "package": the build ID's Debian package, when an index names it.
void PackageObject(Writer& w, const PackageLookup& lookup, const BuildId& b) {
  if (!lookup || !b.known()) return;
  PackageView p;
  if (!lookup(b.bytes, &p)) return;
  Key(w, "package");
  w.StartObject();
  Str(w, "name", p.name);
  Str(w, "version", p.version);
  Str(w, "arch", p.arch);
  Str(w, "source", p.source);
  w.EndObject();
}

// The file identity; exec events also know the inode's link count and mode.
void FileFields(Writer& w, const FileKey& f, const ExecEvent* exec) {
  Key(w, "exe");
  w.StartObject();
  U64(w, "dev", f.UserDev());
  U64(w, "inode", f.ino);
  Key(w, "ctime_ns");
  w.Int64(f.CtimeNs());
  U64(w, "size", f.size);
  if (exec != nullptr) {
    U64(w, "nlink", exec->exe_nlink);
    U64(w, "mode", exec->exe_mode);
    // The file's content hash where the kernel gave one (bpf_ima_file_hash
    // at bprm_check): absent, not null, elsewhere.
    if (!exec->sha256.empty()) {
      Str(w, "sha256", absl::BytesToHexString(exec->sha256));
    }
  }
  w.EndObject();
}

void Header(Writer& w, const char* type, absl::string_view time,
            const std::string& node, const std::string& cluster) {
  U64(w, "schema", kSchemaVersion);
  Str(w, "type", type);
  Str(w, "time", time);
  Str(w, "node", node);
  if (!cluster.empty()) Str(w, "cluster", cluster);
}

void ParentObject(Writer& w, const ProcessInfo* parent) {
  if (parent == nullptr) return;
  Key(w, "parent");
  w.StartObject();
  U64(w, "pid", parent->pid);
  Str(w, "exec_id", parent->exec_id);
  Str(w, "binary", parent->binary);
  StrOrNull(w, "build_id",
            parent->build_id.known() ? parent->build_id.Hex() : std::string());
  w.EndObject();
}

void Pairs(Writer& w, const char* key,
           const std::vector<std::pair<std::string, std::string>>& kv) {
  Key(w, key);
  w.StartObject();
  for (const auto& [k, v] : kv) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    Utf8String(w, v);
  }
  w.EndObject();
}

// "container" and "pod", present only for processes in a container. The
// pod object always has its uid (from the cgroup path); the rest comes
// from the Kubernetes API, and "enriched" says whether it did.
void WorkloadObjects(Writer& w, const WorkloadView* wl) {
  if (wl == nullptr || wl->container == nullptr ||
      !wl->container->in_container()) {
    return;
  }
  const ContainerRef& c = *wl->container;
  const PodMeta* pod = wl->pod;
  Key(w, "container");
  w.StartObject();
  Str(w, "id", c.container_id);
  Str(w, "runtime", c.runtime);
  if (pod != nullptr && pod->enriched) {
    Str(w, "name", pod->container_name);
    Str(w, "image", pod->image);
    Str(w, "image_id", pod->image_id);
  }
  w.EndObject();
  if (c.pod_uid.empty()) return;
  Key(w, "pod");
  w.StartObject();
  Str(w, "uid", c.pod_uid);
  Str(w, "qos", c.qos);
  bool enriched = pod != nullptr && pod->enriched;
  Bool(w, "enriched", enriched);
  if (enriched) {
    Str(w, "namespace", pod->namespace_name);
    Str(w, "name", pod->name);
    Pairs(w, "labels", pod->labels);
    Str(w, "workload", pod->workload);
    Str(w, "workload_kind", pod->workload_kind);
    if (!pod->annotations.empty()) Pairs(w, "annotations", pod->annotations);
  }
  w.EndObject();
}

void VerdictObject(Writer& w, const VerdictView& v) {
  Key(w, "verdict");
  w.StartObject();
  Str(w, "decision", v.decision);
  Str(w, "action", v.action);
  StrOrNull(w, "policy", v.policy);
  StrOrNull(w, "rule", v.rule);
  Key(w, "mode");
  if (v.mode == nullptr) {
    w.Null();
  } else {
    w.String(v.mode);
  }
  if (v.protected_process) Bool(w, "protected", true);
  w.EndObject();
}

}  // namespace

absl::string_view JsonWriter::FormatWallTime(uint64_t boot_ns,
                                             TimeText* out) const {
  const int64_t real = static_cast<int64_t>(boot_ns) + boot_to_real_ns_;
  constexpr int64_t kNs = 1000000000;
  int64_t sec = real / kNs;
  int64_t ns = real % kNs;
  if (ns < 0) {  // before 1970: floor, and a positive fraction
    --sec;
    ns += kNs;
  }
  // Formatting the date and time of day is most of the cost, and events
  // come in bursts within a second: the last two seconds are kept.
  SecondText* hit = nullptr;
  for (SecondText& c : seconds_) {
    if (c.valid && c.sec == sec) hit = &c;
  }
  if (hit == nullptr) {
    hit = &seconds_[next_second_];
    next_second_ ^= 1;
    const std::string text = absl::FormatTime(
        "%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(sec), absl::UTCTimeZone());
    hit->len = std::min(text.size(), sizeof(hit->text));
    std::memcpy(hit->text, text.data(), hit->len);
    hit->sec = sec;
    hit->valid = true;
  }
  char* p = out->data();
  std::memcpy(p, hit->text, hit->len);
  p += hit->len;
  *p++ = '.';
  for (int i = 8; i >= 0; --i) {
    p[i] = static_cast<char>('0' + ns % 10);
    ns /= 10;
  }
  p += 9;
  *p++ = 'Z';
  return absl::string_view(out->data(), static_cast<size_t>(p - out->data()));
}

std::string JsonWriter::WallTime(uint64_t boot_ns) const {
  TimeText text;
  return std::string(FormatWallTime(boot_ns, &text));
}

absl::string_view JsonWriter::Exec(const ExecEvent& e, const ProcessInfo& self,
                                   const ProcessInfo* parent,
                                   const VerdictView* verdict,
                                   const WorkloadView* workload) {
  buf_.Clear();
  Writer w(buf_);
  TimeText time, start;
  w.StartObject();
  Header(w, "exec", FormatWallTime(e.ktime_ns, &time), node_, cluster_);
  Key(w, "process");
  w.StartObject();
  U64(w, "pid", e.pid);
  U64(w, "tid", e.tid);
  U64(w, "ppid", e.ppid);
  U64(w, "uid", e.uid);
  U64(w, "gid", e.gid);
  U64(w, "euid", e.euid);
  U64(w, "egid", e.egid);
  Key(w, "loginuid");
  if (e.loginuid == UINT32_MAX) {
    w.Null();
  } else {
    w.Uint(e.loginuid);
  }
  Lossy lossy;
  lossy.Str(w, "comm", e.comm);
  Str(w, "exec_id", self.exec_id);
  StrOrNull(w, "parent_exec_id", self.parent_exec_id);
  lossy.Str(w, "filename", e.filename);
  lossy.Str(w, "binary", e.binary);
  lossy.Args(w, e.args);
  U64(w, "argc", e.argc);
  Bool(w, "args_truncated", (e.flags & EM_F_ARGS_TRUNC) != 0);
  lossy.Str(w, "cwd", e.cwd);
  U64(w, "cgroup_id", e.cgroup_id);
  U64(w, "mnt_ns", e.mnt_ns);
  U64(w, "pid_ns", e.pid_ns);
  Str(w, "start_time", FormatWallTime(e.start_ns, &start));
  U64(w, "ktime_ns", e.ktime_ns);
  FileFields(w, e.exe, &e);
  BuildIdFields(w, e.build_id);
  PackageObject(w, package_lookup_, e.build_id);
  if (e.resolved_ns != 0) {
    U64(w, "build_id_resolved_ns", e.resolved_ns);
  }
  Bool(w, "build_id_late", e.build_id.source == BuildIdSource::kIterator);
  // Only where an entry was really stored (or served): never for IDs read
  // late from process memory, files younger than --cache_min_age or
  // transient failures.
  Bool(w, "build_id_cached",
       (e.flags & EM_F_CACHED) != 0 &&
           e.build_id.source != BuildIdSource::kNone);
  bool fileless = (e.flags & EM_F_EXE_UNLINKED) != 0;
  // Stopped before its first instruction until judged (docs/kernels.md).
  if (e.flags & EM_F_HELD) Bool(w, "held", true);
  Bool(w, "fileless", fileless);
  Bool(w, "memfd", fileless && e.binary.rfind("/memfd:", 0) == 0);
  if (e.flags & EM_F_SCRIPT) {
    Key(w, "script");
    w.StartObject();
    Str(w, "path", e.filename);
    Str(w, "interpreter", e.binary);
    w.EndObject();
  }
  if (e.flags & (EM_F_FILENAME_TRUNC | EM_F_BINARY_TRUNC | EM_F_CWD_TRUNC)) {
    Key(w, "truncated");
    w.StartArray();
    if (e.flags & EM_F_FILENAME_TRUNC) w.String("filename");
    if (e.flags & EM_F_BINARY_TRUNC) w.String("binary");
    if (e.flags & EM_F_CWD_TRUNC) w.String("cwd");
    w.EndArray();
  }
  lossy.Write(w);
  w.EndObject();
  ParentObject(w, parent);
  WorkloadObjects(w, workload);
  if (verdict != nullptr) VerdictObject(w, *verdict);
  w.EndObject();
  return absl::string_view(buf_.GetString(), buf_.GetSize());
}

absl::string_view JsonWriter::Sweep(const SweepRecord& r,
                                    const ProcessInfo* self,
                                    const VerdictView& verdict,
                                    const WorkloadView* workload) {
  buf_.Clear();
  Writer w(buf_);
  TimeText time, start;
  w.StartObject();
  Header(w, "sweep", FormatWallTime(r.ktime_ns, &time), node_, cluster_);
  Key(w, "process");
  w.StartObject();
  U64(w, "pid", r.pid);
  U64(w, "ppid", r.ppid);
  Lossy lossy;
  lossy.Str(w, "comm", r.comm);
  if (self != nullptr) {
    Str(w, "exec_id", self->exec_id);
    lossy.Str(w, "binary", self->binary);
  }
  U64(w, "cgroup_id", r.cgroup_id);
  Str(w, "start_time", FormatWallTime(r.start_ns, &start));
  FileFields(w, r.exe, nullptr);
  BuildIdFields(w, r.build_id);
  lossy.Write(w);
  w.EndObject();
  WorkloadObjects(w, workload);
  VerdictObject(w, verdict);
  w.EndObject();
  return absl::string_view(buf_.GetString(), buf_.GetSize());
}

absl::string_view JsonWriter::Exit(const ExitEvent& e, const ProcessInfo* self,
                                   const WorkloadView* workload) {
  buf_.Clear();
  Writer w(buf_);
  TimeText time, start;
  w.StartObject();
  Header(w, "exit", FormatWallTime(e.ktime_ns, &time), node_, cluster_);
  Key(w, "process");
  w.StartObject();
  U64(w, "pid", e.pid);
  Lossy lossy;
  if (self != nullptr) {
    U64(w, "ppid", self->ppid);
    Str(w, "exec_id", self->exec_id);
    StrOrNull(w, "parent_exec_id", self->parent_exec_id);
    lossy.Str(w, "binary", self->binary);
    U64(w, "cgroup_id", self->cgroup_id);
    BuildIdFields(w, self->build_id);
  }
  Str(w, "start_time", FormatWallTime(e.start_ns, &start));
  lossy.Write(w);
  w.EndObject();
  Key(w, "exit");
  w.StartObject();
  U64(w, "status", e.exit_code);
  if (WIFSIGNALED(e.exit_code)) {
    U64(w, "signal", WTERMSIG(e.exit_code));
  } else {
    U64(w, "code", WEXITSTATUS(e.exit_code));
  }
  U64(w, "lifetime_ns", e.ktime_ns > e.start_ns ? e.ktime_ns - e.start_ns : 0);
  w.EndObject();
  WorkloadObjects(w, workload);
  w.EndObject();
  return absl::string_view(buf_.GetString(), buf_.GetSize());
}

absl::string_view JsonWriter::Snapshot(
    const SnapTask& t, const ProcessInfo& self, const SnapObject* exe,
    const std::vector<const SnapObject*>& objects,
    const WorkloadView* workload) {
  buf_.Clear();
  Writer w(buf_);
  TimeText time, start;
  w.StartObject();
  Header(w, "snapshot", FormatWallTime(t.ktime_ns, &time), node_, cluster_);
  Key(w, "process");
  w.StartObject();
  U64(w, "pid", t.pid);
  U64(w, "ppid", t.ppid);
  U64(w, "uid", t.uid);
  U64(w, "gid", t.gid);
  U64(w, "euid", t.euid);
  Key(w, "loginuid");
  if (t.loginuid == UINT32_MAX) {
    w.Null();
  } else {
    w.Uint(t.loginuid);
  }
  Lossy lossy;
  lossy.Str(w, "comm", t.comm);
  Str(w, "exec_id", self.exec_id);
  StrOrNull(w, "parent_exec_id", self.parent_exec_id);
  lossy.Str(w, "binary", self.binary);
  lossy.Args(w, t.args);
  Bool(w, "args_truncated", (t.flags & EM_F_ARGS_TRUNC) != 0);
  U64(w, "cgroup_id", t.cgroup_id);
  U64(w, "mnt_ns", t.mnt_ns);
  U64(w, "pid_ns", t.pid_ns);
  Str(w, "start_time", FormatWallTime(t.start_ns, &start));
  if (exe != nullptr) {
    FileFields(w, exe->file, nullptr);
    BuildIdFields(w, exe->build_id);
    PackageObject(w, package_lookup_, exe->build_id);
  } else {
    BuildIdFields(w, BuildId{});
  }
  Key(w, "objects");
  w.StartArray();
  for (const SnapObject* o : objects) {
    w.StartObject();
    Lossy path;
    path.Str(w, "path", o->path);
    BuildIdFields(w, o->build_id);
    PackageObject(w, package_lookup_, o->build_id);
    U64(w, "inode", o->file.ino);
    U64(w, "dev", o->file.UserDev());
    path.Write(w);
    w.EndObject();
  }
  w.EndArray();
  lossy.Write(w);
  w.EndObject();
  WorkloadObjects(w, workload);
  w.EndObject();
  return absl::string_view(buf_.GetString(), buf_.GetSize());
}

}  // namespace execmon
