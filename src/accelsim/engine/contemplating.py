"""Where a contemplating workload's sequences run: branches and aggregations by pool.

Every sequence of an LLM workload is routed by the scenario's router over the
replicas of every pool that serves the workload, unless the workload's
``contemplating`` block names a ``branch_pool`` or an ``aggregation_pool``: then
the branches (or the aggregations) are routed by a router of their own over
that pool's replicas only. A request's other sequences (instant and thinking
requests) keep the workload's router over every pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from accelsim.config.schema import LLMWorkload
from accelsim.engine.fleet import FleetContext
from accelsim.engine.records import ROLE_AGGREGATE, ROLE_BRANCH


def role_routes(
    ctx: FleetContext, name: str, replicas: Sequence[Any]
) -> tuple[list[Callable[[], Any]], Callable[[int], Any] | None]:
    """Workload ``name``'s routers' ``pick``, indexed by sequence role; and the workload
    router's ``pick_for(session)`` when it keeps a session's turns together."""
    workload = ctx.resolved.scenario.workloads[name]
    assert isinstance(workload, LLMWorkload)
    router = ctx.route(replicas, 0, name)
    pick = router.pick
    routes: list[Callable[[], Any]] = [pick, pick, pick]
    by_session = getattr(router, "pick_for", None)
    c = workload.contemplating
    if c is None:
        return routes, by_session
    for role, pool in ((ROLE_BRANCH, c.branch_pool), (ROLE_AGGREGATE, c.aggregation_pool)):
        if pool is not None:
            units = [r for r in replicas if r.pool == pool]
            if units:  # none when the pool's model does not fit (a problem already)
                routes[role] = ctx.route(units, 0, name).pick
    return routes, by_session
