"""docs/events.md and the published JSON Schema (docs/events.schema.json,
what `execmon schema` prints) describe the same events."""
import json
import re

import event_schema
from conftest import REPO

DOC = (REPO / "docs" / "events.md").read_text()
SCHEMA = event_schema.SCHEMA
DEFS = SCHEMA["$defs"]


def table(heading_re):
    """{field: meaning} of the first markdown table after a heading."""
    m = re.search(heading_re, DOC, re.M)
    assert m, heading_re
    rows = {}
    for line in DOC[m.end():].splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([a-z0-9_.]+)`", cells[0])
        for n in names:
            rows[n] = cells[-1]
    return rows


def test_events_md_links_the_schema():
    assert "(events.schema.json)" in DOC
    assert "execmon schema" in DOC


def test_common_fields_match():
    documented = set(table(r"^## Common fields")) - {"process."}
    in_schema = set(DEFS["exec"]["properties"]) - {"process", "parent", "verdict"}
    assert documented == in_schema
    for t in ("exec", "exit", "sweep", "snapshot"):
        assert in_schema <= set(DEFS[t]["properties"]), t
        assert DEFS[t]["properties"]["type"] == {"const": t}


def test_exec_process_fields_match():
    documented = set(table(r"^\| `process\.` field"))
    # One row documents uid/gid/euid/egid and mnt_ns/pid_ns together.
    in_schema = set(DEFS["exec"]["properties"]["process"]["properties"])
    assert documented == in_schema, (documented ^ in_schema)


def test_enumerations_match():
    rows = table(r"^\| `process\.` field")
    errors = DEFS["build_id_error"]["oneOf"][0]["enum"]
    assert set(re.findall(r"`([a-z_]+)`", rows["build_id_error"])) == set(errors)
    sources = DEFS["build_id_source"]["enum"]
    assert set(re.findall(r"`([a-z_]+)`", rows["build_id_source"])) == set(sources)
    common = table(r"^## Common fields")
    assert set(re.findall(r"`([a-z]+)`", common["type"])) == {"exec", "exit", "sweep", "snapshot"}


def test_every_example_in_events_md_is_valid():
    examples = re.findall(r"```json\n(.*?)```", DOC, re.S)
    assert len(examples) >= 4
    seen = set()
    for text in examples:
        doc = json.loads(text)
        event_schema.validate(doc)
        seen.add(doc["type"])
    assert seen == {"exec", "exit", "sweep", "snapshot"}


def test_opentelemetry_names_are_documented():
    # The build ID as profilers name it (OpenTelemetry semantic conventions).
    otel = table(r"^## OpenTelemetry")
    assert otel["process.executable.build_id.gnu"] == "`process.build_id`"
    assert "process.executable.build_id.gnu" in json.dumps(DEFS["build_id"])
