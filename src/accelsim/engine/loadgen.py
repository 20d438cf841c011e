"""Closed-loop traffic: users who wait for their response before they send again.

MLPerf LoadGen's Server scenario is open-loop (``poisson`` traffic) and its Offline
scenario sends every request at once (``offline`` traffic, drawn up front like any other
arrivals in :mod:`accelsim.engine.arrivals`). A closed loop cannot be drawn up front:
each of its ``users`` sends one request at time 0, and when that request completes
(or is rejected) thinks for ``think_s`` (fixed, or exponential with that mean) and sends
the next, up to the end of the run. Users are interchangeable, so the loop only counts
them: a completion frees one, a send takes one.

A fleet feeds a loop through two calls: :meth:`ClosedLoop.start` with the function that
sends one request at the current time, and :meth:`ClosedLoop.done` from the fleet's
completion hook (set only for closed-loop workloads, so an open-loop run pays nothing).
Think times come from their own stream, so they do not shift the request sizes, which
the fleet draws from the workload's stream in blocks as it needs them
(:func:`size_blocks`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import simpy

from accelsim.config.schema import ClosedLoopTraffic, SizeDistribution
from accelsim.engine.arrivals import sample_sizes
from accelsim.engine.events import call_at

THINK_BLOCK = 4096  # think times drawn at a time
SIZE_BLOCK = 4096  # request sizes drawn at a time


def think_rng(seed: int, workload: str) -> np.random.Generator:
    """The think-time stream of one closed-loop workload (apart from its sizes')."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(workload.encode()), 1]))


def size_blocks(dist: SizeDistribution, rng: np.random.Generator) -> Iterator[int]:
    """Request sizes one at a time, drawn SIZE_BLOCK at a time from ``rng``."""
    while True:
        yield from sample_sizes(dist, SIZE_BLOCK, rng).tolist()


class ClosedLoop:
    """The users of one closed-loop workload, on the fleet's clock."""

    def __init__(
        self,
        env: simpy.Environment,
        traffic: ClosedLoopTraffic,
        end_s: float,
        rng: np.random.Generator,
    ) -> None:
        self.env = env
        self.users = traffic.users
        self.end_s = end_s
        self.mean_think_s = traffic.think_s
        self.exponential = traffic.think == "exponential" and traffic.think_s > 0
        self.rng = rng
        self._thinks: list[float] = []
        self._send: Callable[[float], None] | None = None

    def start(self, send: Callable[[float], None]) -> None:
        """Every user sends its first request at time 0 (one event); ``send(now)``
        submits one request."""
        self._send = send
        call_at(self.env, 0.0, self._first)

    def _first(self, _event: Any) -> None:
        assert self._send is not None
        for _ in range(self.users):
            self._send(0.0)

    def _think_s(self) -> float:
        if not self.exponential:
            return self.mean_think_s
        if not self._thinks:
            block = self.rng.exponential(self.mean_think_s, size=THINK_BLOCK)
            self._thinks = block.tolist()[::-1]
        return self._thinks.pop()

    def done(self) -> None:
        """A request completed (or was rejected): its user thinks, then sends the next
        one, unless that would be at or past the end of the run."""
        think = self._think_s()
        if self.env.now + think < self.end_s:
            call_at(self.env, think, self._again)

    def _again(self, _event: Any) -> None:
        assert self._send is not None
        self._send(self.env.now)
