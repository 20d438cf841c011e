"""The coordinating simulation: one SimPy clock, one fleet per workload kind.

Each workload kind registered in :data:`FLEETS` serves the workloads of its
kind on the pools that serve them (`engine/ranking.py`, `engine/llm.py`); this
module only builds them from the resolved scenario, starts them, runs the
clock and collects their records. It asks no fleet what kind it is.
"""

from __future__ import annotations

from collections.abc import Callable

from accelsim.config.checks import arrival_budget_problems
from accelsim.config.loader import ResolvedScenario
from accelsim.engine.arrivals import ArrivalBudgetError
from accelsim.engine.events import Clock
from accelsim.engine.facility import PowerShifter
from accelsim.engine.fleet import Fleet, FleetContext
from accelsim.engine.llm import LLMFleet
from accelsim.engine.ranking import RankingFleet
from accelsim.engine.records import RecordSink, RunRecords
from accelsim.engine.routing import ROUTERS
from accelsim.errors import ConfigError, Problem
from accelsim.model.power import clock_policies, pool_powers

# Workload kind -> the fleet that serves it. Fleets are built and started in this order.
FLEETS: dict[str, type[Fleet]] = {
    RankingFleet.kind: RankingFleet,
    LLMFleet.kind: LLMFleet,
}


class Simulation:
    """One scenario's fleets on one clock."""

    def __init__(
        self,
        resolved: ResolvedScenario,
        coalesce: bool = True,
        sinks: dict[str, RecordSink] | None = None,
    ) -> None:
        scenario = resolved.scenario
        sim = scenario.simulation
        self.env = Clock()
        self.warmup_s = sim.warmup_s
        self.end_s = sim.warmup_s + sim.duration_s
        budget = arrival_budget_problems(resolved)
        if budget:
            raise ConfigError(budget)
        problems: list[Problem] = []
        clocks = clock_policies(resolved, problems)
        ctx = FleetContext(
            env=self.env,
            resolved=resolved,
            end_s=self.end_s,
            router=ROUTERS[scenario.router.policy],
            clocks=clocks,
            problems=problems,
            coalesce=coalesce,
            sinks=dict(sinks or {}),
        )
        self.fleets: dict[str, Fleet] = {}
        for kind, fleet in FLEETS.items():
            workloads = [n for n, w in scenario.workloads.items() if w.kind == kind]
            if not workloads:
                continue
            pools = [p for p, pool in scenario.pools.items() if pool.serves[0] in workloads]
            try:
                self.fleets[kind] = fleet(ctx, workloads, pools)
            except ArrivalBudgetError as exc:  # a draw past the budget the checks expected
                raise ConfigError([resolved.problem(("workloads",), str(exc))]) from None
        if problems:
            raise ConfigError(problems)
        facility = scenario.facility
        self.shifter: PowerShifter | None = None
        if facility.budget_policy == "shift":
            assert facility.power_budget_w is not None and facility.shift_interval_s is not None
            self.shifter = PowerShifter(
                self.env,
                facility.power_budget_w / facility.pue,
                facility.shift_interval_s,
                pool_powers(resolved),
                clocks,
                ctx.meters,
            )

    def scheduled_events(self) -> int:
        """Events scheduled on the clock so far (SimPy numbers every event it schedules)."""
        return int(repr(self.env._eid)[6:-1])  # itertools.count's repr: "count(N)"

    def run(self, progress: Callable[[float], None] | None = None) -> RunRecords:
        for fleet in self.fleets.values():
            fleet.start()
        if self.shifter is not None:
            self.shifter.start()
        if progress is None:
            self.env.run(until=self.end_s)
        else:
            steps = 50
            for k in range(1, steps + 1):
                self.env.run(until=self.end_s * k / steps)
                progress(k / steps)
        return RunRecords(
            self.warmup_s,
            self.end_s,
            {kind: fleet.records() for kind, fleet in self.fleets.items()},
            None if self.shifter is None else self.shifter.history(),
        )


def simulate(
    resolved: ResolvedScenario,
    progress: Callable[[float], None] | None = None,
    *,
    coalesce: bool = True,
    sinks: dict[str, RecordSink] | None = None,
) -> RunRecords:
    """Run one scenario to its end time and return the raw records.

    ``progress``, if given, is called with the share of simulated time done.
    ``coalesce=False`` steps every LLM iteration as its own event (the reference path).
    ``sinks`` (by workload kind) stream that kind's records instead of keeping them
    (see :class:`accelsim.engine.records.RecordSink`; kinds that cannot stream ignore it).
    """
    return Simulation(resolved, coalesce, sinks).run(progress)
