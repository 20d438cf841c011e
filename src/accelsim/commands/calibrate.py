"""``accelsim calibrate``: fit a chip's efficiency and overhead parameters to measured rows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim.commands.common import (
    Output,
    TableFormat,
    TableFormatOption,
    console,
    dump_json,
    refuse_overwriting_inputs,
    stderr,
    user_errors,
    write_atomic,
)


def register(app: typer.Typer) -> None:
    app.command()(calibrate)


@user_errors
def calibrate(
    measurements: Annotated[
        str,
        typer.Argument(
            help="A measurements CSV of the fidelity table's shape (see docs/fidelity.md)."
        ),
    ],
    chip: Annotated[
        str,
        typer.Option("--chip", help="The base chip: a name or a YAML path; its rows are fitted."),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME",
            help="A parameter to fit, repeatable (default: all; an unknown name lists them).",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Write the fitted profile (extends: the base chip)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the fit as JSON instead of tables.")
    ] = False,
    fmt: TableFormatOption = TableFormat.table,
) -> None:
    """Fit the chip's efficiencies and kernel overhead to the rows marked `fit` that were
    measured on it (bounded least squares on log(accelsim / measured)), print every row's
    error before and after and the held-out error, and optionally write the fitted profile."""
    from accelsim.config.loader import files_read, load_chip
    from accelsim.validation.calibrate import DEFAULT_PARAMETERS, calibrate, fitted_profile
    from accelsim.validation.fidelity import load_measurements

    base = load_chip(chip)
    refuse_overwriting_inputs(
        [Path(measurements), *files_read(chip, "chip")], Output("--output", out)
    )
    rows = load_measurements(Path(measurements))
    result = calibrate(rows, base, tuple(param) if param else DEFAULT_PARAMETERS)
    if json_out:
        sys.stdout.write(dump_json(_document(result)))
    else:
        view = console(fmt)
        view.print(_rows_table(result))
        view.print()
        view.print(_params_table(result))
        view.print()
        view.print(_summary_table(result))
    if out is not None:
        write_atomic(Path(out), fitted_profile(result, chip, measurements))
        stderr(f"wrote {out}")


def _document(result: Any) -> dict[str, Any]:
    from accelsim import __version__

    def summary(after: bool, split: str | None) -> dict[str, Any]:
        s = result.summary(after, split)
        return {
            "rows": s.rows,
            "median_abs_error": s.median_abs_error,
            "worst_abs_error": s.worst_abs_error,
            "worst_id": s.worst_id,
        }

    return {
        "schema_version": 1,
        "accelsim_version": __version__,
        "kind": "calibration",
        "chip": result.chip.name,
        "parameters": {
            name: {"initial": result.initial[name], "fitted": value}
            for name, value in result.fitted.items()
        },
        "rows": [
            {
                "id": b.measurement.id,
                "split": b.measurement.split,
                "measured_s": b.measurement.measured_s,
                "before_s": b.accelsim_s,
                "after_s": a.accelsim_s,
                "error_before": b.error,
                "error_after": a.error,
            }
            for b, a in zip(result.before, result.after, strict=True)
        ],
        "summary": {
            f"{split or 'all'}_{when}": summary(when == "after", split)
            for split in (None, "fit", "holdout")
            for when in ("before", "after")
        },
    }


def _table(title: str | None = None) -> Any:
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )


def _rows_table(result: Any) -> Any:
    from accelsim.validation.fidelity import percent, seconds

    out = _table(f"calibrate {result.chip.name}: every row measured on it")
    out.add_column("id")
    out.add_column("figure")
    out.add_column("model")
    for column in ("measured", "before", "after"):
        out.add_column(column, justify="right")
    out.add_column("set")
    for b, a in zip(result.before, result.after, strict=True):
        m = b.measurement
        out.add_row(
            m.id,
            m.figure,
            Path(m.model_file).stem,
            seconds(m.measured_s),
            percent(b.error),
            percent(a.error),
            "fit" if m.split == "fit" else "hold",
        )
    return out


def _params_table(result: Any) -> Any:
    out = _table()
    out.add_column("parameter")
    out.add_column("base", justify="right")
    out.add_column("fitted", justify="right")
    for name, value in result.fitted.items():
        out.add_row(name, f"{result.initial[name]:.4g}", f"{value:.4g}")
    return out


def _summary_table(result: Any) -> Any:
    from accelsim.validation.fidelity import percent

    out = _table()
    out.add_column("rows")
    out.add_column("count", justify="right")
    for column in ("median |err| before", "after", "worst before", "after"):
        out.add_column(column, justify="right")
    for split in ("fit", "holdout"):
        b, a = result.summary(False, split), result.summary(True, split)
        out.add_row(
            split,
            str(b.rows),
            percent(b.median_abs_error).lstrip("+"),
            percent(a.median_abs_error).lstrip("+"),
            percent(b.worst_abs_error).lstrip("+"),
            percent(a.worst_abs_error).lstrip("+"),
        )
    return out
