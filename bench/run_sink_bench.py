#!/usr/bin/env python3
"""Kafka sink throughput and exec-to-Kafka latency (docs/performance.md).

Phase 1, throughput (no BPF in the timed part):
  1. record: build/bench/record_events attaches execmon's BPF programs and
     records every raw ring-buffer record for --record_seconds while this
     script runs a mix of real commands (shell pipelines, coreutils, ...);
     whatever else runs on the machine is recorded too.
  2. a local Apache Kafka broker (tests/e2e/kafka.py: KRaft, one partition,
     PLAINTEXT on 127.0.0.1) is started.
  3. build/bench/sink_bench replays the records through
     execmon::Agent::OnRecord until --events events (exec + exit) are
     emitted, in four modes, ALTERNATED round-robin (order rotates per
     round): decode (decoder only), render (decode + process table + JSON),
     null (+ JsonLinesSink to /dev/null), kafka (null + KafkaSink; the clock
     stops when Close() returned with every event acknowledged). Each kafka
     run uses its own topic; its end offset (kcat -Q) must equal the events
     delivered (warm-up + timed).
  Reported per mode: median events/s (wall), events per CPU second of the
  bench process (all threads, incl. librdkafka's), of its replay thread, the
  broker's CPU seconds per run, /proc/loadavg before/after, and the CPU
  per thread (replay, rdk:broker*, rdk:main, the sink's poller...).
  --diagnostics adds kafka_zstd, kafka_zstd2 and kafka_nocomp
  (compression.codec zstd at its default level 3 / at level 2 / none
  instead of the sink's lz4) to the alternation, and a second latency
  run with --kafka-property=linger.ms=0 (the batching delay's share).

Phase 2, exec-to-Kafka latency: the real agent (`execmon run
--kafka-brokers=...`) runs; a consumer (kcat -C -o end -u) prints each
message's Kafka timestamp (CreateTime: set by the agent's producer) and
payload; this script stamps each line with CLOCK_REALTIME when it reads
it. A child process runs build/bench/tiny at --rate execs/s for
--latency_seconds (argv "tiny lat <n>"). For each of those exec events:
  total    = consumer read time - event "time" (kernel's exec time, realtime)
  produce  = Kafka CreateTime (ms resolution) - event "time"
  transport= consumer read time - CreateTime
Every exec must arrive exactly once.

Usage (root):  bench/run_sink_bench.py [--events=1000000] [--rounds=3]
               [--rate=200] [--latency_seconds=30] [--phases=throughput,latency]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
import benchlib as bl  # noqa: E402
import kafka as kafka_harness  # noqa: E402

RECORD_EVENTS = bl.BENCH_BIN / "record_events"
SINK_BENCH = bl.BENCH_BIN / "sink_bench"
MODES = ["decode", "render", "null", "kafka"]
# --diagnostics: the kafka mode with another compression codec (librdkafka
# property after the sink's defaults), to see what compression costs.
DIAG_MODES = {"kafka_zstd": ["compression.codec=zstd"],
              "kafka_zstd2": ["compression.codec=zstd", "compression.level=2"],
              "kafka_nocomp": ["compression.codec=none"]}

# The command mix run while recording: ordinary host activity.
WORKLOAD = [
    "ls -la /usr/bin | wc -l",
    "cat /etc/os-release | grep -c ID",
    "date; id; uname -a",
    "find /etc -maxdepth 1 -name '*.conf' | sort | head -5",
    "ps -e | tail -3",
    "env | sort | md5sum",
    "git -C {repo} rev-parse --short HEAD",
    "python3 -c 'import os; print(os.getpid())'",
    "stat /bin/sh /usr/bin/env",
    "tar -C /etc -cf - hostname hosts | wc -c",
]


def proc_cpu_s(pid):
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / bl.CLK_TCK
    except OSError:
        return 0.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phases", default="throughput,latency")
    p.add_argument("--events", type=int, default=1000000, help="events per run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--record_seconds", type=float, default=6)
    p.add_argument("--records", help="reuse a recording instead of recording")
    p.add_argument("--rate", type=float, default=200, help="latency: execs/s")
    p.add_argument("--latency_seconds", type=float, default=30)
    p.add_argument("--max_seconds", type=float, default=300,
                   help="start no throughput round after this (bounds the run)")
    p.add_argument("--diagnostics", action="store_true",
                   help="also alternate kafka_zstd, kafka_zstd2 and kafka_nocomp")
    p.add_argument("--logdir", default="/tmp")
    return p.parse_args()


def record(logdir, seconds):
    out = logdir / "records.bin"
    err = open(logdir / "record_events.log", "w+")
    proc = subprocess.Popen([str(RECORD_EVENTS), f"--out={out}",
                             f"--seconds={seconds}"],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    deadline = time.monotonic() + 30
    while "attached" not in Path(err.name).read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            bl.die(f"record_events failed:\n{Path(err.name).read_text()}")
        time.sleep(0.05)
    t_end = time.monotonic() + seconds - 1
    n = 0
    while time.monotonic() < t_end:
        cmd = WORKLOAD[n % len(WORKLOAD)].format(repo=bl.REPO)
        subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        n += 1
    summary = json.loads(proc.communicate(timeout=60)[0])
    if proc.returncode != 0:
        bl.die(f"record_events exited {proc.returncode}")
    summary["workload_commands"] = n
    return out, summary


def end_offset(broker, topic):
    r = subprocess.run(["kcat", "-b", broker.bootstrap, "-Q", "-t", f"{topic}:0:-1"],
                       capture_output=True, text=True, timeout=30)
    # "<topic> [0] offset <n>"
    for line in r.stdout.splitlines():
        if "offset" in line:
            return int(line.split("offset")[1].split()[0])
    bl.die(f"kcat -Q {topic}: {r.stdout}{r.stderr}")


def run_one(mode, args, records, broker, tag):
    cmd = [str(SINK_BENCH), f"--records={records}", f"--events={args.events}",
           f"--mode={'kafka' if mode.startswith('kafka') else mode}"]
    cmd += [f"--property={p}" for p in DIAG_MODES.get(mode, [])]
    topic = None
    if mode.startswith("kafka"):
        topic = f"execmon.bench.{tag}.{uuid.uuid4().hex[:6]}"
        cmd += [f"--brokers={broker.bootstrap}", f"--topic={topic}"]
    la0 = bl.loadavg()
    busy0, steal0 = bl.cpu_times()
    bcpu0 = proc_cpu_s(broker.proc.pid)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    busy1, steal1 = bl.cpu_times()
    res = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    res["mode"] = mode
    if r.returncode != 0 or not res.get("ok", mode == "decode"):
        bl.die(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    res["broker_cpu_s"] = round(proc_cpu_s(broker.proc.pid) - bcpu0, 2)
    res["machine_busy_s"] = round(busy1 - busy0, 2)
    res["steal_s"] = round(steal1 - steal0, 2)
    res["process_wall_s"] = round(wall, 2)
    res["loadavg_before"], res["loadavg_after"] = la0, bl.loadavg()
    if topic:
        k = res["kafka"]
        off = end_offset(broker, topic)
        if off != k["delivered"] + k["warmup_delivered"]:
            bl.die(f"{topic}: end offset {off} != delivered {k['delivered']} + "
                   f"warm-up {k['warmup_delivered']}")
        res["topic_end_offset"] = off
        # What the events take in the broker's log (compressed record
        # batches with their headers), per event.
        logs = list((broker.data / f"{topic}-0").glob("*.log"))
        res["log_bytes_per_event"] = sum(f.stat().st_size for f in logs) / off
    return res


def throughput(args, logdir, broker, records, modes):
    runs = {m: [] for m in modes}
    for rnd, order in bl.alternated_rounds(modes, args.rounds, args.max_seconds):
        for m in order:
            res = run_one(m, args, records, broker, f"r{rnd}")
            runs[m].append(res)
            print(f"# round {rnd + 1} {m}: {res['events_per_s']:.0f} ev/s, "
                  f"{res['events_per_cpu_s']:.0f} ev/CPU-s, load "
                  f"{' '.join(res['loadavg_before'])} -> "
                  f"{' '.join(res['loadavg_after'])}", file=sys.stderr)
    return runs


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def report_throughput(runs, rec_summary, args):
    print(f"\n### Sink throughput: {args.events} events per run, "
          f"{len(runs['kafka'])} alternated rounds\n")
    any_run = runs["render"][0]
    print(f"recording: {rec_summary}; replay of {any_run['records_per_pass']} "
          f"records = {any_run['events_per_pass']} events per pass; mean JSON "
          f"{any_run['json_bytes'] / any_run['events']:.0f} bytes/event\n")
    print("| mode | events/s (wall), median [min, max] | events per CPU-s, all "
          "threads | events per CPU-s, replay thread | bench CPU s | broker CPU s "
          "| wait s (back-pressure) | Close() s | loadavg before → after (per run) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for m in runs:
        rs = runs[m]
        eps = [r["events_per_s"] for r in rs]
        print(f"| {m} | {med(eps):,.0f} [{min(eps):,.0f}, {max(eps):,.0f}] | "
              f"{med([r['events_per_cpu_s'] for r in rs]):,.0f} | "
              f"{med([r.get('events_per_main_cpu_s', r['events_per_cpu_s']) for r in rs]):,.0f} | "
              f"{med([r['cpu_s'] for r in rs]):.2f} | "
              f"{med([r['broker_cpu_s'] for r in rs]):.2f} | "
              f"{med([r.get('wait_s', 0) for r in rs]):.2f} | "
              f"{med([r.get('close_s', 0) for r in rs]):.3f} | "
              + "; ".join(f"{' '.join(r['loadavg_before'])} → "
                          f"{' '.join(r['loadavg_after'])}" for r in rs) + " |")
    print("\nper-round ratios (same round, alternated):\n")
    print("| ratio | events/s (wall), median | events per CPU-s, median |")
    print("|---|---:|---:|")
    pairs = [("kafka", "null"), ("null", "render"), ("render", "decode")]
    pairs += [(m, "kafka") for m in runs if m in DIAG_MODES]
    for a, b in pairs:
        n = min(len(runs[a]), len(runs[b]))
        w = [runs[a][i]["events_per_s"] / runs[b][i]["events_per_s"] for i in range(n)]
        c = [runs[a][i]["events_per_cpu_s"] / runs[b][i]["events_per_cpu_s"]
             for i in range(n)]
        print(f"| {a}/{b} | {med(w):.3f} | {med(c):.3f} |")
    # Split of CPU per event (µs), from the medians of CPU per event.
    per = {m: med([r["cpu_s"] / r["events"] * 1e6 for r in runs[m]]) for m in MODES}
    print("\nCPU per event (median, µs): " + ", ".join(
        f"{m} {per[m]:.2f}" for m in MODES) +
        f"; so decode {per['decode']:.2f}, table+verdict+JSON "
        f"{per['render'] - per['decode']:.2f}, JSON-lines write "
        f"{per['null'] - per['render']:.2f}, Kafka "
        f"{per['kafka'] - per['null']:.2f} (producer thread + librdkafka threads)")
    for m in runs:
        if not m.startswith("kafka"):
            continue
        names = sorted({n for r in runs[m] for n in r["thread_cpu_s"]})
        print(f"\n{m}: CPU per thread, µs per event (median over runs): " + ", ".join(
            f"{n} {med([r['thread_cpu_s'].get(n, 0) / r['events'] * 1e6 for r in runs[m]]):.2f}"
            for n in names) + "; whole process during Close(): "
            f"{med([r['cpu_close_s'] / r['events'] * 1e6 for r in runs[m]]):.2f}")
    jb = med([r["json_bytes"] / r["events"] for r in runs["render"]])
    print("\nSize in the topic's log (record batches as the broker stores them), "
          f"per event, against {jb:.0f} bytes of JSON: " + ", ".join(
              f"{m} {med([r['log_bytes_per_event'] for r in runs[m]]):.0f} bytes "
              f"({jb / med([r['log_bytes_per_event'] for r in runs[m]]):.1f}x)"
              for m in runs if m.startswith("kafka")))
    k = [r for m in runs if m.startswith("kafka") for r in runs[m]]
    print("\nKafka delivery checks: every run delivered == events, no drops, "
          "topic end offset == delivered + warm-up: " +
          ", ".join(f"{r['kafka']['delivered']}/{r['events']} (offset "
                    f"{r['topic_end_offset']})" for r in k))


def consume_lines(proc, out, stop):
    for line in proc.stdout:
        out.append((time.time_ns(), line))
        if stop.is_set():
            break


def parse_rfc3339_ns(s):
    # "2026-11-23T03:41:07.312840515Z"
    base, frac = s.rstrip("Z").split(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 10**9 + int(frac.ljust(9, "0")[:9])


LOADGEN = r"""
import os, sys, time
binary, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n = int(rate * seconds)
t0 = time.monotonic()
for i in range(n):
    target = t0 + i / rate
    d = target - time.monotonic()
    if d > 0:
        time.sleep(d)
    pid = os.posix_spawn(binary, ["tiny", "lat", str(i)], {})
    os.waitpid(pid, 0)
print(n, round(time.monotonic() - t0, 3))
"""


def latency(args, logdir, broker, props=(), name="latency"):
    topic = f"execmon.latency.{uuid.uuid4().hex[:6]}"
    port = kafka_harness.free_port()
    la0 = bl.loadavg()
    agent = bl.Agent(logdir, name, [
        "--snapshot=false", f"--metrics-address=127.0.0.1:{port}",
        "--kubernetes=off", f"--kafka-brokers={broker.bootstrap}",
        f"--kafka-topic={topic}", *[f"--kafka-property={p}" for p in props]])
    try:
        # The topic is created by the agent's first message (auto-create).
        deadline = time.monotonic() + 30
        while topic not in broker.topics():
            subprocess.run(["true"])
            if time.monotonic() > deadline:
                bl.die(f"topic {topic} not created within 30 s")
            time.sleep(0.3)
        kc = subprocess.Popen(
            ["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "end", "-u",
             "-q", "-f", "%T\t%s\n"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        lines, stop = [], threading.Event()
        th = threading.Thread(target=consume_lines, args=(kc, lines, stop), daemon=True)
        th.start()
        # Wait until the consumer demonstrably receives (a marker exec).
        marker = f"marker-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + 30
        while not any(marker in l for _, l in list(lines)):
            subprocess.run([str(bl.TINY), marker])
            if time.monotonic() > deadline:
                bl.die("consumer received nothing within 30 s")
            time.sleep(0.5)
        busy0, steal0 = bl.cpu_times()
        bcpu0 = proc_cpu_s(broker.proc.pid)
        acpu0 = agent.cpu_seconds()
        gen = subprocess.run([sys.executable, "-c", LOADGEN, str(bl.TINY),
                              str(args.rate), str(args.latency_seconds)],
                             capture_output=True, text=True)
        if gen.returncode != 0:
            bl.die(f"load generator failed: {gen.stderr}")
        n_execs, gen_wall = gen.stdout.split()
        n_execs = int(n_execs)
        # Let the last events arrive.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = sum(1 for _, l in list(lines) if '"args":["tiny","lat",' in l)
            if got >= n_execs:
                break
            time.sleep(0.2)
        busy1, steal1 = bl.cpu_times()
        broker_cpu = proc_cpu_s(broker.proc.pid) - bcpu0
        agent_cpu = agent.cpu_seconds() - acpu0
        stop.set()
        subprocess.run(["true"])  # wakes the reader
        kc.terminate()
        kc.wait(timeout=10)
    finally:
        summary = agent.stop()
    la1 = bl.loadavg()
    total, produce, transport = [], [], []
    seen = {}
    for t_read, line in lines:
        ts, _, payload = line.rstrip("\n").partition("\t")
        if '"type":"exec"' not in payload or '"args":["tiny","lat",' not in payload:
            continue
        e = json.loads(payload)
        args_ = e["process"]["args"]
        if args_[:2] != ["tiny", "lat"]:
            continue
        seen[args_[2]] = seen.get(args_[2], 0) + 1
        t_exec = parse_rfc3339_ns(e["time"])
        t_kafka = int(ts) * 10**6
        total.append((t_read - t_exec) / 1e6)
        produce.append((t_kafka - t_exec) / 1e6)
        transport.append((t_read - t_kafka) / 1e6)
    dup = sum(1 for v in seen.values() if v > 1)
    missing = n_execs - len(seen)
    res = {"execs": n_execs, "received": len(total), "missing": missing,
           "duplicates": dup, "gen_wall_s": float(gen_wall),
           "broker_cpu_s": round(broker_cpu, 2), "agent_cpu_s": round(agent_cpu, 2),
           "machine_busy_s": round(busy1 - busy0, 2), "steal_s": round(steal1 - steal0, 2),
           "loadavg_before": la0, "loadavg_after": la1,
           "agent_summary": {k: v for k, v in summary.items() if k != "losses"},
           "agent_losses": summary.get("losses")}
    for name, xs in (("total_ms", total), ("produce_ms", produce),
                     ("transport_ms", transport)):
        s = sorted(xs)
        res[name] = {"median": round(bl.quantile(s, 0.5), 2),
                     "p90": round(bl.quantile(s, 0.9), 2),
                     "p99": round(bl.quantile(s, 0.99), 2),
                     "max": round(s[-1], 2) if s else None}
    for line in agent.log().splitlines():
        if "kafka: produced=" in line:
            res["agent_kafka_line"] = line.split("execmon: ", 1)[1]
    print(f"\n### Exec-to-Kafka latency: {n_execs} execs at {args.rate:.0f}/s "
          f"({float(gen_wall):.1f} s), agent producer properties: "
          f"{', '.join(props) if props else 'execmon defaults (linger.ms=10, lz4, acks=all)'}\n")
    print(f"received {len(total)} of {n_execs} (missing {missing}, duplicated {dup}); "
          f"loadavg {' '.join(la0)} → {' '.join(la1)}; agent CPU {agent_cpu:.2f} s, "
          f"broker CPU {broker_cpu:.2f} s, machine busy {busy1 - busy0:.1f} CPU-s "
          f"over the run\n")
    print("| interval | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("total_ms", "exec (kernel) → consumer read"),
                        ("produce_ms", "exec → producer timestamp (agent)"),
                        ("transport_ms", "producer timestamp → consumer read")):
        r = res[name]
        print(f"| {label} | {r['median']} | {r['p90']} | {r['p99']} | {r['max']} |")
    if "agent_kafka_line" in res:
        print(f"\nagent at shutdown: {res['agent_kafka_line']}")
    if missing or dup:
        bl.die(f"latency: {missing} execs missing, {dup} duplicated in Kafka")
    return res


def main():
    args = parse_args()
    if os.geteuid() != 0:
        bl.die("run as root (record_events and the agent load BPF programs)")
    for p in (bl.EXECMON, bl.TINY, RECORD_EVENTS, SINK_BENCH):
        if not p.exists():
            bl.die(f"missing {p}; build with: cmake -S . -B build && "
                   "cmake --build build -j2 --target bench_policy_kafka")
    phases = args.phases.split(",")
    logdir = Path(tempfile.mkdtemp(prefix="execmon-sink-bench.", dir=args.logdir))
    print(f"# logs: {logdir}", file=sys.stderr)
    bl.use_agent_copy(logdir)  # the latency agent: immune to rebuilds mid-run
    results = {"machine": bl.machine(), "args": vars(args)}
    m = results["machine"]
    print(f"machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, "
          f"{m['mem_gib']} GiB; source {m['source']}, execmon built "
          f"{m.get('execmon_built')} (sha256 {m.get('execmon_sha256')})")
    broker = kafka_harness.KafkaBroker(logdir / "kafka")
    broker.start()
    try:
        if "throughput" in phases:
            if args.records:
                records, rec_summary = Path(args.records), {"file": args.records}
            else:
                records, rec_summary = record(logdir, args.record_seconds)
            results["recording"] = rec_summary
            modes = MODES + (list(DIAG_MODES) if args.diagnostics else [])
            runs = throughput(args, logdir, broker, records, modes)
            results["throughput"] = runs
            report_throughput(runs, rec_summary, args)
        if "latency" in phases:
            results["latency"] = latency(args, logdir, broker)
            if args.diagnostics:
                results["latency_linger0"] = latency(args, logdir, broker,
                                                     ["linger.ms=0"], "latency_linger0")
    finally:
        broker.stop()
        (logdir / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults.json, agent logs, recording: {logdir}")


if __name__ == "__main__":
    main()
