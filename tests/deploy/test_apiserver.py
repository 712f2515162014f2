"""The chart's manifests against a real kube-apiserver (the control plane of
tests/k8s: etcd from Debian, kube-apiserver built from its Go module):
server-side dry-run creation with strict field validation runs the API
server's own defaulting, validation (names, enums, cross-field rules that no
schema carries) and admission (priority classes, Pod Security), and the
prometheus-operator CRDs validate ServiceMonitor and PrometheusRule.

Skipped when the kube-apiserver binary has not been built yet (the
Kubernetes tests build it once, which takes far longer than this suite may)
or etcd is not installed."""
import os
import sys

import pytest
import yaml

from deploylib import REPO, VARIANTS, agent_container, variant_args

# The control plane of the Kubernetes tests (tests/k8s/k8s_cluster.py).
sys.path.insert(0, str(REPO / "tests" / "k8s"))
try:
    import k8s_cluster as cluster  # noqa: E402
except ImportError:
    cluster = None
HARNESS = ("TOOLS", "KUBE_VERSION", "ETCD", "Pki", "Etcd", "ApiServer", "Api", "Process",
           "wait_for")

RELEASE_NS = "security"  # what the helm fixture renders into
OTHER_NS = ("monitoring",)

# kind -> (API path prefix, plural, namespaced)
RESOURCES = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "ServiceMonitor": ("/apis/monitoring.coreos.com/v1", "servicemonitors", True),
    "PrometheusRule": ("/apis/monitoring.coreos.com/v1", "prometheusrules", True),
}


@pytest.fixture(scope="module")
def apiserver(tools, tmp_path_factory):
    if cluster is None or not all(hasattr(cluster, n) for n in HARNESS):
        pytest.skip("tests/k8s/k8s_cluster.py (etcd + kube-apiserver harness) not available")
    binary = cluster.KUBE_BIN / "kube-apiserver"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"{binary} not built (tests/k8s builds it: tests/k8s/build_kube.sh)")
    if not os.access(cluster.ETCD, os.X_OK):
        pytest.skip("etcd not installed (Debian etcd-server)")
    work = tmp_path_factory.mktemp("apiserver")
    pki = cluster.Pki(work / "pki")
    etcd = cluster.Etcd(work)
    server = cluster.ApiServer(binary, work, pki, etcd)
    # Real clusters run kube-apiserver with --allow-privileged=true (kubeadm
    # and managed offerings do); its default, false, would reject the
    # chart's securityContext.privileged option outright.
    process = cluster.Process
    cluster.Process = lambda name, argv, log: process(
        name, argv + ["--allow-privileged=true"] if argv[0] == str(binary) else argv, log)
    try:
        try:
            server.start()
        finally:
            cluster.Process = process
        api = cluster.Api(server)
        for ns in (RELEASE_NS, *OTHER_NS):
            api.ensure_namespace(ns)
        crds = []
        for f in sorted(os.listdir(tools["EXECMON_CRD_YAMLS"])):
            with open(os.path.join(tools["EXECMON_CRD_YAMLS"], f)) as fh:
                for doc in yaml.safe_load_all(fh):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        server.request("POST", "/apis/apiextensions.k8s.io/v1/"
                                       "customresourcedefinitions", doc)
                        crds.append(doc["metadata"]["name"])
        assert len(crds) == 2, crds

        def established():
            for name in crds:
                _, crd = server.request(
                    "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
                if conds.get("Established") != "True":
                    return False
            # Discovery must serve the new group before creates work.
            code, _ = server.request("GET", "/apis/monitoring.coreos.com/v1", check=False)
            return code == 200
        cluster.wait_for(established, 60, interval=0.5, what="CRDs established")
        yield server
    finally:
        server.stop()
        etcd.stop()


def dry_run_create(server, obj, namespace=None):
    prefix, plural, namespaced = RESOURCES[obj["kind"]]
    ns = namespace or obj["metadata"].get("namespace")
    path = f"{prefix}/namespaces/{ns}/{plural}" if namespaced else f"{prefix}/{plural}"
    return server.request("POST", path + "?dryRun=All&fieldValidation=Strict", obj,
                          check=False)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_server_side_dry_run(apiserver, helm, variant):
    docs = helm.render(*variant_args(helm, variant))
    assert docs
    for obj in docs:
        assert obj["kind"] in RESOURCES, obj["kind"]
        code, body = dry_run_create(apiserver, obj)
        assert code == 201, f"{obj['kind']}/{obj['metadata']['name']}: HTTP {code}: {body}"


def test_strict_field_validation_is_on(apiserver, helm):
    """The dry run rejects an unknown field (guards the test itself)."""
    docs = helm.render()
    ds, c = agent_container(docs)
    c["securityContext"]["readOnlyRootFileSystem"] = True
    code, body = dry_run_create(apiserver, ds)
    assert code == 400 and "readOnlyRootFileSystem" in str(body), (code, body)


def pod_of(docs, namespace):
    ds, _ = agent_container(docs)
    tpl = ds["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "execmon-pss-probe", "namespace": namespace,
                         "labels": tpl["metadata"]["labels"]},
            "spec": dict(tpl["spec"], nodeName="node-1")}


def test_pod_security_admission(apiserver, helm):
    """What docs/operations.md says: the agent's pod is beyond the
    "baseline" Pod Security level (hostPID, hostPath, capabilities), and is
    admitted where the namespace allows "privileged"."""
    docs = helm.render()
    for ns, level in (("pss-baseline", "baseline"), ("pss-privileged", "privileged")):
        apiserver.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {
                "pod-security.kubernetes.io/enforce": level}}}, check=False)
    code, body = dry_run_create(apiserver, pod_of(docs, "pss-baseline"))
    assert code == 403, (code, body)
    msg = str(body)
    for what in ("hostPID", "hostPath", "capabilities"):
        assert what in msg, msg
    code, body = dry_run_create(apiserver, pod_of(docs, "pss-privileged"))
    assert code == 201, (code, body)
