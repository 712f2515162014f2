#!/usr/bin/env python3
"""Where the agent's exec overhead goes: a CPU profile per exec.

For each condition (none, hit, miss; as A, B, C of run_exec_bench.py) runs
`perf record -a -g -e cpu-clock -c 100000` (one sample per 100 µs of CPU, on
every CPU) around one exec_bench batch of --count execs of tiny, then counts,
from `perf script`, the CPU time per exec:

  exec path   samples of exec_bench and its children (comm exec_bench/tiny):
              fork, exec, the program, exit, and the BPF programs those run
  <symbol>    samples of the exec path whose call chain contains <symbol>
  agent       samples of the agent process (comm execmon), user / kernel

Not a latency measurement (perf adds its own overhead; use
run_exec_bench.py for latency); conditions are not alternated. Other
processes' samples are ignored, but their load still disturbs the VM.

Usage (root):  bench/profile_exec.py [--count=3000] [--conditions=none,hit,miss]
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

PERIOD_US = 100  # -c 100000 ns of cpu-clock per sample
# (label, regex on a frame's symbol) counted within the exec path.
FRAMES = [
    ("BPF em_fork (sched_process_fork)", r"^bpf_prog_\w+_em_fork$"),
    ("BPF em_exec (sched_process_exec)", r"^bpf_prog_\w+_em_exec$"),
    ("BPF em_exit (sched_process_exit)", r"^bpf_prog_\w+_em_exit$"),
    ("BPF task_work callback (miss: ELF read)", r"^bpf_task_work_callback$"),
    ("bpf_ringbuf_submit/output", r"^bpf_ringbuf_(submit|output)$"),
    ("bpf_task_work_schedule", r"^bpf_task_work_schedule"),
    ("irq_work_queue (wakeups)", r"^irq_work_queue$"),
    # All patterns of a "&"-joined entry must be in the chain.
    ("  of which native_write_msr (APIC self-IPI)", r"^irq_work_queue$&^native_write_msr$"),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--conditions", default="none,hit,miss",
                   help="some of none, hit, miss, hit0, miss0 (hit0/miss0: "
                        "--ringbuf_wakeup_bytes=0, a wakeup per record)")
    p.add_argument("--bindir", default="/dev/shm")
    p.add_argument("--logdir", default="/tmp")
    return p.parse_args()


def profile(data):
    """Per-group sample counts from `perf script` of one recording."""
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    counts = {"exec path": 0, "agent user": 0, "agent kernel": 0}
    counts.update({label: 0 for label, _ in FRAMES})
    pats = [(label, [re.compile(x) for x in rx.split("&")]) for label, rx in FRAMES]
    for block in out.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        comm = lines[0].strip()
        frames = [ln.split(None, 1) for ln in lines[1:] if ln.strip()]
        syms = [f[1].rsplit(" (", 1)[0].split("+0x")[0] for f in frames if len(f) > 1]
        if comm in ("exec_bench", "tiny"):
            counts["exec path"] += 1
            for label, rxs in pats:
                if all(any(rx.search(s) for s in syms) for rx in rxs):
                    counts[label] += 1
        elif comm == "execmon":
            leaf = lines[1] if len(lines) > 1 else ""
            counts["agent kernel" if "kernel.kallsyms" in leaf else "agent user"] += 1
    return counts


def main():
    args = parse_args()
    bl.check_prerequisites()
    if shutil.which("perf") is None:
        bl.die("perf not found (apt-get install linux-perf)")
    bindir = Path(tempfile.mkdtemp(prefix="execmon-prof.", dir=args.bindir))
    logdir = Path(tempfile.mkdtemp(prefix="execmon-prof.", dir=args.logdir))
    bl.use_agent_copy(logdir)
    results = {}
    try:
        f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
        time.sleep(2)
        known = {"none": None, "hit": ["--cache_min_age=1s"],
                 "miss": ["--cache_min_age=1h"],
                 "hit0": ["--cache_min_age=1s", "--ringbuf_wakeup_bytes=0"],
                 "miss0": ["--cache_min_age=1h", "--ringbuf_wakeup_bytes=0"]}
        conds = args.conditions.split(",")
        if any(c not in known for c in conds):
            bl.die(f"--conditions: want some of {', '.join(known)}")
        for cond in conds:
            flags = known[cond]
            agent = bl.Agent(logdir, cond, ["--snapshot=false", *flags]) if flags else None
            bl.wait_for_quiet(10)
            data = logdir / f"{cond}.perf.data"
            r = subprocess.run(
                ["perf", "record", "-q", "-o", str(data), "-a", "-g", "-e", "cpu-clock",
                 "-c", "100000", "--", str(bl.EXEC_BENCH), f"--binary={f_path}",
                 f"--count={args.count}", "--warmup=50"],
                capture_output=True, text=True)
            if r.returncode != 0:
                bl.die(f"perf record failed: {r.stderr}")
            if agent:
                s = agent.stop()
                agent.out.unlink()
                print(f"# {cond}: {bl.SUMMARY_RE.search(agent.log()).group(0)}",
                      file=sys.stderr)
                assert s["ring_buffer_drops"] == 0
            results[cond] = profile(data)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    n = args.count + 50
    m = bl.machine()
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}; "
          f"source {m['source']}, execmon built {m['execmon_built']} "
          f"(sha256 {m['execmon_sha256']}); "
          f"{args.count} + 50 warm-up execs per condition; CPU µs per exec\n")
    print("| | " + " | ".join(conds) + " |")
    print("|---|" + "---:|" * len(conds))
    for label in ["exec path"] + [f[0] for f in FRAMES] + ["agent user", "agent kernel"]:
        print(f"| {label} | " + " | ".join(
            f"{results[c][label] * PERIOD_US / n:.1f}" for c in conds)
            + " |")
    print(f"\nperf data: {logdir}")


if __name__ == "__main__":
    main()
