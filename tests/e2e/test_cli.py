"""The execmon command line: errors a user sees."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import BIN, EXECMON, REPO


def cli(*args):
    return subprocess.run([str(EXECMON), *args], capture_output=True, text=True,
                          timeout=30)


def test_version():
    r = cli("version")
    assert r.returncode == 0 and re.fullmatch(r"execmon \d+\.\d+\.\d+\n", r.stdout), r.stdout
    # absl's --version prints the bare version, also with a newline.
    r = cli("--version")
    assert r.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\n", r.stdout), r.stdout


COMMANDS = ["run", "buildid", "policy lint", "policy test", "policy generate",
            "index build", "index compile", "index query", "schema", "version", "help"]


def test_help_lists_every_command():
    r = cli("help")
    assert r.returncode == 0
    listed = re.findall(r"^  ([a-z]+(?: [a-z]+)?)  ", r.stdout, re.M)
    assert listed == COMMANDS, r.stdout
    assert cli("--help").stdout == r.stdout
    # No command: the same list, as a usage error.
    bare = cli()
    assert bare.returncode == 2 and bare.stderr == r.stdout


def help_flags(text):
    """The command's flags its help lists, less absl's --flagfile (every
    command takes it)."""
    flags = set(re.findall(r"^  --([a-z0-9_]+)=", text, re.M))
    assert "flagfile" in flags
    return flags - {"flagfile"}


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_its_own_help(name):
    words = name.split()
    r = cli(*words, "--help")
    assert r.returncode == 0, r.stderr
    assert cli("help", *words).stdout == r.stdout
    assert r.stdout.startswith(f"Usage: execmon {name}"), r.stdout
    assert re.search(r"^Examples?:\n  execmon " + name, r.stdout, re.M), r.stdout
    assert "main.cc" not in r.stdout  # no source paths
    flags = help_flags(r.stdout)
    policy_test = {"build_id", "sha256", "namespace", "labels", "container", "host",
                   "format", "index"}
    if name == "run":
        assert {"policies", "output", "metrics_address", "kafka_brokers"} <= flags
        assert "index" in flags  # shared with policy test
        assert not flags & (policy_test - {"index"} |
                            {"package", "from_index", "name", "mode", "under"})
    elif name == "policy generate":
        assert flags == {"from_index", "name", "mode"}
    elif name == "index build":
        assert flags == {"output", "under"}
    elif name == "index compile":
        assert flags == {"output"}
    elif name == "index query":
        assert flags == {"build_id", "package", "format"}
    elif name == "policy test":
        assert flags == policy_test
    elif name == "policy lint":
        assert flags == {"format"}
    else:
        assert flags == set()


def test_policy_group_help_lists_its_commands():
    r = cli("policy", "--help")
    assert r.returncode == 0
    assert re.findall(r"^  (policy \w+) ", r.stdout, re.M) == [
        "policy lint", "policy test", "policy generate"]
    bare = cli("policy")
    assert bare.returncode == 2 and bare.stderr == r.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "--format=json"],
     "execmon run: --format is not a flag of 'run' (it belongs to 'policy lint', "
     "'policy test', 'index query'); see 'execmon help run'"),
    (["run", "--build-id=ab"],
     "execmon run: --build_id is not a flag of 'run' (it belongs to 'policy test', "
     "'index query')"),
    (["buildid", "--policies=/x", "/bin/true"],
     "execmon buildid: --policies is not a flag of 'buildid' (it belongs to 'run')"),
    (["policy", "lint", "/x", "--host"],
     "execmon policy lint: --host is not a flag of 'policy lint' (it belongs to "
     "'policy test')"),
    (["version", "--nosnapshot"],
     "execmon version: --snapshot is not a flag of 'version' (it belongs to 'run')"),
])
def test_flag_of_another_command_is_an_error(args, message):
    r = cli(*args)
    assert r.returncode == 2
    assert r.stderr.startswith(message), r.stderr


def test_unknown_command_is_an_error():
    r = cli("frobnicate")
    assert r.returncode == 2
    assert r.stderr.startswith("execmon: unknown command 'frobnicate'\n")
    assert "policy lint" in r.stderr  # and the list of commands


def test_command_usage_errors_name_the_command():
    r = cli("buildid")
    assert r.returncode == 2
    assert r.stderr.splitlines()[:2] == ["execmon buildid: want at least one FILE",
                                        "usage: execmon buildid FILE..."]
    r = cli("version", "extra")
    assert r.returncode == 2 and "execmon version: unexpected argument 'extra'" in r.stderr


def test_schema_command_prints_the_published_schema():
    r = cli("schema")
    assert r.returncode == 0
    published = (REPO / "docs" / "events.schema.json").read_text()
    assert r.stdout == published
    schema = json.loads(r.stdout)
    assert schema["$id"].endswith("/events/1")
    assert schema["$defs"]["exec"]["properties"]["schema"] == {"const": 1}


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
