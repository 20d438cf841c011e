"""The pure cost model against values computed by hand from the test chip in helpers.py.

Test chip: bf16 matrix 100 TFLOP/s x 0.5 efficiency = 50 TFLOP/s; vector 10 x 0.5 = 5 TFLOP/s;
SRAM 1 TB/s (stream x1.0, random x0.5, 32 B granules, 1 pJ/B); DRAM 100 GB/s (stream x0.8 =
80 GB/s, random x0.4 = 40 GB/s, 64 B granules, 20 pJ/B); host link 16 MB/s x 0.8 = 12.8 MB/s;
no kernel overhead; idle 10 W; 0.5 pJ per bf16 FLOP; compute/memory overlap 0.5 (an op takes
the longer of the two plus half the shorter); one matrix unit (no wave quantisation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.model.ranking import RankingCostModel, plan, zipf_harmonic, zipf_top_share
from accelsim.model.roofline import ChipRates, Op, Traffic, batch_cost, op_cost
from helpers import chip, model


def test_pure_compute_op_runs_at_peak_times_efficiency() -> None:
    cost = op_cost(ChipRates(chip()), Op("g", "gemm", "matrix", "bf16", 1e12, ()))
    assert cost.time_s == pytest.approx(1e12 / 50e12)
    assert cost.bound == "compute"
    assert cost.energy_j["compute"] == pytest.approx(1e12 * 0.5e-12)


def test_pure_stream_op_runs_at_bandwidth_times_efficiency() -> None:
    op = Op("s", "transfer", "vector", "bf16", 0.0, (Traffic("dram", "stream", 1e9),))
    cost = op_cost(ChipRates(chip()), op)
    assert cost.time_s == pytest.approx(1e9 / 80e9)
    assert cost.bound == "dram"
    assert cost.energy_j["dram"] == pytest.approx(1e9 * 20e-12)


def test_random_gathers_use_the_lower_random_efficiency() -> None:
    op = Op("r", "embedding", "vector", "fp16", 0.0, (Traffic("dram", "random", 1e9),))
    assert op_cost(ChipRates(chip()), op).time_s == pytest.approx(1e9 / 40e9)


def test_op_time_is_the_longer_of_compute_and_summed_memory_plus_half_the_shorter() -> None:
    rates = ChipRates(chip(compute={**chip().compute.model_dump(), "kernel_overhead_s": 5e-6}))
    op = Op(
        "m",
        "gemm",
        "matrix",
        "bf16",
        1e12,  # 20 ms of compute
        (Traffic("sram", "stream", 1e10), Traffic("dram", "stream", 8e8)),  # 10 ms + 10 ms
    )
    cost = op_cost(rates, op)
    assert cost.compute_time_s == pytest.approx(0.02)
    assert cost.memory_time_s == pytest.approx({"sram": 0.01, "dram": 0.01})
    # max(20, 10 + 10) ms + (1 - 0.5) x 20 ms, + 5 us of launch.
    assert cost.time_s == pytest.approx(0.02 + 0.5 * 0.02 + 5e-6)
    assert cost.bound == "compute"
    bigger = Op("m", "gemm", "matrix", "bf16", 1e12, (Traffic("dram", "stream", 2e9),))
    cost = op_cost(rates, bigger)
    # 25 ms of DRAM + half of the 20 ms of compute.
    assert cost.time_s == pytest.approx(0.025 + 0.5 * 0.02 + 5e-6)
    # No overlap at all: the sum; full overlap: the ideal roofline's max.
    for overlap, expected in ((0.0, 0.045), (1.0, 0.025)):
        compute = {**chip().compute.model_dump(), "memory_overlap": overlap}
        assert op_cost(ChipRates(chip(compute=compute)), bigger).time_s == pytest.approx(expected)
    assert cost.bound == "dram"


def test_missing_dtype_falls_back_to_a_wider_one() -> None:
    data = chip().model_dump()
    data["compute"]["matrix_flops_per_s"] = {"bf16": 100e12}
    data["power"]["energy_per_flop_j"] = {"bf16": 0.5e-12}
    rates = ChipRates(chip(compute=data["compute"], power=data["power"]))
    cost = op_cost(rates, Op("g", "gemm", "matrix", "int8", 1e12, ()))
    assert cost.compute_dtype == "bf16"
    assert cost.time_s == pytest.approx(0.02)


def test_ridge_point_is_achievable_flops_over_streaming_bandwidth() -> None:
    rates = ChipRates(chip())
    assert rates.ridge_point("bf16", "dram") == pytest.approx(50e12 / 80e9)
    assert rates.ridge_point("bf16", "sram") == pytest.approx(50e12 / 1e12)


def test_batch_cost_sums_ops_and_adds_idle_energy() -> None:
    rates = ChipRates(chip())
    ops = [
        Op("a", "gemm", "matrix", "bf16", 1e12, ()),
        Op("b", "transfer", "vector", "bf16", 0.0, (Traffic("dram", "stream", 1e9),)),
    ]
    cost = batch_cost(rates, ops, items=1)
    assert cost.time_s == pytest.approx(0.02 + 0.0125)  # each op does one kind of work
    assert cost.dynamic_energy_j == pytest.approx(0.5 + 0.02)
    assert cost.static_energy_j == pytest.approx(10.0 * 0.0325)
    assert cost.avg_power_w == pytest.approx((0.52 + 0.325) / 0.0325)
    parts = cost.energy_by_component_j()
    assert sum(parts.values()) == pytest.approx(cost.energy_j)


def test_tiny_ranking_batch_matches_hand_computation() -> None:
    cm = RankingCostModel(model(), chip())
    cost = cm.batch(10)
    times = {c.op.name: c.time_s for c in cost.ops}
    assert list(times) == [
        "input_transfer",
        "embedding_bags",
        "bottom_mlp.0",
        "interaction.dot",
        "top_mlp.0",
    ]
    # Each op: its memory time plus half its (shorter) compute time.
    # 10 items x (1 dense fp32 + 1 int64 id + 1 fp32 score) = 160 B over 12.8 MB/s.
    assert times["input_transfer"] == pytest.approx(160 / 12.8e6)
    # 10 lookups of an 8 B row, each a 32 B SRAM granule at 0.5 TB/s, + 80 B written;
    # pooling adds 10 x 4 = 40 FLOPs at 5 TFLOP/s on the vector unit.
    assert times["embedding_bags"] == pytest.approx(320 / 5e11 + 80 / 1e12 + 0.5 * 40 / 5e12)
    # 1->4 GEMM: weights 8 B + activations 10 x 5 x 2 B from SRAM; 2 x 10 x 4 FLOPs at
    # 50 TFLOP/s.
    assert times["bottom_mlp.0"] == pytest.approx(108 / 1e12 + 0.5 * 80 / 50e12)
    # Dot of F=2 vectors of dim 4: reads 10 x (2x4 + 1) x 2 B; 10 x 2 x 2 x 2 x 4 = 320 FLOPs.
    assert times["interaction.dot"] == pytest.approx(180 / 1e12 + 0.5 * 320 / 50e12)
    # Top 5->1 GEMM: 10 B of weights and 10 x 6 x 2 B of activations; 2 x 10 x 5 FLOPs.
    assert times["top_mlp.0"] == pytest.approx(130 / 1e12 + 0.5 * 100 / 50e12)
    assert cost.time_s == pytest.approx(sum(times.values()))
    assert cm.plan.weights_tier == "sram"
    assert cm.plan.weight_bytes == 18
    assert cm.plan.tables[0].sram_share == 1.0


def test_zipf_harmonic_matches_direct_sum_beyond_the_exact_range() -> None:
    for alpha in (0.6, 1.0, 1.2):
        for n in (5000, 200_000):
            direct = float(np.sum(np.arange(1, n + 1, dtype=np.float64) ** -alpha))
            assert zipf_harmonic(n, alpha) == pytest.approx(direct, rel=1e-10)


def test_zipf_top_share_edges() -> None:
    assert zipf_top_share(0, 100, 1.0) == 0.0
    assert zipf_top_share(100, 100, 1.0) == 1.0
    assert zipf_top_share(25, 100, 0.0) == 0.25  # uniform popularity
    # Skew makes a small cache serve much more than its share of rows.
    assert zipf_top_share(1000, 1_000_000, 1.0) > 0.45


def test_embeddings_larger_than_dram_spill_to_host_and_are_noted() -> None:
    small = chip().model_dump()
    small["memory"]["dram"]["capacity_bytes"] = 2**30
    big = model(
        embedding_tables=[
            {"name": "big", "rows": 400_000_000, "dim": 4, "pooling_factor": 1, "dtype": "fp16"}
        ]
    )
    p = plan(big, chip(memory=small["memory"]))
    table = p.tables[0]
    assert table.host_share > 0
    assert table.sram_share + table.dram_share + table.host_share == pytest.approx(1.0)
    assert any("host memory" in note for note in p.notes)
    ops = {c.op.name: c for c in RankingCostModel(big, chip(memory=small["memory"])).batch(64).ops}
    assert ops["embedding_bags"].memory_time_s["host"] > 0


def test_weights_that_do_not_fit_sram_are_streamed_from_dram() -> None:
    wide = model(dense_features=4096, bottom_mlp=[4096, 4096, 4], top_mlp=[1])
    p = plan(wide, chip())
    assert p.weights_tier == "dram"
    assert any("exceed usable SRAM" in n for n in p.notes)


def test_given_hit_rate_overrides_the_zipf_estimate() -> None:
    fixed = model(
        embedding_tables=[
            {"name": "t", "rows": 10**9, "dim": 4, "pooling_factor": 1, "hit_rate": 0.25}
        ]
    )
    assert plan(fixed, chip()).tables[0].sram_share == pytest.approx(0.25)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=4096), st.integers(min_value=1, max_value=4096))
def test_bigger_batches_take_longer_but_never_lower_throughput(a: int, b: int) -> None:
    cm = RankingCostModel(model(dense_features=64, bottom_mlp=[256, 4], top_mlp=[64, 1]), chip())
    small, large = sorted((a, b))
    t_small, t_large = cm.batch(small).time_s, cm.batch(large).time_s
    assert t_small <= t_large * (1 + 1e-12)
    assert small / t_small <= large / t_large * (1 + 1e-9)
    assert math.isfinite(cm.batch(large).energy_j) and cm.batch(large).energy_j > 0


def test_batch_of_zero_items_is_refused() -> None:
    with pytest.raises(ValueError):
        RankingCostModel(model(), chip()).batch(0)


def test_cache_keeps_the_hottest_rows_across_tables() -> None:
    # A tiny hot table and a huge cold one: a cache a little larger than the tiny
    # table holds all of it, and gives the rest to the huge table's head.
    tables = [
        {"name": "tiny", "rows": 1000, "dim": 4, "pooling_factor": 1, "dtype": "fp16"},
        {"name": "huge", "rows": 10**8, "dim": 4, "pooling_factor": 1, "dtype": "fp16"},
    ]
    data = chip().model_dump()
    data["memory"]["sram"]["capacity_bytes"] = 100_000 / 0.9  # 100 kB usable
    p = plan(model(embedding_tables=tables), chip(memory=data["memory"]))
    tiny, huge = p.tables
    assert tiny.sram_rows == 1000
    assert tiny.sram_share == 1.0
    assert 0 < huge.sram_rows * huge.row_bytes <= 100_000 - 8000
    used = sum(t.count * t.sram_rows * t.row_bytes for t in p.tables) + p.weight_bytes
    assert used <= 100_000
    assert used > 0.99 * 100_000  # the cache is filled, not left idle


def test_uniform_popularity_caches_in_proportion_to_rows() -> None:
    table = {"name": "u", "rows": 10**6, "dim": 4, "pooling_factor": 1, "zipf_alpha": 0}
    p = plan(model(embedding_tables=[table]), chip())
    assert p.tables[0].sram_share == 1.0  # 8 MB fits the 64 MiB SRAM
    data = chip().model_dump()
    data["memory"]["sram"]["capacity_bytes"] = 4e6 / 0.9
    p = plan(model(embedding_tables=[table]), chip(memory=data["memory"]))
    # Every row is as hot as any other: the cache holds half the table, serving half the lookups.
    usable = 4e6 - p.weight_bytes
    assert p.tables[0].sram_share == pytest.approx(usable / 8e6, rel=1e-5)


def test_gemm_shape_efficiency_is_tile_and_wave_quantisation() -> None:
    compute = {**chip().compute.model_dump(), "matrix_units": 108}
    rates = ChipRates(chip(compute=compute))
    # One row computes a 16-row tile (1/16); 12288 columns are 96 tiles of 128 on 108 units.
    assert rates.shape_efficiency(1, 12288, 4096) == pytest.approx(1 / 16 * 96 / 108)
    # 32 tiles fill a third of the units: K (4096 deep) is split in 3, 96 of 108 busy.
    assert rates.shape_efficiency(128, 4096, 4096) == pytest.approx(96 / 108)
    # 16 x 172 = 2752 tiles run in 26 waves of 108 (2808 slots).
    assert rates.shape_efficiency(2048, 22016, 4096) == pytest.approx(2752 / 2808)
    # 100 rows and columns fill 100 x 100 of one 128 x 128 tile; K = 64 is too shallow to
    # split, so one unit of 108 works.
    assert rates.shape_efficiency(100, 100, 64) == pytest.approx(100 * 100 / 128**2 / 108)
    # An op with that shape runs at the large-GEMM rate (50 TFLOP/s) times it.
    op = Op("g", "gemm", "matrix", "bf16", 2 * 128 * 4096 * 4096, (), gemm=(128, 4096, 4096))
    assert op_cost(rates, op).compute_time_s == pytest.approx(op.flops / (50e12 * 96 / 108))
    # With one unit (the default) only tile quantisation is left.
    assert ChipRates(chip()).shape_efficiency(128, 4096, 4096) == 1.0
