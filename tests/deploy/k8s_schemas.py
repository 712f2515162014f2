#!/usr/bin/env python3
"""Strict JSON schemas for kubeconform, made offline from published specs.

kubeconform normally downloads its schemas from GitHub, which this project's
machines cannot reach. The same information is in Go modules the module
proxy serves:

* Kubernetes: k8s.io/kubernetes@vX.Y.Z has api/openapi-spec/v3/*.json, the
  OpenAPI v3 documents the API server itself publishes for that release
  (components.schemas, with x-kubernetes-group-version-kind per kind).
* prometheus-operator CRDs (ServiceMonitor, PrometheusRule): the
  github.com/prometheus-operator/prometheus-operator module's
  example/prometheus-operator-crd/*.yaml (openAPIV3Schema per version).

This writes one standalone draft-07 schema per kind, in kubeconform's
layouts:

  <out>/<vX.Y.Z>-standalone-strict/<kind><-group-prefix>-<version>.json
  <out>/crds/<group>/<kind>_<version>.json

"strict" like kubeconform's own: every object schema that lists its
properties and says nothing about others gets additionalProperties: false
(an unknown or misspelt field is an error), except where Kubernetes keeps
unknown fields (x-kubernetes-preserve-unknown-fields). References stay
references (into a local "definitions" section holding only what the kind
reaches), so recursive types need no expansion.

usage: k8s_schemas.py k8s ZIP VERSION OUT
       k8s_schemas.py crds OUT CRD.yaml...
"""
import json
import os
import re
import sys
import zipfile

REF_PREFIX = "#/components/schemas/"


def strictify(node):
    """Adds additionalProperties: false where Kubernetes would reject
    unknown fields; converts x-kubernetes-int-or-string. In place."""
    if isinstance(node, list):
        for n in node:
            strictify(n)
        return
    if not isinstance(node, dict):
        return
    if node.get("x-kubernetes-int-or-string") and "type" not in node \
            and "oneOf" not in node and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "enum" or key == "default" or key == "example":
            continue  # data, not schemas
        if key == "properties" or key == "definitions" or key == "patternProperties":
            for sub in value.values():
                strictify(sub)
        else:
            strictify(value)


def rewrite_refs(node):
    if isinstance(node, list):
        return [rewrite_refs(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
            out[key] = "#/definitions/" + value[len(REF_PREFIX):]
        elif key in ("enum", "default", "example"):
            out[key] = value
        else:
            out[key] = rewrite_refs(value)
    return out


def refs_of(node, acc):
    if isinstance(node, list):
        for n in node:
            refs_of(n, acc)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                acc.add(value[len(REF_PREFIX):])
            elif key not in ("enum", "default", "example"):
                refs_of(value, acc)


def closure(schemas, name):
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        if n not in schemas:
            raise SystemExit(f"unresolved $ref {n}")
        seen.add(n)
        acc = set()
        refs_of(schemas[n], acc)
        todo.extend(acc - seen)
    return seen


def kind_file(kind, group, version):
    # kubeconform: "-" + first label of the group (none for core) + "-" + version.
    prefix = "-" + group.split(".")[0].lower() if group else ""
    return f"{kind.lower()}{prefix}-{version.lower()}.json"


def k8s(zip_path, k8s_version, out):
    version = k8s_version if k8s_version.startswith("v") else "v" + k8s_version
    target = os.path.join(out, f"{version}-standalone-strict")
    os.makedirs(target, exist_ok=True)
    written = 0
    with zipfile.ZipFile(zip_path) as z:
        names = [n for n in z.namelist()
                 if re.search(r"/api/openapi-spec/v3/(api|apis)__.+_openapi\.json$", n)]
        if not names:
            raise SystemExit(f"{zip_path}: no api/openapi-spec/v3 documents")
        for name in sorted(names):
            doc = json.loads(z.read(name))
            schemas = doc.get("components", {}).get("schemas", {})
            for sname, schema in schemas.items():
                for gvk in schema.get("x-kubernetes-group-version-kind", []):
                    if not name.endswith(_doc_suffix(gvk["group"], gvk["version"])):
                        continue  # each kind from its own group-version document
                    if gvk["kind"].endswith("List") or sname.endswith("List"):
                        continue
                    defs = {n: rewrite_refs(schemas[n]) for n in closure(schemas, sname)
                            if n != sname}
                    top = rewrite_refs(schema)
                    top = dict(top)
                    top["$schema"] = "http://json-schema.org/draft-07/schema#"
                    top["definitions"] = defs
                    strictify(top)
                    path = os.path.join(target, kind_file(gvk["kind"], gvk["group"],
                                                          gvk["version"]))
                    with open(path, "w") as f:
                        json.dump(top, f, separators=(",", ":"), sort_keys=True)
                    written += 1
    if written == 0:
        raise SystemExit("no kinds found")
    print(f"{target}: {written} kinds")


def _doc_suffix(group, version):
    if group == "":
        return f"/api__{version}_openapi.json"
    return f"/apis__{group}__{version}_openapi.json"


def crds(out, paths):
    import yaml  # PyYAML (Debian python3-yaml)
    written = 0
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group = doc["spec"]["group"]
                kind = doc["spec"]["names"]["kind"]
                for v in doc["spec"]["versions"]:
                    schema = v.get("schema", {}).get("openAPIV3Schema")
                    if not schema or not v.get("served", True):
                        continue
                    schema = json.loads(json.dumps(schema))
                    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                    strictify(schema)
                    # metadata is ObjectMeta, which the CRD does not describe.
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    d = os.path.join(out, "crds", group)
                    os.makedirs(d, exist_ok=True)
                    with open(os.path.join(d, f"{kind.lower()}_{v['name']}.json"), "w") as f:
                        json.dump(schema, f, separators=(",", ":"), sort_keys=True)
                    written += 1
    if written == 0:
        raise SystemExit("no CRD versions found")
    print(f"{out}/crds: {written} kind versions")


def main(argv):
    if len(argv) == 5 and argv[1] == "k8s":
        k8s(argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[1] == "crds":
        crds(argv[2], argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
