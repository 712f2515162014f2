"""The build-ID index on real data: Debian packages fetched with apt-get
download (two versions of one package), and this machine's own root
filesystem with its dpkg database (docs/index.md)."""
import hashlib
import json
import re
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, EXECMON, readelf_build_id, run
from test_policy import pod_cgroup, run_in_cgroup  # noqa: F401 (fixture)

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "execmon" / "index-debs"
# (package, version): hello once, curl in two versions (a bookworm point
# release and a bookworm-security build).
DEBS = [("hello", "2.10-3"), ("curl", "7.88.1-10+deb12u15"), ("curl", "7.88.1-10+deb12u5")]


def cli(*args, timeout=600):
    return subprocess.run([str(EXECMON), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def debs():
    """The real .deb files, downloaded once into the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, version in DEBS:
        want = list(CACHE.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
        if not want:
            r = subprocess.run(["apt-get", "download", "-q", f"{name}={version}"],
                               cwd=CACHE, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, f"apt-get download {name}={version}: {r.stderr}"
            want = list(CACHE.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
        assert len(want) == 1, want
        out[(name, version)] = want[0]
    return out


def unpack(deb, dest):
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def query(*args):
    r = cli("index", "query", *args, "--format=json")
    return r.returncode, [json.loads(l) for l in r.stdout.splitlines()]


@pytest.fixture(scope="session")
def deb_index(debs, tmp_path_factory):
    idx = tmp_path_factory.mktemp("index") / "debs.idx"
    r = cli("index", "build", f"--output={idx}", *debs.values())
    assert r.returncode == 0, r.stderr
    assert "entries" in r.stderr
    return idx


def test_deb_entries_are_the_files_and_their_package(debs, deb_index, tmp_path):
    rc, got = query(deb_index, "--package=hello")
    assert rc == 0
    by_path = {e["path"]: e for e in got}
    hello = by_path["/usr/bin/hello"]
    assert hello["package"] == {"name": "hello", "version": "2.10-3", "arch": "amd64",
                                "source": "hello"}
    # Independent oracles on the unpacked file: readelf, `execmon buildid`,
    # sha256sum's algorithm, the size.
    f = unpack(debs[("hello", "2.10-3")], tmp_path / "hello") / "usr/bin/hello"
    assert hello["build_id"] == readelf_build_id(f)
    assert cli("buildid", f).stdout.split()[0] == hello["build_id"]
    assert hello["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert hello["size"] == f.stat().st_size


def test_two_versions_of_one_package_are_two_builds(debs, deb_index, tmp_path):
    rc, got = query(deb_index, "--package=curl")
    assert rc == 0
    curl = {e["package"]["version"]: e for e in got if e["path"] == "/usr/bin/curl"}
    assert set(curl) == {"7.88.1-10+deb12u15", "7.88.1-10+deb12u5"}
    assert curl["7.88.1-10+deb12u15"]["build_id"] != curl["7.88.1-10+deb12u5"]["build_id"]
    for version, e in curl.items():
        f = unpack(debs[("curl", version)], tmp_path / version) / "usr/bin/curl"
        assert e["build_id"] == readelf_build_id(f)
    # A build ID finds its package and version.
    old = curl["7.88.1-10+deb12u5"]
    rc, hits = query(deb_index, f"--build_id={old['build_id']}")
    assert rc == 0 and [h["package"]["version"] for h in hits] == ["7.88.1-10+deb12u5"]
    # Text output: BUILD-ID  PACKAGE VERSION ARCH  PATH.
    r = cli("index", "query", deb_index, f"--build_id={old['build_id']}")
    assert r.stdout == f"{old['build_id']}  curl 7.88.1-10+deb12u5 amd64  /usr/bin/curl\n"
    # Nothing matches: exit status 1.
    assert cli("index", "query", deb_index, "--build_id=00").returncode == 1


def test_index_format_header(deb_index, debs):
    lines = deb_index.read_text().splitlines()
    head = json.loads(lines[0])
    assert head["execmon_index"] == 1
    assert [s["kind"] for s in head["sources"]] == ["deb"] * len(debs)
    assert head["entries"] == len(lines) - 1
    for line in lines[1:]:
        e = json.loads(line)
        assert 0 <= e["source"] < len(head["sources"])
        assert len(bytes.fromhex(e["sha256"])) == 32


def test_rootfs_installed_by_dpkg(debs, tmp_path):
    # A root filesystem whose packages the real dpkg installed (its own
    # status file and info/*.list): entries carry the installed versions,
    # and a file no package lists has none.
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    r = subprocess.run(["dpkg", f"--root={root}", "--force-depends",
                        "--force-script-chrootless", "--force-not-root", "-i",
                        debs[("hello", "2.10-3")], debs[("curl", "7.88.1-10+deb12u5")]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (root / "opt").mkdir()
    stray = root / "opt" / "stray"
    stray.write_bytes((root / "usr/bin/hello").read_bytes())
    idx = tmp_path / "root.idx"
    r = cli("index", "build", f"--output={idx}", root)
    assert r.returncode == 0, r.stderr
    rc, got = query(idx)
    by_path = {e["path"]: e for e in got}
    assert by_path["/usr/bin/hello"]["package"]["version"] == "2.10-3"
    assert by_path["/usr/bin/curl"]["package"]["version"] == "7.88.1-10+deb12u5"
    assert "package" not in by_path["/opt/stray"]
    assert by_path["/opt/stray"]["build_id"] == by_path["/usr/bin/hello"]["build_id"]
    head = json.loads(idx.read_text().splitlines()[0])
    assert head["sources"] == [{"kind": "rootfs", "ref": str(root)}]


def test_this_machines_root_filesystem(tmp_path):
    # The machine's own root and dpkg database, its /usr/bin only: ls
    # belongs to coreutils at the version dpkg says is installed, and every
    # ELF file there with a build ID is an entry.
    idx = tmp_path / "root.idx"
    r = cli("index", "build", f"--output={idx}", "/", "--under=/usr/bin")
    assert r.returncode == 0, r.stderr
    rc, got = query(idx)
    by_path = {e["path"]: e for e in got}
    ls = by_path["/usr/bin/ls"]
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "coreutils"],
                             capture_output=True, text=True, check=True).stdout
    assert ls["package"]["name"] == "coreutils"
    assert ls["package"]["version"] == version
    assert ls["build_id"] == readelf_build_id("/usr/bin/ls")
    assert all(p.startswith("/usr/bin/") for p in by_path)
    # dpkg -S agrees on the owner of a sample of entries.
    # (Merged /usr: dpkg may know /usr/bin/x as /bin/x.)
    for path in sorted(p for p, e in by_path.items() if "package" in e)[:20]:
        for name in (path, path.removeprefix("/usr")):
            r = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True)
            if r.returncode == 0:
                break
        assert r.returncode == 0, (path, r.stderr)
        owners = {o.strip().split(":")[0] for o in r.stdout.split(": ", 1)[0].split(",")}
        assert by_path[path]["package"]["name"] in owners, (path, r.stdout)


def test_generated_allowlist_is_a_valid_policy(deb_index, tmp_path):
    r = cli("policy", "generate", f"--from_index={deb_index}", "--name=debs-allow")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["kind"] == "ExecPolicy" and doc["metadata"]["name"] == "debs-allow"
    assert doc["spec"]["mode"] == "audit" and doc["spec"]["action"] == "alert"
    ids = {a["buildId"] for a in doc["spec"]["allow"]}
    _, everything = query(deb_index)  # no filter: every entry
    assert ids == {e["build_id"] for e in everything}
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "allow.yaml").write_text(r.stdout)
    lint = cli("policy", "lint", pol)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The policy says yes to an indexed build and no to another.
    some = next(iter(ids))
    assert cli("policy", "test", pol, f"--build_id={some}", "--host").returncode == 0
    assert cli("policy", "test", pol, "--build_id=0123456789abcdef", "--host").returncode == 3


def test_index_errors():
    r = cli("index", "build", "--output=/tmp/x.idx", "/nonexistent")
    assert r.returncode == 1 and "/nonexistent: no such file" in r.stderr
    r = cli("index", "build", "/")
    assert r.returncode == 2 and "--output=FILE" in r.stderr
    r = cli("index", "query", "/etc/passwd")
    assert r.returncode == 1 and "not" in r.stderr


def sh(*cmd):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                          text=True, timeout=300).stdout.strip()


@pytest.fixture(scope="module")
def oci_image(debs, tmp_path_factory):
    """A real image built with buildah from a Debian root filesystem (hello
    and curl installed by dpkg), then a second layer that deletes curl (a
    whiteout) and adds a file; pushed as an OCI layout and an OCI archive."""
    if shutil.which("buildah") is None:
        pytest.fail("buildah not installed (scripts/install-deps.sh installs it)")
    d = tmp_path_factory.mktemp("oci")
    root = d / "root"
    for sub in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    sh("dpkg", f"--root={root}", "--force-depends", "--force-script-chrootless",
       "--force-not-root", "-i", debs[("hello", "2.10-3")],
       debs[("curl", "7.88.1-10+deb12u5")])
    tag = f"localhost/execmon-index-e2e:{os.getpid()}"
    ctr = sh("buildah", "from", "scratch")
    try:
        sh("buildah", "copy", ctr, root, "/")
        sh("buildah", "commit", "--quiet", ctr, tag + "-base")
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
    ctr = sh("buildah", "from", tag + "-base")
    try:
        mnt = Path(sh("buildah", "mount", ctr))
        (mnt / "usr/bin/curl").unlink()
        (mnt / "opt").mkdir(exist_ok=True)
        (mnt / "opt/hello-copy").write_bytes((mnt / "usr/bin/hello").read_bytes())
        sh("buildah", "umount", ctr)
        sh("buildah", "commit", "--quiet", ctr, tag)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
    layout = d / "layout"
    sh("buildah", "push", tag, f"oci:{layout}:web")
    archive = d / "image.tar"
    sh("buildah", "push", tag, f"oci-archive:{archive}:web")
    yield {"tag": tag, "layout": layout, "archive": archive, "root": root}
    for t in (tag, tag + "-base"):
        subprocess.run(["buildah", "rmi", "-f", t], capture_output=True)


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_image_entries_follow_the_top_layer(oci_image, tmp_path, kind):
    src = f"oci:{oci_image['layout']}:web" if kind == "oci" else f"oci-archive:{oci_image['archive']}"
    idx = tmp_path / "image.idx"
    r = cli("index", "build", f"--output={idx}", src)
    assert r.returncode == 0, r.stderr
    _, got = query(idx)
    by_path = {e["path"]: e for e in got}
    # hello from the image's dpkg database; curl deleted by the top layer
    # (a whiteout) is gone; the added copy is in no package.
    assert by_path["/usr/bin/hello"]["package"]["version"] == "2.10-3"
    assert "/usr/bin/curl" not in by_path
    assert "package" not in by_path["/opt/hello-copy"]
    assert by_path["/opt/hello-copy"]["build_id"] == by_path["/usr/bin/hello"]["build_id"]
    head = json.loads(idx.read_text().splitlines()[0])
    (source,) = head["sources"]
    assert source["kind"] == "oci" and source["ref"] == src
    assert source["image"] == "web"  # the layout's ref.name
    assert source["digest"].startswith("sha256:") and len(source["digest"]) == 71
    # The manifest digest is the digest of the manifest blob.
    if kind == "oci":
        blob = oci_image["layout"] / "blobs" / "sha256" / source["digest"][7:]
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == source["digest"][7:]


def test_agent_names_the_package_of_indexed_builds(agent_factory, debs, deb_index, tmp_path):
    # The agent loads an index directory; exec events of indexed builds say
    # which package and version they are, others say nothing; a new index
    # file is picked up without a restart.
    idx_dir = tmp_path / "indexes"
    idx_dir.mkdir()
    agent = agent_factory(f"--index={idx_dir}")
    assert "index: 0 build IDs" in agent.log()
    hello = unpack(debs[("hello", "2.10-3")], tmp_path / "hello") / "usr/bin/hello"
    pid, r = run([hello])
    assert r.returncode == 0, r.stderr
    assert "package" not in agent.exec_event(pid)["process"]

    shutil.copy(deb_index, idx_dir / "debs.idx")
    agent.wait_for_log(r"index: [1-9]\d* build IDs", timeout=10)
    pid, r = run([hello])
    assert r.returncode == 0
    p = agent.exec_event(pid)["process"]
    assert p["package"] == {"name": "hello", "version": "2.10-3", "arch": "amd64",
                            "source": "hello"}
    for version in ("7.88.1-10+deb12u15", "7.88.1-10+deb12u5"):
        curl = unpack(debs[("curl", version)], tmp_path / version) / "usr/bin/curl"
        pid, r = run([curl, "--version"])
        assert r.returncode == 0, r.stderr
        assert agent.exec_event(pid)["process"]["package"]["version"] == version
    # Not indexed: no package.
    pid, r = run([BIN / "hello_pie8"])
    assert "package" not in agent.exec_event(pid)["process"]


def test_agent_loads_a_compiled_index(agent_factory, debs, deb_index, tmp_path):
    # `index compile` turns the JSON Lines index into the agent's
    # fast-loading form; the agent names the same packages from it, and
    # `index query` says to query the JSON index instead.
    compiled = tmp_path / "debs.emidx"
    r = cli("index", "compile", f"--output={compiled}", deb_index)
    assert r.returncode == 0, r.stderr
    assert re.search(r"debs.emidx: [1-9]\d* build IDs of [1-9]\d* package versions "
                     r"from 1 indexes", r.stderr), r.stderr
    assert compiled.read_bytes().startswith(b"EMIDX01\n")
    agent = agent_factory(f"--index={compiled}")
    agent.wait_for_log(r"index: [1-9]\d* build IDs", timeout=10)
    for version in ("7.88.1-10+deb12u15", "7.88.1-10+deb12u5"):
        curl = unpack(debs[("curl", version)], tmp_path / version) / "usr/bin/curl"
        pid, r = run([curl, "--version"])
        assert r.returncode == 0, r.stderr
        assert agent.exec_event(pid)["process"]["package"] == {
            "name": "curl", "version": version, "arch": "amd64", "source": "curl"}
    q = cli("index", "query", compiled)
    assert q.returncode == 1 and "a compiled index (execmon index compile)" in q.stderr


def test_agent_rejects_a_bad_index(agent_factory, tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_text("not an index\n")
    with pytest.raises(AssertionError, match="bad.idx:1: not a JSON object"):
        agent_factory(f"--index={bad}")


def package_policy(name, versions, mode="enforce", action="kill"):
    return (f"apiVersion: execmon.io/v1alpha1\nkind: ExecPolicy\nmetadata:\n"
            f"  name: {name}\nspec:\n  mode: {mode}\n  action: {action}\n"
            f"  denyPackages:\n    - name: curl\n      versions: \"{versions}\"\n"
            f"      note: CVE-2023-38545\n")


def test_lint_rejects_a_version_range_it_cannot_parse(tmp_path):
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "p.yaml").write_text(package_policy("bad-range", "<< 7.88.1-10, >> x!y"))
    r = cli("policy", "lint", pol)
    assert r.returncode == 1
    assert f"{pol}/p.yaml:10:17: spec.denyPackages[0].versions: \"x!y\" is not a Debian version" \
        in r.stdout, r.stdout


def test_deny_packages_kills_the_old_version_not_the_new(agent_factory, debs, deb_index,
                                                         tmp_path):
    # Node-wide, but it denies exactly the indexed builds of one curl
    # version: nothing else on the machine is judged by it.
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "curl.yaml").write_text(package_policy("old-curl", "<< 7.88.1-10+deb12u7"))
    # policy test shows the expansion: the old build, not the new one.
    _, got = query(deb_index, "--package=curl")
    ids = {e["package"]["version"]: e["build_id"] for e in got if e["path"] == "/usr/bin/curl"}
    r = cli("policy", "test", pol, f"--index={deb_index}", "--host",
            f"--build_id={ids['7.88.1-10+deb12u5']}")
    assert r.returncode == 3, r.stdout
    assert "denyPackages curl << 7.88.1-10+deb12u7 (policy old-curl)" in r.stdout
    assert ids["7.88.1-10+deb12u5"] in r.stdout
    assert ids["7.88.1-10+deb12u15"] not in r.stdout
    r = cli("policy", "test", pol, f"--index={deb_index}", "--host",
            f"--build_id={ids['7.88.1-10+deb12u15']}")
    assert r.returncode == 0, r.stdout

    agent = agent_factory(f"--index={deb_index}", f"--policies={pol}")
    assert "policy old-curl: denyPackages curl << 7.88.1-10+deb12u7: " in agent.log()
    old = unpack(debs[("curl", "7.88.1-10+deb12u5")], tmp_path / "old") / "usr/bin/curl"
    new = unpack(debs[("curl", "7.88.1-10+deb12u15")], tmp_path / "new") / "usr/bin/curl"
    pid, r = run([old, "--version"])
    assert r.returncode == -9 and r.stdout == b""
    e = agent.exec_event(pid)
    assert e["verdict"]["decision"] == "deny" and e["verdict"]["action"] == "kill"
    assert e["verdict"]["rule"] == "deny: CVE-2023-38545 (curl 7.88.1-10+deb12u5 amd64)"
    assert e["process"]["package"]["version"] == "7.88.1-10+deb12u5"
    pid, r = run([new, "--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"curl 7.88.1")
    assert agent.exec_event(pid)["verdict"]["decision"] == "allow"


def test_deny_packages_without_an_index_denies_nothing(agent_factory, tmp_path):
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "curl.yaml").write_text(package_policy("old-curl", "<< 7.88.1-10+deb12u7",
                                                  mode="audit", action="alert"))
    agent = agent_factory(f"--policies={pol}")
    assert ("policy old-curl: denyPackages curl denies nothing: no build-ID index "
            "is loaded (--index)") in agent.log()


def test_agent_names_packages_of_this_machine_and_of_an_image(agent_factory, oci_image,
                                                              tmp_path):
    # Indexes of this machine's /usr/bin and of the buildah image: an exec
    # of a binary from each shows its package and version.
    root_idx, image_idx = tmp_path / "root.idx", tmp_path / "image.idx"
    assert cli("index", "build", f"--output={root_idx}", "/",
               "--under=/usr/bin").returncode == 0
    assert cli("index", "build", f"--output={image_idx}",
               f"oci:{oci_image['layout']}:web").returncode == 0
    agent = agent_factory(f"--index={root_idx},{image_idx}")
    pid, r = run(["/usr/bin/ls", "/"])
    assert r.returncode == 0
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "coreutils"],
                             capture_output=True, text=True, check=True).stdout
    assert agent.exec_event(pid)["process"]["package"] == {
        "name": "coreutils", "version": version, "arch": "amd64", "source": "coreutils"}
    # The image's hello, taken out of its layout (the same build).
    hello = tmp_path / "image-hello"
    hello.write_bytes((oci_image["root"] / "usr/bin/hello").read_bytes())
    hello.chmod(0o755)
    pid, r = run([hello])
    assert r.returncode == 0
    assert agent.exec_event(pid)["process"]["package"]["version"] == "2.10-3"


def test_generated_allowlist_runs_the_image_and_kills_the_rest(agent_factory, oci_image,
                                                               pod_cgroup, tmp_path):
    # The image's generated allowlist, enforced on containers only (a pod-
    # like cgroup here): the image's program runs, a program from outside
    # the image is killed before its first instruction.
    image_idx = tmp_path / "image.idx"
    assert cli("index", "build", f"--output={image_idx}",
               f"oci:{oci_image['layout']}:web").returncode == 0
    r = cli("policy", "generate", f"--from_index={image_idx}", "--name=web-allow",
            "--mode=enforce")
    assert r.returncode == 0, r.stderr
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "web.yaml").write_text(r.stdout + "  selector:\n    host: false\n")
    agent = agent_factory(f"--policies={pol}")
    hello = tmp_path / "image-hello"
    hello.write_bytes((oci_image["root"] / "usr/bin/hello").read_bytes())
    hello.chmod(0o755)
    pid, r = run_in_cgroup(pod_cgroup, [hello])
    assert r.returncode == 0 and r.stdout == b"Hello, world!\n", r.stderr
    flag = tmp_path / "created"
    pid, r = run_in_cgroup(pod_cgroup, [BIN / "marker", flag])
    assert r.returncode == -9 and not flag.exists()
    e = agent.exec_event(pid, comm="marker")
    assert e["verdict"]["policy"] == "web-allow" and e["verdict"]["action"] == "kill"
