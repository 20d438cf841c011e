"""Automatic prefix caching: a replica's block-level LRU cache of prefix KV.

KV is held in blocks of ``B`` tokens. A block of a prefix that other requests share
(engine/sessions.py says which) is kept in the replica's cache once computed:

* When a sequence's prefill completes, its shared prompt blocks enter the cache,
  *pinned* by the sequence; a session turn's final sequence adds the blocks of its
  answer when it finishes. A block another sequence put in first is not duplicated
  (the later copy stays the sequence's own and is freed with it).
* A sequence pins the blocks it reads; when it finishes (or is preempted) it unpins
  them and they join the LRU list, its tail blocks first, so that under pressure a
  prefix is shortened from its end.
* At admission the longest run of leading blocks present in the cache is a *hit*:
  the sequence pins them and prefills only the rest, at least one token (the last
  prompt token must run to give the first output token); the prefill attends to
  the cached tokens as earlier context (the cost model's ``prefill_context_tokens``).
* Cached blocks live inside the KV capacity: the replica's ``kv_used`` counts them,
  pinned or not. When KV is needed (an admission, a decode step under ``preempt``)
  unpinned blocks are evicted, least recently used first, before anything waits or
  is preempted.

The cache is per replica: a request hits only blocks of the replica it is routed to,
so the hit rate depends on the router (sessions spread by join-the-shortest-queue
find their history only where an earlier turn ran).

The cache keeps blocks as *runs*: ``(owner, first, end)`` is blocks ``first`` to
``end - 1`` of a system prompt's or a session's block sequence (``owner``: a
variant's negative number or the session). Per owner one array holds each block's
pin count (-1: not cached), so a sequence's hits, pins and releases are a few
array operations whatever its length; the LRU list holds runs of unpinned blocks,
each evicted from its highest block down.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import count
from typing import TYPE_CHECKING

import numpy as np

from accelsim.engine.records import ROLE_MAIN

if TYPE_CHECKING:
    from accelsim.engine.llm import LLMReplica, Sequence
    from accelsim.engine.sessions import Prefixes

Run = tuple[int, int, int]  # owner, first block, end (one past the last block)


def _ranges(mask: np.ndarray, offset: int) -> list[tuple[int, int]]:
    """The maximal runs of True in ``mask``, as ``(first, end)`` from ``offset``."""
    n = int(np.count_nonzero(mask))
    if n == len(mask):
        return [(offset, offset + n)] if n else []
    if n == 0:
        return []
    at = mask.nonzero()[0]
    if at[-1] - at[0] == n - 1:
        return [(offset + int(at[0]), offset + int(at[-1]) + 1)]
    cut = (np.diff(at) != 1).nonzero()[0] + 1
    firsts = at[np.concatenate(([0], cut))] + offset
    ends = at[np.concatenate((cut - 1, [n - 1]))] + offset + 1
    return list(zip(firsts.tolist(), ends.tolist(), strict=True))


class BlockLRU:
    """Cached blocks with pin counts; unpinned ones in least-recently-used order."""

    def __init__(self) -> None:
        self.pins: dict[int, np.ndarray] = {}  # owner: each block's holders (-1: not cached)
        self.held: dict[int, int] = {}  # owner: its cached blocks
        # Unpinned blocks, oldest first: runs [owner, first, end], each from end - 1 down.
        self.lru: OrderedDict[int, list[int]] = OrderedDict()
        self.lru_of: dict[int, dict[int, list[int]]] = {}  # owner: its runs in the LRU list
        self.blocks = 0
        self.unpinned = 0
        self.evicted = 0
        self._ids = count()

    def __len__(self) -> int:
        return self.blocks

    def _row(self, owner: int, end: int) -> np.ndarray:
        row = self.pins.get(owner)
        if row is None or len(row) < end:
            grown = np.full(max(end, 64, 2 * len(row) if row is not None else 0), -1, np.int32)
            if row is not None:
                grown[: len(row)] = row
            else:
                self.held[owner] = 0
                self.lru_of[owner] = {}
            self.pins[owner] = row = grown
        return row

    def leading(self, owner: int, first: int, end: int) -> int:
        """How many of blocks ``first`` to ``end - 1`` of ``owner`` are cached before the
        first that is not."""
        row = self.pins.get(owner)
        if row is None:
            return 0
        missing = row[first:end] < 0
        if len(missing) == 0:
            return 0
        at = int(missing.argmax())
        return at if missing[at] else len(missing)

    def unpinned_in(self, runs: list[Run]) -> int:
        """The unpinned blocks among ``runs`` (all cached)."""
        return sum(int(np.count_nonzero(self.pins[o][f:e] == 0)) for o, f, e in runs)

    def _append(self, owner: int, first: int, end: int) -> None:
        """Blocks ``end - 1`` down to ``first`` become the most recently used."""
        lru = self.lru
        if lru:
            tail = lru[next(reversed(lru))]
            if tail[0] == owner and tail[1] == end:
                tail[1] = first
                return
        key = next(self._ids)
        lru[key] = self.lru_of[owner][key] = [owner, first, end]

    def pin(self, runs: list[Run]) -> None:
        """Pin ``runs``; each must start at or below every unpinned block of its owner
        (a sequence's hits lead its owners' blocks)."""
        for o, f, e in runs:
            mine = self.lru_of[o]
            if mine:
                for key, run in list(mine.items()):
                    if run[1] >= e or run[2] <= f:
                        continue
                    assert run[1] >= f
                    if run[2] <= e:
                        self.unpinned -= run[2] - run[1]
                        del mine[key], self.lru[key]
                    else:
                        self.unpinned -= e - run[1]
                        run[1] = e
            self.pins[o][f:e] += 1

    def unpin(self, runs: list[Run]) -> None:
        """Release ``runs``, the last block first; those no one holds any more become
        the most recently used, the first block of ``runs`` the most recent."""
        for o, f, e in reversed(runs):
            seg = self.pins[o][f:e]
            seg -= 1
            for first, end in reversed(_ranges(seg == 0, f)):
                self.unpinned += end - first
                self._append(o, first, end)

    def add(self, owner: int, first: int, end: int, pinned: bool) -> list[Run]:
        """Cache the blocks of ``first`` to ``end - 1`` of ``owner`` not cached yet
        (pinned, or as the most recently used, the highest block the least recent); the
        runs added, in block order."""
        if first >= end:
            return []
        row = self._row(owner, end)
        ranges = _ranges(row[first:end] < 0, first)
        if not ranges:
            return []
        mark = 1 if pinned else 0
        added = 0
        for f, e in ranges:
            row[f:e] = mark
            added += e - f
        self.blocks += added
        self.held[owner] += added
        if not pinned:
            self.unpinned += added
            for f, e in reversed(ranges):
                self._append(owner, f, e)
        return [(owner, f, e) for f, e in ranges]

    def evict(self, blocks: int) -> int:
        """Drop up to ``blocks`` unpinned blocks, least recently used first; the number
        dropped."""
        lru = self.lru
        n = min(blocks, self.unpinned)
        left = n
        while left:
            key = next(iter(lru))
            run = lru[key]
            o, f, e = run
            dropped = min(left, e - f)
            self.pins[o][e - dropped : e] = -1
            if dropped == e - f:
                del lru[key], self.lru_of[o][key]
            else:
                run[2] = e - dropped
            held = self.held[o] - dropped
            if held:
                self.held[o] = held
            else:
                del self.held[o], self.pins[o], self.lru_of[o]
            left -= dropped
        self.blocks -= n
        self.unpinned -= n
        self.evicted += n
        return n


class PrefixCache(BlockLRU):
    """One replica's cache and the replica's admission with it."""

    def __init__(self, block_tokens: int, prefixes: Prefixes) -> None:
        super().__init__()
        self.block_tokens = block_tokens
        self.prefixes = prefixes
        self.system_blocks = prefixes.system_tokens // block_tokens

    def owners(self, i: int, first: int, end: int) -> list[Run]:
        """Request ``i``'s blocks ``first`` to ``end - 1`` as runs of their owners: a
        system prompt's whole blocks, then its session's."""
        v = self.prefixes.variant[i]
        system = self.system_blocks if v >= 0 else 0
        runs = []
        if first < system and first < end:
            runs.append((-1 - v, first, min(end, system)))
        if end > system and first < end:
            runs.append((self.prefixes.session[i], max(first, system), end))
        return runs

    def lookup(self, seq: Sequence) -> tuple[list[Run], int]:
        """The leading blocks of ``seq``'s prompt that are cached, leaving at least one
        token to prefill, and their number."""
        i = seq.request
        limit = min(self.prefixes.shared_tokens[i], seq.prompt + seq.base - 1) // self.block_tokens
        hits: list[Run] = []
        n = 0
        for o, f, e in self.owners(i, 0, limit):
            got = self.leading(o, f, e)
            if got:
                hits.append((o, f, f + got))
                n += got
            if got < e - f:
                break
        return hits, n

    def _plan(self, replica: LLMReplica, seq: Sequence) -> tuple[list[Run], int, int, int] | None:
        """``seq``'s hits and their number, its own KV need and the blocks to evict for
        it; None when it cannot be admitted now."""
        hits, n = self.lookup(seq)
        need = replica._need(seq) - n * self.block_tokens
        short = replica.kv_used + need - replica.capacity
        if short <= 0:
            return hits, n, need, 0
        blocks = -(-short // self.block_tokens)
        # Evictable: the unpinned blocks but the hits (counted only when it matters).
        if blocks > self.unpinned - n and blocks > self.unpinned - self.unpinned_in(hits):
            return None
        return hits, n, need, blocks

    def can_admit(self, replica: LLMReplica) -> bool:
        if not replica.waiting or len(replica.running) >= replica.batching.max_batch_sequences:
            return False
        return self._plan(replica, replica.waiting[0]) is not None

    def admit(self, replica: LLMReplica) -> None:
        """The replica's admission: as without a cache, but a sequence needs KV only for
        what it does not hit, and unpinned blocks are evicted to make room."""
        limit = replica.batching.max_batch_sequences
        waiting, running = replica.waiting, replica.running
        state = replica.workload
        while waiting and len(running) < limit:
            seq = waiting[0]
            plan = self._plan(replica, seq)
            if plan is None:
                break
            hits, n, need, blocks = plan
            self.pin(hits)
            if blocks:
                replica.kv_used -= self.evict(blocks) * self.block_tokens
            hit = n * self.block_tokens
            seq.blocks = hits
            seq.prefilled = hit
            seq.hit = hit
            state.prefill_requested[seq.request] += seq.prompt + seq.base
            state.prefix_hit[seq.request] += hit
            replica._reserve(seq, need)
            replica._join(seq)  # prefilling: at least one prompt token is left to compute

    def make_room(self, replica: LLMReplica, tokens: int) -> None:
        """Evict unpinned blocks for ``tokens`` more KV tokens (as many as there are)."""
        replica.kv_used -= self.evict(-(-tokens // self.block_tokens)) * self.block_tokens

    def prefilled(self, seq: Sequence) -> None:
        """``seq``'s prompt is computed: its shared blocks past its hits enter the cache,
        pinned by it (the KV of those it caches moves out of its own)."""
        b = self.block_tokens
        shared = min(self.prefixes.shared_tokens[seq.request], seq.prompt + seq.base) // b
        blocks = seq.blocks
        assert blocks is not None
        for o, f, e in self.owners(seq.request, seq.hit // b, shared):
            for run in self.add(o, f, e, True):
                seq.kv -= (run[2] - run[1]) * b
                last = blocks[-1] if blocks else None
                if last is not None and last[0] == o and last[2] == run[1]:
                    blocks[-1] = (o, last[1], run[2])
                else:
                    blocks.append(run)

    def release(self, seq: Sequence) -> None:
        """``seq`` finished: a session turn's answer joins the cache and every block it
        held is unpinned (the answer's first, tail first, as the least recent)."""
        blocks = seq.blocks
        if blocks is None:
            return
        p, b = self.prefixes, self.block_tokens
        i = seq.request
        if seq.role == ROLE_MAIN and p.first_turns is not None:
            start = min(p.shared_tokens[i], seq.prompt + seq.base) // b
            end = (seq.prompt + seq.generated) // b
            for o, f, e in reversed(self.owners(i, start, end)):
                for run in self.add(o, f, e, False):
                    seq.kv -= (run[2] - run[1]) * b
        self.unpin(blocks)
        seq.blocks = None

    def preempted(self, seq: Sequence) -> None:
        """``seq`` is preempted: the blocks it held stay cached, unpinned."""
        if seq.blocks is not None:
            self.unpin(seq.blocks)
            seq.blocks = None
        seq.hit = 0
