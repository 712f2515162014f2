#!/usr/bin/env python3
"""Policy benchmarks (docs/performance.md): load, memory, reload, exec overhead.

Generates (seeded, in a temporary directory):
  P100k/  one policy, deny-100k (enforce, kill, empty selector), denyFrom
          lists/deny-100k.txt: 100,000 random 20-byte build IDs, one a line,
          each with a note. Random IDs name no real binary: nothing can be
          killed by it.
  P10/    ten policies: deny-100k as above, plus nine smaller ones (inline
          deny lists, list files of 500-2,000 IDs, host: true / host: false
          scopes, pod selectors, audit and enforce), including
            - containers-allowlist: an ALLOWLIST with unknownBuildId: deny,
              but mode AUDIT (never kills) and selector {host: false} (it
              governs only processes in containers, never this benchmark's
              host processes),
            - bench-control: AUDIT deny rule naming the build ID of
              build/bench/tiny_denied, executed once before every timed
              batch: its verdict (deny / alert / bench-control) proves the
              policies were in force in the kernel.
          No policy here can kill anything but a binary with one of the
          random IDs: no empty-selector allowlist, no unknownBuildId: deny
          outside audit mode.
  small/  one policy with two inline IDs (baseline for lint).

Parts, each alternated round-robin so background load hits all conditions:
  lint    `execmon policy lint DIR` wall time: small, P100k, P10 (--lint_runs)
  start   `execmon run --output=/dev/null --snapshot=false --metrics-address=...`
          with no policies, P100k, P10 (--start_runs each): process start ->
          log line "ready:" (realtime log timestamps); split from the log:
          "Kubernetes API not configured" (after attach) -> "policies: N
          loaded ... (generation G, M build IDs)" (parse + compile + kernel
          map load) -> "policy sweep:" (sweep of running processes). Memory
          one second after ready: VmRSS / VmHWM (/proc/PID/status) and the
          kernel's memlock bytes of each BPF map the agent holds
          (/proc/PID/fdinfo; names from `bpftool map show id N`), for
          em_policy_ids and in total.
  reload  with the agent running P100k: --reloads times, rewrite the list
          file (a changed copy written outside the watched directories, then
          an atomic rename over it) and time rename -> the log line
          "policies: ... (generation G+1 ...)". Includes the 200 ms reload
          debounce and the agent's 100 ms poll granularity.
  exec    fork+execve+waitpid of build/bench/tiny (build/bench/exec_bench,
          the exec benchmark's harness) under A no agent, B agent without
          policies, C agent with P10 (10 policies, ~104k IDs), every timed
          exec a build-ID cache hit (agent --cache_min_age=1s, the file is
          older), alternated per round (order rotates). Each agent batch's
          events are checked with run_exec_bench.verify (every timed exec
          reported, right build ID, source cache, no loss), and its
          verdicts: C: every timed exec "allow" and the control exec
          "deny"/"alert"/bench-control; B: the control exec not denied.
          Rounds where other processes used the CPU are reported separately
          (same rule as run_exec_bench.py).

  kcost   the in-kernel cost of judging, independent of machine noise: agents
          B and C (and D with --exec_conditions=...,D) with --bpf-stats
          (BPF_ENABLE_STATS), alternated, --kcost_rounds batches of
          --kcost_count cache-hit execs each; run_time_ns / run_cnt of the
          agent's em_exec, em_fork and em_exit programs (/proc/PID/fdinfo)
          before and after each batch: ns per program run, C - B.

Usage (root):  bench/policy_bench.py [--parts=lint,start,reload,exec[,kcost]]
               [--rounds=16] [--count=400]
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib as bl  # noqa: E402
import run_exec_bench as reb  # noqa: E402

TINY_DENIED = bl.BENCH_BIN / "tiny_denied"
# Must match -Wl,--build-id of bench_tiny_denied in bench/CMakeLists.txt.
TINY_DENIED_BUILD_ID = "be0cbe0cbe0cbe0c00000000000000d1"
LOG_TS = re.compile(r"^(\S+Z) (\w+) execmon: (.*)$")
POLICIES_RE = re.compile(r"policies: (\d+) loaded from .* \(generation (\d+), (\d+) build IDs\)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="lint,start,reload,exec",
                   help="lint,start,reload,exec and optionally kcost")
    p.add_argument("--ids", type=int, default=100000, help="IDs in the big deny list")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--lint_runs", type=int, default=7)
    p.add_argument("--start_runs", type=int, default=5)
    p.add_argument("--reloads", type=int, default=7)
    p.add_argument("--rounds", type=int, default=16, help="exec: rounds")
    p.add_argument("--exec_conditions", default="A,B,C",
                   help="exec: A,B,C plus optionally D (agent with P100k only: the "
                        "100k list in one policy, to split list size from policy count)")
    p.add_argument("--count", type=int, default=400, help="exec: timed execs per batch")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--spawn", choices=["fork", "vfork"], default="fork")
    p.add_argument("--pin", action="store_true")
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--noise_limit", type=float, default=0.10)
    p.add_argument("--noise_floor", type=float, default=0.04)
    p.add_argument("--quiet_wait", type=float, default=5)
    p.add_argument("--max_seconds", type=float, default=200,
                   help="exec: start no round that might end after this")
    p.add_argument("--kcost_rounds", type=int, default=8)
    p.add_argument("--kcost_count", type=int, default=1000)
    p.add_argument("--workdir", default="/dev/shm")
    p.add_argument("--logdir", default="/tmp")
    return p.parse_args()


# ---------------------------------------------------------------- policies

def ids(rng, n):
    return [rng.randbytes(20).hex() for _ in range(n)]


def write_list(path, hexes, what):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# {what}: {len(hexes)} synthetic build IDs (bench/policy_bench.py)\n")
        for i, h in enumerate(hexes):
            f.write(f"{h}  {what} entry {i} (synthetic CVE-2099-{i % 100000:05d})\n")


def policy(name, mode, action, spec_lines):
    return "\n".join([
        "apiVersion: execmon.io/v1alpha1", "kind: ExecPolicy",
        "metadata:", f"  name: {name}", "spec:", f"  mode: {mode}",
        f"  action: {action}", *[f"  {l}" for l in spec_lines], ""])


def inline(key, hexes, what):
    out = [f"{key}:"]
    for i, h in enumerate(hexes):
        out += [f"  - buildId: \"{h}\"", f"    note: \"{what} {i}\""]
    return out


def make_policies(root, n_ids, seed):
    rng = random.Random(seed)
    big = ids(rng, n_ids)
    dirs = {}
    # small: the lint baseline.
    d = root / "small"
    d.mkdir(parents=True)
    (d / "small.yaml").write_text(policy("small", "audit", "alert",
                                         inline("deny", ids(rng, 2), "small")))
    dirs["small"] = d
    # P100k: the 100k deny list alone.
    big_policy = policy("deny-100k", "enforce", "kill",
                        ["denyFrom: [lists/deny-100k.txt]"])
    d = root / "P100k"
    write_list(d / "lists" / "deny-100k.txt", big, "vulnerable build")
    (d / "deny-100k.yaml").write_text(big_policy)
    dirs["P100k"] = d
    # P10: ten policies.
    d = root / "P10"
    write_list(d / "lists" / "deny-100k.txt", big, "vulnerable build")
    write_list(d / "lists" / "feed-b.txt", ids(rng, 1000), "feed b")
    write_list(d / "lists" / "feed-c.txt", ids(rng, 2000), "feed c")
    write_list(d / "lists" / "containers-deny.txt", ids(rng, 500), "container deny")
    write_list(d / "lists" / "container-images.txt", ids(rng, 200), "approved image build")
    files = {
        "deny-100k.yaml": big_policy,
        "deny-vuln-a.yaml": policy("deny-vuln-a", "enforce", "kill",
                                   inline("deny", ids(rng, 5), "vuln a")),
        "deny-vuln-b.yaml": policy("deny-vuln-b", "audit", "alert",
                                   ["denyFrom: [lists/feed-b.txt]"]),
        "deny-vuln-c.yaml": policy("deny-vuln-c", "enforce", "kill",
                                   ["denyFrom: [lists/feed-c.txt]"]),
        "deny-host.yaml": policy("deny-host", "enforce", "alert",
                                 inline("deny", ids(rng, 10), "host tool") +
                                 ["selector:", "  host: true"]),
        "deny-containers.yaml": policy("deny-containers", "enforce", "kill",
                                       ["denyFrom: [lists/containers-deny.txt]",
                                        "selector:", "  host: false"]),
        # An allowlist, but audit (never kills) and containers only.
        "containers-allowlist.yaml": policy(
            "containers-allowlist", "audit", "alert",
            ["allowFrom: [lists/container-images.txt]", "unknownBuildId: deny",
             "selector:", "  host: false"]),
        "deny-payments.yaml": policy("deny-payments", "enforce", "kill",
                                     inline("deny", ids(rng, 50), "payments") +
                                     ["selector:", "  namespaces: [payments]"]),
        "deny-web.yaml": policy("deny-web", "audit", "alert",
                                inline("deny", ids(rng, 20), "web") +
                                ["selector:", "  matchLabels: {app: web}"]),
        "bench-control.yaml": policy(
            "bench-control", "audit", "alert",
            ["deny:", f"  - buildId: \"{TINY_DENIED_BUILD_ID}\"",
             "    note: \"bench/tiny_denied (positive control)\""]),
    }
    assert len(files) == 10
    for name, text in files.items():
        (d / name).write_text(text)
    dirs["P10"] = d
    return dirs, big


def lint(dirs):
    for name, d in dirs.items():
        r = subprocess.run([str(bl.AGENT_BIN), "policy", "lint", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            bl.die(f"policy lint {d} failed:\n{r.stdout}{r.stderr}")


# ---------------------------------------------------------------- helpers

def loadavg():
    return " ".join(bl.loadavg())


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def log_lines(text):
    """[(realtime seconds, level, message)] of an agent log."""
    out = []
    for line in text.splitlines():
        m = LOG_TS.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
            out.append((t.replace(tzinfo=timezone.utc).timestamp(), m.group(2),
                        m.group(3)))
    return out


def first(lines, pred):
    for t, _, msg in lines:
        if pred(msg):
            return t, msg
    return None, None


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_flags(policy_dir=None):
    f = ["--snapshot=false", f"--metrics-address=127.0.0.1:{free_port()}"]
    if policy_dir is not None:
        f.append(f"--policies={policy_dir}")
    return f


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


def bpf_maps(pid):
    """{map name: memlock bytes} of the BPF maps the process holds."""
    maps = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:bpf-map":
                continue
            info = dict(l.split(":", 1) for l in
                        Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines()
                        if ":" in l)
        except OSError:
            continue
        map_id = int(info["map_id"])
        if map_id in maps:
            continue
        maps[map_id] = {"memlock": int(info["memlock"]),
                        "max_entries": int(info["max_entries"])}
    out = {}
    for map_id, v in maps.items():
        r = subprocess.run(["bpftool", "map", "show", "id", str(map_id), "-j"],
                           capture_output=True, text=True)
        name = json.loads(r.stdout).get("name", f"id{map_id}") if r.returncode == 0 \
            else f"id{map_id}"
        out[name] = out.get(name, 0) + v["memlock"]
    return out


# ---------------------------------------------------------------- parts

def part_lint(args, dirs, results):
    names = ["small", "P100k", "P10"]
    times = {n: [] for n in names}
    la0 = loadavg()
    for r in range(args.lint_runs):
        order = names[r % 3:] + names[:r % 3]
        for n in order:
            t0 = time.monotonic()
            p = subprocess.run([str(bl.AGENT_BIN), "policy", "lint", str(dirs[n])],
                               capture_output=True, text=True)
            times[n].append(time.monotonic() - t0)
            if p.returncode != 0:
                bl.die(f"lint {n}: {p.stdout}{p.stderr}")
    la1 = loadavg()
    print(f"\n### Lint: `execmon policy lint DIR`, {args.lint_runs} alternated runs "
          f"each (loadavg {la0} → {la1})\n")
    print("| dir | median ms | min ms | max ms | median − small |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        t = times[n]
        print(f"| {n} | {med(t) * 1e3:.0f} | {min(t) * 1e3:.0f} | {max(t) * 1e3:.0f} | "
              f"{(med(t) - med(times['small'])) * 1e3:.0f} |")
    results["lint"] = {"times_s": times, "loadavg": [la0, la1]}


def start_agent(logdir, tag, policy_dir):
    t0 = time.time()
    a = bl.Agent(logdir, tag, agent_flags(policy_dir))
    lines = log_lines(a.log())
    ready, _ = first(lines, lambda m: m.startswith("ready:"))
    return a, t0, ready, lines


def part_start(args, dirs, logdir, results):
    conds = {"none": None, "P100k": dirs["P100k"], "P10": dirs["P10"]}
    names = list(conds)
    rows = {n: [] for n in names}
    la0 = loadavg()
    for r in range(args.start_runs):
        order = names[r % 3:] + names[:r % 3]
        for n in order:
            a, t0, ready, lines = start_agent(logdir, f"start.{r}.{n}", conds[n])
            try:
                time.sleep(1.0)
                st = proc_status(a.proc.pid)
                maps = bpf_maps(a.proc.pid)
                lines = log_lines(a.log())
            finally:
                a.stop()
            k8s, _ = first(lines, lambda m: m.startswith("Kubernetes API"))
            pol, pol_msg = first(lines, lambda m: POLICIES_RE.search(m) is not None)
            sweep, _ = first(lines, lambda m: m.startswith("policy sweep:"))
            row = {"start_to_ready_s": ready - t0, "rss": st["VmRSS"], "hwm": st["VmHWM"],
                   "maps": maps, "policy_ids_memlock": maps.get("em_policy_ids", 0),
                   "maps_total_memlock": sum(maps.values())}
            if pol is not None:
                m = POLICIES_RE.search(pol_msg)
                row["policies"], row["ids"] = int(m.group(1)), int(m.group(3))
                if k8s is not None:
                    row["attach_to_loaded_s"] = pol - k8s
                row["sweep_s"] = (sweep - pol) if sweep else float("nan")
            rows[n].append(row)
    la1 = loadavg()
    print(f"\n### Agent start-up and memory: {args.start_runs} alternated starts each "
          f"(loadavg {la0} → {la1})\n")
    print("| policies | start → ready, median ms | ratio to none | attach → "
          "\"policies: loaded\" ms (parse + compile + map load) | sweep ms | VmRSS MiB "
          "| VmHWM MiB | em_policy_ids memlock MiB | all maps memlock MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = med([x["start_to_ready_s"] for x in rows["none"]])
    for n in names:
        x = rows[n]
        s = med([y["start_to_ready_s"] for y in x])
        load = med([y["attach_to_loaded_s"] for y in x if "attach_to_loaded_s" in y])
        sw = med([y["sweep_s"] for y in x if "sweep_s" in y])
        desc = n if n == "none" else f"{n} ({x[0].get('policies')} policies, " \
                                     f"{x[0].get('ids')} IDs)"
        print(f"| {desc} | {s * 1e3:.0f} | {s / base:.2f} | "
              f"{'—' if load != load else f'{load * 1e3:.0f}'} | "
              f"{'—' if sw != sw else f'{sw * 1e3:.1f}'} | "
              f"{med([y['rss'] for y in x]) / 2**20:.1f} | "
              f"{med([y['hwm'] for y in x]) / 2**20:.1f} | "
              f"{med([y['policy_ids_memlock'] for y in x]) / 2**20:.2f} | "
              f"{med([y['maps_total_memlock'] for y in x]) / 2**20:.1f} |")
    d_rss = med([y["rss"] for y in rows["P100k"]]) - med([y["rss"] for y in rows["none"]])
    d_map = med([y["policy_ids_memlock"] for y in rows["P100k"]]) - \
        med([y["policy_ids_memlock"] for y in rows["none"]])
    print(f"\n100k IDs cost: agent RSS +{d_rss / 2**20:.1f} MiB "
          f"({d_rss / args.ids:.0f} B/ID), kernel em_policy_ids +{d_map / 2**20:.2f} MiB "
          f"({d_map / args.ids:.0f} B/ID)")
    results["start"] = {"rows": rows, "loadavg": [la0, la1]}


def part_reload(args, dirs, big, logdir, results):
    d = dirs["P100k"]
    lst = d / "lists" / "deny-100k.txt"
    staging = d.parent / "staging"
    staging.mkdir(exist_ok=True)
    la0 = loadavg()
    a, _, _, lines = start_agent(logdir, "reload", d)
    rows = []
    rng = random.Random(args.seed + 1)
    try:
        _, msg = first(lines, lambda m: POLICIES_RE.search(m) is not None)
        gen = int(POLICIES_RE.search(msg).group(2))
        for i in range(args.reloads):
            time.sleep(1.0)
            # A changed list: one entry replaced by a new random ID.
            cur = list(big)
            cur[rng.randrange(len(cur))] = rng.randbytes(20).hex()
            tmp = staging / "deny-100k.txt"
            write_list(tmp, cur, "vulnerable build")
            t_rename = time.time()
            os.rename(tmp, lst)
            want = gen + 1
            deadline = time.monotonic() + 30
            t_loaded = t_sweep = None
            while t_sweep is None:
                lines = log_lines(a.log())
                for j, (t, _, m) in enumerate(lines):
                    pm = POLICIES_RE.search(m)
                    if pm and int(pm.group(2)) == want:
                        t_loaded = t
                        t_sweep = next((t2 for t2, _, m2 in lines[j + 1:]
                                        if m2.startswith("policy sweep:")), None)
                        break
                if time.monotonic() > deadline:
                    bl.die(f"no generation {want} (and its sweep) within 30 s of "
                           f"the rename:\n{a.log()}")
                time.sleep(0.01)
            sweep = t_sweep
            rows.append({"rename_to_loaded_s": t_loaded - t_rename,
                         "sweep_s": (sweep - t_loaded) if sweep else float("nan"),
                         "rss_after": proc_status(a.proc.pid)["VmRSS"],
                         "policy_ids_memlock": bpf_maps(a.proc.pid).get("em_policy_ids", 0)})
            gen = want
        rss = proc_status(a.proc.pid)
    finally:
        a.stop()
    la1 = loadavg()
    t = [r["rename_to_loaded_s"] for r in rows]
    print(f"\n### Reload of the 100k list: {len(rows)} reloads (loadavg {la0} → {la1})\n")
    print("| interval | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    print(f"| rename → \"policies: ... (generation N+1 ...)\" | {med(t) * 1e3:.0f} | "
          f"{min(t) * 1e3:.0f} | {max(t) * 1e3:.0f} |")
    t2 = [x - 0.2 for x in t]
    print(f"| same, minus the 200 ms debounce | {med(t2) * 1e3:.0f} | "
          f"{min(t2) * 1e3:.0f} | {max(t2) * 1e3:.0f} |")
    s = [r["sweep_s"] for r in rows]
    print(f"| then the sweep (\"policy sweep:\" line) | {med(s) * 1e3:.1f} | "
          f"{min(s) * 1e3:.1f} | {max(s) * 1e3:.1f} |")
    print("\nagent VmRSS after each reload (MiB): " + ", ".join(
        f"{r['rss_after'] / 2**20:.0f}" for r in rows) +
        f"; VmHWM {rss['VmHWM'] / 2**20:.1f} MiB. em_policy_ids memlock after each "
        f"reload (MiB): " + ", ".join(f"{r['policy_ids_memlock'] / 2**20:.1f}" for r in rows))
    results["reload"] = {"rows": rows, "rss_after": rss, "loadavg": [la0, la1]}


# ---------------------------------------------------------------- exec overhead

def exec_batch(cond, args, f_path, logdir, tag):
    """One batch of run_exec_bench, with an untimed positive control exec
    first and the verdict checks. Returns True if the batch was noisy."""
    return reb.run_batch(
        cond, args, f_path, None, logdir, tag,
        before=lambda: subprocess.run(["tiny_denied", "control"],
                                      executable=str(TINY_DENIED), check=True),
        check=lambda events, agent: check_verdicts(cond, events, f_path, agent))


def check_verdicts(cond, events, f_path, agent):
    timed = [e for e in events if e["process"]["binary"] == str(f_path)
             and e["process"]["args"] == ["tiny", "t"]]
    control = [e for e in events if e["process"]["args"] == ["tiny_denied", "control"]]
    if len(control) != 1:
        bl.die(f"{cond.name}: {len(control)} control exec events")
    cv = control[0]["verdict"]
    decisions = {}
    for e in timed:
        v = e["verdict"]
        key = (v["decision"], v["action"], v.get("policy"))
        decisions[key] = decisions.get(key, 0) + 1
    cond.verdicts = getattr(cond, "verdicts", {})
    for k, n in decisions.items():
        cond.verdicts[k] = cond.verdicts.get(k, 0) + n
    cond.control = getattr(cond, "control", {})
    ck = (cv["decision"], cv["action"], cv.get("policy"))
    cond.control[ck] = cond.control.get(ck, 0) + 1
    if cond.name == "C":
        if decisions != {("allow", "none", None): len(timed)}:
            bl.die(f"C: timed exec verdicts {decisions}, want all allow")
        if ck != ("deny", "alert", "bench-control"):
            bl.die(f"C: control exec verdict {cv}, want deny/alert/bench-control")
        m = [POLICIES_RE.search(msg) for _, _, msg in log_lines(agent.log())]
        m = [x for x in m if x]
        if not m or int(m[0].group(1)) != 10:
            bl.die(f"C: agent did not log 10 policies loaded:\n{agent.log()}")
        cond.policy_line = m[0].group(0)
    elif cond.name == "D":
        if decisions != {("allow", "none", None): len(timed)}:
            bl.die(f"D: timed exec verdicts {decisions}, want all allow")
        m = [POLICIES_RE.search(msg) for _, _, msg in log_lines(agent.log())]
        m = [x for x in m if x]
        if not m or int(m[0].group(1)) != 1:
            bl.die(f"D: agent did not log 1 policy loaded:\n{agent.log()}")
        cond.policy_line = m[0].group(0)
    elif cv["decision"] == "deny":
        bl.die(f"{cond.name}: control exec denied without policies: {cv}")


def part_exec(args, dirs, logdir, results):
    flags_b = agent_flags() + ["--cache_min_age=1s"]
    flags_c = agent_flags(dirs["P10"]) + ["--cache_min_age=1s"]
    flags_d = agent_flags(dirs["P100k"]) + ["--cache_min_age=1s"]
    known = {"A": reb.Cond("A", "no agent", None, False, None),
             "B": reb.Cond("B", "agent, no policies", flags_b, False, "cache"),
             "C": reb.Cond("C", "agent, 10 policies, 104k IDs", flags_c, False, "cache"),
             "D": reb.Cond("D", "agent, 1 policy, 100k IDs", flags_d, False, "cache")}
    names = args.exec_conditions.split(",")
    if not {"A", "B", "C"} <= set(names) or any(n not in known for n in names):
        bl.die("--exec_conditions: want A,B,C and optionally D")
    conds = [known[n] for n in names]
    bindir = Path(tempfile.mkdtemp(prefix="execmon-pbench.", dir=args.workdir))
    noisy_rounds = []
    la0 = loadavg()
    try:
        f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
        time.sleep(2.0)  # older than --cache_min_age=1s: every exec a cache hit
        t0 = time.monotonic()
        for r, order in bl.alternated_rounds(conds, args.rounds, args.max_seconds,
                                             args.quiet_wait, "exec: "):
            noisy = False
            for c in order:
                noisy |= exec_batch(c, args, f_path, logdir, f"exec.r{r:03d}.{c.name}")
            noisy_rounds.append(noisy)
            print(f"# exec round {r + 1}{' NOISY' if noisy else ''}: " + "  ".join(
                f"{c.name}={c.round_medians[-1] / 1e3:.0f}us" for c in conds) +
                f"  load {loadavg()}", file=sys.stderr)
        wall = time.monotonic() - t0
    finally:
        import shutil
        shutil.rmtree(bindir, ignore_errors=True)
    la1 = loadavg()
    rounds = len(noisy_rounds)
    quiet = [r for r in range(rounds) if not noisy_rounds[r]]
    print(f"\n### Exec overhead: {rounds} rounds x {args.count} timed execs per condition, "
          f"alternated (spawn={args.spawn}), {wall:.0f} s; loadavg {la0} → {la1}\n")
    out = {"rounds": rounds, "noisy_rounds": [r for r in range(rounds) if noisy_rounds[r]]}
    for title, used in (("quiet rounds", quiet), ("all rounds", list(range(rounds)))):
        out[title] = exec_table(conds, used, title)
    print("\nVerdict checks (all rounds):")
    for c in conds[1:]:
        print(f"- {c.name}: timed-exec verdicts {dict((str(k), v) for k, v in c.verdicts.items())}; "
              f"control exec {dict((str(k), v) for k, v in c.control.items())}"
              + (f"; agent log: \"{c.policy_line}\"" if hasattr(c, "policy_line") else "")
              + f"; kernel summary: execs={c.kernel.get('execs')} "
                f"cache_hits={c.kernel.get('cache_hits')} "
                f"agent CPU {c.agent_cpu_s / max(c.kernel.get('execs', 1), 1) * 1e6:.0f} µs/exec")
    out["batches"] = {c.name: [{k: v for k, v in b.items() if k != "samples"}
                               for b in c.batches] for c in conds}
    out["verdicts"] = {c.name: {str(k): v for k, v in getattr(c, "verdicts", {}).items()}
                       for c in conds}
    out["loadavg"] = [la0, la1]
    results["exec"] = out


def exec_table(conds, used, title):
    print(f"\n{title}: {len(used)}\n")
    if not used:
        return {}
    by = {c.name: c for c in conds}
    stats = {}
    print("| cond | what | execs | median µs | p90 µs | mean µs |")
    print("|---|---|---:|---:|---:|---:|")
    for c in conds:
        s = sorted(x for r in used for x in c.batches[r]["samples"])
        stats[c.name] = {"n": len(s), "median": bl.quantile(s, 0.5) / 1e3,
                         "p90": bl.quantile(s, 0.9) / 1e3, "mean": sum(s) / len(s) / 1e3}
        st = stats[c.name]
        print(f"| {c.name} | {c.desc} | {st['n']} | {st['median']:.1f} | "
              f"{st['p90']:.1f} | {st['mean']:.1f} |")
    print("\n| ratio | of medians | of p90s | per-round ratio of medians: median "
          "[p10, p90] | 95% bootstrap CI of that median | goal |")
    print("|---|---:|---:|---|---|---|")
    ratios = {}
    pairs = [("C", "B", "≤ 1.02"), ("C", "A", "—"), ("B", "A", "—")]
    if "D" in by:
        pairs += [("D", "B", "—"), ("C", "D", "—")]
    for x, y, goal in pairs:
        pr = sorted(by[x].batches[r]["median_ns"] / by[y].batches[r]["median_ns"]
                    for r in used)
        ratios[f"{x}/{y}"] = {
            "median": stats[x]["median"] / stats[y]["median"],
            "p90": stats[x]["p90"] / stats[y]["p90"],
            "per_round": [bl.quantile(pr, q) for q in (0.5, 0.1, 0.9)]}
        q = ratios[f"{x}/{y}"]
        # Resample the rounds (each round: its conditions ran back to back).
        rng = random.Random(1)
        boot = sorted(statistics.median(rng.choices(pr, k=len(pr))) for _ in range(2000))
        q["ci95"] = [bl.quantile(boot, 0.025), bl.quantile(boot, 0.975)]
        print(f"| {x}/{y} | {q['median']:.3f} | {q['p90']:.3f} | {q['per_round'][0]:.3f} "
              f"[{q['per_round'][1]:.3f}, {q['per_round'][2]:.3f}] | "
              f"[{q['ci95'][0]:.3f}, {q['ci95'][1]:.3f}] | {goal} |")
    # CPU time of the exec'ing processes (less sensitive to scheduling noise).
    print("\nCPU time (user + sys) of exec_bench and its children per exec, "
          "per batch: median [p10, p90] µs — " + "; ".join(
              f"{c.name} " + "{:.1f} [{:.1f}, {:.1f}]".format(*[
                  bl.quantile(sorted(c.batches[r]["cpu_per_exec_ns"] for r in used), q) / 1e3
                  for q in (0.5, 0.1, 0.9)]) for c in conds))
    cpu_ratios = {}
    for x, y, _ in pairs:
        pr = sorted(by[x].batches[r]["cpu_per_exec_ns"] / by[y].batches[r]["cpu_per_exec_ns"]
                    for r in used)
        rng = random.Random(2)
        boot = sorted(statistics.median(rng.choices(pr, k=len(pr))) for _ in range(2000))
        cpu_ratios[f"{x}/{y}"] = [bl.quantile(pr, 0.5), bl.quantile(boot, 0.025),
                                  bl.quantile(boot, 0.975)]
    print("\nper-round CPU-per-exec ratios, median (95% bootstrap CI): " + "; ".join(
        f"{k} {v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f})" for k, v in cpu_ratios.items()))
    return {"stats": stats, "ratios": ratios, "cpu_ratios": cpu_ratios}


def part_kcost(args, dirs, logdir, results):
    conds = {"B": None, "C": dirs["P10"]}
    if "D" in args.exec_conditions.split(","):
        conds["D"] = dirs["P100k"]
    names = list(conds)
    progs = ("em_exec", "em_fork", "em_exit")
    rows = {n: [] for n in names}
    bindir = Path(tempfile.mkdtemp(prefix="execmon-pbench.", dir=args.workdir))
    la0 = loadavg()
    try:
        f_path = bl.fresh_copy(bl.TINY, bindir / "tiny")
        time.sleep(2.0)
        for r in range(args.kcost_rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                a = bl.Agent(logdir, f"kcost.{r}.{n}",
                             agent_flags(conds[n]) + ["--cache_min_age=1s", "--bpf-stats"])
                try:
                    time.sleep(args.settle)
                    s0 = bl.prog_stats(a.proc.pid)
                    p = subprocess.run([str(bl.EXEC_BENCH), f"--binary={f_path}",
                                        f"--count={args.kcost_count}", "--warmup=20",
                                        f"--out={logdir}/kcost.ns"],
                                       capture_output=True, text=True)
                    s1 = bl.prog_stats(a.proc.pid)
                    if p.returncode != 0:
                        bl.die(f"exec_bench: {p.stderr}")
                finally:
                    a.stop()
                d = bl.prog_stats_delta(s0, s1)
                row = {}
                for prog in progs:
                    dt, dn = d.get(prog, (0, 0))
                    row[prog] = (dt / dn if dn else float("nan"), dn)
                rows[n].append(row)
    finally:
        import shutil
        shutil.rmtree(bindir, ignore_errors=True)
    la1 = loadavg()
    print(f"\n### In-kernel cost (--bpf-stats): {args.kcost_rounds} alternated batches of "
          f"{args.kcost_count} cache-hit execs per condition (loadavg {la0} → {la1})\n")
    print("| cond | " + " | ".join(f"{p} ns/run, median [min, max]" for p in progs) +
          " | em_exec runs per batch |")
    print("|---|" + "---|" * len(progs) + "---:|")
    for n in names:
        cells = []
        for prog in progs:
            v = [x[prog][0] for x in rows[n]]
            cells.append(f"{med(v):.0f} [{min(v):.0f}, {max(v):.0f}]")
        print(f"| {n} | " + " | ".join(cells) +
              f" | {med([x['em_exec'][1] for x in rows[n]]):.0f} |")
    for n in names[1:]:
        d = [rows[n][i]["em_exec"][0] - rows["B"][i]["em_exec"][0]
             for i in range(len(rows[n]))]
        print(f"\nem_exec {n} − B (same round): median {med(d):+.0f} ns per exec")
    results["kcost"] = {"rows": rows, "loadavg": [la0, la1]}


def main():
    args = parse_args()
    bl.check_prerequisites()
    if not TINY_DENIED.exists():
        bl.die(f"missing {TINY_DENIED}; build with: cmake --build build -j2 "
               "--target bench_policy_kafka")
    parts = args.parts.split(",")
    logdir = Path(tempfile.mkdtemp(prefix="execmon-policy-bench.", dir=args.logdir))
    # A private copy of the agent: a rebuild by someone else mid-run cannot
    # mix two builds in one result (benchlib.use_agent_copy).
    bl.use_agent_copy(logdir)
    m = bl.machine()
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, "
          f"{m['mem_gib']} GiB; source {m['source']}, execmon built "
          f"{m.get('execmon_built')} (sha256 {m.get('execmon_sha256')})")
    results = {"machine": m, "args": vars(args)}
    root = Path(tempfile.mkdtemp(prefix="execmon-policy-bench.", dir=args.workdir))
    print(f"# policies in {root}, logs in {logdir}", file=sys.stderr)
    try:
        dirs, big = make_policies(root, args.ids, args.seed)
        lint(dirs)
        sz = (dirs["P100k"] / "lists" / "deny-100k.txt").stat().st_size
        print(f"generated: {args.ids} IDs, list file {sz / 2**20:.1f} MiB")
        if "lint" in parts:
            part_lint(args, dirs, results)
        if "start" in parts:
            part_start(args, dirs, logdir, results)
        if "reload" in parts:
            part_reload(args, dirs, big, logdir, results)
        if "exec" in parts:
            part_exec(args, dirs, logdir, results)
        if "kcost" in parts:
            part_kcost(args, dirs, logdir, results)
    finally:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
        (logdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults.json and agent logs: {logdir}")


if __name__ == "__main__":
    main()
