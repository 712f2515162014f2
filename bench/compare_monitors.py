#!/usr/bin/env python3
"""Exec latency under the exec monitors a user could pick, side by side
(docs/performance.md, "Against other exec monitors").

Conditions, alternated round-robin (the order rotates every round), each a
batch of --count timed fork+execve+waitpid of build/bench/tiny run by
build/bench/exec_bench, on one file F (so execmon serves it from its cache,
as it would every binary a node runs again and again), or with --distinct
on never-run copies (every exec a first-seen binary):

  none      no monitor
  execmon   `execmon run` on its defaults (snapshot off), events to a file
  bpftrace  a sched_process_exec one-liner printing pid and filename to a file
  auditd    auditd with one rule: -a always,exit -F arch=b64 -S execve

Every monitor is started before its batch and stopped after it; each batch
is preceded by the same --settle pause. The ratio reported is the median of
per-round medians of a condition over the same round's "none".

Usage (root): bench/compare_monitors.py [--rounds=10] [--count=300]
              [--monitors=execmon,bpftrace,auditd] [--distinct]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

BPFTRACE_PROG = ('tracepoint:sched:sched_process_exec '
                 '{ printf("%d %s\\n", pid, str(args->filename)); }')
AUDIT_RULE = ["-a", "always,exit", "-F", "arch=b64", "-S", "execve",
              "-k", "execmon-bench"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--count", type=int, default=300, help="timed execs per batch")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--monitors", default="execmon,bpftrace,auditd")
    p.add_argument("--distinct", action="store_true",
                   help="every timed exec a distinct never-run copy of F")
    p.add_argument("--max_seconds", type=float, default=600)
    p.add_argument("--bindir", default="/dev/shm")
    p.add_argument("--logdir", default="/tmp")
    return p.parse_args()


def wait_for_file_text(path, text, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            bl.die(f"{what} exited {proc.returncode}: {path.read_text(errors='replace')}")
        time.sleep(0.05)
    bl.die(f"{what} not ready in {timeout} s")


class Execmon:
    name = "execmon"

    def __init__(self, logdir):
        self.logdir = logdir

    def start(self, tag):
        self.agent = bl.Agent(self.logdir, tag, ["--snapshot=false"])

    def stop(self):
        summary = self.agent.stop()
        self.agent.out.unlink()
        return f"execs={summary['execs']} hits={summary['cache_hits']}"


class Bpftrace:
    name = "bpftrace"

    def __init__(self, logdir):
        self.logdir = logdir
        self.mounted = False
        if not os.path.ismount("/sys/kernel/tracing"):
            subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                           check=True)
            self.mounted = True

    def start(self, tag):
        self.out = self.logdir / f"{tag}.bpftrace.txt"
        self.err = self.logdir / f"{tag}.bpftrace.err"
        self.proc = subprocess.Popen(["bpftrace", "-o", str(self.out), "-e", BPFTRACE_PROG],
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))
        wait_for_file_text(self.out, "Attaching", self.proc, "bpftrace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        lines = self.out.read_text(errors="replace").count("\n")
        self.out.unlink()
        return f"lines={lines}"

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "/sys/kernel/tracing"], check=False)


class Auditd:
    name = "auditd"

    def __init__(self, logdir):
        self.logdir = logdir

    def start(self, tag):
        self.log = self.logdir / f"{tag}.audit.log"
        conf = self.logdir / "auditd.conf"
        conf.write_text(f"log_file = {self.log}\nlog_format = ENRICHED\n"
                        "flush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 0\n"
                        "max_log_file_action = ignore\nspace_left = 2\n"
                        "admin_space_left = 0\ndisk_full_action = ignore\n"
                        "disk_error_action = ignore\n")
        self.proc = subprocess.Popen(["auditd", "-n", "-c", str(self.logdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            st = subprocess.run(["auditctl", "-s"], capture_output=True, text=True).stdout
            if f"pid {self.proc.pid}" in st:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                bl.die(f"auditd did not start: {st}")
            time.sleep(0.05)
        subprocess.run(["auditctl", *AUDIT_RULE], check=True, capture_output=True)
        subprocess.run(["auditctl", "-e", "1"], check=True, capture_output=True)

    def stop(self):
        subprocess.run(["auditctl", "-D"], check=True, capture_output=True)
        subprocess.run(["auditctl", "-e", "0"], check=True, capture_output=True)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        n = self.log.read_text(errors="replace").count("type=EXECVE") if self.log.exists() else 0
        if self.log.exists():
            self.log.unlink()
        return f"execve_records={n}"


def main():
    args = parse_args()
    bl.check_prerequisites()
    names = ["none", *[m for m in args.monitors.split(",") if m]]
    bindir = Path(tempfile.mkdtemp(prefix="execmon-cmp.", dir=args.bindir))
    logdir = Path(tempfile.mkdtemp(prefix="execmon-cmp.", dir=args.logdir))
    bl.use_agent_copy(logdir)
    kinds = {"execmon": Execmon, "bpftrace": Bpftrace, "auditd": Auditd}
    for n in names[1:]:
        if n not in kinds:
            bl.die(f"--monitors: unknown {n}")
        if n != "execmon" and shutil.which(n) is None:
            bl.die(f"{n} is not installed (apt-get install {n})")
    monitors = {n: kinds[n](logdir) for n in names[1:]}
    medians = {n: [] for n in names}
    # CPU time (user + sys) of exec_bench and its children per exec: the
    # exec path's own work, the monitors' in-kernel hooks included (they
    # run in the exec'ing task), without waiting for a CPU. Steadier than
    # wall-clock latency on a shared VM.
    cpu = {n: [] for n in names}
    notes = {n: [] for n in names}
    f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
    copies = bindir / "copies"
    copies.mkdir()
    time.sleep(2)
    print(f"# logs: {logdir}", file=sys.stderr)
    try:
        for r, order in bl.alternated_rounds(names, args.rounds, args.max_seconds, 10):
            for n in order:
                tag = f"r{r:03d}.{n}"
                if n != "none":
                    monitors[n].start(tag)
                time.sleep(args.settle)
                out = logdir / f"{tag}.ns"
                cmd = [str(bl.EXEC_BENCH), f"--binary={f_path}", f"--count={args.count}",
                       f"--warmup={args.warmup}", f"--out={out}"]
                if args.distinct:
                    cmd.append(f"--copies={copies}")
                res = subprocess.run(cmd, capture_output=True, text=True)
                if n != "none":
                    notes[n].append(monitors[n].stop())
                if res.returncode != 0:
                    bl.die(f"exec_bench failed: {res.stderr}")
                samples = sorted(int(x) for x in out.read_text().split())
                medians[n].append(bl.quantile(samples, 0.5))
                cpu[n].append(json.loads(res.stdout)["cpu_ns"] /
                              (args.count + args.warmup))
    finally:
        for m in monitors.values():
            if hasattr(m, "close"):
                m.close()
    rounds = len(medians["none"])
    print(f"| monitor | median exec (µs) | latency ratio to none (median of {rounds} "
          "per-round ratios) | min–max | CPU per exec (µs) | CPU ratio to none "
          "(median of per-round ratios) | min–max |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        ratios = sorted(medians[n][i] / medians["none"][i] for i in range(rounds))
        cratios = sorted(cpu[n][i] / cpu["none"][i] for i in range(rounds))
        med = bl.quantile(sorted(medians[n]), 0.5) / 1000
        cmed = bl.quantile(sorted(cpu[n]), 0.5) / 1000
        print(f"| {n} | {med:.1f} | {bl.quantile(ratios, 0.5):.3f} | "
              f"{ratios[0]:.3f}–{ratios[-1]:.3f} | {cmed:.1f} | "
              f"{bl.quantile(cratios, 0.5):.3f} | {cratios[0]:.3f}–{cratios[-1]:.3f} |")
    for n in names[1:]:
        print(f"# {n}: {notes[n][-1] if notes[n] else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
