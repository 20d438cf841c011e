"""Optimisations must not change results: the fast paths against plain reference paths."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config.loader import load_scenario
from accelsim.config.schema import ContinuousBatching
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.llm import Iteration, LLMCostModel
from accelsim.model.power import ClockPolicy, Terms, at_nominal_clock, clocked_terms
from helpers import chip, llm, llm_resolved

LINK = {"bandwidth_bytes_per_s": 10e9, "latency_s": 2e-6, "energy_per_byte_j": 1e-12}


def leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(leaves(value, f"{path}.{key}"))
        return out
    if isinstance(node, list):
        out = {}
        for i, value in enumerate(node):
            out.update(leaves(value, f"{path}[{i}]"))
        return out
    return {path: node}


def assert_same(a: dict[str, Any], b: dict[str, Any], rel: float = 1e-9) -> None:
    """Every request-level figure (counts, latency, TTFT, TPOT, tokens) to rounding; pool
    figures to ``rel``. A timeline bin cut through a coalesced span gets the span's mean
    KV use; under preemption (KV grows every step) those bins agree to 10% only."""
    la, lb = leaves(a), leaves(b)
    assert la.keys() == lb.keys()
    for key, value in la.items():
        other = lb[key]
        tolerance = 1e-9 if key.startswith(".workloads.") else rel
        tolerance = 0.1 if ".kv_utilization[" in key else tolerance
        if key.endswith(".iterations"):
            # Counted from fewer records, prorated where a span crosses the window's end.
            assert value == pytest.approx(other, rel=0.02), key
            continue
        if isinstance(value, float) and isinstance(other, float):
            assert math.isclose(value, other, rel_tol=tolerance, abs_tol=1e-12), (key, value, other)
        else:
            assert value == other, (key, value, other)


@settings(max_examples=60, deadline=None)
@given(
    prefill=st.integers(0, 5000),
    context=st.integers(0, 100_000),
    decode=st.integers(0, 300),
    logits=st.integers(0, 300),
    images=st.integers(0, 2000),
    chips=st.sampled_from([1, 2, 8]),
    moe=st.booleans(),
)
def test_fast_iteration_terms_equal_the_op_by_op_cost(
    prefill: int, context: int, decode: int, logits: int, images: int, chips: int, moe: bool
) -> None:
    model = llm(
        vision={"params": 3e8, "tokens_per_image": 576},
        moe={"experts": 8, "active_experts": 2} if moe else None,
    )
    cost = LLMCostModel(model, chip(chip_to_chip=LINK), chips)
    it = Iteration(
        prefill_tokens=prefill,
        prefill_pairs=prefill * (context / 2 + (prefill + 1) / 2),
        prefill_context_tokens=context // 2,
        decode_sequences=decode,
        decode_context_tokens=decode * context,
        logits=logits,
        image_tokens=images,
    )
    slow, fast = Terms.of(cost.iteration(it)), cost.terms(it)
    for ratio in (1.0, 0.7):
        assert fast.time(ratio) == pytest.approx(slow.time(ratio), rel=1e-12, abs=1e-18)
        assert fast.dynamic(ratio) == pytest.approx(slow.dynamic(ratio), rel=1e-12, abs=1e-18)


@pytest.mark.parametrize("kv_policy", ["reserve", "preempt"])
def test_coalesced_decode_spans_match_stepping_every_iteration(kv_policy: str) -> None:
    from helpers import CHIP
    from unit.test_llm import KV_PER_TOKEN, MIXED, PARAMS

    dram = {**CHIP["memory"]["dram"], "capacity_bytes": (2 * PARAMS + 6000 * KV_PER_TOKEN) / 0.9}
    res = llm_resolved(
        rate_per_s=150,
        prompt={"kind": "uniform", "low": 10, "high": 600},
        output={"kind": "uniform", "low": 1, "high": 300},
        count=2,
        batching={"kv_policy": kv_policy, "max_batch_tokens": 512, "max_batch_sequences": 32},
        duration_s=2,
        warmup_s=0.5,
        the_chip=chip(memory={"dram": dram}),
        **MIXED,  # type: ignore[arg-type]
    )
    fast_run, plain_run = simulate(res), simulate(res, coalesce=False)
    fast, plain = fast_run.fleets["llm"], plain_run.fleets["llm"]
    assert fast.iterations.start_s.size < plain.iterations.start_s.size / 2
    # The same iterations (spans still running at the end count their planned steps).
    assert int(fast.iterations.steps.sum()) == pytest.approx(
        plain.iterations.start_s.size, rel=0.01
    )
    # Where a span crosses the window's edges or a timeline bin, its energy and KV use
    # are prorated evenly over its time: such figures agree to ~1e-4, everything else
    # (counts, latencies, TTFT, TPOT) to rounding.
    assert_same(summarize(res, fast_run), summarize(res, plain_run), rel=1e-3)


@pytest.mark.parametrize("scenario", ["llm-chat-gpu", "llm-mtia-tensor-parallel"])
def test_shipped_llm_scenarios_match_the_reference_path(scenario: str) -> None:
    res = load_scenario(scenario, ["simulation.duration_s=20", "simulation.warmup_s=2"])
    fast = summarize(res, simulate(res))
    assert_same(fast, summarize(res, simulate(res, coalesce=False)), rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 300),
    context=st.integers(1, 2_000_000),
    chips=st.sampled_from([1, 2, 8]),
    moe=st.booleans(),
    graph=st.booleans(),
)
def test_a_decode_plan_gives_exactly_the_terms_of_its_iteration(
    batch: int, context: int, chips: int, moe: bool, graph: bool
) -> None:
    # Exactly, not to rounding: a decode span built from the plan must be the span the
    # general path builds, to the last bit.
    model = llm(moe={"experts": 8, "active_experts": 2} if moe else None)
    serving = ContinuousBatching(graph_decode=graph, iteration_overhead_s=3e-5)
    cost = LLMCostModel(model, chip(chip_to_chip=LINK), chips, serving)
    plan = cost.decode_plan(batch)
    assert plan is not None
    assert cost.decode_plan(batch) is plan  # memoised
    fast = plan.terms(context)
    slow = cost.terms(
        Iteration(decode_sequences=batch, decode_context_tokens=context, logits=batch)
    )
    for name in Terms.__slots__:
        assert getattr(fast, name) == getattr(slow, name), name
    # The op that varies is the decode attention: it grows with the context.
    assert plan.terms(context + 1).compute[plan.position] > fast.compute[plan.position]


@settings(max_examples=200, deadline=None)
@given(
    compute=st.lists(st.floats(0, 1e-2), min_size=1, max_size=5),
    memory=st.lists(st.floats(0, 1e-2), min_size=5, max_size=5),
    energy=st.tuples(st.floats(0, 10.0), st.floats(0, 10.0)),
    idle_w=st.floats(0, 200),
    headroom_w=st.floats(1, 1000),
    locked=st.sampled_from([None, None, 1.0, 0.8]),
)
def test_the_nominal_clock_check_agrees_with_the_clocked_cost(
    compute: list[float],
    memory: list[float],
    energy: tuple[float, float],
    idle_w: float,
    headroom_w: float,
    locked: float | None,
) -> None:
    terms = Terms(compute, memory[: len(compute)], 1e-5, *energy, 0.8)
    policy = ClockPolicy(cap_w=idle_w + headroom_w, locked_ratio=locked)  # a cap above idle
    cost = clocked_terms(terms, idle_w, policy)
    expected = cost.clock_ratio == 1.0 and cost.stall_s == 0
    assert at_nominal_clock(terms, idle_w, policy) == expected


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 300),
    contexts=st.lists(st.integers(1, 5_000_000), min_size=1, max_size=5),
    chips=st.sampled_from([1, 2, 8]),
    moe=st.booleans(),
)
def test_a_decode_plans_peak_power_bounds_every_context(
    batch: int, contexts: list[int], chips: int, moe: bool
) -> None:
    # A span skips its clock check when this bound is under the cap: it must hold for
    # every context, or a capped step would run at the nominal clock.
    model = llm(moe={"experts": 8, "active_experts": 2} if moe else None)
    cost = LLMCostModel(model, chip(chip_to_chip=LINK), chips)
    plan = cost.decode_plan(batch)
    assert plan is not None
    peak = plan.peak_power_w(idle_w=40.0)
    for context in [1, *contexts]:
        terms = plan.terms(context)
        assert terms.dynamic(1.0) / terms.time(1.0) + 40.0 <= peak * (1 + 1e-12)
    # Not loose: the varying op takes at most twice the longer of its compute and memory,
    # so at one token or in the limit of long contexts the power above idle reaches at
    # least half the bound's.
    ends = [plan.terms(context) for context in (1, 10**12)]
    highest = max(t.dynamic(1.0) / t.time(1.0) for t in ends)
    assert highest >= 0.5 * (peak - 40.0) * (1 - 1e-9)
