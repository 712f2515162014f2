"""The chart on a real node: kubelet + containerd start the agent's DaemonSet
pod, whose events reach a real Kafka broker and whose policies kill in
labelled pods only. The tests run in order (one install, then upgrade, then
uninstall), as an operator would."""
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from node_cluster import BUILD, REPO, NODE_NAME, kubepods_cgroups, run, wait_for, wait_until

CHART = REPO / "deploy" / "helm" / "execmon"
NS = "execmon"          # the release's namespace
APPS = "apps"           # the workload pods'
RELEASE = "execmon"
TOPIC = "execmon.events"
IN_POD = "/usr/local/bin/victim"  # the victim's path in the workload image


def build_id_readelf(path):
    out = run("readelf", "-n", path).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert m, out
    return m.group(1)


def deny_policy(build_id, enforce_label):
    return f"""apiVersion: execmon.io/v1alpha1
kind: ExecPolicy
metadata:
  name: node-test-deny-victim
spec:
  mode: enforce
  action: kill
  deny:
    - buildId: "{build_id}"
      note: tests/node victim
  selector:
    matchLabels:
      enforce: "{enforce_label}"
"""


CAP_SYS_RESOURCE = 24


def bounding_set_has(cap):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def values(node, broker, images, victim_id, enforce_label):
    repo, _, tag = images["EXECMON_NODE_AGENT_IMAGE"].rpartition(":")
    return {
        # A container cannot gain a capability the node's bounding set lacks
        # (runc: "unable to apply caps: operation not permitted"); this
        # machine has no CAP_SYS_RESOURCE, which 6.1+ kernels do not need
        # for BPF (memcg accounting): what an operator sets on such a node.
        "securityContext": {"sysResource": bounding_set_has(CAP_SYS_RESOURCE)},
        "image": {"repository": repo, "tag": tag},
        # The broker and the API server listen on the node's loopback; no
        # kube-proxy runs, so the in-cluster address (the `kubernetes`
        # Service's cluster IP) leads nowhere: point the agent at the
        # apiserver itself, as on clusters without kube-proxy.
        "hostNetwork": True,
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.apiserver.port)},
        ],
        "agent": {"kubernetes": "on", "podWait": "5s", "cluster": "node-test"},
        "kafka": {"enabled": True, "brokers": [broker.bootstrap], "topic": TOPIC,
                  "key": "pod_uid", "flushTimeoutSeconds": 5},
        "enforcement": {"enabled": True},
        "policies": {"deny-victim.yaml": deny_policy(victim_id, enforce_label)},
    }


class Cluster:
    """What the tests do through the API, containerd and helm."""

    def __init__(self, node, helm, broker, images, tmp):
        self.node = node
        self.api = node.api
        self.helm = helm
        self.broker = broker
        self.images = images
        self.tmp = tmp
        self.victim = images["EXECMON_NODE_VICTIM"]
        self.victim_id = build_id_readelf(self.victim)

    def values_file(self, enforce_label):
        f = self.tmp / f"values-{enforce_label}.yaml"
        f.write_text(yaml.safe_dump(values(self.node, self.broker, self.images,
                                           self.victim_id, enforce_label)))
        return f

    # --- pods -----------------------------------------------------------
    def pod(self, ns, name):
        return self.api.req("GET", f"/api/v1/namespaces/{ns}/pods/{name}")

    def agent_pods(self):
        sel = "app.kubernetes.io/name=execmon"
        return self.api.req("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={sel}")["items"]

    def create_workload(self, name, labels):
        self.api.ensure_namespace(APPS)
        spec = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": APPS, "labels": labels},
            "spec": {
                # No nodeName: the scheduler places it.
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "app",
                    "image": self.images["EXECMON_NODE_WORKLOAD_IMAGE"],
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sleep", "3600"],
                }],
            },
        }
        self.api.req("POST", f"/api/v1/namespaces/{APPS}/pods", spec)

    def wait_running(self, ns, name, timeout=120):
        def ready():
            p = self.pod(ns, name)
            st = p.get("status", {})
            cs = st.get("containerStatuses") or []
            if cs and all(c.get("ready") for c in cs):
                return p
            return None
        try:
            return wait_for(ready, timeout, interval=0.5, what=f"pod {ns}/{name} ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{json.dumps(self.pod(ns, name).get('status'))[:3000]}"
                               f"\nkubelet log:\n{self.node.kubelet.proc.tail(3000)}") from None

    def container_id(self, ns, name, container="app"):
        p = self.pod(ns, name)
        cid = next(c["containerID"] for c in p["status"]["containerStatuses"]
                   if c["name"] == container)
        assert cid.startswith("containerd://"), cid
        return cid.split("://", 1)[1]

    def exec_in(self, ns, name, *argv, timeout=60):
        """Runs argv in the pod's container through containerd (what
        `kubectl exec` ends up as): a real exec in the container's
        namespaces and cgroup."""
        cid = self.container_id(ns, name)
        return self.node.containerd.ctr(
            "tasks", "exec", "--exec-id", f"t{uuid.uuid4().hex[:12]}", cid, *argv,
            check=False, timeout=timeout)

    def task_pid(self, ns, name, container="app"):
        cid = self.container_id(ns, name, container)
        out = self.node.containerd.ctr("tasks", "list").stdout
        for line in out.splitlines():
            f = line.split()
            if f and f[0] == cid:
                return int(f[1])
        raise AssertionError(f"no task {cid}: {out}")

    # --- events ---------------------------------------------------------
    def events(self):
        return [json.loads(m["payload"]) for m in self.broker.consume(TOPIC)]

    def wait_exec_event(self, nonce, binary, timeout=40):
        """The exec of `binary` whose arguments hold nonce (not the ctr or
        runc execs that carried the same argument there)."""
        def find():
            return [e for e in self.events()
                    if e.get("type") == "exec" and e["process"]["binary"] == binary
                    and nonce in (e["process"].get("args") or [])]
        return wait_for(find, timeout, interval=1, what=f"exec event with {nonce}")[0]

    # --- BPF --------------------------------------------------------------
    @staticmethod
    def bpf_programs():
        return json.loads(run("bpftool", "prog", "show", "--json").stdout or "[]")


@pytest.fixture(scope="module")
def cluster(node, helm, broker, prerequisites, tmp_path_factory):
    return Cluster(node, helm, broker, prerequisites["images"],
                   tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def release(cluster):
    """helm install, with Kafka and a policies ConfigMap; the pod Ready."""
    before = {p["id"] for p in cluster.bpf_programs()}
    t = time.monotonic()
    cluster.helm.run("install", RELEASE, str(CHART), "--namespace", NS,
                     "--create-namespace", "-f", str(cluster.values_file("one")),
                     "--wait", "--timeout", "5m")
    # helm's --wait counts a DaemonSet ready while its controller has not
    # scheduled anything yet: wait for the pod itself.

    def ready():
        pods = cluster.agent_pods()
        statuses = pods[0]["status"].get("containerStatuses") or [{}] if pods else [{}]
        for c in statuses:
            waiting = (c.get("state") or {}).get("waiting") or {}
            if c.get("restartCount") or waiting.get("reason") in (
                    "CrashLoopBackOff", "CreateContainerError", "RunContainerError",
                    "ErrImageNeverPull", "CreateContainerConfigError"):
                raise AssertionError(f"agent container failing: {json.dumps(c)}")
        return pods if len(pods) == 1 and all(c.get("ready") for c in statuses) else None
    try:
        pods = wait_until(ready, 300, interval=0.5, what="the agent pod Ready")
    except (TimeoutError, AssertionError) as e:
        pytest.fail(f"{e}\nagent log:\n{agent_log(cluster)}\nkubelet log:\n"
                    f"{cluster.node.kubelet.proc.tail(4000)}")
    took = time.monotonic() - t
    print(f"\nhelm install to agent pod Ready: {took:.1f} s")
    info = {"install_seconds": took, "pod": pods[0] if pods else None,
            "bpf_before": before, "installed": True}
    yield info
    if info["installed"]:
        cluster.helm.run("uninstall", RELEASE, "--namespace", NS, "--wait", check=False)


@pytest.fixture(scope="module")
def workloads(cluster, release):
    """Three pods of the same image: one unlabelled for the policy, one
    labelled enforce=one (the first policy's selector), one enforce=two
    (the upgraded policy's)."""
    pods = {"plain": {"app": "web", "tier": "front"},
            "guarded-one": {"app": "web", "enforce": "one"},
            "guarded-two": {"app": "web", "enforce": "two"}}
    for name, labels in pods.items():
        cluster.create_workload(name, labels)
    for name in pods:
        cluster.wait_running(APPS, name)
    return pods


def agent_log(cluster):
    """The agent's stderr (its log; events go to stdout), from the CRI log
    files kubelet keeps."""
    pods = cluster.agent_pods()
    if not pods:
        return "(no agent pod)"
    pod = pods[0]
    logs = Path("/var/log/pods")
    out = []
    for f in sorted(logs.glob(f"{NS}_{pod['metadata']['name']}_*/execmon/*.log")):
        out += [line.split(" ", 3)[-1] for line in f.read_text(errors="replace").splitlines()
                if " stderr " in line[:45]]
    return "\n".join(out)[-6000:]


# --- install ----------------------------------------------------------------

def test_agent_pod_ready_with_probes_passing(cluster, release):
    """The DaemonSet controller made the pod, the scheduler-free DaemonSet
    path put it on the node, kubelet started it from the locally built
    image; startup, readiness and liveness probes pass."""
    pods = cluster.agent_pods()
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert pod["spec"]["hostNetwork"] is True and pod["spec"]["hostPID"] is True
    ds = cluster.api.req("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/{RELEASE}")
    assert ds["status"]["numberReady"] == 1 == ds["status"]["desiredNumberScheduled"]
    # Liveness runs every 10 s: let three periods pass.
    time.sleep(30)
    pod = cluster.agent_pods()[0]
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] is True and cs["started"] is True, cs
    assert cs["restartCount"] == 0, (cs, agent_log(cluster))
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Ready"] == "True", conds
    events = cluster.api.req(
        "GET", f"/api/v1/namespaces/{NS}/events?fieldSelector="
        f"involvedObject.name={pod['metadata']['name']}")["items"]
    # A startup probe may fail while the agent loads its BPF programs (its
    # /healthz listens once it is up; the chart allows 60 x 5 s): that is
    # what a startup probe is for, and "started" above says it passed.
    # Liveness and readiness must never have failed, nor the container
    # backed off.
    unhealthy = [e["message"] for e in events
                 if e["reason"] == "BackOff" or (e["reason"] == "Unhealthy" and
                                                 not e["message"].startswith("Startup probe"))]
    assert not unhealthy, unhealthy
    # The agent's own log (kubelet's container log).
    print(f"\nagent log:\n{agent_log(cluster)[-3000:]}")


def test_real_pod_cgroup_layout(cluster, workloads):
    """What kubelet (cgroupfs driver) and containerd really lay out here:
    /kubepods/<qos>/pod<uid>/<container id> in every hierarchy."""
    pod = cluster.pod(APPS, "plain")
    uid = pod["metadata"]["uid"]
    cid = cluster.container_id(APPS, "plain")
    qos = pod["status"]["qosClass"]
    assert qos == "BestEffort"
    pid = cluster.task_pid(APPS, "plain")
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    want = f"/kubepods/besteffort/pod{uid}/{cid}"
    paths = {l.split(":", 2)[1]: l.split(":", 2)[2] for l in lines}
    assert paths.get("") == want, lines  # the unified (cgroup2) hierarchy
    assert all(p == want for p in paths.values()), lines
    assert kubepods_cgroups(), "no /kubepods cgroup"
    # The agent itself: requests below limits, so Burstable.
    agent = cluster.agent_pods()[0]
    assert agent["status"]["qosClass"] == "Burstable"
    apid = cluster.task_pid(NS, agent["metadata"]["name"], container="execmon")
    acid = cluster.container_id(NS, agent["metadata"]["name"], container="execmon")
    unified = next(l.split(":", 2)[2] for l in Path(f"/proc/{apid}/cgroup").read_text()
                   .splitlines() if l.startswith("0::"))
    assert unified == f"/kubepods/burstable/pod{agent['metadata']['uid']}/{acid}"


# --- events -------------------------------------------------------------------

def test_exec_in_pod_reaches_kafka_with_pod_and_build_id(cluster, workloads):
    nonce = f"/tmp/ev-{uuid.uuid4().hex[:10]}"
    r = cluster.exec_in(APPS, "plain", IN_POD, nonce)
    assert r.returncode == 0 and "victim ran" in r.stdout, (r.returncode, r.stdout, r.stderr)
    ev = cluster.wait_exec_event(nonce, IN_POD)
    print(f"\nexec event from the pod: {json.dumps(ev)}")
    pod = cluster.pod(APPS, "plain")
    assert ev["process"]["binary"] == IN_POD, ev
    assert ev["pod"]["enriched"] is True, ev
    assert ev["pod"]["name"] == "plain" and ev["pod"]["namespace"] == APPS, ev["pod"]
    assert ev["pod"]["uid"] == pod["metadata"]["uid"], ev["pod"]
    assert ev["pod"]["labels"] == {"app": "web", "tier": "front"}, ev["pod"]
    assert ev["pod"]["qos"] == "besteffort", ev["pod"]
    assert ev["container"]["name"] == "app", ev["container"]
    assert ev["container"]["id"] == cluster.container_id(APPS, "plain"), ev["container"]
    # The build ID the file really has: readelf, and the agent's own reader.
    real = build_id_readelf(cluster.victim)
    assert ev["process"]["build_id"] == real, (ev["process"], real)
    execmon = BUILD / "bin" / "execmon"
    if execmon.exists():
        out = run(execmon, "buildid", cluster.victim).stdout
        assert real in out, out
    assert ev["verdict"]["decision"] == "allow", ev["verdict"]
    assert ev.get("cluster") == "node-test" and ev["node"] == NODE_NAME, ev


def test_host_process_carries_no_pod(cluster, workloads):
    nonce = f"/tmp/host-ev-{uuid.uuid4().hex[:10]}"
    r = subprocess.run([cluster.victim, nonce], capture_output=True, text=True, timeout=30)
    Path(nonce).unlink(missing_ok=True)
    assert r.returncode == 0 and "victim ran" in r.stdout
    ev = cluster.wait_exec_event(nonce, cluster.victim)
    assert "pod" not in ev and "container" not in ev, ev
    assert ev["process"]["build_id"] == cluster.victim_id


# --- enforcement ----------------------------------------------------------------

def assert_killed_before_first_instruction(cluster, pod):
    marker = f"/tmp/kill-{uuid.uuid4().hex[:10]}"
    r = cluster.exec_in(APPS, pod, IN_POD, marker)
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)   # SIGKILL
    assert "victim ran" not in r.stdout, r.stdout
    # Its first action would have created the file.
    ls = cluster.exec_in(APPS, pod, "/bin/ls", marker)
    assert ls.returncode != 0, ls.stdout
    ev = cluster.wait_exec_event(marker, IN_POD)
    assert ev["pod"]["name"] == pod, ev["pod"]
    assert ev["verdict"]["decision"] == "deny" and ev["verdict"]["action"] == "kill", ev["verdict"]
    assert ev["verdict"]["policy"] == "node-test-deny-victim", ev["verdict"]
    return ev


def assert_runs(cluster, pod):
    marker = f"/tmp/run-{uuid.uuid4().hex[:10]}"
    r = cluster.exec_in(APPS, pod, IN_POD, marker)
    assert r.returncode == 0 and "victim ran" in r.stdout, (pod, r.returncode, r.stdout, r.stderr)
    assert cluster.exec_in(APPS, pod, "/bin/ls", marker).returncode == 0


def test_label_scoped_policy_kills_in_labelled_pod_only(cluster, workloads):
    assert_killed_before_first_instruction(cluster, "guarded-one")
    assert_runs(cluster, "plain")
    assert_runs(cluster, "guarded-two")
    # The same file on the host.
    marker = Path(f"/tmp/host-run-{uuid.uuid4().hex[:10]}")
    r = subprocess.run([cluster.victim, str(marker)], capture_output=True, text=True,
                       timeout=30)
    try:
        assert r.returncode == 0 and "victim ran" in r.stdout and marker.exists()
    finally:
        marker.unlink(missing_ok=True)


def test_helm_upgrade_changes_policy_without_restart(cluster, release, workloads):
    before = cluster.agent_pods()[0]
    cluster.helm.run("upgrade", RELEASE, str(CHART), "--namespace", NS,
                     "-f", str(cluster.values_file("two")), "--wait", "--timeout", "5m")
    t = time.monotonic()

    def two_is_denied():
        r = cluster.exec_in(APPS, "guarded-two", IN_POD)
        return r.returncode == 137
    wait_for(two_is_denied, 150, interval=2, what="the upgraded policy in force")
    print(f"\npolicy change in force {time.monotonic() - t:.1f} s after helm upgrade")
    assert_killed_before_first_instruction(cluster, "guarded-two")
    assert_runs(cluster, "guarded-one")
    assert_runs(cluster, "plain")
    after = cluster.agent_pods()
    assert [p["metadata"]["uid"] for p in after] == [before["metadata"]["uid"]]
    assert after[0]["status"]["containerStatuses"][0]["restartCount"] == 0
    assert (after[0]["status"]["containerStatuses"][0]["containerID"] ==
            before["status"]["containerStatuses"][0]["containerID"])


# --- uninstall ---------------------------------------------------------------------

def bpf_prog_ids_held_by(pid):
    """BPF programs the process holds (prog fds, and links: fdinfo names the
    program of both)."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for f in fdinfo.iterdir():
        try:
            text = f.read_text()
        except OSError:
            continue
        ids |= {int(m) for m in re.findall(r"^prog_id:\s*(\d+)", text, re.M)}
    return ids


def test_uninstall_removes_pod_and_bpf_programs(cluster, release):
    pod = cluster.agent_pods()[0]
    pid = cluster.task_pid(NS, pod["metadata"]["name"], container="execmon")
    mine = bpf_prog_ids_held_by(pid)
    loaded = {p["id"]: p for p in cluster.bpf_programs()}
    assert mine, f"no BPF program held by the agent (pid {pid})"
    assert mine <= set(loaded), (mine, sorted(loaded))
    names = {loaded[i].get("name") for i in mine}
    cluster.helm.run("uninstall", RELEASE, "--namespace", NS, "--wait", "--timeout", "3m")
    release["installed"] = False
    wait_for(lambda: not cluster.agent_pods(), 60, interval=0.5, what="agent pod gone")
    assert not Path(f"/proc/{pid}").exists(), "the agent process outlived its pod"
    after = cluster.bpf_programs()
    left = {p["id"]: p.get("name") for p in after if p["id"] in mine}
    assert not left, f"BPF programs of the agent still loaded: {left}"
    # Nor any other program of the agent's kind held from a pod (no second
    # agent kept running). Programs of the same names held by a process
    # outside the pods are another agent on this machine (the e2e tests).
    same = {p["id"] for p in after if p.get("name") in names}
    holders = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                for i in bpf_prog_ids_held_by(int(proc.name)) & same:
                    holders.setdefault(i, []).append(int(proc.name))
            except OSError:
                pass
    still = {p["id"] for p in cluster.bpf_programs()}  # a holder may have exited
    for i in same & still:
        assert i in holders, f"BPF program {i} loaded but held by no process"
        for hp in holders[i]:
            try:
                cg = Path(f"/proc/{hp}/cgroup").read_text()
            except OSError:
                continue
            assert "/kubepods" not in cg, (i, hp, cg)
    for kind in ("configmaps", "serviceaccounts"):
        items = cluster.api.req("GET", f"/api/v1/namespaces/{NS}/{kind}")["items"]
        assert not [i for i in items if i["metadata"]["name"].startswith(RELEASE)], items
    assert not cluster.api.req("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets")["items"]
