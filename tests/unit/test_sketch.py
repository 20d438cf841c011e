"""The quantile sketch: its relative-error bound, exact merging, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.metrics.sketch import QuantileSketch, StreamingDistribution

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)
SLACK = 1 + 1e-9  # a value on a bucket's edge may land one bucket over by rounding


def order_statistic(values: np.ndarray, q: float) -> float:
    """The sample value the sketch answers for: rank floor(q (n - 1)), 0-based."""
    return float(np.sort(values)[math.floor(q * (values.size - 1))])


def assert_within(sketch: QuantileSketch, values: np.ndarray) -> None:
    bound = sketch.relative_error * SLACK
    for q in QUANTILES:
        exact = order_statistic(values, q)
        estimate = sketch.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact) <= bound * exact, (q, estimate, exact)


def test_one_value_is_answered_by_its_bucket_estimate() -> None:
    # 1.0 sits on the edge of bucket 0, (1/gamma, 1]; the estimate is 2/(gamma + 1) = 1 - a.
    sketch = QuantileSketch(0.01)
    sketch.add(np.array([1.0]))
    assert sketch.quantile(0.5) == pytest.approx(0.99, rel=1e-12)


def test_zeros_are_counted_apart_and_answered_as_zero() -> None:
    sketch = QuantileSketch()
    sketch.add(np.array([0.0, 0.0, 5.0]))
    assert sketch.count == 3
    assert sketch.quantile(0.5) == 0.0  # rank 1: the second zero
    assert sketch.quantile(1.0) == pytest.approx(5.0, rel=0.005)


def test_an_empty_sketch_answers_none() -> None:
    assert QuantileSketch().quantile(0.5) is None
    empty = StreamingDistribution()
    assert empty.count == 0 and empty.quantile(0.99) is None


def test_bad_input_is_refused() -> None:
    sketch = QuantileSketch()
    with pytest.raises(ValueError, match="non-negative"):
        sketch.add(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        sketch.add(np.array([np.nan]))
    with pytest.raises(ValueError, match="quantile"):
        sketch.quantile(1.5)
    with pytest.raises(ValueError, match="same relative error"):
        sketch.merge(QuantileSketch(0.01))
    with pytest.raises(ValueError, match="relative error"):
        QuantileSketch(0.0)


def test_the_bound_holds_on_heavy_tailed_latencies() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate((rng.lognormal(-7, 1.5, 200_000), np.zeros(1_000)))
    sketch = QuantileSketch()
    for chunk in np.array_split(values, 13):
        sketch.add(chunk)
    assert sketch.count == values.size
    assert_within(sketch, values)
    # latencies over many decades take a few thousand buckets, not one per value
    assert sketch.counts.size < 4_000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-9, max_value=1e6, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.001, 0.005, 0.02]),
)
def test_relative_error_bound_on_any_sample(values: list[float], error: float) -> None:
    sketch = QuantileSketch(error)
    sample = np.array(values)
    sketch.add(sample)
    assert_within(sketch, sample)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=200),
    st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=200),
)
def test_merging_gives_the_sketch_of_the_combined_sample(a: list[float], b: list[float]) -> None:
    left, right, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
    left.add(np.array(a))
    right.add(np.array(b))
    whole.add(np.array(b + a))
    left.merge(right)
    assert left.zeros == whole.zeros
    assert left.count == whole.count == len(a) + len(b)
    nonzero = np.flatnonzero(left.counts)
    assert np.array_equal(left.counts[nonzero], whole.counts[np.flatnonzero(whole.counts)])
    assert np.array_equal(nonzero + left.offset, np.flatnonzero(whole.counts) + whole.offset)
    for q in QUANTILES:
        assert left.quantile(q) == whole.quantile(q)


def test_streaming_distribution_keeps_count_sum_and_max_exactly() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.exponential(1e-3, 1000), rng.exponential(1e-3, 500)
    dist, other = StreamingDistribution(), StreamingDistribution()
    dist.add(a)
    other.add(b)
    dist.merge(other)
    both = np.concatenate((a, b))
    assert dist.count == 1500
    assert dist.total == pytest.approx(both.sum(), rel=1e-12)
    assert dist.max == both.max()
    top = dist.quantile(1.0)
    assert top is not None and top <= both.max()  # never above the exact maximum
    assert top == pytest.approx(both.max(), rel=0.005)
