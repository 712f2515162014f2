// Kubernetes metadata of a container's pod, as events carry it. Filled from
// the API server by the pod watcher (agent/k8s/), or from the cgroup path
// alone (uid only) when the API is not reachable.
#ifndef EXECMON_AGENT_CONTAINER_POD_META_H_
#define EXECMON_AGENT_CONTAINER_POD_META_H_

#include <string>
#include <utility>
#include <vector>

namespace execmon {

struct PodMeta {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // sorted by key
  std::vector<std::pair<std::string, std::string>> annotations;
  std::string workload;
  std::string workload_kind;
  // Of the container within the pod:
  std::string container_name;
  std::string image;
  std::string image_id;
  bool enriched = false;  // metadata came from the API server
};

}  // namespace execmon

#endif  // EXECMON_AGENT_CONTAINER_POD_META_H_
