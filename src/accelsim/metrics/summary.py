"""Turn a run's raw records into the versioned result document.

Statistics cover the measurement window [warm-up, end). A query belongs to the
window if it *arrived* in it; ``offered = completed + dropped + in_flight``
holds exactly for that cohort. Chip busy time and energy are the parts of each
batch that overlap the window. Every chip draws its idle power all the time
and its batches' dynamic energy on top, so a pool's energy is
``idle_w * chips * duration + sum(dynamic energy in the window)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from accelsim import __version__
from accelsim.config.loader import ResolvedScenario
from accelsim.engine.simulation import RunRecords

SCHEMA_VERSION = 1
OVERLOAD_IN_FLIGHT_SHARE = 0.05


def _num(x: float) -> float | None:
    """A JSON-safe float: NaN and infinities become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def distribution(values: np.ndarray) -> dict[str, float | None]:
    """mean, p50, p90, p99 and max of a sample (nulls when it is empty)."""
    if values.size == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": _num(values.mean()),
        "p50": _num(p50),
        "p90": _num(p90),
        "p99": _num(p99),
        "max": _num(values.max()),
    }


def summarize(resolved: ResolvedScenario, records: RunRecords) -> dict[str, Any]:
    """The result document of one run (see README, "Result document")."""
    scenario = resolved.scenario
    w0, w1 = records.warmup_s, records.end_s
    duration = w1 - w0
    warnings: list[str] = []
    station_pool = np.array([s.pool for s in records.stations], dtype=object)

    workloads: dict[str, Any] = {}
    for name, wl in scenario.workloads.items():
        rec = records.workloads[name]
        in_window = (rec.arrival_s >= w0) & (rec.arrival_s < w1)
        done = in_window & ~np.isnan(rec.finish_s)
        offered = int(in_window.sum())
        completed = int(done.sum())
        in_flight = offered - completed
        latency = rec.finish_s[done] - rec.arrival_s[done]
        wait = rec.start_s[done] - rec.arrival_s[done]
        entry: dict[str, Any] = {
            "kind": wl.kind,
            "model": resolved.models[name].name,
            "offered": offered,
            "completed": completed,
            "dropped": 0,
            "in_flight": in_flight,
            "throughput_per_s": completed / duration,
            "items_per_s": float(rec.items[done].sum()) / duration,
            "mean_items_per_query": _num(rec.items[in_window].mean()) if offered else None,
            "latency_s": distribution(latency),
            "queue_wait_s": distribution(wait),
            "sla": None,
            "sla_attainment": None,
        }
        if wl.sla is not None:
            target = wl.sla.latency_s
            age_at_end = w1 - rec.arrival_s[in_window & np.isnan(rec.finish_s)]
            late_in_flight = int((age_at_end > target).sum())
            judged = completed + late_in_flight
            met = int((latency <= target).sum())
            attainment = met / judged if judged else None
            observed = _num(np.percentile(latency, wl.sla.percentile)) if completed else None
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
            }
            entry["sla_attainment"] = attainment
        serving = [p for p, pool in scenario.pools.items() if name in pool.serves]
        if len(serving) > 1:
            by_pool = {}
            routed = station_pool[rec.station] if rec.station.size else np.array([], dtype=object)
            for pool_name in serving:
                sel = done & (routed == pool_name)
                by_pool[pool_name] = {
                    "completed": int(sel.sum()),
                    "latency_s": distribution(rec.finish_s[sel] - rec.arrival_s[sel]),
                }
            entry["by_pool"] = by_pool
        if offered and in_flight > OVERLOAD_IN_FLIGHT_SHARE * offered:
            warnings.append(
                f"workload {name}: {in_flight} of {offered} queries ({in_flight / offered:.0%}) "
                "still in flight at the end; the fleet cannot keep up with this load"
            )
        workloads[name] = entry

    batches = records.batches
    overlap = np.clip(np.minimum(batches.end_s, w1) - np.maximum(batches.start_s, w0), 0, None)
    span = batches.end_s - batches.start_s
    share = np.divide(overlap, span, out=np.zeros_like(overlap), where=span > 0)
    station_of_pool: dict[str, list[int]] = {}
    for index, info in enumerate(records.stations):
        station_of_pool.setdefault(info.pool, []).append(index)

    pools: dict[str, Any] = {}
    total_energy = 0.0
    total_completed = sum(w["completed"] for w in workloads.values())
    for pool_name, pool in scenario.pools.items():
        chip = resolved.chips[pool_name]
        sel = np.isin(batches.station, station_of_pool[pool_name])
        busy = float(overlap[sel].sum())
        dynamic = float((batches.dynamic_energy_j[sel] * share[sel]).sum())
        static = chip.power.idle_w * pool.count * duration
        energy = static + dynamic
        total_energy += energy
        counted = sel & (share > 0)
        pools[pool_name] = {
            "chip": chip.name,
            "chips": pool.count,
            "serves": list(pool.serves),
            "batches": int(counted.sum()),
            "mean_batch_items": _num(batches.items[counted].mean()) if counted.any() else None,
            "utilization": busy / (pool.count * duration),
            "avg_power_w": energy / duration,
            "energy_j": energy,
            "idle_power_w": chip.power.idle_w * pool.count,
            "tdp_w": chip.power.tdp_w * pool.count,
        }

    return {
        "schema_version": SCHEMA_VERSION,
        "accelsim_version": __version__,
        "scenario": scenario.name,
        "seed": scenario.simulation.seed,
        "window_s": {"start": w0, "end": w1, "duration": duration},
        "workloads": workloads,
        "pools": pools,
        "totals": {
            "energy_j": total_energy,
            "avg_power_w": total_energy / duration,
            "queries_per_j": total_completed / total_energy if total_energy > 0 else None,
        },
        "warnings": warnings,
        "config": scenario.model_dump(mode="json"),
    }
