// The agent's decoded view of kernel records, independent of the wire ABI
// (bpf/execmon_abi.h). Strings are owned; enums mirror the ABI's.
#ifndef EXECMON_AGENT_EVENT_EVENT_H_
#define EXECMON_AGENT_EVENT_EVENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace execmon {

// Where a build ID came from (ABI enum em_bid_source).
enum class BuildIdSource : uint8_t {
  kNone = 0,
  kCache = 1,
  kTaskWork = 2,
  kIterator = 3,
  kSnapshot = 4,
  kPageCache = 5,
};

// Identity of an executed or mapped file: the build-ID cache key.
struct FileKey {
  uint64_t ino = 0;
  int64_t ctime_sec = 0;
  uint32_t ctime_nsec = 0;
  uint32_t dev = 0;  // kernel encoding: major << 20 | minor
  uint32_t generation = 0;
  uint64_t size = 0;

  // The device as stat(2) reports it (st_dev).
  uint64_t UserDev() const;
  int64_t CtimeNs() const { return ctime_sec * 1000000000LL + ctime_nsec; }
  bool operator==(const FileKey&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const FileKey& k) {
    return H::combine(std::move(h), k.ino, k.ctime_sec, k.ctime_nsec, k.dev,
                      k.generation, k.size);
  }
};

struct BuildId {
  std::string bytes;  // raw, 1..20 bytes when known
  BuildIdSource source = BuildIdSource::kNone;
  uint8_t error = 0;  // ABI enum em_bid_error; 0 = OK
  // Read from the running process's memory (EM_BID_F_MEMORY): the process
  // could have written it. Never cached; no allow list credits it.
  bool from_memory = false;

  bool known() const { return error == 0 && !bytes.empty(); }
  std::string Hex() const;
};

// Stable names used in events and metrics ("task_work", "no_note", ...).
const char* BuildIdSourceName(BuildIdSource source);
const char* BuildIdErrorName(uint8_t error);

// The kernel's verdict on an exec (ABI struct em_verdict).
struct KernelVerdict {
  uint8_t decision = 0;  // enum em_decision; 0 = none computed
  uint8_t action = 0;    // enum em_action: what the kernel did
  int policy = -1;       // index into the policy set of generation `gen`
  uint8_t flags = 0;     // EM_V_*
  uint32_t gen = 0;
};

struct ExecEvent {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t euid = 0;
  uint32_t egid = 0;
  uint32_t loginuid = 0;
  uint32_t flags = 0;  // EM_F_*
  uint32_t mnt_ns = 0;
  uint32_t pid_ns = 0;
  uint32_t argc = 0;
  uint64_t cgroup_id = 0;
  uint64_t start_ns = 0;
  uint64_t resolved_ns = 0;
  FileKey exe;
  uint32_t exe_nlink = 0;
  uint32_t exe_mode = 0;
  BuildId build_id;
  KernelVerdict verdict;
  std::string comm;
  std::string filename;
  std::string binary;
  std::string cwd;
  std::vector<std::string> args;
  std::string sha256;  // raw 32-byte content hash (EM_F_SHA256), or empty
};

struct ForkEvent {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint64_t start_ns = 0;
};

struct ExitEvent {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t exit_code = 0;  // wait(2) status
  uint64_t start_ns = 0;
};

// A mapped ELF object of a running process (snapshot).
struct SnapObject {
  uint32_t pid = 0;
  bool is_exe = false;
  uint64_t vm_start = 0;
  uint64_t vm_size = 0;
  FileKey file;
  BuildId build_id;
  std::string path;
  bool path_truncated = false;
};

// A running process (snapshot).
struct SnapTask {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t euid = 0;
  uint32_t loginuid = 0;
  uint32_t mnt_ns = 0;
  uint32_t pid_ns = 0;
  uint64_t cgroup_id = 0;
  uint64_t start_ns = 0;
  uint32_t flags = 0;
  std::string comm;
  std::vector<std::string> args;
};

// One build ID read by the resolver iterator.
struct Resolved {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t index = 0;
  FileKey file;
  BuildId build_id;
  KernelVerdict verdict;  // for late exec resolutions
};

// A running process found violating policy by the sweep iterator.
struct SweepRecord {
  uint64_t ktime_ns = 0;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint64_t start_ns = 0;
  uint64_t cgroup_id = 0;
  FileKey exe;
  BuildId build_id;
  KernelVerdict verdict;
  std::string comm;
};

// A cgroup v2 directory created (with its path) or removed.
struct CgroupEvent {
  uint64_t ktime_ns = 0;
  uint64_t id = 0;
  bool removed = false;
  std::string path;  // relative to the cgroup v2 root; empty for rmdir
};

using KernelRecord = std::variant<ExecEvent, ForkEvent, ExitEvent, SnapObject,
                                  SnapTask, Resolved, SweepRecord, CgroupEvent>;

// Splits a NUL-separated argv block; a trailing partial arg is kept.
std::vector<std::string> SplitArgs(const char* data, size_t len);

}  // namespace execmon

#endif  // EXECMON_AGENT_EVENT_EVENT_H_
