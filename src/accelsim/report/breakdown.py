"""The JSON pieces every explain document is made of: the ops of one costed batch or step,
a chip's ridge points, and its time, energy and power with what a power cap does to them."""

from __future__ import annotations

from typing import Any

from accelsim.config.schema import Chip
from accelsim.model.power import ClockPolicy, clocked
from accelsim.model.roofline import BatchCost, ChipRates

MEMORY_TIERS = ("sram", "dram", "host")


def ops_doc(cost: BatchCost) -> list[dict[str, Any]]:
    """One entry per op: its traffic by tier, time, share, bound and energy."""
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


def ridges(rates: ChipRates, dtype: str) -> dict[str, float]:
    """The ridge point (FLOP per byte) of each memory tier the chip has."""
    return {t: rates.ridge_point(dtype, t) for t in MEMORY_TIERS if rates.has_tier(t)}


def totals(
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
