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
    # At equal times, intervals that end leave before those that start arrive: a stable
    # sort by (time, change) as ``np.lexsort((deltas, times))`` gives it, done as one
    # sort of complex keys (ordered by real part, then imaginary), which is several
    # times quicker on the nearly sorted times of a run's records.
    order = np.argsort(times + 1j * deltas, kind="stable")
    return float(max(0.0, np.cumsum(deltas[order]).max()))


def _bands(clock: np.ndarray) -> list[np.ndarray]:
    """Masks of the clock bands: nominal, each 10% band below it, and under 50%."""
    bands = [clock >= 1.0 - 1e-9]
    for upper, lower in itertools.pairwise(CLOCK_BANDS):
        bands.append((clock >= lower - 1e-9) & (clock < upper - 1e-9))
    bands.append(clock < CLOCK_BANDS[-1] - 1e-9)
    return bands


def _band_names() -> list[str]:
    names = ["100%"]
    for upper, lower in itertools.pairwise(CLOCK_BANDS):
        names.append(f"{round(lower * 100)}-{round(upper * 100)}%")
    names.append(f"<{round(CLOCK_BANDS[-1] * 100)}%")
    return names


def band_busy(overlap: np.ndarray, clock: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busy time in each clock band (see :func:`clock_residency`), and which bands occur."""
    bands = _bands(clock)
    sums = np.array([float(overlap[band].sum()) for band in bands])
    return sums, np.array([bool(band.any()) for band in bands])


def residency(busy_s: float, band_s: np.ndarray, seen: np.ndarray) -> dict[str, float]:
    """Share of ``busy_s`` in each clock band that occurs (from :func:`band_busy`)."""
    if busy_s <= 0:
        return {}
    return {name: float(band_s[k]) / busy_s for k, name in enumerate(_band_names()) if seen[k]}


def clock_residency(overlap: np.ndarray, clock: np.ndarray) -> dict[str, float]:
    """Share of busy time at nominal clock, in each 10% band below it, and under 50%."""
    return residency(float(overlap.sum()), *band_busy(overlap, clock))


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
    overlap = np.clip(np.minimum(ends, w1) - np.maximum(starts, w0), 0, None)
    span = ends - starts
    share = np.divide(overlap, span, out=np.zeros_like(overlap), where=span > 0)
    busy = overlap.sum()
    return power_summary(
        chip,
        chips,
        cap_w,
        w1 - w0,
        float((dynamic_energy_j * share).sum()),
        peak_dynamic_power_w(starts, ends, dynamic_energy_j, w0, w1),
        float((clock * overlap).sum() / busy) if busy > 0 else None,
        clock_residency(overlap, clock),
    )


def power_summary(
    chip: Chip,
    chips: int,
    cap_w: float,
    duration_s: float,
    dynamic_j: float,
    peak_dynamic_w: float,
    mean_clock_ratio: float | None,
    clock_residency: dict[str, float],
) -> dict[str, Any]:
    """:func:`power_fields` from a pool's sums over the window: the dynamic energy inside
    it, the peak dynamic power, and the busy-time-weighted clock."""
    idle = chip.power.idle_w * chips
    energy = idle * duration_s + dynamic_j
    return {
        "avg_power_w": energy / duration_s,
        "peak_power_w": idle + peak_dynamic_w,
        "energy_j": energy,
        "idle_power_w": idle,
        "tdp_w": chip.power.tdp_w * chips,
        "power_cap_w": cap_w,
        "mean_clock_ratio": mean_clock_ratio,
        "clock_residency": clock_residency,
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
