"""Facility power shifting: per-pool power caps that follow load under one budget.

Under ``facility.budget_policy: shift`` every pool's chips share one IT budget
(``power_budget_w / pue``). Each pool keeps a :class:`PoolMeter`: the fleets add
the chip-seconds of every batch or iteration they start, and register how to
put a new clock policy into effect. Every ``shift_interval_s`` from time 0 the
:class:`PowerShifter` reads each pool's busy share over the interval just ended
(chip-seconds over chips x interval, at most 1), asks the cost model for the new
caps (:func:`accelsim.model.power.shifted_caps_w`) and hands each pool its new
policy. Work already started keeps the clock it started at; the next batch or
iteration runs under the new cap. Routers' estimates (work and energy per item)
stay those of the caps at the start. The caps in force are kept as a step
function of time for the result document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import simpy

from accelsim.engine.events import call_at
from accelsim.engine.records import CapHistory
from accelsim.model.power import ClockPolicy, PoolPower, shifted_caps_w


class PoolMeter:
    """One pool's chip-seconds of work started since the last shift, and the callbacks
    that put a new clock policy into effect on its units."""

    __slots__ = ("appliers", "busy_s")

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.appliers: list[Callable[[ClockPolicy], None]] = []


class PowerShifter:
    """Reassigns the pools' caps every interval (see the module docstring)."""

    def __init__(
        self,
        env: simpy.Environment,
        it_budget_w: float,
        interval_s: float,
        pools: dict[str, PoolPower],
        clocks: dict[str, ClockPolicy],
        meters: dict[str, PoolMeter],
    ) -> None:
        self.env = env
        self.it_budget_w = it_budget_w
        self.interval_s = interval_s
        self.pools = pools
        self.clocks = dict(clocks)
        self.meters = meters
        self.times = [0.0]
        self.caps: dict[str, list[float]] = {name: [c.cap_w] for name, c in clocks.items()}

    def start(self) -> None:
        call_at(self.env, self.interval_s, self._shift)

    def _shift(self, _event: Any) -> None:
        names = list(self.clocks)
        shares = []
        for name in names:
            meter = self.meters.get(name)
            busy = meter.busy_s if meter is not None else 0.0
            if meter is not None:
                meter.busy_s = 0.0
            chips = self.pools[name].chips
            shares.append(min(1.0, busy / (chips * self.interval_s)))
        caps = shifted_caps_w(self.it_budget_w, [self.pools[name] for name in names], shares)
        self.times.append(self.env.now)
        for name, cap in zip(names, caps, strict=True):
            self.caps[name].append(cap)
            clock = self.clocks[name] = replace(self.clocks[name], cap_w=cap)
            meter = self.meters.get(name)
            if meter is not None:
                for apply in meter.appliers:
                    apply(clock)
        call_at(self.env, self.interval_s, self._shift)

    def history(self) -> CapHistory:
        return CapHistory(self.interval_s, self.it_budget_w, tuple(self.times), self.caps)
