"""Helpers every kind's summary uses: JSON-safe numbers, distributions, window overlap,
and a pool's power, perf/W and cost from its busy intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.metrics.confidence import SHOWN_PERCENTILES, interval_doc, too_few_samples
from accelsim.metrics.power import cost_fields, per_million, power_fields


def json_float(x: float) -> float | None:
    """A JSON-safe float: NaN and infinities become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def distribution(values: np.ndarray) -> dict[str, Any]:
    """mean, p50, p90, p99 and max of a sample (nulls when it is empty); ``ci95``, each
    percentile's 95% confidence interval, and ``too_few_samples``, whether the sample is
    too small to bound p99 from above (see :mod:`accelsim.metrics.confidence`)."""
    tail = {
        "ci95": interval_doc(values, SHOWN_PERCENTILES),
        "too_few_samples": too_few_samples(int(values.size), SHOWN_PERCENTILES[-1]),
    }
    if values.size == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None, **tail}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": json_float(values.mean()),
        "p50": json_float(p50),
        "p90": json_float(p90),
        "p99": json_float(p99),
        "max": json_float(values.max()),
        **tail,
    }


def window_overlap(
    start: np.ndarray, end: np.ndarray, w0: float, w1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each interval inside [w0, w1), and that as a share of the interval."""
    overlap = np.clip(np.minimum(end, w1) - np.maximum(start, w0), 0, None)
    span = end - start
    share = np.divide(overlap, span, out=np.zeros_like(overlap), where=span > 0)
    return overlap, share


def energy_and_cost(
    resolved: ResolvedScenario,
    pool_name: str,
    cap_w: float,
    intervals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    window: tuple[float, float],
    served: int,
    unit: str,
    one: str,
) -> dict[str, Any]:
    """Power, perf/W and cost of a pool from its busy intervals (start, end, dynamic energy,
    clock), given what it served in ``unit`` (plural, e.g. "queries"; ``one``: singular)."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    power = power_fields(chip, pool.count, cap_w, *intervals, *window)
    return with_cost(resolved, pool_name, power, window[1] - window[0], served, unit, one)


def with_cost(
    resolved: ResolvedScenario,
    pool_name: str,
    power: dict[str, Any],
    duration_s: float,
    served: int,
    unit: str,
    one: str,
) -> dict[str, Any]:
    """A pool's power fields (:func:`~accelsim.metrics.power.power_fields`) with its
    perf/W and cost, given what it served (see :func:`energy_and_cost`)."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    cost = cost_fields(chip, pool.count, power["avg_power_w"], resolved.scenario.facility)
    energy = power["energy_j"]
    return {
        **power,
        unit: served,
        f"{unit}_per_j": json_float(served / energy) if energy > 0 else None,
        f"energy_per_{one}_j": json_float(energy / served) if served else None,
        **cost,
        f"cost_per_million_{unit}_usd": per_million(cost["cost_per_hour_usd"], served, duration_s),
    }
