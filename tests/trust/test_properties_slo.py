"""Property tests of SLO classes and contemplating pools over random LLM fleets: the KV
cache is never over capacity, requests, tokens and evictions are conserved per class,
and Little's law holds per class and overall on the measured window.

Each example is a tiny model on one or two small pools of the test chip whose DRAM
holds the weights and a few thousand KV tokens, with one to three classes of random
shares and priorities, with or without preemption of lower classes, under either KV
policy, and (one in two) contemplating requests whose branches and aggregations may
be pinned to either pool. The example count is bounded for CI; set
ACCELSIM_PROPERTY_EXAMPLES=N to explore N examples.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Scenario
from accelsim.engine.records import LLMRecords, RunRecords
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from helpers import CHIP, chip, llm

# The tiny test model's weights and KV bytes per token (tests/unit/test_llm.py).
PARAMS = 2 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 512) + 2 * 1000 * 256
KV_PER_TOKEN = 2 * 2 * 128 * 2

_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def fleets(draw: st.DrawFn) -> ResolvedScenario:
    n = draw(st.integers(1, 3))
    weights = [draw(st.integers(1, 10)) for _ in range(n)]
    shares = [w / sum(weights) for w in weights]
    shares[-1] = 1 - sum(shares[:-1])
    classes = [
        {"name": f"c{k}", "share": shares[k], "priority": draw(st.integers(0, 2))} for k in range(n)
    ]
    if draw(st.booleans()):
        classes[0]["sla"] = {"ttft_s": draw(st.floats(1e-5, 1e-2)), "tpot_s": 1e-3}
    workload: dict[str, Any] = {
        "kind": "llm",
        "model": "tiny-llm",
        "traffic": {"kind": "poisson", "rate_per_s": draw(st.floats(200, 6000))},
        "prompt_tokens": {"kind": "uniform", "low": 10, "high": 400},
        "output_tokens": {"kind": "uniform", "low": 1, "high": 120},
        "slo": {"classes": classes, "preempt_lower": draw(st.booleans())},
        "sla": {"ttft_s": 1e-3, "tpot_s": 1e-4},
    }
    pools = ["a", "b"] if draw(st.booleans()) else ["a"]
    if draw(st.booleans()):
        workload["modes"] = {"instant": 1, "contemplating": 1}
        workload["contemplating"] = {
            "branches": draw(st.integers(1, 4)),
            "branch_output_tokens": {"kind": "uniform", "low": 1, "high": 80},
            "aggregation_output_tokens": {"kind": "fixed", "value": 5},
            "branch_pool": draw(st.sampled_from([None, *pools])),
            "aggregation_pool": draw(st.sampled_from([None, *pools])),
        }
    batching = {
        "kv_policy": draw(st.sampled_from(["reserve", "preempt"])),
        "max_batch_sequences": draw(st.integers(1, 16)),
        "max_batch_tokens": 1024,
    }
    kv_tokens = draw(st.integers(1400, 4000))
    dram = {
        **CHIP["memory"]["dram"],
        "capacity_bytes": (2 * PARAMS + kv_tokens * KV_PER_TOKEN) / 0.9,
    }
    scenario = Scenario.model_validate(
        {
            "name": "slo-properties",
            "simulation": {"duration_s": 0.3, "warmup_s": 0.05, "seed": draw(st.integers(0, 99))},
            "workloads": {"w": workload},
            "pools": {
                p: {
                    "chip": "test-chip",
                    "count": 1,
                    "serves": ["w"],
                    "continuous_batching": batching,
                }
                for p in pools
            },
        }
    )
    the_chip = chip(memory={"dram": dram})
    return ResolvedScenario(
        scenario=scenario,
        source="<test>",
        chips={p: the_chip for p in pools},
        models={"w": llm()},
        traces={},
    )


def time_in_system(rec: LLMRecords, sel: np.ndarray, w0: float, w1: float) -> float:
    """The integral over the window of the number of requests of ``sel`` in the system,
    by a sweep over their arrivals and departures."""
    finish = np.where(np.isnan(rec.finish_s), np.inf, rec.finish_s)
    events = np.concatenate([rec.arrival_s[sel], finish[sel]])
    steps = np.concatenate([np.ones(int(sel.sum())), -np.ones(int(sel.sum()))])
    order = np.argsort(events, kind="stable")
    t = np.clip(events[order], w0, w1)
    level = np.cumsum(steps[order])
    return float((level[:-1] * np.diff(t)).sum())


def check_littles_law(
    rec: LLMRecords, entry: dict[str, Any], sel: np.ndarray, w0: float, w1: float
) -> None:
    """L x T = completed x mean latency + the in-flight requests' time so far: the
    window's mean number in the system against its arrival rate times time in system."""
    done = sel & ~np.isnan(rec.finish_s)
    flying = sel & np.isnan(rec.finish_s)
    mean = entry["latency_s"]["mean"] or 0.0
    expected = entry["completed"] * mean + float((w1 - rec.arrival_s[flying]).sum())
    assert entry["completed"] == int(done.sum())
    assert time_in_system(rec, sel, w0, w1) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@SETTINGS
@given(res=fleets())
def test_slo_classes_keep_the_invariants(res: ResolvedScenario) -> None:
    records: RunRecords = simulate(res)
    doc = summarize(res, records)
    fleet = records.fleets["llm"]
    # KV never over capacity, on any replica, in any iteration.
    for info in fleet.replicas:
        assert info.max_kv_tokens <= info.kv_capacity_tokens
    capacity = {i: info.kv_capacity_tokens for i, info in enumerate(fleet.replicas)}
    its = fleet.iterations
    assert np.all(its.kv_tokens <= np.array([capacity[int(r)] for r in its.replica]) + 1e-9)
    rec = fleet.workloads["w"]
    w0, w1 = records.warmup_s, records.end_s
    entry = doc["workloads"]["w"]
    in_window = (rec.arrival_s >= w0) & (rec.arrival_s < w1)
    # Conservation of requests, per class and over the classes.
    classes = entry["by_class"]
    for key in ("offered", "completed", "dropped", "in_flight"):
        assert sum(c[key] for c in classes.values()) == entry[key]
    for c in classes.values():
        assert c["offered"] == c["completed"] + c["in_flight"] + c["dropped"]
        if c["sla_attainment"] is not None:
            assert 0 <= c["sla_attainment"] <= 1
    # Every eviction is counted against one request (and a replica), and tokens are
    # generated once: a completed instant request generated exactly its output.
    assert rec.preemptions is not None and rec.slo_class is not None
    assert int(rec.preemptions.sum()) == sum(info.preemptions for info in fleet.replicas)
    done = ~np.isnan(rec.finish_s)
    instant = done & (rec.mode == 0)
    assert np.array_equal(rec.generated_tokens[instant], rec.output_tokens[instant])
    assert sum(c["preemptions"] for c in classes.values()) == int(rec.preemptions[in_window].sum())
    # Little's law on the window, overall and per class.
    check_littles_law(rec, entry, in_window & ~rec.rejected, w0, w1)
    wl = res.scenario.workloads["w"]
    for index, name in enumerate(c.name for c in wl.slo.classes):  # type: ignore[union-attr]
        sel = in_window & ~rec.rejected & (rec.slo_class == index)
        check_littles_law(rec, classes[name], sel, w0, w1)
