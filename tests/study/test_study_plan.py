"""Study files: validation with file:line errors, axis expansion, run ids and seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
from studykit import STUDY, error_lines, invoke, line_of, write, write_study

from accelsim.config.loader import catalog
from accelsim.config.study import load_study
from accelsim.config.yamlio import parse_yaml
from accelsim.errors import ConfigError
from accelsim.study.plan import make_plan, run_id, yaml_value


def plan_of(path: Path):  # type: ignore[no-untyped-def]
    return make_plan(load_study(path))


def test_grid_zip_and_replicates_expand_into_runs(tmp_path: Path) -> None:
    plan = plan_of(write_study(tmp_path))
    assert len(plan.runs) == 2 * 2 * 2 * 2
    points = {tuple(sorted(r.axes.items())) for r in plan.runs}
    assert len(points) == 8
    # The zip group moves its two paths together, never crossed.
    pairs = {
        (r.axes["workloads.w.traffic.rate_per_s"], r.axes["pools.p.batching.max_wait_s"])
        for r in plan.runs
    }
    assert pairs == {(1000, 0.0002), (3000, 0.001)}
    # Replicate k has the base scenario's seed (3) + k, and the overrides end with it.
    assert {(r.replicate, r.seed) for r in plan.runs} == {(0, 3), (1, 4)}
    run = plan.runs[0]
    overrides = plan.overrides(run)
    assert overrides[0] == "simulation.duration_s=0.3"
    assert overrides[-1] == f"simulation.seed={run.seed}"
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)


def test_run_ids_depend_only_on_axis_values_and_seed(tmp_path: Path) -> None:
    first = plan_of(write_study(tmp_path))
    # The same points listed in another order, and another description: same ids.
    reordered = STUDY.replace("[1, 2]", "[2, 1]").replace("a small", "the same")
    second = plan_of(write(tmp_path / "again.yaml", reordered))
    assert {r.run_id for r in first.runs} == {r.run_id for r in second.runs}
    assert first.fingerprint == second.fingerprint
    assert run_id({"a.b": 1, "c": "x"}, 5) == run_id({"c": "x", "a.b": 1}, 5)
    assert run_id({"a.b": 1}, 5) != run_id({"a.b": 1}, 6)
    assert run_id({"a.b": 1}, 5) != run_id({"a.b": 2}, 5)
    # A changed base (via set:) changes the fingerprint, so resuming would be refused.
    changed = plan_of(write(tmp_path / "changed.yaml", STUDY.replace("0.3", "0.4")))
    assert changed.fingerprint != first.fingerprint


def test_random_axes_are_reproducible_and_within_their_ranges(tmp_path: Path) -> None:
    text = """\
base: scenario.yaml
axes:
  - random:
      samples: 40
      seed: 11
      ranges:
        workloads.w.traffic.rate_per_s: {low: 100, high: 10000, log: true}
        pools.p.count: {low: 1, high: 3, integer: true}
        router.policy: {choices: [round_robin, shared_queue]}
seeds: {base: 100}
"""
    path = write_study(tmp_path, text)
    plan = plan_of(path)
    again = plan_of(path)
    assert [r.axes for r in plan.runs] == [r.axes for r in again.runs]
    assert len(plan.runs) + plan.duplicates == 40
    rates = [r.axes["workloads.w.traffic.rate_per_s"] for r in plan.runs]
    assert all(100 <= x <= 10000 for x in rates)
    assert min(rates) < 1000 < max(rates)  # log-uniform reaches both decades
    assert {r.axes["pools.p.count"] for r in plan.runs} == {1, 2, 3}
    assert {r.axes["router.policy"] for r in plan.runs} == {"round_robin", "shared_queue"}
    assert {r.seed for r in plan.runs} == {100}
    other = plan_of(write(tmp_path / "s2.yaml", text.replace("seed: 11", "seed: 12")))
    assert [r.axes for r in other.runs] != [r.axes for r in plan.runs]


def test_duplicate_points_are_run_once(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes:\n  - grid:\n      pools.p.count: [1, 2, 1]\n"
    plan = plan_of(write_study(tmp_path, text))
    assert [r.axes["pools.p.count"] for r in plan.runs] == [1, 2]
    assert plan.duplicates == 1


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        1e-05,
        3,
        "2 ms",
        True,
        None,
        "yes",
        "1e5",
        "a: b",
        "",
        {"kind": "fixed", "value": 3},
        [1, 2],
        12345678901234567,
        0.1 + 0.2,
    ],
)
def test_axis_values_survive_the_override_syntax(value: object) -> None:
    assert parse_yaml(yaml_value(value), "<test>").data == value


# ----------------------------------------------------------------------- bad studies


def _one_error(tmp_path: Path, text: str) -> str:
    path = write_study(tmp_path, text, name="bad.yaml")
    result = invoke("sweep", path, "--out", tmp_path / "out", "-q")
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert not (tmp_path / "out").exists(), "a bad study must not create its result folder"
    return lines[0]


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes:\n  - grid:\n      pools.p.count: [1]\nseed: {base: 1}\n"
    line = _one_error(tmp_path, text)
    assert line == f"error: {tmp_path / 'bad.yaml'}:5: seed: unknown field; " + (
        "did you mean 'seeds'? (known: name, description, base, set, axes, seeds, metrics)"
    )


def test_unequal_zip_lists_are_an_error_at_the_group(tmp_path: Path) -> None:
    text = (
        "base: scenario.yaml\naxes:\n  - zip:\n      pools.p.count: [1, 2]\n"
        "      workloads.w.traffic.rate_per_s: [1000]\n"
    )
    line = _one_error(tmp_path, text)
    assert "bad.yaml:3: axes.0: " in line
    assert "same length" in line and "pools.p.count: 2" in line


def test_an_invalid_axis_value_points_at_its_own_line(tmp_path: Path) -> None:
    text = (
        "base: scenario.yaml\naxes:\n  - grid:\n      pools.p.count: [1, 2]\n"
        "      pools.p.chip:\n        - chip.yaml\n        - no-such-chip\n"
    )
    path = tmp_path / "bad.yaml"
    line = _one_error(tmp_path, text)
    assert line.startswith(f"error: {path}:{7}: axes.0.grid.pools.p.chip.1: ")
    assert "no chip named 'no-such-chip'" in line
    assert line_of(path, "no-such-chip") == 7


def test_a_value_the_schema_refuses_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes:\n  - grid:\n      pools.p.count: [1, 0]\n"
    line = _one_error(tmp_path, text)
    assert "bad.yaml:4: axes.0.grid.pools.p.count.1: pools.p.count:" in line
    assert "greater than or equal to 1" in line


def test_a_misspelt_path_is_an_error_at_its_key(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes:\n  - grid:\n      pools.q.count: [1, 2]\n"
    line = _one_error(tmp_path, text)
    assert "bad.yaml:4: axes.0.grid.pools.q.count: " in line
    assert "no 'q' in pools (it has: p)" in line


def test_a_misspelt_leaf_in_set_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = "base: scenario.yaml\nset:\n  simulation.duraton_s: 1\n"
    line = _one_error(tmp_path, text)
    assert "bad.yaml:3: set.simulation.duraton_s: simulation.duraton_s: unknown field" in line


def test_seed_cannot_be_an_axis(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes:\n  - grid:\n      simulation.seed: [1, 2]\n"
    line = _one_error(tmp_path, text)
    assert "simulation.seed cannot be an axis; use seeds:" in line


def test_a_missing_base_is_an_error_at_its_line(tmp_path: Path) -> None:
    line = _one_error(tmp_path, "description: x\nbase: ./nowhere.yaml\n")
    assert "bad.yaml:2: base: file " in line and "not found" in line


def test_an_unknown_study_name_lists_the_shipped_ones() -> None:
    result = invoke("sweep", "no-such-study")
    (line,) = error_lines(result)
    assert "no study named 'no-such-study'" in line
    assert "ranking-chip-batching" in line


def test_a_group_needs_exactly_one_kind(tmp_path: Path) -> None:
    text = (
        "base: scenario.yaml\naxes:\n  - grid: {pools.p.count: [1]}\n"
        "    zip: {router.policy: [round_robin]}\n"
    )
    line = _one_error(tmp_path, text)
    assert "bad.yaml:3: axes.0: " in line and "exactly one of grid, zip or random" in line


def test_errors_are_config_errors_for_library_users(tmp_path: Path) -> None:
    path = write_study(tmp_path, "base: scenario.yaml\naxes: [{grid: {pools.p.count: [0]}}]\n")
    with pytest.raises(ConfigError) as caught:
        plan_of(path)
    (problem,) = caught.value.problems
    assert (problem.source, problem.line) == (str(path), 2)


# ----------------------------------------------------------------------- shipped studies


def test_shipped_studies_validate_and_stay_small() -> None:
    studies = catalog("study")
    assert "ranking-chip-batching" in studies
    for name in studies:
        plan = make_plan(load_study(name))
        assert 1 < len(plan.runs) <= 64, name
        assert plan.study.metrics, f"{name} names no headline metrics"
    chip_batching = make_plan(load_study("ranking-chip-batching"))
    chips = {r.axes["pools.rank.chip"] for r in chip_batching.runs}
    assert chips == {"mtia-like-gen2", "gpu-like-gen1"}
    assert {"pools.rank.batching.max_batch_items", "pools.rank.batching.max_wait_s"} <= set(
        chip_batching.runs[0].axes
    )
