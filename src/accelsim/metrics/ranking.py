"""Summaries of ranking workloads and pools: queries, latency, batches, perf/W.

A query belongs to the window if it *arrived* in it. A pool's busy time is the
part of each batch inside the window; ``utilization`` is that over chips x window.
A streamed run (:mod:`accelsim.metrics.streaming`) gives the same entries from its
streaming summaries, its percentiles marked as the sketch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import RankingWorkload
from accelsim.engine.records import RankingRecords
from accelsim.metrics.common import (
    distribution,
    energy_and_cost,
    json_float,
    window_overlap,
    with_cost,
)
from accelsim.metrics.confidence import percentile_interval, too_few_samples
from accelsim.metrics.kinds import MetricsKind
from accelsim.metrics.power import power_summary, residency
from accelsim.metrics.streaming import RankingStream, sketch_interval, streamed_distribution
from accelsim.metrics.timeline import pool_series, pool_timeline

UNIT, ONE = "queries", "query"  # what perf/W and cost count


def _workload(
    resolved: ResolvedScenario, name: str, records: RankingRecords, w0: float, w1: float
) -> dict[str, Any]:
    if isinstance(records.stream, RankingStream):
        return _streamed_workload(resolved, name, records.stream, w1 - w0)
    duration = w1 - w0
    wl = resolved.scenario.workloads[name]
    assert isinstance(wl, RankingWorkload)
    rec = records.workloads[name]
    in_window = (rec.arrival_s >= w0) & (rec.arrival_s < w1)
    done = in_window & ~np.isnan(rec.finish_s)
    offered = int(in_window.sum())
    completed = int(done.sum())
    latency = rec.finish_s[done] - rec.arrival_s[done]
    entry: dict[str, Any] = {
        "kind": wl.kind,
        "model": resolved.models[name].name,
        "offered": offered,
        "completed": completed,
        "dropped": 0,
        "in_flight": offered - completed,
        "throughput_per_s": completed / duration,
        "items_per_s": float(rec.items[done].sum()) / duration,
        "mean_items_per_query": json_float(rec.items[in_window].mean()) if offered else None,
        "latency_s": distribution(latency),
        "queue_wait_s": distribution(rec.start_s[done] - rec.arrival_s[done]),
        "sla": None,
        "sla_attainment": None,
    }
    if wl.sla is not None:
        target = wl.sla.latency_s
        age_at_end = w1 - rec.arrival_s[in_window & np.isnan(rec.finish_s)]
        judged = completed + int((age_at_end > target).sum())
        attainment = int((latency <= target).sum()) / judged if judged else None
        observed = json_float(np.percentile(latency, wl.sla.percentile)) if completed else None
        entry["sla"] = {
            "latency_s": target,
            "percentile": wl.sla.percentile,
            "observed_latency_s": observed,
            "met": bool(
                observed is not None
                and observed <= target
                and attainment is not None
                and attainment >= wl.sla.percentile / 100.0
            ),
            # the latency distribution's own interval when it reports this percentile
            "observed_latency_ci95_s": entry["latency_s"]["ci95"].get(f"p{wl.sla.percentile:g}")
            or percentile_interval(latency, wl.sla.percentile),
            "too_few_samples": too_few_samples(completed, wl.sla.percentile),
        }
        entry["sla_attainment"] = attainment
    serving = [p for p, pool in resolved.scenario.pools.items() if name in pool.serves]
    if len(serving) > 1:
        station_pool = np.array([s.pool for s in records.stations], dtype=object)
        routed = station_pool[rec.station] if rec.station.size else np.array([], dtype=object)
        entry["by_pool"] = {
            pool_name: {
                "completed": int((done & (routed == pool_name)).sum()),
                "latency_s": distribution(
                    rec.finish_s[done & (routed == pool_name)]
                    - rec.arrival_s[done & (routed == pool_name)]
                ),
            }
            for pool_name in serving
        }
    return entry


def _pool(
    resolved: ResolvedScenario,
    pool_name: str,
    records: RankingRecords,
    w0: float,
    w1: float,
    cap_w: float,
) -> dict[str, Any]:
    if isinstance(records.stream, RankingStream):
        return _streamed_pool(resolved, pool_name, records.stream, w1 - w0, cap_w)
    duration = w1 - w0
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    b = records.batches
    stations = _stations(records, pool_name)
    sel = np.isin(b.station, stations)
    overlap, share = window_overlap(b.start_s[sel], b.end_s[sel], w0, w1)
    counted = share > 0
    items = b.items[sel]
    served = 0
    for name in pool.serves:
        rec = records.workloads[name]
        done = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~np.isnan(rec.finish_s)
        served += int((done & np.isin(rec.station, stations)).sum())
    return {
        "chip": chip.name,
        "chips": pool.count,
        "serves": list(pool.serves),
        "batches": int(counted.sum()),
        "mean_batch_items": json_float(items[counted].mean()) if counted.any() else None,
        "utilization": float(overlap.sum()) / (pool.count * duration),
        **energy_and_cost(
            resolved,
            pool_name,
            cap_w,
            (b.start_s[sel], b.end_s[sel], b.dynamic_energy_j[sel], b.clock_ratio[sel]),
            (w0, w1),
            served,
            UNIT,
            ONE,
        ),
    }


def _stations(records: RankingRecords, pool_name: str) -> list[int]:
    return [i for i, info in enumerate(records.stations) if info.pool == pool_name]


def _timeline(
    resolved: ResolvedScenario, pool_name: str, records: RankingRecords, edges: np.ndarray
) -> dict[str, Any]:
    pool = resolved.scenario.pools[pool_name]
    idle_w = resolved.chips[pool_name].power.idle_w * pool.count
    if isinstance(records.stream, RankingStream):
        p = records.stream.pools[pool_name]
        return pool_series(p.bin_busy_s, p.bin_dynamic_j, p.bin_items_s, pool.count, idle_w, edges)
    b = records.batches
    sel = np.isin(b.station, _stations(records, pool_name))
    return pool_timeline(
        b.start_s[sel],
        b.end_s[sel],
        b.dynamic_energy_j[sel],
        b.items[sel],
        pool.count,
        idle_w,
        edges,
    )


def _busy(records: RankingRecords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = records.batches
    return b.start_s, b.end_s, b.dynamic_energy_j


def _samples(records: RankingRecords, w0: float, w1: float) -> dict[str, dict[str, np.ndarray]]:
    if records.stream is not None:
        raise ValueError(
            "a streamed run keeps no per-query latencies: run it with exact percentiles"
        )
    out = {}
    for name, rec in records.workloads.items():
        done = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~np.isnan(rec.finish_s)
        out[name] = {"latency_s": rec.finish_s[done] - rec.arrival_s[done]}
    return out


def _streamed_workload(
    resolved: ResolvedScenario, name: str, stream: RankingStream, duration: float
) -> dict[str, Any]:
    """:func:`_workload` of a streamed run."""
    wl = resolved.scenario.workloads[name]
    assert isinstance(wl, RankingWorkload)
    s = stream.workloads[name]
    latency = s.all_latency()
    entry: dict[str, Any] = {
        "kind": wl.kind,
        "model": resolved.models[name].name,
        "offered": s.offered,
        "completed": s.completed,
        "dropped": 0,
        "in_flight": s.offered - s.completed,
        "throughput_per_s": s.completed / duration,
        "items_per_s": float(s.completed_items) / duration,
        "mean_items_per_query": s.offered_items / s.offered if s.offered else None,
        "latency_s": streamed_distribution(latency),
        "queue_wait_s": streamed_distribution(s.queue_wait),
        "sla": None,
        "sla_attainment": None,
    }
    if wl.sla is not None:
        judged = s.completed + (s.old - s.old_completed)
        attainment = s.within_target / judged if judged else None
        observed = latency.quantile(wl.sla.percentile / 100.0)
        entry["sla"] = {
            "latency_s": wl.sla.latency_s,
            "percentile": wl.sla.percentile,
            "observed_latency_s": observed,
            "observed_method": "sketch",
            "met": bool(
                observed is not None
                and observed <= wl.sla.latency_s
                and attainment is not None
                and attainment >= wl.sla.percentile / 100.0
            ),
            "observed_latency_ci95_s": sketch_interval(latency, wl.sla.percentile),
            "too_few_samples": too_few_samples(s.completed, wl.sla.percentile),
        }
        entry["sla_attainment"] = attainment
    serving = [p for p, pool in resolved.scenario.pools.items() if name in pool.serves]
    if len(serving) > 1:
        by_pool = dict(zip(stream.pool_names, s.latency, strict=True))
        entry["by_pool"] = {
            pool_name: {
                "completed": by_pool[pool_name].count,
                "latency_s": streamed_distribution(by_pool[pool_name]),
            }
            for pool_name in serving
        }
    return entry


def _streamed_pool(
    resolved: ResolvedScenario,
    pool_name: str,
    stream: RankingStream,
    duration: float,
    cap_w: float,
) -> dict[str, Any]:
    """:func:`_pool` of a streamed run."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    p = stream.pools[pool_name]
    served = sum(
        stream.workloads[name].latency[stream.pool_names.index(pool_name)].count
        for name in pool.serves
    )
    power = power_summary(
        chip,
        pool.count,
        cap_w,
        duration,
        p.dynamic_j,
        p.peak.peak,
        p.clock_busy_s / p.busy_s if p.busy_s > 0 else None,
        residency(p.busy_s, p.band_s, p.band_seen),
    )
    return {
        "chip": chip.name,
        "chips": pool.count,
        "serves": list(pool.serves),
        "batches": p.batches,
        "mean_batch_items": p.items / p.batches if p.batches else None,
        "utilization": p.busy_s / (pool.count * duration),
        **with_cost(resolved, pool_name, power, duration, served, UNIT, ONE),
    }


def _requests(records: RankingRecords, w0: float, w1: float) -> dict[str, dict[str, np.ndarray]]:
    pools = np.array([s.pool for s in records.stations], dtype=object)
    out = {}
    for name, rec in records.workloads.items():
        out[name] = {
            "in_window": (rec.arrival_s >= w0) & (rec.arrival_s < w1),
            "arrival_s": rec.arrival_s,
            "start_s": rec.start_s,
            "finish_s": rec.finish_s,
            "latency_s": rec.finish_s - rec.arrival_s,
            "queue_wait_s": rec.start_s - rec.arrival_s,
            "items": rec.items,
            "pool": pools[rec.station] if rec.station.size else np.array([], dtype=object),
        }
    return out


METRICS = MetricsKind(
    unit=UNIT,
    one=ONE,
    noun="queries",
    workload=_workload,
    pool=_pool,
    pool_timeline=_timeline,
    busy=_busy,
    samples=_samples,
    requests=_requests,
)
