"""Confidence intervals of percentiles from order statistics, and when a sample is too small.

A percentile read off a sample is itself a random variable: the p99 of 300 latencies
rests on the three largest. This module gives every reported percentile a
distribution-free 95% interval and says when the sample cannot bound it.

**The interval.** Of n independent draws from a continuous distribution, the number B
that fall at or below its true q-quantile ξ is Binomial(n, q), whatever the
distribution. So with the sorted sample x(1) ≤ ... ≤ x(n),

    P(x(l) ≤ ξ < x(u)) = P(l ≤ B ≤ u - 1),

and choosing the largest l with P(B < l) ≤ α/2 and the smallest u with P(B ≥ u) ≤ α/2
gives an interval [x(l), x(u)] that covers ξ with probability at least 1 - α (exactly
distribution-free; for a discrete distribution, at least as often). The interval is
asymmetric, as the tail is. Requests of one run are not independent (a queue
correlates neighbours), so the interval is the sampling error of a run of this size
under independence: a floor on the uncertainty, not a bound on it.

**Too few samples.** When even u = n + 1 fails the test, that is when q^n > α/2, the
sample holds too few values beyond the percentile to put any upper bound on it: the
largest value seen may lie below the true percentile. The interval's upper end is then
``None`` and the summary flags the series. For p99 at 95% that takes fewer than 368
samples. This is the question MLPerf LoadGen's early-stopping rule asks of a run
(loadgen/early_stopping.cc, "MinPassingQueriesFinder"): how many queries within the
latency bound, given t over it, are needed to claim the percentile with confidence. With
t = 0 LoadGen asks 99% one-sided confidence (459 queries for p99); here the upper end of
the 95% two-sided interval asks 97.5% one-sided (368 for p99).

The binomial CDF is summed in log space over a window of ±12 standard deviations
around its mean (the mass outside is below 1e-30), so a run of 10^8 requests costs a
few thousand terms and no scipy import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CONFIDENCE = 0.95
"""The two-sided confidence of every interval in the result document."""

SHOWN_PERCENTILES = (50, 90, 99)
"""The percentiles a distribution in the result document reports, each with an interval."""

_WINDOW_SD = 12.0


def _binomial_cdf(n: int, q: float) -> tuple[int, np.ndarray]:
    """(k0, cdf) with cdf[i] = P(B ≤ k0 + i) for B ~ Binomial(n, q), 0 < q < 1, over a
    window around the mean that holds all but a negligible share of the mass."""
    sd = math.sqrt(n * q * (1 - q))
    k0 = max(0, math.floor(n * q - _WINDOW_SD * sd - 10))
    k1 = min(n, math.ceil(n * q + _WINDOW_SD * sd + 10))
    k = np.arange(k0, k1 + 1, dtype=np.float64)
    log_first = (
        math.lgamma(n + 1)
        - math.lgamma(k0 + 1)
        - math.lgamma(n - k0 + 1)
        + k0 * math.log(q)
        + (n - k0) * math.log1p(-q)
    )
    # log pmf(k + 1) - log pmf(k) = log((n - k) / (k + 1)) + log(q / (1 - q))
    steps = np.log((n - k[:-1]) / (k[:-1] + 1)) + math.log(q) - math.log1p(-q)
    log_pmf = np.concatenate(([log_first], log_first + np.cumsum(steps)))
    cdf = np.cumsum(np.exp(log_pmf))
    return k0, np.minimum(cdf, 1.0)


def order_statistic_ranks(
    n: int, q: float, confidence: float = CONFIDENCE
) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics that bound the q-quantile of a sample
    of n with the given two-sided confidence; ``None`` for an end the sample cannot give
    (l below 1, u above n)."""
    if n <= 0:
        return None, None
    if not 0 < q < 1:
        raise ValueError(f"quantile {q!r} must lie strictly between 0 and 1")
    alpha = (1 - confidence) / 2
    k0, cdf = _binomial_cdf(n, q)
    # P(B < l) = cdf(l - 1) ≤ alpha: the largest such l. Below the window the CDF is ~0.
    below = np.nonzero(cdf <= alpha)[0]
    lower: int | None = k0 + int(below[-1]) + 1 if below.size else k0
    # P(B ≥ u) = 1 - cdf(u - 1) ≤ alpha: the smallest such u.
    above = np.nonzero(cdf >= 1 - alpha)[0]
    upper: int | None = k0 + int(above[0]) + 1 if above.size else None
    return (lower if lower is not None and lower >= 1 else None), (
        upper if upper is not None and upper <= n else None
    )


def min_samples_for_upper_bound(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest samples whose interval for the q-quantile has an upper end: the
    smallest n with q^n ≤ (1 - confidence) / 2 (368 for p99 at 95%)."""
    alpha = (1 - confidence) / 2
    return max(1, math.ceil(math.log(alpha) / math.log(q)))


def quantile_intervals(
    values: np.ndarray, percentiles: tuple[float, ...], confidence: float = CONFIDENCE
) -> list[tuple[float | None, float | None]]:
    """The (low, high) interval of each percentile of a sample (``None`` for an end the
    sample cannot give; both ``None`` for an empty sample), from one partial sort."""
    n = int(values.size)
    ranks = [order_statistic_ranks(n, p / 100, confidence) for p in percentiles]
    wanted = sorted({r - 1 for pair in ranks for r in pair if r is not None})
    if not wanted:
        return [(None, None) for _ in ranks]
    part = np.partition(values, wanted)

    def at(rank: int | None) -> float | None:
        return None if rank is None else float(part[rank - 1])

    return [(at(low), at(high)) for low, high in ranks]


def interval_doc(
    values: np.ndarray, percentiles: tuple[float, ...], confidence: float = CONFIDENCE
) -> dict[str, dict[str, float | None]]:
    """The intervals of a sample's percentiles as the result document holds them:
    ``{"p99": {"low": ..., "high": ...}, ...}``."""
    return {
        f"p{p:g}": {"low": low, "high": high}
        for p, (low, high) in zip(
            percentiles, quantile_intervals(values, percentiles, confidence), strict=True
        )
    }


def percentile_interval(
    values: np.ndarray, percentile: float, confidence: float = CONFIDENCE
) -> dict[str, float | None]:
    """The interval of one percentile (an SLA's), as ``{"low": ..., "high": ...}``; none
    for p100, the maximum, which no sample bounds from above."""
    if percentile >= 100:
        return {"low": None, "high": None}
    return interval_doc(values, (percentile,), confidence)[f"p{percentile:g}"]


def too_few_samples(n: int, percentile: float, confidence: float = CONFIDENCE) -> bool:
    """Whether a sample of n is too small for its ``percentile`` to have an upper bound
    (always, for p100)."""
    return percentile >= 100 or n < min_samples_for_upper_bound(percentile / 100, confidence)


def tail_warning(workload: str, entry: dict[str, Any], noun: str) -> str | None:
    """The warning for a workload whose reported tail rests on too few samples: the
    series (``latency_s``, ``ttft_s``, ...) whose p99 has no upper bound, and the SLA's
    percentile when it has none; ``None`` when every tail is bounded or nothing
    completed."""
    completed = entry.get("completed") or 0
    if not completed:
        return None
    series = [
        key
        for key, value in entry.items()
        if isinstance(value, dict) and value.get("too_few_samples") and "ci95" in value
    ]
    sla = entry.get("sla") or {}
    if sla.get("too_few_samples") and (series == [] or float(sla["percentile"]) > 99):
        series.append(f"the SLA's p{float(sla['percentile']):g}")
    if not series:
        return None
    need = min_samples_for_upper_bound(SHOWN_PERCENTILES[-1] / 100)
    return (
        f"workload {workload}: p99 of {', '.join(series)} rests on {completed} completed "
        f"{noun}, too few for a {CONFIDENCE:.0%} upper bound ({need} needed); lengthen "
        "simulation.duration_s"
    )
