"""Arrival times and query sizes, sampled in vectorised blocks from a seeded generator.

Each workload draws from its own stream, derived from the scenario seed and
the workload's *name*, so adding a workload to a scenario does not change the
arrivals of the others.

Every generator counts what it draws (arrivals, and the periods of bursty traffic)
against a budget, and sizes its blocks so that it never allocates past it: a scenario
the pre-flight checks let through cannot run away here either.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Iterator

import numpy as np

from accelsim.config.checks import MAX_ARRIVALS, streams_arrivals
from accelsim.config.loader import Trace
from accelsim.config.schema import (
    AnyTraffic,
    BurstyTraffic,
    DiurnalTraffic,
    EmpiricalSize,
    ExponentialSize,
    FixedSize,
    LognormalSize,
    OfflineTraffic,
    PoissonTraffic,
    SizeDistribution,
    TraceTraffic,
    UniformSize,
)
from accelsim.errors import AccelsimError

PERIOD_BLOCK = 1 << 14  # bursty periods drawn at a time
STREAM_BLOCK = 1 << 16  # arrivals handed to a streamed run at a time


class ArrivalBudgetError(AccelsimError):
    """A traffic generator reached its budget of draws before the end of the run."""

    def __init__(self, budget: int, end_s: float) -> None:
        super().__init__(
            f"the traffic needs more than {budget:.3g} draws (arrivals, and the periods of "
            f"bursty traffic) before {end_s:g} s: shorten the run or lower the rate"
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


def _poisson_chunks(
    rate_per_s: float, end_s: float, rng: np.random.Generator, budget: int, chunk: int
) -> Iterator[np.ndarray]:
    """The arrival times :func:`poisson_times` draws, ``chunk`` at a time (the last ones may
    pass ``end_s``). Gaps come in blocks: the expected count plus six standard deviations,
    then a quarter of the previous block until a time reaches ``end_s``. A block is drawn
    ``chunk`` gaps at a time with its running sum carried, which gives the same numbers as
    one draw and one cumulative sum of the whole block."""
    expected = rate_per_s * end_s
    block = int(min(expected + 6 * math.sqrt(expected) + 64, budget + 1))
    last = 0.0
    drawn = 0
    while True:
        running = 0.0
        for at in range(0, block, chunk):
            gaps = rng.exponential(1.0 / rate_per_s, size=min(chunk, block - at))
            gaps[0] += running
            sums = np.cumsum(gaps)
            running = float(sums[-1])
            yield last + sums
        drawn += block
        last += running
        if last >= end_s:
            return
        if drawn > budget:
            raise ArrivalBudgetError(budget, end_s)
        block = min(max(64, block // 4), budget + 1 - drawn)


def poisson_times(
    rate_per_s: float, end_s: float, rng: np.random.Generator, budget: int | None = None
) -> np.ndarray:
    """Arrival times of a Poisson process on [0, end_s), drawn in blocks of gaps; no more
    than ``budget`` arrivals (default MAX_ARRIVALS; raises :class:`ArrivalBudgetError`)."""
    budget = MAX_ARRIVALS if budget is None else budget
    out = np.concatenate(list(_poisson_chunks(rate_per_s, end_s, rng, budget, budget + 1)))
    return out[out < end_s]


def bursty_times(
    traffic: BurstyTraffic, end_s: float, rng: np.random.Generator, budget: int | None = None
) -> np.ndarray:
    """A two-state MMPP on [0, end_s): alternating calm and burst periods of exponential
    length, Poisson within each (starting calm).

    Periods are drawn PERIOD_BLOCK at a time, in this order: their lengths (standard
    exponentials times each state's mean), the number of arrivals in each (Poisson, given
    its length, the last one cut at ``end_s``), then every arrival's place in its period
    (uniform). Periods and arrivals together count against ``budget`` (as above)."""
    budget = MAX_ARRIVALS if budget is None else budget
    means = np.array([traffic.calm_s, traffic.burst_s])
    rates = np.array([traffic.rate_per_s, traffic.burst_rate_per_s])
    chunks: list[np.ndarray] = []
    t, state, drawn = 0.0, 0, 0
    while t < end_s:
        k = min(PERIOD_BLOCK, budget - drawn)
        if k <= 0:
            raise ArrivalBudgetError(budget, end_s)
        states = (state + np.arange(k)) % 2
        stops = t + np.cumsum(rng.standard_exponential(k) * means[states])
        n = min(k, int(np.searchsorted(stops, end_s, side="left")) + 1)  # periods used
        starts = np.concatenate(([t], stops[: n - 1]))
        lengths = np.minimum(stops[:n], end_s) - starts
        counts = rng.poisson(rates[states[:n]] * lengths)
        arrivals = int(counts.sum())
        drawn += n + arrivals
        if drawn > budget:
            raise ArrivalBudgetError(budget, end_s)
        # Given their count, Poisson arrivals in an interval are uniform in it.
        place = rng.random(arrivals)
        chunks.append(np.sort(np.repeat(starts, counts) + place * np.repeat(lengths, counts)))
        t, state = float(stops[n - 1]), (state + n) % 2
    return np.concatenate(chunks) if chunks else np.zeros(0)


def diurnal_times(
    traffic: DiurnalTraffic, end_s: float, rng: np.random.Generator, budget: int | None = None
) -> np.ndarray:
    """A sine-modulated Poisson process on [0, end_s), by thinning one at the peak rate
    (whose candidates count against ``budget``)."""
    peak = traffic.rate_per_s * (1.0 + traffic.amplitude)
    candidates = poisson_times(peak, end_s, rng, budget)
    rate = traffic.rate_per_s * (
        1.0
        + traffic.amplitude
        * np.sin(2.0 * math.pi * (candidates + traffic.phase_s) / traffic.period_s)
    )
    keep = rng.random(candidates.size) < rate / peak
    return candidates[keep]


def arrival_times(
    traffic: AnyTraffic,
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
    if isinstance(traffic, OfflineTraffic):  # MLPerf's Offline: every request at once
        return np.zeros(traffic.requests), {}
    if not isinstance(traffic, TraceTraffic):
        raise ValueError(f"{traffic.kind} traffic is fed as the run goes (engine.loadgen)")
    if trace is None:
        raise ValueError("trace traffic needs a loaded trace")
    times = trace.times_s * traffic.time_scale
    keep = times < end_s
    return times[keep], {name: column[keep] for name, column in trace.sizes.items()}


def sample_arrivals(
    traffic: AnyTraffic,
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


def streamed_arrivals(
    traffic: AnyTraffic,
    sizes: SizeDistribution,
    end_s: float,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]] | None:
    """The arrivals of :func:`sample_arrivals`, the same numbers, in blocks of at most
    STREAM_BLOCK drawn as the run needs them, so a long run never holds them all; None
    for traffic and sizes that cannot be drawn so (only Poisson traffic with fixed,
    lognormal, exponential or empirical sizes can).

    :func:`sample_arrivals` draws every time first and the sizes after, so a first pass
    draws (and drops) the times to bring the generator to where the sizes start; the
    blocks then draw the times again from a copy of the generator's first state."""
    if not streams_arrivals(traffic, sizes) or not isinstance(traffic, PoissonTraffic):
        return None
    times_rng = copy.deepcopy(rng)
    rate = traffic.rate_per_s
    for _ in _poisson_chunks(rate, end_s, rng, MAX_ARRIVALS, STREAM_BLOCK):
        pass

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for times in _poisson_chunks(rate, end_s, times_rng, MAX_ARRIVALS, STREAM_BLOCK):
            times = times[times < end_s]
            if times.size:
                yield times, sample_sizes(sizes, times.size, rng)

    return blocks()
