"""The kernel matrix: the agent built here, run inside qemu (TCG) guests
booted from Debian's own cloud kernels, with the host's userland shared
read-only (tests/vm/run_in_vm.sh). For each kernel: the agent starts on its
defaults and names the paths it chose, exec events carry the right build
IDs, an enforce deny stops a first-seen binary before its first
instruction, and the snapshot works. The per-kernel results (paths chosen,
verified instruction counts, refusal reasons) are written to
<build>/test-reports/vm-matrix.json for docs/kernels.md.

A kernel package that cannot be fetched is a skip with the reason.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("EXECMON_BUILD_DIR", REPO / "build")).resolve()
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VM_CACHE",
                            Path.home() / ".cache" / "execmon" / "vm"))

# label -> (suite, packages unpacked together). Pinned: the matrix in
# docs/kernels.md names these builds.
KERNELS = {
    "6.1": ("bookworm", ["linux-image-6.1.0-50-cloud-amd64-unsigned"]),
    "6.12": ("bookworm-backports", ["linux-image-6.12.95+deb12-cloud-amd64-unsigned"]),
    "6.18": ("trixie-backports", ["linux-image-6.18.15+deb13-cloud-amd64"]),
    # Its linux-modules package is gone from the archive; the image alone
    # boots (virtiofs is built in; without the overlay module the guest's
    # root is read-only with a tmpfs /tmp, run_in_vm.sh).
    "6.19": ("trixie-backports", ["linux-binary-6.19.14+deb13-cloud-amd64"]),
    # The newest Debian kernel: a newer verifier, and the task_work kfunc
    # with an implicit argument.
    "7.3": ("trixie-backports", ["linux-binary-7.3.4+deb13-cloud-amd64",
                                 "linux-modules-7.3.4+deb13-cloud-amd64"]),
}
AT_EXEC = ("page_cache", "task_work")

# The guest CPU model per kernel (run_in_vm.sh's VM_CPU). Its default,
# max,-cx16, hides CMPXCHG16B: qemu 7.2's TCG double-faults 6.12 guests in
# SLUB's cmpxchg16b path. Kernels from 7.x on allocate bpf_task_work's
# context with kmalloc_nolock(), which needs CMPXCHG16B (every x86-64 server
# CPU has it): without it every task_work schedule fails with ENOMEM. So 7.3
# boots with it, and once more without it (test_kernel_task_work_no_cx16).
CPU = {"7.3": "max"}
# 6.19's verifier walks several times more states of the same programs
# (page_cache 177k instructions against 47k on 6.18): its start-up takes
# ~6 min under TCG, and with 2 GiB the verifier's states exhaust the guest's
# memory (the OOM killer ends the agent inside bpf_prog_load).
MEM = {"6.19": "8G"}
START_TIMEOUT = {"6.19": 1500}


def kernel_dir(label):
    """The unpacked kernel (cached), or pytest.skip with the reason."""
    suite, pkgs = KERNELS[label]
    kdir = CACHE / "kernels" / f"matrix-{label}"
    if (kdir / ".unpacked").exists():
        return kdir
    debs = []
    for pkg in pkgs:
        r = subprocess.run(["bash", str(HERE / "fetch_kernel.sh"), suite, pkg],
                           capture_output=True, text=True, timeout=900,
                           env={**os.environ, "VM_CACHE": str(CACHE)})
        if r.returncode != 0:
            pytest.skip(f"kernel {label}: cannot fetch {pkg} from {suite}: "
                        f"{r.stderr.strip()[-300:]}")
        debs.append(r.stdout.strip().splitlines()[-1])
    tmp = kdir.parent / f"{kdir.name}.tmp"
    subprocess.run(["rm", "-rf", str(tmp), str(kdir)], check=True)
    tmp.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, str(tmp)], check=True)
    (tmp / ".unpacked").write_text("\n".join(debs) + "\n")
    tmp.rename(kdir)
    return kdir


def record(label, result):
    reports = BUILD / "test-reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "vm-matrix.json"
    matrix = json.loads(path.read_text()) if path.exists() else {}
    matrix[label] = result
    path.write_text(json.dumps(matrix, indent=1, sort_keys=True))


_RESULTS = {}


def guest_result(label, cpu=None, only=None):
    """The guest's checks on kernel label (CPU model `cpu`, else CPU's;
    with `only`, just that build-ID path), run once per session."""
    cpu = cpu or CPU.get(label)
    key = (label, cpu, only)
    if key in _RESULTS:
        return _RESULTS[key]
    kdir = kernel_dir(label)
    env = {**os.environ, "VM_CACHE": str(CACHE)}
    if cpu:
        env["VM_CPU"] = cpu
    start = START_TIMEOUT.get(label, 600)
    guest_timeout = 600 + 2 * start  # two agents start in a guest
    r = subprocess.run(
        ["bash", str(HERE / "run_in_vm.sh"), "--mem", MEM.get(label, "2G"),
         "--timeout", str(guest_timeout), str(kdir), "--", "env",
         f"EXECMON_BUILD_DIR={BUILD}", f"GUEST_START_TIMEOUT={start}",
         f"GUEST_CHECK_ONLY={only or ''}", "python3", str(HERE / "guest_check.py")],
        capture_output=True, text=True, timeout=guest_timeout + 100, env=env)
    m = re.search(r"^@@RESULT (.*)$", r.stdout, re.M)
    assert m, f"no result from the guest (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    _RESULTS[key] = json.loads(m.group(1))
    _RESULTS[key]["cpu"] = cpu  # None: run_in_vm.sh's default
    if not only:
        record(label, _RESULTS[key])
    return _RESULTS[key]


@pytest.mark.parametrize("label", list(KERNELS))
def test_kernel_defaults(label):
    res = guest_result(label)
    check_run(res["kernel"], res["default"], AT_EXEC,
              {"page_cache", "task_work", "iterator"})


@pytest.mark.parametrize("label", list(KERNELS))
def test_kernel_task_work_path(label):
    """The task_work path alone (then late), where the kernel loads it: it
    learns the IDs before the first instruction too."""
    res = guest_result(label)
    if "task_work" not in res:
        pytest.skip(f"kernel {res['kernel']} refuses the task_work path: "
                    f"{res['default']['paths']['task_work'].get('reason')}")
    tw = res["task_work"]
    ran = re.search(r"task_work=(\d+)", tw.get("kernel_summary") or "")
    if tw.get("task_work_schedule_failed") and ran and int(ran.group(1)) == 0:
        pytest.skip(f"kernel {res['kernel']} loads the task_work path but "
                    f"bpf_task_work_schedule_resume failed for every exec "
                    f"({tw['task_work_schedule_failed']} of them); execs fell "
                    "through to the hold path")
    late = res["default"]["paths"]["iterator"]["loaded"]
    check_run(res["kernel"], tw, ("task_work",),
              {"task_work", "iterator"} if late else {"task_work"})


def test_kernel_task_work_no_cx16():
    """7.3 on a CPU without CMPXCHG16B: the task_work path loads, every
    schedule fails with ENOMEM (the kernel's lock-free allocator needs the
    instruction). The agent says why, and nothing runs unjudged: a
    first-seen binary under an enforce+kill deny is still killed before its
    first action (held, then judged late)."""
    res = guest_result("7.3", cpu="max,-cx16", only="task_work")
    tw = res["task_work"]
    assert "start_error" not in tw, tw["start_error"]
    assert tw["agent_rc"] == 0
    assert tw["paths"]["task_work"]["loaded"], tw["paths"]
    assert tw["task_work_schedule_failed"] > 0, tw["kernel_summary"]
    assert re.search(r"task_work=0\b", tw["kernel_summary"]), tw["kernel_summary"]
    why = tw["task_work_failed_why"]
    assert "returned -12" in why and "no CMPXCHG16B" in why, why
    enforce = tw["checks"]["enforce_first_seen"]
    assert enforce["rc"] == -9 and enforce["flag_created"] is False, enforce
    assert enforce["verdict"]["decision"] == "deny", enforce


def check_run(kernel, res, sources, paths):
    assert "start_error" not in res, f"agent did not start on {kernel}:\n{res['start_error']}"
    assert res["agent_rc"] == 0
    # Every path is reported: loaded with its instruction count, or not
    # with the kernel's reason.
    assert set(res["paths"]) == paths, res["startup_log"]
    for name, p in res["paths"].items():
        assert p["verified_insns"] > 0 if p["loaded"] else p["reason"], (name, p)
    at_exec = [p for p in sources if res["paths"][p]["loaded"]]
    assert at_exec, f"no at-exec path on {kernel}: {res['paths']}"
    for name, c in res["checks"].items():
        if not name.startswith("build_id:"):
            continue
        assert c["rc"] == 0, (name, c)
        assert c["got"] == c["want"] and c["error"] is None, (name, c)
        assert c["source"] in (*sources, "cache") and c["late"] is False, (name, c)
    enforce = res["checks"]["enforce_first_seen"]
    assert enforce["rc"] == -9 and enforce["flag_created"] is False, enforce
    assert enforce["verdict"]["decision"] == "deny", enforce
    assert enforce["source"] in sources, enforce
    assert res["checks"]["snapshot"]["processes"] > 0


def exec_lsm(label):
    """The default run's exec-denial unit, or pytest.skip with its reason."""
    res = guest_result(label)
    d = res["default"]
    assert "start_error" not in d, d["start_error"]
    lsm = d["exec_lsm"]
    if not lsm["active"]:
        # Then action block must still stop the binary: killed before its
        # first instruction, as action kill.
        b = d["checks"]["block_first_seen"]
        assert b["flag_created"] is False and "rc=137" in b["stdout"], b
        assert b["verdict"]["action"] == "kill", b
        assert lsm["reason"], lsm
        pytest.skip(f"kernel {res['kernel']}: exec denial unavailable: {lsm['reason']}")
    return res, d, lsm


@pytest.mark.parametrize("label", list(KERNELS))
def test_kernel_exec_denied_by_lsm(label):
    """action block: the exec of a first-seen denied binary fails with EPERM
    (the shell that ran it goes on and reports 126), nothing of it runs, and
    the event says deny_exec."""
    res, d, lsm = exec_lsm(label)
    assert lsm["verified_insns"] > 0
    b = d["checks"]["block_first_seen"]
    assert "Operation not permitted" in b["stderr"] and "rc=126" in b["stdout"], b
    assert b["flag_created"] is False, b
    assert b["verdict"]["decision"] == "deny" and b["verdict"]["action"] == "deny_exec", b
    assert b["verdict"]["policy"] == "block-marker", b
    assert b["build_id"] == "3b3b3b3b3b3b3b3b", b
    # Denied before the new image existed: no argv was read.
    assert b["args"] == [], b


@pytest.mark.parametrize("label", list(KERNELS))
def test_kernel_sha256_and_pinned_allow(label):
    """Exec events carry the file's sha256 (bpf_ima_file_hash); an allow
    entry pinned to one file's hash runs it, and denies (EPERM) another file
    that copied its build ID."""
    res, d, lsm = exec_lsm(label)
    if not lsm["sha256"]:
        pytest.skip(f"kernel {res['kernel']}: sha256 off")
    for name, c in d["checks"].items():
        if name.startswith("build_id:"):
            assert c["sha256"] == c["want_sha256"], (name, c)
    b = d["checks"]["block_first_seen"]
    assert b["sha256"] == b["want_sha256"], b
    pins = d["checks"]["pinned"]
    good, forged = pins["pin_genuine"], pins["pin_forged"]
    assert good.get("rc") == 0 and good["flag_created"], good
    assert good["verdict"]["decision"] == "allow" and good["verdict"]["policy"] == "pinned", good
    assert forged.get("errno") == 1 and not forged["flag_created"], forged  # EPERM
    assert forged["build_id"] == good["build_id"] == "9e9e9e9e9e9e9e9e", pins
    assert forged["sha256"] != good["sha256"], pins
    assert forged["verdict"]["action"] == "deny_exec", forged
    assert "sha256 not pinned" in forged["verdict"]["rule"], forged
