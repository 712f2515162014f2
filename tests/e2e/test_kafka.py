"""Kafka export against a real Apache Kafka broker (tests/e2e/kafka.py).

Every test compares what reached Kafka with the agent's JSON-lines file
(--output), which receives the same documents in the same order: event for
event, and, when the producer had to drop, with the agent's exact final
counters ("kafka: produced=... delivered=... dropped_...=...").
"""
import json
import re
import subprocess
import time
import uuid

import pytest

from conftest import BIN, EXECMON, run
import kafka as kafka_harness

HELLO = BIN / "hello_pie8"
COUNTERS = re.compile(
    r"kafka: produced=(\d+) delivered=(\d+) failed=(\d+) "
    r"dropped_queue_full=(\d+) dropped_timeout=(\d+) dropped_shutdown=(\d+) "
    r"dropped_other=(\d+)")
COUNTER_NAMES = ("produced", "delivered", "failed", "dropped_queue_full",
                 "dropped_timeout", "dropped_shutdown", "dropped_other")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker for the module; tests that stop it restart it."""
    try:
        jars = kafka_harness.ensure_jars()
    except kafka_harness.MavenCentralUnreachable as e:
        pytest.skip(str(e))
    b = kafka_harness.KafkaBroker(tmp_path_factory.mktemp("kafka"), jars)
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture
def kafka(broker):
    """The running broker (restarted if a previous test left it stopped)."""
    if not broker.running():
        broker.start()
    yield broker
    if not broker.running():
        broker.start()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kafka_flags(broker, topic, node, *extra):
    return (f"--kafka-brokers={broker.bootstrap}", f"--kafka-topic={topic}",
            f"--node={node}", "--metrics-address=",
            # Reconnect quickly once a stopped broker is back.
            "--kafka-property=reconnect.backoff.max.ms=500", *extra)


def file_lines(agent):
    """The JSON-lines file, one raw document per element."""
    return agent.out.read_text().splitlines()


def counters(agent):
    lines = COUNTERS.findall(agent.log())
    assert len(lines) == 1, f"want one kafka counters line:\n{agent.log()}"
    return dict(zip(COUNTER_NAMES, map(int, lines[0])))


def stop(agent):
    rc = agent.stop()
    assert rc == 0, f"agent exited {rc}:\n{agent.log()}"


def run_hello(tag, n):
    """n real execs of hello_pie8 tagged with `tag`; their pids."""
    pids = []
    for i in range(n):
        pid, r = run([HELLO, tag, str(i)])
        assert r.returncode == 0, r
        pids.append(pid)
    return pids


def wait_for_log(agent, text, timeout):
    deadline = time.monotonic() + timeout
    while text not in agent.log():
        assert time.monotonic() < deadline, \
            f"no '{text}' in the agent log within {timeout} s:\n{agent.log()}"
        time.sleep(0.1)


def wait_consumed(broker, topic, pred, timeout=30, what="message"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            msgs = broker.consume(topic)
        except RuntimeError:
            msgs = []  # topic not created yet
        if any(pred(m) for m in msgs):
            return msgs
        assert time.monotonic() < deadline, f"no {what} in {topic} within {timeout} s"
        time.sleep(0.3)


def is_subsequence(sub, seq):
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


def assert_same_events(msgs, lines, node, what):
    """Kafka messages == JSON-lines documents, one for one, in order; and
    each message's key and headers match its document."""
    assert len(msgs) == len(lines), \
        f"{what}: {len(msgs)} messages in Kafka, {len(lines)} lines in the file"
    for i, (m, line) in enumerate(zip(msgs, lines)):
        assert m["payload"] == line, f"{what}: event {i} differs"
        doc = json.loads(line)
        assert m["headers"] == {"schema": str(doc["schema"]),
                                "type": doc["type"]}, (what, i, m["headers"])
        assert m["key"] == node, (what, i, m["key"])


def test_exec_events_end_to_end(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    agent = agent_factory(*kafka_flags(kafka, topic, node))
    tag = unique("e2e-kafka")
    pids = run_hello(tag, 5)
    for pid in pids:
        agent.exec_event(pid)
    stop(agent)

    lines = file_lines(agent)
    msgs = kafka.consume(topic)
    assert_same_events(msgs, lines, node, topic)
    assert {m["partition"] for m in msgs} == {0}
    ours = [json.loads(m["payload"]) for m in msgs]
    ours = [e for e in ours if e["type"] == "exec"
            and e["process"]["args"][:2] == [str(HELLO), tag]]
    assert sorted(e["process"]["pid"] for e in ours) == sorted(pids)

    c = counters(agent)
    assert c["produced"] == c["delivered"] == len(lines), c
    assert c["failed"] == c["dropped_queue_full"] == c["dropped_timeout"] == \
        c["dropped_shutdown"] == c["dropped_other"] == 0, c


def test_output_none_sends_events_to_kafka_only(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    agent = agent_factory(*kafka_flags(kafka, topic, node, "--output=none"))
    tag = unique("kafka-only")
    pids = run_hello(tag, 3)
    mine = lambda m: tag in m["payload"] and '"type":"exec"' in m["payload"]
    deadline = time.monotonic() + 30
    while len([m for m in wait_consumed(kafka, topic, mine) if mine(m)]) < 3:
        assert time.monotonic() < deadline, "3 tagged execs not in Kafka"
        time.sleep(0.3)
    stop(agent)
    msgs = kafka.consume(topic)
    execs = [json.loads(m["payload"]) for m in msgs if mine(m)]
    assert sorted(e["process"]["pid"] for e in execs) == sorted(pids)
    assert not agent.out.exists(), "a JSON-lines file was written"
    c = counters(agent)
    assert c["produced"] == c["delivered"] == len(msgs), c


def test_topic_by_type(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    agent = agent_factory(*kafka_flags(kafka, topic, node,
                                       "--kafka-topic-by-type"))
    for pid in run_hello(unique("by-type"), 3):
        agent.exec_event(pid)
        agent.wait_for(lambda e, p=pid: e["type"] == "exit"
                       and e["process"]["pid"] == p, what=f"exit of {pid}")
    stop(agent)

    docs = [(line, json.loads(line)["type"]) for line in file_lines(agent)]
    types = {t for _, t in docs}
    assert {"exec", "exit", "snapshot"} <= types, types
    for t in types:
        assert_same_events(kafka.consume(f"{topic}.{t}"),
                           [line for line, lt in docs if lt == t], node,
                           f"{topic}.{t}")
    assert topic not in kafka.topics()
    c = counters(agent)
    assert c["produced"] == c["delivered"] == len(docs), c


def test_broker_down_and_back(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    agent = agent_factory(*kafka_flags(kafka, topic, node))
    first = run_hello(unique("before"), 1)[0]
    wait_consumed(kafka, topic,
                  lambda m: f'"pid":{first},' in m["payload"]
                  and '"type":"exec"' in m["payload"],
                  what=f"exec of {first}")

    kafka.stop()
    wait_for_log(agent, "kafka: all brokers down", 15)
    tag = unique("while-down")
    pids = run_hello(tag, 20)
    for pid in pids:
        agent.exec_event(pid)
    kafka.start()
    wait_for_log(agent, "events queued while they were down", 30)
    last = run_hello(unique("after"), 1)[0]
    wait_consumed(kafka, topic,
                  lambda m: f'"pid":{last},' in m["payload"]
                  and '"type":"exec"' in m["payload"],
                  what=f"exec of {last}")
    stop(agent)

    lines = file_lines(agent)
    msgs = kafka.consume(topic)
    assert_same_events(msgs, lines, node, topic)
    down = [json.loads(m["payload"]) for m in msgs]
    down = [e for e in down if e["type"] == "exec"
            and e["process"]["args"][:2] == [str(HELLO), tag]]
    assert sorted(e["process"]["pid"] for e in down) == sorted(pids)
    c = counters(agent)
    assert c["produced"] == c["delivered"] == len(lines), c
    assert c["dropped_queue_full"] == c["dropped_timeout"] == \
        c["dropped_shutdown"] == c["failed"] == c["dropped_other"] == 0, c


def test_queue_bound_drops_are_counted_exactly(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    kafka.stop()
    agent = agent_factory(*kafka_flags(kafka, topic, node,
                                       "--kafka-queue-max-events=20",
                                       "--kafka-flush-timeout=5s"))
    tag = unique("overflow")
    pids = run_hello(tag, 30)
    for pid in pids:
        agent.exec_event(pid)
    # 60 events (exec, exit) for room for 20, besides the snapshot.
    wait_for_log(agent, "kafka: producer queue full", 15)
    kafka.start()
    wait_for_log(agent, "kafka: brokers reachable", 30)
    # Events keep coming (every exec on the machine); with room for 20, some
    # are still dropped while the broker is up again: no event in particular
    # can be waited for. Stopping flushes what is queued.
    time.sleep(1)
    stop(agent)

    lines = file_lines(agent)
    msgs = kafka.consume(topic)
    payloads = [m["payload"] for m in msgs]
    c = counters(agent)
    print(f"\nqueue bound: {len(lines)} events in the file, {len(msgs)} in "
          f"Kafka, counters {c}")
    # What reached Kafka is what was delivered, in file order, nothing else.
    assert len(msgs) == c["delivered"]
    assert is_subsequence(payloads, lines)
    # Every event in the file is accounted for, exactly.
    assert c["delivered"] + c["failed"] + c["dropped_queue_full"] + \
        c["dropped_timeout"] + c["dropped_shutdown"] + c["dropped_other"] == \
        len(lines), c
    assert c["produced"] == c["delivered"] + c["failed"] + \
        c["dropped_timeout"] + c["dropped_shutdown"], c
    # The 30 execs while the broker was down: their exec and exit events
    # are in the file; at most 20 of them (fewer: the start-up snapshot came
    # first) could be queued, the others are not in Kafka.
    overflow = [line for line in lines
                if json.loads(line).get("process", {}).get("pid") in pids]
    assert len(overflow) >= 60
    assert len(set(overflow) - set(payloads)) >= len(overflow) - 20
    assert c["dropped_queue_full"] >= len(overflow) - 20, c
    assert c["delivered"] >= 20, c


def test_queue_max_age_drops_are_counted_exactly(kafka, agent_factory):
    topic, node = unique("execmon-e2e"), unique("node")
    kafka.stop()
    agent = agent_factory(*kafka_flags(kafka, topic, node,
                                       "--kafka-queue-max-age=2s",
                                       "--kafka-flush-timeout=1s"))
    pids = run_hello(unique("too-old"), 10)
    for pid in pids:
        agent.exec_event(pid)
    # Older than --kafka_queue_max_age (librdkafka checks every second).
    wait_for_log(agent, "are dropped", 15)
    time.sleep(3.5)
    stop(agent)

    lines = file_lines(agent)
    c = counters(agent)
    print(f"\nqueue max age: {len(lines)} events in the file, counters {c}")
    assert c["delivered"] == 0 and c["failed"] == 0, c
    assert c["produced"] == c["dropped_timeout"] + c["dropped_shutdown"], c
    assert c["produced"] + c["dropped_queue_full"] + c["dropped_other"] == \
        len(lines), c
    # At least the snapshot and the 10 execs with their exits timed out.
    mine = [line for line in lines
            if json.loads(line).get("process", {}).get("pid") in pids]
    assert len(mine) >= 20
    assert c["dropped_timeout"] >= len(mine), c
    # None of them arrives later: they were dropped, not delayed.
    kafka.start()
    assert topic not in kafka.topics()


@pytest.mark.parametrize("flags, named", [
    (["--kafka-property=no.such.property=1"], "no.such.property"),
    (["--kafka-property=acks=bogus"], "acks"),
    # The flag is repeatable: an earlier occurrence is not lost...
    (["--kafka-property=no.such.property=1", "--kafka-property=acks=all"],
     "no.such.property"),
    # ...nor a later one, and commas separate properties.
    (["--kafka-property=acks=all", "--kafka-property=linger.ms=5,bad.one=2"],
     "bad.one"),
    (["--kafka-key=container"], "--kafka_key"),
    (["--kafka-topic=no/slash"], "--kafka_topic"),
])
def test_bad_configuration_fails_start(tmp_path, flags, named):
    r = subprocess.run(
        [str(EXECMON), "run", f"--output={tmp_path / 'events.jsonl'}",
         "--metrics-address=", "--kafka-brokers=127.0.0.1:9", *flags],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and named in err[0], r.stderr
