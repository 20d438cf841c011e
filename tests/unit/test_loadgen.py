"""LoadGen traffic: offline (every request at time 0) and closed loops of users, against
hand-computed makespans and throughputs (the interactive response-time law)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Scenario
from accelsim.engine.loadgen import SIZE_BLOCK
from accelsim.engine.simulation import simulate
from accelsim.errors import ConfigError
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel
from accelsim.runner import load_checked
from helpers import chip, llm_resolved, model, resolved

SIZE = 100  # items of every ranking query
SERVICE_S = RankingCostModel(model(), chip()).batch(SIZE).time_s  # one query alone


def with_traffic(res: ResolvedScenario, traffic: dict[str, Any], **sim: float) -> ResolvedScenario:
    """``res`` with workload ``w``'s traffic and simulation fields replaced."""
    data = res.scenario.model_dump(mode="json")
    data["workloads"]["w"]["traffic"] = traffic
    data["simulation"].update(sim)
    return dataclasses.replace(res, scenario=Scenario.model_validate(data))


def ranking(count: int, traffic: dict[str, Any], **sim: float) -> ResolvedScenario:
    base = resolved(rate_per_s=1.0, sizes={"kind": "fixed", "value": SIZE}, count=count)
    return with_traffic(base, traffic, **sim)


def test_closed_loop_without_queueing_runs_at_users_over_response_plus_think() -> None:
    # Two users, four chips: nobody waits, every response is one query's service time.
    think = 3 * SERVICE_S
    cycle = SERVICE_S + think
    res = ranking(4, {"kind": "closed_loop", "users": 2, "think_s": think}, duration_s=2000 * cycle)
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    assert np.allclose(wl.finish_s - wl.arrival_s, SERVICE_S, rtol=1e-9)
    # each user sends at k * cycle while that is before the end of the run
    per_user = math.ceil(records.end_s / cycle - 1e-9)
    assert len(wl.arrival_s) == 2 * per_user
    doc = summarize(res, records)
    entry = doc["workloads"]["w"]
    assert entry["throughput_per_s"] == pytest.approx(2 / cycle, rel=2e-3)
    assert entry["loadgen"]["mean_response_s"] == pytest.approx(SERVICE_S, rel=1e-9)
    assert entry["loadgen"]["users_over_cycle_per_s"] == pytest.approx(2 / cycle, rel=1e-9)


@pytest.mark.parametrize(
    ("users", "chips", "think_services"),
    [(4, 1, 0.0), (4, 1, 10.0), (3, 2, 0.0), (6, 2, 1.0)],
)
def test_closed_loop_throughput_is_the_smaller_of_demand_and_capacity(
    users: int, chips: int, think_services: float
) -> None:
    # X = min(N / (R0 + Z), c / R0) with R0 the service time (batching off).
    think = think_services * SERVICE_S
    expected = min(users / (SERVICE_S + think), chips / SERVICE_S)
    res = ranking(
        chips,
        {"kind": "closed_loop", "users": users, "think_s": think},
        duration_s=3000 * SERVICE_S,
        warmup_s=50 * SERVICE_S,
    )
    entry = summarize(res, simulate(res))["workloads"]["w"]
    assert entry["throughput_per_s"] == pytest.approx(expected, rel=5e-3)
    # Little's law over the loop: N = X (R + Z)
    response = entry["latency_s"]["mean"]
    assert users == pytest.approx(entry["throughput_per_s"] * (response + think), rel=5e-3)


def test_closed_loop_with_exponential_think_is_seeded_and_near_the_law() -> None:
    think = 5 * SERVICE_S
    traffic = {"kind": "closed_loop", "users": 3, "think_s": think, "think": "exponential"}
    res = ranking(4, traffic, duration_s=20000 * SERVICE_S, warmup_s=10 * SERVICE_S)
    first, second = simulate(res), simulate(res)
    a = first.fleets["ranking"].workloads["w"].arrival_s
    assert np.array_equal(a, second.fleets["ranking"].workloads["w"].arrival_s)
    gaps = np.diff(np.sort(a[3:]))
    assert gaps.std() > 0  # the think times do vary
    entry = summarize(res, first)["workloads"]["w"]
    assert entry["throughput_per_s"] == pytest.approx(3 / (SERVICE_S + think), rel=0.05)


def test_offline_makespan_is_rounds_of_batches_on_the_chips() -> None:
    # 40 queries of 50 items at time 0, batches of 200 items (4 queries) on 3 chips:
    # 10 batches, ceil(10 / 3) = 4 rounds of one 200-item batch each (a host link without
    # DMA, so a batch's copy does not overlap the previous batch's compute).
    serial = chip(host_link={"bandwidth_bytes_per_s": 16e6, "dma": False})
    base = resolved(
        rate_per_s=1.0,
        sizes={"kind": "fixed", "value": 50},
        count=3,
        batching={"max_batch_items": 200, "max_wait_s": 1e-3},
        the_chip=serial,
    )
    res = with_traffic(base, {"kind": "offline", "requests": 40}, warmup_s=0.0, duration_s=60.0)
    batch_s = RankingCostModel(model(), serial).batch(200).time_s
    loadgen = summarize(res, simulate(res))["workloads"]["w"]["loadgen"]
    assert loadgen["makespan_s"] == pytest.approx(4 * batch_s, rel=1e-9)
    assert loadgen["offline_throughput_per_s"] == pytest.approx(40 / (4 * batch_s), rel=1e-9)
    assert loadgen["offline_items_per_s"] == pytest.approx(40 * 50 / (4 * batch_s), rel=1e-9)
    assert loadgen["completed"] == 40 and loadgen["unfinished"] == 0


def test_offline_llm_on_one_sequence_at_a_time_is_n_times_one_request() -> None:
    # A replica that runs one sequence at a time serves identical requests back to back:
    # the makespan is N times the first one's latency.
    res = llm_resolved(
        rate_per_s=1.0,
        prompt={"kind": "fixed", "value": 64},
        output={"kind": "fixed", "value": 16},
        batching={"max_batch_sequences": 1},
        extra={"traffic": {"kind": "offline", "requests": 12}},
        warmup_s=0.0,
    )
    records = simulate(res)
    rec = records.fleets["llm"].workloads["w"]
    first = float(np.min(rec.finish_s))
    loadgen = summarize(res, records)["workloads"]["w"]["loadgen"]
    assert loadgen["makespan_s"] == pytest.approx(12 * first, rel=1e-9)
    assert loadgen["offline_output_tokens_per_s"] == pytest.approx(12 * 16 / (12 * first))


def test_offline_unfinished_at_the_end_has_no_makespan() -> None:
    res = ranking(1, {"kind": "offline", "requests": 50}, warmup_s=0.0, duration_s=10 * SERVICE_S)
    loadgen = summarize(res, simulate(res))["workloads"]["w"]["loadgen"]
    assert loadgen["unfinished"] == 40 and loadgen["completed"] == 10
    assert loadgen["makespan_s"] is None and loadgen["offline_throughput_per_s"] is None


def test_llm_closed_loop_sends_each_next_request_a_think_time_after_a_response() -> None:
    think = 0.01
    res = llm_resolved(
        rate_per_s=1.0,
        prompt={"kind": "uniform", "low": 16, "high": 256},
        output={"kind": "uniform", "low": 2, "high": 64},
        count=2,
        extra={"traffic": {"kind": "closed_loop", "users": 5, "think_s": think}},
        duration_s=20.0,
    )
    records = simulate(res)
    rec = records.fleets["llm"].workloads["w"]
    assert len(rec.arrival_s) > 5 + 2 * SIZE_BLOCK  # the records grew block by block
    assert int((rec.arrival_s == 0).sum()) == 5
    finish = rec.finish_s[~np.isnan(rec.finish_s)]
    later = np.sort(finish + think)
    later = later[later < records.end_s]
    assert np.allclose(np.sort(rec.arrival_s[rec.arrival_s > 0]), later, rtol=0, atol=1e-9)
    entry = summarize(res, records)["workloads"]["w"]
    assert entry["offered"] == entry["completed"] + entry["dropped"] + entry["in_flight"]
    assert entry["in_flight"] <= 5


def test_offline_inside_a_warm_up_is_refused_with_the_field() -> None:
    res = ranking(1, {"kind": "offline", "requests": 5}, warmup_s=1.0)
    with pytest.raises(ConfigError, match=r"warm-up: set simulation.warmup_s: 0"):
        load_checked({**res.scenario.model_dump(mode="json"), "pools": _shipped_pools()})


def _shipped_pools() -> dict[str, Any]:
    return {"p": {"chip": "mtia-like-gen2", "count": 1, "serves": ["w"]}}


def test_closed_loop_ranking_refuses_sketch_percentiles() -> None:
    doc = {
        "name": "t",
        "workloads": {
            "w": {
                "model": "dlrm-dcn-large",
                "traffic": {"kind": "closed_loop", "users": 2},
                "items_per_query": {"kind": "fixed", "value": 10},
            }
        },
        "pools": _shipped_pools(),
    }
    with pytest.raises(ConfigError, match="closed_loop traffic keeps every record"):
        load_checked(doc, percentiles="sketch")
    assert load_checked(doc, percentiles="auto").scenario.name == "t"


def test_llm_closed_loop_of_users_on_their_own_replicas_runs_at_n_over_r_plus_z() -> None:
    # Two users, two replicas, identical requests: nobody queues, every response takes
    # the same R0, and each user sends every R0 + Z.
    think = 0.2
    res = llm_resolved(
        rate_per_s=1.0,
        prompt={"kind": "fixed", "value": 128},
        output={"kind": "fixed", "value": 32},
        count=2,
        extra={"traffic": {"kind": "closed_loop", "users": 2, "think_s": think}},
        duration_s=120.0,
    )
    records = simulate(res)
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    response = rec.finish_s[done] - rec.arrival_s[done]
    r0 = float(response[0])
    assert np.allclose(response, r0, rtol=1e-9)
    cycle = r0 + think
    assert len(rec.arrival_s) == 2 * math.ceil(records.end_s / cycle - 1e-9)
    entry = summarize(res, records)["workloads"]["w"]
    assert entry["throughput_per_s"] == pytest.approx(2 / cycle, rel=2 * cycle / 120)
    assert entry["loadgen"]["users_over_cycle_per_s"] == pytest.approx(2 / cycle, rel=1e-9)
