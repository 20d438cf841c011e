"""Rich tables for the terminal: run summaries, roofline breakdowns, chip profiles."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from accelsim.config.schema import Chip
from accelsim.units import format_quantity


def _q(value: float | None, dimension: str, digits: int = 3) -> str:
    return "-" if value is None else format_quantity(value, dimension, digits)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3g}"


def result_view(doc: dict[str, Any]) -> RenderableType:
    """The summary of one run's result document."""
    window = doc["window_s"]
    title = (
        f"{doc['scenario']}  (seed {doc['seed']}, {window['duration']:g} s measured "
        f"after {window['start']:g} s warm-up)"
    )
    wl = Table(title=title, title_justify="left", header_style="bold")
    for col in ("workload", "model", "offered", "done", "in flight", "QPS"):
        wl.add_column(col, justify="left" if col in ("workload", "model") else "right")
    for col in ("p50 ms", "p99 ms", "max ms", "SLA", "attained"):
        wl.add_column(col, justify="right")
    for name, w in doc["workloads"].items():
        lat = w["latency_s"]
        sla = w["sla"]
        sla_text: RenderableType = "-"
        if sla is not None:
            mark = "[green]met[/]" if sla["met"] else "[red]missed[/]"
            sla_text = Text.from_markup(f"p{sla['percentile']:g}≤{_ms(sla['latency_s'])} {mark}")
        wl.add_row(
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
    pools = Table(header_style="bold")
    for col in ("pool", "chip", "chips", "util", "batches", "mean batch", "avg power", "energy"):
        pools.add_column(col, justify="left" if col in ("pool", "chip") else "right")
    pools.add_column("queries/J", justify="right")
    for name, p in doc["pools"].items():
        served = sum(doc["workloads"][w]["completed"] for w in p["serves"])
        shared = any(
            len([q for q in doc["pools"].values() if w in q["serves"]]) > 1 for w in p["serves"]
        )
        per_j = "-" if shared or p["energy_j"] <= 0 else f"{served / p['energy_j']:.3g}"
        pools.add_row(
            name,
            p["chip"],
            str(p["chips"]),
            _pct(p["utilization"]),
            str(p["batches"]),
            "-" if p["mean_batch_items"] is None else f"{p['mean_batch_items']:.1f}",
            _q(p["avg_power_w"], "W"),
            _q(p["energy_j"], "J"),
            per_j,
        )
    totals = doc["totals"]
    lines: list[RenderableType] = [wl, pools]
    lines.append(
        Text(
            f"total: {_q(totals['avg_power_w'], 'W')} average, {_q(totals['energy_j'], 'J')}, "
            f"{totals['queries_per_j'] or 0:.3g} queries/J"
        )
    )
    for warning in doc["warnings"]:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*lines)


def explain_view(doc: dict[str, Any]) -> RenderableType:
    """The per-op roofline table of ``accelsim explain``."""
    totals = doc["totals"]
    table = Table(
        title=(
            f"{doc['model']} on {doc['chip']}, batch of {doc['batch_items']} items: "
            f"{_q(totals['time_s'], 's')} ({totals['items_per_s']:.4g} items/s)"
        ),
        title_justify="left",
        header_style="bold",
    )
    for col in ("op", "bound", "time", "share", "FLOPs", "bytes", "FLOP/B", "compute", "memory"):
        table.add_column(col, justify="left" if col in ("op", "bound") else "right")
    for op in doc["ops"]:
        ai = op["arithmetic_intensity"]
        style = (
            "cyan" if op["bound"] == "compute" else ("magenta" if op["bound"] == "overhead" else "")
        )
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
    ridges = ", ".join(
        f"{tier} {value:.3g}" for tier, value in doc["ridge_point_flops_per_byte"].items()
    )
    place = doc["placement"]
    notes = [
        Text(f"ridge points ({doc['dtype']} FLOP per byte streamed): {ridges}"),
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
    notes.append(
        Text(
            f"energy {_q(totals['energy_j'], 'J')}, average power {_q(totals['avg_power_w'], 'W')} "
            f"(TDP {_q(totals['tdp_w'], 'W')})"
        )
    )
    notes += [Text(f"note: {n}", style="yellow") for n in place["notes"]]
    return Group(table, *notes)


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
