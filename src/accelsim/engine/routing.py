"""Routing policies: which unit (a chip, a pool's shared queue, an LLM replica) takes a request.

One router serves one workload over the units that can serve it, in a fixed
order. Each policy is one class registered in :data:`ROUTERS` under the name a
scenario's ``router.policy`` gives (the config layer lists the same names).
A unit offers what the policies read:

* ``outstanding`` and ``n_devices``: requests routed to it and not finished,
  and the chips that share its queue (join the shortest queue compares
  ``outstanding / n_devices``);
* ``backlog_s(workload, items)``: the estimated time until a new request of
  ``items`` would finish there (least work).

Every policy keeps a rotating start so that ties go round-robin and no pool is
favoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class Router:
    """Base: round-robin bookkeeping over the units; subclasses pick."""

    name: ClassVar[str]
    pool_queue: ClassVar[bool] = False  # a pool's chips take work from one shared queue
    estimates_work: ClassVar[bool] = False  # units must keep a backlog estimate in seconds

    def __init__(self, units: Sequence[Any], workload: int) -> None:
        self.units = list(units)
        self.n = len(self.units)
        self.workload = workload
        self.next = 0

    def rotate(self) -> int:
        """The unit to start from (and try first); advances the rotation."""
        start = self.next
        self.next = start + 1 if start + 1 < self.n else 0
        return start

    def pick(self, items: int = 1) -> Any:
        raise NotImplementedError


class RoundRobin(Router):
    name = "round_robin"

    def pick(self, items: int = 1) -> Any:
        return self.units[self.rotate()]


class JoinShortestQueue(Router):
    """The unit with the fewest outstanding requests per chip; the first in rotation wins
    ties, and an empty unit ends the search."""

    name = "join_shortest_queue"

    def pick(self, items: int = 1) -> Any:
        # The rotation inlined: this runs once per arrival.
        start = self.next
        n = self.n
        self.next = start + 1 if start + 1 < n else 0
        units = self.units
        best = units[start]
        if n == 1:
            return best
        best_load = best.outstanding / best.n_devices
        if best_load == 0:
            return best
        for k in range(start + 1, start + n):
            unit = units[k - n if k >= n else k]
            load = unit.outstanding / unit.n_devices
            if load < best_load:
                if load == 0:
                    return unit
                best, best_load = unit, load
        return best


class LeastWork(Router):
    """The unit that would finish this request soonest by its estimated backlog plus the
    request's own work there, which favours faster chips in a mixed fleet."""

    name = "least_work"
    estimates_work = True

    def pick(self, items: int = 1) -> Any:
        start = self.rotate()
        units, n, w = self.units, self.n, self.workload
        if n == 1:
            return units[start]
        return min((units[(start + k) % n] for k in range(n)), key=lambda u: u.backlog_s(w, items))


class SharedQueue(JoinShortestQueue):
    """Each pool is one unit whose idle chips all take work from the same queue (M/D/c);
    between pools, the shortest queue per chip."""

    name = "shared_queue"
    pool_queue = True


ROUTERS: dict[str, type[Router]] = {
    cls.name: cls for cls in (RoundRobin, JoinShortestQueue, LeastWork, SharedQueue)
}
