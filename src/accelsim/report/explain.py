"""The per-op roofline breakdown of one batch, as a plain JSON-ready document."""

from __future__ import annotations

from typing import Any

from accelsim.config.schema import Chip, LLMModel, RankingModel
from accelsim.errors import AccelsimError
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import ClockPolicy, clocked
from accelsim.model.ranking import RankingCostModel
from accelsim.model.roofline import BatchCost, ChipRates
from accelsim.report.lesson import lesson

MEMORY_TIERS = ("sram", "dram", "host")


def _ops_doc(cost: BatchCost) -> list[dict[str, Any]]:
    ops = []
    for c in cost.ops:
        by_tier = {t.tier: 0.0 for t in c.op.traffic}
        for t in c.op.traffic:
            by_tier[t.tier] += t.bytes
        ai = c.arithmetic_intensity
        ops.append(
            {
                "name": c.op.name,
                "kind": c.op.kind,
                "engine": c.op.engine,
                "dtype": c.compute_dtype,
                "time_s": c.time_s,
                "share": c.time_s / cost.time_s if cost.time_s > 0 else 0.0,
                "flops": c.op.flops,
                "bytes": c.op.bytes,
                "bytes_by_tier": by_tier,
                "arithmetic_intensity": ai if ai != float("inf") else None,
                "bound": c.bound,
                "compute_time_s": c.compute_time_s,
                "memory_time_s": dict(c.memory_time_s),
                "overhead_s": c.overhead_s,
                "dynamic_energy_j": c.dynamic_energy_j,
            }
        )
    return ops


def _ridges(rates: ChipRates, dtype: str) -> dict[str, float]:
    return {t: rates.ridge_point(dtype, t) for t in MEMORY_TIERS if rates.has_tier(t)}


def _totals(
    cost: BatchCost, chip: Chip, chips: int = 1, cap_w: float | None = None
) -> dict[str, Any]:
    """Time, energy split (per replica) and power of a batch, and what a cap does to it."""
    cap = chip.power.tdp_w if cap_w is None else cap_w
    c = chip.compute
    policy = ClockPolicy(cap, c.min_clock_hz / c.clock_hz if c.min_clock_hz else 0.5)
    capped = clocked(cost, chip.power.idle_w, policy)
    return {
        "time_s": cost.time_s,
        "energy_j": cost.energy_j * chips,
        "energy_by_component_j": {k: v * chips for k, v in cost.energy_by_component_j().items()},
        "avg_power_w": cost.avg_power_w,
        "tdp_w": chip.power.tdp_w,
        "power_cap_w": cap,
        "capped": {
            "clock_ratio": capped.clock_ratio,
            "clock_hz": capped.clock_ratio * c.clock_hz,
            "time_s": capped.time_s,
            "avg_power_w": capped.power_w(chip.power.idle_w),
            "slowdown": capped.time_s / cost.time_s if cost.time_s > 0 else 1.0,
            "stall_s": capped.stall_s,
        },
    }


def explain(
    model: RankingModel | LLMModel,
    chip: Chip,
    batch: int,
    *,
    context_tokens: int = 2048,
    prompt_tokens: int = 2048,
    chips_per_replica: int = 1,
    power_cap_w: float | None = None,
) -> dict[str, Any]:
    """The roofline breakdown of a ranking batch, or of an LLM prefill and decode step,
    with what a power cap (default: TDP) does to its clock and time, and (``lesson``) a
    plain-language reading of it."""
    if power_cap_w is not None and power_cap_w <= chip.power.idle_w:
        raise AccelsimError(
            f"a power cap of {power_cap_w:g} W is not above {chip.name}'s idle power "
            f"({chip.power.idle_w:g} W)"
        )
    if isinstance(model, LLMModel):
        doc = explain_llm(
            model, chip, batch, context_tokens, prompt_tokens, chips_per_replica, power_cap_w
        )
    else:
        doc = explain_batch(model, chip, batch, power_cap_w)
    doc["lesson"] = lesson(doc)
    return doc


def explain_llm(
    model: LLMModel,
    chip: Chip,
    batch: int,
    context_tokens: int,
    prompt_tokens: int,
    chips: int,
    power_cap_w: float | None = None,
) -> dict[str, Any]:
    """One prefill of ``prompt_tokens`` and one decode step of ``batch`` sequences holding
    ``context_tokens`` each, on a replica of ``chips`` chips (per-chip view)."""
    try:
        cost_model = LLMCostModel(model, chip, chips)
    except ValueError as exc:
        raise AccelsimError(str(exc)) from None
    capacity = cost_model.capacity
    if capacity.kv_capacity_tokens <= 0:
        raise AccelsimError(
            f"{model.name} ({cost_model.shape.weight_bytes / 2**30:.1f} GiB of weights) does not "
            f"fit {chips} {chip.name} chip(s); use --chips-per-replica {capacity.min_chips} or more"
        )
    prefill = cost_model.prefill(prompt_tokens)
    decode = cost_model.decode_step(batch, context_tokens)
    s = cost_model.shape
    return {
        "kind": "llm",
        "chip": chip.name,
        "model": model.name,
        "chips_per_replica": chips,
        "dtype": model.weight_dtype,
        "ridge_point_flops_per_byte": _ridges(cost_model.rates, model.weight_dtype),
        "placement": {
            "params": s.total_params,
            "active_params_per_token": s.active_params_per_token + s.lm_head_params,
            "weight_bytes": s.weight_bytes,
            "weight_bytes_per_chip": capacity.weight_bytes_per_chip,
            "weights_tier": capacity.weights_tier,
            "kv_bytes_per_token": s.kv_bytes_per_token,
            "kv_capacity_tokens": capacity.kv_capacity_tokens,
            "max_sequences_at_context": capacity.kv_capacity_tokens // max(1, context_tokens),
        },
        "prefill": {
            "prompt_tokens": prompt_tokens,
            "ops": _ops_doc(prefill),
            "totals": {
                **_totals(prefill, chip, chips, power_cap_w),
                "tokens_per_s": prompt_tokens / prefill.time_s,
            },
        },
        "decode": {
            "batch_sequences": batch,
            "context_tokens": context_tokens,
            "fits_kv": batch * (context_tokens + 1) <= capacity.kv_capacity_tokens,
            "ops": _ops_doc(decode),
            "totals": {
                **_totals(decode, chip, chips, power_cap_w),
                "tpot_s": decode.time_s,
                "tokens_per_s": batch / decode.time_s,
            },
        },
    }


def explain_batch(
    model: RankingModel, chip: Chip, batch_items: int, power_cap_w: float | None = None
) -> dict[str, Any]:
    """Where one batch's time and energy go, op by op, and the chip's ridge points."""
    cost_model = RankingCostModel(model, chip)
    rates = cost_model.rates
    cost = cost_model.batch(batch_items)
    plan = cost_model.plan
    ops = _ops_doc(cost)
    return {
        "kind": "ranking",
        "chip": chip.name,
        "model": model.name,
        "batch_items": batch_items,
        "dtype": model.dtype,
        "ridge_point_flops_per_byte": _ridges(rates, model.dtype),
        "placement": {
            "weight_bytes": plan.weight_bytes,
            "weights_tier": plan.weights_tier,
            "embedding_bytes": plan.embedding_bytes,
            "sram_cache_bytes": plan.sram_cache_bytes,
            "lookups_served": {
                tier: sum(getattr(t, f"{tier}_share") * t.lookups_per_item for t in plan.tables)
                / sum(t.lookups_per_item for t in plan.tables)
                for tier in ("sram", "dram", "host")
            },
            "tables": [
                {
                    "name": t.name,
                    "lookups_per_item": t.lookups_per_item,
                    "sram_share": t.sram_share,
                    "dram_share": t.dram_share,
                    "host_share": t.host_share,
                }
                for t in plan.tables
            ],
            "notes": list(plan.notes),
        },
        "ops": ops,
        "totals": {
            **_totals(cost, chip, 1, power_cap_w),
            "items_per_s": batch_items / cost.time_s,
        },
    }
