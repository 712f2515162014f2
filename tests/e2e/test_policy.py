"""Policies end to end: verdicts, kill before the first instruction, scope,
reload, sweep. Real kernel, real BPF, real execs."""
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN, EXECMON, fresh_copy, run

MARKER_ID = "3a3a3a3a3a3a3a3a"
PIE8_ID = "0e0e0e0e00000008"
NOPIE20_ID = "2020202020202020202020202020202020200020"
MIN_AGE = "--cache_min_age=300ms"


def policy(name, mode="enforce", action="kill", deny=(), allow=None,
           unknown=None, selector=None):
    spec = {"mode": mode, "action": action}
    if deny:
        spec["deny"] = [{"buildId": i, "note": f"note {i[:4]}"} for i in deny]
    if allow is not None:
        spec["allow"] = [{"buildId": i, "note": f"ok {i[:4]}"} for i in allow]
    if unknown:
        spec["unknownBuildId"] = unknown
    if selector is not None:
        spec["selector"] = selector
    # JSON is YAML: no YAML writer needed.
    return json.dumps({"apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
                       "metadata": {"name": name}, "spec": spec})


def write_policies(d, **docs):
    d.mkdir(exist_ok=True)
    for name, text in docs.items():
        (d / f"{name}.yaml").write_text(text)
    return d


def verdict(agent, pid, comm=None):
    return agent.exec_event(pid, comm=comm)["verdict"]


# Allowlists and unknownBuildId: deny govern everything they select: with
# an empty selector in enforce mode the sweep kills every process on the
# node that is not listed. Those tests select containers only and run
# their programs in a test cgroup named like a Kubernetes pod's.
CONTAINERS = {"host": False}


@pytest.fixture
def pod_cgroup():
    """A kubepods-like cgroup v2 directory, removed afterwards."""
    mounts = [l.split() for l in Path("/proc/self/mounts").read_text().splitlines()]
    root = next((Path(m[1]) for m in mounts if m[2] == "cgroup2"), None)
    if root is None:
        pytest.skip("no cgroup v2 hierarchy")
    uid = str(uuid.uuid4()).replace("-", "_")
    top = root / "kubepods.slice"
    pod = top / "kubepods-besteffort.slice" / f"kubepods-besteffort-pod{uid}.slice"
    scope = pod / f"cri-containerd-{uuid.uuid4().hex}.scope"
    scope.mkdir(parents=True)
    yield scope
    for d in (scope, pod, pod.parent, top):
        try:
            d.rmdir()
        except OSError:
            pass


def run_in_cgroup(cg, cmd):
    """Moves a shell into cgroup cg, then execs cmd there."""
    script = f'echo $$ > {cg}/cgroup.procs && exec "$@"'
    return run(["/bin/sh", "-c", script, "sh", *cmd])




@pytest.mark.parametrize("path", ["miss", "hit"])
def test_enforce_kills_before_first_instruction(path_agent_factory, tmp_path, path):
    pol = write_policies(tmp_path / "pol", deny=policy("deny-marker", deny=[MARKER_ID]))
    marker = fresh_copy(BIN / "marker", tmp_path / "marker")
    if path == "hit":
        # Old enough to cache; one exec before the policy fills the cache.
        time.sleep(0.5)
    agent = path_agent_factory(MIN_AGE, f"--policies={pol}")
    if path == "hit":
        run([BIN / "hello_pie8"])  # unrelated; the cache fill happens below
    allowed, r_ok = run([BIN / "hello_pie8", "neighbour"])
    for i in range(3):
        flag = tmp_path / f"created-{i}"
        pid, r = run([marker, flag])
        assert r.returncode == -9
        # Its first action would have created the file: it never ran.
        assert not flag.exists()
        v = verdict(agent, pid)
        assert v == {"decision": "deny", "action": "kill", "policy": "deny-marker",
                     "rule": "deny: note 3a3a", "mode": "enforce"}
        src = agent.exec_event(pid)["process"]["build_id_source"]
        if path == "miss":
            assert src == agent.exec_source if i == 0 else src in (agent.exec_source, "cache")
        elif i > 0:
            assert src == "cache"
        ex = agent.wait_for(lambda e: e["type"] == "exit" and e["process"]["pid"] == pid)
        assert ex["exit"]["signal"] == 9
    # The allowed program next to it ran normally.
    assert r_ok.returncode == 0 and r_ok.stdout == b"hello neighbour\n"
    assert verdict(agent, allowed)["decision"] == "allow"


def test_audit_reports_but_does_not_kill(agent_factory, tmp_path):
    pol = write_policies(tmp_path / "pol",
                         a=policy("audit-marker", mode="audit", action="alert",
                                  deny=[MARKER_ID]))
    agent = agent_factory(f"--policies={pol}")
    flag = tmp_path / "created"
    pid, r = run([BIN / "marker", flag])
    assert r.returncode == 0 and flag.exists()
    assert verdict(agent, pid) == {"decision": "deny", "action": "alert",
                                   "policy": "audit-marker", "rule": "deny: note 3a3a",
                                   "mode": "audit"}


def test_audit_and_enforce_together_enforce_decides(agent_factory, tmp_path):
    pol = write_policies(
        tmp_path / "pol",
        a=policy("a-audit", mode="audit", action="alert", deny=[MARKER_ID]),
        b=policy("b-enforce", deny=[MARKER_ID]))
    agent = agent_factory(f"--policies={pol}")
    pid, r = run([BIN / "marker", tmp_path / "x"])
    assert r.returncode == -9 and not (tmp_path / "x").exists()
    v = verdict(agent, pid)
    assert v["policy"] == "b-enforce" and v["action"] == "kill"


def test_deny_beats_allow(agent_factory, tmp_path, pod_cgroup):
    pol = write_policies(
        tmp_path / "pol",
        a=policy("a-allow", allow=[PIE8_ID, MARKER_ID], selector=CONTAINERS),
        b=policy("b-deny", mode="audit", action="alert", deny=[PIE8_ID]))
    agent = agent_factory(f"--policies={pol}")
    pid, r = run_in_cgroup(pod_cgroup, [BIN / "hello_pie8"])
    assert r.returncode == 0
    v = verdict(agent, pid, "hello_pie8")
    assert v["decision"] == "deny" and v["policy"] == "b-deny"
    assert v["action"] == "alert"


def test_allowlist(agent_factory, tmp_path, pod_cgroup):
    pol = write_policies(tmp_path / "pol",
                         a=policy("only-pie8", allow=[PIE8_ID], selector=CONTAINERS))
    agent = agent_factory(f"--policies={pol}")
    pid_ok, r_ok = run_in_cgroup(pod_cgroup, [BIN / "hello_pie8"])
    assert r_ok.returncode == 0
    assert verdict(agent, pid_ok, "hello_pie8") == {"decision": "allow", "action": "none",
                                      "policy": "only-pie8", "rule": "allow: ok 0e0e",
                                      "mode": "enforce"}
    pid_bad, r_bad = run_in_cgroup(pod_cgroup, [BIN / "hello_nopie20"])
    assert r_bad.returncode == -9
    v = verdict(agent, pid_bad, "hello_nopie20")
    assert v["decision"] == "deny" and v["rule"] == "allow: not listed"


def test_unknown_build_id(agent_factory, tmp_path, pod_cgroup):
    pol = write_policies(tmp_path / "pol",
                         a=policy("no-unknown", unknown="deny", selector=CONTAINERS))
    agent = agent_factory(f"--policies={pol}")
    pid, r = run_in_cgroup(pod_cgroup, [BIN / "hello_noid"])
    assert r.returncode == -9
    v = verdict(agent, pid, "hello_noid")
    assert v["decision"] == "deny" and v["rule"] == "unknownBuildId: deny"
    # A host process without a build ID is out of scope.
    pid_host, r_host = run([BIN / "hello_noid"])
    assert r_host.returncode == 0
    assert verdict(agent, pid_host)["decision"] == "unknown"
    pid2, r2 = run_in_cgroup(pod_cgroup, [BIN / "hello_pie8"])
    assert r2.returncode == 0
    assert verdict(agent, pid2, "hello_pie8")["decision"] == "allow"


def test_unknown_without_policy_is_unknown(agent):
    pid, r = run([BIN / "hello_noid"])
    assert r.returncode == 0
    assert verdict(agent, pid) == {"decision": "unknown", "action": "none",
                                   "policy": None, "rule": None, "mode": None}


def test_scope_by_cgroup(agent_factory, tmp_path, pod_cgroup):
    pol = write_policies(
        tmp_path / "pol",
        c=policy("containers-only", deny=[MARKER_ID], selector={"host": False}),
        h=policy("host-only", mode="audit", action="alert", deny=[PIE8_ID],
                 selector={"host": True}))
    agent = agent_factory(f"--policies={pol}")
    # In the kubepods-like cgroup: the container policy kills the marker.
    pid, r = run_in_cgroup(pod_cgroup, [BIN / "marker", tmp_path / "in-pod"])
    assert r.returncode == -9 and not (tmp_path / "in-pod").exists()
    e = agent.exec_event(pid, comm="marker")
    assert e["process"]["cgroup_id"] == pod_cgroup.stat().st_ino
    assert e["verdict"]["policy"] == "containers-only"
    # On the host the same binary runs: the container policy has no scope.
    pid, r = run([BIN / "marker", tmp_path / "on-host"])
    assert r.returncode == 0 and (tmp_path / "on-host").exists()
    assert verdict(agent, pid)["decision"] == "allow"
    # The host policy governs host execs only.
    pid, r = run([BIN / "hello_pie8"])
    assert verdict(agent, pid)["policy"] == "host-only"
    pid, r = run_in_cgroup(pod_cgroup, [BIN / "hello_pie8"])
    assert r.returncode == 0
    e = agent.exec_event(pid, comm="hello_pie8")
    assert e["process"]["cgroup_id"] == pod_cgroup.stat().st_ino
    assert e["verdict"]["decision"] == "allow"


def test_reload_while_execs_continue(agent_factory, tmp_path):
    pol = write_policies(tmp_path / "pol",
                         p=policy("flip", mode="audit", action="alert", deny=[PIE8_ID]))
    agent = agent_factory(f"--policies={pol}")
    stop = threading.Event()
    pids = []

    def loop():
        while not stop.is_set():
            pids.append(run([BIN / "hello_pie8"])[0])

    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(1)
        # Atomic replace, as editors and kubelet do.
        tmp = pol / ".p.yaml.tmp"
        tmp.write_text(policy("flip", mode="audit", action="alert", deny=[MARKER_ID]))
        os.rename(tmp, pol / "p.yaml")
        deadline = time.monotonic() + 10
        while "generation 2" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "generation 2" in agent.log()
        time.sleep(1)
    finally:
        stop.set()
        t.join()
    decisions = [verdict(agent, pid)["decision"] for pid in pids]
    # Every exec was judged: denied under the old set, then allowed.
    assert set(decisions) <= {"deny", "allow"}
    first_allow = decisions.index("allow")
    assert "deny" in decisions[:first_allow] and "deny" not in decisions[first_allow:]


def test_invalid_reload_keeps_previous_policies(agent_factory, tmp_path):
    pol = write_policies(tmp_path / "pol", p=policy("deny-marker", deny=[MARKER_ID]))
    agent = agent_factory(f"--policies={pol}")
    (pol / "broken.yaml").write_text(
        "apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\nmetadata: {name: broken}\n"
        "spec:\n  mode: block\n")
    deadline = time.monotonic() + 10
    while "reload rejected" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = agent.log()
    assert "policy reload rejected, previous policies stay in force" in log
    assert f"{pol / 'broken.yaml'}:5:" in log and '"block"' in log
    pid, r = run([BIN / "marker", tmp_path / "x"])
    assert r.returncode == -9 and not (tmp_path / "x").exists()
    assert verdict(agent, pid)["policy"] == "deny-marker"


def test_invalid_policies_fail_startup(tmp_path):
    pol = write_policies(tmp_path / "pol", p="apiVersion: v1\nkind: Pod\n")
    r = subprocess.run([str(EXECMON), "run", f"--policies={pol}",
                        f"--output={tmp_path / 'ev'}"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert f"{pol / 'p.yaml'}:2:7: kind: \"Pod\" is not supported" in r.stderr
    # Nothing was attached or reported before the policies were checked.
    ev = tmp_path / "ev"
    assert "snapshot" not in r.stderr
    assert not ev.exists() or ev.stat().st_size == 0


def test_sweep_kills_running_violators(agent_factory, tmp_path):
    pol = tmp_path / "pol"
    pol.mkdir()
    agent = agent_factory(f"--policies={pol}")
    victim = subprocess.Popen([str(BIN / "hello_nopie20"), "sleep", "60"])
    bystander = subprocess.Popen([str(BIN / "hello_pie8"), "sleep", "60"])
    try:
        agent.exec_event(victim.pid)
        write_policies(pol, p=policy("deny-nopie20", deny=[NOPIE20_ID]))
        assert victim.wait(timeout=15) == -9
        e = agent.wait_for(lambda x: x["type"] == "sweep"
                           and x["process"]["pid"] == victim.pid)
        assert e["verdict"]["action"] == "kill"
        assert e["verdict"]["policy"] == "deny-nopie20"
        assert e["process"]["build_id"] == NOPIE20_ID
        assert bystander.poll() is None
    finally:
        for p in (victim, bystander):
            p.kill()
            p.wait()


def test_sweep_in_audit_mode_reports_only(agent_factory, tmp_path):
    victim = subprocess.Popen([str(BIN / "hello_nopie20"), "sleep", "60"])
    try:
        pol = write_policies(tmp_path / "pol",
                             p=policy("audit-nopie20", mode="audit", action="alert",
                                      deny=[NOPIE20_ID]))
        agent = agent_factory(f"--policies={pol}")
        e = agent.wait_for(lambda x: x["type"] == "sweep"
                           and x["process"]["pid"] == victim.pid)
        assert e["verdict"]["action"] == "alert"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_iterator_fallback_holds_then_kills(agent_factory, tmp_path):
    # Only the late path: under an enforce+kill policy a first-seen binary
    # is held before its first instruction, judged late, and killed.
    pol = write_policies(tmp_path / "pol", p=policy("deny-marker", deny=[MARKER_ID]))
    agent = agent_factory("--build_id_resolver=iterator", f"--policies={pol}")
    assert "such an exec is held (stopped before its first instruction)" in agent.log()
    flag = tmp_path / "created"
    pid, r = run([fresh_copy(BIN / "marker", tmp_path / "marker"), flag])
    assert r.returncode == -9 and not flag.exists()
    e = agent.exec_event(pid)
    assert e["process"]["build_id_source"] == "iterator"
    assert e["process"]["held"] is True
    assert e["verdict"]["action"] == "kill"


def test_policy_lint_cli(tmp_path):
    good = write_policies(tmp_path / "good", p=policy("ok", deny=[MARKER_ID]))
    r = subprocess.run([str(EXECMON), "policy", "lint", str(good)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "1 policies OK" in r.stdout
    bad = write_policies(tmp_path / "bad", p="apiVersion: execmon.io/v1alpha1\n"
                         "kind: ExecPolicy\nmetadata: {name: x}\nspec:\n"
                         "  deny: [{buildId: zz}]\n")
    r = subprocess.run([str(EXECMON), "policy", "lint", str(bad), "--format=json"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["ok"] is False
    err = out["errors"][0]
    assert err["file"].endswith("p.yaml") and err["line"] == 5
    assert "buildId" in err["message"]


def test_policy_lint_warns_about_node_wide_enforce_allowlist(tmp_path):
    # Only linted, never loaded: this policy would kill the machine's processes.
    d = write_policies(tmp_path / "pol", p="apiVersion: execmon.io/v1alpha1\n"
                       "kind: ExecPolicy\nmetadata: {name: node-wide}\nspec:\n"
                       "  mode: enforce\n  action: kill\n"
                       f"  allow: [{{buildId: {PIE8_ID}}}]\n")
    r = subprocess.run([str(EXECMON), "policy", "lint", str(d)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert "warning: policy node-wide: an enforce+kill allowlist with an empty " \
        "selector governs every process on the node" in r.stdout
    assert r.stdout.endswith("1 policies OK, 1 warnings\n")


def test_policy_test_cli(tmp_path):
    d = write_policies(tmp_path / "pol", p=policy("deny-marker", deny=[MARKER_ID]))
    r = subprocess.run([str(EXECMON), "policy", "test", str(d), f"--build-id={MARKER_ID}",
                        "--host", "--format=json"], capture_output=True, text=True)
    assert r.returncode == 3
    assert json.loads(r.stdout) == {"decision": "deny", "action": "kill",
                                    "policy": "deny-marker", "rule": "deny: note 3a3a",
                                    "mode": "enforce"}
    r = subprocess.run([str(EXECMON), "policy", "test", str(d), f"--build-id={PIE8_ID}",
                        "--host"], capture_output=True, text=True)
    assert r.returncode == 0 and "decision: allow" in r.stdout


def test_sample_policies_lint():
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([str(EXECMON), "policy", "lint", str(repo / "policies")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_configmap_symlink_swap_reloads(agent_factory, tmp_path):
    # The layout kubelet gives a ConfigMap volume, and its update sequence.
    pol = tmp_path / "cm"
    pol.mkdir()
    v1 = pol / "..2026_11_23_01"
    v1.mkdir()
    (v1 / "p.yaml").write_text(policy("cm", mode="audit", action="alert",
                                      deny=[PIE8_ID]))
    (pol / "..data").symlink_to(v1.name)
    (pol / "p.yaml").symlink_to("..data/p.yaml")
    agent = agent_factory(f"--policies={pol}")
    pid, _ = run([BIN / "hello_pie8"])
    assert verdict(agent, pid)["decision"] == "deny"
    v2 = pol / "..2026_11_23_02"
    v2.mkdir()
    (v2 / "p.yaml").write_text(policy("cm", mode="audit", action="alert",
                                      deny=[MARKER_ID]))
    (pol / "..data_tmp").symlink_to(v2.name)
    os.rename(pol / "..data_tmp", pol / "..data")
    (v1 / "p.yaml").unlink()
    v1.rmdir()
    deadline = time.monotonic() + 10
    while "generation 2" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "policies: 1 loaded" in agent.log() and "generation 2" in agent.log()
    pid, _ = run([BIN / "hello_pie8"])
    assert verdict(agent, pid)["decision"] == "allow"
    pid, _ = run([BIN / "marker", tmp_path / "m"])
    assert verdict(agent, pid)["rule"] == "deny: note 3a3a"


FAR_DENY_ID = "fafafafade000001"
FAR_ALLOW_ID = "fafafafaa1000002"


def drop_pages(path):
    """Drops a file's pages from the page cache; returns the file's pages
    still resident (mincore through an mmap)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                          str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@contextlib.contextmanager
def no_readahead(path):
    """Read-ahead off for path's filesystem (restored after): the exec then
    reads only the start of the file, and a note far into it stays out of
    the page cache (this machine's disk reads 8 MiB ahead)."""
    st = os.stat(path)
    knob = Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")
    if not knob.exists():
        pytest.skip(f"no read-ahead setting for {path}'s filesystem ({knob})")
    old = knob.read_text().strip()
    knob.write_text("0")
    try:
        yield
    finally:
        knob.write_text(old)


@pytest.mark.parametrize("name,want_rc", [("far_note_deny", -9), ("far_note_allow", 0)])
def test_enforce_holds_exec_whose_note_is_not_resident(agent_factory, tmp_path, name, want_rc):
    # The note's page is not in the page cache at exec: no path learns the
    # build ID in the tracepoint, so under an enforce+kill policy the task
    # is stopped before its first instruction, judged late, then killed or
    # continued. Its first action (creating the flag file) shows which.
    pol = write_policies(tmp_path / "pol",
                         p=policy("deny-far", deny=[FAR_DENY_ID]))
    agent = agent_factory(f"--policies={pol}")
    if "page_cache" not in agent.chain:
        pytest.skip("the page_cache path is not loaded: nothing to hold for")
    prog = fresh_copy(BIN / name, tmp_path / name)
    flag = tmp_path / "created"
    with no_readahead(prog):
        assert drop_pages(prog) == 0
        pid, r = run([prog, flag])
    assert r.returncode == want_rc
    assert flag.exists() == (want_rc == 0)
    e = agent.exec_event(pid)
    p = e["process"]
    assert p["held"] is True
    assert p["build_id"] == (FAR_DENY_ID if want_rc else FAR_ALLOW_ID)
    assert p["build_id_source"] == "iterator" and p["build_id_late"] is True
    # Read from the file once the memory walk faulted its pages in, not
    # trusted from the process's memory.
    assert "build_id_from_memory" not in p
    if want_rc:
        assert e["verdict"]["decision"] == "deny" and e["verdict"]["action"] == "kill"
    else:
        assert e["verdict"]["decision"] == "allow"


def test_note_far_into_a_resident_file_is_read_at_exec(agent, tmp_path):
    # The note 960 KiB in (page 240: past the xarray's first leaf node),
    # resident because the file was just written: no hold, no late read.
    prog = fresh_copy(BIN / "far_note_allow", tmp_path / "p")
    pid, r = run([prog, tmp_path / "flag"])
    assert r.returncode == 0
    p = agent.exec_event(pid)["process"]
    assert p["build_id"] == FAR_ALLOW_ID
    assert p["build_id_source"] == "page_cache" and p["build_id_late"] is False
    assert "held" not in p


def test_no_hold_without_kill_policy(agent, tmp_path):
    prog = fresh_copy(BIN / "far_note_allow", tmp_path / "p")
    with no_readahead(prog):
        assert drop_pages(prog) == 0
        pid, r = run([prog, tmp_path / "flag"])
    assert r.returncode == 0
    p = agent.exec_event(pid, timeout=15)["process"]
    assert "held" not in p
    # Not judged at exec (the note was not resident): late, or unresolved.
    assert p["build_id_source"] != "page_cache"


def test_recreated_policy_directory_is_watched_again(agent_factory, tmp_path):
    pol = write_policies(tmp_path / "pol", p=policy("audit-pie8", mode="audit",
                                                    action="alert", deny=[PIE8_ID]))
    agent = agent_factory(f"--policies={pol}")
    pid, _ = run([BIN / "hello_pie8"])
    assert verdict(agent, pid)["decision"] == "deny"
    shutil.rmtree(pol)
    deadline = time.monotonic() + 10
    while "is gone: not watching it" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)
    # Recreated with a new policy: loaded, as a new generation.
    write_policies(pol, p=policy("deny-marker", deny=[MARKER_ID]))
    deadline = time.monotonic() + 10
    while "generation 2" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)
    assert "exists again: watching it" in agent.log()
    flag = tmp_path / "created"
    pid, r = run([fresh_copy(BIN / "marker", tmp_path / "marker"), flag])
    assert r.returncode == -9 and not flag.exists()
    # ... and watched: a later edit reloads too.
    (pol / "p.yaml").write_text(policy("audit-only", mode="audit", action="alert",
                                       deny=[MARKER_ID]))
    deadline = time.monotonic() + 10
    while "generation 3" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)


def test_lint_confines_list_files_and_counts_every_error(tmp_path):
    pol = tmp_path / "pol"
    pol.mkdir()
    for i, ref in enumerate(["/etc/shadow", "../../etc/passwd"]):
        (pol / f"p{i}.yaml").write_text(json.dumps({
            "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
            "metadata": {"name": f"p{i}"},
            "spec": {"mode": "audit", "action": "alert", "denyFrom": [ref]}}))
    r = subprocess.run([str(EXECMON), "policy", "lint", str(pol)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "not by absolute path" in r.stdout + r.stderr
    assert 'may not contain ".."' in r.stdout + r.stderr
    assert "root:" not in r.stdout + r.stderr  # nothing of either file
    # A list with many bad lines: the real count, not the number listed.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ids.txt").write_text("zz\n" * 5000)
    (bad / "p.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": "p"},
        "spec": {"mode": "audit", "action": "alert", "denyFrom": ["ids.txt"]}}))
    r = subprocess.run([str(EXECMON), "policy", "lint", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "0 policies, 5000 errors (4980 not listed)" in r.stdout + r.stderr
