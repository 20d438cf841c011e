"""Property tests of prefix caching and sessions over random LLM scenarios.

Random block sizes, system prompts, sessions, KV policies, chunking, routers and KV
capacities small enough that the cache must evict. Whatever the draw:

* KV, cached blocks included, never exceeds a replica's capacity;
* every request that arrived in the window is completed, dropped or in flight; a
  completed request generated its output (its branches' too), and a request's
  prefill asked for its prompt and computed at least one token of it at every
  admission; the iterations prefill no more than was asked and not held;
* a cache that can never hit (no shared prefixes) changes nothing;
* Little's law holds on the window of a long run with sessions and caching.

The example counts are bounded for CI; ACCELSIM_PROPERTY_EXAMPLES=N explores N.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.records import MODE_CONTEMPLATING
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.llm import shape
from helpers import CHIP, chip, llm, llm_resolved

_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODES = {
    "modes": {"instant": 0.6, "thinking": 0.2, "contemplating": 0.2},
    "thinking": {"reasoning_tokens": {"kind": "uniform", "low": 5, "high": 80}},
    "contemplating": {
        "branches": 2,
        "branch_output_tokens": {"kind": "uniform", "low": 5, "high": 40},
        "aggregation_output_tokens": {"kind": "fixed", "value": 10},
    },
}


def _size(draw: st.DrawFn, high: int) -> dict[str, Any]:
    low = draw(st.integers(1, high))
    return {"kind": "uniform", "low": low, "high": draw(st.integers(low, high))}


@st.composite
def scenarios(draw: st.DrawFn, prefixes: bool = True) -> ResolvedScenario:
    s = shape(llm())
    kv_tokens = draw(st.integers(1200, 6000))
    dram = {
        **CHIP["memory"]["dram"],
        "capacity_bytes": (s.weight_bytes + kv_tokens * s.kv_bytes_per_token) / 0.9,
    }
    extra: dict[str, Any] = {}
    modes = None
    if draw(st.booleans()):
        modes = MODES["modes"]
        extra |= {k: v for k, v in MODES.items() if k != "modes"}
    if prefixes and draw(st.booleans()):
        extra["system_prompt"] = {
            "tokens": draw(st.integers(1, 300)),
            "share": draw(st.floats(0, 1)),
            "variants": draw(st.integers(1, 4)),
        }
    if prefixes and (draw(st.booleans()) or "system_prompt" not in extra):
        extra["sessions"] = {
            "turns": _size(draw, 5),
            "think_time_s": draw(st.floats(0, 0.5)),
            "new_tokens": _size(draw, 100),
        }
    batching = {
        "kv_policy": draw(st.sampled_from(["reserve", "preempt"])),
        "chunked_prefill": draw(st.booleans()),
        "max_batch_tokens": draw(st.sampled_from([256, 1024, 4096])),
        "max_batch_sequences": draw(st.sampled_from([4, 64])),
        "prefix_cache": {"block_tokens": draw(st.sampled_from([1, 7, 16, 64]))},
    }
    policies = ["join_shortest_queue", "round_robin", "session_affinity"]
    return llm_resolved(
        rate_per_s=draw(st.sampled_from([20.0, 200.0])),
        prompt=_size(draw, 600),
        output=_size(draw, 120),
        count=draw(st.integers(1, 3)),
        batching=batching,
        modes=modes,
        extra=extra,
        duration_s=2.0,
        warmup_s=0.3,
        seed=draw(st.integers(0, 2**16)),
        the_chip=chip(memory={"dram": dram}),
        policy=draw(st.sampled_from(policies)),
    )


@SETTINGS
@given(res=scenarios())
def test_kv_requests_and_tokens_are_conserved_under_prefix_caching(res: ResolvedScenario) -> None:
    records = simulate(res)
    fleet = records.fleets["llm"]
    for info in fleet.replicas:
        assert info.max_kv_tokens <= info.kv_capacity_tokens
        assert info.prefix_cached_blocks >= 0 and info.prefix_evicted_blocks >= 0
    capacity = np.array([info.kv_capacity_tokens for info in fleet.replicas])
    its = fleet.iterations
    assert np.all(its.kv_tokens <= capacity[its.replica])
    doc = summarize(res, records)
    w = doc["workloads"]["w"]
    assert w["offered"] == w["completed"] + w["dropped"] + w["in_flight"]
    if "sub_requests" in w:
        sub = w["sub_requests"]
        assert sub["offered"] == sub["completed"] + sub["in_flight"]
    rec = fleet.workloads["w"]
    in_window = (rec.arrival_s >= records.warmup_s) & (rec.arrival_s < records.end_s)
    assert w["offered"] == int(in_window.sum())
    done = ~np.isnan(rec.finish_s)
    assert not np.any(done & np.isnan(rec.arrival_s))
    assert np.all(rec.first_token_s[done] > rec.arrival_s[done])
    plain = done & (rec.mode != MODE_CONTEMPLATING)
    assert np.array_equal(rec.generated_tokens[plain], rec.output_tokens[plain])
    branched = done & (rec.mode == MODE_CONTEMPLATING)
    assert np.all(rec.generated_tokens[branched] > rec.output_tokens[branched])
    # Every admission asks for its whole prompt and computes at least its last token.
    asked, held = rec.prefill_requested_tokens, rec.prefix_hit_tokens
    assert np.all(asked[done] >= rec.prompt_tokens[done])
    assert np.all(held <= np.maximum(asked - 1, 0))
    assert int(its.prefill_tokens.sum()) <= int((asked - held).sum())
    assert w["prefill_tokens_requested"] - w["prefill_tokens_computed"] == int(
        held[in_window].sum()
    )
    if w["prefix_hit_rate"] is not None:
        assert 0 <= w["prefix_hit_rate"] < 1


def _request_records(res: ResolvedScenario) -> list[np.ndarray]:
    rec = simulate(res).fleets["llm"].workloads["w"]
    return [rec.arrival_s, rec.first_token_s, rec.finish_s, rec.replica, rec.generated_tokens]


@SETTINGS
@given(res=scenarios(prefixes=False))
def test_a_cache_that_can_never_hit_changes_no_request(res: ResolvedScenario) -> None:
    pool = res.scenario.pools["p"]
    batching = pool.continuous_batching.model_copy(update={"prefix_cache": None})
    pools = {"p": pool.model_copy(update={"continuous_batching": batching})}
    off = replace(res, scenario=res.scenario.model_copy(update={"pools": pools}))
    for a, b in zip(_request_records(res), _request_records(off), strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_littles_law_holds_with_sessions_and_prefix_caching() -> None:
    res = llm_resolved(
        rate_per_s=20,
        prompt={"kind": "uniform", "low": 20, "high": 400},
        output={"kind": "uniform", "low": 5, "high": 100},
        count=2,
        batching={"prefix_cache": {"block_tokens": 16}},
        extra={
            "system_prompt": {"tokens": 200, "share": 0.7, "variants": 3},
            "sessions": {
                "turns": {"kind": "uniform", "low": 1, "high": 5},
                "think_time_s": 0.2,
                "new_tokens": {"kind": "uniform", "low": 10, "high": 80},
            },
        },
        duration_s=60,
        warmup_s=5,
        policy="session_affinity",
    )
    records = simulate(res)
    doc = summarize(res, records)["workloads"]["w"]
    assert doc["prefix_hit_rate"] > 0.3
    rec = records.fleets["llm"].workloads["w"]
    w0, w1 = records.warmup_s, records.end_s
    arrived = ~np.isnan(rec.arrival_s)
    finish = np.where(np.isnan(rec.finish_s), w1, rec.finish_s)[arrived]
    in_system = np.clip(np.minimum(finish, w1) - np.maximum(rec.arrival_s[arrived], w0), 0, None)
    mean_in_system = in_system.sum() / (w1 - w0)
    arrival_rate = doc["offered"] / (w1 - w0)
    assert mean_in_system == pytest.approx(arrival_rate * doc["latency_s"]["mean"], rel=0.03)
