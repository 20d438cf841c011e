"""Sweeps end to end: rows, failures, resume, the command's output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from studykit import (
    assert_ok,
    err,
    error_lines,
    invoke,
    out,
    rows_of,
    without_timing,
    write_study,
)

import accelsim.runner
from accelsim.config.study import load_study
from accelsim.runner import run_scenario
from accelsim.study.executors import flatten_metrics, run_sweep
from accelsim.study.plan import make_plan


def test_a_sweep_stores_one_row_per_run_with_the_runs_metrics(tmp_path: Path) -> None:
    plan = make_plan(load_study(write_study(tmp_path)))
    seen: list[str] = []
    result = run_sweep(plan, tmp_path / "out", workers=1, on_row=lambda r: seen.append(r["run_id"]))
    assert (result.planned, result.ran, result.failed, result.skipped) == (16, 16, 0, 0)
    rows = rows_of(tmp_path / "out")
    assert sorted(seen) == sorted(r["run_id"] for r in rows) == sorted(r.run_id for r in plan.runs)
    by_id = {r["run_id"]: r for r in rows}
    for run in plan.runs[:3]:
        stored = by_id[run.run_id]
        assert stored["status"] == "ok" and stored["error"] is None and stored["wall_s"] > 0
        assert stored["axes"] == run.axes and stored["seed"] == run.seed
        # Exactly what a direct run of the same overrides gives.
        direct = run_scenario(plan.scenario, plan.overrides(run))
        assert stored["metrics"] == flatten_metrics(direct)
        assert stored["metrics"]["workloads.w.completed"] > 0
    # Replicates differ (different seeds), points differ (different axis values).
    assert len({json.dumps(r["metrics"], sort_keys=True) for r in rows}) == len(rows)


def test_a_run_that_raises_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = write_study(tmp_path)

    def flaky(scenario: Any, overrides: Any = ()) -> dict[str, Any]:
        if "pools.p.count=2" in overrides and "simulation.seed=4" in overrides:
            raise RuntimeError("chip on fire")
        return run_scenario(scenario, overrides)

    monkeypatch.setattr(accelsim.runner, "run_scenario", flaky)
    result = invoke("sweep", study, "--out", tmp_path / "out", "--workers", 1)
    lines = error_lines(result)
    assert lines[0].startswith("error: 4 of 16 runs failed")
    assert "RuntimeError: chip on fire" in lines[1]
    rows = rows_of(tmp_path / "out")
    assert len(rows) == 16
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4
    assert all(r["error"] == "RuntimeError: chip on fire" and r["metrics"] == {} for r in failed)
    # The summary table still shows every point, with its failed runs counted.
    assert "1/2" in out(result)

    # --resume alone skips them (they finished, badly); --retry-failed runs them again.
    monkeypatch.setattr(accelsim.runner, "run_scenario", run_scenario)
    again = invoke("sweep", study, "--out", tmp_path / "out", "--workers", 1, "--resume")
    assert error_lines(again)[0].startswith("error: 4 of 16 runs failed")
    assert "0 runs in" in err(again)
    retried = invoke(
        "sweep", study, "--out", tmp_path / "out", "-j", 1, "--resume", "--retry-failed", "-q"
    )
    assert_ok(retried)
    lines_now = rows_of(tmp_path / "out")
    assert len(lines_now) == 20  # the four retries were appended
    final = {r["run_id"]: r for r in lines_now}  # the last row of a run wins
    assert len(final) == 16 and all(r["status"] == "ok" for r in final.values())


def test_the_sweep_command_prints_a_summary_and_refuses_to_overwrite(tmp_path: Path) -> None:
    study = write_study(tmp_path)
    folder = tmp_path / "out"
    result = invoke("sweep", study, "--out", folder, "-j", 1)
    assert_ok(result)
    text = out(result)
    # Axis columns by their short names, headline metrics, runs ok per point.
    for header in ("count", "max_batch_items", "rate_per_s", "max_wait_s", "p99", "queries_per_j"):
        assert header in text, header
    assert text.count("2/2") == 8
    assert f"sweep study: 16 runs; local backend; results in {folder}" in err(result)
    assert "16 runs in" in err(result) and "16 ok, 0 failed" in err(result)
    before = (folder / "runs.jsonl").read_bytes()

    refused = invoke("sweep", study, "--out", folder, "-q")
    (line,) = error_lines(refused)
    assert "already holds a sweep (16 runs recorded); pass --resume" in line
    resumed = invoke("sweep", study, "--out", folder, "--resume", "-q")
    assert_ok(resumed)
    assert resumed.stdout == "" and resumed.stderr == ""
    assert (folder / "runs.jsonl").read_bytes() == before  # nothing ran again
    manifest = json.loads((folder / "study.json").read_text())
    assert manifest["study"] == "study" and len(manifest["runs"]) == 16

    # --overwrite starts again: the old rows go, other files in the folder stay.
    (folder / "notes.txt").write_text("mine")
    (folder / "runs.jsonl").write_bytes(before + before)  # twice the rows: visibly old
    (line,) = error_lines(invoke("sweep", study, "--out", folder, "--overwrite", "--resume"))
    assert line == "error: --overwrite starts the sweep again; --resume continues it: not both"
    again = invoke("sweep", study, "--out", folder, "--overwrite", "-q", "-j", 1)
    assert_ok(again)
    assert len(rows_of(folder)) == 16
    assert len((folder / "runs.jsonl").read_bytes().splitlines()) == 16
    assert (folder / "notes.txt").read_text() == "mine"


def test_resuming_with_a_changed_study_is_refused(tmp_path: Path) -> None:
    study = write_study(tmp_path, "base: scenario.yaml\naxes: [{grid: {pools.p.count: [1, 2]}}]\n")
    assert_ok(invoke("sweep", study, "--out", tmp_path / "out", "-j", 1, "-q"))
    study.write_text("base: scenario.yaml\naxes: [{grid: {pools.p.count: [1, 3]}}]\n")
    (line,) = error_lines(invoke("sweep", study, "--out", tmp_path / "out", "--resume"))
    assert "holds results of study 'study' with another base scenario" in line


def test_rows_of_another_study_are_refused_by_every_reader(tmp_path: Path) -> None:
    study = write_study(tmp_path, "base: scenario.yaml\naxes: [{grid: {pools.p.count: [1, 2]}}]\n")
    other = tmp_path / "other.yaml"
    other.write_text("base: scenario.yaml\naxes: [{grid: {pools.p.count: [2, 3]}}]\n")
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    assert_ok(invoke("sweep", study, "--out", mine, "-j", 1, "-q"))
    assert_ok(invoke("sweep", other, "--out", theirs, "-j", 1, "-q"))
    with open(mine / "runs.jsonl", "ab") as handle:
        handle.write((theirs / "runs.jsonl").read_bytes())  # count=2 has the same run id
    before = (mine / "runs.jsonl").read_bytes()
    expected = f"error: {mine / 'runs.jsonl'}: 2 row(s) from another study than study 'study'"
    metrics = ("--x", "totals.queries_per_j", "--y", "workloads.w.latency_s.p99")
    for args in (
        ("export", mine, "--csv", "-"),
        ("pareto", mine, *metrics),
        ("report", mine, "-o", tmp_path / "r.html"),
        ("sweep", study, "--out", mine, "--resume", "-j", 1),
    ):
        (line,) = error_lines(invoke(*args))
        assert line.startswith(expected) and "(lines 3, 4)" in line, (args, line)
    assert (mine / "runs.jsonl").read_bytes() == before
    assert not (tmp_path / "r.html").exists()


def test_resuming_over_a_damaged_manifest_is_an_error_not_a_rerun(tmp_path: Path) -> None:
    study = write_study(tmp_path, "base: scenario.yaml\naxes: [{grid: {pools.p.count: [1, 2]}}]\n")
    folder = tmp_path / "out"
    assert_ok(invoke("sweep", study, "--out", folder, "-j", 1, "-q"))
    manifest = folder / "study.json"
    manifest.write_text(manifest.read_text()[:40])  # cut short, as by a disk error
    before = (folder / "runs.jsonl").read_bytes()
    (line,) = error_lines(invoke("sweep", study, "--out", folder, "--resume", "-j", 1))
    assert line.startswith(f"error: {manifest}: cannot read this sweep's manifest"), line
    assert (folder / "runs.jsonl").read_bytes() == before  # nothing ran again


def test_option_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    study = write_study(tmp_path)
    (line,) = error_lines(invoke("sweep", study, "--backend", "local", "--scheduler", "x:1"))
    assert line == "error: --scheduler needs --backend dask"
    (line,) = error_lines(invoke("sweep", study, "--retry-failed"))
    assert line == "error: --retry-failed goes with --resume"


def test_rows_from_processes_equal_rows_from_a_thread(tmp_path: Path) -> None:
    text = "base: scenario.yaml\naxes: [{grid: {pools.p.count: [1, 2]}}]\nseeds: {replicates: 2}\n"
    plan = make_plan(load_study(write_study(tmp_path, text)))
    threaded = run_sweep(plan, tmp_path / "t", workers=1)
    pooled = run_sweep(plan, tmp_path / "p", workers=2)
    assert [without_timing(r) for r in threaded.rows] == [without_timing(r) for r in pooled.rows]
    assert len(pooled.rows) == 4


def test_the_dask_backend_without_dask_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    real = importlib.import_module

    def no_distributed(name: str, *args: Any) -> Any:
        if name == "distributed":
            raise ImportError("No module named 'distributed'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_distributed)
    study = write_study(tmp_path)
    (line,) = error_lines(invoke("sweep", study, "--out", tmp_path / "out", "--backend", "dask"))
    assert line == 'error: the dask backend needs dask.distributed: pip install -e ".[dask]"'
    assert not (tmp_path / "out").exists()
