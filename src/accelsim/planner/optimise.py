"""The fleet plan's integer program: how many replicas of each option (a service served
by a candidate chip in one serving configuration), solved with scipy's HiGHS MILP.

Per option ``o``: one replica sustains ``capacity_per_s`` within the service's SLA (from
characterisation) and draws ``floor_w + slope_w_per_rps x load`` at a load between half
its capacity and its capacity (a line through two simulated points; a replica under
load spreads it evenly over its active replicas, so a group of ``a`` replicas carrying
``x`` draws ``floor x a + slope x x``). Variables: the replicas bought ``n_o`` (whole
numbers), the load each option carries at each hour ``x_oh`` and, when parking is on,
the replicas active at each hour ``a_oh <= n_o`` (the others draw
``parked_power_share`` of their idle power). Without parking ``a_oh = n_o``. Active
replicas are a continuous variable: at fleet scale a fraction of a replica is noise,
and whole numbers there make the 1 GW plan's solve several times slower.

At every hour ``h`` and for every service ``s``::

    sum_o x_oh  = demand_sh                         (the demand is served)
    x_oh       <= cap_o a_oh / headroom             (each replica keeps its headroom)
    PUE x IT_h <= power_budget                      (facility power)

so the capacity serving a service is at least ``headroom x demand`` at every hour, and
no replica is loaded past ``1 / headroom`` of its capacity.

and per candidate ``sum chips <= max_chips``. Objectives: cost per year (chips' price
over their service life, plus facility energy at each hour's price, 365 days), the peak
facility power, or carbon per year (facility energy x each hour's intensity; embodied
carbon is not counted).

An infeasible plan is diagnosed by solving again without the binding kind of
constraint: without the budget first (if that is infeasible the availability caps
bind, and the smallest factor on every cap that makes the plan feasible is solved
for), else the smallest peak facility power that serves the demand is the budget
that would be needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from accelsim.errors import AccelsimError

HOURS = 24
DAYS_PER_YEAR = 365.0
WH_PER_MWH = 1e6

Objective = Literal["cost", "power", "carbon"]


@dataclass(frozen=True)
class Option:
    """One characterised (service, candidate, serving configuration)."""

    service: str
    candidate: str
    config: int  # index among the candidate's configurations for the service
    chips_per_replica: int
    capacity_per_s: float  # one replica's largest SLA-compliant rate
    floor_w: float  # one replica's power line: floor_w + slope_w_per_rps x load
    slope_w_per_rps: float
    idle_w: float  # one replica with nothing to do

    def power_w(self, replicas: float, load_per_s: float) -> float:
        return self.floor_w * replicas + self.slope_w_per_rps * load_per_s


@dataclass(frozen=True)
class CandidateTerms:
    unit_price_usd: float
    service_life_years: float
    max_chips: int | None = None

    @property
    def capex_usd_per_chip_year(self) -> float:
        return self.unit_price_usd / self.service_life_years


@dataclass(frozen=True)
class FleetProblem:
    """Everything the optimiser needs; no simulation, no files."""

    demand_per_s: dict[str, tuple[float, ...]]  # per service, 24 hourly rates
    options: tuple[Option, ...]
    candidates: dict[str, CandidateTerms]
    power_budget_w: float | None = None
    pue: float = 1.0
    energy_usd_per_mwh: tuple[float, ...] = (80.0,) * HOURS
    carbon_kg_per_mwh: tuple[float, ...] = (0.0,) * HOURS
    headroom: float = 1.0
    parked_power_share: float | None = None
    objective: Objective = "cost"


@dataclass(frozen=True)
class Solution:
    problem: FleetProblem
    replicas: tuple[int, ...]  # per option
    load_per_s: np.ndarray  # (options, 24)
    active: np.ndarray  # (options, 24) replicas serving at each hour
    solve_s: float

    def option_power_w(self) -> np.ndarray:
        """IT power of each option at each hour, parked replicas included, (options, 24)."""
        p = self.problem
        out = np.zeros((len(p.options), HOURS))
        parked = p.parked_power_share or 0.0
        for i, o in enumerate(p.options):
            out[i] = (
                o.floor_w * self.active[i]
                + o.slope_w_per_rps * self.load_per_s[i]
                + parked * o.idle_w * (self.replicas[i] - self.active[i])
            )
        return out

    def facility_power_w(self) -> np.ndarray:
        total: np.ndarray = self.option_power_w().sum(axis=0)
        return self.problem.pue * total


class PlanInfeasible(AccelsimError):
    """No fleet meets the plan: what binds, and the smallest budget or cap that would do."""

    def __init__(self, binding: str, message: str, needed: dict[str, Any]) -> None:
        self.binding = binding
        self.needed = needed
        super().__init__(message)


# ------------------------------------------------------------------ the program


@dataclass
class _Program:
    """Variables: n (options), x (options x 24), a (options x 24, when parking), then
    the extra scalars (peak power z, cap factor k) the program asks for."""

    problem: FleetProblem
    park: bool
    extras: tuple[str, ...] = ()
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)

    @property
    def n_options(self) -> int:
        return len(self.problem.options)

    def n(self, o: int) -> int:
        return o

    def x(self, o: int, h: int) -> int:
        return self.n_options + o * HOURS + h

    def a(self, o: int, h: int) -> int:
        if not self.park:
            return self.n(o)
        return self.n_options * (1 + HOURS) + o * HOURS + h

    def extra(self, name: str) -> int:
        base = self.n_options * (1 + (2 if self.park else 1) * HOURS)
        return base + self.extras.index(name)

    @property
    def size(self) -> int:
        return self.n_options * (1 + (2 if self.park else 1) * HOURS) + len(self.extras)

    def add(self, coeffs: dict[int, float], low: float, high: float) -> None:
        self.rows.append((coeffs, low, high))

    def it_power(self, h: int, scale: float = 1.0) -> dict[int, float]:
        """Coefficients of (scale x) the IT power at hour h."""
        p = self.problem
        parked = p.parked_power_share or 0.0
        out: dict[int, float] = {}
        for o, opt in enumerate(p.options):
            out[self.a(o, h)] = out.get(self.a(o, h), 0.0) + scale * opt.floor_w
            out[self.x(o, h)] = out.get(self.x(o, h), 0.0) + scale * opt.slope_w_per_rps
            if self.park and parked:
                out[self.n(o)] = out.get(self.n(o), 0.0) + scale * parked * opt.idle_w
                out[self.a(o, h)] -= scale * parked * opt.idle_w
        return out


def _program(
    problem: FleetProblem, *, budget: bool, caps: Literal["fixed", "scaled"], peak: bool
) -> _Program:
    extras = (("z",) if peak else ()) + (("k",) if caps == "scaled" else ())
    prog = _Program(problem, park=problem.parked_power_share is not None, extras=extras)
    opts = problem.options
    for s, demand in problem.demand_per_s.items():
        mine = [o for o, opt in enumerate(opts) if opt.service == s]
        for h in range(HOURS):
            prog.add({prog.x(o, h): 1.0 for o in mine}, demand[h], demand[h])
    for o, opt in enumerate(opts):
        usable = opt.capacity_per_s / problem.headroom
        for h in range(HOURS):
            prog.add({prog.x(o, h): 1.0, prog.a(o, h): -usable}, -math.inf, 0.0)
            if prog.park:
                prog.add({prog.a(o, h): 1.0, prog.n(o): -1.0}, -math.inf, 0.0)
    for h in range(HOURS):
        if budget and problem.power_budget_w is not None:
            prog.add(prog.it_power(h, problem.pue), -math.inf, problem.power_budget_w)
        if peak:
            row = prog.it_power(h, problem.pue)
            row[prog.extra("z")] = -1.0
            prog.add(row, -math.inf, 0.0)
    for name, terms in problem.candidates.items():
        if terms.max_chips is None:
            continue
        row = {
            o: float(opt.chips_per_replica) for o, opt in enumerate(opts) if opt.candidate == name
        }
        if not row:
            continue
        if caps == "scaled":
            row[prog.extra("k")] = -float(terms.max_chips)
            prog.add(row, -math.inf, 0.0)
        else:
            prog.add(row, -math.inf, float(terms.max_chips))
    return prog


def objective_vector(prog: _Program, objective: Objective) -> np.ndarray:
    """The objective's coefficients: USD per year, watts of peak facility power, or kg
    of CO2 per year."""
    p = prog.problem
    c = np.zeros(prog.size)
    if objective == "power":
        c[prog.extra("z")] = 1.0
        return c
    hourly = p.energy_usd_per_mwh if objective == "cost" else p.carbon_kg_per_mwh
    for h in range(HOURS):
        per_w = DAYS_PER_YEAR * hourly[h] / WH_PER_MWH
        for j, coeff in prog.it_power(h, p.pue).items():
            c[j] += per_w * coeff
    if objective == "cost":
        for o, opt in enumerate(p.options):
            terms = p.candidates[opt.candidate]
            c[prog.n(o)] += opt.chips_per_replica * terms.capex_usd_per_chip_year
    return c


def _solve(prog: _Program, c: np.ndarray, time_limit_s: float) -> Any:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    rows, cols, vals, low, high = [], [], [], [], []
    for i, (coeffs, lo, hi) in enumerate(prog.rows):
        for j, v in coeffs.items():
            rows.append(i)
            cols.append(j)
            vals.append(v)
        low.append(lo)
        high.append(hi)
    matrix = coo_matrix((vals, (rows, cols)), shape=(len(prog.rows), prog.size)).tocsr()
    integrality = np.zeros(prog.size)
    integrality[: prog.n_options] = 1
    return milp(
        c,
        constraints=LinearConstraint(matrix, np.array(low), np.array(high)),
        integrality=integrality,
        bounds=Bounds(np.zeros(prog.size), np.full(prog.size, np.inf)),
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-5},
    )


def _unpack(prog: _Program, values: np.ndarray, solve_s: float) -> Solution:
    p = prog.problem
    n = tuple(round(float(values[prog.n(o)])) for o in range(prog.n_options))
    load = np.array([[values[prog.x(o, h)] for h in range(HOURS)] for o in range(prog.n_options)])
    active = np.array(
        [[float(values[prog.a(o, h)]) for h in range(HOURS)] for o in range(prog.n_options)]
    )
    return Solution(p, n, np.maximum(load, 0.0), active, solve_s)


def optimise(problem: FleetProblem, time_limit_s: float = 60.0) -> Solution:
    """The fleet that minimises the objective, or :class:`PlanInfeasible` naming what
    binds and what would suffice."""
    for s in problem.demand_per_s:
        if not any(o.service == s for o in problem.options):
            raise PlanInfeasible(
                "service", f"infeasible: no candidate sustains service {s}'s SLA", {"service": s}
            )
    start = time.perf_counter()
    prog = _program(problem, budget=True, caps="fixed", peak=problem.objective == "power")
    result = _solve(prog, objective_vector(prog, problem.objective), time_limit_s)
    if result.x is not None:
        return _unpack(prog, result.x, time.perf_counter() - start)
    if result.status == 1:
        raise AccelsimError(f"the solver hit its {time_limit_s:g} s time limit without a plan")
    _diagnose(problem, time_limit_s)
    raise AccelsimError(f"the solver found no plan: {result.message}")  # pragma: no cover


def _diagnose(problem: FleetProblem, time_limit_s: float) -> None:
    """Raise :class:`PlanInfeasible` for an infeasible plan."""
    from accelsim.units import format_quantity

    unbudgeted = _program(problem, budget=False, caps="fixed", peak=True)
    result = _solve(unbudgeted, objective_vector(unbudgeted, "power"), time_limit_s)
    if result.x is None:
        scaled = _program(problem, budget=False, caps="scaled", peak=False)
        c = np.zeros(scaled.size)
        c[scaled.extra("k")] = 1.0
        found = _solve(scaled, c, time_limit_s)
        if found.x is None:  # pragma: no cover - more chips always serve more
            raise AccelsimError(f"the solver found no plan: {found.message}")
        k = float(found.x[scaled.extra("k")])
        needed = {}
        for name, terms in problem.candidates.items():
            if terms.max_chips is None:
                continue
            chips = sum(
                round(float(found.x[scaled.n(o)])) * opt.chips_per_replica
                for o, opt in enumerate(problem.options)
                if opt.candidate == name
            )
            needed[name] = max(chips, terms.max_chips)
        wanted = ", ".join(
            f"{name} {chips:,}"
            for name, chips in needed.items()
            if chips > (problem.candidates[name].max_chips or 0)
        )
        raise PlanInfeasible(
            "max_chips",
            f"infeasible: the availability caps (candidates.*.max_chips) bind; the demand "
            f"needs them {k:.3g} times as large (max_chips: {wanted})",
            {"cap_factor": k, "max_chips": needed},
        )
    peak_w = float(result.x[unbudgeted.extra("z")])
    solution = _unpack(unbudgeted, result.x, 0.0)
    hour = int(np.argmax(solution.facility_power_w()))
    assert problem.power_budget_w is not None
    raise PlanInfeasible(
        "power_budget_w",
        f"infeasible: facility.power_budget_w ({format_quantity(problem.power_budget_w, 'W', 4)}) "
        f"binds at hour {hour}; the smallest budget that serves the demand is "
        f"{format_quantity(peak_w, 'W', 4)}",
        {"power_budget_w": peak_w, "hour": hour},
    )
