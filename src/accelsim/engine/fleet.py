"""The interface every fleet kind implements, and what the coordinator hands it.

A fleet kind (ranking, LLM, ...) serves the workloads of its kind on the pools
that serve them. The coordinator builds one fleet per kind from the resolved
scenario, starts them all, runs the clock, and collects their records:

    fleet = FLEETS[kind](context, workload_names, pool_names)
    fleet.start()          # schedule its arrivals
    ...                    # env.run(until=end)
    fleet.records()        # frozen numpy records for the metrics layer
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.events import Clock
from accelsim.engine.facility import PoolMeter
from accelsim.engine.routing import Router, router_rng
from accelsim.errors import Problem
from accelsim.model.power import ClockPolicy


@dataclass
class FleetContext:
    """What every fleet is built from."""

    env: Clock
    resolved: ResolvedScenario
    end_s: float
    router: type[Router]  # the scenario's routing policy
    clocks: dict[str, ClockPolicy]  # by pool; a pool missing here has a problem already
    problems: list[Problem]  # a fleet adds the located problems it finds while building
    coalesce: bool = True  # let a fleet run unchanging stretches as one event
    # by workload kind: hand the records over in chunks instead of keeping them
    sinks: dict[str, Any] = field(default_factory=dict)
    # by pool: its busy time and how to change its clock policy (facility power shifting)
    meters: dict[str, PoolMeter] = field(default_factory=dict)

    def meter(self, pool: str) -> PoolMeter:
        """The pool's meter (made on first use)."""
        meter = self.meters.get(pool)
        if meter is None:
            meter = self.meters[pool] = PoolMeter()
        return meter

    def route(self, units: Sequence[Any], workload: int, name: str) -> Router:
        """The scenario's router for one workload (index ``workload`` in its fleet, named
        ``name``) over the units that serve it, with the workload's router stream."""
        scenario = self.resolved.scenario
        rng = router_rng(scenario.simulation.seed, name)
        share = scenario.router.sla_share
        sla = getattr(scenario.workloads[name].sla, "latency_s", None)
        headroom_s = share * sla if share is not None and sla is not None else math.inf
        return self.router(units, workload, rng, scenario.router.samples, headroom_s)


class Fleet(Protocol):
    kind: ClassVar[str]

    def __init__(self, ctx: FleetContext, workloads: list[str], pools: list[str]) -> None: ...

    def start(self) -> None: ...

    def records(self) -> Any: ...
