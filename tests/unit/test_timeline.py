"""Sampled series integrate back to the summary's totals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.metrics.timeline import in_system_at, integrate
from accelsim.runner import run_scenario


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=10),
            st.floats(min_value=0, max_value=3),
            st.floats(min_value=0, max_value=100),
        ),
        min_size=0,
        max_size=30,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_integrate_matches_a_direct_sum_of_overlaps(
    intervals: list[tuple[float, float, float]], bins: int
) -> None:
    starts = np.array([s for s, _, _ in intervals], dtype=float)
    ends = np.array([s + d for s, d, _ in intervals], dtype=float)
    rates = np.array([r for _, _, r in intervals], dtype=float)
    edges = np.linspace(1.0, 11.0, bins + 1)
    got = integrate(starts, ends, rates, edges)
    want = [
        sum(
            r * max(0.0, min(e, hi) - max(s, lo))
            for s, e, r in zip(starts, ends, rates, strict=True)
        )
        for lo, hi in itertools.pairwise(edges)
    ]
    assert got == pytest.approx(want, abs=1e-9)


def test_in_system_counts_arrived_and_not_finished() -> None:
    arrival = np.array([0.0, 1.0, 2.0, 3.0])
    finish = np.array([1.5, np.nan, 2.5, 3.1])
    assert in_system_at(arrival, finish, np.array([0.5, 1.6, 2.2, 4.0])).tolist() == [1, 1, 2, 1]


@pytest.mark.parametrize("scenario", ["ranking-mtia-vs-gpu", "llm-contemplating"])
def test_energy_is_the_integral_of_the_power_timeline(scenario: str) -> None:
    doc = run_scenario(scenario, ["simulation.duration_s=4", "simulation.warmup_s=1"])
    timeline = doc["timeline"]
    for name, pool in doc["pools"].items():
        series = timeline["pools"][name]
        assert sum(series["power_w"]) * timeline["bin_s"] == pytest.approx(pool["energy_j"])
        assert np.mean(series["utilization"]) == pytest.approx(pool["utilization"])
        assert all(0 <= u <= 1 + 1e-9 for u in series["utilization"])
        assert min(series["power_w"]) >= pool["idle_power_w"] - 1e-9
    assert len(timeline["t_s"]) == 50
