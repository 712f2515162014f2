"""Start-up chooses the build-ID resolver paths by loading each one: the
kernel's verifier decides, a refused optional path is logged with its
reason and never stops the agent (docs/kernels.md)."""
import re
import time
import subprocess

import pytest

from conftest import BIN, EXECMON, EXEC_PATHS, PathRefused, fresh_copy, run

PATHS = ("page_cache", "task_work", "iterator")


def path_lines(log):
    """path -> (loaded, reason) from the start-up log."""
    out = {}
    for m in re.finditer(r"build-ID path (\w+): loaded \((\d+) instructions verified\)", log):
        out[m.group(1)] = (True, int(m.group(2)))
    for m in re.finditer(r"build-ID path (\w+): not available: (.+)", log):
        out[m.group(1)] = (False, m.group(2))
    return out


def test_default_start_reports_every_path(agent):
    lines = path_lines(agent.log())
    assert set(lines) == set(PATHS), agent.log()
    for path, (loaded, detail) in lines.items():
        if loaded:
            assert detail > 0  # the verifier's instruction count
            assert path in agent.chain
        else:
            # The kernel's own words, one line, not a page of verifier log.
            assert "refused by kernel" in detail, detail
            assert "\n" not in detail
            assert path not in agent.chain
    assert "ready: build-ID resolver cache," in agent.log()


def test_refused_paths_fall_back_to_late_resolution(agent_factory, tmp_path):
    agent = agent_factory("--resolver_refuse=page_cache,task_work")
    lines = path_lines(agent.log())
    assert lines["page_cache"] == (False, "treated as refused (--resolver_refuse)")
    assert lines["task_work"][0] is False
    assert agent.chain == ["iterator"] and agent.exec_source is None
    assert "learned only after the program started" in agent.log()
    prog = fresh_copy(BIN / "hello_nopie20", tmp_path / "p")
    p = subprocess.Popen([str(prog), "sleep", "5"])
    e = agent.exec_event(p.pid, timeout=15)["process"]
    p.wait()
    assert e["build_id_source"] == "iterator" and e["build_id_late"] is True
    assert e["build_id"] == "2020202020202020202020202020202020200020"
    # No page-cache unit: read from the process's memory, and flagged so.
    assert e["build_id_from_memory"] is True


def test_no_path_at_all_still_reports_execs(agent_factory, tmp_path):
    agent = agent_factory("--resolver_refuse=page_cache,task_work,iterator")
    prog = fresh_copy(BIN / "hello_pie8", tmp_path / "p")
    pid, r = run([prog])
    assert r.returncode == 0
    p = agent.exec_event(pid)["process"]
    assert p["build_id"] is None and p["build_id_error"] == "unresolved"
    assert p["build_id_cached"] is False


@pytest.mark.parametrize("path", EXEC_PATHS)
def test_required_path_fails_start_with_kernels_reason(agent_factory, path):
    try:
        agent = agent_factory(f"--build_id_resolver={path}")
    except PathRefused as e:
        # Refused: start-up failed, naming the path and the kernel's reason.
        assert str(e).startswith(f"{path}: ") and "refused by kernel" in str(e)
        return
    assert agent.chain == [path]


def test_required_refused_path_is_an_error(tmp_path):
    r = subprocess.run([str(EXECMON), "run", f"--output={tmp_path}/e.jsonl",
                        "--build_id_resolver=page_cache",
                        "--resolver_refuse=page_cache"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "--build_id_resolver=page_cache: treated as refused" in r.stderr


def test_late_reads_from_memory_are_never_cached(agent_factory, tmp_path):
    # A late (iterator) read comes from the running process's memory, which
    # the process could have rewritten: it must not fill the node's cache.
    agent = agent_factory("--build_id_resolver=iterator", "--cache_min_age=100ms")
    prog = fresh_copy(BIN / "hello_nopie20", tmp_path / "p")
    time.sleep(0.5)  # older than --cache_min_age: cacheable if it were trusted
    for _ in range(2):
        p = subprocess.Popen([str(prog), "sleep", "3"])
        e = agent.exec_event(p.pid, timeout=15)["process"]
        p.wait()
        assert e["build_id_source"] == "iterator", e
        assert e["build_id"] == "2020202020202020202020202020202020200020"
        assert e["build_id_from_memory"] is True
        assert e["build_id_cached"] is False


def dpkg_events(agent, pid):
    """The exec events of pid: dpkg, then the dpkg-query it execs in place."""
    agent.wait_for(lambda e: e["type"] == "exec" and e["process"]["pid"] == pid
                   and e["process"]["binary"] == "/usr/bin/dpkg-query", timeout=15)
    return {e["process"]["binary"]: e["process"] for e in agent.events()
            if e["type"] == "exec" and e["process"]["pid"] == pid}


def test_program_that_execs_again_at_once(agent_factory):
    # `dpkg -S` execs dpkg-query in the same process at once. At exec (page
    # cache) both get their IDs. Late (iterator only), dpkg's image is gone
    # by the time it is read: an honest mapping_mismatch, never cached, and
    # never dpkg-query's ID; dpkg-query, still running, gets its own.
    from conftest import readelf_build_id
    dpkg, query = readelf_build_id("/usr/bin/dpkg"), readelf_build_id("/usr/bin/dpkg-query")
    agent = agent_factory()
    if agent.exec_source is None:
        pytest.skip("no at-exec path loaded on this kernel")
    p = subprocess.run(["dpkg", "-S", "/bin/ls"], capture_output=True, text=True)
    assert p.returncode == 0
    evs = dpkg_events(agent, int(agent.wait_for(
        lambda e: e["type"] == "exec" and e["process"]["binary"] == "/usr/bin/dpkg"
        and e["process"]["args"][:2] == ["dpkg", "-S"])["process"]["pid"]))
    assert evs["/usr/bin/dpkg"]["build_id"] == dpkg
    assert evs["/usr/bin/dpkg-query"]["build_id"] == query
    agent.stop()

    late = agent_factory("--build_id_resolver=iterator")
    subprocess.run(["dpkg", "-S", "/bin/ls"], capture_output=True, check=True)
    e = late.wait_for(lambda e: e["type"] == "exec"
                      and e["process"]["binary"] == "/usr/bin/dpkg"
                      and e["process"]["args"][:2] == ["dpkg", "-S"], timeout=15)
    evs = dpkg_events(late, e["process"]["pid"])
    d = evs["/usr/bin/dpkg"]
    assert d["build_id"] in (dpkg, None)
    if d["build_id"] is None:
        assert d["build_id_error"] == "mapping_mismatch"
        assert d["build_id_cached"] is False
    assert evs["/usr/bin/dpkg-query"]["build_id"] == query
