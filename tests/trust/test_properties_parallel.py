"""Property tests of LLM pools with pipeline and expert parallelism: on random layouts
(tensor x pipeline x expert, micro-batches, expert imbalance) of a small dense or
mixture-of-experts model, the KV cache never goes over capacity, requests and tokens
are conserved, and Little's law holds on the measured window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Scenario
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.parallel import Layout, ParallelCostModel
from helpers import CHIP, chip, llm

LINK = {"bandwidth_bytes_per_s": 20e9, "latency_s": 2e-6}


@st.composite
def parallel_scenarios(draw: st.DrawFn) -> ResolvedScenario:
    moe = draw(st.booleans())
    model = llm(layers=4, moe={"experts": 8, "active_experts": 2} if moe else None)
    tp = draw(st.sampled_from([1, 2]))
    pp = draw(st.sampled_from([1, 2, 4]))
    ep = draw(st.sampled_from([1, 2, 4])) if moe else 1
    parallelism: dict[str, Any] = {"pipeline": pp, "expert": ep}
    if pp > 1:
        parallelism["micro_batches"] = draw(st.integers(1, 8))
    if ep > 1:
        parallelism["expert_imbalance"] = draw(st.floats(1.0, 3.0))
    replicas = draw(st.integers(1, 2))
    # DRAM for the weights of a chip and a few thousand KV tokens a replica: KV pressure.
    layout = Layout(tp, pp, ep)
    probe = ParallelCostModel(model, chip(chip_to_chip=LINK), layout)
    kv_tokens = draw(st.integers(1500, 6000))
    per_chip = probe.capacity.weight_bytes_per_chip
    dram_bytes = (per_chip + kv_tokens * probe.shape.kv_bytes_per_token / layout.chips) / 0.9
    the_chip = chip(
        memory={"dram": {**CHIP["memory"]["dram"], "capacity_bytes": dram_bytes}},
        chip_to_chip=LINK,
    )
    kv_policy = draw(st.sampled_from(["reserve", "preempt"]))
    scenario = Scenario.model_validate(
        {
            "name": "parallel-test",
            "simulation": {"duration_s": 4.0, "warmup_s": 0.5, "seed": draw(st.integers(1, 99))},
            "workloads": {
                "w": {
                    "kind": "llm",
                    "model": "tiny-llm",
                    "traffic": {"kind": "poisson", "rate_per_s": draw(st.floats(20, 200))},
                    "prompt_tokens": {"kind": "uniform", "low": 10, "high": 300},
                    "output_tokens": {"kind": "uniform", "low": 1, "high": 100},
                }
            },
            "pools": {
                "p": {
                    "chip": "test-chip",
                    "count": replicas * layout.chips,
                    "chips_per_replica": tp,
                    "parallelism": parallelism,
                    "serves": ["w"],
                    "continuous_batching": {
                        "kv_policy": kv_policy,
                        "max_batch_tokens": 512,
                        "max_batch_sequences": 64,
                    },
                }
            },
        }
    )
    return ResolvedScenario(
        scenario=scenario, source="<test>", chips={"p": the_chip}, models={"w": model}, traces={}
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parallel_scenarios())
def test_kv_conservation_and_littles_law_under_pipeline_and_expert_parallelism(
    res: ResolvedScenario,
) -> None:
    records = simulate(res)
    fleet = records.fleets["llm"]
    pool = res.scenario.pools["p"]
    assert len(fleet.replicas) == pool.count // pool.replica_chips
    for r in fleet.replicas:
        assert r.chips == pool.replica_chips
        assert r.max_kv_tokens <= r.kv_capacity_tokens
    assert np.all(fleet.iterations.kv_tokens <= fleet.replicas[0].kv_capacity_tokens)
    doc = summarize(res, records)
    w = doc["workloads"]["w"]
    # Conservation of requests, and of tokens: a completed request generated its output.
    assert w["offered"] == w["completed"] + w["in_flight"] + w["dropped"]
    rec = fleet.workloads["w"]
    done = ~np.isnan(rec.finish_s)
    assert np.array_equal(rec.generated_tokens[done], rec.output_tokens[done])
    assert np.all(rec.finish_s[done] >= rec.first_token_s[done])
    assert np.all(rec.first_token_s[done] > rec.arrival_s[done])
    # Little's law on the window: the time-average of requests in the system (every
    # request, from before the window too) = arrival rate x mean latency, when the pool
    # keeps up (little still in flight at the end).
    assert w["in_flight"] <= 0.02 * w["offered"], "the generated load should be stable"
    w0, w1 = records.warmup_s, records.end_s
    finish = np.where(np.isnan(rec.finish_s), w1, rec.finish_s)
    in_system = np.clip(np.minimum(finish, w1) - np.maximum(rec.arrival_s, w0), 0, None)
    mean_in_system = in_system[~rec.rejected].sum() / (w1 - w0)
    rate = w["offered"] / (w1 - w0)
    assert mean_in_system == pytest.approx(rate * w["latency_s"]["mean"], rel=0.1)
