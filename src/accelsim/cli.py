"""The ``accelsim`` command line: the only module that prints or writes files.

Heavy imports (numpy, simpy, the engine) happen inside commands, so
``accelsim --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim import __version__
from accelsim.commands.common import (
    Output,
    PlaceholderGroup,
    TableFormat,
    TableFormatOption,
    complete_shipped,
    refuse_overwriting_inputs,
    user_errors,
    write_atomic,
)
from accelsim.commands.common import console as _console
from accelsim.commands.common import dump_json as _dump
from accelsim.commands.common import emit_json as _emit_json
from accelsim.commands.common import stderr as _stderr
from accelsim.commands.report import ReportFormat


class Percentiles(StrEnum):
    """Where a run's latency percentiles come from (see ``runner.run_resolved``)."""

    auto = "auto"
    exact = "exact"
    sketch = "sketch"


_Format = TableFormatOption
# A command that draws charts too takes either kind of format in one --format.
_TableOrReportFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        metavar="table|csv|markdown|html|png|svg",
        help="The tables as a table (default), csv or markdown; or, with --report, "
        "the report as html (default), png or svg.",
    ),
]

app = typer.Typer(
    name="accelsim",
    help=(
        "Simulate inference serving on fleets of hypothetical accelerators: ranking "
        "(DLRM-like recommendation models) and LLM inference (dense or mixture-of-experts, "
        "continuous batching, tensor parallelism). Reports latency percentiles (TTFT and "
        "TPOT for LLMs), throughput, utilisation, power, energy and cost."
    ),
    cls=PlaceholderGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
hardware_app = typer.Typer(
    help="Chip profiles (all shipped ones are hypothetical).",
    no_args_is_help=True,
    cls=PlaceholderGroup,
)
workloads_app = typer.Typer(
    help="Shipped models and scenarios.", no_args_is_help=True, cls=PlaceholderGroup
)
studies_app = typer.Typer(
    help="Shipped studies (sweeps).", no_args_is_help=True, cls=PlaceholderGroup
)
app.add_typer(hardware_app, name="hardware")
app.add_typer(workloads_app, name="workloads")
app.add_typer(studies_app, name="studies")


def _version(value: bool) -> None:
    if value:
        print(f"accelsim {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """accelsim: what if we served this ranking model or this LLM on that chip, under that
    power budget?"""


@app.command()
@user_errors
def run(
    scenario: Annotated[
        str | None,
        typer.Argument(
            help="A shipped scenario name or a YAML path (default: ranking-mtia-vs-gpu).",
            autocompletion=complete_shipped("scenario"),
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Override a field by dotted path, e.g. pools.gpu.count=4 (repeatable).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override simulation.seed.", min=0)] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the result document to this file ('-' for stdout)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no summary or progress.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write a report of the run: an HTML file, or with --format png|svg a "
            "folder of chart images (needs the 'report' extra).",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="table|csv|markdown|html|png|svg",
            help="The summary as a table (default), csv or markdown; or, with --report, "
            "the report as html (default), png or svg.",
        ),
    ] = None,
    requests: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="Also write every request's record (arrival, finish, latencies, pool, ...) "
            "to this .csv or .parquet file.",
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Refuse a run expected to need more memory than this, e.g. '8 GiB' "
            "(default: half of this machine's memory).",
        ),
    ] = None,
    percentiles: Annotated[
        Percentiles,
        typer.Option(
            help="exact: keep every query's record; sketch: stream ranking records into "
            "summaries of flat memory, percentiles within 0.5%; auto: sketch above 1,000,000 "
            "expected ranking queries.",
        ),
    ] = Percentiles.auto,
) -> None:
    """Simulate a scenario and print its summary (the default scenario if none is given)."""
    from accelsim.commands import report as reporting
    from accelsim.errors import AccelsimError
    from accelsim.runner import load_checked
    from accelsim.units import UnitError, parse_quantity

    try:
        max_memory_bytes = None if max_memory is None else parse_quantity(max_memory, "bytes")
    except UnitError as exc:
        raise AccelsimError(f"--max-memory: {exc}") from None
    if max_memory_bytes is not None and max_memory_bytes <= 0:
        raise AccelsimError(f"--max-memory: {max_memory!r} is not a positive size")

    table_format, report_format = _run_formats(fmt, report is not None)
    if report is not None and percentiles is Percentiles.sketch:
        raise AccelsimError("--report draws exact latency CDFs: it needs --percentiles exact")
    if requests is not None and percentiles is Percentiles.sketch:
        raise AccelsimError("--requests keeps every request: it needs --percentiles exact")
    # A report and a per-request export keep every record (exact percentiles).
    keeps_records = report is not None or requests is not None
    if report is not None:
        reporting.require_plotting(report_format)
    if requests is not None:
        from accelsim.api import check_table_path

        check_table_path(requests)
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"simulation.seed={seed}")
    resolved = load_checked(
        scenario, overrides, max_memory_bytes, "exact" if keeps_records else percentiles.value
    )
    refuse_overwriting_inputs(
        resolved.sources,
        Output("--json", json_out),
        reporting.report_output("--report", report, report_format),
        Output("--requests", requests),
    )

    from accelsim.runner import run_resolved, run_with_records

    with reporting.run_progress(f"simulating {resolved.scenario.name}", not quiet) as tick:
        if keeps_records:
            doc, records = run_with_records(resolved, tick)
        else:
            doc = run_resolved(resolved, tick, percentiles.value)
    if json_out is not None:
        _emit_json(doc, json_out)
    if requests is not None:
        from accelsim.api import Result, write_table
        from accelsim.metrics.requests import request_columns

        table = Result(doc, request_columns(resolved, records)).requests
        write_table(table, requests)
        if not quiet and json_out != "-":
            _stderr(f"wrote {requests} ({len(table)} requests)")
    if not quiet and json_out != "-":
        from accelsim.report.tables import result_view

        _console(table_format).print(result_view(doc))
        if json_out is not None:
            _stderr(f"wrote {json_out}")
    if report is not None:
        from accelsim.report.html import request_latencies, result_report

        built = result_report(doc, samples=request_latencies(records), resolved=resolved)
        reporting.write_report(built, report, report_format, quiet or json_out == "-")


def _run_formats(fmt: str | None, has_report: bool) -> tuple[TableFormat, ReportFormat]:
    """``run --format``: a table format for the summary, or a report format."""
    from accelsim.errors import AccelsimError, did_you_mean

    tables, reports = [f.value for f in TableFormat], [f.value for f in ReportFormat]
    if fmt is None or fmt in tables:
        return TableFormat(fmt or "table"), ReportFormat.html
    if fmt in reports:
        if not has_report:
            raise AccelsimError(f"--format {fmt} goes with --report PATH")
        return TableFormat.table, ReportFormat(fmt)
    raise AccelsimError(f"--format: unknown format {fmt!r}{did_you_mean(fmt, tables + reports)}")


@app.command()
@user_errors
def explain(
    chip: Annotated[
        str, typer.Option(help="Chip name or YAML path.", autocompletion=complete_shipped("chip"))
    ],
    model: Annotated[
        str,
        typer.Option(
            help="Ranking or LLM model name, or a YAML path.",
            autocompletion=complete_shipped("model"),
        ),
    ],
    batch: Annotated[
        int,
        typer.Option(help="Items in a ranking batch, or sequences in an LLM decode step.", min=1),
    ] = 256,
    context: Annotated[
        int, typer.Option(help="LLM: KV tokens each decoding sequence holds.", min=1)
    ] = 2048,
    prompt: Annotated[int, typer.Option(help="LLM: prompt tokens to prefill.", min=1)] = 2048,
    chips_per_replica: Annotated[
        int, typer.Option("--chips-per-replica", "--tp", help="LLM: tensor-parallel chips.", min=1)
    ] = 1,
    pipeline: Annotated[
        int, typer.Option("--pp", help="LLM: pipeline stages (layers split over them).", min=1)
    ] = 1,
    micro_batches: Annotated[
        int | None,
        typer.Option(
            "--micro-batches", help="LLM: micro-batches per iteration (default: --pp).", min=1
        ),
    ] = None,
    expert: Annotated[
        int,
        typer.Option("--ep", help="LLM: expert-parallel degree (a mixture of experts).", min=1),
    ] = 1,
    power_cap: Annotated[
        str | None,
        typer.Option("--power-cap", help="Per-chip power cap, e.g. '300 W' (default: TDP)."),
    ] = None,
    confidential: Annotated[
        bool,
        typer.Option(
            "--confidential",
            help="Run the chip in confidential-computing (encrypted) mode, as a pool with "
            "confidential: true does.",
        ),
    ] = False,
    speculative_tokens: Annotated[
        int | None,
        typer.Option(
            "--speculative-tokens",
            help="LLM: also cost a speculative decode step proposing this many tokens.",
            min=1,
            max=16,
        ),
    ] = None,
    acceptance: Annotated[
        float | None,
        typer.Option(
            help="LLM: probability that each proposed token is accepted.", min=0.0, max=1.0
        ),
    ] = None,
    draft: Annotated[
        str | None,
        typer.Option(
            help="LLM: the draft model proposing the tokens (default: one MTP module).",
            autocompletion=complete_shipped("model"),
        ),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the breakdown as JSON to this file ('-' for stdout)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also draw the roofline with the reading: an HTML file, or with --format "
            "png|svg a folder of chart images (needs the 'report' extra).",
        ),
    ] = None,
    fmt: _TableOrReportFormat = None,
) -> None:
    """Show where a batch's time goes, op by op, on a roofline (LLM: prefill and decode;
    with --pp / --ep, the pipeline bubble, stage-to-stage transfer and expert all-to-all;
    with --speculative-tokens, a speculative decode step)."""
    from accelsim.commands import report as reporting
    from accelsim.config.loader import files_read, load_chip, load_model
    from accelsim.config.schema import Confidential, LLMModel, Speculative, confidential_chip
    from accelsim.errors import AccelsimError
    from accelsim.report.explain import explain as explain_doc
    from accelsim.units import UnitError, parse_quantity

    try:
        cap_w = None if power_cap is None else parse_quantity(power_cap, "W")
    except UnitError as exc:
        raise AccelsimError(f"--power-cap: {exc}") from None
    if (speculative_tokens is None) != (acceptance is None):
        raise AccelsimError("--speculative-tokens and --acceptance go together")
    if draft is not None and speculative_tokens is None:
        raise AccelsimError("--draft needs --speculative-tokens and --acceptance")
    table_format, report_format = _run_formats(fmt, report is not None)
    if report is not None:
        reporting.require_plotting(report_format)
    cwd = Path.cwd()
    the_model, the_chip = load_model(model, cwd), load_chip(chip, cwd)
    the_draft = None if draft is None else load_model(draft, cwd)
    if the_draft is not None and not isinstance(the_draft, LLMModel):
        raise AccelsimError(f"--draft: {the_draft.name} is a {the_draft.kind} model, not an LLM")
    speculative = None
    if speculative_tokens is not None and acceptance is not None:
        speculative = Speculative(
            draft_model=draft,
            mtp_heads=None if draft is not None else 1,
            tokens=speculative_tokens,
            acceptance_rate=acceptance,
        )
    overheads = (the_chip.confidential or Confidential()).model_dump(mode="json")
    if confidential:
        the_chip = confidential_chip(the_chip)
    refuse_overwriting_inputs(
        [
            *files_read(chip, "chip", cwd),
            *files_read(model, "model", cwd),
            *(files_read(draft, "model", cwd) if draft is not None else ()),
        ],
        Output("--json", json_out),
        reporting.report_output("--report", report, report_format),
    )
    doc = explain_doc(
        the_model,
        the_chip,
        batch,
        context_tokens=context,
        prompt_tokens=prompt,
        chips_per_replica=chips_per_replica,
        power_cap_w=cap_w,
        pipeline=pipeline,
        expert=expert,
        micro_batches=micro_batches,
        speculative=speculative,
        draft=the_draft,
    )
    if confidential:
        doc["confidential"] = overheads
    if json_out is not None:
        _emit_json(doc, json_out)
    if json_out != "-":
        from accelsim.report.tables import explain_view

        _console(table_format).print(explain_view(doc))
    if report is not None:
        from accelsim.report.html import explain_report

        reporting.write_report(explain_report(doc, the_chip), report, report_format, False)


@app.command()
@user_errors
def schema(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND", help="chip, model, scenario, study or plan.", show_default=True
        ),
    ] = "scenario",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write to this file.")
    ] = None,
) -> None:
    """Print (or write) the JSON Schema (draft-07) of a kind of config file, for editors
    and validators; the files in schemas/ are its output."""
    from accelsim.config.json_schema import SCHEMA_KINDS, json_schema
    from accelsim.errors import AccelsimError, did_you_mean

    if kind not in SCHEMA_KINDS:
        raise AccelsimError(f"unknown schema kind {kind!r}{did_you_mean(kind, SCHEMA_KINDS)}")
    text = _dump(json_schema(kind))
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
        _stderr(f"wrote {out}")


def _load_all(kind: str) -> list[Any]:
    from accelsim.config.loader import catalog, load_chip, load_model

    loader = load_chip if kind == "chip" else load_model
    return [loader(name) for name in catalog(kind)]  # type: ignore[arg-type]


@hardware_app.command("list")
@user_errors
def hardware_list(fmt: _Format = TableFormat.table) -> None:
    """List the shipped chip profiles, each with a one-line description."""
    from rich.console import Group

    from accelsim.report.tables import chip_list_view

    chips = _load_all("chip")
    about = _name_table("chips", [(chip.name, _first_sentence(chip.description)) for chip in chips])
    _console(fmt).print(Group(about, chip_list_view(chips)))


def _first_sentence(text: str) -> str:
    """A description's first sentence (up to its first full stop or colon): one line."""
    text = " ".join(text.split())
    ends = [i for i in (text.find(". "), text.find(": ")) if i > 0]
    return (text[: min(ends)] if ends else text).rstrip(".")


def _name_table(title: str, rows: Sequence[tuple[str, ...]], *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, header_style="bold", title_justify="left")
    for column in ("name", *columns, "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


@hardware_app.command("show")
@user_errors
def hardware_show(
    name: Annotated[
        str,
        typer.Argument(help="Chip name or YAML path.", autocompletion=complete_shipped("chip")),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    fmt: _Format = TableFormat.table,
) -> None:
    """Show every field of one chip profile (after `extends:`), with derived ridge points."""
    from rich.table import Table

    from accelsim.config.loader import load_chip
    from accelsim.model.roofline import TIERS, ChipRates

    chip = load_chip(name, Path.cwd())
    data = chip.model_dump(mode="json")
    if json_out:
        sys.stdout.write(_dump(data))
        return
    table = Table(
        title=f"{chip.name}" + (" (hypothetical)" if chip.hypothetical else ""), header_style="bold"
    )
    table.add_column("field")
    table.add_column("value")
    for path, value in _flatten(data):
        table.add_row(path, _with_unit(path, value))
    rates = ChipRates(chip)
    for dtype in chip.compute.matrix_flops_per_s:
        ridges = ", ".join(
            f"{t} {rates.ridge_point(dtype, t):.3g}" for t in TIERS if rates.has_tier(t)
        )
        table.add_row(f"ridge point {dtype} (FLOP/B)", ridges)
    _console(fmt).print(table)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, data)]


_SUFFIX_DIMENSIONS = (
    ("_bytes_per_s", "bytes/s"),
    ("_flops_per_s", "ops/s"),
    ("_per_s", "1/s"),
    ("_per_byte_j", "J/byte"),
    ("_per_flop_j", "J/op"),
    ("_bytes", "bytes"),
    ("_hz", "Hz"),
    ("_w", "W"),
    ("_s", "s"),
)


def _with_unit(path: str, value: Any) -> str:
    from accelsim.units import format_quantity

    if isinstance(value, float) and not isinstance(value, bool):
        parts = path.split(".")
        for part in (parts[-1], parts[-2] if len(parts) > 1 else ""):
            for suffix, dimension in _SUFFIX_DIMENSIONS:
                if part.endswith(suffix):
                    if dimension == "ops/s":
                        unit = "OP/s" if parts[-1] == "int8" else "FLOP/s"
                        return format_quantity(value, dimension, unit=unit)
                    return format_quantity(value, dimension)
        return f"{value:g}"
    return "-" if value is None else str(value)


@workloads_app.command("list")
@user_errors
def workloads_list(fmt: _Format = TableFormat.table) -> None:
    """List the shipped models and scenarios."""
    from rich.console import Group
    from rich.table import Table

    from accelsim.config.loader import catalog, load_document

    models = Table(title="models", header_style="bold", title_justify="left")
    models.add_column("name")
    models.add_column("kind")
    models.add_column("description")
    for model in _load_all("model"):
        models.add_row(model.name, model.kind, model.description)
    scenarios = Table(title="scenarios", header_style="bold", title_justify="left")
    scenarios.add_column("name")
    scenarios.add_column("description")
    for name, path in catalog("scenario").items():
        doc = load_document(path, "scenario")
        scenarios.add_row(name, str(doc.data.get("description", "")))
    _console(fmt).print(Group(models, scenarios))


@workloads_app.command("show")
@user_errors
def workloads_show(
    name: Annotated[str, typer.Argument(help="A shipped model or scenario name, or a YAML path.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print it as JSON (every field, defaults too).")
    ] = False,
    fmt: _Format = TableFormat.table,
) -> None:
    """Show every field of one model or scenario (after `extends:`, with defaults)."""
    from rich.table import Table

    from accelsim.config.files import guess_kind
    from accelsim.config.loader import catalog, load_model, load_scenario, resolve_path
    from accelsim.errors import AccelsimError, did_you_mean

    models, scenarios = catalog("model"), catalog("scenario")
    if name in models or name in scenarios:
        kind = "model" if name in models else "scenario"
    elif name.endswith((".yaml", ".yml")) or "/" in name:
        try:
            kind = guess_kind(resolve_path(name, Path.cwd()))
        except KeyError as exc:
            raise AccelsimError(f"{name}: {exc.args[0]}") from None
        if kind not in ("model", "scenario"):
            raise AccelsimError(f"{name}: a {kind} file (see `accelsim hardware show`)")
    else:
        known = [*models, *scenarios]
        raise AccelsimError(f"no model or scenario named {name!r}{did_you_mean(name, known)}")
    if kind == "model":
        shown: Any = load_model(name, Path.cwd())
        title = f"{shown.name} ({shown.kind} model)"
    else:
        shown = load_scenario(name).scenario
        title = f"{shown.name} (scenario)"
    data = shown.model_dump(mode="json")
    if json_out:
        sys.stdout.write(_dump(data))
        return
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for path, value in _flatten(data):
        if path != "description":
            table.add_row(path, _with_unit(path, value))
    _console(fmt).print(table)


@studies_app.command("list")
@user_errors
def studies_list(fmt: _Format = TableFormat.table) -> None:
    """List the shipped studies: their base scenario, their axes and what they ask."""
    from accelsim.config.loader import catalog
    from accelsim.config.study import load_study

    rows = []
    for name in catalog("study"):
        study = load_study(name).study
        axes = ", ".join(path for group in study.axes for path in group.paths())
        rows.append((name, study.base, axes, _first_sentence(study.description)))
    _console(fmt).print(_name_table("studies", rows, "base", "axes"))


# Commands of other features live in accelsim.commands.*; each module has a
# register(app) that adds its commands (keeping heavy imports inside them).
def _register_commands() -> None:
    from accelsim.commands import COMMAND_MODULES

    for module in COMMAND_MODULES:
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
