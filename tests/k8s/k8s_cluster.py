"""A real Kubernetes control plane for tests: etcd + kube-apiserver.

etcd comes from Debian (/usr/bin/etcd, package etcd-server); kube-apiserver
is built once from its Go module by build_kube.sh (with kubelet,
kube-controller-manager and kube-scheduler, for tests/node) into
${EXECMON_TOOLS_CACHE:-~/.cache/execmon/tools}/kubernetes-<version>/. Everything listens on
127.0.0.1 only, on free ports, with data and certificates in a temporary
directory. Every wait is bounded; stop() always ends the processes.
"""
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KUBE_VERSION = os.environ.get("KUBE_VERSION", "v1.31.14")
TOOLS = Path(os.environ.get("EXECMON_TOOLS_CACHE",
                            Path.home() / ".cache" / "execmon" / "tools"))
# build_kube.sh's output directory.
KUBE_BIN = TOOLS / f"kubernetes-{KUBE_VERSION}"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"

ADMIN_TOKEN = "admin-token-0123456789"
AGENT_TOKEN = "agent-token-0123456789"
AGENT_TOKEN_2 = "agent-token-rotated-9876543210"
NOBODY_TOKEN = "nobody-token-0123456789"
AGENT_USER = "execmon-agent"
CERT_USER = "execmon-agent-cert"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, interval=0.1, what="condition"):
    """Polls pred() until it returns a truthy value; raises after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - report the last failure
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last!r}")


def kube_binary(name, build_timeout=2700):
    """The cached Kubernetes binary `name` (kube-apiserver, kubelet,
    kube-controller-manager, kube-scheduler), all of them built first in one
    `go build` if missing (build_kube.sh: minutes, once)."""
    binary = KUBE_BIN / name
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    env = dict(os.environ, EXECMON_TOOLS_CACHE=str(TOOLS), KUBE_VERSION=KUBE_VERSION)
    env["PATH"] = env.get("PATH", "") + ":/usr/local/go/bin"
    log = TOOLS / f"build-kubernetes-{KUBE_VERSION}.log"
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        r = subprocess.run([str(HERE / "build_kube.sh")], env=env,
                           stdout=subprocess.PIPE, stderr=f, text=True,
                           timeout=build_timeout)
    if r.returncode != 0 or not binary.is_file():
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"building Kubernetes {KUBE_VERSION} failed (log {log}):\n{tail}")
    return binary


def kube_apiserver_binary(build_timeout=2700):
    return kube_binary("kube-apiserver", build_timeout)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


class Pki:
    """A CA, a serving certificate for 127.0.0.1, a client CA with one client
    certificate, and the service account signing key pair."""

    def __init__(self, d: Path):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        o = lambda *a: _openssl(*a, cwd=d)  # noqa: E731
        o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=execmon-test-ca")
        (d / "serving.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth\n")
        o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key",
          "-out", "serving.csr", "-subj", "/CN=kube-apiserver")
        o("x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "2", "-extfile", "serving.ext",
          "-out", "serving.crt")
        o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-keyout", "client-ca.key", "-out", "client-ca.crt",
          "-subj", "/CN=execmon-test-client-ca")
        (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
          "-out", "client.csr", "-subj", f"/CN={CERT_USER}/O=execmon")
        o("x509", "-req", "-in", "client.csr", "-CA", "client-ca.crt",
          "-CAkey", "client-ca.key", "-CAcreateserial", "-days", "2",
          "-extfile", "client.ext", "-out", "client.crt")
        o("genrsa", "-out", "sa.key", "2048")
        o("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        (d / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n'
            f"{AGENT_TOKEN},{AGENT_USER},agent-uid\n"
            f"{AGENT_TOKEN_2},{AGENT_USER},agent-uid\n"
            f"{NOBODY_TOKEN},nobody,nobody-uid\n")

    def b64(self, name):
        return base64.b64encode((self.dir / name).read_bytes()).decode()


def _die_with_parent():
    """In the child: SIGKILL when the test process dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """A child process whose output goes to a log file; it cannot outlive
    the test run."""

    def __init__(self, name, argv, log: Path):
        self.name = name
        self.argv = argv
        self.log = log
        self._f = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._f.close()

    def tail(self, n=4000):
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Etcd:
    def __init__(self, workdir: Path):
        self.dir = workdir / "etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.proc = Process("etcd", [
            ETCD, "--name", "default", "--data-dir", str(self.dir / "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            "--log-level", "warn", "--logger", "zap",
        ], workdir / "etcd.log")
        try:
            wait_for(self._healthy, 30, what="etcd health")
        except BaseException:
            self.proc.stop()
            raise

    def _healthy(self):
        if not self.proc.alive():
            raise RuntimeError(f"etcd exited:\n{self.proc.tail()}")
        with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
            return json.load(r).get("health") == "true"

    def ctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        r = subprocess.run([ETCDCTL, "--endpoints", self.url, *args], env=env,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"etcdctl {args}: {r.stderr}")
        return r.stdout

    def revision(self):
        out = json.loads(self.ctl("endpoint", "status", "-w", "json"))
        return out[0]["Status"]["header"]["revision"]

    def compact(self):
        rev = self.revision()
        self.ctl("compact", str(rev), "--physical")
        return rev

    def stop(self):
        self.proc.stop()


class ApiServer:
    """kube-apiserver on 127.0.0.1:<port> with RBAC and token/x509 auth."""

    def __init__(self, binary, workdir: Path, pki: Pki, etcd: Etcd, name="apiserver",
                 port=None):
        self.binary = binary
        self.workdir = workdir
        self.pki = pki
        self.etcd = etcd
        self.name = name
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc = None
        self.ssl = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))

    def argv(self):
        """The command line; tests/node adjusts it for a full cluster."""
        p = self.pki.dir
        return [
            str(self.binary),
            f"--etcd-servers={self.etcd.url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={p / 'serving.crt'}",
            f"--tls-private-key-file={p / 'serving.key'}",
            f"--client-ca-file={p / 'client-ca.crt'}",
            f"--token-auth-file={p / 'tokens.csv'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            # Pods are created without service accounts (no token controller
            # runs here).
            "--disable-admission-plugins=ServiceAccount",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.workdir / (self.name + '-certs')}",
            "--profiling=false",
            # On SIGTERM, end open watches (as a rolling restart does)
            # instead of holding them until the process dies.
            "--shutdown-watch-termination-grace-period=2s",
            "--enable-priority-and-fairness=false",
            "--v=1",
        ]

    def start(self, timeout=90):
        argv = self.argv()
        self.proc = Process(self.name, argv, self.workdir / f"{self.name}.log")
        try:
            wait_for(self._ready, timeout, interval=0.25, what=f"{self.name} /readyz")
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if not self.proc.alive():
            raise RuntimeError(f"{self.name} exited:\n{self.proc.tail()}")
        code, _ = self.request("GET", "/readyz", check=False, timeout=3)
        return code == 200

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def request(self, method, path, body=None, content_type="application/json",
                token=ADMIN_TOKEN, check=True, timeout=15):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=timeout) as r:
                code, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            code, text = e.code, e.read().decode(errors="replace")
        if check and not 200 <= code < 300:
            raise RuntimeError(f"{method} {path}: HTTP {code}: {text[:2000]}")
        try:
            return code, json.loads(text) if text else None
        except json.JSONDecodeError:
            return code, text


class Api:
    """The few API calls the tests make, through any apiserver."""

    def __init__(self, server: ApiServer):
        self.server = server

    def req(self, *a, **kw):
        return self.server.request(*a, **kw)[1]

    def ensure_namespace(self, ns):
        code, _ = self.server.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            check=False)
        assert code in (201, 409), code

    def create_node(self, name):
        code, body = self.server.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}},
            check=False)
        assert code in (201, 409), (code, body)

    def create_pod(self, ns, name, node=None, labels=None, owner=None,
                   containers=("app",), init_containers=(), annotations=None):
        meta = {"name": name, "namespace": ns, "labels": labels or {}}
        if annotations:
            meta["annotations"] = annotations
        if owner:
            kind, oname = owner
            api = "batch/v1" if kind == "Job" else "apps/v1"
            meta["ownerReferences"] = [{
                "apiVersion": api, "kind": kind, "name": oname,
                "uid": "00000000-0000-0000-0000-000000000001",
                "controller": True}]
        spec = {"containers": [{"name": c, "image": f"registry.test/{c}:1.0"}
                               for c in containers]}
        if init_containers:
            spec["initContainers"] = [{"name": c, "image": f"registry.test/{c}:1.0"}
                                      for c in init_containers]
        if node:
            spec["nodeName"] = node
        return self.req("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})

    def set_container_statuses(self, ns, name, statuses, init_statuses=()):
        """statuses: [(container name, container ID URI)]"""
        def entry(cname, cid):
            return {
                "name": cname, "containerID": cid, "ready": True,
                "restartCount": 0, "image": f"registry.test/{cname}:1.0",
                "imageID": f"registry.test/{cname}@sha256:" + "ab" * 32,
                "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
            }
        status = {"phase": "Running",
                  "containerStatuses": [entry(n, c) for n, c in statuses]}
        if init_statuses:
            status["initContainerStatuses"] = [
                dict(entry(n, c), ready=False, state={"terminated": {
                    "exitCode": 0, "reason": "Completed", "containerID": c,
                    "startedAt": "2024-01-01T00:00:00Z",
                    "finishedAt": "2024-01-01T00:00:01Z"}})
                for n, c in init_statuses]
        return self.req("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                        {"status": status},
                        content_type="application/merge-patch+json")

    def patch_labels(self, ns, name, labels):
        return self.req("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}",
                        {"metadata": {"labels": labels}},
                        content_type="application/merge-patch+json")

    def bind(self, ns, name, node):
        return self.req("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})

    def delete_pod(self, ns, name):
        return self.req("DELETE",
                        f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0")

    def grant_agent_rbac(self):
        """The ClusterRole docs/kubernetes.md documents, bound to the agent's
        token user and to the client-certificate user."""
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "execmon-agent"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            ]}
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "execmon-agent"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole", "name": "execmon-agent"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                 "name": AGENT_USER},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                 "name": CERT_USER},
            ]}
        for path, obj in (("clusterroles", role), ("clusterrolebindings", binding)):
            code, body = self.server.request(
                "POST", f"/apis/rbac.authorization.k8s.io/v1/{path}", obj,
                check=False)
            assert code in (201, 409), (code, body)


def write_kubeconfig(path: Path, server: ApiServer, pki: Pki, user_entry,
                     ca_inline=False):
    """A kubeconfig with one context; user_entry is the `user:` map."""
    cluster = {"server": server.url}
    if ca_inline:
        cluster["certificate-authority-data"] = pki.b64("ca.crt")
    else:
        cluster["certificate-authority"] = str(pki.dir / "ca.crt")
    # JSON is YAML: no YAML writer needed.
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "agent", "user": user_entry}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "agent",
                                                   "namespace": "default"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    return path
