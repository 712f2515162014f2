"""Shared helpers of the benchmark drivers (run_exec_bench.py, run_exec_storm.py).

Starts and stops the real agent (build/bin/execmon), parses its summary and
loss lines, reads its JSON-lines output, and describes the machine.
"""
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("EXECMON_BUILD_DIR", REPO / "build"))
EXECMON = BUILD / "bin" / "execmon"
BENCH_BIN = BUILD / "bench"
TINY = BENCH_BIN / "tiny"
EXEC_BENCH = BENCH_BIN / "exec_bench"
EXEC_STORM = BENCH_BIN / "exec_storm"
# The agent binary the drivers run: a private copy made at the start of a run
# (use_agent_copy), so that a rebuild of build/bin/execmon by someone else in
# the middle of a run cannot mix two builds in one result.
AGENT_BIN = EXECMON
AGENT_INFO = {}
# Must match -Wl,--build-id in bench/CMakeLists.txt.
TINY_BUILD_ID = "be0cbe0cbe0cbe0c00000000000000b1"

# The agent's shutdown summary: "kernel: execs=N cache_hits=N ..." and
# "agent: exec=N exit=N ...". Parsed as key=value pairs (fields may be added).
SUMMARY_RE = re.compile(r"kernel: execs=\d+[^\n]*")
AGENT_RE = re.compile(r"agent: exec=\d+[^\n]*")
KV_RE = re.compile(r"(\w+)=(\d+)")
# "<n> <what> (<total> total)", logged as a warning when a loss counter grows.
LOSS_RE = re.compile(r"WARN execmon: (\d+) (.+?) \((\d+) total\)")


def die(msg):
    raise SystemExit(f"error: {msg}")


def check_prerequisites():
    if os.geteuid() != 0:
        die("run as root (the agent loads BPF programs)")
    missing = [p for p in (EXECMON, TINY, EXEC_BENCH, EXEC_STORM) if not p.exists()]
    if missing:
        die(f"missing {', '.join(map(str, missing))}; build with: "
            f"cmake -S . -B build && cmake --build build -j2 --target bench")


def use_agent_copy(workdir):
    global AGENT_BIN, AGENT_INFO
    st = EXECMON.stat()
    AGENT_BIN = Path(workdir) / "execmon"
    shutil.copy2(EXECMON, AGENT_BIN)
    AGENT_INFO = {
        "execmon_built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "execmon_sha256": hashlib.sha256(AGENT_BIN.read_bytes()).hexdigest()[:12]}
    return AGENT_BIN


def quantile(sorted_values, q):
    """Linear interpolation between closest ranks (same as exec_bench.cc)."""
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "kernel": platform.release(),
            "cpu_model": model, "mem_gib": round(mem_kb / 2**20, 1),
            "source": git or "unknown", **AGENT_INFO}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat:
    busy = user + nice + system + irq + softirq; steal = time the hypervisor
    gave this VM's CPUs to someone else."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def foreign_agents(own=()):
    """Pids of execmon processes other than `own`: another agent's BPF
    programs would run on every exec, "no agent" would not be true."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in own:
            continue
        try:
            if (d / "comm").read_text().strip() == "execmon":
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


def loadavg():
    """The 1, 5 and 15 minute load averages, as /proc/loadavg writes them."""
    return Path("/proc/loadavg").read_text().split()[:3]


def wait_for_quiet(max_wait, window=0.5, limit=0.05):
    """Waits (at most max_wait s) until no other execmon runs and the
    machine's busy + steal time over `window` s is below `limit` of one CPU
    while we do nothing. Other engineers' builds and tests on a shared VM
    would otherwise skew results. Returns the busy fraction last seen (1.0
    while another execmon runs)."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, s0 = cpu_times()
        time.sleep(window)
        b1, s1 = cpu_times()
        frac = ((b1 - b0) + (s1 - s0)) / window
        if foreign_agents():
            frac = 1.0
        if frac < limit or time.monotonic() > deadline:
            return frac


def alternated_rounds(conds, rounds, max_seconds, quiet_wait=None, what=""):
    """Yields (r, conds in round r's order) for each round to run. The order
    rotates by one condition per round. No round starts that could end
    after `max_seconds` from the first, judged by the longest round so far.
    With `quiet_wait`, each round first waits (at most that long) for a
    quiet machine (wait_for_quiet)."""
    t0 = time.monotonic()
    longest = 0.0
    for r in range(rounds):
        if time.monotonic() - t0 + longest > max_seconds:
            print(f"# {what}stopping after {r} rounds (--max_seconds)", file=sys.stderr)
            return
        t_round = time.monotonic()
        if quiet_wait is not None:
            wait_for_quiet(quiet_wait)
        yield r, conds[r % len(conds):] + conds[:r % len(conds)]
        longest = max(longest, time.monotonic() - t_round)


def prog_stats(pid):
    """{prog_id: (run_time_ns, run_cnt)} of the BPF programs `pid` holds
    open: the kernel's own statistics (the agent's --bpf_stats turns them
    on), read from /proc/PID/fdinfo, so a reading execs nothing (an exec
    would run the programs being measured)."""
    stats = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:bpf-prog":
                continue
            text = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        info = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        stats[int(info["prog_id"])] = (int(info["run_time_ns"]), int(info["run_cnt"]))
    return stats


def prog_names(ids):
    """{prog_id: name} (runs bpftool: call it outside timed sections)."""
    r = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"bpftool prog show: {r.stderr.strip()}")
    return {p["id"]: p.get("name", f"id{p['id']}") for p in json.loads(r.stdout)
            if p["id"] in ids}


def prog_stats_delta(before, after):
    """{program name: (ns, runs)} of the programs that ran between two
    prog_stats readings of one process."""
    names = prog_names(set(after))
    d = {}
    for i, (ns, n) in after.items():
        ns0, n0 = before.get(i, (0, 0))
        if n > n0:
            name = names.get(i, f"id{i}")
            t = d.get(name, (0, 0))
            d[name] = (t[0] + ns - ns0, t[1] + n - n0)
    return d


def fresh_copy(src, dst):
    """A new file (new inode, ctime = now) with src's content."""
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)
    return Path(dst)


_HELP = None


def agent_supports(flag):
    """Whether `execmon run` knows --<flag> (the agent evolves; the drivers
    run against whatever build/bin/execmon is)."""
    global _HELP
    if _HELP is None:
        r = subprocess.run([str(AGENT_BIN), "run", "--helpfull"],
                           capture_output=True, text=True)
        _HELP = r.stdout + r.stderr
    return f"--{flag} " in _HELP


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """One `execmon run` writing JSON lines to `<dir>/events.jsonl`."""

    def __init__(self, workdir, name, flags, cpu=None):
        self.dir = Path(workdir)
        self.out = self.dir / f"{name}.events.jsonl"
        self.err = self.dir / f"{name}.agent.log"
        self._err_f = open(self.err, "w")
        if agent_supports("metrics_address") and not any(
                f.startswith(("--metrics_address", "--metrics-address")) for f in flags):
            # Metrics stay on (the default), on a free port: another agent
            # (someone's test) may hold the default one.
            flags = [*flags, f"--metrics_address=127.0.0.1:{free_port()}"]
        self.flags = flags
        preexec = None
        if cpu is not None:
            preexec = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
        self.proc = subprocess.Popen(
            [str(AGENT_BIN), "run", f"--output={self.out}", *flags],
            stdout=subprocess.DEVNULL, stderr=self._err_f, preexec_fn=preexec)
        deadline = time.monotonic() + 60
        while "ready:" not in self.log():
            if self.proc.poll() is not None:
                die(f"agent exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                die(f"agent not ready in 60 s:\n{self.log()}")
            time.sleep(0.02)
        self._cpu_at_ready = self.cpu_seconds()

    def cpu_seconds(self):
        """User + system CPU time the agent process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat(5) (utime, stime), counted after "(comm)".
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self):
        return self.err.read_text()

    def stop(self):
        """SIGTERM (the agent drains its ring buffer), wait, parse the summary."""
        cpu_used = self.cpu_seconds() - self._cpu_at_ready
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            die(f"agent did not stop within 120 s of SIGTERM:\n{self.log()}")
        self._err_f.close()
        log = self.log()
        if rc != 0:
            die(f"agent exited {rc}:\n{log}")
        m = SUMMARY_RE.search(log)
        a = AGENT_RE.search(log)
        if not m or not a:
            die(f"no summary lines in agent log {self.err}:\n{log}")
        s = {k: int(v) for k, v in KV_RE.findall(m.group(0))}
        s.update({f"agent_{k}": int(v) for k, v in KV_RE.findall(a.group(0))})
        for k in ("execs", "cache_hits", "cache_misses", "task_work",
                  "ring_buffer_drops", "agent_exec"):
            if k not in s:
                die(f"summary lines without {k} in {self.err}:\n{log}")
        # Per-kind loss totals from the warnings (the last one is the total).
        losses = {}
        for n, what, total in LOSS_RE.findall(log):
            losses[what] = max(losses.get(what, 0), int(total))
        s["losses"] = losses
        s["agent_cpu_s"] = round(cpu_used, 3)  # from "ready:" to SIGTERM
        s["exec_drops"] = losses.get("exec events lost: ring buffer full", 0)
        return s

    def exec_events(self):
        """Every "type":"exec" event of the output file, parsed."""
        events = []
        if not self.out.exists():
            return events
        with open(self.out) as f:
            for line in f:
                if '"type":"exec"' not in line:
                    continue
                e = json.loads(line)
                if e.get("type") == "exec":
                    events.append(e)
        return events
