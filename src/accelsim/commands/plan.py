"""``accelsim plan``: size a fleet for a plan file (characterise, optimise, verify), and
print, write (``--json``) or draw (``--report``) the answer."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim.commands.common import (
    Output,
    console,
    emit_json,
    refuse_overwriting_inputs,
    stderr,
    user_errors,
)
from accelsim.commands.report import ReportFormat
from accelsim.commands.study import BackendName


def register(app: typer.Typer) -> None:
    app.command()(plan)


@user_errors
def plan(
    plan: Annotated[str, typer.Argument(help="A shipped plan name or a plan YAML path.")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="Override a plan field by dotted path, e.g. facility.pue=1.3."
        ),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the plan's result as JSON to this file ('-': stdout)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print no table or progress.")] = (
        False
    ),
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Folder of characterised replicas (default: $XDG_CACHE_HOME/accelsim, "
            "else ~/.cache/accelsim).",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the plan's page: an HTML file, or with --format png|svg a folder "
            "of chart images (needs the 'report' extra).",
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option("--format", help="The --report format: html (default), png or svg."),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify", help="Simulate a slice of each plan at the peak hour."
        ),
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=1, help="Parallel simulations (default: all cores)."),
    ] = None,
    backend: Annotated[
        BackendName | None,
        typer.Option(help="Where simulations run (default: local; dask if --scheduler is given)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a Dask scheduler, e.g. tcp://10.0.0.5:8786.")
    ] = None,
) -> None:
    """Size a fleet: characterise one replica of each (service, chip, configuration) by
    simulation, choose how many of each with an integer program under the power budget,
    and verify a slice of the answer by simulation."""
    from accelsim.commands import report as reporting
    from accelsim.config.fleet_plan import load_plan
    from accelsim.errors import AccelsimError
    from accelsim.planner.characterise import Cache, characterise, default_cache_dir
    from accelsim.planner.fleet import run_plan
    from accelsim.study.executors import default_workers, open_executor

    chosen = backend.value if backend is not None else ("dask" if scheduler else "local")
    if chosen == "local" and scheduler is not None:
        raise AccelsimError("--scheduler needs --backend dask")
    if fmt is not None and report is None:
        raise AccelsimError("--format goes with --report PATH")
    report_format = fmt or ReportFormat.html
    if report is not None:
        reporting.require_plotting(report_format)
    resolved = load_plan(plan, list(set_ or []))
    refuse_overwriting_inputs(
        resolved.sources,
        Output("--json", json_out),
        reporting.report_output("--report", report, report_format),
    )
    store = Cache(cache if cache is not None else default_cache_dir())

    def executor_factory(tasks: int) -> Any:
        n = min(workers or default_workers(), tasks) if chosen == "local" else workers
        return open_executor(chosen, n, scheduler)  # type: ignore[arg-type]

    fresh: set[str] = set()
    with _progress(not quiet and sys.stderr.isatty()) as progress:

        def on_start(total: int, todo: int) -> None:
            if not quiet and todo:
                stderr(
                    f"plan {resolved.plan.name}: characterising {todo} of {total} replicas "
                    f"(cache: {store.folder})"
                )
            progress.start("characterising", todo)

        def on_done(entry: Any, result: dict[str, Any]) -> None:
            fresh.add(entry.key)
            progress.advance(entry.label)

        results = characterise(
            resolved, store, executor_factory, on_start=on_start, on_done=on_done
        )
        progress.start("verifying", None)
        doc = run_plan(
            resolved,
            results,
            fresh,
            verify=verify,
            executor_factory=executor_factory,
            on_verify=lambda step: progress.advance(f"verifying {step}"),
        )
    if json_out is not None:
        emit_json(doc, json_out)
    if not quiet and json_out != "-":
        from accelsim.planner.views import plan_view

        console().print(plan_view(doc))
        if json_out is not None:
            stderr(f"wrote {json_out}")
    if report is not None:
        from accelsim.report.plan_page import plan_report

        reporting.write_report(plan_report(doc), report, report_format, quiet or json_out == "-")
    failed = [step for step in doc["steps"] if step["status"] != "ok"]
    if failed:
        raise AccelsimError("\n".join(f"{step['name']}: {step['message']}" for step in failed))


class _Bar:
    """A progress bar on stderr (or nothing), restarted for each phase."""

    def __init__(self, shown: bool) -> None:
        self.progress: Any = None
        self.task: Any = None
        if shown:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def start(self, what: str, total: int | None) -> None:
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(what, total=total)

    def advance(self, what: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1, description=what)


@contextlib.contextmanager
def _progress(shown: bool) -> Iterator[_Bar]:
    bar = _Bar(shown)
    if bar.progress is not None:
        bar.progress.start()
    try:
        yield bar
    finally:
        if bar.progress is not None:
            bar.progress.stop()
