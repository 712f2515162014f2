// Owns the execmon BPF skeleton: prerequisite checks, feature probes, load,
// attach, ring-buffer polling, iterator runs and kernel-side counters.
// Everything returns absl::Status; the destructor detaches and frees.
#ifndef EXECMON_AGENT_BPF_BPF_LOADER_H_
#define EXECMON_AGENT_BPF_BPF_LOADER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/event/event.h"
#include "agent/policy/compiler.h"

struct execmon_bpf;
struct execmon_pc_bpf;
struct execmon_tw_bpf;
struct execmon_tw2_bpf;
struct execmon_iter_bpf;
struct execmon_lsm_bpf;
struct bpf_object;
struct ring_buffer;
struct bpf_link;
struct bpf_program;

namespace execmon {

// The build-ID resolver paths, in the order an exec that missed the cache
// tries them. Each is its own BPF object (bpf/<unit>.bpf.c): the verifier
// accepts or refuses each one alone.
enum class ResolverPath {
  kPageCache,  // the exec'd file's page cache, in the exec tracepoint
  kTaskWork,   // bpf_task_work callback before the first instruction
  kIterator,   // late: iterator reads the running process's memory
};
inline constexpr ResolverPath kAllResolverPaths[] = {
    ResolverPath::kPageCache, ResolverPath::kTaskWork, ResolverPath::kIterator};
const char* ResolverPathName(ResolverPath path);
// Parses "auto" or a comma-separated list of path names.
struct ResolverChoice {
  bool automatic = true;  // every path the kernel accepts; none required
  // In chain order. Explicit: exactly these, all required.
  std::vector<ResolverPath> paths = {std::begin(kAllResolverPaths),
                                     std::end(kAllResolverPaths)};
};
absl::StatusOr<ResolverChoice> ParseResolverChoice(absl::string_view s);

// What became of one path at start-up.
struct PathStatus {
  ResolverPath path;
  bool loaded = false;
  bool requested = true;        // false: not in an explicit --build_id_resolver
  std::string reason;           // why not loaded: the kernel's own words
  uint32_t verified_insns = 0;  // sum over the unit's programs, where known
};

// The exec-denial unit (bpf/lsm.bpf.c, BPF LSM bprm_check_security): what
// became of it at start-up.
struct ExecLsmStatus {
  bool loaded = false;  // loaded, attached, and seen running on an exec
  std::string reason;   // why not: the kernel's own words
  uint32_t verified_insns = 0;
  bool sha256 = false;  // hashing files (bpf_ima_file_hash) is on
};

struct BpfOptions {
  ResolverChoice resolver;
  // Load the exec-denial unit where the kernel runs BPF LSM programs.
  bool exec_lsm = true;
  // Hash (sha256) each file not yet cached at bprm_check (reads it whole).
  bool exe_sha256 = true;
  // Larger files are not hashed (the exec waits for the hash).
  uint64_t exe_sha256_max_bytes = 256ull << 20;
  // Maximum pinned content hashes all loaded policies may name, per
  // generation.
  uint32_t max_policy_hashes = 65536;
  // Paths to treat as refused by the kernel (testing the fallbacks).
  std::vector<ResolverPath> refuse;
  uint32_t ring_buffer_bytes = 16u << 20;
  uint32_t cache_entries = 16384;
  uint32_t pending_entries = 4096;
  uint64_t cache_min_age_ns = 2'000'000'000;
  // Distinct build IDs all loaded policies may name, per generation (two
  // generations are held during a reload).
  uint32_t max_policy_ids = 262144;
  // Wake the agent only when this many bytes are pending (0: every record);
  // Poll() drains on its timeout regardless.
  uint64_t wakeup_bytes = 256 * 1024;
};

// What the running kernel's BTF lists, read before load. Whether a path
// works is decided by loading it, not by these.
struct KernelFeatures {
  bool btf = false;
  bool task_work_impl = false;      // bpf_task_work_schedule_resume_impl
  bool task_work_implicit = false;  // bpf_task_work_schedule_resume
  bool send_signal_task = false;    // bpf_send_signal_task kfunc
  std::string release;
};

absl::StatusOr<KernelFeatures> ProbeKernel();

// Checks privileges and BTF; the error says what is missing and how to fix.
absl::Status CheckPrerequisites();

// A request to the resolver iterator: build IDs of ELF images mapped at
// the given addresses (0 = the main executable via its auxv).
struct ResolveItem {
  uint64_t addr = 0;
  uint64_t size = 0;
  FileKey key;
};

class BpfLoader {
 public:
  using RecordCallback = std::function<void(absl::Span<const uint8_t>)>;

  static absl::StatusOr<std::unique_ptr<BpfLoader>> Create(
      const BpfOptions& options, RecordCallback on_record);
  ~BpfLoader();
  BpfLoader(const BpfLoader&) = delete;
  BpfLoader& operator=(const BpfLoader&) = delete;

  // Attaches the cgroup, exec, fork and exit programs.
  absl::Status Attach();
  // Detaches them (no new records); the ring buffer can still be drained.
  void Detach();

  // Waits up to timeout_ms for ring-buffer records and delivers them to the
  // callback; with batched wakeups, drains what is pending when the wait
  // ends without one. Returns the number of records consumed.
  absl::StatusOr<int> Poll(int timeout_ms);

  // Drains what is already in the ring buffer, without waiting.
  absl::StatusOr<int> Drain();

  // Updates CLOCK_REALTIME - CLOCK_BOOTTIME for the cache's age check.
  void RefreshClockOffset();

  // Snapshot iterators: raw records, concatenated.
  absl::StatusOr<std::vector<uint8_t>> RunSnapshotTasks();
  absl::StatusOr<std::vector<uint8_t>> RunSnapshotObjects();

  // Runs the resolver for one process. source is the em_bid_source the
  // results are stamped with (snapshot or iterator).
  absl::StatusOr<std::vector<uint8_t>> Resolve(
      uint32_t pid, absl::Span<const ResolveItem> items, BuildIdSource source);

  // Makes a compiled policy set the active generation: writes it beside
  // the current one, flips em_active_gen, then frees the generation before
  // the current one (no exec is ever judged against a half-loaded set).
  // Returns the new generation.
  // `scopes` (cgroup id -> governing-policy mask, for pods' cgroups) are
  // written with the generation, before the flip.
  absl::StatusOr<uint32_t> LoadPolicies(
      const CompiledPolicies& policies,
      const std::vector<std::pair<uint64_t, uint64_t>>& scopes = {});
  // Sets (mask given) or clears (nullopt) pod scopes of the active
  // generation, e.g. when a pod or a container cgroup appears.
  absl::Status SetScopes(
      const std::vector<std::pair<uint64_t, uint64_t>>& scopes);
  void ClearScope(uint64_t cgroup_id);
  uint32_t policy_generation() const { return active_gen_; }

  // Judges every running process against the active policies (killing
  // where they say so); returns the violators' records.
  absl::StatusOr<std::vector<uint8_t>> RunSweep();

  // Kernel-side counters (enum em_stat order), summed over CPUs.
  absl::StatusOr<std::vector<uint64_t>> ReadStats() const;

  // Turns on kernel BPF run-time accounting (BPF_ENABLE_STATS) for as long
  // as the loader lives.
  absl::Status EnableProgramStats();
  struct ProgramStats {
    std::string name;
    uint64_t run_time_ns = 0;
    uint64_t run_count = 0;
  };
  std::vector<ProgramStats> ReadProgramStats() const;

  // Entries currently in the build-ID cache (walks the map; for metrics).
  absl::StatusOr<uint64_t> CacheEntries() const;

  const KernelFeatures& features() const { return features_; }
  // Every path, loaded or not, in chain order.
  const std::vector<PathStatus>& paths() const { return paths_; }
  bool path_loaded(ResolverPath path) const;
  // The loaded paths in chain order, e.g. "page_cache,task_work,iterator".
  std::string chain() const;
  // Whether a first-seen binary is judged before its first instruction
  // when its pages are resident (page_cache or task_work loaded).
  bool judges_at_exec() const;
  // The first loaded path: page_cache, task_work, iterator, or "none".
  std::string first_seen_path() const;
  const ExecLsmStatus& exec_lsm() const { return lsm_status_; }
  // The last error bpf_task_work_schedule_resume returned (0: none yet, or
  // no task_work unit).
  int task_work_last_error() const;

 private:
  BpfLoader() = default;
  absl::StatusOr<std::vector<uint8_t>> RunIterator(::bpf_program* prog,
                                                   uint32_t tid);
  // Opens, wires to the core's maps and loads one optional unit.
  absl::Status LoadUnit(ResolverPath path, const BpfOptions& options);
  absl::Status CalibratePageCache();
  void UnloadUnit(ResolverPath path);
  ::bpf_object* UnitObject(ResolverPath path) const;
  absl::Status ShareCoreMaps(::bpf_object* unit);
  // Loads, attaches and probes the exec-denial unit.
  absl::Status LoadExecLsm(const BpfOptions& options);
  void UnloadExecLsm();

  execmon_bpf* skel_ = nullptr;
  execmon_pc_bpf* pc_ = nullptr;
  execmon_tw_bpf* tw_ = nullptr;    // task_work, the _impl kfunc (6.18)
  execmon_tw2_bpf* tw2_ = nullptr;  // task_work, implicit-argument kfunc
  ::bpf_object* tw_obj_ = nullptr;  // whichever of the two is loaded
  ::bpf_program* tw_exec_ = nullptr;
  ::bpf_program* tw_exit_ = nullptr;
  execmon_iter_bpf* iter_ = nullptr;
  execmon_lsm_bpf* lsm_ = nullptr;
  ::bpf_link* lsm_link_ = nullptr;
  ExecLsmStatus lsm_status_;
  em_globals* globals_ = nullptr;  // mmap of em_globals
  std::vector<PathStatus> paths_;
  ring_buffer* ring_ = nullptr;
  std::vector<::bpf_link*> links_;
  RecordCallback on_record_;
  KernelFeatures features_;
  int ncpus_ = 1;
  uint32_t active_gen_ = 0;
  int stats_fd_ = -1;
  uint32_t max_policy_ids_ = 0;
  uint32_t max_policy_hashes_ = 0;
  // Keys written per generation, to free a generation without a map walk.
  std::vector<std::pair<uint32_t, std::vector<em_policy_key>>> gen_keys_;
  absl::Status WriteScopes(
      uint32_t gen, const std::vector<std::pair<uint64_t, uint64_t>>& scopes);
};

}  // namespace execmon

#endif  // EXECMON_AGENT_BPF_BPF_LOADER_H_
