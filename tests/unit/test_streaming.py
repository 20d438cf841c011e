"""Streamed runs: the ranking fleet hands its records over in chunks and keeps none;
the summaries must equal those of a run that keeps every record (counts, means, energy
and power exactly, to the last bits of a sum), and its percentiles must lie within the
sketch's stated relative error of the exact sample values."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from accelsim.config.checks import STREAM_ABOVE_REQUESTS, memory_estimate_bytes
from accelsim.config.schema import (
    BurstyTraffic,
    EmpiricalSize,
    ExponentialSize,
    FixedSize,
    LognormalSize,
    PoissonTraffic,
    UniformSize,
)
from accelsim.engine.arrivals import (
    STREAM_BLOCK,
    sample_arrivals,
    streamed_arrivals,
    workload_rng,
)
from accelsim.engine.records import RunRecords
from accelsim.engine.simulation import simulate
from accelsim.metrics.power import peak_dynamic_power_w
from accelsim.metrics.ranking import METRICS
from accelsim.metrics.sketch import RELATIVE_ERROR
from accelsim.metrics.streaming import (
    PeakTracker,
    RankingStream,
    record_sinks,
)
from accelsim.metrics.summary import summarize
from accelsim.runner import load_checked
from helpers import resolved

SHIPPED = ["ranking-mtia-vs-gpu", "ranking-heterogeneous-fleet", "mixed-fleet-ranking-and-llm"]
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
BOUND = RELATIVE_ERROR * (1 + 1e-9)


@pytest.mark.parametrize(
    "sizes",
    [
        FixedSize(kind="fixed", value=7),
        LognormalSize(kind="lognormal", median=20, sigma=0.6, max=2000),
        ExponentialSize(kind="exponential", mean=30, max=500),
        EmpiricalSize(kind="empirical", quantiles=[(0.0, 1), (0.5, 10), (1.0, 100)]),
    ],
)
def test_streamed_arrivals_are_the_sampled_ones_block_by_block(sizes: Any) -> None:
    traffic = PoissonTraffic(kind="poisson", rate_per_s=50_000)
    end_s = 3.1  # about 155,000 arrivals: several blocks, and a second block of gaps
    times, items = sample_arrivals(traffic, sizes, None, end_s, workload_rng(4, "w"))
    blocks = streamed_arrivals(traffic, sizes, end_s, workload_rng(4, "w"))
    assert blocks is not None
    got = list(blocks)
    assert max(len(t) for t, _ in got) == STREAM_BLOCK
    assert np.array_equal(np.concatenate([t for t, _ in got]), times)
    assert np.array_equal(np.concatenate([i for _, i in got]), items)


def test_traffic_that_cannot_be_drawn_in_blocks_is_not_streamed() -> None:
    poisson = PoissonTraffic(kind="poisson", rate_per_s=10)
    bursty = BurstyTraffic(
        kind="bursty", rate_per_s=10, burst_rate_per_s=100, calm_s=1, burst_s=0.1
    )
    fixed = FixedSize(kind="fixed", value=1)
    uniform = UniformSize(kind="uniform", low=1, high=9)
    assert streamed_arrivals(poisson, uniform, 1.0, workload_rng(1, "w")) is None
    assert streamed_arrivals(bursty, fixed, 1.0, workload_rng(1, "w")) is None


def test_peak_tracker_fed_in_chunks_equals_the_one_pass_sweep() -> None:
    rng = np.random.default_rng(11)
    n, devices = 5_000, 7
    starts = np.sort(rng.uniform(0, 10, n))
    ends = starts + rng.exponential(0.02 * devices, n)
    energy = rng.uniform(0, 5, n)
    ends[::50] = starts[::50]  # some zero-length intervals, which draw nothing
    w0, w1 = 1.0, 9.0
    tracker = PeakTracker(w0, w1)
    cuts = [0, 1, 700, 701, 2_500, 4_999, n]
    for a, b in itertools.pairwise(cuts):
        settled = starts[b] if b < n else math.inf  # later chunks start no earlier
        tracker.add(starts[a:b], ends[a:b], energy[a:b], settled)
    exact = peak_dynamic_power_w(starts, ends, energy, w0, w1)
    assert exact > 0
    assert tracker.peak == pytest.approx(exact, rel=1e-12)


def test_auto_streams_only_runs_above_the_threshold() -> None:
    def sinks(rate: float, percentiles: Any) -> dict[str, Any]:
        res = resolved(
            rate_per_s=rate, sizes={"kind": "fixed", "value": 10}, duration_s=10, warmup_s=0
        )
        return record_sinks(res, percentiles)

    at_threshold = STREAM_ABOVE_REQUESTS / 10
    assert sinks(at_threshold, "auto") == {}
    assert isinstance(sinks(at_threshold * 1.01, "auto")["ranking"], RankingStream)
    assert sinks(at_threshold * 10, "exact") == {}
    assert isinstance(sinks(1.0, "sketch")["ranking"], RankingStream)
    with pytest.raises(ValueError, match="percentiles"):
        sinks(1.0, "approximate")


def test_a_streamed_run_is_budgeted_for_its_queued_queries_only() -> None:
    # 10M expected queries: kept, 80 + 240 bytes each; streamed, at most 120 each (queued).
    res = resolved(rate_per_s=1e6, sizes={"kind": "fixed", "value": 10}, duration_s=10, warmup_s=0)
    assert memory_estimate_bytes(res, "exact")["w"] == pytest.approx(10e6 * 320)
    assert memory_estimate_bytes(res, "auto")["w"] == pytest.approx(10e6 * 120)
    uniform = resolved(
        rate_per_s=1e6, sizes={"kind": "uniform", "low": 1, "high": 9}, duration_s=10, warmup_s=0
    )
    # arrivals drawn whole add their 16 bytes
    assert memory_estimate_bytes(uniform, "sketch")["w"] == pytest.approx(10e6 * 136)


def _latencies(records: RunRecords, workload: str) -> dict[str, np.ndarray]:
    """Exact samples of a ranking workload's completed window queries, by series."""
    fleet = records.fleets["ranking"]
    rec = fleet.workloads[workload]
    done = (rec.arrival_s >= records.warmup_s) & (rec.arrival_s < records.end_s)
    done &= ~np.isnan(rec.finish_s)
    pool = np.array([s.pool for s in fleet.stations])[rec.station[done]]
    latency = rec.finish_s[done] - rec.arrival_s[done]
    out = {"latency_s": latency, "queue_wait_s": rec.start_s[done] - rec.arrival_s[done]}
    for name in set(pool):
        out[f"by_pool.{name}"] = latency[pool == name]
    return out


def _within(estimate: float, sample: np.ndarray, q: float) -> None:
    exact = float(np.sort(sample)[math.floor(q * (sample.size - 1))])
    assert abs(estimate - exact) <= BOUND * exact, (estimate, exact, q)


def _close_intervals(exact: dict[str, Any], streamed: dict[str, Any], path: str) -> None:
    assert set(exact) == set(streamed), path
    for key, bounds in exact.items():
        for end in ("low", "high"):
            if bounds[end] is None:
                assert streamed[key][end] is None, (path, key, end)
            else:
                value = streamed[key][end]
                assert abs(value - bounds[end]) <= BOUND * bounds[end], (path, key, end)


def _compare(
    exact: Any, streamed: Any, path: str, samples: dict[str, np.ndarray], rel: float = 1e-9
) -> None:
    if isinstance(exact, dict):
        if streamed.get("method") == "sketch":
            assert streamed["relative_error"] == RELATIVE_ERROR
            series = path.rsplit(".", 1)[-1]
            if series == "latency_s" and ".by_pool." in path:
                series = "by_pool." + path.split(".by_pool.")[1].split(".")[0]
            for key, q in QUANTILES.items():
                _within(streamed[key], samples[series], q)
            for key in ("mean", "max"):
                assert streamed[key] == pytest.approx(exact[key], rel=1e-12), path
            # The intervals: the same order statistics, read from the sketch.
            _close_intervals(exact["ci95"], streamed["ci95"], path)
            assert streamed["too_few_samples"] == exact["too_few_samples"], path
            return
        if "observed_method" in streamed:
            assert streamed.pop("observed_method") == "sketch"
            _within(streamed["observed_latency_s"], samples["latency_s"], exact["percentile"] / 100)
            streamed["observed_latency_s"] = exact["observed_latency_s"]
            _close_intervals(
                {"sla": exact["observed_latency_ci95_s"]},
                {"sla": streamed["observed_latency_ci95_s"]},
                path,
            )
            streamed["observed_latency_ci95_s"] = exact["observed_latency_ci95_s"]
        assert set(exact) == set(streamed), path
        for key in exact:
            _compare(exact[key], streamed[key], f"{path}.{key}", samples, rel)
    elif isinstance(exact, list):
        assert len(exact) == len(streamed), path
        for a, b in zip(exact, streamed, strict=True):
            _compare(a, b, path, samples, rel)
    elif isinstance(exact, float):
        assert streamed == pytest.approx(exact, rel=rel, abs=1e-12), path
    else:
        assert streamed == exact, path


@pytest.mark.parametrize("name", SHIPPED)
def test_a_streamed_shipped_scenario_matches_the_exact_run(name: str) -> None:
    res = load_checked(name)
    records = simulate(res)
    exact = summarize(res, records)
    sinks = record_sinks(res, "sketch")
    streamed_records = simulate(res, sinks=sinks)
    streamed = summarize(res, streamed_records)
    assert not streamed_records.fleets["ranking"].workloads  # no per-query records kept
    with pytest.raises(KeyError):
        streamed_records.requests(next(iter(sinks["ranking"].workloads)))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="exact percentiles"):
        METRICS.samples(streamed_records.fleets["ranking"], 0.0, 1.0)
    if "llm" in records.fleets:
        # The totals' peak adds the streamed fleet's peak to the LLM fleet's: a bound.
        for key in ("peak_power_w", "facility_peak_power_w"):
            assert streamed["totals"][key] >= exact["totals"][key]
            streamed["totals"][key] = exact["totals"][key]
    for workload, entry in exact["workloads"].items():
        if entry["kind"] != "ranking":
            assert streamed["workloads"][workload] == entry  # the LLM fleet keeps its records
            continue
        _compare(entry, streamed["workloads"][workload], workload, _latencies(records, workload))
    for key in ("pools", "totals", "warnings", "window_s", "config"):
        _compare(exact[key], streamed[key], key, {})
    # A bin's integral is a difference of prefix sums over every interval, summed chunk by
    # chunk when streamed: both carry the rounding of that cancellation.
    _compare(exact["timeline"], streamed["timeline"], "timeline", {}, rel=1e-6)
