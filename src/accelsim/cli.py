"""The ``accelsim`` command line: the only module that prints or writes files.

Heavy imports (numpy, simpy, the engine) happen inside commands, so
``accelsim --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim import __version__
from accelsim.commands.common import Output, refuse_overwriting_inputs, user_errors, write_atomic
from accelsim.commands.common import console as _console
from accelsim.commands.common import dump_json as _dump
from accelsim.commands.common import emit_json as _emit_json
from accelsim.commands.common import stderr as _stderr
from accelsim.commands.report import ReportFormat

app = typer.Typer(
    name="accelsim",
    help=(
        "Simulate ranking inference served by fleets of hypothetical accelerators: "
        "latency, throughput, utilisation, power and energy."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
hardware_app = typer.Typer(
    help="Chip profiles (all shipped ones are hypothetical).", no_args_is_help=True
)
workloads_app = typer.Typer(help="Shipped models and scenarios.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(workloads_app, name="workloads")


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
    """accelsim: what if we served this model on that chip, under that power budget?"""


@app.command()
@user_errors
def run(
    scenario: Annotated[
        str | None,
        typer.Argument(
            help="A shipped scenario name or a YAML path (default: ranking-mtia-vs-gpu)."
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
        ReportFormat | None,
        typer.Option("--format", help="The --report format: html (default), png or svg."),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Refuse a run expected to need more memory than this, e.g. '8 GiB' "
            "(default: half of this machine's memory).",
        ),
    ] = None,
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

    if fmt is not None and report is None:
        raise AccelsimError("--format goes with --report PATH")
    report_format = fmt or ReportFormat.html
    if report is not None:
        reporting.require_plotting(report_format)
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"simulation.seed={seed}")
    resolved = load_checked(scenario, overrides, max_memory_bytes)
    refuse_overwriting_inputs(
        resolved.sources,
        Output("--json", json_out),
        reporting.report_output("--report", report, report_format),
    )

    from accelsim.runner import run_resolved

    with reporting.run_progress(f"simulating {resolved.scenario.name}", not quiet) as tick:
        if report is None:
            doc = run_resolved(resolved, tick)
        else:
            doc, samples = reporting.simulate_with_samples(resolved, tick)
    if json_out is not None:
        _emit_json(doc, json_out)
    if not quiet and json_out != "-":
        from accelsim.report.tables import result_view

        _console().print(result_view(doc))
        if json_out is not None:
            _stderr(f"wrote {json_out}")
    if report is not None:
        from accelsim.report.html import result_report

        built = result_report(doc, samples=samples, resolved=resolved)
        reporting.write_report(built, report, report_format, quiet or json_out == "-")


@app.command()
@user_errors
def explain(
    chip: Annotated[str, typer.Option(help="Chip name or YAML path.")],
    model: Annotated[str, typer.Option(help="Ranking or LLM model name, or a YAML path.")],
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
    power_cap: Annotated[
        str | None,
        typer.Option("--power-cap", help="Per-chip power cap, e.g. '300 W' (default: TDP)."),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the breakdown as JSON to this file ('-' for stdout)."),
    ] = None,
) -> None:
    """Show where a batch's time goes, op by op, on a roofline (LLM: prefill and decode)."""
    from accelsim.config.loader import files_read, load_chip, load_model
    from accelsim.errors import AccelsimError
    from accelsim.report.explain import explain as explain_doc
    from accelsim.units import UnitError, parse_quantity

    try:
        cap_w = None if power_cap is None else parse_quantity(power_cap, "W")
    except UnitError as exc:
        raise AccelsimError(f"--power-cap: {exc}") from None
    cwd = Path.cwd()
    the_model, the_chip = load_model(model, cwd), load_chip(chip, cwd)
    refuse_overwriting_inputs(
        [*files_read(chip, "chip", cwd), *files_read(model, "model", cwd)],
        Output("--json", json_out),
    )
    doc = explain_doc(
        the_model,
        the_chip,
        batch,
        context_tokens=context,
        prompt_tokens=prompt,
        chips_per_replica=chips_per_replica,
        power_cap_w=cap_w,
    )
    if json_out is not None:
        _emit_json(doc, json_out)
    if json_out != "-":
        from accelsim.report.tables import explain_view

        _console().print(explain_view(doc))


@app.command()
@user_errors
def schema(
    kind: Annotated[str, typer.Argument(help="One of: scenario, chip, model, plan.")] = "scenario",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
) -> None:
    """Print (or write) the JSON Schema of a config file kind, for editor completion."""
    from pydantic import TypeAdapter

    from accelsim.config.fleet_plan import Plan
    from accelsim.config.schema import AnyModel, Chip, Scenario
    from accelsim.errors import AccelsimError

    models: dict[str, Any] = {
        "scenario": TypeAdapter(Scenario),
        "chip": TypeAdapter(Chip),
        "model": TypeAdapter(AnyModel),
        "plan": TypeAdapter(Plan),
    }
    if kind not in models:
        raise AccelsimError(f"unknown schema kind {kind!r} (one of: {', '.join(models)})")
    doc = models[kind].json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if out is None:
        sys.stdout.write(_dump(doc))
    else:
        write_atomic(out, _dump(doc))
        _stderr(f"wrote {out}")


def _load_all(kind: str) -> list[Any]:
    from accelsim.config.loader import catalog, load_chip, load_model

    loader = load_chip if kind == "chip" else load_model
    return [loader(name) for name in catalog(kind)]  # type: ignore[arg-type]


@hardware_app.command("list")
@user_errors
def hardware_list() -> None:
    """List the shipped chip profiles."""
    from accelsim.report.tables import chip_list_view

    _console().print(chip_list_view(_load_all("chip")))


@hardware_app.command("show")
@user_errors
def hardware_show(
    name: Annotated[str, typer.Argument(help="Chip name or YAML path.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
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
    _console().print(table)


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
def workloads_list() -> None:
    """List the shipped models and scenarios."""
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
    console = _console()
    console.print(models)
    console.print(scenarios)


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
