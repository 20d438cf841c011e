"""The one SimPy shortcut the fleets share: a bare scheduled callback."""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class _Call:
    """What :meth:`simpy.Environment.step` reads of a triggered event: its callbacks
    and that it succeeded (``_ok``). Nothing waits on it and it carries no value, so it
    needs none of :class:`simpy.events.Event`'s other state."""

    __slots__ = ("callbacks",)
    _ok = True

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self.callbacks: list[Callable[[Any], None]] | None = [callback]


def call_at(env: simpy.Environment, delay: float, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` after ``delay``: a bare, already-triggered event pushed on the
    environment's queue as :meth:`simpy.Environment.schedule` pushes one (same time,
    priority and sequence number, so the same order), without building a full event."""
    queue: list[tuple[float, Any, int, Any]] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), _Call(callback)))
