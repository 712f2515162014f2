#!/usr/bin/env python3
"""Exec latency with and without the agent (docs/performance.md, "Exec latency").

Conditions, alternated round-robin (the order rotates every round), each a
batch of --count timed fork+execve+waitpid of build/bench/tiny (static,
returns 0) run by build/bench/exec_bench:

  A   no agent process at all; the same file F every exec
  B   agent running (--cache_min_age=1s), F cached: every timed exec a HIT
  C   agent running (--cache_min_age=1h), F younger than 1 h is never
      cached: every timed exec a MISS resolved at exec (page_cache, or
      task_work where the page-cache path is not loaded)
  A2  no agent; every timed exec runs a distinct, never-executed copy of F
  C2  agent running (--cache_min_age=1h); distinct copies, as A2: every
      timed exec a first-seen binary (MISS)
  Bk, Ck  (diagnostics, --conditions=A,B,C,Bk,Ck) as B and C, but the agent
      process is SIGSTOPped for the timed batch: the BPF programs still run
      and fill the ring buffer, nothing consumes it until SIGCONT. Separates
      the in-kernel cost from the cost of the agent's user-space work.
  B0, C0  (diagnostics) as B and C with --ringbuf_wakeup_bytes=0: the BPF
      programs wake the agent for every ring-buffer record (the behaviour
      before wakeup batching), with the same agent binary.

F is one copy of tiny in a tmpfs directory, made --hit_age seconds before
the first round (older than B's --cache_min_age). A fresh agent is started
for every B/C/C2 batch (start-up ~0.3 s, snapshot off) and stopped with
SIGTERM after it; no agent runs during A/A2 batches. Every batch, with or
without agent, is preceded by the same --settle pause. After each agent batch
the agent's events for the timed execs are checked (all present, build ID
right, build_id_source "cache" for B and "page_cache" or "task_work" for
C/C2) and its
summary counters are recorded (B: cache_hits; C/C2: cache_hits must be 0).

Every agent runs with --bpf_stats, so the kernel times each run of its BPF
programs. Read from /proc/PID/fdinfo just before and after each timed batch,
they give the in-kernel cost per exec within that very batch, and its ratio
to the batch's own mean latency: a measure that the machine's drift between
batches does not blur (the end-to-end ratios of alternated batches still
carry it). The statistics' own cost (two clock reads per program run) is
part of the agent conditions' latency.

The VM may be shared: before each round the driver waits (up to
--quiet_wait s) for an idle machine with no other execmon process; a round is
reported as noisy if during any of its batches another execmon ran, or other
processes used, or the hypervisor stole, more than max(--noise_floor,
--noise_limit x wall time) of CPU (from /proc/stat, minus exec_bench's,
its children's and the agent's own CPU time). Results are printed for the
quiet rounds and for all rounds.

Usage (root):  bench/run_exec_bench.py [--rounds=18] [--count=400] [--pin]
              [--conditions=A,B,C,A2,C2]
Prints a Markdown table; raw samples, agent logs and results.json are kept in
the printed directory.
"""
import argparse
import json
import random
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


# Expected build_id_source of the timed execs: a cache hit, or a miss
# resolved at exec by whichever at-exec path the agent loaded.
HIT = ("cache",)
AT_EXEC = ("page_cache", "task_work")


class Cond:
    def __init__(self, name, desc, agent_flags, distinct, expect, stopped=False):
        self.name, self.desc, self.stopped = name, desc, stopped
        self.agent_flags, self.distinct, self.expect = agent_flags, distinct, expect
        self.samples = []        # ns, all rounds
        self.round_medians = []  # per-round median, ns (round order)
        self.kernel = {}         # summed agent summary counters
        self.agent_cpu_s = 0.0
        self.checked_events = 0
        self.stray = []          # summary anomalies (non-fatal, reported)
        self.batches = []        # per round: {"median_ns", "foreign_s", ...}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=18)
    p.add_argument("--count", type=int, default=400, help="timed execs per batch")
    p.add_argument("--warmup", type=int, default=20, help="untimed execs of F per batch")
    p.add_argument("--spawn", choices=["fork", "vfork"], default="fork")
    p.add_argument("--pin", action="store_true",
                   help="exec_bench (and its children) on CPU 0, the agent on CPU 1")
    p.add_argument("--settle", type=float, default=0.3,
                   help="pause before every batch, seconds")
    p.add_argument("--hit_age", type=float, default=2.0,
                   help="age of F (s) before round 1; must exceed 1 s")
    p.add_argument("--conditions", default="A,B,C,A2,C2",
                   help="comma-separated; also Bk, Ck (diagnostics: agent stopped) "
                        "and B0, C0 (one ring-buffer wakeup per record)")
    p.add_argument("--noise_limit", type=float, default=0.10,
                   help="a round is 'noisy' if, in any batch, another execmon ran, "
                        "or CPU used by other processes or stolen by the "
                        "hypervisor exceeds this fraction of the batch's wall time")
    p.add_argument("--noise_floor", type=float, default=0.04,
                   help="... or this many CPU seconds, whichever is more (/proc/stat "
                        "counts in 10 ms ticks)")
    p.add_argument("--quiet_wait", type=float, default=10,
                   help="before each round wait up to this many s for an idle machine")
    p.add_argument("--max_seconds", type=float, default=160,
                   help="start no round that might end after this (bounds the run)")
    p.add_argument("--merge", nargs="+", metavar="LOGDIR",
                   help="measure nothing: pool the rounds of earlier runs (their "
                        "printed directories) and print the tables again")
    p.add_argument("--bindir", default="/dev/shm", help="tmpfs for F and the copies")
    p.add_argument("--logdir", default="/tmp", help="where agent output and results go")
    return p.parse_args()


def verify(cond, batch_events, summary, f_path, copies_dir, n):
    if cond.distinct:
        timed = [e for e in batch_events
                 if e["process"]["binary"].startswith(str(copies_dir) + "/")
                 and e["process"]["args"] == ["tiny", "t"]]
    else:
        timed = [e for e in batch_events
                 if e["process"]["binary"] == str(f_path)
                 and e["process"]["args"] == ["tiny", "t"]]
    if len(timed) != n:
        bl.die(f"{cond.name}: {len(timed)} exec events for {n} timed execs")
    for e in timed:
        p = e["process"]
        if p["build_id"] != bl.TINY_BUILD_ID or p["build_id_source"] not in cond.expect:
            bl.die(f"{cond.name}: unexpected event (want source {cond.expect}): "
                   f"{json.dumps(p)}")
        if cond.expect is AT_EXEC and (p["build_id_late"] or p["build_id_cached"]):
            bl.die(f"{cond.name}: miss event late or cached: {json.dumps(p)}")
    if summary["ring_buffer_drops"] or summary["losses"]:
        bl.die(f"{cond.name}: agent reported loss: {summary}")
    if summary["agent_exec"] != summary["execs"]:
        bl.die(f"{cond.name}: kernel saw {summary['execs']} execs, agent wrote "
               f"{summary['agent_exec']}")
    if cond.expect is HIT and summary["cache_hits"] < n:
        bl.die(f"{cond.name}: cache_hits={summary['cache_hits']} < {n} timed execs")
    if cond.expect is AT_EXEC:
        if summary["cache_hits"] != 0:
            cond.stray.append(f"cache_hits={summary['cache_hits']} (other execs on "
                              "the machine?)")
        if summary["cache_misses"] < n:
            bl.die(f"{cond.name}: cache_misses={summary['cache_misses']} < {n}")
    cond.checked_events += len(timed)


def run_batch(cond, args, f_path, copies_dir, logdir, tag, before=None, check=None):
    """One batch of `cond`: its agent (if any), exec_bench, the checks of
    the agent's events. `before()` runs untimed once the agent is up, in
    every condition alike; `check(events, agent)` adds checks of the agent's
    exec events. Returns True if the batch was noisy."""
    agent = None
    if cond.agent_flags is not None:
        agent = bl.Agent(logdir, tag, cond.agent_flags, cpu=1 if args.pin else None)
    if before is not None:
        before()
    time.sleep(args.settle)
    samples_file = logdir / f"{tag}.ns"
    cmd = [str(bl.EXEC_BENCH), f"--binary={f_path}", f"--count={args.count}",
           f"--warmup={args.warmup}", f"--spawn={args.spawn}", f"--out={samples_file}"]
    if cond.distinct:
        cmd.append(f"--copies={copies_dir}")
    if args.pin:
        cmd.append("--cpu=0")
    own = {agent.proc.pid} if agent else set()
    others = bl.foreign_agents(own)
    if cond.stopped:
        os.kill(agent.proc.pid, signal.SIGSTOP)
    busy0, steal0 = bl.cpu_times()
    agent_cpu0 = agent.cpu_seconds() if agent else 0.0
    bpf0 = bl.prog_stats(agent.proc.pid) if agent else {}
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    bpf1 = bl.prog_stats(agent.proc.pid) if agent else {}
    if cond.stopped:
        os.kill(agent.proc.pid, signal.SIGCONT)
    agent_cpu = (agent.cpu_seconds() - agent_cpu0) if agent else 0.0
    busy1, steal1 = bl.cpu_times()
    others += bl.foreign_agents(own)
    if r.returncode != 0:
        if agent:
            agent.stop()
        bl.die(f"{' '.join(cmd)} failed:\n{r.stderr}")
    samples = [int(x) for x in samples_file.read_text().split()]
    bench_cpu_ns = json.loads(r.stdout)["cpu_ns"]
    ours = bench_cpu_ns / 1e9 + agent_cpu
    # CPU time something other than exec_bench, its children and the agent
    # used during the batch (/proc/stat ticks: +-0.01 s per CPU), and steal.
    foreign = (busy1 - busy0) - ours
    steal = steal1 - steal0
    bpf = bl.prog_stats_delta(bpf0, bpf1) if agent else {}
    if agent:
        summary = agent.stop()
        events = agent.exec_events()
        verify(cond, events, summary, f_path, copies_dir, args.count)
        if check is not None:
            check(events, agent)
        for k, v in summary.items():
            if isinstance(v, int):
                cond.kernel[k] = cond.kernel.get(k, 0) + v
        cond.agent_cpu_s += summary["agent_cpu_s"]
        agent.out.unlink()  # large; the log (with the summary) is kept
    cond.samples.extend(samples)
    cond.round_medians.append(bl.quantile(sorted(samples), 0.5))
    cond.batches.append({"samples": samples, "median_ns": cond.round_medians[-1],
                         "wall_s": wall, "foreign_s": foreign, "steal_s": steal,
                         "agent_cpu_s": agent_cpu, "other_execmon": sorted(set(others)),
                         # CPU (user + sys) of exec_bench and its children per
                         # exec: the exec path's own work, BPF programs included,
                         # without waiting for a CPU.
                         "cpu_per_exec_ns": bench_cpu_ns / (args.count + args.warmup),
                         "mean_ns": sum(samples) / len(samples),
                         # The agent's BPF programs during the batch, from
                         # the kernel's statistics: {name: (ns, runs)}.
                         "bpf": bpf,
                         "loadavg": " ".join(bl.loadavg())})
    limit = max(args.noise_floor, args.noise_limit * wall)
    return foreign > limit or steal > limit or bool(others)


def known_conditions():
    # --bpf_stats: the kernel times every run of the agent's programs (two
    # clock reads per run, counted in the agent conditions' latency), which
    # gives their in-kernel cost per exec within the very batch (report()).
    hit_flags = ["--snapshot=false", "--cache_min_age=1s", "--bpf_stats"]
    miss_flags = ["--snapshot=false", "--cache_min_age=1h", "--bpf_stats"]
    return {c.name: c for c in [
        Cond("A", "no agent", None, False, None),
        Cond("B", "agent, every exec a cache hit", hit_flags, False, HIT),
        Cond("C", "agent, every exec a miss (resolved at exec)", miss_flags, False, AT_EXEC),
        Cond("A2", "no agent, distinct never-run copies", None, True, None),
        Cond("C2", "agent, distinct copies: first-seen misses", miss_flags, True,
             AT_EXEC),
        Cond("Bk", "as B, agent SIGSTOPped during the batch", hit_flags,
             False, HIT, stopped=True),
        Cond("B0", "as B, one wakeup per record (--ringbuf_wakeup_bytes=0)",
             [*hit_flags, "--ringbuf_wakeup_bytes=0"], False, HIT),
        Cond("C0", "as C, one wakeup per record (--ringbuf_wakeup_bytes=0)",
             [*miss_flags, "--ringbuf_wakeup_bytes=0"], False, AT_EXEC),
        Cond("Ck", "as C, agent SIGSTOPped during the batch", miss_flags,
             False, AT_EXEC, stopped=True),
    ]}


def main():
    args = parse_args()
    if args.merge:
        return merge(args.merge)
    bl.check_prerequisites()
    known = known_conditions()
    names = args.conditions.split(",")
    if "A" not in names or any(n not in known for n in names):
        bl.die(f"--conditions: want A plus any of {', '.join(known)}")
    conds = [known[n] for n in names]
    bindir = Path(tempfile.mkdtemp(prefix="execmon-bench.", dir=args.bindir))
    logdir = Path(tempfile.mkdtemp(prefix="execmon-bench.", dir=args.logdir))
    bl.use_agent_copy(logdir)
    if ({"B0", "C0"} & set(names)) and not bl.agent_supports("ringbuf_wakeup_bytes"):
        bl.die("B0/C0 need an agent with --ringbuf_wakeup_bytes")
    try:
        f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
        copies_dir = bindir / "copies"
        copies_dir.mkdir()
        time.sleep(args.hit_age)
        print(f"# logs and raw samples: {logdir}", file=sys.stderr)
        t0 = time.monotonic()
        rounds = 0
        noisy_rounds = []
        for r, order in bl.alternated_rounds(conds, args.rounds, args.max_seconds,
                                             args.quiet_wait):
            noisy = False
            for c in order:
                noisy |= run_batch(c, args, f_path, copies_dir, logdir,
                                   f"r{r:03d}.{c.name}")
            noisy_rounds.append(noisy)
            rounds += 1
            if any(c.batches[-1]["other_execmon"] for c in conds):
                print("# another execmon ran during this round", file=sys.stderr)
            print(f"# round {r + 1}/{args.rounds}{' NOISY' if noisy else ''}: " +
                  "  ".join(f"{c.name}={c.round_medians[-1] / 1000:.0f}us"
                            f"/{c.batches[-1]['foreign_s']:+.2f}s" for c in conds),
                  file=sys.stderr)
        wall = time.monotonic() - t0
    finally:
        shutil.rmtree(bindir, ignore_errors=True)

    results = report(conds, args, rounds, wall, noisy_rounds)
    (logdir / "results.json").write_text(json.dumps(results, indent=1))
    for c in conds:
        (logdir / f"{c.name}.all.ns").write_text("\n".join(map(str, c.samples)) + "\n")
    print(f"\nraw samples, agent logs, results.json: {logdir}")


def merge(dirs):
    """Rounds are self-contained (every condition once, alternated), so the
    rounds of several runs can be pooled. Runs with different condition sets
    are pooled on the conditions they all have."""
    known = known_conditions()
    runs = [(d, json.loads((d / "results.json").read_text())) for d in map(Path, dirs)]
    names = [n for n in runs[0][1]["batches"]
             if all(n in res["batches"] for _, res in runs)]
    if "A" not in names:
        bl.die("the runs have no common conditions with A")
    if len({res["args"]["pin"] for _, res in runs}) > 1:
        print("warning: pooling pinned and unpinned runs")
    conds = [known[n] for n in names]
    quiet, total = [], 0
    for d, res in runs:
        m = res["machine"]
        print(f"{d}: {res['rounds']} rounds ({res['rounds'] - len(res['noisy_rounds'])} "
              f"quiet), count {res['args']['count']}, spawn {res['args']['spawn']}, "
              f"pin {res['args']['pin']}; source {m.get('source')}, execmon built "
              f"{m.get('execmon_built')} (sha256 {m.get('execmon_sha256')})")
        for r in range(res["rounds"]):
            for c in conds:
                s = [int(x) for x in (d / f"r{r:03d}.{c.name}.ns").read_text().split()]
                saved = res["batches"][c.name][r]
                c.batches.append({"samples": s, "median_ns": bl.quantile(sorted(s), 0.5),
                                  "mean_ns": sum(s) / len(s),
                                  "bpf": saved.get("bpf", {})})
            if r not in res["noisy_rounds"]:
                quiet.append(total)
            total += 1
        for n, k in res["kernel"].items():
            if n not in names:
                continue
            c = known[n]
            for key, v in k.items():
                c.kernel[key] = c.kernel.get(key, 0) + v
    table(conds, quiet, "Quiet rounds of all runs")
    table(conds, list(range(total)), "All rounds of all runs")
    print()
    for c in conds:
        if c.kernel:
            k = c.kernel
            print(f"- {c.name}: kernel summary summed over batches: execs={k['execs']} "
                  f"cache_hits={k['cache_hits']} cache_misses={k['cache_misses']} "
                  f"task_work={k['task_work']} ring_buffer_drops={k['ring_buffer_drops']}")


def bootstrap_median_ci(values, n=2000, seed=1):
    """95% interval of the median of `values`, resampling them (rounds)."""
    rng = random.Random(seed)
    meds = sorted(bl.quantile(sorted(rng.choices(values, k=len(values))), 0.5)
                  for _ in range(n))
    return bl.quantile(meds, 0.025), bl.quantile(meds, 0.975)


def table(conds, rounds_used, title):
    """Prints the statistics of the given rounds; returns them."""
    by = {c.name: c for c in conds}
    stats = {}
    for c in conds:
        s = sorted(x for r in rounds_used for x in c.batches[r]["samples"])
        stats[c.name] = {"n": len(s), "median_us": bl.quantile(s, 0.5) / 1e3,
                         "p90_us": bl.quantile(s, 0.9) / 1e3,
                         "mean_us": sum(s) / max(len(s), 1) / 1e3}
    print(f"\n### {title}: {len(rounds_used)} rounds\n")
    if not rounds_used:
        return {"rounds": 0}
    print("| cond | what | execs | median µs | p90 µs | mean µs |")
    print("|---|---|---:|---:|---:|---:|")
    for c in conds:
        st = stats[c.name]
        print(f"| {c.name} | {c.desc} | {st['n']} | {st['median_us']:.1f} | "
              f"{st['p90_us']:.1f} | {st['mean_us']:.1f} |")
    pairs = [(x, "A") for x in ("B", "C", "Bk", "Ck", "B0", "C0", "A2") if x in by]
    if "C2" in by and "A2" in by:
        pairs.insert(2, ("C2", "A2"))
    goals = {("B", "A"): "≤ 1.02", ("C", "A"): "≤ 1.05", ("C2", "A2"): "≤ 1.05"}
    ratios = {}
    print("\n| ratio | of medians | of p90s | per-round ratio of medians: "
          "median [p10, p90] | 95% CI of that median (bootstrap over rounds) | goal |")
    print("|---|---:|---:|---|---|---|")
    for x, y in pairs:
        per_round = sorted(by[x].batches[r]["median_ns"] / by[y].batches[r]["median_ns"]
                           for r in rounds_used)
        r = {"median": stats[x]["median_us"] / stats[y]["median_us"],
             "p90": stats[x]["p90_us"] / stats[y]["p90_us"],
             "per_round_median": bl.quantile(per_round, 0.5),
             "per_round_p10": bl.quantile(per_round, 0.1),
             "per_round_p90": bl.quantile(per_round, 0.9)}
        r["ci95"] = bootstrap_median_ci(per_round)
        ratios[f"{x}/{y}"] = r
        print(f"| {x}/{y} | {r['median']:.3f} | {r['p90']:.3f} | "
              f"{r['per_round_median']:.3f} [{r['per_round_p10']:.3f}, "
              f"{r['per_round_p90']:.3f}] | {r['ci95'][0]:.3f} – {r['ci95'][1]:.3f} | "
              f"{goals.get((x, y), '—')} |")
    kernel = kernel_cost(conds, rounds_used)
    return {"rounds": len(rounds_used), "stats": stats, "ratios": ratios,
            "kernel_cost": kernel}


def kernel_cost(conds, rounds_used):
    """The agent's in-kernel cost per exec, measured inside each batch: the
    time the kernel spent in the agent's BPF programs (its statistics, from
    --bpf_stats) divided by the runs of the exec program, against that
    batch's own mean exec latency. Latency noise between batches (the
    machine's speed drifts) cancels, as both come from the same seconds;
    what it leaves out is the agent's user-space work on the other CPU and
    the kernel's dispatch to the programs (not timed by the statistics)."""
    rows = {}
    for c in conds:
        batches = [c.batches[r] for r in rounds_used if c.batches[r].get("bpf")]
        if not batches:
            continue
        ratios, progs = [], {}
        tot_ns = tot_execs = tot_lat = tot_n = 0
        for b in batches:
            runs = b["bpf"].get("em_exec", (0, 0))[1]
            if not runs:
                continue
            ns = sum(v[0] for v in b["bpf"].values())
            ratios.append(b["mean_ns"] / (b["mean_ns"] - ns / runs))
            for name, (pns, _) in b["bpf"].items():
                progs[name] = progs.get(name, 0) + pns
            tot_ns, tot_execs = tot_ns + ns, tot_execs + runs
            tot_lat, tot_n = tot_lat + b["mean_ns"], tot_n + 1
        if not ratios:
            continue
        ns_exec = tot_ns / tot_execs
        mean_lat = tot_lat / tot_n
        ratios.sort()
        rows[c.name] = {
            "bpf_ns_per_exec": ns_exec, "mean_latency_ns": mean_lat,
            "ratio_pooled": mean_lat / (mean_lat - ns_exec),
            "ratio_per_batch": [bl.quantile(ratios, q) for q in (0.0, 0.5, 1.0)],
            "programs_ns_per_exec": {k: v / tot_execs for k, v in sorted(progs.items())}}
    if not rows:
        return rows
    print("\n#### In-kernel cost, measured within the same batches (kernel BPF "
          "statistics)\n")
    print("| cond | BPF µs per exec | by program (µs per exec) | mean exec µs "
          "| in-kernel ratio, pooled | per batch: median [min, max] |")
    print("|---|---:|---|---:|---:|---|")
    for name, k in rows.items():
        progs = ", ".join(f"{p} {v / 1e3:.2f}" for p, v in
                          k["programs_ns_per_exec"].items() if v >= 5)
        lo, med, hi = k["ratio_per_batch"]
        print(f"| {name} | {k['bpf_ns_per_exec'] / 1e3:.2f} | {progs} | "
              f"{k['mean_latency_ns'] / 1e3:.1f} | {k['ratio_pooled']:.4f} | "
              f"{med:.4f} [{lo:.4f}, {hi:.4f}] |")
    return rows


def report(conds, args, rounds, wall, noisy_rounds):
    m = bl.machine()
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}; "
          f"source {m['source']}, execmon built {m['execmon_built']} "
          f"(sha256 {m['execmon_sha256']})")
    print(f"{rounds} rounds x {args.count} timed execs per condition "
          f"(spawn={args.spawn}, pin={'bench CPU0 / agent CPU1' if args.pin else 'no'}), "
          f"{wall:.0f} s")
    quiet = [r for r in range(rounds) if not noisy_rounds[r]]
    results = {"machine": m, "args": vars(args), "rounds": rounds, "wall_s": wall,
               "noisy_rounds": [r for r in range(rounds) if noisy_rounds[r]]}
    results["quiet"] = table(
        conds, quiet, f"Quiet rounds (in every batch: no other execmon; CPU of other processes "
        f"and steal each < max({args.noise_floor} s, {args.noise_limit:.0%} of "
        f"wall time))")
    results["all"] = table(conds, list(range(rounds)), "All rounds")

    print("\n### Agent-side checks (all rounds)\n")
    for c in conds:
        if not c.kernel:
            continue
        k = c.kernel
        n_execs = max(k["execs"], 1)
        print(f"- {c.name}: {c.checked_events} timed-exec events checked "
              f"(build_id_source={c.expect}, build ID {bl.TINY_BUILD_ID}); kernel "
              f"summary summed over batches: execs={k['execs']} "
              f"cache_hits={k['cache_hits']} cache_misses={k['cache_misses']} "
              f"task_work={k['task_work']} ring_buffer_drops={k['ring_buffer_drops']}; "
              f"agent CPU {c.agent_cpu_s / n_execs * 1e6:.0f} µs per exec"
              + (f"; anomalies: {sorted(set(c.stray))}" if c.stray else ""))
    results["kernel"] = {c.name: c.kernel for c in conds}
    results["agent_cpu_s"] = {c.name: c.agent_cpu_s for c in conds}
    results["batches"] = {c.name: [{k: v for k, v in b.items() if k != "samples"}
                                   for b in c.batches] for c in conds}
    return results


if __name__ == "__main__":
    main()
