"""The file sink under write errors: every event is written whole or
counted as dropped, no partial line is ever left, and the sink reports
down while writes fail (docs/operations.md, "Output file full")."""
import json
import os
import re
import subprocess
import time

import prom
from conftest import BIN, run


def scrape(agent):
    status, body = prom.http_get(f"http://{agent.metrics}/metrics")
    assert status == 200
    out = {}
    for line in body.splitlines():
        m = re.match(r'^(execmon_(?:sink_\w+|events_total))\{([^}]*)\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def total(metrics, name, **labels):
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for (n, l), v in metrics.items()
               if n == name and all(w in l for w in want))


def start(agent_factory, output):
    port = prom.free_port()
    a = agent_factory(f"--metrics_address=127.0.0.1:{port}", f"--output={output}",
                      "--snapshot=false")
    a.metrics = f"127.0.0.1:{port}"
    return a


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_full_disk_never_leaves_a_partial_line(agent_factory, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                   check=True)
    try:
        out = mnt / "events.jsonl"
        filler = mnt / "filler"
        agent = start(agent_factory, out)
        sink = f"file:{out}"
        # Leave 8 KiB: the disk fills within a few execs, and once the filler
        # is gone there is room for every event kept meanwhile, however many
        # a slow (loaded) machine lets pile up before the sink reports down.
        st = os.statvfs(mnt)
        filler.write_bytes(b"x" * max(0, st.f_bavail * st.f_frsize - (8 << 10)))
        # Exec until the disk is full (the sink says so within a second or
        # two): the events then pending fit once the filler is gone.
        for _ in range(200):
            run([BIN / "hello_pie8"])
            time.sleep(0.05)
            if total(scrape(agent), "execmon_sink_up", sink=sink) == 0:
                break
        wait_for(lambda: total(scrape(agent), "execmon_sink_up", sink=sink) == 0,
                 "sink not reported down on a full disk")
        # Every line in the file is whole JSON, even now.
        for line in out.read_text().splitlines():
            json.loads(line)
        filler.unlink()  # space again: the kept events are written
        run([BIN / "hello_pie8"])
        wait_for(lambda: total(scrape(agent), "execmon_sink_up", sink=sink) == 1,
                 "sink not back up after space was freed")

        def accounted():
            # Sink counters are refreshed each second: compare once settled.
            m = scrape(agent)
            written = total(m, "execmon_sink_delivered_total", sink=sink)
            dropped = total(m, "execmon_sink_dropped_total", sink=sink)
            queued = total(m, "execmon_sink_queue_events", sink=sink)
            return (written + dropped + queued == total(m, "execmon_events_total")
                    and written == len(out.read_text().splitlines()))
        wait_for(accounted, "events neither written nor counted as dropped")
        for line in out.read_text().splitlines():
            json.loads(line)
        assert agent.log().count("write failed") == 1  # rate-limited
        assert "writing again" in agent.log()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_device_that_always_fails_counts_every_event(agent_factory):
    agent = start(agent_factory, "/dev/full")
    sink = "file:/dev/full"
    for _ in range(20):
        run([BIN / "hello_pie8"])
    wait_for(lambda: total(scrape(agent), "execmon_sink_up", sink=sink) == 0,
             "sink not reported down")

    def accounted():
        m = scrape(agent)
        return (total(m, "execmon_sink_delivered_total", sink=sink) == 0 and
                total(m, "execmon_sink_dropped_total", sink=sink) +
                total(m, "execmon_sink_queue_events", sink=sink) ==
                total(m, "execmon_events_total"))
    wait_for(accounted, "events neither written nor counted")
    assert agent.log().count("write failed") == 1
