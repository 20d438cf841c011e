"""Frozen pydantic schemas for everything accelsim reads from disk.

Field names carry their unit (``bandwidth_bytes_per_s``); values in YAML may
carry units too (``3.2 TB/s``) and are converted to SI floats on load. Every
model is frozen and forbids unknown fields, so a typo is an error, not a
silently ignored setting. Derived values never live here: the cost model and
engine compute them into objects of their own.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from accelsim.units import DIMENSION_LABELS, parse_quantity

DType = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
# Bytes of one element; a 4-bit element is half a byte (two to a byte, packed). The
# per-group scales 4-bit weights also store are counted where weights are sized
# (accelsim.model.quant).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4,
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
    "fp4": 0.5,
}
# Dtypes of tensors stored and computed element by element (ranking models and tables,
# the KV cache): 4-bit is for LLM weights and matrix engines only.
ElementDType = Literal["fp32", "bf16", "fp16", "fp8", "int8"]
ELEMENT_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# An int4 model's weight groups unless it names its own (accelsim.model.quant).
INT4_GROUP_SIZE_DEFAULT = 128  # weights per group
INT4_GROUP_BYTES_DEFAULT = 2  # one fp16 scale a group


def _parser(dimension: str) -> BeforeValidator:
    def parse(value: object) -> float:
        return parse_quantity(value, dimension)

    return BeforeValidator(parse)


def _json(dimension: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": f"A number in SI units, or a string with a unit: "
            f"{DIMENSION_LABELS[dimension]}",
        }
    )


Bytes = Annotated[float, _parser("bytes"), _json("bytes")]
BytesPerS = Annotated[float, _parser("bytes/s"), _json("bytes/s")]
Watts = Annotated[float, _parser("W"), _json("W")]
Hertz = Annotated[float, _parser("Hz"), _json("Hz")]
OpsPerS = Annotated[float, _parser("ops/s"), _json("ops/s")]
Seconds = Annotated[float, _parser("s"), _json("s")]
JoulesPerByte = Annotated[float, _parser("J/byte"), _json("J/byte")]
JoulesPerOp = Annotated[float, _parser("J/op"), _json("J/op")]
RatePerS = Annotated[float, _parser("1/s"), _json("1/s")]
Fraction = Annotated[float, _parser("fraction"), _json("fraction"), Field(ge=1e-6, le=1)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]


_Value = TypeVar("_Value")


def _without_none(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A dumped model without the optional ``keys`` left unset, so that a result's config
    names only the options it uses (and an old result's config stays the same)."""
    for key in keys:
        if data.get(key) is None:
            data.pop(key, None)
    return data


def _only_where(
    value: _Value, info: ValidationInfo, field: str, allowed: str, code: str, message: str
) -> _Value:
    """Refuse ``value`` unless the model's ``field`` (validated before it) is ``allowed``;
    ``message`` may name the field's value as ``{<field>}``."""
    other = info.data.get(field)
    if value is not None and other is not None and other != allowed:
        raise PydanticCustomError(code, message, {field: other})
    return value


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a number, not a boolean")
    return value


# Numbers are numbers: YAML's true/yes/no is never read as 1 or 0. A plain number field
# takes an integer or a float; an integer field (StrictInt) only an integer, not 2.0 or
# "2"; a flag (StrictBool) only true or false.
Number = Annotated[float, BeforeValidator(_not_bool)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- chips


class MemoryTier(Strict):
    """One level of a chip's memory: on-chip SRAM or device DRAM (HBM, LPDDR, DDR)."""

    technology: str = Field("", description="Free text, e.g. 'LPDDR5-class' or 'HBM3-class'.")
    capacity_bytes: Annotated[Bytes, Field(ge=1.0, le=2.0**60)]
    bandwidth_bytes_per_s: Annotated[BytesPerS, Field(ge=1.0, le=1e16)]
    stream_efficiency: Fraction = Field(0.85, description="Share of peak a streaming read reaches.")
    random_efficiency: Fraction = Field(
        0.5, description="Share of peak that small random gathers reach (lower than streaming)."
    )
    access_granularity_bytes: StrictInt = Field(
        64, ge=1, le=4096, description="A random access moves at least this many bytes."
    )
    paged_efficiency: Fraction | None = Field(
        None,
        description=(
            "Share of peak that reading a paged KV cache reaches (decode attention); default "
            "0.8 x stream_efficiency: the vLLM paper (Kwon et al., SOSP 2023, section 7.1) "
            "measured its paged-attention kernel 20-26% slower than a contiguous-KV kernel."
        ),
    )
    energy_per_byte_j: Annotated[JoulesPerByte, Field(ge=0, le=1e-6)] = 0.0


class ChipMemory(Strict):
    sram: MemoryTier | None = Field(None, description="On-chip SRAM usable by software, if any.")
    dram: MemoryTier
    row_cache: Literal["software", "hardware"] = Field(
        "software",
        description=(
            "How embedding rows are cached in SRAM. software: a scratchpad the serving stack "
            "fills with the hottest rows (the optimal static cache under Zipf popularity); "
            "hardware: an LRU cache that keeps whatever was looked up recently (hit rate from "
            "Che's approximation over the Zipf popularity). Default software: accelerators "
            "expose their SRAM as a software-managed scratchpad."
        ),
    )

    @model_validator(mode="after")
    def _cache_needs_sram(self) -> ChipMemory:
        if self.row_cache == "hardware" and self.sram is None:
            raise ValueError("row_cache: hardware needs an sram tier to cache rows in")
        return self


class Link(Strict):
    bandwidth_bytes_per_s: Annotated[BytesPerS, Field(ge=1.0, le=1e16)]
    latency_s: Annotated[Seconds, Field(ge=0, le=1.0)] = 0.0
    energy_per_byte_j: Annotated[JoulesPerByte, Field(ge=0, le=1e-6)] = 0.0


class HostLink(Link):
    """The link to the host that carries each batch's input (PCIe on an accelerator card)."""

    dma: StrictBool = Field(
        True,
        description=(
            "The chip has a DMA (copy) engine that moves a batch's input from host memory "
            "while the compute units work on the previous batch, and ranking serving "
            "double-buffers inputs to overlap the two. Default true: a PCIe accelerator "
            "masters its own transfers (GPUs' asynchronous copy engines, for one); set "
            "false for a device whose cores must do the copy themselves, or to model a "
            "server that does not overlap copies with compute."
        ),
    )


class Compute(Strict):
    matrix_flops_per_s: dict[DType, Annotated[OpsPerS, Field(ge=1.0, le=1e19)]] = Field(
        description="Peak dense matrix-engine rate per dtype.", min_length=1
    )
    vector_flops_per_s: Annotated[OpsPerS, Field(ge=1.0, le=1e19)] = Field(
        description="Peak vector-unit rate for element-wise work, pooling and softmax."
    )
    gemm_efficiency: Fraction = Field(
        0.75, description="Share of matrix peak a large GEMM reaches."
    )
    gemm_efficiency_by_dtype: dict[DType, Fraction] = Field(
        default_factory=dict,
        description="Share of matrix peak a large GEMM reaches, per dtype (else gemm_efficiency).",
    )
    attention_efficiency: Fraction = Field(
        0.55,
        description=(
            "Share of matrix peak a fused (flash-style) prefill attention kernel reaches: "
            "FlashAttention-2 forward, causal, head dim 128, reaches 50-73% of an A100's "
            "peak (Dao, 2023); 0.55 is its causal figure at 2k tokens."
        ),
    )
    matrix_units: int = Field(
        1,
        ge=1,
        le=100_000,
        description=(
            "Matrix engines that each compute one output tile at a time (SMs on a GPU); GEMM "
            "tiles run in waves over them. 1: no wave quantisation."
        ),
    )
    matrix_tile: tuple[
        Annotated[int, Field(ge=1, le=65536)], Annotated[int, Field(ge=1, le=65536)]
    ] = Field(
        (128, 128),
        description=(
            "Output tile (rows, columns) of one matrix engine's pass: 128 x 128 is the "
            "default tile of cuBLAS/CUTLASS tensor-core GEMMs and a TPU MXU's array."
        ),
    )
    memory_overlap: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5,
        description=(
            "Share of the shorter of an op's compute and memory time hidden under the longer: "
            "t = max(c, m) + (1 - overlap) x min(c, m). 1 is the ideal roofline, 0 no overlap."
        ),
    )
    vector_efficiency: Fraction = Field(0.7, description="Share of vector peak reached.")
    kernel_overhead_s: Annotated[Seconds, Field(ge=0, le=1.0)] = Field(
        5e-6, description="Fixed cost of launching one op."
    )
    clock_hz: Annotated[Hertz, Field(ge=1.0, le=1e12)]
    min_clock_hz: Annotated[Hertz, Field(ge=1.0, le=1e12)] | None = None

    @model_validator(mode="after")
    def _clock_range(self) -> Compute:
        if self.min_clock_hz is not None and self.min_clock_hz > self.clock_hz:
            raise ValueError("min_clock_hz must not exceed clock_hz")
        return self

    @model_validator(mode="after")
    def _int4_is_weight_only(self) -> Compute:
        if "int4" in self.matrix_flops_per_s:
            raise ValueError(
                "matrix_flops_per_s lists int4, but int4 weights run weight-only (dequantised "
                "to bf16/fp16 inside the GEMM): give their efficiency in "
                "gemm_efficiency_by_dtype.int4 instead"
            )
        return self


class Power(Strict):
    idle_w: Annotated[Watts, Field(ge=0, le=1e7)]
    tdp_w: Annotated[Watts, Field(gt=0, le=1e7)]
    energy_per_flop_j: dict[DType, Annotated[JoulesPerOp, Field(ge=0, le=1e-6)]] = Field(
        default_factory=dict, description="Dynamic energy of one matrix-engine operation."
    )
    vector_energy_per_flop_j: Annotated[JoulesPerOp, Field(ge=0, le=1e-6)] = 0.0

    @model_validator(mode="after")
    def _idle_below_tdp(self) -> Power:
        if self.idle_w >= self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w:g} W) must be below tdp_w ({self.tdp_w:g} W)")
        return self

    @model_validator(mode="after")
    def _int4_is_weight_only(self) -> Power:
        if "int4" in self.energy_per_flop_j:
            raise ValueError(
                "energy_per_flop_j lists int4, but int4 weights run weight-only: their GEMMs "
                "use the bf16/fp16 entry and their dequantisation vector_energy_per_flop_j"
            )
        return self


class Economics(Strict):
    unit_price_usd: Number = Field(ge=0)
    service_life_years: Number = Field(4.0, gt=0)


# Default overheads of a chip in confidential-computing mode (docs/fidelity.md,
# "Confidential computing", gives the sources). Host-link and chip-to-chip traffic
# leave the chip's trust boundary, so it is encrypted and authenticated on the way
# out and in: on an H100 in CC mode through AES-GCM bounce buffers by the copy
# engines, for PCIe and NVLink alike. "Fastrack: Fast IO for Secure ML using GPU TEEs"
# (arXiv 2410.15240) measured the CPU-GPU communication cost of H100 CC mode 12.69 to
# 33.53 times that of plain mode; the default takes the mildest end, 1 / 12.69 = 0.08 of the plain
# bandwidth. No public figure isolates the extra fixed latency per encrypted crossing
# ("small crossings pay a fixed toll", Yin and Wang, arXiv 2606.23969); 10 us is a
# planning default (a few launches of the encrypt/authenticate work), not a
# measurement. Device DRAM stays unencrypted by default: an H100's HBM is inside its
# package and so inside the trust boundary (only traffic leaving the package is
# encrypted); a CPU-like part under AMD SEV-SNP or Intel TDX encrypts DRAM and sets
# its own dram_bandwidth_factor.
CONFIDENTIAL_LINK_BANDWIDTH_FACTOR = 0.08
CONFIDENTIAL_LINK_LATENCY_S = 10e-6


class Confidential(Strict):
    """What a chip's confidential-computing (encrypted) mode costs its data paths: a pool
    with ``confidential: true`` runs the chip with these applied (:func:`confidential_chip`).
    Defaults: the module's CONFIDENTIAL_* constants, whose sources docs/fidelity.md gives."""

    host_link_bandwidth_factor: Fraction = Field(
        CONFIDENTIAL_LINK_BANDWIDTH_FACTOR,
        description=(
            "Share of the host link's bandwidth left in confidential mode (encrypted bounce "
            "buffers); default 0.08 = 1 / 12.69, the mildest CPU-GPU communication slowdown "
            "Fastrack (arXiv 2410.15240) measured on an H100 in CC mode."
        ),
    )
    host_link_latency_s: Annotated[Seconds, Field(ge=0, le=1.0)] = Field(
        CONFIDENTIAL_LINK_LATENCY_S,
        description="Latency added to each host-link transfer (a planning default, 10 us).",
    )
    chip_to_chip_bandwidth_factor: Fraction = Field(
        CONFIDENTIAL_LINK_BANDWIDTH_FACTOR,
        description=(
            "Share of the chip-to-chip link's bandwidth left in confidential mode; default "
            "as the host link's: in H100 CC mode NVLink traffic is encrypted by the same "
            "copy engines."
        ),
    )
    chip_to_chip_latency_s: Annotated[Seconds, Field(ge=0, le=1.0)] = Field(
        CONFIDENTIAL_LINK_LATENCY_S,
        description="Latency added to each chip-to-chip transfer step (default as the host link)",
    )
    dram_bandwidth_factor: Fraction = Field(
        1.0,
        description=(
            "Share of device DRAM bandwidth left in confidential mode; default 1: on-package "
            "HBM is inside the trust boundary. Set it for parts whose DRAM is encrypted."
        ),
    )


class Chip(Strict):
    """A chip profile. Shipped profiles are hypothetical and say so."""

    name: Name
    description: str = ""
    hypothetical: StrictBool = Field(
        True, description="True for any profile not measured on hardware."
    )
    compute: Compute
    memory: ChipMemory
    host_link: HostLink
    chip_to_chip: Link | None = None
    power: Power
    economics: Economics | None = None
    confidential: Confidential | None = Field(
        None,
        description=(
            "Overheads of the chip's confidential-computing mode, used by pools with "
            "confidential: true (default: the documented defaults of each field)."
        ),
    )

    @model_serializer(mode="wrap")
    def _without_confidential(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``confidential`` appears in a dump only where the profile gives it."""
        data: dict[str, Any] = handler(self)
        if data.get("confidential") is None:
            data.pop("confidential", None)
        return data

    @model_validator(mode="after")
    def _energy_dtypes(self) -> Chip:
        missing = set(self.compute.matrix_flops_per_s) - set(self.power.energy_per_flop_j)
        if self.power.energy_per_flop_j and missing:
            raise ValueError(
                "power.energy_per_flop_j has no entry for dtype(s) "
                + ", ".join(sorted(missing))
                + " that compute.matrix_flops_per_s lists"
            )
        return self


def confidential_chip(chip: Chip) -> Chip:
    """``chip`` as it runs in confidential mode: host-link and chip-to-chip bandwidth times
    their factors and latency plus the added latency, device DRAM bandwidth times its
    factor (the chip's ``confidential`` block, else its defaults). Every cost model reads
    its rates from the chip, so a confidential pool's ranking input copies, tensor-parallel
    all-reduces and DRAM streams all pay the overhead, and ``accelsim explain
    --confidential`` shows the same numbers."""
    cc = chip.confidential or Confidential()
    host = chip.host_link
    update: dict[str, Any] = {
        "host_link": host.model_copy(
            update={
                "bandwidth_bytes_per_s": host.bandwidth_bytes_per_s * cc.host_link_bandwidth_factor,
                "latency_s": host.latency_s + cc.host_link_latency_s,
            }
        ),
        "memory": chip.memory.model_copy(
            update={
                "dram": chip.memory.dram.model_copy(
                    update={
                        "bandwidth_bytes_per_s": chip.memory.dram.bandwidth_bytes_per_s
                        * cc.dram_bandwidth_factor
                    }
                )
            }
        ),
    }
    c2c = chip.chip_to_chip
    if c2c is not None:
        update["chip_to_chip"] = c2c.model_copy(
            update={
                "bandwidth_bytes_per_s": c2c.bandwidth_bytes_per_s
                * cc.chip_to_chip_bandwidth_factor,
                "latency_s": c2c.latency_s + cc.chip_to_chip_latency_s,
            }
        )
    return chip.model_copy(update=update)


# ------------------------------------------------------------------ ranking models


class EmbeddingTable(Strict):
    name: Name
    count: StrictInt = Field(1, ge=1, le=100_000, description="Identical tables in this group.")
    rows: StrictInt = Field(ge=1, le=10**13)
    dim: StrictInt = Field(ge=1, le=65_536)
    pooling_factor: Number = Field(gt=0, le=100_000, description="Mean lookups per item per table.")
    dtype: ElementDType = "fp16"
    zipf_alpha: Number = Field(
        1.0, ge=0, le=5, description="Popularity skew of rows; 0 is uniform."
    )
    hit_rate: Fraction | None = Field(
        None, description="Fixed on-chip cache hit rate; by default derived from zipf_alpha."
    )


class DotInteraction(Strict):
    kind: Literal["dot"] = "dot"


class CrossInteraction(Strict):
    """DCN-v2 style cross layers over the concatenated features."""

    kind: Literal["cross"] = "cross"
    layers: StrictInt = Field(ge=1, le=64)
    rank: StrictInt | None = Field(None, ge=1, description="Low-rank factorisation width, if any.")


class RankingModel(Strict):
    """A DLRM-like ranking model: embeddings, bottom MLP, interaction, top MLP."""

    kind: Literal["ranking"] = "ranking"
    name: Name
    description: str = ""
    source: str = Field("", description="Where the shapes come from.")
    dtype: ElementDType = Field("bf16", description="Dtype of MLP weights and arithmetic.")
    dense_features: StrictInt = Field(ge=0, le=1_000_000)
    id_dtype: Literal["int32", "int64"] = Field(
        "int64",
        description=(
            "Integer type of the embedding lookup ids each item sends over the host link "
            "(the MLPerf DLRM-v2 reference reads int32 ids; int64 is TorchRec's default)."
        ),
    )
    bottom_mlp: list[Annotated[StrictInt, Field(ge=1, le=1_000_000)]] = Field(min_length=1)
    embedding_tables: list[EmbeddingTable] = Field(min_length=1)
    interaction: Annotated[DotInteraction | CrossInteraction, Field(discriminator="kind")]
    top_mlp: list[Annotated[StrictInt, Field(ge=1, le=1_000_000)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _dot_dims(self) -> RankingModel:
        if self.interaction.kind == "dot":
            dims = {t.dim for t in self.embedding_tables} | {self.bottom_mlp[-1]}
            if len(dims) > 1:
                raise ValueError(
                    "dot interaction needs every embedding dim and the last bottom_mlp width "
                    f"to be equal, got {sorted(dims)}"
                )
        return self


class MoE(Strict):
    """Mixture of experts replacing each layer's FFN."""

    experts: StrictInt = Field(ge=2, le=4096)
    active_experts: StrictInt = Field(ge=1, le=4096, description="Experts each token is routed to.")
    shared_experts: StrictInt = Field(
        0, ge=0, le=64, description="Experts every token always uses."
    )
    expert_ffn_dim: StrictInt | None = Field(
        None, ge=1, description="Default: the model's ffn_dim."
    )

    @model_validator(mode="after")
    def _active_le_experts(self) -> MoE:
        if self.active_experts > self.experts:
            raise ValueError(
                f"active_experts ({self.active_experts}) exceeds experts ({self.experts})"
            )
        return self


class VisionEncoder(Strict):
    """An image encoder whose output tokens join the prompt of a multimodal request."""

    params: Number = Field(gt=0, le=1e12)
    tokens_per_image: StrictInt = Field(ge=1, le=100_000)


class LLMModel(Strict):
    """A decoder-only transformer: dense or mixture of experts, with grouped-query attention."""

    kind: Literal["llm"] = "llm"
    name: Name
    description: str = ""
    source: str = Field("", description="Where the shapes come from.")
    layers: StrictInt = Field(ge=1, le=1000)
    d_model: StrictInt = Field(ge=1, le=1_000_000)
    heads: StrictInt = Field(ge=1, le=10_000)
    kv_heads: StrictInt = Field(
        ge=1, le=10_000, description="Key/value heads (GQA); = heads for MHA."
    )
    head_dim: StrictInt | None = Field(
        None, ge=1, le=100_000, description="Default: d_model / heads."
    )
    ffn_dim: StrictInt = Field(ge=1, le=10_000_000)
    gated_ffn: StrictBool = Field(True, description="SwiGLU-style FFN with three matrices.")
    vocab: StrictInt = Field(ge=1, le=10_000_000)
    tied_embeddings: StrictBool = False
    weight_dtype: DType = Field(
        "bf16",
        description=(
            "Dtype of the decoder layers' weights. int4: weight-only (W4A16), one scale per "
            "group of weights (weight_group_size, weight_group_bytes), dequantised inside the "
            "GEMM; fp4: MXFP4 (W4A4), on chips whose matrix_flops_per_s lists fp4. Embeddings "
            "and LM head of a 4-bit model stay in bf16."
        ),
    )
    weight_group_size: StrictInt | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description=(
            "int4 only: weights that share one group's scale (and zero point), along a "
            f"weight matrix's input dimension (default {INT4_GROUP_SIZE_DEFAULT}, as AWQ, "
            "GPTQ and Marlin; gpt-fast: 32)."
        ),
    )
    weight_group_bytes: (
        Annotated[float, Field(gt=0, le=1024), BeforeValidator(_not_bool)] | None
    ) = Field(
        None,
        description=(
            "int4 only: bytes each group stores beside its packed weights, its scale plus "
            f"any zero point (default {INT4_GROUP_BYTES_DEFAULT}: one fp16 scale; gpt-fast: 4, "
            "a bf16 scale and a bf16 zero point)."
        ),
    )
    kv_dtype: ElementDType = "bf16"
    moe: MoE | None = None
    vision: VisionEncoder | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_groups(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("weight_dtype") == "int4":
            defaults = {
                "weight_group_size": INT4_GROUP_SIZE_DEFAULT,
                "weight_group_bytes": INT4_GROUP_BYTES_DEFAULT,
            }
            return {**data, **{k: v for k, v in defaults.items() if data.get(k) is None}}
        return data

    @field_validator("weight_group_size", "weight_group_bytes")
    @classmethod
    def _groups_need_int4(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _only_where(
            value,
            info,
            "weight_dtype",
            "int4",
            "weight_group",
            "only int4 weights are stored in groups (weight_dtype is {weight_dtype})",
        )

    @model_serializer(mode="wrap")
    def _without_groups(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The group layout appears in a dump only for int4 weights, which have one."""
        return _without_none(handler(self), ("weight_group_size", "weight_group_bytes"))

    @model_validator(mode="after")
    def _heads(self) -> LLMModel:
        if self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        if self.head_dim is None and self.d_model % self.heads:
            raise ValueError("d_model must be a multiple of heads unless head_dim is given")
        return self


def _model_kind(value: object) -> str:
    """The ``kind`` of a model or workload; files without one are ranking."""
    if isinstance(value, dict):
        return str(value.get("kind", "ranking"))
    return str(getattr(value, "kind", "ranking"))


AnyModel = Annotated[
    Annotated[RankingModel, Tag("ranking")] | Annotated[LLMModel, Tag("llm")],
    Discriminator(_model_kind),
]


# ------------------------------------------------------------------------ scenarios


class PoissonTraffic(Strict):
    kind: Literal["poisson"] = "poisson"
    rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e9)]


class TraceTraffic(Strict):
    """Replay of a CSV with a ``timestamp_s`` column and an optional ``items`` column."""

    kind: Literal["trace"] = "trace"
    path: str = Field(min_length=1)
    time_scale: Number = Field(1.0, gt=0, description="Multiply trace times by this factor.")


class BurstyTraffic(Strict):
    """A two-state Markov-modulated Poisson process: calm and burst periods of exponential
    length, each with its own Poisson rate."""

    kind: Literal["bursty"] = "bursty"
    rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e9)] = Field(
        description="Arrival rate in calm periods."
    )
    burst_rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e9)]
    calm_s: Annotated[Seconds, Field(gt=0)] = Field(description="Mean length of a calm period.")
    burst_s: Annotated[Seconds, Field(gt=0)] = Field(description="Mean length of a burst.")

    @property
    def mean_rate_per_s(self) -> float:
        cycle = self.calm_s + self.burst_s
        return (self.rate_per_s * self.calm_s + self.burst_rate_per_s * self.burst_s) / cycle


class DiurnalTraffic(Strict):
    """Poisson arrivals whose rate follows a sine over the day:
    rate(t) = rate_per_s x (1 + amplitude x sin(2 pi (t + phase_s) / period_s))."""

    kind: Literal["diurnal"] = "diurnal"
    rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e9)] = Field(description="Mean rate.")
    amplitude: Number = Field(0.5, ge=0, le=1)
    period_s: Annotated[Seconds, Field(gt=0)] = 86400.0
    phase_s: Annotated[Seconds, Field(ge=0)] = 0.0


class OfflineTraffic(Strict):
    """MLPerf LoadGen's Offline scenario: every request arrives at time 0; the result
    reports the throughput the fleet reaches on them (``loadgen.offline_throughput_per_s``)."""

    kind: Literal["offline"] = "offline"
    requests: StrictInt = Field(ge=1, le=10_000_000, description="Requests sent at time 0.")


class ClosedLoopTraffic(Strict):
    """A closed loop of ``users``: each sends a request at time 0, waits for its response
    (or its rejection), thinks for ``think_s`` (fixed, or exponential with that mean, drawn
    from the workload's seeded stream) and sends the next, until the end of the run."""

    kind: Literal["closed_loop"] = "closed_loop"
    users: StrictInt = Field(ge=1, le=1_000_000, description="Concurrent users.")
    think_s: Annotated[Seconds, Field(ge=0, le=10**6)] = Field(
        0.0, description="Think time between a response and the user's next request."
    )
    think: Literal["fixed", "exponential"] = "fixed"


Traffic = Annotated[
    PoissonTraffic
    | BurstyTraffic
    | DiurnalTraffic
    | TraceTraffic
    | OfflineTraffic
    | ClosedLoopTraffic,
    Field(discriminator="kind"),
]
AnyTraffic = (
    PoissonTraffic
    | BurstyTraffic
    | DiurnalTraffic
    | TraceTraffic
    | OfflineTraffic
    | ClosedLoopTraffic
)


class FixedSize(Strict):
    kind: Literal["fixed"] = "fixed"
    value: StrictInt = Field(ge=1, le=10**7)


class UniformSize(Strict):
    kind: Literal["uniform"] = "uniform"
    low: StrictInt = Field(ge=1, le=10**7)
    high: StrictInt = Field(ge=1, le=10**7)

    @model_validator(mode="after")
    def _ordered(self) -> UniformSize:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class LognormalSize(Strict):
    kind: Literal["lognormal"] = "lognormal"
    median: Number = Field(gt=0, le=10**7)
    sigma: Number = Field(ge=0, le=5)
    max: StrictInt = Field(10**6, ge=1, le=10**7, description="Samples are clipped to [1, max].")


class ExponentialSize(Strict):
    """Exponentially distributed sizes, rounded to whole items: through a cost linear in
    items this gives exponential service times (the M/M/c case)."""

    kind: Literal["exponential"] = "exponential"
    mean: Number = Field(gt=0, le=10**7)
    max: StrictInt = Field(10**7, ge=1, le=10**8, description="Samples are clipped to [1, max].")


class EmpiricalSize(Strict):
    """Inverse-CDF sampling from (cumulative probability, items) points, linearly interpolated."""

    kind: Literal["empirical"] = "empirical"
    quantiles: list[tuple[Number, StrictInt]] = Field(min_length=2)

    @model_validator(mode="after")
    def _monotone(self) -> EmpiricalSize:
        probs = [p for p, _ in self.quantiles]
        values = [v for _, v in self.quantiles]
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("quantile probabilities must be numbers from 0 to 1")
        if any(v > 10**8 for v in values):
            raise ValueError("quantile values must be at most 100,000,000 items")
        if probs[0] != 0.0 or probs[-1] != 1.0:
            raise ValueError("quantiles must start at probability 0 and end at 1")
        if any(b <= a for a, b in itertools.pairwise(probs)):
            raise ValueError("quantile probabilities must increase")
        if any(b < a for a, b in itertools.pairwise(values)) or values[0] < 1:
            raise ValueError("quantile values must be >= 1 and non-decreasing")
        return self


SizeDistribution = Annotated[
    FixedSize | UniformSize | LognormalSize | ExponentialSize | EmpiricalSize,
    Field(discriminator="kind"),
]


class LatencyTarget(Strict):
    latency_s: Annotated[Seconds, Field(gt=0)]
    percentile: Number = Field(99.0, gt=0, le=100)


class RankingWorkload(Strict):
    kind: Literal["ranking"] = "ranking"
    model: str = Field(min_length=1, description="A shipped model name or a path to a YAML file.")
    traffic: Traffic
    items_per_query: SizeDistribution
    sla: LatencyTarget | None = None


class ModeMix(Strict):
    """Relative weights of the request modes (normalised to sum to 1)."""

    instant: Number = Field(1.0, ge=0)
    thinking: Number = Field(0.0, ge=0)
    contemplating: Number = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _some(self) -> ModeMix:
        if self.instant + self.thinking + self.contemplating <= 0:
            raise ValueError("at least one mode needs a positive weight")
        return self


class Thinking(Strict):
    """A long reasoning output generated before the answer."""

    reasoning_tokens: SizeDistribution


class Contemplating(Strict):
    """Fan-out: ``branches`` sub-requests run in parallel, then one aggregation request
    reads the prompt and every branch's output and writes the answer."""

    branches: StrictInt = Field(ge=1, le=1024)
    branch_output_tokens: SizeDistribution
    aggregation_output_tokens: SizeDistribution
    branch_pool: Name | None = Field(
        None,
        description=(
            "The pool the branches run on (one of the pools that serve the workload; "
            "default: any of them)."
        ),
    )
    aggregation_pool: Name | None = Field(
        None,
        description=(
            "The pool the aggregations run on (one of the pools that serve the workload; "
            "default: any of them)."
        ),
    )

    @model_serializer(mode="wrap")
    def _without_unset_pools(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``branch_pool`` and ``aggregation_pool`` appear in a result's config only when set."""
        return _without_none(handler(self), ("branch_pool", "aggregation_pool"))


class Multimodal(Strict):
    probability: Number = Field(ge=0, le=1, description="Share of requests that carry images.")
    images: StrictInt = Field(1, ge=1, le=1000, description="Images per multimodal request.")


class TokenLatencyTarget(Strict):
    ttft_s: Annotated[Seconds, Field(gt=0)]
    tpot_s: Annotated[Seconds, Field(gt=0)]
    percentile: Number = Field(99.0, gt=0, le=100)


class SLOClass(Strict):
    """One service class of an LLM workload: its share of the requests, its admission
    priority (0 is served first) and its own latency target."""

    name: Name
    share: Fraction = Field(description="Share of the workload's requests in this class.")
    priority: StrictInt = Field(
        ge=0, le=1000, description="Admission priority: a lower number is admitted first."
    )
    sla: TokenLatencyTarget | None = Field(
        None, description="This class's TTFT/TPOT target (default: the workload's sla)."
    )


class SLOClasses(Strict):
    """Priority classes of an LLM workload's requests (each request draws its class)."""

    classes: list[SLOClass] = Field(min_length=1, max_length=64)
    preempt_lower: StrictBool = Field(
        False,
        description=(
            "When a request cannot be admitted for lack of KV cache or batch slots, evict "
            "the newest running requests of lower classes (to be recomputed) to make room."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> SLOClasses:
        names = [c.name for c in self.classes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"class names must be unique ({', '.join(repeated)} repeated)")
        total = math.fsum(c.share for c in self.classes)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"class shares sum to {total:g}; they must sum to 1")
        return self


class Speculative(Strict):
    """Speculative decoding: a cheap proposer guesses ``tokens`` tokens per sequence, the
    target verifies them in one step, and each is accepted with ``acceptance_rate`` until
    the first rejection (the verify step adds one token of its own). The proposer is a
    draft model on the same replica (``draft_model``) or multi-token-prediction modules
    on the target (``mtp_heads``)."""

    draft_model: str | None = Field(
        None, min_length=1, description="A shipped model name or a path to a YAML file."
    )
    mtp_heads: StrictInt | None = Field(
        None,
        ge=1,
        le=16,
        description=(
            "Multi-token-prediction modules on the target (one transformer layer each, "
            "sharing its embedding and LM head, as DeepSeek-V3's MTP)."
        ),
    )
    tokens: StrictInt = Field(ge=1, le=16, description="Tokens proposed per step (k).")
    acceptance_rate: Number = Field(
        ge=0, le=1, description="Probability that each proposed token is accepted (a)."
    )

    @model_validator(mode="after")
    def _one_proposer(self) -> Speculative:
        if (self.draft_model is None) == (self.mtp_heads is None):
            raise ValueError("set exactly one of draft_model and mtp_heads")
        return self


class SystemPrompt(Strict):
    """A system prompt of ``tokens`` tokens put before the prompt of a share of the
    requests (of a session's first turn): ``variants`` distinct prompts of that length,
    each as likely as the others."""

    tokens: StrictInt = Field(ge=1, le=10**7)
    share: Number = Field(1.0, ge=0, le=1, description="Share of requests that carry one.")
    variants: StrictInt = Field(1, ge=1, le=10**6, description="Distinct system prompts.")


class Sessions(Strict):
    """Multi-turn sessions: each arrival of the traffic starts a session of ``turns``
    turns; turn n+1's prompt is turn n's prompt and answer plus ``new_tokens`` new user
    tokens, and it arrives ``think_time_s`` after turn n finished."""

    turns: SizeDistribution
    think_time_s: Annotated[Seconds, Field(ge=0, le=10**6)]
    new_tokens: SizeDistribution


class KVLink(Strict):
    """The link a prefill replica sends KV caches to the decode pool over (one per prefill
    replica; its transfers go one after another)."""

    bandwidth_bytes_per_s: Annotated[BytesPerS, Field(gt=0)]
    latency_s: Annotated[Seconds, Field(ge=0, le=10.0)] = 0.0


class Disaggregation(Strict):
    """Disaggregated serving: prompts are prefilled on one pool, answers decoded on another,
    and each sequence's KV cache moves between them over ``kv_link``."""

    prefill_pool: Name = Field(description="The pool that prefills prompts.")
    decode_pool: Name = Field(description="The pool that decodes answers.")
    kv_link: KVLink
    layerwise: StrictBool = Field(
        False,
        description=(
            "Send the KV cache layer by layer while the prefill runs (the decode replica is "
            "chosen and its KV reserved when the prefill starts), so only the last layer's "
            "transfer follows the prefill; otherwise the whole cache moves once it is done."
        ),
    )


class LLMWorkload(Strict):
    kind: Literal["llm"] = "llm"
    model: str = Field(min_length=1, description="A shipped model name or a path to a YAML file.")
    traffic: Traffic
    prompt_tokens: SizeDistribution
    output_tokens: SizeDistribution = Field(description="Answer length of every mode.")
    modes: ModeMix = ModeMix()
    thinking: Thinking | None = None
    contemplating: Contemplating | None = None
    multimodal: Multimodal | None = None
    sla: TokenLatencyTarget | None = None
    slo: SLOClasses | None = Field(
        None, description="Priority classes with their own targets (priority admission)."
    )
    speculative: Speculative | None = None
    system_prompt: SystemPrompt | None = None
    sessions: Sessions | None = None
    disaggregation: Disaggregation | None = Field(
        None, description="Prefill on one pool and decode on another (default: one pool does both)."
    )

    @model_validator(mode="after")
    def _mode_settings(self) -> LLMWorkload:
        if self.modes.thinking > 0 and self.thinking is None:
            raise ValueError("modes.thinking > 0 needs a `thinking:` block")
        if self.modes.contemplating > 0 and self.contemplating is None:
            raise ValueError("modes.contemplating > 0 needs a `contemplating:` block")
        if self.sessions is not None and self.traffic.kind == "trace":
            raise ValueError("sessions need generated traffic (a trace gives every request)")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``slo``, ``speculative``, ``system_prompt``, ``sessions`` and ``disaggregation``
        appear in a result's config only when they are set."""
        return _without_none(
            handler(self), ("slo", "speculative", "system_prompt", "sessions", "disaggregation")
        )


Workload = Annotated[
    Annotated[RankingWorkload, Tag("ranking")] | Annotated[LLMWorkload, Tag("llm")],
    Discriminator(_model_kind),
]


class Batching(Strict):
    """Dynamic batching: a batch closes when it holds ``max_batch_items`` items or
    ``max_batch_queries`` queries, or when its oldest query has waited ``max_wait_s``.
    ``max_batch_queries: 1`` turns batching off."""

    max_batch_items: StrictInt = Field(256, ge=1, le=10**8)
    max_batch_queries: StrictInt | None = Field(None, ge=1, le=10**7)
    max_wait_s: Annotated[Seconds, Field(ge=0, le=3600)] = 1e-3


class PrefixCache(Strict):
    """Automatic prefix caching: the KV of prompts (and of a session's answers) stays in
    a block-level LRU cache inside the replica's KV capacity, and a prompt whose leading
    blocks are cached prefills only the rest."""

    block_tokens: StrictInt = Field(16, ge=1, le=65536, description="Tokens per KV block.")


class ContinuousBatching(Strict):
    """Iteration-level batching of an LLM replica."""

    max_batch_sequences: StrictInt = Field(256, ge=1, le=100_000)
    max_batch_tokens: StrictInt = Field(
        8192, ge=1, le=10_000_000, description="Token budget of one iteration (prefill + decode)."
    )
    chunked_prefill: StrictBool = Field(
        True, description="Split long prompts across iterations to fit the token budget."
    )
    kv_policy: Literal["reserve", "preempt"] = Field(
        "reserve",
        description=(
            "reserve: admit a request only when KV for its whole prompt and output fits, "
            "so nothing is ever evicted; preempt: admit when the prompt fits and, when KV "
            "runs out, evict the newest request and recompute it later."
        ),
    )
    kv_memory_fraction: Fraction = Field(
        0.9, description="Share of DRAM usable for weights and KV cache."
    )
    iteration_overhead_s: Annotated[Seconds, Field(ge=0, le=10.0)] = Field(
        0.0,
        description="Host time per iteration (scheduling, batch assembly, sampling bookkeeping).",
    )
    graph_decode: bool = Field(
        False,
        description=(
            "Decode-only iterations replay a captured graph (CUDA graphs): one launch per "
            "iteration instead of one per kernel."
        ),
    )
    prefix_cache: PrefixCache | None = Field(
        None, description="Keep prefixes' KV blocks in an LRU cache (off when absent)."
    )

    @model_serializer(mode="wrap")
    def _without_prefix_cache(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``prefix_cache`` appears in a result's config only when set."""
        data: dict[str, Any] = handler(self)
        if data.get("prefix_cache") is None:
            data.pop("prefix_cache", None)
        return data


# The busiest expert-parallel chip's share of routed tokens over the mean. He et al.,
# "Capacity-Aware Inference: Mitigating the Straggler Effect in Mixture of Experts"
# (arXiv 2503.05066, ICLR 2026), measure Mixtral-8x7B-Instruct's MoE layers waiting on
# their most loaded experts (one expert takes over 7x the mean tokens) and a 1.85x
# end-to-end speedup once that load is bounded: 1.85 is the step time the straggler
# costs there, taken as the busiest chip's expert work over the mean.
EXPERT_IMBALANCE = 1.85


class Parallelism(Strict):
    """How an LLM replica splits its model beyond tensor parallelism (``chips_per_replica``
    chips per stage): ``pipeline`` stages of consecutive layers fed ``micro_batches``
    micro-batches, and ``expert`` data-parallel attention groups whose chips shard a mixture
    of experts' routed experts. A replica is chips_per_replica x pipeline x expert chips."""

    pipeline: StrictInt = Field(
        1, ge=1, le=256, description="Pipeline stages; must divide the model's layers."
    )
    micro_batches: StrictInt | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "Micro-batches an iteration's batch is split into for the pipeline "
            "(default: pipeline); only with pipeline > 1."
        ),
    )
    expert: StrictInt = Field(
        1,
        ge=1,
        le=4096,
        description=(
            "Expert-parallel degree: attention runs data-parallel in this many groups and "
            "the routed experts are sharded over them; must divide the model's experts."
        ),
    )
    expert_imbalance: Annotated[float, Field(ge=1.0, le=64.0)] = Field(
        EXPERT_IMBALANCE,
        description=(
            "Busiest expert-parallel chip's routed tokens over the mean (default 1.85, "
            "from He et al., arXiv 2503.05066, on Mixtral-8x7B); only with expert > 1."
        ),
    )

    @model_validator(mode="after")
    def _knobs_need_their_degree(self) -> Parallelism:
        if self.micro_batches is not None and self.pipeline == 1:
            raise ValueError("micro_batches needs pipeline > 1 (they feed pipeline stages)")
        if "expert_imbalance" in self.model_fields_set and self.expert == 1:
            raise ValueError("expert_imbalance needs expert > 1 (it loads expert-parallel chips)")
        return self

    @property
    def micro_batch_count(self) -> int:
        return self.pipeline if self.micro_batches is None else self.micro_batches


class Pool(Strict):
    chip: str = Field(min_length=1, description="A shipped chip name or a path to a YAML file.")
    count: StrictInt = Field(ge=1, le=100_000, description="Chips in the pool.")
    chips_per_replica: StrictInt = Field(
        1, ge=1, le=1024, description="Tensor-parallel degree of an LLM replica."
    )
    serves: list[Name] = Field(min_length=1)
    batching: Batching = Field(Batching(), description="Dynamic batching of ranking queries.")
    continuous_batching: ContinuousBatching = ContinuousBatching()
    power_cap_w: Annotated[Watts, Field(gt=0)] | None = Field(
        None, description="Per-chip power cap (default: the chip's TDP); DVFS meets it."
    )
    clock_lock: Fraction | None = Field(
        None, description="Run every batch at this fraction of the nominal clock (a what-if)."
    )
    confidential: StrictBool = Field(
        False,
        description=(
            "Run the pool's chips in confidential-computing (encrypted) mode: host-link and "
            "chip-to-chip traffic, and device DRAM if the chip says so, pay the overheads of "
            "the chip's confidential block (or its documented defaults)."
        ),
    )

    parallelism: Parallelism | None = Field(
        None,
        description=(
            "LLM: pipeline and expert parallelism of a replica beyond its tensor-parallel "
            "chips_per_replica (a replica is then chips_per_replica x pipeline x expert chips)."
        ),
    )

    @model_serializer(mode="wrap")
    def _without_plain_mode(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``confidential`` appears in a result's config only on a confidential pool, and
        ``parallelism`` only on a pool that sets it."""
        data: dict[str, Any] = handler(self)
        if not data.get("confidential"):
            data.pop("confidential", None)
        if data.get("parallelism") is None:
            data.pop("parallelism", None)
        return data

    @property
    def replica_chips(self) -> int:
        """Chips of one replica: tensor x pipeline x expert parallel."""
        p = self.parallelism
        return self.chips_per_replica * (1 if p is None else p.pipeline * p.expert)


# Routing policies by name. The engine has one class per name (engine/routing.py): a new
# policy is one line here and one class there.
ROUTER_POLICIES: dict[str, str] = {
    "round_robin": "each chip its own queue, taken in turn",
    "join_shortest_queue": "each chip its own queue, the one with the fewest queries per chip",
    "least_work": (
        "each chip its own queue, the one whose estimated backlog in seconds plus the "
        "query's own work on that chip is smallest (favours faster chips in a mixed fleet)"
    ),
    "shared_queue": "each pool one queue that every idle chip of the pool takes work from",
    "power_of_d": (
        "each chip its own queue, the one with the fewest queries per chip of `d` chips "
        "drawn at random (for very large pools: a decision costs O(d), not O(chips))"
    ),
    "power_aware": (
        "each chip its own queue; of the chips with SLA headroom (backlog plus the query's "
        "own work within `sla_share` of the workload's SLA latency), one of the pool whose "
        "dynamic energy per item is lowest, the least loaded there; least_work when none "
        "has headroom (ranking workloads with an SLA only)"
    ),
    "session_affinity": (
        "each LLM replica its own queue; a session's turns go to the replica that took its "
        "latest turn (where its history's KV may be cached) unless that replica holds more "
        "than 4 requests above the shortest queue; else, and outside sessions, "
        "join_shortest_queue (LLM workloads only)"
    ),
}
POWER_OF_D_DEFAULT = 2
SLA_SHARE_DEFAULT = 0.5
# Router policies that serve only some workload kinds (the rest serve every kind).
ROUTER_KINDS: dict[str, tuple[str, ...]] = {
    "power_aware": ("ranking",),
    "session_affinity": ("llm",),
}
ROUTER_NEEDS_SLA = ("power_aware",)  # policies that measure headroom against the SLA


def _policy_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(ROUTER_POLICIES)


class Router(Strict):
    policy: str = Field(
        "join_shortest_queue",
        description="; ".join(f"{name}: {what}" for name, what in ROUTER_POLICIES.items()) + ".",
        json_schema_extra=_policy_enum,
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in ROUTER_POLICIES:
            *head, last = (repr(name) for name in ROUTER_POLICIES)
            expected = f"{', '.join(head)} or {last}" if head else last
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": expected}
            )
        return value

    d: StrictInt | None = Field(
        None,
        ge=1,
        le=1024,
        description=(
            f"power_of_d only: chips drawn per decision (default {POWER_OF_D_DEFAULT}); "
            "a workload with fewer units than d compares them all."
        ),
    )

    sla_share: Fraction | None = Field(
        None,
        description=(
            f"power_aware only: the share of a workload's SLA latency that a chip's backlog "
            f"plus the query's own work may fill for the chip to count as having headroom "
            f"(default {SLA_SHARE_DEFAULT})."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_d(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("policy") == "power_of_d" and "d" not in data:
            return {**data, "d": POWER_OF_D_DEFAULT}
        if (
            isinstance(data, dict)
            and data.get("policy") == "power_aware"
            and "sla_share" not in data
        ):
            return {**data, "sla_share": SLA_SHARE_DEFAULT}
        return data

    @field_validator("d")
    @classmethod
    def _d_needs_power_of_d(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _only_where(
            value,
            info,
            "policy",
            "power_of_d",
            "router_d",
            "only power_of_d draws d units (policy is {policy})",
        )

    @field_validator("sla_share")
    @classmethod
    def _share_needs_power_aware(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _only_where(
            value,
            info,
            "policy",
            "power_aware",
            "router_sla_share",
            "only power_aware reads sla_share (policy is {policy})",
        )

    @model_serializer(mode="wrap")
    def _without_d(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``d`` and ``sla_share`` appear in a result's config only where the policy
        reads them."""
        return _without_none(handler(self), ("d", "sla_share"))

    @property
    def samples(self) -> int:
        """Units a power_of_d decision compares."""
        return self.d if self.d is not None else POWER_OF_D_DEFAULT


SHIFT_INTERVAL_DEFAULT_S = 1.0


class Facility(Strict):
    """The building around the fleet: cooling overhead, a power budget, electricity price."""

    pue: Number = Field(
        1.0, ge=1.0, le=5.0, description="Power usage effectiveness: facility / IT power."
    )
    power_budget_w: Annotated[Watts, Field(gt=0)] | None = Field(
        None, description="Facility power budget (including the PUE overhead)."
    )
    budget_policy: Literal["cap", "check", "shift"] = Field(
        "check",
        description=(
            "cap: lower every chip's power cap in proportion so the fleet's TDP fits the "
            "budget; check: leave chips alone and report whether the peak draw fits; "
            "shift: every shift_interval_s, split the budget's room above the fleet's idle "
            "power between the pools in proportion to each pool's recent demand (busy share "
            "x chips x (cap - idle)), so caps move to the loaded pools."
        ),
    )
    shift_interval_s: Annotated[Seconds, Field(gt=0, le=86_400)] | None = Field(
        None,
        description=(
            f"shift only: how often the pools' caps are reassigned "
            f"(default {SHIFT_INTERVAL_DEFAULT_S:g} s)."
        ),
    )
    electricity_usd_per_kwh: Number = Field(
        0.08, ge=0, le=10, description="Price of facility energy (default: 0.08 USD/kWh)."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_interval(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("budget_policy") == "shift"
            and "shift_interval_s" not in data
        ):
            return {**data, "shift_interval_s": SHIFT_INTERVAL_DEFAULT_S}
        return data

    @model_validator(mode="after")
    def _shift_settings(self) -> Facility:
        if self.shift_interval_s is not None and self.budget_policy != "shift":
            raise ValueError(
                f"shift_interval_s is read only by budget_policy: shift "
                f"(budget_policy is {self.budget_policy})"
            )
        if self.budget_policy == "shift" and self.power_budget_w is None:
            raise ValueError("budget_policy: shift needs a power_budget_w to share out")
        return self

    @model_serializer(mode="wrap")
    def _without_interval(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``shift_interval_s`` appears in a result's config only under the shift policy."""
        data: dict[str, Any] = handler(self)
        if data.get("shift_interval_s") is None:
            data.pop("shift_interval_s", None)
        return data


class Simulation(Strict):
    duration_s: Annotated[Seconds, Field(ge=1e-6, le=10**7)] = 60.0
    warmup_s: Annotated[Seconds, Field(ge=0, le=10**7)] = 5.0
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)


class Scenario(Strict):
    name: Name
    description: str = ""
    simulation: Simulation = Simulation()
    workloads: dict[Name, Workload] = Field(min_length=1)
    pools: dict[Name, Pool] = Field(min_length=1)
    router: Router = Router()
    facility: Facility = Facility()


@dataclass(frozen=True)
class PoolRules:
    """What a pool that serves workloads of one kind may hold and set."""

    label: str  # the kind as prose: "ranking", "LLM"
    sections: tuple[str, ...]  # pool fields that only this kind reads
    one_workload: str | None = None  # the reason, when a pool serves exactly one workload
    multi_chip_replicas: bool = False  # chips_per_replica may exceed 1


# Per workload kind (a new kind adds one line).
POOL_RULES: dict[str, PoolRules] = {
    "ranking": PoolRules("ranking", ("batching",)),
    "llm": PoolRules(
        "LLM",
        ("continuous_batching",),
        one_workload="an LLM pool serves exactly one LLM workload",
        multi_chip_replicas=True,
    ),
}


def _pool_kind_problems(
    pool_name: str, pool: Pool, kinds: set[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """A pool's fields against the rules of the kinds it serves: one workload where the kind
    says so, one-chip replicas unless it allows more, no section meant for another kind."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    rules = [POOL_RULES[kind] for kind in sorted(kinds)]
    for rule in rules:
        if rule.one_workload and len(pool.serves) > 1:
            problems.append((("pools", pool_name, "serves"), rule.one_workload))
    if rules and pool.chips_per_replica != 1 and not any(r.multi_chip_replicas for r in rules):
        parallel = " or ".join(r.label for r in POOL_RULES.values() if r.multi_chip_replicas)
        problems.append(
            (
                ("pools", pool_name, "chips_per_replica"),
                f"{rules[0].label} replicas are one chip each "
                f"(tensor parallelism is for {parallel} pools)",
            )
        )
    if rules and pool.parallelism is not None and not any(r.multi_chip_replicas for r in rules):
        problems.append(
            (
                ("pools", pool_name, "parallelism"),
                f"{rules[0].label} replicas are one chip each (parallelism is for LLM pools)",
            )
        )
    if len(rules) == 1:
        own = rules[0]
        for kind, other in POOL_RULES.items():
            for section in other.sections:
                if kind not in kinds and section in pool.model_fields_set:
                    problems.append(
                        (
                            ("pools", pool_name, section),
                            f"{section} is for {other.label} pools; this pool serves "
                            f"{own.label} workloads (set {' or '.join(own.sections)} instead)",
                        )
                    )
    return problems


def _layout(pool: Pool) -> str:
    """A pool's replica layout in words: "tensor 4 x pipeline 2 x expert 1"."""
    p = pool.parallelism
    assert p is not None
    return f"tensor {pool.chips_per_replica} x pipeline {p.pipeline} x expert {p.expert}"


def scenario_reference_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-references a schema cannot check field by field: (field path, message) pairs."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for pool_name, pool in scenario.pools.items():
        for i, workload in enumerate(pool.serves):
            if workload not in scenario.workloads:
                problems.append(
                    (
                        ("pools", pool_name, "serves", i),
                        f"unknown workload {workload!r} "
                        f"(workloads: {', '.join(sorted(scenario.workloads))})",
                    )
                )
        kinds: set[str] = {
            scenario.workloads[w].kind for w in pool.serves if w in scenario.workloads
        }
        problems.extend(_pool_kind_problems(pool_name, pool, kinds))
        if pool.count % pool.replica_chips:
            layout = "" if pool.parallelism is None else f" ({_layout(pool)})"
            problems.append(
                (
                    ("pools", pool_name, "count"),
                    f"{pool.count} chips do not divide into replicas of "
                    f"{pool.replica_chips}{layout}",
                )
            )
    served = {w for pool in scenario.pools.values() for w in pool.serves}
    for name in scenario.workloads:
        if name not in served:
            problems.append((("workloads", name), "no pool serves this workload"))
    problems.extend(contemplating_pool_problems(scenario))
    problems.extend(_disaggregation_problems(scenario))
    policy = scenario.router.policy
    routed = ROUTER_KINDS.get(policy)
    if routed is not None:
        for name, wl in scenario.workloads.items():
            if wl.kind not in routed:
                problems.append(
                    (
                        ("router", "policy"),
                        f"{policy} routes {' and '.join(routed)} workloads only; workload "
                        f"{name} is {POOL_RULES[wl.kind].label}",
                    )
                )
            elif policy in ROUTER_NEEDS_SLA and wl.sla is None:
                problems.append(
                    (
                        ("workloads", name, "sla"),
                        f"{policy} routing measures headroom against the SLA: give "
                        f"workload {name} an sla",
                    )
                )
    problems.extend(_loadgen_problems(scenario))
    return problems


def _loadgen_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Offline traffic sends everything at time 0, so a warm-up would hide all of it; a
    closed loop draws its requests as its users send them, which SLO classes (drawn up
    front, one per request) do not follow."""
    problems: list[tuple[tuple[str | int, ...], str]] = [
        (
            ("workloads", name, "traffic", "kind"),
            f"offline traffic sends every request at time 0, inside the "
            f"{scenario.simulation.warmup_s:g} s warm-up: set simulation.warmup_s: 0",
        )
        for name, wl in scenario.workloads.items()
        if wl.traffic.kind == "offline" and scenario.simulation.warmup_s > 0
    ]
    problems += [
        (
            ("workloads", name, "slo"),
            "SLO classes are not supported with closed_loop traffic: use poisson, bursty, "
            "diurnal, trace or offline traffic",
        )
        for name, wl in scenario.workloads.items()
        if wl.traffic.kind == "closed_loop" and getattr(wl, "slo", None) is not None
    ]
    for name, wl in scenario.workloads.items():
        if not isinstance(wl, LLMWorkload):
            continue
        for key in ("sessions", "system_prompt"):
            if wl.traffic.kind == "closed_loop" and getattr(wl, key) is not None:
                problems.append(
                    (
                        ("workloads", name, key),
                        f"{key} is not supported with closed_loop traffic (a closed loop's "
                        "users already send turn after turn): use poisson, bursty, diurnal "
                        "or offline traffic",
                    )
                )
        caching = [
            p
            for p, pool in scenario.pools.items()
            if name in pool.serves and pool.continuous_batching.prefix_cache is not None
        ]
        if caching and wl.traffic.kind == "closed_loop":
            problems.append(
                (
                    ("pools", caching[0], "continuous_batching", "prefix_cache"),
                    f"a prefix cache needs shared prefixes, which closed_loop traffic of "
                    f"workload {name} does not draw: use another traffic kind",
                )
            )
        if caching and wl.speculative is not None:
            problems.append(
                (
                    ("workloads", name, "speculative"),
                    f"speculative decoding and the prefix cache of pool {caching[0]} do not "
                    "work together yet: drop one of them",
                )
            )
    return problems


def contemplating_pool_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """A contemplating workload's ``branch_pool`` and ``aggregation_pool`` must name pools
    that serve it."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, wl in scenario.workloads.items():
        c = getattr(wl, "contemplating", None)
        if c is None:
            continue
        serving = [p for p, pool in scenario.pools.items() if name in pool.serves]
        for key in ("branch_pool", "aggregation_pool"):
            pool_name = getattr(c, key)
            if pool_name is not None and pool_name not in serving:
                problems.append(
                    (
                        ("workloads", name, "contemplating", key),
                        f"pool {pool_name!r} does not serve workload {name} "
                        f"(pools that do: {', '.join(serving) or 'none'})",
                    )
                )
    return problems


def _disaggregation_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """A disaggregated workload names two different pools, both serving it and no other
    pool serving it (once both exist); its prefill pool reserves KV (the decode pool may
    preempt)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, wl in scenario.workloads.items():
        split = getattr(wl, "disaggregation", None)
        if split is None:
            continue
        at = ("workloads", name, "disaggregation")
        roles = {"prefill_pool": split.prefill_pool, "decode_pool": split.decode_pool}
        for role, pool_name in roles.items():
            pool = scenario.pools.get(pool_name)
            if pool is None:
                problems.append(
                    (
                        (*at, role),
                        f"unknown pool {pool_name!r} (pools: {', '.join(sorted(scenario.pools))})",
                    )
                )
            elif name not in pool.serves:
                problems.append(((*at, role), f"pool {pool_name} does not serve workload {name}"))
        if split.prefill_pool == split.decode_pool:
            problems.append(
                ((*at, "decode_pool"), "the decode pool must differ from the prefill pool")
            )
        named = all(pool_name in scenario.pools for pool_name in roles.values())
        for pool_name, pool in scenario.pools.items():
            if named and name in pool.serves and pool_name not in roles.values():
                problems.append(
                    (
                        ("pools", pool_name, "serves"),
                        f"workload {name} is disaggregated: only its prefill_pool "
                        f"({split.prefill_pool}) and decode_pool ({split.decode_pool}) serve it",
                    )
                )
        prefill = scenario.pools.get(split.prefill_pool)
        if prefill is not None and prefill.continuous_batching.kv_policy == "preempt":
            problems.append(
                (
                    ("pools", split.prefill_pool, "continuous_batching", "kv_policy"),
                    "a prefill pool holds each prompt's KV until it is sent: it reserves "
                    "(kv_policy: preempt is for the decode pool)",
                )
            )
        assert isinstance(wl, LLMWorkload)
        problems += _disaggregated_exclusions(name, wl, scenario)
    return problems


def _disaggregated_exclusions(
    name: str, wl: LLMWorkload, scenario: Scenario
) -> list[tuple[tuple[str | int, ...], str]]:
    """The serving techniques a disaggregated workload does not combine with yet."""
    assert wl.disaggregation is not None
    settings: list[tuple[tuple[str | int, ...], bool]] = [
        (("workloads", name, "slo"), wl.slo is not None),
        (("workloads", name, "speculative"), wl.speculative is not None),
        (("workloads", name, "sessions"), wl.sessions is not None),
        (("workloads", name, "system_prompt"), wl.system_prompt is not None),
        (("workloads", name, "traffic", "kind"), wl.traffic.kind == "closed_loop"),
    ]
    if wl.contemplating is not None:
        for key in ("branch_pool", "aggregation_pool"):
            settings.append(
                (
                    ("workloads", name, "contemplating", key),
                    getattr(wl.contemplating, key) is not None,
                )
            )
    for role in (wl.disaggregation.prefill_pool, wl.disaggregation.decode_pool):
        pool = scenario.pools.get(role)
        if pool is not None:
            settings.append(
                (
                    ("pools", role, "continuous_batching", "prefix_cache"),
                    pool.continuous_batching.prefix_cache is not None,
                )
            )
    return [
        (
            at,
            f"workload {name} is disaggregated, which does not combine with "
            f"{'closed_loop traffic' if at[-1] == 'kind' else at[-1]} yet",
        )
        for at, on in settings
        if on
    ]
