"""The agent with a real kube-apiserver: pod metadata in events, label and
namespace selectors enforced in the kernel per pod cgroup, and the API
server going away and coming back. The pods' containers are simulated by
cgroups named as the kubelet's systemd driver names them (no kubelet here),
holding real processes."""
import importlib.util
import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from k8s_cluster import wait_for

_spec = importlib.util.spec_from_file_location(
    "e2e_harness", Path(__file__).resolve().parents[1] / "e2e" / "conftest.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

NS = "execmon-test"
MARKER_ID = "3a3a3a3a3a3a3a3a"


def cgroup2_root():
    for line in Path("/proc/self/mounts").read_text().splitlines():
        f = line.split()
        if f[2] == "cgroup2":
            return Path(f[1])
    pytest.skip("no cgroup v2 hierarchy")


class PodCgroups:
    """kubepods.slice/.../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope"""

    def __init__(self):
        self.made = []

    def make(self, pod_uid, container_id):
        root = cgroup2_root()
        pod = (root / "kubepods.slice" / "kubepods-besteffort.slice" /
               f"kubepods-besteffort-pod{pod_uid.replace('-', '_')}.slice")
        scope = pod / f"cri-containerd-{container_id}.scope"
        for d in (root / "kubepods.slice", pod.parent, pod, scope):
            if not d.exists():
                d.mkdir()
                self.made.append(d)
        return scope

    def cleanup(self):
        for d in reversed(self.made):
            try:
                d.rmdir()
            except OSError:
                pass


@pytest.fixture
def cgroups():
    c = PodCgroups()
    yield c
    c.cleanup()


def run_in(cg, *cmd):
    script = f'echo $$ > {cg}/cgroup.procs && exec "$@"'
    return e2e.run(["/bin/sh", "-c", script, "sh", *cmd])


def exec_of(agent, pid, comm, timeout=15):
    return agent.exec_event(pid, timeout=timeout, comm=comm)


def policy(name, selector, deny):
    return json.dumps({"apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
                       "metadata": {"name": name},
                       "spec": {"mode": "enforce", "action": "kill",
                                "selector": selector,
                                "deny": [{"buildId": deny, "note": name}]}})


@pytest.fixture
def setup(cp, tmp_path, cgroups):
    node = f"node-{secrets.token_hex(3)}"
    cp.api.create_node(node)
    pod_name = f"web-7d4b9c6f5-{secrets.token_hex(3)}"
    pod = cp.api.create_pod(NS, pod_name, node=node,
                            labels={"app": "web", "pod-template-hash": "7d4b9c6f5"},
                            owner=("ReplicaSet", "web-7d4b9c6f5"),
                            containers=("server",))
    uid = pod["metadata"]["uid"]
    cid = secrets.token_hex(32)
    cp.api.set_container_statuses(NS, pod_name, [("server", f"containerd://{cid}")])
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "web.yaml").write_text(policy(
        "no-marker-in-web", {"namespaces": [NS], "matchLabels": {"app": "web"}},
        MARKER_ID))
    kc = cp.kubeconfig(tmp_path / "kubeconfig")
    (tmp_path / "agent").mkdir()
    agent = e2e.Agent(tmp_path / "agent", "--kubernetes=on", f"--kubeconfig={kc}",
                      f"--node={node}", "--cluster=test-cluster",
                      f"--policies={pol}", "--pod_wait=1s", "--snapshot=false")
    try:
        yield {"node": node, "uid": uid, "cid": cid, "agent": agent, "pol": pol,
               "pod_name": pod_name}
    finally:
        rc = agent.stop()
        assert rc == 0, agent.log()


def test_pod_metadata_and_label_scoped_kill(setup, cp, cgroups, tmp_path):
    s = setup
    agent = s["agent"]
    scope = cgroups.make(s["uid"], s["cid"])
    pid, r = run_in(scope, e2e.BIN / "hello_pie8", "in-pod")
    assert r.returncode == 0
    e = exec_of(agent, pid, "hello_pie8")
    assert e["cluster"] == "test-cluster" and e["node"] == s["node"]
    assert e["container"] == {"id": s["cid"], "runtime": "containerd", "name": "server",
                              "image": "registry.test/server:1.0",
                              "image_id": "registry.test/server@sha256:" + "ab" * 32}
    pod = e["pod"]
    assert pod["enriched"] is True
    assert pod["uid"] == s["uid"] and pod["qos"] == "besteffort"
    assert pod["namespace"] == NS and pod["name"] == s["pod_name"]
    assert pod["labels"] == {"app": "web", "pod-template-hash": "7d4b9c6f5"}
    assert pod["workload"] == "web" and pod["workload_kind"] == "Deployment"
    assert e["verdict"]["decision"] == "allow"
    # The label-selected policy kills in this pod, before the first
    # instruction: the marker file is never created.
    flag = tmp_path / "created-in-pod"
    pid, r = run_in(scope, e2e.BIN / "marker", flag)
    assert r.returncode == -9 and not flag.exists()
    v = exec_of(agent, pid, "marker")["verdict"]
    assert v["policy"] == "no-marker-in-web" and v["action"] == "kill"
    # On the host the same binary runs.
    pid, r = e2e.run([e2e.BIN / "marker", tmp_path / "on-host"])
    assert r.returncode == 0 and (tmp_path / "on-host").exists()
    # Relabel the pod: the policy no longer selects it (scopes refresh
    # within about a second).
    cp.api.patch_labels(NS, s["pod_name"], {"app": "api"})
    def marker_runs():
        f = tmp_path / f"created-{secrets.token_hex(2)}"
        _, r = run_in(scope, e2e.BIN / "marker", f)
        return r.returncode == 0 and f.exists()
    wait_for(marker_runs, timeout=10, interval=0.5, what="relabel to take effect")


def test_unknown_pod_is_sent_unenriched_after_the_wait(setup, cgroups):
    agent = setup["agent"]
    uid = "0f0f0f0f-1111-2222-3333-444444444444"
    scope = cgroups.make(uid, secrets.token_hex(32))
    script = f'echo $$ > {scope}/cgroup.procs && exec "$@"'
    # A process that lives on: its exec waits --pod_wait (1 s) for the pod.
    p = subprocess.Popen(["/bin/sh", "-c", script, "sh", str(e2e.BIN / "hello_pie8"),
                          "sleep", "5"])
    try:
        t0 = time.monotonic()
        e = exec_of(agent, p.pid, "hello_pie8")
        waited = time.monotonic() - t0
        assert 0.7 <= waited <= 4, waited
        assert e["pod"] == {"uid": uid, "qos": "besteffort", "enriched": False}
    finally:
        p.kill()
        p.wait()
    # A process that exits at once: its exec is released by its exit, and
    # comes first.
    pid, r = run_in(scope, e2e.BIN / "hello_pie8")
    assert r.returncode == 0
    agent.wait_for(lambda x: x["type"] == "exit" and x["process"]["pid"] == pid)
    types = [x["type"] for x in agent.events() if x["process"]["pid"] == pid]
    assert types.index("exit") > max(i for i, t in enumerate(types) if t == "exec")


def test_api_server_restart(setup, cp, cgroups):
    s = setup
    agent = s["agent"]
    cp.apiserver.stop()
    # Known pods stay known while the API is away.
    scope = cgroups.make(s["uid"], s["cid"])
    pid, r = run_in(scope, e2e.BIN / "hello_pie8")
    assert exec_of(agent, pid, "hello_pie8")["pod"]["enriched"] is True
    cp.apiserver.start()
    # A pod created after the restart is learned through the resumed watch.
    name2 = f"batch-{secrets.token_hex(3)}"
    pod2 = cp.api.create_pod(NS, name2, node=s["node"], labels={"app": "batch"},
                             containers=("job",))
    cid2 = secrets.token_hex(32)
    cp.api.set_container_statuses(NS, name2, [("job", f"containerd://{cid2}")])
    scope2 = cgroups.make(pod2["metadata"]["uid"], cid2)

    def enriched():
        pid, _ = run_in(scope2, e2e.BIN / "hello_pie8")
        e = exec_of(agent, pid, "hello_pie8")
        return e["pod"]["enriched"] and e["pod"]["name"] == name2
    wait_for(enriched, timeout=60, interval=1, what="pod created after restart")
