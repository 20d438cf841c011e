"""DVFS under a power cap: the clock a chip must run at, and what that does to a batch.

At a clock ratio r = f / f_nominal (r <= 1):

* compute time stretches by 1/r, memory time and fixed overheads do not (each
  op's time combines the two with the chip's partial overlap, as the roofline
  does: max(c, m) + (1 - overlap) x min(c, m));
* dynamic energy per FLOP scales with r^2 (voltage falls with frequency),
  energy per byte moved does not;
* idle (static) power is drawn all the time.

A batch's average power is (dynamic energy + idle power x time) / time. When
that exceeds the cap at nominal clock, the chip runs at the largest r in
[r_min, 1] that meets it (found by bisection: power rises with r). If even
r_min is over the cap, the chip also stalls (inserts idle time) until the
average meets the cap, so a capped chip never averages more than its cap.

This is how a cap slows compute-bound work (prefill, large-batch MLPs): their
power is mostly compute energy, which falls with the clock while their time
rises. Memory-bound work (decode, embedding gathers) barely notices: its time
is set by memory, so a lower clock costs little time and saves compute energy.
"""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.config.loader import ResolvedScenario
from accelsim.errors import Problem
from accelsim.model.roofline import BatchCost

_BISECTION_STEPS = 40


@dataclass(frozen=True)
class ClockPolicy:
    """How a chip picks its clock: under a power cap, or locked at a ratio of nominal."""

    cap_w: float
    min_ratio: float = 0.5
    locked_ratio: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_ratio <= 1:
            raise ValueError("min_ratio must be in (0, 1]")
        if self.locked_ratio is not None and not 0 < self.locked_ratio <= 1:
            raise ValueError("locked_ratio must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class ClockedCost:
    """A batch's cost at the clock its policy chose."""

    time_s: float
    dynamic_energy_j: float
    clock_ratio: float
    stall_s: float  # idle time inserted to meet the cap below the minimum clock
    uncapped_time_s: float
    uncapped_power_w: float

    def power_w(self, idle_w: float) -> float:
        return self.dynamic_energy_j / self.time_s + idle_w if self.time_s > 0 else idle_w


class Terms:
    """The clock-dependent parts of a batch: per op, compute time and memory time at the
    nominal clock; the fixed overheads; dynamic energy split into what scales with the
    clock (compute) and what does not (bytes moved); and the chip's compute/memory
    overlap."""

    __slots__ = ("compute", "compute_energy", "fixed_energy", "memory", "overhead", "overlap")

    def __init__(
        self,
        compute: list[float],
        memory: list[float],
        overhead: float,
        compute_energy: float,
        fixed_energy: float,
        overlap: float,
    ) -> None:
        self.compute = compute
        self.memory = memory
        self.overhead = overhead
        self.compute_energy = compute_energy
        self.fixed_energy = fixed_energy
        self.overlap = overlap

    @classmethod
    def of(cls, cost: BatchCost) -> Terms:
        compute_energy = sum(c.energy_j.get("compute", 0.0) for c in cost.ops)
        return cls(
            [c.compute_time_s for c in cost.ops],
            [sum(c.memory_time_s.values()) for c in cost.ops],
            sum(c.overhead_s for c in cost.ops),
            compute_energy,
            cost.dynamic_energy_j - compute_energy,
            cost.overlap,
        )

    def time(self, ratio: float) -> float:
        # Per op max(c, m) + (1 - overlap) min(c, m) = c + m - overlap x min(c, m).
        compute = self.compute if ratio == 1.0 else [c / ratio for c in self.compute]
        shorter = sum(map(min, compute, self.memory))
        return self.overhead + sum(compute) + sum(self.memory) - self.overlap * shorter

    def dynamic(self, ratio: float) -> float:
        return self.compute_energy * ratio * ratio + self.fixed_energy


def at_clock(cost: BatchCost, ratio: float) -> tuple[float, float]:
    """(time, dynamic energy) of a batch at a clock ratio of nominal."""
    terms = Terms.of(cost)
    return terms.time(ratio), terms.dynamic(ratio)


def clocked(cost: BatchCost, idle_w: float, policy: ClockPolicy) -> ClockedCost:
    """The batch at the clock the policy allows (see the module docstring)."""
    return clocked_terms(Terms.of(cost), idle_w, policy)


def at_nominal_clock(terms: Terms, idle_w: float, policy: ClockPolicy) -> bool:
    """True when :func:`clocked_terms` would run these terms at the nominal clock without
    a stall, without building its result: the clock is locked at nominal, or it is free
    and the power at nominal clock is within the cap (or the terms take no time)."""
    if policy.locked_ratio is not None:
        return policy.locked_ratio == 1.0
    t1 = terms.time(1.0)
    return t1 <= 0 or terms.dynamic(1.0) / t1 + idle_w <= policy.cap_w


def clocked_terms(terms: Terms, idle_w: float, policy: ClockPolicy) -> ClockedCost:
    """:func:`clocked` on already flattened terms (the engine's fast path)."""
    t1, e1 = terms.time(1.0), terms.dynamic(1.0)
    power1 = e1 / t1 + idle_w if t1 > 0 else idle_w
    if policy.locked_ratio is not None:
        ratio = policy.locked_ratio
    elif power1 <= policy.cap_w or t1 <= 0:
        return ClockedCost(t1, e1, 1.0, 0.0, t1, power1)
    else:

        def power(r: float) -> float:
            return terms.dynamic(r) / terms.time(r) + idle_w

        lo, hi = policy.min_ratio, 1.0
        if power(lo) > policy.cap_w:
            ratio = lo
        else:
            for _ in range(_BISECTION_STEPS):
                mid = (lo + hi) / 2
                if power(mid) > policy.cap_w:
                    hi = mid
                else:
                    lo = mid
            ratio = lo
    time, dynamic = terms.time(ratio), terms.dynamic(ratio)
    stall = 0.0
    if policy.locked_ratio is None and dynamic / time + idle_w > policy.cap_w:
        # Below the minimum clock: stall until the average meets the cap.
        stretched = dynamic / (policy.cap_w - idle_w)
        stall = stretched - time
        time = stretched
    return ClockedCost(time, dynamic, ratio, stall, t1, power1)


# ------------------------------------------------------------------- facility power shifting

SHIFT_FLOOR_SHARE = 0.05  # the busy share an idle pool is weighted as


@dataclass(frozen=True)
class PoolPower:
    """What the shift policy knows of a pool: its chips, their idle power and the most
    each may draw (its own cap, default TDP)."""

    chips: int
    idle_w: float
    ceiling_w: float


def shifted_caps_w(it_budget_w: float, pools: list[PoolPower], busy: list[float]) -> list[float]:
    """Per-chip caps that share an IT budget between pools by demand.

    Every chip keeps its idle power; the room above the fleet's idle power,
    ``it_budget_w - sum(chips x idle_w)`` (which must be positive), goes to the pools in
    proportion to ``max(busy share, SHIFT_FLOOR_SHARE) x chips x (ceiling_w - idle_w)``,
    and a pool whose share would take it past its ceiling gets its ceiling, the rest
    being split again among the others (water filling). So the caps' sum over all chips
    never exceeds the budget, equals it unless every pool is at its ceiling, and every
    cap lies strictly above idle power and at most at its ceiling."""
    room = it_budget_w - sum(p.chips * p.idle_w for p in pools)
    if room <= 0:
        raise ValueError("the budget does not exceed the fleet's idle power")
    weights = [
        max(share, SHIFT_FLOOR_SHARE) * p.chips * (p.ceiling_w - p.idle_w)
        for p, share in zip(pools, busy, strict=True)
    ]
    extra = [0.0] * len(pools)  # watts above idle, whole pool
    open_ = set(range(len(pools)))
    while open_:
        total = sum(weights[k] for k in open_)
        full = [
            k
            for k in open_
            if room * weights[k] / total >= pools[k].chips * (pools[k].ceiling_w - pools[k].idle_w)
        ]
        if not full:
            for k in open_:
                extra[k] = room * weights[k] / total
            break
        for k in full:
            extra[k] = pools[k].chips * (pools[k].ceiling_w - pools[k].idle_w)
            room -= extra[k]
            open_.discard(k)
    return [p.idle_w + e / p.chips for p, e in zip(pools, extra, strict=True)]


# ---------------------------------------------------------------------- a scenario's policies


def pool_powers(resolved: ResolvedScenario) -> dict[str, PoolPower]:
    """Each pool's chips, idle power and ceiling (its own cap, default TDP)."""
    return {
        name: PoolPower(
            pool.count,
            resolved.chips[name].power.idle_w,
            pool.power_cap_w or resolved.chips[name].power.tdp_w,
        )
        for name, pool in resolved.scenario.pools.items()
    }


def shift_budget_problem(resolved: ResolvedScenario) -> Problem | None:
    """Under the shift policy, a budget at or below the fleet's idle power has no room to
    share out."""
    facility = resolved.scenario.facility
    if facility.budget_policy != "shift" or facility.power_budget_w is None:
        return None
    idle = sum(p.chips * p.idle_w for p in pool_powers(resolved).values()) * facility.pue
    if facility.power_budget_w > idle:
        return None
    return resolved.problem(
        ("facility", "power_budget_w"),
        f"a budget of {facility.power_budget_w:.4g} W leaves nothing to shift: the fleet's "
        f"idle power is {idle:.4g} W (x PUE)",
    )


def chip_caps_w(resolved: ResolvedScenario) -> dict[str, float]:
    """Each pool's per-chip power cap: its own cap (default TDP), lowered in proportion
    when a facility budget with the ``cap`` policy cannot feed the fleet's TDP. Under the
    ``shift`` policy, the caps it starts from: the budget split as if every pool were
    fully busy."""
    scenario = resolved.scenario
    facility = scenario.facility
    if facility.budget_policy == "shift" and shift_budget_problem(resolved) is None:
        assert facility.power_budget_w is not None
        powers = pool_powers(resolved)
        caps_w = shifted_caps_w(
            facility.power_budget_w / facility.pue, list(powers.values()), [1.0] * len(powers)
        )
        return dict(zip(powers, caps_w, strict=True))
    caps = {
        name: pool.power_cap_w or resolved.chips[name].power.tdp_w
        for name, pool in scenario.pools.items()
    }
    if facility.power_budget_w is not None and facility.budget_policy == "cap":
        it_budget = facility.power_budget_w / facility.pue
        fleet = sum(caps[name] * pool.count for name, pool in scenario.pools.items())
        if fleet > it_budget:
            caps = {name: cap * it_budget / fleet for name, cap in caps.items()}
    return caps


def clock_policies(resolved: ResolvedScenario, problems: list[Problem]) -> dict[str, ClockPolicy]:
    """The clock policy of every pool whose cap leaves room above idle power."""
    shift = shift_budget_problem(resolved)
    if shift is not None:
        problems.append(shift)
        return {}
    policies = {}
    for name, cap in chip_caps_w(resolved).items():
        pool = resolved.scenario.pools[name]
        chip = resolved.chips[name]
        if cap <= chip.power.idle_w:
            at = (
                ("facility", "power_budget_w")
                if pool.power_cap_w is None
                else ("pools", name, "power_cap_w")
            )
            problems.append(
                resolved.problem(
                    at,
                    f"pool {name}: a cap of {cap:.4g} W per chip is not above the idle power of "
                    f"{chip.name} ({chip.power.idle_w:.4g} W)",
                )
            )
            continue
        c = chip.compute
        min_ratio = c.min_clock_hz / c.clock_hz if c.min_clock_hz else 0.5
        policies[name] = ClockPolicy(cap, min_ratio, pool.clock_lock)
    return policies
