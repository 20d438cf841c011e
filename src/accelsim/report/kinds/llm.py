"""LLM workloads in a report: requests that prefill a prompt and then decode tokens, on
replicas of one or more tensor-parallel chips.

Their summary rows give time to first token (TTFT), time per output token (TPOT) and
end-to-end latency, per request mode; their explain document breaks one prefill and one
decode step down op by op, with the replica's weights and KV cache.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text

from accelsim.config.schema import EXPERT_IMBALANCE, Chip, ContinuousBatching, LLMModel
from accelsim.errors import AccelsimError
from accelsim.model.llm import Iteration, LLMCostModel
from accelsim.model.parallel import (
    Layout,
    ParallelCostModel,
    fit_message,
    layout_problem,
    parallel_terms,
)
from accelsim.report import breakdown, markup, terminal
from accelsim.report.kinds.base import Doc, ExplainSetting, ExplainStep, ReportKind
from accelsim.report.wording import finite, sig


def _sla_text(w: Doc) -> RenderableType:
    """A workload's (or an SLO class's) attainment, marked met or missed."""
    sla = w["sla"]
    if sla is None:
        return "-"
    mark = "[green]met[/]" if sla["met"] else "[red]missed[/]"
    return Text.from_markup(
        f"{terminal.pct(w['sla_attainment'])} {mark}" if w["sla_attainment"] is not None else mark
    )


def _parts(w: Doc) -> tuple[list[tuple[str, Doc]], int]:
    """The rows of a workload: all of it, each request mode when it has several, and each
    SLO class (``class NAME``); and the index of the first class row."""
    modes = w.get("by_mode", {})
    parts = [("all", w)] + (list(modes.items()) if len(modes) > 1 else [])
    first_class = len(parts)
    parts += [(f"class {k}", c) for k, c in w.get("by_class", {}).items()]
    return parts, first_class


def _terminal_rows(doc: Doc, name: str, w: Doc) -> list[list[RenderableType]]:
    """One row for the workload, then one per request mode when it has several, then one
    per SLO class (each with its own SLA)."""
    modes = w.get("by_mode", {})
    parts, first_class = _parts(w)
    return [
        [
            name if i == 0 else "",
            mode if len(parts) > 1 else next(iter(modes), "instant"),
            str(m["offered"]),
            str(m["completed"]),
            str(m["in_flight"]),
            f"{m['completed'] / doc['window_s']['duration']:.2f}",
            f"{w['output_tokens_per_s']:.0f}" if i == 0 else "",
            terminal.sec(m["ttft_s"]["p50"]),
            terminal.sec_ci(m["ttft_s"]),
            terminal.sec(m["tpot_s"]["p50"]),
            terminal.sec_ci(m["tpot_s"]),
            terminal.sec_ci(m["latency_s"]),
            _sla_text(m) if i == 0 or i >= first_class else "",
        ]
        for i, (mode, m) in enumerate(parts)
    ]


def _html_rows(doc: Doc, name: str, w: Doc) -> list[list[str]]:
    """One row for the workload, then one per request mode when it has several, then one
    per SLO class (as the terminal table shows them)."""
    duration = doc["window_s"]["duration"]
    modes = w.get("by_mode", {})
    parts, first_class = _parts(w)
    return [
        [
            markup.esc(name) if i == 0 else "",
            markup.esc(w["model"]) if i == 0 else "",
            markup.esc(mode if len(parts) > 1 else next(iter(modes), "instant")),
            str(m["offered"]),
            str(m["completed"]),
            str(m["in_flight"]),
            markup.num(m["completed"] / duration if duration else None, ".3g"),
            markup.rate(w["output_tokens_per_s"]) if i == 0 else "",
            markup.qty(m["ttft_s"]["p50"], "s"),
            markup.esc(terminal.sec_ci(m["ttft_s"])),
            markup.qty(m["tpot_s"]["p50"], "s"),
            markup.esc(terminal.sec_ci(m["tpot_s"])),
            markup.esc(terminal.sec_ci(m["latency_s"])),
            markup.sla_cell(m) if i == 0 or i >= first_class else "",
        ]
        for i, (mode, m) in enumerate(parts)
    ]


def _sla_targets(sla: Doc) -> dict[str, tuple[float, float]]:
    pct = float(sla.get("percentile", 99))
    return {k: (float(sla[k]), pct) for k in ("ttft_s", "tpot_s") if finite(sla.get(k))}


def explain_llm(
    model: LLMModel, chip: Chip, setting: ExplainSetting, power_cap_w: float | None = None
) -> Doc:
    """One prefill of ``prompt_tokens`` and one decode step of ``batch`` sequences holding
    ``context_tokens`` each, on a replica of ``chips_per_replica`` chips (per-chip view)."""
    batch, chips = setting.batch, setting.chips_per_replica
    context_tokens, prompt_tokens = setting.context_tokens, setting.prompt_tokens
    layout = _layout(model, setting)
    try:
        if layout is None:
            cost_model = LLMCostModel(model, chip, chips)
        else:
            cost_model = ParallelCostModel(model, chip, layout)
    except ValueError as exc:
        raise AccelsimError(str(exc)) from None
    capacity = cost_model.capacity
    if layout is not None and capacity.kv_capacity_tokens <= 0:
        raise AccelsimError(
            fit_message(model, chip, layout, ContinuousBatching().kv_memory_fraction)
        )
    if capacity.kv_capacity_tokens <= 0:
        raise AccelsimError(
            f"{model.name} ({cost_model.shape.weight_bytes / 2**30:.1f} GiB of weights) does not "
            f"fit {chips} {chip.name} chip(s); use --chips-per-replica {capacity.min_chips} or more"
        )
    prefill = cost_model.prefill(prompt_tokens)
    decode = cost_model.decode_step(batch, context_tokens)
    s = cost_model.shape
    replica_chips = capacity.chips
    doc: Doc = {
        "kind": "llm",
        "chip": chip.name,
        "model": model.name,
        "chips_per_replica": chips,
        "dtype": model.weight_dtype,
        "ridge_point_flops_per_byte": breakdown.ridges(cost_model.rates, model.weight_dtype),
        "placement": {
            "params": s.total_params,
            "active_params_per_token": s.active_params_per_token + s.lm_head_params,
            "weight_bytes": s.weight_bytes,
            "weight_bytes_per_chip": capacity.weight_bytes_per_chip,
            "weights_tier": capacity.weights_tier,
            "kv_bytes_per_token": s.kv_bytes_per_token,
            "kv_capacity_tokens": capacity.kv_capacity_tokens,
            "max_sequences_at_context": capacity.kv_capacity_tokens // max(1, context_tokens),
        },
        "prefill": {
            "prompt_tokens": prompt_tokens,
            "ops": breakdown.ops_doc(prefill),
            "totals": {
                **breakdown.totals(prefill, chip, replica_chips, power_cap_w),
                "tokens_per_s": prompt_tokens / prefill.time_s,
            },
        },
        "decode": {
            "batch_sequences": batch,
            "context_tokens": context_tokens,
            "fits_kv": batch * (context_tokens + 1) <= capacity.kv_capacity_tokens,
            "ops": breakdown.ops_doc(decode),
            "totals": {
                **breakdown.totals(decode, chip, replica_chips, power_cap_w),
                "tpot_s": decode.time_s,
                "tokens_per_s": batch / decode.time_s,
            },
        },
    }
    if isinstance(cost_model, ParallelCostModel) and layout is not None:
        pre_it = Iteration(prefill_tokens=prompt_tokens)
        dec_it = Iteration(decode_sequences=batch)
        doc["parallelism"] = {
            "tensor": layout.tensor,
            "pipeline": layout.pipeline,
            "expert": layout.expert,
            "expert_imbalance": layout.imbalance if layout.expert > 1 else None,
            "replica_chips": layout.chips,
            "prefill": parallel_terms(prefill, cost_model.micro_batches(pre_it), layout),
            "decode": parallel_terms(decode, cost_model.micro_batches(dec_it), layout),
        }
    return doc


def _layout(model: LLMModel, setting: ExplainSetting) -> Layout | None:
    """The explain setting's pipeline and expert parallelism (None without either)."""
    if setting.pipeline == 1 and setting.expert == 1:
        if setting.micro_batches is not None:
            raise AccelsimError("--micro-batches needs --pp above 1")
        return None
    if setting.micro_batches is not None and setting.pipeline == 1:
        raise AccelsimError("--micro-batches needs --pp above 1")
    layout = Layout(
        setting.chips_per_replica,
        setting.pipeline,
        setting.expert,
        setting.micro_batches or setting.pipeline,
        (setting.expert_imbalance or EXPERT_IMBALANCE) if setting.expert > 1 else 1.0,
    )
    wrong = layout_problem(model, layout)
    if wrong is not None:
        flag = {"pipeline": "--pp", "expert": "--ep"}[wrong[0]]
        raise AccelsimError(f"{flag}: {wrong[1]}")
    return layout


def _explain_steps(doc: Doc) -> list[ExplainStep]:
    """The prefill, where the rows one read of a weight serves differ by GEMM (every prompt
    token in the body, the last one in the lm_head), and the decode step, where every GEMM
    serves one token per sequence."""
    pre, dec = doc["prefill"], doc["decode"]
    prompt, sequences = int(pre["prompt_tokens"]), int(dec["batch_sequences"])
    return [
        ExplainStep(
            phase="prefill",
            ops=pre["ops"],
            totals=pre["totals"],
            batch=prompt,
            unit="tokens",
            weight_rows=None,
            took=f"{pre['prompt_tokens']} prompt tokens take",
            label=f"prefill of {pre['prompt_tokens']} tokens",
        ),
        ExplainStep(
            phase="decode",
            ops=dec["ops"],
            totals=dec["totals"],
            batch=sequences,
            unit="sequences",
            weight_rows=sequences,
            took=(
                f"one step of {dec['batch_sequences']} sequences at "
                f"{dec['context_tokens']} tokens of context takes"
            ),
            label=f"decode, {dec['batch_sequences']} sequences at {dec['context_tokens']} tokens",
        ),
    ]


def _explain_view(doc: Doc) -> list[RenderableType]:
    place = doc["placement"]
    k = doc.get("parallelism", {}).get("replica_chips", doc["chips_per_replica"])
    replica = f"{k} x {doc['chip']}" if k > 1 else doc["chip"]
    pre, dec = doc["prefill"], doc["decode"]
    qty = terminal.qty
    head = Text(
        f"{doc['model']} on {replica}: {place['params'] / 1e9:.3g}B params "
        f"({qty(place['weight_bytes'], 'bytes')}, {qty(place['weight_bytes_per_chip'], 'bytes')} "
        f"per chip in {place['weights_tier']}), KV {qty(place['kv_bytes_per_token'], 'bytes')} "
        f"per token, room for {place['kv_capacity_tokens']:,} KV tokens "
        f"({place['max_sequences_at_context']:,} sequences of {dec['context_tokens']} tokens)"
    )
    prefill = terminal.ops_table(
        f"prefill of {pre['prompt_tokens']} prompt tokens: {qty(pre['totals']['time_s'], 's')} "
        f"({pre['totals']['tokens_per_s']:.4g} tokens/s, {qty(pre['totals']['avg_power_w'], 'W')} "
        "per chip)",
        pre["ops"],
    )
    decode = terminal.ops_table(
        f"decode step of {dec['batch_sequences']} sequences at {dec['context_tokens']} tokens of "
        f"context: {qty(dec['totals']['time_s'], 's')} per token "
        f"({dec['totals']['tokens_per_s']:.4g} tokens/s, "
        f"{qty(dec['totals']['avg_power_w'], 'W')} per chip)",
        dec["ops"],
    )
    notes: list[RenderableType] = [
        head,
        prefill,
        Text("prefill: ", style="bold") + terminal.energy_line(pre["totals"]),
        Text("prefill: ", style="bold") + terminal.cap_line(pre["totals"]),
        decode,
        Text("decode: ", style="bold") + terminal.energy_line(dec["totals"]),
        Text("decode: ", style="bold") + terminal.cap_line(dec["totals"]),
        terminal.ridge_line(doc),
    ]
    notes[1:1] = _parallel_lines(doc)
    if not dec["fits_kv"]:
        notes.append(
            Text(
                f"note: {dec['batch_sequences']} sequences of {dec['context_tokens']} tokens do "
                "not fit the KV cache of this replica",
                style="yellow",
            )
        )
    return notes


def _parallel_lines(doc: Doc) -> list[RenderableType]:
    """What pipeline and expert parallelism add to each step (nothing without them)."""
    par = doc.get("parallelism")
    if par is None:
        return []
    qty = terminal.qty
    imbalance = f", expert imbalance x{par['expert_imbalance']:g}" if par["expert"] > 1 else ""
    lines: list[RenderableType] = [
        Text(
            f"replica: tensor {par['tensor']} x pipeline {par['pipeline']} x expert "
            f"{par['expert']} = {par['replica_chips']} chips{imbalance}; ops below are per "
            "chip over the iteration's micro-batches"
        )
    ]
    for phase in ("prefill", "decode"):
        p = par[phase]
        lines.append(
            Text(f"{phase}: ", style="bold")
            + Text(
                f"{p['micro_batches']} micro-batch(es) in {p['stage_slots']} stage slots, "
                f"bubble {p['bubble_share']:.1%} ({qty(p['bubble_s'], 's')}); activation "
                f"transfer {qty(p['activation_transfer_bytes'], 'bytes')} in "
                f"{qty(p['activation_transfer_s'], 's')}; expert all-to-all "
                f"{qty(p['alltoall_bytes'], 'bytes')} in {qty(p['alltoall_s'], 's')}"
            )
        )
    return lines


def _parallel_setting(parallelism: Doc | None) -> dict[str, Any]:
    """A run's pool ``parallelism`` block as :class:`ExplainSetting` fields."""
    if not parallelism:
        return {}
    return {
        "pipeline": int(parallelism.get("pipeline", 1)),
        "expert": int(parallelism.get("expert", 1)),
        "micro_batches": parallelism.get("micro_batches"),
        "expert_imbalance": parallelism.get("expert_imbalance"),
    }


def _roofline_setting(pool: Doc, pool_doc: Doc, workload_doc: Doc) -> tuple[ExplainSetting, str]:
    """Prefill of the run's mean prompt; decode at its mean batch and mean context."""
    prompt = workload_doc.get("mean_prompt_tokens")
    prompt_tokens = max(1, round(prompt)) if finite(prompt) else 1024
    mean_batch = pool_doc.get("mean_batch_sequences")
    batch = max(1, round(mean_batch)) if finite(mean_batch) else 1
    kv = (pool_doc.get("kv_utilization") or {}).get("mean")
    capacity = pool_doc.get("kv_capacity_tokens")
    if finite(kv) and finite(capacity) and finite(mean_batch) and mean_batch > 0:
        context = max(1, round(kv * capacity / mean_batch))
    else:
        context = prompt_tokens
    setting = ExplainSetting(
        batch,
        context_tokens=context,
        prompt_tokens=prompt_tokens,
        chips_per_replica=int(pool.get("chips_per_replica", 1)),
        **_parallel_setting(pool.get("parallelism")),
    )
    what = (
        f"prefill of the mean prompt ({prompt_tokens} tokens), decode at the run's mean "
        f"batch ({batch} sequences) and mean context ({context} tokens)"
    )
    return setting, what


def _lesson_closing(doc: Doc) -> list[str]:
    """The same weights at two arithmetic intensities: prefill against decode."""

    def body_ai(phase: str) -> float | None:
        for op in doc[phase]["ops"]:
            if op["name"] == "gemm.up_gate" and finite(op["arithmetic_intensity"]):
                return float(op["arithmetic_intensity"])
        return None

    pre, dec = body_ai("prefill"), body_ai("decode")
    if pre is None or dec is None:
        return []
    return [
        f"The weights are the same bytes in both phases: prefill does {sig(pre)} FLOP/B on "
        f"them because one read serves all {doc['prefill']['prompt_tokens']} prompt "
        f"tokens, decode only {sig(dec)} FLOP/B because each step reads every weight for "
        f"{doc['decode']['batch_sequences']} tokens, one per sequence."
    ]


KIND = ReportKind(
    name="llm",
    label="LLM",
    work_key="output_tokens",
    work_noun="output tokens",
    per_joule_column="tokens/J",
    per_joule_cell="tok",
    served_key="output_tokens",
    terminal_columns=(
        *("mode", "offered", "done", "in flight", "req/s", "tokens/s"),
        *("TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "latency p99", "SLA"),
    ),
    terminal_rows=_terminal_rows,
    html_columns=(
        *("model", "mode", "offered", "done", "in flight", "req/s", "tokens/s"),
        *("TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "latency p99", "SLA"),
    ),
    html_rows=_html_rows,
    pool_chips=lambda pool: (
        f"{pool['chips']} ({pool['replicas']}x"
        f"{pool.get('parallelism', {}).get('replica_chips', pool['chips_per_replica'])})"
    ),
    batch_key="mean_batch_sequences",
    batch_unit="sequences",
    batch_unit_short="seq",
    busy_is_load=False,
    batch_slots=lambda pool: int(pool["continuous_batching"]["max_batch_sequences"]),
    cdf_series=(
        ("latency_s", "end-to-end latency"),
        ("ttft_s", "time to first token"),
        ("tpot_s", "time per output token"),
    ),
    sla_targets=_sla_targets,
    study_markers=("output_tokens_per_s", "ttft_s"),
    study_columns=(("tokens/s", "output_tokens_per_s", markup.rate),),
    explain=explain_llm,
    explain_steps=_explain_steps,
    explain_view=_explain_view,
    roofline_setting=_roofline_setting,
    lesson_closing=_lesson_closing,
    gemm_bytes_are_weights=True,
    weights_fit_sram=False,
    four_bit_weights=True,
)
