"""Hostile ELF files and forged notes (issue 11).

Consistency: on every input the runtime, `execmon buildid` (libelf) and
readelf name the same build ID, or the runtime reports an error; never a
different ID. Forgery: an ID read from memory the process could write is
never cached and never credited by an allow list.
"""
import os
import shutil
import stat
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, EXECMON, fresh_copy, readelf_build_id, execmon_build_id, run
from test_policy import CONTAINERS, MARKER_ID, policy, pod_cgroup, write_policies  # noqa: F401

REAL_ID = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb0020"
DECOY_ID = "aa" * 20
DECOY_MARK = b"EXECMON-DECOY-NOTE-FOLLOWS-HERE"
PT_LOAD, PT_NOTE = 1, 4


def phdrs(data):
    """[(index, file offset of the phdr, (type, flags, offset, vaddr, paddr,
    filesz, memsz, align))] of an ELF64 little-endian file."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    out = []
    for i in range(phnum):
        at = phoff + i * phentsize
        out.append((i, at, struct.unpack_from("<IIQQQQQQ", data, at)))
    return out


def vaddr_of(data, off):
    for _, _, (t, _, o, v, _, fs, _, _) in phdrs(data):
        if t == PT_LOAD and o <= off < o + fs:
            return v + (off - o)
    raise AssertionError(f"offset {off:#x} is in no PT_LOAD")


def craft_decoy(dst, mode):
    """A copy of decoy_note whose build-ID PT_NOTE says one thing by file
    offset and another at its p_vaddr:
      "vaddr":    p_vaddr points at a copy of the segment with DECOY_ID (the
                  file, readelf and libelf say REAL_ID);
      "past_eof": p_offset lies past the end of the file, p_vaddr at the
                  decoy (libelf: malformed)."""
    data = bytearray((BIN / "decoy_note").read_bytes())
    real = bytes.fromhex(REAL_ID)
    for i, at, (t, fl, o, v, pa, fs, ms, al) in phdrs(data):
        if t == PT_NOTE and real in data[o:o + fs]:
            break
    else:
        raise AssertionError("no PT_NOTE holds the build ID")
    seg = bytes(data[o:o + fs]).replace(real, bytes.fromhex(DECOY_ID))
    mark = data.find(DECOY_MARK)
    assert mark > 0
    decoy_off = (mark + len(DECOY_MARK) + 15) & ~15
    assert decoy_off + len(seg) <= mark + 256
    data[decoy_off:decoy_off + len(seg)] = seg
    dv = vaddr_of(data, decoy_off)
    new_off = o if mode == "vaddr" else len(data) + 0x1000
    struct.pack_into("<IIQQQQQQ", data, at, t, fl, new_off, dv, dv, fs, ms, al)
    Path(dst).write_bytes(data)
    os.chmod(dst, 0o755)
    return Path(dst)


def test_decoy_binary_is_what_the_tests_think(tmp_path):
    # The crafting itself: the unmodified program says REAL_ID everywhere,
    # and the "vaddr" copy's p_vaddr really points at DECOY_ID's note.
    assert readelf_build_id(BIN / "decoy_note") == REAL_ID
    prog = craft_decoy(tmp_path / "v", "vaddr")
    data = prog.read_bytes()
    note = [p for _, _, p in phdrs(data)
            if p[0] == PT_NOTE and bytes.fromhex(REAL_ID) in data[p[2]:p[2] + p[5]]]
    assert len(note) == 1
    _, _, off, vaddr, _, filesz, _, _ = note[0]
    decoy_off = data.find(bytes.fromhex(DECOY_ID))
    assert vaddr == vaddr_of(data, decoy_off - (data[off:off + filesz].find(
        bytes.fromhex(REAL_ID))))
    assert run([prog])[1].returncode == 0


def test_note_vaddr_pointing_elsewhere_exec_path(path_agent, tmp_path):
    # At exec (page cache or task_work): the ID the file holds at p_offset.
    prog = craft_decoy(tmp_path / "vaddr_decoy", "vaddr")
    assert readelf_build_id(prog) == REAL_ID
    assert execmon_build_id(prog) == REAL_ID
    pid, r = run([prog])
    assert r.returncode == 0, r.stderr
    p = path_agent.exec_event(pid)["process"]
    assert p["build_id_source"] == path_agent.exec_source
    assert p["build_id"] == REAL_ID and p["build_id_error"] is None


def test_note_vaddr_pointing_elsewhere_from_memory(agent_factory, tmp_path):
    # Late, from the process's memory (no page-cache unit): still the bytes
    # the file holds at p_offset, read where the PT_LOAD maps them.
    agent = agent_factory("--build_id_resolver=iterator")
    prog = craft_decoy(tmp_path / "vaddr_decoy", "vaddr")
    p = subprocess.Popen([str(prog), "sleep", "3"])
    e = agent.exec_event(p.pid, timeout=15)["process"]
    p.wait()
    assert e["build_id_source"] == "iterator"
    assert e["build_id"] == REAL_ID and e["build_id_from_memory"] is True


def test_note_past_end_of_file_exec_path(path_agent, tmp_path):
    prog = craft_decoy(tmp_path / "past_eof", "past_eof")
    r = subprocess.run([str(EXECMON), "buildid", str(prog)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "malformed ELF" in r.stderr, r.stderr
    pid, r = run([prog])
    assert r.returncode == 0, r.stderr
    p = path_agent.exec_event(pid)["process"]
    assert p["build_id"] is None and p["build_id_error"] == "bad_note"


def test_note_past_end_of_file_from_memory(agent_factory, tmp_path):
    agent = agent_factory("--build_id_resolver=iterator")
    prog = craft_decoy(tmp_path / "past_eof", "past_eof")
    p = subprocess.Popen([str(prog), "sleep", "3"])
    e = agent.exec_event(p.pid, timeout=15)["process"]
    p.wait()
    assert e["build_id"] is None and e["build_id_error"] == "bad_note"


# ---------------------------------------------------------------------------
# Forged notes: a process rewrites its own mapped build-ID note (an
# LD_PRELOAD constructor mprotects the note's page and writes another ID).

NOPIE20_ID = "2020202020202020202020202020202020200020"
FORGED_ID = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f00020"
NOBODY = 65534


@pytest.fixture
def world_dir():
    """A directory an unprivileged user can execute from."""
    d = Path(tempfile.mkdtemp(prefix="execmon-forge-", dir="/tmp"))
    os.chmod(d, 0o755)
    shutil.copy(BIN / "forge_note.so", d / "forge_note.so")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_forger(world_dir, prog, forged=FORGED_ID, user=NOBODY, cgroup=None):
    """Starts prog (sleeping 60 s) as user with the forging library and waits
    until its constructor reports the forged note. Returns the Popen."""
    env = dict(os.environ, LD_PRELOAD=str(world_dir / "forge_note.so"),
               FORGE_BUILD_ID=forged)
    cmd = [str(prog), "sleep", "60"]
    if cgroup is not None:
        # Join the cgroup as root, then drop to user for the exec.
        cmd = ["/bin/sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"',
               "sh", "setpriv", f"--reuid={user}", f"--regid={user}",
               "--clear-groups", "env", f"LD_PRELOAD={env.pop('LD_PRELOAD')}",
               *cmd]
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    else:
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, user=user,
                             group=user, extra_groups=[])
    line = p.stderr.readline()
    assert line == b"forge_note: forged\n", line
    return p


def stop(p):
    p.kill()
    p.wait()


def test_forged_note_from_the_snapshot_is_never_cached(agent_factory, world_dir, tmp_path):
    # Review finding: a process forged its note before the agent started;
    # the snapshot read the forged ID from its memory and cached it by file
    # identity, so a later plain exec of the unmodified file by root was a
    # cache hit with the forged ID. Only the late path runs here (no page
    # cache unit), so the snapshot can only read memory.
    prog = fresh_copy(BIN / "hello_nopie20", world_dir / "victim")
    forger = start_forger(world_dir, prog)
    try:
        pol = write_policies(tmp_path / "pol", p=policy(
            "deny-nopie", mode="audit", action="alert", deny=[NOPIE20_ID]))
        agent = agent_factory("--build_id_resolver=iterator",
                              "--cache_min_age=100ms", f"--policies={pol}")
        snap = agent.wait_for(lambda x: x["type"] == "snapshot"
                              and x["process"]["pid"] == forger.pid)["process"]
        assert snap["build_id"] == FORGED_ID
        assert snap["build_id_from_memory"] is True
        # A plain exec of the same file, by root: its own memory is read
        # again (no cache entry exists), and the denylist matches.
        p = subprocess.Popen([str(prog), "sleep", "2"])
        e = agent.exec_event(p.pid, timeout=15)
        p.wait()
        assert e["process"]["build_id"] == NOPIE20_ID
        assert e["process"]["build_id_source"] == "iterator"
        assert e["process"]["build_id_cached"] is False
        assert e["verdict"]["decision"] == "deny"
    finally:
        stop(forger)


def test_forged_note_is_read_from_the_file_when_it_is_cached(agent_factory, world_dir):
    # With the page-cache unit the snapshot reads the file, not the memory
    # the process rewrote: the real ID, trusted and cacheable.
    prog = fresh_copy(BIN / "hello_nopie20", world_dir / "victim")
    forger = start_forger(world_dir, prog)
    try:
        agent = agent_factory()
        if "page_cache" not in agent.chain:
            pytest.skip("the page_cache path is not loaded on this kernel")
        snap = agent.wait_for(lambda x: x["type"] == "snapshot"
                              and x["process"]["pid"] == forger.pid)["process"]
        assert snap["build_id"] == NOPIE20_ID
        assert "build_id_from_memory" not in snap
    finally:
        stop(forger)


@pytest.mark.parametrize("resolver", ["auto", "iterator"])
def test_forger_under_enforce_kill_never_runs(agent_factory, world_dir, tmp_path, resolver):
    # Under an enforce+kill denylist the exec is judged on the file's ID
    # at exec (page cache), or held before its first instruction and judged
    # before the constructor could forge anything (late path only).
    pol = write_policies(tmp_path / "pol", p=policy("deny-nopie", deny=[NOPIE20_ID]))
    agent = agent_factory(f"--build_id_resolver={resolver}", f"--policies={pol}")
    prog = fresh_copy(BIN / "hello_nopie20", world_dir / "victim")
    env = dict(os.environ, LD_PRELOAD=str(world_dir / "forge_note.so"),
               FORGE_BUILD_ID=FORGED_ID)
    pid, r = run([prog], env=env, user=NOBODY, group=NOBODY, extra_groups=[])
    assert r.returncode == -9 and b"forge_note" not in r.stderr
    e = agent.exec_event(pid)
    assert e["process"]["build_id"] == NOPIE20_ID
    assert e["verdict"]["decision"] == "deny" and e["verdict"]["action"] == "kill"


def test_forged_allowed_id_is_not_credited_by_an_allowlist(agent_factory, world_dir,
                                                          tmp_path, pod_cgroup):
    # A binary that is not on the allowlist forges a listed ID in its own
    # memory. Read from memory (late path only), the ID is untrusted: the
    # allowlist does not credit it but judges it like an unknown ID, which
    # this policy denies, so the sweep after the policy load reports the
    # process. (Trusted, the forged ID would have been allowed.) Audit mode,
    # and only containers are selected (the forger runs in a pod-like
    # cgroup), so nothing else on the machine is judged.
    prog = fresh_copy(BIN / "hello_pie8", world_dir / "unlisted")
    forger = start_forger(world_dir, prog, forged=MARKER_ID, cgroup=pod_cgroup)
    try:
        pol = write_policies(tmp_path / "pol", p=policy(
            "allow-marker", mode="audit", action="alert", allow=[MARKER_ID],
            unknown="deny", selector=CONTAINERS))
        agent = agent_factory("--build_id_resolver=iterator", f"--policies={pol}")
        e = agent.wait_for(lambda x: x["type"] == "sweep"
                           and x["process"]["pid"] == forger.pid, timeout=15)
        assert e["process"]["build_id"] == MARKER_ID
        assert e["process"]["build_id_from_memory"] is True
        assert e["verdict"]["decision"] == "deny"
        assert e["verdict"]["policy"] == "allow-marker"
        assert e["verdict"]["rule"] == ("unknownBuildId: deny (build ID read from "
                                          "process memory)")
    finally:
        stop(forger)
