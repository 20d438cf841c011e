"""Hostile input: every bad file ends in one-line errors that name a file, exit code 1,
no traceback and no hang. Bugs found this way are the strict xfail tests at the end."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from trustkit import (
    assert_ok,
    chip_data,
    crashed,
    describe,
    dump,
    err,
    error_lines,
    invoke,
    model_data,
    scenario_data,
    write,
    write_world,
)

from accelsim.config.files import check_config_file

# A guard against runaway work, not a speed test: a bomb that got through would take
# minutes to hours of CPU; a refused one takes well under a second. Machines are noisy,
# so the bound is far from both.
RUNAWAY_CPU_S = 10.0


@dataclass
class Case:
    args: tuple[object, ...]  # the command line
    names: tuple[Path, ...]  # an error line must start with one of these files
    words: str = ""  # ... and this must be in one of the lines


def _chip(tmp: Path, text: str | bytes) -> Case:
    path = write(tmp / "bad-chip.yaml", text)
    return Case(("hardware", "show", path), (path,))


def _chip_with(tmp: Path, change: Callable[[dict], object]) -> Case:
    data = chip_data()
    change(data)
    return _chip(tmp, dump(data))


def _scenario_with(tmp: Path, change: Callable[[dict], object]) -> Case:
    write_world(tmp)
    data = scenario_data()
    change(data)
    path = write(tmp / "scenario.yaml", data)
    return Case(("run", path, "-q"), (path,))


def _naming(make: Callable[[Path], Case], *names: str) -> Callable[[Path], Case]:
    """A case whose errors may name other files (relative to the test folder, or absolute)."""

    def build(tmp: Path) -> Case:
        case = make(tmp)
        return Case(case.args, case.names + tuple(tmp / n for n in names), case.words)

    return build


def _set(path: list[str], value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _delete(path: list[str]) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _model_with_true_width() -> dict:
    data = model_data()
    data["top_mlp"] = [*data["top_mlp"][:-1], True]
    return data


CASES: dict[str, Callable[[Path], Case]] = {
    # wrong types
    "mapping where a number goes": lambda t: _chip_with(t, _set(["compute", "clock_hz"], {"a": 1})),
    "list where a mapping goes": lambda t: _chip_with(t, _set(["memory"], [1, 2])),
    "string where an int goes": lambda t: _scenario_with(t, _set(["pools", "p", "count"], "two")),
    "number where a list goes": lambda t: _scenario_with(t, _set(["pools", "p", "serves"], 5)),
    "bool where a number goes": lambda t: _chip_with(t, _set(["power", "tdp_w"], True)),
    "true where a count goes": lambda t: _scenario_with(t, _set(["pools", "p", "count"], True)),
    "false where a plain number goes": lambda t: _scenario_with(
        t, _set(["facility"], {"pue": False})
    ),
    "whole float where a count goes": lambda t: _scenario_with(
        t, _set(["pools", "p", "count"], 2.0)
    ),
    "quoted count": lambda t: _scenario_with(t, _set(["pools", "p", "count"], "2")),
    "bool in a list of widths": _naming(
        lambda t: _scenario_with(t, lambda d: write(t / "model.yaml", _model_with_true_width())),
        "model.yaml",
    ),
    "number where a flag goes": lambda t: _chip_with(t, _set(["hypothetical"], 1)),
    "string where a flag goes": lambda t: _chip_with(t, _set(["hypothetical"], "true")),
    "null where a number goes": lambda t: _chip_with(t, _set(["power", "tdp_w"], None)),
    "top-level list": lambda t: _chip(t, "- 1\n- 2\n"),
    "top-level scalar": lambda t: _chip(t, "just text\n"),
    "empty file": lambda t: _chip(t, ""),
    "missing field": lambda t: _chip_with(t, _delete(["compute"])),
    "unknown unit": lambda t: _chip_with(t, _set(["power", "tdp_w"], "3 furlongs")),
    # huge numbers
    "huge count": lambda t: _scenario_with(t, _set(["pools", "p", "count"], 10**30)),
    "huge rate": lambda t: _scenario_with(
        t, _set(["workloads", "w", "traffic", "rate_per_s"], 1e300)
    ),
    "5000-digit integer": lambda t: _chip(
        t, dump(chip_data()).replace("clock_hz: 1000000000.0", "clock_hz: " + "9" * 5000)
    ),
    "overflowing quantity": lambda t: _chip_with(t, _set(["compute", "clock_hz"], "1e400 GHz")),
    "infinite float": lambda t: _chip(
        t, dump(chip_data()).replace("clock_hz: 1000000000.0", "clock_hz: .inf")
    ),
    "NaN float": lambda t: _chip(
        t, dump(chip_data()).replace("clock_hz: 1000000000.0", "clock_hz: .nan")
    ),
    # zero and negative rates, empty pools
    "zero rate": lambda t: _scenario_with(t, _set(["workloads", "w", "traffic", "rate_per_s"], 0)),
    "negative rate": lambda t: _scenario_with(
        t, _set(["workloads", "w", "traffic", "rate_per_s"], "-5 /s")
    ),
    "negative duration": lambda t: _scenario_with(t, _set(["simulation", "duration_s"], -1)),
    "zero bandwidth": lambda t: _chip_with(t, _set(["host_link", "bandwidth_bytes_per_s"], 0)),
    "empty pools": lambda t: _scenario_with(t, _set(["pools"], {})),
    "empty workloads": lambda t: _scenario_with(t, _set(["workloads"], {})),
    "pool serving nothing": lambda t: _scenario_with(t, _set(["pools", "p", "serves"], [])),
    "zero chips": lambda t: _scenario_with(t, _set(["pools", "p", "count"], 0)),
    # references
    "missing chip file": lambda t: _scenario_with(t, _set(["pools", "p", "chip"], "gone.yaml")),
    "missing model name": lambda t: _scenario_with(t, _set(["workloads", "w", "model"], "nope")),
    "missing trace": _naming(
        lambda t: _scenario_with(
            t, _set(["workloads", "w", "traffic"], {"kind": "trace", "path": "gone.csv"})
        ),
        "gone.csv",
    ),
    "chip file given as model": _naming(
        lambda t: _scenario_with(t, _set(["workloads", "w", "model"], "chip.yaml")), "chip.yaml"
    ),
    "extends itself": lambda t: _chip(t, "extends: bad-chip.yaml\nname: x\n"),
    "extends a directory": _naming(lambda t: _chip(t, "extends: /\nname: x\n"), "/"),
    "extends a missing file": lambda t: _chip(t, "extends: ./gone.yaml\nname: x\n"),
    "extends a number": lambda t: _chip(t, "extends: 5\nname: x\n"),
    # bytes and syntax
    "latin-1 byte": lambda t: _chip(t, dump(chip_data()).encode() + b"description: caf\xe9\n"),
    "UTF-16 file": lambda t: _chip(t, dump(chip_data()).encode("utf-16")),
    "random bytes": lambda t: _chip(t, bytes(range(128, 256)) * 4),
    "tab indentation": lambda t: _chip(t, "compute:\n\tclock_hz: 1\n"),
    "unclosed bracket": lambda t: _chip(t, "compute: [1, 2\n"),
    "duplicate key": lambda t: _chip(t, "name: a\nname: b\n"),
    "two documents": lambda t: _chip(t, "name: a\n---\nname: b\n"),
    "undefined alias": lambda t: _chip(t, "name: *nothing\n"),
    "deep nesting": lambda t: _chip(t, "compute: " + "[" * 200 + "]" * 200 + "\n"),
    "deep mappings": lambda t: _chip(t, "compute: " + "{a: " * 200 + "1" + "}" * 200 + "\n"),
    "complex key": lambda t: _chip(t, "? [a, b]\n: 1\n"),
    # tags
    "python object": lambda t: _chip(t, "name: !!python/object:os.system {}\n"),
    "python apply": lambda t: _chip(t, "name: !!python/object/apply:os.getcwd []\n"),
    "python name": lambda t: _chip(t, "name: !!python/name:os.system\n"),
    "python module": lambda t: _chip(t, "name: !!python/module:os\n"),
    "custom tag": lambda t: _chip(t, "name: !vendor 3\n"),
    "binary tag": lambda t: _chip(t, "name: !!binary aGk=\n"),
    "timestamp": lambda t: _chip(t, "name: 2024-01-01\n"),
    "set tag": lambda t: _chip(t, "name: !!set {a, b}\n"),
    "tagged mapping": lambda t: _chip(t, "compute: !!python/object:dict {a: 1}\n"),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_bad_input_is_a_one_line_error_naming_the_file(
    tmp_path: Path, make: Callable[[Path], Case]
) -> None:
    case = make(tmp_path)
    start = time.perf_counter()
    result = invoke(*case.args, limit_s=10)
    assert time.perf_counter() - start < 5
    lines = error_lines(result, *case.names)
    assert case.words in " ".join(lines)
    # validate --configs says the same about the same file, without running anything.
    file = Path(str(case.args[2] if case.args[0] == "hardware" else case.args[1]))
    checked = check_config_file(file)
    assert checked.errors, checked
    assert not any("internal error" in line for line in checked.errors), checked
    assert all(line.startswith(tuple(str(n) for n in case.names)) for line in checked.errors)


@pytest.mark.parametrize("word", ["yes", "no", "true", "on"])
def test_a_yaml_boolean_is_never_a_number(tmp_path: Path, word: str) -> None:
    """`count: yes` is an error at its file and line, not a count of 1."""
    write_world(tmp_path)
    text = dump(scenario_data())
    assert text.count("count: 2\n") == 1
    scenario = write(tmp_path / "scenario.yaml", text.replace("count: 2\n", f"count: {word}\n"))
    line_no = text.splitlines().index("    count: 2") + 1
    (line,) = error_lines(invoke("run", scenario, "-q"), scenario)
    assert line.startswith(f"error: {scenario}:{line_no}: pools.p.count: "), line
    assert "valid integer" in line
    good = write(tmp_path / "good.yaml", text)
    (line,) = error_lines(invoke("run", good, "-q", "--set", f"facility.pue={word}"))
    assert "facility.pue: Input should be a number, not a boolean" in line
    study = write(tmp_path / "study.yaml", f"base: {good}\nseeds:\n  replicates: {word}\n")
    (line,) = error_lines(invoke("sweep", study), study)
    assert line.startswith(f"error: {study}:3: seeds.replicates: "), line


def test_circular_extends_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: c.yaml\nname: b\n")
    write(tmp_path / "c.yaml", "extends: a.yaml\nname: c\n")
    for args in (("hardware", "show", a), ("validate", "--configs", a)):
        (line,) = error_lines(invoke(*args, limit_s=5), tmp_path)
        assert "circular extends" in line


def test_missing_scenario_file_and_missing_argument_file(tmp_path: Path) -> None:
    gone = tmp_path / "gone.yaml"
    error_lines(invoke("run", gone), gone)
    error_lines(invoke("hardware", "show", gone), gone)
    error_lines(invoke("validate", "--configs", gone), gone)


def _alias_bomb(levels: int = 12, width: int = 10) -> str:
    """A "billion laughs": 10**12 strings if expanded."""
    lines = ["name: x", "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"description: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected_by_its_expansion_bound(tmp_path: Path) -> None:
    bomb = write(tmp_path / "bomb.yaml", _alias_bomb())
    write_world(tmp_path)
    scenario = write(
        tmp_path / "scenario.yaml", dump(scenario_data()).replace("chip.yaml", "bomb.yaml")
    )
    invoke("hardware", "show", "mtia-like-gen2")  # imports warmed up
    # CPU time of this process, so that other work on a busy machine cannot fail the test.
    for args in (("hardware", "show", bomb), ("run", scenario)):
        start = time.process_time()
        result = invoke(*args, limit_s=10)
        elapsed = time.process_time() - start
        (line,) = error_lines(result, bomb)
        assert "expands to more than" in line
        assert elapsed < RUNAWAY_CPU_S, f"{args[0]}: {elapsed:.2f} s"
    start = time.process_time()
    (line,) = check_config_file(bomb).errors  # what validate --configs reports for it
    assert time.process_time() - start < RUNAWAY_CPU_S
    assert line.startswith(f"{bomb}:") and "expands to more than" in line
    (line,) = error_lines(invoke("validate", "--configs", bomb, limit_s=10), bomb)


def test_python_object_tag_is_rejected_and_never_run(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    text = dump(chip_data()).replace(
        "name: test-chip\n",
        f'name: test-chip\ndescription: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    chip = write(tmp_path / "chip.yaml", text)
    write(tmp_path / "model.yaml", model_data())
    scenario = write(tmp_path / "scenario.yaml", scenario_data())
    for args in (("hardware", "show", chip), ("run", scenario)):
        start = time.process_time()
        result = invoke(*args, limit_s=10)
        elapsed = time.process_time() - start
        (line,) = error_lines(result, chip)
        assert "python/object/apply:os.system' is not allowed" in line
        assert elapsed < RUNAWAY_CPU_S, f"{args[0]}: {elapsed:.2f} s"
    (line,) = error_lines(invoke("validate", "--configs", chip, limit_s=10), chip)
    assert "is not allowed" in line
    assert not marker.exists()


def test_only_safe_loaders_are_used() -> None:
    """No module of accelsim calls an unsafe PyYAML loader."""
    src = Path(__file__).parents[2] / "src" / "accelsim"
    unsafe = re.compile(
        r"\byaml\.(unsafe_|full_)?load(_all)?\(|\b(yaml\.Loader|CLoader|FullLoader|UnsafeLoader)\b"
    )
    found = [
        f"{path.relative_to(src)}:{n}: {line.strip()}"
        for path in src.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not found, found
    assert "yaml.SafeLoader" in (src / "config" / "yamlio.py").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------
# Bugs this suite found and that are now fixed: each test states the behaviour we want.


def test_very_deep_nesting_is_a_one_line_error(tmp_path: Path) -> None:
    chip = write(tmp_path / "chip.yaml", "compute: " + "[" * 5000 + "]" * 5000 + "\n")
    error_lines(invoke("hardware", "show", chip, limit_s=10), chip)
    write_world(tmp_path)
    error_lines(invoke("run", tmp_path / "scenario.yaml", "--set", "description=" + "[" * 5000))


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x85\x7f", "\ufffe"])
def test_control_characters_are_a_one_line_error(tmp_path: Path, char: str) -> None:
    chip = write(tmp_path / "chip.yaml", f"name: a{char}b\n")
    error_lines(invoke("hardware", "show", chip, limit_s=10), chip)


def test_an_endless_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    chip = write(tmp_path / "chip.yaml", "extends: /dev/zero\nname: x\n")

    def two_gib() -> None:  # so that the bug fails fast instead of eating the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    done = subprocess.run(
        [sys.executable, "-c", "from accelsim.cli import main; main()", "hardware", "show", chip],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=two_gib,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    assert "Traceback" not in done.stderr, done.stderr[-500:]
    assert done.returncode == 1
    assert done.stderr.startswith(("error: /dev/zero", f"error: {chip}")), done.stderr


@pytest.mark.parametrize("field", ["chip", "extends", "scenario"])
def test_a_too_long_file_name_is_a_one_line_error(tmp_path: Path, field: str) -> None:
    long = "x" * 300 + ".yaml"
    if field == "scenario":
        result = invoke("run", tmp_path / long)
        error_lines(result)
        return
    scenario = write_world(tmp_path)
    if field == "chip":
        write(tmp_path / "scenario.yaml", dump(scenario_data(chip=long)))
        error_lines(invoke("run", scenario), scenario)
    else:
        chip = write(tmp_path / "chip.yaml", f"extends: {long}\nname: x\n")
        error_lines(invoke("hardware", "show", chip), chip)


def test_an_unknown_home_directory_is_a_one_line_error(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    write(tmp_path / "scenario.yaml", dump(scenario_data(model="~no-such-user-x/m.yaml")))
    error_lines(invoke("run", scenario), scenario)
    error_lines(invoke("hardware", "show", "~no-such-user-x/chip.yaml"))


def test_a_trace_path_with_a_nul_byte_is_a_one_line_error(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    text = dump(scenario_data()).replace(
        "traffic:\n      kind: poisson\n      rate_per_s: 500 /s",
        'traffic:\n      kind: trace\n      path: "a\\0.csv"',
    )
    assert "a\\0.csv" in text
    write(scenario, text)
    error_lines(invoke("run", scenario), scenario)


@pytest.mark.parametrize(
    "row", ["0,99999999999999999999999", "0," + "1" * 200_000], ids=["int64", "128KiB"]
)
def test_trace_rows_out_of_range_are_a_one_line_error(tmp_path: Path, row: str) -> None:
    scenario = write_world(tmp_path)
    data = scenario_data()
    data["workloads"]["w"]["traffic"] = {"kind": "trace", "path": "trace.csv"}
    write(scenario, data)
    trace = write(tmp_path / "trace.csv", f"timestamp_s,items\n{row}\n")
    error_lines(invoke("run", scenario), trace)


def test_an_impossible_number_of_queries_is_a_one_line_error(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    data = scenario_data()
    data["simulation"]["duration_s"] = 1e7
    data["workloads"]["w"]["traffic"]["rate_per_s"] = 1e9
    write(scenario, data)
    error_lines(invoke("run", scenario, "-q", limit_s=20), scenario)


def test_a_window_of_zero_length_is_a_one_line_error_or_a_result(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    data = scenario_data()
    data["simulation"]["duration_s"] = 1e-300
    write(scenario, data)
    result = invoke("run", scenario, "-q")
    assert not crashed(result), describe(result)


@pytest.mark.parametrize(
    "change",
    [
        {"power": {"energy_per_flop_j": {"bf16": 1e308, "int8": 1e308}}},
        {"power": {"idle_w": 1e307, "tdp_w": 1e308}},
        {"host_link": {"bandwidth_bytes_per_s": 1e-300}},
    ],
    ids=["energy per FLOP", "idle power", "host link"],
)
def test_extreme_chips_give_finite_results_or_a_one_line_error(
    tmp_path: Path, change: dict
) -> None:
    from accelsim.validation.reference import _merged

    scenario = write_world(tmp_path)
    chip = write(tmp_path / "chip.yaml", _merged(chip_data(), change))
    for args in (
        ("run", scenario, "-q", "--json", "-"),
        ("explain", "--chip", chip, "--model", tmp_path / "model.yaml", "--json", "-"),
    ):
        result = invoke(*args)
        if result.exit_code == 0:
            assert "nan" not in result.stdout.lower() and "inf" not in result.stdout.lower()
        else:
            error_lines(result, chip)


def test_fixed_hit_rate_on_a_chip_without_sram(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    chip = chip_data()
    del chip["memory"]["sram"]
    write(tmp_path / "chip.yaml", chip)
    model = model_data()
    model["embedding_tables"][0]["hit_rate"] = 0.5
    write(tmp_path / "model.yaml", model)
    model_path = tmp_path / "model.yaml"
    assert_ok(invoke("explain", "--chip", tmp_path / "chip.yaml", "--model", model_path))
    assert_ok(invoke("run", scenario, "-q"))


def test_a_pool_that_draws_no_power(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    chip = chip_data()
    chip["power"] = {"idle_w": 0, "tdp_w": 10}
    chip["host_link"]["energy_per_byte_j"] = 0
    for tier in chip["memory"].values():
        tier["energy_per_byte_j"] = 0
    write(tmp_path / "chip.yaml", chip)
    result = invoke("run", scenario, "-q", "--json", "-")
    assert_ok(result)
    assert err(result) == ""


@pytest.mark.parametrize("digits", [309, 400, 4300])
def test_an_integer_too_big_for_a_float_is_a_one_line_error(tmp_path: Path, digits: int) -> None:
    text = dump(chip_data()).replace("clock_hz: 1000000000.0", "clock_hz: 1" + "0" * (digits - 1))
    chip = write(tmp_path / "chip.yaml", text)
    (line,) = error_lines(invoke("hardware", "show", chip), chip)
    assert "compute.clock_hz" in line


@pytest.mark.parametrize("key", ["a\\nb", "a\\u2028b", "a\\x1Eb", "a\\Nb"])
def test_a_line_break_in_a_key_stays_one_error_line(tmp_path: Path, key: str) -> None:
    chip = write(tmp_path / "chip.yaml", dump(chip_data()) + f'"{key}": 1\n')
    (line,) = check_config_file(chip).errors  # validate --configs escapes it already
    assert line.startswith(f"{chip}:") and "unknown field" in line
    (line,) = error_lines(invoke("hardware", "show", chip), chip)
    assert "unknown field" in line


def test_a_bool_tag_on_a_non_boolean_is_a_one_line_error(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    text = dump(chip_data()).replace("name: test-chip", "name: !!bool test-chip")
    chip = write(tmp_path / "chip.yaml", text)
    (line,) = error_lines(invoke("hardware", "show", chip), chip)
    assert "name" in line
    (line,) = error_lines(invoke("run", scenario), chip)


@pytest.mark.parametrize(
    "change",
    [
        {"compute": {"vector_flops_per_s": 5e-324}},
        {"compute": {"vector_flops_per_s": 1e-200, "vector_efficiency": 1e-200}},
        {"memory": {"sram": {"bandwidth_bytes_per_s": 5e-324}}},
    ],
    ids=["subnormal vector rate", "two tiny factors", "subnormal SRAM bandwidth"],
)
def test_a_rate_that_underflows_to_zero_is_a_one_line_error(tmp_path: Path, change: dict) -> None:
    from accelsim.validation.reference import _merged

    scenario = write_world(tmp_path)
    chip = write(tmp_path / "chip.yaml", _merged(chip_data(), change))
    for args in (
        ("explain", "--chip", chip, "--model", tmp_path / "model.yaml", "--json", "-"),
        ("run", scenario, "-q", "--json", "-"),
    ):
        result = invoke(*args)
        if result.exit_code == 0:
            assert "nan" not in result.stdout.lower() and "inf" not in result.stdout.lower()
        else:
            error_lines(result, chip)


def test_a_nan_quantile_probability_is_a_one_line_error(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    data = scenario_data()
    quantiles = [[0, 1], [float("nan"), 3], [1, 20]]
    data["workloads"]["w"]["items_per_query"] = {"kind": "empirical", "quantiles": quantiles}
    write(scenario, data)
    (line,) = error_lines(invoke("run", scenario, "-q"), scenario)
    assert "items_per_query" in line


@pytest.mark.parametrize("value", [10**20, 10**309], ids=["beyond int64", "beyond a float"])
def test_a_huge_quantile_value_is_a_one_line_error(tmp_path: Path, value: int) -> None:
    scenario = write_world(tmp_path)
    data = scenario_data()
    quantiles = [[0, 1], [1, value]]
    data["workloads"]["w"]["items_per_query"] = {"kind": "empirical", "quantiles": quantiles}
    write(scenario, data)
    (line,) = error_lines(invoke("run", scenario, "-q"), scenario)
    assert "items_per_query" in line


@pytest.mark.parametrize("idle_w", [1e-309, 1e-306])
def test_a_pool_that_draws_almost_no_power_has_a_finite_summary(
    tmp_path: Path, idle_w: float
) -> None:
    from accelsim.config.loader import load_scenario
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize

    scenario = write_world(tmp_path)
    chip = chip_data()
    chip["power"] = {"idle_w": idle_w, "tdp_w": 10}
    chip["host_link"]["energy_per_byte_j"] = 0
    for tier in chip["memory"].values():
        tier["energy_per_byte_j"] = 0
    write(tmp_path / "chip.yaml", chip)
    resolved = load_scenario(scenario)
    doc = summarize(resolved, simulate(resolved))
    json.dumps(doc, allow_nan=False)  # no NaN or infinity anywhere


# ----------------------------------------------------------------------------------
# Work budgets and bounded inputs: a run that would draw or hold too much is refused
# before it starts; a big file is refused (or streamed) before it costs memory.


def _with_traffic(tmp: Path, traffic: dict, duration_s: float = 100.0) -> Path:
    scenario = write_world(tmp)
    data = scenario_data()
    data["simulation"]["duration_s"] = duration_s
    data["workloads"]["w"]["traffic"] = traffic
    return write(scenario, data)


def _refused_fast(*args: object, names: Path) -> str:
    """The one error line of a command that must fail in well under a second of CPU."""
    invoke("hardware", "show", "mtia-like-gen2")  # imports warmed up
    start = time.process_time()
    result = invoke(*args, limit_s=20)
    elapsed = time.process_time() - start
    (line,) = error_lines(result, names)
    assert elapsed < RUNAWAY_CPU_S, f"{elapsed:.2f} s of CPU"
    return line


def test_a_bursty_period_bomb_is_refused_before_any_sampling(tmp_path: Path) -> None:
    # 1 us calm and burst periods over 100 s: 1e8 periods, for a thousand arrivals.
    bursty = {"kind": "bursty", "rate_per_s": 10, "burst_rate_per_s": 100}
    scenario = _with_traffic(tmp_path, {**bursty, "calm_s": "1 us", "burst_s": "1 us"})
    line = _refused_fast("run", scenario, "-q", names=scenario)
    assert "workloads.w.traffic" in line and "1e+08 calm and burst periods" in line
    assert "lengthen calm_s and burst_s" in line
    from accelsim.model.checks import scenario_problems

    (checked,) = check_config_file(scenario, None, None, scenario_problems).errors
    assert f"error: {checked}" == line  # validate --configs says the same


def test_a_run_past_the_memory_budget_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9e7 arrivals (within the draw budget): about 20 GB of records and queued queries.
    scenario = _with_traffic(tmp_path, {"kind": "poisson", "rate_per_s": "9e5 /s"})
    line = _refused_fast("run", scenario, "-q", "--max-memory", "4 GiB", names=scenario)
    assert "workloads.w.traffic" in line and "about 9.01e+07 requests in 100.1 s" in line
    assert re.search(r"up to about \d+(\.\d+)? GiB of memory", line), line
    assert "budget of 4 GiB" in line and "shorten the run or lower the rate" in line
    # Without --max-memory the budget is a share of the machine's memory.
    from accelsim.config import checks

    monkeypatch.setattr(checks, "machine_memory_bytes", lambda: 8 * 2**30)
    line = _refused_fast("run", scenario, "-q", names=scenario)
    assert "budget of 4 GiB (50% of this machine's memory)" in line
    (line,) = error_lines(invoke("validate", "--configs", scenario), scenario)
    assert "of memory" in line


def test_a_larger_memory_budget_lets_a_big_run_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelsim.config import checks
    from accelsim.errors import ConfigError
    from accelsim.runner import load_checked

    monkeypatch.setattr(checks, "machine_memory_bytes", lambda: 16 * 2**30)
    longer = ["simulation.duration_s=4000"]  # two workloads of 4e7 queries each
    with pytest.raises(ConfigError, match="more than its budget of 8 GiB"):
        load_checked("ranking-mtia-vs-gpu", longer)
    resolved = load_checked("ranking-mtia-vs-gpu", longer, 32 * 2**30)
    assert resolved.scenario.simulation.duration_s == 4000


@pytest.mark.parametrize("value", ["4 W", "0", "-1 GiB", "lots"])
def test_a_bad_max_memory_is_a_one_line_error(value: str) -> None:
    (line,) = error_lines(invoke("run", "mtia-like-gen2", "--max-memory", value))
    assert line.startswith("error: --max-memory: ")


def test_a_million_item_yaml_list_is_refused_on_its_bytes(tmp_path: Path) -> None:
    chip = write(tmp_path / "chip.yaml", "name: x\ndescription:\n" + "- 1\n" * 1_000_000)
    line = _refused_fast("hardware", "show", chip, names=chip)
    assert "larger than 1048576 bytes" in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("description: [" + "1," * 400_000 + "]\n", "a list of more than 5000 items"),
        ("".join(f"k{i}: 1\n" for i in range(6000)), "a mapping of more than 5000 keys"),
        ("".join(f"k{i}: [1, 2, 3, 4, 5, 6, 7, 8]\n" for i in range(4000)), "20000 values"),
    ],
    ids=["flow list", "mapping", "many nodes"],
)
def test_a_big_yaml_under_the_byte_cap_is_refused_while_composing(
    tmp_path: Path, text: str, words: str
) -> None:
    chip = write(tmp_path / "chip.yaml", "name: x\n" + text)
    assert chip.stat().st_size < 2**20
    line = _refused_fast("hardware", "show", chip, names=chip)
    assert re.match(rf"error: {re.escape(str(chip))}:\d+: ", line), line
    assert words in line


def test_a_trace_with_a_byte_order_mark_and_crlf_line_ends_runs(tmp_path: Path) -> None:
    from accelsim.config.loader import load_trace

    scenario = _with_traffic(tmp_path, {"kind": "trace", "path": "trace.csv"}, 0.4)
    rows = "".join(f"{0.001 * i:.3f},{1 + i % 16}\r\n" for i in range(300))
    trace = write(tmp_path / "trace.csv", "\ufefftimestamp_s,items\r\n".encode() + rows.encode())
    assert trace.read_bytes().startswith(b"\xef\xbb\xbftimestamp_s")
    plain = write(tmp_path / "plain.csv", "timestamp_s,items\n" + rows.replace("\r\n", "\n"))
    a, b = load_trace(trace), load_trace(plain)
    assert a.times_s.tolist() == b.times_s.tolist() and len(a.times_s) == 300
    assert a.sizes["items"].tolist() == b.sizes["items"].tolist()
    assert_ok(invoke("run", scenario, "-q"))
    # A bad row still names its file and line.
    write(trace, "\ufefftimestamp_s,items\r\n0,1\r\n0.1,2\r\nsoon,3\r\n".encode())
    (line,) = error_lines(invoke("run", scenario, "-q"), trace)
    assert line.startswith(f"error: {trace}:4: timestamp_s: not a number")


def test_a_trace_with_a_bad_byte_names_its_line(tmp_path: Path) -> None:
    scenario = _with_traffic(tmp_path, {"kind": "trace", "path": "trace.csv"}, 0.4)
    trace = write(tmp_path / "trace.csv", b"timestamp_s\n0\n0.1\n0.2\xff\n")
    (line,) = error_lines(invoke("run", scenario, "-q"), trace)
    assert line.startswith(f"error: {trace}:4: not valid UTF-8 (byte 0xff)")


def test_a_large_trace_streams_in_memory_that_follows_its_rows(tmp_path: Path) -> None:
    """A 50 MB trace (three times the old 16 MiB cap) of 50,000 rows, each with a wide
    column the replay ignores: loading and replaying it holds a few MB, not its text, and
    only the rows the run replays are kept (all are checked)."""
    import tracemalloc

    from accelsim.config.loader import load_scenario, load_trace
    from accelsim.engine.simulation import simulate

    scenario = _with_traffic(tmp_path, {"kind": "trace", "path": "big.csv"}, 0.4)
    note = "x" * 1000
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as out:
        out.write("timestamp_s,items,note\n")
        for i in range(50_000):
            out.write(f"{0.002 * i:.3f},{1 + i % 16},{note}\n")
    assert big.stat().st_size > 3 * 16 * 2**20
    tracemalloc.start()
    try:
        whole = load_trace(big)
        whole_peak = tracemalloc.get_traced_memory()[1]
        del whole
        tracemalloc.reset_peak()
        resolved = load_scenario(scenario)
        records = simulate(resolved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert whole_peak < 4 * 2**20, f"{whole_peak / 2**20:.1f} MiB"  # 0.8 MB of arrays
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB"
    assert len(resolved.traces["w"].times_s) == 250  # 0.5 s at 500/s
    assert len(records.fleets["ranking"].workloads["w"].arrival_s) == 250


def test_trace_rows_past_the_run_are_checked_but_not_kept(tmp_path: Path) -> None:
    from accelsim.config.loader import load_scenario

    scenario = _with_traffic(tmp_path, {"kind": "trace", "path": "t.csv", "time_scale": 2}, 0.4)
    rows = "".join(f"{7 + 0.01 * i:.2f},{1 + i % 16}\n" for i in range(100))  # 0 to 1.98 s
    trace = write(tmp_path / "t.csv", "timestamp_s,items\n" + rows)
    kept = load_scenario(scenario).traces["w"].times_s
    assert len(kept) == 25 and kept[0] == 0.0  # shifted to 0; 2 x 0.24 s < 0.5 s end
    write(trace, "timestamp_s,items\n" + rows + "9,0\n")
    (line,) = error_lines(invoke("run", scenario, "-q"), trace)
    assert line.startswith(f"error: {trace}:102: items: must be from 1 to")
