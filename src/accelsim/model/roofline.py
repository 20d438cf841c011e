"""Ops, their roofline cost on a chip, and a batch's cost as the sum of its ops.

An :class:`Op` is what a workload step does: FLOPs on one engine (matrix or
vector) and bytes moved per memory tier and access pattern. Its time on a chip:

    t = max(flops / (peak * eff_compute), sum_tier bytes / (bw_tier * eff_pattern))
        + kernel overhead + fixed latency

The memory tiers are ``sram`` (on-chip), ``dram`` (HBM/LPDDR/DDR),
``host`` (host memory over the host link) and ``link`` (the chip-to-chip link,
for tensor-parallel collectives). Dynamic energy is FLOPs times the
energy per FLOP plus bytes times each tier's energy per byte; a batch adds the
chip's idle power over its duration. Pure functions: no simulation here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from accelsim.config.schema import Chip, MemoryTier

Tier = Literal["sram", "dram", "host", "link"]
Pattern = Literal["stream", "random"]
Engine = Literal["matrix", "vector"]
TIERS: tuple[Tier, ...] = ("sram", "dram", "host", "link")

# Share of a link's nominal bandwidth that bulk transfers reach, for the host link and
# the chip-to-chip link alike: packet headers, line encoding and flow control take the
# rest (host-to-device copies over PCIe typically measure about 80% of the nominal rate).
HOST_LINK_EFFICIENCY = 0.8

# Share of on-chip SRAM kept free for activations, I/O buffers and scratch when placing
# weights (and, for ranking, caching embedding rows): weights go in SRAM only if they fit
# in the rest. A planning margin, not a measured figure.
SRAM_ACTIVATION_RESERVE = 0.10

# When a chip lacks a dtype on its matrix engine, work runs in the first
# dtype of this list that it has (e.g. int8 GEMMs on a bf16-only chip).
_FALLBACK: dict[str, tuple[str, ...]] = {
    "int8": ("int8", "fp8", "bf16", "fp16", "fp32"),
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp16": ("fp16", "bf16", "fp32"),
    "fp32": ("fp32",),
}


@dataclass(frozen=True, slots=True)
class Traffic:
    tier: Tier
    pattern: Pattern
    bytes: float


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    kind: str  # gemm, embedding, interaction, transfer, elementwise
    engine: Engine
    dtype: str
    flops: float
    traffic: tuple[Traffic, ...]
    fixed_latency_s: float = 0.0  # e.g. a link's latency, paid once per op
    launches: int = 1  # kernel launches, each paying the chip's kernel overhead

    @property
    def bytes(self) -> float:
        return sum(t.bytes for t in self.traffic)


@dataclass(frozen=True, slots=True)
class TierRates:
    """Effective rates of one tier on one chip, after efficiencies."""

    stream_bytes_per_s: float
    random_bytes_per_s: float
    granularity_bytes: int
    energy_per_byte_j: float


@dataclass(frozen=True, slots=True)
class OpCost:
    op: Op
    compute_dtype: str  # the dtype the engine actually ran (after fallback)
    compute_time_s: float
    memory_time_s: dict[str, float]
    overhead_s: float
    time_s: float
    bound: str  # what limits the op's work: "compute" or a tier ("overhead" if it has none);
    # the share of fixed overhead is overhead_s / time_s, which explain's reading reports
    energy_j: dict[str, float]  # "compute" and each tier

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (inf for an op that moves nothing)."""
        moved = self.op.bytes
        return self.op.flops / moved if moved > 0 else float("inf")

    @property
    def dynamic_energy_j(self) -> float:
        return sum(self.energy_j.values())


@dataclass(frozen=True, slots=True)
class BatchCost:
    """Cost of one batch on one chip at nominal clock."""

    items: int
    ops: tuple[OpCost, ...]
    time_s: float
    dynamic_energy_j: float
    static_energy_j: float

    @property
    def energy_j(self) -> float:
        return self.dynamic_energy_j + self.static_energy_j

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.time_s if self.time_s > 0 else 0.0

    def energy_by_component_j(self) -> dict[str, float]:
        out: dict[str, float] = {"compute": 0.0, **{t: 0.0 for t in TIERS}}
        for cost in self.ops:
            for key, value in cost.energy_j.items():
                out[key] += value
        out["static"] = self.static_energy_j
        return out


class ChipRates:
    """A chip's effective rates, derived once from its profile."""

    def __init__(self, chip: Chip) -> None:
        self.chip = chip
        c = chip.compute
        self.kernel_overhead_s = c.kernel_overhead_s
        self.vector_flops_per_s = c.vector_flops_per_s * c.vector_efficiency
        self.tiers: dict[str, TierRates] = {}
        for name, tier in (("sram", chip.memory.sram), ("dram", chip.memory.dram)):
            if tier is not None:
                self.tiers[name] = _tier_rates(tier)
        link = chip.host_link
        self.tiers["host"] = TierRates(
            stream_bytes_per_s=link.bandwidth_bytes_per_s * HOST_LINK_EFFICIENCY,
            random_bytes_per_s=link.bandwidth_bytes_per_s * HOST_LINK_EFFICIENCY,
            granularity_bytes=64,
            energy_per_byte_j=link.energy_per_byte_j,
        )
        c2c = chip.chip_to_chip
        if c2c is not None:
            self.tiers["link"] = TierRates(
                stream_bytes_per_s=c2c.bandwidth_bytes_per_s * HOST_LINK_EFFICIENCY,
                random_bytes_per_s=c2c.bandwidth_bytes_per_s * HOST_LINK_EFFICIENCY,
                granularity_bytes=64,
                energy_per_byte_j=c2c.energy_per_byte_j,
            )

    def has_tier(self, tier: str) -> bool:
        return tier in self.tiers

    def matrix_dtype(self, dtype: str) -> str | None:
        """The dtype the matrix engine runs ``dtype`` work in, or None for the vector unit."""
        for candidate in _FALLBACK[dtype]:
            if candidate in self.chip.compute.matrix_flops_per_s:
                return candidate
        return None

    def matrix_flops_per_s(self, dtype: str) -> float:
        """Achievable matrix rate for ``dtype`` work (peak x GEMM efficiency)."""
        run = self.matrix_dtype(dtype)
        if run is None:
            return self.vector_flops_per_s
        return self.chip.compute.matrix_flops_per_s[run] * self.chip.compute.gemm_efficiency  # type: ignore[index]

    def energy_per_flop_j(self, engine: Engine, dtype: str) -> float:
        power = self.chip.power
        if engine == "vector":
            return power.vector_energy_per_flop_j
        run = self.matrix_dtype(dtype)
        if run is None:
            return power.vector_energy_per_flop_j
        return float(power.energy_per_flop_j.get(run, 0.0))  # type: ignore[call-overload]

    def ridge_point(self, dtype: str, tier: str = "dram") -> float:
        """FLOPs per byte above which a streaming op on ``tier`` is compute-bound."""
        return self.matrix_flops_per_s(dtype) / self.tiers[tier].stream_bytes_per_s


def _tier_rates(tier: MemoryTier) -> TierRates:
    return TierRates(
        stream_bytes_per_s=tier.bandwidth_bytes_per_s * tier.stream_efficiency,
        random_bytes_per_s=tier.bandwidth_bytes_per_s * tier.random_efficiency,
        granularity_bytes=tier.access_granularity_bytes,
        energy_per_byte_j=tier.energy_per_byte_j,
    )


def op_cost(rates: ChipRates, op: Op) -> OpCost:
    """Roofline time and dynamic energy of one op on one chip."""
    if op.engine == "vector":
        peak = rates.vector_flops_per_s
        run_dtype = op.dtype
    else:
        peak = rates.matrix_flops_per_s(op.dtype)
        run_dtype = rates.matrix_dtype(op.dtype) or "vector"
    compute_time = op.flops / peak if op.flops else 0.0
    memory_time: dict[str, float] = {}
    energy: dict[str, float] = {"compute": op.flops * rates.energy_per_flop_j(op.engine, op.dtype)}
    for traffic in op.traffic:
        if traffic.bytes <= 0:
            continue
        tier = rates.tiers[traffic.tier]
        bw = tier.stream_bytes_per_s if traffic.pattern == "stream" else tier.random_bytes_per_s
        memory_time[traffic.tier] = memory_time.get(traffic.tier, 0.0) + traffic.bytes / bw
        energy[traffic.tier] = (
            energy.get(traffic.tier, 0.0) + traffic.bytes * tier.energy_per_byte_j
        )
    total_memory = sum(memory_time.values())
    overhead = rates.kernel_overhead_s * op.launches + op.fixed_latency_s
    busy = max(compute_time, total_memory)
    if busy == 0:
        bound = "overhead"  # an op that does no work at all
    elif compute_time >= total_memory:
        bound = "compute"
    else:
        bound = max(memory_time, key=lambda k: memory_time[k])
    return OpCost(
        op=op,
        compute_dtype=run_dtype,
        compute_time_s=compute_time,
        memory_time_s=memory_time,
        overhead_s=overhead,
        time_s=busy + overhead,
        bound=bound,
        energy_j=energy,
    )


def batch_cost(rates: ChipRates, ops: list[Op] | tuple[Op, ...], items: int) -> BatchCost:
    """Ops run one after another on one chip; the batch also draws idle power."""
    costs = tuple(op_cost(rates, op) for op in ops)
    time_s = sum(c.time_s for c in costs)
    dynamic = sum(c.dynamic_energy_j for c in costs)
    return BatchCost(
        items=items,
        ops=costs,
        time_s=time_s,
        dynamic_energy_j=dynamic,
        static_energy_j=rates.chip.power.idle_w * time_s,
    )
