"""Cost of a DLRM-like ranking model on a chip.

Where things live is planned once per (model, chip) in a :class:`RankingPlan`:

* MLP and cross-layer weights sit in SRAM when they fit in its usable share,
  else in DRAM; they are read once per batch.
* Embedding rows are placed by popularity: under a Zipf(alpha) popularity per
  table, device DRAM holds the rows with the most lookups per byte across all
  tables (see :func:`hottest_rows`) and whatever DRAM cannot hold is gathered
  from host memory over the host link. The SRAM left after weights caches rows
  in one of two ways (the chip's ``memory.row_cache``):

  - ``software``: the serving stack pins the hottest rows, the optimal static
    cache under independent Zipf lookups; the share of lookups it serves is the
    popularity mass of the rows it holds;
  - ``hardware``: an LRU cache. Its hit rate comes from Che's approximation
    (Che, Tung and Wang, IEEE JSAC 2002; shown accurate for LRU under
    independent requests by Fricker, Robert and Roberts, ITC 2012, see
    :func:`lru_hit_rates`): a row stays cached for a characteristic time T of
    lookups, set so the expected cached bytes fill the cache, and a lookup hits
    when its row was looked up within the last T.

A batch of B items then becomes ops: the input transfer over the host link
(dense features, one id of the model's ``id_dtype`` per lookup, the scores
back), one fused gather-and-pool op over all tables, the bottom MLP layers, the
feature interaction (dot products or DCN-style cross layers) and the top MLP
layers. The ops run back to back, so an isolated batch takes their sum. A chip
whose host link has a DMA engine can copy the next batch's input while it
computes this one (double buffering, run by the engine): then back-to-back
batches each hold the chip for max(input copy, the rest), see
:meth:`RankingCostModel.steady_batch_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from accelsim.config.schema import ELEMENT_BYTES, Chip, EmbeddingTable, RankingModel
from accelsim.model.roofline import (
    SRAM_ACTIVATION_RESERVE,
    BatchCost,
    ChipRates,
    Op,
    Tier,
    Traffic,
    batch_cost,
)

DENSE_FEATURE_BYTES = 4  # one fp32 per dense feature
ID_BYTES: dict[str, int] = {"int32": 4, "int64": 8}  # one id per embedding lookup
SCORE_BYTES = 4  # one fp32 score back per item
INPUT_OP = "input_transfer"  # the name of a batch's host-to-chip input copy, its first op


def zipf_harmonic(n: float, alpha: float) -> float:
    """Generalised harmonic number H(n, alpha) = sum_{k=1..n} k^-alpha, for real n >= 0.

    Exact up to 4096 terms, then Euler-Maclaurin (error far below 1e-9 relative).
    """
    n = math.floor(n)
    if n <= 0:
        return 0.0
    m = min(n, 4096)
    exact = float(np.sum(np.arange(1, m + 1, dtype=np.float64) ** -alpha))
    if n == m:
        return exact

    def integral(x: float) -> float:
        return math.log(x) if abs(alpha - 1.0) < 1e-12 else x ** (1 - alpha) / (1 - alpha)

    tail = integral(n) - integral(m)
    tail += (n**-alpha - m**-alpha) / 2.0
    tail += alpha / 12.0 * (m ** (-alpha - 1) - n ** (-alpha - 1))
    return float(exact + tail)


@lru_cache(maxsize=4096)
def zipf_top_share(k: float, n: int, alpha: float) -> float:
    """Share of lookups that hit the ``k`` most popular of ``n`` rows under Zipf(alpha)."""
    if k <= 0:
        return 0.0
    if k >= n:
        return 1.0
    if alpha == 0:
        return math.floor(k) / n
    return float(zipf_harmonic(k, alpha) / zipf_harmonic(n, alpha))


@dataclass(frozen=True)
class TablePlacement:
    name: str
    count: int
    rows: int
    row_bytes: int
    lookups_per_item: float  # count * pooling factor
    sram_rows: float  # rows cached on chip, per table
    dram_rows: float  # rows held in device DRAM, per table (including those in SRAM)
    sram_share: float  # share of lookups served from SRAM
    dram_share: float  # ... from DRAM
    host_share: float  # ... from host memory over the host link

    @property
    def bytes(self) -> float:
        return float(self.count) * self.rows * self.row_bytes


@dataclass(frozen=True)
class RankingPlan:
    """Where a ranking model's weights and embeddings live on one chip."""

    model_name: str
    chip_name: str
    weight_bytes: float
    weights_tier: Tier  # "sram" or "dram"
    activation_tier: Tier
    embedding_bytes: float
    sram_cache_bytes: float
    tables: tuple[TablePlacement, ...]
    notes: tuple[str, ...] = field(default=())


def _mlp_shapes(widths: list[int], inputs: int) -> list[tuple[int, int]]:
    shapes = []
    for width in widths:
        shapes.append((inputs, width))
        inputs = width
    return shapes


@dataclass(frozen=True)
class _Shapes:
    bottom: list[tuple[int, int]]
    cross: list[tuple[int, int]]  # (in, out) GEMMs of the cross layers, two per layer if low-rank
    cross_width: int
    interaction_features: int  # dot: number of feature vectors
    top: list[tuple[int, int]]


def _shapes(model: RankingModel) -> _Shapes:
    bottom = _mlp_shapes(model.bottom_mlp, model.dense_features)
    n_vectors = sum(t.count for t in model.embedding_tables)
    cross: list[tuple[int, int]] = []
    if model.interaction.kind == "dot":
        features = n_vectors + 1
        dim = model.bottom_mlp[-1]
        top_in = dim + features * (features - 1) // 2
        width = 0
    else:
        features = 0
        width = model.bottom_mlp[-1] + sum(t.count * t.dim for t in model.embedding_tables)
        rank = model.interaction.rank
        for _ in range(model.interaction.layers):
            cross.extend([(width, rank), (rank, width)] if rank else [(width, width)])
        top_in = width
    return _Shapes(bottom, cross, width, features, _mlp_shapes(model.top_mlp, top_in))


def hottest_rows(
    tables: list[EmbeddingTable], row_bytes: list[int], capacity_bytes: float, eligible: list[bool]
) -> list[float]:
    """Rows per table (for each of a group's ``count`` tables) that a cache of
    ``capacity_bytes`` holds when it keeps the rows with the most lookups per byte,
    across all tables: the optimal static cache under Zipf popularity.

    Solved by bisection on the threshold of lookups per byte: a row is cached when
    its expected lookups per item divided by its size exceed the threshold.
    """
    sizes = [
        float(t.count) * t.rows * rb
        for t, rb, ok in zip(tables, row_bytes, eligible, strict=True)
        if ok
    ]
    if capacity_bytes <= 0 or not sizes:
        return [0.0] * len(tables)
    if sum(sizes) <= capacity_bytes:
        return [float(t.rows) if ok else 0.0 for t, ok in zip(tables, eligible, strict=True)]
    log_h = [math.log(zipf_harmonic(t.rows, t.zipf_alpha)) for t in tables]

    def rows_at(log_tau: float) -> list[float]:
        out = []
        for t, rb, lh, ok in zip(tables, row_bytes, log_h, eligible, strict=True):
            if not ok:
                out.append(0.0)
                continue
            # Lookups per item of row k, per byte: pooling * k^-alpha / H / rb >= tau.
            log_head = math.log(t.pooling_factor) - lh - math.log(rb)
            if t.zipf_alpha == 0:
                out.append(float(t.rows) if log_head >= log_tau else 0.0)
            else:
                log_k = (log_head - log_tau) / t.zipf_alpha
                out.append(
                    float(min(t.rows, math.floor(math.exp(min(log_k, 60.0)))))
                    if log_k >= 0
                    else 0.0
                )
        return out

    def used(rows: list[float]) -> float:
        return sum(t.count * k * rb for t, k, rb in zip(tables, rows, row_bytes, strict=True))

    lo, hi = -200.0, 50.0  # log thresholds: everything cached ... nothing cached
    for _ in range(100):
        mid = (lo + hi) / 2
        if used(rows_at(mid)) > capacity_bytes:
            lo = mid
        else:
            hi = mid
    rows, marginal = rows_at(hi), rows_at(lo)
    # Rows exactly at the threshold (a uniform table, say) share what is left.
    left = capacity_bytes - used(rows)
    for i, (t, rb) in enumerate(zip(tables, row_bytes, strict=True)):
        if marginal[i] > rows[i] and left > 0:
            extra = min(marginal[i] - rows[i], math.floor(left / (t.count * rb)))
            rows[i] += extra
            left -= extra * t.count * rb
    return rows


# Che's approximation is evaluated on every rank up to this one, then on geometric groups
# of ranks (each a factor _RANK_GROUP_RATIO wider than the last) represented by their
# middle rank: popularity varies by under 2% inside a group, so a 40M-row table costs
# about 1,600 terms instead of 40M (hit rates move by under 1e-5 against every rank).
_EXACT_RANKS = 1024
_RANK_GROUP_RATIO = 1.02
_LRU_BISECTION_STEPS = 48


def zipf_rank_groups(
    rows: int, alpha: float, exact_ranks: int = _EXACT_RANKS
) -> tuple[np.ndarray, np.ndarray]:
    """A Zipf(alpha) table of ``rows`` rows as groups of ranks: (popularity of one row of
    the group, rows in the group). Ranks up to ``exact_ranks`` are groups of one; the
    popularities are normalised so the groups' lookup shares sum to 1."""
    m = min(rows, exact_ranks)
    ranks = np.arange(1, m + 1, dtype=np.float64)
    counts = np.ones(m)
    if rows > m:
        steps = math.ceil(math.log((rows + 1) / (m + 1)) / math.log(_RANK_GROUP_RATIO))
        inner = np.floor((m + 1) * _RANK_GROUP_RATIO ** np.arange(1, steps))
        edges = np.unique(np.concatenate([[m + 1], inner[inner < rows + 1], [rows + 1]]))
        ranks = np.concatenate([ranks, (edges[:-1] + edges[1:] - 1) / 2])
        counts = np.concatenate([counts, np.diff(edges)])
    weight = ranks**-alpha
    return weight / float(np.sum(weight * counts)), counts


def lru_hit_rates(
    tables: list[EmbeddingTable], row_bytes: list[int], capacity_bytes: float, eligible: list[bool]
) -> list[tuple[float, float]]:
    """(hit rate, expected rows cached per table) of each table group under one LRU cache
    of ``capacity_bytes`` shared by all eligible tables, by Che's approximation.

    Lookups are independent draws (the independent reference model): row i of a table
    with pooling factor P is looked up at rate P p_i per item. Under LRU a row stays
    cached for a characteristic time T after its last lookup; T solves
    sum_i bytes_i (1 - exp(-rate_i T)) = capacity (expected cached bytes fill the cache),
    and a table's hit rate is sum_i p_i (1 - exp(-rate_i T)). Che, Tung and Wang,
    "Hierarchical Web caching systems: modeling, design and experimental results",
    IEEE JSAC 20(7), 2002; Fricker, Robert and Roberts, "A versatile and accurate
    approximation for LRU cache performance", ITC 2012. Tables not ``eligible`` (a given
    hit rate) take no part and get (0, 0).
    """
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []
    for t, rb, ok in zip(tables, row_bytes, eligible, strict=True):
        if ok:
            p, counts = zipf_rank_groups(t.rows, t.zipf_alpha)
            groups.append((p, counts, t.pooling_factor * p, t.count * rb * counts))
        else:
            groups.append(None)
    live = [g for g in groups if g is not None]
    total = sum(float(np.sum(g[3])) for g in live)
    if capacity_bytes <= 0 or not live:
        return [(0.0, 0.0)] * len(tables)
    if total <= capacity_bytes:
        return [
            (1.0, float(t.rows)) if ok else (0.0, 0.0)
            for t, ok in zip(tables, eligible, strict=True)
        ]
    rate = np.concatenate([g[2] for g in live])
    size = np.concatenate([g[3] for g in live])

    def cached_bytes(log_t: float) -> float:
        return float(np.dot(size, -np.expm1(-rate * math.exp(log_t))))

    # Bracket T: at T = 1 / max rate every row is cached with probability under 0.64,
    # and cached bytes grow without bound towards the total as T grows.
    lo = -math.log(float(rate.max())) - 1.0
    while cached_bytes(lo) > capacity_bytes:
        lo -= 8.0
    hi = lo + 8.0
    while cached_bytes(hi) < capacity_bytes:
        hi += 8.0
    for _ in range(_LRU_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if cached_bytes(mid) > capacity_bytes:
            hi = mid
        else:
            lo = mid
    t_char = math.exp((lo + hi) / 2)
    out = []
    for g in groups:
        if g is None:
            out.append((0.0, 0.0))
            continue
        p, counts, r, _ = g
        held = -np.expm1(-r * t_char)
        # min: rounding must not push a share past 1 (and the host share below 0).
        out.append((min(1.0, float(np.dot(p * counts, held))), float(np.dot(counts, held))))
    return out


def plan(model: RankingModel, chip: Chip) -> RankingPlan:
    """Decide where weights and embedding rows live on ``chip``."""
    wbytes = ELEMENT_BYTES[model.dtype]
    shapes = _shapes(model)
    weight_bytes = float(sum(i * o for i, o in shapes.bottom + shapes.cross + shapes.top) * wbytes)
    sram = chip.memory.sram
    sram_budget = sram.capacity_bytes * (1 - SRAM_ACTIVATION_RESERVE) if sram else 0.0
    weights_tier: Tier = "sram" if sram is not None and weight_bytes <= sram_budget else "dram"
    cache_bytes = sram_budget - (weight_bytes if weights_tier == "sram" else 0.0)
    notes: list[str] = []
    if sram is not None and weights_tier == "dram":
        notes.append(
            f"MLP weights ({weight_bytes / 2**20:.1f} MiB) exceed usable SRAM "
            f"({sram_budget / 2**20:.1f} MiB): read from DRAM every batch"
        )

    groups = model.embedding_tables
    row_bytes = [t.dim * ELEMENT_BYTES[t.dtype] for t in groups]
    table_bytes = [float(t.count) * t.rows * rb for t, rb in zip(groups, row_bytes, strict=True)]
    embedding_bytes = sum(table_bytes)
    dram_free = chip.memory.dram.capacity_bytes - (weight_bytes if weights_tier == "dram" else 0.0)
    if embedding_bytes > dram_free:
        notes.append(
            f"embeddings ({embedding_bytes / 2**30:.1f} GiB) exceed device DRAM "
            f"({max(0.0, dram_free) / 2**30:.1f} GiB free): cold rows are gathered from host memory"
        )
    cacheable = [t.hit_rate is None for t in groups]
    if sram is None and not all(cacheable):
        notes.append("hit_rate is ignored: this chip has no SRAM to cache rows in")
    hardware_cache = sram is not None and chip.memory.row_cache == "hardware"
    if hardware_cache:
        lru = lru_hit_rates(groups, row_bytes, max(0.0, cache_bytes), cacheable)
        sram_rows_all = [rows for _, rows in lru]
        notes.append("SRAM is a hardware LRU cache: row hit rates from Che's approximation")
    else:
        sram_rows_all = hottest_rows(groups, row_bytes, max(0.0, cache_bytes), cacheable)
    dram_rows_all = hottest_rows(groups, row_bytes, max(0.0, dram_free), [True] * len(groups))

    tables = []
    for i, (t, rb, sram_rows, dram_rows) in enumerate(
        zip(groups, row_bytes, sram_rows_all, dram_rows_all, strict=True)
    ):
        dram_rows = max(sram_rows, dram_rows)
        in_dram = zipf_top_share(dram_rows, t.rows, t.zipf_alpha)
        if sram is None:
            in_sram = 0.0  # no on-chip cache: a given hit_rate has nothing to apply to
        elif t.hit_rate is None and hardware_cache:
            # LRU hits on rows that live in host memory are rare (they are the coldest);
            # counting every hit against DRAM keeps the shares a partition of lookups.
            in_sram = lru[i][0]
            in_dram = max(in_dram, in_sram)
        elif t.hit_rate is None:
            in_sram = zipf_top_share(sram_rows, t.rows, t.zipf_alpha)  # <= in_dram
        else:
            in_sram = t.hit_rate
            in_dram = max(in_dram, in_sram)
        tables.append(
            TablePlacement(
                name=t.name,
                count=t.count,
                rows=t.rows,
                row_bytes=rb,
                lookups_per_item=t.count * t.pooling_factor,
                sram_rows=sram_rows,
                dram_rows=dram_rows,
                sram_share=in_sram,
                dram_share=in_dram - in_sram,
                host_share=1.0 - in_dram,
            )
        )
    return RankingPlan(
        model_name=model.name,
        chip_name=chip.name,
        weight_bytes=weight_bytes,
        weights_tier=weights_tier,
        activation_tier="sram" if sram is not None else "dram",
        embedding_bytes=embedding_bytes,
        sram_cache_bytes=max(0.0, cache_bytes),
        tables=tuple(tables),
        notes=tuple(notes),
    )


def _gather_bytes(row_bytes: int, granularity: int) -> int:
    """Bytes a random gather of one row really moves: whole access granules."""
    return -(-row_bytes // granularity) * granularity


def ranking_ops(
    model: RankingModel, rates: ChipRates, placement: RankingPlan, items: int
) -> list[Op]:
    """The ops of one batch of ``items`` candidate items, in execution order."""
    b = float(items)
    dt = model.dtype
    abytes = ELEMENT_BYTES[dt]
    act = placement.activation_tier
    wt = placement.weights_tier
    shapes = _shapes(model)
    lookups_per_item = sum(t.lookups_per_item for t in placement.tables)

    ops: list[Op] = [
        Op(
            name=INPUT_OP,
            kind="transfer",
            engine="vector",
            dtype=dt,
            flops=0.0,
            traffic=(
                Traffic(
                    "host",
                    "stream",
                    b
                    * (
                        model.dense_features * DENSE_FEATURE_BYTES
                        + lookups_per_item * ID_BYTES[model.id_dtype]
                        + SCORE_BYTES
                    ),
                ),
            ),
            fixed_latency_s=rates.chip.host_link.latency_s,
        )
    ]
    # All tables are gathered and pooled by one fused kernel (as serving stacks do),
    # so the batch pays one launch overhead for embeddings, not one per table.
    gathered: dict[Tier, float] = {"sram": 0.0, "dram": 0.0, "host": 0.0}
    pooled_out = 0.0
    pool_flops = 0.0
    for table, spec in zip(placement.tables, model.embedding_tables, strict=True):
        lookups = b * table.lookups_per_item
        shares: tuple[tuple[Tier, float], ...] = (
            ("sram", table.sram_share),
            ("dram", table.dram_share),
            ("host", table.host_share),
        )
        for tier, share in shares:
            if share > 0:
                gran = rates.tiers[tier].granularity_bytes
                gathered[tier] += lookups * share * _gather_bytes(table.row_bytes, gran)
        pooled_out += b * table.count * spec.dim * abytes
        pool_flops += lookups * spec.dim  # sum pooling: one add per element gathered
    traffic = [Traffic(tier, "random", moved) for tier, moved in gathered.items() if moved > 0]
    traffic.append(Traffic(act, "stream", pooled_out))
    ops.append(
        Op(
            name="embedding_bags",
            kind="embedding",
            engine="vector",
            dtype=model.embedding_tables[0].dtype,
            flops=pool_flops,
            traffic=tuple(traffic),
        )
    )
    ops += _gemms("bottom_mlp", shapes.bottom, b, dt, wt, act)
    if model.interaction.kind == "dot":
        f = shapes.interaction_features
        d = model.bottom_mlp[-1]
        ops.append(
            Op(
                name="interaction.dot",
                kind="interaction",
                engine="matrix",
                dtype=dt,
                flops=2.0 * b * f * f * d,
                traffic=(Traffic(act, "stream", b * (f * d + f * (f - 1) // 2) * abytes),),
            )
        )
    else:
        ops += _gemms("interaction.cross", shapes.cross, b, dt, wt, act)
    ops += _gemms("top_mlp", shapes.top, b, dt, wt, act)
    return ops


def _gemms(
    prefix: str, shapes: list[tuple[int, int]], b: float, dt: str, wt: Tier, act: Tier
) -> list[Op]:
    wbytes = ELEMENT_BYTES[dt]
    return [
        Op(
            name=f"{prefix}.{i}",
            kind="gemm",
            engine="matrix",
            dtype=dt,
            flops=2.0 * b * n_in * n_out,
            traffic=(
                Traffic(wt, "stream", float(n_in * n_out * wbytes)),
                Traffic(act, "stream", b * (n_in + n_out) * wbytes),
            ),
        )
        for i, (n_in, n_out) in enumerate(shapes)
    ]


class RankingCostModel:
    """Batch costs of one ranking model on one chip, memoised by batch size.

    :meth:`batch` is one batch alone (its ops back to back: an isolated batch's
    latency); :meth:`steady_batch_s` is the time each of a stream of back-to-back
    batches holds the chip, shorter when the input copy overlaps compute.
    """

    def __init__(self, model: RankingModel, chip: Chip) -> None:
        self.model = model
        self.chip = chip
        self.rates = ChipRates(chip)
        self.plan = plan(model, chip)
        self._cache: dict[int, BatchCost] = {}

    def batch(self, items: int) -> BatchCost:
        if items < 1:
            raise ValueError("a batch has at least one item")
        cost = self._cache.get(items)
        if cost is None:
            cost = batch_cost(
                self.rates, ranking_ops(self.model, self.rates, self.plan, items), items
            )
            self._cache[items] = cost
        return cost

    @property
    def overlaps_input(self) -> bool:
        """Whether the chip can copy a batch's input while it computes the previous one."""
        return self.chip.host_link.dma

    def input_copy_s(self, items: int) -> float:
        """Time of a batch's input copy over the host link (its first op)."""
        first = self.batch(items).ops[0]
        assert first.op.name == INPUT_OP
        return first.time_s

    def steady_batch_s(self, items: int) -> float:
        """Time per batch of back-to-back batches of ``items``: with double buffering the
        next input copy runs during this batch's compute, so max(copy, rest); else the sum."""
        total = self.batch(items).time_s
        if not self.overlaps_input:
            return total
        copy = self.input_copy_s(items)
        return max(copy, total - copy)
