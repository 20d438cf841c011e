"""Pipeline and expert parallelism (model/parallel.py) against hand-computed figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from accelsim.config.schema import ContinuousBatching, Parallelism, Pool
from accelsim.model.llm import Iteration, LLMCostModel, shape
from accelsim.model.parallel import (
    Layout,
    ParallelCostModel,
    bubble_share,
    fit_message,
    layouts_that_fit,
    parallel_terms,
    weight_bytes_per_chip,
)
from clirunner import assert_ok, err, invoke, out
from helpers import CHIP, chip, llm

LINK = {"bandwidth_bytes_per_s": 10e9, "latency_s": 2e-6, "energy_per_byte_j": 0.0}
MOE = {"experts": 8, "active_experts": 2}


def _chip():  # type: ignore[no-untyped-def]
    return chip(memory={"dram": CHIP["memory"]["dram"]}, chip_to_chip=LINK)


@pytest.mark.parametrize(("pp", "m", "share"), [(2, 4, 1 / 5), (4, 4, 3 / 7), (8, 1, 7 / 8)])
def test_bubble_share_is_p_minus_1_over_m_plus_p_minus_1(pp: int, m: int, share: float) -> None:
    assert bubble_share(pp, m) == pytest.approx(share)


def test_pipeline_iteration_is_m_plus_p_minus_1_stage_times_with_the_send() -> None:
    the_chip = _chip()
    model = llm(layers=4)
    pp, m, tp = 2, 4, 2
    par = ParallelCostModel(model, the_chip, Layout(tp, pp, 1, m))
    it = Iteration(decode_sequences=8, decode_context_tokens=8 * 100, logits=8)
    # One stage by hand: half the layers, a quarter of the batch, plus the send of the
    # micro-batch's hidden state over the link at 80% of its nominal 10 GB/s.
    stage = LLMCostModel(llm(layers=2), the_chip, tp).terms(
        Iteration(decode_sequences=2, decode_context_tokens=200, logits=2)
    )
    s = shape(model)
    send_bytes = 2 * s.d_model * s.act_bytes / tp  # 2 tokens, split over the tensor chips
    send_s = send_bytes / 8e9 + 2e-6 + the_chip.compute.kernel_overhead_s
    stage_s = stage.time(1.0) + send_s
    assert par.terms(it).time(1.0) == pytest.approx((m + pp - 1) * stage_s, rel=1e-12)
    # The roofline view agrees, and shows the bubble as (pp - 1) stage times.
    cost = par.iteration(it)
    assert cost.time_s == pytest.approx(5 * stage_s, rel=1e-9)
    terms = parallel_terms(cost, par.micro_batches(it), par.layout)
    assert terms["bubble_s"] == pytest.approx(stage_s, rel=1e-9)
    assert terms["bubble_share"] == pytest.approx(1 / 5)
    assert terms["activation_transfer_bytes"] == pytest.approx(m * send_bytes)
    # Each chip works m stage slots of the m + pp - 1: energy is m stages'.
    assert par.terms(it).dynamic(1.0) == pytest.approx(m * stage.dynamic(1.0), rel=1e-12)


def test_micro_batches_are_at_most_one_per_token() -> None:
    par = ParallelCostModel(llm(layers=4), _chip(), Layout(1, 2, 1, 8))
    assert par.micro_batches(Iteration(decode_sequences=3)) == 3
    assert par.micro_batches(Iteration(prefill_tokens=100)) == 8
    assert ParallelCostModel(llm(), _chip(), Layout(1)).micro_batches(Iteration(100)) == 1


def test_without_pipeline_or_experts_the_layout_costs_what_tensor_parallelism_does() -> None:
    it = Iteration(prefill_tokens=64, prefill_pairs=64 * 32.5, decode_sequences=4, logits=5)
    base = LLMCostModel(llm(), _chip(), 2).terms(it)
    par = ParallelCostModel(llm(), _chip(), Layout(2)).terms(it)
    assert par.time(1.0) == pytest.approx(base.time(1.0), rel=1e-12)


def test_expert_alltoall_bytes_and_time_of_a_hand_sized_moe_layer() -> None:
    # 2 layers, d_model 64, 8 experts with 2 active, fp32 activations of bf16 weights.
    model = llm(layers=2, d_model=64, heads=4, kv_heads=4, ffn_dim=128, vocab=100, moe=MOE)
    the_chip = _chip()
    ep = 4
    par = ParallelCostModel(model, the_chip, Layout(1, 1, ep, 1, 1.0))
    it = Iteration(prefill_tokens=64, prefill_pairs=64 * 32.5, logits=1)
    a2a = next(c for c in par.iteration(it).ops if c.op.name == "ep.alltoall")
    # Each group has 64 / 4 = 16 tokens, each to 2 experts, 3 of 4 on other chips, 64
    # activations of 2 bytes each way (dispatch and combine), in each of 2 layers.
    ab = shape(model).act_bytes
    moved = 2 * 2 * 16 * 2 * (3 / 4) * 64 * ab
    assert a2a.op.bytes == pytest.approx(moved)
    # Two all-to-alls per layer, each 3 peer latencies and one launch.
    fixed = 2 * 2 * 3 * 2e-6 + 4 * the_chip.compute.kernel_overhead_s
    assert a2a.time_s == pytest.approx(moved / 8e9 + fixed)  # 80% of the nominal rate


def test_expert_imbalance_scales_the_busiest_chips_expert_flops() -> None:
    model = llm(moe=MOE)
    it = Iteration(prefill_tokens=256, prefill_pairs=256 * 128.5, logits=1)

    def flops(imbalance: float) -> float:
        par = ParallelCostModel(model, _chip(), Layout(1, 1, 2, 1, imbalance))
        return next(c.op.flops for c in par.iteration(it).ops if c.op.name == "gemm.down")

    assert flops(1.85) == pytest.approx(1.85 * flops(1.0))
    # Balanced, each of 2 groups' chips does its 128 tokens x 2 experts' down projections.
    s = shape(model)
    assert flops(1.0) == pytest.approx(2 * s.layers * 128 * 2 * s.expert_params / 3)


def test_weights_per_chip_under_tensor_pipeline_expert() -> None:
    model = llm(layers=2, d_model=64, heads=4, kv_heads=4, ffn_dim=128, vocab=100, moe=MOE)
    # Per layer: attention 4 x 64 x 64 = 16384, 8 experts of 3 x 64 x 128 = 24576, router
    # 64 x 8 = 512; embedding and LM head 100 x 64 each; 2 bytes a parameter.
    total = 2 * (2 * (16384 + 8 * 24576 + 512) + 2 * 6400)
    routed = 2 * 2 * 8 * 24576
    assert shape(model).weight_bytes == total
    assert weight_bytes_per_chip(shape(model), Layout(1, 2, 4)) == (total - routed + routed / 4) / 2
    assert weight_bytes_per_chip(shape(model), Layout(2, 2, 1)) == total / 4
    dense = llm(layers=4)
    assert weight_bytes_per_chip(shape(dense), Layout(2, 2, 1)) == shape(dense).weight_bytes / 4


def test_the_fit_check_names_the_combination_and_the_ones_that_fit() -> None:
    s = shape(llm())
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": s.weight_bytes / 0.9 / 3}
    small = chip(memory={"dram": dram}, chip_to_chip=LINK)
    message = fit_message(llm(), small, Layout(1, 2, 1), 0.9)
    assert message.startswith(
        "tiny-llm does not fit a replica of tensor 1 x pipeline 2 x expert 1 = 2 test-chip chip(s)"
    )
    assert "layouts that fit: tensor 4 x pipeline 1 x expert 1 (4 chips)" in message
    fits = layouts_that_fit(llm(), small, 0.9)
    assert all(f.chips >= 4 for f in fits) and Layout(2, 2, 1) in fits


def test_parallelism_fields_are_validated() -> None:
    with pytest.raises(ValidationError, match="micro_batches needs pipeline > 1"):
        Parallelism(micro_batches=4)
    with pytest.raises(ValidationError, match="expert_imbalance needs expert > 1"):
        Parallelism(pipeline=2, expert_imbalance=2.0)
    assert Parallelism(pipeline=4).micro_batch_count == 4
    layout = Parallelism(pipeline=2, expert=4)
    pool = Pool(chip="c", count=16, chips_per_replica=2, serves=["w"], parallelism=layout)
    assert pool.replica_chips == 16
    assert "parallelism" not in Pool(chip="c", count=1, serves=["w"]).model_dump()


def _scenario(tmp_path: Path, pool: str, model: str = "llm-dense-70b") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        "workloads:\n"
        "  chat:\n"
        "    kind: llm\n"
        f"    model: {model}\n"
        "    traffic: {kind: poisson, rate_per_s: 1}\n"
        "    prompt_tokens: {kind: fixed, value: 100}\n"
        "    output_tokens: {kind: fixed, value: 10}\n"
        "pools:\n"
        "  p:\n"
        "    chip: mtia-like-gen2-hbm\n"
        "    serves: [chat]\n" + pool
    )
    return path


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        (
            "    count: 9\n    chips_per_replica: 3\n    parallelism: {pipeline: 3}\n",
            "pools.p.parallelism.pipeline: 3 pipeline stages do not divide the 80 layers",
        ),
        (
            "    count: 8\n    chips_per_replica: 4\n    parallelism: {expert: 2}\n",
            "pools.p.parallelism.expert: expert parallelism needs a mixture of experts",
        ),
        (
            "    count: 12\n    chips_per_replica: 4\n    parallelism: {pipeline: 2}\n",
            "pools.p.count: 12 chips do not divide into replicas of 8 "
            "(tensor 4 x pipeline 2 x expert 1)",
        ),
        (
            "    count: 2\n    chips_per_replica: 1\n    parallelism: {pipeline: 2}\n",
            "pools.p.parallelism: llm-dense-70b does not fit a replica of tensor 1 x "
            "pipeline 2 x expert 1 = 2 mtia-like-gen2-hbm chip(s)",
        ),
    ],
)
def test_bad_layouts_are_one_line_located_errors(tmp_path: Path, pool: str, expected: str) -> None:
    result = invoke("run", _scenario(tmp_path, pool))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = err(result).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0]


def test_moe_expert_degree_must_divide_the_experts(tmp_path: Path) -> None:
    pool = "    count: 3\n    parallelism: {expert: 3}\n"
    result = invoke("run", _scenario(tmp_path, pool, "llm-moe-8x7b"))
    assert result.exit_code == 1
    assert "pools.p.parallelism.expert: expert degree 3 does not divide the 8 experts" in err(
        result
    )


def test_explain_shows_the_bubble_transfer_and_alltoall(tmp_path: Path) -> None:
    doc_path = tmp_path / "e.json"
    result = invoke(
        "explain", "--chip", "mtia-like-gen2-hbm", "--model", "llm-moe-8x7b",
        "--tp", 2, "--pp", 2, "--micro-batches", 4, "--ep", 2, "--batch", 16,
        "--json", doc_path,
    )  # fmt: skip
    assert_ok(result)
    text = out(result)
    assert "tensor 2 x pipeline 2 x expert 2 = 8 chips" in text
    assert "bubble 20.0%" in text and "expert all-to-all" in text
    import json

    par = json.loads(doc_path.read_text())["parallelism"]
    assert par["decode"]["bubble_share"] == pytest.approx(0.2)
    assert par["decode"]["alltoall_bytes"] > 0 and par["decode"]["activation_transfer_bytes"] > 0
    bad = invoke("explain", "--chip", "mtia-like-gen2-hbm", "--model", "llm-dense-8b", "--ep", 2)
    assert bad.exit_code == 1
    assert err(bad).strip() == (
        "error: --ep: expert parallelism needs a mixture of experts; llm-dense-8b is dense"
    )


def test_a_continuous_batching_host_overhead_is_paid_once_per_iteration() -> None:
    serving = ContinuousBatching(iteration_overhead_s=1e-3)
    it = Iteration(decode_sequences=8, decode_context_tokens=800, logits=8)
    with_host = ParallelCostModel(llm(layers=4), _chip(), Layout(1, 2, 1, 4), serving)
    without = ParallelCostModel(llm(layers=4), _chip(), Layout(1, 2, 1, 4))
    assert with_host.terms(it).time(1.0) - without.terms(it).time(1.0) == pytest.approx(1e-3)


def test_a_layout_of_one_stage_and_no_experts_serves_as_plain_tensor_parallelism() -> None:
    """The same requests on a tensor-2 pool with and without an explicit one-stage,
    one-group ``parallelism`` block: the parallel path (no decode plan: span ends from
    ``terms``) gives the same latencies as the plain one."""
    from accelsim.config.schema import Parallelism
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize
    from helpers import llm_resolved

    plain = llm_resolved(
        rate_per_s=40,
        prompt={"kind": "uniform", "low": 10, "high": 300},
        output={"kind": "uniform", "low": 1, "high": 100},
        count=4,
        chips_per_replica=2,
        duration_s=5,
        warmup_s=0.5,
        the_chip=_chip(),
    )
    pool = plain.scenario.pools["p"].model_copy(update={"parallelism": Parallelism()})
    scenario = plain.scenario.model_copy(update={"pools": {"p": pool}})
    layered = dataclasses.replace(plain, scenario=scenario)
    a = summarize(plain, simulate(plain))["workloads"]["w"]
    b = summarize(layered, simulate(layered))["workloads"]["w"]
    assert a["completed"] == b["completed"] > 100
    for key in ("ttft_s", "tpot_s", "latency_s"):
        assert b[key]["mean"] == pytest.approx(a[key]["mean"], rel=1e-9)


def test_a_run_reports_roofline_explains_the_pools_layout() -> None:
    from accelsim.report.explain import explain
    from accelsim.report.kinds import kind_named

    pool = {
        "chips_per_replica": 2,
        "parallelism": {"pipeline": 2, "micro_batches": 4, "expert": 2, "expert_imbalance": 1.5},
    }
    setting, _ = kind_named("llm").roofline_setting(pool, {}, {})
    assert (setting.pipeline, setting.micro_batches, setting.expert) == (2, 4, 2)
    doc = explain(
        llm(layers=4, moe=MOE),
        _chip(),
        8,
        chips_per_replica=setting.chips_per_replica,
        pipeline=setting.pipeline,
        expert=setting.expert,
        micro_batches=setting.micro_batches,
        expert_imbalance=setting.expert_imbalance,
    )
    par = doc["parallelism"]
    assert (par["replica_chips"], par["expert_imbalance"]) == (8, 1.5)
    assert par["prefill"]["bubble_share"] == pytest.approx(1 / 5)
    assert "pp.bubble" in {op["name"] for op in doc["decode"]["ops"]}


def test_the_python_api_explains_a_layout() -> None:
    from accelsim.api import explain
    from accelsim.config.loader import load_model

    doc = explain("mtia-like-gen2-hbm", "llm-dense-70b", 8, chips_per_replica=4, pipeline=2)
    assert doc.document["parallelism"]["decode"]["bubble_share"] == pytest.approx(1 / 3)
    weights = shape(load_model("llm-dense-70b")).weight_bytes  # type: ignore[arg-type]
    assert doc.document["placement"]["weight_bytes_per_chip"] == pytest.approx(weights / 8)
