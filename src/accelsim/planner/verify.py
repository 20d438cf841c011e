"""Verify a fleet plan by simulating a slice of it at the peak hour.

For each service, the slice keeps the plan's mix with ``1/N`` of its replicas: each
option (candidate chip and serving configuration) active at the service's busiest hour
gets ``round(active / N)`` replicas (at least one), ``N`` chosen so the service's slice
holds at most ``verify.max_replicas`` replicas. Each option carries the load the plan
gives it, scaled to its slice replicas (so every replica runs at the load the plan
assumed), as its own Poisson workload served by its own pool: the split between chips
is the plan's, and the router spreads load within a pool. The run expects
``verify.requests`` requests in its window.

The report per service: SLA attainment (share of requests within the SLA, over every
option's requests), whether each option met the SLA at its percentile, and the slice's
simulated power against the plan's power model for the same replicas and load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from accelsim.config.fleet_plan import ResolvedPlan
from accelsim.planner.optimise import Solution


@dataclass(frozen=True)
class SliceOption:
    option: int  # index into the solution's options
    workload: str  # its workload (and pool) name in the slice scenario
    replicas: int
    rate_per_s: float
    planned_w: float


@dataclass(frozen=True)
class ServiceSlice:
    service: str
    hour: int
    fraction: float  # slice replicas / plan replicas active at that hour
    options: tuple[SliceOption, ...]
    scenario: dict[str, Any]


def slices(resolved: ResolvedPlan, solution: Solution) -> list[ServiceSlice]:
    """The slice of each service the plan serves, as a scenario to run."""
    plan = resolved.plan
    problem = solution.problem
    out = []
    for service in plan.services:
        demand = problem.demand_per_s[service]
        hour = max(range(len(demand)), key=lambda h: demand[h])
        mine = [
            o
            for o, opt in enumerate(problem.options)
            if opt.service == service and solution.active[o, hour] > 0
        ]
        if not mine:
            continue
        active = {o: float(solution.active[o, hour]) for o in mine}
        n = max(1.0, sum(active.values()) / plan.verify.max_replicas)
        chosen: list[SliceOption] = []
        workloads: dict[str, Any] = {}
        pools: dict[str, Any] = {}
        base = plan.services[service].workload()
        for o in mine:
            opt = problem.options[o]
            replicas = max(1, round(active[o] / n))
            rate = float(solution.load_per_s[o, hour]) * replicas / active[o]
            if rate <= 0:
                continue
            name = f"{service}--{opt.candidate}--{opt.config}"
            config = plan.candidates[opt.candidate].serves[service][opt.config]
            workloads[name] = {
                **base,
                "model": str(resolved.model_files[service].resolve()),
                "traffic": {"kind": "poisson", "rate_per_s": rate},
            }
            pools[name] = {
                **config.pool_fields(),
                "chip": str(resolved.chip_files[opt.candidate].resolve()),
                "count": replicas * opt.chips_per_replica,
                "serves": [name],
            }
            chosen.append(SliceOption(o, name, replicas, rate, opt.power_w(replicas, rate)))
        if not chosen:
            continue
        total = sum(c.rate_per_s for c in chosen)
        duration = plan.verify.requests / total
        scenario = {
            "name": f"plan-verify-{service}",
            "simulation": {
                "duration_s": duration,
                "warmup_s": duration * plan.verify.warmup_share,
                "seed": plan.verify.seed,
            },
            "workloads": workloads,
            "pools": pools,
        }
        fraction = sum(c.replicas for c in chosen) / sum(active[c.option] for c in chosen)
        out.append(ServiceSlice(service, hour, fraction, tuple(chosen), scenario))
    return out


def verify_task(task: dict[str, Any]) -> dict[str, Any]:
    """Picklable worker: run one slice scenario, keep what the report needs."""
    from accelsim.runner import run_scenario

    doc = run_scenario(task["scenario_file"])
    return {
        "workloads": {
            name: {
                "offered": w["offered"],
                "completed": w["completed"],
                "sla_attainment": w.get("sla_attainment"),
                "sla": w.get("sla"),
            }
            for name, w in doc["workloads"].items()
        },
        "pools": {name: {"avg_power_w": p["avg_power_w"]} for name, p in doc["pools"].items()},
        "window_s": doc["window_s"],
    }


def report(piece: ServiceSlice, doc: dict[str, Any]) -> dict[str, Any]:
    """The verification of one service: SLA and power, planned against simulated."""
    completed = attained = 0.0
    options = []
    met = True
    for c in piece.options:
        w = doc["workloads"][c.workload]
        done = float(w["completed"])
        share = w["sla_attainment"]
        completed += done
        attained += done * (share or 0.0)
        sla = w["sla"] or {}
        ok = bool(sla.get("met"))
        met &= ok
        simulated = float(doc["pools"][c.workload]["avg_power_w"])
        options.append(
            {
                "workload": c.workload,
                "replicas": c.replicas,
                "rate_per_s": c.rate_per_s,
                "sla_met": ok,
                "sla_attainment": share,
                "observed": {k: v for k, v in sla.items() if k.startswith("observed_")},
                "planned_power_w": c.planned_w,
                "simulated_power_w": simulated,
            }
        )
    planned = sum(c.planned_w for c in piece.options)
    simulated = sum(o["simulated_power_w"] for o in options)
    return {
        "service": piece.service,
        "hour": piece.hour,
        "slice_fraction": piece.fraction,
        "replicas": sum(c.replicas for c in piece.options),
        "sla_met": met,
        "sla_attainment": attained / completed if completed else None,
        "planned_power_w": planned,
        "simulated_power_w": simulated,
        "power_error": (simulated - planned) / planned if planned else math.nan,
        "options": options,
    }
