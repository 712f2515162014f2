"""Kernels without bpf_task_work: late resolution by iterator."""
import subprocess

from conftest import BIN, fresh_copy, run


def test_iterator_resolver_reports_late_build_id(agent_factory, tmp_path):
    agent = agent_factory("--build_id_resolver=iterator")
    assert "learned only after the program started (iterator)" in agent.log()
    prog = fresh_copy(BIN / "hello_nopie20", tmp_path / "prog")
    p = subprocess.Popen([str(prog), "sleep", "3"])
    try:
        e = agent.exec_event(p.pid)["process"]
    finally:
        p.kill()
        p.wait()
    assert e["build_id"] == "2020202020202020202020202020202020200020"
    assert e["build_id_source"] == "iterator"
    assert e["build_id_late"] is True
    assert e["build_id_resolved_ns"] > e["ktime_ns"]


def test_iterator_resolver_never_guesses_for_exited_process(agent_factory, tmp_path):
    agent = agent_factory("--build_id_resolver=iterator")
    prog = fresh_copy(BIN / "hello_pie8", tmp_path / "prog")
    pids = [run([prog])[0] for _ in range(5)]
    for pid in pids:
        p = agent.exec_event(pid)["process"]
        # Resolved while it lived, or honestly reported as gone.
        assert (p["build_id"] == "0e0e0e0e00000008"
                or (p["build_id"] is None and p["build_id_error"] == "exited"))
