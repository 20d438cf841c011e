"""Rich tables for the terminal: run summaries, roofline breakdowns, chip profiles."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from accelsim.config.schema import Chip
from accelsim.units import format_quantity


def _q(value: float | None, dimension: str, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format_quantity(value, dimension, digits)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3g}"


def _table(title: str | None, columns: list[str], left: int = 2) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < left else "right")
    return table


def _ranking_rows(doc: dict[str, Any], title: str | None) -> Table | None:
    rows = {n: w for n, w in doc["workloads"].items() if w["kind"] == "ranking"}
    if not rows:
        return None
    table = _table(
        title,
        [
            *("ranking", "model", "offered", "done", "in flight", "QPS"),
            *("p50 ms", "p99 ms", "max ms", "SLA", "attained"),
        ],
    )
    for name, w in rows.items():
        lat = w["latency_s"]
        sla = w["sla"]
        sla_text: RenderableType = "-"
        if sla is not None:
            mark = "[green]met[/]" if sla["met"] else "[red]missed[/]"
            sla_text = Text.from_markup(f"p{sla['percentile']:g}≤{_ms(sla['latency_s'])} {mark}")
        table.add_row(
            name,
            w["model"],
            str(w["offered"]),
            str(w["completed"]),
            str(w["in_flight"]),
            f"{w['throughput_per_s']:.1f}",
            _ms(lat["p50"]),
            _ms(lat["p99"]),
            _ms(lat["max"]),
            sla_text,
            _pct(w["sla_attainment"]),
        )
    return table


def _llm_rows(doc: dict[str, Any], title: str | None) -> Table | None:
    rows = {n: w for n, w in doc["workloads"].items() if w["kind"] == "llm"}
    if not rows:
        return None
    table = _table(
        title,
        [
            *("LLM", "mode", "offered", "done", "in flight", "req/s", "tokens/s"),
            *("TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "latency p99", "SLA"),
        ],
    )
    for name, w in rows.items():
        sla = w["sla"]
        sla_text: RenderableType = "-"
        if sla is not None:
            mark = "[green]met[/]" if sla["met"] else "[red]missed[/]"
            sla_text = Text.from_markup(
                f"{_pct(w['sla_attainment'])} {mark}" if w["sla_attainment"] is not None else mark
            )
        modes = w.get("by_mode", {})
        parts = [("all", w)] + (list(modes.items()) if len(modes) > 1 else [])
        for i, (mode, m) in enumerate(parts):
            table.add_row(
                name if i == 0 else "",
                mode if len(parts) > 1 else next(iter(modes), "instant"),
                str(m["offered"]),
                str(m["completed"]),
                str(m["in_flight"]),
                f"{m['completed'] / doc['window_s']['duration']:.2f}",
                f"{w['output_tokens_per_s']:.0f}" if i == 0 else "",
                _sec(m["ttft_s"]["p50"]),
                _sec(m["ttft_s"]["p99"]),
                _sec(m["tpot_s"]["p50"]),
                _sec(m["tpot_s"]["p99"]),
                _sec(m["latency_s"]["p99"]),
                sla_text if i == 0 else "",
            )
    return table


def _sec(value: float | None) -> str:
    return _q(value, "s")


def result_view(doc: dict[str, Any]) -> RenderableType:
    """The summary of one run's result document."""
    window = doc["window_s"]
    title = (
        f"{doc['scenario']}  (seed {doc['seed']}, {window['duration']:g} s measured "
        f"after {window['start']:g} s warm-up)"
    )
    lines: list[RenderableType] = []
    ranking = _ranking_rows(doc, title)
    if ranking is not None:
        lines.append(ranking)
    llm = _llm_rows(doc, None if ranking is not None else title)
    if llm is not None:
        lines.append(llm)

    pools = _table(
        None,
        [
            *("pool", "chip", "chips", "util", "batch", "clock", "avg power", "peak"),
            *("energy", "per joule", "$/hour"),
        ],
    )
    for name, p in doc["pools"].items():
        served = [doc["workloads"][w] for w in p["serves"]]
        shared = any(
            len([q for q in doc["pools"].values() if w in q["serves"]]) > 1 for w in p["serves"]
        )
        if "replicas" in p:
            chips = f"{p['chips']} ({p['replicas']}x{p['chips_per_replica']})"
            batch = (
                "-" if p["mean_batch_sequences"] is None else f"{p['mean_batch_sequences']:.1f} seq"
            )
            tokens = sum(w["output_tokens"] for w in served)
            per_j = "-" if shared or p["energy_j"] <= 0 else f"{tokens / p['energy_j']:.3g} tok"
        else:
            chips = str(p["chips"])
            batch = "-" if p["mean_batch_items"] is None else f"{p['mean_batch_items']:.1f} items"
            queries = sum(w["completed"] for w in served)
            per_j = "-" if shared or p["energy_j"] <= 0 else f"{queries / p['energy_j']:.3g} q"
        clock = "-" if p["mean_clock_ratio"] is None else f"{100 * p['mean_clock_ratio']:.0f}%"
        cost = "-" if p["cost_per_hour_usd"] is None else f"{p['cost_per_hour_usd']:.3g}"
        pools.add_row(
            name,
            p["chip"],
            chips,
            _pct(p["utilization"]),
            batch,
            clock,
            _q(p["avg_power_w"], "W"),
            _q(p["peak_power_w"], "W"),
            _q(p["energy_j"], "J"),
            per_j,
            cost,
        )
    lines.append(pools)
    totals = doc["totals"]
    per_joule = []
    if totals["queries_per_j"]:
        per_joule.append(f"{totals['queries_per_j']:.3g} queries/J")
    if totals["output_tokens_per_j"]:
        per_joule.append(f"{totals['output_tokens_per_j']:.3g} output tokens/J")
    lines.append(
        Text(
            f"total: {_q(totals['avg_power_w'], 'W')} average, {_q(totals['peak_power_w'], 'W')} "
            f"peak, {_q(totals['energy_j'], 'J')}"
            + (", " + ", ".join(per_joule) if per_joule else "")
        )
    )
    costs = []
    if totals["cost_per_million_queries_usd"] is not None:
        costs.append(f"${totals['cost_per_million_queries_usd']:.3g} per million queries")
    if totals["cost_per_million_output_tokens_usd"] is not None:
        costs.append(
            f"${totals['cost_per_million_output_tokens_usd']:.3g} per million output tokens"
        )
    facility = (
        f"facility (PUE {totals['pue']:g}): {_q(totals['facility_avg_power_w'], 'W')} average"
    )
    if totals["power_budget_w"] is not None:
        verdict = "within" if totals["within_budget"] else "OVER"
        facility += f", peak {_q(totals['facility_peak_power_w'], 'W')} {verdict} the "
        facility += f"{_q(totals['power_budget_w'], 'W')} budget"
    lines.append(Text(facility + ("; " + ", ".join(costs) if costs else "")))
    for warning in doc["warnings"]:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*lines)


def _ops_table(title: str, ops: list[dict[str, Any]]) -> Table:
    table = _table(
        title,
        ["op", "bound", "time", "share", "FLOPs", "bytes", "FLOP/B", "compute", "memory"],
    )
    for op in ops:
        ai = op["arithmetic_intensity"]
        style = {"compute": "cyan", "overhead": "magenta"}.get(op["bound"], "")
        table.add_row(
            op["name"],
            Text(op["bound"], style=style),
            _q(op["time_s"], "s"),
            _pct(op["share"]),
            f"{op['flops']:.3g}",
            _q(op["bytes"], "bytes"),
            "-" if ai is None else f"{ai:.3g}",
            _q(op["compute_time_s"], "s"),
            _q(sum(op["memory_time_s"].values()), "s"),
        )
    return table


def _ridge_line(doc: dict[str, Any]) -> Text:
    ridges = ", ".join(
        f"{tier} {value:.3g}" for tier, value in doc["ridge_point_flops_per_byte"].items()
    )
    return Text(f"ridge points ({doc['dtype']} FLOP per byte streamed): {ridges}")


def explain_view(doc: dict[str, Any]) -> RenderableType:
    """The per-op roofline table(s) of ``accelsim explain``."""
    if doc.get("kind") == "llm":
        return _explain_llm_view(doc)
    totals = doc["totals"]
    table = _ops_table(
        f"{doc['model']} on {doc['chip']}, batch of {doc['batch_items']} items: "
        f"{_q(totals['time_s'], 's')} ({totals['items_per_s']:.4g} items/s)",
        doc["ops"],
    )
    place = doc["placement"]
    notes = [
        _ridge_line(doc),
        Text(
            f"weights {_q(place['weight_bytes'], 'bytes')} in {place['weights_tier']}; "
            f"embeddings {_q(place['embedding_bytes'], 'bytes')}, "
            f"SRAM row cache {_q(place['sram_cache_bytes'], 'bytes')}"
        ),
    ]
    served = place["lookups_served"]
    notes.append(
        Text(
            f"embedding lookups served {_pct(served['sram'])} from SRAM, "
            f"{_pct(served['dram'])} from DRAM, {_pct(served['host'])} from host memory"
            + ("" if len(place["tables"]) <= 6 else " (per table: --json)")
        )
    )
    if len(place["tables"]) <= 6:
        for t in place["tables"]:
            notes.append(
                Text(
                    f"  {t['name']}: {_pct(t['sram_share'])} SRAM, "
                    f"{_pct(t['dram_share'])} DRAM, {_pct(t['host_share'])} host"
                )
            )
    notes.append(_energy_line(totals))
    notes.append(_cap_line(totals))
    notes += [Text(f"note: {n}", style="yellow") for n in place["notes"]]
    return Group(table, *notes, *_lesson_lines(doc))


def _lesson_lines(doc: dict[str, Any]) -> list[RenderableType]:
    """The plain-language reading of an explain document (see accelsim.report.lesson)."""
    if not doc.get("lesson"):
        return []
    grid = Table.grid(padding=(0, 1))  # sentences wrap under themselves
    grid.width = 110
    grid.add_column(no_wrap=True)
    grid.add_column()
    for line in doc["lesson"]:
        grid.add_row("-", line)
    return [Text("reading:", style="bold"), grid]


def _energy_line(totals: dict[str, Any]) -> Text:
    parts = totals["energy_by_component_j"]
    total = sum(parts.values())
    split = ", ".join(
        f"{name} {100 * value / total:.0f}%" for name, value in parts.items() if value > 0
    )
    return Text(
        f"energy {_q(totals['energy_j'], 'J')} ({split}), average power "
        f"{_q(totals['avg_power_w'], 'W')} (TDP {_q(totals['tdp_w'], 'W')})"
    )


def _cap_line(totals: dict[str, Any]) -> Text:
    capped = totals["capped"]
    if capped["clock_ratio"] >= 1.0:
        return Text(f"under a {_q(totals['power_cap_w'], 'W')} cap: runs at the nominal clock")
    stall = f", plus {_q(capped['stall_s'], 's')} of stall" if capped["stall_s"] > 0 else ""
    return Text(
        f"under a {_q(totals['power_cap_w'], 'W')} cap: clock {100 * capped['clock_ratio']:.0f}% "
        f"of nominal ({_q(capped['clock_hz'], 'Hz')}){stall}, {capped['slowdown']:.2f}x the time, "
        f"{_q(capped['avg_power_w'], 'W')}",
        style="yellow",
    )


def _explain_llm_view(doc: dict[str, Any]) -> RenderableType:
    place = doc["placement"]
    k = doc["chips_per_replica"]
    replica = f"{k} x {doc['chip']}" if k > 1 else doc["chip"]
    pre, dec = doc["prefill"], doc["decode"]
    head = Text(
        f"{doc['model']} on {replica}: {place['params'] / 1e9:.3g}B params "
        f"({_q(place['weight_bytes'], 'bytes')}, {_q(place['weight_bytes_per_chip'], 'bytes')} "
        f"per chip in {place['weights_tier']}), KV {_q(place['kv_bytes_per_token'], 'bytes')} "
        f"per token, room for {place['kv_capacity_tokens']:,} KV tokens "
        f"({place['max_sequences_at_context']:,} sequences of {dec['context_tokens']} tokens)"
    )
    prefill = _ops_table(
        f"prefill of {pre['prompt_tokens']} prompt tokens: {_q(pre['totals']['time_s'], 's')} "
        f"({pre['totals']['tokens_per_s']:.4g} tokens/s, {_q(pre['totals']['avg_power_w'], 'W')} "
        "per chip)",
        pre["ops"],
    )
    decode = _ops_table(
        f"decode step of {dec['batch_sequences']} sequences at {dec['context_tokens']} tokens of "
        f"context: {_q(dec['totals']['time_s'], 's')} per token "
        f"({dec['totals']['tokens_per_s']:.4g} tokens/s, "
        f"{_q(dec['totals']['avg_power_w'], 'W')} per chip)",
        dec["ops"],
    )
    notes: list[RenderableType] = [
        head,
        prefill,
        Text("prefill: ", style="bold") + _energy_line(pre["totals"]),
        Text("prefill: ", style="bold") + _cap_line(pre["totals"]),
        decode,
        Text("decode: ", style="bold") + _energy_line(dec["totals"]),
        Text("decode: ", style="bold") + _cap_line(dec["totals"]),
        _ridge_line(doc),
    ]
    if not dec["fits_kv"]:
        notes.append(
            Text(
                f"note: {dec['batch_sequences']} sequences of {dec['context_tokens']} tokens do "
                "not fit the KV cache of this replica",
                style="yellow",
            )
        )
    return Group(*notes, *_lesson_lines(doc))


def chip_list_view(chips: list[Chip]) -> RenderableType:
    table = Table(header_style="bold", title="chip profiles", title_justify="left")
    for col in ("name", "bf16", "int8", "SRAM", "DRAM", "DRAM BW", "idle", "TDP", "profile"):
        table.add_column(col, justify="left" if col in ("name", "profile") else "right")
    for chip in chips:
        peaks = chip.compute.matrix_flops_per_s
        sram = chip.memory.sram
        bf16, int8 = peaks.get("bf16"), peaks.get("int8")
        table.add_row(
            chip.name,
            "-" if bf16 is None else format_quantity(bf16, "ops/s", unit="FLOP/s"),
            "-" if int8 is None else format_quantity(int8, "ops/s", unit="OP/s"),
            _q(sram.capacity_bytes if sram else None, "bytes"),
            _q(chip.memory.dram.capacity_bytes, "bytes"),
            _q(chip.memory.dram.bandwidth_bytes_per_s, "bytes/s"),
            _q(chip.power.idle_w, "W"),
            _q(chip.power.tdp_w, "W"),
            "hypothetical" if chip.hypothetical else "measured",
        )
    return Group(table, Text("`accelsim hardware show NAME` describes one profile in full."))
