"""The execmon command line: errors a user sees."""
import shutil
import subprocess

import pytest

from conftest import BIN, EXECMON


def test_version():
    r = subprocess.run([str(EXECMON), "version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("execmon ")


def test_agent_allocates_with_jemalloc():
    # The default build links jemalloc (docs/performance.md, "allocator");
    # jemalloc prints its statistics at exit when asked to.
    r = subprocess.run([str(EXECMON), "version"], capture_output=True, text=True,
                       env={"MALLOC_CONF": "stats_print:true"})
    assert r.returncode == 0
    assert "Begin jemalloc statistics" in r.stderr


def test_buildid_prints_hex_and_file():
    r = subprocess.run([str(EXECMON), "buildid", str(BIN / "hello_pie8"),
                        str(BIN / "hello_nopie20")], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.splitlines() == [
        f"0e0e0e0e00000008  {BIN / 'hello_pie8'}",
        f"2020202020202020202020202020202020200020  {BIN / 'hello_nopie20'}",
    ]


def test_buildid_errors():
    r = subprocess.run([str(EXECMON), "buildid", "/etc/passwd", "/nonexistent",
                        str(BIN / "hello_noid")], capture_output=True, text=True)
    assert r.returncode == 1
    err = r.stderr.splitlines()
    assert "/etc/passwd: not an ELF file" in err[0]
    assert err[1].startswith("execmon: /nonexistent")
    assert "no GNU build-ID note" in err[2]


def test_run_without_privileges_says_what_is_missing():
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    r = subprocess.run([setpriv, "--reuid=65534", "--regid=65534",
                        "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                        str(EXECMON), "run"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "missing CAP_BPF and CAP_PERFMON" in r.stderr
    assert "run execmon as root" in r.stderr


def test_run_rejects_bad_flags():
    r = subprocess.run([str(EXECMON), "run", "--build_id_resolver=magic"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "unknown path 'magic'" in r.stderr


def test_output_none_needs_kafka():
    r = subprocess.run([str(EXECMON), "run", "--output=none"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "--output=none without --kafka_brokers" in r.stderr
