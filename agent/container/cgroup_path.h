// What a cgroup path says about the container that runs in it: runtime,
// container ID, Kubernetes pod UID and QoS class. Pure: the layouts of
// containerd (CRI), CRI-O, Docker and podman under the systemd and cgroupfs
// cgroup drivers, on cgroup v2 and hybrid hosts (docs/containers.md).
#ifndef EXECMON_AGENT_CONTAINER_CGROUP_PATH_H_
#define EXECMON_AGENT_CONTAINER_CGROUP_PATH_H_

#include <string>

#include "absl/strings/string_view.h"

namespace execmon {

struct ContainerRef {
  std::string runtime;       // containerd, cri-o, docker, podman; "" if unknown
  std::string container_id;  // 64 lowercase hex; "" when not in a container
  std::string pod_uid;       // Kubernetes pod UID (dashed form); "" if none
  std::string qos;           // guaranteed, burstable, besteffort; "" if none

  bool in_container() const { return !container_id.empty(); }
  bool operator==(const ContainerRef&) const = default;
};

// Parses a cgroup path (as in /proc/PID/cgroup, or relative to the cgroup
// mount). The innermost container wins (nested runtimes, kind clusters).
// A pod's own cgroup (kubepods-...-pod<uid>.slice, pod<uid>) gives the pod
// UID and QoS with no container ID.
ContainerRef ParseCgroupPath(absl::string_view path);

}  // namespace execmon

#endif  // EXECMON_AGENT_CONTAINER_CGROUP_PATH_H_
