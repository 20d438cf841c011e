"""Speculative decoding in the engine: how far each sequence advances per step.

A replica whose workload decodes speculatively runs every iteration with decoding
sequences as a speculative step (:class:`accelsim.model.speculative.SpeculativeCost`).
When the step ends, each decoding sequence draws how many of the ``k`` proposals the
target accepted, from the workload's own seeded stream: each proposal is kept with
probability ``a`` until the first rejection, and the verify step adds one token. A
sequence advances by that many tokens, never beyond its output length.

Replicas of one workload share its :class:`SpeculativeTally`: the stream, and the record
of every speculative iteration (start, nominal-clock draft and verify shares of its
time, sequences, tokens advanced) and of every draw, for the metrics. Speculative
replicas run one iteration at a time: the coalesced decode span assumes one token per
sequence and step.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from accelsim.model.llm import Iteration
from accelsim.model.power import Terms
from accelsim.model.speculative import SpeculativeCost


class _Decoding(Protocol):
    generated: int
    output: int


@dataclass(frozen=True)
class SpeculativeRecords:
    """One workload's speculative iterations and draws."""

    proposer: str
    tokens: int
    acceptance_rate: float
    start_s: np.ndarray  # per speculative iteration
    draft_s: np.ndarray  # its time spent in draft steps (at the clock it ran)
    verify_s: np.ndarray  # its time spent in the verify step
    sequences: np.ndarray  # sequences it verified
    advanced: np.ndarray  # tokens they advanced in all (each at most its output left)
    drawn: np.ndarray  # per sequence and step, in order: tokens the draw accepted (1..k+1)


class SpeculativeTally:
    """A workload's acceptance stream and what its speculative iterations did."""

    def __init__(self, tokens: int, acceptance: float, rng: np.random.Generator) -> None:
        self.tokens = tokens
        self.acceptance = acceptance
        self.rng = rng
        self.proposer = ""
        self.start = array("d")
        self.draft = array("d")
        self.verify = array("d")
        self.sequences = array("i")
        self.advanced = array("q")
        self.drawn = array("b")

    def draw(self, n: int) -> list[int]:
        """Tokens accepted by ``n`` sequences' verify steps: j + 1, with j the proposals
        kept before the first rejection (j ~ a truncated geometric law, drawn by inverting
        its distribution: j = floor(log u / log a), at most k)."""
        k, a = self.tokens, self.acceptance
        if a <= 0.0:
            return [1] * n
        if a >= 1.0:
            return [k + 1] * n
        u = self.rng.random(n)
        kept = np.minimum(np.floor(np.log1p(-u) / math.log(a)), k).astype(np.int64)
        return (kept + 1).tolist()  # type: ignore[no-any-return]

    def records(self) -> SpeculativeRecords:
        """The iterations that ended (each is recorded as its draws are made)."""
        return SpeculativeRecords(
            self.proposer,
            self.tokens,
            self.acceptance,
            np.frombuffer(self.start, dtype=np.float64).copy(),
            np.frombuffer(self.draft, dtype=np.float64).copy(),
            np.frombuffer(self.verify, dtype=np.float64).copy(),
            np.frombuffer(self.sequences, dtype=np.int32).astype(np.int64),
            np.frombuffer(self.advanced, dtype=np.int64).copy(),
            np.frombuffer(self.drawn, dtype=np.int8).astype(np.int64),
        )


class Speculation:
    """One replica's speculative decoding: the pool's step costs, the workload's tally,
    and the split of the replica's iteration in flight."""

    def __init__(self, cost: SpeculativeCost, tally: SpeculativeTally) -> None:
        self.cost = cost
        self.tally = tally
        tally.proposer = cost.proposer
        self.lookahead = cost.tokens  # KV slots the proposals take before verification
        self.step_tokens = cost.tokens + 1  # most tokens a sequence can advance a step
        self._ran = (0.0, 0.0, 0.0)  # the iteration in flight: start, draft and verify time

    def terms(self, it: Iteration) -> Terms:
        """The speculative iteration replacing ``it`` (which has decoding sequences)."""
        step = self.cost.step(it)
        self._split = step.draft_s, step.verify_s
        return step.terms

    def ran(self, start_s: float, time_s: float) -> None:
        """The iteration last costed by :meth:`terms` starts now and takes ``time_s``."""
        draft, verify = self._split
        share = draft / (draft + verify)
        self._ran = (start_s, time_s * share, time_s - time_s * share)

    def accepted(self, decoding: Sequence[_Decoding]) -> list[int]:
        """Tokens each decoding sequence advances as its step ends (at most what it has
        left to generate); every draw is recorded."""
        tally = self.tally
        drawn = tally.draw(len(decoding))
        tally.drawn.extend(drawn)
        out = [min(n, s.output - s.generated) for s, n in zip(decoding, drawn, strict=True)]
        start, draft, verify = self._ran
        tally.start.append(start)
        tally.draft.append(draft)
        tally.verify.append(verify)
        tally.sequences.append(len(decoding))
        tally.advanced.append(sum(out))
        return out
