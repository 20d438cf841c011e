"""Ranking physics: double-buffered input copies, lookup id width, and the row cache
kind (software-pinned hottest rows or a hardware LRU cache by Che's approximation)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from accelsim.config.schema import Chip, EmbeddingTable
from accelsim.engine.simulation import simulate
from accelsim.errors import ConfigError
from accelsim.model.ranking import (
    RankingCostModel,
    lru_hit_rates,
    zipf_rank_groups,
    zipf_top_share,
)
from helpers import chip, model, resolved

# The test model and chip (accelsim.validation.reference): per item 1 dense fp32
# feature, one lookup id and one fp32 score cross a 16 MB/s host link at 80%, i.e.
# 12.8 MB/s. After the copy, a batch of B items takes (hand-summed from the ops in
# test_cost_model.py's tiny-batch test): embedding gather B x 32 B at 0.5 TB/s and
# B x 8 B written at 1 TB/s, bottom GEMM 8 + 10 B, dot 18 B, top GEMM 10 + 12 B per
# item, all at 1 TB/s: rest(B) = B x 112 ps + 18 ps.


def rest_s(items: int) -> float:
    return items * 112e-12 + 18e-12


# ------------------------------------------------------------------ id width


@pytest.mark.parametrize(
    ("id_dtype", "per_item_bytes"), [("int64", 4 + 8 + 4), ("int32", 4 + 4 + 4)]
)
def test_input_copy_carries_one_id_of_the_models_width_per_lookup(
    id_dtype: str, per_item_bytes: int
) -> None:
    cm = RankingCostModel(model(id_dtype=id_dtype), chip())
    # 100 items x (4 B dense + one id + 4 B score) over 12.8 MB/s.
    assert cm.input_copy_s(100) == pytest.approx(100 * per_item_bytes / 12.8e6, rel=1e-12)
    transfer = cm.batch(100).ops[0]
    assert transfer.op.traffic[0].bytes == 100 * per_item_bytes


def test_int64_ids_are_the_default() -> None:
    assert model().id_dtype == "int64"


# ------------------------------------------------------------------ overlap, cost model


def _ideal_overlap(**changes: object) -> Chip:
    """The test chip with compute and memory fully overlapped inside each op, so that the
    rest of a batch is the hand sum above (the partial overlap is tested elsewhere)."""
    compute = {**chip().compute.model_dump(), "memory_overlap": 1.0}
    return chip(compute=compute, **changes)


def test_steady_batch_time_is_the_larger_stage_with_dma_and_the_sum_without() -> None:
    # Copy-bound: 256 items x 16 B / 12.8 MB/s = 320 us against 28.69 ns of the rest.
    cm = RankingCostModel(model(), _ideal_overlap())
    copy = 256 * 16 / 12.8e6
    assert cm.input_copy_s(256) == pytest.approx(copy, rel=1e-12)
    assert cm.batch(256).time_s == pytest.approx(copy + rest_s(256), rel=1e-9)
    assert cm.steady_batch_s(256) == pytest.approx(copy, rel=1e-12)
    # Compute-bound: a 16 TB/s link makes the copy 256 x 16 B / 12.8 TB/s = 0.32 ns.
    fast = RankingCostModel(model(), _ideal_overlap(host_link={"bandwidth_bytes_per_s": 16e12}))
    assert fast.steady_batch_s(256) == pytest.approx(rest_s(256), rel=1e-9)
    # No DMA engine: the copy and the rest add up, batch after batch.
    no_dma = RankingCostModel(
        model(), chip(host_link={"bandwidth_bytes_per_s": 16e6, "dma": False})
    )
    assert no_dma.steady_batch_s(256) == no_dma.batch(256).time_s


# ------------------------------------------------------------------ overlap, engine


def _saturated(host_bw: float, dma: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Batch (start, end) of one chip fed far faster than it can serve, 256 items a batch."""
    the_chip = chip(host_link={"bandwidth_bytes_per_s": host_bw, "dma": dma})
    per_batch = RankingCostModel(model(), the_chip).batch(256).time_s
    res = resolved(
        rate_per_s=4 / per_batch,
        sizes={"kind": "fixed", "value": 256},
        batching={"max_batch_items": 256, "max_wait_s": 0},
        duration_s=400 * per_batch,
        warmup_s=0.0,
        the_chip=the_chip,
    )
    b = simulate(res).fleets["ranking"].batches
    return b.start_s, b.end_s


@pytest.mark.parametrize(
    ("host_bw", "interval"),
    [
        (16e6, 256 * 16 / 12.8e6),  # copy-bound: a batch leaves every copy (320 us)
        (16e12, 256 * 112e-12 + 18e-12),  # compute-bound: every rest (28.69 ns)
    ],
)
def test_back_to_back_batches_leave_every_max_of_copy_and_rest(
    host_bw: float, interval: float
) -> None:
    start, end = _saturated(host_bw)
    steady = np.diff(end)[10:-10]
    assert np.allclose(steady, interval, rtol=1e-6)
    # The records never overlap on the chip: each batch holds it from the end of the
    # previous batch's compute (or its own start) to the end of its compute.
    assert np.all(start[1:] >= end[:-1] - 1e-15)


def test_without_dma_back_to_back_batches_leave_every_copy_plus_rest() -> None:
    _, end = _saturated(16e6, dma=False)
    assert np.allclose(np.diff(end)[10:-10], 256 * 16 / 12.8e6 + rest_s(256), rtol=1e-6)


def test_an_isolated_batch_pays_copy_then_rest() -> None:
    # At a trickle a query waits max_wait for company, then its batch copies its
    # 100 x 16 B (125 us) and computes (11.218 ns): the overlap has nothing to hide under.
    res = resolved(
        rate_per_s=5.0,
        sizes={"kind": "fixed", "value": 100},
        batching={"max_batch_items": 1024, "max_wait_s": 0.002},
        duration_s=20,
    )
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    done = ~np.isnan(wl.finish_s)
    latency = wl.finish_s[done] - wl.arrival_s[done]
    assert np.median(latency) == pytest.approx(0.002 + 100 * 16 / 12.8e6 + rest_s(100), rel=1e-6)


# ------------------------------------------------------------------ row cache


def _simulated_lru_hit_rate(
    rows: int, alpha: float, capacity_rows: int, draws: int, seed: int
) -> float:
    """Brute force: an LRU cache of ``capacity_rows`` fed independent Zipf(alpha) lookups."""
    p = np.arange(1, rows + 1, dtype=np.float64) ** -alpha
    p /= p.sum()
    lookups = np.random.default_rng(seed).choice(rows, size=draws, p=p).tolist()
    cache: OrderedDict[int, None] = OrderedDict()
    warm = draws // 8
    hits = 0
    for i, row in enumerate(lookups):
        if row in cache:
            cache.move_to_end(row)
            hits += i >= warm
        else:
            cache[row] = None
            if len(cache) > capacity_rows:
                cache.popitem(last=False)
    return hits / (draws - warm)


@pytest.mark.parametrize(("alpha", "capacity_rows"), [(0.9, 100), (1.2, 40)])
def test_che_approximation_matches_a_simulated_lru_cache(alpha: float, capacity_rows: int) -> None:
    # Che's approximation is known to be within about 1% of LRU under independent
    # requests for Zipf popularity (Fricker, Robert and Roberts, ITC 2012); 300,000
    # simulated lookups have a sampling error near 0.1%. Tolerance: 0.01 absolute.
    table = EmbeddingTable(name="t", rows=1000, dim=16, pooling_factor=1, zipf_alpha=alpha)
    ((hit, cached_rows),) = lru_hit_rates([table], [32], capacity_rows * 32.0, [True])
    assert cached_rows == pytest.approx(capacity_rows, rel=1e-9)
    simulated = _simulated_lru_hit_rate(1000, alpha, capacity_rows, 300_000, seed=7)
    assert hit == pytest.approx(simulated, abs=0.01)


def test_grouped_ranks_match_every_rank() -> None:
    # A 300,000-row table as 1,024 single ranks plus geometric groups, against all ranks.
    for alpha in (0.0, 0.8, 1.05):
        exact_p, exact_n = zipf_rank_groups(300_000, alpha, exact_ranks=300_000)
        p, n = zipf_rank_groups(300_000, alpha)
        assert n.sum() == 300_000 and len(p) < 2_000
        for t in (1e3, 1e5, 1e7):
            ref = float(np.dot(exact_p * exact_n, -np.expm1(-exact_p * t)))
            assert float(np.dot(p * n, -np.expm1(-p * t))) == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.05, 1.5])
def test_pinning_the_hottest_rows_hits_at_least_as_often_as_lru(alpha: float) -> None:
    table = EmbeddingTable(name="t", rows=50_000, dim=16, pooling_factor=3, zipf_alpha=alpha)
    for capacity_rows in (10, 1_000, 20_000):
        ((lru, _),) = lru_hit_rates([table], [32], capacity_rows * 32.0, [True])
        assert zipf_top_share(capacity_rows, 50_000, alpha) >= lru - 1e-9


def _chip_with_sram(capacity_bytes: float, row_cache: str) -> Chip:
    memory = chip().memory.model_dump()
    memory["sram"]["capacity_bytes"] = capacity_bytes
    memory["row_cache"] = row_cache
    return chip(memory=memory)


def test_hardware_cache_lowers_the_sram_share_of_a_plan() -> None:
    tables = [
        {"name": "a", "rows": 1_000_000, "dim": 4, "pooling_factor": 2, "zipf_alpha": 1.0},
        {"name": "b", "rows": 200_000, "dim": 4, "pooling_factor": 1, "zipf_alpha": 0.8},
    ]
    the_model = model(embedding_tables=tables)
    # 1.8 MiB of the 2 MiB SRAM is usable: a fraction of the 9.6 MB of rows.
    software = RankingCostModel(the_model, _chip_with_sram(2 * 2**20, "software"))
    hardware = RankingCostModel(the_model, _chip_with_sram(2 * 2**20, "hardware"))
    for soft, hard in zip(software.plan.tables, hardware.plan.tables, strict=True):
        assert 0 < hard.sram_share < soft.sram_share
        assert soft.sram_share + soft.dram_share + soft.host_share == pytest.approx(1.0)
        assert hard.sram_share + hard.dram_share + hard.host_share == pytest.approx(1.0)
    assert any("LRU" in note for note in hardware.plan.notes)
    # A cache larger than the tables: every lookup hits, none is left to DRAM or host.
    whole = RankingCostModel(the_model, _chip_with_sram(64 * 2**20, "hardware"))
    for table in whole.plan.tables:
        assert (table.sram_share, table.dram_share, table.host_share) == (1.0, 0.0, 0.0)
    assert hardware.batch(64).time_s > software.batch(64).time_s


def test_a_hardware_cache_needs_sram() -> None:
    memory = {**chip().memory.model_dump(), "sram": None, "row_cache": "hardware"}
    with pytest.raises((ValueError, ConfigError)):
        chip(memory=memory)
