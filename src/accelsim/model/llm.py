"""Cost of LLM inference iterations on a tensor-parallel replica.

One *iteration* of continuous batching runs, for every sequence in the batch,
either a chunk of its prompt (prefill) or one new token (decode). Its cost on
a replica of ``k`` chips (k-way tensor parallelism: every chip holds 1/k of
every weight matrix and of every sequence's KV cache) is the cost of the
kernels a serving stack launches, on one chip, in launch order:

* ``vision_encoder`` (multimodal prompts): 2 x encoder params FLOPs per image
  token, encoder weights read once.
* per layer (each kernel launched once per layer, the norms and adds twice):
  ``norm`` (input and post-attention RMSNorm), ``quantize`` (8-bit weights:
  each GEMM's input scaled to 8 bits), ``gemm.qkv``, ``rotary``,
  ``kv_write`` (each new token's K and V into the cache), ``attention.prefill``
  (one fused, flash-style kernel on the matrix engine: 4 x layers x
  (heads x head_dim) FLOPs per causal (query, key) pair, the KV it attends to
  read once) and ``attention.decode`` (the vector unit, reading every decoding
  sequence's paged KV cache), ``gemm.o``, ``residual`` (two adds),
  ``gemm.router`` (a mixture of experts), ``gemm.up_gate``, ``activation``
  (SiLU x up), ``gemm.down``, and ``allreduce`` (k > 1: two ring all-reduces
  of the activations, in the activation dtype, over the chip-to-chip link:
  2(k-1)/k of the bytes cross each chip's link, with 2(k-1) link latencies
  each);
* then ``norm.final``, ``lm_head`` (logits for each sequence that emits a
  token) and ``sampling`` over the vocabulary.

GEMMs do 2 FLOPs per weight and token and read their weights once per
iteration (for a mixture of experts, the experts the batch's tokens touch);
4-bit weights (:mod:`accelsim.model.quant`) are read with their scales, and
int4 (weight-only) GEMMs run in the activation dtype with their dequantisation
as vector work fused into the GEMM op;
each declares its shape (M x N x K on one chip), which sets its efficiency
(:meth:`ChipRates.shape_efficiency`: tile and wave quantisation). Element-wise
kernels read and write their activations in DRAM on the vector unit. Every
kernel pays the chip's launch overhead; a serving stack's host time per
iteration and graph-captured decode (one launch for a decode-only iteration, and
:data:`GRAPH_KERNEL_S` for each kernel it replays) come from the pool's
continuous-batching settings.

Decode reads all weights for a handful of tokens, so it sits far left of the
ridge point (memory-bound) until the batch grows to hundreds of sequences;
prefill processes hundreds of tokens per weight read, so it is compute-bound.

Each kernel is declared once, in :func:`kernels`, as a :class:`Kernel`: its
FLOPs and its bytes per memory tier and access pattern on one chip, each a
:class:`Linear` amount of one of the iteration's *counters* (:data:`COUNTERS`:
tokens, prefill tokens and (query, key) pairs, KV read, decoding sequences,
logits, image tokens, or 1 per iteration), except the expert weights a mixture
of experts reads, a :class:`Curve` of the tokens. Two evaluations share that
declaration: :meth:`LLMCostModel.ops` turns it into roofline :class:`Op`
objects (for ``explain`` and :meth:`LLMCostModel.iteration`), and
:meth:`LLMCostModel.terms`, the engine's path, multiplies the counters by times
and energies per unit worked out once per replica (curves and GEMM shape
efficiencies memoised by counter value). Adding a kernel is adding one entry
to :func:`kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from accelsim.config.schema import DTYPE_BYTES, Chip, ContinuousBatching, LLMModel
from accelsim.model.power import Terms
from accelsim.model.quant import (
    FOUR_BIT,
    WEIGHT_ONLY,
    dequant_ops,
    fp4_problem,
    unquantised_dtype,
    weight_bytes_per_param,
)
from accelsim.model.roofline import (
    SRAM_ACTIVATION_RESERVE,
    BatchCost,
    ChipRates,
    Engine,
    Op,
    Pattern,
    Tier,
    Traffic,
    batch_cost,
)


@dataclass(frozen=True)
class LLMShape:
    """Parameter and KV sizes derived from a model's shape."""

    layers: int
    d_model: int
    q_dim: int  # heads x head_dim
    kv_dim: int  # kv_heads x head_dim
    vocab: int
    attention_params_per_layer: float
    ffn_params_per_layer: float  # all experts for MoE
    expert_params: float  # one expert's FFN params (0 for dense)
    experts: int
    active_experts: int
    shared_experts: int
    router_params_per_layer: float
    embedding_params: float
    lm_head_params: float
    vision_params: float
    weight_bytes_per_param: float  # decoder layers' weights, with their scales
    kv_bytes_per_token: float  # whole model (all layers, K and V)
    act_bytes: float
    unquantised_bytes_per_param: float  # embeddings, LM head, vision encoder

    @property
    def unquantised_params(self) -> float:
        """Params kept out of a 4-bit model's quantisation (see accelsim.model.quant)."""
        return self.embedding_params + self.lm_head_params + self.vision_params

    @property
    def total_params(self) -> float:
        body = self.layers * (
            self.attention_params_per_layer
            + self.ffn_params_per_layer
            + self.router_params_per_layer
        )
        return body + self.embedding_params + self.lm_head_params + self.vision_params

    @property
    def weight_bytes(self) -> float:
        return self.total_params * self.weight_bytes_per_param + self.unquantised_params * (
            self.unquantised_bytes_per_param - self.weight_bytes_per_param
        )

    @property
    def active_params_per_token(self) -> float:
        """Matmul params a token passes through in the body (excluding the LM head)."""
        if self.experts:
            ffn = (self.active_experts + self.shared_experts) * self.expert_params
        else:
            ffn = self.ffn_params_per_layer
        return self.layers * (self.attention_params_per_layer + ffn + self.router_params_per_layer)

    def body_weight_bytes(self, tokens: float) -> float:
        """Body weights read by an iteration of ``tokens`` tokens (MoE: experts touched)."""
        if not self.experts:
            params = self.ffn_params_per_layer
        else:
            params = (
                experts_touched(self.experts, self.active_experts, tokens) + self.shared_experts
            ) * (self.expert_params)
        per_layer = self.attention_params_per_layer + params + self.router_params_per_layer
        return self.layers * per_layer * self.weight_bytes_per_param


def experts_touched(experts: int, active: int, tokens: float) -> float:
    """Expected distinct experts per layer hit by ``tokens`` tokens, each routed to
    ``active`` of ``experts`` experts uniformly: E x (1 - (1 - a/E)^T)."""
    if tokens <= 0:
        return 0.0
    return float(experts * (1.0 - (1.0 - active / experts) ** tokens))


def shape(model: LLMModel) -> LLMShape:
    d = model.d_model
    head_dim = model.head_dim or d // model.heads
    q_dim = model.heads * head_dim
    kv_dim = model.kv_heads * head_dim
    matrices = 3 if model.gated_ffn else 2
    attention = d * q_dim + 2 * d * kv_dim + q_dim * d
    if model.moe is None:
        ffn = float(matrices * d * model.ffn_dim)
        expert = 0.0
        experts = active = shared = 0
        router = 0.0
    else:
        expert = float(matrices * d * (model.moe.expert_ffn_dim or model.ffn_dim))
        experts, active, shared = (
            model.moe.experts,
            model.moe.active_experts,
            model.moe.shared_experts,
        )
        ffn = (experts + shared) * expert
        router = float(d * experts)
    return LLMShape(
        layers=model.layers,
        d_model=d,
        q_dim=q_dim,
        kv_dim=kv_dim,
        vocab=model.vocab,
        attention_params_per_layer=float(attention),
        ffn_params_per_layer=ffn,
        expert_params=expert,
        experts=experts,
        active_experts=active,
        shared_experts=shared,
        router_params_per_layer=router,
        embedding_params=float(model.vocab * d),
        lm_head_params=0.0 if model.tied_embeddings else float(model.vocab * d),
        vision_params=model.vision.params if model.vision else 0.0,
        weight_bytes_per_param=weight_bytes_per_param(model),
        kv_bytes_per_token=2.0 * model.layers * kv_dim * DTYPE_BYTES[model.kv_dtype],
        act_bytes=DTYPE_BYTES[activation_dtype(model.weight_dtype)],
        unquantised_bytes_per_param=DTYPE_BYTES[
            unquantised_dtype(model.weight_dtype, activation_dtype(model.weight_dtype))
        ],
    )


# What an iteration's kernels scale with, as :meth:`Iteration.counters` gives them.
Counter = Literal[
    "iteration",
    "tokens",
    "prefill_tokens",
    "prefill_pairs",
    "prefill_kv_tokens",
    "decode_sequences",
    "decode_kv_tokens",
    "logits",
    "image_tokens",
]
COUNTERS: tuple[Counter, ...] = (
    "iteration",  # 1: work done once per iteration (reading weights)
    "tokens",  # tokens processed: the prefill tokens and one per decoding sequence
    "prefill_tokens",  # prompt tokens processed
    "prefill_pairs",  # causal (query, key) pairs of the prefill chunks
    "prefill_kv_tokens",  # KV the prefill chunks attend to: earlier context and the chunks
    "decode_sequences",  # sequences that decode a token
    "decode_kv_tokens",  # KV the decoding sequences read (one (query, key) pair per token)
    "logits",  # sequences that emit a token
    "image_tokens",  # vision-encoder tokens
)
_INDEX: dict[str, int] = {name: i for i, name in enumerate(COUNTERS)}


class Iteration(NamedTuple):
    """What one continuous-batching iteration does, as aggregates over its sequences.

    An immutable named tuple rather than a frozen dataclass: the engine builds one per
    simulated iteration, and a tuple is built in under half the time."""

    prefill_tokens: int = 0  # new prompt tokens processed
    prefill_pairs: float = 0.0  # causal (query, key) pairs of the prefill chunks
    prefill_context_tokens: int = 0  # earlier KV the chunks attend to (chunked prefill)
    decode_sequences: int = 0
    decode_context_tokens: int = 0  # KV tokens read by the decoding sequences
    logits: int = 0  # sequences that emit a token this iteration
    image_tokens: int = 0

    def counters(self) -> tuple[float, ...]:
        """The iteration's counters, in :data:`COUNTERS` order."""
        prefill, pairs, prior, decode, context, logits, images = self  # the fields, in order
        return (
            1,
            prefill + decode,
            prefill,
            pairs,
            prior + prefill,
            decode,
            context,
            logits,
            images,
        )

    @property
    def decode_only(self) -> bool:
        """True for an iteration that only decodes (a captured graph can replay it)."""
        return not (self.prefill_tokens or self.image_tokens) and self.decode_sequences > 0


def prefill_pairs(new_tokens: int, context_tokens: int) -> float:
    """(query, key) pairs when ``new_tokens`` attend causally after ``context_tokens``."""
    return new_tokens * (context_tokens + (new_tokens + 1) / 2.0)


@dataclass(frozen=True, slots=True)
class Linear:
    """An amount on one chip: ``per_unit`` times the value of the counter ``of``, shared
    evenly by ``over`` chips (the replica's chips for work that tensor parallelism splits;
    1 for an amount that is already per chip)."""

    per_unit: float
    of: Counter
    over: float = 1.0

    @property
    def per_unit_per_chip(self) -> float:
        return self.per_unit / self.over

    def at(self, counters: tuple[float, ...]) -> float:
        return self.per_unit * counters[_INDEX[self.of]] / self.over


@dataclass(frozen=True, slots=True)
class Curve:
    """An amount on one chip that is a nonlinear function of the counter ``of``."""

    amount: Callable[[float], float]
    of: Counter

    def at(self, counters: tuple[float, ...]) -> float:
        return self.amount(counters[_INDEX[self.of]])


@dataclass(frozen=True, slots=True)
class Moves:
    """Bytes a kernel moves on one memory tier with one access pattern."""

    tier: Tier
    pattern: Pattern
    bytes: Linear | Curve


@dataclass(frozen=True, slots=True)
class Gemm:
    """The shape of a kernel's GEMMs on one chip: ``n`` output columns and depth ``k``;
    the rows M are the value of the kernel's FLOP counter, or ``rows`` of it (the mean
    tokens per expert of a mixture of experts)."""

    n: float
    k: float
    rows: Callable[[float], float] | None = None

    def m(self, value: float) -> float:
        return value if self.rows is None else self.rows(value)


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel of an iteration on one chip of the replica: its FLOPs, and the bytes it
    moves, in terms of the iteration's counters."""

    name: str
    kind: str  # gemm, attention, collective, elementwise
    engine: Engine
    dtype: str
    runs_if: Counter  # launched only in iterations where this counter is nonzero
    flops: Linear
    moves: tuple[Moves, ...]
    launches: int = 1
    fixed_latency_s: float = 0.0
    gemm: Gemm | None = None
    # Vector operations fused into a W4A16 GEMM to dequantise its weights, as a
    # function of the value of its FLOP counter.
    dequant: Callable[[float], float] | None = None

    def op(self, counters: tuple[float, ...], graph: bool = False) -> Op:
        """The kernel in an iteration with these counters, as a roofline op (``graph``:
        replayed from a captured graph, so it pays :data:`GRAPH_KERNEL_S` per launch
        instead of a launch of its own)."""
        gemm = None
        x = counters[_INDEX[self.flops.of]]
        if self.gemm is not None:
            gemm = (self.gemm.m(x), self.gemm.n, self.gemm.k)
        return Op(
            self.name,
            self.kind,
            self.engine,
            self.dtype,
            self.flops.at(counters),
            tuple(Traffic(m.tier, m.pattern, m.bytes.at(counters)) for m in self.moves),
            fixed_latency_s=self.fixed_latency_s + (GRAPH_KERNEL_S * self.launches if graph else 0),
            launches=0 if graph else self.launches,
            gemm=gemm,
            vector_flops=self.dequant(x) if self.dequant is not None else 0.0,
        )


# A kernel replayed from a captured graph still costs the device a little to dispatch.
# CUDA.jl's documentation (CUDA graphs) measures 80 small broadcast kernels at 70 µs
# launched as one graph against 260 µs launched one by one: about 0.9 µs a kernel in
# a graph, the kernel's own (tiny) work included, against 3.3 µs.
GRAPH_KERNEL_S = 0.9e-6

# Element-wise kernels: FLOPs per element, counted as a vector unit executes them.
NORM_FLOPS = 4.0  # RMSNorm: square, accumulate, scale by the reciprocal root, weight
ROTARY_FLOPS = 3.0  # a rotation of each (even, odd) pair: two multiplies and an add per element
RESIDUAL_FLOPS = 1.0  # one add
SILU_MUL_FLOPS = 5.0  # x / (1 + exp(-x)) (negate, exp, add, divide) times the up projection
GELU_FLOPS = 8.0  # tanh approximation: about eight operations per element
QUANTIZE_FLOPS = 2.0  # 8-bit weights: scale and convert each GEMM input element
SAMPLING_FLOPS = 5.0  # per vocabulary entry: max, exp, sum, divide, compare (top-p/top-k)
LOGIT_BYTES = 4  # logits are sampled in fp32


def activation_dtype(weight_dtype: str) -> str:
    """The dtype activations (and tensor-parallel collectives) run in: the weights' for a
    16- or 32-bit model; bf16 for 8-bit weights, which serving stacks dequantise into
    (TensorRT-LLM's and vLLM's fp8 and int8 paths keep activations and all-reduces in
    16 bits). 4-bit weights likewise run with bf16 activations."""
    return weight_dtype if DTYPE_BYTES[weight_dtype] >= 2 else "bf16"


def kernels(
    model: LLMModel,
    s: LLMShape,
    chip: Chip,
    chips: int,
    weights: Tier,
    *,
    expert: int = 1,
    imbalance: float = 1.0,
    stages: int = 1,
) -> tuple[Kernel, ...]:
    """The kernels of an iteration on one chip of a ``chips``-way tensor-parallel replica
    whose weights sit in ``weights``, in launch order (see the module docstring).
    ``expert`` > 1 and ``stages`` > 1 add the expert-parallel and pipeline terms of
    :mod:`accelsim.model.parallel` (the kernels are then one stage's, for one group)."""
    problem = fp4_problem(model.weight_dtype, chip)
    if problem is not None:
        raise ValueError(problem)
    k = float(chips)
    L = s.layers
    wdt = model.weight_dtype
    adt = activation_dtype(wdt)
    wb = s.weight_bytes_per_param
    hdt = unquantised_dtype(wdt, adt)  # embeddings, LM head, vision encoder
    hb = s.unquantised_bytes_per_param
    tile_rows = chip.compute.matrix_tile[0]
    ab = s.act_bytes
    kv = s.kv_bytes_per_token
    d = s.d_model
    out: list[Kernel] = []

    def elementwise(
        name: str,
        elements: float,  # per unit of the counter, summed over the replica's chips
        flops: float,
        bytes_per_element: float,
        of: Counter = "tokens",
        launches: int = L,
        over: float = 1.0,
    ) -> Kernel:
        return Kernel(
            name,
            "elementwise",
            "vector",
            adt,
            runs_if=of,
            flops=Linear(elements * flops, of, over),
            moves=(Moves("dram", "stream", Linear(elements * bytes_per_element, of, over)),),
            launches=launches,
        )

    def gemm(
        name: str,
        params: float,  # per layer, whole replica
        n: float,  # output columns on one chip
        depth: float,
        weight_bytes: Linear | Curve | None = None,
        rows: Callable[[float], float] | None = None,
        weights_at: Callable[[float], float] | None = None,  # per chip, by token count
    ) -> Kernel:
        moved = weight_bytes or Linear(L * params * wb, "iteration", k)
        shape = Gemm(n, depth, rows)
        dequant = None
        if wdt in WEIGHT_ONLY:
            dense = L * params / k

            def dequant(t: float) -> float:
                return dequant_ops(
                    dense if weights_at is None else weights_at(t), shape.m(t), tile_rows
                )

        return Kernel(
            name,
            "gemm",
            "matrix",
            wdt,
            runs_if="tokens",
            flops=Linear(2.0 * L * params, "tokens", k),
            moves=(Moves(weights, "stream", moved),),
            launches=L,
            gemm=shape,
            dequant=dequant,
        )

    if s.vision_params:
        out.append(
            Kernel(
                "vision_encoder",
                "gemm",
                "matrix",
                hdt,
                runs_if="image_tokens",
                flops=Linear(2.0 * s.vision_params, "image_tokens", k),
                moves=(Moves(weights, "stream", Linear(s.vision_params * hb, "iteration", k)),),
                launches=s.layers,
            )
        )
    qkv = s.q_dim + 2 * s.kv_dim
    if s.experts:
        ffn_per_token = (s.active_experts + s.shared_experts) * s.expert_params
        if expert > 1:  # the busiest chip's routed tokens, `imbalance` x the mean
            ffn_per_token = (imbalance * s.active_experts + s.shared_experts) * s.expert_params
        ffn_dim = s.expert_params / (3 if model.gated_ffn else 2) / d
    else:
        ffn_per_token = s.ffn_params_per_layer
        ffn_dim = float(model.ffn_dim)
    ffn_out = ffn_per_token / (3 if model.gated_ffn else 2) / d  # FFN width a token passes
    # Norms (input and post-attention, both per layer) and the residual adds run on every
    # chip on the whole hidden state; the rest is split by tensor parallelism.
    out.append(elementwise("norm", 2 * L * d, NORM_FLOPS, 2 * ab, launches=2 * L))
    if DTYPE_BYTES[wdt] == 1 or (wdt in FOUR_BIT and wdt not in WEIGHT_ONLY):
        # 8-bit and MXFP4 GEMMs take inputs in their own dtype (MXFP4: with block scales)
        inputs = 2 * d + s.q_dim / k + ffn_out / k  # qkv, up(+gate) on d; o, down sharded
        out.append(elementwise("quantize", L * inputs, QUANTIZE_FLOPS, ab + wb, launches=4 * L))
    out.append(gemm("gemm.qkv", d * qkv, qkv / k, d))
    out.append(elementwise("rotary", L * (s.q_dim + s.kv_dim), ROTARY_FLOPS, 2 * ab, over=k))
    out.append(
        Kernel(
            "kv_write",
            "elementwise",
            "vector",
            model.kv_dtype,
            runs_if="tokens",
            flops=Linear(L * 2 * s.kv_dim, "tokens", k),  # a scale or copy per element
            moves=(Moves("dram", "stream", Linear(kv + L * 2 * s.kv_dim * ab, "tokens", k)),),
            launches=L,
        )
    )
    out += [
        Kernel(
            "attention.prefill",
            "attention",
            "matrix",
            adt,
            runs_if="prefill_tokens",
            flops=Linear(4.0 * L * s.q_dim, "prefill_pairs", k),
            moves=(Moves("dram", "stream", Linear(kv, "prefill_kv_tokens", k)),),
            launches=L,
        ),
        Kernel(
            "attention.decode",
            "attention",
            "vector",
            adt,
            runs_if="decode_sequences",
            flops=Linear(4.0 * L * s.q_dim, "decode_kv_tokens", k),
            moves=(Moves("dram", "paged", Linear(kv, "decode_kv_tokens", k)),),
            launches=L,
        ),
        gemm("gemm.o", s.q_dim * d, d, s.q_dim / k),
    ]
    out.append(elementwise("residual", 2 * L * d, RESIDUAL_FLOPS, 3 * ab, launches=2 * L))
    gated = 2 if model.gated_ffn else 1
    if s.experts:
        out.append(gemm("gemm.router", s.router_params_per_layer, s.experts, d))
        e, a, shared = s.experts, s.active_experts, s.shared_experts
        up_share = gated / (gated + 1)

        def expert_weights(share: float) -> Curve:
            if expert > 1:
                return Curve(
                    lambda t: (
                        L
                        * (experts_touched(e, a, t * expert) / expert + shared)
                        * (s.expert_params * share * wb / k)
                    ),
                    "tokens",
                )
            return Curve(
                lambda t: (
                    L * (experts_touched(e, a, t) + shared) * s.expert_params * share * wb / k
                ),
                "tokens",
            )

        def expert_params(share: float) -> Callable[[float], float]:
            """Expert weights per chip the tokens touch (the ones a W4A16 GEMM dequantises)."""
            return lambda t: L * (experts_touched(e, a, t) + shared) * s.expert_params * share / k

        def per_expert(t: float) -> float:
            """Mean tokens each touched expert's GEMM multiplies."""
            if expert > 1:  # the chip's share of every group's routed tokens
                touched = experts_touched(e, a, t * expert) / expert
                return t * (imbalance * a + shared) / (touched + shared)
            return t * (a + shared) / (experts_touched(e, a, t) + shared)

        out.append(
            gemm(
                "gemm.up_gate",
                ffn_per_token * up_share,
                gated * ffn_dim / k,
                d,
                expert_weights(up_share),
                per_expert,
                expert_params(up_share),
            )
        )
        act_elements = L * ffn_out
    else:
        out.append(
            gemm("gemm.up_gate", ffn_per_token * gated / (gated + 1), gated * ffn_dim / k, d)
        )
        act_elements = L * ffn_dim
    if model.gated_ffn:
        out.append(elementwise("activation", act_elements, SILU_MUL_FLOPS, 3 * ab, over=k))
    else:
        out.append(elementwise("activation", act_elements, GELU_FLOPS, 2 * ab, over=k))
    if s.experts:
        down_share = 1 / (gated + 1)
        out.append(
            gemm(
                "gemm.down",
                ffn_per_token * down_share,
                d,
                ffn_dim / k,
                expert_weights(down_share),
                per_expert,
                expert_params(down_share),
            )
        )
    else:
        out.append(gemm("gemm.down", ffn_per_token / (gated + 1), d, ffn_dim / k))
    if expert > 1 or stages > 1:
        from accelsim.model.parallel import parallel_kernels  # it builds on this module

        out += parallel_kernels(s, chip, chips, expert, stages, adt)
    if chips > 1:
        link = chip.chip_to_chip
        if link is None:
            raise ValueError(f"chip {chip.name} has no chip_to_chip link for tensor parallelism")
        reduces, steps = 2 * L, 2 * (chips - 1)
        moved = reduces * steps / k * d * ab  # per chip and token, in the activation dtype
        out.append(
            Kernel(
                "allreduce",
                "collective",
                "vector",
                adt,
                runs_if="tokens",
                flops=Linear(reduces * d * (chips - 1), "tokens", k),
                moves=(Moves("link", "stream", Linear(moved, "tokens")),),
                launches=reduces,
                fixed_latency_s=reduces * steps * link.latency_s,
            )
        )
    out += [
        elementwise("norm.final", d, NORM_FLOPS, 2 * ab, of="logits", launches=1),
        Kernel(
            "lm_head",
            "gemm",
            "matrix",
            hdt,
            runs_if="logits",
            flops=Linear(2.0 * d * s.vocab, "logits", k),
            moves=(Moves(weights, "stream", Linear(d * s.vocab * hb, "iteration", k)),),
            gemm=Gemm(s.vocab / k, d),
        ),
        elementwise("sampling", s.vocab, SAMPLING_FLOPS, LOGIT_BYTES, of="logits", launches=1),
    ]
    return tuple(out)


class _RatedWork(dict[float, tuple[float, float]]):
    """Time and energy of an amount of work that is a function of a counter (a
    :class:`Curve`'s bytes, or a W4A16 GEMM's dequantisation operations) at a rate,
    memoised by the counter's value."""

    __slots__ = ("amount", "energy_per_unit_j", "units_per_s")

    def __init__(
        self, amount: Callable[[float], float], units_per_s: float, energy_per_unit_j: float
    ) -> None:
        super().__init__()
        self.amount = amount
        self.units_per_s = units_per_s
        self.energy_per_unit_j = energy_per_unit_j

    def __missing__(self, value: float) -> tuple[float, float]:
        amount = self.amount(value)
        terms = (amount / self.units_per_s, amount * self.energy_per_unit_j)
        self[value] = terms
        return terms


class _SlowDown(dict[float, float]):
    """1 / shape efficiency of a kernel's GEMMs, memoised by the value of its counter."""

    __slots__ = ("gemm", "rates")

    def __init__(self, gemm: Gemm, rates: ChipRates) -> None:
        super().__init__()
        self.gemm = gemm
        self.rates = rates

    def __missing__(self, value: float) -> float:
        g = self.gemm
        slow = 1.0 / self.rates.shape_efficiency(g.m(value), g.n, g.k)
        self[value] = slow
        return slow


class _FastMoves(NamedTuple):
    of: int  # counter index
    also_of: tuple[int, ...]  # further counters whose bytes were merged into this entry
    memory_s_per_unit: float
    energy_j_per_unit: float
    curve: _RatedWork | None  # set for a Curve (then the per-unit figures are unused)


class _FastKernel(NamedTuple):
    runs_if: int
    flops_of: int
    compute_s_per_unit: float  # at the nominal clock, for a GEMM of full efficiency
    compute_j_per_unit: float
    moves: tuple[_FastMoves, ...]
    launch_s: float
    graph_s: float  # its launches when replayed from a captured graph
    fixed_s: float
    slow_down: _SlowDown | None  # a GEMM's shape
    dequant: _RatedWork | None  # a W4A16 GEMM's fused dequantisation


def _fast(kernel: Kernel, rates: ChipRates) -> _FastKernel:
    """A kernel's times and energies per unit of its counters on a chip, at the nominal
    clock. Linear moves on one tier and pattern at the same bytes per unit become one
    entry over the sum of their counters: ``c * (a + b)`` costs one product fewer than
    ``c * a + c * b``, and the sum is exact in integer counters."""
    shapeless = Op(kernel.name, kernel.kind, kernel.engine, kernel.dtype, 0.0, ())
    flops_per_s = rates.flops_per_s(shapeless)
    flops = kernel.flops.per_unit_per_chip
    merged: list[tuple[Moves, list[int]]] = []
    by_rate: dict[tuple[str, str, float], list[int]] = {}
    for move in kernel.moves:
        counters = [_INDEX[move.bytes.of]]
        if isinstance(move.bytes, Linear):
            key = (move.tier, move.pattern, move.bytes.per_unit_per_chip)
            if key in by_rate:
                by_rate[key] += counters
                continue
            by_rate[key] = counters
        merged.append((move, counters))
    moves: list[_FastMoves] = []
    for move, counters in merged:
        tier = rates.tiers[move.tier]
        bw = tier.bytes_per_s(move.pattern)
        if isinstance(move.bytes, Curve):
            curve = _RatedWork(move.bytes.amount, bw, tier.energy_per_byte_j)
            moves.append(_FastMoves(counters[0], (), 0.0, 0.0, curve))
        else:
            per_unit = move.bytes.per_unit_per_chip
            moves.append(
                _FastMoves(
                    counters[0],
                    tuple(counters[1:]),
                    per_unit / bw,
                    per_unit * tier.energy_per_byte_j,
                    None,
                )
            )
    shaped = kernel.gemm is not None and rates.matrix_dtype(kernel.dtype) is not None
    return _FastKernel(
        _INDEX[kernel.runs_if],
        _INDEX[kernel.flops.of],
        flops / flops_per_s,
        flops * rates.energy_per_flop_j(kernel.engine, kernel.dtype),
        tuple(moves),
        rates.kernel_overhead_s * kernel.launches,
        GRAPH_KERNEL_S * kernel.launches,
        kernel.fixed_latency_s,
        _SlowDown(kernel.gemm, rates) if shaped and kernel.gemm is not None else None,
        None
        if kernel.dequant is None
        else _RatedWork(
            kernel.dequant, rates.vector_flops_per_s, rates.chip.power.vector_energy_per_flop_j
        ),
    )


class _FastGroup(NamedTuple):
    """The kernels launched when one counter is nonzero, with their energies summed into
    one figure per counter wherever they are linear. A *simple* kernel's FLOPs and bytes
    are linear in one counter (compute and memory time are two products); a *linear*
    one's FLOPs in one counter and bytes in another, with a GEMM's shape efficiency
    memoised by its counter's value; the *general* rest has curves or summed counters."""

    runs_if: int
    simple: tuple[tuple[int, float, float], ...]  # (counter, compute s, memory s) per unit
    linear: tuple[tuple[int, float, _SlowDown | None, int, float], ...]
    energy: tuple[tuple[int, float, float], ...]  # (counter, compute J, fixed J) per unit
    launch_s: float
    graph_s: float  # the launches when replayed from a captured graph
    fixed_s: float
    general: tuple[_FastKernel, ...]


def _groups(fast: tuple[_FastKernel, ...]) -> tuple[_FastGroup, ...]:
    """The kernels by the counter that launches them (see :class:`_FastGroup`)."""
    out = []
    for runs_if in dict.fromkeys(k.runs_if for k in fast):
        simple: list[tuple[int, float, float]] = []
        linear: list[tuple[int, float, _SlowDown | None, int, float]] = []
        energy: dict[int, list[float]] = {}
        general: list[_FastKernel] = []
        launch_s = graph_s = fixed_s = 0.0
        for k in (k for k in fast if k.runs_if == runs_if):
            launch_s += k.launch_s
            graph_s += k.graph_s
            fixed_s += k.fixed_s
            counters = {m.of for m in k.moves}
            if (
                any(m.curve is not None or m.also_of for m in k.moves)
                or len(counters) > 1
                or k.dequant is not None
            ):
                general.append(k._replace(launch_s=0.0, graph_s=0.0, fixed_s=0.0))
                continue
            moves_of = counters.pop() if counters else k.flops_of
            memory_s = sum(m.memory_s_per_unit for m in k.moves)
            if k.slow_down is None and moves_of == k.flops_of:
                simple.append((k.flops_of, k.compute_s_per_unit, memory_s))
            else:
                linear.append((k.flops_of, k.compute_s_per_unit, k.slow_down, moves_of, memory_s))
            energy.setdefault(k.flops_of, [0.0, 0.0])[0] += k.compute_j_per_unit
            energy.setdefault(moves_of, [0.0, 0.0])[1] += sum(m.energy_j_per_unit for m in k.moves)
        out.append(
            _FastGroup(
                runs_if,
                tuple(simple),
                tuple(linear),
                tuple((of, c, f) for of, (c, f) in energy.items()),
                launch_s,
                graph_s,
                fixed_s,
                tuple(general),
            )
        )
    return tuple(out)


_CONTEXT = _INDEX["decode_kv_tokens"]


def _energy_sum(
    addends: list[tuple[float, bool]],
) -> tuple[float, tuple[tuple[float, bool], ...]]:
    """An energy's addends in order (a value, or True: a figure per context token) as the
    sum of the values before the first per-token one, and the addends after it but the
    values that are zero. Summed from that start, the rest give the left-to-right sum
    of all the addends from 0.0 exactly: the start is that sum's first partial sum, and
    adding +0.0 leaves any sum unchanged but -0.0, which a sum from +0.0 never is."""
    start = 0.0
    k = 0
    while k < len(addends) and not addends[k][1]:
        start += addends[k][0]
        k += 1
    rest = tuple((v, per_token) for v, per_token in addends[k:] if per_token or v != 0.0)
    return start, rest


class DecodePlan:
    """The terms of every decode-only iteration of one batch size, as a function of the
    one thing that changes between them: the KV tokens the batch reads (its context).

    Built by walking :meth:`LLMCostModel.terms` once: every figure that does not read the
    context is kept as the value ``terms`` computes, and the one op that does (the decode
    attention) keeps its compute and memory per context token. :meth:`terms` then gives
    exactly what ``LLMCostModel.terms`` gives, the same products summed in the same
    order, without walking the kernels again. ``position`` is that op's place in the
    compute and memory lists; a decode span needs nothing else to vary."""

    __slots__ = (
        "compute",
        "compute_energy",
        "compute_per_token",
        "energy_per_token",
        "energy_sums",
        "fixed_energy",
        "memory",
        "memory_per_token",
        "overhead",
        "overlap",
        "position",
    )

    def __init__(
        self,
        compute: list[float],
        memory: list[float],
        position: int,
        per_token: tuple[float, float],
        energy: tuple[list[tuple[float, bool]], list[tuple[float, bool]]],
        overhead: float,
        overlap: float,
    ) -> None:
        self.compute = compute
        self.memory = memory
        self.position = position
        self.compute_per_token, self.memory_per_token = per_token
        # Energy addends in ``terms``'s order: a value, or (True) a figure per context token.
        self.compute_energy, self.fixed_energy = energy
        self.energy_sums = _energy_sum(self.compute_energy), _energy_sum(self.fixed_energy)
        # What one more context token adds to (clocked, fixed) energy: a coalesced span's
        # energy grows by this times its batch a step.
        self.energy_per_token = (
            sum(v for v, per_token in self.compute_energy if per_token),
            sum(v for v, per_token in self.fixed_energy if per_token),
        )
        self.overhead = overhead
        self.overlap = overlap

    def peak_power_w(self, idle_w: float) -> float:
        """An upper bound on the average power at the nominal clock of every iteration of
        this plan, whatever its context. Energy is a + b x context; time is at least
        t0 + d x context, with t0 the ops that do not vary and d the larger of the varying
        op's compute and memory per token (an op takes at least the longer of the two).
        Their ratio is monotone in the context, so its bound is at one token or in the
        limit. Infinite when the time could stay flat while the energy grows."""
        nominal = Terms(self.compute, self.memory, self.overhead, 0.0, 0.0, self.overlap)
        varying = self.compute[self.position], self.memory[self.position]
        t0 = nominal.time(1.0) - (sum(varying) - self.overlap * min(varying))
        a = sum(v for v, per_token in self.compute_energy + self.fixed_energy if not per_token)
        b = sum(v for v, per_token in self.compute_energy + self.fixed_energy if per_token)
        d = max(self.compute_per_token, self.memory_per_token)
        if t0 <= 0 or (d == 0 and b > 0):
            return math.inf
        at_one = (a + b) / (t0 + d)
        return idle_w + (max(at_one, b / d) if d > 0 else at_one)

    def terms(self, context: int) -> Terms:
        compute = self.compute.copy()
        memory = self.memory.copy()
        compute[self.position] = self.compute_per_token * context
        memory[self.position] = self.memory_per_token * context
        e_compute, e_fixed = self.energy(context)
        return Terms(compute, memory, self.overhead, e_compute, e_fixed, self.overlap)

    def energy(self, context: int) -> tuple[float, float]:
        """The step's dynamic energy that scales with the clock and the rest, as
        :meth:`terms` holds them (without building the op lists)."""
        (e_compute, compute), (e_fixed, fixed) = self.energy_sums
        for value, per_token in compute:
            e_compute += value * context if per_token else value
        for value, per_token in fixed:
            e_fixed += value * context if per_token else value
        return e_compute, e_fixed


@dataclass(frozen=True)
class ReplicaCapacity:
    chips: int
    weight_bytes_per_chip: float
    weights_tier: Tier
    kv_capacity_tokens: int  # per replica
    min_chips: int  # smallest replica whose DRAM holds the weights with room for KV


class LLMCostModel:
    """Iteration costs of one LLM on a replica of ``chips`` identical chips, served with
    the continuous-batching settings ``serving`` (its host overhead per iteration,
    graph-captured decode, and the share of DRAM for weights and KV)."""

    def __init__(
        self,
        model: LLMModel,
        chip: Chip,
        chips: int = 1,
        serving: ContinuousBatching | None = None,
        *,
        expert: int = 1,
        imbalance: float = 1.0,
        stages: int = 1,
    ):
        """``expert``, ``imbalance`` and ``stages``: the layout :func:`kernels` costs one
        pipeline stage of one expert-parallel group in (set by
        :class:`accelsim.model.parallel.ParallelCostModel`)."""
        serving = serving or ContinuousBatching()
        self.model = model
        self.chip = chip
        self.chips = chips
        self.serving = serving
        self.rates = ChipRates(chip)
        self.shape = shape(model)
        self.capacity = replica_capacity(self.shape, chip, chips, serving.kv_memory_fraction)
        self.kernels = kernels(
            model,
            self.shape,
            chip,
            chips,
            self.capacity.weights_tier,
            expert=expert,
            imbalance=imbalance,
            stages=stages,
        )
        self._groups = _groups(tuple(_fast(kernel, self.rates) for kernel in self.kernels))
        self._host_s = serving.iteration_overhead_s
        self._graph = serving.graph_decode
        self._plans: dict[int, DecodePlan | None] = {}

    def ops(self, it: Iteration) -> list[Op]:
        """The iteration's kernels on one chip, as roofline ops; then the host's time for
        the iteration, and the one launch of a captured graph if it replays one."""
        n = it.counters()
        graph = self._graph and it.decode_only
        ops = [kernel.op(n, graph) for kernel in self.kernels if n[_INDEX[kernel.runs_if]]]
        if self._host_s:
            ops.append(Op("host", "overhead", "vector", "fp32", 0.0, (), self._host_s, 0))
        if graph:
            ops.append(Op("graph_launch", "overhead", "vector", "fp32", 0.0, ()))
        return ops

    def terms(self, it: Iteration) -> Terms:
        """The iteration's clock-dependent terms, equal to ``Terms.of(self.iteration(it))``
        up to rounding but about ten times faster (the engine calls this once per
        iteration). Every term is linear in the counters but for a :class:`Curve` and a
        GEMM's shape efficiency, both memoised by counter value."""
        n = it.counters()
        compute: list[float] = []
        memory: list[float] = []
        launches = 0.0
        overhead = self._host_s
        e_compute = 0.0
        e_fixed = 0.0
        graph = self._graph and it.decode_only
        for runs_if, simple, linear, energy, launch_s, graph_s, fixed_s, general in self._groups:
            if not n[runs_if]:
                continue
            launches += graph_s if graph else launch_s
            overhead += fixed_s
            for of, c, m in simple:
                x = n[of]
                compute.append(c * x)
                memory.append(m * x)
            for of, c, slow, moves_of, m in linear:
                x = n[of]
                compute.append(c * x if slow is None else c * x * slow[x])
                memory.append(m * n[moves_of])
            for of, e_c, e_b in energy:
                x = n[of]
                e_compute += e_c * x
                e_fixed += e_b * x
            for _, flops_of, f, e_f, moves, _, _, _, slow, dequant in general:
                x = n[flops_of]
                compute.append(f * x if slow is None else f * x * slow[x])
                e_compute += e_f * x
                if dequant is not None:
                    t_d, e_d = dequant[x]
                    compute[-1] += t_d
                    e_compute += e_d
                t = 0.0
                for of, also_of, m, e_b, curve in moves:
                    y = n[of]
                    for i in also_of:
                        y += n[i]
                    if curve is None:
                        t += m * y
                        e_fixed += e_b * y
                    else:
                        t_y, e_y = curve[y]
                        t += t_y
                        e_fixed += e_y
                memory.append(t)
        if graph:
            launches += self.rates.kernel_overhead_s  # the graph's own launch
        return Terms(compute, memory, overhead + launches, e_compute, e_fixed, self.rates.overlap)

    def decode_plan(self, batch: int) -> DecodePlan | None:
        """The :class:`DecodePlan` of decode-only iterations of ``batch`` sequences
        (memoised), or None unless the context reaches exactly one op, one whose FLOPs and
        bytes are both linear in it (otherwise only :meth:`terms` applies)."""
        if batch in self._plans:
            return self._plans[batch]
        plan = self._plans[batch] = self._decode_plan(batch)
        return plan

    def _decode_plan(self, batch: int) -> DecodePlan | None:
        n = Iteration(decode_sequences=batch, decode_context_tokens=1, logits=batch).counters()
        compute: list[float] = []
        memory: list[float] = []
        e_compute: list[tuple[float, bool]] = []
        e_fixed: list[tuple[float, bool]] = []
        varying: list[tuple[int, float, float]] = []
        for runs_if, simple, linear, energy, _, _, _, general in self._groups:
            if not n[runs_if]:
                continue
            for of, c, m in simple:
                if of == _CONTEXT:
                    varying.append((len(compute), c, m))
                compute.append(c * n[of])
                memory.append(m * n[of])
            for of, c, slow, moves_of, m in linear:
                if _CONTEXT in (of, moves_of):
                    return None
                x = n[of]
                compute.append(c * x if slow is None else c * x * slow[x])
                memory.append(m * n[moves_of])
            for of, e_c, e_b in energy:
                x = n[of]
                e_compute.append((e_c, True) if of == _CONTEXT else (e_c * x, False))
                e_fixed.append((e_b, True) if of == _CONTEXT else (e_b * x, False))
            for _, flops_of, f, e_f, moves, _, _, _, slow, dequant in general:
                if flops_of == _CONTEXT or any(
                    of == _CONTEXT or _CONTEXT in also_of for of, also_of, *_ in moves
                ):
                    return None
                x = n[flops_of]
                compute.append(f * x if slow is None else f * x * slow[x])
                e_compute.append((e_f * x, False))
                if dequant is not None:
                    t_d, e_d = dequant[x]
                    compute[-1] += t_d
                    e_compute.append((e_d, False))
                t = 0.0
                for of, also_of, m, e_b, curve in moves:
                    y = n[of]
                    for i in also_of:
                        y += n[i]
                    if curve is None:
                        t += m * y
                        e_fixed.append((e_b * y, False))
                    else:
                        t_y, e_y = curve[y]
                        t += t_y
                        e_fixed.append((e_y, False))
                memory.append(t)
        if len(varying) != 1:
            return None
        position, c, m = varying[0]
        reference = self.terms(
            Iteration(decode_sequences=batch, decode_context_tokens=1, logits=batch)
        )
        return DecodePlan(
            compute,
            memory,
            position,
            (c, m),
            (e_compute, e_fixed),
            reference.overhead,
            reference.overlap,
        )

    def iteration(self, it: Iteration) -> BatchCost:
        """Cost of one iteration on one chip of the replica (energy is per chip)."""
        return batch_cost(self.rates, self.ops(it), items=it.prefill_tokens + it.decode_sequences)

    def decode_step(self, batch: int, context_tokens: int) -> BatchCost:
        """One decode step for ``batch`` sequences of ``context_tokens`` each."""
        return self.iteration(
            Iteration(
                decode_sequences=batch,
                decode_context_tokens=batch * context_tokens,
                logits=batch,
            )
        )

    def prefill(self, prompt_tokens: int, image_tokens: int = 0) -> BatchCost:
        """A whole prompt in one iteration (it emits the first token)."""
        return self.iteration(
            Iteration(
                prefill_tokens=prompt_tokens,
                prefill_pairs=prefill_pairs(prompt_tokens, 0),
                logits=1,
                image_tokens=image_tokens,
            )
        )


def replica_capacity(
    s: LLMShape, chip: Chip, chips: int, kv_memory_fraction: float
) -> ReplicaCapacity:
    per_chip = s.weight_bytes / chips
    sram = chip.memory.sram
    in_sram = sram is not None and per_chip <= sram.capacity_bytes * (1 - SRAM_ACTIVATION_RESERVE)
    usable = chip.memory.dram.capacity_bytes * kv_memory_fraction
    kv_bytes = chips * usable - (0.0 if in_sram else s.weight_bytes)
    min_chips = max(1, math.floor(s.weight_bytes / usable) + 1)
    return ReplicaCapacity(
        chips=chips,
        weight_bytes_per_chip=per_chip,
        weights_tier="sram" if in_sram else "dram",
        kv_capacity_tokens=max(0, int(kv_bytes // s.kv_bytes_per_token)),
        min_chips=min_chips,
    )
