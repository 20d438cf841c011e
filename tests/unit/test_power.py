"""DVFS under power caps: compute-bound work slows, memory-bound work barely does; a
facility that shifts its budget between pools gives the loaded pool the larger cap."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Facility, Scenario
from accelsim.engine.simulation import simulate
from accelsim.errors import ConfigError
from accelsim.metrics.power import clock_residency, peak_dynamic_power_w
from accelsim.metrics.summary import summarize
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import (
    SHIFT_FLOOR_SHARE,
    ClockPolicy,
    PoolPower,
    at_clock,
    clocked,
    shifted_caps_w,
)
from accelsim.model.ranking import RankingCostModel
from accelsim.model.roofline import ChipRates, Op, Traffic, batch_cost
from accelsim.runner import load_checked
from helpers import CHIP, chip, llm, model, resolved

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


def test_shifted_caps_by_hand() -> None:
    a, b = PoolPower(1, 100.0, 500.0), PoolPower(1, 100.0, 500.0)
    # 600 W: 400 W above idle, weighted 1 x 400 and 0.05 x 400.
    caps = shifted_caps_w(600.0, [a, b], [1.0, 0.0])
    assert caps == pytest.approx([100 + 400 * 400 / 420, 100 + 400 * 20 / 420])
    assert sum(caps) == pytest.approx(600.0)
    # 900 W: the busy pool's share (667 W) passes its 400 W of room: it gets its ceiling
    # and the idle pool the remaining 300 W above idle.
    assert shifted_caps_w(900.0, [a, b], [1.0, 0.0]) == pytest.approx([500.0, 400.0])
    assert shifted_caps_w(2000.0, [a, b], [0.3, 0.1]) == pytest.approx([500.0, 500.0])
    # Equal demand: the 70 W above idle in proportion to chips x room, 400 : 150.
    c = PoolPower(3, 10.0, 60.0)
    assert shifted_caps_w(200.0, [a, c], [0.5, 0.5]) == pytest.approx(
        [100 + 70 * 400 / 550, 10 + 70 * 150 / 550 / 3]
    )
    with pytest.raises(ValueError, match="idle power"):
        shifted_caps_w(200.0, [a, b], [1.0, 1.0])


@settings(max_examples=200, deadline=None)
@given(
    pools=st.lists(
        st.tuples(st.integers(1, 50), st.floats(0, 500), st.floats(1, 1000)),
        min_size=1,
        max_size=6,
    ),
    busy=st.lists(st.floats(0, 1), min_size=6, max_size=6),
    spare=st.floats(1e-3, 2.0),
)
def test_shifted_caps_stay_within_the_budget_and_follow_demand(
    pools: list[tuple[int, float, float]], busy: list[float], spare: float
) -> None:
    powers = [PoolPower(n, idle, idle + room) for n, idle, room in pools]
    busy = busy[: len(powers)]
    idle = sum(p.chips * p.idle_w for p in powers)
    full = sum(p.chips * p.ceiling_w for p in powers)
    budget = idle + spare * (full - idle)
    caps = shifted_caps_w(budget, powers, busy)
    total = sum(p.chips * c for p, c in zip(powers, caps, strict=True))
    assert total <= budget * (1 + 1e-9)
    if budget < full:
        assert total == pytest.approx(budget, rel=1e-9)
    for p, c in zip(powers, caps, strict=True):
        assert p.idle_w < c <= p.ceiling_w * (1 + 1e-12)
    # Of two pools alike but for demand, the busier one never gets less.
    for i, j in [(i, j) for i in range(len(powers)) for j in range(len(powers))]:
        same = pools[i] == pools[j]
        if same and max(busy[i], SHIFT_FLOOR_SHARE) > max(busy[j], SHIFT_FLOOR_SHARE):
            assert caps[i] >= caps[j] * (1 - 1e-12)


# Compute-bound batches on a fast host link: a batch of 64 draws 14.7 W of dynamic power
# over the chip's 10 W idle (TDP 50 W), so a cap below 24.7 W lowers its clock.
HEAVY_CHIP = chip(host_link={"bandwidth_bytes_per_s": 100e9, "latency_s": 0.0})
HEAVY_MODEL = model(dense_features=2048, bottom_mlp=[2048, 2048, 4], top_mlp=[2048, 1])


def _two_pools(rates: tuple[float, float], facility: dict[str, Any]) -> ResolvedScenario:
    """Two pools of two test chips each; pool ``a`` serves workload ``x``, ``b`` ``y``."""
    sizes = {"kind": "fixed", "value": 64}
    batching = {"max_batch_items": 64, "max_wait_s": 0.0}
    scenario = Scenario.model_validate(
        {
            "name": "shift",
            "simulation": {"duration_s": 2.0, "warmup_s": 0.5, "seed": 2},
            "workloads": {
                name: {
                    "model": "tiny-ranker",
                    "traffic": {"kind": "poisson", "rate_per_s": rate},
                    "items_per_query": sizes,
                }
                for name, rate in zip("xy", rates, strict=True)
            },
            "pools": {
                pool: {"chip": "test-chip", "count": 2, "serves": [w], "batching": batching}
                for pool, w in (("a", "x"), ("b", "y"))
            },
            "facility": facility,
        }
    )
    chips = {"a": HEAVY_CHIP, "b": HEAVY_CHIP}
    models = {"x": HEAVY_MODEL, "y": HEAVY_MODEL}
    return ResolvedScenario(scenario, "<test>", chips, models, {})


def test_shifting_moves_cap_to_the_loaded_pool_under_the_budget() -> None:
    idle, tdp = HEAVY_CHIP.power.idle_w, HEAVY_CHIP.power.tdp_w
    service = RankingCostModel(HEAVY_MODEL, HEAVY_CHIP).batch(64).time_s
    assert (idle, tdp) == (10.0, 50.0)
    budget = 80.0  # 40 W of idle, 40 W to share out
    # Pool a about 70% busy, pool b about 0.5%.
    rates = (1.4 / service, 0.01 / service)
    res = _two_pools(
        rates, {"power_budget_w": budget, "budget_policy": "shift", "shift_interval_s": 0.25}
    )
    records = simulate(res)
    doc = summarize(res, records)
    shifting = doc["totals"]["power_shifting"]
    assert shifting["interval_s"] == 0.25
    assert shifting["it_budget_w"] == budget
    # The window is [0.5, 2.5) s: the caps set at 0.5 s open it, then 7 reassignments at
    # 0.75, 1.0, ..., 2.25 s.
    assert shifting["shifts"] == 7
    assert shifting["max_total_cap_w"] <= budget * (1 + 1e-12)
    a, b = shifting["pools"]["a"], shifting["pools"]["b"]
    # By hand, busy shares 0.7 and 0.05 (the floor): a gets 10 + 40 x 0.7 / 0.75 / 2 =
    # 28.7 W per chip, b 10 + 40 x 0.05 / 0.75 / 2 = 11.3 W.
    assert a["mean_cap_w"] == pytest.approx(28.7, abs=0.3)
    assert b["mean_cap_w"] == pytest.approx(11.3, abs=0.3)
    assert b["min_cap_w"] > idle
    assert a["max_cap_w"] <= tdp
    # The caps in force sum to the budget at every step (no pool reaches its TDP here).
    history = records.power_caps
    assert history is not None
    sums = 2 * np.array(history.caps_w["a"]) + 2 * np.array(history.caps_w["b"])
    assert np.allclose(sums, budget, rtol=1e-12)
    # Static caps of the same budget ("cap": 50 W x 80 / 200 = 20 W a chip) slow the
    # loaded pool's batches; shifted, they run at the nominal clock.
    static = _two_pools(rates, {"power_budget_w": budget, "budget_policy": "cap"})
    static_doc = summarize(static, simulate(static))
    assert "power_shifting" not in static_doc["totals"]
    assert static_doc["pools"]["a"]["power_cap_w"] == pytest.approx(20.0)
    assert static_doc["pools"]["a"]["mean_clock_ratio"] < 0.95
    assert doc["pools"]["a"]["mean_clock_ratio"] == pytest.approx(1.0)
    lat = {k: d["workloads"]["x"]["latency_s"]["mean"] for k, d in (("s", static_doc), ("f", doc))}
    assert lat["f"] < lat["s"]


def test_shift_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a power_budget_w"):
        Facility(budget_policy="shift")
    with pytest.raises(ValueError, match="shift_interval_s is read only by budget_policy"):
        Facility(budget_policy="cap", shift_interval_s=1.0)
    assert Facility(budget_policy="shift", power_budget_w=1e3).shift_interval_s == 1.0
    assert "shift_interval_s" not in Facility().model_dump()
    res = _two_pools((10.0, 10.0), {"power_budget_w": 40.0, "budget_policy": "shift"})
    with pytest.raises(ConfigError, match="leaves nothing to shift"):
        simulate(res)


def test_shifting_covers_llm_pools() -> None:
    # The shipped mixed fleet under a 1.5 kW budget: 4 MTIA-like gen2 chips (idle 26 W,
    # TDP 85 W) serve ranking about 13% busy; 2 GPU-like gen2 chips (idle 110 W, TDP
    # 660 W) run LLM iterations back to back. Measured: the LLM pool holds its TDP most
    # of the time (mean 656 W a chip) and ranking gets the rest (mean 47 W).
    res = load_checked(
        "mixed-fleet-ranking-and-llm",
        [
            "facility.power_budget_w=1500 W",
            "facility.budget_policy=shift",
            "facility.shift_interval_s=0.5",
            "simulation.duration_s=4",
        ],
    )
    doc = summarize(res, simulate(res))
    shifting = doc["totals"]["power_shifting"]
    llm_caps, ranking_caps = shifting["pools"]["llm"], shifting["pools"]["ranking"]
    assert llm_caps["max_cap_w"] == 660.0
    assert llm_caps["mean_cap_w"] > 600.0 > 85.0 >= ranking_caps["max_cap_w"]
    assert ranking_caps["min_cap_w"] > 26.0
    assert shifting["max_total_cap_w"] <= 1500.0 * (1 + 1e-12)
    assert all(w["sla_attainment"] == 1.0 for w in doc["workloads"].values())
