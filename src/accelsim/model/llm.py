"""Cost of LLM inference iterations on a tensor-parallel replica.

One *iteration* of continuous batching runs, for every sequence in the batch,
either a chunk of its prompt (prefill) or one new token (decode). Its cost on
a replica of ``k`` chips (k-way tensor parallelism: every chip holds 1/k of
every weight matrix and of every sequence's KV cache) is the cost of these ops
on one chip:

* ``vision_encoder`` (multimodal prompts): 2 x encoder params FLOPs per image
  token, encoder weights read once.
* ``gemm.body``: the transformer's matmuls for every token processed,
  2 x active params FLOPs per token; weights read once per iteration (for a
  mixture of experts, only the experts the batch's tokens touch).
* ``attention``: query-key and attention-value products, 4 x layers x
  (heads x head_dim) FLOPs per (query, key) pair; every sequence's KV cache is
  read, and each new token's KV written.
* ``lm_head``: logits for each sequence that emits a token, 2 x d_model x vocab.
* ``allreduce`` (k > 1): two ring all-reduces of the activations per layer over
  the chip-to-chip link: 2(k-1)/k of the bytes cross each chip's link, with
  2(k-1) link latencies per all-reduce.

Decode reads all weights for a handful of tokens, so it sits far left of the
ridge point (memory-bound) until the batch grows to hundreds of sequences;
prefill processes hundreds of tokens per weight read, so it is compute-bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.config.schema import DTYPE_BYTES, Chip, LLMModel
from accelsim.model.power import Terms
from accelsim.model.roofline import (
    SRAM_ACTIVATION_RESERVE,
    BatchCost,
    ChipRates,
    Op,
    Tier,
    Traffic,
    batch_cost,
)

GEMM_LAUNCHES_PER_LAYER = 4  # qkv projection, output projection, FFN up(+gate), FFN down


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
    weight_bytes_per_param: int
    kv_bytes_per_token: float  # whole model (all layers, K and V)
    act_bytes: int

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
        return self.total_params * self.weight_bytes_per_param

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
        weight_bytes_per_param=DTYPE_BYTES[model.weight_dtype],
        kv_bytes_per_token=2.0 * model.layers * kv_dim * DTYPE_BYTES[model.kv_dtype],
        act_bytes=DTYPE_BYTES[model.weight_dtype],
    )


@dataclass(frozen=True, slots=True)
class Iteration:
    """What one continuous-batching iteration does, as aggregates over its sequences."""

    prefill_tokens: int = 0  # new prompt tokens processed
    prefill_pairs: float = 0.0  # causal (query, key) pairs of the prefill chunks
    prefill_context_tokens: int = 0  # earlier KV the chunks attend to (chunked prefill)
    decode_sequences: int = 0
    decode_context_tokens: int = 0  # KV tokens read by the decoding sequences
    logits: int = 0  # sequences that emit a token this iteration
    image_tokens: int = 0


def prefill_pairs(new_tokens: int, context_tokens: int) -> float:
    """(query, key) pairs when ``new_tokens`` attend causally after ``context_tokens``."""
    return new_tokens * (context_tokens + (new_tokens + 1) / 2.0)


@dataclass(frozen=True)
class ReplicaCapacity:
    chips: int
    weight_bytes_per_chip: float
    weights_tier: Tier
    kv_capacity_tokens: int  # per replica
    min_chips: int  # smallest replica whose DRAM holds the weights with room for KV


class LLMCostModel:
    """Iteration costs of one LLM on a replica of ``chips`` identical chips."""

    def __init__(
        self, model: LLMModel, chip: Chip, chips: int = 1, kv_memory_fraction: float = 0.9
    ):
        self.model = model
        self.chip = chip
        self.chips = chips
        self.rates = ChipRates(chip)
        self.shape = shape(model)
        self.capacity = replica_capacity(self.shape, chip, chips, kv_memory_fraction)
        link = chip.chip_to_chip
        if chips > 1 and link is None:
            raise ValueError(f"chip {chip.name} has no chip_to_chip link for tensor parallelism")
        self._link = link

    def ops(self, it: Iteration) -> list[Op]:
        s, k = self.shape, float(self.chips)
        wt = self.capacity.weights_tier
        dtype = self.model.weight_dtype
        tokens = it.prefill_tokens + it.decode_sequences
        ops: list[Op] = []
        if it.image_tokens and s.vision_params:
            ops.append(
                Op(
                    "vision_encoder",
                    "gemm",
                    "matrix",
                    dtype,
                    2.0 * s.vision_params * it.image_tokens / k,
                    (Traffic(wt, "stream", s.vision_params * s.weight_bytes_per_param / k),),
                    launches=s.layers,
                )
            )
        if tokens:
            ops.append(
                Op(
                    "gemm.body",
                    "gemm",
                    "matrix",
                    dtype,
                    2.0 * s.active_params_per_token * tokens / k,
                    (Traffic(wt, "stream", s.body_weight_bytes(tokens) / k),),
                    launches=GEMM_LAUNCHES_PER_LAYER * s.layers,
                )
            )
            pairs = it.prefill_pairs + it.decode_context_tokens
            kv_read = it.prefill_context_tokens + it.prefill_tokens + it.decode_context_tokens
            ops.append(
                Op(
                    "attention",
                    "attention",
                    "matrix",
                    self.model.kv_dtype,
                    4.0 * s.layers * s.q_dim * pairs / k,
                    (
                        Traffic("dram", "stream", kv_read * s.kv_bytes_per_token / k),
                        Traffic("dram", "stream", tokens * s.kv_bytes_per_token / k),
                    ),
                    launches=s.layers,
                )
            )
        if it.logits:
            ops.append(
                Op(
                    "lm_head",
                    "gemm",
                    "matrix",
                    dtype,
                    2.0 * s.d_model * s.vocab * it.logits / k,
                    (Traffic(wt, "stream", s.d_model * s.vocab * s.weight_bytes_per_param / k),),
                )
            )
        if self.chips > 1 and tokens and self._link is not None:
            reduces = 2 * s.layers
            steps = 2 * (self.chips - 1)
            moved = reduces * steps / k * tokens * s.d_model * s.act_bytes
            ops.append(
                Op(
                    "allreduce",
                    "collective",
                    "vector",
                    dtype,
                    reduces * tokens * s.d_model * (self.chips - 1) / k,
                    (Traffic("link", "stream", moved),),
                    fixed_latency_s=reduces * steps * self._link.latency_s,
                    launches=0,
                )
            )
        return ops

    def _prepare_fast(self) -> None:
        """Constants of :meth:`terms`, which mirrors :meth:`ops` without building objects."""
        r, s, k = self.rates, self.shape, float(self.chips)
        wt = r.tiers[self.capacity.weights_tier]
        dram = r.tiers["dram"]
        wdt, kdt = self.model.weight_dtype, self.model.kv_dtype
        ko = r.kernel_overhead_s
        self._f_body = 2.0 * s.active_params_per_token / k / r.matrix_flops_per_s(wdt)
        self._e_body = 2.0 * s.active_params_per_token / k * r.energy_per_flop_j("matrix", wdt)
        self._wt_bw, self._wt_e = wt.stream_bytes_per_s, wt.energy_per_byte_j
        self._o_body = ko * GEMM_LAUNCHES_PER_LAYER * s.layers
        attn_flops = 4.0 * s.layers * s.q_dim / k
        self._f_attn = attn_flops / r.matrix_flops_per_s(kdt)
        self._e_attn = attn_flops * r.energy_per_flop_j("matrix", kdt)
        kv = s.kv_bytes_per_token / k
        self._m_kv, self._e_kv = kv / dram.stream_bytes_per_s, kv * dram.energy_per_byte_j
        self._o_attn = ko * s.layers
        head_flops = 2.0 * s.d_model * s.vocab / k
        self._f_head = head_flops / r.matrix_flops_per_s(wdt)
        self._e_head = head_flops * r.energy_per_flop_j("matrix", wdt)
        self._b_head = s.d_model * s.vocab * s.weight_bytes_per_param / k
        vision_flops = 2.0 * s.vision_params / k
        self._f_vis = vision_flops / r.matrix_flops_per_s(wdt)
        self._e_vis = vision_flops * r.energy_per_flop_j("matrix", wdt)
        self._b_vis = s.vision_params * s.weight_bytes_per_param / k
        self._body_bytes: dict[int, float] = {}
        self._ar: tuple[float, float, float, float, float] | None = None
        if self.chips > 1 and self._link is not None:
            link = r.tiers["link"]
            reduces, steps = 2 * s.layers, 2 * (self.chips - 1)
            ar_flops = reduces * s.d_model * (self.chips - 1) / k
            ar_bytes = reduces * steps / k * s.d_model * s.act_bytes
            self._ar = (
                ar_flops / r.vector_flops_per_s,
                ar_bytes / link.stream_bytes_per_s,
                ar_flops * r.energy_per_flop_j("vector", wdt),
                ar_bytes * link.energy_per_byte_j,
                reduces * steps * self._link.latency_s,
            )

    def terms(self, it: Iteration) -> Terms:
        """The iteration's clock-dependent terms, equal to ``Terms.of(self.iteration(it))``
        but about ten times faster (the engine calls this once per iteration)."""
        if not hasattr(self, "_f_body"):
            self._prepare_fast()
        compute: list[float] = []
        memory: list[float] = []
        overhead = 0.0
        e_compute = 0.0
        e_fixed = 0.0
        tokens = it.prefill_tokens + it.decode_sequences
        if it.image_tokens and self.shape.vision_params:
            compute.append(self._f_vis * it.image_tokens)
            memory.append(self._b_vis / self._wt_bw)
            overhead += self._o_attn
            e_compute += self._e_vis * it.image_tokens
            e_fixed += self._b_vis * self._wt_e
        if tokens:
            body = self._body_bytes.get(tokens)
            if body is None:
                body = self.shape.body_weight_bytes(tokens) / self.chips
                self._body_bytes[tokens] = body
            compute.append(self._f_body * tokens)
            memory.append(body / self._wt_bw)
            overhead += self._o_body
            e_compute += self._e_body * tokens
            e_fixed += body * self._wt_e
            pairs = it.prefill_pairs + it.decode_context_tokens
            kv_tokens = (
                it.prefill_context_tokens + it.prefill_tokens + it.decode_context_tokens + tokens
            )
            compute.append(self._f_attn * pairs)
            memory.append(self._m_kv * kv_tokens)
            overhead += self._o_attn
            e_compute += self._e_attn * pairs
            e_fixed += self._e_kv * kv_tokens
        if it.logits:
            compute.append(self._f_head * it.logits)
            memory.append(self._b_head / self._wt_bw)
            overhead += self.rates.kernel_overhead_s
            e_compute += self._e_head * it.logits
            e_fixed += self._b_head * self._wt_e
        if self._ar is not None and tokens:
            f, m, e_flops, e_bytes, latency = self._ar
            compute.append(f * tokens)
            memory.append(m * tokens)
            overhead += latency
            e_compute += e_flops * tokens
            e_fixed += e_bytes * tokens
        return Terms(compute, memory, overhead, e_compute, e_fixed)

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
