"""Bad input files: exit 1, no traceback, one `error: FILE:LINE: field: message` per problem."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from clikit import (
    chip_data,
    dump,
    error_lines,
    invoke,
    line_of,
    one_error,
    scenario_data,
    write,
    write_world,
)

from accelsim.config.loader import catalog


@dataclass
class Case:
    args: tuple[object, ...]
    path: Path  # the file the error must name
    line: int
    field: str  # "" when the problem is not about one field
    words: tuple[str, ...] = ()
    others: int = 0  # further problems the same file is expected to report


def _chip_case(tmp: Path, data: dict, marker: str, field: str, *words: str) -> Case:
    path = write(tmp / "bad-chip.yaml", data)
    return Case(("hardware", "show", path), path, line_of(path, marker), field, words)


def wrong_unit(tmp: Path) -> Case:
    data = chip_data()
    data["memory"]["dram"]["bandwidth_bytes_per_s"] = "400 W"
    return _chip_case(
        tmp, data, "400 W", "memory.dram.bandwidth_bytes_per_s", "'400 W'", "bytes per second"
    )


def unknown_unit(tmp: Path) -> Case:
    data = chip_data()
    data["memory"]["dram"]["bandwidth_bytes_per_s"] = "3 TB/z"
    return _chip_case(tmp, data, "3 TB/z", "memory.dram.bandwidth_bytes_per_s", "unknown unit")


def unknown_field(tmp: Path) -> Case:
    data = chip_data()
    data["compute"]["vector_eficiency"] = data["compute"].pop("vector_efficiency")
    return _chip_case(tmp, data, "vector_eficiency", "compute.vector_eficiency", "unknown field")


def unknown_block_field(tmp: Path) -> Case:
    """A misspelt key whose value is a nested mapping: the error names the key's line."""
    data = chip_data()
    data = {("powr" if k == "power" else k): v for k, v in data.items()}
    path = write(tmp / "bad-chip.yaml", data)
    # ... and, separately, that the required `power` is missing.
    return Case(
        ("hardware", "show", path), path, line_of(path, "powr:"), "powr", ("unknown",), others=1
    )


def negative_bandwidth(tmp: Path) -> Case:
    data = chip_data()
    data["memory"]["dram"]["bandwidth_bytes_per_s"] = "-5 GB/s"
    return _chip_case(
        tmp, data, "-5 GB/s", "memory.dram.bandwidth_bytes_per_s", "greater than or equal to 1"
    )


def confidential_factor_above_one(tmp: Path) -> Case:
    data = chip_data()
    data["confidential"] = {"dram_bandwidth_factor": 1.25}
    return _chip_case(
        tmp, data, "1.25", "confidential.dram_bandwidth_factor", "less than or equal to 1"
    )


def missing_top_level_field(tmp: Path) -> Case:
    data = chip_data()
    del data["host_link"]
    return _chip_case(tmp, data, "name: test-chip", "host_link", "required")


def missing_nested_field(tmp: Path) -> Case:
    data = chip_data()
    del data["compute"]["clock_hz"]
    return _chip_case(tmp, data, "compute:", "compute.clock_hz", "required")


def duplicate_key(tmp: Path) -> Case:
    text = dump(chip_data()).replace("  clock_hz:", "  clock_hz: 2 GHz\n  clock_hz:", 1)
    path = write(tmp / "bad-chip.yaml", text)
    line = line_of(path, "clock_hz:", occurrence=2)
    return Case(("hardware", "show", path), path, line, "compute.clock_hz", ("duplicate",))


def python_tag(tmp: Path) -> Case:
    marker = tmp / "pwned"
    text = dump(chip_data()).replace(
        "name: test-chip\n",
        f'name: test-chip\ndescription: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    path = write(tmp / "bad-chip.yaml", text)
    return Case(
        ("hardware", "show", path), path, line_of(path, "!!python"), "description", ("not allowed",)
    )


def syntax_error(tmp: Path) -> Case:
    text = dump(chip_data()).replace("  gemm_efficiency:", "\tgemm_efficiency:", 1)
    path = write(tmp / "bad-chip.yaml", text)
    return Case(("hardware", "show", path), path, line_of(path, "\tgemm"), "", ("invalid YAML",))


def not_utf8(tmp: Path) -> Case:
    path = tmp / "bad-chip.yaml"
    raw = dump(chip_data()).encode().replace(b"name: test-chip\n", b"name: test-chip\n", 1)
    raw = raw.replace(b"compute:\n", b"description: caf\xe9\ncompute:\n", 1)
    path.write_bytes(raw)
    line = raw.split(b"\n").index(b"description: caf\xe9") + 1
    return Case(("hardware", "show", path), path, line, "", ("UTF-8",))


def top_level_list(tmp: Path) -> Case:
    path = write(tmp / "bad-chip.yaml", [chip_data()])
    return Case(("hardware", "show", path), path, 1, "", ("mapping",))


def missing_chip_name(tmp: Path) -> Case:
    path = write_world(tmp, chip="no-such-chip")
    return Case(
        ("run", path), path, line_of(path, "no-such-chip"), "pools.p.chip", ("'no-such-chip'",)
    )


def missing_model_path(tmp: Path) -> Case:
    path = write_world(tmp, model="models/absent.yaml")
    return Case(
        ("run", path), path, line_of(path, "absent.yaml"), "workloads.w.model", ("not found",)
    )


def unknown_served_workload(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    data["pools"]["p"]["serves"] = ["w", "ghost"]
    path = write(tmp / "scenario.yaml", data)
    return Case(("run", path), path, line_of(path, "- ghost"), "pools.p.serves.1", ("'ghost'",))


def scenario_typo(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    data["simulation"]["duraton_s"] = data["simulation"].pop("duration_s")
    path = write(tmp / "scenario.yaml", data)
    return Case(
        ("run", path), path, line_of(path, "duraton_s"), "simulation.duraton_s", ("unknown",)
    )


def d_without_power_of_d(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    data["router"] = {"policy": "least_work", "d": 3}
    path = write(tmp / "scenario.yaml", data)
    return Case(
        ("run", path), path, line_of(path, "d: 3"), "router.d", ("only power_of_d", "least_work")
    )


def power_of_d_with_no_draws(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    data["router"] = {"policy": "power_of_d", "d": 0}
    path = write(tmp / "scenario.yaml", data)
    return Case(("run", path), path, line_of(path, "d: 0"), "router.d", ("greater than",))


def shift_without_a_budget(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    data["facility"] = {"budget_policy": "shift"}
    path = write(tmp / "scenario.yaml", data)
    return Case(
        ("run", path), path, line_of(path, "facility:"), "facility", ("needs a power_budget_w",)
    )


def power_aware_without_an_sla(tmp: Path) -> Case:
    write_world(tmp)
    data = scenario_data()
    del data["workloads"]["w"]["sla"]
    data["router"] = {"policy": "power_aware"}
    path = write(tmp / "scenario.yaml", data)
    return Case(("run", path), path, line_of(path, "  w:"), "workloads.w.sla", ("give workload w",))


def bad_unit_in_referenced_chip(tmp: Path) -> Case:
    """A scenario run names the chip file and line, not the scenario's."""
    scenario = write_world(tmp)
    data = chip_data()
    data["power"]["tdp_w"] = "50 Hz"
    chip = write(tmp / "chip.yaml", data)
    return Case(("run", scenario), chip, line_of(chip, "50 Hz"), "power.tdp_w", ("'50 Hz'",))


def unknown_extends(tmp: Path) -> Case:
    path = write(tmp / "child.yaml", "# a chip\nextends: no-such-base\nname: child\n")
    return Case(("hardware", "show", path), path, 2, "extends", ("no-such-base", "mtia-like-gen2"))


def bad_trace_timestamp(tmp: Path) -> Case:
    data = scenario_data()
    data["workloads"]["w"]["traffic"] = {"kind": "trace", "path": "trace.csv"}
    write_world(tmp)
    scenario = write(tmp / "scenario.yaml", data)
    trace = tmp / "trace.csv"
    trace.write_text("timestamp_s,items\n0.0,3\n0.1,4\n0.2,5\nsoon,6\n0.4,2\n", encoding="utf-8")
    return Case(("run", scenario), trace, 5, "timestamp_s", ("not a number",))


def bad_trace_items(tmp: Path) -> Case:
    case = bad_trace_timestamp(tmp)
    case.path.write_text("timestamp_s,items\n0.0,3\n0.1,x\n0.2,5\n", encoding="utf-8")
    return Case(case.args, case.path, 3, "items", ("not an integer",))


CASES: list[Callable[[Path], Case]] = [
    wrong_unit,
    unknown_unit,
    unknown_field,
    unknown_block_field,
    negative_bandwidth,
    confidential_factor_above_one,
    missing_top_level_field,
    missing_nested_field,
    duplicate_key,
    python_tag,
    syntax_error,
    not_utf8,
    top_level_list,
    missing_chip_name,
    missing_model_path,
    unknown_served_workload,
    scenario_typo,
    d_without_power_of_d,
    power_of_d_with_no_draws,
    shift_without_a_budget,
    power_aware_without_an_sla,
    bad_unit_in_referenced_chip,
    unknown_extends,
    bad_trace_timestamp,
    bad_trace_items,
]


@pytest.mark.parametrize("make", CASES, ids=[c.__name__ for c in CASES])
def test_bad_file_names_file_line_and_field(tmp_path: Path, make: Callable[[Path], Case]) -> None:
    case = make(tmp_path)
    lines = error_lines(invoke(*case.args))
    assert len(lines) == 1 + case.others, lines
    where = f"error: {case.path}:{case.line}: "
    prefix = f"{where}{case.field}: " if case.field else where
    matching = [line for line in lines if line.startswith(prefix)]
    assert len(matching) == 1, f"expected {prefix!r} in {lines!r}"
    line = matching[0]
    for word in case.words:
        assert word in line, (word, line)


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    case = python_tag(tmp_path)
    one_error(invoke(*case.args))
    write_world(tmp_path)
    scenario = scenario_data()
    scenario["pools"]["p"]["chip"] = "bad-chip.yaml"
    one_error(invoke("run", write(tmp_path / "s.yaml", scenario)))
    assert not (tmp_path / "pwned").exists()


def test_missing_chip_lists_every_known_name(tmp_path: Path) -> None:
    line = one_error(invoke(*missing_chip_name(tmp_path).args))
    known = list(catalog("chip"))
    assert {"mtia-like-gen2", "gpu-like-gen1"} <= set(known)
    for name in known:
        assert name in line


def test_several_problems_in_one_file_are_each_reported(tmp_path: Path) -> None:
    data = chip_data()
    data["memory"]["dram"]["bandwidth_bytes_per_s"] = "400 W"
    data["compute"]["clock_hz"] = "fast"
    data["nmae"] = "typo"
    path = write(tmp_path / "bad-chip.yaml", data)
    lines = error_lines(invoke("hardware", "show", path))
    assert len(lines) == 3
    expected = {
        line_of(path, "400 W"): "memory.dram.bandwidth_bytes_per_s",
        line_of(path, "fast"): "compute.clock_hz",
        line_of(path, "nmae"): "nmae",
    }
    for number, field in expected.items():
        assert any(line.startswith(f"error: {path}:{number}: {field}: ") for line in lines), lines


def _circular(tmp: Path) -> tuple[Path, Path]:
    a = write(tmp / "a.yaml", "extends: b.yaml\nname: a\n")
    b = write(tmp / "b.yaml", "extends: a.yaml\nname: b\n")
    return a, b


def test_circular_extends_is_refused(tmp_path: Path) -> None:
    a, _ = _circular(tmp_path)
    line = one_error(invoke("hardware", "show", a))
    # Named at the `extends:` line that closes the cycle.
    assert line.startswith(f"error: {tmp_path / 'b.yaml'}:1: extends: "), line
    assert "circular extends: a.yaml -> b.yaml -> a.yaml" in line


def test_circular_extends_error_names_the_extends_line(tmp_path: Path) -> None:
    a, b = _circular(tmp_path)
    line = one_error(invoke("hardware", "show", a))
    assert line.startswith((f"error: {a}:1: extends: ", f"error: {b}:1: extends: ")), line


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["name: x", "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"description: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.yaml", _alias_bomb())
    start = time.process_time()
    line = one_error(invoke("hardware", "show", path))
    # A runaway guard, not a speed test: CPU time (the command runs in this process), far
    # from both a bomb that got through (minutes) and a refused one (under a second).
    assert time.process_time() - start < 10.0
    assert line.startswith(f"error: {path}:")
    assert "expands to more than" in line


def _merge_bomb(levels: int) -> str:
    """Nested `<<:` merges, each of nine copies of the level below: 9**(levels+1) keys."""
    node = "&a0 {" + ", ".join(f"k{i}: v" for i in range(9)) + "}"
    for i in range(1, levels + 1):
        node = f"&a{i} {{<<: [{node}, " + ", ".join([f"*a{i - 1}"] * 8) + "]}"
    return f"name: x\ndescription: {node}\n"


def test_merge_key_bomb_is_bounded_before_expansion(tmp_path: Path) -> None:
    # Eight levels would materialise 9**9 = 387 million merged keys (~7 GB) if expanded.
    path = write(tmp_path / "bomb.yaml", _merge_bomb(levels=8))
    start = time.process_time()
    line = one_error(invoke("hardware", "show", path))
    # A runaway guard, not a speed test: CPU time (the command runs in this process), far
    # from both a bomb that got through (minutes) and a refused one (under a second).
    assert time.process_time() - start < 10.0
    assert line.startswith(f"error: {path}:")
    assert "expands to more than" in line
