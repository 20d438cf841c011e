"""The per-op roofline breakdown of one batch, as a plain JSON-ready document."""

from __future__ import annotations

from typing import Any

from accelsim.config.schema import Chip, RankingModel
from accelsim.model.ranking import RankingCostModel
from accelsim.model.roofline import TIERS


def explain_batch(model: RankingModel, chip: Chip, batch_items: int) -> dict[str, Any]:
    """Where one batch's time and energy go, op by op, and the chip's ridge points."""
    cost_model = RankingCostModel(model, chip)
    rates = cost_model.rates
    cost = cost_model.batch(batch_items)
    plan = cost_model.plan
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
                "share": c.time_s / cost.time_s,
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
    return {
        "chip": chip.name,
        "model": model.name,
        "batch_items": batch_items,
        "dtype": model.dtype,
        "ridge_point_flops_per_byte": {
            t: rates.ridge_point(model.dtype, t) for t in TIERS if rates.has_tier(t)
        },
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
            "time_s": cost.time_s,
            "items_per_s": batch_items / cost.time_s,
            "energy_j": cost.energy_j,
            "energy_by_component_j": cost.energy_by_component_j(),
            "avg_power_w": cost.avg_power_w,
            "tdp_w": chip.power.tdp_w,
        },
    }
