"""YAML reading with locations, extends, overrides and validation errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from accelsim.config.loader import load_chip, load_document, load_scenario, validate
from accelsim.config.schema import Chip
from accelsim.config.yamlio import apply_override, parse_yaml
from accelsim.errors import ConfigError
from helpers import CHIP

# A guard against runaway work, not a speed test: a bomb that got through would take
# minutes to hours of CPU; a refused one takes well under a second. Machines are noisy,
# so the bound is far from both.
RUNAWAY_CPU_S = 10.0


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_every_value_knows_its_line() -> None:
    doc = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert doc.loc(("a", "b")).line == 2
    assert doc.loc(("a", "c", 1)).line == 5
    assert doc.loc(("a", "missing")).line == 1  # falls back to the nearest known parent


def test_merge_keys_work_and_duplicate_keys_are_refused() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["other"] == {"x": 1, "y": 3}
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert problems(info) == ["f.yaml:3: a: duplicate key 'a'"]


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system ['echo hi']\n",
        "x: !!python/name:os.system\n",
        "!!python/object:collections.OrderedDict {a: 1}\n",
        "x: !custom 3\n",
    ],
)
def test_object_constructing_tags_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "evil.yaml")
    assert "is not allowed" in str(info.value) or "could not determine" in str(info.value)


def test_alias_bomb_fails_fast() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    start = time.process_time()
    with pytest.raises(ConfigError) as info:
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert time.process_time() - start < RUNAWAY_CPU_S
    assert "expands to more than" in str(info.value)


def test_override_sets_nested_fields_and_list_items() -> None:
    doc = parse_yaml("a:\n  b: [1, 2]\n", "f.yaml")
    doc = apply_override(doc, "a.b.1=5 ms")
    doc = apply_override(doc, "a.c.d=[1, 2]")
    assert doc.data == {"a": {"b": [1, "5 ms"], "c": {"d": [1, 2]}}}
    assert doc.loc(("a", "b", 1)).source == "--set a.b.1=5 ms"
    with pytest.raises(ConfigError, match="expected PATH=VALUE"):
        apply_override(doc, "a.b")
    with pytest.raises(ConfigError, match="no list item"):
        apply_override(doc, "a.b.7=1")


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validation_errors_point_at_file_line_and_field(tmp_path: Path) -> None:
    data = {**CHIP}
    data["memory"] = {**CHIP["memory"], "dram": {**CHIP["memory"]["dram"]}}
    data["memory"]["dram"]["bandwidth_bytes_per_s"] = "400 W"
    path = write(tmp_path / "bad.yaml", data)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "400 W" in text)
    with pytest.raises(ConfigError) as info:
        validate(load_document(path, "chip"), Chip)
    assert problems(info) == [
        f"{path}:{line}: memory.dram.bandwidth_bytes_per_s: '400 W' is in W, "
        "expected bytes per second (e.g. '3.2 TB/s')"
    ]


def test_extends_inherits_and_overrides_with_locations_from_each_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", CHIP)
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\npower:\n  tdp_w: 70 W\n  idle_w: -1\n")
    with pytest.raises(ConfigError) as info:
        load_chip(str(child))
    assert problems(info) == [
        f"{child}:4: power.idle_w: Input should be greater than or equal to 0 (got -1)"
    ]
    child.write_text("extends: base.yaml\npower:\n  tdp_w: 70 W\n")
    chip = load_chip(str(child))
    assert chip.name == "child"
    assert chip.power.tdp_w == 70.0
    assert chip.power.idle_w == CHIP["power"]["idle_w"]
    assert chip.compute.clock_hz == CHIP["compute"]["clock_hz"]


def test_circular_extends_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"circular extends: a\.yaml -> b\.yaml -> a\.yaml"):
        load_chip(str(tmp_path / "a.yaml"))


def test_scenario_references_are_checked_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "workloads:\n"
        "  w:\n"
        "    model: no-such-model\n"
        "    traffic: {kind: poisson, rate_per_s: 10}\n"
        "    items_per_query: {kind: fixed, value: 1}\n"
        "pools:\n"
        "  p:\n"
        "    chip: no-such-chip\n"
        "    count: 1\n"
        "    serves: [w, ghost]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    found = problems(info)
    assert found[0].startswith(f"{path}:10: pools.p.serves.1: unknown workload 'ghost'")
    assert found[1].startswith(f"{path}:8: pools.p.chip: no chip named 'no-such-chip' (known: ")
    assert found[2].startswith(f"{path}:3: workloads.w.model: no model named 'no-such-model'")


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {**CHIP, "tdp": 5})
    with pytest.raises(ConfigError) as info:
        load_chip(str(path))
    assert "tdp: unknown field" in str(info.value)


def test_non_utf8_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: x\ndescription: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_chip(str(path))
    assert problems(info) == [f"{path}:2: not valid UTF-8 (byte 0xe9)"]
