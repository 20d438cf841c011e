"""Closed-form queueing results, and the statistics that compare a simulation with them.

Pure functions of numbers: no simulator, no configuration. Waits are mean
times in queue (before service starts) in seconds; add the mean service time
for the mean latency. ``rho`` is the utilisation of one server (arrival rate
times mean service time, divided by the number of servers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def md1_wait(rho: float, service_s: float) -> float:
    """Mean wait in queue of M/D/1 (Pollaczek-Khinchine with a fixed service time S):

    ``W_q = rho * S / (2 (1 - rho))``.
    """
    return rho * service_s / (2 * (1 - rho))


def mg1_wait(rho: float, mean_service_s: float, second_moment_s2: float) -> float:
    """Mean wait in queue of M/G/1 (Pollaczek-Khinchine), from the service time's first
    two moments E[S] and E[S^2]:

    ``W_q = lambda * E[S^2] / (2 (1 - rho))``, with arrival rate ``lambda = rho / E[S]``.
    """
    rate_per_s = rho / mean_service_s
    return rate_per_s * second_moment_s2 / (2 * (1 - rho))


def erlang_c_wait(c: int, rho: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c at per-server utilisation ``rho`` (Erlang C).

    With offered load ``a = c * rho``, the probability of waiting is
    ``C = (a^c / c! / (1 - rho)) / (sum_{k<c} a^k / k! + a^c / c! / (1 - rho))``, and
    ``W_q = C * E[S] / (c (1 - rho))``.
    """
    a = c * rho
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait * mean_service_s / (c * (1 - rho))


def rounded_exponential_pmf(mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Sizes k = 1..K and their probabilities when Exp(mean) is rounded and floored at 1
    (as the engine samples ``exponential`` sizes); K leaves out less than 1e-15.

    ``P(k) = exp(-(k - 1/2) / mean) - exp(-(k + 1/2) / mean)`` for k >= 2, and
    ``P(1) = 1 - exp(-3/2 / mean)`` (every draw below 1.5 becomes 1).
    """
    upto = math.ceil(mean * 36.0) + 2
    k = np.arange(1, upto + 1, dtype=np.float64)
    p = np.exp(-(k - 0.5) / mean) - np.exp(-(k + 0.5) / mean)
    p[0] = 1 - math.exp(-1.5 / mean)  # rint(x) <= 1 for every x < 1.5
    return k.astype(np.int64), p


def service_moments(
    batch_time_s: Callable[[int], float], sizes: np.ndarray, p: np.ndarray
) -> tuple[float, float]:
    """Exact ``E[S] = sum_k p_k t(k)`` and ``E[S^2] = sum_k p_k t(k)^2`` of the service
    time of a query whose size k has pmf ``p``, served alone in ``t(k) = batch_time_s(k)``.

    A batch's time is convex and piecewise linear in its items, so when it is
    linear between the smallest and the largest size and at points in between,
    it is linear everywhere on that range and the moments follow from those of
    the size; otherwise every size is costed.
    """
    lo, hi = int(sizes[0]), int(sizes[-1])
    t_lo, t_hi = batch_time_s(lo), batch_time_s(hi)
    slope = (t_hi - t_lo) / (hi - lo)
    probes = np.unique(np.geomspace(lo, hi, 24).astype(np.int64))
    affine = all(
        abs(batch_time_s(int(k)) - (t_lo + slope * (k - lo))) <= 1e-12 * t_hi for k in probes
    )
    if affine:
        times = t_lo + slope * (sizes - lo).astype(np.float64)
    else:
        times = np.array([batch_time_s(int(k)) for k in sizes])
    return float((p * times).sum()), float((p * times**2).sum())


def batch_means(values: np.ndarray, batches: int) -> tuple[float, float]:
    """Mean and its standard error, by the method of batch means (values in time order):
    the values split into ``batches`` consecutive parts, the standard error is the
    standard deviation of the parts' means over ``sqrt(batches)``. With fewer than two
    values a batch, the standard error is infinite."""
    if values.size < 2 * batches:
        return (float(values.mean()) if values.size else math.nan), math.inf
    parts = np.array_split(values, batches)
    means = np.array([p.mean() for p in parts])
    return float(values.mean()), float(means.std(ddof=1) / math.sqrt(batches))
