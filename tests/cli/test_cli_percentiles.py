"""`accelsim run --percentiles`: exact records or streamed summaries with sketches."""

from __future__ import annotations

from pathlib import Path

from clikit import SHORT, invoke, json_stdout, one_error

from accelsim.metrics.sketch import RELATIVE_ERROR


def run_json(*args: object) -> dict:  # type: ignore[type-arg]
    return json_stdout(invoke("run", *SHORT, *args, "--json", "-"))  # type: ignore[no-any-return]


def test_small_runs_are_exact_and_unmarked_by_default() -> None:
    doc = run_json()
    for entry in doc["workloads"].values():
        assert "method" not in entry["latency_s"]
        assert "observed_method" not in (entry["sla"] or {})
    assert run_json("--percentiles", "exact") == doc


def test_sketch_marks_every_distribution_it_estimates() -> None:
    exact, sketch = run_json(), run_json("--percentiles", "sketch")
    for name, entry in sketch["workloads"].items():
        for series in ("latency_s", "queue_wait_s"):
            assert entry[series]["method"] == "sketch"
            assert entry[series]["relative_error"] == RELATIVE_ERROR
        assert entry["sla"]["observed_method"] == "sketch"
        assert entry["completed"] == exact["workloads"][name]["completed"]
        p99 = exact["workloads"][name]["latency_s"]["p99"]
        assert abs(entry["latency_s"]["p99"] - p99) <= 0.01 * p99


def test_a_report_needs_exact_percentiles(tmp_path: Path) -> None:
    line = one_error(
        invoke("run", *SHORT, "--percentiles", "sketch", "--report", tmp_path / "r.html")
    )
    assert line == "error: --report draws exact latency CDFs: it needs --percentiles exact"
    assert not (tmp_path / "r.html").exists()


def test_an_unknown_method_is_refused() -> None:
    result = invoke("run", *SHORT, "--percentiles", "approximate")
    assert result.exit_code == 2
    assert "approximate" in result.output
