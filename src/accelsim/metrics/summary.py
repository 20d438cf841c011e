"""Turn a run's raw records into the versioned result document.

Statistics cover the measurement window [warm-up, end). A query belongs to the
window if it *arrived* in it; ``offered = completed + dropped + in_flight``
holds exactly for that cohort. Chip busy time and energy are the parts of each
batch that overlap the window. Every chip draws its idle power all the time
and its batches' dynamic energy on top, so a pool's energy is
``idle_w * chips * duration + sum(dynamic energy in the window)``.

What each workload kind contributes (its workload and pool entries, its pool
timelines, the unit its perf/W counts) comes from :data:`METRIC_KINDS`. A run whose
records were streamed (:mod:`accelsim.metrics.streaming`) is summarised from its
streaming summaries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from accelsim import __version__
from accelsim.config.loader import ResolvedScenario
from accelsim.engine.records import CapHistory, RunRecords
from accelsim.metrics import llm, ranking
from accelsim.metrics.common import json_float
from accelsim.metrics.confidence import tail_warning
from accelsim.metrics.kinds import MetricsKind
from accelsim.metrics.loadgen import LOADGEN_TRAFFIC, loadgen_entry
from accelsim.metrics.power import peak_dynamic_power_w, per_million
from accelsim.metrics.streaming import completed_per_bin, in_system, streams
from accelsim.metrics.timeline import bin_edges
from accelsim.model.power import chip_caps_w

# Workload kind -> how it is summarised. Totals list the kinds' units in this order.
METRIC_KINDS: dict[str, MetricsKind] = {
    "ranking": ranking.METRICS,
    "llm": llm.METRICS,
}

SCHEMA_VERSION = 1
OVERLOAD_IN_FLIGHT_SHARE = 0.05


def backlog_grows(records: RunRecords, workload: str, offered: int) -> bool:
    """Whether a workload's backlog grows over the window: a fleet that keeps up holds a
    steady number in flight (give or take Poisson-like noise), one that cannot, a number
    that grows. The test compares the number in the system at mid-window and at the end;
    growth past ``OVERLOAD_IN_FLIGHT_SHARE`` of the ``offered`` requests and past the noise
    counts. The run's "cannot keep up" warning and capacity probes both use it."""
    w0, w1 = records.warmup_s, records.end_s
    mid, end = in_system(records, workload, np.array([w0 + (w1 - w0) / 2, w1]))
    growth = end - mid
    return bool(growth > max(OVERLOAD_IN_FLIGHT_SHARE * offered, 4 * math.sqrt(mid + 1) + 5))


def summarize(resolved: ResolvedScenario, records: RunRecords) -> dict[str, Any]:
    """The result document of one run (see README, "Result document")."""
    scenario = resolved.scenario
    w0, w1 = records.warmup_s, records.end_s
    duration = w1 - w0
    warnings: list[str] = []

    workloads: dict[str, Any] = {}
    for name, wl in scenario.workloads.items():
        kind = METRIC_KINDS[wl.kind]
        entry = kind.workload(resolved, name, records.fleets[wl.kind], w0, w1)
        if wl.traffic.kind in LOADGEN_TRAFFIC:
            columns = kind.requests(records.fleets[wl.kind], w0, w1)[name]
            entry["loadgen"] = loadgen_entry(wl.traffic, columns, entry["throughput_per_s"])
        offered, in_flight = entry["offered"], entry["in_flight"]
        if backlog_grows(records, name, offered):
            warnings.append(
                f"workload {name}: {in_flight} of {offered} {kind.noun} "
                f"({in_flight / offered:.0%}) "
                "still in flight at the end; the fleet cannot keep up with this load"
            )
        if entry["dropped"]:
            warnings.append(
                f"workload {name}: {entry['dropped']} requests rejected: {kind.dropped_because}"
            )
        tail = tail_warning(name, entry, kind.noun)
        if tail is not None:
            warnings.append(tail)
        workloads[name] = entry

    pools: dict[str, Any] = {}
    caps = chip_caps_w(resolved)
    for pool_name, pool in scenario.pools.items():
        kind_name = scenario.workloads[pool.serves[0]].kind
        pools[pool_name] = METRIC_KINDS[kind_name].pool(
            resolved, pool_name, records.fleets[kind_name], w0, w1, caps[pool_name]
        )

    timeline = _timeline(resolved, records, w0, w1)
    totals = _totals(resolved, records, pools, w0, w1)
    if records.power_caps is not None:
        totals["power_shifting"] = power_shifting(records.power_caps, resolved, w0, w1)
    budget = scenario.facility.power_budget_w
    if budget is not None and totals["facility_peak_power_w"] > budget:
        warnings.append(
            f"facility peak draw {totals['facility_peak_power_w']:.4g} W exceeds the "
            f"{budget:.4g} W budget"
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "accelsim_version": __version__,
        "scenario": scenario.name,
        "seed": scenario.simulation.seed,
        "window_s": {"start": w0, "end": w1, "duration": duration},
        "workloads": workloads,
        "pools": pools,
        "totals": totals,
        "timeline": timeline,
        "warnings": warnings,
        "config": scenario.model_dump(mode="json"),
    }


def power_shifting(
    history: CapHistory, resolved: ResolvedScenario, w0: float, w1: float
) -> dict[str, Any]:
    """The caps a shifting facility used over [w0, w1): per pool the time-averaged,
    least and largest per-chip cap, and the largest sum of caps over all chips (never
    above the IT budget)."""
    times = np.array([*history.times_s, math.inf])
    overlap = np.clip(np.minimum(times[1:], w1) - np.maximum(times[:-1], w0), 0, None)
    used = overlap > 0
    chips = {name: pool.count for name, pool in resolved.scenario.pools.items()}
    total = sum(chips[name] * np.array(caps) for name, caps in history.caps_w.items())
    pools = {}
    for name, caps in history.caps_w.items():
        c = np.array(caps)
        pools[name] = {
            "mean_cap_w": float((c * overlap).sum() / (w1 - w0)),
            "min_cap_w": float(c[used].min()),
            "max_cap_w": float(c[used].max()),
        }
    return {
        "interval_s": history.interval_s,
        "it_budget_w": history.it_budget_w,
        "shifts": int(used.sum()) - 1,
        "max_total_cap_w": float(np.asarray(total)[used].max()),
        "pools": pools,
    }


def _pool_kind(resolved: ResolvedScenario, pool_name: str) -> str:
    """The workload kind a pool serves."""
    return resolved.scenario.workloads[resolved.scenario.pools[pool_name].serves[0]].kind


def _timeline(
    resolved: ResolvedScenario, records: RunRecords, w0: float, w1: float
) -> dict[str, Any]:
    """Sampled series over the window: per pool and per workload."""
    scenario = resolved.scenario
    edges = bin_edges(w0, w1)
    dt = np.diff(edges)
    pools: dict[str, Any] = {}
    for pool_name in scenario.pools:
        kind = _pool_kind(resolved, pool_name)
        pools[pool_name] = METRIC_KINDS[kind].pool_timeline(
            resolved, pool_name, records.fleets[kind], edges
        )
    workloads: dict[str, Any] = {}
    for name in scenario.workloads:
        done = completed_per_bin(records, name, edges)
        workloads[name] = {
            "in_system": in_system(records, name, edges[1:]).tolist(),
            "completed_per_s": (done / dt).tolist(),
        }
    return {
        "t_s": edges[:-1].tolist(),
        "bin_s": float(dt[0]),
        "pools": pools,
        "workloads": workloads,
    }


def _totals(
    resolved: ResolvedScenario,
    records: RunRecords,
    pools: dict[str, Any],
    w0: float,
    w1: float,
) -> dict[str, Any]:
    """Fleet and facility figures: energy, power, perf/W per kind's unit (queries, output
    tokens), and cost per million of each."""
    duration = w1 - w0
    facility = resolved.scenario.facility
    by_kind = {
        kind: [p for name, p in pools.items() if _pool_kind(resolved, name) == kind]
        for kind in METRIC_KINDS
    }
    energy = sum(p["energy_j"] for p in pools.values())
    busy = [METRIC_KINDS[kind].busy(fleet) for kind, fleet in records.fleets.items()]
    starts = np.concatenate([b[0] for b in busy]) if busy else np.zeros(0)
    ends = np.concatenate([b[1] for b in busy]) if busy else np.zeros(0)
    dynamic = np.concatenate([b[2] for b in busy]) if busy else np.zeros(0)
    idle = sum(p["idle_power_w"] for p in pools.values())
    peak = idle + peak_dynamic_power_w(starts, ends, dynamic, w0, w1)
    peak += sum(stream.fleet_peak.peak for stream in streams(records))

    def cost(group: list[dict[str, Any]]) -> float | None:
        values = [p["cost_per_hour_usd"] for p in group]
        return None if not values or None in values else float(sum(values))

    served = {}  # kind -> (count in its unit, energy of its pools)
    for kind, group in by_kind.items():
        unit = METRIC_KINDS[kind].unit
        served[kind] = (sum(p[unit] for p in group), sum(p["energy_j"] for p in group))
    per_j = {
        f"{METRIC_KINDS[k].unit}_per_j": json_float(n / e) if e > 0 else None
        for k, (n, e) in served.items()
    }
    energy_per = {
        f"energy_per_{METRIC_KINDS[k].one}_j": e / n if n else None for k, (n, e) in served.items()
    }
    cost_per = {
        f"cost_per_million_{METRIC_KINDS[k].unit}_usd": per_million(
            cost(by_kind[k]), served[k][0], duration
        )
        for k in served
    }
    return {
        "energy_j": energy,
        "avg_power_w": energy / duration,
        "peak_power_w": peak,
        **per_j,
        **energy_per,
        "pue": facility.pue,
        "facility_avg_power_w": energy / duration * facility.pue,
        "facility_peak_power_w": peak * facility.pue,
        "facility_energy_j": energy * facility.pue,
        "power_budget_w": facility.power_budget_w,
        "within_budget": None
        if facility.power_budget_w is None
        else peak * facility.pue <= facility.power_budget_w,
        "cost_per_hour_usd": cost(list(pools.values())),
        **cost_per,
    }
