"""Speculative decoding: the closed forms, a step's cost from the cost model's terms, and
the engine's acceptance draws against hand-computed expectations.

Expected tokens per step with k proposals each accepted with probability a until the
first rejection, plus the verify step's own token: (1 - a^(k+1)) / (1 - a).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config.schema import LLMWorkload, Speculative
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.llm import Iteration, LLMCostModel
from accelsim.model.speculative import (
    SpeculativeCost,
    expected_tokens_per_step,
    mtp_model,
    tokens_distribution,
)
from helpers import chip, llm, llm_resolved

DRAFT = {"name": "tiny-draft", "layers": 1, "d_model": 128, "heads": 2, "kv_heads": 1}


def spec(**changes: object) -> Speculative:
    data: dict[str, object] = {"mtp_heads": 1, "tokens": 3, "acceptance_rate": 0.6}
    data.update(changes)
    return Speculative.model_validate(data)


def test_expected_tokens_per_step_is_the_closed_form() -> None:
    assert expected_tokens_per_step(4, 0.7) == pytest.approx((1 - 0.7**5) / 0.3)
    assert expected_tokens_per_step(4, 0.7) == pytest.approx(2.7731)
    assert expected_tokens_per_step(3, 0.0) == 1.0
    assert expected_tokens_per_step(3, 1.0) == 4.0
    # 1 + a + a^2 + ... + a^k, the mean of the step's law.
    law = tokens_distribution(5, 0.8)
    assert sum(law) == pytest.approx(1.0)
    assert sum((n + 1) * p for n, p in enumerate(law)) == pytest.approx(
        sum(0.8**j for j in range(6))
    )
    assert tokens_distribution(2, 0.5) == pytest.approx([0.5, 0.25, 0.25])


def test_a_step_is_k_draft_decodes_then_one_verify_over_k_plus_1_tokens() -> None:
    target = LLMCostModel(llm(), chip())
    draft_model = llm(**DRAFT)
    cost = SpeculativeCost(target, spec(draft_model="tiny-draft", mtp_heads=None), draft_model)
    draft = LLMCostModel(draft_model, chip())
    # 3 sequences holding 100, 200 and 300 KV tokens; k = 3.
    it = Iteration(decode_sequences=3, decode_context_tokens=600, logits=3)
    step = cost.step(it)
    drafts = [
        draft.terms(Iteration(decode_sequences=3, decode_context_tokens=600 + 3 * j, logits=3))
        for j in range(3)
    ]
    # Each sequence verifies 4 tokens after its context c: 4 (c + 5/2) causal pairs.
    pairs = sum(4 * (c + 2.5) for c in (100, 200, 300))
    assert pairs == 2430
    verify_it = Iteration(
        prefill_tokens=12, prefill_pairs=pairs, prefill_context_tokens=600, logits=12
    )
    verify = target.terms(verify_it)
    assert step.draft_s == pytest.approx(sum(t.time(1.0) for t in drafts), rel=1e-9)
    assert step.verify_s == pytest.approx(verify.time(1.0), rel=1e-12)
    assert step.terms.time(1.0) == pytest.approx(step.draft_s + step.verify_s, rel=1e-12)
    e = sum(t.dynamic(1.0) for t in [*drafts, verify])
    assert step.terms.dynamic(1.0) == pytest.approx(e, rel=1e-12)
    # A prefill chunk sharing the iteration runs in the verify step and in the first
    # draft step (the draft needs the prompt's KV too).
    chunk = Iteration(prefill_tokens=50, prefill_pairs=50 * 25.5, logits=1)
    mixed = cost.step(it._replace(prefill_tokens=50, prefill_pairs=50 * 25.5, logits=4))
    first = draft.terms(
        Iteration(
            prefill_tokens=50,
            prefill_pairs=50 * 25.5,
            decode_sequences=3,
            decode_context_tokens=600,
            logits=4,
        )
    )
    assert mixed.draft_s == pytest.approx(
        first.time(1.0) + sum(t.time(1.0) for t in drafts[1:]), rel=1e-9
    )
    verify_mixed = target.terms(
        verify_it._replace(
            prefill_tokens=12 + chunk.prefill_tokens,
            prefill_pairs=pairs + chunk.prefill_pairs,
            logits=13,
        )
    )
    assert mixed.verify_s == pytest.approx(verify_mixed.time(1.0), rel=1e-12)
    # The verify step reads the weights once for 12 tokens: a plain decode step's weight
    # bytes, 4x its GEMM FLOPs.
    plain = {op.name: op for op in target.ops(it)}
    checked = {op.name: op for op in target.ops(verify_it)}
    for name in ("gemm.qkv", "gemm.up_gate", "lm_head"):
        assert checked[name].traffic == plain[name].traffic
        assert checked[name].flops == pytest.approx(4 * plain[name].flops)


def test_kv_capacity_makes_room_for_the_proposers_weights_and_kv() -> None:
    target = LLMCostModel(llm(), chip(memory={"dram": chip().memory.dram.model_dump()}))
    the_chip = target.chip
    usable = the_chip.memory.dram.capacity_bytes * 0.9
    draft_model = llm(**DRAFT)
    cost = SpeculativeCost(target, spec(draft_model="d", mtp_heads=None), draft_model)
    draft_bytes = LLMCostModel(draft_model, the_chip).shape.weight_bytes
    per_token = target.shape.kv_bytes_per_token + 2 * 1 * 64 * 2  # draft: 1 layer, 1 KV head
    expected = int((usable - target.shape.weight_bytes - draft_bytes) // per_token)
    assert cost.kv_capacity_tokens == expected
    # Two MTP modules: two of the target's layers (plus a 2d x d projection each) and
    # two layers of KV.
    mtp = SpeculativeCost(target, spec(mtp_heads=2), None)
    s = target.shape
    layer = s.attention_params_per_layer + s.ffn_params_per_layer
    assert mtp.draft_weight_bytes == 2 * (layer + 2 * 256 * 256) * 2
    assert mtp.draft_kv_bytes_per_token == 2 * s.kv_bytes_per_token / s.layers
    assert mtp_model(llm()).layers == 1


def _one_at_a_time(k: int, a: float, output: int, **extra: object):  # type: ignore[no-untyped-def]
    """Requests far apart (one on the replica at a time), prompt 100, fixed output."""
    res = llm_resolved(
        rate_per_s=0.5,
        prompt={"kind": "fixed", "value": 100},
        output={"kind": "fixed", "value": output},
        duration_s=40,
        warmup_s=1,
        extra={"speculative": {"mtp_heads": 1, "tokens": k, "acceptance_rate": a, **extra}},
    )
    records = simulate(res)
    return res, records


def _step_s(k: int, context: int) -> float:
    cost = SpeculativeCost(LLMCostModel(llm(), chip()), spec(tokens=k), None)
    it = Iteration(decode_sequences=1, decode_context_tokens=context, logits=1)
    return cost.step(it).terms.time(1.0)


def test_acceptance_0_advances_one_token_a_step_at_draft_plus_verify_cost() -> None:
    res, records = _one_at_a_time(k=2, a=0.0, output=6)
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    assert done.sum() >= 5
    # After the prefill's token, 5 steps at contexts 101..105.
    expected = sum(_step_s(2, 100 + g) for g in range(1, 6))
    streamed = rec.finish_s[done] - rec.first_token_s[done]
    assert streamed == pytest.approx(np.full(done.sum(), expected), rel=1e-9)
    sp = summarize(res, records)["workloads"]["w"]["speculative"]
    assert sp["accepted_tokens_per_step"] == 1.0
    assert sp["accepted_tokens_distribution"] == {"1": 1.0, "2": 0.0, "3": 0.0}


def test_acceptance_1_advances_k_plus_1_and_stops_at_the_output_length() -> None:
    # k = 3, output 8: the prefill gives token 1, a step 1 -> 5, the next 5 -> 8 (cut).
    res, records = _one_at_a_time(k=3, a=1.0, output=8)
    rec = records.fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    assert done.sum() >= 5
    expected = _step_s(3, 101) + _step_s(3, 105)
    streamed = rec.finish_s[done] - rec.first_token_s[done]
    assert streamed == pytest.approx(np.full(done.sum(), expected), rel=1e-9)
    assert np.all(rec.generated_tokens[done] == 8)
    sp = summarize(res, records)["workloads"]["w"]["speculative"]
    assert sp["accepted_tokens_per_step"] == pytest.approx(3.5)  # (4 + 3) / 2
    assert sp["accepted_tokens_distribution"]["4"] == 1.0


def test_the_engines_mean_accepted_tokens_matches_the_closed_form() -> None:
    k, a = 3, 0.6
    res = llm_resolved(
        rate_per_s=10,
        prompt={"kind": "fixed", "value": 50},
        output={"kind": "fixed", "value": 400},
        duration_s=6,
        warmup_s=1,
        extra={"speculative": {"mtp_heads": 1, "tokens": k, "acceptance_rate": a}},
    )
    records = simulate(res)
    drawn = records.fleets["llm"].speculative["w"].drawn
    n = len(drawn)
    assert n > 5000
    law = np.array(tokens_distribution(k, a))
    values = np.arange(1, k + 2)
    mean = float(values @ law)
    sd = math.sqrt(float((values - mean) ** 2 @ law))
    assert mean == pytest.approx(expected_tokens_per_step(k, a))
    # Within 4 standard errors of the closed form (fixed seed: deterministic).
    assert abs(drawn.mean() - mean) < 4 * sd / math.sqrt(n)
    shares = np.bincount(drawn, minlength=k + 2)[1:] / n
    assert shares == pytest.approx(law, abs=4 * 0.5 / math.sqrt(n))
    sp = summarize(res, records)["workloads"]["w"]["speculative"]
    assert sp["expected_tokens_per_step"] == pytest.approx(mean)
    # The cut at the output length only lowers the mean tokens a step advanced.
    assert sp["accepted_tokens_per_step"] <= drawn.mean() + 1e-12
    assert sp["draft_time_share"] + sp["verify_time_share"] == pytest.approx(1.0)
    assert 0 < sp["draft_time_share"] < 1


def test_speculative_decoding_cuts_tpot_when_acceptance_is_high() -> None:
    def tpot(extra: dict[str, object]) -> float:
        res = llm_resolved(
            rate_per_s=2,
            prompt={"kind": "fixed", "value": 200},
            output={"kind": "fixed", "value": 100},
            duration_s=20,
            warmup_s=1,
            extra=extra,
        )
        return float(summarize(res, simulate(res))["workloads"]["w"]["tpot_s"]["mean"])

    plain = tpot({})
    fast = tpot({"speculative": {"mtp_heads": 1, "tokens": 3, "acceptance_rate": 0.9}})
    slow = tpot({"speculative": {"mtp_heads": 1, "tokens": 3, "acceptance_rate": 0.0}})
    assert fast < plain < slow


def test_a_draft_model_runs_through_the_engine() -> None:
    res = llm_resolved(
        rate_per_s=5,
        prompt={"kind": "fixed", "value": 100},
        output={"kind": "fixed", "value": 50},
        duration_s=5,
        warmup_s=1,
        extra={"speculative": {"draft_model": "tiny-draft", "tokens": 2, "acceptance_rate": 0.5}},
    )
    res = dataclasses.replace(res, drafts={"w": llm(**DRAFT)})
    sp = summarize(res, simulate(res))["workloads"]["w"]["speculative"]
    assert sp["proposer"] == "draft model tiny-draft"
    assert sp["steps"] > 0


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"tokens": 2, "acceptance_rate": 0.5}, "exactly one of draft_model and mtp_heads"),
        (
            {"draft_model": "x", "mtp_heads": 1, "tokens": 2, "acceptance_rate": 0.5},
            "exactly one of draft_model and mtp_heads",
        ),
        ({"mtp_heads": 1, "tokens": 2, "acceptance_rate": 1.5}, "acceptance_rate"),
        ({"mtp_heads": 1, "tokens": 0, "acceptance_rate": 0.5}, "tokens"),
        ({"mtp_heads": 1, "tokens": 2, "acceptance_rate": 0.5, "k": 3}, "k"),
    ],
)
def test_bad_speculative_blocks_are_one_line_located_errors(
    tmp_path: Path, block: dict[str, object], message: str
) -> None:
    import yaml

    scenario = {
        "simulation": {"duration_s": 1},
        "workloads": {
            "chat": {
                "kind": "llm",
                "model": "llm-dense-8b",
                "traffic": {"kind": "poisson", "rate_per_s": 1},
                "prompt_tokens": {"kind": "fixed", "value": 10},
                "output_tokens": {"kind": "fixed", "value": 10},
                "speculative": block,
            }
        },
        "pools": {"gpu": {"chip": "gpu-like-gen2-hbm", "count": 1, "serves": ["chat"]}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    result = CliRunner().invoke(app, ["validate", "--configs", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "bad.yaml" in line]
    assert lines and "speculative" in lines[0] and message in result.output


def test_an_unknown_draft_model_is_located(tmp_path: Path) -> None:
    text = Path("workloads/scenarios/llm-speculative.yaml").read_text()
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("draft_model: llm-dense-1b", "draft_model: no-such-model"))
    result = CliRunner().invoke(app, ["validate", "--configs", str(path)])
    assert result.exit_code == 1
    assert "s.yaml:" in result.output and "speculative.draft_model" in result.output


def test_the_plain_workload_has_no_speculative_key_in_its_config() -> None:
    plain = LLMWorkload.model_validate(
        {
            "model": "m",
            "traffic": {"kind": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"kind": "fixed", "value": 1},
            "output_tokens": {"kind": "fixed", "value": 1},
        }
    )
    assert "speculative" not in plain.model_dump()


def test_explain_shows_the_speculative_step() -> None:
    args = ["explain", "--chip", "gpu-like-gen2-hbm", "--model", "llm-dense-8b", "--batch", "8"]
    spec_args = ["--speculative-tokens", "4", "--acceptance", "0.7", "--draft", "llm-dense-1b"]
    result = CliRunner().invoke(app, [*args, *spec_args, "--json", "-"])
    assert result.exit_code == 0, result.output
    sp = json.loads(result.output)["speculative"]
    assert sp["proposer"] == "draft model llm-dense-1b"
    assert sp["expected_tokens_per_step"] == pytest.approx((1 - 0.7**5) / 0.3)
    assert sp["step_s"] == pytest.approx(sp["draft_s"] + sp["verify_s"], rel=1e-9)
    assert sp["time_per_token_s"] == pytest.approx(sp["step_s"] / sp["expected_tokens_per_step"])
    assert sp["kv_capacity_tokens"] < sp["plain_kv_capacity_tokens"]
    table = CliRunner().invoke(app, [*args, *spec_args])
    assert "speculative decoding (draft model llm-dense-1b, k=4, a=0.7)" in table.output
    lone = CliRunner().invoke(app, [*args, "--speculative-tokens", "4"])
    assert lone.exit_code == 1
    assert "--speculative-tokens and --acceptance go together" in lone.output


def test_a_proposer_that_leaves_no_room_for_kv_is_a_located_problem() -> None:
    from accelsim.errors import ConfigError
    from helpers import CHIP

    # Room for the target's weights and a little KV, not for two MTP modules beside them.
    target = LLMCostModel(llm(), chip())
    dram = {**CHIP["memory"]["dram"], "capacity_bytes": target.shape.weight_bytes * 1.01 / 0.9}
    res = llm_resolved(
        rate_per_s=1,
        prompt={"kind": "fixed", "value": 10},
        output={"kind": "fixed", "value": 10},
        duration_s=1,
        the_chip=chip(memory={"dram": dram}),
        extra={"speculative": {"mtp_heads": 2, "tokens": 2, "acceptance_rate": 0.5}},
    )
    with pytest.raises(ConfigError, match=r"workloads\.w\.speculative: with 2 MTP module"):
        simulate(res)
