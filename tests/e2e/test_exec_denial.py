"""Exec denial (policy action block) and content hashes on this machine's
kernel: the exec-denial unit (BPF LSM bprm_check_security) is probed at
start-up and reported with the kernel's reason when it cannot run; where it
cannot, block still stops a denied binary before its first instruction
(kill). Where it runs, tests/vm checks EPERM, sha256 and pinning on real
Debian kernels. Pinned allow entries are also checked through
`execmon policy test` and `policy lint`."""
import hashlib
import json
import re
import subprocess

import pytest

from conftest import BIN, EXECMON, fresh_copy, run

BLOCK_ID = "3b3b3b3b3b3b3b3b"
PIN_ID = "9e9e9e9e9e9e9e9e"
LSM_LINE = r"exec denial \(BPF LSM bprm_check_security\): (active|not available: (.+))"


def write_policy(d, name, spec):
    d.mkdir(exist_ok=True)
    (d / f"{name}.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": name}, "spec": spec}))
    return d


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lsm_state(agent):
    m = agent.wait_for_log(LSM_LINE)
    return m.group(1) == "active", m.group(2)


def test_exec_denial_unit_reports_what_it_chose(agent):
    active, reason = lsm_state(agent)
    if not active:
        # The kernel's own words, and what block does instead.
        assert reason and "action block kills before the first instruction" in reason
        assert "refused by kernel" in reason or "not active" in reason, reason
        assert "sha256: off" in reason


def test_exec_lsm_can_be_turned_off(agent_factory):
    a = agent_factory("--exec_lsm=false")
    active, reason = lsm_state(a)
    assert not active and reason.startswith("turned off (--exec_lsm=false)"), reason
    # No hash without the unit: exec events carry none.
    pid, r = run([BIN / "hello_pie8"])
    assert r.returncode == 0
    assert "sha256" not in a.exec_event(pid)["process"]["exe"]


def test_block_without_the_lsm_kills_before_the_first_instruction(agent_factory, tmp_path):
    pol = write_policy(tmp_path / "pol", "block-marker",
                       {"mode": "enforce", "action": "block",
                        "deny": [{"buildId": BLOCK_ID, "note": "blocked"}]})
    agent = agent_factory(f"--policies={pol}")
    active, reason = lsm_state(agent)
    if active:
        pytest.skip("the BPF LSM runs here: EPERM is checked by "
                    "test_exec_denied_by_lsm in tests/vm")
    flag = tmp_path / "created"
    pid, r = run([fresh_copy(BIN / "marker_block", tmp_path / "marker_block"), flag])
    assert r.returncode == -9
    assert not flag.exists()  # its first action would have created it
    e = agent.exec_event(pid)
    assert e["verdict"] == {"decision": "deny", "action": "kill", "policy": "block-marker",
                            "rule": "deny: blocked", "mode": "enforce"}
    assert e["process"]["build_id"] == BLOCK_ID
    assert "sha256" not in e["process"]["exe"]


def policy_test(d, *flags):
    r = subprocess.run([str(EXECMON), "policy", "test", str(d), *flags],
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def test_policy_test_judges_pinned_allow_entries(tmp_path):
    good, forged = BIN / "pin_genuine", BIN / "pin_forged"
    # Two real files with one build ID, as readelf reports it.
    for f in (good, forged):
        out = subprocess.run(["readelf", "-n", str(f)], capture_output=True, text=True).stdout
        assert f"Build ID: {PIN_ID}" in out
    assert sha256(good) != sha256(forged)
    d = write_policy(tmp_path / "pol", "pinned",
                     {"mode": "enforce", "action": "block", "selector": {"host": False},
                      "allow": [{"buildId": PIN_ID, "note": "genuine",
                                 "sha256": [sha256(good)]}]})
    where = ["--namespace=prod", "--format=json"]
    rc, out, _ = policy_test(d, f"--build_id={PIN_ID}", f"--sha256={sha256(good)}", *where)
    assert rc == 0 and json.loads(out)["decision"] == "allow", out
    rc, out, _ = policy_test(d, f"--build_id={PIN_ID}", f"--sha256={sha256(forged)}", *where)
    assert rc == 3, out
    assert json.loads(out) == {
        "decision": "deny", "action": "deny_exec", "policy": "pinned",
        "rule": "allow: sha256 not pinned (the build ID is listed, this content is not)",
        "mode": "enforce"}
    # No hash known: the pinned entry allows by build ID, as documented.
    rc, out, _ = policy_test(d, f"--build_id={PIN_ID}", *where)
    assert rc == 0 and json.loads(out)["rule"] == "allow: genuine", out
    rc, _, err = policy_test(d, f"--build_id={PIN_ID}", "--sha256=abcd", *where)
    assert rc == 2 and "--sha256: 'abcd' is not a sha256 digest" in err


def test_lint_says_what_a_pin_means_where_no_hash_is_known(tmp_path):
    d = write_policy(tmp_path / "pol", "pinned",
                     {"mode": "audit", "allow": [{"buildId": PIN_ID,
                                                  "sha256": ["ab" * 32]}]})
    r = subprocess.run([str(EXECMON), "policy", "lint", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert re.search(r"warning: policy pinned: 1 allow entry pins sha256 content hashes: "
                     r"enforced only on nodes where the agent hashes executed files .*"
                     r"elsewhere such an entry allows every file with its build ID", r.stdout)
    bad = write_policy(tmp_path / "bad", "p", {"deny": [{"buildId": PIN_ID,
                                                         "sha256": ["ab" * 32]}]})
    r = subprocess.run([str(EXECMON), "policy", "lint", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "spec.deny[0].sha256: sha256 pins belong to allow entries" in r.stdout
