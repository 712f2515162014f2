"""Helpers shared by the deployment tests (a module of its own, not
conftest, so that `from deploylib import ...` is unambiguous when several
test directories run in one pytest session)."""
import pathlib
import subprocess

import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART = REPO / "deploy" / "helm" / "execmon"
# Kubernetes version helm renders for (Capabilities.KubeVersion).
HELM_KUBE_VERSION = "1.31.0"
VALUES_ALL = HERE / "values-all.yaml"


class Helm:
    def __init__(self, binary, chart, tmp):
        self.binary = binary
        self.chart = chart
        self.tmp = tmp
        self.n = 0

    def values_file(self, values):
        self.n += 1
        p = self.tmp / f"values-{self.n}.yaml"
        p.write_text(yaml.safe_dump(values, sort_keys=False))
        return p

    def run(self, *args, check=True):
        r = subprocess.run([self.binary, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{r.stderr}")
        return r

    def template(self, *value_files, values=None, check=True, extra=()):
        args = ["template", "rel", str(self.chart), "--namespace", "security",
                "--kube-version", HELM_KUBE_VERSION]
        for f in value_files:
            args += ["-f", str(f)]
        if values is not None:
            args += ["-f", str(self.values_file(values))]
        args += list(extra)
        return self.run(*args, check=check)

    def render(self, *value_files, values=None):
        """Rendered manifests, parsed, None documents dropped."""
        out = self.template(*value_files, values=values).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name_suffix=""):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert hits, f"no {kind} *{name_suffix} in {[d['kind'] for d in docs]}"
    return hits[0]


def agent_container(docs):
    ds = find(docs, "DaemonSet")
    return ds, ds["spec"]["template"]["spec"]["containers"][0]


def sample_policies():
    """policies/ (the repository's samples) as a `policies:` map."""
    root = REPO / "policies"
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and p.name != "README.md":
            out[str(p.relative_to(root))] = p.read_text()
    assert any(k.endswith(".yaml") for k in out) and any("/" in k for k in out)
    return out


# Named value sets: files and/or inline values. Together they render every
# branch of the templates.
VARIANTS = {
    "default": {},
    "all": {"files": [VALUES_ALL], "samples": True},
    "privileged": {"values": {"securityContext": {"privileged": True},
                              "enforcement": {"enabled": True},
                              "agent": {"bpfStats": True}}},
    "existing-objects": {"values": {
        "existingPolicyConfigMap": "site-policies",
        "existingPolicyConfigMapItems": [
            {"key": "deny.yaml", "path": "deny.yaml"},
            {"key": "lists__vulnerable.txt", "path": "lists/vulnerable.txt"}],
        "kafka": {"enabled": True, "brokers": ["kafka.kafka.svc:9092"],
                  "sasl": {"enabled": True, "existingSecret": "kafka-credentials",
                           "credentialsIn": "args"}},
        "serviceAccount": {"create": False, "name": "execmon-prebuilt"}}},
    "minimal": {"values": {
        "agent": {"kubernetes": "off"},
        "policies": {"audit-vulnerable-builds.yaml": None, "lists/vulnerable-builds.txt": None},
        "serviceAccount": {"create": False, "automountToken": False},
        "rbac": {"create": False},
        "livenessProbe": {"enabled": False},
        "readinessProbe": {"enabled": False},
        "startupProbe": {"enabled": False},
        "metrics": {"service": {"enabled": False}},
        "hostMounts": {"btf": {"enabled": False}, "cgroup": {"enabled": False}},
        "updateStrategy": {"type": "OnDelete"},
        "priorityClassName": "",
        "tolerations": [], "nodeSelector": {}, "resources": {},
        "kafka": {"enabled": True, "brokers": ["10.0.0.1:9092"],
                  "tls": {"enabled": True}},
        "securityContext": {"seccompProfile": {"type": "Unconfined"}}}},
}


def variant_args(helm, name):
    v = VARIANTS[name]
    files = list(v.get("files", []))
    if v.get("samples"):
        files.append(helm.values_file({"policies": sample_policies()}))
    if "values" in v:
        files.append(helm.values_file(v["values"]))
    return files
