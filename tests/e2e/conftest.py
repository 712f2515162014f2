"""Harness for end-to-end tests: the real agent, the real kernel, real execs.

Every test here runs build/bin/execmon as root against the running kernel,
executes real programs, and asserts on the JSON events the agent writes.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Also when loaded by path from another suite (tests/k8s).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import event_schema  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("EXECMON_BUILD_DIR", REPO / "build")).resolve()
EXECMON = BUILD / "bin" / "execmon"
BIN = BUILD / "tests" / "e2e" / "bin"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="e2e tests load BPF programs: run as root")
        for item in items:
            item.add_marker(skip)


def readelf_build_id(path):
    """The build ID as binutils' readelf reports it (independent oracle)."""
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def execmon_build_id(path):
    """The build ID as `execmon buildid` (libelf) reports it."""
    r = subprocess.run([str(EXECMON), "buildid", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    hexid, name = r.stdout.split(None, 1)
    assert name.strip() == str(path)
    return hexid


# The resolver paths that learn a first-seen binary's build ID at exec,
# before its first instruction (docs/kernels.md), in chain order.
EXEC_PATHS = ("page_cache", "task_work")


class PathRefused(Exception):
    """The kernel refused a resolver path the agent was told to require."""


class Agent:
    """A running `execmon run` writing JSON lines to a file.

    chain: the resolver paths the agent loaded, from its start-up log;
    exec_source: the build_id_source of a first-seen binary judged at exec
    (the first of EXEC_PATHS loaded), or None when only late paths loaded.
    """

    def __init__(self, tmp_path, *flags):
        self.out = tmp_path / "events.jsonl"
        self.err = tmp_path / "agent.log"
        self._err_f = open(self.err, "w")
        self.proc = subprocess.Popen(
            [str(EXECMON), "run", f"--output={self.out}", *flags],
            stdout=subprocess.DEVNULL, stderr=self._err_f)
        self._offset = 0
        self._events = []
        deadline = time.monotonic() + 60
        while "ready:" not in self.log():
            if self.proc.poll() is not None:
                m = re.search(r"--build_id_resolver=(\w+): (.*refused by kernel.*)",
                              self.log())
                if m:
                    self._err_f.close()
                    raise PathRefused(f"{m.group(1)}: {m.group(2)}")
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"agent not ready in 60 s:\n{self.log()}")
            time.sleep(0.05)
        m = re.search(r"build-ID resolver chain: cache,(\S+)", self.log())
        assert m, f"no resolver chain in the start-up log:\n{self.log()}"
        self.chain = m.group(1).split(",")
        self.exec_source = next((p for p in self.chain if p in EXEC_PATHS), None)

    def log(self):
        return self.err.read_text()

    def wait_for_log(self, pattern, timeout=10):
        """The first match of regex pattern in the agent's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n"
                             f"{self.log()}")

    def events(self):
        """All events so far (parsed), in output order."""
        if self.out.exists():
            with open(self.out) as f:
                f.seek(self._offset)
                data = f.read()
            # Only complete lines: the agent may be mid-write.
            end = data.rfind("\n") + 1
            for line in data[:end].splitlines():
                self._events.append(event_schema.validate(json.loads(line)))
            self._offset += len(data[:end].encode())
        return list(self._events)

    def wait_for(self, pred, timeout=10, what="event"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if pred(e):
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s; agent log:\n{self.log()}")

    def exec_event(self, pid, timeout=10, comm=None):
        """The first exec event of pid (of the program named comm, when a
        pid execs several programs, e.g. a shell that execs its command)."""
        return self.wait_for(
            lambda e: e["type"] == "exec" and e["process"]["pid"] == pid
            and (comm is None or e["process"]["comm"] == comm),
            timeout, f"exec event for pid {pid}" + (f" ({comm})" if comm else ""))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("agent did not stop within 30 s of SIGTERM")
        self._err_f.close()
        return self.proc.returncode


@pytest.fixture
def agent_factory(tmp_path):
    agents = []

    def start(*flags, subdir=None):
        d = tmp_path / (subdir or f"agent{len(agents)}")
        d.mkdir()
        a = Agent(d, *flags)
        agents.append(a)
        return a

    yield start
    for a in agents:
        rc = a.stop()
        assert rc == 0, f"agent exited {rc}:\n{a.log()}"


@pytest.fixture
def agent(agent_factory):
    return agent_factory()


@pytest.fixture(params=EXEC_PATHS)
def path_agent_factory(request, agent_factory):
    """Like agent_factory, with one at-exec resolver path required (then the
    late iterator): each path is exercised end to end on its own. A path
    the running kernel refuses is a skip with the kernel's reason."""
    path = request.param

    def start(*flags, **kw):
        try:
            a = agent_factory(f"--build_id_resolver={path},iterator", *flags, **kw)
        except PathRefused as e:
            pytest.skip(f"kernel refuses resolver path {e}")
        assert a.exec_source == path, a.chain
        return a

    return start


@pytest.fixture
def path_agent(path_agent_factory):
    return path_agent_factory()


def run(cmd, **kw):
    """Runs a program to completion; returns (pid, CompletedProcess)."""
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, **kw)
    out, err = p.communicate(timeout=30)
    return p.pid, subprocess.CompletedProcess(p.args, p.returncode, out, err)


def fresh_copy(src, dst):
    """A new file with src's content: its ctime is now, so it is a cache miss
    (and too fresh to be cached until the agent's --cache_min_age passes)."""
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)
    return Path(dst)


def overwrite_in_place(src, dst):
    """Rewrites dst with src's bytes keeping dst's inode (no rename)."""
    data = Path(src).read_bytes()
    with open(dst, "r+b") as f:
        f.truncate(0)
        f.write(data)
