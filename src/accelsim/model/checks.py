"""Checks of a resolved scenario that need the cost model: can each pool run what it serves?

``scenario_problems`` is the whole list a run would refuse, in the order the
engine finds them, so ``validate --configs`` and ``run`` agree on every file.

An LLM pool must also be able to take the largest request its workload can send
(:func:`largest_sequences`): a replica rejects a sequence whose prompt and output
need more KV cache than it has, and with ``chunked_prefill: false`` a prompt longer
than ``max_batch_tokens`` is only prefilled alone, once everything else on the
replica has finished. The largest size of a distribution is its bound: ``value``,
``high``, the last of ``quantiles``, or ``max``; a ``lognormal`` or ``exponential``
without a ``max`` of its own counts as reaching its one-in-a-million quantile
(``UNBOUNDED_QUANTILE``), as its default ``max`` (10^6 or 10^7) says nothing about
the workload. A trace's ``prompt_tokens`` and ``output_tokens`` columns count by
their largest row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

from accelsim.config.checks import (
    arrival_budget_problems,
    loadgen_sketch_problems,
    memory_budget_problems,
)
from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import (
    EmpiricalSize,
    ExponentialSize,
    FixedSize,
    LLMModel,
    LLMWorkload,
    LognormalSize,
    SizeDistribution,
    UniformSize,
)
from accelsim.errors import Problem
from accelsim.model.llm import LLMCostModel
from accelsim.model.parallel import (
    Layout,
    ParallelCostModel,
    fit_message,
    layout_problem,
)
from accelsim.model.power import clock_policies
from accelsim.model.quant import fp4_problem
from accelsim.model.speculative import SpeculativeCost

UNBOUNDED_QUANTILE = 1 - 1e-6


def llm_replica_cost(
    resolved: ResolvedScenario, pool_name: str, model: LLMModel
) -> tuple[LLMCostModel | None, Problem | None]:
    """A pool's replica cost model, or a located problem when the model cannot run there."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    dtype_problem = fp4_problem(model.weight_dtype, chip)
    if dtype_problem is not None:
        return None, resolved.problem(("pools", pool_name, "chip"), dtype_problem)
    if pool.parallelism is not None:
        return parallel_replica_cost(resolved, pool_name, model)
    k = pool.chips_per_replica
    at = ("pools", pool_name, "chips_per_replica")
    if k > 1 and chip.chip_to_chip is None:
        return None, resolved.problem(
            at, f"{chip.name} has no chip_to_chip link for tensor parallelism"
        )
    cost = LLMCostModel(model, chip, k, pool.continuous_batching)
    if cost.capacity.kv_capacity_tokens < 1:
        need = cost.capacity.min_chips
        return None, resolved.problem(
            at,
            f"{model.name} ({cost.shape.weight_bytes / 2**30:.1f} GiB of weights) does not "
            f"fit the DRAM of a replica of {k} {chip.name} chip(s); "
            f"it needs chips_per_replica >= {need}"
            + ("" if chip.chip_to_chip else " (and a chip with a chip_to_chip link)"),
        )
    return cost, None


def parallel_replica_cost(
    resolved: ResolvedScenario, pool_name: str, model: LLMModel
) -> tuple[LLMCostModel | None, Problem | None]:
    """:func:`llm_replica_cost` for a pool with a ``parallelism`` block."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
    layout = Layout.of(pool.chips_per_replica, pool.parallelism)
    at = ("pools", pool_name, "parallelism")
    wrong = layout_problem(model, layout)
    if wrong is not None:
        return None, resolved.problem((*at, wrong[0]), wrong[1])
    if layout.chips > 1 and chip.chip_to_chip is None:
        return None, resolved.problem(
            at, f"{chip.name} has no chip_to_chip link for a replica of {layout}"
        )
    fraction = pool.continuous_batching.kv_memory_fraction
    cost = ParallelCostModel(model, chip, layout, pool.continuous_batching)
    if cost.capacity.kv_capacity_tokens < 1:
        return None, resolved.problem(at, fit_message(model, chip, layout, fraction))
    return cost, None


def llm_speculative_cost(
    resolved: ResolvedScenario, pool_name: str, name: str, cost: LLMCostModel
) -> tuple[SpeculativeCost | None, Problem | None]:
    """The speculative steps of workload ``name`` on a pool's replica (None when it decodes
    one token a step), or a located problem when the proposer leaves no room for KV."""
    wl = resolved.scenario.workloads[name]
    if not isinstance(wl, LLMWorkload) or wl.speculative is None:
        return None, None
    spec = SpeculativeCost(cost, wl.speculative, resolved.drafts.get(name))
    if spec.kv_capacity_tokens < 1 + wl.speculative.tokens:
        pool = resolved.scenario.pools[pool_name]
        return None, resolved.problem(
            ("workloads", name, "speculative"),
            f"with {spec.proposer} ({spec.draft_weight_bytes / 2**30:.1f} GiB) beside "
            f"{cost.model.name}, a replica of {pool.chips_per_replica} "
            f"{resolved.chips[pool_name].name} chip(s) has no room for KV cache: "
            "raise chips_per_replica",
        )
    return spec, None


@dataclass(frozen=True)
class Tokens:
    """A largest token count and what sets it, for messages ("prompt_tokens.max 16000")."""

    count: int
    source: str

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.count + other.count, f"{self.source} + {other.source}")


def size_bound(dist: SizeDistribution, at: str) -> Tokens:
    """The largest size a distribution at field ``at`` draws (see the module docstring)."""
    if isinstance(dist, FixedSize):
        return Tokens(dist.value, f"{at}.value {dist.value}")
    if isinstance(dist, UniformSize):
        return Tokens(dist.high, f"{at}.high {dist.high}")
    if isinstance(dist, EmpiricalSize):
        return Tokens(dist.quantiles[-1][1], f"{at}.quantiles {dist.quantiles[-1][1]}")
    if "max" in dist.model_fields_set:
        return Tokens(dist.max, f"{at}.max {dist.max}")
    if isinstance(dist, LognormalSize):
        tail = dist.median * math.exp(dist.sigma * NormalDist().inv_cdf(UNBOUNDED_QUANTILE))
    else:
        assert isinstance(dist, ExponentialSize)
        tail = -dist.mean * math.log(1 - UNBOUNDED_QUANTILE)
    count = min(dist.max, max(1, math.ceil(tail)))
    return Tokens(count, f"{at} {count}, its one-in-a-million quantile as it sets no max")


def _column_bound(resolved: ResolvedScenario, name: str, column: str) -> Tokens | None:
    """The largest value of a trace's size column, if the workload replays a trace with it."""
    trace = resolved.traces.get(name)
    values = None if trace is None else trace.sizes.get(column)
    if trace is None or values is None or not len(values):
        return None
    row = int(values.argmax())
    return Tokens(
        int(values[row]), f"{column} {int(values[row])} in data row {row + 1} of {trace.source}"
    )


@dataclass(frozen=True)
class LargestSequence:
    """The largest sequence of one kind a workload sends: prompt, and tokens generated."""

    what: str
    prompt: Tokens
    output: Tokens


def largest_sequences(resolved: ResolvedScenario, name: str) -> list[LargestSequence]:
    """For each kind of sequence an LLM workload sends (its modes with a weight; a
    contemplating request's branches and aggregation), the largest prompt and output."""
    wl = resolved.scenario.workloads[name]
    model = resolved.models[name]
    assert isinstance(wl, LLMWorkload) and isinstance(model, LLMModel)
    at = f"workloads.{name}"
    prompt = _column_bound(resolved, name, "prompt_tokens") or size_bound(
        wl.prompt_tokens, f"{at}.prompt_tokens"
    )
    answer = _column_bound(resolved, name, "output_tokens") or size_bound(
        wl.output_tokens, f"{at}.output_tokens"
    )
    if wl.multimodal is not None and wl.multimodal.probability > 0 and model.vision is not None:
        images = wl.multimodal.images * model.vision.tokens_per_image
        prompt = prompt + Tokens(
            images, f"{wl.multimodal.images} image(s) of {model.vision.tokens_per_image} tokens"
        )
    if wl.system_prompt is not None and wl.system_prompt.share > 0:
        system = wl.system_prompt.tokens
        prompt = prompt + Tokens(system, f"{at}.system_prompt.tokens {system}")
    out = []
    if wl.modes.instant > 0:
        out.append(LargestSequence("an instant request", prompt, answer))
    if wl.modes.thinking > 0 and wl.thinking is not None:
        reasoning = size_bound(wl.thinking.reasoning_tokens, f"{at}.thinking.reasoning_tokens")
        out.append(LargestSequence("a thinking request", prompt, reasoning + answer))
    if wl.modes.contemplating > 0 and wl.contemplating is not None:
        c = wl.contemplating
        branch = size_bound(c.branch_output_tokens, f"{at}.contemplating.branch_output_tokens")
        branches = Tokens(c.branches * branch.count, f"{c.branches} branches x {branch.source}")
        aggregate = size_bound(
            c.aggregation_output_tokens, f"{at}.contemplating.aggregation_output_tokens"
        )
        out.append(LargestSequence("a contemplating branch", prompt, branch))
        out.append(LargestSequence("a contemplating aggregation", prompt + branches, aggregate))
    return out


def _llm_pool_problems(resolved: ResolvedScenario, pool_name: str) -> list[Problem]:
    """Whether an LLM pool can run its model, and take the largest request it is sent."""
    pool = resolved.scenario.pools[pool_name]
    name = pool.serves[0]
    model = resolved.models.get(name)
    if not isinstance(model, LLMModel):
        return []
    cost, problem = llm_replica_cost(resolved, pool_name, model)
    if cost is None:
        return [problem] if problem is not None else []
    speculative, problem = llm_speculative_cost(resolved, pool_name, name, cost)
    if problem is not None:
        return [problem]
    problems = []
    sequences = largest_sequences(resolved, name)
    batching = pool.continuous_batching
    if not batching.chunked_prefill and sequences:
        longest = max(sequences, key=lambda s: s.prompt.count)
        if longest.prompt.count > batching.max_batch_tokens:
            problems.append(
                resolved.problem(
                    ("pools", pool_name, "continuous_batching", "max_batch_tokens"),
                    f"{batching.max_batch_tokens} tokens is below the prompt of "
                    f"{longest.what} of workload {name}, up to {longest.prompt.count} tokens "
                    f"({longest.prompt.source}); with chunked_prefill false such a prompt is "
                    "only prefilled alone, once everything else on a replica has finished: "
                    f"set max_batch_tokens to at least {longest.prompt.count}, or "
                    "chunked_prefill: true",
                )
            )
    capacity = cost.capacity.kv_capacity_tokens
    if speculative is not None:
        capacity = speculative.kv_capacity_tokens - speculative.tokens  # lookahead slots
    wl = resolved.scenario.workloads[name]
    split = wl.disaggregation if isinstance(wl, LLMWorkload) else None
    if sequences:
        if split is not None and split.prefill_pool == pool_name:
            # A prefill replica holds a prompt and its first token, never the answer.
            biggest = max(sequences, key=lambda s: s.prompt.count)
            need = biggest.prompt + Tokens(1, "its first token")
        else:
            biggest = max(sequences, key=lambda s: s.prompt.count + s.output.count)
            need = biggest.prompt + biggest.output
        if need.count > capacity and pool.parallelism is not None:
            layout = Layout.of(pool.chips_per_replica, pool.parallelism)
            fraction = batching.kv_memory_fraction
            problems.append(
                resolved.problem(
                    ("pools", pool_name, "parallelism"),
                    f"{biggest.what} of workload {name} can need {need.count} KV tokens "
                    f"({need.source}), more than the {capacity} a replica holds: "
                    + fit_message(model, resolved.chips[pool_name], layout, fraction, need.count),
                )
            )
        elif need.count > capacity:
            problems.append(
                resolved.problem(
                    ("pools", pool_name, "chips_per_replica"),
                    f"a replica of {pool.chips_per_replica} {resolved.chips[pool_name].name} "
                    f"chip(s) holds {capacity} KV tokens of {model.name}, fewer than "
                    f"{biggest.what} of workload {name} can need: {need.count} "
                    f"({need.source}), and a request that cannot fit is rejected: raise "
                    "chips_per_replica or continuous_batching.kv_memory_fraction, or bound "
                    "the request",
                )
            )
    return problems


# Per workload kind: what stops a pool of that kind from running what it serves (kinds
# whose pools always can, such as ranking, have no entry).
POOL_CHECKS: dict[str, Callable[[ResolvedScenario, str], list[Problem]]] = {
    "llm": _llm_pool_problems,
}


def scenario_problems(
    resolved: ResolvedScenario, max_memory_bytes: float | None = None, percentiles: str = "auto"
) -> list[Problem]:
    """Everything that would stop this scenario from running: traffic that would draw
    more than the arrival budget, else a run expected to need more memory than
    ``max_memory_bytes`` (default: a share of the machine's), either alone as they are
    checked first; else power caps at or below idle power, LLM models that do not fit
    their replicas, and LLM requests a replica cannot take. ``percentiles`` as the run's
    (a run that streams its ranking records needs less memory)."""
    budget = (
        arrival_budget_problems(resolved)
        or loadgen_sketch_problems(resolved, percentiles)
        or memory_budget_problems(resolved, max_memory_bytes, percentiles)
    )
    if budget:
        return budget
    problems: list[Problem] = []
    clock_policies(resolved, problems)
    scenario = resolved.scenario
    for pool_name, pool in scenario.pools.items():
        check = POOL_CHECKS.get(scenario.workloads[pool.serves[0]].kind)
        if check is not None:
            problems.extend(check(resolved, pool_name))
    return problems
