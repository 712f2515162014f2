#!/usr/bin/env python3
"""The cost of the exec-denial unit's content hash (bpf_ima_file_hash at
bprm_check_security), on first sight of a file and on cache hits.

Runs where the BPF LSM is active: inside a Debian kernel under qemu, with
the harness of the kernel matrix (this host refuses LSM programs):

  bash tests/vm/run_in_vm.sh --mem 2G ~/.cache/execmon/vm/kernels/matrix-6.12 -- \\
      env EXECMON_BUILD_DIR=$PWD/build python3 bench/lsm_hash_bench.py

Conditions, alternated round by round (benchlib.alternated_rounds):
  sha_on   agent on its defaults (hash every file not yet cached)
  sha_off  agent with --exe_sha256=false (the unit judges, hashes nothing)
Files: a small ELF (bench/tiny, static) and a large one (a copy of the
agent's own binary, tens of MB, run as `execmon version`).
Cases: "first": a fresh copy for every exec (never cached: its ctime is
too recent), so each exec hashes the whole file; "hit": one copy older
than --cache_min_age, exec'd again and again (its hash comes from
em_sha_cache).

Measured per exec: wall time of fork+exec+wait in this process, and the
kernel time of em_bprm_check (BPF run-time stats, --bpf_stats, from the
agent's metrics). Under TCG absolute times are inflated several-fold; the
ratios between conditions of one run are what to read.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

WORK = Path("/tmp/lsm_hash_bench")


def program_stats(port):
    time.sleep(1.5)  # the agent refreshes its metrics about once a second
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for name, key in (("execmon_bpf_program_run_seconds_total", "seconds"),
                      ("execmon_bpf_program_runs_total", "runs")):
        m = re.search(name + r'\{[^}]*program="em_bprm_check"[^}]*\} (\S+)', text)
        out[key] = float(m.group(1)) if m else 0.0
    return out


def timed_execs(cmds):
    """Wall time (ns) of fork+exec+wait of each command."""
    times = []
    for cmd in cmds:
        t0 = time.perf_counter_ns()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter_ns() - t0)
        if r.returncode != 0:
            benchlib.die(f"{cmd[0]} exited {r.returncode}")
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--count", type=int, default=20, help="execs per case and round")
    ap.add_argument("--max_seconds", type=float, default=900)
    args = ap.parse_args()
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    benchlib.use_agent_copy(WORK)
    files = {"small": (benchlib.TINY, []),
             "large": (benchlib.EXECMON, ["version"])}
    sizes = {k: v[0].stat().st_size for k, v in files.items()}
    # Old copies for the hit case (ctime older than --cache_min_age).
    old = {k: benchlib.fresh_copy(src, WORK / f"old-{k}") for k, (src, _) in files.items()}
    time.sleep(2.5)
    results = {c: {f"{k}_{case}": {"wall_ns": [], "bpf_ns": []}
                   for k in files for case in ("first", "hit")}
               for c in ("sha_on", "sha_off")}
    flags = {"sha_on": ["--bpf_stats"], "sha_off": ["--bpf_stats", "--exe_sha256=false"]}
    n = 0
    for r, conds in benchlib.alternated_rounds(list(flags), args.rounds, args.max_seconds):
        for cond in conds:
            port = benchlib.free_port()
            agent = benchlib.Agent(WORK, f"{cond}-{r}",
                                   [*flags[cond], f"--metrics_address=127.0.0.1:{port}"])
            if "exec denial (BPF LSM bprm_check_security): active" not in agent.log():
                agent.stop()
                benchlib.die("the exec-denial unit is not active on this kernel:\n" +
                             agent.log())
            for k, (src, extra) in files.items():
                # Warm the hit file's cache entry under this agent.
                timed_execs([[str(old[k]), *extra]])
                for case in ("first", "hit"):
                    if case == "first":
                        cmds = []
                        for i in range(args.count):
                            n += 1
                            cmds.append([str(benchlib.fresh_copy(src, WORK / f"f{n}")), *extra])
                    else:
                        cmds = [[str(old[k]), *extra]] * args.count
                    before = program_stats(port)
                    wall = timed_execs(cmds)
                    after = program_stats(port)
                    runs = after["runs"] - before["runs"]
                    cell = results[cond][f"{k}_{case}"]
                    cell["wall_ns"].extend(wall)
                    if runs > 0:
                        cell["bpf_ns"].append((after["seconds"] - before["seconds"]) * 1e9 / runs)
                    for c in cmds if case == "first" else []:
                        os.unlink(c[0])
            agent.stop()
    summary = {"kernel": os.uname().release, "sizes": sizes, "agent": benchlib.AGENT_INFO,
               "count": args.count, "cases": {}}
    for key in results["sha_on"]:
        row = {}
        for cond in results:
            cell = results[cond][key]
            row[cond] = {"wall_median_us": round(statistics.median(cell["wall_ns"]) / 1e3, 1),
                         "bprm_check_us": round(statistics.median(cell["bpf_ns"]) / 1e3, 1)
                         if cell["bpf_ns"] else None}
        on, off = row["sha_on"], row["sha_off"]
        row["wall_ratio"] = round(on["wall_median_us"] / off["wall_median_us"], 3)
        summary["cases"][key] = row
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
