"""Pareto frontiers, exports, comparisons and the search routines behind capacity."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from studykit import assert_ok, err, error_lines, invoke, out, write_world

from accelsim.study.analysis import guess_goal, pareto_front
from accelsim.study.capacity import Probe, search_max_rate, search_min_count
from accelsim.study.executors import make_row
from accelsim.study.store import StoreWriter

# ------------------------------------------------------------------ Pareto


def dominated(p: tuple[float, float], q: tuple[float, float], sx: float, sy: float) -> bool:
    """Whether q dominates p."""
    return (
        sx * q[0] >= sx * p[0]
        and sy * q[1] >= sy * p[1]
        and (sx * q[0] > sx * p[0] or sy * q[1] > sy * p[1])
    )


@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=30),
    st.sampled_from(["min", "max"]),
    st.sampled_from(["min", "max"]),
)
def test_the_frontier_is_exactly_the_undominated_points(
    raw: list[tuple[int, int]], x_goal: Any, y_goal: Any
) -> None:
    points = [(float(a), float(b)) for a, b in raw]
    sx = 1.0 if x_goal == "max" else -1.0
    sy = 1.0 if y_goal == "max" else -1.0
    front = pareto_front(points, x_goal, y_goal)
    undominated = {
        p for i, p in enumerate(points) if not any(dominated(p, q, sx, sy) for q in points)
    }
    # Every undominated value is on the frontier once; nothing dominated is.
    assert {points[i] for i in front} == undominated
    assert len(front) == len(undominated)
    assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def test_goals_follow_metric_names() -> None:
    assert guess_goal("totals.queries_per_j") == "max"
    assert guess_goal("workloads.feed.throughput_per_s") == "max"
    assert guess_goal("workloads.feed.latency_s.p99") == "min"
    assert guess_goal("workloads.feed.queue_wait_s.mean") == "min"
    assert guess_goal("totals.avg_power_w") == "min"
    assert guess_goal("totals.energy_j") == "min"
    assert guess_goal("workloads.feed.sla_attainment") == "max"


def synthetic_store(folder: Path) -> None:
    """Four points of a chip axis (two replicates each) with known means, and one failure."""
    points = {
        "a": [(10, 1.0e-3), (10, 1.0e-3)],
        "b": [(19, 2.0e-3), (21, 2.0e-3)],  # mean (20, 2 ms): dominated by d
        "c": [(15, 3.0e-3), (15, 3.0e-3)],  # dominated by b and d
        "d": [(20, 1.4e-3), (20, 1.6e-3)],  # mean (20, 1.5 ms)
    }
    rows = []
    for chip, reps in points.items():
        for k, (qpj, p99) in enumerate(reps):
            meta = {
                "run_id": f"{chip}{k}",
                "axes": {"pools.p.chip": chip},
                "replicate": k,
                "seed": k,
            }
            metrics = {
                "totals.queries_per_j": qpj,
                "workloads.w.latency_s.p99": p99,
                "workloads.w.sla.met": f"{chip}{k}" != "d1",  # d missed its SLA once
            }
            rows.append(make_row(meta, status="ok", error=None, wall_s=0.1, metrics=metrics))
    meta = {"run_id": "e0", "axes": {"pools.p.chip": "e"}, "replicate": 0, "seed": 0}
    rows.append(make_row(meta, status="failed", error="boom", wall_s=0.1))
    manifest = {"study": "syn", "fingerprint": "x", "runs": [{"run_id": r["run_id"]} for r in rows]}
    with StoreWriter(folder, manifest, resume=False) as store:
        for row in rows:
            store.append(row)


def test_pareto_command_prints_and_writes_the_frontier(tmp_path: Path) -> None:
    synthetic_store(tmp_path / "s")
    args = (
        "pareto",
        tmp_path / "s",
        "--x",
        "totals.queries_per_j",
        "--y",
        "workloads.w.latency_s.p99",
    )
    result = invoke(*args, "--json", tmp_path / "front.json")
    assert_ok(result)
    text = out(result)
    assert "maximise totals.queries_per_j, minimise workloads.w.latency_s.p99" in text
    assert "2 of 4 points on the frontier; 1 left out (no value, or an SLA missed)" in text
    doc = json.loads((tmp_path / "front.json").read_text())
    front = [(p["axes"]["pools.p.chip"], p["x"], p["y"], p["runs"]) for p in doc["frontier"]]
    assert front == [("a", 10.0, 1.0e-3, 2), ("d", 20.0, pytest.approx(1.5e-3), 2)]
    assert doc["dominated"] == 2 and doc["excluded"] == 1

    # Both minimised instead: the cheapest-latency corner wins alone.
    flipped = invoke(*args, "--x-goal", "min", "--json", "-")
    assert_ok(flipped)
    only = json.loads(flipped.stdout)["frontier"]
    assert [p["axes"]["pools.p.chip"] for p in only] == ["a"]

    # Among the points that always met their SLA, b is no longer dominated by d.
    met = invoke(*args, "--sla-met", "--json", "-")
    assert_ok(met)
    doc = json.loads(met.stdout)
    assert [p["axes"]["pools.p.chip"] for p in doc["frontier"]] == ["a", "b"]
    assert doc["excluded"] == 2  # d, and the failed e


def test_pareto_names_a_misspelt_metric(tmp_path: Path) -> None:
    synthetic_store(tmp_path / "s")
    result = invoke("pareto", tmp_path / "s", "--x", "totals.queries_per_jj", "--y", "wall_s")
    (line,) = error_lines(result)
    assert "no metric 'totals.queries_per_jj'" in line
    assert "did you mean totals.queries_per_j" in line


def test_analysis_of_a_folder_without_results_is_a_clear_error(tmp_path: Path) -> None:
    (line,) = error_lines(invoke("pareto", tmp_path, "--x", "a", "--y", "b"))
    assert "no sweep results here" in line


# ------------------------------------------------------------------ export


def test_csv_export_has_one_row_per_run_and_every_column(tmp_path: Path) -> None:
    synthetic_store(tmp_path / "s")
    with (tmp_path / "s" / "runs.jsonl").open("ab") as handle:
        handle.write(b'{"run_id": "torn", "sta')  # a sweep killed mid-write
    result = invoke("export", tmp_path / "s", "--csv", "-")
    assert_ok(result)
    assert "ignored a torn last line" in err(result)
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["run_id"] for r in table] == ["a0", "a1", "b0", "b1", "c0", "c1", "d0", "d1", "e0"]
    assert list(table[0])[:7] == [
        "run_id",
        "status",
        "error",
        "wall_s",
        "replicate",
        "seed",
        "axis.pools.p.chip",
    ]
    assert table[2]["totals.queries_per_j"] == "19"
    assert table[-1]["status"] == "failed" and table[-1]["error"] == "boom"
    assert table[-1]["totals.queries_per_j"] == ""

    written = invoke("export", tmp_path / "s", "--csv", tmp_path / "rows.csv")
    assert_ok(written)
    assert (tmp_path / "rows.csv").read_text() == result.stdout
    assert "wrote" in err(written) and "9 rows" in err(written)


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic_store(tmp_path / "s")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    (line,) = error_lines(invoke("export", tmp_path / "s", "--parquet", tmp_path / "x.parquet"))
    assert line == 'error: Parquet export needs pyarrow: pip install -e ".[parquet]" (or use --csv)'
    assert not (tmp_path / "x.parquet").exists()


def test_parquet_export_round_trips(tmp_path: Path) -> None:
    pq = pytest.importorskip(
        "pyarrow.parquet", reason="pyarrow is not installed (the parquet extra)"
    )
    synthetic_store(tmp_path / "s")
    assert_ok(invoke("export", tmp_path / "s", "--parquet", tmp_path / "x.parquet"))
    table = pq.read_table(tmp_path / "x.parquet").to_pylist()
    assert len(table) == 9
    assert table[0]["axis.pools.p.chip"] == "a" and table[0]["totals.queries_per_j"] == 10


def test_export_needs_a_format(tmp_path: Path) -> None:
    synthetic_store(tmp_path / "s")
    (line,) = error_lines(invoke("export", tmp_path / "s"))
    assert line == "error: give --csv FILE and/or --parquet FILE"


# ------------------------------------------------------------------ compare


def test_compare_shows_both_scenarios_and_their_ratios(tmp_path: Path) -> None:
    scenario = write_world(tmp_path, count=1)
    result = invoke(
        "compare",
        scenario,
        scenario,
        "--set-b",
        "pools.p.count=2",
        "-m",
        "pools.*.chips",
        "-m",
        "totals.avg_power_w",
        "--json",
        "-",
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    by_key = {m["metric"]: m for m in doc["metrics"]}
    assert set(by_key) == {"pools.p.chips", "totals.avg_power_w"}
    assert (by_key["pools.p.chips"]["a"], by_key["pools.p.chips"]["b"]) == (1, 2)
    assert by_key["pools.p.chips"]["ratio"] == 2.0
    # Two chips idle at 10 W each: the power ratio is above 1 and below 2 + dynamic share.
    assert 1.0 < by_key["totals.avg_power_w"]["ratio"] < 2.5

    # Result documents compare the same way, and the table shows the ratio.
    assert_ok(invoke("run", scenario, "-q", "--json", tmp_path / "a.json"))
    assert_ok(
        invoke("run", scenario, "-q", "--set", "pools.p.count=2", "--json", tmp_path / "b.json")
    )
    table = invoke("compare", tmp_path / "a.json", tmp_path / "b.json", "-m", "pools.p.chips")
    assert_ok(table)
    row = next(line for line in out(table).splitlines() if "pools.p.chips" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["pools.p.chips", "1", "2", "2"]


def test_compare_errors(tmp_path: Path) -> None:
    scenario = write_world(tmp_path)
    (line,) = error_lines(invoke("compare", scenario, scenario, "-m", "nothing.*"))
    assert line == "error: no metric matches nothing.*"
    (line,) = error_lines(invoke("compare", tmp_path / "none.json", scenario))
    assert "none.json: file not found" in line


# ------------------------------------------------------------------ searches


def threshold(limit: float, calls: list[float]) -> Any:
    def evaluate(x: float) -> Probe:
        calls.append(x)
        ok = x <= limit
        return Probe(x, ok, (0.0 if ok else 1.0,))

    return evaluate


@pytest.mark.parametrize("start", [1.0, 700.0, 1234.5, 5000.0, 1e6])
def test_rate_search_brackets_then_bisects(start: float) -> None:
    calls: list[float] = []
    result = search_max_rate(threshold(1234.5, calls), start, rel_tol=0.001)
    assert result.best is not None and result.fails_at is not None
    assert result.best <= 1234.5 < result.fails_at
    assert result.fails_at - result.best <= 0.001 * result.fails_at
    assert len(result.probes) == len(calls) < 40


def test_rate_search_edges() -> None:
    never = search_max_rate(threshold(-1, []), 100.0)
    assert never.best is None and "not sustained" in never.note
    # Doubling stops at the limit, which is probed: the answer is a lower bound.
    always = search_max_rate(threshold(1e12, []), 100.0, limit=1e4)
    assert always.best == 1e4 and always.fails_at is None and always.at_least
    assert [p.value for p in always.probes][-2:] == [6400.0, 1e4]
    with_bounds = search_max_rate(threshold(1234.5, []), 1.0, low=1000, high=2000, rel_tol=0.01)
    assert with_bounds.probes[0].value == 1000 and with_bounds.probes[1].value == 2000
    assert with_bounds.best is not None and 1222 < with_bounds.best <= 1234.5
    too_low = search_max_rate(threshold(1234.5, []), 1.0, high=1000)
    assert too_low.best == 1000 and "raise it" in too_low.note and too_low.at_least
    # A value known to fail is not probed again; stepping down from it is finer.
    calls: list[float] = []
    known = search_max_rate(threshold(1000, calls), 1100, failing=1100, step=1.25, rel_tol=0.01)
    assert calls[0] == 1100 / 1.25 and known.best is not None and 990 < known.best <= 1000


@pytest.mark.parametrize("start", [1, 2, 36, 37, 38, 100, 5000])
def test_count_search_finds_the_smallest_sustaining_count(start: int) -> None:
    def evaluate(n: float) -> Probe:
        return Probe(n, n >= 37)

    result = search_min_count(evaluate, start)
    assert result.best == 37 and result.fails_at == 36
    assert search_min_count(lambda n: Probe(n, False), 3, limit=64).best is None
