"""Ops, their roofline cost on a chip, and a batch's cost as the sum of its ops.

An :class:`Op` is what a workload step does: FLOPs on one engine (matrix or
vector) and bytes moved per memory tier and access pattern. Its time on a chip:

    c = flops / (peak * eff_compute)        m = sum_tier bytes / (bw_tier * eff_pattern)
    t = max(c, m) + (1 - overlap) * min(c, m) + kernel overhead + fixed latency

``overlap`` (the chip's ``compute.memory_overlap``, default 0.5) is the share of
the shorter of the two hidden under the longer: 1 is the ideal roofline's
``max``, 0 runs them one after the other. A kernel overlaps its loads with its
math in steady state but not while its pipeline fills and drains, so half is
the default, between the two bounds.

``eff_compute`` of a GEMM whose shape the op gives (``gemm``: M, N, K) is the
chip's GEMM efficiency for the dtype times :meth:`ChipRates.shape_efficiency`:
tile quantisation (the M x N output is computed in ``matrix_tile`` tiles; for
small M a kernel picks a tile of the next power of two rows, down to the 16 rows
of a tensor-core MMA instruction) and wave quantisation (tiles run in waves over
``matrix_units`` engines; a single partial wave splits K to fill them, as
cuBLAS's split-K and CUTLASS's stream-K do). Fused prefill attention runs at
the chip's ``attention_efficiency``.

An op may carry vector work fused into it (``vector_flops``: a W4A16 GEMM's
dequantisation of its 4-bit weights, see :mod:`accelsim.model.quant`): it adds
to the op's compute time at the vector rate, ``c = flops / rate + vector_flops /
vector_rate``, and so hides under the op's memory time as its matrix work does;
it pays no launch of its own. A weight-only GEMM runs in the activation dtype at
``gemm_efficiency_by_dtype`` of its weight dtype where the chip gives one.

The memory tiers are ``sram`` (on-chip), ``dram`` (HBM/LPDDR/DDR),
``host`` (host memory over the host link) and ``link`` (the chip-to-chip link,
for tensor-parallel collectives); the patterns are ``stream``, ``random``
(gathers) and ``paged`` (a paged KV cache). Dynamic energy is FLOPs times the
energy per FLOP plus bytes times each tier's energy per byte; a batch adds the
chip's idle power over its duration. Pure functions: no simulation here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from accelsim.config.schema import Chip, MemoryTier
from accelsim.model.quant import WEIGHT_ONLY

Tier = Literal["sram", "dram", "host", "link"]
Pattern = Literal["stream", "random", "paged"]
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

# Rows of the smallest output tile a matrix engine computes: a tensor-core MMA
# instruction (mma.m16n8k16 on Ampere and Hopper) covers 16 rows, so a GEMM of fewer
# rows computes 16 and discards the rest.
MMA_ROWS = 16

# Depth of K below which a GEMM is not split further to fill idle matrix engines: a
# split must keep a few 64-deep mainloop stages to pipeline its loads (4 assumed).
SPLIT_K_MIN_DEPTH = 256

# Paged KV reads reach this share of a tier's stream efficiency unless the tier gives
# its own ``paged_efficiency``: the vLLM paper (Kwon et al., SOSP 2023, section 7.1)
# measured its paged-attention kernel 20-26% slower than a contiguous-KV kernel.
PAGED_OVER_STREAM = 1.0

# When a chip lacks a dtype on its matrix engine, work runs in the first
# dtype of this list that it has (e.g. int8 GEMMs on a bf16-only chip).
_FALLBACK: dict[str, tuple[str, ...]] = {
    "int8": ("int8", "fp8", "bf16", "fp16", "fp32"),
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp16": ("fp16", "bf16", "fp32"),
    "fp32": ("fp32",),
    "int4": ("bf16", "fp16", "fp32"),  # weight-only: dequantised to the activation dtype
    "fp4": ("fp4",),  # MXFP4 on an fp4 engine only (accelsim.model.quant.fp4_problem)
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
    gemm: tuple[float, float, float] | None = None  # (M, N, K) of each of its GEMMs
    vector_flops: float = 0.0  # vector work fused into the op (a W4A16 GEMM's dequantisation)

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
    paged_bytes_per_s: float

    def bytes_per_s(self, pattern: Pattern) -> float:
        if pattern == "stream":
            return self.stream_bytes_per_s
        return self.random_bytes_per_s if pattern == "random" else self.paged_bytes_per_s


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
    overlap: float  # the chip's compute/memory overlap its ops were combined with

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
        self.overlap = c.memory_overlap
        self.matrix_units = c.matrix_units
        self.matrix_tile = c.matrix_tile
        self.vector_flops_per_s = c.vector_flops_per_s * c.vector_efficiency
        self.tiers: dict[str, TierRates] = {}
        for name, tier in (("sram", chip.memory.sram), ("dram", chip.memory.dram)):
            if tier is not None:
                self.tiers[name] = _tier_rates(tier)
        link = chip.host_link
        self.tiers["host"] = _link_rates(link.bandwidth_bytes_per_s, link.energy_per_byte_j)
        c2c = chip.chip_to_chip
        if c2c is not None:
            self.tiers["link"] = _link_rates(c2c.bandwidth_bytes_per_s, c2c.energy_per_byte_j)

    def has_tier(self, tier: str) -> bool:
        return tier in self.tiers

    def matrix_dtype(self, dtype: str) -> str | None:
        """The dtype the matrix engine runs ``dtype`` work in, or None for the vector unit."""
        for candidate in _FALLBACK[dtype]:
            if candidate in self.chip.compute.matrix_flops_per_s:
                return candidate
        return None

    def matrix_flops_per_s(self, dtype: str) -> float:
        """Achievable matrix rate of a large GEMM in ``dtype`` (peak x GEMM efficiency)."""
        run = self.matrix_dtype(dtype)
        if run is None:
            return self.vector_flops_per_s
        c = self.chip.compute
        efficiency = c.gemm_efficiency_by_dtype.get(run, c.gemm_efficiency)  # type: ignore[call-overload]
        if dtype in WEIGHT_ONLY:
            efficiency = c.gemm_efficiency_by_dtype.get(dtype, efficiency)  # type: ignore[call-overload]
        return float(c.matrix_flops_per_s[run] * efficiency)  # type: ignore[index]

    def attention_flops_per_s(self, dtype: str) -> float:
        """Achievable matrix rate of fused prefill attention in ``dtype``."""
        run = self.matrix_dtype(dtype)
        if run is None:
            return self.vector_flops_per_s
        c = self.chip.compute
        return c.matrix_flops_per_s[run] * c.attention_efficiency  # type: ignore[index]

    def flops_per_s(self, op: Op) -> float:
        """The rate ``op``'s FLOPs run at: its engine's, its shape's and its kind's."""
        if op.engine == "vector":
            return self.vector_flops_per_s
        if op.kind == "attention":
            return self.attention_flops_per_s(op.dtype)
        rate = self.matrix_flops_per_s(op.dtype)
        if op.gemm is not None and self.matrix_dtype(op.dtype) is not None:
            rate *= self.shape_efficiency(*op.gemm)
        return rate

    def shape_efficiency(self, m: float, n: float, k: float) -> float:
        """Share of the large-GEMM rate an M x N x K GEMM reaches: tile quantisation of
        its output, then wave quantisation over the matrix engines (see the module
        docstring). 1 for a GEMM that fills whole tiles in whole waves."""
        if m <= 0 or n <= 0:
            return 1.0
        tile_m, tile_n = self.matrix_tile
        rows = min(tile_m, max(MMA_ROWS, 1 << max(0, math.ceil(m) - 1).bit_length()))
        tiles_m, tiles_n = math.ceil(m / rows), math.ceil(n / tile_n)
        quantised = (m * n) / (tiles_m * rows * tiles_n * tile_n)
        tiles = tiles_m * tiles_n
        units = self.matrix_units
        if tiles < units:
            tiles *= max(1, min(units // tiles, int(k // SPLIT_K_MIN_DEPTH)))
        waves = math.ceil(tiles / units)
        return quantised * tiles / (waves * units)

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
    paged = tier.paged_efficiency or tier.stream_efficiency * PAGED_OVER_STREAM
    return TierRates(
        stream_bytes_per_s=tier.bandwidth_bytes_per_s * tier.stream_efficiency,
        random_bytes_per_s=tier.bandwidth_bytes_per_s * tier.random_efficiency,
        granularity_bytes=tier.access_granularity_bytes,
        energy_per_byte_j=tier.energy_per_byte_j,
        paged_bytes_per_s=tier.bandwidth_bytes_per_s * paged,
    )


def _link_rates(bandwidth_bytes_per_s: float, energy_per_byte_j: float) -> TierRates:
    rate = bandwidth_bytes_per_s * HOST_LINK_EFFICIENCY
    return TierRates(rate, rate, 64, energy_per_byte_j, rate)


def overlapped(compute_s: float, memory_s: float, overlap: float) -> float:
    """An op's busy time: the longer of compute and memory plus the unhidden share of
    the shorter."""
    if compute_s > memory_s:
        return compute_s + (1.0 - overlap) * memory_s
    return memory_s + (1.0 - overlap) * compute_s


def op_cost(rates: ChipRates, op: Op) -> OpCost:
    """Roofline time and dynamic energy of one op on one chip."""
    run_dtype = op.dtype if op.engine == "vector" else rates.matrix_dtype(op.dtype) or "vector"
    compute_time = op.flops / rates.flops_per_s(op) if op.flops else 0.0
    memory_time: dict[str, float] = {}
    energy: dict[str, float] = {"compute": op.flops * rates.energy_per_flop_j(op.engine, op.dtype)}
    if op.vector_flops:
        compute_time += op.vector_flops / rates.vector_flops_per_s
        energy["compute"] += op.vector_flops * rates.chip.power.vector_energy_per_flop_j
    for traffic in op.traffic:
        if traffic.bytes <= 0:
            continue
        tier = rates.tiers[traffic.tier]
        bw = tier.bytes_per_s(traffic.pattern)
        memory_time[traffic.tier] = memory_time.get(traffic.tier, 0.0) + traffic.bytes / bw
        energy[traffic.tier] = (
            energy.get(traffic.tier, 0.0) + traffic.bytes * tier.energy_per_byte_j
        )
    total_memory = sum(memory_time.values())
    overhead = rates.kernel_overhead_s * op.launches + op.fixed_latency_s
    busy = overlapped(compute_time, total_memory, rates.overlap)
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
        overlap=rates.overlap,
    )
