"""Prefix caching and multi-turn sessions: the block LRU, hits, and session turns.

Golden values by hand: a 512-token system prompt of 16-token blocks is 32 blocks; a
request that hits them all prefills only its own 64 tokens, attending to the 512
cached ones, and its TTFT at low load is that one iteration of the cost model. A
session turn of prompt 100 that generates 20 leaves 120 tokens of history: 7 whole
blocks (112 tokens) for the next turn to hit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from accelsim.engine.llm import Sequence
from accelsim.engine.prefix_cache import BlockLRU, PrefixCache
from accelsim.engine.records import ROLE_MAIN
from accelsim.engine.routing import SessionAffinity
from accelsim.engine.sessions import Prefixes
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.checks import llm_replica_cost
from accelsim.model.llm import Iteration, prefill_pairs, shape
from helpers import CHIP, chip, llm, llm_resolved

# --- the block LRU ---------------------------------------------------------------------


def cached(lru: BlockLRU) -> list[tuple[int, int]]:
    """Every cached block, as (owner, block)."""
    return sorted((o, int(k)) for o, row in lru.pins.items() for k in np.flatnonzero(row >= 0))


def order(lru: BlockLRU) -> list[tuple[int, int]]:
    """The unpinned blocks, least recently used first."""
    return [(o, k) for o, f, e in lru.lru.values() for k in range(e - 1, f - 1, -1)]


def test_unpinned_blocks_are_evicted_least_recently_used_first() -> None:
    lru = BlockLRU()
    for k in range(4):
        assert lru.add(0, k, k + 1, pinned=False) == [(0, k, k + 1)]
    assert lru.add(0, 2, 3, pinned=False) == []  # cached already: not added twice
    assert lru.evict(2) == 2
    assert cached(lru) == [(0, 2), (0, 3)]
    assert lru.evicted == 2


def test_a_pinned_block_is_never_evicted_and_rejoins_as_the_most_recent() -> None:
    lru = BlockLRU()
    for k in range(3):
        lru.add(0, k, k + 1, pinned=False)
    lru.pin([(0, 0, 1)])  # a running sequence reads block 0
    assert lru.evict(5) == 2  # only the two unpinned ones go
    assert cached(lru) == [(0, 0)]
    lru.add(1, 0, 1, pinned=False)
    lru.unpin([(0, 0, 1)])  # released after (1, 0) was cached: now the most recent
    assert order(lru) == [(1, 0), (0, 0)]
    assert lru.evict(1) == 1
    assert cached(lru) == [(0, 0)]


def test_two_holders_pin_a_block_until_both_release_it() -> None:
    lru = BlockLRU()
    lru.add(0, 0, 1, pinned=True)
    lru.pin([(0, 0, 1)])
    lru.unpin([(0, 0, 1)])
    assert lru.evict(1) == 0
    lru.unpin([(0, 0, 1)])
    assert lru.evict(1) == 1
    assert len(lru) == 0


def test_a_range_added_around_cached_blocks_adds_only_the_gaps() -> None:
    lru = BlockLRU()
    lru.add(3, 2, 4, pinned=True)  # blocks 2 and 3, held by a running sequence
    assert lru.add(3, 0, 6, pinned=False) == [(3, 0, 2), (3, 4, 6)]
    # The new ones join tail first: 5, 4, then 1, 0; the pinned ones stay out.
    assert order(lru) == [(3, 5), (3, 4), (3, 1), (3, 0)]
    assert lru.unpinned_in([(3, 0, 4)]) == 2
    assert lru.evict(3) == 3
    assert cached(lru) == [(3, 0), (3, 2), (3, 3)]
    assert lru.leading(3, 0, 6) == 1


def test_a_finished_turn_caches_its_answer_and_is_evicted_from_its_tail_first() -> None:
    # One session: request 0 (prompt 40) then request 1. Blocks of 16 tokens.
    prefixes = Prefixes(
        variant=[-1, -1],
        session=[5, 5],
        shared_tokens=[40, 90],
        system_tokens=0,
        think_time_s=0.0,
        first_turns=[0],
    )
    cache = PrefixCache(16, prefixes)
    seq = Sequence(0, ROLE_MAIN, prompt=40, output=30, images=0)
    seq.blocks, seq.kv = [], 70  # admitted with nothing cached, KV reserved for 70 tokens
    cache.prefilled(seq)  # the prompt's 2 whole blocks enter the cache, pinned
    assert seq.blocks == [(5, 0, 2)] and seq.kv == 70 - 32
    assert cache.evict(9) == 0
    seq.generated = 30
    cache.release(seq)  # history 70 tokens: blocks 2 and 3 join, then all are unpinned
    assert seq.kv == 70 - 64
    assert order(cache) == [(5, 3), (5, 2), (5, 1), (5, 0)]
    assert cache.evict(1) == 1 and (5, 3) not in cached(cache)  # the tail goes first


def test_a_request_hits_its_system_prompts_blocks_then_its_sessions() -> None:
    # A 40-token system prompt (variant 1) of 16-token blocks: blocks 0 and 1 are the
    # variant's (owner -2), block 2 on the session's (owner 7).
    prefixes = Prefixes(
        variant=[1, 1],
        session=[7, 7],
        shared_tokens=[100, 200],
        system_tokens=40,
        think_time_s=0.0,
        first_turns=[0],
    )
    cache = PrefixCache(16, prefixes)
    assert cache.owners(1, 0, 5) == [(-2, 0, 2), (7, 2, 5)]
    assert cache.owners(1, 3, 5) == [(7, 3, 5)]
    cache.add(7, 2, 4, pinned=False)  # the least recent: blocks 3, 2, then 1, 0
    cache.add(-2, 0, 2, pinned=False)
    seq = Sequence(1, ROLE_MAIN, prompt=200, output=10, images=0)
    assert cache.lookup(seq) == ([(-2, 0, 2), (7, 2, 4)], 4)
    cache.evict(1)  # the session's block 3, the least recently used
    assert cache.lookup(seq) == ([(-2, 0, 2), (7, 2, 3)], 3)
    other = Sequence(1, ROLE_MAIN, prompt=20, output=10, images=0)
    assert cache.lookup(other) == ([(-2, 0, 1)], 1)  # at least one token left to prefill


# --- hits in the engine ----------------------------------------------------------------

SYSTEM, USER, BLOCK = 512, 64, 16


def _system_prompt_run(cache: bool, rate_per_s: float = 0.5) -> tuple[Any, Any, dict]:  # type: ignore[type-arg]
    batching: dict[str, Any] = {"max_batch_tokens": 4096}
    if cache:
        batching["prefix_cache"] = {"block_tokens": BLOCK}
    res = llm_resolved(
        rate_per_s=rate_per_s,
        prompt={"kind": "fixed", "value": USER},
        output={"kind": "fixed", "value": 2},
        batching=batching,
        extra={"system_prompt": {"tokens": SYSTEM, "share": 1.0, "variants": 1}},
        duration_s=200,
        warmup_s=0,
    )
    records = simulate(res)
    return res, records, summarize(res, records)


def _prefill_s(res: Any, new: int, cached: int) -> float:
    cost, problem = llm_replica_cost(res, "p", res.models["w"])
    assert problem is None and cost is not None
    it = Iteration(
        prefill_tokens=new,
        prefill_pairs=prefill_pairs(new, cached),
        prefill_context_tokens=cached,
        logits=1,
    )
    return cost.terms(it).time(1.0)


def test_a_full_prefix_hit_prefills_only_the_suffix_against_the_cached_context() -> None:
    res, records, doc = _system_prompt_run(cache=True)
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    n = int(done.sum())
    assert n > 50
    assert np.all(rec.prompt_tokens == SYSTEM + USER)
    # The first request computes everything; every later one finds all 32 blocks.
    assert rec.prefix_hit_tokens[0] == 0
    assert np.all(rec.prefix_hit_tokens[1:n] == SYSTEM)
    w = doc["workloads"]["w"]
    asked = w["prefill_tokens_requested"]
    assert w["prefill_tokens_computed"] == asked - SYSTEM * (w["offered"] - 1)
    assert w["prefix_hit_rate"] == pytest.approx(SYSTEM * (w["offered"] - 1) / asked)
    # TTFT at low load: the first request prefills 576 tokens, the others 64 tokens
    # attending to 512 cached ones (a request that came while another ran waits more).
    ttft = rec.first_token_s[done] - rec.arrival_s[done]
    full, suffix = _prefill_s(res, SYSTEM + USER, 0), _prefill_s(res, USER, SYSTEM)
    assert ttft[0] == pytest.approx(full, rel=1e-9)
    assert suffix < full
    assert suffix > _prefill_s(res, USER, 0)  # attending to the prefix costs something
    alone = np.isclose(ttft[1:], suffix, rtol=1e-9, atol=0)  # times of ~100 s: ~1e-14 s
    assert alone.mean() > 0.9
    assert np.all(ttft[1:] >= suffix * (1 - 1e-9))


def test_without_a_cache_every_request_prefills_its_whole_prompt() -> None:
    res, records, doc = _system_prompt_run(cache=False)
    rec = records.fleets["llm"].workloads["w"]
    assert "prefix_hit_rate" not in doc["workloads"]["w"]
    assert "prefix_cache" not in doc["pools"]["p"]
    done = ~np.isnan(rec.finish_s)
    ttft = rec.first_token_s[done] - rec.arrival_s[done]
    assert np.median(ttft) == pytest.approx(_prefill_s(res, SYSTEM + USER, 0), rel=1e-9)


# --- sessions --------------------------------------------------------------------------

THINK_S = 2.0


def _session_run(**batching: Any) -> tuple[Any, Any, dict]:  # type: ignore[type-arg]
    res = llm_resolved(
        rate_per_s=0.5,
        prompt={"kind": "fixed", "value": 100},
        output={"kind": "fixed", "value": 20},
        batching={"prefix_cache": {"block_tokens": BLOCK}, **batching},
        extra={
            "sessions": {
                "turns": {"kind": "fixed", "value": 3},
                "think_time_s": THINK_S,
                "new_tokens": {"kind": "fixed", "value": 10},
            }
        },
        duration_s=100,
        warmup_s=0,
    )
    records = simulate(res)
    return res, records, summarize(res, records)


def test_a_sessions_next_turn_arrives_a_think_time_after_the_last_finished() -> None:
    _, records, _ = _session_run()
    rec = records.fleets["llm"].workloads["w"]
    sessions = len(rec.arrival_s) // 3
    assert sessions > 20
    for s in range(sessions - 1):
        i = 3 * s
        for turn in (1, 2):
            if math.isnan(rec.finish_s[i + turn - 1]):
                break
            assert rec.arrival_s[i + turn] == rec.finish_s[i + turn - 1] + THINK_S
    # Turn n+1 holds turn n's prompt and answer and 10 new tokens.
    assert rec.prompt_tokens[:3].tolist() == [100, 130, 160]


def test_a_later_turn_hits_the_whole_blocks_of_the_history_before_it() -> None:
    _, records, doc = _session_run()
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s[: 3 * 20])
    hits = rec.prefix_hit_tokens[: 3 * 20][done].reshape(-1, 3) if done.all() else None
    assert hits is not None
    # History 100 + 20 = 120 tokens: 7 blocks; then 130 + 20 = 150: 9 blocks.
    assert np.all(hits == [0, 112, 144])
    assert doc["pools"]["p"]["prefix_cache"]["evicted_blocks"] == 0


@pytest.mark.parametrize("kv_policy", ["reserve", "preempt"])
def test_cached_blocks_are_evicted_when_kv_runs_short_and_kv_stays_within_capacity(
    kv_policy: str,
) -> None:
    s = shape(llm())
    # Room for ~1000 KV tokens: the histories of a few sessions, not of all of them.
    dram = {
        **CHIP["memory"]["dram"],
        "capacity_bytes": (s.weight_bytes + 1000 * s.kv_bytes_per_token) / 0.9,
    }
    res = llm_resolved(
        rate_per_s=200,
        prompt={"kind": "uniform", "low": 50, "high": 200},
        output={"kind": "uniform", "low": 5, "high": 60},
        batching={"prefix_cache": {"block_tokens": BLOCK}, "kv_policy": kv_policy},
        extra={
            "system_prompt": {"tokens": 64, "share": 0.5, "variants": 3},
            "sessions": {
                "turns": {"kind": "uniform", "low": 1, "high": 4},
                "think_time_s": 1.0,
                "new_tokens": {"kind": "uniform", "low": 5, "high": 50},
            },
        },
        duration_s=3,
        warmup_s=0,
        the_chip=chip(memory={"dram": dram}),
    )
    records = simulate(res)
    fleet = records.fleets["llm"]
    doc = summarize(res, records)
    assert doc["pools"]["p"]["prefix_cache"]["evicted_blocks"] > 0
    assert 0 < doc["workloads"]["w"]["prefix_hit_rate"] < 1
    capacity = fleet.replicas[0].kv_capacity_tokens
    assert np.all(fleet.iterations.kv_tokens <= capacity)
    assert fleet.replicas[0].max_kv_tokens <= capacity
    if kv_policy == "preempt":
        assert doc["pools"]["p"]["preemptions"] > 0


# --- session affinity ------------------------------------------------------------------


class _Unit:
    """A replica as the router sees it: an outstanding count the test sets."""

    def __init__(self) -> None:
        self.n_devices = 1
        self.outstanding = 0
        self.watchers: list[Any] = []

    def hold(self, n: int) -> None:
        self.outstanding = n
        for moved, position in self.watchers:
            moved(position)


def test_session_affinity_keeps_a_session_home_until_it_is_too_far_above_the_shortest() -> None:
    units = [_Unit() for _ in range(3)]
    router = SessionAffinity(units, 0)
    first = router.pick_for(7)
    assert first is units[0]  # all tie: the first from the rotating start
    units[0].hold(4)  # 4 above the shortest queue: still home
    assert router.pick_for(7) is units[0]
    assert router.pick_for(-1) is not units[0]  # outside a session: the shortest queue
    units[0].hold(5)  # 5 above: the session moves to the shortest queue, its new home
    moved = router.pick_for(7)
    assert moved is not units[0]
    units[0].hold(0)
    moved.hold(3)
    assert router.pick_for(7) is moved


def _affinity_run(policy: str) -> tuple[Any, dict]:  # type: ignore[type-arg]
    res = llm_resolved(
        rate_per_s=2,
        prompt={"kind": "fixed", "value": 200},
        output={"kind": "fixed", "value": 20},
        count=4,
        policy=policy,
        batching={"prefix_cache": {"block_tokens": BLOCK}},
        extra={
            "sessions": {
                "turns": {"kind": "fixed", "value": 4},
                "think_time_s": 0.5,
                "new_tokens": {"kind": "fixed", "value": 10},
            }
        },
        duration_s=40,
        warmup_s=0,
    )
    records = simulate(res)
    return records.fleets["llm"].workloads["w"], summarize(res, records)


def test_session_affinity_runs_each_session_on_one_replica_and_hits_its_history() -> None:
    rec, doc = _affinity_run("session_affinity")
    done = ~np.isnan(rec.finish_s)
    sessions = np.flatnonzero(done.reshape(-1, 4).all(axis=1))
    assert len(sessions) > 40
    replicas = rec.replica.reshape(-1, 4)[sessions]
    assert np.all(replicas == replicas[:, :1])  # low load: never too far above the shortest
    # Each later turn hits its whole history: (200 + 20) // 16 = 13 blocks, then 15, 17.
    hits = rec.prefix_hit_tokens.reshape(-1, 4)[sessions]
    assert np.all(hits == [0, 208, 240, 272])
    _, spread = _affinity_run("round_robin")
    assert spread["workloads"]["w"]["prefix_hit_rate"] < doc["workloads"]["w"]["prefix_hit_rate"]
