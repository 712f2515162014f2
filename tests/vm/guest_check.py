#!/usr/bin/env python3
"""The core end-to-end checks, run inside a VM guest (tests/vm/run_in_vm.sh)
on the kernel under test, with the host's build tree visible at the same
paths. Prints one line "@@RESULT <json>" that tests/vm/test_kernels.py
asserts on; everything else it prints is diagnostics.

Checks: the agent starts on its defaults and says which build-ID paths it
chose (with the verifier's instruction counts, or the kernel's reason for a
refusal); exec events of fresh binaries (dynamic PIE, static, ELF32, note
beyond 4 KiB) carry the build IDs readelf reports; an enforce+kill deny of a
first-seen binary stops it before its first instruction; the start-up
snapshot reports running processes. Where the BPF LSM runs: a policy with
action block makes a first-seen binary's exec fail with EPERM while the
calling shell runs on; exec events carry the file's sha256; an allow entry
pinned to one file's sha256 lets it run and denies another file that
copied its build ID.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BUILD = Path(os.environ["EXECMON_BUILD_DIR"])
EXECMON = BUILD / "bin" / "execmon"
BIN = BUILD / "tests" / "e2e" / "bin"
WORK = Path("/tmp/vmcheck")
# Start-up under TCG: seconds on most kernels, ~6 min on 6.19, whose
# verifier walks several times more states of the same programs.
START_TIMEOUT = float(os.environ.get("GUEST_START_TIMEOUT", "600"))
MARKER_ID = "3a3a3a3a3a3a3a3a"
BLOCK_ID = "3b3b3b3b3b3b3b3b"
PIN_ID = "9e9e9e9e9e9e9e9e"
CGROUP = Path("/sys/fs/cgroup/libpod-vmcheck.scope")  # container-like
PROGS = {  # name -> build ID (see tests/e2e/CMakeLists.txt)
    "hello_pie8": "0e0e0e0e00000008",
    "hello_static20": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0020",
    "hello_elf32": "3232323232323232",
    "late_note": "1ae0000000000000000000000000000000000042",
}


def events(path):
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def wait_exec_where(out, field, value, timeout):
    """The first exec event whose process.<field> is value, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in events(out):
            if e["type"] == "exec" and e["process"][field] == value:
                return e
        time.sleep(0.2)
    return None


def wait_exec(out, pid, timeout):
    return wait_exec_where(out, "pid", pid, timeout)


def wait_binary(out, path, timeout):
    return wait_exec_where(out, "binary", str(path), timeout)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def in_container(cmd):
    """Runs cmd in the container-like cgroup (joined before the exec)."""
    def join():
        (CGROUP / "cgroup.procs").write_text("0")
    try:
        p = subprocess.Popen([str(c) for c in cmd], preexec_fn=join,
                             stdout=subprocess.DEVNULL)
    except OSError as e:
        return {"errno": e.errno, "error": str(e)}
    return {"rc": p.wait(timeout=60), "pid": p.pid}


def fresh(tagged):
    dst = WORK / tagged
    shutil.copyfile(BIN / tagged.split(".", 1)[-1], dst)
    os.chmod(dst, 0o755)
    return dst


def run_agent(tag, flags, pol):
    """One agent with flags: start-up, build IDs, enforcement, snapshot."""
    res = {"flags": flags, "checks": {}}
    out, log = WORK / f"{tag}.events.jsonl", WORK / f"{tag}.agent.log"
    t0 = time.monotonic()
    agent = subprocess.Popen([str(EXECMON), "run", f"--output={out}", f"--policies={pol}",
                              *flags],
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    while "ready:" not in log.read_text():
        if agent.poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
            res["start_error"] = log.read_text()[-3000:]
            print(log.read_text())
            return res
        time.sleep(0.2)
    res["start_seconds"] = round(time.monotonic() - t0, 1)
    text = log.read_text()
    res["paths"] = {}
    for m in re.finditer(r"build-ID path (\w+): loaded \((\d+) instructions verified\)", text):
        res["paths"][m.group(1)] = {"loaded": True, "verified_insns": int(m.group(2))}
    for m in re.finditer(r"build-ID path (\w+): not available: (.+)", text):
        res["paths"][m.group(1)] = {"loaded": False, "reason": m.group(2)}
    m = re.search(r"build-ID resolver chain: (\S+)", text)
    res["chain"] = m.group(1) if m else None
    res["startup_log"] = [l.split(" execmon: ", 1)[-1] for l in text.splitlines()
                          if "build-ID" in l or "page cache:" in l or "exec denial" in l]
    m = re.search(r"exec denial \(BPF LSM bprm_check_security\): active \((\d+) "
                  r"instructions verified\).*sha256: (\w+)", text)
    if m:
        res["exec_lsm"] = {"active": True, "verified_insns": int(m.group(1)),
                           "sha256": m.group(2) == "on"}
    else:
        m = re.search(r"exec denial \(BPF LSM bprm_check_security\): not available: (.+)",
                      text)
        res["exec_lsm"] = {"active": False, "reason": m.group(1) if m else None}

    for name, want in PROGS.items():
        prog = fresh(f"{tag}.{name}")
        # Alive for a while, so a late path can read it too.
        p = subprocess.Popen([str(prog), "sleep", "4"] if name.startswith("hello_") and
                             name != "hello_elf32" else [str(prog)],
                             stdout=subprocess.DEVNULL)
        rc = p.wait(timeout=60)
        e = wait_exec(out, p.pid, 60)
        got = e["process"] if e else {}
        res["checks"][f"build_id:{name}"] = {
            "rc": rc, "want": want, "got": got.get("build_id"),
            "sha256": got.get("exe", {}).get("sha256"), "want_sha256": sha256(prog),
            "source": got.get("build_id_source"), "late": got.get("build_id_late"),
            "error": got.get("build_id_error")}

    marker = fresh(f"{tag}.marker")
    flag = WORK / f"{tag}.created"
    p = subprocess.Popen([str(marker), str(flag)])
    rc = p.wait(timeout=60)
    e = wait_exec(out, p.pid, 60)
    res["checks"]["enforce_first_seen"] = {
        "rc": rc, "flag_created": flag.exists(),
        "source": e["process"]["build_id_source"] if e else None,
        "verdict": e["verdict"] if e else None}

    # action block: the exec fails with EPERM where the BPF LSM runs (the
    # shell that called it goes on), else a kill before the first instruction.
    blocked = fresh(f"{tag}.marker_block")
    flag = WORK / f"{tag}.block-created"
    r = subprocess.run(["/bin/sh", "-c", '"$0" "$1"; echo "rc=$?"', str(blocked), str(flag)],
                       capture_output=True, text=True, timeout=60)
    e = wait_binary(out, blocked, 60)
    res["checks"]["block_first_seen"] = {
        "stdout": r.stdout, "stderr": r.stderr, "flag_created": flag.exists(),
        "verdict": e["verdict"] if e else None,
        "build_id": e["process"]["build_id"] if e else None,
        "args": e["process"]["args"] if e else None,
        "sha256": e["process"]["exe"].get("sha256") if e else None,
        "want_sha256": sha256(blocked)}

    # A pinned allow list in a container-like cgroup: the genuine file runs,
    # the one that copied its build ID is denied where hashes are known.
    pins = {}
    for name in ("pin_genuine", "pin_forged"):
        prog = fresh(f"{tag}.{name}")
        flag = WORK / f"{tag}.{name}-created"
        r = in_container([prog, flag])
        e = wait_binary(out, prog, 60)
        pins[name] = {**r, "flag_created": flag.exists(),
                      "verdict": e["verdict"] if e else None,
                      "build_id": e["process"]["build_id"] if e else None,
                      "sha256": e["process"]["exe"].get("sha256") if e else None}
    res["checks"]["pinned"] = pins

    res["checks"]["snapshot"] = {
        "processes": sum(1 for e in events(out) if e["type"] == "snapshot")}
    agent.send_signal(signal.SIGTERM)
    res["agent_rc"] = agent.wait(timeout=120)
    final = log.read_text()
    m = re.search(r"kernel: (execs=.*)", final)
    res["kernel_summary"] = m.group(1) if m else None
    fails = re.findall(r"execs sent without build ID: task_work failed \((\d+) total\)"
                       r"(.*)", final)
    res["task_work_schedule_failed"] = int(fails[-1][0]) if fails else 0
    res["task_work_failed_why"] = fails[-1][1].strip() if fails else None
    print(log.read_text()[-2000:])
    return res


def main():
    res = {"kernel": os.uname().release}
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    pol = WORK / "pol"
    pol.mkdir()
    (pol / "deny.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": "deny-marker"},
        "spec": {"mode": "enforce", "action": "kill",
                 "deny": [{"buildId": MARKER_ID}]}}))
    (pol / "block.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": "block-marker"},
        "spec": {"mode": "enforce", "action": "block",
                 "deny": [{"buildId": BLOCK_ID}]}}))
    (pol / "pinned.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": "pinned"},
        "spec": {"mode": "enforce", "action": "block", "selector": {"host": False},
                 "allow": [{"buildId": PIN_ID,
                            "sha256": [sha256(BIN / "pin_genuine")]}]}}))
    CGROUP.mkdir(exist_ok=True)
    only = os.environ.get("GUEST_CHECK_ONLY")
    if only:
        # One path on its own, nothing else (a second boot of a kernel with
        # another CPU model, tests/vm/test_kernels.py).
        res[only] = run_agent(only, [f"--build_id_resolver={only},iterator"], pol)
        print("@@RESULT " + json.dumps(res))
        return
    res["default"] = run_agent("default", [], pol)
    # Each at-exec path on its own, where the kernel loaded it.
    # (Then late, where the kernel loads the iterator: naming a refused
    # path would fail start-up, as it should.)
    paths = res["default"].get("paths", {})
    late = ",iterator" if paths.get("iterator", {}).get("loaded") else ""
    for path in ("task_work",):
        if paths.get(path, {}).get("loaded"):
            res[path] = run_agent(path, [f"--build_id_resolver={path}{late}"], pol)
    print("@@RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
