"""Arrival processes and size distributions: their statistics match their parameters."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.schema import (
    BurstyTraffic,
    DiurnalTraffic,
    EmpiricalSize,
    ExponentialSize,
    LognormalSize,
    UniformSize,
)
from accelsim.engine.arrivals import (
    bursty_times,
    diurnal_times,
    poisson_times,
    sample_sizes,
    workload_rng,
)

# A guard against runaway work, not a speed test: a bomb that got through would take
# minutes to hours of CPU; a refused one takes well under a second. Machines are noisy,
# so the bound is far from both.
RUNAWAY_CPU_S = 10.0


def test_poisson_rate_and_exponential_gaps() -> None:
    times = poisson_times(1000.0, 200.0, np.random.default_rng(1))
    assert times.size == pytest.approx(200_000, rel=0.01)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1e-3, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.02)  # CV of an exponential
    assert np.all(times < 200.0) and np.all(np.diff(times) >= 0)


def test_bursty_arrivals_average_the_two_rates_and_are_overdispersed() -> None:
    traffic = BurstyTraffic(rate_per_s=100, burst_rate_per_s=1000, calm_s=2.0, burst_s=0.5)
    times = bursty_times(traffic, 2000.0, np.random.default_rng(2))
    assert traffic.mean_rate_per_s == pytest.approx(280.0)
    assert times.size / 2000.0 == pytest.approx(280.0, rel=0.05)
    counts = np.histogram(times, bins=np.arange(0, 2000.5, 0.5))[0]
    assert counts.var() / counts.mean() > 5  # a Poisson process would give ~1
    assert np.all(np.diff(times) >= 0)


def test_diurnal_rate_follows_the_sine() -> None:
    traffic = DiurnalTraffic(rate_per_s=200, amplitude=0.8, period_s=100.0)
    times = diurnal_times(traffic, 1000.0, np.random.default_rng(3))
    assert times.size / 1000.0 == pytest.approx(200.0, rel=0.02)
    phase = (times % 100.0) / 100.0
    peak = ((phase > 0.2) & (phase < 0.3)).sum()  # around sin = 1
    trough = ((phase > 0.7) & (phase < 0.8)).sum()  # around sin = -1
    assert peak / trough == pytest.approx(1.8 / 0.2, rel=0.15)


@pytest.mark.parametrize(
    ("dist", "mean"),
    [
        (UniformSize(low=10, high=30), 20.0),
        (ExponentialSize(mean=50), 50.0),
        (LognormalSize(median=100, sigma=0.5, max=100_000), 100 * np.exp(0.125)),
        (EmpiricalSize(quantiles=[(0.0, 10), (0.5, 20), (1.0, 40)]), 22.5),
    ],
)
def test_size_distributions_have_their_means(dist: object, mean: float) -> None:
    sizes = sample_sizes(dist, 200_000, np.random.default_rng(4))  # type: ignore[arg-type]
    assert sizes.min() >= 1
    assert sizes.mean() == pytest.approx(mean, rel=0.02)


def test_each_workload_stream_depends_only_on_seed_and_name() -> None:
    a = workload_rng(7, "feed").random(5)
    b = workload_rng(7, "feed").random(5)
    c = workload_rng(7, "chat").random(5)
    d = workload_rng(8, "feed").random(5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_bursty_periods_are_drawn_in_blocks_fast_and_in_bounded_memory() -> None:
    """Ten million 10 us periods (a thousand arrivals) take well under a second of CPU and
    a few MB, not ten million Python steps."""
    import time
    import tracemalloc

    traffic = BurstyTraffic(rate_per_s=5, burst_rate_per_s=15, calm_s=1e-5, burst_s=1e-5)
    start = time.process_time()
    tracemalloc.start()
    try:
        times = bursty_times(traffic, 100.0, np.random.default_rng(5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.process_time() - start < RUNAWAY_CPU_S
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB"
    assert times.size == pytest.approx(1000, rel=0.15)
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < 100.0


@pytest.mark.parametrize("kind", ["poisson", "bursty", "diurnal"])
def test_every_generator_stops_at_its_budget_before_allocating_past_it(kind: str) -> None:
    import tracemalloc

    from accelsim.engine.arrivals import ArrivalBudgetError

    rng = np.random.default_rng(6)
    draw = {  # each about 1e7 draws over 100 s; the budget is 1e5
        "poisson": lambda b: poisson_times(1e5, 100.0, rng, b),
        "bursty": lambda b: bursty_times(
            BurstyTraffic(rate_per_s=1, burst_rate_per_s=2, calm_s=1e-5, burst_s=1e-5),
            100.0,
            rng,
            b,
        ),
        "diurnal": lambda b: diurnal_times(
            DiurnalTraffic(rate_per_s=5e4, amplitude=1.0, period_s=10.0), 100.0, rng, b
        ),
    }[kind]
    tracemalloc.start()
    try:
        with pytest.raises(ArrivalBudgetError, match="more than 1e\\+05 draws"):
            draw(100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB"  # 1e5 draws, not 1e7


def test_the_budget_leaves_ordinary_poisson_arrivals_unchanged() -> None:
    a = poisson_times(2000.0, 30.0, np.random.default_rng(7))
    b = poisson_times(2000.0, 30.0, np.random.default_rng(7), budget=2**62)
    assert a.tobytes() == b.tobytes()


def test_a_draw_past_the_budget_in_a_run_is_a_located_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generators' own count guards a run even where the pre-flight estimate does not
    see it coming (here: a budget far below the ~2,000 arrivals the scenario expects)."""
    from accelsim.engine import arrivals
    from accelsim.engine.simulation import simulate
    from accelsim.errors import ConfigError
    from helpers import resolved

    res = resolved(rate_per_s=1000, sizes={"kind": "fixed", "value": 1}, duration_s=2)
    monkeypatch.setattr(arrivals, "MAX_ARRIVALS", 100)
    with pytest.raises(ConfigError) as info:
        simulate(res)
    (problem,) = info.value.problems
    assert problem.field == "workloads" and "more than 100 draws" in problem.message
