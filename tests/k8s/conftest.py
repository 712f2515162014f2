"""Fixtures: one etcd + kube-apiserver for the session, and the probe (a
PodWatcher in a process, build/bin/k8s_pod_watcher_probe) per test."""
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import k8s_cluster  # noqa: E402
from k8s_cluster import (AGENT_TOKEN, Api, ApiServer, Etcd, Pki,  # noqa: E402
                     kube_apiserver_binary, wait_for, write_kubeconfig)

BUILD = Path(os.environ.get("EXECMON_BUILD_DIR", k8s_cluster.REPO / "build")).resolve()
PROBE = BUILD / "bin" / "k8s_pod_watcher_probe"


class Probe:
    """A running pod watcher answering commands, one JSON line each."""

    def __init__(self, tmp_path, kubeconfig, node, *flags):
        self.log = tmp_path / f"probe-{node}.log"
        self._log_f = open(self.log, "w")
        self.proc = subprocess.Popen(
            [str(PROBE), f"--kubeconfig={kubeconfig}", f"--node={node}", *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_f,
            text=True, bufsize=1)
        self._buf = ""
        first = self._read_line(15)
        assert first.get("cmd") == "started", (first, self.stderr())

    def stderr(self):
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while "\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"probe: no answer in {timeout}s\n{self.stderr()}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536).decode()
                if not chunk:
                    raise RuntimeError(f"probe exited "
                                       f"({self.proc.poll()}):\n{self.stderr()}")
                self._buf += chunk
        line, self._buf = self._buf.split("\n", 1)
        return json.loads(line)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self, timeout=15):
        return self._read_line(timeout)

    def cmd(self, line, timeout=15):
        self.send(line)
        return self._read_line(timeout)

    def state(self):
        return self.cmd("state")

    def pods(self):
        return {p["name"]: p for p in self.state()["pods"]}

    def wait_state(self, pred, timeout=20, what="probe state"):
        """Polls `state` until pred(state) is truthy; returns that state."""
        box = {}

        def check():
            s = self.state()
            box["last"] = s
            return s if pred(s) else None
        try:
            return wait_for(check, timeout, interval=0.1, what=what)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\nlast state: {json.dumps(box.get('last'))[:3000]}"
                               f"\nprobe log:\n{self.stderr()}") from None

    def stop(self):
        if self.proc.poll() is None:
            try:
                ans = self.cmd("stop", timeout=10)
            except (TimeoutError, RuntimeError, BrokenPipeError, OSError):
                ans = None
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        else:
            ans = None
        self._log_f.close()
        return ans


class ControlPlane:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.etcd = None
        self.apiserver = None

    def start(self):
        self.binary = kube_apiserver_binary()
        self.pki = Pki(self.workdir / "pki")
        self.etcd = Etcd(self.workdir)
        self.apiserver = ApiServer(self.binary, self.workdir, self.pki, self.etcd)
        self.apiserver.start()
        self.api = Api(self.apiserver)
        self.api.grant_agent_rbac()
        self.api.ensure_namespace("execmon-test")
        self.api.ensure_namespace("other")

    def kubeconfig(self, path, user=None, ca_inline=False, server=None):
        return write_kubeconfig(path, server or self.apiserver, self.pki,
                                user or {"token": AGENT_TOKEN}, ca_inline)

    def ensure_up(self):
        """A test that stopped the apiserver must not break the next one."""
        if self.apiserver.proc is None or not self.apiserver.proc.alive():
            self.apiserver.stop()
            self.apiserver.start()

    def stop(self):
        if self.apiserver is not None:
            self.apiserver.stop()
        if self.etcd is not None:
            self.etcd.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    if not PROBE.is_file():
        pytest.fail(f"{PROBE} is missing: build first (scripts/build.sh)")
    cp = ControlPlane(tmp_path_factory.mktemp("k8s"))
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()  # whatever did start


@pytest.fixture
def cp(control_plane):
    control_plane.ensure_up()
    yield control_plane
    control_plane.ensure_up()


@pytest.fixture
def probes(tmp_path):
    """Starts probes; every one is stopped at teardown."""
    started = []

    def start(kubeconfig, node, *flags):
        p = Probe(tmp_path, kubeconfig, node, *flags)
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()
