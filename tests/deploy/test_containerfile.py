"""deploy/Containerfile, checked without a container engine: the stages,
the build packages, and that the runtime stage installs every shared
library the agent binary needs (ldd -> dpkg -S -> packages). With
EXECMON_IMAGE_BUILD=1 and buildah, the image is also built and run."""
import os
import re
import shutil
import subprocess

import pytest

from deploylib import REPO

CONTAINERFILE = REPO / "deploy" / "Containerfile"
# In debian:bookworm-slim (Essential or Priority: required, and apt's
# dependencies), or brought in by g++ in the build stage.
C_RUNTIME = {"libc6", "libgcc-s1", "libstdc++6"}


def instructions():
    """[(INSTRUCTION, argument)], continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in CONTAINERFILE.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        cur += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def stages():
    """[{'from': image, 'name': alias, 'ins': [...]}] with ARG defaults applied."""
    args, result = {}, []
    for word, rest in instructions():
        if word == "ARG" and not result:
            k, _, v = rest.partition("=")
            args[k] = v
            continue
        if word == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            alias = rest.split()[2] if " AS " in rest.upper() else None
            result.append({"from": image, "name": alias, "ins": []})
            continue
        result[-1]["ins"].append((word, rest))
    return result


def apt_packages(stage):
    pkgs = []
    for word, rest in stage["ins"]:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            m = re.search(r"apt-get\s+install\s+(.*)", cmd)
            if m:
                pkgs += [t for t in m.group(1).split() if not t.startswith("-")]
    return pkgs


def dpkg_owner(path):
    r = subprocess.run(["dpkg", "-S", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    if r.returncode != 0:
        real = os.path.realpath(path)
        r = subprocess.run(["dpkg", "-S", real], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.split(":")[0].split(",")[0].strip()


def needed_sonames(binary):
    out = subprocess.run(["readelf", "-d", str(binary)], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def ldd_paths(binary):
    out = subprocess.run(["ldd", str(binary)], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    assert "not found" not in out, out
    return dict(re.findall(r"^\s*(\S+) => (/\S+)", out, re.M))


def base_packages():
    """Packages debian:bookworm-slim has: Essential or Priority required
    (what debootstrap's minbase installs), as dpkg on this Debian 12 host
    knows them, and apt with its dependencies."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Priority}\n"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    base = {p for p, ess, prio in (l.split() for l in out.splitlines() if len(l.split()) == 3)
            if ess == "yes" or prio == "required"}
    return base | dependency_closure(["apt"]) | C_RUNTIME


def dependency_closure(pkgs):
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *pkgs],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    names = {l.strip() for l in r.stdout.splitlines() if l and not l[0].isspace()}
    return {n.split(":")[0] for n in names if not n.startswith("<")}


@pytest.fixture(scope="module")
def parsed():
    s = stages()
    assert len(s) == 2, s
    return {"build": s[0], "runtime": s[1]}


def test_stages_are_debian12(parsed):
    assert parsed["build"]["from"] == "debian:bookworm" and parsed["build"]["name"] == "build"
    assert parsed["runtime"]["from"] == "debian:bookworm-slim"


def test_runtime_stage_installs_every_library(parsed, execmon_bin):
    """Every library `ldd` resolves for the agent comes from a package the
    runtime stage installs (or one of their dependencies, or the base
    image); every library the binary itself links (NEEDED) from a package
    the stage names explicitly."""
    if not shutil.which("dpkg"):
        pytest.skip("needs dpkg (Debian)")
    runtime = set(apt_packages(parsed["runtime"]))
    assert runtime, "no apt-get install in the runtime stage"
    closure = dependency_closure(sorted(runtime))
    assert runtime <= closure or not closure  # apt-cache knows them
    base = base_packages()
    paths = ldd_paths(execmon_bin)
    missing = {}
    for soname, path in paths.items():
        pkg = dpkg_owner(path)
        assert pkg, f"{path} ({soname}) belongs to no package"
        if pkg not in runtime | closure | base:
            missing[soname] = pkg
    assert not missing, f"runtime stage lacks: {missing}"
    direct = {}
    for soname in needed_sonames(execmon_bin):
        pkg = dpkg_owner(paths[soname])
        if pkg not in runtime and pkg not in C_RUNTIME:
            direct[soname] = pkg
    assert not direct, f"linked directly but not named in the runtime stage: {direct}"


def test_runtime_stage_is_lean(parsed):
    runtime = apt_packages(parsed["runtime"])
    assert not [p for p in runtime if p.endswith("-dev") or p in
                ("g++", "gcc", "clang", "llvm", "cmake", "make", "bpftool")], runtime
    runs = " ".join(r for w, r in parsed["runtime"]["ins"] if w == "RUN")
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists" in runs
    copies = [r for w, r in parsed["runtime"]["ins"] if w == "COPY"]
    assert any(r.startswith("--from=build ") and r.endswith(" /usr/local/bin/execmon")
               for r in copies), copies


def test_build_stage_has_the_build_deps(parsed, execmon_bin):
    """The build stage installs install-deps.sh's build packages, and the
    -dev package of every library the binary links."""
    build = set(apt_packages(parsed["build"]))
    text = (REPO / "scripts" / "install-deps.sh").read_text()
    block = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    build_group = block.split("# tests")[0]  # the "# build" group
    wanted = {w for w in " ".join(l.split("#")[0] for l in build_group.splitlines()).split()}
    assert wanted and not (wanted - build), f"build stage lacks {sorted(wanted - build)}"
    if not shutil.which("dpkg"):
        return
    paths = ldd_paths(execmon_bin)
    lacking = {}
    for soname in needed_sonames(execmon_bin):
        if dpkg_owner(paths[soname]) in C_RUNTIME:
            continue
        name = re.sub(r"\.so\..*$", ".so", os.path.basename(paths[soname]))
        dev = None
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
                  "/lib/x86_64-linux-gnu"):
            r = subprocess.run(["dpkg", "-S", f"{d}/{name}"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            if r.returncode == 0:
                dev = r.stdout.split(":")[0].strip()
                break
        assert dev, f"no installed development package ships {name}"
        if dev not in build:
            lacking[soname] = dev
    assert not lacking, f"build stage lacks development packages: {lacking}"


def test_build_stage_copies_what_cmake_reads(parsed):
    copies = [r.split()[0].rstrip("/") for w, r in parsed["build"]["ins"] if w == "COPY"]
    cmake = (REPO / "CMakeLists.txt").read_text()
    needed = set(re.findall(r"^add_subdirectory\((\w+)\)", cmake, re.M)) - {"tests"}
    needed |= {p.split("/")[0] for p in re.findall(r"^include\(([\w/.]+)\)", cmake, re.M)}
    needed.add("CMakeLists.txt")
    assert needed <= set(copies), f"not copied into the build stage: {needed - set(copies)}"
    # Files the build reads by path (the embedded event schema, the pinned
    # kernel types) are inside something copied.
    read = set()
    for f in [REPO / "agent" / "CMakeLists.txt", *(REPO / "cmake").glob("*.cmake")]:
        read |= set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([\w./-]+\.[a-z]+)\b", f.read_text()))
    assert "docs/events.schema.json" in read
    uncovered = {r for r in read if not any(r == c or r.startswith(c + "/") for c in copies)}
    assert not uncovered, f"read by the build but not copied: {uncovered}"
    runs = " ".join(r for w, r in parsed["build"]["ins"] if w == "RUN")
    assert "-DEXECMON_BUILD_TESTS=OFF" in runs and "--target execmon" in runs


def test_entrypoint_matches_chart(parsed):
    ins = dict(parsed["runtime"]["ins"])
    assert ins["ENTRYPOINT"] == '["/usr/local/bin/execmon"]'
    template = (REPO / "deploy" / "helm" / "execmon" / "templates" / "daemonset.yaml").read_text()
    assert 'command: ["/usr/local/bin/execmon"]' in template
    # BPF needs root's capabilities: no USER (documented in the file).
    assert "USER" not in ins
    assert "runs as root" in CONTAINERFILE.read_text()


@pytest.mark.skipif(os.environ.get("EXECMON_IMAGE_BUILD") != "1",
                    reason="EXECMON_IMAGE_BUILD=1 builds the image with buildah (slow)")
def test_image_builds_and_runs(tmp_path):
    """Builds the image with buildah (no daemon) and runs the agent's
    offline commands in it. Needs the debian:bookworm and
    debian:bookworm-slim images in buildah's local storage (registries may
    be unreachable: --pull=never)."""
    if not shutil.which("buildah"):
        pytest.skip("buildah not installed")
    tag = "localhost/execmon:deploy-test"
    subprocess.run(["buildah", "bud", "--pull=never", "--isolation=chroot", "-f",
                    str(CONTAINERFILE), "-t", tag, str(REPO)], check=True, timeout=1800)
    ctr = subprocess.run(["buildah", "from", tag], stdout=subprocess.PIPE, text=True,
                         check=True).stdout.strip()
    try:
        def run(*cmd):
            return subprocess.run(["buildah", "run", "--isolation=chroot", ctr, "--", *cmd],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=120)
        r = run("/usr/local/bin/execmon", "version")
        assert r.returncode == 0 and r.stdout.startswith("execmon "), r.stdout
        r = run("sh", "-c", "ldd /usr/local/bin/execmon")
        assert r.returncode == 0 and "not found" not in r.stdout, r.stdout
        r = run("/usr/local/bin/execmon", "policy", "lint", "/usr/share/execmon/policies")
        assert r.returncode == 0, r.stdout
    finally:
        subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL)
