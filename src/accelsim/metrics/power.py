"""Power, clock and cost figures of a pool from its batch (or iteration) records."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from accelsim.config.schema import Chip, Facility

HOURS_PER_YEAR = 24 * 365
CLOCK_BANDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def peak_dynamic_power_w(
    starts: np.ndarray, ends: np.ndarray, dynamic_energy_j: np.ndarray, w0: float, w1: float
) -> float:
    """The largest instantaneous sum of dynamic power of overlapping intervals in [w0, w1)."""
    s, e = np.maximum(starts, w0), np.minimum(ends, w1)
    span = ends - starts
    keep = (e > s) & (span > 0)
    if not keep.any():
        return 0.0
    rate = dynamic_energy_j[keep] / span[keep]
    times = np.concatenate((s[keep], e[keep]))
    deltas = np.concatenate((rate, -rate))
    # At equal times, intervals that end leave before those that start arrive.
    order = np.lexsort((deltas, times))
    return float(max(0.0, np.cumsum(deltas[order]).max()))


def clock_residency(overlap: np.ndarray, clock: np.ndarray) -> dict[str, float]:
    """Share of busy time at nominal clock, in each 10% band below it, and under 50%."""
    busy = float(overlap.sum())
    if busy <= 0:
        return {}
    out: dict[str, float] = {}
    nominal = clock >= 1.0 - 1e-9
    if nominal.any():
        out["100%"] = float(overlap[nominal].sum()) / busy
    for upper, lower in itertools.pairwise(CLOCK_BANDS):
        band = (clock >= lower - 1e-9) & (clock < upper - 1e-9)
        if band.any():
            out[f"{round(lower * 100)}-{round(upper * 100)}%"] = float(overlap[band].sum()) / busy
    low = clock < CLOCK_BANDS[-1] - 1e-9
    if low.any():
        out[f"<{round(CLOCK_BANDS[-1] * 100)}%"] = float(overlap[low].sum()) / busy
    return out


def power_fields(
    chip: Chip,
    chips: int,
    cap_w: float,
    starts: np.ndarray,
    ends: np.ndarray,
    dynamic_energy_j: np.ndarray,
    clock: np.ndarray,
    w0: float,
    w1: float,
) -> dict[str, Any]:
    """Average and peak power, energy, cap and clock residency of one pool in [w0, w1)."""
    duration = w1 - w0
    overlap = np.clip(np.minimum(ends, w1) - np.maximum(starts, w0), 0, None)
    span = ends - starts
    share = np.divide(overlap, span, out=np.zeros_like(overlap), where=span > 0)
    idle = chip.power.idle_w * chips
    energy = idle * duration + float((dynamic_energy_j * share).sum())
    return {
        "avg_power_w": energy / duration,
        "peak_power_w": idle + peak_dynamic_power_w(starts, ends, dynamic_energy_j, w0, w1),
        "energy_j": energy,
        "idle_power_w": idle,
        "tdp_w": chip.power.tdp_w * chips,
        "power_cap_w": cap_w,
        "mean_clock_ratio": float((clock * overlap).sum() / overlap.sum())
        if overlap.sum() > 0
        else None,
        "clock_residency": clock_residency(overlap, clock),
    }


def cost_fields(chip: Chip, chips: int, avg_power_w: float, facility: Facility) -> dict[str, Any]:
    """Capital cost per hour (price over service life) and facility energy cost per hour."""
    energy_cost = avg_power_w * facility.pue / 1000.0 * facility.electricity_usd_per_kwh
    capex = None
    if chip.economics is not None:
        life_h = chip.economics.service_life_years * HOURS_PER_YEAR
        capex = chips * chip.economics.unit_price_usd / life_h
    return {
        "capex_per_hour_usd": capex,
        "energy_cost_per_hour_usd": energy_cost,
        "cost_per_hour_usd": None if capex is None else capex + energy_cost,
    }


def per_million(cost_per_hour: float | None, count: float, duration_s: float) -> float | None:
    """Cost of a million of something served at ``count`` per ``duration_s``."""
    if cost_per_hour is None or count <= 0:
        return None
    return cost_per_hour / (count / duration_s * 3600.0) * 1e6
