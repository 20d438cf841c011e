"""Rich tables for the study commands (built here, printed by the commands)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Group as RichGroup
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from accelsim.study.analysis import Group, ParetoResult
from accelsim.study.capacity import CapacityAnswer
from accelsim.units import format_quantity


def _dimension(key: str) -> str | None:
    parts = key.split(".")
    for part in reversed(parts[-2:]):
        if part.endswith("_per_s") or part.endswith("_per_j"):
            return None
        if part.endswith("_s"):
            return "s"
        if part.endswith("_w"):
            return "W"
        if part.endswith("_j"):
            return "J"
    return None


_SHARES = {"utilization", "sla_attainment", "met"}
"""Keys whose values (or means over replicates, for booleans) are shares in [0, 1]."""


def fmt(value: Any, key: str = "") -> str:
    """A value for a table cell; units follow from the key's suffix (``_s``, ``_w``, ``_j``)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        last = key.rsplit(".", 1)[-1]
        if last in _SHARES and 0 <= value <= 1:
            return f"{100 * value:.1f}%"
        dimension = _dimension(key)
        if dimension is not None:
            return format_quantity(value, dimension, digits=4)
        if 1000 <= abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key ends with."""
    out: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(other != key and other.endswith("." + suffix) for other in keys) and (
                suffix not in keys or suffix == key
            ):
                out[key] = suffix
                break
        else:
            out[key] = key
    return out


def relative_spread(group: Group, key: str) -> str:
    """`` ±s%``: the replicates' sample standard deviation as a share of their mean (empty
    for one replicate or a mean of zero)."""
    mean, spread = group.mean(key), group.spread(key)
    if mean is None or spread is None or mean == 0:
        return ""
    share = 100 * spread / abs(mean)
    return f" ±{share:.1f}%" if share < 9.95 else f" ±{share:.0f}%"


def sweep_view(
    title: str, groups: Sequence[Group], axes: Sequence[str], metrics: Sequence[str]
) -> RenderableType:
    """One line per point of the axes: its axis values, and each headline metric as the
    mean over its replicates that ran, with their spread (``±`` the sample standard
    deviation as a share of the mean) when there are several."""
    names = short_names([*axes, *metrics])
    table = Table(title=title, title_justify="left", header_style="bold")
    for axis in axes:
        table.add_column(names[axis])
    for metric in metrics:
        table.add_column(names[metric], justify="right")
    table.add_column("runs ok", justify="right")
    warned = any(r.get("warnings") for g in groups for r in g.rows)
    if warned:
        table.add_column("warned", justify="right")
    for group in groups:
        cells = [fmt(group.axes.get(a)) for a in axes]
        cells += [fmt(group.mean(m), m) + relative_spread(group, m) for m in metrics]
        ok, total = len(group.ok), len(group.rows)
        cells.append(f"{ok}/{total}" if ok == total else f"[red]{ok}[/]/{total}")
        if warned:
            n = sum(bool(r.get("warnings")) for r in group.rows)
            cells.append(f"[yellow]{n}[/]" if n else "")
        table.add_row(*cells)
    return table


def pareto_view(result: ParetoResult, *, show_all: bool = False) -> RenderableType:
    axes = list(dict.fromkeys(k for p in result.points for k in p["axes"]))
    names = short_names(axes)
    verb = {"min": "minimise", "max": "maximise"}
    title = f"Pareto frontier: {verb[result.x_goal]} {result.x}, {verb[result.y_goal]} {result.y}"
    table = Table(header_style="bold")
    for axis in axes:
        table.add_column(names[axis])
    table.add_column(result.x, justify="right")
    table.add_column(result.y, justify="right")
    table.add_column("runs", justify="right")
    if show_all:
        table.add_column("frontier")
    on_front = set(result.frontier)
    order = (
        result.frontier
        if not show_all
        else sorted(
            range(len(result.points)), key=lambda i: (result.points[i]["x"], result.points[i]["y"])
        )
    )
    for i in order:
        point = result.points[i]
        cells = [fmt(point["axes"].get(a)) for a in axes]
        cells += [fmt(point["x"], result.x), fmt(point["y"], result.y), str(point["runs"])]
        if show_all:
            cells.append("yes" if i in on_front else "")
        table.add_row(*cells)
    notes = [
        f"{len(result.frontier)} of {len(result.points)} points on the frontier"
        + (f"; {result.excluded} left out (no value, or an SLA missed)" if result.excluded else "")
    ]
    return RichGroup(Text(title), table, *(Text(n) for n in notes))


def run_length(seconds: float) -> str:
    """A simulated duration for people: milli- to hundreds of seconds with a prefix,
    longer ones in whole seconds ("2,400 s", not "2.4 ks")."""
    return format_quantity(seconds, "s", 4) if seconds < 1000 else f"{seconds:,.0f} s"


def capacity_view(answer: CapacityAnswer) -> RenderableType:
    """The probes of a search, and its answer."""
    criterion = answer.question.criterion
    several = len(answer.question.seeds) > 1
    table = Table(
        title=f"probes ({criterion.describe()})", title_justify="left", header_style="bold"
    )
    table.add_column("chips" if answer.question.search == "min_chips" else "rate", justify="right")
    table.add_column("run", justify="right")
    for bound in criterion.bounds:
        table.add_column(bound.label, justify="right")
    if several:
        table.add_column("per seed", justify="right")
    table.add_column("attained", justify="right")
    table.add_column("in flight", justify="right")
    table.add_column("sustained")
    for p in answer.result.probes:
        cells = [f"{p.value:,.6g}", "-" if p.duration_s is None else run_length(p.duration_s)]
        cells += [fmt(v, "latency_s") for v in p.statistics]
        if several:
            cells.append(" ".join(fmt(v, "latency_s") for v in p.per_seed[0]))
        cells += [
            "-" if p.attainment is None else f"{100 * p.attainment:.2f}%",
            f"{100 * p.in_flight_share:.1f}%",
            "[green]yes[/]"
            if p.sustained
            else "[red]no[/]" + (" (backlog)" if p.growing or p.backlogged else ""),
        ]
        table.add_row(*cells)
    return RichGroup(table, Text(capacity_line(answer)))


def capacity_line(answer: CapacityAnswer) -> str:
    """The answer in one line: the value, the nearest failure, how long a run held it."""
    q, r = answer.question, answer.result
    what = q.criterion.describe()
    held = (
        f"; held over {run_length(answer.confirmed_duration_s)} runs"
        if answer.confirmed_duration_s is not None
        else ""
    )
    if q.search == "max_rate":
        if r.best is None:
            return f"no rate sustains {what}: {r.note}"
        if r.at_least:
            return f"sustains at least {r.best:,.6g} /s within {what} ({r.note}){held}"
        failed = f" (not at {r.fails_at:,.6g} /s{held})" if r.fails_at else f" ({r.note}{held})"
        return f"largest rate within {what}: {r.best:,.6g} /s" + failed
    if r.best is None:
        return f"no chip count sustains {what}: {r.note}"
    failed = f"{r.fails_at:g} do not" if r.fails_at else ""
    tail = "; ".join(t for t in (failed, held.removeprefix("; ")) if t)
    return f"fewest chips for {what}: {r.best:g}" + (f" ({tail})" if tail else "")


def compare_view(
    name_a: str, name_b: str, rows: Sequence[tuple[str, Any, Any, float | None]]
) -> RenderableType:
    table = Table(header_style="bold")
    table.add_column("metric")
    table.add_column(f"A: {name_a}", justify="right")
    table.add_column(f"B: {name_b}", justify="right")
    table.add_column("B/A", justify="right")
    for key, a, b, ratio in rows:
        table.add_row(key, fmt(a, key), fmt(b, key), "-" if ratio is None else f"{ratio:.3g}")
    return table
