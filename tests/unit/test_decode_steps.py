"""A decode span's closed-form step sums against the step-by-step loop they replace."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.engine.steps import ArraySteps, LinearSteps


def step_times(
    steps: int, c0: float, dc: float, m0: float, dm: float, overlap: float, constant: float
) -> list[float]:
    """The roofline's per-op combination, one step at a time."""
    out = []
    for k in range(steps):
        c, m = c0 + dc * k, m0 + dm * k
        out.append(c + m - overlap * min(c, m) + constant)
    return out


positive = st.floats(1e-7, 1e-2)
growth = st.one_of(st.just(0.0), st.floats(1e-10, 1e-4))


@settings(max_examples=300, deadline=None)
@given(
    steps=st.integers(2, 3000),
    c0=positive,
    dc=growth,
    m0=positive,
    dm=growth,
    overlap=st.floats(0.0, 1.0),
    constant=st.floats(0.0, 1e-3),
    probes=st.lists(st.floats(0.0, 1.2), min_size=1, max_size=8),
)
def test_linear_steps_equal_the_loop(
    steps: int,
    c0: float,
    dc: float,
    m0: float,
    dm: float,
    overlap: float,
    constant: float,
    probes: list[float],
) -> None:
    times = step_times(steps, c0, dc, m0, dm, overlap, constant)
    cumulative = list(accumulate(times))
    linear = LinearSteps(steps, c0, dc, m0, dm, overlap, constant)
    assert linear.steps == steps
    assert linear.elapsed(0) == 0.0
    for j in {1, 2, steps // 3, steps // 2, steps - 1, steps}:
        if j:
            assert linear.elapsed(j) == pytest.approx(cumulative[j - 1], rel=1e-12)
            weighted = sum(k * t for k, t in enumerate(times[:j])) / cumulative[j - 1]
            assert linear.weighted_step(j) == pytest.approx(weighted, rel=1e-9, abs=1e-12)
    for probe in probes:
        elapsed = probe * cumulative[-1]
        done = linear.done_by(elapsed)
        # Its own sums are monotone and bracket the elapsed time exactly...
        assert linear.elapsed(done) <= elapsed
        assert done == steps or linear.elapsed(done + 1) > elapsed
        # ...and agree with the loop's count but where a step ends within rounding of it.
        expected = bisect_right(cumulative, elapsed)
        if done != expected:
            boundary = cumulative[min(done, expected)]
            assert elapsed == pytest.approx(boundary, rel=1e-12)


def test_a_crossing_span_switches_from_memory_to_compute_bound() -> None:
    # Compute 1 + 2k, memory 10 + 1k: memory is longer until k = 9, compute after it.
    # Overlap 0.5: t_k = c + m - 0.5 min(c, m), by hand for k = 0, 9, 10, 11.
    linear = LinearSteps(12, 1.0, 2.0, 10.0, 1.0, 0.5, 0.0)
    assert len(linear.pieces) == 2 and linear.pieces[1][0] == 10
    by_hand = step_times(12, 1.0, 2.0, 10.0, 1.0, 0.5, 0.0)
    assert by_hand[0] == 1 + 10 - 0.5
    assert by_hand[9] == 19 + 19 - 9.5
    assert by_hand[10] == 21 + 20 - 10
    assert by_hand[11] == 23 + 21 - 10.5
    for j in range(13):
        assert linear.elapsed(j) == pytest.approx(sum(by_hand[:j]), rel=1e-15)
    assert linear.done_by(sum(by_hand[:10])) == 10
    assert linear.done_by(sum(by_hand[:10]) - 1e-9) == 9


def test_array_steps_are_the_running_sums() -> None:
    times = np.array([1.0, 2.0, 3.0])
    steps = ArraySteps(times)
    assert [steps.elapsed(j) for j in range(4)] == [0.0, 1.0, 3.0, 6.0]
    assert steps.done_by(2.9) == 1 and steps.done_by(3.0) == 2
    assert steps.weighted_step(3) == pytest.approx((0 * 1 + 1 * 2 + 2 * 3) / 6)


@pytest.mark.parametrize("moe", [False, True])
def test_a_plans_energy_per_token_is_the_slope_of_its_energy(moe: bool) -> None:
    # A span's energy is steps x e0 + slope x batch x steps (steps - 1) / 2: the slope
    # must be what one more context token adds to the plan's energy.
    from accelsim.model.llm import LLMCostModel
    from helpers import chip, llm

    model = llm(moe={"experts": 8, "active_experts": 2} if moe else None)
    link = {"bandwidth_bytes_per_s": 10e9, "latency_s": 2e-6, "energy_per_byte_j": 1e-12}
    plan = LLMCostModel(model, chip(chip_to_chip=link), 2).decode_plan(16)
    assert plan is not None
    per_c, per_f = plan.energy_per_token
    (c0, f0), (c1, f1) = plan.energy(1_000), plan.energy(101_000)
    assert per_c > 0 or per_f > 0
    assert (c1 - c0) / 100_000 == pytest.approx(per_c, rel=1e-9)
    assert (f1 - f0) / 100_000 == pytest.approx(per_f, rel=1e-9)
