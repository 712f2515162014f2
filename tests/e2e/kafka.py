"""A real Apache Kafka broker for the e2e tests (tests/e2e/test_kafka.py).

The broker is the Apache Kafka server itself (KRaft mode: one process that
is both broker and controller, PLAINTEXT on 127.0.0.1), run from its jars.
The jars come from Maven Central through tests/e2e/kafka/pom.xml:

    mvn -q -B -f pom.xml dependency:copy-dependencies -DoutputDirectory=CACHE

once; CACHE is outside the repository (EXECMON_KAFKA_CACHE, default
~/.cache/execmon/kafka-<version>) and reused by every later run. Then:

    java -cp "CACHE/*" kafka.tools.StorageTool format -t ID -c server.properties
    java -cp "CACHE/*" kafka.Kafka server.properties

The consumer side uses kcat (librdkafka's command-line client, Debian
package kcat).
"""
import base64
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import event_schema

KAFKA_VERSION = os.environ.get("EXECMON_KAFKA_VERSION", "3.9.1")
HERE = Path(__file__).resolve().parent / "kafka"
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j.properties"
MAVEN_CENTRAL_PROBE = ("https://repo.maven.apache.org/maven2/org/apache/kafka/"
                       "kafka_2.13/maven-metadata.xml")


class MavenCentralUnreachable(Exception):
    """The broker's jars are not cached and Maven Central cannot be reached."""


def cache_dir():
    default = Path.home() / ".cache" / "execmon" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("EXECMON_KAFKA_CACHE", default))


def _maven_central_error():
    """None if Maven Central answers, else why not."""
    try:
        with urllib.request.urlopen(MAVEN_CENTRAL_PROBE, timeout=15) as r:
            r.read(1)
        return None
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def ensure_jars(timeout=600):
    """The directory holding the broker's jars, downloading them once."""
    cache = cache_dir()
    done = cache / ".complete"
    if done.exists():
        return cache
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: run scripts/install-deps.sh "
                               "(default-jre-headless, maven)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent test runs: one downloads, the others wait for it.
    with open(cache.parent / f".{cache.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return cache
        partial = cache.parent / f".{cache.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="execmon-kafka-pom-") as stage:
            # Run Maven outside the repository: nothing lands in the tree.
            shutil.copy(POM, Path(stage) / "pom.xml")
            r = subprocess.run(
                ["mvn", "-q", "-B", "-f", str(Path(stage) / "pom.xml"),
                 f"-Dkafka.version={KAFKA_VERSION}",
                 "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={partial}"],
                capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not list(partial.glob("kafka_2.13-*.jar")):
            why = _maven_central_error()
            output = (r.stdout + r.stderr)[-3000:]
            if why is not None:
                raise MavenCentralUnreachable(
                    f"Kafka {KAFKA_VERSION} jars not in {cache} and Maven "
                    f"Central unreachable ({why}); mvn said:\n{output}")
            raise RuntimeError(f"mvn failed (exit {r.returncode}):\n{output}")
        shutil.rmtree(cache, ignore_errors=True)
        partial.rename(cache)
        done.write_text(f"kafka {KAFKA_VERSION}\n")
    return cache


def _die_with_parent():
    """In the child: SIGTERM when the test process dies, however it dies, so
    no broker outlives the tests."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _random_cluster_id():
    """A Kafka Uuid: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaBroker:
    """One single-node KRaft Kafka broker in `workdir`.

    The port and the log directory stay the same across stop()/start(), so
    a restarted broker is the same cluster with the same data.
    """

    def __init__(self, workdir, jars=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.jars = Path(jars) if jars else ensure_jars()
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data = self.workdir / "data"
        self.config = self.workdir / "server.properties"
        self.log_path = self.workdir / "broker.log"
        self.proc = None
        self.config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
            "CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data}",
            # One partition per topic: one total order to compare with the
            # JSON-lines file.
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # A restart must not wait for the previous session to expire.
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "",
        ]))
        self._java(["kafka.tools.StorageTool", "format", "-t",
                    _random_cluster_id(), "-c", str(self.config)],
                   timeout=120)

    def _cmd(self, args):
        return ["java", "-Xmx512m", "-Xms64m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{LOG4J}",
                "-cp", f"{self.jars}/*", *args]

    def _java(self, args, timeout):
        r = subprocess.run(self._cmd(args), capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({r.returncode}):"
                               f"\n{r.stdout}{r.stderr}")
        return r.stdout

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60):
        assert not self.running(), "broker already running"
        with open(self.log_path, "a") as log:
            log.write(f"=== start {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = subprocess.Popen(
                self._cmd(["kafka.Kafka", str(self.config)]),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
        self.wait_ready(timeout)

    def wait_ready(self, timeout=60):
        """Until a metadata request lists this broker."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited {self.proc.returncode}:\n"
                                   f"{self.log()[-4000:]}")
            r = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-J",
                                "-m", "2"], capture_output=True, text=True,
                               timeout=30)
            if r.returncode == 0:
                try:
                    if json.loads(r.stdout).get("brokers"):
                        return
                except ValueError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker not ready within {timeout} s:\n"
                                   f"{self.log()[-4000:]}")
            time.sleep(0.3)

    def stop(self, timeout=30):
        """SIGTERM (controlled shutdown), then SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, timeout=60):
        self.stop()
        self.start(timeout)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def consume(self, topic, timeout=30):
        """Every message of `topic` from the beginning, as dicts: topic,
        partition, offset, key, payload (str), headers (dict)."""
        r = subprocess.run(
            ["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-o", "beginning",
             "-e", "-q", "-J", "-X", "topic.metadata.refresh.interval.ms=1000"],
            capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"kcat -C -t {topic} failed ({r.returncode}): "
                               f"{r.stderr}")
        out = []
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            m = json.loads(line)
            h = m.get("headers") or []
            m["headers"] = dict(zip(h[0::2], h[1::2]))
            # Every message is an agent event: it must match the schema.
            event_schema.validate(json.loads(m["payload"]))
            out.append(m)
        return out

    def topics(self):
        r = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-J"],
                           capture_output=True, text=True, timeout=30)
        r.check_returncode()
        return {t["topic"] for t in json.loads(r.stdout).get("topics", [])}
