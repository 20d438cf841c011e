"""`accelsim validate`: the fidelity suite passes, and each check fails on a wrong simulator;
`accelsim validate --configs` reports every shipped file and each bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trustkit import (
    assert_ok,
    chip_data,
    err,
    error_lines,
    invoke,
    model_data,
    out,
    scenario_data,
    write,
    write_world,
)

import accelsim.validation
from accelsim.config.loader import catalog
from accelsim.validation import checks as validation
from accelsim.validation.checks import Budget, CheckResult, run_checks

EXPECTED_IDS = [
    "md1-rho0.5",
    "md1-rho0.8",
    "mm1",
    "mmc",
    "little",
    "roofline-compute",
    "roofline-stream",
    "energy",
    "llm-decode",
]
SMALL = Budget(queries=30_000)


def test_quick_suite_passes_and_reports_every_check_as_json() -> None:
    result = invoke("validate", "--quick", "--json")
    assert_ok(result)
    doc = json.loads(out(result))
    assert doc["passed"] is True and doc["quick"] is True
    assert [c["id"] for c in doc["checks"]] == EXPECTED_IDS
    for c in doc["checks"]:
        assert c["passed"], c
        assert set(c) >= {"name", "expected", "simulated", "error", "ci_low", "ci_high"}
        if c["ci_low"] is not None:  # statistical: the closed form inside the interval
            assert c["ci_low"] <= c["expected"] <= c["ci_high"], c
            assert c["samples"] >= doc["queries_per_check"] * 0.9
            # ... and the interval is narrow enough to mean something.
            assert c["ci_high"] - c["ci_low"] < 0.25 * c["expected"], c
        else:
            assert abs(c["error"]) <= 1e-9, c
    assert doc["not_checked"] == []
    assert any(c["id"] == "llm-decode" for c in doc["checks"])


def test_table_has_one_row_per_check_and_names_what_is_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from accelsim.commands.validate import _table

    results = run_checks(Budget(queries=1_000), [validation.check_roofline_stream])
    assert results[0].passed
    monkeypatch.setattr(accelsim.validation, "QUICK", Budget(queries=10_000))
    result = invoke("validate", "--quick")
    assert_ok(result)
    text = out(result)
    for header in ("check", "expected", "simulated", "error", "confidence interval", "result"):
        assert header in text
    assert text.count(" pass ") == len(validation.CHECKS)
    assert "not checked:" not in text
    assert _table(results, 1_000, quick=True).row_count == 1


def _sabotaged(monkeypatch: pytest.MonkeyPatch, factor: float) -> None:
    """Make the engine run every chip ``factor`` times slower than its profile says (it
    reads the host link, which bounds the reference chip, as that much slower)."""
    import dataclasses

    import accelsim.engine.simulation as engine
    from accelsim.config.schema import Chip

    original = engine.simulate

    def slow(resolved, *args, **kwargs):  # type: ignore[no-untyped-def]
        chips = {}
        for pool, chip in resolved.chips.items():
            data = chip.model_dump()
            data["host_link"]["bandwidth_bytes_per_s"] /= factor
            chips[pool] = Chip.model_validate(data)
        return original(dataclasses.replace(resolved, chips=chips), *args, **kwargs)

    monkeypatch.setattr(engine, "simulate", slow)


@pytest.mark.parametrize(
    "check", [validation.check_md1_rho_05, validation.check_mm1, validation.check_mmc]
)
def test_queueing_checks_fail_on_an_engine_that_runs_chips_slow(
    monkeypatch: pytest.MonkeyPatch, check: validation.Check
) -> None:
    assert run_checks(SMALL, [check])[0].passed
    _sabotaged(monkeypatch, 1.15)
    (result,) = run_checks(SMALL, [check])
    assert not result.passed, result
    assert result.ci_low is not None and not result.ci_low <= result.expected <= result.ci_high


def test_littles_law_fails_when_the_document_misreports_latency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import accelsim.metrics.ranking as ranking_metrics

    validation.fleet_run.cache_clear()
    original = ranking_metrics.distribution

    def biased(values):  # type: ignore[no-untyped-def]
        doc = original(values)
        if doc["mean"] is not None:
            doc["mean"] *= 1.005
        return doc

    monkeypatch.setattr(ranking_metrics, "distribution", biased)
    try:
        (result,) = run_checks(SMALL, [validation.check_littles_law])
    finally:
        validation.fleet_run.cache_clear()
    assert not result.passed, result


def test_energy_check_fails_when_batches_straddling_the_window_are_mishandled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import accelsim.metrics.summary as summary

    validation.fleet_run.cache_clear()
    original = summary.summarize

    def whole_batches(resolved, records):  # type: ignore[no-untyped-def]
        # Count every batch's whole dynamic energy, even of batches cut by the window edges.
        doc = original(resolved, records)
        b = records.fleets["ranking"].batches
        inside = (b.start_s < records.end_s) & (b.end_s > records.warmup_s)
        cut = inside & ((b.start_s < records.warmup_s) | (b.end_s > records.end_s))
        doc["totals"]["energy_j"] += float(b.dynamic_energy_j[cut].sum()) / 2
        return doc

    monkeypatch.setattr(summary, "summarize", whole_batches)
    try:
        (result,) = run_checks(SMALL, [validation.check_energy_integral])
    finally:
        validation.fleet_run.cache_clear()
    assert not result.passed, result
    assert 0 < abs(result.error) < 1e-3  # a tiny error, and still caught


def test_roofline_checks_fail_when_efficiency_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    import accelsim.model.roofline as roofline

    monkeypatch.setattr(
        roofline.ChipRates,
        "matrix_flops_per_s",
        lambda self, dtype: self.chip.compute.matrix_flops_per_s[dtype],
    )
    original = roofline._tier_rates
    monkeypatch.setattr(
        roofline,
        "_tier_rates",
        lambda tier: roofline.TierRates(
            tier.bandwidth_bytes_per_s,
            original(tier).random_bytes_per_s,
            tier.access_granularity_bytes,
            tier.energy_per_byte_j,
            tier.bandwidth_bytes_per_s,
        ),
    )
    results = run_checks(
        SMALL, [validation.check_roofline_compute, validation.check_roofline_stream]
    )
    assert [r.passed for r in results] == [False, False], results


def test_llm_decode_check_fails_when_dram_efficiency_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import accelsim.model.roofline as roofline

    assert run_checks(SMALL, [validation.check_llm_batch1_decode])[0].passed
    original = roofline._tier_rates
    monkeypatch.setattr(
        roofline,
        "_tier_rates",
        lambda tier: roofline.TierRates(
            tier.bandwidth_bytes_per_s,
            original(tier).random_bytes_per_s,
            tier.access_granularity_bytes,
            tier.energy_per_byte_j,
            tier.bandwidth_bytes_per_s,
        ),
    )
    (result,) = run_checks(SMALL, [validation.check_llm_batch1_decode])
    assert not result.passed, result
    assert result.error < -0.1  # decode ran at the full, unattainable bandwidth


def test_a_failing_or_crashing_check_exits_1_with_an_error_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check_wrong(budget: Budget) -> CheckResult:
        return validation.identity("wrong", "a wrong identity", 1.0, 1.1, "J")

    def check_crash(budget: Budget) -> CheckResult:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(validation, "CHECKS", [validation.check_roofline_stream])
    validation.check(check_wrong)
    validation.check(check_crash)
    result = invoke("validate", "--quick")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert err(result).splitlines() == [
        "error: check wrong failed: |relative error| <= 1e-09",
        "error: check crash failed: crashed: ZeroDivisionError: boom",
    ]
    text = out(result)
    assert text.count("FAIL") == 2 and text.count(" pass ") == 1
    assert "1 of 3 checks passed" in text


def test_statistical_check_without_error_bar_fails() -> None:
    result = validation.statistical("x", "x", 1.0, 1.0, float("inf"), SMALL, 3)
    assert not result.passed
    assert validation.batch_means(validation.np.ones(10), 20)[1] == float("inf")


def test_file_arguments_need_configs(tmp_path: Path) -> None:
    error_lines(invoke("validate", tmp_path / "x.yaml"), tmp_path / "x.yaml")


# -------------------------------------------------------------------- --configs


def _shipped() -> list[str]:
    kinds = ("chip", "model", "scenario", "study", "plan")
    return [name for kind in kinds for name in catalog(kind)]  # type: ignore[arg-type]


def test_configs_reports_every_shipped_file_ok() -> None:
    result = invoke("validate", "--configs")
    assert_ok(result)
    lines = out(result).splitlines()
    names = _shipped()
    assert len(names) >= 12
    assert len([line for line in lines if line.startswith("ok: ")]) == len(names)
    for kind, folder in (("chip", "hardware/"), ("model", "workloads/models/")):
        for name in catalog(kind):
            assert f"ok: {folder}{name}.yaml ({kind})" in lines
    assert lines[-1] == f"{len(names)} files checked: {len(names)} ok, 0 failed"


def test_configs_checks_given_files_of_each_kind(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    chip, model = tmp_path / "chip.yaml", tmp_path / "model.yaml"
    result = invoke("validate", "--configs", chip, model, scenario, "--json")
    assert_ok(result)
    doc = json.loads(out(result))
    mine = {f["path"]: f for f in doc["files"][-3:]}
    assert {p: f["kind"] for p, f in mine.items()} == {
        str(chip): "chip",
        str(model): "model",
        str(scenario): "scenario",
    }
    assert all(f["ok"] for f in doc["files"]) and doc["passed"] is True


def test_configs_reports_each_bad_file_and_exits_1(tmp_path: Path) -> None:
    write_world(tmp_path)
    bad_chip = chip_data()
    bad_chip["memory"]["dram"]["bandwidth_bytes_per_s"] = "400 W"
    bad_chip_path = write(tmp_path / "bad-chip.yaml", bad_chip)
    bad_model = model_data()
    bad_model["embedding_tables"][0]["dim"] = "wide"
    bad_model_path = write(tmp_path / "bad-model.yaml", bad_model)
    bad_scenario = scenario_data()
    bad_scenario["pools"] = {}
    bad_scenario_path = write(tmp_path / "bad-scenario.yaml", bad_scenario)
    unknown = write(tmp_path / "notes.yaml", {"title": "not a config"})
    missing = tmp_path / "absent.yaml"
    files = [bad_chip_path, bad_model_path, bad_scenario_path, unknown, missing, tmp_path]
    result = invoke("validate", "--configs", tmp_path / "chip.yaml", *files)
    lines = error_lines(result, *files)
    assert len(lines) == len(files), lines
    for path, words in (
        (bad_chip_path, "bytes per second"),
        (bad_model_path, "embedding_tables.0.dim"),
        (bad_scenario_path, "pools"),
        (unknown, "cannot tell whether"),
        (missing, "not found"),
        (tmp_path, "directory"),
    ):
        (line,) = [x for x in lines if x.startswith(f"error: {path}:")]
        assert words in line, line
    text = out(result)
    assert f"ok: {tmp_path / 'chip.yaml'} (chip)" in text  # good files still reported
    n = len(_shipped()) + 1 + len(files)
    assert text.splitlines()[-1] == f"{n} files checked: {n - len(files)} ok, {len(files)} failed"


def test_configs_names_the_referenced_file_that_is_wrong(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    chip = chip_data()
    chip["power"]["tdp_w"] = "50 Hz"
    write(tmp_path / "chip.yaml", chip)
    (line,) = error_lines(invoke("validate", "--configs", scenario), tmp_path / "chip.yaml")
    assert "power.tdp_w" in line


def test_configs_tells_kind_from_folder_when_keys_do_not(tmp_path: Path) -> None:
    hardware = tmp_path / "hardware"
    hardware.mkdir()
    child = write(hardware / "child.yaml", "extends: mtia-like-gen2\ndescription: same chip\n")
    result = invoke("validate", "--configs", child)
    assert_ok(result)
    assert f"ok: {child} (chip)" in out(result)


def test_configs_reports_an_unexpected_exception_as_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("oops")

    import accelsim.config.loader as loader

    monkeypatch.setattr(loader, "load_chip", broken)
    path = write(tmp_path / "chip.yaml", chip_data())
    lines = error_lines(invoke("validate", "--configs", path))
    assert len(lines) == len(catalog("chip")) + 1
    assert all("internal error (KeyError: 'oops'); this is a bug in accelsim" in x for x in lines)
