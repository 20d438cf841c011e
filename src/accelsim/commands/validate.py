"""``accelsim validate``: fidelity checks against closed forms, the comparison with public
measurements (``--fidelity``), and config-file checks (``--configs``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim.commands.common import (
    TableFormat,
    TableFormatOption,
    console,
    dump_json,
    stderr,
    user_errors,
)

# SI prefixes for the table: the largest whose scale is at most the value.
_PREFIXES = (
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("", 1.0),
    ("m", 1e-3),
    ("µ", 1e-6),
    ("n", 1e-9),
)


def register(app: typer.Typer) -> None:
    app.command()(validate)


@user_errors
def validate(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="With --configs: more YAML files to check (chip, model, scenario, study). "
            "With --fidelity: a measurements CSV instead of the shipped one.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    configs: Annotated[
        bool,
        typer.Option(
            "--configs",
            help="Load every shipped YAML file, and each FILE, instead of running the checks.",
        ),
    ] = False,
    fidelity: Annotated[
        bool,
        typer.Option(
            "--fidelity",
            help="Compare accelsim with public measurements on real chips instead of running "
            "the checks; exit 1 if the errors exceed their bounds.",
        ),
    ] = False,
    markdown: Annotated[
        bool,
        typer.Option("--markdown", help="With --fidelity: print the table as Markdown."),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Ten times fewer queries per check (wider intervals)."),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of a table.")
    ] = False,
    fmt: TableFormatOption = TableFormat.table,
) -> None:
    """Check the simulator against closed-form answers (M/D/1, M/M/1, M/M/c, Little's law,
    roofline, energy); exit 1 if any check fails. With --fidelity, compare it with public
    measurements instead; with --configs, load every shipped YAML file and report each one."""
    from accelsim.errors import AccelsimError

    if fidelity and configs:
        raise AccelsimError("--fidelity and --configs are separate runs: give one of them")
    if markdown and (not fidelity or json_out):
        raise AccelsimError("--markdown goes with --fidelity, and not with --json")
    if fidelity:
        if quick:
            raise AccelsimError("--quick sets the checks' query budget; --fidelity has none")
        if paths and len(paths) > 1:
            raise AccelsimError("--fidelity reads one measurements file")
        _validate_measured(paths[0] if paths else None, json_out, markdown, fmt)
        return
    if configs:
        _validate_configs(list(paths or []), json_out)
        return
    if paths:
        raise AccelsimError(
            f"{paths[0]}: files are checked with --configs (accelsim validate --configs FILE...)"
        )
    _validate_fidelity(quick, json_out, fmt)


# ------------------------------------------------------------------- fidelity


def _validate_fidelity(quick: bool, json_out: bool, fmt: TableFormat) -> None:
    from accelsim import __version__
    from accelsim.validation import CHECKS, FULL, NOT_CHECKED, QUICK, run_checks

    budget = QUICK if quick else FULL
    start = time.perf_counter()
    if not json_out and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("validating", total=len(CHECKS))
            results = run_checks(budget, progress=lambda _r: bar.advance(task))
    else:
        results = run_checks(budget)
    seconds = time.perf_counter() - start
    failed = [r for r in results if not r.passed]
    if json_out:
        doc = {
            "schema_version": 1,
            "accelsim_version": __version__,
            "kind": "validation",
            "quick": quick,
            "queries_per_check": budget.queries,
            "passed": not failed,
            "seconds": round(seconds, 2),
            "checks": [r.to_json() for r in results],
            "not_checked": list(NOT_CHECKED),
        }
        sys.stdout.write(dump_json(doc))
    else:
        out = console(fmt)
        out.print(_table(results, budget.queries, quick))
        out.print(
            f"confidence interval: simulated mean ± {budget.z:g} standard errors (batch means "
            f"over {budget.batches} batches in arrival order).\nA statistical check passes when "
            "the closed form lies inside it, an identity when it agrees to a relative 1e-9."
        )
        for item in NOT_CHECKED:
            out.print(f"not checked: {item}")
        out.print(
            f"{len(results) - len(failed)} of {len(results)} checks passed in {seconds:.1f} s "
            f"({budget.queries:,} queries per statistical check)"
        )
    if failed:
        for result in failed:
            stderr(f"error: check {result.id} failed: {result.note or result.criterion}")
        raise typer.Exit(1)


def _table(results: list[Any], queries: int, quick: bool) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"accelsim validate{' --quick' if quick else ''}",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("check")
    for column in ("expected", "simulated", "error", "confidence interval"):
        table.add_column(column, justify="right")
    table.add_column("result")
    for r in results:
        lo_hi = [v for v in (r.ci_low, r.ci_high) if v is not None]
        values = _scaled([r.expected, r.simulated, *lo_hi], r.unit)
        interval = f"{values[2]} – {values[3]}" if lo_hi else "identity"
        table.add_row(
            r.name,
            values[0],
            values[1],
            _percent(r.error),
            interval,
            Text("pass", style="green") if r.passed else Text("FAIL", style="bold red"),
        )
    return table


def _percent(error: float) -> str:
    import math

    return "-" if not math.isfinite(error) else f"{100 * error:+.3f}%"


def _scaled(values: list[float], unit: str) -> list[str]:
    """Values in one SI prefix (that of the largest) and the unit, e.g. '1.5001 ms'."""
    import math

    finite = [abs(v) for v in values if math.isfinite(v)]
    if unit in ("", "queries"):
        return [f"{v:.5g}" if math.isfinite(v) else "-" for v in values]
    top = max(finite, default=0.0)
    prefix, scale = next(((p, s) for p, s in _PREFIXES if top >= s), _PREFIXES[-1])
    return [f"{v / scale:.5g} {prefix}{unit}" if math.isfinite(v) else "-" for v in values]


# ---------------------------------------------------------- public measurements


def _validate_measured(path: str | None, json_out: bool, markdown: bool, fmt: TableFormat) -> None:
    from accelsim import __version__
    from accelsim.validation.fidelity import fidelity_table
    from accelsim.validation.fidelity import markdown as markdown_table

    table = fidelity_table(None if path is None else Path(path))
    violations = table.bound_violations()
    if json_out:
        doc = {
            "schema_version": 1,
            "accelsim_version": __version__,
            "kind": "fidelity",
            **table.to_json(),
        }
        sys.stdout.write(dump_json(doc))
    elif markdown:
        from accelsim.validation.calibrate import calibrated_errors

        sys.stdout.write(markdown_table(table, calibrated_errors(table)))
    else:
        out = console(fmt)
        out.print(_measured_table(table))
        out.print()
        out.print(_summary_table(table))
        out.print(
            "error = accelsim / measured - 1: negative when accelsim is faster.\n"
            "accelsim: one step alone on one replica at the nominal clock.\n"
            "measured: * derived from a measured figure, as the row's notes in the\n"
            f"measurements file say:\n{table.source}\n"
            "The bounds apply to all rows and to the holdout rows."
        )
    for line in violations:
        stderr(f"error: {line}")
    if violations:
        raise typer.Exit(1)


def _measured_table(table: Any) -> Any:
    from rich import box
    from rich.table import Table

    from accelsim.validation.fidelity import percent, seconds

    out = Table(
        title="accelsim validate --fidelity",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=0,
    )
    out.add_column("id")
    out.add_column("figure")
    out.add_column("model")
    out.add_column("chips")
    for column in ("measured", "accelsim", "error"):
        out.add_column(column, justify="right")
    out.add_column("set")
    for c in table.comparisons:
        m = c.measurement
        out.add_row(
            m.id,
            m.figure,
            Path(m.model_file).stem,
            m.chips,
            seconds(m.measured_s) + ("*" if m.kind == "D" else ""),
            seconds(c.accelsim_s),
            percent(c.error),
            "fit" if m.split == "fit" else "hold",
        )
    return out


def _summary_table(table: Any) -> Any:
    from rich import box
    from rich.table import Table

    from accelsim.validation.fidelity import SUMMARY_HEADER, summary_rows

    out = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    out.add_column(SUMMARY_HEADER[0])
    for column in SUMMARY_HEADER[1:]:
        out.add_column(column, justify="right")
    for cells in summary_rows(table):
        out.add_row(*cells)
    return out


# -------------------------------------------------------------------- configs


def _validate_configs(paths: list[str], json_out: bool) -> None:
    from accelsim.config.files import check_config_file, shipped_config_files
    from accelsim.model.checks import scenario_problems

    checks = [
        check_config_file(path, kind, shown, scenario_problems)
        for shown, kind, path in shipped_config_files()
    ]
    checks += [check_config_file(Path(p), None, p, scenario_problems) for p in paths]
    failed = [c for c in checks if not c.ok]
    for c in failed:
        for line in c.errors:
            stderr(f"error: {line}")
    if json_out:
        doc = {
            "schema_version": 1,
            "kind": "config-validation",
            "passed": not failed,
            "files": [c.to_json() for c in checks],
        }
        sys.stdout.write(dump_json(doc))
    else:
        for c in checks:
            if c.ok:
                print(f"ok: {c.path} ({c.kind})")
        print(f"{len(checks)} files checked: {len(checks) - len(failed)} ok, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
