"""Metrics end to end with a REAL Prometheus server (Debian's prometheus and
promtool): the shipped alert rules and Grafana dashboard
(deploy/helm/execmon/files) are loaded and every PromQL expression in them
is evaluated against live scrapes of real agents seeing real execs.

No policy is ever loaded here (policies can kill processes machine-wide):
verdict panels and alerts that need a deny/kill are checked through the
metric they select from instead (see EXEMPT).
"""
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import prom
from conftest import BIN, fresh_copy, run

pytestmark = pytest.mark.skipif(
    not (Path(prom.PROMETHEUS).exists() and Path(prom.PROMTOOL).exists()),
    reason="needs Debian's prometheus package (prometheus, promtool)")

REQUIRED_ALERTS = {"ExecmonEventsDropped", "ExecmonKafkaFailing",
                   "ExecmonPolicyReloadFailing", "ExecmonAgentDown",
                   "ExecmonLateBuildIdResolution", "ExecmonKillFailures"}


def rules():
    """[(alert name, rule dict)] of the rules file."""
    doc = yaml.safe_load(prom.RULES.read_text())
    return [(r["alert"], r) for g in doc["groups"] for r in g["rules"]]


@dataclass
class Exempt:
    """An expression that legitimately returns nothing in a healthy test run.

    Each probe (the condition's inner expression or the metric it selects)
    must return data instead. When there is no probe because the metric
    itself is only exported in a configuration the test does not have
    (Kafka, --bpf_stats), the exemption lasts only while Prometheus has no
    series of that metric: once it exists, the expression must return data.
    """
    why: str
    probes: list = field(default_factory=list)
    # Extra label matchers for "has that metric a series" (the Kafka
    # sink's, where the file sink exports the same metrics).
    matchers: str = ""


NO_POLICY = ("a deny/kill verdict needs a loaded policy, and tests never load "
             "policies; the verdict family itself is exported (allow verdicts)")
NO_KAFKA = ("the Kafka sink's series; the test agents write JSON lines to a file "
            "(whose sink exports the same metrics under its own sink label)")
KAFKA = 'sink="kafka"'

NO_BPF_STATS = ("exported only with --bpf_stats, which turns on BPF run-time "
                "statistics kernel-wide (it would slow every other BPF user, "
                "e.g. concurrent benchmarks)")

# Keyed by (panel title, refId) for the dashboard, by alert name for rules.
EXEMPT = {
    ("Denied execs (time range)", "A"): Exempt(NO_POLICY, ["execmon_exec_verdicts_total"]),
    ("Killed execs (time range)", "A"): Exempt(NO_POLICY, ["execmon_exec_verdicts_total"]),
    ("Denied execs", "A"): Exempt(NO_POLICY, ["execmon_exec_verdicts_total"]),
    ("Killed execs", "A"): Exempt(NO_POLICY, ["execmon_exec_verdicts_total"]),
    ("Sweep violations", "A"): Exempt(
        "execmon_sweep_violations_total only exists after a violation, which needs "
        "a policy; the kernel's sweep counter is exported from the start",
        ['execmon_kernel_events_total{event="sweep_violation"}']),
    ("Sink queue depth (Kafka)", "A"): Exempt(NO_KAFKA, matchers=KAFKA),
    ("Sink delivered / failed", "A"): Exempt(NO_KAFKA, matchers=KAFKA),
    ("Sink delivered / failed", "B"): Exempt(NO_KAFKA, matchers=KAFKA),
    ("Sink drops by reason, sink errors", "A"): Exempt(NO_KAFKA, matchers=KAFKA),
    ("Sink drops by reason, sink errors", "B"): Exempt(
        "execmon_sink_errors_total only exists once a sink refused an event "
        "(e.g. the output file could not be written); healthy runs have none"),
    ("BPF program CPU (--bpf_stats)", "A"): Exempt(NO_BPF_STATS),
    ("BPF program CPU (--bpf_stats)", "B"): Exempt(NO_BPF_STATS),
    # Alerts whose condition is false on healthy agents.
    "ExecmonAgentDown": Exempt(
        "every target is up until the test stops one (then it must fire: "
        "checked separately)", ['up{job="execmon"}']),
    "ExecmonEventsDropped": Exempt(
        "no drops on a healthy run; the ring-buffer and decode parts' inner "
        "sums are probed, the sink part needs a Kafka sink",
        ["sum by (instance) (increase(execmon_ringbuf_dropped_total[5m]))",
         "sum by (instance) (increase(execmon_decode_errors_total[5m]))"]),
    "ExecmonKafkaFailing": Exempt(NO_KAFKA, matchers=KAFKA),
    "ExecmonPolicyReloadFailing": Exempt(
        "no policy is loaded, so the last (re)load did not fail",
        ["execmon_policy_last_reload_success"]),
    "ExecmonKillFailures": Exempt(
        "no kill was attempted (no policy)",
        ['sum by (instance) (increase(execmon_kernel_events_total{event="kill_failed"}[10m]))']),
    "ExecmonBuildIdResolutionLost": Exempt(
        "the pending table does not fill and task_work scheduling does not fail "
        "at the test's exec rate",
        ['sum by (instance, event) (increase(execmon_kernel_events_total'
         '{event=~"pending_table_full|task_work_schedule_failed"}[10m]))']),
}

# Families the agent leaves out of /metrics until a series exists (no
# label values are pre-created for them), and why a test run has none.
CONDITIONAL_FAMILIES = {
    "execmon_sweep_violations_total": "needs a policy",
    "execmon_sink_errors_total": "needs a failing sink",
    "execmon_sink_queue_events": NO_KAFKA,
    "execmon_sink_delivered_total": NO_KAFKA,
    "execmon_sink_failed_total": NO_KAFKA,
    "execmon_sink_dropped_total": NO_KAFKA,
    "execmon_bpf_program_run_seconds_total": NO_BPF_STATS,
    "execmon_bpf_program_runs_total": NO_BPF_STATS,
}


# ------------------------------------------------------------------ static

def test_rules_file_passes_promtool():
    r = prom.promtool("check", "rules", str(prom.RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout, r.stdout


def test_rules_have_for_severity_and_annotations():
    rs = rules()
    names = [n for n, _ in rs]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)
    for name, r in rs:
        assert name.startswith("Execmon"), name
        assert "for" in r and r["for"], f"{name}: no for:"
        assert r["labels"]["severity"] in ("warning", "critical"), name
        for a in ("summary", "description"):
            assert r["annotations"].get(a, "").strip(), f"{name}: no {a}"
    # Warnings the brief and docs/dashboards.md promise.
    severity = {n: r["labels"]["severity"] for n, r in rs}
    assert severity["ExecmonLateBuildIdResolution"] == "warning"
    assert 'resolver="iterator"' in dict(rs)["ExecmonLateBuildIdResolution"]["expr"]
    assert "execmon_policy_last_reload_success == 0" in \
        dict(rs)["ExecmonPolicyReloadFailing"]["expr"]


def test_dashboard_structure():
    d = prom.dashboard()
    assert 36 <= d["schemaVersion"] <= 41
    assert d["uid"] and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    node = variables["node"]
    assert node["type"] == "query" and node["multi"] and node["includeAll"]
    assert node["allValue"] == ".*"
    assert "label_values(execmon_build_info, instance)" in json.dumps(node["query"])
    ids = [p["id"] for p in prom.panels(d)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    titles = [p["title"] for p in prom.panels(d) if p["type"] != "row"]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    for p in prom.panels(d):
        if p["type"] == "row":
            continue
        assert p["title"].strip() and len(p.get("description", "")) > 20, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    for title, ref, expr in prom.dashboard_exprs(d):
        # Every selector is filtered by the node variable.
        for sel in re.findall(r"\bexecmon_\w+(\{[^}]*\})?", expr):
            assert 'instance=~"$node"' in sel, f"{title}/{ref}: unfiltered selector in {expr}"
        prom.substitute(expr)  # only known variables
    # The resolver is highlighted in the build-info table.
    info = next(p for p in prom.panels(d) if p["title"] == "Agent build info")
    resolver = next(o for o in info["fieldConfig"]["overrides"]
                    if o["matcher"]["options"] == "resolver")
    props = {x["id"]: x["value"] for x in resolver["properties"]}
    assert props["custom.cellOptions"]["type"] == "color-background"
    assert set(props["mappings"][0]["options"]) == {"page_cache", "task_work", "iterator"}


def test_dashboard_and_rules_use_documented_metrics():
    """No invented metric: every metric read is in docs/metrics.md, and every
    documented metric has a place on the dashboard."""
    documented = prom.documented_metrics()
    assert len(documented) >= 20, "docs/metrics.md table not found"
    used = set()
    for title, ref, expr in prom.dashboard_exprs(prom.dashboard()):
        names = prom.metric_names(expr)
        assert names, f"{title}/{ref}: no metric in {expr}"
        assert names <= documented, f"{title}/{ref}: undocumented {names - documented}"
        used |= names
    assert documented <= used, f"metrics without a panel: {documented - used}"
    for name, r in rules():
        names = prom.metric_names(r["expr"]) - {"up"}
        assert names <= documented, f"{name}: undocumented {names - documented}"



def _series(metric, labels, values):
    lab = ", ".join(f'{k}="{v}"' for k, v in {"job": "execmon", **labels}.items())
    return {"series": f"{metric}{{{lab}}}", "values": values}


def test_alert_conditions_with_promtool_unit_tests(tmp_path):
    """The conditions a healthy live run cannot produce (drops, Kafka
    failures, kill failures, failed reloads), on synthetic series of the
    documented metrics: `promtool test rules`. Each alert expression is
    wrapped in count by (its labels) so extrapolated increase() values do
    not matter: which instances it selects does."""
    flat, rising = "0x12", "0+1x12"           # one sample a minute, 13 minutes
    inputs = [
        # ExecmonEventsDropped: n1 ring buffer, n2 Kafka drop, n3 decode, n4 healthy.
        _series("execmon_ringbuf_dropped_total", {"instance": "n1", "record": "exec"}, rising),
        _series("execmon_ringbuf_dropped_total", {"instance": "n4", "record": "exec"}, flat),
        _series("execmon_sink_dropped_total",
                {"instance": "n2", "sink": "kafka", "reason": "queue_full"}, rising),
        _series("execmon_decode_errors_total", {"instance": "n3"}, rising),
        _series("execmon_decode_errors_total", {"instance": "n4"}, flat),
        # ExecmonKafkaFailing: n1 failed, n2 drops (above), n5 queue growing,
        # n6 queue high but draining/flat, n4 empty queue.
        _series("execmon_sink_failed_total", {"instance": "n1", "sink": "kafka"}, rising),
        _series("execmon_sink_failed_total", {"instance": "n4", "sink": "kafka"}, flat),
        _series("execmon_sink_queue_events", {"instance": "n5", "sink": "kafka"}, "100+50x12"),
        _series("execmon_sink_queue_events", {"instance": "n6", "sink": "kafka"}, "500x12"),
        _series("execmon_sink_queue_events", {"instance": "n4", "sink": "kafka"}, flat),
        # ExecmonPolicyReloadFailing: n1 failed, n2 fine.
        _series("execmon_policy_last_reload_success", {"instance": "n1"}, flat),
        _series("execmon_policy_last_reload_success", {"instance": "n2"}, "1x12"),
        # ExecmonLateBuildIdResolution: n1 iterator, n2 task_work.
        _series("execmon_build_info", {"instance": "n1", "resolver": "iterator",
                                       "kernel": "6.1.0", "version": "0.1.0"}, "1x12"),
        _series("execmon_build_info", {"instance": "n2", "resolver": "task_work",
                                       "kernel": "6.18.0", "version": "0.1.0"}, "1x12"),
        # ExecmonKillFailures: n1 failing, n2 kills that worked.
        _series("execmon_kernel_events_total", {"instance": "n1", "event": "kill_failed"}, rising),
        _series("execmon_kernel_events_total", {"instance": "n2", "event": "kill_failed"}, flat),
        _series("execmon_kernel_events_total", {"instance": "n2", "event": "kill"}, rising),
        # ExecmonBuildIdResolutionLost: n1 pending table full; n2 only
        # exited_before_resolution (not alerted on).
        _series("execmon_kernel_events_total", {"instance": "n1", "event": "pending_table_full"},
                rising),
        _series("execmon_kernel_events_total",
                {"instance": "n2", "event": "exited_before_resolution"}, rising),
        # ExecmonAgentDown: n1 down, n2 up.
        _series("up", {"instance": "n1"}, flat),
        _series("up", {"instance": "n2"}, "1x12"),
    ]
    expect = {
        "ExecmonEventsDropped": ("instance, stage", [
            {"instance": "n1", "stage": "ring_buffer"}, {"instance": "n2", "stage": "sink"},
            {"instance": "n3", "stage": "decode"}]),
        "ExecmonKafkaFailing": ("instance", [
            {"instance": "n1"}, {"instance": "n2"}, {"instance": "n5"}]),
        "ExecmonPolicyReloadFailing": ("instance", [{"instance": "n1"}]),
        "ExecmonLateBuildIdResolution": ("instance", [{"instance": "n1"}]),
        "ExecmonKillFailures": ("instance", [{"instance": "n1"}]),
        "ExecmonBuildIdResolutionLost": ("instance, event", [
            {"instance": "n1", "event": "pending_table_full"}]),
        "ExecmonAgentDown": ("instance", [{"instance": "n1"}]),
    }
    assert set(expect) == {n for n, _ in rules()}, "a rule without a unit test"

    def label_str(d):
        return "{" + ", ".join(f'{k}="{v}"' for k, v in d.items()) + "}"

    tests = [{
        "interval": "1m", "input_series": inputs,
        "promql_expr_test": [
            {"expr": f"count by ({by}) ({rules_expr(name)})", "eval_time": "10m",
             "exp_samples": [{"labels": label_str(l), "value": 1} for l in want]}
            for name, (by, want) in expect.items()],
    }, {
        # No execmon target at all: ExecmonAgentDown through absent().
        "interval": "1m",
        "input_series": [{"series": 'up{job="node", instance="other"}', "values": "1x12"}],
        "promql_expr_test": [{"expr": rules_expr("ExecmonAgentDown"), "eval_time": "5m",
                              "exp_samples": [{"labels": '{job="execmon"}', "value": 1}]}],
    }]
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(json.dumps({"rule_files": [str(prom.RULES)],
                                     "evaluation_interval": "1m", "tests": tests}))
    r = prom.promtool("test", "rules", str(test_file))
    assert r.returncode == 0, r.stdout + r.stderr

# Label values docs/metrics.md does not list: the sink names (a sink's
# name(): "kafka" in agent/sink/kafka_sink.h).
UNDOCUMENTED_LABEL_VALUES = {("sink", "kafka")}


def test_label_values_are_documented():
    """A matcher on a label value the agent never exports (a typo such as
    decision="denied") selects nothing, and for the panels and alerts that
    are legitimately empty in a test run the live test could not notice:
    every matched label and value must be in the metric's docs/metrics.md
    row."""
    rows = prom.metric_doc_rows()
    exprs = [(f"{t}/{ref}", e) for t, ref, e in prom.dashboard_exprs(prom.dashboard())]
    exprs += [(n, r["expr"]) for n, r in rules()]
    for where, expr in exprs:
        for metric, label, op, value in prom.label_matchers(expr):
            if label == "instance":
                assert (op, value) == ("=~", "$node"), f"{where}: {label}{op}{value}"
                continue
            row = rows[metric]
            assert f"`{label}`" in row, f"{where}: {metric} has no label {label}"
            values = value.split("|") if op in ("=~", "!~") else [value]
            for v in values:
                assert re.fullmatch(r"[a-z_]+", v), f"{where}: unexpected matcher {value}"
                assert re.search(rf"\b{v}\b", row) or (label, v) in UNDOCUMENTED_LABEL_VALUES, \
                    f"{where}: {metric}{{{label}{op}\"{value}\"}}: {v} not in docs/metrics.md"


# ------------------------------------------------------------------ live

def _agent(agent_factory, *flags, subdir=None):
    port = prom.free_port()
    a = agent_factory(f"--metrics_address=127.0.0.1:{port}", *flags, subdir=subdir)
    a.metrics = f"127.0.0.1:{port}"
    return a


def test_live_scrape_passes_promtool_and_probes(agent_factory, tmp_path):
    a = _agent(agent_factory)
    for prog in ("hello_pie8", "hello_noid"):
        run([BIN / prog])
    run([fresh_copy(BIN / "hello_pie8", tmp_path / "fresh_pie8")])
    # The exec verdict and build-ID families appear with the first exec.
    deadline = time.monotonic() + 10
    while True:
        status, body = prom.http_get(f"http://{a.metrics}/metrics")
        assert status == 200, body
        if "execmon_build_id_resolution_seconds_bucket" in body \
                and "execmon_exec_verdicts_total{" in body:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    r = prom.promtool("check", "metrics", stdin=body)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    for name in prom.documented_metrics() - set(CONDITIONAL_FAMILIES):
        assert f"# TYPE {name} " in body, f"{name} documented but not exported"

    status, body = prom.http_get(f"http://{a.metrics}/healthz")
    assert status == 200, body
    health = json.loads(body)
    assert health["bpf_attached"] is True and health["status"] == "ok", health
    status, body = prom.http_get(f"http://{a.metrics}/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"


@pytest.fixture
def prometheus_factory(tmp_path):
    servers = []

    def start(targets, rule_files=()):
        s = prom.Prometheus(tmp_path / f"prometheus{len(servers)}", targets, rule_files)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


class ExecLoad:
    """Real execs in a background thread until stopped: cached binaries, one
    without a build ID (result no_note) and fresh copies (cache misses)."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "load"
        self.dir.mkdir()
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        # A process without a build ID that lives a second: the late
        # (iterator) resolver reads running processes only, and a short one
        # has usually exited before its exec record is read (up to the
        # agent's 50 ms poll interval later).
        lasting = None
        try:
            i = 0
            while not self._stop.is_set():
                run([BIN / "hello_pie8"])
                run([BIN / "hello_noid"])
                if lasting is None or lasting.poll() is not None:
                    lasting = subprocess.Popen([str(BIN / "hello_noid"), "sleep", "1"])
                run([BIN / "hello_nopie20"])
                fresh = fresh_copy(BIN / "hello_pie8", self.dir / f"fresh{i % 8}")
                run([fresh])
                i += 1
                self._stop.wait(0.1)
        except BaseException as e:  # reported by stop()
            self.error = e
        finally:
            if lasting is not None:
                lasting.wait()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "exec load did not stop"
        if self.error:
            raise self.error


def _rules_api(p):
    r = p.api("rules")
    assert r["status"] == "success", r
    return {rule["name"]: rule for g in r["data"]["groups"] for rule in g["rules"]}


def _has_series(p, name, matchers=""):
    sel = f'__name__="{name}"' + (f",{matchers}" if matchers else "")
    return bool(p.vector(f"count({{{sel}}})"))


def test_prometheus_evaluates_dashboard_and_rules(agent_factory, prometheus_factory,
                                                   tmp_path):
    start = time.monotonic()
    # Two agents: the kernel's resolver (task_work here) and a late
    # (iterator) one, so the resolver panel and alert see both.
    a = _agent(agent_factory, subdir="agent_auto")
    late = _agent(agent_factory, "--build_id_resolver=iterator", subdir="agent_iterator")
    p = prometheus_factory([a.metrics, late.metrics], [prom.RULES])
    load = ExecLoad(tmp_path)
    try:
        p.wait_until('up{job="execmon"} == 1', lambda r: len(r) == 2, 30,
                     "both agents scraped")
        # rate() over the dashboard's range has data for both agents.
        p.wait_until('rate(execmon_events_total{type="exec"}[30s]) > 0',
                     lambda r: len(r) == 2, 30, "exec rate of both agents")
        p.wait_until('sum by (instance) (increase(execmon_build_id_results_total{result="no_note"}[30s])) > 0',
                     lambda r: len(r) == 2, 30, "execs without a build ID scraped")
        p.wait_until('sum by (instance) (increase(execmon_build_id_cache_total{result="miss"}[30s])) > 0',
                     lambda r: len(r) == 2, 30, "cache misses scraped")

        # The node variable lists both agents.
        r = p.api("label/instance/values", **{"match[]": "execmon_build_info"})
        assert set(r["data"]) == {a.metrics, late.metrics}, r

        # Every rule loaded and evaluated without error.
        want = {n for n, _ in rules()}
        deadline = time.monotonic() + 20
        while True:
            loaded = _rules_api(p)
            if set(loaded) == want and all(
                    not x["lastEvaluation"].startswith("0001") for x in loaded.values()):
                break
            assert time.monotonic() < deadline, f"rules not evaluated: {loaded}"
            time.sleep(0.5)
        for name, x in loaded.items():
            assert x["type"] == "alerting" and x["health"] == "ok", x
            assert not x.get("lastError"), x

        # Every dashboard expression and every rule expression, now.
        failures, report = [], []
        cases = [((t, ref), prom.substitute(e)) for t, ref, e in
                 prom.dashboard_exprs(prom.dashboard())]
        cases += [(name, r["expr"]) for name, r in rules()]
        for key, expr in cases:
            res = p.query(expr)
            if res.get("status") != "success":
                failures.append(f"{key}: query failed: {res.get('error')}\n  {expr}")
                continue
            if res["data"]["result"]:
                report.append(f"data  {key}")
                continue
            ex = EXEMPT.get(key)
            if ex is None:
                failures.append(f"{key}: no data\n  {expr}")
                continue
            for probe in ex.probes:
                if not p.vector(probe):
                    failures.append(f"{key}: probe {probe} has no data either")
            if not ex.probes:
                present = [n for n in prom.metric_names(expr)
                           if _has_series(p, n, ex.matchers)]
                if present:
                    failures.append(f"{key}: no data although {present} exist(s)\n  {expr}")
            report.append(f"empty {key}: {ex.why}")
        assert not failures, "\n".join(failures)
        stale = set(EXEMPT) - {k for k, _ in cases}
        assert not stale, f"EXEMPT names expressions that no longer exist: {stale}"
        print("\n".join(report))

        # Alert states on healthy agents: the late resolver is pending (its
        # for: is 10m) for the iterator agent only; nothing else is active
        # that the test controls.
        # (--build_id_resolver=auto is iterator too on kernels without
        # bpf_task_work.)
        iterators = {x["metric"]["instance"]
                     for x in p.vector('execmon_build_info{resolver="iterator"}')}
        assert late.metrics in iterators
        loaded = _rules_api(p)
        late_alerts = loaded["ExecmonLateBuildIdResolution"]["alerts"]
        assert {x["labels"]["instance"] for x in late_alerts} == iterators, late_alerts
        for x in late_alerts:
            assert x["state"] == "pending" and x["labels"]["severity"] == "warning", x
            _assert_rendered(x)
        for name in ("ExecmonAgentDown", "ExecmonPolicyReloadFailing",
                     "ExecmonKillFailures", "ExecmonKafkaFailing"):
            assert loaded[name]["state"] == "inactive", loaded[name]
    finally:
        load.stop()

    # An agent that goes away is noticed: up == 0 and ExecmonAgentDown pending.
    assert late.stop() == 0, late.log()
    p.wait_until('up{job="execmon"} == 0', lambda r: len(r) == 1, 15, "target down")
    deadline = time.monotonic() + 15
    while True:
        down = _rules_api(p)["ExecmonAgentDown"]["alerts"]
        if down:
            break
        assert time.monotonic() < deadline, "ExecmonAgentDown did not become pending"
        time.sleep(0.5)
    assert [x["labels"]["instance"] for x in down] == [late.metrics], down
    assert down[0]["state"] == "pending" and down[0]["labels"]["severity"] == "critical"
    _assert_rendered(down[0])
    assert p.vector(rules_expr("ExecmonAgentDown")), "alert expression has no data"
    assert time.monotonic() - start < 100, "took too long"


def _assert_rendered(alert):
    """The annotation templates expanded cleanly for a live alert."""
    for key in ("summary", "description"):
        text = alert["annotations"][key]
        assert alert["labels"]["instance"] in text, (key, text)
        for bad in ("<no value>", "error expanding", "{{"):
            assert bad not in text, (key, text)


def rules_expr(name):
    return dict(rules())[name]["expr"]


def test_probes_answer_under_idle_and_slowloris_connections(agent_factory):
    # 200 idle TCP connections and 2 slowloris clients (a request header
    # trickled a line at a time) must not stop /healthz, /readyz and
    # /metrics from answering within 1 s: the kubelet would restart the
    # agent in a loop otherwise (docs/operations.md).
    import socket
    a = _agent(agent_factory)
    host, port = a.metrics.split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
    slow = []
    for _ in range(2):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    try:
        deadline = time.monotonic() + 6
        n = 0
        while time.monotonic() < deadline:
            for s in slow:
                try:
                    s.sendall(f"X-Slow-{n}: y\r\n".encode())
                except OSError:
                    pass  # closed by the server: fine
            for path in ("/healthz", "/readyz", "/metrics"):
                t0 = time.monotonic()
                status, body = prom.http_get(f"http://{a.metrics}{path}", timeout=1)
                took = time.monotonic() - t0
                assert status == 200 and took < 1.0, (path, status, took)
            n += 1
            time.sleep(0.3)
        assert n >= 5
    finally:
        for s in idle + slow:
            s.close()
