"""A sweep's runs as one flat table: the rows of ``accelsim export`` and of the Python
API's ``load_study``.

One record per run: ``run_id``, ``status``, ``error``, ``wall_s``, ``replicate``,
``seed``, then ``axis.PATH`` for each axis, every metric, and ``warnings`` (joined
with `` | ``). An axis value written with a unit in the study file (``0.5 ms``,
``70%``, ``900 GB/s``) becomes its SI number (0.0005, 0.7, 9e11), as the scenario
reads it, so axis columns sort and plot as numbers; names stay text, and a mapping
or list value is its JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from accelsim.study.analysis import axis_keys, metric_keys
from accelsim.units import si_value

RUN_COLUMNS = ("run_id", "status", "error", "wall_s", "replicate", "seed")


def axis_cell(value: Any) -> Any:
    """An axis value as a table cell: a number for a quantity, JSON for a structure."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, str):
        number = si_value(value)
        return value if number is None else number
    return value


def run_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and flat records of a store's rows, in the rows' order."""
    axes = axis_keys(rows)
    metrics = metric_keys(rows)
    columns = [*RUN_COLUMNS, *(f"axis.{a}" for a in axes), *metrics, "warnings"]
    records = []
    for row in rows:
        record: dict[str, Any] = {c: row.get(c) for c in RUN_COLUMNS}
        for a in axes:
            record[f"axis.{a}"] = axis_cell(row.get("axes", {}).get(a))
        for m in metrics:
            record[m] = row.get("metrics", {}).get(m)
        record["warnings"] = " | ".join(row.get("warnings", [])) or None
        records.append(record)
    return columns, records
