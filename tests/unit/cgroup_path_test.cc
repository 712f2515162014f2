#include "agent/container/cgroup_path.h"

#include <string>

#include "gtest/gtest.h"

namespace execmon {
namespace {

const std::string kId(64, 'a');
const std::string kId2 = std::string(63, 'b') + "1";
const char kUid[] = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const char kUidSystemd[] = "5f0c1a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b";

struct Case {
  const char* name;
  std::string path;
  const char* runtime;
  std::string id;
  const char* pod_uid;
  const char* qos;
};

class CgroupPathTest : public testing::TestWithParam<Case> {};

TEST_P(CgroupPathTest, Parses) {
  const Case& c = GetParam();
  ContainerRef r = ParseCgroupPath(c.path);
  EXPECT_EQ(r.runtime, c.runtime);
  EXPECT_EQ(r.container_id, c.id);
  EXPECT_EQ(r.pod_uid, c.pod_uid);
  EXPECT_EQ(r.qos, c.qos);
  EXPECT_EQ(r.in_container(), !c.id.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CgroupPathTest,
    testing::Values(
        Case{"ContainerdSystemdBestEffort",
             std::string("/kubepods.slice/kubepods-besteffort.slice/"
                         "kubepods-besteffort-pod") +
                 kUidSystemd + ".slice/cri-containerd-" + kId + ".scope",
             "containerd", kId, kUid, "besteffort"},
        Case{"ContainerdSystemdBurstable",
             std::string("/kubepods.slice/kubepods-burstable.slice/"
                         "kubepods-burstable-pod") +
                 kUidSystemd + ".slice/cri-containerd-" + kId + ".scope",
             "containerd", kId, kUid, "burstable"},
        Case{"ContainerdSystemdGuaranteed",
             std::string("/kubepods.slice/kubepods-pod") + kUidSystemd +
                 ".slice/cri-containerd-" + kId + ".scope",
             "containerd", kId, kUid, "guaranteed"},
        Case{"CrioSystemd",
             std::string("/kubepods.slice/kubepods-burstable.slice/"
                         "kubepods-burstable-pod") +
                 kUidSystemd + ".slice/crio-" + kId + ".scope",
             "cri-o", kId, kUid, "burstable"},
        Case{"CrioConmonIsNotTheContainer",
             std::string("/kubepods.slice/kubepods-burstable.slice/"
                         "kubepods-burstable-pod") +
                 kUidSystemd + ".slice/crio-conmon-" + kId + ".scope",
             "", "", "", ""},
        Case{"KubeletCgroupfsBestEffort",
             std::string("/kubepods/besteffort/pod") + kUid + "/" + kId, "",
             kId, kUid, "besteffort"},
        Case{"KubeletCgroupfsGuaranteed",
             std::string("/kubepods/pod") + kUid + "/" + kId, "", kId, kUid,
             "guaranteed"},
        Case{"DockerSystemd", "/system.slice/docker-" + kId + ".scope",
             "docker", kId, "", ""},
        Case{"DockerCgroupfs", "/docker/" + kId, "docker", kId, "", ""},
        Case{"PodmanRootfulSystemdWithContainerSubgroup",
             "/machine.slice/libpod-" + kId + ".scope/container", "podman", kId,
             "", ""},
        Case{
            "PodmanRootless",
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" +
                kId + ".scope",
            "podman", kId, "", ""},
        Case{"PodmanCgroupfs", "/libpod_parent/libpod-" + kId, "podman", kId,
             "", ""},
        Case{"PodmanConmonIsNotTheContainer",
             "/machine.slice/libpod-conmon-" + kId + ".scope", "", "", "", ""},
        Case{"NestedKindInnermostWins",
             "/system.slice/docker-" + kId +
                 ".scope/kubelet.slice/kubelet-kubepods.slice/"
                 "kubelet-kubepods-besteffort.slice/"
                 "kubelet-kubepods-besteffort-pod" +
                 kUidSystemd + ".slice/cri-containerd-" + kId2 + ".scope",
             "containerd", kId2, kUid, "besteffort"},
        Case{"HostRoot", "/", "", "", "", ""},
        Case{"HostService", "/system.slice/docker.service", "", "", "", ""},
        Case{"HostUserSession", "/user.slice/user-0.slice/session-3.scope", "",
             "", "", ""},
        Case{"PodSliceNamesThePod",
             std::string("/kubepods.slice/kubepods-pod") + kUidSystemd +
                 ".slice",
             "", "", kUid, "guaranteed"},
        Case{"PodDirCgroupfsNamesThePod",
             std::string("/kubepods/burstable/pod") + kUid, "", "", kUid,
             "burstable"},
        Case{"QosSliceIsNotAPod", "/kubepods.slice/kubepods-besteffort.slice",
             "", "", "", ""},
        Case{"ShortIdIsNotAContainer", "/system.slice/docker-abc123.scope", "",
             "", "", ""},
        Case{"UppercaseIdIsNotAContainer",
             "/system.slice/docker-" + std::string(64, 'A') + ".scope", "", "",
             "", ""},
        Case{"BareHexUnderUnknownParentIsNotAContainer", "/mystuff/" + kId, "",
             "", "", ""}),
    [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace execmon
