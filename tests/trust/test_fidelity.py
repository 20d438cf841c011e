"""The fidelity table: accelsim against public measurements on real chips.

The shipped measurements load and cover what they claim; accelsim's figure for a
row is the cost model's, recomputed here by hand; a bad row is a file:line error;
the stated error bounds hold today, and a chip that is wrong by a plausible factor
breaks them; the table in docs/fidelity.md is the one the code prints.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from trustkit import assert_ok, err, error_lines, invoke, out

from accelsim.config.loader import load_chip
from accelsim.config.schema import Chip, LLMModel, RankingModel
from accelsim.errors import ConfigError
from accelsim.validation import fidelity
from accelsim.validation.calibrate import calibrated_errors
from accelsim.validation.fidelity import (
    MAX_MEDIAN_ABS_ERROR,
    MAX_WORST_ABS_ERROR,
    Measurement,
    compare,
    fidelity_table,
    load_measurements,
    markdown,
    measurements_path,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "validation" / "reference"


@pytest.fixture(scope="module")
def shipped() -> tuple[Measurement, ...]:
    return load_measurements(measurements_path())


def by_id(measurements: tuple[Measurement, ...], ident: str) -> Measurement:
    return next(m for m in measurements if m.id == ident)


# ---------------------------------------------------------------------- the data


def test_shipped_measurements_load_and_cover_what_the_table_claims(
    shipped: tuple[Measurement, ...],
) -> None:
    assert measurements_path() == REFERENCE / "measurements.csv"
    assert len(shipped) >= 15
    assert len({m.source for m in shipped}) >= 3
    fit = [m for m in shipped if m.split == "fit"]
    assert 0.4 <= len(fit) / len(shipped) <= 0.6
    ttft = [m for m in shipped if m.metric == "ttft_s"]
    decode = [m for m in shipped if m.metric == "decode_step_s"]
    assert {m.prompt_tokens for m in ttft} >= {128, 2048}  # short and long prompts
    assert min(m.batch for m in decode) == 1 and max(m.batch for m in decode) >= 64
    llm_dtypes = {m.model.weight_dtype for m in shipped if isinstance(m.model, LLMModel)}
    assert {"fp16", "fp8"} <= llm_dtypes
    assert 1 in {m.tp for m in shipped} and max(m.tp for m in shipped) >= 4
    assert any(isinstance(m.model, LLMModel) and m.model.moe for m in shipped)
    assert any(isinstance(m.model, RankingModel) for m in shipped)
    for m in shipped:
        assert m.kind in ("M", "D") and m.reference and m.notes
        if m.kind == "D":  # a derived figure states its derivation
            assert any(word in m.notes for word in ("=", "/")), m.id
    # The reference chips are datasheet profiles, kept apart from the shipped ones.
    assert {m.chip.name for m in shipped} == {"a100-sxm", "h100-sxm"}


def test_reference_chips_load_with_the_chip_loader() -> None:
    result = invoke("hardware", "show", REFERENCE / "h100-sxm.yaml")
    assert_ok(result)
    assert "989 TFLOP/s" in out(result)


# ------------------------------------------------------------- figures by hand


# The reference A100 by hand: 312 TFLOP/s x 0.75 for large GEMMs, x 0.55 for fused
# prefill attention; FP32 vector 19.5 TFLOP/s x 0.7; 2,039 GB/s x 0.8; NVLink 300 GB/s x
# 0.8 one way, 1 us per ring step; 5 us per launch; 108 SMs; compute and memory overlap 0.5.
GEMM, FLASH, VECTOR, BW, LINK = 312e12 * 0.75, 312e12 * 0.55, 19.5e12 * 0.7, 2039e9 * 0.8, 240e9
LAUNCH, SMS = 5e-6, 108


def busy(compute: float, memory: float) -> float:
    """The longer of the two, plus the half of the shorter that is not hidden."""
    return max(compute, memory) + 0.5 * min(compute, memory)


def tiles(m: float, n: float, k: float) -> float:
    """Share of the large-GEMM rate: a tile of 128 columns and of the next power of two
    rows (16 to 128); tiles in waves over 108 SMs, K split to fill a single partial one."""
    rows = min(128, max(16, 2 ** math.ceil(math.log2(m))))
    tm, tn = math.ceil(m / rows), math.ceil(n / 128)
    count = tm * tn
    if count < SMS:
        count *= max(1, min(SMS // count, int(k // 256)))
    return m * n / (tm * rows * tn * 128) * count / (math.ceil(count / SMS) * SMS)


def gemm(m: float, n: float, k: float, flops: float, weight_bytes: float) -> float:
    return busy(flops / (GEMM * tiles(m, n, k)), weight_bytes / BW)


def elementwise(elements: float, flops: float, bytes_: float) -> float:
    return busy(elements * flops / VECTOR, elements * bytes_ / BW)


def test_a_decode_row_is_the_roofline_by_hand(shipped: tuple[Measurement, ...]) -> None:
    """lmd05: Llama-2-7B fp16 on one A100, one sequence at 192 tokens of context."""
    m = by_id(shipped, "lmd05")
    assert (m.batch, m.context_tokens, m.tp) == (1, 192, 1)
    d, ffn, layers, vocab, context = 4096, 11008, 32, 32000, 192
    assert tiles(1, 3 * d, d) == pytest.approx(1 / 16 * 96 / 108)  # 16 rows; 96 tiles
    assert tiles(1, d, d) == pytest.approx(1 / 16 * 96 / 108)  # 32 tiles, K split in 3
    assert tiles(1, 2 * ffn, d) == pytest.approx(1 / 16 * 172 / 216)  # 172 tiles: 2 waves
    assert tiles(1, vocab, d) == pytest.approx(1 / 16 * 250 / 324)  # 250 tiles: 3 waves
    kv_per_token = 2 * layers * d * 2  # K and V, fp16

    def body(n: float, k: float) -> float:  # a GEMM per layer, one token
        return layers * gemm(1, n, k, 2 * n * k, 2 * n * k)

    kernels = [
        layers * 2 * elementwise(d, 4, 4),  # RMSNorm x 2: read and write fp16, 4 FLOPs
        body(3 * d, d),  # q, k, v projections (MHA)
        layers * elementwise(2 * d, 3, 4),  # rotary on q and k
        busy(layers * 2 * d / VECTOR, 2 * kv_per_token / BW),  # K, V read and cached
        busy(4 * layers * d * context / VECTOR, context * kv_per_token / BW),  # attention
        body(d, d),  # output projection
        layers * 2 * elementwise(d, 1, 6),  # residual adds: two reads, one write
        body(2 * ffn, d),  # up and gate
        layers * elementwise(ffn, 5, 6),  # SiLU(gate) x up
        body(d, ffn),  # down
        elementwise(d, 4, 4),  # final norm
        gemm(1, vocab, d, 2 * d * vocab, 2 * d * vocab),  # LM head
        elementwise(vocab, 5, 4),  # sampling over fp32 logits
    ]
    launches = 12 * layers + 3
    expected = sum(kernels) + launches * LAUNCH
    assert fidelity.accelsim_s(m) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(10.64e-3, rel=1e-3)


def test_a_tensor_parallel_prefill_row_is_the_roofline_by_hand(
    shipped: tuple[Measurement, ...],
) -> None:
    """trt08: Llama-2-70B fp16 on 4 A100s, a 2048-token prompt alone (TTFT)."""
    m = by_id(shipped, "trt08")
    assert (m.tp, m.prompt_tokens) == (4, 2048)
    d, ffn, layers, vocab, kv_dim, t, k = 8192, 28672, 80, 32000, 1024, 2048, 4
    kv_per_token = 2 * layers * kv_dim * 2

    def body(n: float, depth: float) -> float:  # n and depth on one chip
        return layers * gemm(t, n, depth, 2 * t * n * depth, 2 * n * depth)

    pairs = t * (t + 1) / 2  # causal
    reduces, steps = 2 * layers, 2 * (k - 1)  # two ring all-reduces per layer
    kernels = [
        layers * 2 * elementwise(t * d, 4, 4),  # norms on the whole hidden state
        body((d + 2 * kv_dim) / k, d),
        layers * elementwise(t * (d + kv_dim) / k, 3, 4),  # rotary
        busy(layers * 2 * kv_dim * t / k / VECTOR, 2 * t * kv_per_token / k / BW),  # KV cached
        busy(4 * layers * d * pairs / k / FLASH, t * kv_per_token / k / BW),  # flash attention
        body(d, d / k),
        layers * 2 * elementwise(t * d, 1, 6),
        body(2 * ffn / k, d),
        layers * elementwise(t * ffn / k, 5, 6),
        body(d, ffn / k),
        busy(
            reduces * t * d * (k - 1) / k / VECTOR,  # adding the other chips' shares
            reduces * steps / k * t * d * 2 / LINK,  # fp16 over the ring
        )
        + reduces * steps * 1e-6,
        elementwise(d, 4, 4),
        gemm(1, vocab / k, d, 2 * d * vocab / k, 2 * d * vocab / k),
        elementwise(vocab, 5, 4),
    ]
    launches = 12 * layers + reduces + 3
    expected = sum(kernels) + launches * LAUNCH
    assert fidelity.accelsim_s(m) == pytest.approx(expected, rel=1e-9)


def test_a_mixture_of_experts_row_reads_only_the_experts_it_touches(
    shipped: tuple[Measurement, ...],
) -> None:
    """gpf03: Mixtral-8x7B bf16 on 2 A100s, batch 1: one token reads 2 of 8 experts;
    gpt-fast replays the decode step from a CUDA graph."""
    m = by_id(shipped, "gpf03")
    assert (m.batch, m.tp, m.context_tokens) == (1, 2, 105)
    assert m.serving.graph_decode
    d, ffn, layers, vocab, kv_dim, k, context = 4096, 14336, 32, 32000, 1024, 2, 105
    kv_per_token = 2 * layers * kv_dim * 2

    def body(n: float, depth: float, matrices: float = 1) -> float:
        flops = 2 * n * depth * matrices  # one token through `matrices` such matrices
        return layers * gemm(1, n, depth, flops, flops)

    reduces, steps = 2 * layers, 2 * (k - 1)
    kernels = [
        layers * 2 * elementwise(d, 4, 4),
        body((d + 2 * kv_dim) / k, d),
        layers * elementwise((d + kv_dim) / k, 3, 4),
        busy(layers * 2 * kv_dim / k / VECTOR, 2 * kv_per_token / k / BW),
        busy(4 * layers * d * context / k / VECTOR, context * kv_per_token / k / BW),
        body(d, d / k),
        layers * 2 * elementwise(d, 1, 6),
        # The router (d x 8 per layer, split like the rest), then the 2 experts the token
        # touches: 1 token each.
        layers * gemm(1, 8, d, 2 * d * 8 / k, 2 * d * 8 / k),
        body(2 * ffn / k, d, matrices=2),
        layers * elementwise(2 * ffn / k, 5, 6),
        body(d, ffn / k, matrices=2),
        busy(reduces * d * (k - 1) / k / VECTOR, reduces * steps / k * d * 2 / LINK)
        + reduces * steps * 1e-6,
        elementwise(d, 4, 4),
        gemm(1, vocab / k, d, 2 * d * vocab / k, 2 * d * vocab / k),
        elementwise(vocab, 5, 4),
    ]
    launches = 13 * layers + reduces + 3  # the router is one more kernel per layer
    # One launch of the graph, then 0.9 µs to dispatch each kernel it replays.
    expected = sum(kernels) + LAUNCH + launches * 0.9e-6
    assert fidelity.accelsim_s(m) == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------- bad rows

HEADER = ",".join(fidelity.COLUMNS)
GOOD = (
    "x1,fit,decode_step_s,{ref}/llama-2-7b.yaml,{ref}/a100-sxm.yaml,1,fp16,1,128,192,0.010,M,"
    "src,ref,notes"
)


def csv_file(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "measurements.csv"
    lines = ["# a comment line", header, *(r.format(ref=REFERENCE) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_good_file_of_one_row_loads(tmp_path: Path) -> None:
    (m,) = load_measurements(csv_file(tmp_path, GOOD))
    assert (m.id, m.line, m.context_tokens) == ("x1", 3, 192)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("decode_step_s", "ttft_ms"), "metric", "is not one of"),
        (("0.010", "ten ms"), "measured_s", "is not a number"),
        (("0.010", "-1"), "measured_s", "positive"),
        (("llama-2-7b.yaml", "llama-2-8b.yaml"), "model", "not found"),
        (("llama-2-7b.yaml", "dlrm-v2-int8.yaml"), "model", "needs an LLM model"),
        ((",fp16,", ",fp8,"), "dtype", "differs from the model file's 'fp16'"),
        ((",192,", ",,"), "context_tokens", "must be given"),
        ((",1,128,192,", ",1,128,1.5,"), "context_tokens", "not a whole number"),
        ((",1,fp16,1,", ",0,fp16,1,"), "tp", "from 1"),
        ((",fit,", ",train,"), "split", "is not one of fit, holdout"),
        ((",1,128,192,", ",5000,128,100000,"), "batch", "do not fit"),
        ((",M,", ",maybe,"), "kind", "is not one of M, D"),
        (("llama-2-7b.yaml", "llama-2-70b.yaml"), "tp", "needs at least 2 chips"),
        (("a100-sxm.yaml", "a100.yaml"), "chip", "not found"),
    ],
)
def test_a_bad_row_is_an_error_naming_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, message: str
) -> None:
    path = csv_file(tmp_path, GOOD.replace("x1", "x0"), GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_measurements(path)
    assert [str(p) for p in caught.value.problems if p.line == 4], caught.value
    problem = next(p for p in caught.value.problems if p.field == field)
    assert (problem.source, problem.line) == (str(path), 4)
    assert message in problem.message


def test_a_row_may_name_its_serving_settings(tmp_path: Path) -> None:
    header = HEADER + ",serving"
    plain, graph, host = load_measurements(
        csv_file(
            tmp_path,
            GOOD + ",",
            GOOD.replace("x1", "x2") + ",graph_decode=true",
            GOOD.replace("x1", "x3") + ", iteration_overhead_s = 0.002 ; graph_decode=false",
            header=header,
        )
    )
    assert not plain.serving.graph_decode and graph.serving.graph_decode
    assert host.serving.iteration_overhead_s == 0.002
    # A replayed decode step is faster; host time adds to the step.
    assert fidelity.accelsim_s(graph) < fidelity.accelsim_s(plain)
    assert fidelity.accelsim_s(host) == pytest.approx(fidelity.accelsim_s(plain) + 0.002)
    assert compare((graph,)).to_json()["rows"][0]["serving"] == {"graph_decode": True}


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ("graph_decode", "'graph_decode' is not key=value"),
        ("graph_decod=true", "graph_decod: Extra inputs are not permitted"),
        ("graph_decode=maybe", "graph_decode: Input should be a valid boolean"),
        ("iteration_overhead_s=-1", "iteration_overhead_s: Input should be greater than"),
    ],
)
def test_a_bad_serving_setting_is_an_error_on_its_line(
    tmp_path: Path, serving: str, message: str
) -> None:
    path = csv_file(tmp_path, GOOD + "," + serving, header=HEADER + ",serving")
    with pytest.raises(ConfigError) as caught:
        load_measurements(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (3, "serving")
    assert message in problem.message, problem.message


def test_a_ttft_row_is_one_request_and_ids_are_unique(tmp_path: Path) -> None:
    ttft = GOOD.replace("decode_step_s", "ttft_s").replace(",1,128,192,", ",8,128,,")
    path = csv_file(tmp_path, GOOD, GOOD, ttft.replace("x1", "x2"))
    with pytest.raises(ConfigError) as caught:
        load_measurements(path)
    lines = [str(p) for p in caught.value.problems]
    assert f"{path}:4: id: 'x1' is also on line 3" in lines
    assert any(line.startswith(f"{path}:5: batch: a ttft_s row is one request") for line in lines)


def test_a_bad_header_or_field_count_is_an_error_on_its_line(tmp_path: Path) -> None:
    path = csv_file(tmp_path, GOOD, header=HEADER.replace("measured_s", "measured_ms"))
    with pytest.raises(ConfigError, match=r"measurements.csv:2: missing column\(s\) measured_s"):
        load_measurements(path)
    path = csv_file(tmp_path, GOOD + ",extra")
    with pytest.raises(ConfigError, match=r"measurements.csv:3: 16 fields, expected 15"):
        load_measurements(path)


def test_a_bad_model_file_is_reported_at_its_own_line_once(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("kind: llm\nlayers: many\n", encoding="utf-8")
    row = GOOD.replace("{ref}/llama-2-7b.yaml", "model.yaml")
    path = csv_file(tmp_path, row, row.replace("x1", "x2"))
    with pytest.raises(ConfigError) as caught:
        load_measurements(path)
    lines = [str(p) for p in caught.value.problems]
    assert f"{tmp_path / 'model.yaml'}:2: layers: Input should be a valid integer" in " ".join(
        lines
    )
    assert len(lines) == len(set(lines))


# --------------------------------------------------------------------- bounds


def test_todays_errors_hold_the_stated_bounds() -> None:
    table = fidelity_table()
    assert table.bound_violations() == []
    for summary in (table.overall, table.holdout):
        assert summary.median_abs_error <= MAX_MEDIAN_ABS_ERROR
        assert summary.worst_abs_error <= MAX_WORST_ABS_ERROR
    # The bounds are today's figures rounded up a little, not a blank cheque.
    assert MAX_MEDIAN_ABS_ERROR - table.holdout.median_abs_error < 0.05
    assert MAX_WORST_ABS_ERROR - table.overall.worst_abs_error < 0.05
    # Still a little optimistic: most rows are faster than measured.
    assert table.overall.median_error < 0


def scaled(chip: Chip, factor: float) -> Chip:
    """The chip with every rate multiplied by ``factor``."""
    data = chip.model_dump()
    compute = data["compute"]
    compute["matrix_flops_per_s"] = {
        k: v * factor for k, v in compute["matrix_flops_per_s"].items()
    }
    compute["vector_flops_per_s"] *= factor
    compute["kernel_overhead_s"] /= factor
    data["memory"]["dram"]["bandwidth_bytes_per_s"] *= factor
    for link in (data["host_link"], data["chip_to_chip"]):
        link["bandwidth_bytes_per_s"] *= factor
        link["latency_s"] /= factor
    return Chip.model_validate(data)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_a_chip_wrong_by_a_factor_of_two_breaks_the_bounds(
    shipped: tuple[Measurement, ...], factor: float
) -> None:
    chips = {
        name: scaled(load_chip(str(REFERENCE / name)), factor)
        for name in ("a100-sxm.yaml", "h100-sxm.yaml")
    }
    wrong = tuple(dataclasses.replace(m, chip=chips[m.chip_file]) for m in shipped)
    table = compare(wrong)
    assert table.bound_violations(), table.overall
    # Every time scales with the chip, but for a graph's per-kernel dispatch (a constant).
    assert all(
        c.accelsim_s == pytest.approx(fidelity.accelsim_s(m) / factor, rel=1e-6)
        for c, m in zip(table.comparisons, shipped, strict=True)
        if not m.serving.graph_decode
    )


# ------------------------------------------------------------- docs and CLI


def test_the_table_in_the_docs_is_the_current_one() -> None:
    docs = (ROOT / "docs" / "fidelity.md").read_text(encoding="utf-8")
    table = fidelity_table()
    assert markdown(table, calibrated_errors(table)) in docs, (
        "docs/fidelity.md is out of date: paste the output of "
        "`accelsim validate --fidelity --markdown` into it"
    )


def test_cli_prints_the_table_within_80_columns_and_the_json_and_markdown() -> None:
    result = invoke("validate", "--fidelity")
    assert_ok(result)
    text = out(result)
    table = text.split("\n\n")[0]
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    assert "trt08" in text and "holdout" in text
    doc = json.loads(out(invoke("validate", "--fidelity", "--json")))
    assert doc["kind"] == "fidelity" and doc["passed"] is True
    assert len(doc["rows"]) == len(load_measurements(measurements_path()))
    assert doc["summary"]["holdout"]["rows"] + doc["summary"]["fit"]["rows"] == len(doc["rows"])
    table = fidelity_table()
    markdown_out = out(invoke("validate", "--fidelity", "--markdown"))
    assert markdown_out == markdown(table, calibrated_errors(table))
    assert "| calibrated |" in markdown_out.splitlines()[0]


def test_cli_reports_a_bad_measurements_file_and_bad_flags(tmp_path: Path) -> None:
    path = csv_file(tmp_path, GOOD.replace("0.010", "soon"))
    lines = error_lines(invoke("validate", "--fidelity", path), path)
    assert lines == [f"error: {path}:3: measured_s: 'soon' is not a number"]
    for flags in (["--fidelity", "--configs"], ["--markdown"], ["--fidelity", "--quick"]):
        assert error_lines(invoke("validate", *flags))
    assert "Traceback" not in err(invoke("validate", "--fidelity", tmp_path / "missing.csv"))
