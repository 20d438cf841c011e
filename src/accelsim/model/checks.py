"""Checks of a resolved scenario that need the cost model: can each pool run what it serves?

``scenario_problems`` is the whole list a run would refuse, in the order the
engine finds them, so ``validate --configs`` and ``run`` agree on every file.
"""

from __future__ import annotations

from collections.abc import Callable

from accelsim.config.checks import arrival_budget_problems
from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import LLMModel
from accelsim.errors import Problem
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import clock_policies


def llm_replica_cost(
    resolved: ResolvedScenario, pool_name: str, model: LLMModel
) -> tuple[LLMCostModel | None, Problem | None]:
    """A pool's replica cost model, or a located problem when the model cannot run there."""
    pool = resolved.scenario.pools[pool_name]
    chip = resolved.chips[pool_name]
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


def _llm_pool_problem(resolved: ResolvedScenario, pool_name: str) -> Problem | None:
    model = resolved.models.get(resolved.scenario.pools[pool_name].serves[0])
    return llm_replica_cost(resolved, pool_name, model)[1] if isinstance(model, LLMModel) else None


# Per workload kind: whether a pool of that kind can run what it serves (kinds whose
# pools always can, such as ranking, have no entry).
POOL_CHECKS: dict[str, Callable[[ResolvedScenario, str], Problem | None]] = {
    "llm": _llm_pool_problem,
}


def scenario_problems(resolved: ResolvedScenario) -> list[Problem]:
    """Everything that would stop this scenario from running: an arrival count past the
    budget (alone, as it is checked first), else power caps at or below idle power and
    LLM models that do not fit their replicas."""
    budget = arrival_budget_problems(resolved)
    if budget:
        return budget
    problems: list[Problem] = []
    clock_policies(resolved, problems)
    scenario = resolved.scenario
    for pool_name, pool in scenario.pools.items():
        check = POOL_CHECKS.get(scenario.workloads[pool.serves[0]].kind)
        problem = check(resolved, pool_name) if check else None
        if problem is not None:
            problems.append(problem)
    return problems
