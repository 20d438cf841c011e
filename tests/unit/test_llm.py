"""LLM serving: the iteration cost model by hand, and engine invariants on every iteration."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config.schema import ContinuousBatching
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.llm import (
    Iteration,
    LLMCostModel,
    _energy_sum,
    experts_touched,
    prefill_pairs,
    shape,
)
from accelsim.model.power import Terms
from accelsim.units import parse_quantity
from helpers import CHIP, chip, llm, llm_resolved

ROOT = Path(__file__).resolve().parents[2]


def no_sram_chip(**changes: object):  # type: ignore[no-untyped-def]
    memory = {"dram": CHIP["memory"]["dram"]}
    return chip(memory=memory, **changes)


# The tiny model: 2 layers, d 256, 4 heads of 64, 2 KV heads, SwiGLU FFN 512, vocab 1000.
ATTN = 256 * 256 + 2 * 256 * 128 + 256 * 256  # q, k, v, o
FFN = 3 * 256 * 512
PARAMS = 2 * (ATTN + FFN) + 2 * 1000 * 256  # body + embedding + untied LM head
KV_PER_TOKEN = 2 * 2 * 128 * 2  # K and V, 2 layers, 128 wide, bf16


def test_shape_counts_params_and_kv() -> None:
    s = shape(llm())
    assert s.total_params == PARAMS
    assert s.weight_bytes == 2 * PARAMS
    assert s.kv_bytes_per_token == KV_PER_TOKEN
    assert s.active_params_per_token == 2 * (ATTN + FFN)


GEMMS = ("gemm.qkv", "gemm.o", "gemm.up_gate", "gemm.down")


def test_batch1_decode_reads_every_weight_once_from_dram() -> None:
    cost = LLMCostModel(llm(), no_sram_chip(), 1).decode_step(1, 100)
    ops = {c.op.name: c for c in cost.ops}
    body_bytes = 2 * (ATTN + FFN) * 2
    assert sum(ops[g].memory_time_s["dram"] for g in GEMMS) == pytest.approx(body_bytes / 80e9)
    assert all(ops[g].bound == "dram" for g in GEMMS)
    # Decode attention reads the KV of 100 context tokens (paged: at the stream rate unless
    # the tier says otherwise); kv_write reads the token's K and V (2 layers x 2 x 128 x
    # 2 B) and writes them to the cache.
    assert ops["attention.decode"].memory_time_s["dram"] == pytest.approx(100 * KV_PER_TOKEN / 80e9)
    assert ops["kv_write"].op.bytes == pytest.approx(2 * KV_PER_TOKEN)
    assert ops["lm_head"].memory_time_s["dram"] == pytest.approx(1000 * 256 * 2 / 80e9)
    assert cost.time_s == pytest.approx(sum(c.time_s for c in cost.ops))


def test_the_norms_move_the_hidden_state_through_dram_on_the_vector_unit() -> None:
    ops = {c.op.name: c for c in LLMCostModel(llm(), no_sram_chip(), 1).prefill(10).ops}
    norm = ops["norm"]
    # Two RMSNorms per layer x 2 layers over 10 tokens x 256, read and written in bf16
    # (on every chip of a tensor-parallel replica): 4 x 2560 elements x 4 B, 4 FLOPs each.
    assert norm.op.engine == "vector"
    assert norm.op.bytes == pytest.approx(4 * 2560 * 4)
    assert norm.op.flops == pytest.approx(4 * 2560 * 4)
    assert norm.op.launches == 4
    # 40,960 B at 80 GB/s = 512 ns; 40,960 FLOPs at 5 TFLOP/s = 8.192 ns, half unhidden.
    assert norm.time_s == pytest.approx(512e-9 + 0.5 * 8.192e-9)


def test_prefill_is_compute_bound_with_2_flops_per_param_per_token() -> None:
    cm = LLMCostModel(llm(), no_sram_chip(), 1)
    cost = cm.prefill(4096)
    ops = {c.op.name: c for c in cost.ops}
    flops = sum(ops[g].op.flops for g in GEMMS)
    assert flops == pytest.approx(2 * 2 * (ATTN + FFN) * 4096)
    assert all(ops[g].bound == "compute" for g in GEMMS)
    # Causal attention: 4 x layers x q_dim FLOPs per (query, key) pair.
    pairs = prefill_pairs(4096, 0)
    assert pairs == 4096 * (4097 / 2)
    assert ops["attention.prefill"].op.flops == pytest.approx(4 * 2 * 256 * pairs)


def test_decode_is_memory_bound_until_the_batch_nears_the_ridge_point() -> None:
    cm = LLMCostModel(llm(), no_sram_chip(), 1)
    ridge = cm.rates.ridge_point("bf16", "dram")  # 50e12 / 80e9 = 625 FLOP/B
    assert ridge == pytest.approx(625)
    small = {c.op.name: c for c in cm.decode_step(8, 10).ops}["gemm.up_gate"]
    large = {c.op.name: c for c in cm.decode_step(2048, 10).ops}["gemm.up_gate"]
    assert small.bound == "dram" and small.arithmetic_intensity < ridge
    assert large.bound == "compute" and large.arithmetic_intensity > ridge


def test_moe_reads_more_experts_as_the_batch_grows() -> None:
    assert experts_touched(8, 2, 1) == pytest.approx(2.0)
    assert experts_touched(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert experts_touched(8, 2, 1000) == pytest.approx(8.0)
    moe = llm(moe={"experts": 8, "active_experts": 2})
    cm = LLMCostModel(moe, no_sram_chip(), 1)
    one = cm.shape.body_weight_bytes(1)
    many = cm.shape.body_weight_bytes(64)
    assert one == pytest.approx(2 * 2 * (ATTN + 2 * FFN + 256 * 8))
    assert many == pytest.approx(2 * 2 * (ATTN + 8 * FFN + 256 * 8), rel=1e-6)


def test_tensor_parallel_splits_work_and_adds_two_allreduces_per_layer() -> None:
    link = {"bandwidth_bytes_per_s": 10e9, "latency_s": 2e-6, "energy_per_byte_j": 0.0}
    c = no_sram_chip(chip_to_chip=link)
    one = {o.op.name: o for o in LLMCostModel(llm(), c, 1).decode_step(4, 100).ops}
    four = {o.op.name: o for o in LLMCostModel(llm(), c, 4).decode_step(4, 100).ops}
    for g in GEMMS:
        assert four[g].op.bytes == pytest.approx(one[g].op.bytes / 4)
        assert four[g].op.flops == pytest.approx(one[g].op.flops / 4)
    ar = four["allreduce"]
    # 2 per layer x 2 layers; a ring all-reduce moves 2(k-1)/k of 4 tokens x 256 x 2 B.
    assert ar.op.bytes == pytest.approx(4 * 2 * (3 / 4) * 4 * 256 * 2)
    assert ar.op.launches == 4
    assert ar.overhead_s == pytest.approx(4 * 2 * 3 * 2e-6)
    # Adding 3 of 4 chips' shares: 4 x 256 x 3 x 4 tokens / 4 chips FLOPs at 5 TFLOP/s.
    reduce_s = 4 * 256 * 3 * 4 / 4 / 5e12
    assert ar.time_s == pytest.approx(ar.op.bytes / 8e9 + 0.5 * reduce_s + ar.overhead_s)
    assert "allreduce" not in one


def test_8bit_weights_all_reduce_16bit_activations_and_pay_for_quantising() -> None:
    link = {"bandwidth_bytes_per_s": 10e9, "latency_s": 0.0, "energy_per_byte_j": 0.0}
    c = no_sram_chip(chip_to_chip=link)
    bf16 = {o.op.name: o for o in LLMCostModel(llm(), c, 4).decode_step(4, 100).ops}
    fp8_model = llm(weight_dtype="fp8", kv_dtype="fp8")
    fp8 = {o.op.name: o for o in LLMCostModel(fp8_model, c, 4).decode_step(4, 100).ops}
    assert fp8["allreduce"].op.bytes == bf16["allreduce"].op.bytes  # bf16 either way
    assert fp8["gemm.qkv"].op.bytes == pytest.approx(bf16["gemm.qkv"].op.bytes / 2)
    assert "quantize" not in bf16
    # Every GEMM input quantised: 4 tokens x 2 layers x (256 + 256 / 4 + 256 + 512 / 4)
    # elements, each read in bf16 and written in 8 bits.
    assert fp8["quantize"].op.bytes == pytest.approx(4 * 2 * (256 + 64 + 256 + 128) * 3)
    assert fp8["quantize"].op.launches == 8


def test_graph_captured_decode_pays_one_launch_a_dispatch_per_kernel_and_the_host() -> None:
    c = no_sram_chip(compute={**CHIP["compute"], "kernel_overhead_s": 1e-5})
    plain = LLMCostModel(llm(), c, 1)
    graph = LLMCostModel(
        llm(), c, 1, ContinuousBatching(graph_decode=True, iteration_overhead_s=3e-4)
    )
    launches = sum(o.op.launches for o in plain.decode_step(4, 100).ops)
    # 2 layers x 12 kernels (2 norms, qkv, rotary, kv write, attention, o, 2 residual
    # adds, up/gate, activation, down), then the final norm, the LM head and sampling.
    assert launches == 2 * 12 + 3
    step = plain.decode_step(4, 100).time_s
    replay = graph.decode_step(4, 100).time_s
    # Each replayed kernel costs GRAPH_KERNEL_S (0.9 µs) instead of its 10 µs launch.
    assert replay == pytest.approx(step - 27 * 1e-5 + 1e-5 + 27 * 0.9e-6 + 3e-4)
    # A prefill is not replayed from a graph: it pays every launch and the host overhead.
    assert graph.prefill(16).time_s == pytest.approx(plain.prefill(16).time_s + 3e-4)
    # The fast path agrees.
    it = Iteration(decode_sequences=4, decode_context_tokens=400, logits=4)
    assert graph.terms(it).time(1.0) == pytest.approx(Terms.of(graph.iteration(it)).time(1.0))


def test_shipped_8b_batch1_tpot_matches_weights_over_bandwidth() -> None:
    """Low-load TPOT vs weight bytes / (DRAM bandwidth x efficiency) + overheads, from the
    raw model and chip files (not through accelsim's shape code)."""
    m = yaml.safe_load((ROOT / "workloads/models/llm-dense-8b.yaml").read_text())
    c = yaml.safe_load((ROOT / "hardware/gpu-like-gen2-hbm.yaml").read_text())
    d, hd = m["d_model"], m["d_model"] // m["heads"]
    per_layer = 2 * d * m["heads"] * hd + 2 * d * m["kv_heads"] * hd + 3 * d * m["ffn_dim"]
    weight_bytes = 2 * (m["layers"] * per_layer + m["vocab"] * d)  # LM head, not embedding
    dram = c["memory"]["dram"]
    bw = parse_quantity(dram["bandwidth_bytes_per_s"], "bytes/s") * dram["stream_efficiency"]
    # 12 kernels per layer, then the final norm, the LM head and sampling.
    overhead = parse_quantity(c["compute"]["kernel_overhead_s"], "s") * (12 * m["layers"] + 3)
    expected = weight_bytes / bw + overhead

    from accelsim.config.loader import load_chip, load_model

    res = llm_resolved(
        rate_per_s=0.05,  # one request at a time
        prompt={"kind": "fixed", "value": 64},
        output={"kind": "fixed", "value": 200},
        duration_s=400,
        warmup_s=0,
        the_chip=load_chip("gpu-like-gen2-hbm"),
        the_model=load_model("llm-dense-8b"),  # type: ignore[arg-type]
    )
    doc = summarize(res, simulate(res))["workloads"]["w"]
    assert doc["completed"] >= 10
    assert doc["tpot_s"]["mean"] == pytest.approx(expected, rel=0.15)


def check_iteration_invariants(res) -> dict:  # type: ignore[no-untyped-def,type-arg]
    records = simulate(res)
    cap = records.fleets["llm"].replicas[0].kv_capacity_tokens
    assert np.all(records.fleets["llm"].iterations.kv_tokens <= cap)
    assert all(r.max_kv_tokens <= r.kv_capacity_tokens for r in records.fleets["llm"].replicas)
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    assert np.all(rec.first_token_s[done] >= rec.arrival_s[done])
    assert np.all(rec.finish_s[done] >= rec.first_token_s[done])
    started = ~np.isnan(rec.first_token_s)
    assert np.all(rec.first_token_s[started] > rec.arrival_s[started])
    doc = summarize(res, records)
    w = doc["workloads"]["w"]
    assert w["offered"] == w["completed"] + w["in_flight"] + w["dropped"]
    for mode in w["by_mode"].values():
        assert mode["offered"] == mode["completed"] + mode["in_flight"] + mode["dropped"]
    if "sub_requests" in w:
        s = w["sub_requests"]
        assert s["offered"] == s["completed"] + s["in_flight"]
    # Iterations of one replica never overlap.
    for r in np.unique(records.fleets["llm"].iterations.replica):
        sel = records.fleets["llm"].iterations.replica == r
        starts, ends = (
            records.fleets["llm"].iterations.start_s[sel],
            records.fleets["llm"].iterations.end_s[sel],
        )
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)
    return doc


MIXED = {
    "modes": {"instant": 0.5, "thinking": 0.25, "contemplating": 0.25},
    "extra": {
        "thinking": {"reasoning_tokens": {"kind": "uniform", "low": 50, "high": 400}},
        "contemplating": {
            "branches": 3,
            "branch_output_tokens": {"kind": "uniform", "low": 20, "high": 200},
            "aggregation_output_tokens": {"kind": "fixed", "value": 40},
        },
    },
}


@pytest.mark.parametrize("kv_policy", ["reserve", "preempt"])
@pytest.mark.parametrize("chunked", [True, False])
def test_invariants_hold_on_every_iteration(kv_policy: str, chunked: bool) -> None:
    # A DRAM just big enough for the weights and ~3000 KV tokens forces KV pressure.
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": (2 * PARAMS + 3000 * KV_PER_TOKEN) / 0.9}
    res = llm_resolved(
        rate_per_s=300,
        prompt={"kind": "uniform", "low": 10, "high": 600},
        output={"kind": "uniform", "low": 1, "high": 300},
        count=2,
        batching={
            "kv_policy": kv_policy,
            "chunked_prefill": chunked,
            "max_batch_tokens": 512,
            "max_batch_sequences": 64,
        },
        duration_s=3,
        warmup_s=0.5,
        the_chip=chip(memory={"dram": dram}),
        **MIXED,  # type: ignore[arg-type]
    )
    doc = check_iteration_invariants(res)
    w = doc["workloads"]["w"]
    assert w["completed"] > 100
    assert doc["pools"]["p"]["kv_utilization"]["max"] > 0.5
    if kv_policy == "preempt":
        assert doc["pools"]["p"]["preemptions"] > 0


def test_requests_that_can_never_fit_are_rejected_and_counted() -> None:
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": (2 * PARAMS + 1000 * KV_PER_TOKEN) / 0.9}
    res = llm_resolved(
        rate_per_s=50,
        prompt={"kind": "uniform", "low": 100, "high": 1500},
        output={"kind": "fixed", "value": 10},
        duration_s=2,
        the_chip=chip(memory={"dram": dram}),
    )
    doc = check_iteration_invariants(res)
    w = doc["workloads"]["w"]
    assert w["dropped"] > 0
    assert any("rejected" in text for text in doc["warnings"])


def test_contemplating_has_a_higher_tail_than_instant_at_the_same_load() -> None:
    """Same rate, same model, same pool. A contemplating request waits for the slowest of
    its 4 branches (each a full generation of 100-400 tokens) before the aggregation can
    even start its prefill of prompt + all branch outputs, then streams its answer. Its
    latency is therefore at least the longest branch plus the aggregation, and its p99
    is the p99 of a maximum of four generations plus one more: far above instant's p99."""
    common = dict(
        rate_per_s=20,
        prompt={"kind": "uniform", "low": 50, "high": 500},
        output={"kind": "uniform", "low": 50, "high": 150},
        duration_s=20,
        the_chip=no_sram_chip(),
    )
    instant = check_iteration_invariants(
        llm_resolved(modes={"instant": 1}, **common)  # type: ignore[arg-type]
    )["workloads"]["w"]
    contemplating = check_iteration_invariants(
        llm_resolved(
            modes={"instant": 0, "contemplating": 1},
            extra={
                "contemplating": {
                    "branches": 4,
                    "branch_output_tokens": {"kind": "uniform", "low": 100, "high": 400},
                    "aggregation_output_tokens": {"kind": "uniform", "low": 50, "high": 150},
                }
            },
            **common,  # type: ignore[arg-type]
        )
    )["workloads"]["w"]
    tpot = instant["tpot_s"]["p50"]
    # Lower bound from the numbers: the longest of 4 uniform(100, 400) branches averages
    # 100 + 300 x 4/5 = 340 tokens; plus at least 50 aggregation tokens.
    floor = (340 + 50) * tpot
    assert contemplating["latency_s"]["mean"] > floor
    assert contemplating["latency_s"]["p99"] > 2 * instant["latency_s"]["p99"]
    assert contemplating["ttft_s"]["p50"] > 100 * tpot  # the user's first token waits too
    assert contemplating["sub_requests"]["offered"] == 4 * contemplating["offered"]


def test_same_seed_same_llm_result() -> None:
    kwargs = dict(
        rate_per_s=30,
        prompt={"kind": "lognormal", "median": 100, "sigma": 1.0, "max": 2000},
        output={"kind": "lognormal", "median": 50, "sigma": 1.0, "max": 500},
        duration_s=2,
        **MIXED,
    )
    a = summarize(r := llm_resolved(seed=5, **kwargs), simulate(r))  # type: ignore[arg-type]
    b = summarize(r := llm_resolved(seed=5, **kwargs), simulate(r))  # type: ignore[arg-type]
    c = summarize(r := llm_resolved(seed=6, **kwargs), simulate(r))  # type: ignore[arg-type]
    assert a == b
    assert a != c
    assert math.isfinite(a["totals"]["output_tokens_per_j"])


def test_a_model_that_does_not_fit_is_a_located_config_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from accelsim.cli import app

    path = tmp_path / "big.yaml"
    path.write_text(
        "workloads:\n"
        "  chat:\n"
        "    kind: llm\n"
        "    model: llm-dense-70b\n"
        "    traffic: {kind: poisson, rate_per_s: 1}\n"
        "    prompt_tokens: {kind: fixed, value: 100}\n"
        "    output_tokens: {kind: fixed, value: 10}\n"
        "pools:\n"
        "  gpu:\n"
        "    chip: gpu-like-gen1\n"
        "    count: 2\n"
        "    serves: [chat]\n"
    )
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    # 131 GiB of weights over 70 GiB x 0.9 per chip: at least 3 chips per replica.
    assert lines[0].startswith(f"error: {path}:9: pools.gpu.chips_per_replica: llm-dense-70b")
    assert "needs chips_per_replica >= 3" in lines[0]


def test_trace_replay_gives_llm_requests_their_token_counts() -> None:
    from accelsim.config.loader import ResolvedScenario, Trace
    from accelsim.config.schema import Scenario

    base = llm_resolved(
        rate_per_s=1, prompt={"kind": "fixed", "value": 10}, output={"kind": "fixed", "value": 5}
    )
    data = base.scenario.model_dump()
    data["workloads"]["w"]["traffic"] = {"kind": "trace", "path": "t.csv"}
    trace = Trace(
        "t.csv",
        np.array([0.0, 1.0, 2.0]),
        {"prompt_tokens": np.array([100, 200, 300]), "output_tokens": np.array([7, 8, 9])},
    )
    res = ResolvedScenario(
        Scenario.model_validate(data), "<test>", base.chips, base.models, {"w": trace}
    )
    rec = simulate(res).fleets["llm"].workloads["w"]
    assert rec.prompt_tokens.tolist() == [100, 200, 300]
    assert rec.output_tokens.tolist() == [7, 8, 9]
    assert rec.generated_tokens.tolist() == [7, 8, 9]


def test_multimodal_requests_pay_for_image_tokens_and_the_encoder() -> None:
    vision = llm(vision={"params": 3e8, "tokens_per_image": 576})
    common = dict(
        rate_per_s=2,
        prompt={"kind": "fixed", "value": 100},
        output={"kind": "fixed", "value": 20},
        duration_s=30,
        the_chip=no_sram_chip(),
        the_model=vision,
    )
    plain = check_iteration_invariants(llm_resolved(**common))["workloads"]["w"]  # type: ignore[arg-type]
    images = check_iteration_invariants(
        llm_resolved(extra={"multimodal": {"probability": 1.0, "images": 2}}, **common)  # type: ignore[arg-type]
    )["workloads"]["w"]
    assert images["mean_prompt_tokens"] == 100 + 2 * 576
    assert images["ttft_s"]["p50"] > plain["ttft_s"]["p50"]
    cm = LLMCostModel(vision, no_sram_chip(), 1)
    ops = {c.op.name: c for c in cm.prefill(100 + 1152, image_tokens=1152).ops}
    assert ops["vision_encoder"].op.flops == pytest.approx(2 * 3e8 * 1152)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, -0.0, 1e-9, 0.1, 0.3, 2.5e-6, 7.0, 1e6]), st.booleans()),
        max_size=9,
    ),
    st.integers(0, 10**7),
)
def test_a_plans_folded_energy_sum_is_the_left_to_right_sum(
    addends: list[tuple[float, bool]], context: int
) -> None:
    """The decode plan sums energy from its leading values folded into one and without
    zero addends: to the last bit the sum of every addend in order from 0.0."""
    expected = 0.0
    for value, per_token in addends:
        expected += value * context if per_token else value
    start, rest = _energy_sum(addends)
    total = start
    for value, per_token in rest:
        total += value * context if per_token else value
    assert math.copysign(1.0, total) == math.copysign(1.0, expected)
    assert total == expected
