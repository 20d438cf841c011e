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
from accelsim.config.schema import LLMWorkload, RankingWorkload
from accelsim.engine.llm import MODES
from accelsim.engine.simulation import LLMRecords, RunRecords, chip_caps_w
from accelsim.metrics.power import cost_fields, peak_dynamic_power_w, per_million, power_fields
from accelsim.metrics.timeline import bin_edges, in_system_at, pool_timeline

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


def _window_overlap(
    start: np.ndarray, end: np.ndarray, w0: float, w1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each interval inside [w0, w1), and that as a share of the interval."""
    overlap = np.clip(np.minimum(end, w1) - np.maximum(start, w0), 0, None)
    span = end - start
    share = np.divide(overlap, span, out=np.zeros_like(overlap), where=span > 0)
    return overlap, share


def summarize(resolved: ResolvedScenario, records: RunRecords) -> dict[str, Any]:
    """The result document of one run (see README, "Result document")."""
    scenario = resolved.scenario
    w0, w1 = records.warmup_s, records.end_s
    duration = w1 - w0
    warnings: list[str] = []

    workloads: dict[str, Any] = {}
    for name, wl in scenario.workloads.items():
        if isinstance(wl, LLMWorkload):
            entry = _llm_workload(resolved, name, wl, records.llm[name], w0, w1)
        else:
            entry = _ranking_workload(resolved, name, wl, records, w0, w1)
        offered, in_flight = entry["offered"], entry["in_flight"]
        rec = records.llm[name] if isinstance(wl, LLMWorkload) else records.workloads[name]
        mid, end = in_system_at(rec.arrival_s, rec.finish_s, np.array([w0 + duration / 2, w1]))
        # A fleet that keeps up holds a steady number in flight (give or take Poisson-like
        # noise); one that cannot, a number that grows over the window.
        growth = end - mid
        if growth > max(OVERLOAD_IN_FLIGHT_SHARE * offered, 4 * math.sqrt(mid + 1) + 5):
            noun = "requests" if wl.kind == "llm" else "queries"
            warnings.append(
                f"workload {name}: {in_flight} of {offered} {noun} ({in_flight / offered:.0%}) "
                "still in flight at the end; the fleet cannot keep up with this load"
            )
        if entry["dropped"]:
            warnings.append(
                f"workload {name}: {entry['dropped']} requests rejected: their prompt and "
                "output need more KV cache than a replica has"
            )
        workloads[name] = entry

    pools: dict[str, Any] = {}
    caps = chip_caps_w(resolved)
    for pool_name, pool in scenario.pools.items():
        pool_summary = (
            _llm_pool if scenario.workloads[pool.serves[0]].kind == "llm" else (_ranking_pool)
        )
        pools[pool_name] = pool_summary(resolved, pool_name, records, w0, w1, caps[pool_name])

    timeline = _timeline(resolved, records, w0, w1)
    totals = _totals(resolved, records, pools, w0, w1)
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


def _ranking_workload(
    resolved: ResolvedScenario,
    name: str,
    wl: RankingWorkload,
    records: RunRecords,
    w0: float,
    w1: float,
) -> dict[str, Any]:
    duration = w1 - w0
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
        "mean_items_per_query": _num(rec.items[in_window].mean()) if offered else None,
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


def _llm_latencies(rec: LLMRecords, sel: np.ndarray) -> dict[str, Any]:
    """Latency, TTFT and TPOT distributions of the completed requests in ``sel``."""
    ttft = rec.first_token_s[sel] - rec.arrival_s[sel]
    latency = rec.finish_s[sel] - rec.arrival_s[sel]
    streamed = sel & (rec.output_tokens > 1)
    tpot = (rec.finish_s[streamed] - rec.first_token_s[streamed]) / (
        rec.output_tokens[streamed] - 1
    )
    return {
        "latency_s": distribution(latency),
        "ttft_s": distribution(ttft),
        "tpot_s": distribution(tpot),
    }


def _llm_workload(
    resolved: ResolvedScenario,
    name: str,
    wl: LLMWorkload,
    rec: LLMRecords,
    w0: float,
    w1: float,
) -> dict[str, Any]:
    duration = w1 - w0
    in_window = (rec.arrival_s >= w0) & (rec.arrival_s < w1)
    dropped = in_window & rec.rejected
    done = in_window & ~rec.rejected & ~np.isnan(rec.finish_s)
    offered, completed, n_dropped = int(in_window.sum()), int(done.sum()), int(dropped.sum())
    tokens = int(rec.generated_tokens[done].sum())
    entry: dict[str, Any] = {
        "kind": wl.kind,
        "model": resolved.models[name].name,
        "offered": offered,
        "completed": completed,
        "dropped": n_dropped,
        "in_flight": offered - completed - n_dropped,
        "throughput_per_s": completed / duration,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / duration,
        "mean_prompt_tokens": _num(rec.prompt_tokens[in_window].mean()) if offered else None,
        **_llm_latencies(rec, done),
        "sla": None,
        "sla_attainment": None,
    }
    if wl.sla is not None:
        t = wl.sla
        ttft = rec.first_token_s[done] - rec.arrival_s[done]
        out = rec.output_tokens[done]
        tpot = np.where(
            out > 1, (rec.finish_s[done] - rec.first_token_s[done]) / np.maximum(out - 1, 1), 0.0
        )
        waiting = in_window & ~rec.rejected & np.isnan(rec.finish_s)
        late = int(
            ((w1 - rec.arrival_s[waiting] > t.ttft_s) & np.isnan(rec.first_token_s[waiting])).sum()
        )
        judged = completed + late
        good = int(((ttft <= t.ttft_s) & (tpot <= t.tpot_s)).sum())
        observed_ttft = _num(np.percentile(ttft, t.percentile)) if completed else None
        observed_tpot = _num(np.percentile(tpot, t.percentile)) if completed else None
        attainment = good / judged if judged else None
        entry["sla"] = {
            "ttft_s": t.ttft_s,
            "tpot_s": t.tpot_s,
            "percentile": t.percentile,
            "observed_ttft_s": observed_ttft,
            "observed_tpot_s": observed_tpot,
            "met": bool(
                observed_ttft is not None
                and observed_tpot is not None
                and observed_ttft <= t.ttft_s
                and observed_tpot <= t.tpot_s
            ),
        }
        entry["sla_attainment"] = attainment
    by_mode: dict[str, Any] = {}
    for index, mode in enumerate(MODES):
        sel = in_window & (rec.mode == index)
        if not sel.any():
            continue
        mode_done = sel & done
        mode_dropped = int((sel & rec.rejected).sum())
        by_mode[mode] = {
            "offered": int(sel.sum()),
            "completed": int(mode_done.sum()),
            "dropped": mode_dropped,
            "in_flight": int(sel.sum()) - int(mode_done.sum()) - mode_dropped,
            **_llm_latencies(rec, mode_done),
        }
    entry["by_mode"] = by_mode
    spawned = int(rec.branches_spawned[in_window].sum())
    if spawned:
        finished = int(rec.branches_done[in_window].sum())
        entry["sub_requests"] = {
            "offered": spawned,
            "completed": finished,
            "in_flight": spawned - finished,
        }
    return entry


def _ranking_pool(
    resolved: ResolvedScenario,
    pool_name: str,
    records: RunRecords,
    w0: float,
    w1: float,
    cap_w: float,
) -> dict[str, Any]:
    duration = w1 - w0
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    b = records.batches
    stations = [i for i, info in enumerate(records.stations) if info.pool == pool_name]
    sel = np.isin(b.station, stations)
    overlap, share = _window_overlap(b.start_s[sel], b.end_s[sel], w0, w1)
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
        "mean_batch_items": _num(items[counted].mean()) if counted.any() else None,
        "utilization": float(overlap.sum()) / (pool.count * duration),
        **_energy_and_cost(
            resolved,
            pool_name,
            cap_w,
            (b.start_s[sel], b.end_s[sel], b.dynamic_energy_j[sel], b.clock_ratio[sel]),
            (w0, w1),
            served,
            "queries",
        ),
    }


def _llm_pool(
    resolved: ResolvedScenario,
    pool_name: str,
    records: RunRecords,
    w0: float,
    w1: float,
    cap_w: float,
) -> dict[str, Any]:
    duration = w1 - w0
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    its = records.iterations
    replicas = [i for i, info in enumerate(records.replicas) if info.pool == pool_name]
    sel = np.isin(its.replica, replicas)
    overlap, share = _window_overlap(its.start_s[sel], its.end_s[sel], w0, w1)
    busy = float(overlap.sum())
    capacity = records.replicas[replicas[0]].kv_capacity_tokens if replicas else 0
    sequences, kv = its.sequences[sel], its.kv_tokens[sel]
    mean_batch = float((sequences * overlap).sum() / busy) if busy > 0 else None
    kv_mean = float((kv * overlap).sum() / busy / capacity) if busy > 0 and capacity else None
    kv_max = max((records.replicas[i].max_kv_tokens for i in replicas), default=0)
    counted = share > 0
    tokens = 0
    for name in pool.serves:
        rec = records.llm[name]
        done = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~np.isnan(rec.finish_s)
        tokens += int(rec.generated_tokens[done & np.isin(rec.replica, replicas)].sum())
    return {
        "chip": chip.name,
        "chips": pool.count,
        "chips_per_replica": pool.chips_per_replica,
        "replicas": len(replicas),
        "serves": list(pool.serves),
        # Coalesced decode spans hold many iterations; count those inside the window.
        "iterations": round(float((its.steps[sel] * share).sum())),
        "mean_batch_sequences": mean_batch,
        "max_batch_sequences": int(sequences[counted].max()) if counted.any() else None,
        "kv_capacity_tokens": capacity,
        "kv_utilization": {"mean": kv_mean, "max": kv_max / capacity if capacity else None},
        "preemptions": sum(records.replicas[i].preemptions for i in replicas),
        "utilization": busy / (len(replicas) * duration) if replicas else 0.0,
        **_energy_and_cost(
            resolved,
            pool_name,
            cap_w,
            (its.start_s[sel], its.end_s[sel], its.dynamic_energy_j[sel], its.clock_ratio[sel]),
            (w0, w1),
            tokens,
            "output_tokens",
        ),
    }


def _energy_and_cost(
    resolved: ResolvedScenario,
    pool_name: str,
    cap_w: float,
    intervals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    window: tuple[float, float],
    served: int,
    unit: str,
) -> dict[str, Any]:
    """Power, perf/W and cost of a pool from its busy intervals (start, end, dynamic energy,
    clock), given what it served in ``unit`` ("queries" or "output_tokens")."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    w0, w1 = window
    power = power_fields(chip, pool.count, cap_w, *intervals, w0, w1)
    cost = cost_fields(chip, pool.count, power["avg_power_w"], resolved.scenario.facility)
    energy = power["energy_j"]
    one = "query" if unit == "queries" else "output_token"
    return {
        **power,
        unit: served,
        f"{unit}_per_j": _num(served / energy) if energy > 0 else None,
        f"energy_per_{one}_j": _num(energy / served) if served else None,
        **cost,
        f"cost_per_million_{unit}_usd": per_million(cost["cost_per_hour_usd"], served, w1 - w0),
    }


def _timeline(
    resolved: ResolvedScenario, records: RunRecords, w0: float, w1: float
) -> dict[str, Any]:
    """Sampled series over the window: per pool and per workload."""
    scenario = resolved.scenario
    edges = bin_edges(w0, w1)
    dt = np.diff(edges)
    pools: dict[str, Any] = {}
    for pool_name, pool in scenario.pools.items():
        chip = resolved.chips[pool_name]
        idle = chip.power.idle_w * pool.count
        if scenario.workloads[pool.serves[0]].kind == "llm":
            its = records.iterations
            units = [i for i, info in enumerate(records.replicas) if info.pool == pool_name]
            sel = np.isin(its.replica, units)
            capacity = records.replicas[units[0]].kv_capacity_tokens if units else 0
            pools[pool_name] = pool_timeline(
                its.start_s[sel],
                its.end_s[sel],
                its.dynamic_energy_j[sel],
                its.sequences[sel],
                max(1, len(units)),
                idle,
                edges,
                kv_tokens=its.kv_tokens[sel],
                kv_capacity_tokens=capacity,
            )
        else:
            b = records.batches
            stations = [i for i, info in enumerate(records.stations) if info.pool == pool_name]
            sel = np.isin(b.station, stations)
            pools[pool_name] = pool_timeline(
                b.start_s[sel],
                b.end_s[sel],
                b.dynamic_energy_j[sel],
                b.items[sel],
                pool.count,
                idle,
                edges,
            )
    workloads: dict[str, Any] = {}
    for name, wl in scenario.workloads.items():
        rec = records.llm[name] if wl.kind == "llm" else records.workloads[name]
        finished = rec.finish_s[~np.isnan(rec.finish_s)]
        done, _ = np.histogram(finished, bins=edges)
        workloads[name] = {
            "in_system": in_system_at(rec.arrival_s, rec.finish_s, edges[1:]).tolist(),
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
    """Fleet and facility figures: energy, power, perf/W, and cost per query or token."""
    duration = w1 - w0
    facility = resolved.scenario.facility
    ranking = [p for p in pools.values() if "queries" in p]
    llm = [p for p in pools.values() if "output_tokens" in p]
    energy = sum(p["energy_j"] for p in pools.values())
    queries = sum(p["queries"] for p in ranking)
    tokens = sum(p["output_tokens"] for p in llm)
    ranking_energy = sum(p["energy_j"] for p in ranking)
    llm_energy = sum(p["energy_j"] for p in llm)
    b, it = records.batches, records.iterations
    starts = np.concatenate((b.start_s, it.start_s))
    ends = np.concatenate((b.end_s, it.end_s))
    dynamic = np.concatenate((b.dynamic_energy_j, it.dynamic_energy_j))
    idle = sum(p["idle_power_w"] for p in pools.values())
    peak = idle + peak_dynamic_power_w(starts, ends, dynamic, w0, w1)

    def cost(group: list[dict[str, Any]]) -> float | None:
        values = [p["cost_per_hour_usd"] for p in group]
        return None if not values or None in values else float(sum(values))

    return {
        "energy_j": energy,
        "avg_power_w": energy / duration,
        "peak_power_w": peak,
        "queries_per_j": _num(queries / ranking_energy) if ranking_energy > 0 else None,
        "output_tokens_per_j": _num(tokens / llm_energy) if llm_energy > 0 else None,
        "energy_per_query_j": ranking_energy / queries if queries else None,
        "energy_per_output_token_j": llm_energy / tokens if tokens else None,
        "pue": facility.pue,
        "facility_avg_power_w": energy / duration * facility.pue,
        "facility_peak_power_w": peak * facility.pue,
        "facility_energy_j": energy * facility.pue,
        "power_budget_w": facility.power_budget_w,
        "within_budget": None
        if facility.power_budget_w is None
        else peak * facility.pue <= facility.power_budget_w,
        "cost_per_hour_usd": cost(list(pools.values())),
        "cost_per_million_queries_usd": per_million(cost(ranking), queries, duration),
        "cost_per_million_output_tokens_usd": per_million(cost(llm), tokens, duration),
    }
