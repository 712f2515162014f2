#include "agent/container/cgroup_path.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace execmon {
namespace {

bool IsContainerId(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return false;
  }
  return true;
}

// "<prefix><64 hex>.scope" (systemd driver) or "<prefix><64 hex>"
// (cgroupfs driver) -> the id.
bool TakeId(absl::string_view comp, absl::string_view prefix, std::string* id) {
  if (!absl::ConsumePrefix(&comp, prefix)) return false;
  absl::ConsumeSuffix(&comp, ".scope");
  if (!IsContainerId(comp)) return false;
  *id = std::string(comp);
  return true;
}

struct Prefix {
  const char* prefix;
  const char* runtime;
};

// Scope names of container processes. The runtimes' monitor processes
// (crio-conmon-<id>, libpod-conmon-<id>) are not the container.
constexpr Prefix kScopes[] = {
    {"cri-containerd-", "containerd"},
    {"crio-", "cri-o"},
    {"docker-", "docker"},
    {"libpod-", "podman"},
};

// The pod's UID from a pod cgroup name: "kubepods-besteffort-pod<uid>.slice"
// (systemd: '-' in the UID written as '_'), "kubepods-pod<uid>.slice"
// (guaranteed QoS), or "pod<uid>" (cgroupfs).
bool TakePodUid(absl::string_view comp, std::string* uid) {
  size_t at = comp.rfind("pod");
  if (at == absl::string_view::npos) return false;
  absl::string_view rest = comp.substr(at + 3);
  bool systemd = absl::ConsumeSuffix(&rest, ".slice");
  if (systemd && !absl::StrContains(comp, "kubepods")) return false;
  if (!systemd && at != 0) return false;
  if (rest.size() != 36) return false;
  std::string out =
      systemd ? absl::StrReplaceAll(rest, {{"_", "-"}}) : std::string(rest);
  for (size_t i = 0; i < out.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? out[i] != '-' : !absl::ascii_isxdigit(out[i])) return false;
  }
  *uid = absl::AsciiStrToLower(out);
  return true;
}

std::string QosOf(absl::string_view comp) {
  for (const char* q : {"besteffort", "burstable"}) {
    if (absl::StrContains(comp, q)) return q;
  }
  return "";
}

}  // namespace

ContainerRef ParseCgroupPath(absl::string_view path) {
  std::vector<absl::string_view> comps =
      absl::StrSplit(path, '/', absl::SkipEmpty());
  ContainerRef ref;
  // Innermost container first.
  int at = -1;
  for (int i = static_cast<int>(comps.size()) - 1; i >= 0 && at < 0; --i) {
    absl::string_view c = comps[i];
    if (absl::StrContains(c, "-conmon-")) continue;
    for (const Prefix& p : kScopes) {
      if (TakeId(c, p.prefix, &ref.container_id)) {
        ref.runtime = p.runtime;
        at = i;
        break;
      }
    }
    if (at >= 0) break;
    // cgroupfs drivers: a bare 64-hex directory under a known parent.
    if (IsContainerId(c) && i > 0) {
      absl::string_view parent = comps[i - 1];
      if (parent == "docker") {
        ref.runtime = "docker";
      } else if (absl::StartsWith(parent, "pod") ||
                 absl::StartsWith(parent, "kubepods")) {
        ref.runtime = "";  // cgroupfs kubelet: the runtime is not in the path
      } else if (parent == "libpod_parent") {
        ref.runtime = "podman";
      } else {
        continue;
      }
      ref.container_id = std::string(c);
      at = i;
    }
  }
  if (at < 0) {
    // Not a container, but maybe a pod's own cgroup (the parent of its
    // containers'): it names the pod.
    ContainerRef pod;
    if (!comps.empty() && TakePodUid(comps.back(), &pod.pod_uid)) {
      pod.qos = QosOf(comps.back());
      if (pod.qos.empty() && comps.size() > 1)
        pod.qos = QosOf(comps[comps.size() - 2]);
      if (pod.qos.empty()) pod.qos = "guaranteed";
    }
    return pod;
  }
  // The pod (if any) is an ancestor of the container's cgroup.
  for (int i = at - 1; i >= 0; --i) {
    if (TakePodUid(comps[i], &ref.pod_uid)) {
      ref.qos = QosOf(comps[i]);
      if (ref.qos.empty() && i > 0) ref.qos = QosOf(comps[i - 1]);
      if (ref.qos.empty()) ref.qos = "guaranteed";
      break;
    }
  }
  return ref;
}

}  // namespace execmon
