"""A real Prometheus server for the e2e tests, and helpers to read the
Grafana dashboard and the alert rules shipped in deploy/helm/execmon/files.

Uses Debian's /usr/bin/prometheus and /usr/bin/promtool (the `prometheus`
package).
"""
import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "deploy" / "helm" / "execmon" / "files"
DASHBOARD = FILES / "grafana-dashboard.json"
RULES = FILES / "prometheus-rules.yaml"
METRICS_DOC = REPO / "docs" / "metrics.md"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def promtool(*args, stdin=None):
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


# ------------------------------------------------------------------ dashboard

def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dash):
    """Every panel, including those nested in (collapsed) rows."""
    out = []

    def walk(ps):
        for p in ps:
            out.append(p)
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return out


def dashboard_exprs(dash):
    """[(panel title, refId, expr)] of every PromQL target of the dashboard."""
    return [(p["title"], t.get("refId", "?"), t["expr"])
            for p in panels(dash) for t in p.get("targets", []) if t.get("expr")]


# What Grafana would put in for its built-in and template variables when
# a dashboard is shown with every node selected.
DEFAULT_VARS = {"__rate_interval": "30s", "__interval": "15s", "__range": "1m",
                "node": ".*"}


def substitute(expr, values=DEFAULT_VARS):
    """Replaces $var and ${var} (Grafana template syntax) in expr."""
    def repl(m):
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"no value for template variable ${name} in: {expr}")
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


# Metric names in an expression: identifiers outside label matchers and
# strings that are followed by a selector, range, or are bare; PromQL
# functions and keywords are followed by "(" or are in this list.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
             "and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr):
    """Names of the metrics an expression reads (histogram series
    suffixes stripped: foo_bucket -> foo)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)    # drop strings
    s = re.sub(r"\{[^}]*\}", "{}", s)                 # drop label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)                # drop ranges
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
               "", s)                                 # drop grouping label lists
    names = set()
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        # A histogram's series belong to its family (execmon_*_seconds).
        if name.startswith("execmon_"):
            name = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(name)
    return names


def documented_metrics():
    """Metric names in docs/metrics.md's table (first column)."""
    return set(metric_doc_rows())


def metric_doc_rows():
    """{metric name: its docs/metrics.md table row}."""
    return {m.group(1): m.group(0) for m in re.finditer(
        r"^\| `(execmon_[a-z0-9_]+)` \|.*$", METRICS_DOC.read_text(), re.MULTILINE)}


def label_matchers(expr):
    """[(metric, label, op, value)] of the label matchers of every execmon_
    selector in expr (template variables left as they are)."""
    out = []
    for m in re.finditer(r"\b(execmon_\w+)\{([^}]*)\}", expr):
        metric = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        for lm in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            out.append((metric, lm.group(1), lm.group(2), lm.group(3)))
    return out


# ------------------------------------------------------------------ server

class Prometheus:
    """A Prometheus server in its own temporary directory, scraping
    `targets` (host:port) every second as job `job` and evaluating
    `rule_files` every second."""

    def __init__(self, workdir, targets, rule_files=(), job="execmon"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(Path(f).resolve()) for f in rule_files],
            "scrape_configs": [{"job_name": job,
                                "static_configs": [{"targets": list(targets)}]}],
        }
        # JSON is YAML.
        (self.dir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self.log_path = self.dir / "prometheus.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h",
             f"--web.console.templates={self.dir}",
             f"--web.console.libraries={self.dir}"],
            stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout=30)
        except BaseException:
            self.stop()
            raise

    def log(self):
        return self.log_path.read_text()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                if http_get(f"{self.url}/-/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {timeout} s:\n{self.log()}")

    def api(self, path, **params):
        """The decoded JSON of GET /api/v1/<path>; HTTP errors included
        (Prometheus answers bad queries with 400 and a JSON error)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(url, timeout=10)
        try:
            return json.loads(body)
        except ValueError:
            raise AssertionError(f"GET {url}: HTTP {status}: {body}")

    def query(self, expr):
        """Instant query at now: the API answer (status, data or error)."""
        return self.api("query", query=expr)

    def vector(self, expr):
        """The result of a query that must succeed."""
        r = self.query(expr)
        assert r["status"] == "success", f"{expr}: {r}"
        return r["data"]["result"]

    def wait_until(self, expr, pred, timeout, what):
        """Polls an instant query until pred(result) holds."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            result = self.vector(expr)
            if pred(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{what}: not within {timeout} s; last {expr} = {result}\n"
                             f"prometheus log:\n{self.log()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
