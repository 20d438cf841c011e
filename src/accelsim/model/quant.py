"""4-bit weights: the bytes they occupy with their scales, and the work of dequantising them.

Two 4-bit weight formats, for an LLM's decoder layers:

* ``int4``, weight-only (W4A16): weights packed two to a byte, in groups of
  ``weight_group_size`` weights along a matrix's input dimension, each group
  storing ``weight_group_bytes`` beside its weights (its scale, and a zero point
  where the format has one): the model's fields, so that a model states the
  layout its serving stack ran. The default, 128 weights and one fp16 scale
  (2 bytes, 0.515625 bytes a weight), is the group size AWQ (Lin et al., MLSys
  2024) and GPTQ (Frantar et al., ICLR 2023) default to and that the Marlin
  kernel (Frantar et al., PPoPP 2025) runs, with symmetric scales (AWQ and GPTQ
  also store a 4-bit zero point per group, another 0.4% of the bytes, which a
  model adds by setting 2.5 bytes). gpt-fast's ``quantize.py --mode int4
  --groupsize 32`` stores a bf16 scale and a bf16 zero point per group of 32
  (its ``scales_and_zeros`` tensor, ``(in_features // groupsize, out_features,
  2)`` in bf16; github.com/pytorch-labs/gpt-fast, quantize.py,
  ``WeightOnlyInt4Linear``, commit 32971d3129541c5bfb4f715abc33d1c5f408d204, the
  same since its first commit): 4 bytes a group, 0.625 bytes a weight.
  The matrix engine multiplies in the activation dtype (bf16/fp16): the GEMM kernel
  reads the 4-bit weights and dequantises them in registers on the way to the
  matrix engine, so the dequantisation is vector work *inside* the GEMM op, not a
  kernel of its own (:func:`dequant_ops`).
* ``fp4``, MXFP4 (W4A4): E2M1 elements in blocks of :data:`MXFP4_BLOCK_SIZE` that
  share an 8-bit power-of-two scale (E8M0), as the OCP Microscaling Formats (MX)
  specification v1.0 (2023) defines them. Only a matrix engine that lists an
  ``fp4`` rate runs it; it applies the block scales itself, and the activations are
  quantised to MXFP4 before each GEMM as 8-bit ones are to 8 bits. A chip without
  fp4 is refused (:func:`fp4_problem`): its only route would be a weight-only fp4
  kernel, which int4 already models.

Serving stacks quantise the decoder layers' linear weights and keep the embeddings
and LM head in 16 bits (AutoAWQ's and GPTQ's defaults, and the MXFP4 checkpoints
published so far); so does accelsim (:func:`unquantised_dtype`).
"""

from __future__ import annotations

import math

from accelsim.config.schema import (
    DTYPE_BYTES,
    INT4_GROUP_BYTES_DEFAULT,
    INT4_GROUP_SIZE_DEFAULT,
    Chip,
    LLMModel,
)

MXFP4_BLOCK_SIZE = 32  # elements per shared scale (OCP MX v1.0)
MXFP4_SCALE_BYTES = 1  # one E8M0 scale per block

# Dtypes whose weights are dequantised into the activation dtype for the matrix engine.
WEIGHT_ONLY = frozenset({"int4"})
FOUR_BIT = frozenset({"int4", "fp4"})

# Vector operations to dequantise one int4 weight inside a fused GEMM. Marlin converts
# eight packed int4 values held in one 32-bit register to fp16 pairs with four bit
# operations (the LOP3 trick of Kim et al., "Who Says Elephants Can't Run", 2022), then
# two packed subtracts and two packed multiply-adds apply the offset and the scale:
# eight instructions for eight weights, about one per weight.
DEQUANT_OPS_PER_WEIGHT = 1.0


def weight_bytes_per_param(model: LLMModel) -> float:
    """Bytes a decoder-layer weight of ``model`` occupies in memory, its share of its
    group's scale (and zero point) included."""
    dtype = model.weight_dtype
    if dtype == "int4":
        # A validated int4 model has both; a copy switched to int4 takes the defaults.
        size = model.weight_group_size
        group_bytes = model.weight_group_bytes
        size = INT4_GROUP_SIZE_DEFAULT if size is None else size
        group_bytes = INT4_GROUP_BYTES_DEFAULT if group_bytes is None else group_bytes
        return DTYPE_BYTES["int4"] + group_bytes / size
    if dtype == "fp4":
        return DTYPE_BYTES["fp4"] + MXFP4_SCALE_BYTES / MXFP4_BLOCK_SIZE
    return DTYPE_BYTES[dtype]


def unquantised_dtype(weight_dtype: str, activation_dtype: str) -> str:
    """The dtype of a model's embeddings, LM head and vision encoder: the activation
    dtype for a 4-bit model, else the weights' own."""
    return activation_dtype if weight_dtype in FOUR_BIT else weight_dtype


def dequant_ops(weights: float, rows: float, tile_rows: int) -> float:
    """Vector operations a fused W4A16 GEMM of ``rows`` rows spends dequantising
    ``weights`` weights: each weight once for every tile of rows the matrix engine
    computes (one tile up to ``tile_rows`` rows: a decode step dequantises each weight
    once, a long prefill chunk once per ``tile_rows`` tokens)."""
    return weights * max(1, math.ceil(rows / tile_rows)) * DEQUANT_OPS_PER_WEIGHT


def fp4_problem(weight_dtype: str, chip: Chip) -> str | None:
    """Why ``chip`` cannot run weights of ``weight_dtype``, or None if it can."""
    if weight_dtype == "fp4" and "fp4" not in chip.compute.matrix_flops_per_s:
        return (
            f"fp4 weights need a matrix engine with an fp4 rate, and {chip.name}'s "
            "compute.matrix_flops_per_s lists none: use a chip that has one, or int4 "
            "(weight-only) weights"
        )
    return None
