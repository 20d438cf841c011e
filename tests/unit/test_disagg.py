"""Disaggregated prefill and decode against values computed by hand from the cost model:
at low load a request's TTFT is its prefill, its KV bytes over the link's bandwidth and
the link's latency (layer by layer: only the last layer's share after the prefill), and
its decode steps run on the decode pool from a context of prompt + 1 tokens."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import ContinuousBatching, Scenario, scenario_reference_problems
from accelsim.engine.records import LLMFleetRecords
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.llm import LLMCostModel
from clirunner import err, invoke
from helpers import chip, disagg_resolved, llm

PROMPT, ANSWER = 300, 20


def _fixed(prompt: int = PROMPT, answer: int = ANSWER, **kw: object) -> ResolvedScenario:
    return disagg_resolved(
        rate_per_s=0.1,
        prompt={"kind": "fixed", "value": prompt},
        output={"kind": "fixed", "value": answer},
        **kw,  # type: ignore[arg-type]
    )


def _records(res: ResolvedScenario) -> LLMFleetRecords:
    records = simulate(res).fleets["llm"]
    assert isinstance(records, LLMFleetRecords)
    return records


def _cost() -> LLMCostModel:
    return LLMCostModel(llm(), chip(), 1, ContinuousBatching())


def test_ttft_is_prefill_plus_kv_bytes_over_bandwidth_plus_latency() -> None:
    bw, latency = 2e9, 3e-4
    rec = _records(_fixed(link={"bandwidth_bytes_per_s": bw, "latency_s": latency}))
    w = rec.workloads["w"]
    done = ~np.isnan(w.finish_s)
    assert done.sum() >= 3
    cost = _cost()
    prefill_s = cost.prefill(PROMPT).time_s
    kv_bytes = PROMPT * cost.shape.kv_bytes_per_token
    assert kv_bytes == PROMPT * 2 * 2 * 128 * 2  # K and V x 2 layers x 2 heads of 64 x bf16
    ttft = w.first_token_s[done] - w.arrival_s[done]
    assert ttft == pytest.approx(prefill_s + kv_bytes / bw + latency, rel=1e-9)
    # The answer's other 19 tokens are decode steps on the decode pool, one sequence with
    # 301, 302, ... tokens of context.
    steps = sum(cost.decode_step(1, PROMPT + 1 + k).time_s for k in range(ANSWER - 1))
    assert w.finish_s[done] - w.first_token_s[done] == pytest.approx(steps, rel=1e-9)
    split = w.disaggregation
    assert split is not None
    assert split.kv_bytes[done] == pytest.approx(kv_bytes)
    assert (split.transfers[done] == 1).all()
    assert (w.generated_tokens[done] == ANSWER).all()


@pytest.mark.parametrize("bw", [1e11, 2e8])
def test_layerwise_transfer_overlaps_the_prefill(bw: float) -> None:
    """Layer k of 2 is ready at k/2 of the prefill D; the link sends each half of the KV
    in B / (2 bw): the wire is done at max(D/2 + B/bw, D + B/(2 bw))."""
    latency = 1e-5
    link = {"bandwidth_bytes_per_s": bw, "latency_s": latency}
    w = _records(_fixed(link=link, layerwise=True)).workloads["w"]
    cost = _cost()
    d = cost.prefill(PROMPT).time_s
    wire = PROMPT * cost.shape.kv_bytes_per_token / bw
    expected = max(d / 2 + wire, d + wire / 2) + latency
    assert ttft_of(w) == pytest.approx(expected, rel=1e-9)
    whole = d + wire + latency
    assert expected < whole  # overlapping always saves at least a layer's transfer


def ttft_of(w: object) -> np.ndarray:
    first, arrival, finish = (getattr(w, k) for k in ("first_token_s", "arrival_s", "finish_s"))
    done = ~np.isnan(finish)
    return np.asarray(first[done] - arrival[done])


def test_summary_splits_ttft_into_parts_that_add_up() -> None:
    res = disagg_resolved(
        rate_per_s=40,
        prompt={"kind": "uniform", "low": 50, "high": 900},
        output={"kind": "uniform", "low": 1, "high": 60},
        link={"bandwidth_bytes_per_s": 5e8, "latency_s": 1e-4},
        decode_batching={"max_batch_sequences": 4},
        duration_s=20,
    )
    records = simulate(res)
    doc = summarize(res, records)
    entry = doc["workloads"]["w"]
    split = entry["disaggregation"]
    parts = ("prefill_wait_s", "prefill_s", "decode_wait_s", "kv_transfer_s")
    assert sum(split[p]["mean"] for p in parts) > 0
    rec = records.fleets["llm"].workloads["w"]
    done = (rec.arrival_s >= 5) & (rec.arrival_s < 25) & ~np.isnan(rec.finish_s)
    moved = done & (rec.output_tokens > 1)
    ttft = rec.first_token_s[moved] - rec.arrival_s[moved]
    assert sum(split[p]["mean"] for p in parts) == pytest.approx(ttft.mean(), rel=1e-9)
    assert split["decode_wait_s"]["max"] > 0  # four sequences a decode replica: they queue
    assert split["kv_transfers"] == int(moved.sum())
    kv_per_token = _cost().shape.kv_bytes_per_token
    assert split["kv_bytes_moved"] == pytest.approx(rec.prompt_tokens[moved].sum() * kv_per_token)
    # A one-token answer completes at the prefill pool: its TTFT is the prefill's end.
    one = done & (rec.output_tokens == 1)
    assert one.any()
    assert (rec.finish_s[one] == rec.first_token_s[one]).all()
    assert set(doc["pools"]) == {"pre", "dec"}
    for pool in doc["pools"].values():
        assert pool["utilization"] > 0 and pool["energy_j"] > 0


def test_coalesced_decode_spans_give_the_stepped_result() -> None:
    res = disagg_resolved(
        rate_per_s=30,
        prompt={"kind": "uniform", "low": 20, "high": 400},
        output={"kind": "uniform", "low": 1, "high": 200},
        link={"bandwidth_bytes_per_s": 1e9, "latency_s": 2e-4},
        layerwise=True,
        decode_batching={"kv_policy": "preempt", "kv_memory_fraction": 0.001},
        duration_s=10,
    )
    a = simulate(res).fleets["llm"].workloads["w"]
    b = simulate(res, coalesce=False).fleets["llm"].workloads["w"]
    np.testing.assert_allclose(a.finish_s, b.finish_s, rtol=1e-9)
    np.testing.assert_allclose(a.first_token_s, b.first_token_s, rtol=1e-9)


def test_the_prefill_pool_frees_kv_once_sent_and_nothing_is_left_held() -> None:
    from accelsim.engine.disagg import DecodeReplica, PrefillReplica
    from accelsim.engine.simulation import Simulation

    res = disagg_resolved(
        rate_per_s=50,
        prompt={"kind": "uniform", "low": 20, "high": 400},
        output={"kind": "uniform", "low": 2, "high": 50},
        link={"bandwidth_bytes_per_s": 2e8, "latency_s": 1e-3},
        duration_s=4,
        warmup_s=0,
    )
    sim = Simulation(res)
    sim.run()
    sim.env.run()  # no more arrivals: let every request finish
    fleet = sim.fleets["llm"]
    replicas = fleet.replicas  # type: ignore[attr-defined]
    assert {type(r) for r in replicas} == {PrefillReplica, DecodeReplica}
    for r in replicas:
        assert r.kv_used == 0 and not r.running and not r.waiting
        assert 0 < r.max_kv_used <= r.capacity
    w = fleet.records().workloads["w"]
    assert not np.isnan(w.finish_s).any()


def test_a_request_the_decode_pool_cannot_hold_is_rejected() -> None:
    small = chip(
        memory={
            **chip().memory.model_dump(),
            "sram": None,
            "dram": {**chip().memory.dram.model_dump(), "capacity_bytes": 4e6},
        }
    )
    res = _fixed(prompt=300, answer=1500, link={"bandwidth_bytes_per_s": 1e9}, decode_chip=small)
    cost = LLMCostModel(llm(), small, 1, ContinuousBatching())
    assert cost.capacity.kv_capacity_tokens < 1800
    w = _records(res).workloads["w"]
    assert w.rejected.all()


# ------------------------------------------------------------------ configuration


def _scenario(**changes: object) -> Scenario:
    data = _fixed(link={"bandwidth_bytes_per_s": 1e9}).scenario.model_dump(exclude_unset=True)
    for path, value in changes.items():
        *head, last = path.split(".")
        node = data
        for key in head:
            node = node[key]
        node[last] = value
    return Scenario.model_validate(data)


@pytest.mark.parametrize(
    ("changes", "where", "words"),
    [
        (
            {"workloads.w.disaggregation.prefill_pool": "ghost"},
            ("workloads", "w", "disaggregation", "prefill_pool"),
            "unknown pool 'ghost'",
        ),
        (
            {"workloads.w.disaggregation.decode_pool": "pre"},
            ("workloads", "w", "disaggregation", "decode_pool"),
            "must differ",
        ),
        (
            {
                "pools.dec.serves": ["x"],
                "workloads.x": {
                    "kind": "llm",
                    "model": "m",
                    "traffic": {"kind": "poisson", "rate_per_s": 1},
                    "prompt_tokens": {"kind": "fixed", "value": 1},
                    "output_tokens": {"kind": "fixed", "value": 1},
                },
            },
            ("workloads", "w", "disaggregation", "decode_pool"),
            "does not serve workload w",
        ),
        (
            {"pools.pre.continuous_batching.kv_policy": "preempt"},
            ("pools", "pre", "continuous_batching", "kv_policy"),
            "reserves",
        ),
    ],
)
def test_references_are_checked(changes: dict, where: tuple, words: str) -> None:
    problems = scenario_reference_problems(_scenario(**changes))
    assert any(at == where and words in message for at, message in problems), problems


def test_a_third_pool_serving_a_disaggregated_workload_is_refused() -> None:
    data = _fixed(link={"bandwidth_bytes_per_s": 1e9}).scenario.model_dump(exclude_unset=True)
    data["pools"]["more"] = {**data["pools"]["dec"]}
    problems = scenario_reference_problems(Scenario.model_validate(data))
    assert [at for at, _ in problems] == [("pools", "more", "serves")]


def _one_error(args: tuple[str, ...]) -> str:
    result = invoke(*args)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [x for x in err(result).splitlines() if x.strip()]
    return line


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_bad_link_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    text = Path("workloads/scenarios/llm-disaggregated.yaml").read_text(encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("bandwidth_bytes_per_s: 50 GB/s", "bandwidth_bytes_per_s: 0"))
    line = _one_error(("run", str(path)))
    assert f"{path}:{_line_of(path, 'bandwidth_bytes_per_s: 0')}:" in line
    assert "workloads.chat.disaggregation.kv_link.bandwidth_bytes_per_s" in line
    path.write_text(text.replace("decode_pool: decode", "decode_pool: decoder"))
    line = _one_error(("run", str(path)))
    assert f"{path}:{_line_of(path, 'decode_pool: decoder')}:" in line
    assert "workloads.chat.disaggregation.decode_pool" in line and "unknown pool" in line


def test_the_config_shows_disaggregation_only_when_set() -> None:
    plain = yaml.safe_load(Path("workloads/scenarios/llm-chat-gpu.yaml").read_text())
    assert (
        "disaggregation"
        not in Scenario.model_validate({"name": "x", **plain}).model_dump()["workloads"]["chat"]
    )
    assert math.isclose(
        _scenario().workloads["w"].model_dump()["disaggregation"]["kv_link"]["latency_s"], 0.0
    )
