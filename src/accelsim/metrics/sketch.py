"""A mergeable quantile sketch with a bounded relative error (DDSketch, logarithmic buckets).

A positive value ``x`` goes to bucket ``i = ceil(log_gamma(x))`` with
``gamma = (1 + a) / (1 - a)``, so bucket ``i`` holds the values in
``(gamma**(i-1), gamma**i]``; the sketch answers a quantile with the bucket's
estimate ``2 gamma**i / (gamma + 1)``, which is within a relative error ``a``
of every value in the bucket. The q-quantile is the estimate of the bucket
holding the order statistic of rank ``floor(q (n - 1))`` (0-based), so it lies
within ``a`` of that sample value; ``numpy.percentile`` interpolates between that
order statistic and the next one. Values at or below ``ZERO_S`` (a queue wait of
exactly zero) are counted apart and answered as 0. Counts, sums and the maximum
are kept exactly beside the buckets (:class:`StreamingDistribution`).

Two sketches of the same accuracy merge by adding their bucket counts: the
result is the sketch of the combined sample, bucket for bucket, whatever the
order of the values. Memory is one count per bucket touched: latencies from a
nanosecond to a day span about 3,200 buckets at a 0.5% error.
"""

from __future__ import annotations

import math

import numpy as np

RELATIVE_ERROR = 0.005  # of every percentile a sketch reports
ZERO_S = 1e-12  # values at or below this count as zero


class QuantileSketch:
    """Counts of non-negative values in logarithmic buckets (see the module docstring)."""

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        if not 0 < relative_error < 1:
            raise ValueError(f"relative error {relative_error} is not in (0, 1)")
        self.relative_error = relative_error
        self.gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self.gamma)
        self.offset = 0  # bucket index of counts[0]
        self.counts = np.zeros(0, dtype=np.int64)
        self.zeros = 0

    @property
    def count(self) -> int:
        return int(self.counts.sum()) + self.zeros

    def add(self, values: np.ndarray) -> None:
        """Count a batch of values (non-negative; NaN is refused)."""
        values = np.asarray(values, dtype=np.float64)
        if np.isnan(values).any() or (values < 0).any():
            raise ValueError("a quantile sketch takes non-negative numbers only")
        positive = values[values > ZERO_S]
        self.zeros += int(values.size - positive.size)
        if positive.size:
            keys = np.ceil(np.log(positive) / self._log_gamma).astype(np.int64)
            self._add_counts(int(keys.min()), np.bincount(keys - keys.min()))

    def merge(self, other: QuantileSketch) -> None:
        """Add another sketch of the same accuracy to this one."""
        if other.gamma != self.gamma:
            raise ValueError("only sketches of the same relative error merge")
        self.zeros += other.zeros
        if other.counts.size:
            self._add_counts(other.offset, other.counts)

    def _add_counts(self, low: int, counts: np.ndarray) -> None:
        if not self.counts.size:
            self.offset, self.counts = low, counts.astype(np.int64)
            return
        start = min(self.offset, low)
        stop = max(self.offset + self.counts.size, low + counts.size)
        if start != self.offset or stop != self.offset + self.counts.size:
            grown = np.zeros(stop - start, dtype=np.int64)
            grown[self.offset - start : self.offset - start + self.counts.size] = self.counts
            self.offset, self.counts = start, grown
        self.counts[low - start : low - start + counts.size] += counts

    def quantile(self, q: float) -> float | None:
        """The q-quantile (q in [0, 1]) within the relative error; None when empty."""
        if not 0 <= q <= 1:
            raise ValueError(f"quantile {q} is not in [0, 1]")
        n = self.count
        if n == 0:
            return None
        rank = q * (n - 1)
        if rank < self.zeros:
            return 0.0
        cumulative = self.zeros + np.cumsum(self.counts)
        bucket = int(np.searchsorted(cumulative, rank, side="right"))
        return 2.0 * self.gamma ** (self.offset + bucket) / (self.gamma + 1.0)


class StreamingDistribution:
    """A sample's count, sum and maximum kept exactly, and its quantiles in a sketch."""

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        self.count = 0
        self.total = 0.0
        self.max = -math.inf
        self.sketch = QuantileSketch(relative_error)

    def add(self, values: np.ndarray) -> None:
        if values.size:
            self.count += int(values.size)
            self.total += float(values.sum())
            self.max = max(self.max, float(values.max()))
            self.sketch.add(values)

    def merge(self, other: StreamingDistribution) -> None:
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.sketch.merge(other.sketch)

    def quantile(self, q: float) -> float | None:
        """The sketch's q-quantile, never above the exact maximum."""
        value = self.sketch.quantile(q)
        return None if value is None else min(value, self.max)
