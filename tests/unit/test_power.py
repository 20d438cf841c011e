"""DVFS under power caps: compute-bound work slows, memory-bound work barely does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.engine.simulation import simulate
from accelsim.metrics.power import clock_residency, peak_dynamic_power_w
from accelsim.metrics.summary import summarize
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import ClockPolicy, at_clock, clocked
from accelsim.model.roofline import ChipRates, Op, Traffic, batch_cost
from helpers import CHIP, chip, llm, resolved

IDLE = CHIP["power"]["idle_w"]


def compute_bound():  # type: ignore[no-untyped-def]
    # 1e12 bf16 FLOPs at 50 TFLOP/s: 20 ms, 0.5 J of compute energy; a little DRAM traffic.
    ops = [Op("g", "gemm", "matrix", "bf16", 1e12, (Traffic("dram", "stream", 1e8),))]
    return batch_cost(ChipRates(chip()), ops, items=1)


def test_clock_scaling_stretches_compute_and_scales_energy_with_r_squared() -> None:
    cost = compute_bound()
    t, e = at_clock(cost, 0.5)
    # Compute time doubles; half of the 1.25 ms of memory time stays hidden under it.
    assert t == pytest.approx(0.04 + 0.5 * 0.00125)
    assert e == pytest.approx(0.5 * 0.25 + 1e8 * 20e-12)


def test_a_cap_at_half_power_slows_compute_bound_work_markedly() -> None:
    cost = compute_bound()
    uncapped = cost.avg_power_w
    policy = ClockPolicy(cap_w=uncapped / 2, min_ratio=0.3)
    capped = clocked(cost, IDLE, policy)
    assert capped.power_w(IDLE) <= policy.cap_w * (1 + 1e-9)
    assert capped.power_w(IDLE) == pytest.approx(policy.cap_w, rel=1e-6)  # the highest clock
    assert capped.clock_ratio < 0.8
    assert capped.time_s > 1.3 * cost.time_s


def test_the_same_cap_barely_slows_memory_bound_decode() -> None:
    no_sram = chip(memory={"dram": CHIP["memory"]["dram"]})
    # A model wide enough that its prefill is GEMMs, not element-wise kernels.
    wide = llm(d_model=2048, ffn_dim=8192, heads=16, kv_heads=4)
    decode = LLMCostModel(wide, no_sram, 1).decode_step(4, 1000)
    prefill = LLMCostModel(wide, no_sram, 1).prefill(8192)
    cap = prefill.avg_power_w / 2  # half of prefill's uncapped power
    policy = ClockPolicy(cap_w=cap, min_ratio=0.3)
    slow_prefill = clocked(prefill, IDLE, policy)
    slow_decode = clocked(decode, IDLE, policy)
    assert slow_prefill.time_s > 1.3 * prefill.time_s
    assert slow_decode.time_s <= 1.02 * decode.time_s
    assert decode.avg_power_w < cap  # decode never needed to slow


def test_below_the_minimum_clock_the_chip_stalls_to_meet_the_cap() -> None:
    cost = compute_bound()
    policy = ClockPolicy(cap_w=IDLE + 1.0, min_ratio=0.9)
    capped = clocked(cost, IDLE, policy)
    assert capped.clock_ratio == 0.9
    assert capped.stall_s > 0
    assert capped.power_w(IDLE) == pytest.approx(policy.cap_w)


def test_a_locked_clock_is_used_as_is() -> None:
    cost = compute_bound()
    locked = clocked(cost, IDLE, ClockPolicy(cap_w=1e9, locked_ratio=0.7))
    assert locked.clock_ratio == 0.7
    assert locked.time_s == pytest.approx(at_clock(cost, 0.7)[0])


@settings(max_examples=80, deadline=None)
@given(
    flops=st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e13)),
    dram=st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e10)),
    cap_share=st.floats(min_value=0.01, max_value=2.0),
    min_ratio=st.floats(min_value=0.1, max_value=1.0),
)
def test_clock_never_exceeds_nominal_and_power_never_exceeds_the_cap(
    flops: float, dram: float, cap_share: float, min_ratio: float
) -> None:
    ops = [Op("x", "gemm", "matrix", "bf16", flops, (Traffic("dram", "stream", dram),))]
    cost = batch_cost(ChipRates(chip()), ops, items=1)
    if cost.time_s == 0:
        return
    cap = IDLE + cap_share * max(cost.avg_power_w - IDLE, 1e-3)
    out = clocked(cost, IDLE, ClockPolicy(cap_w=cap, min_ratio=min_ratio))
    assert 0 < out.clock_ratio <= 1.0
    assert out.clock_ratio >= min_ratio or out.clock_ratio == 1.0
    assert out.power_w(IDLE) <= cap * (1 + 1e-9)
    assert out.time_s >= cost.time_s * (1 - 1e-12)


def test_pool_caps_reach_the_engine_and_the_summary() -> None:
    base = dict(
        rate_per_s=2000,
        sizes={"kind": "fixed", "value": 64},
        batching={"max_batch_items": 512, "max_wait_s": 0.001},
        duration_s=2,
    )
    fast_host = {"bandwidth_bytes_per_s": 100e9, "latency_s": 0.0}
    big = {"host_link": fast_host}
    compute_heavy = dict(dense_features=2048, bottom_mlp=[2048, 2048, 4], top_mlp=[2048, 1])
    from helpers import model

    free = resolved(**base, the_model=model(**compute_heavy), the_chip=chip(**big))  # type: ignore[arg-type]
    doc_free = summarize(free, simulate(free))
    data = free.scenario.model_dump()
    data["pools"]["p"]["power_cap_w"] = IDLE + 5.0
    from accelsim.config.loader import ResolvedScenario
    from accelsim.config.schema import Scenario

    capped = ResolvedScenario(Scenario.model_validate(data), "<t>", free.chips, free.models, {})
    records = simulate(capped)
    doc = summarize(capped, records)
    pool = doc["pools"]["p"]
    assert pool["power_cap_w"] == IDLE + 5.0
    assert pool["mean_clock_ratio"] < 1.0
    assert "100%" not in pool["clock_residency"]
    assert sum(pool["clock_residency"].values()) == pytest.approx(1.0)
    assert pool["peak_power_w"] <= IDLE + 5.0 + 1e-9
    batch_power = records.fleets["ranking"].batches.dynamic_energy_j / (
        records.fleets["ranking"].batches.end_s - records.fleets["ranking"].batches.start_s
    )
    assert np.all(batch_power + IDLE <= IDLE + 5.0 + 1e-9)
    slower = doc["workloads"]["w"]["latency_s"]["mean"]
    assert slower > doc_free["workloads"]["w"]["latency_s"]["mean"]


def test_facility_budget_caps_chips_in_proportion() -> None:
    res = resolved(rate_per_s=100, sizes={"kind": "fixed", "value": 8}, count=4, duration_s=1)
    data = res.scenario.model_dump()
    # 4 chips of TDP 50 W = 200 W of IT; a 150 W budget at PUE 1.25 leaves 120 W: 30 W each.
    data["facility"] = {"pue": 1.25, "power_budget_w": 150.0, "budget_policy": "cap"}
    from accelsim.config.loader import ResolvedScenario
    from accelsim.config.schema import Scenario

    capped = ResolvedScenario(Scenario.model_validate(data), "<t>", res.chips, res.models, {})
    doc = summarize(capped, simulate(capped))
    assert doc["pools"]["p"]["power_cap_w"] == pytest.approx(30.0)
    assert doc["totals"]["facility_avg_power_w"] == pytest.approx(
        1.25 * doc["totals"]["avg_power_w"]
    )
    assert doc["totals"]["within_budget"] is True


def _peak_by_lexsort(
    starts: np.ndarray, ends: np.ndarray, energy: np.ndarray, w0: float, w1: float
) -> float:
    """The peak as two-key lexicographic sorting defines it (the reference)."""
    s, e = np.maximum(starts, w0), np.minimum(ends, w1)
    span = ends - starts
    keep = (e > s) & (span > 0)
    if not keep.any():
        return 0.0
    rate = energy[keep] / span[keep]
    times = np.concatenate((s[keep], e[keep]))
    deltas = np.concatenate((rate, -rate))
    order = np.lexsort((deltas, times))
    return float(max(0.0, np.cumsum(deltas[order]).max()))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12), st.integers(0, 4), st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.25])
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 6),
)
def test_peak_power_orders_ties_as_a_lexicographic_sort(
    intervals: list[tuple[int, int, float]], w0: int
) -> None:
    """Back-to-back intervals share their end and start times, and equal energies give
    equal changes: the peak is the one a lexicographic sort by (time, change) gives, to
    the last bit (the order of the additions is the same)."""
    starts = np.array([a * 0.1 for a, _, _ in intervals])
    ends = np.array([(a + d) * 0.1 for a, d, _ in intervals])
    energy = np.array([j for _, _, j in intervals])
    expected = _peak_by_lexsort(starts, ends, energy, w0 * 0.1, 1.2)
    assert peak_dynamic_power_w(starts, ends, energy, w0 * 0.1, 1.2) == expected


def test_peak_power_and_residency_helpers() -> None:
    starts = np.array([0.0, 1.0, 1.5])
    ends = np.array([2.0, 3.0, 2.5])
    energy = np.array([2.0, 4.0, 1.0])  # 1 W, 2 W, 1 W
    assert peak_dynamic_power_w(starts, ends, energy, 0.0, 10.0) == pytest.approx(4.0)
    assert peak_dynamic_power_w(starts, ends, energy, 2.6, 10.0) == pytest.approx(2.0)
    residency = clock_residency(np.array([1.0, 2.0, 1.0]), np.array([1.0, 0.85, 0.42]))
    assert residency == {"100%": 0.25, "80-90%": 0.5, "<50%": 0.25}
