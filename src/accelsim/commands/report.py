"""`accelsim report`: an HTML report (or PNG/SVG charts) of a result document or a sweep.

Also the pieces ``accelsim run --report`` uses: the check for the plotting extra, the
run that keeps every request's latency for the CDFs, and a progress bar that shows
only once a run has taken more than a second.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from accelsim.commands.common import (
    Output,
    refuse_overwriting_inputs,
    stderr,
    user_errors,
    write_atomic,
)

PROGRESS_AFTER_S = 1.0
EXTRA_HINT = "pip install 'accelsim[report]'  (or, from a checkout: pip install -e \".[report]\")"


class ReportFormat(StrEnum):
    html = "html"
    png = "png"
    svg = "svg"


def register(app: typer.Typer) -> None:
    app.command()(report)


def require_plotting(fmt: ReportFormat) -> None:
    """Fail with one line naming the extra to install when the plotting library is missing."""
    from accelsim.errors import AccelsimError

    module = "plotly" if fmt is ReportFormat.html else "matplotlib"
    try:
        __import__(module)
    except ImportError:
        raise AccelsimError(
            f"reports need the 'report' extra ({module} is not installed): {EXTRA_HINT}"
        ) from None


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def run_progress(description: str, enabled: bool) -> Iterator[Callable[[float], None] | None]:
    """A progress callback for a run (share of simulated time done) that draws a rich bar on
    a terminal's stderr once the run has taken more than a second; ``None`` when disabled
    or not on a terminal (then the engine skips its progress steps)."""
    if not enabled or not _stderr_is_tty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    start = time.monotonic()
    bar: Any = None
    task: Any = None

    def tick(done: float) -> None:
        nonlocal bar, task
        if bar is None:
            if time.monotonic() - start < PROGRESS_AFTER_S:
                return
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}% of simulated time"),
                console=Console(stderr=True),
                transient=True,
            )
            task = bar.add_task(description, total=1.0, completed=done)
            bar.start()
        bar.update(task, completed=done)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.stop()


def simulate_with_samples(
    resolved: Any, progress: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], Any]:
    """Run a scenario and keep, beside its result document, the latency CDF points of
    every completed request (for the report's latency charts)."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize
    from accelsim.report.html import request_latencies

    records = simulate(resolved, progress)
    return summarize(resolved, records), request_latencies(records)


def default_out(fmt: ReportFormat) -> Path:
    return Path("report.html") if fmt is ReportFormat.html else Path("report-charts")


def report_output(option: str, out: Path | None, fmt: ReportFormat) -> Output:
    """What a report writes: one HTML file, or chart images in a folder."""
    return Output(option, out, () if fmt is ReportFormat.html else (f"*.{fmt.value}",))


def write_report(built: Any, out: Path, fmt: ReportFormat, quiet: bool) -> None:
    """Write the report as one HTML file, or one image per chart into the folder ``out``."""
    from accelsim.report.html import plotly_js, render_html, write_static

    charts = len(built.charts())
    if fmt is ReportFormat.html:
        page = render_html(built, plotly_js())
        if out.exists() and not out.is_file() and not out.is_dir():
            # A device or a pipe (e.g. /dev/stdout): write through it, never replace it.
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(page)
        else:
            write_atomic(out, page)
        if not quiet:
            stderr(f"wrote {out} ({charts} charts, {len(page.encode()) / 2**20:.1f} MiB)")
        return
    paths = write_static(built, out, "png" if fmt is ReportFormat.png else "svg")
    if not quiet:
        stderr(f"wrote {len(paths)} {fmt.value.upper()} charts to {out}/")


@user_errors
def report(
    source: Annotated[
        Path,
        typer.Argument(
            help="A result document (from `accelsim run --json`) or a sweep's result folder."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write: an HTML file (default report.html), or with --format png|svg "
            "a folder for the chart images (default report-charts).",
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="html: one self-contained page (needs no network to open); png or svg: each "
            "chart as an image.",
        ),
    ] = ReportFormat.html,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Write a report: summary tables, latency CDFs, rooflines with a plain-language reading,
    timelines; for a sweep, throughput vs latency and the perf/W Pareto front."""
    from accelsim.errors import AccelsimError
    from accelsim.report.html import result_report, study_report

    require_plotting(fmt)
    target = out if out is not None else default_out(fmt)
    if source.is_dir():
        refuse_overwriting_inputs(_study_inputs(source), report_output("--out", target, fmt))
        try:
            built = _naming(source, lambda: study_report(source))
        except (KeyError, TypeError, AttributeError) as exc:
            raise AccelsimError(
                f"{source}: not a sweep's rows ({type(exc).__name__}: {exc})"
            ) from None
    elif source.is_file():
        try:
            doc = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise AccelsimError(f"{source}: cannot read a result document: {exc}") from None
        if not isinstance(doc, dict):
            raise AccelsimError(f"{source}: not an accelsim result document")
        refuse_overwriting_inputs(
            [source, *_config_inputs(doc)], report_output("--out", target, fmt)
        )
        try:
            built = _naming(source, lambda: result_report(doc))
        except (KeyError, TypeError, AttributeError) as exc:
            raise AccelsimError(
                f"{source}: not an accelsim result document ({type(exc).__name__}: {exc})"
            ) from None
    elif source.exists():
        raise AccelsimError(f"{source}: not a result document file or a sweep folder")
    else:
        raise AccelsimError(f"{source}: no such file or folder")
    write_report(built, target, fmt, quiet)


def _naming(source: Path, build: Callable[[], Any]) -> Any:
    """Build a report; an error that does not say which file it is about gets ``source``."""
    from accelsim.errors import AccelsimError, ConfigError

    try:
        return build()
    except ConfigError:
        raise  # each problem names its own file
    except AccelsimError as exc:
        if str(exc).startswith(str(source)):
            raise
        raise AccelsimError(f"{source}: {exc}") from None


def _config_inputs(doc: dict[str, Any]) -> list[Path]:
    """The chip and model files a result document's report loads (by the names in its
    ``config``); a name that does not load is left to the report to complain about."""
    from accelsim.config.loader import Kind, files_read
    from accelsim.errors import AccelsimError

    config = doc.get("config")
    if not isinstance(config, dict):
        return []
    wanted: tuple[tuple[str, str, Kind], ...] = (
        ("pools", "chip", "chip"),
        ("workloads", "model", "model"),
    )
    out: list[Path] = []
    for section, key, kind in wanted:
        entries = config.get(section)
        for entry in entries.values() if isinstance(entries, dict) else ():
            ref = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(ref, str):
                with contextlib.suppress(AccelsimError):
                    out += files_read(ref, kind, Path.cwd())
    return out


def _study_inputs(folder: Path) -> list[Path]:
    """The files a sweep folder's report reads: the store (or its ``*.jsonl`` rows) and
    the base scenario its ``study.json`` names, with everything that pulls in."""
    from accelsim.config.loader import load_scenario
    from accelsim.errors import AccelsimError
    from accelsim.study.store import MANIFEST, store_files

    out = [*store_files(folder), *folder.glob("*.jsonl")]
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        base = manifest.get("scenario") if isinstance(manifest, dict) else None
        if isinstance(base, str) and base:
            out += load_scenario(base).sources
    except (OSError, UnicodeDecodeError, ValueError, AccelsimError):
        pass  # the report says what is wrong with the folder
    return out
