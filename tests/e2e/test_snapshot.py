"""Processes older than the agent: task/VMA iterator snapshot."""
import os
import subprocess
from pathlib import Path

from conftest import BIN, readelf_build_id


def libc_path():
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and "libc.so" in parts[5]:
            return parts[5]
    raise AssertionError("no libc in /proc/self/maps")


def test_snapshot_reports_running_processes(agent_factory):
    old = subprocess.Popen([str(BIN / "hello_pie8"), "sleep", "60"])
    try:
        agent = agent_factory()
        e = agent.wait_for(lambda x: x["type"] == "snapshot"
                           and x["process"]["pid"] == old.pid)
        p = e["process"]
        assert p["binary"] == str((BIN / "hello_pie8").resolve())
        assert p["build_id"] == "0e0e0e0e00000008"
        assert p["build_id_source"] in ("snapshot", "cache")
        assert p["args"] == [str(BIN / "hello_pie8"), "sleep", "60"]
        assert p["ppid"] == os.getpid()
        st = (BIN / "hello_pie8").stat()
        assert p["exe"]["inode"] == st.st_ino and p["exe"]["dev"] == st.st_dev
        libc = libc_path()
        objs = {o["path"]: o for o in p["objects"]}
        assert libc in objs, sorted(objs)
        assert objs[libc]["build_id"] == readelf_build_id(libc)
        assert p["binary"] in objs
        # Every object the snapshot names is an ELF file with a known ID or
        # a stated reason.
        for o in p["objects"]:
            assert o["build_id"] or o["build_id_error"]
        # The snapshot of this test process links its child.
        me = agent.wait_for(lambda x: x["type"] == "snapshot"
                            and x["process"]["pid"] == os.getpid())
        assert p["parent_exec_id"] == me["process"]["exec_id"]
    finally:
        old.kill()
        old.wait()


def test_snapshot_can_be_disabled(agent_factory):
    agent = agent_factory("--snapshot=false")
    assert not [e for e in agent.events() if e["type"] == "snapshot"]
