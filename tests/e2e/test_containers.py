"""Real containers (podman + runc) from a locally built image: the event
names the container, and the build ID of a binary that exists only inside
the container's root filesystem is read in the kernel."""
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, run

# This sandbox's kernel has a hybrid cgroup layout (crun refuses it) and
# low hard rlimits: runc, the cgroupfs manager, and explicit ulimits.
PODMAN_RUN = ["podman", "run", "--rm", "--runtime", "runc",
              "--cgroup-manager", "cgroupfs", "--network", "none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=512:512"]


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                          text=True, timeout=300, **kw).stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """An OCI image built here (no registry): busybox-static plus a static
    program linked with a random build ID, deleted from the host after."""
    for tool in ("podman", "buildah", "runc", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/install-deps.sh installs it)")
    d = tmp_path_factory.mktemp("image")
    build_id = secrets.token_hex(20)
    src = d / "secret.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("inside");return 0;}\n')
    prog = d / "rootfs" / "bin" / "secret_prog"
    prog.parent.mkdir(parents=True)
    sh("gcc", "-O1", "-static", f"-Wl,--build-id=0x{build_id}", "-o", prog, src)
    shutil.copy("/bin/busybox", d / "rootfs" / "bin" / "busybox")
    # The image has no libc: its programs are static.
    marker_src = Path(__file__).parent / "progs" / "marker.c"
    sh("gcc", "-O1", "-static", "-Wl,--build-id=0x3a3a3a3a3a3a3a3a", "-o",
       d / "rootfs" / "bin" / "marker", marker_src)
    tag = f"localhost/execmon-e2e:{build_id[:12]}"
    ctr = sh("buildah", "from", "scratch")
    try:
        sh("buildah", "copy", ctr, d / "rootfs", "/")
        sh("buildah", "commit", "--quiet", ctr, tag)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
    shutil.rmtree(d / "rootfs")  # the program now exists only in the image
    yield {"tag": tag, "build_id": build_id}
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)


def run_container(image, tmp_path, *cmd):
    cidfile = tmp_path / f"cid-{secrets.token_hex(4)}"
    r = subprocess.run(PODMAN_RUN + ["--cidfile", str(cidfile), image["tag"], *cmd],
                       capture_output=True, text=True, timeout=120)
    return r, cidfile.read_text().strip()


def test_exec_in_container_names_container_and_reads_build_id(path_agent, image, tmp_path):
    agent = path_agent
    r, cid = run_container(image, tmp_path, "/bin/secret_prog")
    assert r.returncode == 0 and r.stdout == "inside\n", r.stderr
    assert not Path("/bin/secret_prog").exists()
    e = agent.wait_for(lambda x: x["type"] == "exec"
                       and x["process"]["comm"] == "secret_prog"
                       and x.get("container", {}).get("id") == cid,
                       timeout=30, what=f"exec of secret_prog in container {cid}")
    p = e["process"]
    # The container's view of the path, not the host's overlay path.
    assert p["binary"] == "/bin/secret_prog"
    assert p["build_id"] == image["build_id"]
    assert p["build_id_source"] == agent.exec_source
    assert p["build_id_late"] is False
    assert e["container"] == {"id": cid, "runtime": "podman"}
    assert "pod" not in e  # a plain podman container has no pod
    # The container's cgroup, as the kernel reported it.
    assert p["cgroup_id"] != 1
    exit_ev = agent.wait_for(lambda x: x["type"] == "exit"
                             and x["process"]["pid"] == p["pid"])
    assert exit_ev["container"]["id"] == cid


def test_container_scope_policy_kills_in_container_only(agent_factory, image, tmp_path):
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "p.yaml").write_text(json.dumps({
        "apiVersion": "execmon.io/v1alpha1", "kind": "ExecPolicy",
        "metadata": {"name": "no-marker-in-containers"},
        "spec": {"mode": "enforce", "action": "kill", "selector": {"host": False},
                 "deny": [{"buildId": "3a3a3a3a3a3a3a3a", "note": "marker"}]}}))
    agent = agent_factory(f"--policies={pol}")
    r, cid = run_container(image, tmp_path, "/bin/marker", "/tmp/created")
    assert r.returncode == 137, (r.returncode, r.stderr)
    e = agent.wait_for(lambda x: x["type"] == "exec" and x["process"]["comm"] == "marker"
                       and x.get("container", {}).get("id") == cid, timeout=30)
    assert e["verdict"]["action"] == "kill"
    assert e["verdict"]["policy"] == "no-marker-in-containers"
    # The same binary on the host is out of the policy's scope.
    pid, r = run([BIN / "marker", tmp_path / "host-created"])
    assert r.returncode == 0 and (tmp_path / "host-created").exists()
