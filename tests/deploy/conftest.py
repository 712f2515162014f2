"""Fixtures for the deployment tests: tools (helm, kubeconform, schemas from
tools.sh), the chart, the agent binary, and helpers to render the chart."""
import os
import pathlib
import shutil
import subprocess

import pytest

from deploylib import CHART, HERE, REPO, Helm


@pytest.fixture(scope="session")
def tools():
    """Paths from tools.sh (which builds/downloads what is missing)."""
    env = {k: os.environ[k] for k in (
        "EXECMON_HELM", "EXECMON_KUBECONFORM", "EXECMON_K8S_SCHEMAS",
        "EXECMON_K8S_VERSIONS", "EXECMON_CRD_SCHEMAS", "EXECMON_CRD_YAMLS")
        if k in os.environ}
    if len(env) < 6:
        out = subprocess.run(["bash", str(HERE / "tools.sh")], check=True,
                             stdout=subprocess.PIPE, text=True, timeout=1200).stdout
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return env


@pytest.fixture(scope="session")
def execmon_bin():
    build = pathlib.Path(os.environ.get("EXECMON_BUILD_DIR", REPO / "build"))
    b = build / "bin" / "execmon"
    if not b.exists():
        pytest.fail(f"{b} is missing: build first (cmake -S . -B build && cmake --build build)")
    return b


@pytest.fixture(scope="session")
def chart(tmp_path_factory):
    """The chart directory. files/ (dashboard, rules) belongs to the
    observability work; with EXECMON_DEPLOY_STUB_FILES=1 a copy with stub
    files is used while they do not exist yet."""
    files = [CHART / "files" / "grafana-dashboard.json",
             CHART / "files" / "prometheus-rules.yaml"]
    if all(f.exists() for f in files):
        return CHART
    if os.environ.get("EXECMON_DEPLOY_STUB_FILES") != "1":
        missing = ", ".join(str(f.relative_to(REPO)) for f in files if not f.exists())
        pytest.fail(f"chart files missing: {missing} (EXECMON_DEPLOY_STUB_FILES=1 stubs them)")
    copy = tmp_path_factory.mktemp("chart") / "execmon"
    shutil.copytree(CHART, copy)
    (copy / "files").mkdir(exist_ok=True)
    if not (copy / "files" / "grafana-dashboard.json").exists():
        (copy / "files" / "grafana-dashboard.json").write_text('{"title": "stub", "panels": []}\n')
    if not (copy / "files" / "prometheus-rules.yaml").exists():
        (copy / "files" / "prometheus-rules.yaml").write_text(
            "groups:\n  - name: stub\n    rules:\n      - alert: Stub\n        expr: vector(0) > 1\n")
    return copy


@pytest.fixture(scope="session")
def helm(tools, chart, tmp_path_factory):
    return Helm(tools["EXECMON_HELM"], chart, tmp_path_factory.mktemp("helm"))
