"""Every event the agent emits, validated against the published JSON Schema
(docs/events.schema.json, what `execmon schema` prints).

Validation is strict: the published schema lets consumers accept fields
added within a schema version, but here an object with a field the schema
does not describe is an error, so the schema (and docs/events.md, which a
test keeps in sync with it) cannot fall behind the agent."""
import copy
import json
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def _strict(node):
    """A copy where every object schema with properties allows no others."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


_STRICT = _strict(copy.deepcopy(SCHEMA))
# (FORMAT_CHECKER is newer than Debian 12's jsonschema 4.10.)
_FORMATS = getattr(jsonschema.Draft202012Validator, "FORMAT_CHECKER", None) \
    or jsonschema.FormatChecker()
_VALIDATOR = jsonschema.Draft202012Validator(_STRICT, format_checker=_FORMATS)
# One validator per event type, so an error names the field, not "matches
# none of the event types".
_BY_TYPE = {
    t: jsonschema.Draft202012Validator(
        {"$schema": _STRICT["$schema"], "$defs": _STRICT["$defs"],
         "$ref": f"#/$defs/{t}"}, format_checker=_FORMATS)
    for t in ("exec", "exit", "sweep", "snapshot")}


def validate(doc):
    """Raises AssertionError naming the first violation, with the event;
    returns doc."""
    v = _BY_TYPE.get(doc.get("type")) if isinstance(doc, dict) else None
    errors = list((v or _VALIDATOR).iter_errors(doc))
    if not errors and v is not None:
        errors = list(_VALIDATOR.iter_errors(doc))  # the oneOf as published
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise AssertionError(
            f"event violates docs/events.schema.json at "
            f"{'/'.join(map(str, best.absolute_path)) or '(top)'}: "
            f"{best.message[:300]}\n{doc}")
    return doc
