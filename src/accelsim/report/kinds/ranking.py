"""Ranking workloads in a report: queries answered by batches of items on one chip each.

Their summary rows give query latency percentiles against a p-th percentile SLA; their
explain document breaks one batch of items down op by op, with where the embedding
lookups are served from.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from accelsim.config.schema import Chip, RankingModel
from accelsim.model.ranking import RankingCostModel
from accelsim.report import breakdown, markup, terminal
from accelsim.report.kinds.base import Doc, ExplainSetting, ExplainStep, ReportKind
from accelsim.report.wording import TIER_NAMES, finite, percent


def _terminal_rows(doc: Doc, name: str, w: Doc) -> list[list[RenderableType]]:
    lat = w["latency_s"]
    sla = w["sla"]
    sla_text: RenderableType = "-"
    if sla is not None:
        mark = "[green]met[/]" if sla["met"] else "[red]missed[/]"
        sla_text = Text.from_markup(
            f"p{sla['percentile']:g}≤{terminal.ms(sla['latency_s'])} {mark}"
        )
    return [
        [
            name,
            w["model"],
            str(w["offered"]),
            str(w["completed"]),
            str(w["in_flight"]),
            f"{w['throughput_per_s']:.1f}",
            terminal.ms(lat["p50"]),
            terminal.ms_ci(lat),
            terminal.ms(lat["max"]),
            sla_text,
            terminal.pct(w["sla_attainment"]),
        ]
    ]


def _html_rows(doc: Doc, name: str, w: Doc) -> list[list[str]]:
    return [
        [
            markup.esc(name),
            markup.esc(w["model"]),
            str(w["offered"]),
            str(w["completed"]),
            str(w["in_flight"]),
            markup.num(w["throughput_per_s"], ".1f"),
            *(markup.qty(w["latency_s"][k], "s") for k in ("p50", "p90")),
            markup.esc(terminal.sec_ci(w["latency_s"])),
            markup.qty(w["latency_s"]["max"], "s"),
            markup.sla_cell(w),
        ]
    ]


def _sla_targets(sla: Doc) -> dict[str, tuple[float, float]]:
    target = sla.get("latency_s")
    return (
        {"latency_s": (float(target), float(sla.get("percentile", 99)))} if finite(target) else {}
    )


def explain_batch(
    model: RankingModel, chip: Chip, setting: ExplainSetting, power_cap_w: float | None = None
) -> Doc:
    """Where one batch's time and energy go, op by op, and the chip's ridge points."""
    batch_items = setting.batch
    cost_model = RankingCostModel(model, chip)
    rates = cost_model.rates
    cost = cost_model.batch(batch_items)
    plan = cost_model.plan
    ops = breakdown.ops_doc(cost)
    return {
        "kind": "ranking",
        "chip": chip.name,
        "model": model.name,
        "batch_items": batch_items,
        "dtype": model.dtype,
        "ridge_point_flops_per_byte": breakdown.ridges(rates, model.dtype),
        "placement": {
            "weight_bytes": plan.weight_bytes,
            "weights_tier": plan.weights_tier,
            "embedding_bytes": plan.embedding_bytes,
            "sram_cache_bytes": plan.sram_cache_bytes,
            "lookups_served": {
                tier: sum(getattr(t, f"{tier}_share") * t.lookups_per_item for t in plan.tables)
                / sum(t.lookups_per_item for t in plan.tables)
                for tier in ("sram", "dram", "host")
            },
            "tables": [
                {
                    "name": t.name,
                    "lookups_per_item": t.lookups_per_item,
                    "sram_share": t.sram_share,
                    "dram_share": t.dram_share,
                    "host_share": t.host_share,
                }
                for t in plan.tables
            ],
            "notes": list(plan.notes),
        },
        "ops": ops,
        "totals": {
            **breakdown.totals(cost, chip, 1, power_cap_w),
            "items_per_s": batch_items / cost.time_s,
        },
    }


def _explain_steps(doc: Doc) -> list[ExplainStep]:
    items = doc.get("batch_items")
    batch = int(items) if items else None
    return [
        ExplainStep(
            phase="",
            ops=doc["ops"],
            totals=doc["totals"],
            batch=batch,
            unit="items",
            weight_rows=batch,
            took=f"the batch of {items} items takes",
            label=f"batch of {items} items",
        )
    ]


def _explain_view(doc: Doc) -> list[RenderableType]:
    totals = doc["totals"]
    table = terminal.ops_table(
        f"{doc['model']} on {doc['chip']}, batch of {doc['batch_items']} items: "
        f"{terminal.qty(totals['time_s'], 's')} ({totals['items_per_s']:.4g} items/s)",
        doc["ops"],
    )
    place = doc["placement"]
    notes: list[RenderableType] = [
        terminal.ridge_line(doc),
        Text(
            f"weights {terminal.qty(place['weight_bytes'], 'bytes')} in {place['weights_tier']}; "
            f"embeddings {terminal.qty(place['embedding_bytes'], 'bytes')}, "
            f"SRAM row cache {terminal.qty(place['sram_cache_bytes'], 'bytes')}"
        ),
    ]
    served = place["lookups_served"]
    notes.append(
        Text(
            f"embedding lookups served {terminal.pct(served['sram'])} from SRAM, "
            f"{terminal.pct(served['dram'])} from DRAM, {terminal.pct(served['host'])} from "
            "host memory" + ("" if len(place["tables"]) <= 6 else " (per table: --json)")
        )
    )
    if len(place["tables"]) <= 6:
        for t in place["tables"]:
            notes.append(
                Text(
                    f"  {t['name']}: {terminal.pct(t['sram_share'])} SRAM, "
                    f"{terminal.pct(t['dram_share'])} DRAM, {terminal.pct(t['host_share'])} host"
                )
            )
    notes.append(terminal.energy_line(totals))
    notes.append(terminal.cap_line(totals))
    notes += [Text(f"note: {n}", style="yellow") for n in place["notes"]]
    return [table, *notes]


def _roofline_setting(pool: Doc, pool_doc: Doc, workload_doc: Doc) -> tuple[ExplainSetting, str]:
    batch = int(pool["batching"]["max_batch_items"])
    return ExplainSetting(batch), f"a batch of {batch} items (the pool's max_batch_items)"


def _lesson_closing(doc: Doc) -> list[str]:
    """Where the embedding lookups are served from."""
    served = doc.get("placement", {}).get("lookups_served")
    if not served:
        return []
    parts = [
        f"{percent(served[t])} from {TIER_NAMES[t] if t != 'host' else 'host memory'}"
        for t in ("sram", "dram", "host")
        if finite(served.get(t)) and served[t] > 0
    ]
    if not parts:
        return []
    return [
        f"Embedding lookups are served {', '.join(parts)}: each lookup outside SRAM is a "
        "random gather of a whole access granule, which reaches only a fraction of the "
        "tier's streaming bandwidth."
    ]


KIND = ReportKind(
    name="ranking",
    label="ranking",
    work_key="queries",
    work_noun="queries",
    per_joule_column="queries/J",
    per_joule_cell="q",
    served_key="completed",
    terminal_columns=(
        *("model", "offered", "done", "in flight", "QPS"),
        *("p50 ms", "p99 ms", "max ms", "SLA", "attained"),
    ),
    terminal_rows=_terminal_rows,
    html_columns=(
        *("model", "offered", "done", "in flight", "queries/s"),
        *("p50", "p90", "p99", "max", "SLA attained"),
    ),
    html_rows=_html_rows,
    pool_chips=lambda pool: str(pool["chips"]),
    batch_key="mean_batch_items",
    batch_unit="items",
    batch_unit_short="items",
    busy_is_load=True,
    batch_slots=lambda pool: int(pool["batching"]["max_batch_items"]),
    cdf_series=(("latency_s", "end-to-end latency"),),
    sla_targets=_sla_targets,
    study_markers=(),
    study_columns=(),
    explain=explain_batch,
    explain_steps=_explain_steps,
    explain_view=_explain_view,
    roofline_setting=_roofline_setting,
    lesson_closing=_lesson_closing,
    gemm_bytes_are_weights=False,
    weights_fit_sram=True,
    four_bit_weights=False,
)
