"""Shared prefixes of an LLM workload's requests: system prompts and multi-turn sessions.

Without ``sessions`` every arrival of the traffic is one request. With them every
arrival starts a session of ``turns`` requests (turns), laid out one session after
another: request ``i + 1`` is the next turn of request ``i`` when both belong to the
same session. A later turn's arrival is not known in advance: it is ``think_time_s``
after the previous turn finished, and is NaN until then (a turn that never arrives
is in no window). A turn's prompt holds the previous turn's prompt and the tokens
its final sequence generated (the answer, with the reasoning in thinking mode), plus
``new_tokens`` new user tokens; only the first turn carries images (later turns hold
their tokens as text of the history).

A ``system_prompt`` of ``S`` tokens is put before the first turn's prompt of a share
of the sessions (of the requests, without sessions), one of ``variants`` prompts
drawn with equal odds.

The content that two requests share decides which KV blocks a prefix cache can reuse
(engine/prefix_cache.py): a block of ``B`` tokens that lies wholly within a system
prompt is that variant's block ``k``; any other block of a session's turn is the
session's block ``k`` (every turn holds the earlier turns' tokens at the same
positions). Other tokens (a single request's own prompt past its system prompt, a
branch's output) are shared with no one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.config.schema import Sessions, SystemPrompt
from accelsim.engine.arrivals import sample_sizes


@dataclass(frozen=True)
class Prefixes:
    """What the requests of one workload share, request by request."""

    variant: list[int]  # system prompt of the request (-1: none)
    session: list[int]  # session of the request (-1: none)
    shared_tokens: list[int]  # leading prompt tokens shared with other requests
    system_tokens: int  # tokens of a system prompt (0: none)
    think_time_s: float
    first_turns: list[int] | None  # each session's first request (None: no sessions)

    def next_turn(self, i: int) -> int | None:
        """The request that is the turn after request ``i`` (None after the last)."""
        if self.first_turns is None:
            return None
        j = i + 1
        if j < len(self.session) and self.session[j] == self.session[i]:
            return j
        return None


def session_arrivals(
    sessions: Sessions, times: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every request's arrival (NaN for a later turn) and session, from the sessions'
    start times; the turns per session are drawn from ``rng``."""
    turns = sample_sizes(sessions.turns, len(times), rng)
    session = np.repeat(np.arange(len(times)), turns)
    starts = np.concatenate(([0], np.cumsum(turns)[:-1])) if len(times) else np.zeros(0, int)
    arrival = np.full(len(session), np.nan)
    arrival[starts.astype(np.int64)] = times
    return arrival, session


def prefixed_prompts(
    system: SystemPrompt | None,
    sessions: Sessions | None,
    session: np.ndarray | None,
    prompt: np.ndarray,
    output: np.ndarray,
    images: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, Prefixes]:
    """The prompts (with system prompts and session histories) and image tokens of the
    requests, and what they share. ``prompt`` holds each request's own user tokens
    (with its images) and ``output`` the tokens its final sequence generates."""
    n = len(prompt)
    firsts = np.ones(n, dtype=bool)
    if session is not None:
        firsts[1:] = session[1:] != session[:-1]
    variant = np.full(n, -1, dtype=np.int64)
    tokens = 0
    if system is not None:
        tokens = system.tokens
        carries = rng.random(n) < system.share
        drawn = rng.integers(system.variants, size=n)
        if session is not None:  # a session's turns share its first turn's system prompt
            first_of = np.maximum.accumulate(np.where(firsts, np.arange(n), 0))
            carries, drawn = carries[first_of], drawn[first_of]
        variant = np.where(carries, drawn, -1)
    prompt = prompt + np.where(firsts & (variant >= 0), tokens, 0)
    shared = np.where(variant >= 0, tokens, 0)
    if sessions is not None and session is not None:
        new = sample_sizes(sessions.new_tokens, n, rng)
        images = np.where(firsts, images, 0)
        prompt = prompt.copy()
        for i in np.flatnonzero(~firsts).tolist():
            prompt[i] = prompt[i - 1] + output[i - 1] + new[i]
        shared = prompt.copy()
    prefixes = Prefixes(
        variant=variant.tolist(),
        session=session.tolist() if session is not None else [-1] * n,
        shared_tokens=shared.tolist(),
        system_tokens=tokens,
        think_time_s=sessions.think_time_s if sessions is not None else 0.0,
        first_turns=np.flatnonzero(firsts).tolist() if session is not None else None,
    )
    return prompt, images, prefixes
