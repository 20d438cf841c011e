"""4-bit weights (int4 weight-only, fp4 MXFP4) against values computed by hand.

Test chip (tests/helpers.py) without SRAM, so weights stream from DRAM: bf16 matrix
100 TFLOP/s x 0.5 = 50 TFLOP/s; vector 10 x 0.5 = 5 TFLOP/s; DRAM 100 GB/s x 0.8 =
80 GB/s; 0.5 pJ per bf16 FLOP, 1 pJ per vector FLOP; no kernel overhead; one matrix
unit; 128 x 128 tiles. ``memory_overlap`` 1 (the ideal roofline's max) unless a test
says otherwise. Model: 2 layers, d_model 1024, 8 heads (MHA), FFN 4096 (SwiGLU),
vocabulary 1000: 2 x (4 x 1024^2 + 3 x 1024 x 4096) = 33,554,432 body params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from accelsim.config.schema import Chip, LLMModel
from accelsim.model.llm import Iteration, LLMCostModel, prefill_pairs
from accelsim.model.power import Terms
from accelsim.model.quant import dequant_ops, weight_bytes_per_param
from clirunner import err, invoke
from helpers import CHIP, chip, llm, model

BODY = 2 * (4 * 1024**2 + 3 * 1024 * 4096)
HEAD = 1024 * 1000  # the LM head (embeddings as many again, not read per step)
DRAM_BPS = 80e9
INT4_B = 0.5 + 2 / 128  # half a byte and a share of one fp16 scale per 128 weights
FP4_B = 0.5 + 1 / 32  # half a byte and a share of one 8-bit scale per 32 elements


def four_bit_chip(overlap: float = 1.0, **compute: Any) -> Chip:
    data = {k: v for k, v in CHIP.items() if k not in ("compute", "memory", "power")}
    c = {**CHIP["compute"], "memory_overlap": overlap, **compute}
    power = dict(CHIP["power"])
    if "fp4" in c["matrix_flops_per_s"]:
        power["energy_per_flop_j"] = {**power["energy_per_flop_j"], "fp4": 0.125e-12}
    memory = {"dram": CHIP["memory"]["dram"]}
    return Chip.model_validate({**data, "compute": c, "memory": memory, "power": power})


def four_bit_model(dtype: str, **changes: Any) -> LLMModel:
    shape = {"layers": 2, "d_model": 1024, "heads": 8, "kv_heads": 8, "ffn_dim": 4096}
    return llm(**shape, weight_dtype=dtype, **changes)


def decode(cost: LLMCostModel, batch: int) -> Iteration:
    return Iteration(decode_sequences=batch, decode_context_tokens=batch, logits=batch)


def test_four_bit_weights_count_their_scales() -> None:
    assert weight_bytes_per_param(four_bit_model("int4")) == 0.515625
    assert weight_bytes_per_param(four_bit_model("fp4")) == 0.53125
    assert weight_bytes_per_param(four_bit_model("bf16")) == 2
    s = LLMCostModel(four_bit_model("int4"), four_bit_chip()).shape
    # Decoder layers in int4 with their scales; embeddings and LM head stay in bf16.
    assert s.weight_bytes == pytest.approx(BODY * INT4_B + 2 * HEAD * 2)


def test_a_w4_gemm_reads_its_packed_weights_and_scales() -> None:
    cost = LLMCostModel(four_bit_model("int4"), four_bit_chip())
    ops = {op.name: op for op in cost.ops(decode(cost, 1))}
    up_gate = ops["gemm.up_gate"]
    assert up_gate.bytes == 2 * 2 * 1024 * 4096 * INT4_B == 8_650_752
    assert up_gate.dtype == "int4"
    # One dequantisation of each weight at one row, fused into the GEMM op.
    assert up_gate.vector_flops == 2 * 2 * 1024 * 4096
    assert "dequant" not in " ".join(ops)  # no kernel of its own
    assert ops["lm_head"].bytes == HEAD * 2 and ops["lm_head"].dtype == "bf16"


def test_batch_one_decode_is_weight_bytes_over_bandwidth_and_near_4x_bf16() -> None:
    chip_ = four_bit_chip()
    times = {}
    for dtype in ("bf16", "int4"):
        cost = LLMCostModel(four_bit_model(dtype), chip_)
        step = cost.iteration(decode(cost, 1))
        for c in step.ops:
            if c.op.kind == "gemm":
                assert c.bound == "dram", c.op.name
        times[dtype] = step.time_s
    # Every GEMM is memory-bound: the step is its weights over the bandwidth, plus
    # element-wise kernels and one token of KV (under 1% here).
    assert times["int4"] == pytest.approx((BODY * INT4_B + HEAD * 2) / DRAM_BPS, rel=0.01)
    assert times["bf16"] == pytest.approx((BODY + HEAD) * 2 / DRAM_BPS, rel=0.01)
    # (2 B x 34.6M) / (0.516 B x 33.6M + 2 B x 1.0M) = 3.58: the bf16 LM head keeps it below 3.88.
    assert 3.5 < times["bf16"] / times["int4"] < 3.7


def test_large_batch_is_compute_bound_with_the_dequantisation_visible() -> None:
    tokens = 1024
    it = Iteration(prefill_tokens=tokens, prefill_pairs=prefill_pairs(tokens, 0), logits=1)
    got = {}
    for dtype in ("bf16", "int4"):
        cost = LLMCostModel(four_bit_model(dtype), four_bit_chip())
        got[dtype] = next(c for c in cost.iteration(it).ops if c.op.name == "gemm.up_gate")
    weights = 2 * 2 * 1024 * 4096
    matrix_s = 2 * weights * tokens / 50e12  # whole tiles in whole waves: full efficiency
    dequant_s = weights * (tokens / 128) / 5e12  # once per 128-row tile, on the vector unit
    assert got["bf16"].compute_time_s == pytest.approx(matrix_s)
    assert got["int4"].compute_time_s == pytest.approx(matrix_s + dequant_s)
    assert got["int4"].bound == "compute" and got["int4"].compute_dtype == "bf16"
    # 8 / 2048 of the matrix FLOPs at a tenth of the rate: 3.9% more time.
    assert got["int4"].time_s / got["bf16"].time_s == pytest.approx(1 + 8 / 2048 * 10)
    assert got["int4"].energy_j["compute"] == pytest.approx(
        2 * weights * tokens * 0.5e-12 + weights * 8 * 1e-12
    )


def test_weight_only_gemms_take_their_own_efficiency() -> None:
    tokens = 1024
    it = Iteration(prefill_tokens=tokens, prefill_pairs=prefill_pairs(tokens, 0), logits=1)
    cost = LLMCostModel(
        four_bit_model("int4"), four_bit_chip(gemm_efficiency_by_dtype={"int4": 0.25})
    )
    up_gate = next(c for c in cost.iteration(it).ops if c.op.name == "gemm.up_gate")
    weights = 2 * 2 * 1024 * 4096
    assert up_gate.compute_time_s == pytest.approx(
        2 * weights * tokens / 25e12 + weights * 8 / 5e12
    )


def test_dequantisation_passes_follow_the_row_tiles() -> None:
    assert dequant_ops(1000, 1, 128) == 1000
    assert dequant_ops(1000, 128, 128) == 1000
    assert dequant_ops(1000, 129, 128) == 2000


@pytest.mark.parametrize("moe", [None, {"experts": 8, "active_experts": 2}])
@pytest.mark.parametrize("overlap", [0.5, 1.0])
def test_the_engine_path_matches_the_ops(moe: dict[str, Any] | None, overlap: float) -> None:
    cost = LLMCostModel(four_bit_model("int4", moe=moe), four_bit_chip(overlap))
    for it in (
        decode(cost, 1),
        decode(cost, 300),
        Iteration(
            prefill_tokens=700,
            prefill_pairs=prefill_pairs(700, 0),
            decode_sequences=3,
            decode_context_tokens=90,
            logits=4,
        ),
    ):
        full = Terms.of(cost.iteration(it))
        fast = cost.terms(it)
        assert fast.time(1.0) == pytest.approx(full.time(1.0), rel=1e-12)
        assert fast.compute_energy == pytest.approx(full.compute_energy, rel=1e-12)
        assert fast.fixed_energy == pytest.approx(full.fixed_energy, rel=1e-12)
    plan = cost.decode_plan(5)
    if plan is not None:
        it = Iteration(decode_sequences=5, decode_context_tokens=400, logits=5)
        assert plan.terms(400).time(1.0) == pytest.approx(cost.terms(it).time(1.0), rel=1e-12)


def test_fp4_runs_natively_on_an_fp4_engine() -> None:
    rates = {"bf16": 100e12, "int8": 200e12, "fp4": 400e12}
    cost = LLMCostModel(four_bit_model("fp4"), four_bit_chip(matrix_flops_per_s=rates))
    ops = {op.name: op for op in cost.ops(decode(cost, 1))}
    assert ops["gemm.up_gate"].bytes == 2 * 2 * 1024 * 4096 * FP4_B
    assert ops["gemm.up_gate"].vector_flops == 0  # the engine applies the block scales
    # Activations quantised to MXFP4 before each GEMM: read bf16, write 4 bits and scales.
    quantize = ops["quantize"]
    assert quantize.bytes == pytest.approx(2 * (2 * 1024 + 1024 + 4096) * (2 + FP4_B))
    tokens = 1024
    it = Iteration(prefill_tokens=tokens, prefill_pairs=prefill_pairs(tokens, 0), logits=1)
    up_gate = next(c for c in cost.iteration(it).ops if c.op.name == "gemm.up_gate")
    assert up_gate.compute_dtype == "fp4"
    assert up_gate.compute_time_s == pytest.approx(2 * 2 * 2 * 1024 * 4096 * tokens / 200e12)


def test_fp4_on_a_chip_without_fp4_is_refused() -> None:
    with pytest.raises(ValueError, match=r"fp4 weights need a matrix engine with an fp4 rate"):
        LLMCostModel(four_bit_model("fp4"), four_bit_chip())


def test_explain_fp4_on_a_chip_without_fp4_is_a_one_line_error(tmp_path: Path) -> None:
    chip_file = tmp_path / "chip.yaml"
    model_file = tmp_path / "model.yaml"
    chip_file.write_text(yaml.safe_dump(four_bit_chip().model_dump(mode="json")))
    model_file.write_text(yaml.safe_dump(four_bit_model("fp4").model_dump(mode="json")))
    result = invoke("explain", "--chip", str(chip_file), "--model", str(model_file))
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = err(result).strip().splitlines()
    assert line.startswith("error: ")
    assert "fp4 weights need a matrix engine with an fp4 rate" in line
    assert "test-chip" in line


def test_a_model_too_big_in_bf16_fits_in_int4() -> None:
    small = four_bit_chip()
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": 64 * 2**20}  # 64 MiB
    small = Chip.model_validate({**small.model_dump(), "memory": {"dram": dram}})
    bf16 = LLMCostModel(four_bit_model("bf16"), small).capacity  # 69 MB of weights
    int4 = LLMCostModel(four_bit_model("int4"), small).capacity  # 21 MB
    assert bf16.kv_capacity_tokens == 0 and bf16.min_chips == 2
    assert int4.kv_capacity_tokens > 0 and int4.min_chips == 1


def test_four_bit_dtypes_are_for_llm_weights_and_matrix_engines_only() -> None:
    with pytest.raises(ValidationError, match="kv_dtype"):
        four_bit_model("int4", kv_dtype="int4")
    with pytest.raises(ValidationError, match="dtype"):
        model(dtype="fp4")
    with pytest.raises(ValidationError, match="int4 weights run weight-only"):
        chip(compute={**CHIP["compute"], "matrix_flops_per_s": {"bf16": 1e14, "int4": 4e14}})


# An int4 model's group layout: weights per group, bytes of its scale and zero point.

GPT_FAST_B = 0.5 + (2 + 2) / 32  # half a byte, and a bf16 scale and bf16 zero per 32


def test_int4_defaults_to_groups_of_128_with_one_fp16_scale() -> None:
    model = four_bit_model("int4")
    assert (model.weight_group_size, model.weight_group_bytes) == (128, 2)
    assert weight_bytes_per_param(model) == INT4_B == 0.515625
    # A copy switched to int4 without validation takes the same defaults.
    copy = four_bit_model("bf16").model_copy(update={"weight_dtype": "int4"})
    assert weight_bytes_per_param(copy) == INT4_B


def test_a_group_of_32_with_scale_and_zero_point_is_five_eighths_of_a_byte() -> None:
    model = four_bit_model("int4", weight_group_size=32, weight_group_bytes=4)
    assert weight_bytes_per_param(model) == GPT_FAST_B == 0.625
    awq_zero = four_bit_model("int4", weight_group_bytes=2.5)  # plus a 4-bit zero point
    assert weight_bytes_per_param(awq_zero) == 0.5 + 2.5 / 128


def test_batch_one_decode_grows_with_the_group_bytes() -> None:
    chip = four_bit_chip()
    step = Iteration(decode_sequences=1, decode_context_tokens=1, logits=1)
    times = {}
    for size, group_bytes in ((128, 2), (32, 4)):
        model = four_bit_model("int4", weight_group_size=size, weight_group_bytes=group_bytes)
        cost = LLMCostModel(model, chip)
        assert cost.shape.weight_bytes_per_param == 0.5 + group_bytes / size
        times[size] = cost.iteration(step).time_s
    # Every GEMM streams its weights from DRAM: the step grows by the extra bytes of
    # the decoder layers over the bandwidth (the bf16 LM head and the rest unchanged).
    extra_s = BODY * (GPT_FAST_B - INT4_B) / DRAM_BPS
    assert times[32] - times[128] == pytest.approx(extra_s, rel=1e-9)
    assert extra_s == pytest.approx(3_670_016 / 80e9)  # 45.9 µs


@pytest.mark.parametrize("dtype", ["bf16", "fp8", "fp4"])
@pytest.mark.parametrize("field", ["weight_group_size", "weight_group_bytes"])
def test_a_group_layout_is_for_int4_weights_only(dtype: str, field: str) -> None:
    message = rf"{field}\n.*only int4 weights are stored in groups"
    with pytest.raises(ValidationError, match=message):
        four_bit_model(dtype, **{field: 64})


def test_a_group_has_at_least_one_weight_and_stores_a_scale() -> None:
    with pytest.raises(ValidationError, match="weight_group_size"):
        four_bit_model("int4", weight_group_size=0)
    with pytest.raises(ValidationError, match="weight_group_bytes"):
        four_bit_model("int4", weight_group_bytes=0)


def test_a_dump_names_the_layout_of_int4_weights_only() -> None:
    assert "weight_group_size" not in four_bit_model("bf16").model_dump()
    int4 = four_bit_model("int4", weight_group_size=32, weight_group_bytes=4)
    dumped = int4.model_dump(mode="json")
    assert (dumped["weight_group_size"], dumped["weight_group_bytes"]) == (32, 4)
    assert LLMModel.model_validate(dumped) == int4


def test_a_group_layout_on_a_bf16_model_file_is_a_located_one_line_error(
    tmp_path: Path,
) -> None:
    chip_file = tmp_path / "chip.yaml"
    chip_file.write_text(yaml.safe_dump(four_bit_chip().model_dump(mode="json")))
    model_file = tmp_path / "model.yaml"
    data = four_bit_model("bf16").model_dump(mode="json")
    model_file.write_text(yaml.safe_dump(data, sort_keys=False) + "weight_group_size: 32\n")
    line = model_file.read_text().splitlines().index("weight_group_size: 32") + 1
    result = invoke("explain", "--chip", str(chip_file), "--model", str(model_file))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert err(result).strip() == (
        f"error: {model_file}:{line}: weight_group_size: only int4 weights are stored in "
        "groups (weight_dtype is bf16) (got 32)"
    )


def test_fp4_on_a_pipeline_parallel_pool_without_fp4_is_a_one_line_error(tmp_path: Path) -> None:
    # The dtype check comes before the pool's layout is costed: a pool with a
    # `parallelism` block is refused as a plain one is, not with a traceback.
    from accelsim.config.loader import data_root

    model_file = tmp_path / "fp4.yaml"
    shipped = data_root() / "workloads" / "models" / "llm-dense-70b.yaml"
    model_file.write_text(f"extends: {shipped}\nweight_dtype: fp4\n")
    result = invoke(
        "run",
        "llm-70b-pipeline-parallel",
        "--set",
        f"workloads.chat.model={model_file}",
        "-q",
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = err(result).strip().splitlines()
    assert line.startswith("error: ") and "pools.mtia.chip" in line
    assert "fp4 weights need a matrix engine with an fp4 rate" in line
