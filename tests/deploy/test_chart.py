"""The Helm chart (deploy/helm/execmon): lint, strict schema validation of
every rendered manifest, values.schema.json, no drift against the agent's
flags, policies that the agent accepts, and the security posture."""
import base64
import json
import os
import re
import subprocess

import pytest
import yaml

from deploylib import (CHART, VALUES_ALL, VARIANTS, agent_container, find, sample_policies,
                       variant_args)


@pytest.fixture(scope="module")
def rendered(helm):
    cache = {}

    def get(name):
        if name not in cache:
            files = variant_args(helm, name)
            text = helm.template(*files).stdout
            cache[name] = (text, [d for d in yaml.safe_load_all(text) if d])
        return cache[name]
    return get


# --- lint and strict validation -------------------------------------------

@pytest.mark.parametrize("variant", ["default", "all", "privileged", "existing-objects", "minimal"])
def test_helm_lint(helm, variant):
    args = ["lint", "--strict", "--kube-version", "1.31.0", str(helm.chart)]
    for f in variant_args(helm, variant):
        args += ["-f", str(f)]
    r = helm.run(*args, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize("variant", ["default", "all", "privileged", "existing-objects", "minimal"])
def test_manifests_validate_strict(tools, rendered, tmp_path, variant):
    """Every rendered object against the Kubernetes API's own OpenAPI (each
    version in EXECMON_K8S_VERSIONS) and the prometheus-operator CRDs:
    unknown fields, wrong types and missing required fields are errors, and
    so is a kind without a schema."""
    text, docs = rendered(variant)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    crd_loc = tools["EXECMON_CRD_SCHEMAS"] + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
    for version in tools["EXECMON_K8S_VERSIONS"].split():
        r = subprocess.run(
            [tools["EXECMON_KUBECONFORM"], "-strict", "-summary", "-output", "json",
             "-kubernetes-version", version.lstrip("v"),
             "-schema-location", tools["EXECMON_K8S_SCHEMAS"],
             "-schema-location", crd_loc, str(manifest)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert r.returncode == 0, f"Kubernetes {version}:\n{r.stdout}\n{r.stderr}"
        summary = json.loads(r.stdout)["summary"]
        assert summary["valid"] == len(docs), (version, summary)
        assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0


def test_validator_rejects_unknown_and_mistyped_fields(tools, rendered, tmp_path):
    """The validator itself is strict (guards against a schema set that
    accepts anything)."""
    text, _ = rendered("default")
    bad = {
        "unknown field": text.replace("readOnlyRootFilesystem: true",
                                      "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true"),
        "wrong type": text.replace("hostPID: true", "hostPID: \"yes\""),
        "missing required": text.replace("- name: execmon\n", "- nam: execmon\n"),
    }
    for what, t in bad.items():
        assert t != text, what
        p = tmp_path / "bad.yaml"
        p.write_text(t)
        r = subprocess.run(
            [tools["EXECMON_KUBECONFORM"], "-strict", "-schema-location",
             tools["EXECMON_K8S_SCHEMAS"], "-kubernetes-version",
             tools["EXECMON_K8S_VERSIONS"].split()[-1].lstrip("v"), str(p)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        assert r.returncode != 0, f"{what} accepted:\n{r.stdout}"


# --- values.schema.json ---------------------------------------------------

BAD_VALUES = {
    "string for a number": {"agent": {"ringBufferMb": "16"}},
    "not a power of two": {"agent": {"ringBufferMb": 12}},
    "unknown enum": {"agent": {"logLevel": "verbose"}},
    "unknown resolver": {"agent": {"buildIdResolver": "fast"}},
    "unknown key": {"agent": {"ringbufferMb": 16}},
    "unknown top-level key": {"enforcment": {"enabled": True}},
    "bool as string": {"enforcement": {"enabled": "yes"}},
    "bad duration": {"agent": {"cacheMinAge": "2 seconds"}},
    "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "bad kafka key": {"kafka": {"key": "random"}},
    "bad sasl mechanism": {"kafka": {"sasl": {"mechanism": "GSSAPI"}}},
    "broker without port": {"kafka": {"brokers": ["kafka"]}},
    "port out of range": {"metrics": {"port": 70000}},
    "policy path escapes": {"policies": {"../etc/passwd": "x"}},
    "hidden policy file": {"policies": {".hidden.yaml": "x"}},
    "policy content not a string": {"policies": {"p.yaml": {"kind": "ExecPolicy"}}},
    "bad seccomp type": {"securityContext": {"seccompProfile": {"type": "Default"}}},
    "negative grace": {"terminationGracePeriodSeconds": -1},
    "bad update strategy": {"updateStrategy": {"type": "Recreate"}},
    "surge not a percentage": {"updateStrategy": {"rollingUpdate": {"maxSurge": "ten"}}},
    "extra arg not a flag": {"extraArgs": ["run"]},
    "tolerations not a list": {"tolerations": {"operator": "Exists"}},
    "output relative path": {"agent": {"output": "events.jsonl"}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects(helm, case):
    r = helm.template(values=BAD_VALUES[case], check=False)
    assert r.returncode != 0, f"{case}: accepted"
    assert "values don't meet the specifications of the schema" in r.stderr, r.stderr


def test_schema_covers_every_value():
    """Every key of values.yaml (and values-all.yaml) is described by the
    schema, down to the leaves the chart itself interprets."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values, node, path):
        assert "type" in node or "oneOf" in node or "enum" in node, path
        if not isinstance(values, dict) or node.get("type") != "object":
            return
        props = node.get("properties")
        if props is None:
            return  # free-form maps (labels, annotations, affinity, policies)
        for k, v in values.items():
            assert k in props, f"{path}.{k} not in values.schema.json"
            walk(v, props[k], f"{path}.{k}")
    for f in (CHART / "values.yaml", VALUES_ALL):
        walk(yaml.safe_load(f.read_text()), schema, "")
    assert schema.get("additionalProperties") is False


# --- checks the schema cannot express (template fail) ----------------------

FAILING = {
    "bpfStats without SYS_ADMIN": ({"agent": {"bpfStats": True}}, "CAP_SYS_ADMIN"),
    "kafka without brokers": ({"kafka": {"enabled": True}}, "kafka.brokers"),
    "grace period below flush timeout": (
        {"kafka": {"enabled": True, "brokers": ["k:9092"], "flushTimeoutSeconds": 30},
         "terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
    "sasl without credentials": (
        {"kafka": {"enabled": True, "brokers": ["k:9092"], "sasl": {"enabled": True}}},
        "existingSecret"),
    "comma in password": (
        {"kafka": {"enabled": True, "brokers": ["k:9092"],
                   "sasl": {"enabled": True, "username": "u", "password": "a,b=c"}}}, "comma"),
    "secret as raw property": (
        {"kafka": {"enabled": True, "brokers": ["k:9092"],
                   "properties": {"sasl.password": "x"}}}, "kafka.sasl"),
    "colliding policy keys": ({"policies": {"a/b.txt": "one", "a__b.txt": "two"}}, "same ConfigMap key"),
    "localhost seccomp without profile": (
        {"securityContext": {"seccompProfile": {"type": "Localhost"}}}, "localhostProfile"),
    "kubernetes on without a token": (
        {"agent": {"kubernetes": "on"}, "serviceAccount": {"automountToken": False}},
        "automountToken"),
    "output none without kafka": ({"agent": {"output": "none"}}, "agent.output=none"),
    "servicemonitor without service": (
        {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
        "metrics.service.enabled"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_template_refuses(helm, case):
    values, message = FAILING[case]
    r = helm.template(values=values, check=False)
    assert r.returncode != 0, f"{case}: rendered"
    assert message in r.stderr, r.stderr


# --- no drift between the chart and the binary ------------------------------

def rendered_args(docs):
    _, c = agent_container(docs)
    assert c["args"][0] == "run"
    return c["args"]


def help_flags(execmon_bin):
    """The flags `execmon run --help` lists (its own flags only)."""
    r = subprocess.run([str(execmon_bin), "run", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    flags = set(re.findall(r"^  --([A-Za-z0-9_]+)=", r.stdout, re.M))
    assert "policies" in flags and "metrics_address" in flags, r.stdout[:2000]
    return flags


def test_every_rendered_flag_exists(rendered, execmon_bin):
    known = help_flags(execmon_bin)
    used = set()
    for variant in VARIANTS:
        for a in rendered_args(rendered(variant)[1])[1:]:
            assert a.startswith("--"), a
            used.add(a[2:].split("=", 1)[0].replace("-", "_"))
    unknown = sorted(used - known)
    assert not unknown, f"flags the chart renders but `execmon run` lacks: {unknown}"
    # The Kafka block (all-on values) is part of what was checked.
    assert {"kafka_brokers", "kafka_property", "kafka_flush_timeout"} <= used


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_args_parse(rendered, execmon_bin, tmp_path, variant):
    """The binary's own flag parser accepts every rendered argument and value
    (`--version` exits 0 only when parsing succeeded), including the Kafka
    credentials flag file that the init container writes."""
    docs = rendered(variant)[1]
    env = {"EXECMON_NODE_NAME": "node-1", "KAFKA_USERNAME": "user",
           "KAFKA_PASSWORD": "p%s w=rd:$x"}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in rendered_args(docs)]
    ds, _ = agent_container(docs)
    for init in ds["spec"]["template"]["spec"].get("initContainers", []):
        mount = init["volumeMounts"][0]["mountPath"]
        script = init["args"][0].replace(mount, str(tmp_path))
        subprocess.run(init["command"] + [script], env={**os.environ, **env}, check=True)
        args = [a.replace(mount, str(tmp_path)) for a in args]
        flags = (tmp_path / "credentials.flags").read_text().splitlines()
        assert flags == ["--kafka_property=sasl.username=user",
                         "--kafka_property=sasl.password=p%s w=rd:$x"], flags
        assert oct((tmp_path / "credentials.flags").stat().st_mode & 0o777) == "0o600"
    r = subprocess.run([str(execmon_bin), *args, "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, f"{args}\n{r.stdout}"


def binary_defaults(execmon_bin):
    """{flag: default} from `execmon run --help` ("  --name=DEFAULT" lines)."""
    r = subprocess.run([str(execmon_bin), "run", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    return {m.group(1): m.group(2).strip('"')
            for m in re.finditer(r"^  --([a-z0-9_]+)=(.*)$", r.stdout, re.M)}


def test_chart_defaults_match_binary(helm, execmon_bin):
    """values.yaml's defaults for agent and Kafka settings are the binary's
    own defaults (the chart renders them explicitly)."""
    defaults = binary_defaults(execmon_bin)
    docs = helm.render(values={"kafka": {"enabled": True, "brokers": ["k:9092"]}})
    compared = set()
    for a in rendered_args(docs)[1:]:
        name, value = a[2:].split("=", 1)
        name = name.replace("-", "_")
        if name in ("node", "metrics_address", "policies", "kafka_brokers", "kafka_property"):
            continue  # set for the pod on purpose
        assert name in defaults, name
        assert defaults[name] == value, (name, defaults[name], value)
        compared.add(name)
    assert {"ring_buffer_mb", "cache_min_age", "kafka_queue_max_bytes",
            "kafka_flush_timeout", "kafka_topic"} <= compared, compared


# --- policies -------------------------------------------------------------

def write_policy_dir(docs, root):
    """The policy directory as the pod sees it: ConfigMap data mapped through
    the volume's items."""
    ds, c = agent_container(docs)
    cm = find(docs, "ConfigMap", "-policies")
    vol = next(v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "policies")
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    items = {i["key"]: i["path"] for i in vol["configMap"].get("items", [])}
    assert set(items) == set(cm.get("data") or {}), "every key is projected"
    for key, content in (cm.get("data") or {}).items():
        p = root / items[key]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    mount = next(m for m in c["volumeMounts"] if m["name"] == "policies")
    assert f"--policies={mount['mountPath']}" in c["args"]
    assert mount["readOnly"] is True
    return sum(1 for k in items.values() if k.endswith((".yaml", ".yml")))


@pytest.mark.parametrize("variant", ["default", "all"])
def test_policy_configmap_passes_lint(rendered, execmon_bin, tmp_path, variant):
    n_files = write_policy_dir(rendered(variant)[1], tmp_path)
    assert n_files >= 1
    r = subprocess.run([str(execmon_bin), "policy", "lint", str(tmp_path), "--format=json"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    r = subprocess.run([str(execmon_bin), "policy", "lint", str(tmp_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    m = re.search(r"(\d+) policies OK", r.stdout)
    assert m and int(m.group(1)) >= n_files, r.stdout
    if variant == "all":  # the repository's samples are among them
        for sample in sample_policies():
            assert (tmp_path / sample).exists(), sample


def test_policies_hot_reload_without_restart(rendered):
    """Policy changes must reach the agent through the ConfigMap volume's
    ..data swap, not a pod restart: no policy checksum on the pod template,
    and the volume is a plain ConfigMap volume (not subPath, which kubelet
    never updates)."""
    for variant in ("default", "all"):
        ds, c = agent_container(rendered(variant)[1])
        ann = ds["spec"]["template"]["metadata"].get("annotations") or {}
        assert not any("polic" in k for k in ann), ann
        mount = next(m for m in c["volumeMounts"] if m["name"] == "policies")
        assert "subPath" not in mount


def test_default_policies_never_kill(rendered):
    _, docs = rendered("default")
    cm = find(docs, "ConfigMap", "-policies")
    for key, content in cm["data"].items():
        if key.endswith(".yaml"):
            for doc in yaml.safe_load_all(content):
                assert doc["spec"]["mode"] == "audit", key


# --- security posture -----------------------------------------------------

def caps(c):
    return c["securityContext"].get("capabilities", {})


def test_least_privilege_by_default(rendered):
    ds, c = agent_container(rendered("default")[1])
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostIPC")
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert caps(c)["drop"] == ["ALL"]
    assert caps(c)["add"] == ["BPF", "PERFMON", "SYS_RESOURCE", "DAC_READ_SEARCH"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not any("hostPort" in p for p in c["ports"])


def test_enforcement_and_sysadmin_options(rendered):
    _, c = agent_container(rendered("all")[1])
    assert caps(c)["add"] == ["BPF", "PERFMON", "SYS_RESOURCE", "DAC_READ_SEARCH", "KILL",
                              "SYS_ADMIN"]
    assert caps(c)["drop"] == ["ALL"]


def test_capabilities_can_be_trimmed(helm):
    """The minimum the agent needs on 6.1+ kernels: BPF and PERFMON."""
    docs = helm.render(values={"securityContext": {"sysResource": False, "dacReadSearch": False}})
    _, c = agent_container(docs)
    assert caps(c)["add"] == ["BPF", "PERFMON"]


def test_privileged_switch(rendered):
    _, c = agent_container(rendered("privileged")[1])
    sc = c["securityContext"]
    assert sc["privileged"] is True
    # The API rejects allowPrivilegeEscalation=false with privileged=true.
    assert "allowPrivilegeEscalation" not in sc and "capabilities" not in sc
    assert sc["readOnlyRootFilesystem"] is True


def test_host_network_switch(helm):
    """hostNetwork (tests/node runs the agent so: broker on the node's
    loopback, no kube-proxy) comes with the DNS policy that keeps cluster
    DNS; the metrics port stays a plain container port (no hostPort)."""
    text = helm.template(helm.values_file({"hostNetwork": True})).stdout
    ds, c = agent_container([d for d in yaml.safe_load_all(text) if d])
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert not any("hostPort" in p for p in c["ports"])


def test_host_mounts_read_only_and_no_bpffs(rendered):
    ds, c = agent_container(rendered("default")[1])
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    host = {v["hostPath"]["path"]: n for n, v in vols.items() if "hostPath" in v}
    assert set(host) == {"/sys/kernel/btf", "/sys/fs/cgroup"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for name in host.values():
        assert mounts[name]["readOnly"] is True
    assert not any("/sys/fs/bpf" in m["mountPath"] for m in c["volumeMounts"])
    _, c = agent_container(rendered("minimal")[1])
    assert [m["name"] for m in c["volumeMounts"]] == ["policies"]


def test_build_id_indexes_volume(rendered):
    # buildIdIndexes.volume: mounted read-only and passed as --index; by
    # default nothing of it renders.
    ds, c = agent_container(rendered("all")[1])
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert vols["build-id-indexes"] == {"name": "build-id-indexes",
                                        "configMap": {"name": "web-indexes"}}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "build-id-indexes")
    assert mount == {"name": "build-id-indexes", "mountPath": "/etc/execmon/indexes",
                     "readOnly": True}
    assert "--index=/etc/execmon/indexes" in c["args"]
    ds, c = agent_container(rendered("default")[1])
    assert not any(a.startswith("--index") for a in c["args"])
    assert "build-id-indexes" not in {v["name"] for v in ds["spec"]["template"]["spec"]["volumes"]}


def test_node_name_probes_and_metrics(rendered):
    for variant in ("default", "all"):
        docs = rendered(variant)[1]
        ds, c = agent_container(docs)
        env = {e["name"]: e for e in c["env"]}
        assert env["EXECMON_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        assert "--node=$(EXECMON_NODE_NAME)" in c["args"]
        port = c["ports"][0]
        assert port["name"] == "metrics"
        addr = next(a for a in c["args"] if a.startswith("--metrics-address="))
        assert addr.endswith(f":{port['containerPort']}")
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        svc = find(docs, "Service", "-metrics")
        assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
        sel = svc["spec"]["selector"]
        labels = ds["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in sel.items())


def test_scheduling_defaults(rendered):
    ds, c = agent_container(rendered("default")[1])
    pod = ds["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_kafka_credentials_from_secret(rendered):
    """Default (flagfile): the Secret reaches only the init container, which
    writes a flag file on a memory volume; the agent's command line holds
    no credential. args: $(VAR) references to env from the Secret."""
    text, docs = rendered("all")
    ds, c = agent_container(docs)
    pod = ds["spec"]["template"]["spec"]
    secret = find(docs, "Secret", "-kafka")
    password = yaml.safe_load(VALUES_ALL.read_text())["kafka"]["sasl"]["password"]
    assert base64.b64decode(secret["data"]["pass"]).decode() == password
    assert password not in text, "the password appears outside the Secret"
    init = pod["initContainers"][0]
    env = {e["name"]: e for e in init["env"]}
    for var, key in (("KAFKA_USERNAME", "user"), ("KAFKA_PASSWORD", "pass")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"],
                                                         "key": key}
    assert not [e for e in c["env"] if e["name"].startswith("KAFKA_")]
    assert not [a for a in c["args"] if "sasl.username" in a or "sasl.password" in a]
    flagfile = next(a for a in c["args"] if a.startswith("--flagfile="))
    vol = next(v for v in pod["volumes"] if v["name"] == "kafka-credentials")
    assert vol["emptyDir"]["medium"] == "Memory"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "kafka-credentials")
    assert mount["readOnly"] and flagfile.split("=", 1)[1].startswith(mount["mountPath"] + "/")
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "checksum/kafka-secret" in ds["spec"]["template"]["metadata"]["annotations"]
    assert "--kafka-property=security.protocol=SASL_SSL" in c["args"]
    grace = pod["terminationGracePeriodSeconds"]
    flush = next(a for a in c["args"] if a.startswith("--kafka-flush-timeout="))
    assert grace > int(flush.split("=")[1].rstrip("s"))

    _, docs = rendered("existing-objects")  # credentialsIn: args
    assert not [d for d in docs if d["kind"] == "Secret"]
    ds, c = agent_container(docs)
    assert not ds["spec"]["template"]["spec"].get("initContainers")
    env = {e["name"]: e for e in c["env"]}
    for var in ("KAFKA_USERNAME", "KAFKA_PASSWORD"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "kafka-credentials"
        assert f"--kafka-property=sasl.{var.split('_')[1].lower()}=$({var})" in c["args"]
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-policies")]


def test_servicemonitor_rule_and_dashboard(rendered, chart):
    _, docs = rendered("all")
    svc = find(docs, "Service", "-metrics")
    sm = find(docs, "ServiceMonitor")
    sel = sm["spec"]["selector"]["matchLabels"]
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items())
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    relabel = sm["spec"]["endpoints"][0]["relabelings"]
    assert {"targetLabel": "job", "replacement": "execmon", "action": "replace"} in relabel

    rule = find(docs, "PrometheusRule")
    source = yaml.safe_load((chart / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]

    dash = find(docs, "ConfigMap", "-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = json.loads((chart / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dash["data"]["execmon.json"]) == source


def test_notes_render(helm, tmp_path):
    """NOTES.txt renders with default and all-on values. (`helm install
    --dry-run` needs a cluster, so a copy of the chart renders the notes
    into a ConfigMap, with the same template engine and values.)"""
    import shutil
    copy = tmp_path / "execmon"
    shutil.copytree(helm.chart, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "_notes.tpl").write_text('{{- define "notes" -}}' + notes + "{{- end -}}")
    (copy / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        "data:\n  notes: {{ include \"notes\" . | quote }}\n")
    for files in ([], [VALUES_ALL]):
        args = ["template", "rel", str(copy), "-n", "security", "--kube-version", "1.31.0",
                "--show-only", "templates/notes.yaml"]
        for f in files:
            args += ["-f", str(f)]
        text = yaml.safe_load(helm.run(*args).stdout)["data"]["notes"]
        assert "kubectl -n security logs" in text
        assert "/metrics" in text and "policy lint" in text
        assert "<no value>" not in text
        if files:
            assert "topic security.execmon.<type>" in text
            assert "WARNING" not in text  # kill policies with enforcement on
    text = yaml.safe_load(helm.run(
        "template", "rel", str(copy), "--kube-version", "1.31.0", "--show-only",
        "templates/notes.yaml", "-f", str(helm.values_file(
            {"policies": {"k.yaml": "spec:\n  mode: enforce\n  action: kill\n"}}))).stdout)
    assert "WARNING: policies with `action: kill` (k.yaml)" in text["data"]["notes"]
