"""The step times of a coalesced decode span, summed without a loop over its steps.

A decode span (:meth:`accelsim.engine.llm.LLMReplica._start_span`) runs ``n``
decode-only iterations of one batch at one clock; step ``k`` attends to the context
of step 0 plus ``k`` x batch tokens. The engine needs three things of its step times
``t_0 .. t_{n-1}``: the time of the first ``j`` steps (the span's end, or where a
submission cuts it), how many steps are over at an elapsed time (the cut), and, under
KV preemption, the time-weighted mean of ``k`` (the KV the span holds on average).

* :class:`LinearSteps`: the usual case, where one op varies with the context (the
  decode attention; :class:`accelsim.model.llm.DecodePlan`). Its compute
  ``c_k = c_0 + dc k`` and memory ``m_k = m_0 + dm k`` are linear in ``k``; the
  roofline combines them as ``c + m - overlap x min(c, m)``, which is linear in ``k``
  on each side of the step where ``c`` and ``m`` cross. So ``t_k = a + b k`` on at
  most two pieces, and the sums of ``t_k`` and ``k t_k`` are closed forms: the cost of
  a span does not grow with its length, and the steps over by an elapsed time are the
  root of a quadratic.
* :class:`ArraySteps`: any other span (several ops vary): the step times in an array
  and their running sums.

The closed forms equal the step-by-step sums to rounding (``tests/unit/
test_decode_steps.py`` holds them to 1e-12 against an explicit loop).
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np


class LinearSteps:
    """``n`` step times, each ``a + b k`` on at most two pieces of ``k``."""

    __slots__ = ("pieces", "steps")

    def __init__(
        self,
        steps: int,
        c0: float,
        dc: float,
        m0: float,
        dm: float,
        overlap: float,
        constant: float,
    ) -> None:
        """Step ``k`` of ``steps`` takes ``c + m - overlap x min(c, m) + constant`` with
        ``c = c0 + dc k`` and ``m = m0 + dm k``."""
        self.steps = steps
        keep = 1.0 - overlap
        compute_shorter = (keep * c0 + m0 + constant, keep * dc + dm)
        memory_shorter = (c0 + keep * m0 + constant, dc + keep * dm)
        g0, dg = c0 - m0, dc - dm  # the compute is the shorter while c - m <= 0
        first = compute_shorter if g0 <= 0 else memory_shorter
        switch = steps
        if (g0 <= 0) != (g0 + dg * (steps - 1) <= 0):
            # The sign of c - m changes once, at the first k past its root.
            switch = min(max(math.floor(-g0 / dg) + 1, 1), steps - 1)
        # (first step, a, b, time of the steps before it, sum of k x t_k before it)
        self.pieces: list[tuple[int, float, float, float, float]] = [(0, *first, 0.0, 0.0)]
        if switch < steps:
            a, b = memory_shorter if g0 <= 0 else compute_shorter
            self.pieces.append((switch, a, b, self.elapsed(switch), self._weighted_sum(switch)))

    def _piece(self, j: int) -> tuple[int, float, float, float, float]:
        pieces = self.pieces
        return pieces[0] if len(pieces) == 1 or j <= pieces[1][0] else pieces[1]

    def elapsed(self, j: int) -> float:
        """The time of the first ``j`` steps."""
        k0, a, b, before, _ = self._piece(j)
        return before + a * (j - k0) + b * (j * (j - 1) - k0 * (k0 - 1)) / 2

    def _weighted_sum(self, j: int) -> float:
        """The sum of ``k x t_k`` over the first ``j`` steps."""
        k0, a, b, _, before = self._piece(j)
        ks = (j * (j - 1) - k0 * (k0 - 1)) / 2
        squares = ((j - 1) * j * (2 * j - 1) - (k0 - 1) * k0 * (2 * k0 - 1)) / 6
        return before + a * ks + b * squares

    def weighted_step(self, j: int) -> float:
        """The time-weighted mean of ``k`` over the first ``j`` steps."""
        return self._weighted_sum(j) / self.elapsed(j)

    def done_by(self, elapsed_s: float) -> int:
        """The steps over by ``elapsed_s`` after the span's start: the largest ``j``
        with ``elapsed(j) <= elapsed_s``, from the quadratic, then checked."""
        pieces, steps = self.pieces, self.steps
        k0, a, b, before, _ = pieces[-1] if elapsed_s >= pieces[-1][3] else pieces[0]
        rest = elapsed_s - before
        if rest <= 0:
            x = 0.0
        elif b > 0:
            # b/2 x^2 + (a + b k0 - b/2) x - rest <= 0, with x = j - k0 steps of the piece
            lin = a + b * k0 - b / 2
            x = 2 * rest / (lin + math.sqrt(lin * lin + 2 * b * rest))
        else:
            x = rest / a if a > 0 else steps
        j = min(max(k0 + math.floor(x), 0), steps)
        while j < steps and self.elapsed(j + 1) <= elapsed_s:
            j += 1
        while j > 0 and self.elapsed(j) > elapsed_s:
            j -= 1
        return j


class ArraySteps:
    """Step times given one by one, with their running sums."""

    __slots__ = ("cumulative", "steps", "times")

    def __init__(self, times: np.ndarray) -> None:
        self.times = times
        self.cumulative = times.cumsum()
        self.steps = len(times)

    def elapsed(self, j: int) -> float:
        return float(self.cumulative[j - 1]) if j else 0.0

    def done_by(self, elapsed_s: float) -> int:
        return bisect_right(self.cumulative, elapsed_s)

    def weighted_step(self, j: int) -> float:
        t = self.times[:j]
        return float((np.arange(j) * t).sum() / t.sum())


Steps = LinearSteps | ArraySteps
