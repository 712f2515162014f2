#!/usr/bin/env python3
"""Sustained exec rate with the agent, and loss (docs/performance.md, "Exec storm").

Each storm is build/bench/exec_storm: --workers processes (default 2 = both
cores of the reference VM), each a tight fork+execve+waitpid loop of F (a
copy of build/bench/tiny in tmpfs) for --seconds. Conditions, alternated
round-robin:

  none  no agent: the machine's exec rate
  hit   agent (--cache_min_age=1s), F cached before the storm: every exec a hit
  miss  agent (--cache_min_age=1h), F younger than 1 h is never cached: every
        exec a miss resolved by task_work
  stall a check of the loss accounting, not a performance condition: as hit,
        but with --ring_buffer_mb=1 and the agent process SIGSTOPped for the
        whole storm (SIGCONT after it), so the ring buffer must overflow

The agent writes to a file. After the storm it is stopped with SIGTERM (it
drains the ring buffer before exiting), then the exec events of the storm are
counted in its output (binary F, argv ["tiny","s"]) and compared with the
execs exec_storm made and the agent's kernel counters:

  kernel execs == exec events written + exec events dropped   (all execs)
  made == storm events written + storm events dropped
  (storm events dropped = exec drops - dropped execs of other programs,
   where other programs' execs = kernel execs - made)

Usage (root):  bench/run_exec_storm.py [--rounds=2] [--seconds=10] [--workers=2]
              [--conditions=none,hit,miss,stall]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--spawn", choices=["fork", "vfork"], default="fork")
    p.add_argument("--conditions", default="none,hit,miss,stall")
    p.add_argument("--agent_flags", default="",
                   help="extra flags for execmon run, space-separated "
                        "(e.g. --ring_buffer_mb=1)")
    p.add_argument("--quiet_wait", type=float, default=5,
                   help="before each storm wait up to this many s for an idle machine")
    p.add_argument("--max_seconds", type=float, default=170,
                   help="start no storm that might end after this (bounds the run)")
    p.add_argument("--noise_limit", type=float, default=0.05,
                   help="a storm gets a NOISY note if other processes used more "
                        "than this fraction of all CPUs' time")
    p.add_argument("--report", metavar="LOGDIR",
                   help="measure nothing: print the tables of an earlier run again")
    p.add_argument("--bindir", default="/dev/shm")
    p.add_argument("--logdir", default="/tmp")
    return p.parse_args()


def storm(cond, args, f_path, logdir, tag):
    flags = {"hit": ["--cache_min_age=1s"], "miss": ["--cache_min_age=1h"],
             "stall": ["--cache_min_age=1s", "--ring_buffer_mb=1"]}.get(cond)
    agent = None
    if flags is not None:
        flags = ["--snapshot=false", *flags, *args.agent_flags.split()]
        agent = bl.Agent(logdir, tag, flags)
        if cond in ("hit", "stall"):
            subprocess.run([str(f_path), "w"], check=True)  # caches F
    bl.wait_for_quiet(args.quiet_wait)
    if cond == "stall":
        os.kill(agent.proc.pid, signal.SIGSTOP)
    busy0, steal0 = bl.cpu_times()
    cmd = [str(bl.EXEC_STORM), f"--binary={f_path}", f"--workers={args.workers}",
           f"--seconds={args.seconds}", f"--spawn={args.spawn}"]
    own = {agent.proc.pid} if agent else set()
    others = bl.foreign_agents(own)
    r = subprocess.run(cmd, capture_output=True, text=True)
    busy1, steal1 = bl.cpu_times()
    others += bl.foreign_agents(own)
    if cond == "stall":
        os.kill(agent.proc.pid, signal.SIGCONT)
    if r.returncode != 0:
        if agent:
            agent.stop()
        bl.die(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    res = json.loads(r.stdout)
    res["cond"] = cond
    res["busy_cpu_s"] = round(busy1 - busy0, 2)
    res["steal_s"] = round(steal1 - steal0, 2)
    agent_cpu_storm = (agent.cpu_seconds() - agent._cpu_at_ready) if agent else 0.0
    # CPU other processes used during the storm (ticks: +-0.02 s).
    res["foreign_cpu_s"] = round(res["busy_cpu_s"] - res["cpu_s"] - agent_cpu_storm, 2)
    res["other_execmon"] = sorted(set(others))
    if agent is None:
        return res
    agent_cpu = agent.cpu_seconds() - agent._cpu_at_ready
    t_stop = time.monotonic()
    s = agent.stop()
    res["drain_s"] = round(time.monotonic() - t_stop, 2)
    res["agent_cpu_s"] = round(agent_cpu, 2)
    events = agent.exec_events()
    mine = [e for e in events if e["process"]["binary"] == str(f_path)
            and e["process"]["args"] == ["tiny", "s"]]
    sources = {}
    for e in mine:
        p = e["process"]
        key = p["build_id_source"] if p["build_id"] == bl.TINY_BUILD_ID else \
            f"{p['build_id_source']}/{p['build_id_error']}"
        sources[key] = sources.get(key, 0) + 1
    made, received = res["made"], len(mine)
    other_total = s["execs"] - made
    other_received = len(events) - received
    exec_drops = s["exec_drops"]
    storm_dropped = exec_drops - (other_total - other_received)
    res.update({
        "received": received, "lost": made - received, "sources": sources,
        "kernel": {k: s[k] for k in ("execs", "cache_hits", "cache_misses",
                                     "task_work", "ring_buffer_drops")},
        "losses": s["losses"], "exec_drops": exec_drops,
        "other_execs": other_total, "other_received": other_received,
        "storm_dropped": storm_dropped,
        "check_kernel": s["execs"] == len(events) + exec_drops,
        "check_storm": received + storm_dropped == made,
        "agent_exec": s["agent_exec"],
    })
    agent.out.unlink()  # large; the agent log with its counters is kept
    return res


def noisy(res, args):
    """Other processes used more than --noise_limit of the machine's CPU
    capacity during the storm. (At full exec rate, kernel threads doing
    deferred work for the storm's own processes, e.g. RCU frees of tasks
    and address spaces, also count as "other": ~0.55 CPU s per 10 s storm
    on an idle machine, ~2.7 % of 2 CPUs.)"""
    cpus = os.cpu_count() or 1
    return res["foreign_cpu_s"] > args.noise_limit * cpus * res["elapsed_s"]


def report(m, args, conds, results, wall):
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}; "
          f"source {m['source']}, execmon built {m['execmon_built']} "
          f"(sha256 {m['execmon_sha256']})")
    print(f"{len(results)} storms of {args.seconds:g} s ({', '.join(conds)}, "
          f"alternated), "
          f"{args.workers} workers, spawn={args.spawn}, agent flags: --snapshot=false "
          f"{args.agent_flags}; {wall:.0f} s\n")
    print("| round | cond | execs made | execs/s | exec events received | "
          "storm execs lost | ring_buffer_drops (exec) | other loss counters | "
          "received + dropped == made | agent CPU s | drain s | build_id_source | notes |")
    print("|---:|---|---:|---:|---:|---:|---|---|---|---:|---:|---|---|")
    for res in results:
        notes = []
        if res["other_execmon"]:
            notes.append(f"another execmon ran (pids {res['other_execmon']})")
        if res["steal_s"] > 0.05 * res["elapsed_s"]:
            notes.append(f"steal {res['steal_s']} s")
        if noisy(res, args):
            notes.append(f"NOISY: other processes used {res['foreign_cpu_s']} CPU s")
        notes = "; ".join(notes)
        if res["cond"] == "none":
            print(f"| {res['round']} | none | {res['made']} | {res['execs_per_s']:.0f} | "
                  f"— | — | — | — | — | — | — | — | {notes} |")
            continue
        other = {k: v for k, v in res["losses"].items()
                 if k != "exec events lost: ring buffer full"}
        print(f"| {res['round']} | {res['cond']} | {res['made']} | "
              f"{res['execs_per_s']:.0f} | {res['received']} | {res['lost']} | "
              f"{res['kernel']['ring_buffer_drops']} ({res['exec_drops']}) | "
              f"{other or 'none'} | "
              f"{'yes' if res['check_storm'] and res['check_kernel'] else 'NO'} "
              f"({res['received']} + {res['storm_dropped']} vs {res['made']}) | "
              f"{res['agent_cpu_s']} | {res['drain_s']} | {res['sources']} | {notes} |")
    rates = {}
    clean = [x for x in results if not x["other_execmon"] and not noisy(x, args)]
    for c in conds:
        v = [x["execs_per_s"] for x in clean if x["cond"] == c]
        if v:
            rates[c] = sum(v) / len(v)
    if "none" in rates:
        print("\nmean execs/s of the storms without notes: " + ", ".join(
            f"{c} {rates[c]:.0f} ({rates[c] / rates['none']:.3f}x none)" for c in rates
            if c != "stall"))


def main():
    args = parse_args()
    conds = args.conditions.split(",")
    if args.report:
        res = json.loads((Path(args.report) / "results.json").read_text())
        report(res["machine"], args, conds, res["storms"], res["wall_s"])
        return
    bl.check_prerequisites()
    if any(c not in ("none", "hit", "miss", "stall") for c in conds):
        bl.die("--conditions: want none, hit, miss, stall")
    bindir = Path(tempfile.mkdtemp(prefix="execmon-storm.", dir=args.bindir))
    logdir = Path(tempfile.mkdtemp(prefix="execmon-storm.", dir=args.logdir))
    print(f"# logs: {logdir}", file=sys.stderr)
    bl.use_agent_copy(logdir)
    results = []
    t0 = time.monotonic()
    try:
        f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
        time.sleep(2)  # older than the hit agent's --cache_min_age=1s
        longest = 0.0
        for r in range(args.rounds):
            order = conds[r % len(conds):] + conds[:r % len(conds)]
            for c in order:
                if time.monotonic() - t0 + longest > args.max_seconds:
                    break
                t_storm = time.monotonic()
                res = storm(c, args, f_path, logdir, f"r{r}.{c}")
                longest = max(longest, time.monotonic() - t_storm)
                res["round"] = r
                results.append(res)
                print(f"# {json.dumps(res)}", file=sys.stderr)
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    wall = time.monotonic() - t0
    m = bl.machine()
    report(m, args, conds, results, wall)
    (logdir / "results.json").write_text(json.dumps(
        {"machine": m, "args": vars(args), "wall_s": wall, "storms": results}, indent=1))
    print(f"\nagent logs, results.json: {logdir}")
    bad = [x for x in results if x["cond"] != "none"
           and not (x["check_storm"] and x["check_kernel"])]
    if bad:
        print("ACCOUNTING MISMATCH: see the rows marked NO", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
