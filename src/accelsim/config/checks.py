"""Checks of a resolved scenario that need no cost model: they run when it is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accelsim.config.schema import BurstyTraffic, DiurnalTraffic, PoissonTraffic
from accelsim.errors import Problem

if TYPE_CHECKING:
    from accelsim.config.loader import ResolvedScenario

MAX_ARRIVALS = 100_000_000  # about 10 GB of records: far past what one run should hold


def arrival_budget_problems(resolved: ResolvedScenario) -> list[Problem]:
    """Workloads whose traffic would need more arrivals than a run can hold."""
    sim = resolved.scenario.simulation
    horizon = sim.warmup_s + sim.duration_s
    out = []
    for name, workload in resolved.scenario.workloads.items():
        traffic = workload.traffic
        if isinstance(traffic, BurstyTraffic):
            rate = max(traffic.rate_per_s, traffic.burst_rate_per_s)
        elif isinstance(traffic, PoissonTraffic | DiurnalTraffic):
            rate = traffic.rate_per_s * (1 + getattr(traffic, "amplitude", 0.0))
        else:
            continue
        expected = rate * horizon
        if expected > MAX_ARRIVALS:
            out.append(
                resolved.problem(
                    ("workloads", name, "traffic"),
                    f"about {expected:.3g} arrivals in {horizon:g} s, more than the "
                    f"{MAX_ARRIVALS:.0e} one run can hold: shorten the run or lower the rate",
                )
            )
    return out
