"""Rich tables for the terminal: run summaries, roofline breakdowns, chip profiles."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from accelsim.config.schema import Chip
from accelsim.report import terminal
from accelsim.report.kinds import REPORT_KINDS, kind_of, per_work_unit, pool_kind
from accelsim.report.terminal import pct, qty, sec, table
from accelsim.units import format_quantity


def result_view(doc: dict[str, Any]) -> RenderableType:
    """The summary of one run's result document."""
    window = doc["window_s"]
    title: str | None = (
        f"{doc['scenario']}  (seed {doc['seed']}, {window['duration']:g} s measured "
        f"after {window['start']:g} s warm-up)"
    )
    lines: list[RenderableType] = []
    for kind in REPORT_KINDS.values():  # one table per kind, the run's title on the first
        rows = {n: w for n, w in doc["workloads"].items() if kind_of(w) is kind}
        if not rows:
            continue
        workloads = table(title, [kind.label, *kind.terminal_columns])
        for name, w in rows.items():
            for row in kind.terminal_rows(doc, name, w):
                workloads.add_row(*row)
        workloads.caption = "\n".join(
            line for line in (_backlog_caption(doc, rows), terminal.CI_NOTE) if line
        )
        workloads.caption_justify = "left"
        lines.append(workloads)
        title = None

    pools = table(
        None,
        [
            *("pool", "chip", "chips", "util", "batch", "clock", "avg power", "peak"),
            *("energy", "per joule", "$/hour"),
        ],
    )
    for name, p in doc["pools"].items():
        kind = pool_kind(doc, name)
        served = [doc["workloads"][w] for w in p["serves"]]
        shared = any(
            len([q for q in doc["pools"].values() if w in q["serves"]]) > 1 for w in p["serves"]
        )
        mean_batch = p[kind.batch_key]
        batch = "-" if mean_batch is None else f"{mean_batch:.1f} {kind.batch_unit_short}"
        work = sum(w[kind.served_key] for w in served)
        per_j = (
            "-"
            if shared or p["energy_j"] <= 0
            else f"{work / p['energy_j']:.3g} {kind.per_joule_cell}"
        )
        clock = "-" if p["mean_clock_ratio"] is None else f"{100 * p['mean_clock_ratio']:.0f}%"
        cost = "-" if p["cost_per_hour_usd"] is None else f"{p['cost_per_hour_usd']:.3g}"
        pools.add_row(
            name,
            p["chip"],
            kind.pool_chips(p),
            pct(p["utilization"]),
            batch,
            clock,
            qty(p["avg_power_w"], "W"),
            qty(p["peak_power_w"], "W"),
            qty(p["energy_j"], "J"),
            per_j,
            cost,
        )
    lines.append(pools)
    totals = doc["totals"]
    units = per_work_unit()
    per_joule = [
        f"{totals[k.per_joule_key]:.3g} {k.per_joule_unit}"
        for k in units
        if totals.get(k.per_joule_key)
    ]
    lines.append(
        Text(
            f"total: {qty(totals['avg_power_w'], 'W')} average, {qty(totals['peak_power_w'], 'W')} "
            f"peak, {qty(totals['energy_j'], 'J')}"
            + (", " + ", ".join(per_joule) if per_joule else "")
        )
    )
    costs = [
        f"${totals[k.cost_key]:.3g} per million {k.work_noun}"
        for k in units
        if totals.get(k.cost_key) is not None
    ]
    facility = (
        f"facility (PUE {totals['pue']:g}): {qty(totals['facility_avg_power_w'], 'W')} average"
    )
    if totals["power_budget_w"] is not None:
        verdict = "within" if totals["within_budget"] else "OVER"
        facility += f", peak {qty(totals['facility_peak_power_w'], 'W')} {verdict} the "
        facility += f"{qty(totals['power_budget_w'], 'W')} budget"
    lines.append(Text(facility + ("; " + ", ".join(costs) if costs else "")))
    lines.extend(Text(line) for line in loadgen_lines(doc))
    for warning in doc["warnings"]:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*lines)


def loadgen_lines(doc: dict[str, Any]) -> list[str]:
    """One line per workload under offline or closed-loop traffic: what it measures."""
    out = []
    for name, w in doc["workloads"].items():
        lg = w.get("loadgen")
        if lg is None:
            continue
        if lg["scenario"] == "offline":
            if lg["makespan_s"] is None:
                out.append(
                    f"offline {name}: {lg['unfinished']} of {lg['requests']} requests unfinished "
                    "at the end of the run: no makespan (lengthen simulation.duration_s)"
                )
                continue
            rates = [f"{lg['offline_throughput_per_s']:.4g} requests/s"]
            if "offline_output_tokens_per_s" in lg:
                rates.append(f"{lg['offline_output_tokens_per_s']:.4g} output tokens/s")
            if "offline_items_per_s" in lg:
                rates.append(f"{lg['offline_items_per_s']:.4g} items/s")
            out.append(
                f"offline {name}: {lg['requests']} requests done in {sec(lg['makespan_s'])} "
                f"(makespan): " + ", ".join(rates)
            )
        else:
            law = lg["users_over_cycle_per_s"]
            out.append(
                f"closed loop {name}: {lg['users']} users, think {sec(lg['think_s'])} "
                f"({lg['think']}): {lg['throughput_per_s']:.4g} requests/s"
                + (
                    ""
                    if law is None
                    else f"; users / (mean response {sec(lg['mean_response_s'])} + think) "
                    f"= {law:.4g}/s"
                )
            )
    return out


BACKLOG_SHARE = 0.01
"""Above this share, the rate of all completions in the window is shown beside the table."""


def _backlog_caption(doc: dict[str, Any], rows: dict[str, Any]) -> str | None:
    """When a fleet completed notably more in the window than the requests that arrived in
    it (an overload, or requests slower than the window), say how much: the table's rate
    counts only the latter."""
    timeline = doc.get("timeline") or {}
    served = []
    for name, w in rows.items():
        per_s = (timeline.get("workloads") or {}).get(name, {}).get("completed_per_s")
        if not per_s or not doc["window_s"]["duration"]:
            continue
        rate = sum(per_s) * timeline["bin_s"] / doc["window_s"]["duration"]
        if rate > (1 + BACKLOG_SHARE) * w["throughput_per_s"]:
            served.append(f"{name} {rate:.5g}/s")
    if not served:
        return None
    return (
        "done and the rate count the requests that arrived in the window; counting those "
        "from before it, the fleet completed " + ", ".join(served)
    )


def explain_view(doc: dict[str, Any]) -> RenderableType:
    """The per-op roofline table(s) of ``accelsim explain``, then the reading."""
    return Group(
        *_confidential_line(doc),
        *kind_of(doc).explain_view(doc),
        *_speculative_lines(doc),
        *_lesson_lines(doc),
    )


def _speculative_lines(doc: dict[str, Any]) -> list[RenderableType]:
    """A speculative decode step against a plain one (``explain --speculative-tokens``)."""
    sp = doc.get("speculative")
    if not sp:
        return []
    return [
        Text(
            "speculative decoding ({}, k={}, a={:g}): draft {} + verify {} = {} a step for "
            "{:.3g} expected tokens: {} a token against {} for a plain decode step "
            "(x{:.2f}); KV capacity {} tokens (plain {})".format(
                sp["proposer"],
                sp["tokens"],
                sp["acceptance_rate"],
                format_quantity(sp["draft_s"], "s"),
                format_quantity(sp["verify_s"], "s"),
                format_quantity(sp["step_s"], "s"),
                sp["expected_tokens_per_step"],
                format_quantity(sp["time_per_token_s"], "s"),
                format_quantity(sp["plain_decode_step_s"], "s"),
                sp["speedup"],
                sp["kv_capacity_tokens"],
                sp["plain_kv_capacity_tokens"],
            )
        )
    ]


def _confidential_line(doc: dict[str, Any]) -> list[RenderableType]:
    """What confidential mode (``explain --confidential``) did to the chip's data paths."""
    cc = doc.get("confidential")
    if not cc:
        return []
    return [
        Text(
            "confidential mode: host link x{:g} bandwidth + {}, chip-to-chip x{:g} + {}, "
            "DRAM x{:g} bandwidth".format(
                cc["host_link_bandwidth_factor"],
                format_quantity(cc["host_link_latency_s"], "s"),
                cc["chip_to_chip_bandwidth_factor"],
                format_quantity(cc["chip_to_chip_latency_s"], "s"),
                cc["dram_bandwidth_factor"],
            )
        )
    ]


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


def chip_list_view(chips: list[Chip]) -> RenderableType:
    profiles = Table(header_style="bold", title="chip profiles", title_justify="left")
    for col in ("name", "bf16", "int8", "SRAM", "DRAM", "DRAM BW", "idle", "TDP", "profile"):
        profiles.add_column(col, justify="left" if col in ("name", "profile") else "right")
    for chip in chips:
        peaks = chip.compute.matrix_flops_per_s
        sram = chip.memory.sram
        bf16, int8 = peaks.get("bf16"), peaks.get("int8")
        profiles.add_row(
            chip.name,
            "-" if bf16 is None else format_quantity(bf16, "ops/s", unit="FLOP/s"),
            "-" if int8 is None else format_quantity(int8, "ops/s", unit="OP/s"),
            qty(sram.capacity_bytes if sram else None, "bytes"),
            qty(chip.memory.dram.capacity_bytes, "bytes"),
            qty(chip.memory.dram.bandwidth_bytes_per_s, "bytes/s"),
            qty(chip.power.idle_w, "W"),
            qty(chip.power.tdp_w, "W"),
            "hypothetical" if chip.hypothetical else "measured",
        )
    return Group(profiles, Text("`accelsim hardware show NAME` describes one profile in full."))
