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
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from accelsim.engine.records import ROLE_MAIN

if TYPE_CHECKING:
    from accelsim.engine.llm import LLMReplica, Sequence
    from accelsim.engine.sessions import Prefixes

Block = tuple[int, int]


class BlockLRU:
    """Cached blocks with pin counts; unpinned ones in least-recently-used order."""

    def __init__(self) -> None:
        self.pins: dict[Block, int] = {}  # every cached block: sequences that hold it
        self.lru: OrderedDict[Block, None] = OrderedDict()  # unpinned, oldest first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.pins)

    def pin(self, blocks: list[Block]) -> None:
        pins, lru = self.pins, self.lru
        for b in blocks:
            n = pins[b]
            if n == 0:
                del lru[b]
            pins[b] = n + 1

    def unpin(self, blocks: list[Block]) -> None:
        """Release ``blocks``; those no one holds any more become the most recently
        used, the last of ``blocks`` the most recent."""
        pins, lru = self.pins, self.lru
        for b in blocks:
            n = pins[b] - 1
            pins[b] = n
            if n == 0:
                lru[b] = None

    def add(self, block: Block, pinned: bool) -> bool:
        """Cache a newly computed block (pinned, or as the most recently used); False
        when it is cached already."""
        if block in self.pins:
            return False
        self.pins[block] = 1 if pinned else 0
        if not pinned:
            self.lru[block] = None
        return True

    def evict(self, blocks: int) -> int:
        """Drop up to ``blocks`` unpinned blocks, least recently used first; the number
        dropped."""
        lru, pins = self.lru, self.pins
        n = min(blocks, len(lru))
        for _ in range(n):
            b, _none = lru.popitem(last=False)
            del pins[b]
        self.evicted += n
        return n


class PrefixCache(BlockLRU):
    """One replica's cache and the replica's admission with it."""

    def __init__(self, block_tokens: int, prefixes: Prefixes) -> None:
        super().__init__()
        self.block_tokens = block_tokens
        self.prefixes = prefixes

    def lookup(self, seq: Sequence) -> list[Block]:
        """The leading blocks of ``seq``'s prompt that are cached, leaving at least one
        token to prefill."""
        i = seq.request
        b = self.block_tokens
        limit = min(self.prefixes.shared_tokens[i], seq.prompt + seq.base - 1) // b
        hits: list[Block] = []
        pins = self.pins
        block = self.prefixes.block
        for k in range(limit):
            key = block(i, k, b)
            if key not in pins:
                break
            hits.append(key)
        return hits

    def _plan(self, replica: LLMReplica, seq: Sequence) -> tuple[list[Block], int, int] | None:
        """``seq``'s hits, its own KV need and the blocks to evict for it; None when it
        cannot be admitted now."""
        hits = self.lookup(seq)
        need = replica._need(seq) - len(hits) * self.block_tokens
        short = replica.kv_used + need - replica.capacity
        if short <= 0:
            return hits, need, 0
        pins = self.pins
        evictable = len(self.lru) - sum(1 for h in hits if pins[h] == 0)
        blocks = -(-short // self.block_tokens)
        if blocks > evictable:
            return None
        return hits, need, blocks

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
            hits, need, blocks = plan
            self.pin(hits)
            if blocks:
                replica.kv_used -= self.evict(blocks) * self.block_tokens
            waiting.popleft()
            hit = len(hits) * self.block_tokens
            seq.blocks = hits
            seq.prefilled = hit
            seq.hit = hit
            state.prefill_requested[seq.request] += seq.prompt + seq.base
            state.prefix_hit[seq.request] += hit
            seq.kv = need
            replica.kv_used += need
            replica.admissions += 1
            seq.admitted_order = replica.admissions
            running.append(seq)
            replica.prefilling += 1

    def make_room(self, replica: LLMReplica, tokens: int) -> None:
        """Evict unpinned blocks for ``tokens`` more KV tokens (as many as there are)."""
        replica.kv_used -= self.evict(-(-tokens // self.block_tokens)) * self.block_tokens

    def _keep(self, seq: Sequence, ks: range, pinned: bool) -> list[Block]:
        """Cache ``seq``'s blocks ``ks`` (moved out of its own KV), in that order."""
        i, b = seq.request, self.block_tokens
        block = self.prefixes.block
        kept = []
        for k in ks:
            key = block(i, k, b)
            if self.add(key, pinned):
                kept.append(key)
        seq.kv -= len(kept) * b
        return kept

    def prefilled(self, seq: Sequence) -> None:
        """``seq``'s prompt is computed: its shared blocks past its hits enter the cache,
        pinned by it."""
        b = self.block_tokens
        shared = min(self.prefixes.shared_tokens[seq.request], seq.prompt + seq.base) // b
        blocks = seq.blocks
        assert blocks is not None
        blocks += self._keep(seq, range(seq.hit // b, shared), True)

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
            self._keep(seq, range((seq.prompt + seq.generated) // b - 1, start - 1, -1), False)
        self.unpin(blocks[::-1])
        seq.blocks = None

    def preempted(self, seq: Sequence) -> None:
        """``seq`` is preempted: the blocks it held stay cached, unpinned."""
        if seq.blocks is not None:
            self.unpin(seq.blocks[::-1])
            seq.blocks = None
        seq.hit = 0
