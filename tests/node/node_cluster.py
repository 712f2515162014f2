"""A real single-node Kubernetes cluster for tests/node.

Parts, all real:
  * etcd (Debian etcd-server) and kube-apiserver, as in tests/k8s, but with
    the ServiceAccount admission plugin on (the agent's pod mounts a bound
    service-account token) and --allow-privileged=true, as real clusters;
  * kube-controller-manager (DaemonSet, ServiceAccount, root-CA publisher,
    node lifecycle controllers...) and kube-scheduler, built with the
    apiserver by tests/k8s/build_kube.sh;
  * containerd (Debian's package) with runc, CNI from Debian's
    containernetworking-plugins (bridge + host-local) for workload pods;
  * kubelet (cgroupfs driver; this host's hybrid cgroup layout needs
    failCgroupV1: false);
  * the Kafka broker of the e2e tests (tests/e2e/kafka.py).

The node's address: kubelet refuses a loopback node IP, and the machine's own
interfaces must not get a private address. So the test creates a network
namespace with a veth pair inside it (node0 holds the node IP, its peer the
other end of the default route: nothing leaves the namespace), and the test
process itself enters that namespace (setns) before it starts anything: every
component, the broker, helm and kcat see the namespace's loopback and the
node IP only. Host-network pods (the agent) share it. kubelet's iptables
chains are made inside it and vanish with it.

kubelet also changes host-wide settings: kernel sysctls and the /kubepods
cgroups of every hierarchy; containerd leaves shims, mounts and its
/run/containerd/s sockets. HostState records them first and teardown puts
everything back (and checks that it did).
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = Path(os.environ.get("EXECMON_BUILD_DIR", REPO / "build")).resolve()
sys.path.insert(0, str(REPO / "tests" / "k8s"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from k8s_cluster import (ADMIN_TOKEN, Api, ApiServer, Etcd, Pki, Process,  # noqa: E402
                         free_port, kube_binary, wait_for, write_kubeconfig)

NODE_NAME = "execmon-node"
NODE_IP = "10.213.0.2"
NODE_PEER_IP = "10.213.0.1"
POD_SUBNET = "10.213.1.0/24"
CNI_BIN = Path("/usr/lib/cni")
CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"
RUNC = shutil.which("runc") or "/usr/sbin/runc"

# What kubelet's setupKernelTunables writes (pkg/kubelet/cm), and what the
# tests must restore.
KUBELET_SYSCTLS = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
                   "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
                   "kernel/keys/root_maxbytes"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CLONE_NEWNET = 0x40000000


def wait_until(pred, timeout, interval=0.5, what="condition"):
    """Like wait_for, but an exception from pred ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run(*argv, check=True, timeout=60, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: exit {r.returncode}\n"
                           f"{r.stdout}{r.stderr}")
    return r


def kubepods_cgroups():
    """Every kubepods cgroup directory of every hierarchy (v1 controllers and
    the unified one), as kubelet's cgroupfs driver makes them (the systemd
    driver's kubepods.slice is not this test's)."""
    found = []
    if not CGROUP_ROOT.is_dir():
        return found
    for h in sorted(CGROUP_ROOT.iterdir()):
        if (h / "kubepods").is_dir():
            found.append(h / "kubepods")
    if (CGROUP_ROOT / "kubepods").is_dir():  # a pure v2 host
        found.append(CGROUP_ROOT / "kubepods")
    return found


def remove_cgroup_tree(d: Path):
    """rmdir depth-first; a cgroup with live processes cannot go (reported)."""
    left = []
    for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError as e:
            left.append(f"{sub}: {e}")
    try:
        d.rmdir()
    except OSError as e:
        left.append(f"{d}: {e}")
    return left


def iptables_kube_chains():
    """KUBE-* chains of the calling network namespace (iptables, ip6tables)."""
    chains = set()
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool) is None:
            continue
        r = subprocess.run([tool], capture_output=True, text=True, timeout=30)
        chains |= {f"{tool}:{l.split()[0]}" for l in r.stdout.splitlines()
                   if l.startswith(":KUBE-")}
    return chains


def processes_mentioning(text):
    """pids whose command line contains text."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes():
                    out.append(int(p.name))
            except OSError:
                pass
    return out


class HostState:
    """Snapshot of what kubelet and containerd change on the host."""

    # kubelet 1.31 writes container logs under /var/log/pods (podLogsDirectory
    # comes with 1.32) and links them from /var/log/containers.
    WATCHED_DIRS = [Path("/var/log/containers"), Path("/var/log/pods"),
                    Path("/run/containerd"), Path("/var/lib/kubelet"),
                    Path("/etc/kubernetes"), Path("/var/lib/cni"),
                    Path("/usr/libexec/kubernetes"), Path("/etc/cni"),
                    Path("/opt/cni")]

    def __init__(self):
        self.sysctls = {k: Path("/proc/sys", k).read_text()
                        for k in KUBELET_SYSCTLS if Path("/proc/sys", k).exists()}
        self.dirs = {d: d.exists() for d in self.WATCHED_DIRS}
        self.dir_entries = {d: set(os.listdir(d)) for d in self.WATCHED_DIRS
                            if d.is_dir()}
        self.saved = None
        self.kubepods = kubepods_cgroups()
        self.iptables = iptables_kube_chains()

    def save(self, run_dir: Path, work: Path):
        """Written where recover_stale_runs() finds it if this run is killed."""
        self.saved = run_dir / "host-state.json"
        self.saved.write_text(json.dumps({
            "sysctls": self.sysctls, "work": [str(work)],
            "kubepods_before": [str(p) for p in self.kubepods]}))

    def restore(self):
        """Puts back what changed; returns what could not be restored."""
        problems = []
        for k, v in self.sysctls.items():
            p = Path("/proc/sys", k)
            if p.read_text() != v:
                try:
                    p.write_text(v)
                except OSError as e:
                    problems.append(f"sysctl {k}: {e}")
        for d in kubepods_cgroups():
            if d not in self.kubepods:
                problems += remove_cgroup_tree(d)
        for d, existed in self.dirs.items():
            if not existed and d.exists():
                shutil.rmtree(d, ignore_errors=True)
            elif existed and d.is_dir():
                for name in set(os.listdir(d)) - self.dir_entries.get(d, set()):
                    p = d / name
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
        return problems

    def differences(self):
        """What is still different from the snapshot (for the final check)."""
        diff = []
        for k, v in self.sysctls.items():
            now = Path("/proc/sys", k).read_text()
            if now != v:
                diff.append(f"sysctl {k}: {v.strip()} -> {now.strip()}")
        for d in kubepods_cgroups():
            if d not in self.kubepods:
                diff.append(f"cgroup {d} left")
        for d, existed in self.dirs.items():
            if d.exists() != existed:
                diff.append(f"{d} {'created' if d.exists() else 'removed'}")
        chains = iptables_kube_chains()
        if chains != self.iptables:
            diff.append(f"iptables KUBE-* chains: {sorted(self.iptables)} -> {sorted(chains)}")
        return diff


def _kill_all(pids, label="killed", done=None):
    """SIGKILLs each pid still there; notes each one killed in done."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
            if done is not None:
                done.append(f"{label} {p}")
        except ProcessLookupError:
            pass


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def recover_stale_runs():
    """Undoes what a killed earlier run (SIGKILL, CI timeout: no teardown)
    left: its shims and containers, mounts, network namespace, kubepods
    cgroups, and the sysctls it saved before kubelet changed them. A run is
    known by /run/execmon-node-<pid> with <pid> dead. Returns what it did."""
    done = []
    for d in sorted(Path("/run").glob("execmon-node-*")):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if _pid_alive(pid):
            continue
        _kill_all(processes_mentioning(str(d)), "killed", done)
        time.sleep(0.5)
        saved = d / "host-state.json"
        state = json.loads(saved.read_text()) if saved.exists() else {}
        roots = [str(d)] + state.get("work", [])
        mounts = [line.split()[4] for line in
                  Path("/proc/self/mountinfo").read_text().splitlines()]
        for mp in sorted((m for m in mounts if any(m.startswith(r + "/") for r in roots)),
                         key=len, reverse=True):
            run("umount", "-l", mp, check=False)
        for k, v in state.get("sysctls", {}).items():
            try:
                Path("/proc/sys", k).write_text(v)
            except OSError:
                pass
        if state and not state.get("kubepods_before"):
            # The run's containers outlive their killed shims (an agent
            # among them, BPF programs loaded): kill every process of the
            # kubepods trees, which were the run's own.
            pids = {int(p) for c in kubepods_cgroups() for procs in c.rglob("cgroup.procs")
                    for p in procs.read_text().split()}
            _kill_all(sorted(pids), "killed pod process", done)
            time.sleep(1)
            for c in kubepods_cgroups():
                remove_cgroup_tree(c)
        run("ip", "netns", "del", f"execmon-node-{pid}", check=False)
        shutil.rmtree(d, ignore_errors=True)
        done.append(f"recovered {d}")
    return done


class NetNs:
    """A network namespace with a veth pair inside it; the calling process
    (the test) enters it, and leaves it on close()."""

    def __init__(self, name):
        self.name = name
        self.path = Path("/run/netns") / name
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.host_fd = None
        run("ip", "netns", "add", name)
        try:
            ip = ["ip", "-n", name]
            run(*ip, "link", "set", "lo", "up")
            run(*ip, "link", "add", "node0", "type", "veth", "peer", "name", "node0-peer")
            run(*ip, "addr", "add", f"{NODE_IP}/24", "dev", "node0")
            run(*ip, "addr", "add", f"{NODE_PEER_IP}/24", "dev", "node0-peer")
            run(*ip, "link", "set", "node0", "up")
            run(*ip, "link", "set", "node0-peer", "up")
            # Components that look for "the" interface find node0; what
            # leaves through it arrives at node0-peer, in this namespace.
            run(*ip, "route", "add", "default", "dev", "node0")
            self.enter()
        except BaseException:
            self.close()
            raise

    def _setns(self, fd):
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns: {os.strerror(e)}")

    def enter(self):
        self.host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._setns(fd)
        finally:
            os.close(fd)

    def close(self):
        if self.host_fd is not None:
            self._setns(self.host_fd)
            os.close(self.host_fd)
            self.host_fd = None
        run("ip", "netns", "del", self.name, check=False)


class NodeApiServer(ApiServer):
    """tests/k8s's apiserver, configured as a cluster's: pods get service
    account tokens (ServiceAccount admission), privileged pods allowed."""

    def argv(self):
        argv = [a for a in super().argv()
                if a != "--disable-admission-plugins=ServiceAccount"]
        return argv + ["--allow-privileged=true"]


class Containerd:
    def __init__(self, work: Path, run_dir: Path, pause_image):
        self.dir = work / "containerd"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir / "containerd"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.address = str(self.run_dir / "containerd.sock")
        self.cni_conf = work / "cni" / "net.d"
        self.cni_conf.mkdir(parents=True, exist_ok=True)
        (self.cni_conf / "10-execmon-node.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "execmon-node",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": True,
                "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": POD_SUBNET}]],
                         "dataDir": str(work / "cni" / "ipam")}}]}, indent=1))
        self.config = self.dir / "config.toml"
        self.config.write_text(f"""version = 2
root = "{self.dir / 'root'}"
state = "{self.run_dir / 'state'}"
[grpc]
  address = "{self.address}"
[ttrpc]
  address = "{self.address}.ttrpc"
[debug]
  address = "{self.address}.debug"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # Without CAP_SYS_RESOURCE in the bounding set, the sandbox's
  # oom_score_adj -998 fails (runc: "can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{self.run_dir / 'runc'}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{self.cni_conf}"
""")
        self.proc = Process("containerd", [CONTAINERD, "--config", str(self.config),
                                           "--log-level", "info"],
                            work / "containerd.log")
        try:
            wait_for(self._ready, 30, interval=0.2, what="containerd")
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if not self.proc.alive():
            raise RuntimeError(f"containerd exited:\n{self.proc.tail()}")
        return self.ctr("version", check=False).returncode == 0

    def ctr(self, *args, check=True, timeout=120):
        return run(CTR, "--address", self.address, "-n", "k8s.io", *args,
                   check=check, timeout=timeout)

    def import_image(self, tar):
        self.ctr("images", "import", "--no-unpack=false", tar, timeout=600)

    def shim_pids(self):
        """containerd-shim processes serving this containerd (by socket)."""
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and b"containerd-shim" in cmd[0] and \
                    self.address.encode() in b" ".join(cmd):
                pids.append(int(p.name))
        return pids

    def remove_all(self):
        """Kills and deletes every task and container left (after kubelet)."""
        r = self.ctr("containers", "list", "-q", check=False)
        for cid in r.stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False, timeout=30)
        for cid in r.stdout.split():
            self.ctr("tasks", "delete", "-f", cid, check=False, timeout=30)
            self.ctr("containers", "delete", cid, check=False, timeout=30)

    def stop(self):
        self.proc.stop()
        _kill_all(self.shim_pids())


class Kubelet:
    def __init__(self, binary, work: Path, containerd: Containerd, kubeconfig: Path,
                 pause_image):
        self.root = work / "kubelet"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = work / "kubelet-config.json"
        self.config.write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host mounts cgroup v1 controllers with cgroup2 at
            # /sys/fs/cgroup/unified (hybrid): kubelet 1.31 refuses v1
            # unless told not to.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{containerd.address}",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": False},
                               "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "failSwapOn": False,
            "protectKernelDefaults": False,
            # ConfigMap volumes (the policies) follow the API within seconds.
            "syncFrequency": "10s",
            "configMapAndSecretChangeDetectionStrategy": "Watch",
            "nodeStatusUpdateFrequency": "5s",
            # The machine's disk is shared with other work: never evict.
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "volumePluginDir": str(work / "volume-plugins"),
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
        }, indent=1))
        self.proc = Process("kubelet", [
            str(binary), f"--config={self.config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.root}", f"--node-ip={NODE_IP}",
            f"--hostname-override={NODE_NAME}",
            f"--pod-infra-container-image={pause_image}",
            "--v=2",
        ], work / "kubelet.log")

    def stop(self):
        self.proc.stop(timeout=30)


class Node:
    """The whole node; start() brings it up, stop() takes everything down
    and returns what it could not restore."""

    def __init__(self, work: Path, run_dir: Path, images: dict, host=None):
        self.host = host
        self.work = work
        self.run_dir = run_dir
        self.images = images
        self.parts = []  # stopped in reverse order
        self.netns = None

    def _started(self, part, stop):
        self.parts.append((part, stop))
        return part

    def start(self):
        t0 = time.monotonic()
        self.timings = {}
        if self.host is None:
            self.host = HostState()
        self.host.save(self.run_dir, self.work)
        if kubepods_cgroups():
            raise RuntimeError(f"kubepods cgroups exist before the test "
                               f"(another kubelet?): {kubepods_cgroups()}")
        self.netns = NetNs(f"execmon-node-{os.getpid()}")
        self.pki = Pki(self.work / "pki")
        self.etcd = self._started(Etcd(self.work), lambda e: e.stop())
        self.apiserver = NodeApiServer(kube_binary("kube-apiserver"), self.work,
                                       self.pki, self.etcd)
        self.apiserver.start()
        self._started(self.apiserver, lambda a: a.stop())
        self.api = Api(self.apiserver)
        self.timings["control plane"] = time.monotonic() - t0
        self.admin_kubeconfig = write_kubeconfig(
            self.work / "admin.kubeconfig", self.apiserver, self.pki,
            {"token": ADMIN_TOKEN})
        kc = str(self.admin_kubeconfig)
        self.controller_manager = self._started(Process("kube-controller-manager", [
            str(kube_binary("kube-controller-manager")), f"--kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--leader-elect=false",
            f"--root-ca-file={self.pki.dir / 'ca.crt'}",
            f"--service-account-private-key-file={self.pki.dir / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam,-service,-route,-cloud-node-lifecycle",
            "--node-monitor-grace-period=40s",
            "--v=1",
        ], self.work / "kube-controller-manager.log"), lambda p: p.stop())
        self.scheduler = self._started(Process("kube-scheduler", [
            str(kube_binary("kube-scheduler")), f"--kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--leader-elect=false", "--v=1",
        ], self.work / "kube-scheduler.log"), lambda p: p.stop())

        t = time.monotonic()
        self.containerd = self._started(
            Containerd(self.work, self.run_dir, self.images["EXECMON_NODE_PAUSE_IMAGE"]),
            lambda c: c.stop())
        for key in ("EXECMON_NODE_PAUSE_TAR", "EXECMON_NODE_WORKLOAD_TAR",
                    "EXECMON_NODE_AGENT_TAR"):
            self.containerd.import_image(self.images[key])
        self.timings["containerd + image import"] = time.monotonic() - t

        t = time.monotonic()
        self.kubelet = self._started(
            Kubelet(kube_binary("kubelet"), self.work, self.containerd,
                    self.admin_kubeconfig, self.images["EXECMON_NODE_PAUSE_IMAGE"]),
            lambda k: k.stop())
        wait_for(self._node_ready, 120, interval=0.5, what="node Ready")
        self.timings["kubelet to node Ready"] = time.monotonic() - t
        # The ServiceAccount controller makes "default" in every namespace.
        wait_for(lambda: self.api.server.request(
            "GET", "/api/v1/namespaces/default/serviceaccounts/default",
            check=False)[0] == 200, 60, what="default service account")
        self.timings["total"] = time.monotonic() - t0

    def _node_ready(self):
        for p in (self.kubelet.proc, self.controller_manager, self.scheduler,
                  self.containerd.proc):
            if not p.alive():
                raise RuntimeError(f"{p.name} exited:\n{p.tail()}")
        code, node = self.api.server.request("GET", f"/api/v1/nodes/{NODE_NAME}",
                                             check=False)
        if code != 200:
            return False
        conds = {c["type"]: c for c in node["status"].get("conditions", [])}
        return conds.get("Ready", {}).get("status") == "True"

    def node(self):
        return self.api.req("GET", f"/api/v1/nodes/{NODE_NAME}")

    def delete_all_pods(self, timeout=120):
        """Deletes every pod (not kube-system's: none run there) and waits
        until kubelet has torn them down."""
        pods = self.api.req("GET", "/api/v1/pods")["items"]
        for p in pods:
            m = p["metadata"]
            self.api.server.request(
                "DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
                "?gracePeriodSeconds=1", check=False)
        wait_for(lambda: not self.api.req("GET", "/api/v1/pods")["items"],
                 timeout, interval=0.5, what="every pod gone")

    def mounts_under(self, roots):
        out = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].encode().decode("unicode_escape")
            if any(mp == str(r) or mp.startswith(str(r) + "/") for r in roots):
                out.append(mp)
        return out

    def stop(self):
        problems = []
        if getattr(self, "kubelet", None) is not None and self.kubelet.proc.alive():
            try:
                self.delete_all_pods()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                problems.append(f"deleting pods: {e}")
        for part, stop in reversed(self.parts):
            if part is getattr(self, "containerd", None):
                try:
                    part.remove_all()
                except Exception as e:  # noqa: BLE001
                    problems.append(f"containerd cleanup: {e}")
            try:
                stop(part)
            except Exception as e:  # noqa: BLE001
                problems.append(f"stopping {part}: {e}")
        self.parts = []
        # Mounts kubelet (volumes) and containerd (rootfs, shm, netns) made.
        roots = [self.work, self.run_dir]
        for mp in sorted(self.mounts_under(roots), key=len, reverse=True):
            r = run("umount", "-l", mp, check=False)
            if r.returncode != 0:
                problems.append(f"umount {mp}: {r.stderr.strip()}")
        if self.netns is not None:
            try:
                self.netns.close()
            except Exception as e:  # noqa: BLE001
                problems.append(f"netns: {e}")
            self.netns = None
        if self.host is not None:
            problems += self.host.restore()
        return problems
