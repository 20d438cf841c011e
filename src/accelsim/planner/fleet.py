"""A fleet plan from end to end: characterise, optimise each step, verify, and the
result document.

A plan without ``roadmap`` is one step with every candidate; a roadmap plans the same
services once per step, with only that step's candidates available (characterisation
is shared: each replica is characterised once). Each step's fleet is described per
option (service x candidate x configuration): replicas and chips, facility power at
the plan's peak hour, energy per day, cost and carbon per year, and utilisation at the
service's busiest hour (its load over its active replicas' capacity).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelsim import __version__
from accelsim.config.fleet_plan import ResolvedPlan
from accelsim.planner.characterise import entries
from accelsim.planner.optimise import (
    DAYS_PER_YEAR,
    HOURS,
    WH_PER_MWH,
    CandidateTerms,
    FleetProblem,
    Option,
    PlanInfeasible,
    Solution,
    optimise,
)
from accelsim.planner.verify import report, slices, verify_task

SCHEMA = "accelsim-plan/1"


def candidate_terms(resolved: ResolvedPlan) -> dict[str, CandidateTerms]:
    out = {}
    for name, cand in resolved.plan.candidates.items():
        economics = resolved.chips[name].economics
        price = cand.unit_price_usd
        life = cand.service_life_years
        if price is None:
            assert economics is not None  # the loader requires one or the other
            price = economics.unit_price_usd
        if life is None:
            life = economics.service_life_years if economics is not None else 4.0
        out[name] = CandidateTerms(float(price), float(life), cand.max_chips)
    return out


def options(resolved: ResolvedPlan, results: dict[str, dict[str, Any]]) -> list[Option]:
    """Every characterised entry that sustains its SLA at some rate, as an option."""
    out = []
    for entry in entries(resolved):
        r = results[entry.key]
        if not r.get("capacity_per_s"):
            continue
        out.append(
            Option(
                entry.service,
                entry.candidate,
                entry.config,
                entry.chips_per_replica,
                float(r["capacity_per_s"]),
                float(r["floor_w"]),
                float(r["slope_w_per_rps"]),
                entry.idle_w,
            )
        )
    return out


def problem(
    resolved: ResolvedPlan, available: list[Option], candidates: list[str] | None = None
) -> FleetProblem:
    plan = resolved.plan
    f = plan.facility
    keep = set(candidates) if candidates is not None else set(plan.candidates)
    return FleetProblem(
        demand_per_s={name: s.rates_per_s() for name, s in plan.services.items()},
        options=tuple(o for o in available if o.candidate in keep),
        candidates={k: v for k, v in candidate_terms(resolved).items() if k in keep},
        power_budget_w=f.power_budget_w,
        pue=f.pue,
        energy_usd_per_mwh=f.hourly("energy_usd_per_mwh"),
        carbon_kg_per_mwh=f.hourly("carbon_kg_per_mwh"),
        headroom=f.headroom,
        parked_power_share=f.parked_power_share,
        objective=plan.objective,
    )


def steps(resolved: ResolvedPlan) -> dict[str, list[str]]:
    plan = resolved.plan
    return dict(plan.roadmap) if plan.roadmap else {plan.name: list(plan.candidates)}


# ------------------------------------------------------------------ documents


def characterisation_rows(
    resolved: ResolvedPlan, results: dict[str, dict[str, Any]], fresh: set[str]
) -> list[dict[str, Any]]:
    rows = []
    for entry in entries(resolved):
        r = results[entry.key]
        rows.append(
            {
                "service": entry.service,
                "candidate": entry.candidate,
                "chip": resolved.chips[entry.candidate].name,
                "config": entry.config,
                "chips_per_replica": entry.chips_per_replica,
                "capacity_per_s": r.get("capacity_per_s"),
                "power_at_capacity_w": r.get("power_at_capacity_w"),
                "power_at_half_w": r.get("power_at_half_w"),
                "idle_w": entry.idle_w,
                "note": r.get("note", ""),
                "cached": entry.key not in fresh,
                "key": entry.key,
            }
        )
    return rows


def step_document(resolved: ResolvedPlan, solution: Solution) -> dict[str, Any]:
    """The fleet of one solved step."""
    p = solution.problem
    pue = p.pue
    power = solution.option_power_w() * pue  # facility share per option, (options, 24)
    facility = power.sum(axis=0)
    peak_hour = int(facility.argmax())
    rows = []
    totals = {"chips": 0, "replicas": 0, "capex_usd_per_year": 0.0, "energy_usd_per_year": 0.0}
    carbon_t = 0.0
    energy_mwh = 0.0
    for o, opt in enumerate(p.options):
        n = solution.replicas[o]
        if n == 0:
            continue
        terms = p.candidates[opt.candidate]
        chips = n * opt.chips_per_replica
        mwh_day = float(power[o].sum()) / WH_PER_MWH  # one hour at each hour's power
        energy_usd = DAYS_PER_YEAR * sum(
            float(power[o, h]) * p.energy_usd_per_mwh[h] / WH_PER_MWH for h in range(HOURS)
        )
        carbon = DAYS_PER_YEAR * sum(
            float(power[o, h]) * p.carbon_kg_per_mwh[h] / WH_PER_MWH for h in range(HOURS)
        )
        capex = chips * terms.capex_usd_per_chip_year
        demand = p.demand_per_s[opt.service]
        busiest = max(range(HOURS), key=lambda h: demand[h])
        active = float(solution.active[o, busiest])
        load = float(solution.load_per_s[o, busiest])
        rows.append(
            {
                "service": opt.service,
                "candidate": opt.candidate,
                "chip": resolved.chips[opt.candidate].name,
                "config": opt.config,
                "chips_per_replica": opt.chips_per_replica,
                "replicas": n,
                "chips": chips,
                "capacity_per_replica_per_s": opt.capacity_per_s,
                "load_at_peak_per_s": load,
                "utilization_at_peak": load / (active * opt.capacity_per_s) if active else 0.0,
                "power_at_peak_hour_w": float(power[o, peak_hour]),
                "energy_mwh_per_day": mwh_day,
                "capex_usd_per_year": capex,
                "energy_usd_per_year": energy_usd,
                "cost_usd_per_year": capex + energy_usd,
                "carbon_t_per_year": carbon / 1000.0,
                "hourly_power_w": [float(w) for w in power[o]],
            }
        )
        totals["chips"] += chips
        totals["replicas"] += n
        totals["capex_usd_per_year"] += capex
        totals["energy_usd_per_year"] += energy_usd
        carbon_t += carbon / 1000.0
        energy_mwh += mwh_day
    totals.update(
        cost_usd_per_year=totals["capex_usd_per_year"] + totals["energy_usd_per_year"],
        carbon_t_per_year=carbon_t,
        energy_mwh_per_day=energy_mwh,
        peak_facility_power_w=float(facility.max()),
        peak_hour=peak_hour,
    )
    return {
        "status": "ok",
        "solve_s": solution.solve_s,
        "fleet": rows,
        "totals": totals,
        "hourly_facility_power_w": [float(w) for w in facility],
    }


def infeasible_document(exc: PlanInfeasible) -> dict[str, Any]:
    return {"status": "infeasible", "binding": exc.binding, "message": str(exc), **exc.needed}


# ------------------------------------------------------------------ the whole plan


ExecutorFactory = Callable[[int], Any]


def run_plan(
    resolved: ResolvedPlan,
    results: dict[str, dict[str, Any]],
    fresh: set[str],
    *,
    verify: bool = True,
    executor_factory: ExecutorFactory | None = None,
    on_verify: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Solve every step from characterised results, verify each feasible step, and
    return the plan's result document."""
    plan = resolved.plan
    available = options(resolved, results)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "accelsim_version": __version__,
        "plan": plan.name,
        "description": plan.description,
        "objective": plan.objective,
        "facility": plan.facility.model_dump(mode="json"),
        "services": {
            name: {
                "kind": s.kind,
                "model": resolved.models[name].name,
                "peak_rate_per_s": s.peak_rate_per_s,
                "hourly_rate_per_s": list(s.rates_per_s()),
                "sla": s.sla.model_dump(mode="json") if s.sla is not None else None,
            }
            for name, s in plan.services.items()
        },
        "characterisation": characterisation_rows(resolved, results, fresh),
        "steps": [],
    }
    for name, candidates in steps(resolved).items():
        try:
            solution = optimise(problem(resolved, available, candidates))
        except PlanInfeasible as exc:
            doc["steps"].append(
                {"name": name, "candidates": candidates, **infeasible_document(exc)}
            )
            continue
        step = {"name": name, "candidates": candidates, **step_document(resolved, solution)}
        step["verification"] = None
        if verify:
            if on_verify is not None:
                on_verify(name)
            step["verification"] = verify_slices(resolved, solution, executor_factory)
        doc["steps"].append(step)
    return doc


def verify_slices(
    resolved: ResolvedPlan, solution: Solution, executor_factory: ExecutorFactory | None = None
) -> list[dict[str, Any]]:
    """Simulate each service's slice of a solved step (in parallel when an executor
    factory is given) and report SLA and power against the plan."""
    import yaml

    pieces = slices(resolved, solution)
    with tempfile.TemporaryDirectory(prefix="accelsim-plan-") as folder:
        files = []
        for piece in pieces:
            path = Path(folder) / f"{piece.scenario['name']}.yaml"
            path.write_text(yaml.safe_dump(piece.scenario, sort_keys=False), encoding="utf-8")
            files.append({"scenario_file": str(path)})
        if executor_factory is None or len(files) < 2:
            docs = [verify_task(f) for f in files]
        else:
            with executor_factory(len(files)) as executor:
                docs = list(executor.map(verify_task, files))
    return [report(piece, d) for piece, d in zip(pieces, docs, strict=True)]
