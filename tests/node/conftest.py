"""Fixtures for tests/node: the tools and images (built once, cached), the
node (etcd, kube-apiserver, controller-manager, scheduler, containerd,
kubelet in a network namespace), the Kafka broker, and helm."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import node_cluster  # noqa: E402
from node_cluster import BUILD, REPO, Node, kube_binary  # noqa: E402

import kafka  # noqa: E402  (tests/e2e, on sys.path through node_cluster)

HERE = Path(__file__).resolve().parent
NEEDED = {
    "containerd": "containerd", "ctr": "containerd", "runc": "runc",
    "buildah": "buildah", "mmdebstrap": "mmdebstrap", "ip": "iproute2",
    "bpftool": "bpftool", "kcat": "kcat", "java": "default-jre-headless",
    "etcd": "etcd-server", "openssl": "openssl", "readelf": "binutils",
    "gcc": "gcc",
}


def _key_values(out):
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def prerequisites():
    """Everything that needs the outside network or a long build, done before
    the test enters the node's network namespace: helm, the Kubernetes
    binaries, the images, the broker's jars."""
    if os.geteuid() != 0:
        pytest.skip("tests/node runs a kubelet and containerd: needs root")
    missing = {t: p for t, p in NEEDED.items()
               if shutil.which(t) is None and not Path("/usr/sbin", t).exists()}
    if missing:
        pytest.fail(f"missing tools (scripts/install-deps.sh --test installs "
                    f"them): {missing}")
    recovered = node_cluster.recover_stale_runs()
    if recovered:
        print(f"\nrecovered from a killed earlier run: {recovered}")
    if not (node_cluster.CNI_BIN / "bridge").exists():
        pytest.fail("no CNI bridge plugin: install containernetworking-plugins")
    t = {}
    start = time.monotonic()
    for name in ("kube-apiserver", "kubelet", "kube-controller-manager",
                 "kube-scheduler"):
        kube_binary(name)
    t["kubernetes binaries"] = time.monotonic() - start
    start = time.monotonic()
    tools = _key_values(subprocess.run(
        ["bash", str(REPO / "tests" / "deploy" / "tools.sh")], check=True,
        stdout=subprocess.PIPE, text=True, timeout=1800).stdout)
    t["helm"] = time.monotonic() - start
    start = time.monotonic()
    log = BUILD / "node-images.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        r = subprocess.run(["bash", str(HERE / "images.sh")], stdout=subprocess.PIPE,
                           stderr=f, text=True, timeout=3600)
    if r.returncode != 0:
        pytest.fail(f"tests/node/images.sh failed (log {log}):\n"
                    f"{log.read_text()[-4000:]}")
    images = _key_values(r.stdout)
    t["images"] = time.monotonic() - start
    start = time.monotonic()
    jars = kafka.ensure_jars()
    t["kafka jars"] = time.monotonic() - start
    print(f"\nprerequisites (s): {json.dumps({k: round(v, 1) for k, v in t.items()})}")
    return {"helm": tools["EXECMON_HELM"], "images": images, "jars": jars}


@pytest.fixture(scope="session")
def host_state():
    """The host before the node: what teardown must give back, and what
    test_teardown.py checks after the node is gone."""
    return {"before": node_cluster.HostState(), "problems": None,
            "run_dir": None, "netns": None, "containerd": None}


@pytest.fixture(scope="module")
def node(prerequisites, host_state, tmp_path_factory):
    work = tmp_path_factory.mktemp("node")
    # Unix socket paths are short (108 bytes): containerd's live under /run.
    run_dir = Path(f"/run/execmon-node-{os.getpid()}")
    run_dir.mkdir(parents=True, exist_ok=True)
    n = Node(work, run_dir, prerequisites["images"], host=host_state["before"])
    host_state["run_dir"] = run_dir
    host_state["work"] = work
    problems = []
    try:
        try:
            n.start()
        finally:
            host_state["netns"] = n.netns.name if n.netns else None
            host_state["containerd"] = getattr(n, "containerd", None)
        print(f"\nnode up (s): {json.dumps({k: round(v, 1) for k, v in n.timings.items()})}")
        yield n
    finally:
        problems = n.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        # Not an exception in a finalizer (that would hide the tests'
        # results): test_teardown.py asserts it.
        host_state["problems"] = problems
        # Logs stay in the pytest temporary directory; the containerd
        # content store and snapshots (hundreds of MB) do not.
        shutil.rmtree(work / "containerd" / "root", ignore_errors=True)
        shutil.rmtree(work / "kubelet", ignore_errors=True)


@pytest.fixture(scope="module")
def broker(node, prerequisites, tmp_path_factory):
    """The e2e tests' real Kafka broker, on the node namespace's loopback."""
    b = kafka.KafkaBroker(tmp_path_factory.mktemp("kafka"), jars=prerequisites["jars"])
    node.parts.append((b, lambda x: x.stop()))
    b.start(timeout=120)
    return b


class Helm:
    def __init__(self, binary, kubeconfig, work):
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.work = work

    def run(self, *args, check=True, timeout=600):
        r = subprocess.run([self.binary, "--kubeconfig", str(self.kubeconfig), *args],
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, HELM_CACHE_HOME=str(self.work / "cache"),
                                    HELM_CONFIG_HOME=str(self.work / "config"),
                                    HELM_DATA_HOME=str(self.work / "data")))
        if check and r.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)}: exit {r.returncode}\n"
                               f"{r.stdout}{r.stderr}")
        return r


@pytest.fixture(scope="module")
def helm(node, prerequisites, tmp_path_factory):
    return Helm(prerequisites["helm"], node.admin_kubeconfig,
                tmp_path_factory.mktemp("helm"))
