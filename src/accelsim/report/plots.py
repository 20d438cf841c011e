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

from accelsim.report.kinds import DEFAULT_KIND, REPORT_KINDS, kind_of, pool_kind
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

    def drawn_series(self) -> list[Series]:
        return [s for s in self.series if s.x]


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ms(value: float) -> float:
    return value * 1e3


def _sec(value: float) -> str:
    return format_quantity(value, "s")


# ---------------------------------------------------------------------- latency CDF


def cdf_points(
    values: Sequence[float], quantiles: int = CDF_QUANTILES
) -> list[tuple[float, float]]:
    """``quantiles + 1`` points (value, share of the sample at or below it) of an empirical
    CDF, from the minimum to the maximum."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return []
    q = np.linspace(0.0, 1.0, quantiles + 1)
    return [(float(v), float(p)) for v, p in zip(np.quantile(data, q), q, strict=True)]


def _percentile_points(dist: dict[str, Any]) -> list[tuple[float, float]]:
    points = [
        (dist.get(k), p) for k, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    ]
    return [(float(v), p) for v, p in points if _finite(v)]


def latency_cdf_chart(
    name: str, workload: dict[str, Any], samples: dict[str, list[tuple[float, float]]] | None
) -> Chart:
    """The latency CDFs of one workload, those its kind has (LLM: end-to-end latency and
    TTFT), with its SLA's target.

    ``samples`` maps ``latency_s`` (and ``ttft_s``) to CDF points from the run's own
    records; without them the chart is drawn from the document's percentiles."""
    kind = kind_of(workload)
    series: list[Series] = []
    refs: list[RefLine] = []
    keys = [key for key, _ in kind.cdf_series]
    exact = bool(samples) and any(samples.get(k) for k in keys)  # type: ignore[union-attr]
    for i, (key, label) in enumerate(kind.cdf_series):
        points = (samples or {}).get(key) if exact else _percentile_points(workload.get(key) or {})
        if not points:
            continue
        series.append(
            Series(
                name=label,
                x=[_ms(v) for v, _ in points],
                y=[100 * p for _, p in points],
                mode="lines" if exact else "lines+markers",
                hover=[f"{label} {_ms(v):.4g} ms: {100 * p:.3g}% at or below" for v, p in points],
                labels=None if exact else ["p50", "p90", "p99", "max"][-len(points) :],
                color=PALETTE[i],
            )
        )
        mean = (workload.get(key) or {}).get("mean")
        if _finite(mean):
            refs.append(RefLine("x", _ms(mean), f"mean {label} {_sec(mean)}", "dot", PALETTE[i]))
    target, what = kind.sla_target(workload.get("sla") or {})
    if _finite(target):
        refs.append(RefLine("x", _ms(target), f"{what} {_sec(target)}", "dash", "#c00000"))
    values = [v for s in series for v in s.x if v > 0]
    x_log = bool(values) and max(values) / min(values) > 50
    x_range = None
    notes = []
    if values and _finite(target) and _ms(target) > 3 * max(values):
        # A target far beyond every request would squash the curve: leave it off the chart.
        refs = [r for r in refs if r.color != "#c00000"]
        notes.append(
            f"The latency target ({_sec(target)}) is far to the right of the chart: "
            f"every completed request took at most {max(values):.3g} ms."
        )
        if not x_log:
            x_range = (0.0, max(values) * 1.05)
    if exact:
        subtitle = (
            f"{workload.get('completed', 0):,} completed requests of the measured window, "
            f"{CDF_QUANTILES} quantiles"
        )
    else:
        subtitle = (
            "drawn from the percentiles in the result document (p50, p90, p99, max) only; "
            "`accelsim run --report` draws the full curve from every request"
        )
    return Chart(
        id=f"cdf-{name}",
        title=f"Latency CDF: {name} ({workload.get('model', '')})",
        subtitle=subtitle,
        x_label="latency (ms)" + (", log scale" if x_log else ""),
        y_label="requests finished within it (%)",
        series=series,
        x_log=x_log,
        x_range=x_range,
        y_range=(0.0, 101.0),
        refs=refs,
        notes=notes,
    )


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


def _op_points(ops: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    placed, skipped = [], []
    for op in ops:
        ai, flops, t = op.get("arithmetic_intensity"), op.get("flops"), op.get("time_s")
        if _finite(ai) and ai > 0 and _finite(flops) and flops > 0 and _finite(t) and t > 0:
            placed.append(op)
        else:
            skipped.append(str(op["name"]))
    return placed, skipped


def roofline_chart(
    doc: dict[str, Any], frame: RooflineFrame, chart_id: str, context: str = ""
) -> Chart:
    """The chip's roofline with the ops of an explain document placed on it: each op at its
    arithmetic intensity and the FLOP/s it attains (FLOPs over its time, overheads
    included); marker area follows the op's share of the time."""
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
        placed, left_out = _op_points(step.ops)
        skipped += [f"{n} ({step.phase})" if len(steps) > 1 else n for n in left_out]
        x = [float(op["arithmetic_intensity"]) for op in placed]
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
                    f"{op['arithmetic_intensity']:.3g} FLOP/B, "
                    f"{format_quantity(op['flops'] / op['time_s'], 'ops/s', unit='FLOP/s')}"
                    for op in placed
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
        "Roofs are achievable rates (peak x efficiency), as in `accelsim explain`; an op sits "
        "below its roof by its kernel overhead and, on the memory side, by random-gather "
        "efficiency. Marker area follows each op's share of the time."
    ]
    if skipped:
        notes.append(f"Not on the chart (no arithmetic to place): {', '.join(skipped)}.")
    return Chart(
        id=chart_id,
        title=f"Roofline: {what}",
        subtitle=(context + "; " if context else "") + ", ".join(step.label for step in steps),
        x_label="arithmetic intensity (FLOP/B, log scale)",
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
    """Utilisation, requests in system, batch size, power (and KV use) over the window."""
    tl = doc.get("timeline")
    if not tl or not tl.get("t_s"):
        return []
    t0 = [float(t) for t in tl["t_s"]]
    bin_s = float(tl["bin_s"])
    centre = [t + bin_s / 2 for t in t0]
    end = [t + bin_s for t in t0]
    pools: dict[str, Any] = tl.get("pools", {})
    kinds = {name: pool_kind(doc, name) for name in doc["pools"]}
    subtitle = f"{len(t0)} bins of {format_quantity(bin_s, 's')} over the measured window"

    def pool_series(
        key: str, scale: float = 1.0, names: Sequence[str] | None = None
    ) -> list[Series]:
        out = []
        for i, (name, series) in enumerate(pools.items()):
            if names is not None and name not in names:
                continue
            values = series.get(key)
            if not values:
                continue
            pts = [(t, v * scale) for t, v in zip(centre, values, strict=False) if _finite(v)]
            out.append(
                Series(
                    name=f"{name} ({doc['pools'][name]['chip']})",
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    color=PALETTE[i % len(PALETTE)],
                )
            )
        return out

    charts = [
        Chart(
            id="timeline-utilization",
            title="Utilisation per pool",
            subtitle=subtitle + "; busy chip-time over chip-time",
            x_label="simulated time (s)",
            y_label="utilisation (%)",
            series=pool_series("utilization", 100.0),
            y_range=(0.0, 105.0),
        )
    ]
    in_system = [
        Series(
            name=name,
            x=end,
            y=[float(v) for v in series["in_system"]],
            color=PALETTE[i % len(PALETTE)],
        )
        for i, (name, series) in enumerate(tl.get("workloads", {}).items())
    ]
    charts.append(
        Chart(
            id="timeline-in-system",
            title="Requests in the system (queued or being served) per workload",
            subtitle=subtitle + "; counted at the end of each bin",
            x_label="simulated time (s)",
            y_label="requests in system (count)",
            series=in_system,
            y_from_zero=True,
        )
    )
    for kind in REPORT_KINDS.values():
        names = [n for n, k in kinds.items() if k is kind]
        if not names:
            continue
        charts.append(
            Chart(
                id=f"timeline-batch-{kind.name}",
                title=f"Mean batch size per pool ({kind.label})",
                subtitle=subtitle + "; weighted by busy time",
                x_label="simulated time (s)",
                y_label=f"mean batch ({kind.batch_unit})",
                series=pool_series("mean_batch", names=names),
                y_from_zero=True,
            )
        )
    power = pool_series("power_w")
    if len(power) > 1:
        total = [0.0] * len(centre)
        for series in pools.values():
            for k, v in enumerate(series.get("power_w", [])):
                total[k] += v if _finite(v) else 0.0
        power.append(Series(name="fleet total", x=centre, y=total, color="#000000", dash="dot"))
    charts.append(
        Chart(
            id="timeline-power",
            title="Power per pool (average over each bin, idle power included)",
            subtitle=subtitle,
            x_label="simulated time (s)",
            y_label="power (W)",
            series=power,
            y_from_zero=True,
        )
    )
    kv = pool_series("kv_utilization", 100.0)
    if kv:
        charts.append(
            Chart(
                id="timeline-kv",
                title="KV-cache use per LLM pool",
                subtitle=subtitle + "; share of the replicas' KV capacity, weighted by busy time",
                x_label="simulated time (s)",
                y_label="KV cache in use (%)",
                series=kv,
                y_range=(0.0, 105.0),
            )
        )
    return charts


# ---------------------------------------------------------------------- studies


def _axis_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in row.get("axes", {}).items())


LOAD_HINTS = ("traffic", "rate_per_s")


def _groups(
    rows: list[dict[str, Any]], axes: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """Rows grouped into series by every axis except the load; whether a load axis exists."""
    load = [a for a in axes if any(h in a for h in LOAD_HINTS)]
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
    targets = [r["metrics"].get(f"workloads.{workload}.sla.latency_s") for r in usable]
    targets = [t for t in targets if _finite(t)]
    if targets and min(targets) == max(targets):
        refs.append(
            RefLine("y", _ms(targets[0]), f"SLA target {_sec(targets[0])}", "dash", "#c00000")
        )
    ys = [v for s in series for v in s.y if v > 0]
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
        refs=refs,
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


def pareto_chart(rows: list[dict[str, Any]], workload: str, kind: ReportKind) -> Chart:
    """Perf/W (in the work the workload's kind counts) against p99 latency; the Pareto front
    is the runs no other run beats on both."""
    x_key = f"workloads.{workload}.latency_s.p99"
    y_key = f"totals.{kind.per_joule_key}"
    usable = [
        r for r in rows if _finite(r["metrics"].get(x_key)) and _finite(r["metrics"].get(y_key))
    ]
    pts = [(_ms(r["metrics"][x_key]), float(r["metrics"][y_key])) for r in usable]
    front = pareto_front(pts)
    unit = kind.per_joule_unit
    series = [
        Series(
            name="every run",
            x=[p[0] for p in pts],
            y=[p[1] for p in pts],
            mode="markers",
            hover=[_axis_text(r) for r in usable],
            color="#9a9a9a",
        ),
        Series(
            name=f"Pareto front ({len(front)} runs)",
            x=[pts[i][0] for i in front],
            y=[pts[i][1] for i in front],
            mode="lines+markers",
            hover=[_axis_text(usable[i]) for i in front],
            labels=[str(k) for k in range(1, len(front) + 1)] if len(front) <= 12 else None,
            color=PALETTE[1],
            symbol="diamond",
        ),
    ]
    xs = [p[0] for p in pts if p[0] > 0]
    x_log = bool(xs) and max(xs) / min(xs) > 30
    return Chart(
        id=f"pareto-{workload}",
        title=f"Perf/W vs p99 latency: {workload}",
        subtitle=(
            "up and to the left is better; the front joins the runs that no other run beats on "
            f"both (fleet {unit}, whole study of {len(usable)} runs)"
        ),
        x_label="p99 latency (ms" + (", log scale)" if x_log else ")"),
        y_label=f"perf/W ({unit})",
        series=series,
        x_log=x_log,
        notes=[
            "The front, from the lowest latency: "
            + "; ".join(
                f"{k}: {_axis_text(usable[i])} ({pts[i][0]:.3g} ms, {pts[i][1]:.3g} {unit})"
                for k, i in enumerate(front, 1)
            )
            + "."
        ]
        if front and len(front) <= 12
        else [],
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
    label: str, log: bool, span: tuple[float, float] | None, from_zero: bool = False
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
    if log:
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
        trace: dict[str, Any] = {
            "type": "scatter",
            "name": s.name,
            "x": s.x,
            "y": s.y,
            "mode": s.mode + ("+text" if s.labels and any(s.labels) else ""),
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
    many = len(data) > 4
    layout: dict[str, Any] = {
        "title": {"text": chart.title, "x": 0.0, "xanchor": "left", "font": {"size": 16}},
        "xaxis": _axis(chart.x_label, chart.x_log, chart.x_range),
        "yaxis": _axis(chart.y_label, chart.y_log, chart.y_range, chart.y_from_zero),
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
    return {"data": data, "layout": layout}


# ---------------------------------------------------------------------- matplotlib


_MPL_DASH = {"solid": "-", "dash": "--", "dot": ":"}
_MPL_MARKER = {"circle": "o", "diamond": "D", "square": "s", "triangle-up": "^", "cross": "P"}


def save_static(chart: Chart, path: Path, fmt: Literal["png", "svg"]) -> None:
    """Draw the chart with matplotlib (no browser needed) into a PNG or SVG file."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.2), layout="constrained")
    ax = fig.add_subplot()
    for order, s in enumerate(chart.drawn_series()):
        kwargs: dict[str, Any] = {"label": s.name, "zorder": 2 + order}  # later series on top
        if s.color:
            kwargs["color"] = s.color
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
