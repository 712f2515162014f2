"""The pod watcher against a real kube-apiserver (+ etcd): list, watch,
updates, deletions and tombstones, other nodes, WaitForPod, apiserver
restarts, expired resourceVersions (410), authentication variants, RBAC
errors, and bounded shutdown.

Each test uses its own node name, so the watchers of different tests see
disjoint sets of pods while sharing one control plane.
"""
import hashlib
import os
import uuid

import pytest

from k8s_cluster import (AGENT_TOKEN, AGENT_TOKEN_2, CERT_USER, NOBODY_TOKEN, Api,
                     ApiServer, wait_for)

NS = "execmon-test"


def cid(seed):
    """A 64-hex container ID, stable per seed."""
    return hashlib.sha256(seed.encode()).hexdigest()


def start_pod(api, name, node, containers=("app",), runtime="containerd",
              ns=NS, **kw):
    pod = api.create_pod(ns, name, node=node, containers=containers, **kw)
    ids = {c: cid(f"{name}/{c}") for c in containers}
    api.set_container_statuses(ns, name, [(c, f"{runtime}://{i}") for c, i in ids.items()])
    return pod["metadata"]["uid"], ids


def synced_and_watching(s):
    return s["synced"] and s["state"] == "watching"


def test_list_then_watch_reports_pod_metadata(cp, probes, tmp_path):
    node, other = "node-meta", "node-meta-other"
    api = cp.api
    api.create_node(node)
    api.create_node(other)
    # Before the watcher starts: these come from the LIST.
    web_uid, web_ids = start_pod(
        api, "web-7d9f8b6c5d-x2x9q", node,
        labels={"app": "web", "pod-template-hash": "7d9f8b6c5d"},
        owner=("ReplicaSet", "web-7d9f8b6c5d"), containers=("nginx", "sidecar"),
        annotations={"team": "payments"})
    db_uid, db_ids = start_pod(api, "db-0", node, runtime="cri-o",
                               labels={"app": "db"}, owner=("StatefulSet", "db"))
    start_pod(api, "elsewhere-before", other, labels={"app": "web"})

    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node,
                   "--cluster=prod-eu1", "--include_annotations")
    s = probe.wait_state(synced_and_watching, what="initial sync")
    assert s["counters"]["lists"] == 1
    pods = {p["name"]: p for p in s["pods"]}
    assert set(pods) == {"web-7d9f8b6c5d-x2x9q", "db-0"}

    web = pods["web-7d9f8b6c5d-x2x9q"]
    assert web["uid"] == web_uid
    assert web["namespace"] == NS
    assert web["cluster"] == "prod-eu1"
    assert web["node"] == node
    assert web["labels"] == {"app": "web", "pod-template-hash": "7d9f8b6c5d"}
    assert web["annotations"]["team"] == "payments"
    assert (web["workload"], web["workload_kind"]) == ("web", "Deployment")
    assert {c["name"]: c["id"] for c in web["containers"]} == web_ids
    assert all(c["runtime"] == "containerd" for c in web["containers"])
    assert pods["db-0"]["uid"] == db_uid
    assert (pods["db-0"]["workload"], pods["db-0"]["workload_kind"]) == ("db", "StatefulSet")

    c = probe.cmd(f"container {web_ids['sidecar']}")
    assert c["found"], c
    assert c["container"] == {
        "pod_uid": web_uid, "name": "sidecar", "image": "registry.test/sidecar:1.0",
        "image_id": "registry.test/sidecar@sha256:" + "ab" * 32,
        "runtime": "containerd", "id": web_ids["sidecar"], "type": "container",
        "previous": False}
    c = probe.cmd(f"container cri-o://{db_ids['app']}")
    assert c["found"] and c["container"]["runtime"] == "cri-o"
    assert c["container"]["pod_uid"] == db_uid

    # After the sync: these come from the WATCH.
    ds_uid, ds_ids = start_pod(api, "agent-x7k2p", node, runtime="docker",
                               owner=("DaemonSet", "agent"))
    cj_uid, _ = start_pod(api, "backup-28512345-pq8zt", node,
                          owner=("Job", "backup-28512345"))
    job_uid, _ = start_pod(api, "migrate-4xk2l", node, owner=("Job", "migrate"))
    bare_uid, _ = start_pod(api, "debug", node)
    mirror_hash = "3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b"
    start_pod(api, f"etcd-{node}", node,
              annotations={"kubernetes.io/config.mirror": mirror_hash},
              owner=("Node", node))
    start_pod(api, "elsewhere-after", other)
    api.create_pod(NS, "init-demo", node=node, init_containers=("setup",))
    api.set_container_statuses(NS, "init-demo", [("app", "containerd://" + cid("i/app"))],
                               init_statuses=[("setup", "containerd://" + cid("i/setup"))])

    s = probe.wait_state(lambda s: len(s["pods"]) == 8 and all(
        p["containers"] for p in s["pods"]), what="watched pods with containers")
    pods = {p["name"]: p for p in s["pods"]}
    assert "elsewhere-before" not in pods and "elsewhere-after" not in pods
    expect = {
        "agent-x7k2p": ("agent", "DaemonSet", ds_uid),
        "backup-28512345-pq8zt": ("backup", "CronJob", cj_uid),
        "migrate-4xk2l": ("migrate", "Job", job_uid),
        "debug": ("debug", "Pod", bare_uid),
        f"etcd-{node}": (f"etcd-{node}", "Pod", None),
    }
    for name, (workload, kind, uid) in expect.items():
        assert (pods[name]["workload"], pods[name]["workload_kind"]) == (workload, kind), name
        if uid:
            assert pods[name]["uid"] == uid
    assert s["counters"]["events"] >= 6
    c = probe.cmd(f"container docker://{ds_ids['app']}")
    assert c["found"] and c["container"]["pod_uid"] == ds_uid
    assert c["container"]["runtime"] == "docker"
    init = {c["name"]: c for c in pods["init-demo"]["containers"]}
    assert init["setup"]["type"] == "init" and init["app"]["type"] == "container"
    # A static pod resolves by the kubelet's own UID (the mirror annotation).
    m = probe.cmd(f"pod {mirror_hash}")
    assert m["found"] and m["pod"]["name"] == f"etcd-{node}"
    # Unknown IDs do not resolve.
    assert not probe.cmd(f"container {cid('nope')}")["found"]
    assert not probe.cmd(f"pod {uuid.uuid4()}")["found"]


def test_label_update_and_delete_with_tombstone(cp, probes, tmp_path):
    node = "node-update"
    api = cp.api
    api.create_node(node)
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node,
                   "--tombstone_ttl_ms=2000")
    probe.wait_state(synced_and_watching, what="sync")
    uid, ids = start_pod(api, "upd-1", node, labels={"app": "a", "tier": "bronze"})
    probe.wait_state(lambda s: any(p["uid"] == uid and p["containers"] for p in s["pods"]))

    api.patch_labels(NS, "upd-1", {"tier": "gold", "app": None, "new": "yes"})
    probe.wait_state(lambda s: any(
        p["uid"] == uid and p["labels"] == {"tier": "gold", "new": "yes"}
        for p in s["pods"]), what="label update")

    api.delete_pod(NS, "upd-1")
    s = probe.wait_state(lambda s: not any(p["uid"] == uid for p in s["pods"]),
                         what="deleted pod leaves the live set")
    # Still resolvable for a while: a tombstone.
    p = probe.cmd(f"pod {uid}")
    assert p["found"] and p["pod"]["deleted"], p
    assert p["pod"]["labels"] == {"tier": "gold", "new": "yes"}
    assert probe.cmd(f"container {ids['app']}")["found"]
    # Then gone.
    wait_for(lambda: not probe.cmd(f"pod {uid}")["found"], 10, what="tombstone expiry")
    assert not probe.cmd(f"container {ids['app']}")["found"]
    s = probe.state()
    assert s["counters"]["tombstones"] == 0 and s["counters"]["pods"] == 0


def test_wait_for_pod_is_bounded_and_wakes_on_binding(cp, probes, tmp_path):
    node = "node-wait"
    api = cp.api
    api.create_node(node)
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node)
    probe.wait_state(synced_and_watching, what="sync")

    # Unknown pod: returns after the bound, not before, not much later.
    ans = probe.cmd(f"wait {uuid.uuid4()} 400", timeout=10)
    assert not ans["found"]
    assert 350 <= ans["elapsed_ms"] <= 1500, ans

    # A pod that exists but is not scheduled yet: the watcher cannot know it.
    pod = api.create_pod(NS, "late-bound", node=None)
    uid = pod["metadata"]["uid"]
    assert not probe.cmd(f"pod {uid}")["found"]
    # The exec "arrives" first; the scheduler binds the pod to this node
    # while the lookup waits.
    probe.send(f"wait {uid} 15000")
    api.bind(NS, "late-bound", node)
    ans = probe.read(timeout=20)
    assert ans["cmd"] == "wait" and ans["found"], ans
    assert ans["pod"]["node"] == node
    assert ans["elapsed_ms"] < 10000, ans


def test_reconnects_after_apiserver_restart_and_sees_missed_changes(cp, probes, tmp_path):
    node = "node-restart"
    api = cp.api
    api.create_node(node)
    keep_uid, _ = start_pod(api, "keep", node, labels={"v": "1"})
    gone_uid, _ = start_pod(api, "gone", node)
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node,
                   "--backoff_initial_ms=200", "--backoff_max_ms=1000",
                   "--connect_timeout_ms=1000")
    probe.wait_state(lambda s: synced_and_watching(s) and len(s["pods"]) == 2)
    before = probe.state()["counters"]

    port = cp.apiserver.port
    cp.apiserver.stop()
    s = probe.wait_state(lambda s: s["state"] != "watching"
                         and s["counters"]["errors"] > before["errors"],
                         what="watcher notices the apiserver is gone")
    assert s["synced"]  # what it knew is still served
    assert probe.cmd(f"pod {keep_uid}")["found"]

    # Changes while the watcher's apiserver is down, through a second
    # apiserver on the same etcd.
    other = ApiServer(cp.binary, cp.workdir, cp.pki, cp.etcd, name="apiserver-b")
    try:
        other.start()
        b = Api(other)
        new_uid, new_ids = start_pod(b, "new-while-down", node)
        b.patch_labels(NS, "keep", {"v": "2"})
        b.delete_pod(NS, "gone")
    finally:
        other.stop()
    # Still down for the watcher: nothing changed in its view.
    assert probe.cmd(f"pod {new_uid}")["found"] is False

    # The watcher's apiserver comes back on the same address.
    cp.apiserver.port = port
    cp.apiserver.start()
    s = probe.wait_state(lambda s: synced_and_watching(s) and {
        p["name"]: p["labels"].get("v") for p in s["pods"]
    } == {"keep": "2", "new-while-down": None}, timeout=30,
        what="changes made while down")
    c = s["counters"]
    # A fresh apiserver's watch cache starts after our resourceVersion: the
    # resumed watch is answered 410 and the watcher relists. (Should the
    # cache still cover it, the resumed watch delivers the changes instead.)
    assert c["relists_410"] + c["watch_restarts"] > before["relists_410"] + before["watch_restarts"]
    assert c["lists"] + c["watch_restarts"] > before["lists"] + before["watch_restarts"]
    print("counters after restart:", c)
    assert probe.cmd(f"container {new_ids['app']}")["found"]
    gone = probe.cmd(f"pod {gone_uid}")
    assert gone["found"] and gone["pod"]["deleted"]  # a tombstone


def test_expired_resource_version_relists(cp, probes, tmp_path):
    node = "node-expired"
    api = cp.api
    api.create_node(node)
    start_pod(api, "before-compaction", node)
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node)
    probe.wait_state(lambda s: synced_and_watching(s) and len(s["pods"]) == 1)
    before = probe.state()["counters"]

    # Make old revisions really gone, then make the watcher resume from one
    # of them: the apiserver answers 410 Gone (an ERROR event), the watcher
    # must LIST again and watch from the new version.
    compacted = cp.etcd.compact()
    assert compacted > 2
    probe.cmd("rewatch 2")
    s = probe.wait_state(lambda s: s["counters"]["relists_410"] > before["relists_410"]
                         and s["counters"]["lists"] > before["lists"]
                         and s["state"] == "watching", what="410 relist")
    assert int(s["counters"]["resource_version"]) >= compacted
    # And the new watch works.
    uid, _ = start_pod(api, "after-relist", node)
    probe.wait_state(lambda s: any(p["uid"] == uid for p in s["pods"]),
                     what="pod created after the relist")


def test_client_certificate_and_inline_ca(cp, probes, tmp_path):
    node = "node-x509"
    cp.api.create_node(node)
    start_pod(cp.api, "x509-pod", node)
    kc = cp.kubeconfig(tmp_path / "kubeconfig", ca_inline=True, user={
        "client-certificate-data": cp.pki.b64("client.crt"),
        "client-key-data": cp.pki.b64("client.key"),
    })
    probe = probes(kc, node)
    s = probe.wait_state(lambda s: synced_and_watching(s) and len(s["pods"]) == 1,
                         what=f"sync as {CERT_USER} (x509)")
    assert s["pods"][0]["name"] == "x509-pod"
    assert s["counters"]["errors"] == 0, s["counters"]


def test_forbidden_user_reports_rbac_and_never_syncs(cp, probes, tmp_path):
    node = "node-forbidden"
    cp.api.create_node(node)
    kc = cp.kubeconfig(tmp_path / "kubeconfig", user={"token": NOBODY_TOKEN})
    probe = probes(kc, node, "--backoff_initial_ms=100", "--backoff_max_ms=300")
    s = probe.wait_state(lambda s: s["counters"]["errors"] >= 2, what="errors")
    assert not s["synced"]
    assert "403" in s["counters"]["last_error"], s["counters"]
    assert "RBAC" in s["counters"]["last_error"]
    ans = probe.cmd("wait 00000000-0000-0000-0000-000000000000 200")
    assert not ans["found"] and ans["elapsed_ms"] < 1500


def test_stop_is_bounded(cp, probes, tmp_path):
    node = "node-stop"
    cp.api.create_node(node)
    # While a watch is open.
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node)
    probe.wait_state(synced_and_watching, what="sync")
    ans = probe.stop()
    assert ans is not None and ans["state"] == "stopped", ans
    assert ans["elapsed_ms"] < 2500, ans
    # While connecting to an address where nothing answers (a port that was
    # free a moment ago) and backing off.
    dead = ApiServer(cp.binary, cp.workdir, cp.pki, cp.etcd, name="dead")
    kc = cp.kubeconfig(tmp_path / "kubeconfig-dead", server=dead)
    probe = probes(kc, node, "--backoff_initial_ms=5000", "--backoff_max_ms=5000")
    probe.wait_state(lambda s: s["counters"]["errors"] >= 1, what="connect error")
    ans = probe.stop()
    assert ans is not None and ans["elapsed_ms"] < 2500, ans


def test_watch_timeout_resumes_without_relisting(cp, probes, tmp_path):
    node = "node-timeout"
    cp.api.create_node(node)
    # timeoutSeconds=1: the server ends each watch after about a second.
    probe = probes(cp.kubeconfig(tmp_path / "kubeconfig"), node, "--watch_timeout_s=1")
    probe.wait_state(lambda s: synced_and_watching(s) and s["counters"]["watch_restarts"] >= 2,
                     what="watches resumed after the server's timeout")
    uid, _ = start_pod(cp.api, "after-timeouts", node)
    s = probe.wait_state(lambda s: any(p["uid"] == uid for p in s["pods"]))
    c = s["counters"]
    assert c["lists"] == 1 and c["relists_410"] == 0, c
    assert c["errors"] == 0, c


def write_token(path, token):
    """Replaces the token file the way the kubelet rotates projected tokens:
    a new file renamed over the old one."""
    tmp = path.with_suffix(".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)


def test_token_file_is_read_again_when_it_changes(cp, probes, tmp_path):
    node = "node-token"
    cp.api.create_node(node)
    start_pod(cp.api, "token-pod", node)
    token = tmp_path / "token"
    write_token(token, "not-a-valid-token")
    kc = cp.kubeconfig(tmp_path / "kubeconfig", user={"tokenFile": str(token)})
    probe = probes(kc, node, "--backoff_initial_ms=100", "--backoff_max_ms=300")
    s = probe.wait_state(lambda s: s["counters"]["errors"] >= 1, what="401")
    assert "401" in s["counters"]["last_error"], s["counters"]
    assert not s["synced"]
    # The token rotates to a valid one: the watcher picks it up by itself.
    write_token(token, AGENT_TOKEN)
    probe.wait_state(lambda s: synced_and_watching(s) and len(s["pods"]) == 1,
                     what="sync with the rotated token")
    # Rotates again (still valid): no disruption.
    write_token(token, AGENT_TOKEN_2)
    uid, _ = start_pod(cp.api, "token-pod-2", node)
    probe.wait_state(lambda s: any(p["uid"] == uid for p in s["pods"]))
