"""deploy/systemd/execmon.service and execmon.env: systemd-analyze verify
and security, the capability set, flags the binary accepts, and a syscall
filter that covers what the agent really calls (strace, as root)."""
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from deploylib import REPO

UNIT = REPO / "deploy" / "systemd" / "execmon.service"
ENV = REPO / "deploy" / "systemd" / "execmon.env"
BINARY_PATH = "/usr/local/bin/execmon"

needs_systemd_analyze = pytest.mark.skipif(not shutil.which("systemd-analyze"),
                                           reason="systemd-analyze not installed")


def unit_settings():
    """{key: [values]} of the [Service] section, continuation lines joined."""
    out, section, cur = {}, None, ""
    for line in UNIT.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith(("#", ";"))):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        cur += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        k, _, v = cur.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
        cur = ""
    return out


def env_file(uncomment_examples=False):
    env, examples = {}, {}
    for line in ENV.read_text().splitlines():
        m = re.match(r"^#\s?(EXECMON_\w+)=(.*)$", line)
        if m:
            examples[m.group(1)] = m.group(2)
        m = re.match(r"^(EXECMON_\w+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
    return {**env, **examples} if uncomment_examples else env


def exec_start_args(env):
    """ExecStart as systemd expands it: ${VAR} one word, $VAR split on space."""
    s = unit_settings()
    defaults = dict(v.split("=", 1) for v in s[("Service", "Environment")])
    env = {**defaults, **env}
    words = []
    for w in shlex.split(s[("Service", "ExecStart")][0]):
        if re.fullmatch(r"\$\w+", w):
            words += env.get(w[1:], "").split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), w))
    return words


@pytest.fixture
def unit_for_this_host(tmp_path, execmon_bin):
    """The unit with ExecStart pointing at the built binary (verify checks
    that the executable exists)."""
    p = tmp_path / "execmon.service"
    p.write_text(UNIT.read_text().replace(BINARY_PATH, str(execmon_bin)))
    return p


@needs_systemd_analyze
def test_systemd_analyze_verify(unit_for_this_host):
    r = subprocess.run(["systemd-analyze", "verify", str(unit_for_this_host)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout


@needs_systemd_analyze
def test_systemd_analyze_security(unit_for_this_host):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                        str(unit_for_this_host)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {r.stdout[-300:]}")
    assert float(m.group(1)) <= 3.0, r.stdout


def test_hardening_settings():
    s = unit_settings()
    one = {k[1]: v[-1] for k, v in s.items() if k[0] == "Service"}
    caps = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_DAC_READ_SEARCH", "CAP_KILL"}
    assert set(one["AmbientCapabilities"].split()) == caps
    assert set(one["CapabilityBoundingSet"].split()) == caps
    assert one["DynamicUser"] == "yes" and one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] == "strict" and one["ProtectHome"] == "yes"
    assert "/etc/execmon" in one["ReadOnlyPaths"].split()
    assert one["Restart"] == "on-failure"
    assert one["EnvironmentFile"] == "-/etc/execmon/execmon.env"
    assert "--policies=/etc/execmon/policies" in one["ExecStart"]
    # The agent flushes Kafka for up to --kafka-flush-timeout (10s) on SIGTERM.
    assert int(one["TimeoutStopSec"].rstrip("s")) > 10
    # Reloading policies is the agent's own job (inotify); SIGHUP would kill it.
    assert "ExecReload" not in one


@pytest.mark.parametrize("examples", [False, True], ids=["env-file", "env-file-examples"])
def test_exec_start_flags_parse(execmon_bin, examples):
    """ExecStart with the example environment file (and with its commented
    examples switched on) is accepted by the binary's flag parser."""
    args = exec_start_args(env_file(uncomment_examples=examples))
    assert args[0] == BINARY_PATH and args[1] == "run"
    r = subprocess.run([str(execmon_bin), *args[1:], "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, f"{args}\n{r.stdout}"
    if examples:
        assert any(a.startswith("--kafka-brokers=") for a in args)


def expand_syscall_group(name, seen=None):
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        calls |= expand_syscall_group(t, seen) if t.startswith("@") else {t}
    return calls


@needs_systemd_analyze
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("strace"),
                    reason="needs root (BPF) and strace")
def test_syscall_filter_covers_the_agent(execmon_bin, tmp_path):
    """Runs the agent for a few seconds under strace (start-up, snapshot,
    policies, events, metrics scrape, shutdown) and checks every system call
    it made is allowed by the unit's SystemCallFilter."""
    allowed = set()
    for item in unit_settings()[("Service", "SystemCallFilter")][-1].split():
        allowed |= expand_syscall_group(item) if item.startswith("@") else {item}
    assert "bpf" in allowed and "read" in allowed
    trace = tmp_path / "strace.txt"
    agent = subprocess.Popen(
        ["strace", "-f", "-qq", "-c", "-o", str(trace), str(execmon_bin), "run",
         f"--policies={REPO / 'policies'}", f"--output={tmp_path / 'events.jsonl'}",
         "--metrics-address=127.0.0.1:19479"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and agent.poll() is None:
            r = subprocess.run(["curl", "-sf", "127.0.0.1:19479/readyz"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            time.sleep(0.5)
        subprocess.run(["/bin/true"])
        subprocess.run(["curl", "-sf", "127.0.0.1:19479/metrics"], stdout=subprocess.DEVNULL)
        time.sleep(1)
    finally:
        # SIGTERM to the agent (strace's child), as systemd would send it.
        children = pathlib.Path(f"/proc/{agent.pid}/task/{agent.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        for pid in pids:
            os.kill(int(pid), signal.SIGTERM)
        if not pids:
            agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err[-2000:]
    used = set(re.findall(r"^\s*[0-9.]+\s+[0-9.]+\s+\d+\s+\d+\s+(?:\d+\s+)?(\w+)\s*$",
                          trace.read_text(), re.M))
    used.discard("total")
    assert "bpf" in used, trace.read_text()
    assert not used - allowed, f"blocked by SystemCallFilter: {sorted(used - allowed)}"
