"""The fleet optimiser against plans whose optimum is computable by hand.

Toy plan: one service at a flat 105 requests/s, two chips, linear costs, no
simulation (the characterisation is given). Chip A: a replica serves 10 /s, draws
100 W whatever its load, costs 1,000 USD over a one-year life. Chip B: 25 /s, 200 W,
3,000 USD. At 100 USD/MWh a watt all year costs 365 x 24 x 100 / 10^6 = 0.876 USD, so
a replica of A costs 1,087.6 USD a year and one of B 3,175.2 USD. Covering 105 /s:
11 A (110 /s) cost 11,963.6; 8 A + 1 B (105 /s) cost 11,876.0; 3 A + 3 B cost 12,788.4;
5 B cost 15,876.0; every other whole mix costs more. So the optimum is 8 A + 1 B at
11,876.0 USD a year.
"""

from __future__ import annotations

import pytest

from accelsim.planner.optimise import (
    HOURS,
    CandidateTerms,
    FleetProblem,
    Option,
    PlanInfeasible,
    optimise,
)

A = Option("web", "a", 0, 1, capacity_per_s=10.0, floor_w=100.0, slope_w_per_rps=0.0, idle_w=100.0)
B = Option("web", "b", 0, 1, capacity_per_s=25.0, floor_w=200.0, slope_w_per_rps=0.0, idle_w=200.0)


def toy(**changes: object) -> FleetProblem:
    fields: dict[str, object] = {
        "demand_per_s": {"web": (105.0,) * HOURS},
        "options": (A, B),
        "candidates": {"a": CandidateTerms(1000.0, 1.0), "b": CandidateTerms(3000.0, 1.0)},
        "energy_usd_per_mwh": (100.0,) * HOURS,
    }
    fields.update(changes)
    return FleetProblem(**fields)  # type: ignore[arg-type]


def annual_cost(replicas_a: int, replicas_b: int) -> float:
    return replicas_a * 1087.6 + replicas_b * 3175.2


def test_toy_plan_gives_the_hand_computed_mix() -> None:
    solution = optimise(toy())
    assert solution.replicas == (8, 1)
    energy_usd = solution.facility_power_w().sum() * 365 * 100 / 1e6
    assert 8 * 1000 + 1 * 3000 + energy_usd == pytest.approx(annual_cost(8, 1))
    assert annual_cost(8, 1) == pytest.approx(11876.0)


def test_an_availability_cap_moves_the_optimum_to_the_next_best_mix() -> None:
    # A capped at 5 chips: 5 A + 3 B = 14,963.6; 4 A + 3 B = 13,876.0;
    # 3 A + 3 B = 12,788.4; 1 A + 4 B = 13,788.4; 0 A + 5 B = 15,876.0.
    capped = {"a": CandidateTerms(1000.0, 1.0, max_chips=5), "b": CandidateTerms(3000.0, 1.0)}
    assert optimise(toy(candidates=capped)).replicas == (3, 3)


def test_the_power_objective_minimises_peak_facility_power() -> None:
    # Watts per 1 /s: A 10, B 8. Covering 105 /s: 3 A + 3 B or 1 A + 4 B draw 900 W,
    # nothing draws less (5 A + 2 B = 900 W serves only 100 /s).
    solution = optimise(toy(objective="power", pue=1.5))
    assert solution.facility_power_w().max() == pytest.approx(1.5 * 900.0)


def test_an_infeasible_budget_names_itself_and_the_budget_needed() -> None:
    with pytest.raises(PlanInfeasible) as caught:
        optimise(toy(power_budget_w=850.0))
    assert caught.value.binding == "power_budget_w"
    assert caught.value.needed["power_budget_w"] == pytest.approx(900.0)
    assert "power_budget_w" in str(caught.value) and "900 W" in str(caught.value)
    # ... and that budget is feasible.
    assert optimise(toy(power_budget_w=900.0)).facility_power_w().max() <= 900.0 + 1e-6


def test_infeasible_caps_name_the_factor_they_need() -> None:
    # 105 /s with at most 2 A and 2 B (70 /s): the caps must grow by 105 / 70 at least;
    # 3 A + 3 B is the smallest whole mix with the caps scaled alike: factor 1.5.
    capped = {
        "a": CandidateTerms(1000.0, 1.0, max_chips=2),
        "b": CandidateTerms(3000.0, 1.0, max_chips=2),
    }
    with pytest.raises(PlanInfeasible) as caught:
        optimise(toy(candidates=capped))
    assert caught.value.binding == "max_chips"
    assert caught.value.needed["cap_factor"] == pytest.approx(1.5)


def test_headroom_scales_the_capacity_bought() -> None:
    # 105 x 2 = 210 /s of capacity: 21 A (22,839.6) vs 16 A + 2 B (23,752.0) vs
    # 1 A + 8 B (26,489.2) ... 21 A is the cheapest.
    assert optimise(toy(headroom=2.0)).replicas == (21, 0)


def test_parking_powers_down_replicas_an_hour_does_not_need() -> None:
    # Demand 105 /s for one hour, 10 /s the rest: parked replicas draw 10% of idle.
    demand = (105.0,) + (10.0,) * (HOURS - 1)
    solution = optimise(toy(demand_per_s={"web": demand}, parked_power_share=0.1))
    assert solution.replicas == (8, 1)
    power = solution.facility_power_w()
    assert power[0] == pytest.approx(1000.0)  # 8 A + 1 B all active
    # At 10 /s: parked, 8 A and 1 B draw 80 + 20 W; waking replicas for 10 /s costs
    # (100 - 10) / 10 = 9 W per 1 /s on A, (200 - 20) / 25 = 7.2 W per 1 /s on B, so
    # 0.4 of B serves (active replicas are continuous): 100 + 72 W.
    assert power[1] == pytest.approx(172.0)
    assert solution.active[1, 1] == pytest.approx(0.4)


def test_the_carbon_objective_minimises_energy_times_intensity() -> None:
    # Flat intensity: the least energy wins, 900 W all day (see the power objective).
    solution = optimise(toy(objective="carbon", carbon_kg_per_mwh=(400.0,) * HOURS))
    assert solution.facility_power_w() == pytest.approx([900.0] * HOURS)
