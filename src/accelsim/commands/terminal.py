"""Printing the tables of the CLI: fitted to the terminal, or as CSV or Markdown.

Every command prints through :func:`accelsim.commands.common.console`, whose ``print``
passes each table through here:

- ``table`` (the default) draws it with rich at the terminal's width. A table too wide
  for it first wraps its headers and text cells (rich does that); a table that would
  still have to cut a cell (rich's ``…``) is turned on its side (one column per row,
  when that fits: a comparison of a few pools or workloads stays side by side), or else
  stacked (one block per row, a line per cell). So no number is ever cut short, at 80
  columns or fewer.
- ``csv`` prints each table as CSV (a blank line between tables) and every other line
  (totals, notes) on standard error, so that standard output is the data alone.
- ``markdown`` prints each table as a Markdown table under its title, and other lines
  as paragraphs.
"""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from accelsim.commands.common import TableFormat

ELLIPSIS = "…"


def plain(cell: Any) -> str:
    """A cell's text without style or markup."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except MarkupError:
            return cell
    return str(cell)


def table_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    """A rich table's headers and rows as plain text."""
    headers = [plain(column.header) for column in table.columns]
    cells = [[plain(cell) for cell in column.cells] for column in table.columns]
    rows = [list(row) for row in zip(*cells, strict=True)] if cells else []
    return headers, rows


def _parts(renderable: Any) -> list[Any]:
    """The renderables of a group (nested groups flattened), or the renderable itself."""
    if isinstance(renderable, Group):
        return [part for item in renderable.renderables for part in _parts(item)]
    return [renderable]


def _draw(renderable: RenderableType, width: int) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, soft_wrap=False).print(renderable)
    return buffer.getvalue()


def _cuts_a_cell(table: Table, width: int) -> bool:
    """Whether rich, at this width, would cut a cell short (more ellipses than the
    table's own text holds)."""
    headers, rows = table_rows(table)
    own = sum(text.count(ELLIPSIS) for text in [*headers, *(c for r in rows for c in r)])
    return _draw(table, width).count(ELLIPSIS) > own


def stacked(table: Table) -> RenderableType:
    """The rows of a table one below the other: the row's first cell, then each other
    column's header and cell, indented."""
    headers, rows = table_rows(table)
    parts: list[RenderableType] = []
    if table.title:
        parts.append(Text(plain(table.title), style="bold"))
    for row in rows:
        if not any(row):
            continue
        block = Table.grid(padding=(0, 1))
        block.add_column(no_wrap=True, style="dim")
        block.add_column(overflow="fold")
        for header, cell in zip(headers[1:], row[1:], strict=True):
            block.add_row(f"  {header}", cell)
        parts += [Text(f"{headers[0]}: {row[0]}" if headers[0] else row[0], style="bold"), block]
    if table.caption:
        parts.append(Text(plain(table.caption)))
    return Group(*parts)


def transposed(table: Table) -> Table:
    """The table turned on its side: one column per row (headed by the row's first cell),
    one row per other column; a narrow table when there are few rows."""
    headers, rows = table_rows(table)
    out = Table(title=table.title, title_justify="left", header_style="bold")
    out.add_column(headers[0])
    for row in rows:
        out.add_column(row[0], justify="right")
    for i, header in enumerate(headers[1:], 1):
        out.add_row(header, *(row[i] for row in rows))
    out.caption, out.caption_justify = table.caption, "left"
    return out


def _fitted(table: Table, width: int) -> RenderableType:
    """The table as drawn, else turned on its side, else stacked: the first that cuts no
    cell at ``width``."""
    if not _cuts_a_cell(table, width):
        return table
    _, rows = table_rows(table)
    if rows and len(rows) <= 6:
        side = transposed(table)
        if not _cuts_a_cell(side, width):
            return side
    return stacked(table)


def _fold_text(table: Table) -> Table:
    """Let a text (left-aligned) column break a word too long for it over lines rather
    than cut it; numbers (right-aligned) are left as they are, so that one cut is seen."""
    for column in table.columns:
        if column.justify in ("left", "default") and column.overflow == "ellipsis":
            column.overflow = "fold"
    return table


def fit(renderable: Any, width: int) -> Any:
    """The renderable with each table drawn so that no cell is cut at ``width``."""
    parts = [_fold_text(p) if isinstance(p, Table) else p for p in _parts(renderable)]
    fitted = [_fitted(p, width) if isinstance(p, Table) else p for p in parts]
    if len(parts) == 1 and fitted[0] is renderable:
        return renderable
    return Group(*fitted)


def as_csv(table: Table) -> str:
    headers, rows = table_rows(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or " "


def as_markdown(table: Table) -> str:
    headers, rows = table_rows(table)
    right = [column.justify == "right" for column in table.columns]
    lines = [f"**{_md_cell(plain(table.title))}**", ""] if table.title else []
    lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    if table.caption:
        lines += ["", _md_cell(plain(table.caption))]
    return "\n".join(lines) + "\n"


class TableConsole(Console):
    """A rich console whose ``print`` fits tables to its width, or writes them as CSV
    or Markdown."""

    def __init__(self, table_format: TableFormat = TableFormat.table, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_format = table_format
        self._blocks = 0  # tables and paragraphs written to the file so far

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.table_format is TableFormat.table:
            super().print(*(fit(o, self.width) for o in objects), **kwargs)
            return
        for obj in objects:
            for part in _parts(obj):
                self._write(part)

    def _write(self, part: Any) -> None:
        if isinstance(part, Table):
            render = as_csv if self.table_format is TableFormat.csv else as_markdown
            block = render(part)
        else:
            text = _draw(part, 10_000).rstrip("\n")
            if not text.strip():
                return
            if self.table_format is TableFormat.csv:
                print(text, file=sys.stderr)
                return
            block = text + "\n"
        self.file.write(("\n" if self._blocks else "") + block)
        self._blocks += 1
