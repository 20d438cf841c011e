"""Property tests of disaggregated prefill/decode over random valid scenarios: chips with
little KV cache, slow and fast links, whole and layer-by-layer transfers, a decode pool
that reserves or preempts, contemplating fan-out.

Each run's arrivals stop at its end time and the clock then runs until every request has
finished, so the invariants are checked on a drained fleet: KV never over capacity on
either pool and nothing left held, every request and token accounted for, Little's law
over the whole run, and each request's handoff in order.

The example counts are bounded for CI; set ACCELSIM_PROPERTY_EXAMPLES=N to explore N
examples per test.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.disagg import DecodeReplica, PrefillReplica
from accelsim.engine.records import MODE_CONTEMPLATING, LLMFleetRecords, RunRecords
from accelsim.engine.simulation import Simulation
from accelsim.metrics.summary import summarize
from accelsim.model.checks import scenario_problems
from helpers import CHIP, chip, disagg_resolved

_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))


def _small_chip(draw: st.DrawFn) -> Any:
    """The test chip without SRAM and with a few MB of DRAM: the tiny model's weights
    (3.4 MB) leave room for a few hundred to a few thousand KV tokens."""
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": draw(st.floats(5e6, 2e7))}
    return chip(memory={"dram": dram})


@st.composite
def scenarios(draw: st.DrawFn) -> ResolvedScenario:
    contemplating = draw(st.booleans())
    extra: dict[str, Any] = {}
    modes = None
    if contemplating:
        modes = {"instant": 1.0, "contemplating": 1.0}
        extra["contemplating"] = {
            "branches": draw(st.integers(1, 3)),
            "branch_output_tokens": {"kind": "uniform", "low": 1, "high": 40},
            "aggregation_output_tokens": {"kind": "uniform", "low": 1, "high": 40},
        }
    top_prompt = draw(st.integers(1, 1200))
    return disagg_resolved(
        rate_per_s=draw(st.floats(1, 150)),
        prompt={"kind": "uniform", "low": 1, "high": top_prompt},
        output={"kind": "uniform", "low": 1, "high": draw(st.integers(1, 300))},
        link={
            "bandwidth_bytes_per_s": 10 ** draw(st.floats(6, 12)),
            "latency_s": draw(st.sampled_from([0.0, 1e-5, 2e-3])),
        },
        layerwise=draw(st.booleans()),
        prefill_count=draw(st.integers(1, 3)),
        decode_count=draw(st.integers(1, 3)),
        prefill_batching={
            "max_batch_sequences": draw(st.integers(1, 32)),
            "max_batch_tokens": draw(st.integers(64, 4096)),
        },
        decode_batching={
            "max_batch_sequences": draw(st.integers(1, 64)),
            "kv_policy": draw(st.sampled_from(["reserve", "preempt"])),
        },
        modes=modes,
        extra=extra,
        duration_s=4.0,
        warmup_s=1.0,
        seed=draw(st.integers(0, 1000)),
        prefill_chip=_small_chip(draw),
        decode_chip=_small_chip(draw),
        policy=draw(st.sampled_from(["join_shortest_queue", "round_robin", "power_of_d"])),
    )


def _drained(res: ResolvedScenario) -> tuple[Simulation, LLMFleetRecords, dict[str, Any]]:
    sim = Simulation(res)
    sim.run()
    sim.env.run()  # no arrivals after the end: every admitted request finishes
    fleet = sim.fleets["llm"]
    records = fleet.records()
    assert isinstance(records, LLMFleetRecords)
    doc = summarize(res, RunRecords(sim.warmup_s, sim.end_s, {"llm": records}))
    return sim, records, doc


@settings(
    max_examples=_EXAMPLES or 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(res=scenarios())
def test_disaggregated_runs_keep_the_invariants(res: ResolvedScenario) -> None:
    if scenario_problems(res):  # e.g. a prompt no prefill replica could ever hold
        return
    sim, records, doc = _drained(res)
    json.dumps(doc, allow_nan=False)
    replicas = sim.fleets["llm"].replicas  # type: ignore[attr-defined]
    # KV never over capacity on either pool, and nothing left held once drained.
    its = records.iterations
    for index, r in enumerate(replicas):
        assert isinstance(r, PrefillReplica | DecodeReplica)
        assert r.max_kv_used <= r.capacity
        assert r.kv_used == 0 and not r.running and not r.waiting
        assert getattr(r, "landing", 0) == 0
        mine = its.replica == index
        assert np.all(its.kv_tokens[mine] <= r.capacity)
        order = np.argsort(its.start_s[mine], kind="stable")
        starts, ends = its.start_s[mine][order], its.end_s[mine][order]
        assert np.all(starts[1:] >= ends[:-1] - 1e-9)  # one iteration at a time
    w = records.workloads["w"]
    split = w.disaggregation
    assert split is not None
    # Conservation of requests: every one finished or was rejected.
    entry = doc["workloads"]["w"]
    assert entry["offered"] == entry["completed"] + entry["dropped"] + entry["in_flight"]
    assert entry["in_flight"] == 0
    done = ~w.rejected
    assert not np.isnan(w.finish_s[done]).any()
    assert np.all(w.arrival_s[done] <= w.first_token_s[done])
    assert np.all(w.first_token_s[done] <= w.finish_s[done])
    # Conservation of tokens: an instant request generates its answer, a contemplating
    # one its branches too; a request moves one KV cache a sequence with more than one
    # token to generate.
    plain = done & (w.mode != MODE_CONTEMPLATING)
    assert np.array_equal(w.generated_tokens[plain], w.output_tokens[plain])
    assert np.array_equal(split.transfers[plain], (w.output_tokens[plain] > 1).astype(int))
    per_token = (
        split.kv_bytes[plain & (w.output_tokens > 1)]
        / w.prompt_tokens[plain & (w.output_tokens > 1)]
    )
    assert np.allclose(per_token, 2 * 2 * 128 * 2)
    fanned = done & (w.mode == MODE_CONTEMPLATING)
    assert np.all(w.generated_tokens[fanned] > w.output_tokens[fanned])
    assert np.array_equal(w.branches_done[done], w.branches_spawned[done])
    # Each handoff in order: submitted, admitted, prefilled, then landed after the
    # decode replica reserved the KV.
    moved = done & ~np.isnan(split.landed_s)
    assert np.all(split.submitted_s[moved] <= split.admitted_s[moved])
    assert np.all(split.admitted_s[moved] <= split.prefilled_s[moved])
    assert np.all(split.prefilled_s[moved] < split.landed_s[moved])
    assert np.all(split.reserved_s[moved] < split.landed_s[moved])
    assert np.array_equal(w.first_token_s[moved], split.landed_s[moved])
    # Little's law over the drained run: the time-average number of requests in the
    # system (by a sweep over arrivals and departures) is the arrival rate times the mean
    # time in the system.
    if done.any():
        a, f = w.arrival_s[done], w.finish_s[done]
        horizon = float(f.max())
        times = np.concatenate([a, f])
        steps = np.concatenate([np.ones(a.size), -np.ones(f.size)])
        order = np.argsort(times, kind="stable")
        n = np.cumsum(steps[order])
        area = float((n[:-1] * np.diff(times[order])).sum())
        assert area / horizon == pytest.approx(a.size / horizon * float((f - a).mean()))
        assert np.all(n >= -1e-9)


def test_littles_law_holds_on_the_window_at_a_steady_load() -> None:
    res = disagg_resolved(
        rate_per_s=20,
        prompt={"kind": "uniform", "low": 100, "high": 800},
        output={"kind": "uniform", "low": 2, "high": 100},
        link={"bandwidth_bytes_per_s": 1e9, "latency_s": 1e-4},
        layerwise=True,
        prefill_count=1,
        decode_count=2,
        duration_s=200,
        warmup_s=10,
    )
    _, records, doc = _drained(res)
    w = records.workloads["w"]
    w0, w1 = 10.0, 210.0
    in_system = np.clip(np.minimum(w.finish_s, w1) - np.maximum(w.arrival_s, w0), 0, None)
    entry = doc["workloads"]["w"]
    rate = entry["offered"] / (w1 - w0)
    assert in_system.sum() / (w1 - w0) == pytest.approx(rate * entry["latency_s"]["mean"], rel=0.02)
