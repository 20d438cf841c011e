"""The plain-language reading of `explain`: its numbers, and its claims checked against the
cost model itself."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from reportkit import assert_ok, invoke, out

from accelsim.config.loader import load_chip, load_model
from accelsim.report.explain import explain
from accelsim.report.lesson import lesson, sig

CASES = [
    ("mtia-like-gen2", "dlrm-mlp-heavy", 256, {}),
    ("mtia-like-gen2", "dlrm-dcn-large", 512, {}),
    ("gpu-like-gen1", "dlrm-embedding-heavy", 64, {}),
    ("gpu-like-gen2-hbm", "dlrm-dcn-large", 128, {}),
    ("gpu-like-gen2-hbm", "llm-dense-8b", 32, {}),
    ("mtia-like-gen2", "llm-dense-70b", 8, {"chips_per_replica": 8}),
]


def doc_of(chip: str, model: str, batch: int, **kw: Any) -> dict[str, Any]:
    return explain(load_model(model), load_chip(chip), batch, **kw)


def steps(doc: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    if doc["kind"] == "llm":
        return [("Prefill: ", doc["prefill"]["ops"]), ("Decode: ", doc["decode"]["ops"])]
    return [("", doc["ops"])]


_RANGE = re.compile(r"([\w.]+)\.(\d+)-(\d+)\b")


def named_ops(sentence: str) -> set[str]:
    """The op names a sentence of the reading begins with (``top_mlp.0-2`` is three)."""
    head = re.split(r" (?:moves?|does|do|are|is|\() ", sentence, maxsplit=1)[0]
    names = set()
    for part in re.split(r", | and ", head):
        match = _RANGE.fullmatch(part)
        if match:
            stem, lo, hi = match.group(1), int(match.group(2)), int(match.group(3))
            names |= {f"{stem}.{i}" for i in range(lo, hi + 1)}
        else:
            names.add(part)
    return names


def sentence_of(doc: dict[str, Any], prefix: str, op: str) -> str:
    """The one sentence of the reading that names ``op`` (in its step)."""
    hits = [s for s in doc["lesson"] if s.startswith(prefix) and op in named_ops(s[len(prefix) :])]
    assert len(hits) == 1, (op, hits)
    return hits[0]


def test_the_issue_example_embedding_gather_on_mtia() -> None:
    doc = doc_of("mtia-like-gen2", "dlrm-mlp-heavy", 256)
    text = sentence_of(doc, "", "embedding_bags")
    assert text.startswith(
        "embedding_bags moves 2.69 MiB at 0.44 FLOP/B, 1600x below the DRAM ridge point of 715: "
        "it is bound by DRAM bandwidth"
    ), text
    assert "caching more rows in SRAM or fewer bytes per row (int8)" in text
    assert "a bigger batch would not" in text
    assert doc["lesson"][0].startswith("On mtia-like-gen2, the bf16 ridge point is 715 FLOP/B")


@pytest.mark.parametrize(("chip", "model", "batch", "kw"), CASES)
def test_every_op_is_read_once_with_its_own_bound(
    chip: str, model: str, batch: int, kw: dict[str, Any]
) -> None:
    doc = doc_of(chip, model, batch, **kw)
    names = {"compute": "compute-bound", "sram": "SRAM", "dram": "DRAM", "host": "host-link"}
    names["link"] = "chip-to-chip link"
    for prefix, ops in steps(doc):
        for op in ops:
            if op["share"] < 0.01:
                continue
            text = sentence_of(doc, prefix, op["name"])
            if op["bound"] == "compute":
                assert "compute-bound" in text, text
            elif op["bound"] == "overhead":
                assert "fixed kernel overhead dominates" in text, text
            elif "of it fixed kernel overhead: fusing" in text:
                # Memory-bound in name only: launches take most of the group's time.
                assert op["overhead_s"] >= 0.3 * op["time_s"], text
            else:
                assert f"bound by {names[op['bound']]} bandwidth" in text, text


@pytest.mark.parametrize(("chip", "model", "batch", "kw"), CASES)
def test_ridge_ratios_and_shares_in_the_sentences_are_the_documents(
    chip: str, model: str, batch: int, kw: dict[str, Any]
) -> None:
    doc = doc_of(chip, model, batch, **kw)
    ridges = doc["ridge_point_flops_per_byte"]
    checked = 0
    for prefix, ops in steps(doc):
        for op in ops:
            if op["share"] < 0.01:
                continue
            text = sentence_of(doc, prefix, op["name"])
            match = re.search(r", ([\d.]+)x (below|above) the (\w+) ridge point of ([\d.]+)", text)
            if match is None:
                continue
            ratio, side, tier, ridge = match.groups()
            key = {"DRAM": "dram", "SRAM": "sram"}[tier]
            assert float(ridge) == pytest.approx(ridges[key], rel=5e-3)
            ai = op["arithmetic_intensity"]
            expected = ridges[key] / ai if side == "below" else ai / ridges[key]
            assert float(ratio) == pytest.approx(expected, rel=0.05)
            assert (side == "below") == (ai < ridges[key])
            checked += 1
    assert checked, doc["lesson"]


def _op_at(
    chip: str, model: str, batch: int, prefix: str, name: str, kw: dict[str, Any]
) -> dict[str, Any]:
    doc = doc_of(chip, model, batch, **kw)
    for p, ops in steps(doc):
        if p == prefix:
            return next(op for op in ops if op["name"] == name)
    raise AssertionError(name)


@pytest.mark.parametrize(("chip", "model", "batch", "kw"), CASES)
def test_what_the_reading_says_of_a_bigger_batch_is_what_the_cost_model_does(
    chip: str, model: str, batch: int, kw: dict[str, Any]
) -> None:
    """'a bigger batch would' means FLOP/B rises a lot at 4x the batch (by 1.6x or more: at
    least half the bytes are weights); 'would not' or 'would barely help' that it hardly moves;
    'a little' in between. Checked by running the cost model again."""
    doc = doc_of(chip, model, batch, **kw)
    judged = 0
    for prefix, ops in steps(doc):
        if prefix == "Prefill: ":
            continue  # the prefill batch is the prompt; the reading speaks of decode batches
        for op in ops:
            if op["share"] < 0.01 or not op["arithmetic_intensity"]:
                continue
            text = sentence_of(doc, prefix, op["name"])
            bigger = _op_at(chip, model, batch * 4, prefix, op["name"], kw)
            if "of it fixed kernel overhead: fusing" in text:
                assert "a bigger batch would amortise it" in text
                assert bigger["time_s"] / op["time_s"] < 3.2, text
                judged += 1
                continue
            if op["bound"] == "compute":
                slower = bigger["time_s"] / op["time_s"]
                if "a bigger batch only adds time in proportion" in text:
                    assert slower > 3.0, (text, slower)
                else:
                    assert "fixed kernel overhead, which a bigger batch would amortise" in text
                    assert slower < 3.2, (text, slower)
                continue
            gain = bigger["arithmetic_intensity"] / op["arithmetic_intensity"]
            if "a bigger batch would:" in text:
                assert gain >= 1.59, (text, gain)
            elif "a bigger batch would help a little" in text:
                assert 1.2 <= gain <= 1.61, (text, gain)
            else:
                assert "a bigger batch would not" in text or "would barely help" in text, text
                assert gain < 1.25, (text, gain)
            judged += 1
    assert judged, doc["lesson"]


def test_the_batch_an_llm_decode_needs_to_reach_the_ridge() -> None:
    doc = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 32)
    text = sentence_of(doc, "Decode: ", "gemm.up_gate")
    needed = float(re.search(r"reaches the ridge at about (\d+) sequences", text).group(1))
    # The cost model at that batch puts the body's GEMMs right at the DRAM ridge point.
    at = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", round(needed))
    body = next(op for op in at["decode"]["ops"] if op["name"] == "gemm.up_gate")
    assert body["arithmetic_intensity"] == pytest.approx(
        at["ridge_point_flops_per_byte"]["dram"], rel=0.1
    )


@pytest.mark.parametrize(
    ("model", "advice"),
    [
        ("llm-dense-8b", "int8 or fp8 weights or more DRAM bandwidth would too"),
        ("llm-dense-8b-int4", "sequences; more DRAM bandwidth would too"),
    ],
)
def test_narrower_weights_are_advised_only_where_there_are_any(model: str, advice: str) -> None:
    # A bf16 decode could read 8-bit weights; an int4 one has nothing narrower to read.
    text = sentence_of(doc_of("gpu-like-gen2-hbm", model, 1), "Decode: ", "gemm.up_gate")
    assert advice in text, text
    if model.endswith("int4"):
        assert "int8" not in text and "4-bit weights" not in text


def test_a_power_cap_bites_prefill_not_decode() -> None:
    doc = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 32, power_cap_w=400.0)
    pre = [s for s in doc["lesson"] if s.startswith("Prefill: it would draw")]
    dec = [s for s in doc["lesson"] if s.startswith("Decode: it draws")]
    assert len(pre) == 1 and len(dec) == 1, doc["lesson"]
    capped = doc["prefill"]["totals"]["capped"]
    assert f"the clock drops to {100 * capped['clock_ratio']:.0f}% of nominal" in pre[0]
    assert f"takes {sig(capped['slowdown'], 3)}x as long" in pre[0]
    assert "over the cap of 400 W" in pre[0]
    assert "runs at the nominal clock" in dec[0] and "within the cap of 400 W" in dec[0]
    uncapped = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 32)
    assert any("within its TDP of 660 W" in s for s in uncapped["lesson"])


def test_sig_never_writes_an_exponent() -> None:
    for exponent in range(-6, 10):
        for mantissa in (1.0, 1.234, 4.449, 9.96):
            text = sig(mantissa * 10.0**exponent, 3)
            assert "e" not in text and float(text) == pytest.approx(
                mantissa * 10.0**exponent, rel=6e-3
            )
    assert sig(1618.4) == "1600" and sig(0.4419) == "0.44" and sig(715.17, 3) == "715"
    assert sig(float("nan")) == "-" and sig(0.0) == "0"


def test_a_document_with_missing_or_odd_numbers_still_reads() -> None:
    doc = doc_of("mtia-like-gen2", "dlrm-mlp-heavy", 256)
    doc["ridge_point_flops_per_byte"] = {"dram": float("nan")}
    for op in doc["ops"]:
        op["arithmetic_intensity"] = None
    doc["totals"]["avg_power_w"] = float("inf")
    text = lesson(doc)
    assert text and all(isinstance(s, str) and s for s in text)
    assert not any("nan" in s.lower() or "inf " in s.lower() for s in text), text


# ------------------------------------------------------------------ through the CLI


def test_explain_prints_the_reading_under_the_table_and_json_keeps_its_keys() -> None:
    args = ("explain", "--chip", "mtia-like-gen2", "--model", "dlrm-mlp-heavy", "--batch", 256)
    shown = invoke(*args)
    assert_ok(shown)
    text = out(shown)
    table_end = text.index("ridge points (bf16 FLOP per byte streamed)")
    reading = text.index("reading:")
    assert reading > table_end
    assert "1600x below the DRAM ridge point of 715" in " ".join(text[reading:].split())

    as_json = invoke(*args, "--json", "-")
    assert_ok(as_json)
    doc = json.loads(as_json.stdout)
    assert set(doc) == {
        *("kind", "chip", "model", "batch_items", "dtype", "ridge_point_flops_per_byte"),
        *("placement", "ops", "totals", "lesson"),
    }
    assert doc["lesson"] == lesson({k: v for k, v in doc.items() if k != "lesson"})
    assert all(isinstance(s, str) for s in doc["lesson"])


def test_explain_llm_json_has_a_lesson_for_both_phases() -> None:
    result = invoke(
        "explain", "--chip", "gpu-like-gen2-hbm", "--model", "llm-dense-8b", "--json", "-"
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    assert set(doc) == {
        *("kind", "chip", "model", "chips_per_replica", "dtype"),
        *("ridge_point_flops_per_byte", "placement", "prefill", "decode", "lesson"),
    }
    assert any(s.startswith("Prefill: ") for s in doc["lesson"])
    assert any(s.startswith("Decode: ") for s in doc["lesson"])
    assert all(math.isfinite(len(s)) for s in doc["lesson"])


def test_the_power_a_memory_bound_decode_cannot_go_below() -> None:
    """'barely slow it until the cap nears X W': checked against the DVFS model itself."""
    doc = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 32)
    (text,) = [s for s in doc["lesson"] if s.startswith("Decode: it draws")]
    floor = float(re.search(r"until the cap nears ([\d.]+) W", text).group(1))

    def slowdown(cap: float) -> float:
        capped = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 32, power_cap_w=cap)
        return float(capped["decode"]["totals"]["capped"]["slowdown"])

    # Barely: half of the compute time stays exposed beside memory (overlap 0.5), so a
    # lower clock stretches a memory-bound step a little at any cap.
    assert slowdown(1.15 * floor) < 1.05
    assert slowdown(0.95 * floor) > 1.1


def test_an_llm_prefill_lm_head_is_read_as_weights_not_activations() -> None:
    """In prefill, lm_head computes the logits of the last prompt token only: its bytes are
    weights, and more prompts per step (not a longer one) would share them."""
    # A prompt short enough that lm_head takes over 1% of the prefill (the lesson's cut).
    doc = doc_of("gpu-like-gen2-hbm", "llm-dense-8b", 3, prompt_tokens=500)
    text = sentence_of(doc, "Prefill: ", "lm_head")
    assert "bound by DRAM bandwidth" in text
    assert "a bigger batch would: the bytes are weights" in text
    assert "reaches the ridge at about 170 tokens" in text
    assert not any("activations" in s for s in doc["lesson"])
