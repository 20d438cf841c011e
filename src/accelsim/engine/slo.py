"""SLO classes in the engine: priority admission and preemption of lower classes.

A workload with ``slo.classes`` draws each request's class (by the classes'
shares, after every other draw of the workload, so the other draws do not
change). Its replicas are :class:`PriorityReplica`, an :class:`LLMReplica`
whose waiting line is one FIFO queue per priority level (:class:`ClassQueues`):
the replica's own admission loop, which takes the line's head while KV cache
and batch slots allow, therefore admits the highest class first and keeps
arrival order within a class. A sequence evicted to be recomputed goes back to
the front of its own class's queue.

When KV runs out under ``kv_policy: preempt`` the victim is the newest running
sequence of the lowest class (not the newest overall). With
``preempt_lower: true``, when the head of the line cannot be admitted for lack
of KV cache or batch slots and evicting lower-class running sequences would
make room, the newest of them are evicted, one at a time, until it fits; they
are recomputed later as any preempted sequence is. Every eviction is counted
against its request (:attr:`ClassState.preemptions`).
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import Any

import numpy as np

from accelsim.config.schema import SLOClasses
from accelsim.engine.llm import LLMReplica, Sequence


def draw_classes(slo: SLOClasses, n: int, rng: np.random.Generator) -> np.ndarray:
    """Each of ``n`` requests' class (an index into ``slo.classes``), drawn by share."""
    shares = np.array([c.share for c in slo.classes])
    return rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int8)


class ClassState:
    """Each request's class and the evictions of its sequences, for one workload."""

    def __init__(self, slo: SLOClasses, slo_class: np.ndarray) -> None:
        n = len(slo_class)
        self.slo_class = slo_class
        self.names = tuple(c.name for c in slo.classes)
        priorities = sorted({c.priority for c in slo.classes})
        by_class = [priorities.index(c.priority) for c in slo.classes]
        # Each request's queue level: 0 is admitted first.
        self.level = array("b", [by_class[k] for k in self.slo_class.tolist()])
        self.levels = len(priorities)
        self.preempt_lower = slo.preempt_lower
        self.preemptions = array("i", bytes(4 * n))


class ClassQueues:
    """A replica's waiting line as one FIFO queue per priority level; the head is the
    oldest sequence of the highest level that has one. It offers what the replica's
    admission reads of a deque: length, truth, ``[0]``, ``append``, ``appendleft`` and
    ``popleft``."""

    __slots__ = ("count", "level", "queues")

    def __init__(self, state: ClassState) -> None:
        self.level = state.level
        self.queues: list[deque[Sequence]] = [deque() for _ in range(state.levels)]
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def _first(self) -> deque[Sequence]:
        for queue in self.queues:
            if queue:
                return queue
        raise IndexError("no sequence is waiting")

    def __getitem__(self, index: int) -> Sequence:
        if index != 0:
            raise IndexError("only the head of the line is read")
        return self._first()[0]

    def append(self, seq: Sequence) -> None:
        self.queues[self.level[seq.request]].append(seq)
        self.count += 1

    def appendleft(self, seq: Sequence) -> None:
        self.queues[self.level[seq.request]].appendleft(seq)
        self.count += 1

    def popleft(self) -> Sequence:
        seq = self._first().popleft()
        self.count -= 1
        return seq


class PriorityReplica(LLMReplica):
    """A replica that admits by class (see the module docstring)."""

    def __init__(self, *args: Any, classes: ClassState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.classes = classes
        # The replica's admission reads the line through the deque operations it offers.
        self.waiting = ClassQueues(classes)  # type: ignore[assignment]

    def _evict_newest(self) -> None:
        """KV ran out: evict the newest sequence of the lowest class running."""
        level = self.classes.level
        self._evict(max(self.running, key=lambda s: (level[s.request], s.admitted_order)))

    def _evict(self, victim: Sequence) -> None:
        super()._evict(victim)
        self.classes.preemptions[victim.request] += 1

    def _admit(self) -> None:
        super()._admit()
        if not self.classes.preempt_lower:
            return
        level = self.classes.level
        limit = self.batching.max_batch_sequences
        waiting, running = self.waiting, self.running
        while waiting:
            head = waiting[0]
            need = self._need(head)
            lower = [s for s in running if level[s.request] > level[head.request]]
            room = self.capacity - self.kv_used + sum(s.kv for s in lower)
            if not lower or need > room:
                return  # nothing to evict, or evicting every lower class would not do
            lower.sort(key=lambda s: s.admitted_order)
            while len(running) >= limit or self.kv_used + need > self.capacity:
                self._evict(lower.pop())
            super()._admit()
