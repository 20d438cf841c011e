"""Pipeline (PP) and expert (EP) parallelism of an LLM replica, on top of tensor parallelism.

A replica of ``tensor x pipeline x expert`` chips (a pool's ``chips_per_replica`` and
its ``parallelism`` block) is laid out as:

* ``pipeline`` stages, each holding ``layers / pipeline`` consecutive layers; every
  stage is costed as the last one, which also runs the final norm, the LM head and
  sampling (the first stage's embedding lookup is free; a vision encoder, if any, is
  counted in every stage: a small overestimate, on the safe side).
* ``expert`` data-parallel groups of ``tensor x pipeline`` chips: attention and the
  dense parts run in each group on its share of the batch (tensor-parallel within the
  group), while the routed experts of a mixture of experts are sharded over the groups
  (each chip holds ``experts / expert`` experts, each split ``tensor`` ways); shared
  experts, the router and attention are replicated in every group.

**Pipeline.** An iteration's batch (its tokens: prefill chunks and decoding
sequences) is split into ``m = min(micro_batches, tokens)`` equal micro-batches. A
micro-batch takes one *stage time* per stage: its kernels over the stage's layers, plus
sending its hidden state to the next stage over the chip-to-chip link (``pp.send``:
``d_model`` activations per token, split over the stage's ``tensor`` chips as in
Megatron-LM's scatter/gather, and one link latency). With a synchronous schedule the
iteration takes ``(m + pipeline - 1)`` stage times, of which ``pipeline - 1`` are the
bubble: bubble share = (pipeline - 1) / (m + pipeline - 1). Each chip does the work of
``m`` stage slots, so its dynamic energy is ``m`` micro-batch stages; it idles in the
bubble. Not modelled: micro-batches of the *next* iteration filling this one's bubble
(the engine's iterations stay one after another, as continuous batching needs this
iteration's tokens before it schedules the next: a conservative reading), interleaved
(virtual) stages, and uneven stages.

**Experts.** Each MoE layer pays an all-to-all dispatch and an all-to-all combine
(``ep.alltoall``): each of a group's tokens goes to ``active_experts`` experts, a share
``(expert - 1) / expert`` of them on another group's chips, ``d_model`` activations each
way, split over the ``tensor`` chips; ``expert - 1`` link latencies per all-to-all. The
busiest chip's routed-expert work is ``expert_imbalance`` times the mean (a
configurable factor; its default and source are in the schema), and an iteration waits
for the busiest chip. The chip's expert weights are the experts of its shard the whole
replica's tokens touch. Not modelled: expert replication or rebalancing, and overlap of
the all-to-all with compute.

**Memory.** Weights per chip = (dense weights + routed expert weights / expert) /
(tensor x pipeline); the replica's KV capacity is its chips' usable DRAM less the
weights they hold, in tokens of the whole model's KV (each group holds its own
sequences' KV, split over its stages and tensor chips; the replica's sequences are
taken to spread evenly over the groups).

The confidential mode's link overheads apply through the chip's chip-to-chip link
(a confidential pool's chip already carries them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from accelsim.config.schema import Chip, ContinuousBatching, LLMModel, Parallelism
from accelsim.model.llm import (
    Iteration,
    Kernel,
    Linear,
    LLMCostModel,
    LLMShape,
    Moves,
    ReplicaCapacity,
    shape,
)
from accelsim.model.power import Terms
from accelsim.model.roofline import (
    SRAM_ACTIVATION_RESERVE,
    BatchCost,
    Op,
    Traffic,
    batch_cost,
)


@dataclass(frozen=True)
class Layout:
    """How a replica's chips split the model: tensor x pipeline x expert chips."""

    tensor: int = 1
    pipeline: int = 1
    expert: int = 1
    micro_batches: int = 1
    imbalance: float = 1.0

    @classmethod
    def of(cls, tensor: int, parallelism: Parallelism | None) -> Layout:
        if parallelism is None:
            return cls(tensor)
        p = parallelism
        return cls(tensor, p.pipeline, p.expert, p.micro_batch_count, p.expert_imbalance)

    @property
    def chips(self) -> int:
        return self.tensor * self.pipeline * self.expert

    def __str__(self) -> str:
        return f"tensor {self.tensor} x pipeline {self.pipeline} x expert {self.expert}"


def bubble_share(pipeline: int, micro_batches: int) -> float:
    """Share of a synchronous pipeline's iteration its stages idle: (p - 1) / (m + p - 1)."""
    return (pipeline - 1) / (micro_batches + pipeline - 1)


def layout_problem(model: LLMModel, layout: Layout) -> tuple[str, str] | None:
    """(field under ``parallelism``, message) when the model cannot be split this way."""
    if model.layers % layout.pipeline:
        return (
            "pipeline",
            f"{layout.pipeline} pipeline stages do not divide the {model.layers} layers "
            f"of {model.name}",
        )
    if layout.expert > 1:
        if model.moe is None:
            return (
                "expert",
                f"expert parallelism needs a mixture of experts; {model.name} is dense",
            )
        if model.moe.experts % layout.expert:
            return (
                "expert",
                f"expert degree {layout.expert} does not divide the {model.moe.experts} "
                f"experts of {model.name}",
            )
    return None


def routed_expert_bytes(s: LLMShape) -> float:
    """Bytes of the routed experts (not the shared ones) over all layers."""
    return s.layers * s.experts * s.expert_params * s.weight_bytes_per_param


def weight_bytes_per_chip(s: LLMShape, layout: Layout) -> float:
    """(dense weights + routed experts / expert) / (tensor x pipeline)."""
    routed = routed_expert_bytes(s)
    dense = s.weight_bytes - routed
    return (dense + routed / layout.expert) / (layout.tensor * layout.pipeline)


def parallel_capacity(
    s: LLMShape, chip: Chip, layout: Layout, kv_memory_fraction: float
) -> ReplicaCapacity:
    """Weights per chip, where they sit, and the replica's KV capacity in tokens."""
    per_chip = weight_bytes_per_chip(s, layout)
    sram = chip.memory.sram
    in_sram = sram is not None and per_chip <= sram.capacity_bytes * (1 - SRAM_ACTIVATION_RESERVE)
    usable = chip.memory.dram.capacity_bytes * kv_memory_fraction
    chips = layout.chips
    kv_bytes = chips * (usable - (0.0 if in_sram else per_chip))
    return ReplicaCapacity(
        chips=chips,
        weight_bytes_per_chip=per_chip,
        weights_tier="sram" if in_sram else "dram",
        kv_capacity_tokens=max(0, int(kv_bytes // s.kv_bytes_per_token)),
        min_chips=max(1, math.floor(s.weight_bytes / usable) + 1),
    )


def parallel_kernels(
    s: LLMShape, chip: Chip, tensor: int, expert: int, stages: int, adt: str
) -> tuple[Kernel, ...]:
    """The expert all-to-all (a mixture of experts, ``expert`` > 1) and the pipeline
    send (``stages`` > 1) of one stage of one group, per chip, in the activation dtype
    ``adt`` (``s`` is the stage's shape: its layers)."""
    link = chip.chip_to_chip
    if link is None:
        raise ValueError(
            f"chip {chip.name} has no chip_to_chip link for pipeline or expert parallelism"
        )
    d, ab, k = s.d_model, s.act_bytes, float(tensor)
    out: list[Kernel] = []
    if expert > 1 and s.experts:
        # Dispatch and combine: each token's activations to and from its routed experts,
        # the share (expert - 1) / expert of them on other groups' chips.
        routed = s.active_experts * (expert - 1) / expert
        out.append(
            Kernel(
                "ep.alltoall",
                "collective",
                "vector",
                adt,
                runs_if="tokens",
                flops=Linear(0.0, "tokens"),
                moves=(
                    Moves("link", "stream", Linear(2 * s.layers * routed * d * ab, "tokens", k)),
                ),
                launches=2 * s.layers,
                fixed_latency_s=2 * s.layers * (expert - 1) * link.latency_s,
            )
        )
    if stages > 1:
        out.append(
            Kernel(
                "pp.send",
                "collective",
                "vector",
                adt,
                runs_if="tokens",
                flops=Linear(0.0, "tokens"),
                moves=(Moves("link", "stream", Linear(d * ab, "tokens", k)),),
                launches=1,
                fixed_latency_s=link.latency_s,
            )
        )
    return tuple(out)


def _scaled(op: Op, n: int) -> Op:
    """An op run ``n`` times (once per micro-batch), as one op."""
    if n == 1:
        return op
    return dataclasses.replace(
        op,
        flops=op.flops * n,
        traffic=tuple(Traffic(t.tier, t.pattern, t.bytes * n) for t in op.traffic),
        fixed_latency_s=op.fixed_latency_s * n,
        launches=op.launches * n,
    )


class ParallelCostModel(LLMCostModel):
    """Iteration costs of an LLM on a ``tensor x pipeline x expert`` replica (see the
    module docstring): the base model's kernels for one stage of one group on one
    micro-batch, times the pipeline's stage slots. ``shape``, ``capacity`` and
    ``chips`` are the whole replica's; ``stage_shape`` is one stage's."""

    def __init__(
        self,
        model: LLMModel,
        chip: Chip,
        layout: Layout,
        serving: ContinuousBatching | None = None,
    ):
        serving = serving or ContinuousBatching()
        stage = model.model_copy(update={"layers": model.layers // layout.pipeline})
        super().__init__(
            stage,
            chip,
            layout.tensor,
            serving.model_copy(update={"iteration_overhead_s": 0.0}),
            expert=layout.expert,
            imbalance=layout.imbalance,
            stages=layout.pipeline,
        )
        self.layout = layout
        self.stage_shape = self.shape
        self.model = model
        self.serving = serving
        self.chips = layout.chips
        self.shape = shape(model)
        self.capacity = parallel_capacity(self.shape, chip, layout, serving.kv_memory_fraction)
        self._replica_host_s = serving.iteration_overhead_s

    def micro_batches(self, it: Iteration) -> int:
        """Micro-batches the iteration is split into: at most one per token."""
        if self.layout.pipeline == 1:
            return 1
        return max(1, min(self.layout.micro_batches, it.prefill_tokens + it.decode_sequences))

    def _micro_batch(self, it: Iteration, m: int) -> Iteration:
        """One micro-batch of one group: the iteration's counters over m x expert."""
        split = m * self.layout.expert
        return it if split == 1 else Iteration._make(x / split for x in it)

    def terms(self, it: Iteration) -> Terms:
        """(m + pipeline - 1) stage times of one micro-batch; m of them draw energy."""
        m = self.micro_batches(it)
        stage = super().terms(self._micro_batch(it, m))
        slots = m + self.layout.pipeline - 1
        return Terms(
            [c * slots for c in stage.compute],
            [b * slots for b in stage.memory],
            stage.overhead * slots + self._replica_host_s,
            stage.compute_energy * m,
            stage.fixed_energy * m,
            stage.overlap,
        )

    def decode_plan(self, batch: int) -> None:
        """No closed-form decode plan: the engine evaluates :meth:`terms` at a span's ends."""
        return None

    def ops(self, it: Iteration) -> list[Op]:
        """The stage's ops for the iteration's m micro-batches, then the pipeline bubble
        (``pp.bubble``: pipeline - 1 stage times at the nominal clock) and the host."""
        m = self.micro_batches(it)
        stage = super().ops(self._micro_batch(it, m))
        out = [_scaled(op, m) for op in stage]
        if self.layout.pipeline > 1:
            stage_s = batch_cost(self.rates, stage, 0).time_s
            bubble = (self.layout.pipeline - 1) * stage_s
            out.append(Op("pp.bubble", "overhead", "vector", "fp32", 0.0, (), bubble, 0))
        if self._replica_host_s:
            out.append(Op("host", "overhead", "vector", "fp32", 0.0, (), self._replica_host_s, 0))
        return out


def layouts_that_fit(
    model: LLMModel,
    chip: Chip,
    kv_memory_fraction: float,
    need_tokens: int = 1,
    max_chips: int = 64,
) -> list[Layout]:
    """The smallest layouts (tensor, pipeline, expert powers of two the model divides
    into) whose replica holds the weights and ``need_tokens`` of KV, fewest chips first."""
    s = shape(model)
    powers = [2**i for i in range(int(math.log2(max_chips)) + 1)]
    found = []
    for tp in powers:
        for pp in (p for p in powers if model.layers % p == 0):
            experts = (
                [1] if model.moe is None else [e for e in powers if model.moe.experts % e == 0]
            )
            for ep in experts:
                layout = Layout(tp, pp, ep)
                if layout.chips > max_chips or (layout.chips > 1 and chip.chip_to_chip is None):
                    continue
                cap = parallel_capacity(s, chip, layout, kv_memory_fraction)
                if cap.kv_capacity_tokens >= need_tokens:
                    found.append(layout)
    return sorted(found, key=lambda lay: (lay.chips, lay.pipeline, lay.expert))


def fit_message(
    model: LLMModel, chip: Chip, layout: Layout, kv_memory_fraction: float, need_tokens: int = 1
) -> str:
    """Why a replica of ``layout`` cannot take the model with ``need_tokens`` of KV, and
    the smallest layouts that can."""
    s = shape(model)
    cap = parallel_capacity(s, chip, layout, kv_memory_fraction)
    usable = chip.memory.dram.capacity_bytes * kv_memory_fraction
    fits = layouts_that_fit(model, chip, kv_memory_fraction, need_tokens)[:3]
    hint = (
        "; layouts that fit: " + ", ".join(f"{f} ({f.chips} chips)" for f in fits)
        if fits
        else f"; no layout of up to 64 {chip.name} chips fits"
    )
    if cap.kv_capacity_tokens < 1:
        why = (
            f"{cap.weight_bytes_per_chip / 2**30:.1f} GiB of weights per chip leave no room "
            f"for KV in {usable / 2**30:.1f} GiB usable"
        )
    else:
        why = f"it holds {cap.kv_capacity_tokens} KV tokens, fewer than {need_tokens}"
    return (
        f"{model.name} does not fit a replica of {layout} = {layout.chips} {chip.name} "
        f"chip(s): {why}{hint}"
    )


def parallel_terms(cost: BatchCost, micro_batches: int, layout: Layout) -> dict[str, float]:
    """What pipeline and expert parallelism add to an iteration's cost on one chip (from
    :meth:`ParallelCostModel.iteration`): the bubble, the stage-to-stage activation
    transfer and the expert all-to-all, in bytes and seconds."""
    by_name = {c.op.name: c for c in cost.ops}

    def part(name: str) -> tuple[float, float]:
        c = by_name.get(name)
        return (0.0, 0.0) if c is None else (c.op.bytes, c.time_s)

    send_bytes, send_s = part("pp.send")
    a2a_bytes, a2a_s = part("ep.alltoall")
    _, bubble_s = part("pp.bubble")
    return {
        "micro_batches": micro_batches,
        "stage_slots": micro_batches + layout.pipeline - 1,
        "bubble_share": bubble_share(layout.pipeline, micro_batches),
        "bubble_s": bubble_s,
        "activation_transfer_bytes": send_bytes,
        "activation_transfer_s": send_s,
        "alltoall_bytes": a2a_bytes,
        "alltoall_s": a2a_s,
    }
