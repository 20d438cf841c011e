"""Sampled time series of a run: utilisation, power, batch size, KV use, requests in system.

Batches and iterations are intervals [start, end) that each carry a constant
rate (1 for busy time, watts for dynamic power, items for batch size). The
integral of the summed rates over each bin of the measured window is computed
exactly, with prefix sums over the intervals sorted by start and by end, so a
power series integrates back to the energy in the summary.
"""

from __future__ import annotations

import numpy as np

TIMELINE_BINS = 50


def bin_edges(w0: float, w1: float, bins: int = TIMELINE_BINS) -> np.ndarray:
    return np.linspace(w0, w1, bins + 1)


def integrate(
    starts: np.ndarray, ends: np.ndarray, rates: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """For each bin [edges[k], edges[k+1]), the integral over the bin of
    sum_i rates[i] * 1[starts[i] <= t < ends[i]] dt."""
    if starts.size == 0:
        return np.zeros(len(edges) - 1)
    rates = rates.astype(np.float64)
    by_start = np.argsort(starts, kind="stable")
    s_sorted = starts[by_start]
    r_s = np.concatenate(([0.0], np.cumsum(rates[by_start])))
    rs_s = np.concatenate(([0.0], np.cumsum(rates[by_start] * s_sorted)))
    by_end = np.argsort(ends, kind="stable")
    e_sorted = ends[by_end]
    r_e = np.concatenate(([0.0], np.cumsum(rates[by_end])))
    re_e = np.concatenate(([0.0], np.cumsum(rates[by_end] * e_sorted)))
    k_s = np.searchsorted(s_sorted, edges, side="right")
    k_e = np.searchsorted(e_sorted, edges, side="right")
    # F(t) = sum over started of r (t - s)  -  sum over ended of r (t - e)
    cumulative = (edges * r_s[k_s] - rs_s[k_s]) - (edges * r_e[k_e] - re_e[k_e])
    return np.diff(cumulative)


def in_system_at(arrival: np.ndarray, finish: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Requests that have arrived and not finished at each of ``times``."""
    arrived = np.searchsorted(np.sort(arrival), times, side="right")
    done = finish[~np.isnan(finish)]
    finished = np.searchsorted(np.sort(done), times, side="right")
    return (arrived - finished).astype(np.int64)


def _series(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def pool_timeline(
    starts: np.ndarray,
    ends: np.ndarray,
    dynamic_energy_j: np.ndarray,
    batch: np.ndarray,
    units: int,
    idle_power_w: float,
    edges: np.ndarray,
    kv_tokens: np.ndarray | None = None,
    kv_capacity_tokens: int = 0,
) -> dict[str, list[float | None]]:
    """Per-bin utilisation of ``units`` servers, average power, and busy-time-weighted
    mean batch size (and KV use, for LLM replicas)."""
    span = ends - starts
    ones = np.ones_like(starts)
    power_rate = np.divide(
        dynamic_energy_j, span, out=np.zeros_like(dynamic_energy_j), where=span > 0
    )
    kv_time = None
    if kv_tokens is not None and kv_capacity_tokens:
        kv_time = integrate(starts, ends, kv_tokens, edges)
    return pool_series(
        integrate(starts, ends, ones, edges),
        integrate(starts, ends, power_rate, edges),
        integrate(starts, ends, batch, edges),
        units,
        idle_power_w,
        edges,
        kv_time,
        kv_capacity_tokens,
    )


def pool_series(
    busy_s: np.ndarray,
    dynamic_j: np.ndarray,
    batch_s: np.ndarray,
    units: int,
    idle_power_w: float,
    edges: np.ndarray,
    kv_s: np.ndarray | None = None,
    kv_capacity_tokens: int = 0,
) -> dict[str, list[float | None]]:
    """:func:`pool_timeline` from the per-bin integrals of busy time, dynamic power and
    batch size (and KV tokens) over the bins."""
    dt = np.diff(edges)
    # Rates here are non-negative; clip the rounding noise of the prefix sums.
    busy = np.maximum(busy_s, 0.0)
    dynamic = np.maximum(dynamic_j, 0.0)
    batch_time = np.maximum(batch_s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "utilization": _series(busy / (units * dt)),
            "power_w": _series(idle_power_w + dynamic / dt),
            "mean_batch": _series(np.where(busy > 0, batch_time / busy, np.nan)),
        }
        if kv_s is not None and kv_capacity_tokens:
            kv_time = np.maximum(kv_s, 0.0)
            out["kv_utilization"] = _series(
                np.where(busy > 0, kv_time / busy / kv_capacity_tokens, np.nan)
            )
    return out
