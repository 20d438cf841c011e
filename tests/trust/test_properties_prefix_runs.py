"""The prefix cache's runs of blocks against a per-block reference LRU.

engine/prefix_cache.py keeps blocks as runs (an owner and a block range), one
pin-count array per owner, and an LRU list of runs of unpinned blocks. The reference
below keeps every block as its own key: a dict of pin counts and an ordered dict of
unpinned blocks, oldest first, each moved one by one. On random sequences of what a
replica does (a sequence hits the cached leading blocks of an owner and pins them,
caches the blocks it computed, releases them with an answer cached unpinned, or is
preempted; KV runs short and blocks are evicted) both must hold the same blocks with
the same pins, in the same LRU order, and report the same hits, blocks added and
evicted at every step.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.engine.prefix_cache import BlockLRU, PrefixCache, Run
from accelsim.engine.sessions import Prefixes

_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Block = tuple[int, int]


class Reference:
    """Every block its own key: pins of every cached block, unpinned ones oldest first."""

    def __init__(self) -> None:
        self.pins: dict[Block, int] = {}
        self.lru: OrderedDict[Block, None] = OrderedDict()
        self.evicted = 0

    def leading(self, owner: int) -> int:
        k = 0
        while (owner, k) in self.pins:
            k += 1
        return k

    def pin(self, blocks: list[Block]) -> None:
        for b in blocks:
            if self.pins[b] == 0:
                del self.lru[b]
            self.pins[b] += 1

    def unpin(self, blocks: list[Block]) -> None:
        for b in reversed(blocks):
            self.pins[b] -= 1
            if self.pins[b] == 0:
                self.lru[b] = None

    def add(self, blocks: list[Block], pinned: bool) -> list[Block]:
        added = []
        for b in blocks:
            if b not in self.pins:
                self.pins[b] = 1 if pinned else 0
                if not pinned:
                    self.lru[b] = None
                added.append(b)
        return added

    def evict(self, n: int) -> int:
        n = min(n, len(self.lru))
        for _ in range(n):
            b, _none = self.lru.popitem(last=False)
            del self.pins[b]
        self.evicted += n
        return n


def blocks_of(runs: list[Run]) -> list[Block]:
    return [(o, k) for o, f, e in runs for k in range(f, e)]


def lru_order(cache: BlockLRU) -> list[Block]:
    return [(o, k) for o, f, e in cache.lru.values() for k in range(e - 1, f - 1, -1)]


def pins_of(cache: BlockLRU) -> dict[Block, int]:
    return {(o, k): int(n) for o, row in cache.pins.items() for k, n in enumerate(row) if n >= 0}


def assert_same(cache: BlockLRU, ref: Reference) -> None:
    assert pins_of(cache) == ref.pins
    assert lru_order(cache) == list(ref.lru)
    assert len(cache) == len(ref.pins)
    assert cache.unpinned == len(ref.lru)
    assert cache.evicted == ref.evicted
    assert sorted(cache.held) == sorted({o for o, _k in ref.pins})
    assert all(cache.held[o] == sum(1 for p, _k in ref.pins if p == o) for o in cache.held)


OWNERS = (-2, -1, 0, 1, 2)


@SETTINGS
@given(data=st.data())
def test_runs_of_blocks_behave_as_a_per_block_lru(data: st.DataObject) -> None:
    cache, ref = BlockLRU(), Reference()
    holders: list[list[Run]] = []  # the runs each running sequence holds
    for _ in range(data.draw(st.integers(1, 60))):
        op = data.draw(st.sampled_from(["admit", "admit", "release", "preempt", "evict", "add"]))
        if op == "admit":
            # Hit some of an owner's cached leading blocks, then cache the computed ones.
            o = data.draw(st.sampled_from(OWNERS))
            cached = cache.leading(o, 0, 10**6)
            assert cached == ref.leading(o)
            hit = data.draw(st.integers(0, cached))
            held: list[Run] = [(o, 0, hit)] if hit else []
            unpinned = cache.unpinned_in(held)
            assert unpinned == sum(1 for b in blocks_of(held) if ref.pins[b] == 0)
            cache.pin(held)
            ref.pin(blocks_of(held))
            end = hit + data.draw(st.integers(0, 40))
            added = cache.add(o, hit, end, True)
            assert blocks_of(added) == ref.add([(o, k) for k in range(hit, end)], True)
            holders.append(held + added)
        elif op in ("release", "preempt") and holders:
            held = holders.pop(data.draw(st.integers(0, len(holders) - 1)))
            if op == "release" and held:
                # The answer's blocks past the held ones, cached unpinned, tail first.
                o, _f, first = held[-1]
                end = first + data.draw(st.integers(0, 30))
                added = cache.add(o, first, end, False)
                answer = [(o, k) for k in range(end - 1, first - 1, -1)]
                assert sorted(blocks_of(added)) == sorted(ref.add(answer, False))
            cache.unpin(held)
            ref.unpin(blocks_of(held))
        elif op == "evict":
            n = data.draw(st.integers(0, 80))
            assert cache.evict(n) == ref.evict(n)
        elif op == "add":
            o = data.draw(st.sampled_from(OWNERS))
            first = data.draw(st.integers(0, 50))
            end = first + data.draw(st.integers(0, 30))
            added = cache.add(o, first, end, False)
            answer = [(o, k) for k in range(end - 1, first - 1, -1)]
            assert sorted(blocks_of(added)) == sorted(ref.add(answer, False))
        assert_same(cache, ref)
    for held in holders:
        cache.unpin(held)
        ref.unpin(blocks_of(held))
    assert_same(cache, ref)
    assert cache.evict(10**6) == ref.evict(10**6)
    assert_same(cache, ref)
    assert len(cache) == 0 and not cache.pins and not cache.lru


@SETTINGS
@given(
    variant=st.integers(-1, 3),
    session=st.integers(-1, 5),
    system_tokens=st.integers(0, 300),
    block_tokens=st.integers(1, 64),
    first=st.integers(0, 40),
    blocks=st.integers(0, 40),
)
def test_a_requests_runs_name_each_block_as_its_system_prompt_or_session(
    variant: int, session: int, system_tokens: int, block_tokens: int, first: int, blocks: int
) -> None:
    # Block k lies wholly within the system prompt: the variant's (-1 - v, k); any
    # other block is the session's (session, k).
    prefixes = Prefixes([variant], [session], [10**6], system_tokens, 0.0, [0])
    cache = PrefixCache(block_tokens, prefixes)
    runs = cache.owners(0, first, first + blocks)
    expected = [
        (-1 - variant, k)
        if variant >= 0 and (k + 1) * block_tokens <= system_tokens
        else (session, k)
        for k in range(first, first + blocks)
    ]
    assert blocks_of(runs) == expected
    assert all(f < e for _o, f, e in runs)
