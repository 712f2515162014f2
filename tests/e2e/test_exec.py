"""Exec events end to end: fields, build IDs, cache, scripts, fileless."""
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BIN, EXECMON, execmon_build_id, fresh_copy,
                      overwrite_in_place, readelf_build_id, run)

# Short cache age so tests can make a binary "old enough to cache" quickly.
MIN_AGE = "--cache_min_age=300ms"


def cgroup_id_of_self():
    """The cgroup v2 id of this process: the inode of its cgroup directory."""
    mounts = [l.split() for l in Path("/proc/self/mounts").read_text().splitlines()]
    root = next((m[1] for m in mounts if m[2] == "cgroup2"), None)
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    rel = next(l.split(":", 2)[2] for l in
               Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::"))
    return Path(root + rel).stat().st_ino


def test_exec_event_fields(agent, tmp_path):
    prog = BIN / "hello_pie8"
    pid, r = run([prog, "arg one", "two"], cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == b"hello arg one\n"
    e = agent.exec_event(pid)
    p = e["process"]
    st = prog.stat()
    assert e["schema"] == 1
    assert e["node"] == os.uname().nodename
    assert p["ppid"] == os.getpid()
    assert p["uid"] == os.getuid() and p["gid"] == os.getgid()
    assert p["euid"] == os.geteuid()
    assert p["comm"] == "hello_pie8"
    assert p["filename"] == str(prog)
    assert p["binary"] == str(prog.resolve())
    assert p["args"] == [str(prog), "arg one", "two"]
    assert p["argc"] == 3 and p["args_truncated"] is False
    assert p["cwd"] == str(tmp_path.resolve())
    assert p["cgroup_id"] == cgroup_id_of_self()
    assert p["mnt_ns"] == os.stat("/proc/self/ns/mnt").st_ino
    assert p["pid_ns"] == os.stat("/proc/self/ns/pid").st_ino
    exe = p["exe"]
    assert exe["dev"] == st.st_dev and exe["inode"] == st.st_ino
    assert exe["size"] == st.st_size and exe["ctime_ns"] == st.st_ctime_ns
    assert exe["nlink"] == st.st_nlink and exe["mode"] == st.st_mode
    assert p["build_id"] == "0e0e0e0e00000008"
    assert p["build_id_source"] in (agent.exec_source, "cache")
    assert p["build_id_late"] is False
    assert p["build_id_error"] is None
    assert p["fileless"] is False and "script" not in p
    assert p["exec_id"] and p["exec_id"] != p["parent_exec_id"]
    # The test process predates the agent: the snapshot named it, and the
    # exec's parent link points at that snapshot entry.
    snap = agent.wait_for(lambda x: x["type"] == "snapshot"
                          and x["process"]["pid"] == os.getpid())
    assert p["parent_exec_id"] == snap["process"]["exec_id"]
    assert e["parent"]["exec_id"] == snap["process"]["exec_id"]
    # Wall time within a minute of now.
    t = time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert abs(time.mktime(t) - time.mktime(time.gmtime())) < 60


@pytest.mark.parametrize("name,want,error", [
    ("hello_pie8", "0e0e0e0e00000008", None),
    ("hello_nopie20", "2020202020202020202020202020202020200020", None),
    ("hello_static20", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0020", None),
    ("hello_static_pie16", "5e5e5e5e5e5e5e5e5e5e5e5e00000016", None),
    ("hello_id1", "01", None),
    ("hello_stripped", "0e0e0e0e00000008", None),
    ("late_note", "1ae0000000000000000000000000000000000042", None),
    ("first_insn", "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1", None),
    ("hello_elf32", "3232323232323232", None),
    ("hello_noid", None, "no_note"),
    ("hello_id24", None, "bad_build_id_size"),
])
def test_build_id_of_fresh_binary(path_agent, tmp_path, name, want, error):
    # A fresh copy is a guaranteed cache miss: resolved at exec by the path.
    agent = path_agent
    prog = fresh_copy(BIN / name, tmp_path / name)
    pid, r = run([prog])
    assert r.returncode == 0, r.stderr
    p = agent.exec_event(pid)["process"]
    assert p["build_id"] == want
    assert p["build_id_error"] == error
    assert p["build_id_source"] == agent.exec_source
    assert p["build_id_late"] is False
    if want is not None:
        # Independent oracles agree. readelf refuses ld's 1-byte note: its
        # section (17 bytes) is not padded to the 4-byte note alignment,
        # though the PT_NOTE segment holding it is.
        if name != "hello_id1":
            assert readelf_build_id(prog) == want
        assert execmon_build_id(prog) == want
    if name == "late_note":
        data = prog.read_bytes()
        assert data.find(bytes.fromhex(want)) > 4096


def test_cli_buildid_rejects_oversized_note(tmp_path):
    r = subprocess.run([str(EXECMON), "buildid", str(BIN / "hello_id24")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "24 bytes" in r.stderr


def test_miss_then_hit(path_agent_factory, tmp_path):
    agent = path_agent_factory(MIN_AGE)
    prog = fresh_copy(BIN / "hello_nopie20", tmp_path / "prog")
    time.sleep(0.5)  # older than --cache_min_age: cacheable
    pid1, _ = run([prog])
    pid2, _ = run([prog])
    p1 = agent.exec_event(pid1)["process"]
    p2 = agent.exec_event(pid2)["process"]
    assert p1["build_id_source"] == agent.exec_source
    assert p2["build_id_source"] == "cache"
    assert p1["build_id"] == p2["build_id"] == readelf_build_id(prog)
    assert p2["build_id_resolved_ns"] == p2["ktime_ns"]


def test_fresh_binary_is_not_cached(path_agent, tmp_path):
    agent = path_agent
    # Default --cache_min_age=2s: a file written just now is read every time.
    prog = fresh_copy(BIN / "hello_pie8", tmp_path / "prog")
    pids = [run([prog])[0] for _ in range(3)]
    for pid in pids:
        p = agent.exec_event(pid)["process"]
        assert p["build_id_source"] == agent.exec_source
        assert p["build_id_cached"] is False
        assert p["build_id"] == "0e0e0e0e00000008"


def test_overwrite_in_place_never_reports_stale_id(path_agent_factory, tmp_path):
    agent = path_agent_factory(MIN_AGE)
    prog = fresh_copy(BIN / "hello_pie8", tmp_path / "prog")
    time.sleep(0.5)
    old_ino = prog.stat().st_ino
    pid1, _ = run([prog])
    pid2, _ = run([prog])
    assert agent.exec_event(pid2)["process"]["build_id_source"] == "cache"
    # Same inode, new content, right away.
    overwrite_in_place(BIN / "hello_nopie20", prog)
    assert prog.stat().st_ino == old_ino
    pid3, r = run([prog])
    assert r.returncode == 0
    p3 = agent.exec_event(pid3)["process"]
    assert p3["exe"]["inode"] == old_ino
    assert p3["build_id"] == "2020202020202020202020202020202020200020"
    assert p3["build_id_source"] == agent.exec_source
    # Once old enough the new version is cached, under its new identity.
    time.sleep(0.5)
    pid4, _ = run([prog])
    pid5, _ = run([prog])
    p5 = agent.exec_event(pid5)["process"]
    assert p5["build_id_source"] == "cache"
    assert p5["build_id"] == "2020202020202020202020202020202020200020"


def test_script_reports_script_and_interpreter(agent, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho script\n")
    script.chmod(0o755)
    pid, r = run([script, "x"])
    assert r.stdout == b"script\n"
    p = agent.exec_event(pid)["process"]
    interp = Path("/bin/sh").resolve()
    assert p["filename"] == str(script)
    assert p["script"] == {"path": str(script), "interpreter": str(interp)}
    assert p["binary"] == str(interp)
    assert p["build_id"] == readelf_build_id(interp)
    assert p["args"][:2] == ["/bin/sh", str(script)]


def test_memfd_exec_is_fileless_with_build_id(agent):
    pid, r = run([BIN / "memfd_exec", BIN / "hello_static20", "memfd"])
    assert r.stdout == b"hello memfd\n", r.stderr
    # memfd_exec's own exec, then the fexecve of the memfd under the same pid.
    e = agent.wait_for(lambda x: x["type"] == "exec" and x["process"]["pid"] == pid
                       and x["process"]["fileless"])
    p = e["process"]
    assert p["memfd"] is True
    assert p["binary"].startswith("/memfd:execmon-e2e")
    assert p["exe"]["nlink"] == 0
    assert p["build_id"] == "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0020"


def test_deleted_binary_is_fileless_with_build_id(agent, tmp_path):
    prog = fresh_copy(BIN / "hello_pie8", tmp_path / "doomed")
    fd = os.open(prog, os.O_RDONLY)
    prog.unlink()
    try:
        pid, r = run([f"/proc/self/fd/{fd}"], pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.returncode == 0
    p = agent.exec_event(pid)["process"]
    assert p["fileless"] is True and p["memfd"] is False
    assert p["build_id"] == "0e0e0e0e00000008"


def test_build_id_known_before_first_instruction(agent):
    # first_insn's first instructions read CLOCK_BOOTTIME and print it.
    for _ in range(5):
        pid, r = run([BIN / "first_insn"])
        (first_ns,) = struct.unpack("<Q", r.stdout)
        p = agent.exec_event(pid)["process"]
        assert p["build_id"] == "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"
        assert p["ktime_ns"] <= p["build_id_resolved_ns"] < first_ns


def test_args_truncated(agent):
    big = "a" * 3000
    pid, r = run([BIN / "hello_pie8", big, "tail"])
    p = agent.exec_event(pid)["process"]
    assert p["args_truncated"] is True
    assert p["argc"] == 3
    assert p["args"][0] == str(BIN / "hello_pie8")
    assert big.startswith(p["args"][1])


def deep_path(base, total, name):
    """base/ddd.../ddd/name, exactly total bytes long (directories made)."""
    d = Path(base)
    while len(str(d)) + 1 + len(name) < total:
        room = total - len(str(d)) - 1 - len(name) - 1
        d = d / ("d" * max(1, min(200, room)))
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    assert len(str(path)) == total, (len(str(path)), total)
    return path


@pytest.mark.parametrize("total", [511, 512, 900])
def test_long_filename_keeps_the_tail(agent, tmp_path, total):
    # Issue 11: a filename longer than the 511-byte field keeps its tail
    # (the program's name) and says it was cut, as binary and cwd do; one
    # that fits exactly is whole and not flagged.
    prog = deep_path(tmp_path.resolve(), total, "long_name_prog")
    fresh_copy(BIN / "hello_pie8", prog)
    pid, r = run([prog])
    assert r.returncode == 0, r.stderr
    p = agent.exec_event(pid)["process"]
    if total <= 511:
        assert p["filename"] == str(prog)
        assert "filename" not in p.get("truncated", [])
    else:
        assert p["filename"] == str(prog)[-511:]
        assert p["filename"].endswith("/long_name_prog")
        assert "filename" in p["truncated"]
        assert p["binary"] == str(prog)[-511:]
        assert "binary" in p["truncated"]


def test_invalid_utf8_is_marked_with_the_exact_bytes(agent, tmp_path):
    # Issue 11: bytes that are not UTF-8 are shown as U+FFFD, so different
    # byte strings would render alike; "invalid_utf8" carries the exact
    # bytes (base64) of every such field.
    import base64
    name = b"prog\xff\xfe"
    d = os.fsencode(tmp_path.resolve()) + b"/dir\xc0\xaf"
    os.mkdir(d)
    prog = d + b"/" + name
    fresh_copy(BIN / "hello_pie8", os.fsdecode(prog))
    arg = b"a\xed\xa0\x80b"
    p = subprocess.Popen([prog, b"ok", arg], cwd=d, stdout=subprocess.PIPE)
    p.communicate(timeout=30)
    e = agent.exec_event(p.pid)["process"]
    raw = {k: base64.b64decode(v) for k, v in e["invalid_utf8"].items()}
    assert raw == {"filename": prog, "binary": prog, "cwd": d, "args.0": prog,
                   "args.2": arg, "comm": name}
    assert e["filename"] == prog.decode("utf-8", "replace")
    assert e["args"][1] == "ok"


def test_exit_events(agent):
    pid, r = run([BIN / "hello_pie8"])
    ex = agent.exec_event(pid)
    e = agent.wait_for(lambda x: x["type"] == "exit" and x["process"]["pid"] == pid)
    assert e["exit"]["code"] == 0
    assert e["process"]["exec_id"] == ex["process"]["exec_id"]
    assert e["process"]["build_id"] == "0e0e0e0e00000008"
    pid, r = run(["/bin/sh", "-c", "exit 3"])
    e = agent.wait_for(lambda x: x["type"] == "exit" and x["process"]["pid"] == pid)
    assert e["exit"]["code"] == 3
    p = subprocess.Popen([str(BIN / "hello_pie8"), "sleep", "30"])
    agent.exec_event(p.pid)
    p.kill()
    p.wait()
    e = agent.wait_for(lambda x: x["type"] == "exit" and x["process"]["pid"] == p.pid)
    assert e["exit"]["signal"] == 9


def test_parent_links_through_fork(agent):
    # sh forks a child that execs hello: the child's parent is sh's exec.
    pid, r = run(["/bin/sh", "-c", f"{BIN / 'hello_pie8'} child; true"])
    sh = agent.exec_event(pid)["process"]
    child = agent.wait_for(lambda x: x["type"] == "exec"
                           and x["process"]["ppid"] == pid
                           and x["process"]["comm"] == "hello_pie8")["process"]
    assert child["parent_exec_id"] == sh["exec_id"]
    assert child["pid"] != pid
