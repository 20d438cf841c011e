"""Summaries of LLM workloads and pools: TTFT, TPOT, tokens, KV use, perf/W.

A request belongs to the window if it *arrived* in it. Rejected requests (they
could never fit a replica's KV cache) are ``dropped``. TPOT is (finish - first
token) / (output tokens - 1) over requests that stream more than one token.
Coalesced decode spans hold many iterations; pool figures prorate them across
the window's edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import LLMWorkload, Pool
from accelsim.engine.records import MODE_CONTEMPLATING, MODES, LLMFleetRecords, LLMRecords
from accelsim.metrics.common import distribution, energy_and_cost, json_float, window_overlap
from accelsim.metrics.contemplating import branch_latencies
from accelsim.metrics.disagg import disaggregation_summary
from accelsim.metrics.kinds import MetricsKind
from accelsim.metrics.prefix import caches, pool_prefix, workload_prefix
from accelsim.metrics.slo import by_class, judge_sla
from accelsim.metrics.speculative import speculative_summary
from accelsim.metrics.timeline import pool_timeline
from accelsim.model.parallel import bubble_share

UNIT, ONE = "output_tokens", "output_token"  # what perf/W and cost count


def _latencies(rec: LLMRecords, sel: np.ndarray) -> dict[str, Any]:
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


def _workload(
    resolved: ResolvedScenario, name: str, records: LLMFleetRecords, w0: float, w1: float
) -> dict[str, Any]:
    duration = w1 - w0
    wl = resolved.scenario.workloads[name]
    assert isinstance(wl, LLMWorkload)
    rec = records.workloads[name]
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
        "mean_prompt_tokens": json_float(rec.prompt_tokens[in_window].mean()) if offered else None,
        **_latencies(rec, done),
        "sla": None,
        "sla_attainment": None,
    }
    if caches(resolved, name):
        entry.update(workload_prefix(rec, in_window))
    if wl.sla is not None:
        entry["sla"], entry["sla_attainment"] = judge_sla(rec, wl.sla, in_window, done, w1)
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
            **_latencies(rec, mode_done),
        }
        if index == MODE_CONTEMPLATING:
            by_mode[mode].update(branch_latencies(rec, sel))
    entry["by_mode"] = by_mode
    if wl.slo is not None:
        entry["by_class"] = by_class(wl, rec, in_window, done, w1)
    if name in records.speculative:
        entry["speculative"] = speculative_summary(records.speculative[name], w0, w1)
    if wl.disaggregation is not None and rec.disaggregation is not None:
        entry["disaggregation"] = disaggregation_summary(
            wl.disaggregation, rec.disaggregation, done
        )
    spawned = int(rec.branches_spawned[in_window].sum())
    if spawned:
        finished = int(rec.branches_done[in_window].sum())
        entry["sub_requests"] = {
            "offered": spawned,
            "completed": finished,
            "in_flight": spawned - finished,
        }
    return entry


def _replicas(records: LLMFleetRecords, pool_name: str) -> list[int]:
    return [i for i, info in enumerate(records.replicas) if info.pool == pool_name]


def _pool(
    resolved: ResolvedScenario,
    pool_name: str,
    records: LLMFleetRecords,
    w0: float,
    w1: float,
    cap_w: float,
) -> dict[str, Any]:
    duration = w1 - w0
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    its = records.iterations
    replicas = _replicas(records, pool_name)
    sel = np.isin(its.replica, replicas)
    overlap, share = window_overlap(its.start_s[sel], its.end_s[sel], w0, w1)
    busy = float(overlap.sum())
    capacity = records.replicas[replicas[0]].kv_capacity_tokens if replicas else 0
    sequences, kv = its.sequences[sel], its.kv_tokens[sel]
    mean_batch = float((sequences * overlap).sum() / busy) if busy > 0 else None
    kv_mean = float((kv * overlap).sum() / busy / capacity) if busy > 0 and capacity else None
    kv_max = max((records.replicas[i].max_kv_tokens for i in replicas), default=0)
    counted = share > 0
    tokens = 0
    for name in pool.serves:
        rec = records.workloads[name]
        done = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~np.isnan(rec.finish_s)
        # A contemplating request's branch tokens count where each branch ran.
        branches = rec.branch_output_tokens
        final = rec.generated_tokens - branches.sum(axis=1)
        tokens += int(final[done & np.isin(rec.replica, replicas)].sum())
        tokens += int(branches[done[:, None] & np.isin(rec.branch_replica, replicas)].sum())
    entry: dict[str, Any] = {
        "chip": chip.name,
        "chips": pool.count,
        "chips_per_replica": pool.chips_per_replica,
        **_parallelism(pool),
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
        **energy_and_cost(
            resolved,
            pool_name,
            cap_w,
            (its.start_s[sel], its.end_s[sel], its.dynamic_energy_j[sel], its.clock_ratio[sel]),
            (w0, w1),
            tokens,
            UNIT,
            ONE,
        ),
    }
    if pool.continuous_batching.prefix_cache is not None:
        entry["prefix_cache"] = pool_prefix(resolved, pool_name, records, replicas)
    return entry


def _parallelism(pool: Pool) -> dict[str, Any]:
    """A pool's pipeline and expert parallelism, when it sets them (else nothing)."""
    p = pool.parallelism
    if p is None:
        return {}
    return {
        "parallelism": {
            "tensor": pool.chips_per_replica,
            "pipeline": p.pipeline,
            "expert": p.expert,
            "micro_batches": p.micro_batch_count,
            "expert_imbalance": p.expert_imbalance if p.expert > 1 else None,
            "replica_chips": pool.replica_chips,
            "bubble_share": bubble_share(p.pipeline, p.micro_batch_count),
        }
    }


def _timeline(
    resolved: ResolvedScenario, pool_name: str, records: LLMFleetRecords, edges: np.ndarray
) -> dict[str, Any]:
    pool = resolved.scenario.pools[pool_name]
    its = records.iterations
    units = _replicas(records, pool_name)
    sel = np.isin(its.replica, units)
    capacity = records.replicas[units[0]].kv_capacity_tokens if units else 0
    return pool_timeline(
        its.start_s[sel],
        its.end_s[sel],
        its.dynamic_energy_j[sel],
        its.sequences[sel],
        max(1, len(units)),
        resolved.chips[pool_name].power.idle_w * pool.count,
        edges,
        kv_tokens=its.kv_tokens[sel],
        kv_capacity_tokens=capacity,
    )


def _busy(records: LLMFleetRecords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    it = records.iterations
    return it.start_s, it.end_s, it.dynamic_energy_j


def _samples(records: LLMFleetRecords, w0: float, w1: float) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, rec in records.workloads.items():
        done = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~rec.rejected
        done &= ~np.isnan(rec.finish_s)
        streamed = done & (rec.output_tokens > 1)
        out[name] = {
            "latency_s": rec.finish_s[done] - rec.arrival_s[done],
            "ttft_s": rec.first_token_s[done] - rec.arrival_s[done],
            "tpot_s": (rec.finish_s[streamed] - rec.first_token_s[streamed])
            / (rec.output_tokens[streamed] - 1),
        }
    return out


def _requests(records: LLMFleetRecords, w0: float, w1: float) -> dict[str, dict[str, np.ndarray]]:
    pools = np.array([r.pool for r in records.replicas] + [None], dtype=object)  # -1: none
    modes = np.array(MODES, dtype=object)
    out = {}
    for name, rec in records.workloads.items():
        streamed = rec.output_tokens > 1
        tpot = np.full(rec.arrival_s.shape, np.nan)
        tpot[streamed] = (rec.finish_s[streamed] - rec.first_token_s[streamed]) / (
            rec.output_tokens[streamed] - 1
        )
        out[name] = {
            "in_window": (rec.arrival_s >= w0) & (rec.arrival_s < w1),
            "arrival_s": rec.arrival_s,
            "first_token_s": rec.first_token_s,
            "finish_s": rec.finish_s,
            "latency_s": rec.finish_s - rec.arrival_s,
            "ttft_s": rec.first_token_s - rec.arrival_s,
            "tpot_s": tpot,
            "mode": modes[rec.mode],
            "prompt_tokens": rec.prompt_tokens,
            "output_tokens": rec.output_tokens,
            "generated_tokens": rec.generated_tokens,
            "rejected": rec.rejected,
            "pool": pools[rec.replica],
        }
        if rec.slo_class is not None:
            out[name]["slo_class"] = np.array(rec.slo_class_names, dtype=object)[rec.slo_class]
    return out


METRICS = MetricsKind(
    unit=UNIT,
    one=ONE,
    noun="requests",
    workload=_workload,
    pool=_pool,
    pool_timeline=_timeline,
    busy=_busy,
    samples=_samples,
    requests=_requests,
    dropped_because="their prompt and output need more KV cache than a replica has",
)
