"""Building blocks of the terminal tables: number cells, a table with right-aligned numbers,
and the op table and summary lines of a roofline breakdown."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from accelsim.units import format_quantity


def qty(value: float | None, dimension: str, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format_quantity(value, dimension, digits)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3g}"


def sec(value: float | None) -> str:
    return qty(value, "s")


CI_NOTE = "±: the wider side of the p99's 95% confidence interval (?: too few samples)"
"""The caption of a table whose p99 cells carry their interval."""

_SCALES = {"": 1.0, "k": 1e3, "m": 1e-3, "µ": 1e-6, "n": 1e-9, "p": 1e-12}


def _half_width(dist: dict[str, Any], key: str) -> float | None:
    """The wider side of a percentile's interval; nan when it has no upper end; None when
    the document gives no interval (one written before intervals were reported)."""
    value = dist.get(key)
    interval = (dist.get("ci95") or {}).get(key)
    if value is None or interval is None:
        return None
    low, high = interval.get("low"), interval.get("high")
    if high is None:
        return math.nan
    return float(max(high - value, value - (value if low is None else low)))


def _plus_minus(number: str, half: float | None, scale: float) -> str:
    """`` ±x`` in the unit ``scale`` and to the last digit ``number`` shows, rounded up
    (so ``1.27`` with a half-width of 0.0009 reads ``1.27 ±0.01``)."""
    if half is None:
        return ""
    if math.isnan(half):
        return " ±?"
    decimals = len(number.split(".")[1]) if "." in number else 0
    step = 10.0**-decimals
    return f" ±{math.ceil(half / scale / step - 1e-9) * step:.{decimals}f}"


def ms_ci(dist: dict[str, Any], key: str = "p99") -> str:
    """A percentile in milliseconds with its interval: ``1.27 ±0.01``."""
    number = ms(dist.get(key))
    return number + _plus_minus(number, _half_width(dist, key), 1e-3)


def sec_ci(dist: dict[str, Any], key: str = "p99") -> str:
    """A percentile in seconds with a prefix, and its interval in that unit:
    ``117 ±12 ms``."""
    text = sec(dist.get(key))
    if text == "-":
        return text
    number, unit = text.split(" ", 1)
    return f"{number}{_plus_minus(number, _half_width(dist, key), _SCALES[unit[:-1]])} {unit}"


def table(title: str | None, columns: list[str], left: int = 2) -> Table:
    """A table whose first ``left`` columns are text and the rest right-aligned numbers."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        out.add_column(col, justify="left" if i < left else "right")
    return out


def ops_table(title: str, ops: list[dict[str, Any]]) -> Table:
    """One row per op of an explain document: what bounds it, its time, FLOPs and bytes."""
    out = table(
        title,
        ["op", "bound", "time", "share", "FLOPs", "bytes", "FLOP/B", "compute", "memory"],
    )
    for op in ops:
        ai = op["arithmetic_intensity"]
        style = {"compute": "cyan", "overhead": "magenta"}.get(op["bound"], "")
        out.add_row(
            op["name"],
            Text(op["bound"], style=style),
            qty(op["time_s"], "s"),
            pct(op["share"]),
            f"{op['flops']:.3g}",
            qty(op["bytes"], "bytes"),
            "-" if ai is None else f"{ai:.3g}",
            qty(op["compute_time_s"], "s"),
            qty(sum(op["memory_time_s"].values()), "s"),
        )
    return out


def ridge_line(doc: dict[str, Any]) -> Text:
    ridges = ", ".join(
        f"{tier} {value:.3g}" for tier, value in doc["ridge_point_flops_per_byte"].items()
    )
    return Text(f"ridge points ({doc['dtype']} FLOP per byte streamed): {ridges}")


def energy_line(totals: dict[str, Any]) -> Text:
    parts = totals["energy_by_component_j"]
    total = sum(parts.values())
    split = ", ".join(
        f"{name} {100 * value / total:.0f}%" for name, value in parts.items() if value > 0
    )
    return Text(
        f"energy {qty(totals['energy_j'], 'J')} ({split}), average power "
        f"{qty(totals['avg_power_w'], 'W')} (TDP {qty(totals['tdp_w'], 'W')})"
    )


def cap_line(totals: dict[str, Any]) -> Text:
    capped = totals["capped"]
    if capped["clock_ratio"] >= 1.0:
        return Text(f"under a {qty(totals['power_cap_w'], 'W')} cap: runs at the nominal clock")
    stall = f", plus {qty(capped['stall_s'], 's')} of stall" if capped["stall_s"] > 0 else ""
    return Text(
        f"under a {qty(totals['power_cap_w'], 'W')} cap: clock {100 * capped['clock_ratio']:.0f}% "
        f"of nominal ({qty(capped['clock_hz'], 'Hz')}){stall}, {capped['slowdown']:.2f}x the "
        f"time, {qty(capped['avg_power_w'], 'W')}",
        style="yellow",
    )
