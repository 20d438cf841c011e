"""Routing policies: which unit (a chip, a pool's shared queue, an LLM replica) takes a request.

One router serves one workload over the units that can serve it, in a fixed
order. Each policy is one class registered in :data:`ROUTERS` under the name a
scenario's ``router.policy`` gives (the config layer lists the same names).
A unit offers what the policies read:

* ``outstanding`` and ``n_devices``: requests routed to it and not finished,
  and the chips that share its queue (join the shortest queue compares
  ``outstanding / n_devices``);
* ``work_s`` and ``item_cost_s(workload)``: the estimated chip-seconds of work
  routed to it and not finished, and a request item's own estimated work there
  (least work compares ``(work_s + items x item_cost_s) / n_devices``, the
  time until a new request would finish);
* ``energy_per_item_j(workload)`` (ranking stations; power-aware routing only): a
  request item's estimated dynamic energy there;
* ``watchers``: a list to which an indexed router adds ``(moved, position)``
  while it is built (a ranking fleet then freezes it into a tuple); the unit
  calls ``moved(position)`` whenever its ``outstanding`` or ``work_s`` changes.

Every policy keeps a rotating start so that ties go round-robin and no pool is
favoured: of the units that tie for the best, the first at or after the start,
in the units' order and wrapping round, wins.

Decisions do not scan the units. Join-the-shortest-queue keeps each unit in
a bucket by its outstanding count, a bit set per count: the first unit from
the start in the lowest bucket is a shift and a lowest-bit test, a constant
number of interpreter steps (the integer operations themselves run in C over
N bits, N/30 machine digits: 34 for 1,000 units). Least work keeps a min-tree
of the units' work: O(log N) steps. Both are brought up to date by the units'
own notifications, in the same number of steps.
``power_of_d`` samples ``d`` distinct units from the workload's own seeded
stream and takes the one with the shortest queue per chip among them, in
O(d) whatever the fleet's size. ``power_aware`` keeps least work's min-trees,
one per pool, and tries the pools in order of energy per item: O(pools + log N).
``session_affinity`` (LLM sessions) is join-the-shortest-queue plus a dictionary of
each session's home unit: O(1).
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

ROUTER_STREAM = 0x726F75  # the router's stream is told apart from the workload's by this


def router_rng(seed: int, workload: str) -> np.random.Generator:
    """The random stream of one workload's router: a function of the seed and the
    workload's name only, separate from the workload's arrival stream."""
    entropy = [seed, zlib.crc32(workload.encode()), ROUTER_STREAM]
    return np.random.default_rng(np.random.SeedSequence(entropy))


class Router:
    """Base: round-robin bookkeeping over the units; subclasses pick."""

    name: ClassVar[str]
    pool_queue: ClassVar[bool] = False  # a pool's chips take work from one shared queue
    estimates_work: ClassVar[bool] = False  # units must keep a backlog estimate in seconds

    def __init__(
        self,
        units: Sequence[Any],
        workload: int,
        rng: np.random.Generator | None = None,
        d: int = 2,
        headroom_s: float = math.inf,
    ) -> None:
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


def first_from(members: int, start: int) -> int:
    """The lowest set bit of ``members`` at or after bit ``start``, wrapping round to the
    lowest set bit overall (``members`` must not be 0)."""
    later = members >> start
    if later:
        return start + (later & -later).bit_length() - 1
    return (members & -members).bit_length() - 1


class RoundRobin(Router):
    name = "round_robin"

    def pick(self, items: int = 1) -> Any:
        return self.units[self.rotate()]


class _Buckets:
    """The units of one size (chips per unit) by outstanding requests: ``sets[k]`` has bit
    ``i`` set when unit ``i`` of the router holds ``k``; ``low`` is the lowest nonempty
    ``k``."""

    __slots__ = ("low", "n_devices", "sets")

    def __init__(self, n_devices: int) -> None:
        self.n_devices = n_devices
        self.sets: list[int] = [0]
        self.low = 0


class JoinShortestQueue(Router):
    """The unit with the fewest outstanding requests per chip; the first in rotation wins
    ties. Units are kept in buckets by outstanding count, one set of buckets per unit
    size: the lowest bucket holds the candidates, and the first from the start among
    them is found by bit arithmetic. A unit's move between buckets is O(1)."""

    name = "join_shortest_queue"

    def __init__(
        self,
        units: Sequence[Any],
        workload: int,
        rng: np.random.Generator | None = None,
        d: int = 2,
        headroom_s: float = math.inf,
    ) -> None:
        super().__init__(units, workload)
        sizes = sorted({u.n_devices for u in self.units})
        self.groups = [_Buckets(size) for size in sizes]
        self.group_of = [self.groups[sizes.index(u.n_devices)] for u in self.units]
        self.held = [0] * self.n  # each unit's outstanding count as last notified
        moved = self.moved  # one bound method for every unit (a thousand would be cold)
        for i, unit in enumerate(self.units):
            self.group_of[i].sets[0] |= 1 << i
            unit.watchers.append((moved, i))
            moved(i)
        for group in self.groups:  # every group has a unit, so some bucket is nonempty
            while not group.sets[group.low]:
                group.low += 1

    def moved(self, i: int) -> None:
        """Unit ``i``'s outstanding count may have changed: move it between buckets."""
        new = self.units[i].outstanding
        old = self.held[i]
        if new == old:
            return
        self.held[i] = new
        group = self.group_of[i]
        sets = group.sets
        bit = 1 << i
        sets[old] ^= bit
        if new >= len(sets):
            sets.extend([0] * (new + 1 - len(sets)))
        sets[new] |= bit
        if new < group.low:
            group.low = new
        elif old == group.low and not sets[old]:
            low = old + 1
            while not sets[low]:
                low += 1
            group.low = low

    def pick(self, items: int = 1) -> Any:
        # The rotation inlined: this runs once per arrival.
        start = self.next
        self.next = start + 1 if start + 1 < self.n else 0
        groups = self.groups
        if len(groups) == 1:
            group = groups[0]
            return self.units[first_from(group.sets[group.low], start)]
        best = min(g.low / g.n_devices for g in groups)
        members = 0
        for g in groups:
            if g.low / g.n_devices == best:
                members |= g.sets[g.low]
        return self.units[first_from(members, start)]


class _MinTree:
    """A fixed number of values with the minimum of every aligned power-of-two block of
    them (a segment tree): a value changes in O(log N), and the first position from a
    start whose value passes a monotone test is found in O(log N)."""

    __slots__ = ("size", "tree")

    def __init__(self, values: list[float]) -> None:
        size = 1
        while size < len(values):
            size *= 2
        tree = [float("inf")] * (2 * size)
        tree[size : size + len(values)] = values
        for i in range(size - 1, 0, -1):
            left, right = tree[2 * i], tree[2 * i + 1]
            tree[i] = left if left <= right else right
        self.size = size
        self.tree = tree

    def set(self, position: int, value: float) -> None:
        tree = self.tree
        i = position + self.size
        tree[i] = value
        i >>= 1
        while i:
            left, right = tree[2 * i], tree[2 * i + 1]
            low = left if left <= right else right
            if tree[i] == low:
                return
            tree[i] = low
            i >>= 1

    def first(self, position: int, add: float, divide: int, target: float) -> int:
        """The first position at or after ``position`` whose value ``v`` has
        ``(v + add) / divide == target``, or -1; ``target`` must be the least such key,
        so a block passes the test if and only if its minimum does."""
        tree, size = self.tree, self.size
        if position >= size:
            return -1
        i = position + size
        while (tree[i] + add) / divide != target:
            while i & 1:  # the last block of its parent: climb
                i >>= 1
            if i == 0:
                return -1
            i += 1  # the next block to the right
        while i < size:
            i *= 2
            if (tree[i] + add) / divide != target:
                i += 1
        return i - size


class _WorkGroup:
    """The units of a least-work router that share a cost per item and a size: their
    keys are one monotone function of their work, so one min-tree orders them."""

    __slots__ = ("item_cost_s", "members", "n_devices", "tree")

    def __init__(self, item_cost_s: float, n_devices: int, members: list[int]) -> None:
        self.item_cost_s = item_cost_s
        self.n_devices = n_devices
        self.members = members  # the router's unit indices, ascending
        self.tree = _MinTree([0.0] * len(members))


class LeastWork(Router):
    """The unit that would finish this request soonest by its estimated backlog plus the
    request's own work there, which favours faster chips in a mixed fleet. Units with the
    same cost per item and size form a group ordered by a min-tree of their work; each
    group's best key is its least work's, and the first unit from the start whose key
    equals the best is found by descending the trees."""

    name = "least_work"
    estimates_work = True

    def __init__(
        self,
        units: Sequence[Any],
        workload: int,
        rng: np.random.Generator | None = None,
        d: int = 2,
        headroom_s: float = math.inf,
    ) -> None:
        super().__init__(units, workload)
        by_key: dict[tuple[float, ...], list[int]] = {}
        for i, unit in enumerate(self.units):
            by_key.setdefault(self.group_key(unit), []).append(i)
        self.keys = list(by_key)
        self.groups = [_WorkGroup(key[0], int(key[1]), members) for key, members in by_key.items()]
        self.slot: list[tuple[_MinTree, int]] = [(self.groups[0].tree, 0)] * self.n
        for group in self.groups:
            for position, i in enumerate(group.members):
                self.slot[i] = (group.tree, position)
        moved = self.moved  # one bound method for every unit
        for i, unit in enumerate(self.units):
            unit.watchers.append((moved, i))
            moved(i)

    def group_key(self, unit: Any) -> tuple[float, ...]:
        """What the units of one group share: cost per item and size first."""
        return (unit.item_cost_s(self.workload), unit.n_devices)

    def moved(self, i: int) -> None:
        """Unit ``i``'s work may have changed."""
        tree, position = self.slot[i]
        tree.set(position, self.units[i].work_s)

    def pick(self, items: int = 1) -> Any:
        start = self.rotate()
        if self.n == 1:
            return self.units[start]
        return self.least(start, items)

    def first_in(self, g: _WorkGroup, start: int, items: int, target: float) -> int:
        """The router's index of the first unit of group ``g`` at or after ``start``
        (wrapping round) whose key is ``target``, the group's least."""
        add = items * g.item_cost_s
        position = g.tree.first(bisect_left(g.members, start), add, g.n_devices, target)
        if position < 0:
            position = g.tree.first(0, add, g.n_devices, target)
        return g.members[position]

    def least(self, start: int, items: int) -> Any:
        """The unit with the least key, the first from ``start`` among ties."""
        n = self.n
        groups = self.groups
        if len(groups) == 1:
            g = groups[0]
            add = items * g.item_cost_s
            target = (g.tree.tree[1] + add) / g.n_devices
            position = g.tree.first(start, add, g.n_devices, target)
            if position < 0:
                position = g.tree.first(0, add, g.n_devices, target)
            return self.units[position]
        keys = [(g.tree.tree[1] + items * g.item_cost_s) / g.n_devices for g in groups]
        target = min(keys)
        best, best_distance = 0, n
        for g, key in zip(groups, keys, strict=True):
            if key != target:
                continue
            i = self.first_in(g, start, items, target)
            distance = i - start if i >= start else i - start + n
            if distance < best_distance:
                best, best_distance = i, distance
        return self.units[best]


class PowerAware(LeastWork):
    """Of the units with SLA headroom, one of the group whose marginal energy per item is
    lowest; least work when none has headroom.

    A unit has headroom for a request when its backlog per chip plus the request's own
    work there, ``(work_s + items x item_cost_s) / n_devices`` (least work's key: the time
    until the request would finish, batching wait aside), is at most ``headroom_s`` (the
    scenario's ``sla_share`` of the workload's SLA latency). A request's marginal energy
    on a unit is ``items x energy_per_item_j``: the dynamic energy a full batch spends per
    item at the unit's clock (idle power is drawn whether or not the request comes, so it
    is no part of the margin). Units are grouped as least work groups them and also by
    that energy, so a group is one pool (or pools alike in all three); groups are tried in
    order of energy, and the first whose least key is within the headroom wins (of equal
    energies, the smaller key), then its least loaded unit, the first from the rotating
    start among ties. A decision costs O(groups + log N)."""

    name = "power_aware"

    def __init__(
        self,
        units: Sequence[Any],
        workload: int,
        rng: np.random.Generator | None = None,
        d: int = 2,
        headroom_s: float = math.inf,
    ) -> None:
        super().__init__(units, workload)
        self.headroom_s = headroom_s
        self.cheapest = sorted(
            range(len(self.groups)), key=lambda k: (self.keys[k][2], k)
        )  # group indices by energy per item

    def group_key(self, unit: Any) -> tuple[float, ...]:
        return (*super().group_key(unit), unit.energy_per_item_j(self.workload))

    def pick(self, items: int = 1) -> Any:
        start = self.rotate()
        if self.n == 1:
            return self.units[start]
        headroom = self.headroom_s
        groups, keys = self.groups, self.keys
        energy = -1.0
        tied: list[int] = []  # groups of the lowest energy with headroom, by key
        best = math.inf
        for k in self.cheapest:
            if tied and keys[k][2] != energy:
                break
            g = groups[k]
            key = (g.tree.tree[1] + items * g.item_cost_s) / g.n_devices
            if key > headroom or key > best:
                continue
            if key < best:
                tied, best, energy = [], key, keys[k][2]
            tied.append(k)
        if not tied:
            return self.least(start, items)
        if len(tied) == 1:
            return self.units[self.first_in(groups[tied[0]], start, items, best)]
        n = self.n
        chosen, distance = 0, n
        for k in tied:
            i = self.first_in(groups[k], start, items, best)
            d = i - start if i >= start else i - start + n
            if d < distance:
                chosen, distance = i, d
        return self.units[chosen]


class SharedQueue(JoinShortestQueue):
    """Each pool is one unit whose idle chips all take work from the same queue (M/D/c);
    between pools, the shortest queue per chip."""

    name = "shared_queue"
    pool_queue = True


class PowerOfD(Router):
    """Of ``d`` distinct units drawn uniformly from the workload's router stream, the one
    with the fewest outstanding requests per chip (the first drawn wins ties): nearly
    join-the-shortest-queue's balance at O(d) per decision, for very large pools."""

    name = "power_of_d"
    block = 1 << 12  # draws made at a time

    def __init__(
        self,
        units: Sequence[Any],
        workload: int,
        rng: np.random.Generator | None = None,
        d: int = 2,
        headroom_s: float = math.inf,
    ) -> None:
        super().__init__(units, workload)
        if rng is None:
            raise ValueError("power_of_d draws its units from a random stream")
        self.rng = rng
        self.d = min(d, self.n)
        # The k-th draw is uniform over the n - k units not drawn yet.
        self.highs = np.arange(self.n, self.n - self.d, -1)
        self.draws: list[list[int]] = []
        self.k = 0

    def sample(self) -> list[int]:
        """The next ``d`` distinct unit indices, in the order drawn."""
        if self.k == len(self.draws):
            self.draws = self.rng.integers(0, self.highs, size=(self.block, self.d)).tolist()
            self.k = 0
        row = self.draws[self.k]
        self.k += 1
        chosen: list[int] = []
        for r in row:  # the r-th unit not yet chosen
            for c in sorted(chosen):
                if r >= c:
                    r += 1
            chosen.append(r)
        return chosen

    def pick(self, items: int = 1) -> Any:
        units = self.units
        if self.n == 1:
            return units[0]
        best = None
        best_load = 0.0
        for i in self.sample():
            unit = units[i]
            load = unit.outstanding / unit.n_devices
            if best is None or load < best_load:
                best, best_load = unit, load
        return best


# A session's home may hold this many more outstanding requests than the shortest
# queue and still take the session's next turn.
SESSION_AFFINITY_SLACK = 4


class SessionAffinity(JoinShortestQueue):
    """A session's turns go to its *home*, the unit that took its latest turn (where the
    KV of its history may be cached), unless the home holds more than
    :data:`SESSION_AFFINITY_SLACK` requests per chip above the shortest queue; then, and
    for requests outside sessions, join the shortest queue (the session's new home).
    ``pick_for(session)`` routes a request of a session (a negative one: none)."""

    name = "session_affinity"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.home: dict[int, Any] = {}

    def pick_for(self, session: int) -> Any:
        shortest = self.pick()
        if session < 0:
            return shortest
        home = self.home.get(session)
        if home is not None and (
            home.outstanding / home.n_devices
            <= shortest.outstanding / shortest.n_devices + SESSION_AFFINITY_SLACK
        ):
            return home
        self.home[session] = shortest
        return shortest


ROUTERS: dict[str, type[Router]] = {
    cls.name: cls
    for cls in (
        RoundRobin,
        JoinShortestQueue,
        LeastWork,
        SharedQueue,
        PowerOfD,
        PowerAware,
        SessionAffinity,
    )
}
