"""Cost of speculative decoding on an LLM replica.

A *speculative step* replaces one decode step of a batch of ``B`` sequences
holding ``C`` KV tokens between them (Leviathan et al., "Fast Inference from
Transformers via Speculative Decoding", ICML 2023; Chen et al., "Accelerating
Large Language Model Decoding with Speculative Sampling", 2023):

* ``k`` *draft* decode steps of the proposer, each one token per sequence:
  step ``j`` reads the proposer's weights once and ``C + j x B`` tokens of its
  KV cache (:meth:`LLMCostModel.terms` of a decode iteration of the proposer);
* one *verify* step of the target over ``k + 1`` tokens per sequence (the last
  accepted token and the ``k`` proposals): the target's weights read once,
  ``B (k + 1)`` tokens through every GEMM, each writing its KV, attention of
  the ``k + 1`` queries over the sequence's context and causally among
  themselves (the prefill attention kernel, as a chunk of ``k + 1`` tokens is
  what serving stacks verify), and logits and sampling for every position.

Prefill chunks that share the iteration run in the verify step, and in the
first draft step (the proposer needs the prompt's KV too). A verify step is not
replayed from a captured graph; draft steps are when the pool captures decode.
Every iteration, the proposer's included, pays the pool's host overhead.

The proposer is either

* a *draft model*: another model file, on the same replica (same chips and
  tensor-parallel degree), with weights and a KV cache of its own; or
* ``m`` *multi-token-prediction modules* on the target (DeepSeek-AI,
  "DeepSeek-V3 Technical Report", 2024, section 2.2): each one transformer
  layer of the target's shapes plus a ``2d x d`` projection, sharing the
  target's embedding and LM head. A draft step is the cost of a one-layer
  decode of the target's shapes with its LM head (:func:`mtp_model`); the
  projection's ``2 d^2`` FLOPs per token (a few per cent of a layer's) are
  counted in the modules' weights but not as a kernel. ``k`` may exceed ``m``:
  the modules are then reused in turn, so a step's cost does not depend on
  ``m``, only the memory does.

Each proposed token is accepted with probability ``a``, independently, until
the first rejection; the verify step adds one token of its own (the target's
correction, or the bonus token after ``k`` acceptances). A sequence thus
advances by ``j + 1`` tokens with probability ``a^j (1 - a)`` for ``j < k``
and ``a^k`` for ``j = k``: ``(1 - a^(k+1)) / (1 - a)`` tokens a step on
average (Leviathan et al., equation 1).

KV memory: the proposer's weights (in DRAM unless they fit SRAM) come out of
the replica's memory, and every KV token of a sequence costs the target's and
the proposer's KV bytes. A sequence also holds ``k`` lookahead slots for the
proposals a verify step writes before it knows which are kept.
"""

from __future__ import annotations

from typing import NamedTuple

from accelsim.config.schema import LLMModel, Speculative
from accelsim.model.llm import Iteration, LLMCostModel
from accelsim.model.power import Terms


def expected_tokens_per_step(tokens: int, acceptance: float) -> float:
    """Mean tokens a sequence advances per speculative step: (1 - a^(k+1)) / (1 - a)."""
    if acceptance >= 1.0:
        return float(tokens + 1)
    return (1.0 - acceptance ** (tokens + 1)) / (1.0 - acceptance)


def tokens_distribution(tokens: int, acceptance: float) -> list[float]:
    """Probability that a step advances a sequence by 1, 2, ..., k + 1 tokens."""
    a = acceptance
    return [a**j * (1.0 - a) for j in range(tokens)] + [a**tokens]


def mtp_model(target: LLMModel) -> LLMModel:
    """One multi-token-prediction module of ``target``: one layer of its shapes with its
    LM head, as a model whose decode iteration is the module's draft step."""
    return target.model_copy(
        update={
            "name": f"{target.name}-mtp",
            "description": f"one multi-token-prediction module of {target.name}",
            "layers": 1,
            "vision": None,
        }
    )


class SpeculativeStep(NamedTuple):
    """A speculative iteration: its terms, and the nominal-clock time of its draft steps
    and of its verify step."""

    terms: Terms
    draft_s: float
    verify_s: float


def combine(parts: list[Terms]) -> Terms:
    """Terms run one after another on the same chip, as one iteration's terms."""
    compute: list[float] = []
    memory: list[float] = []
    for t in parts:
        compute += t.compute
        memory += t.memory
    return Terms(
        compute,
        memory,
        sum(t.overhead for t in parts),
        sum(t.compute_energy for t in parts),
        sum(t.fixed_energy for t in parts),
        parts[0].overlap,
    )


class SpeculativeCost:
    """Speculative steps of a target (``cost``) with a proposer: a draft model, or
    ``spec.mtp_heads`` MTP modules of the target when ``draft`` is None."""

    def __init__(self, cost: LLMCostModel, spec: Speculative, draft: LLMModel | None) -> None:
        self.target = cost
        self.tokens = spec.tokens
        self.acceptance = spec.acceptance_rate
        proposer = draft if draft is not None else mtp_model(cost.model)
        self.draft = LLMCostModel(proposer, cost.chip, cost.chips, cost.serving)
        ds = self.draft.shape
        if draft is not None:
            self.proposer = f"draft model {draft.name}"
            self.draft_weight_bytes = ds.weight_bytes
            self.draft_kv_bytes_per_token = ds.kv_bytes_per_token
        else:
            heads = spec.mtp_heads or 1
            self.proposer = f"{heads} MTP module(s) of {cost.model.name}"
            layer_params = ds.total_params - ds.embedding_params - ds.lm_head_params
            projection = 2.0 * ds.d_model * ds.d_model
            self.draft_weight_bytes = (
                heads * (layer_params + projection) * ds.weight_bytes_per_param
            )
            self.draft_kv_bytes_per_token = heads * ds.kv_bytes_per_token
        self.kv_capacity_tokens = self._capacity()

    def _capacity(self) -> int:
        """KV tokens a replica holds with the proposer's weights and KV beside the target's."""
        target = self.target
        usable = target.chip.memory.dram.capacity_bytes * target.serving.kv_memory_fraction
        in_dram = 0.0 if target.capacity.weights_tier == "sram" else target.shape.weight_bytes
        if self.draft.capacity.weights_tier != "sram":
            in_dram += self.draft_weight_bytes
        per_token = target.shape.kv_bytes_per_token + self.draft_kv_bytes_per_token
        return max(0, int((target.chips * usable - in_dram) // per_token))

    def step(self, it: Iteration) -> SpeculativeStep:
        """The speculative iteration that replaces the iteration ``it``: its decoding
        sequences each verify ``k + 1`` tokens, its prefill chunks run as they are."""
        k = self.tokens
        batch = it.decode_sequences
        context = it.decode_context_tokens
        chunk_logits = it.logits - batch
        plan = self.draft.decode_plan(batch)  # the draft's decode-only steps, memoised
        drafts = []
        for j in range(k):
            at = context + j * batch
            if j == 0 and it.prefill_tokens:
                draft_it = Iteration(
                    prefill_tokens=it.prefill_tokens,
                    prefill_pairs=it.prefill_pairs,
                    prefill_context_tokens=it.prefill_context_tokens,
                    decode_sequences=batch,
                    decode_context_tokens=at,
                    logits=batch + chunk_logits,
                )
                drafts.append(self.draft.terms(draft_it))
            elif plan is not None:
                drafts.append(plan.terms(at))
            else:
                drafts.append(
                    self.draft.terms(
                        Iteration(decode_sequences=batch, decode_context_tokens=at, logits=batch)
                    )
                )
        verify = self.target.terms(
            Iteration(
                prefill_tokens=it.prefill_tokens + batch * (k + 1),
                prefill_pairs=it.prefill_pairs
                + (k + 1) * context
                + batch * (k + 1) * (k + 2) / 2.0,
                prefill_context_tokens=it.prefill_context_tokens + context,
                logits=chunk_logits + batch * (k + 1),
                image_tokens=it.image_tokens,
            )
        )
        terms = combine([*drafts, verify])
        # Times add up op by op, so the draft steps' time is the step's less the verify's.
        verify_s = verify.time(1.0)
        return SpeculativeStep(terms, terms.time(1.0) - verify_s, verify_s)


def explain_speculative(
    cost: SpeculativeCost, batch: int, context_tokens: int
) -> dict[str, str | float]:
    """A speculative decode step of ``batch`` sequences of ``context_tokens`` each against a
    plain decode step: times at the nominal clock, per step and per token generated."""
    it = Iteration(
        decode_sequences=batch, decode_context_tokens=batch * context_tokens, logits=batch
    )
    plain_s = cost.target.terms(it).time(1.0)
    step = cost.step(it)
    expected = expected_tokens_per_step(cost.tokens, cost.acceptance)
    step_s = step.terms.time(1.0)
    return {
        "proposer": cost.proposer,
        "tokens": cost.tokens,
        "acceptance_rate": cost.acceptance,
        "draft_s": step.draft_s,
        "verify_s": step.verify_s,
        "step_s": step_s,
        "expected_tokens_per_step": expected,
        "time_per_token_s": step_s / expected,
        "plain_decode_step_s": plain_s,
        "speedup": plain_s / (step_s / expected),
        "draft_weight_bytes": cost.draft_weight_bytes,
        "kv_capacity_tokens": cost.kv_capacity_tokens,
        "plain_kv_capacity_tokens": cost.target.capacity.kv_capacity_tokens,
    }
