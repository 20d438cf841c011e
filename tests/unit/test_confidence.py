"""Percentile confidence intervals from order statistics, and the too-few-samples flag.

The interval of the q-quantile from a sample of n is [x(l), x(u)] with
P(B < l) ≤ 2.5% and P(B ≥ u) ≤ 2.5% for B ~ Binomial(n, q); the sample has no
upper bound once q^n > 2.5% (n < 368 for p99). Ranks here are checked against the
binomial CDF summed exactly with math.comb, and coverage against distributions
whose quantiles are known in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.metrics.common import distribution
from accelsim.metrics.confidence import (
    min_samples_for_upper_bound,
    order_statistic_ranks,
    quantile_intervals,
    too_few_samples,
)
from accelsim.report.terminal import ms_ci, sec_ci


def _exact_ranks(n: int, q: float) -> tuple[int | None, int | None]:
    """The same ranks from the exact binomial CDF (fractions summed with math.comb)."""
    cdf = np.cumsum([math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)])
    below = [k for k in range(n + 2) if (cdf[k - 1] if k else 0.0) <= 0.025]  # P(B < k)
    above = [k for k in range(n + 2) if 1 - (cdf[k - 1] if k else 0.0) <= 0.025]  # P(B ≥ k)
    low, high = max(below), min(above)
    return (low if low >= 1 else None), (high if high <= n else None)


@pytest.mark.parametrize("n", [1, 6, 20, 50, 200, 367, 368, 600])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_ranks_match_the_exact_binomial(n: int, q: float) -> None:
    assert order_statistic_ranks(n, q) == _exact_ranks(n, q)


def test_the_upper_end_appears_at_q_to_the_n_below_two_and_a_half_percent() -> None:
    # 0.99^367 = 0.02508 > 0.025 >= 0.99^368 = 0.02483
    assert min_samples_for_upper_bound(0.99) == 368
    assert order_statistic_ranks(367, 0.99)[1] is None
    assert order_statistic_ranks(368, 0.99)[1] == 368  # the largest value
    assert min_samples_for_upper_bound(0.9) == 36  # 0.9^35 = 0.0250 > 0.025
    assert min_samples_for_upper_bound(0.5) == 6  # 0.5^5 = 0.031
    assert too_few_samples(367, 99) and not too_few_samples(368, 99)
    assert too_few_samples(10**9, 100)  # no sample bounds the maximum


def test_intervals_of_one_to_a_thousand_are_its_order_statistics() -> None:
    values = np.random.default_rng(0).permutation(np.arange(1.0, 1001.0))
    (p50, p99) = quantile_intervals(values, (50, 99))
    assert p50 == (469.0, 532.0)  # ranks of the exact binomial, as above
    assert p99 == (983.0, 997.0)
    dist = distribution(values)
    assert dist["ci95"]["p99"] == {"low": 983.0, "high": 997.0}
    assert dist["ci95"]["p90"]["low"] <= dist["p90"] <= dist["ci95"]["p90"]["high"]
    assert dist["too_few_samples"] is False
    small = distribution(values[:100])
    assert small["too_few_samples"] is True and small["ci95"]["p99"]["high"] is None
    empty = distribution(np.zeros(0))
    assert empty["ci95"]["p99"] == {"low": None, "high": None} and empty["too_few_samples"]


@pytest.mark.parametrize(
    ("name", "draw", "q", "truth"),
    [
        ("exponential p99", lambda r, s: r.exponential(1.0, s), 0.99, math.log(100)),
        ("uniform p50", lambda r, s: r.uniform(0.0, 1.0, s), 0.5, 0.5),
        ("lognormal p90", lambda r, s: r.lognormal(0.0, 1.0, s), 0.9, math.exp(1.2815515655446004)),
    ],
)
def test_intervals_cover_the_true_percentile_at_the_nominal_rate(
    name: str, draw: object, q: float, truth: float
) -> None:
    """4,000 samples of 1,000: the 95% interval covers the true quantile in 95% to 98.5% of
    them (it is conservative: the ranks are whole numbers). The binomial standard error of
    the observed rate is 0.34 points, so a wrong rank by one moves it out of the band."""
    rng = np.random.default_rng(11)
    samples = np.sort(draw(rng, (4000, 1000)), axis=1)  # type: ignore[operator]
    low, high = order_statistic_ranks(1000, q)
    assert low is not None and high is not None
    covered = (samples[:, low - 1] <= truth) & (truth <= samples[:, high - 1])
    assert 0.95 <= covered.mean() <= 0.985, (name, covered.mean())


def test_a_narrower_interval_would_not_cover() -> None:
    """The check above can fail: ranks one step inside each end cover visibly less."""
    rng = np.random.default_rng(11)
    samples = np.sort(rng.exponential(1.0, (4000, 1000)), axis=1)
    low, high = order_statistic_ranks(1000, 0.99)
    assert low is not None and high is not None
    truth = math.log(100)
    inner = (samples[:, low] <= truth) & (truth <= samples[:, high - 2])
    assert inner.mean() < 0.95


def test_terminal_cells_show_the_wider_side_rounded_up_to_the_shown_digit() -> None:
    dist = {"p99": 0.00127, "ci95": {"p99": {"low": 0.00126, "high": 0.001279}}}
    assert ms_ci(dist) == "1.27 ±0.01"  # 0.009 ms, rounded up to the last digit shown
    llm = {"p99": 0.117, "ci95": {"p99": {"low": 0.105, "high": 0.1281}}}
    assert sec_ci(llm) == "117 ±12 ms"  # the wider (lower) side
    assert sec_ci({"p99": 4.34, "ci95": {"p99": {"low": 3.0, "high": None}}}) == "4.34 ±? s"
    assert ms_ci({"p99": 0.00127}) == "1.27"  # a document without intervals
    assert sec_ci({"p99": None, "ci95": None}) == "-"


def test_a_tiny_run_is_flagged_and_warned_a_large_one_is_not() -> None:
    from accelsim.runner import run_scenario

    tiny = run_scenario("ranking-mtia-vs-gpu", ["simulation.duration_s=0.02"])
    w = tiny["workloads"]["feed_gpu"]
    assert 0 < w["completed"] < 368
    assert w["latency_s"]["too_few_samples"] and w["latency_s"]["ci95"]["p99"]["high"] is None
    assert w["sla"]["too_few_samples"] and w["sla"]["observed_latency_ci95_s"]["high"] is None
    assert (
        f"workload feed_gpu: p99 of latency_s, queue_wait_s rests on {w['completed']} completed "
        "queries, too few for a 95% upper bound (368 needed); lengthen simulation.duration_s"
    ) in tiny["warnings"]

    large = run_scenario("ranking-mtia-vs-gpu", ["simulation.duration_s=0.3"])
    w = large["workloads"]["feed_gpu"]
    assert w["completed"] > 2000
    assert not w["latency_s"]["too_few_samples"] and not w["sla"]["too_few_samples"]
    ci = w["latency_s"]["ci95"]["p99"]
    assert ci["low"] <= w["latency_s"]["p99"] <= ci["high"]
    assert not any("too few" in warning for warning in large["warnings"])
