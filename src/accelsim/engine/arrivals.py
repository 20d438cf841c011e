"""Arrival times and query sizes, sampled in vectorised blocks from a seeded generator.

Each workload draws from its own stream, derived from the scenario seed and
the workload's *name*, so adding a workload to a scenario does not change the
arrivals of the others.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from accelsim.config.loader import Trace
from accelsim.config.schema import (
    BurstyTraffic,
    DiurnalTraffic,
    EmpiricalSize,
    ExponentialSize,
    FixedSize,
    LognormalSize,
    PoissonTraffic,
    SizeDistribution,
    TraceTraffic,
    UniformSize,
)


def workload_rng(seed: int, workload: str) -> np.random.Generator:
    """The random stream of one workload: a function of the seed and its name only."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(workload.encode())]))


def sample_sizes(dist: SizeDistribution, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` items-per-query draws (int64, each >= 1)."""
    if isinstance(dist, FixedSize):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, UniformSize):
        return rng.integers(dist.low, dist.high + 1, size=n, dtype=np.int64)
    if isinstance(dist, LognormalSize):
        draws = rng.lognormal(math.log(dist.median), dist.sigma, size=n)
        return np.clip(np.rint(draws), 1, dist.max).astype(np.int64)
    if isinstance(dist, ExponentialSize):
        draws = rng.exponential(dist.mean, size=n)
        return np.clip(np.rint(draws), 1, dist.max).astype(np.int64)
    if isinstance(dist, EmpiricalSize):
        probs = np.array([p for p, _ in dist.quantiles], dtype=np.float64)
        values = np.array([v for _, v in dist.quantiles], dtype=np.float64)
        return np.maximum(1, np.rint(np.interp(rng.random(n), probs, values))).astype(np.int64)
    raise TypeError(f"unknown size distribution {dist!r}")


def poisson_times(rate_per_s: float, end_s: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of a Poisson process on [0, end_s), drawn in blocks of gaps."""
    expected = rate_per_s * end_s
    block = int(expected + 6 * math.sqrt(expected) + 64)
    chunks: list[np.ndarray] = []
    last = 0.0
    while True:
        times = last + np.cumsum(rng.exponential(1.0 / rate_per_s, size=block))
        chunks.append(times)
        last = float(times[-1])
        if last >= end_s:
            break
        block = max(64, block // 4)
    out = np.concatenate(chunks)
    return out[out < end_s]


def bursty_times(traffic: BurstyTraffic, end_s: float, rng: np.random.Generator) -> np.ndarray:
    """A two-state MMPP on [0, end_s): alternating calm and burst periods of exponential
    length, Poisson within each (starting calm)."""
    chunks: list[np.ndarray] = []
    t, burst = 0.0, False
    while t < end_s:
        mean = traffic.burst_s if burst else traffic.calm_s
        length = float(rng.exponential(mean))
        stop = min(t + length, end_s)
        rate = traffic.burst_rate_per_s if burst else traffic.rate_per_s
        count = int(rng.poisson(rate * (stop - t)))
        # Given their count, Poisson arrivals in an interval are uniform in it.
        chunks.append(np.sort(rng.uniform(t, stop, size=count)))
        t, burst = stop, not burst
    return np.concatenate(chunks) if chunks else np.zeros(0)


def diurnal_times(traffic: DiurnalTraffic, end_s: float, rng: np.random.Generator) -> np.ndarray:
    """A sine-modulated Poisson process on [0, end_s), by thinning one at the peak rate."""
    peak = traffic.rate_per_s * (1.0 + traffic.amplitude)
    candidates = poisson_times(peak, end_s, rng)
    rate = traffic.rate_per_s * (
        1.0
        + traffic.amplitude
        * np.sin(2.0 * math.pi * (candidates + traffic.phase_s) / traffic.period_s)
    )
    keep = rng.random(candidates.size) < rate / peak
    return candidates[keep]


def arrival_times(
    traffic: PoissonTraffic | BurstyTraffic | DiurnalTraffic | TraceTraffic,
    trace: Trace | None,
    end_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Arrival times (sorted, < end_s) and the trace's size columns for them, if any."""
    if isinstance(traffic, PoissonTraffic):
        return poisson_times(traffic.rate_per_s, end_s, rng), {}
    if isinstance(traffic, BurstyTraffic):
        return bursty_times(traffic, end_s, rng), {}
    if isinstance(traffic, DiurnalTraffic):
        return diurnal_times(traffic, end_s, rng), {}
    if trace is None:
        raise ValueError("trace traffic needs a loaded trace")
    times = trace.times_s * traffic.time_scale
    keep = times < end_s
    return times[keep], {name: column[keep] for name, column in trace.sizes.items()}


def sample_arrivals(
    traffic: PoissonTraffic | BurstyTraffic | DiurnalTraffic | TraceTraffic,
    sizes: SizeDistribution,
    trace: Trace | None,
    end_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (sorted, < end_s) and items per query for one ranking workload."""
    times, given = arrival_times(traffic, trace, end_s, rng)
    if "items" in given:
        return times, given["items"]
    return times, sample_sizes(sizes, len(times), rng)
