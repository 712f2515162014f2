// Renders events as JSON lines (the contract in docs/events.md). One
// writer per agent; not thread-safe. Events are rendered into one buffer
// that the writer reuses: a rendered event is valid until the next call.
#ifndef EXECMON_AGENT_EVENT_JSON_WRITER_H_
#define EXECMON_AGENT_EVENT_JSON_WRITER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/container/cgroup_path.h"
#include "agent/container/pod_meta.h"
#include "agent/event/event.h"
#include "agent/process/process_table.h"
#include "rapidjson/stringbuffer.h"

namespace execmon {

inline constexpr int kSchemaVersion = 1;

// Where a process runs, as events show it ("container" and "pod").
struct WorkloadView {
  const ContainerRef* container = nullptr;  // null or !in_container(): host
  // Pod metadata from the Kubernetes API, when known.
  const PodMeta* pod = nullptr;
};

// A verdict as events show it ("verdict" object, docs/events.md).
struct VerdictView {
  const char* decision = "unknown";  // allow | deny | unknown | pending
  const char* action = "none";       // none | alert | kill
  std::string policy;                // empty: null
  std::string rule;                  // empty: null
  const char* mode = nullptr;        // audit | enforce; null without policy
  bool protected_process = false;    // a kill downgraded (pid 1, the agent)
};

// A build ID's Debian package, from the loaded build-ID indexes
// (docs/index.md): `process.package` and each snapshot object's `package`.
struct PackageView {
  absl::string_view name, version, arch, source;
};
// Fills *out and returns true when the build ID (raw bytes) is indexed.
using PackageLookup =
    std::function<bool(absl::string_view build_id, PackageView* out)>;

class JsonWriter {
 public:
  explicit JsonWriter(std::string node) : node_(std::move(node)) {}

  // CLOCK_REALTIME - CLOCK_BOOTTIME, to turn kernel times into wall time.
  void set_boot_to_real_ns(int64_t v) { boot_to_real_ns_ = v; }
  int64_t boot_to_real_ns() const { return boot_to_real_ns_; }

  void set_cluster(std::string cluster) { cluster_ = std::move(cluster); }
  // Where `package` objects come from; unset: events carry none.
  void set_package_lookup(PackageLookup f) { package_lookup_ = std::move(f); }

  // Each returns the event's JSON document (one line, no newline), valid
  // until the next call on this writer.
  absl::string_view Exec(const ExecEvent& e, const ProcessInfo& self,
                         const ProcessInfo* parent,
                         const VerdictView* verdict = nullptr,
                         const WorkloadView* workload = nullptr);
  // A running process the policy sweep found violating (type "sweep").
  absl::string_view Sweep(const SweepRecord& r, const ProcessInfo* self,
                          const VerdictView& verdict,
                          const WorkloadView* workload = nullptr);
  absl::string_view Exit(const ExitEvent& e, const ProcessInfo* self,
                         const WorkloadView* workload = nullptr);
  absl::string_view Snapshot(const SnapTask& t, const ProcessInfo& self,
                             const SnapObject* exe,
                             const std::vector<const SnapObject*>& objects,
                             const WorkloadView* workload = nullptr);

  // RFC 3339 UTC with nanoseconds, from a boot-clock time.
  std::string WallTime(uint64_t boot_ns) const;

 private:
  // "YYYY-MM-DDTHH:MM:SS" (longer for years past 9999), '.', 9 digits, 'Z'.
  using TimeText = std::array<char, 48>;
  struct SecondText {
    bool valid = false;
    int64_t sec = 0;
    size_t len = 0;
    char text[36];
  };
  // WallTime into *out; returns the text (in *out).
  absl::string_view FormatWallTime(uint64_t boot_ns, TimeText* out) const;

  std::string node_;
  std::string cluster_;
  int64_t boot_to_real_ns_ = 0;
  PackageLookup package_lookup_;
  rapidjson::StringBuffer buf_;
  // The date and time of day of the last two seconds formatted.
  mutable std::array<SecondText, 2> seconds_;
  mutable int next_second_ = 0;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_EVENT_JSON_WRITER_H_
