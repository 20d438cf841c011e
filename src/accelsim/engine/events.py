"""The SimPy shortcuts the fleets share: bare scheduled callbacks, and lanes.

A *bare* callback is a function to call at a time, with nothing waiting on it.
On a :class:`Clock` it goes on SimPy's heap as itself, under a priority equal to
SimPy's ``NORMAL`` (so it sorts exactly as an event SimPy schedules would) but
told apart by identity, so the clock calls it without building an event.

A *lane* is a stream of callbacks that are mostly scheduled in the order they
fall due (a workload's arrivals, a ranking fleet's batching deadlines). It keeps
them in a FIFO beside SimPy's heap, so they cost a deque append and pop instead
of a heap push and pop whose depth grows with every pending event of the run (a
thousand-chip pool keeps a thousand or so). An entry that would fall due before
the lane's last one goes on the heap instead, so the lane stays sorted. Every
event compares the lanes' heads, so a clock keeps at most :data:`MAX_LANES`; a
lane asked for past that puts its entries on the heap.
:class:`Clock` takes the next event from the heap or a lane head, whichever is
first by the key SimPy orders its heap by (time, priority, sequence number): the
order of events is exactly the one a plain :class:`simpy.Environment` gives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, Infinity, StopSimulation
from simpy.events import NORMAL, URGENT, Event, EventPriority

Callback = Callable[[Any], None]


class _Bare(int):
    """SimPy's ``NORMAL`` priority by value (so heap order is unchanged), marking a bare
    callback by identity."""


BARE = _Bare(NORMAL)

MAX_LANES = 8  # lanes a clock compares at every event; more go to the heap


class _Call:
    """What :meth:`simpy.Environment.step` reads of a triggered event: its callbacks
    and that it succeeded (``_ok``). Nothing waits on it and it carries no value, so it
    needs none of :class:`simpy.events.Event`'s other state."""

    __slots__ = ("callbacks",)
    _ok = True

    def __init__(self, callback: Callback) -> None:
        self.callbacks: list[Callback] | None = [callback]


def call_at(env: simpy.Environment, delay: float, callback: Callback) -> None:
    """Call ``callback`` after ``delay``, in the order :meth:`simpy.Environment.schedule`
    would give an event scheduled now (same time, priority and sequence number): bare on
    a :class:`Clock`; on a plain environment, a minimal already-triggered event."""
    if isinstance(env, Clock):
        env.call_at(delay, callback)
        return
    queue: list[tuple[float, Any, int, Any]] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), _Call(callback)))


class Lane:
    """Callbacks in a FIFO beside the clock's heap (see the module's docstring)."""

    __slots__ = ("clock", "entries")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.entries: deque[tuple[float, int, int, Callback]] = deque()

    def call_at(self, delay: float, callback: Callback) -> None:
        """:func:`call_at` through the lane: the same time and sequence number."""
        clock = self.clock
        entry = (clock._now + delay, NORMAL, next(clock._eid), callback)
        entries = self.entries
        if entries and entry < entries[-1]:  # due before the lane's last: the heap
            queue: list[Any] = clock._queue
            heappush(queue, (entry[0], BARE, entry[2], callback))
        else:
            entries.append(entry)


class _HeapOnly(Lane):
    """A lane asked for past the clock's :data:`MAX_LANES`: its entries go on the heap."""

    __slots__ = ()

    def call_at(self, delay: float, callback: Callback) -> None:
        self.clock.call_at(delay, callback)


class Clock(simpy.Environment):
    """A SimPy environment whose next event may also come from a lane."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: list[deque[tuple[float, int, int, Callback]]] = []

    def call_at(self, delay: float, callback: Callback) -> None:
        """Call ``callback`` after ``delay``: a bare callback on the heap."""
        queue: list[Any] = self._queue
        heappush(queue, (self._now + delay, BARE, next(self._eid), callback))

    def lane(self) -> Lane:
        """A new lane on this clock (past :data:`MAX_LANES`, one that uses the heap)."""
        if len(self.lanes) >= MAX_LANES:
            return _HeapOnly(self)
        lane = Lane(self)
        self.lanes.append(lane.entries)
        return lane

    def peek(self) -> float:
        """The time of the next event, in the heap or a lane (infinity if none)."""
        times = [entries[0][0] for entries in self.lanes if entries]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times, default=Infinity)

    def run(self, until: float | Event | None = None) -> Any:
        """:meth:`simpy.Environment.run`; up to a time, its loop inlined, which a long
        run spends most of its time in (SimPy's own loop calls :meth:`step` per event)."""
        if until is None or isinstance(until, Event):
            return super().run(until)
        at = until if isinstance(until, int) else float(until)
        if at <= self._now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        # The stop, as SimPy schedules it: before every regular event at that time.
        stop = Event(self)
        stop._ok = True
        stop._value = None
        self.schedule(stop, URGENT, at - self._now)
        stop.callbacks.append(StopSimulation.callback)
        queue: list[Any] = self._queue
        lanes = self.lanes
        try:
            while True:
                first: Any = queue[0]  # this run's stop is on the heap until it is taken
                chosen = None
                for entries in lanes:
                    if entries and entries[0] < first:
                        first = entries[0]
                        chosen = entries
                if chosen is not None:
                    chosen.popleft()
                    self._now = first[0]
                    first[3](None)
                    continue
                heappop(queue)
                self._now = first[0]
                event = first[3]
                if first[1] is BARE:
                    event(None)
                    continue
                # An event, as :meth:`simpy.Environment.step` processes it.
                callbacks, event.callbacks = event.callbacks, None
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:
                    # A stop: its other callbacks wait, first in line (SimPy's way).
                    event.callbacks = callbacks[callbacks.index(callback) + 1 :]
                    self.schedule(event, EventPriority(-1))
                    raise
                if not event._ok and not hasattr(event, "_defused"):
                    # A failed event nobody defused crashes the run, as in SimPy.
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stopped:
            return stopped.args[0]

    def step(self) -> None:
        """Process the next event: a lane's head when it comes before the heap's."""
        queue: list[Any] = self._queue
        first: Any = queue[0] if queue else None
        chosen = None
        for entries in self.lanes:
            if entries and (first is None or entries[0] < first):
                first = entries[0]
                chosen = entries
        if chosen is not None:
            chosen.popleft()
            self._now = first[0]
            first[3](None)
            return
        if first is None:
            raise EmptySchedule
        if first[1] is BARE:
            heappop(queue)
            self._now = first[0]
            first[3](None)
            return
        super().step()
