"""After test_node.py's node is torn down (its module fixtures end before
this module runs): nothing it started runs, and the host is as before."""
from pathlib import Path

import pytest

from node_cluster import kubepods_cgroups, processes_mentioning


@pytest.fixture
def after(host_state):
    if host_state["problems"] is None:
        pytest.skip("the node was not started in this session")
    return host_state


def test_teardown_reported_no_problem(after):
    assert after["problems"] == []


def test_host_settings_restored(after):
    """sysctls kubelet sets, /kubepods cgroups, iptables KUBE-* chains,
    directories kubelet and containerd would create."""
    assert after["before"].differences() == []
    assert not [d for d in kubepods_cgroups() if d not in after["before"].kubepods]


def test_no_process_or_mount_left(after):
    for d in (after["run_dir"], after["work"]):
        assert not processes_mentioning(str(d)), f"processes still use {d}"
        mounts = [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
                  if f" {d}/" in l or f" {d} " in l]
        assert not mounts, mounts
    if after["containerd"] is not None:
        assert after["containerd"].shim_pids() == []
    assert not Path("/run/netns", after["netns"] or "-").exists()
