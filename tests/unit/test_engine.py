"""Engine behaviour: batching, splitting, routing, warm-up, conservation, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario, Trace
from accelsim.config.schema import Scenario
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel
from helpers import chip, model, resolved


def run(res: ResolvedScenario) -> dict:  # type: ignore[type-arg]
    return summarize(res, simulate(res))


def test_low_load_latency_is_max_wait_plus_service() -> None:
    # At a trickle a query waits the full max_wait for company, then runs alone.
    service = RankingCostModel(model(), chip()).batch(100).time_s
    res = resolved(
        rate_per_s=5.0,
        sizes={"kind": "fixed", "value": 100},
        batching={"max_batch_items": 1024, "max_wait_s": 0.002},
        duration_s=20,
    )
    lat = run(res)["workloads"]["w"]["latency_s"]
    assert lat["p50"] == pytest.approx(0.002 + service, rel=1e-6)


def test_batches_fill_up_to_the_item_limit_under_load() -> None:
    service = RankingCostModel(model(), chip()).batch(10).time_s
    res = resolved(
        rate_per_s=20 / service,  # far more than one chip can do one query at a time
        sizes={"kind": "fixed", "value": 10},
        batching={"max_batch_items": 80, "max_wait_s": 0.001},
        duration_s=0.5,
        warmup_s=0.1,
    )
    records = simulate(res)
    assert records.fleets["ranking"].batches.items.max() == 80
    assert records.fleets["ranking"].batches.items.mean() > 40
    doc = summarize(res, records)
    assert doc["pools"]["p"]["mean_batch_items"] > 40


def test_batching_off_gives_one_query_per_batch() -> None:
    res = resolved(rate_per_s=2000, sizes={"kind": "uniform", "low": 1, "high": 50}, duration_s=2)
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    done = ~np.isnan(wl.finish_s)
    assert len(records.fleets["ranking"].batches.items) == int((~np.isnan(wl.start_s)).sum())
    assert records.fleets["ranking"].batches.items.sum() == wl.items[~np.isnan(wl.start_s)].sum()
    assert done.sum() > 0


@pytest.mark.parametrize("overlap", [True, False])
def test_large_queries_are_split_and_finish_with_their_last_piece(overlap: bool) -> None:
    the_chip = chip(host_link={"bandwidth_bytes_per_s": 16e6, "dma": overlap})
    cm = RankingCostModel(model(), the_chip)
    res = resolved(
        rate_per_s=1.0,
        sizes={"kind": "fixed", "value": 1000},
        batching={"max_batch_items": 256, "max_wait_s": 0},
        duration_s=30,
        the_chip=the_chip,
    )
    records = simulate(res)
    assert set(records.fleets["ranking"].batches.items.tolist()) <= {256, 232}
    wl = records.fleets["ranking"].workloads["w"]
    done = ~np.isnan(wl.finish_s)
    # One chip runs the four pieces back to back (no other traffic at this rate).
    if overlap:
        # Each piece's input copy starts when the previous piece starts computing; on
        # this chip the copy (320 us for 256 items) dwarfs the rest (29 ns), so the
        # copies run back to back and the last piece then computes.
        expected = 3 * cm.input_copy_s(256) + cm.batch(232).time_s
    else:
        expected = 3 * cm.batch(256).time_s + cm.batch(232).time_s
    assert np.allclose(wl.finish_s[done] - wl.arrival_s[done], expected, rtol=1e-9)


def test_pieces_of_one_query_run_in_parallel_on_a_shared_queue() -> None:
    cm = RankingCostModel(model(), chip())
    res = resolved(
        rate_per_s=1.0,
        sizes={"kind": "fixed", "value": 1024},
        count=4,
        batching={"max_batch_items": 256, "max_wait_s": 0},
        duration_s=30,
    )
    wl = simulate(res).fleets["ranking"].workloads["w"]
    done = ~np.isnan(wl.finish_s)
    assert np.allclose(wl.finish_s[done] - wl.arrival_s[done], cm.batch(256).time_s, rtol=1e-9)


def test_warmup_arrivals_are_excluded_and_nothing_is_lost() -> None:
    res = resolved(
        rate_per_s=3000, sizes={"kind": "fixed", "value": 8}, duration_s=2.0, warmup_s=1.0
    )
    records = simulate(res)
    doc = summarize(res, records)["workloads"]["w"]
    arrivals = records.fleets["ranking"].workloads["w"].arrival_s
    assert doc["offered"] == int(((arrivals >= 1.0) & (arrivals < 3.0)).sum())
    assert doc["offered"] == doc["completed"] + doc["dropped"] + doc["in_flight"]
    assert 5000 < doc["offered"] < 7000


def test_overload_leaves_queries_in_flight_and_warns() -> None:
    service = RankingCostModel(model(), chip()).batch(100).time_s
    res = resolved(
        rate_per_s=3 / service, sizes={"kind": "fixed", "value": 100}, duration_s=0.5, warmup_s=0
    )
    doc = run(res)
    w = doc["workloads"]["w"]
    assert w["in_flight"] > w["offered"] / 2
    assert doc["pools"]["p"]["utilization"] == pytest.approx(1.0, abs=0.01)
    assert any("cannot keep up" in text for text in doc["warnings"])


def test_same_seed_same_document_and_new_seed_new_document() -> None:
    base = dict(rate_per_s=2000, sizes={"kind": "lognormal", "median": 20, "sigma": 1.0})
    one = json.dumps(run(resolved(**base, seed=3, duration_s=1)))  # type: ignore[arg-type]
    two = json.dumps(run(resolved(**base, seed=3, duration_s=1)))  # type: ignore[arg-type]
    other = json.dumps(run(resolved(**base, seed=4, duration_s=1)))  # type: ignore[arg-type]
    assert one == two
    assert one != other


def test_round_robin_spreads_queries_evenly_across_chips() -> None:
    res = resolved(
        rate_per_s=4000, sizes={"kind": "fixed", "value": 4}, count=4, policy="round_robin"
    )
    stations = simulate(res).fleets["ranking"].workloads["w"].station
    counts = np.bincount(stations, minlength=4)
    assert counts.max() - counts.min() <= 1


def test_join_shortest_queue_beats_round_robin_on_the_tail() -> None:
    service = RankingCostModel(model(), chip()).batch(200).time_s
    kwargs = dict(
        rate_per_s=4 * 0.85 / service,
        sizes={"kind": "exponential", "mean": 200},
        count=4,
        duration_s=20000 * service,
        warmup_s=100 * service,
    )
    rr = run(resolved(policy="round_robin", **kwargs))["workloads"]["w"]["latency_s"]  # type: ignore[arg-type]
    jsq = run(resolved(policy="join_shortest_queue", **kwargs))["workloads"]["w"]["latency_s"]  # type: ignore[arg-type]
    assert jsq["p99"] < 0.8 * rr["p99"]


def test_two_workloads_share_a_pool_without_mixing_batches() -> None:
    base = resolved(rate_per_s=1000, sizes={"kind": "fixed", "value": 16})
    data = base.scenario.model_dump()
    data["workloads"]["v"] = {
        **data["workloads"]["w"],
        "items_per_query": {"kind": "fixed", "value": 3},
    }
    data["pools"]["p"]["serves"] = ["w", "v"]
    data["pools"]["p"]["batching"] = {"max_batch_items": 64, "max_wait_s": 0.001}
    scenario = Scenario.model_validate(data)
    res = ResolvedScenario(scenario, "<test>", base.chips, {"w": model(), "v": model()}, {})
    records = simulate(res)
    doc = summarize(res, records)
    for name, size in (("w", 16), ("v", 3)):
        assert doc["workloads"][name]["completed"] > 5000
        items = records.fleets["ranking"].batches.items[
            records.fleets["ranking"].batches.workload == list(scenario.workloads).index(name)
        ]
        assert np.all(items % size == 0)


def test_trace_replay_uses_the_trace_times_and_sizes() -> None:
    base = resolved(rate_per_s=1, sizes={"kind": "fixed", "value": 1}, duration_s=5, warmup_s=0)
    data = base.scenario.model_dump()
    data["workloads"]["w"]["traffic"] = {"kind": "trace", "path": "x.csv", "time_scale": 2.0}
    times = np.array([0.0, 0.5, 1.0, 2.0, 10.0])
    trace = Trace("x.csv", times, {"items": np.array([1, 2, 3, 4, 5])})
    res = ResolvedScenario(
        Scenario.model_validate(data), "<test>", base.chips, base.models, {"w": trace}
    )
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    assert wl.arrival_s.tolist() == [0.0, 1.0, 2.0, 4.0]  # scaled by 2, cut at the 5 s end
    assert wl.items.tolist() == [1, 2, 3, 4]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(min_value=10, max_value=20000),
    count=st.integers(min_value=1, max_value=4),
    max_items=st.integers(min_value=1, max_value=512),
    max_wait=st.sampled_from([0.0, 1e-4, 1e-3]),
    policy=st.sampled_from(["round_robin", "join_shortest_queue", "least_work", "shared_queue"]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_invariants_hold_on_random_scenarios(
    rate: float, count: int, max_items: int, max_wait: float, policy: str, seed: int
) -> None:
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "lognormal", "median": 30, "sigma": 1.0, "max": 2000},
        count=count,
        batching={"max_batch_items": max_items, "max_wait_s": max_wait},
        policy=policy,
        duration_s=0.3,
        warmup_s=0.05,
        seed=seed,
    )
    records = simulate(res)
    doc = summarize(res, records)
    w = doc["workloads"]["w"]
    assert w["offered"] == w["completed"] + w["dropped"] + w["in_flight"]
    assert 0.0 <= doc["pools"]["p"]["utilization"] <= 1.0 + 1e-9
    wl = records.fleets["ranking"].workloads["w"]
    done = ~np.isnan(wl.finish_s)
    cm = RankingCostModel(model(), chip())
    # A query takes at least the time of its smallest piece, and starts after it arrives.
    assert np.all(wl.finish_s[done] - wl.arrival_s[done] >= cm.batch(1).time_s * (1 - 1e-9))
    assert np.all(wl.start_s[done] >= wl.arrival_s[done])
    assert np.all(records.fleets["ranking"].batches.items <= max_items)
    # No chip runs two batches at once.
    for device in np.unique(records.fleets["ranking"].batches.device):
        sel = records.fleets["ranking"].batches.device == device
        starts, ends = (
            records.fleets["ranking"].batches.start_s[sel],
            records.fleets["ranking"].batches.end_s[sel],
        )
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)
    assert_no_negative_or_nan(doc)


def assert_no_negative_or_nan(node: object, path: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            assert_no_negative_or_nan(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            assert_no_negative_or_nan(value, f"{path}[{i}]")
    elif isinstance(node, float):
        assert node == node and node >= 0, path  # not NaN, not negative


def test_littles_law_holds_on_the_window() -> None:
    service = RankingCostModel(model(), chip()).batch(50).time_s
    res = resolved(
        rate_per_s=0.7 * 2 / service,
        sizes={"kind": "uniform", "low": 10, "high": 90},
        count=2,
        policy="join_shortest_queue",
        duration_s=40000 * service,
        warmup_s=500 * service,
    )
    records = simulate(res)
    doc = summarize(res, records)["workloads"]["w"]
    wl = records.fleets["ranking"].workloads["w"]
    w0, w1 = records.warmup_s, records.end_s
    finish = np.where(np.isnan(wl.finish_s), w1, wl.finish_s)
    in_system = np.clip(np.minimum(finish, w1) - np.maximum(wl.arrival_s, w0), 0, None)
    mean_in_system = in_system.sum() / (w1 - w0)
    arrival_rate = doc["offered"] / (w1 - w0)
    assert mean_in_system == pytest.approx(arrival_rate * doc["latency_s"]["mean"], rel=0.02)


def test_least_work_favours_the_faster_chips_of_a_mixed_fleet() -> None:
    """One fast pool and one 4x slower pool share a workload of exponential query sizes.
    Join-shortest-queue counts queries, whatever their size and the chip's speed;
    least_work weighs each chip's backlog in seconds, plus the query's own work on that
    chip, so it sends the fast chip more of the work and cuts the tail."""
    from accelsim.validation.reference import fleet_scenario

    fast = chip()
    slow_data = fast.model_dump()
    slow_data["name"] = "slow-chip"
    slow_data["host_link"]["bandwidth_bytes_per_s"] /= 4
    slow = chip(**{k: v for k, v in slow_data.items() if k != "name"}, name="slow-chip")
    service = RankingCostModel(model(), fast).batch(100).time_s

    def run_with(policy: str) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
        res = fleet_scenario(
            workloads={
                "w": {"rate_per_s": 0.6 / service, "sizes": {"kind": "exponential", "mean": 100}}
            },
            pools={
                "fast": {"chip": fast, "count": 1, "serves": ["w"]},
                "slow": {"chip": slow, "count": 1, "serves": ["w"]},
            },
            policy=policy,
            duration_s=5000 * service,
            warmup_s=100 * service,
            model=model(),
        )
        records = simulate(res)
        return summarize(res, records)["workloads"]["w"], records.fleets["ranking"].workloads[
            "w"
        ].station

    jsq, jsq_stations = run_with("join_shortest_queue")
    lw, lw_stations = run_with("least_work")
    fast_share_jsq = float((jsq_stations == 0).mean())
    fast_share_lw = float((lw_stations == 0).mean())
    assert fast_share_lw > fast_share_jsq + 0.03
    assert lw["latency_s"]["mean"] < 0.85 * jsq["latency_s"]["mean"]
    assert lw["latency_s"]["p99"] < 0.7 * jsq["latency_s"]["p99"]
    assert lw["offered"] == lw["completed"] + lw["in_flight"]


def _bytes_per_record(records: object) -> float:
    arrays = [v for v in vars(records).values() if isinstance(v, np.ndarray)]
    return sum(a.nbytes for a in arrays) / len(arrays[0])


@pytest.mark.parametrize(
    "name", ["mixed-fleet-ranking-and-llm", "mdc-teaching", "llm-contemplating"]
)
def test_the_memory_estimate_covers_the_records_a_run_keeps(name: str) -> None:
    """The pre-flight estimate's bytes per record leave room for the copies a run makes
    of what the engine's typed arrays keep (measured peaks are 1.5 to 4 times those), and
    its counts of batch and iteration records bound the counts a run makes."""
    from accelsim.config import checks
    from accelsim.runner import load_checked

    records = simulate(load_checked(name, ["simulation.duration_s=2"]))
    ranking, llm = records.fleets.get("ranking"), records.fleets.get("llm")
    if ranking is not None:
        queries = sum(len(w.arrival_s) for w in ranking.workloads.values())
        for workload in ranking.workloads.values():
            assert 1.5 * _bytes_per_record(workload) < checks.RANKING_QUERY_BYTES
        assert 4 * _bytes_per_record(ranking.batches) < checks.RANKING_BATCH_BYTES
        assert len(ranking.batches.start_s) <= queries  # no query here is split
    if llm is not None:
        for workload in llm.workloads.values():
            assert 2 * _bytes_per_record(workload) < checks.LLM_REQUEST_BYTES
        assert 2 * _bytes_per_record(llm.iterations) < checks.LLM_ITERATION_BYTES
        sequences = sum(
            len(w.arrival_s) + int(w.branches_spawned.sum()) for w in llm.workloads.values()
        )
        assert len(llm.iterations.start_s) < checks.LLM_ITERATIONS_PER_SEQUENCE * sequences
