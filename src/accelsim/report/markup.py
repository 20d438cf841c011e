"""Building blocks of the HTML report: escaped text, number cells and tables."""

from __future__ import annotations

import html
from typing import Any

from accelsim.report.wording import finite
from accelsim.units import format_quantity


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def qty(value: Any, dimension: str) -> str:
    if not finite(value):
        return "-"
    if dimension == "FLOP":
        return format_quantity(value, "ops/s", unit="FLOP")
    return format_quantity(value, dimension)


def pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if finite(value) else "-"


def rate(value: Any) -> str:
    """A count per second, without exponent notation."""
    if not finite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def num(value: Any, fmt: str = ".4g") -> str:
    return format(value, fmt) if finite(value) else "-"


def table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """A table of HTML cells; headers are escaped here, cells must be already."""
    head, body = _head_and_body(headers, rows, numeric_from)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _head_and_body(headers: list[str], rows: list[list[str]], numeric_from: int) -> tuple[str, str]:
    """The header cells and the body rows, columns from ``numeric_from`` right-aligned."""
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return head, body


def sla_cell(w: dict[str, Any]) -> str:
    """A workload's SLA attainment, marked met or missed."""
    sla = w.get("sla")
    if not sla:
        return "-"
    mark = '<span class="ok">met</span>' if sla.get("met") else '<span class="bad">missed</span>'
    return f"{pct(w.get('sla_attainment'))} {mark}"


def ops_table(ops: list[dict[str, Any]]) -> str:
    """One row per op of an explain document."""
    rows = [
        [
            esc(op["name"]),
            esc(op["bound"]),
            qty(op["time_s"], "s"),
            pct(op["share"]),
            qty(op["flops"], "FLOP"),
            qty(op["bytes"], "bytes"),
            num(op["arithmetic_intensity"], ".3g"),
        ]
        for op in ops
    ]
    return table(["op", "bound", "time", "share", "FLOPs", "bytes", "FLOP/B"], rows, 2)


def grouped_table(
    groups: list[tuple[str, list[str]]], rows: list[list[str]], numeric_from: int = 1
) -> str:
    """A table whose columns come in named groups (a header row of group names over the
    column headers), so that each header stays short: ``groups`` is (group name, column
    headers) in order, "" for columns without a group. Cells must be escaped already."""
    top = "".join(
        f'<th colspan="{len(cols)}" class="group">{esc(name)}</th>' for name, cols in groups if cols
    )
    headers = [h for _, cols in groups for h in cols]
    head, body = _head_and_body(headers, rows, numeric_from)
    return f"<table><thead><tr>{top}</tr><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
