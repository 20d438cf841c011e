"""Contemplating, measured: per-branch latency, the straggler share of the wait, and
branches and aggregations on pools of their own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Scenario
from accelsim.engine.records import LLMRecords
from accelsim.engine.simulation import simulate
from accelsim.metrics.contemplating import branch_latencies
from accelsim.metrics.summary import summarize
from helpers import chip, llm, llm_resolved


def records(arrival_s: list[float], branch_finish_s: list[list[float]]) -> LLMRecords:
    n = len(arrival_s)
    zeros = np.zeros(n, dtype=np.int64)
    return LLMRecords(
        name="w",
        arrival_s=np.array(arrival_s),
        mode=np.full(n, 2, dtype=np.int8),
        prompt_tokens=zeros,
        output_tokens=zeros,
        first_token_s=np.full(n, np.nan),
        finish_s=np.full(n, np.nan),
        rejected=np.zeros(n, dtype=bool),
        generated_tokens=zeros,
        replica=zeros,
        branches_spawned=zeros,
        branches_done=zeros,
        branch_finish_s=np.array(branch_finish_s),
        branch_replica=np.zeros((n, 4), dtype=np.int32),
        branch_output_tokens=np.ones((n, 4), dtype=np.int64),
        prefill_requested_tokens=zeros,
        prefix_hit_tokens=zeros,
    )


def test_straggler_share_by_hand() -> None:
    # Request 0 arrives at 1 s; its 4 branches finish at 2, 3, 4 and 9 s: latencies 1, 2,
    # 3 and 8 s, median 2.5 s, slowest 8 s. The aggregation waited 8 - 2.5 = 5.5 s after
    # the median branch: a straggler share of 5.5 / 8. Request 1 (arrived at 0) has all
    # its branches done at 2 s: no straggler. Request 2's last branch is still running.
    rec = records(
        [1.0, 0.0, 0.5],
        [[2.0, 3.0, 4.0, 9.0], [2.0, 2.0, 2.0, 2.0], [1.0, 1.5, 2.0, np.nan]],
    )
    doc = branch_latencies(rec, np.ones(3, dtype=bool))
    assert doc["fan_outs"] == 2
    assert doc["slowest_branch_s"]["max"] == 8.0
    assert doc["slowest_branch_s"]["mean"] == pytest.approx((8 + 2) / 2)
    assert doc["median_branch_s"]["mean"] == pytest.approx((2.5 + 2) / 2)
    assert doc["straggler_wait_s"]["max"] == pytest.approx(5.5)
    assert doc["straggler_share"]["max"] == pytest.approx(5.5 / 8)
    assert doc["straggler_share"]["mean"] == pytest.approx(5.5 / 8 / 2)
    assert doc["branch_latency_s"]["mean"] == pytest.approx((1 + 2 + 3 + 8 + 4 * 2) / 8)
    # A selection without whole fan-outs has no figures.
    empty = branch_latencies(rec, np.array([False, False, True]))
    assert empty["fan_outs"] == 0 and empty["straggler_share"]["mean"] is None


CONTEMPLATING = {
    "branches": 3,
    "branch_output_tokens": {"kind": "fixed", "value": 20},
    "aggregation_output_tokens": {"kind": "fixed", "value": 10},
}


def test_equal_branches_in_one_batch_finish_together_without_a_straggler() -> None:
    # At a low rate a request's 3 equal branches share one replica's batch (prefilled in
    # one iteration, decoded in the same steps): they finish at the same instant.
    res = llm_resolved(
        rate_per_s=2,
        prompt={"kind": "fixed", "value": 100},
        output={"kind": "fixed", "value": 10},
        modes={"instant": 0, "contemplating": 1},
        extra={"contemplating": CONTEMPLATING},
        duration_s=5,
        warmup_s=0.5,
    )
    records = simulate(res)
    rec = records.fleets["llm"].workloads["w"]
    whole = ~np.isnan(rec.branch_finish_s).any(axis=1)
    assert whole.sum() > 3
    spread = rec.branch_finish_s[whole].max(axis=1) - rec.branch_finish_s[whole].min(axis=1)
    assert np.all(spread == 0)
    mode = summarize(res, records)["workloads"]["w"]["by_mode"]["contemplating"]
    assert mode["straggler_share"]["max"] == 0
    assert mode["slowest_branch_s"]["mean"] == mode["median_branch_s"]["mean"]
    # The aggregation starts when its last branch is done: the user's first token comes
    # after the slowest branch.
    assert np.all(rec.first_token_s[whole] > rec.branch_finish_s[whole].max(axis=1))


def split_pools(contemplating: dict[str, Any]) -> ResolvedScenario:
    """Two one-chip pools serving one contemplating workload; prompts of 100 tokens,
    branches of 20 output tokens, aggregations of 10, prefilled whole (not chunked)."""
    batching = {"chunked_prefill": False}
    scenario = Scenario.model_validate(
        {
            "name": "split",
            "simulation": {"duration_s": 3, "warmup_s": 0.5, "seed": 1},
            "workloads": {
                "w": {
                    "kind": "llm",
                    "model": "tiny-llm",
                    "traffic": {"kind": "poisson", "rate_per_s": 50},
                    "prompt_tokens": {"kind": "fixed", "value": 100},
                    "output_tokens": {"kind": "fixed", "value": 10},
                    "modes": {"instant": 0, "contemplating": 1},
                    "contemplating": {**CONTEMPLATING, **contemplating},
                }
            },
            "pools": {
                name: {
                    "chip": "test-chip",
                    "count": 1,
                    "serves": ["w"],
                    "continuous_batching": batching,
                }
                for name in ("a", "b")
            },
        }
    )
    return ResolvedScenario(
        scenario=scenario,
        source="<test>",
        chips={"a": chip(), "b": chip()},
        models={"w": llm()},
        traces={},
    )


def prefill_sizes(res: ResolvedScenario) -> dict[str, set[int]]:
    """Per pool, the prefill tokens of its iterations that prefill anything."""
    fleet = simulate(res).fleets["llm"]
    its = fleet.iterations
    out: dict[str, set[int]] = {}
    for index, info in enumerate(fleet.replicas):
        sel = (its.replica == index) & (its.prefill_tokens > 0)
        out.setdefault(info.pool, set()).update(its.prefill_tokens[sel].tolist())
    return out


def test_branches_and_aggregations_run_on_their_named_pools() -> None:
    # A branch prefills its 100-token prompt, an aggregation the prompt plus 3 x 20 branch
    # tokens: 160. Prompts are prefilled whole, so every iteration of the branch pool
    # prefills a multiple of 100 tokens, and every one of the aggregation pool a multiple
    # of 160 (that pool runs nothing else).
    sizes = prefill_sizes(split_pools({"branch_pool": "a", "aggregation_pool": "b"}))
    assert sizes["a"] and all(t % 100 == 0 for t in sizes["a"])
    assert sizes["b"] and all(t % 160 == 0 for t in sizes["b"])
    assert any(t % 160 for t in sizes["a"])
    swapped = prefill_sizes(split_pools({"branch_pool": "b", "aggregation_pool": "a"}))
    assert all(t % 160 == 0 for t in swapped["a"])
    assert all(t % 100 == 0 for t in swapped["b"])
    # Without pools named, both pools prefill branches.
    mixed = prefill_sizes(split_pools({}))
    assert any(t % 160 for t in mixed["a"]) and any(t % 160 for t in mixed["b"])


def test_each_pool_counts_the_tokens_it_generated() -> None:
    # Every completed request generated 3 x 20 branch tokens on pool a and 10 aggregation
    # tokens on pool b.
    res = split_pools({"branch_pool": "a", "aggregation_pool": "b"})
    doc = summarize(res, simulate(res))
    completed = doc["workloads"]["w"]["completed"]
    assert completed > 10
    assert doc["pools"]["a"]["output_tokens"] == 60 * completed
    assert doc["pools"]["b"]["output_tokens"] == 10 * completed
    assert doc["workloads"]["w"]["output_tokens"] == 70 * completed
