"""The JSON Schemas of `accelsim schema` accept every shipped file, reject bad ones, and
are the files committed in schemas/ (so those cannot go stale).

Validation is by the `jsonschema` package's draft-07 validator, as an editor would do
it, over each file's YAML as written (``extends:`` and all, merge keys expanded).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from accelsim.config.files import guess_kind
from accelsim.config.json_schema import SCHEMA_KINDS, json_schema
from accelsim.config.yamlio import load_yaml
from clirunner import assert_ok, invoke

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SHIPPED = sorted(
    [
        *(ROOT / "hardware").glob("*.yaml"),
        *(ROOT / "workloads").rglob("*.yaml"),
        *(ROOT / "validation" / "reference").glob("*.yaml"),
    ]
)
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def validator(kind: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json_schema(kind))


def errors(kind: str, data: Any) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(data)]


@pytest.mark.parametrize("kind", list(SCHEMA_KINDS))
def test_committed_schema_is_what_the_command_prints(kind: str) -> None:
    result = invoke("schema", kind)
    assert_ok(result)
    committed = (SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8")
    assert result.stdout == committed, (
        f"schemas/{kind}.schema.json is stale: accelsim schema {kind} -o schemas/{kind}.schema.json"
    )
    jsonschema.Draft7Validator.check_schema(json.loads(committed))


def test_every_kind_of_shipped_file_is_covered() -> None:
    kinds = {guess_kind(path) for path in SHIPPED}
    assert kinds == set(SCHEMA_KINDS)
    assert len(SHIPPED) >= 30


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_validates_against_its_schema(path: Path) -> None:
    kind = guess_kind(path)
    assert errors(kind, load_yaml(path).data) == []
    # Its first line points an editor at the committed schema of its kind.
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"{path.name}: first line is not a yaml-language-server $schema line"
    target = (path.parent / match.group(1)).resolve()
    assert target == (SCHEMAS / f"{kind}.schema.json").resolve()


CHIP = load_yaml(ROOT / "hardware" / "mtia-like-gen2.yaml").data


def test_a_file_without_extends_needs_every_required_field() -> None:
    chip = {k: v for k, v in CHIP.items() if k != "compute"}
    assert errors("chip", chip) == ["'compute' is a required property"]
    # name is optional: the file name stands in for it.
    assert errors("chip", {k: v for k, v in CHIP.items() if k != "name"}) == []


def test_a_file_with_extends_may_leave_out_any_field_but_not_misspell_one() -> None:
    assert errors("chip", {"extends": "mtia-like-gen2", "power": {"tdp_w": "90 W"}}) == []
    assert errors("scenario", {"extends": "x.yaml", "pools": {"p": {"count": 4}}}) == []
    assert errors("chip", {"extends": "mtia-like-gen2", "power": {"tdp": 90}}) == [
        "Additional properties are not allowed ('tdp' was unexpected)"
    ]


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("chip", {"hypothetical": "yes"}, "'yes' is not of type 'boolean'"),
        ("chip", {"tdp_w": 3}, "Additional properties are not allowed ('tdp_w' was unexpected)"),
        ("study", {"base": "x", "seeds": {"replicates": True}}, "True is not of type 'integer'"),
        ("study", {"base": "x", "axes": [{"grid": {"a..b": [1]}}]}, "is not valid under"),
    ],
)
def test_bad_values_are_rejected(kind: str, change: dict[str, Any], message: str) -> None:
    data = {**CHIP, **change} if kind == "chip" else change
    found = errors(kind, data)
    assert found and any(message in m for m in found), found


def test_a_model_is_either_kind() -> None:
    llm = load_yaml(ROOT / "workloads" / "models" / "llm-dense-8b.yaml").data
    assert errors("model", llm) == []
    assert errors("model", {**llm, "kind": "ranking"})  # an LLM's fields on a ranking model
    assert errors("model", {**llm, "kind": "diffusion"})
