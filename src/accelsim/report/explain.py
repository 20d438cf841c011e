"""The per-op roofline breakdown of one batch, as a plain JSON-ready document.

Each workload kind builds its own document (a ranking batch; an LLM prefill and decode
step, see :mod:`accelsim.report.kinds`); every document carries its ``kind`` and a
plain-language reading of it (``lesson``).
"""

from __future__ import annotations

from typing import Any

from accelsim.config.schema import Chip, LLMModel, RankingModel, Speculative
from accelsim.errors import AccelsimError
from accelsim.model.llm import LLMCostModel
from accelsim.model.speculative import SpeculativeCost, explain_speculative
from accelsim.report.kinds import kind_named
from accelsim.report.kinds.base import ExplainSetting
from accelsim.report.lesson import lesson


def explain(
    model: RankingModel | LLMModel,
    chip: Chip,
    batch: int,
    *,
    context_tokens: int = 2048,
    prompt_tokens: int = 2048,
    chips_per_replica: int = 1,
    power_cap_w: float | None = None,
    pipeline: int = 1,
    expert: int = 1,
    micro_batches: int | None = None,
    expert_imbalance: float | None = None,
    speculative: Speculative | None = None,
    draft: LLMModel | None = None,
) -> dict[str, Any]:
    """The roofline breakdown of a ranking batch, or of an LLM prefill and decode step,
    with what a power cap (default: TDP) does to its clock and time, and (``lesson``) a
    plain-language reading of it. With ``speculative`` (an LLM), also a speculative step
    of the decode batch (proposed by ``draft``, or by MTP modules) against a plain one."""
    if power_cap_w is not None and power_cap_w <= chip.power.idle_w:
        raise AccelsimError(
            f"a power cap of {power_cap_w:g} W is not above {chip.name}'s idle power "
            f"({chip.power.idle_w:g} W)"
        )
    setting = ExplainSetting(
        batch,
        context_tokens,
        prompt_tokens,
        chips_per_replica,
        pipeline,
        expert,
        micro_batches,
        expert_imbalance,
    )
    doc = kind_named(model.kind).explain(model, chip, setting, power_cap_w)
    if speculative is not None:
        if not isinstance(model, LLMModel):
            raise AccelsimError(f"speculative decoding needs an LLM; {model.name} is ranking")
        cost = SpeculativeCost(LLMCostModel(model, chip, chips_per_replica), speculative, draft)
        if cost.kv_capacity_tokens < 1:
            raise AccelsimError(
                f"{cost.proposer} beside {model.name} leaves no KV cache on "
                f"{chips_per_replica} {chip.name} chip(s)"
            )
        doc["speculative"] = explain_speculative(cost, batch, context_tokens)
    doc["lesson"] = lesson(doc)
    return doc
