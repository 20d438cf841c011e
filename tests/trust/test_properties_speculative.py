"""Property tests of speculative decoding over random settings: proposals per step,
acceptance rate, proposer (draft model or MTP modules), KV policy, chunked prefill, load
and a KV cache small enough to be under pressure.

Invariants: KV never over capacity; requests conserved (offered = completed + in flight +
dropped) and tokens too (a completed request generated exactly its output tokens, no
step advanced a sequence by more than k + 1); Little's law on the window (the time-mean
number of requests in the system is the arrival rate times the mean time each spent
in it, both counted from the records, the latency of completed ones from the document).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from helpers import CHIP, chip, llm, llm_resolved

# The tiny model: 2 layers, d 256, 4 heads of 64, 2 KV heads (tests/helpers.py).
PARAMS = 2 * (4 * 256 * 256 - 2 * 256 * 128 + 3 * 256 * 512) + 2 * 1000 * 256
KV_PER_TOKEN = 2 * 2 * 128 * 2
DRAFT = {"name": "tiny-draft", "layers": 1, "d_model": 128, "heads": 2, "kv_heads": 1}

_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def scenarios(draw: st.DrawFn) -> ResolvedScenario:
    k = draw(st.integers(1, 6))
    a = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
    use_draft = draw(st.booleans())
    block: dict[str, object] = {"tokens": k, "acceptance_rate": a}
    block.update(
        {"draft_model": "tiny-draft"} if use_draft else {"mtp_heads": draw(st.integers(1, 3))}
    )
    kv_tokens = draw(st.integers(1500, 6000))
    dram = {
        **CHIP["memory"]["dram"],
        "capacity_bytes": (4 * PARAMS + kv_tokens * KV_PER_TOKEN) / 0.9,
    }
    res = llm_resolved(
        rate_per_s=draw(st.floats(20, 150)),
        prompt={"kind": "uniform", "low": 10, "high": 400},
        output={"kind": "uniform", "low": 1, "high": 120},
        count=draw(st.integers(1, 2)),
        batching={
            "kv_policy": draw(st.sampled_from(["reserve", "preempt"])),
            "chunked_prefill": draw(st.booleans()),
            "max_batch_tokens": 512,
            "max_batch_sequences": draw(st.integers(1, 64)),
        },
        duration_s=0.4,
        warmup_s=0.1,
        seed=draw(st.integers(0, 1000)),
        the_chip=chip(memory={"dram": dram}),
        extra={"speculative": block},
    )
    return dataclasses.replace(res, drafts={"w": llm(**DRAFT)} if use_draft else {})


@SETTINGS
@given(res=scenarios())
def test_speculative_decoding_keeps_the_invariants(res: ResolvedScenario) -> None:
    records = simulate(res)
    fleet = records.fleets["llm"]
    for info in fleet.replicas:
        assert info.max_kv_tokens <= info.kv_capacity_tokens
    if fleet.replicas:
        assert np.all(fleet.iterations.kv_tokens <= fleet.replicas[0].kv_capacity_tokens)
    doc = summarize(res, records)
    w = doc["workloads"]["w"]
    assert w["offered"] == w["completed"] + w["in_flight"] + w["dropped"]
    rec = fleet.workloads["w"]
    done = ~np.isnan(rec.finish_s)
    assert np.array_equal(rec.generated_tokens[done], rec.output_tokens[done])
    sp = fleet.speculative["w"]
    k = sp.tokens
    assert np.all((sp.drawn >= 1) & (sp.drawn <= k + 1))
    assert np.all(sp.advanced <= (k + 1) * sp.sequences)
    assert np.all(sp.advanced >= 0)
    # Little's law on the window, for the requests that arrived in it.
    w0, w1 = records.warmup_s, records.end_s
    arrived = (rec.arrival_s >= w0) & (rec.arrival_s < w1) & ~rec.rejected
    finish = np.where(np.isnan(rec.finish_s), w1, rec.finish_s)[arrived]
    arrival = rec.arrival_s[arrived]
    events = np.concatenate([arrival, finish])
    steps = np.concatenate([np.ones(len(arrival)), -np.ones(len(finish))])
    order = np.lexsort((steps, events))  # a finish before an arrival at the same instant
    times, counts = events[order], np.cumsum(steps[order])
    mean_in_system = float(np.sum(counts[:-1] * np.diff(times))) / (w1 - w0) if len(times) else 0
    completed = done[arrived]
    latency_sum = (w["latency_s"]["mean"] or 0.0) * w["completed"]
    in_flight_sum = float((w1 - arrival[~completed]).sum())
    arrival_rate = int(arrived.sum()) / (w1 - w0)
    mean_time = (latency_sum + in_flight_sum) / max(int(arrived.sum()), 1)
    assert mean_in_system == pytest.approx(arrival_rate * mean_time, rel=1e-6, abs=1e-9)
