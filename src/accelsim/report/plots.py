"""The charts of a report, as plain data, and the two renderers that draw them.

A :class:`Chart` says what to draw (series, axes with their units, log scales,
reference lines, notes) and nothing about how. The builders here turn a result
document, an explain document or the rows of a sweep into charts; they are pure
and import no plotting library. :func:`plotly_figure` turns a chart into the
JSON figure plotly.js draws in the HTML report, and :func:`save_static` draws
the same chart with matplotlib into a PNG or SVG file. Both renderers import
their library only when called (the ``report`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from accelsim.report.kinds import DEFAULT_KIND, REPORT_KINDS, kind_of, per_work_unit, pool_kind
from accelsim.report.kinds.base import ReportKind
from accelsim.report.wording import sig
from accelsim.units import format_quantity

Mode = Literal["lines", "markers", "lines+markers"]
Dash = Literal["solid", "dash", "dot"]

# Colours that stay apart for colour-blind readers (Okabe-Ito), then greys for roofs.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
TIER_COLOURS = {"sram": "#7f7f7f", "dram": "#333333", "host": "#b0b0b0", "link": "#a0522d"}
TIER_LABELS = {"sram": "SRAM", "dram": "DRAM", "host": "host link", "link": "chip-to-chip link"}
CDF_QUANTILES = 200


@dataclass
class Series:
    name: str
    x: list[float]
    y: list[float]
    mode: Mode = "lines"
    hover: list[str] | None = None  # one line of text per point, shown on hover
    labels: list[str] | None = None  # text drawn next to each point ("" for none)
    sizes: list[float] | None = None  # marker sizes in points
    color: str | None = None
    dash: Dash = "solid"
    width: float = 2.0
    symbol: str = "circle"
    legend: bool = True  # named in the legend (marks on a curve need not be)


@dataclass
class RefLine:
    """A vertical (``axis="x"``) or horizontal (``axis="y"``) reference line."""

    axis: Literal["x", "y"]
    value: float
    label: str
    dash: Dash = "dash"
    color: str = "#555555"


@dataclass
class Chart:
    id: str
    title: str
    x_label: str  # with its unit, e.g. "latency (ms)"
    y_label: str
    series: list[Series]
    subtitle: str = ""
    x_log: bool = False
    y_log: bool = False
    x_range: tuple[float, float] | None = None  # in data units (not log10)
    y_range: tuple[float, float] | None = None
    y_from_zero: bool = False  # counts and power: the y axis starts at 0
    refs: list[RefLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown under the chart
    # A bar chart: each series' x values index these names (drawn in this order), one
    # bar per name.
    categories: list[str] | None = None
    # One of a stack of charts over the same x range: drawn with the same margins and the
    # legend below, so that the x axes of the stack line up.
    stacked: bool = False

    def drawn_series(self) -> list[Series]:
        return [s for s in self.series if s.x]


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ms(value: float) -> float:
    return value * 1e3


def _sec(value: float) -> str:
    return format_quantity(value, "s")


# ---------------------------------------------------------------------- latency distributions


def cdf_points(
    values: Sequence[float], quantiles: int = CDF_QUANTILES
) -> list[tuple[float, float]]:
    """Points (value, share of the sample at or below it) of an empirical CDF, from the
    minimum to the maximum: ``quantiles + 1`` evenly spaced shares, and, for the tail,
    ten shares a decade from 90% up to the last one the sample resolves (1 - 1/n)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return []
    q = np.linspace(0.0, 1.0, quantiles + 1)
    decades = math.log10(data.size)
    if decades > 1:
        tail = 1.0 - 10.0 ** -np.arange(1.0, decades + 1e-9, 0.1)
        q = np.union1d(q, np.round(tail, 12))
    return [(float(v), float(p)) for v, p in zip(np.quantile(data, q), q, strict=True)]


def _percentile_points(dist: dict[str, Any]) -> list[tuple[float, float]]:
    points = [
        (dist.get(k), p) for k, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    ]
    return [(float(v), p) for v, p in points if _finite(v)]


@dataclass(frozen=True)
class _Curve:
    """One workload's distribution of one latency series, ready to draw."""

    workload: str
    color: str
    points: list[tuple[float, float]]  # (seconds, share at or below)
    dist: dict[str, Any]  # the document's percentiles of it
    target: tuple[float, float] | None  # (seconds, percentile) of the SLA that bounds it


def _curves(
    doc: dict[str, Any], samples: dict[str, dict[str, list[tuple[float, float]]]] | None, key: str
) -> tuple[list[_Curve], bool]:
    """Every workload's curve of ``key`` (one colour per workload across the charts), and
    whether they come from every request (else from the document's percentiles)."""
    exact = bool(samples) and any((samples or {}).get(n, {}).get(key) for n in doc["workloads"])
    curves = []
    for i, (name, w) in enumerate(doc["workloads"].items()):
        kind = kind_of(w)
        if key not in dict(kind.cdf_series):
            continue
        dist = w.get(key) or {}
        points = (samples or {}).get(name, {}).get(key) if exact else _percentile_points(dist)
        if not points:
            continue
        target = kind.sla_targets(w.get("sla") or {}).get(key)
        curves.append(_Curve(name, PALETTE[i % len(PALETTE)], points, dist, target))
    return curves, exact


def _y(share: float, tail: bool) -> float:
    return 100 * (1 - share) if tail else 100 * share


def _marks(curve: _Curve, tail: bool) -> list[Series]:
    """The p50 and p99 of a curve as labelled points on it."""
    marks = [
        (float(v), p, k)
        for k, p in (("p50", 0.5), ("p99", 0.99))
        if _finite(v := curve.dist.get(k)) and v > 0
    ]
    if not marks:
        return []
    return [
        Series(
            name=f"{curve.workload} p50, p99",
            x=[_ms(v) for v, _, _ in marks],
            y=[_y(p, tail) for _, p, _ in marks],
            mode="markers",
            hover=[f"{curve.workload} {k} {_sec(v)}" for v, _, k in marks],
            color=curve.color,
            legend=False,
        )
    ]


def _curve_name(curve: _Curve) -> str:
    """A workload's name in the legend, with the p50 and p99 its dots mark."""
    shown = [f"{k} {_sec(curve.dist[k])}" for k in ("p50", "p99") if _finite(curve.dist.get(k))]
    return curve.workload + (f" ({', '.join(shown)})" if shown else "")


def _stars(curves: list[_Curve], tail: bool) -> list[Series]:
    """The SLA targets that bound these curves, each a star at (target, percentile) in the
    colour of its curve (one dark red star for a target several workloads share): a curve
    that passes left of its star meets it."""
    spots: dict[tuple[float, float], list[_Curve]] = {}
    for c in curves:
        if c.target is not None:
            spots.setdefault(c.target, []).append(c)
    out = []
    for (target, pct), owners in spots.items():
        who = ", ".join(c.workload for c in owners)
        out.append(
            Series(
                name=f"{who}: p{pct:g} target {_sec(target)}",
                x=[_ms(target)],
                y=[_y(pct / 100, tail)],
                mode="markers",
                hover=[f"{who}: p{pct:g} must be at most {_sec(target)}"],
                color=owners[0].color if len(owners) == 1 else "#c00000",
                symbol="star",
                sizes=[16.0],
            )
        )
    return out


def _subtitle(curves: list[_Curve], exact: bool, doc: dict[str, Any]) -> str:
    if exact:
        done = ", ".join(
            f"{c.workload} {doc['workloads'][c.workload]['completed']:,}" for c in curves
        )
        return f"completed requests of the measured window: {done}"
    return (
        "drawn from the percentiles in the result document (p50, p90, p99, max) only; "
        "`accelsim run --report` draws the full curve from every request"
    )


def latency_charts(
    doc: dict[str, Any], samples: dict[str, dict[str, list[tuple[float, float]]]] | None
) -> list[Chart]:
    """For each latency series the workloads have (end-to-end latency; for LLMs also time
    to first token and time per output token): every workload's CDF overlaid on one log
    axis, with its p50 and p99 marked (and named in the legend) and
    the SLA target that bounds that series drawn on its curve; then its tail, the share
    of requests slower than each latency (1 - CDF) on log axes.

    ``samples`` maps workload -> series key -> CDF points from the run's own records;
    without them the charts are drawn from the document's percentiles."""
    names: dict[str, str] = {}
    for w in doc["workloads"].values():
        names.update(dict(kind_of(w).cdf_series))
    cdfs, tails = [], []
    for key, label in names.items():
        curves, exact = _curves(doc, samples, key)
        if not curves:
            continue
        series: list[Series] = []
        tail: list[Series] = []
        for c in curves:
            series.append(
                Series(
                    name=_curve_name(c),
                    x=[_ms(v) for v, _ in c.points],
                    y=[100 * p for _, p in c.points],
                    mode="lines" if exact else "lines+markers",
                    hover=[f"{c.workload}: {100 * p:.4g}% within {_sec(v)}" for v, p in c.points],
                    color=c.color,
                )
            )
            series += _marks(c, tail=False)
            kept = [(v, p) for v, p in c.points if p < 1 and v > 0]
            tail.append(
                Series(
                    name=_curve_name(c),
                    x=[_ms(v) for v, _ in kept],
                    y=[100 * (1 - p) for _, p in kept],
                    mode="lines" if exact else "lines+markers",
                    hover=[
                        f"{c.workload}: {100 * (1 - p):.3g}% slower than {_sec(v)}" for v, p in kept
                    ],
                    color=c.color,
                )
            )
            tail += _marks(c, tail=True)
        series += _stars(curves, tail=False)
        tail += _stars(curves, tail=True)
        short = key.removesuffix("_s")
        subtitle = _subtitle(curves, exact, doc)
        cdfs.append(
            Chart(
                id=f"cdf-{short}",
                title=f"CDF of {label}"
                + (", every workload" if len(curves) > 1 else f": {curves[0].workload}"),
                subtitle=subtitle,
                x_label=f"{label} (ms, log scale)",
                y_label="requests finished within it (%)",
                series=series,
                x_log=True,
                y_range=(0.0, 101.0),
                notes=["Stars mark SLA targets: a curve that passes left of its star meets it."]
                if any(c.target for c in curves)
                else [],
            )
        )
        floor = min((v for s in tail for v in s.y if v > 0), default=1.0)
        tails.append(
            Chart(
                id=f"tail-{short}",
                title=f"Tail of {label} (1 - CDF)"
                + ("" if len(curves) > 1 else f": {curves[0].workload}"),
                subtitle=subtitle + "; the last point of each curve is its slowest request but one",
                x_label=f"{label} (ms, log scale)",
                y_label="requests slower than it (%, log scale)",
                series=tail,
                x_log=True,
                y_log=True,
                y_range=(floor / 2, 100.0 * 1.5),
            )
        )
    return cdfs + tails


# ---------------------------------------------------------------------- roofline


@dataclass(frozen=True)
class RooflineFrame:
    """The roofs of one chip for one dtype: achievable rates (peak x efficiency)."""

    chip: str
    dtype: str
    matrix_flops_per_s: float
    vector_flops_per_s: float
    tier_bytes_per_s: dict[str, float]  # streaming rate of each memory tier


def roofline_frame(
    chip: Any, dtype: str, tiers: Sequence[str] = ("sram", "dram", "host")
) -> RooflineFrame:
    """The roofs of ``chip`` (an :class:`accelsim.config.schema.Chip`) for ``dtype`` work."""
    from accelsim.model.roofline import ChipRates

    rates = ChipRates(chip)
    return RooflineFrame(
        chip=chip.name,
        dtype=dtype,
        matrix_flops_per_s=rates.matrix_flops_per_s(dtype),
        vector_flops_per_s=rates.vector_flops_per_s,
        tier_bytes_per_s={t: rates.tiers[t].stream_bytes_per_s for t in tiers if rates.has_tier(t)},
    )


def _log_span(values: list[float], pad: float = 1.0) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    return 10 ** (math.floor(math.log10(lo)) - pad), 10 ** (math.ceil(math.log10(hi)) + pad)


def placing_tier(op: dict[str, Any]) -> str | None:
    """The memory tier whose roof an op is drawn against: the tier that bounds it, or for
    a compute-bound op the tier it spends longest on (None for an op that moves nothing)."""
    moved = {t: b for t, b in (op.get("bytes_by_tier") or {}).items() if _finite(b) and b > 0}
    if not moved:
        return None
    if op.get("bound") in moved:
        return str(op["bound"])
    times = op.get("memory_time_s") or {}
    return str(max(moved, key=lambda t: times.get(t, 0.0) if _finite(times.get(t)) else 0.0))


def _op_points(ops: list[dict[str, Any]]) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
    """The ops that can be placed, each with its placing tier, and the names of the rest."""
    placed, skipped = [], []
    for op in ops:
        flops, t, tier = op.get("flops"), op.get("time_s"), placing_tier(op)
        if tier is not None and _finite(flops) and flops > 0 and _finite(t) and t > 0:
            placed.append((op, tier))
        else:
            skipped.append(str(op["name"]))
    return placed, skipped


def roofline_chart(
    doc: dict[str, Any], frame: RooflineFrame, chart_id: str, context: str = ""
) -> Chart:
    """The chip's roofline with the ops of an explain document placed on it: each op at its
    arithmetic intensity against the tier that bounds it (see :func:`placing_tier`) and
    the FLOP/s it attains (FLOPs over its time, overheads included), so that no op sits
    above the roof its reading names; marker area follows the op's share of the time."""
    steps = kind_of(doc).explain_steps(doc)
    chips = doc.get("chips_per_replica", 1)
    what = f"{doc['model']} on {doc['chip']}" + (
        f" ({chips}-way tensor parallel, per chip)" if chips > 1 else ""
    )
    tiers = dict(frame.tier_bytes_per_s)
    if chips > 1:  # the chip-to-chip link is a roof too, at the rate the ops saw
        for step in steps:
            for op in step.ops:
                link = op.get("memory_time_s", {}).get("link")
                moved = op.get("bytes_by_tier", {}).get("link")
                if _finite(link) and _finite(moved) and link > 0 and "link" not in tiers:
                    tiers["link"] = moved / link
    peak = frame.matrix_flops_per_s
    ridges = {t: peak / bw for t, bw in tiers.items() if bw > 0}
    scale, unit = (1e12, "TFLOP/s") if peak >= 1e12 else (1e9, "GFLOP/s")

    op_series: list[Series] = []
    skipped: list[str] = []
    xs: list[float] = list(ridges.values())
    ys: list[float] = [peak / scale, frame.vector_flops_per_s / scale]
    for i, step in enumerate(steps):
        pairs, left_out = _op_points(step.ops)
        skipped += [f"{n} ({step.phase})" if len(steps) > 1 else n for n in left_out]
        placed = [op for op, _ in pairs]
        x = [float(op["flops"]) / float(op["bytes_by_tier"][tier]) for op, tier in pairs]
        y = [float(op["flops"]) / float(op["time_s"]) / scale for op in placed]
        xs += x
        ys += y
        op_series.append(
            Series(
                name=f"ops: {step.label}",
                x=x,
                y=y,
                mode="markers",
                hover=[
                    f"{op['name']}: {op['bound']}-bound, {format_quantity(op['time_s'], 's')} "
                    f"({100 * op['share']:.1f}% of the time), "
                    f"{ai:.3g} FLOP per {TIER_LABELS.get(tier, tier)} byte"
                    + (
                        f" ({op['arithmetic_intensity']:.3g} over every byte it moves)"
                        if _finite(op.get("arithmetic_intensity"))
                        and abs(op["arithmetic_intensity"] - ai) > 1e-9 * ai
                        else ""
                    )
                    + f", {format_quantity(op['flops'] / op['time_s'], 'ops/s', unit='FLOP/s')}"
                    for (op, tier), ai in zip(pairs, x, strict=True)
                ],
                labels=_op_labels(placed, x, y),
                sizes=[8 + 28 * math.sqrt(max(0.0, op["share"])) for op in placed],
                color=PALETTE[i],
                symbol="circle" if i == 0 else "diamond",
            )
        )
    x_lo, x_hi = _log_span([v for v in xs if v > 0], 0.5)
    roof_x = _geomspace(x_lo, x_hi, 120)
    roofs: list[Series] = [
        Series(
            name=f"{frame.dtype} matrix peak, {format_quantity(peak, 'ops/s', unit='FLOP/s')}",
            x=[x_lo, x_hi],
            y=[peak / scale, peak / scale],
            color="#000000",
            width=1.5,
        )
    ]
    if frame.vector_flops_per_s < peak:
        roofs.append(
            Series(
                name=(
                    "vector unit peak, "
                    f"{format_quantity(frame.vector_flops_per_s, 'ops/s', unit='FLOP/s')}"
                ),
                x=[x_lo, x_hi],
                y=[frame.vector_flops_per_s / scale] * 2,
                color="#000000",
                dash="dot",
                width=1.0,
            )
        )
    for tier, bw in tiers.items():
        roofs.append(
            Series(
                name=(
                    f"{TIER_LABELS.get(tier, tier)} roof, "
                    f"{format_quantity(bw, 'bytes/s')} (ridge {sig(ridges[tier], 3)} FLOP/B)"
                ),
                x=roof_x,
                y=[min(peak, x * bw) / scale for x in roof_x],
                color=TIER_COLOURS.get(tier, "#888888"),
                dash="dash",
                width=1.5,
            )
        )
    y_lo = min(v for v in [*ys, x_lo * min(tiers.values(), default=peak) / scale] if v > 0)
    notes = [
        "Roofs are achievable rates (peak x efficiency), as in `accelsim explain`. Each op is "
        "placed at its FLOPs per byte of the tier that bounds it (for a compute-bound op, "
        "the tier it spends longest on), so it sits under that tier's roof: below it by its "
        "kernel overhead, its other tiers' traffic and, for gathers, random-access "
        "efficiency. Marker area follows each op's share of the time."
    ]
    if skipped:
        notes.append(f"Not on the chart (no arithmetic to place): {', '.join(skipped)}.")
    return Chart(
        id=chart_id,
        title=f"Roofline: {what}",
        subtitle=(context + "; " if context else "") + ", ".join(step.label for step in steps),
        x_label="arithmetic intensity against the bounding tier (FLOP/B, log scale)",
        y_label=f"attained performance ({unit}, log scale)",
        series=roofs + op_series,
        x_log=True,
        y_log=True,
        x_range=(x_lo, x_hi),
        y_range=(max(y_lo / 3, peak / scale * 1e-7), peak / scale * 8),
        notes=notes,
    )


def _op_labels(
    ops: list[dict[str, Any]], x: list[float], y: list[float], top: int = 5
) -> list[str]:
    """Names for the ``top`` ops with the largest time shares (3% or more); ops at the same
    point share one label, so that identical layers do not print over each other."""
    spots: dict[tuple[float, float], list[int]] = {}
    for i in range(len(ops)):
        spots.setdefault((round(math.log10(x[i]), 2), round(math.log10(y[i]), 2)), []).append(i)
    groups = sorted(spots.values(), key=lambda g: -sum(ops[i]["share"] for i in g))
    labels = [""] * len(ops)
    for group in groups[:top]:
        if sum(ops[i]["share"] for i in group) < 0.03:
            break
        first = ops[group[0]]["name"]
        labels[group[0]] = first if len(group) == 1 else f"{first} (and {len(group) - 1} alike)"
    return labels


def _geomspace(lo: float, hi: float, n: int) -> list[float]:
    a, b = math.log10(lo), math.log10(hi)
    return [10 ** (a + (b - a) * k / (n - 1)) for k in range(n)]


# ---------------------------------------------------------------------- timelines


def timeline_charts(doc: dict[str, Any]) -> list[Chart]:
    """Load, requests in system, batch size and power per chip over the window, as a stack
    of charts over the same x range. A pool's load is its busy share where that reads as
    load (ranking); an LLM replica iterates whenever a sequence is in flight, so its load
    is the share of its batch slots and of its KV cache in use."""
    tl = doc.get("timeline")
    if not tl or not tl.get("t_s"):
        return []
    t0 = [float(t) for t in tl["t_s"]]
    bin_s = float(tl["bin_s"])
    centre = [t + bin_s / 2 for t in t0]
    end = [t + bin_s for t in t0]
    span = (t0[0], end[-1])
    pools: dict[str, Any] = tl.get("pools", {})
    kinds = {name: pool_kind(doc, name) for name in doc["pools"]}
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(pools)}
    subtitle = f"{len(t0)} bins of {format_quantity(bin_s, 's')} over the measured window"

    def pool_series(
        key: str,
        scale: float | dict[str, float] = 1.0,
        names: Sequence[str] | None = None,
        suffix: str = "",
        dash: Dash = "solid",
    ) -> list[Series]:
        out = []
        for name, series in pools.items():
            if names is not None and name not in names:
                continue
            values = series.get(key)
            factor = scale if isinstance(scale, float) else scale.get(name)
            if not values or factor is None:
                continue
            pts = [(t, v * factor) for t, v in zip(centre, values, strict=False) if _finite(v)]
            out.append(
                Series(
                    name=f"{name} ({doc['pools'][name]['chip']}){suffix}",
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    color=colour[name],
                    dash=dash,
                )
            )
        return out

    def chart(
        chart_id: str, title: str, note: str, y_label: str, series: list[Series], **kw: Any
    ) -> Chart:
        return Chart(
            id=chart_id,
            title=title,
            subtitle=subtitle + note,
            x_label="simulated time (s)",
            y_label=y_label,
            series=series,
            x_range=span,
            stacked=True,
            **kw,
        )

    charts = []
    busy = [n for n, k in kinds.items() if k.busy_is_load]
    if busy:
        charts.append(
            chart(
                "timeline-utilization",
                "Utilisation per pool" + (" (ranking)" if len(busy) < len(kinds) else ""),
                "; busy chip-time over chip-time",
                "utilisation (%)",
                pool_series("utilization", 100.0, busy),
                y_range=(0.0, 105.0),
            )
        )
    slotted = [n for n, k in kinds.items() if not k.busy_is_load]
    if slotted:
        slots = {n: 100.0 / kinds[n].batch_slots(doc["config"]["pools"][n]) for n in slotted}
        charts.append(
            chart(
                "timeline-occupancy",
                "Occupancy per pool: batch slots and KV cache in use",
                "; a replica is busy whenever one sequence is in flight, so its load shows as "
                "the share of its batch slots (max_batch_sequences) and of its KV cache in use, "
                "weighted by busy time",
                "in use (%)",
                pool_series("mean_batch", slots, slotted, ": batch slots")
                + pool_series("kv_utilization", 100.0, slotted, ": KV cache", "dash"),
                y_range=(0.0, 105.0),
            )
        )
    in_system = [
        Series(
            name=name,
            x=end,
            y=[float(v) for v in series["in_system"]],
            color=PALETTE[i % len(PALETTE)],
            dash="dot",
        )
        for i, (name, series) in enumerate(tl.get("workloads", {}).items())
    ]
    charts.append(
        chart(
            "timeline-in-system",
            "Requests in the system (queued or being served) per workload",
            "; counted at the end of each bin",
            "requests in system (count)",
            in_system,
            y_from_zero=True,
        )
    )
    for kind in REPORT_KINDS.values():
        names = [n for n, k in kinds.items() if k is kind]
        if names:
            charts.append(
                chart(
                    f"timeline-batch-{kind.name}",
                    f"Mean batch size per pool ({kind.label})",
                    "; weighted by busy time",
                    f"mean batch ({kind.batch_unit})",
                    pool_series("mean_batch", names=names),
                    y_from_zero=True,
                )
            )
    per_chip = {n: 1.0 / doc["pools"][n]["chips"] for n in pools if doc["pools"][n].get("chips")}
    refs: list[RefLine] = []
    seen: set[tuple[float, str]] = set()
    for name in pools:
        p = doc["pools"][name]
        tdp = p["tdp_w"] / p["chips"] if _finite(p.get("tdp_w")) and p.get("chips") else None
        cap = p.get("power_cap_w")
        for value, what, dash in ((tdp, "TDP", "dash"), (cap, "cap", "dot")):
            if not _finite(value) or (what == "cap" and tdp is not None and value >= tdp):
                continue
            label = f"{p['chip']} {what} {format_quantity(value, 'W')}"
            if (value, label) not in seen:
                seen.add((value, label))
                refs.append(RefLine("y", value, label, dash, colour[name]))  # type: ignore[arg-type]
    charts.append(
        chart(
            "timeline-power",
            "Power per chip in each pool, against its TDP and power cap",
            "; the pool's power (idle included) over its chips, averaged over each bin; "
            "a cap line is drawn where the cap is below TDP",
            "power per chip (W)",
            pool_series("power_w", per_chip),
            y_from_zero=True,
            refs=refs,
        )
    )
    return charts


def perf_per_watt_charts(doc: dict[str, Any]) -> list[Chart]:
    """One bar per pool of the work it did per joule (queries/J, output tokens/J), one
    chart per unit of work that two pools or more count, with the fleet's figure beside
    them."""
    out = []
    for unit_kind in per_work_unit():
        names = [n for n in doc["pools"] if pool_kind(doc, n).work_key == unit_kind.work_key]
        values = [doc["pools"][n].get(unit_kind.per_joule_key) for n in names]
        shown = [(n, float(v)) for n, v in zip(names, values, strict=True) if _finite(v)]
        if len(shown) < 2:  # nothing to compare: the summary table gives the figure
            continue
        unit = unit_kind.per_joule_unit
        fleet = doc["totals"].get(unit_kind.per_joule_key)
        categories = [f"{n} ({doc['pools'][n]['chip']})" for n, _ in shown]
        colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(doc["pools"])}
        series = [
            Series(
                name=f"{n}",
                x=[float(i)],
                y=[v],
                labels=[f"{v:.3g}"],
                hover=[f"{n}: {v:.4g} {unit}"],
                color=colours[n],
                legend=False,  # the axis names each bar
            )
            for i, (n, v) in enumerate(shown)
        ]
        if _finite(fleet):
            categories.append("fleet")
            series.append(
                Series(
                    name="fleet (all its pools)",
                    x=[float(len(shown))],
                    y=[float(fleet)],
                    labels=[f"{fleet:.3g}"],
                    hover=[f"fleet: {fleet:.4g} {unit}"],
                    color="#555555",
                    legend=False,
                )
            )
        out.append(
            Chart(
                id=f"perfw-{unit_kind.work_key}",
                title=f"Perf/W per pool ({unit})",
                subtitle=(
                    f"{unit_kind.work_noun} served over the energy the pool drew in the "
                    "measured window, idle power included"
                ),
                x_label="pool (chip)",
                y_label=f"perf/W ({unit})",
                series=series,
                categories=categories,
                y_from_zero=True,
            )
        )
    return out


# ---------------------------------------------------------------------- studies


def _axis_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in row.get("axes", {}).items())


LOAD_HINTS = ("traffic", "rate_per_s")


def load_axes(axes: list[str]) -> list[str]:
    """The axes of a study that set the offered load (a workload's traffic)."""
    return [a for a in axes if any(h in a for h in LOAD_HINTS)]


def axes_affecting(
    axes: list[str], workload: str, serves: dict[str, list[str]] | None
) -> list[str]:
    """The axes that can change what ``workload`` sees: its own settings, those of the
    pools that serve it and of the workloads that share a pool with it, and any axis
    outside ``workloads.`` and ``pools.`` (the simulation, routing). ``serves`` maps each
    pool of the base scenario to the workloads it serves; without it every axis counts."""
    if serves is None:
        return list(axes)
    pools = {p for p, names in serves.items() if workload in names}
    neighbours = {w for p in pools for w in serves[p]} | {workload}
    out = []
    for axis in axes:
        head, _, rest = axis.partition(".")
        name = rest.split(".", 1)[0]
        if (
            (head == "workloads" and name in neighbours)
            or (head == "pools" and name in pools)
            or head not in ("workloads", "pools")
        ):
            out.append(axis)
    return out


def _groups(
    rows: list[dict[str, Any]], axes: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """Rows grouped into series by every axis except the load; whether a load axis exists."""
    load = load_axes(axes)
    others = [a for a in axes if a not in load]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = ", ".join(f"{a.rsplit('.', 1)[-1]}={row['axes'].get(a)}" for a in others) or "runs"
        groups.setdefault(key, []).append(row)
    if len(groups) > 8:
        chips = [a for a in others if a.endswith(".chip")]
        groups = {}
        for row in rows:
            key = ", ".join(f"chip={row['axes'].get(a)}" for a in chips) or "runs"
            groups.setdefault(key, []).append(row)
    return groups, bool(load)


def study_workloads(rows: list[dict[str, Any]]) -> dict[str, ReportKind]:
    """Workload name -> its kind, from the metric keys of the rows (which hold numbers only):
    a workload with a metric only one kind reports (an LLM's ``ttft_s``) is of that kind,
    any other of the default kind."""
    out: dict[str, ReportKind] = {}
    for row in rows:
        for key in row.get("metrics", {}):
            parts = key.split(".")
            if len(parts) >= 3 and parts[0] == "workloads":
                name = parts[1]
                marked = [k for k in REPORT_KINDS.values() if parts[2] in k.study_markers]
                if marked:
                    out[name] = marked[0]
                else:
                    out.setdefault(name, REPORT_KINDS[DEFAULT_KIND])
    return out


def throughput_latency_chart(rows: list[dict[str, Any]], axes: list[str], workload: str) -> Chart:
    """p99 latency against completed throughput, one series per setting of the non-load axes."""
    x_key, y_key = f"workloads.{workload}.throughput_per_s", f"workloads.{workload}.latency_s.p99"
    usable = [
        r for r in rows if _finite(r["metrics"].get(x_key)) and _finite(r["metrics"].get(y_key))
    ]
    groups, has_load = _groups(usable, axes)
    series = []
    for i, (name, group) in enumerate(groups.items()):
        group = sorted(group, key=lambda r: r["metrics"][x_key])
        series.append(
            Series(
                name=name,
                x=[r["metrics"][x_key] for r in group],
                y=[_ms(r["metrics"][y_key]) for r in group],
                mode="lines+markers" if has_load else "markers",
                hover=[f"{_axis_text(r)}; seed {r.get('seed')}" for r in group],
                color=PALETTE[i % len(PALETTE)],
                symbol=("circle", "square", "diamond", "triangle-up", "cross")[i % 5],
            )
        )
    refs = []
    notes = []
    ys = [v for s in series for v in s.y if v > 0]
    targets = [r["metrics"].get(f"workloads.{workload}.sla.latency_s") for r in usable]
    targets = [t for t in targets if _finite(t)]
    if targets and min(targets) == max(targets):
        if ys and _ms(targets[0]) > 3 * max(ys):  # drawn, it would squash every point
            notes.append(
                f"The SLA target ({_sec(targets[0])}) is far above every point: the worst p99 "
                f"is {max(ys):.3g} ms."
            )
        else:
            refs.append(
                RefLine("y", _ms(targets[0]), f"SLA target {_sec(targets[0])}", "dash", "#c00000")
            )
    y_log = bool(ys) and max(ys) / min(ys) > 30
    return Chart(
        id=f"throughput-latency-{workload}",
        title=f"Throughput vs p99 latency: {workload}",
        subtitle=(
            f"{len(usable)} runs; one series per setting of the other axes"
            + ("" if has_load else " (no load axis in this study: points, not curves)")
        ),
        x_label="completed throughput (requests/s)",
        y_label="p99 latency (ms" + (", log scale)" if y_log else ")"),
        series=series,
        y_log=y_log,
        y_from_zero=not y_log,
        refs=refs,
        notes=notes,
    )


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x, higher y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _perf_per_watt(row: dict[str, Any], key: str, pools: list[str]) -> float | None:
    """Perf/W of ``pools`` together (their work over their energy), or of the fleet when
    no pool is named or one lacks the figures."""
    m = row["metrics"]
    if pools:
        per_j = [m.get(f"pools.{p}.{key}") for p in pools]
        energy = [m.get(f"pools.{p}.energy_j") for p in pools]
        if all(_finite(v) for v in per_j + energy) and sum(energy) > 0:
            return float(sum(v * e for v, e in zip(per_j, energy, strict=True)) / sum(energy))
    total = m.get(f"totals.{key}")
    return float(total) if _finite(total) else None


def pareto_chart(
    rows: list[dict[str, Any]],
    workload: str,
    kind: ReportKind,
    axes: list[str] | None = None,
    serves: dict[str, list[str]] | None = None,
) -> Chart | None:
    """Perf/W (in the work the workload's kind counts, of the pools that serve it) against
    its p99 latency, over the axes that can affect it (:func:`axes_affecting`): runs that
    differ only in other axes are one setting, averaged. The Pareto front is the settings
    no other beats on both. None when the study has axes and none affects the workload."""
    axes = list(axes or [])
    affecting = axes_affecting(axes, workload, serves)
    if axes and not affecting:
        return None
    ignored = [a for a in axes if a not in affecting]
    pools = [p for p, names in (serves or {}).items() if workload in names]
    x_key = f"workloads.{workload}.latency_s.p99"
    settings: dict[str, list[tuple[float, float]]] = {}
    hover: dict[str, str] = {}
    for r in rows:
        lat, eff = r["metrics"].get(x_key), _perf_per_watt(r, kind.per_joule_key, pools)
        if not _finite(lat) or eff is None:
            continue
        shown = {a: r["axes"].get(a) for a in affecting}
        key = f"{_axis_text({'axes': shown})}; seed {r.get('seed')}"
        settings.setdefault(key, []).append((_ms(lat), eff))
        hover[key] = _axis_text({"axes": shown}) or "base scenario"
    keys = list(settings)
    pts = [
        (
            sum(p[0] for p in settings[k]) / len(settings[k]),
            sum(p[1] for p in settings[k]) / len(settings[k]),
        )
        for k in keys
    ]
    texts = [
        hover[k] + (f" ({len(settings[k])} runs averaged)" if len(settings[k]) > 1 else "")
        for k in keys
    ]
    front = pareto_front(pts)
    unit = kind.per_joule_unit
    whose = f"pool {', '.join(pools)}" if pools else "fleet"
    series = [
        Series(
            name="every run" if len(keys) == len(rows) else "every setting",
            x=[p[0] for p in pts],
            y=[p[1] for p in pts],
            mode="markers",
            hover=texts,
            color="#9a9a9a",
        ),
        Series(
            name=f"Pareto front ({len(front)} "
            + ("runs)" if len(keys) == len(rows) else "settings)"),
            x=[pts[i][0] for i in front],
            y=[pts[i][1] for i in front],
            mode="lines+markers",
            hover=[texts[i] for i in front],
            labels=[str(k) for k in range(1, len(front) + 1)] if len(front) <= 12 else None,
            color=PALETTE[1],
            symbol="diamond",
        ),
    ]
    xs = [p[0] for p in pts if p[0] > 0]
    x_log = bool(xs) and max(xs) / min(xs) > 30
    notes = []
    if ignored:
        notes.append(
            f"Axes that cannot affect {workload} are left out, and runs that differ only in "
            f"them averaged: {', '.join(ignored)}."
        )
    if front and len(front) <= 12:
        notes.append(
            "The front, from the lowest latency: "
            + "; ".join(
                f"{k}: {texts[i]} ({pts[i][0]:.3g} ms, {pts[i][1]:.3g} {unit})"
                for k, i in enumerate(front, 1)
            )
            + "."
        )
    return Chart(
        id=f"pareto-{workload}",
        title=f"Perf/W vs p99 latency: {workload}",
        subtitle=(
            "up and to the left is better; the front joins the points that no other point "
            f"beats on both ({whose} {unit}, {len(pts)} points from the whole study)"
        ),
        x_label="p99 latency (ms" + (", log scale)" if x_log else ")"),
        y_label=f"perf/W ({unit})",
        series=series,
        x_log=x_log,
        notes=notes,
    )


# ---------------------------------------------------------------------- renderers

# Where labels go around their points, in turn, so that close points' labels part:
# (plotly textposition, matplotlib offset x, offset y in points, horizontal alignment).
_LABEL_SPOTS = (
    ("top center", 0, 9, "center"),
    ("bottom right", 6, -9, "left"),
    ("top left", -6, 9, "right"),
    ("bottom left", -6, -9, "right"),
    ("middle right", 9, 0, "left"),
)


def _label_order(s: Series) -> list[int]:
    """For each point, the index of its label among the labelled points."""
    out, k = [], 0
    for text in s.labels or []:
        out.append(k)
        k += 1 if text else 0
    return out


def ref_series(chart: Chart) -> list[Series]:
    """The chart's reference lines as line series across the plotted range, so that each
    is named in the legend."""
    data = chart.drawn_series()
    xs = [v for s in data for v in s.x if _finite(v) and (v > 0 or not chart.x_log)]
    ys = [v for s in data for v in s.y if _finite(v) and (v > 0 or not chart.y_log)]
    out = []
    for ref in chart.refs:
        if ref.axis == "x":
            lo, hi = chart.y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))
            x, y = [ref.value, ref.value], [lo, hi]
        else:
            lo, hi = chart.x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
            x, y = [lo, hi], [ref.value, ref.value]
        out.append(Series(ref.label, x, y, color=ref.color, dash=ref.dash, width=1.5))
    return out


_DASH = {"solid": "solid", "dash": "dash", "dot": "dot"}


def _axis(
    label: str,
    log: bool,
    span: tuple[float, float] | None,
    from_zero: bool = False,
    values: Sequence[float] = (),
) -> dict[str, Any]:
    axis: dict[str, Any] = {
        "title": {"text": label},
        "type": "log" if log else "linear",
        "showgrid": True,
        "gridcolor": "#e5e5e5",
        "zeroline": False,
        "linecolor": "#444444",
        "mirror": True,
        "ticks": "outside",
        "exponentformat": "none",  # 8,000 ms, not 8k ms
        "separatethousands": True,
    }
    shown = [v for v in values if v > 0] if span is None else list(span)
    if log and (not shown or max(shown) / min(shown) >= 100):
        axis["dtick"] = 1  # a label at each power of ten, none in between
    if span is not None:
        axis["range"] = [math.log10(span[0]), math.log10(span[1])] if log else list(span)
    elif from_zero:
        axis["rangemode"] = "tozero"
    return axis


def plotly_figure(chart: Chart) -> dict[str, Any]:
    """A plotly.js figure (``{"data": [...], "layout": {...}}``) of the chart, as plain JSON
    data: it needs no plotly import, and ``plotly.graph_objects.Figure`` accepts it."""
    data: list[dict[str, Any]] = []
    for s in chart.drawn_series():
        if chart.categories is not None:
            bar: dict[str, Any] = {
                "type": "bar",
                "name": s.name,
                "x": [chart.categories[int(i)] for i in s.x],
                "y": s.y,
                "marker": {"color": s.color} if s.color else {},
                "showlegend": s.legend,
            }
            if s.labels:
                bar.update(text=s.labels, textposition="outside", cliponaxis=False)
            if s.hover:
                bar.update(hovertext=s.hover, hoverinfo="text+name")
            data.append(bar)
            continue
        trace: dict[str, Any] = {
            "type": "scatter",
            "name": s.name,
            "x": s.x,
            "y": s.y,
            "mode": s.mode + ("+text" if s.labels and any(s.labels) else ""),
            "showlegend": s.legend,
        }
        if "lines" in s.mode:
            trace["line"] = {"dash": _DASH[s.dash], "width": s.width}
            if s.color:
                trace["line"]["color"] = s.color
        if "markers" in s.mode:
            marker: dict[str, Any] = {
                "symbol": s.symbol,
                "line": {"width": 0.5, "color": "#222222"},
            }
            marker["size"] = s.sizes if s.sizes else 8
            if s.color:
                marker["color"] = s.color
            if s.sizes:
                marker["opacity"] = 0.8
            trace["marker"] = marker
            trace["cliponaxis"] = False  # a mark on the edge (a target) is drawn whole
        if s.labels and any(s.labels):
            trace["cliponaxis"] = False  # a label near the edge is not cut off
            trace["text"] = s.labels
            trace["textposition"] = [
                _LABEL_SPOTS[k % len(_LABEL_SPOTS)][0] for k in _label_order(s)
            ]
            trace["textfont"] = {"size": 11}
        if s.hover:
            trace["hovertext"] = s.hover
            trace["hoverinfo"] = "text+name"
        data.append(trace)
    for ref in ref_series(chart):
        data.append(
            {
                "type": "scatter",
                "name": ref.name,
                "x": ref.x,
                "y": ref.y,
                "mode": "lines",
                "line": {"dash": _DASH[ref.dash], "width": ref.width, "color": ref.color},
                "hoverinfo": "name",
            }
        )
    many = sum(1 for trace in data if trace.get("showlegend", True)) > 4 or chart.stacked
    layout: dict[str, Any] = {
        "title": {"text": chart.title, "x": 0.0, "xanchor": "left", "font": {"size": 16}},
        "xaxis": _axis(
            chart.x_label,
            chart.x_log,
            chart.x_range,
            values=[v for t in data for v in t["x"] if _finite(v)],
        ),
        "yaxis": _axis(
            chart.y_label,
            chart.y_log,
            chart.y_range,
            chart.y_from_zero,
            values=[v for t in data for v in t["y"] if _finite(v)],
        ),
        "template": "none",
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "font": {"family": "DejaVu Sans, Helvetica, Arial, sans-serif", "size": 13},
        "hovermode": "closest",
        "showlegend": True,
        "legend": (
            {"orientation": "h", "x": 0, "y": -0.22, "xanchor": "left", "yanchor": "top"}
            if many
            else {"x": 1.02, "y": 1, "xanchor": "left", "yanchor": "top"}
        ),
        "margin": {"l": 80, "r": 30 if many else 40, "t": 60, "b": 150 if many else 70},
        "height": 560 if many else 440,
    }
    if chart.stacked:
        layout["margin"] = {"l": 80, "r": 30, "t": 60, "b": 150}
        layout["height"] = 440
        layout["legend"]["y"] = -0.3
    if chart.categories is not None:
        layout["xaxis"] = {
            "title": {"text": chart.x_label},
            "type": "category",
            "categoryorder": "array",
            "categoryarray": chart.categories,
            "linecolor": "#444444",
            "mirror": True,
        }
        layout["barmode"] = "overlay"  # one bar per category
    return {"data": data, "layout": layout}


# ---------------------------------------------------------------------- matplotlib


_MPL_DASH = {"solid": "-", "dash": "--", "dot": ":"}
_MPL_MARKER = {
    "circle": "o",
    "diamond": "D",
    "square": "s",
    "triangle-up": "^",
    "cross": "P",
    "star": "*",
}


def save_static(chart: Chart, path: Path, fmt: Literal["png", "svg"]) -> None:
    """Draw the chart with matplotlib (no browser needed) into a PNG or SVG file."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.2), layout="constrained")
    ax = fig.add_subplot()
    drawn = chart.drawn_series()
    for order, s in enumerate(drawn):
        kwargs: dict[str, Any] = {  # later series on top
            "label": s.name if s.legend else "_nolegend_",
            "zorder": 2 + order,
        }
        if s.color:
            kwargs["color"] = s.color
        if chart.categories is not None:
            ax.bar(s.x, s.y, width=0.6, **kwargs)  # one bar per category
            if s.labels:
                for x, y, text in zip(s.x, s.y, s.labels, strict=False):
                    ax.annotate(
                        text,
                        (x, y),
                        textcoords="offset points",
                        xytext=(0, 3),
                        ha="center",
                        fontsize=8,
                    )
            continue
        if "markers" in s.mode and s.mode != "markers":
            ax.plot(
                s.x,
                s.y,
                linestyle=_MPL_DASH[s.dash],
                linewidth=s.width,
                marker=_MPL_MARKER.get(s.symbol, "o"),
                markersize=5,
                **kwargs,
            )
        elif s.mode == "markers":
            sizes = [v**2 for v in s.sizes] if s.sizes else 36
            ax.scatter(
                s.x,
                s.y,
                s=sizes,
                marker=_MPL_MARKER.get(s.symbol, "o"),
                alpha=0.8,
                edgecolors="#222222",
                linewidths=0.5,
                **kwargs,
            )
        else:
            ax.plot(s.x, s.y, linestyle=_MPL_DASH[s.dash], linewidth=s.width, **kwargs)
        if s.labels:
            for k, x, y, text in zip(_label_order(s), s.x, s.y, s.labels, strict=False):
                if text:
                    _, dx, dy, ha = _LABEL_SPOTS[k % len(_LABEL_SPOTS)]
                    ax.annotate(
                        text,
                        (x, y),
                        textcoords="offset points",
                        xytext=(dx, dy),
                        ha=ha,
                        va="center",
                        fontsize=8,
                    )
    for ref in chart.refs:
        line = ax.axvline if ref.axis == "x" else ax.axhline
        line(
            ref.value,
            linestyle=_MPL_DASH[ref.dash],
            color=ref.color,
            linewidth=1.2,
            label=ref.label,
        )
    if chart.categories is not None:
        ax.set_xticks(range(len(chart.categories)), chart.categories)
    if chart.x_log:
        ax.set_xscale("log")
    if chart.y_log:
        ax.set_yscale("log")
    if chart.x_range:
        ax.set_xlim(*chart.x_range)
    if chart.y_range:
        ax.set_ylim(*chart.y_range)
    elif chart.y_from_zero:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(chart.x_label)
    ax.set_ylabel(chart.y_label)
    subtitle = textwrap.fill(chart.subtitle, 120) if chart.subtitle else ""
    ax.set_title(chart.title + (f"\n{subtitle}" if subtitle else ""), loc="left", fontsize=11)
    if chart.notes:
        ax.annotate(
            "\n".join(textwrap.fill(n, 150) for n in chart.notes),
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(0, -42),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color="#444444",
            annotation_clip=False,
        )
    ax.grid(True, color="#e5e5e5")
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        if len(handles) > 4:
            legend = fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
        else:
            legend = ax.legend(fontsize=8, loc="best")
        for handle in legend.legend_handles:  # one marker size in the legend, whatever the share
            if handle is not None and hasattr(handle, "set_sizes"):
                handle.set_sizes([40])
    fig.savefig(path, format=fmt, dpi=110)
