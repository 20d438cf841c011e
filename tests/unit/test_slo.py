"""SLO classes: priority admission and preemption of lower classes, by hand on one
replica, and the per-class summary of a run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from accelsim.config.schema import Chip, ContinuousBatching, SLOClasses
from accelsim.engine.events import call_at
from accelsim.engine.facility import PoolMeter
from accelsim.engine.llm import IterationLog, LLMRequests, LLMWorkloadState
from accelsim.engine.simulation import simulate
from accelsim.engine.slo import ClassQueues, ClassState, PriorityReplica
from accelsim.metrics.requests import request_columns
from accelsim.metrics.summary import summarize
from accelsim.model.llm import LLMCostModel
from accelsim.model.power import ClockPolicy
from helpers import CHIP, chip, llm, llm_resolved

HIGH, LOW = 0, 1  # class indexes of TWO
# The tiny test model (tests/unit/test_llm.py): its weights and KV bytes per token.
PARAMS = 2 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 512) + 2 * 1000 * 256
KV_PER_TOKEN = 2 * 2 * 128 * 2
TWO = {
    "classes": [
        {"name": "high", "share": 0.5, "priority": 0},
        {"name": "low", "share": 0.5, "priority": 1},
    ]
}


def run_one_replica(
    classes: list[int],
    arrival_s: list[float],
    slo: dict[str, Any],
    the_chip: Chip | None = None,
    **batching: Any,
) -> tuple[LLMWorkloadState, PriorityReplica, IterationLog]:
    """Requests of 100 prompt and 20 output tokens on one replica (of the test chip unless
    given), each of the given class, arriving at the given times."""
    n = len(classes)
    requests = LLMRequests(
        arrival_s=np.array(arrival_s),
        mode=np.zeros(n, dtype=np.int8),
        prompt_tokens=np.full(n, 100),
        image_tokens=np.zeros(n, dtype=np.int64),
        output_tokens=np.full(n, 20),
        branch_output=np.zeros((n, 0), dtype=np.int64),
    )
    env = simpy.Environment()
    config = ContinuousBatching.model_validate(batching)
    state = LLMWorkloadState("w", requests)
    log = IterationLog()
    replica = PriorityReplica(
        env,
        0,
        "p",
        1,
        LLMCostModel(llm(), the_chip or chip(), 1, config),
        config,
        state,
        log,
        ClockPolicy(cap_w=1e12),
        PoolMeter(),
        classes=ClassState(SLOClasses.model_validate(slo), np.array(classes, dtype=np.int8)),
    )
    state.routes = [lambda: replica] * 3
    for i, t in enumerate(arrival_s):
        call_at(env, t, lambda _event, i=i: state.arrive(i))
    env.run()
    return state, replica, log


def test_one_slot_admits_the_waiting_high_request_before_the_older_low_one() -> None:
    # Request 0 (low) takes the only slot at t=0; request 1 (low) and then request 2 (high)
    # queue behind it. When 0 finishes, the high request goes first, the low one last.
    state, replica, _ = run_one_replica(
        [LOW, LOW, HIGH], [0.0, 1e-6, 2e-6], TWO, max_batch_sequences=1
    )
    first = list(state.first_token)
    assert first[0] < first[2] < first[1]
    assert state.finish[0] <= first[2] and state.finish[2] <= first[1]
    assert replica.preemptions == 0


def test_one_priority_for_every_class_is_first_come_first_served() -> None:
    same = {"classes": [{**c, "priority": 0} for c in TWO["classes"]]}
    state, _, _ = run_one_replica([LOW, LOW, HIGH], [0.0, 1e-6, 2e-6], same, max_batch_sequences=1)
    first = list(state.first_token)
    assert first[0] < first[1] < first[2]


def test_preempt_lower_evicts_the_running_low_request_and_recomputes_it() -> None:
    # The low request 0 is decoding alone when the high request 1 arrives: the step in
    # progress ends, request 0 is evicted, request 1 is prefilled alone (100 tokens) and
    # runs to its end; then request 0 prefills its prompt plus the tokens it had generated.
    slo = {**TWO, "preempt_lower": True}
    t_high = (
        8e-5  # within the low request's decode (its prefill ends at 36 us, its last step at 133 us)
    )
    state, replica, log = run_one_replica([LOW, HIGH], [0.0, t_high], slo, max_batch_sequences=1)
    assert replica.preemptions == 1
    assert list(replica.classes.preemptions) == [1, 0]
    start, end = np.array(log.start), np.array(log.end)
    prefill, sequences = np.array(log.prefill_tokens), np.array(log.sequences)
    # The iteration in progress at the high arrival ends; the next one is the high
    # request's whole prompt, alone, and its first token comes at that iteration's end.
    k = int(np.flatnonzero(start >= t_high)[0])
    assert start[k] == end[k - 1] and end[k - 1] >= t_high
    assert (prefill[k], sequences[k]) == (100, 1)
    assert state.first_token[1] == end[k]
    assert state.finish[1] < state.finish[0]
    # Tokens the low request had when evicted: one at its prefill, one a decode step
    # (coalesced spans count theirs) before the high request's prefill.
    had = 1 + int(np.array(log.steps)[1:k].sum())
    recompute = int(np.flatnonzero(start >= state.finish[1])[0])
    assert prefill[recompute] == 100 + had
    # Every token of both requests is generated once: the recompute re-reads, not redoes.
    assert list(state.generated) == [20, 20]
    assert replica.max_kv_used <= replica.capacity


def test_without_preempt_lower_the_high_request_waits_for_the_slot() -> None:
    state, replica, _ = run_one_replica([LOW, HIGH], [0.0, 8e-5], TWO, max_batch_sequences=1)
    assert replica.preemptions == 0
    assert state.first_token[1] > state.finish[0]


def test_kv_overflow_evicts_the_newest_request_of_the_lowest_class() -> None:
    # KV for 230 tokens: both 100-token prompts are admitted (kv_policy preempt), and the
    # cache overflows as they decode: the low request goes, although the high one was
    # admitted after it (again if, readmitted, it overflows the cache again); the high
    # request is never evicted.
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": (2 * PARAMS + 230 * KV_PER_TOKEN) / 0.9}
    state, replica, _ = run_one_replica(
        [LOW, HIGH],
        [0.0, 1e-6],
        TWO,
        the_chip=chip(memory={"dram": dram}),
        kv_policy="preempt",
        max_batch_sequences=2,
    )
    assert replica.capacity == 230
    low, high = replica.classes.preemptions
    assert low >= 1 and high == 0
    assert replica.preemptions == low
    assert state.finish[1] < state.finish[0]
    assert list(state.generated) == [20, 20]
    assert replica.max_kv_used <= replica.capacity


def test_class_queues_serve_levels_in_order_and_fifo_within_one() -> None:
    state = ClassState(
        SLOClasses.model_validate(TWO), np.array([LOW, HIGH, LOW, HIGH], dtype=np.int8)
    )
    queues = ClassQueues(state)

    class Seq:
        def __init__(self, request: int) -> None:
            self.request = request

    for i in range(4):
        queues.append(Seq(i))  # type: ignore[arg-type]
    queues.appendleft(Seq(2))  # type: ignore[arg-type]  # an evicted low request returns
    order = []
    while queues:
        order.append(queues.popleft().request)
    assert order == [1, 3, 2, 0, 2]
    assert len(queues) == 0


def test_classes_are_summarised_with_their_own_targets() -> None:
    slo = {
        "preempt_lower": True,
        "classes": [
            {"name": "premium", "share": 0.25, "priority": 0, "sla": {"ttft_s": 10, "tpot_s": 1}},
            {"name": "standard", "share": 0.75, "priority": 1},
        ],
    }
    res = llm_resolved(
        rate_per_s=3000,  # near what batches of 4 serve: a queue builds
        prompt={"kind": "uniform", "low": 50, "high": 400},
        output={"kind": "uniform", "low": 10, "high": 100},
        batching={"max_batch_sequences": 4},
        extra={"slo": slo, "sla": {"ttft_s": 1e-9, "tpot_s": 1e-9}},
        duration_s=0.3,
        warmup_s=0.05,
    )
    doc = summarize(res, simulate(res))["workloads"]["w"]
    classes = doc["by_class"]
    assert list(classes) == ["premium", "standard"]
    assert sum(c["offered"] for c in classes.values()) == doc["offered"]
    assert sum(c["completed"] for c in classes.values()) == doc["completed"]
    assert classes["premium"]["offered"] == pytest.approx(0.25 * doc["offered"], rel=0.25)
    # Premium's generous target is met by all; standard inherits the workload's
    # impossible one.
    assert classes["premium"]["sla_attainment"] == 1.0
    assert classes["premium"]["sla"]["ttft_s"] == 10
    assert classes["standard"]["sla_attainment"] == 0.0
    assert classes["premium"]["ttft_s"]["mean"] < classes["standard"]["ttft_s"]["mean"]
    assert classes["premium"]["preemptions"] == 0
    assert classes["standard"]["preemptions"] > 0


def test_a_workload_without_classes_has_no_class_summary() -> None:
    res = llm_resolved(
        rate_per_s=5,
        prompt={"kind": "fixed", "value": 50},
        output={"kind": "fixed", "value": 5},
        duration_s=2,
        warmup_s=0.5,
    )
    doc = summarize(res, simulate(res))
    assert "by_class" not in doc["workloads"]["w"]
    assert "slo" not in doc["config"]["workloads"]["w"]


def test_the_request_export_names_each_request_class() -> None:
    res = llm_resolved(
        rate_per_s=200,
        prompt={"kind": "fixed", "value": 50},
        output={"kind": "fixed", "value": 5},
        extra={"slo": TWO},
        duration_s=1,
        warmup_s=0.1,
    )
    records = simulate(res)
    columns = request_columns(res, records)["w"]
    rec = records.fleets["llm"].workloads["w"]
    assert rec.slo_class is not None
    assert columns["slo_class"].tolist() == [["high", "low"][k] for k in rec.slo_class]
    assert set(columns["slo_class"]) == {"high", "low"}
