"""JSON Schema (draft-07) of each kind of configuration file, for editors and validators.

The schemas are derived from the pydantic models that load the files, then shaped to
accept exactly what the loader accepts:

- ``name`` is optional at the top (a file without one takes its file name);
- ``extends: NAME-OR-PATH`` is allowed at the top, and a file that has it may leave out
  any field, at any depth (the loader deep-merges it onto its parent and validates the
  result); without ``extends:`` every required field is required;
- draft-07 keywords only (``definitions``, tuple ``items``), since the YAML language
  server, and most editors, read draft-07 and below.

Values with units (``3.2 TB/s``) are strings to the schema: the unit's kind is checked
when the file is loaded.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from accelsim.config.fleet_plan import Plan
from accelsim.config.schema import AnyModel, Chip, Scenario
from accelsim.config.study import Study

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

SCHEMA_KINDS: dict[str, tuple[Any, str]] = {
    "chip": (Chip, "An accelsim chip profile (hardware/NAME.yaml)."),
    "model": (AnyModel, "An accelsim ranking or LLM model (workloads/models/NAME.yaml)."),
    "scenario": (Scenario, "An accelsim scenario (workloads/scenarios/NAME.yaml)."),
    "study": (Study, "An accelsim study: a sweep over a base scenario (workloads/studies/)."),
    "plan": (Plan, "An accelsim fleet plan (workloads/plans/NAME.yaml)."),
}

_EXTENDS = {
    "type": "string",
    "minLength": 1,
    "description": "Start from another file of this kind (a shipped name, or a path "
    "relative to this file) and override any of its fields.",
}
_PARTIAL = "Partial"


def json_schema(kind: str) -> dict[str, Any]:
    """The draft-07 JSON Schema of one kind of file (``chip``, ``model``, ``scenario``
    or ``study``); raises KeyError for any other."""
    model, description = SCHEMA_KINDS[kind]
    raw = TypeAdapter(model).json_schema(ref_template="#/definitions/{model}")
    definitions: dict[str, Any] = raw.pop("$defs", {})
    root_name = kind.capitalize()
    if "properties" in raw:  # a model class: pydantic inlines it at the top
        tops = [root_name]
        definitions[root_name] = raw
    else:  # a union of model classes (ranking or LLM model)
        tops = [ref["$ref"].rsplit("/", 1)[-1] for ref in raw.get("oneOf", raw.get("anyOf", []))]
        definitions[root_name] = {"anyOf": [{"$ref": f"#/definitions/{t}"} for t in tops]}
    for top in tops:
        node = definitions[top]
        node["properties"] = {"extends": _EXTENDS, **node["properties"]}
        node["required"] = [f for f in node.get("required", []) if f != "name"]
    definitions = {name: _draft_07(node) for name, node in definitions.items()}
    partial = {_PARTIAL + name: _partial(node) for name, node in definitions.items()}
    return {
        "$schema": DRAFT_07,
        "title": f"accelsim {kind}",
        "description": description,
        "if": {"type": "object", "required": ["extends"]},
        "then": {"$ref": f"#/definitions/{_PARTIAL}{root_name}"},
        "else": {"$ref": f"#/definitions/{root_name}"},
        "definitions": {**definitions, **partial},
    }


def _draft_07(node: Any) -> Any:
    """Rewrite pydantic's draft 2020-12 output in draft-07 terms."""
    if isinstance(node, list):
        return [_draft_07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _draft_07(value) for key, value in node.items() if key != "discriminator"}
    if "prefixItems" in out:  # a fixed-length tuple
        out["items"] = out.pop("prefixItems")
        out["additionalItems"] = False
    if "patternProperties" in out:  # a mapping whose keys must match a pattern
        out.setdefault("additionalProperties", False)
    if "oneOf" in out:  # members may overlap once fields are optional: any one will do
        out["anyOf"] = out.pop("oneOf")
    if "$ref" in out and set(out) - {"$ref", "description", "title"}:
        # draft-07 ignores keywords beside $ref: keep them in force through allOf.
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _partial(node: Any) -> Any:
    """A definition with nothing required, at any depth, for a file that ``extends:``."""
    if isinstance(node, list):
        return [_partial(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _partial(value)
        for key, value in node.items()
        if not (key == "required" and isinstance(value, list))
    }
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/definitions/", f"#/definitions/{_PARTIAL}")
    return out
