"""What-if studies: ``sweep``, ``export``, ``pareto``, ``capacity`` and ``compare``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from accelsim.commands.common import (
    Output,
    TableFormat,
    TableFormatOption,
    complete_shipped,
    console,
    emit_json,
    refuse_overwriting_inputs,
    stderr,
    user_errors,
)

if TYPE_CHECKING:
    from accelsim.study.plan import Plan


class BackendName(StrEnum):
    local = "local"
    dask = "dask"


class GoalName(StrEnum):
    min = "min"
    max = "max"


DEFAULT_OUT = Path("results")
DEFAULT_METRICS = (
    "workloads.*.latency_s.p99",
    "workloads.*.throughput_per_s",
    "totals.avg_power_w",
    "totals.queries_per_j",
)

_Set = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a scenario field by dotted path, e.g. pools.gpu.count=4."
    ),
]
_Json = Annotated[
    str | None,
    typer.Option("--json", help="Write the result as JSON to this file ('-' for stdout)."),
]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print no table or progress.")]
_Format = TableFormatOption
_Workers = Annotated[
    int | None, typer.Option("--workers", "-j", min=1, help="Parallel runs (default: all cores).")
]


def register(app: typer.Typer) -> None:
    app.command()(sweep)
    app.command()(export)
    app.command()(pareto)
    app.command()(capacity)
    app.command()(compare)


# ------------------------------------------------------------------------ sweep


@user_errors
def sweep(
    study: Annotated[
        str,
        typer.Argument(
            help="A shipped study name or a study YAML path.",
            autocompletion=complete_shipped("study"),
        ),
    ],
    workers: _Workers = None,
    backend: Annotated[
        BackendName | None,
        typer.Option(help="Where runs execute (default: local; dask if --scheduler is given)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of a Dask scheduler, e.g. tcp://10.0.0.5:8786."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Result folder (default: results/STUDY-NAME)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the sweep in --out: skip finished runs.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="With --resume, run failed runs again.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start again in --out: remove the sweep already there (its runs.jsonl and "
            "study.json; nothing else).",
        ),
    ] = False,
    quiet: _Quiet = False,
    fmt: _Format = TableFormat.table,
) -> None:
    """Run a study: every point of its axes, for every replicate seed, recorded as it ends."""
    from accelsim.config.study import load_study
    from accelsim.errors import AccelsimError
    from accelsim.study.executors import run_sweep
    from accelsim.study.plan import make_plan
    from accelsim.study.store import LOCK, MANIFEST, ROWS

    if retry_failed and not resume:
        raise AccelsimError("--retry-failed goes with --resume")
    if overwrite and resume:
        raise AccelsimError("--overwrite starts the sweep again; --resume continues it: not both")
    chosen = backend.value if backend is not None else ("dask" if scheduler else "local")
    if chosen == "local" and scheduler is not None:
        raise AccelsimError("--scheduler needs --backend dask")
    plan = make_plan(load_study(study))
    folder = out if out is not None else DEFAULT_OUT / plan.study.name
    refuse_overwriting_inputs(plan.sources, Output("--out", folder, (MANIFEST, ROWS, LOCK)))
    show_progress = not quiet and sys.stderr.isatty()

    progress: Any = None
    task: Any = None
    failed = 0

    def on_start(planned: int, todo: int) -> None:
        nonlocal progress, task
        if not quiet:
            where = "Dask" if chosen == "dask" else "local"
            done = f", {planned - todo} already done" if planned != todo else ""
            dropped = f" ({plan.duplicates} duplicates dropped)" if plan.duplicates else ""
            stderr(
                f"sweep {plan.study.name}: {planned} runs{dropped}{done}; {where} backend; "
                f"results in {folder}"
            )
        if show_progress and todo:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            progress.start()
            task = progress.add_task("runs", total=todo, failed=0)

    def on_row(row: dict[str, Any]) -> None:
        nonlocal failed
        failed += row["status"] != "ok"
        if progress is not None:
            progress.update(task, advance=1, failed=failed)

    try:
        result = run_sweep(
            plan,
            folder,
            backend=chosen,  # type: ignore[arg-type]
            workers=workers,
            scheduler=scheduler,
            resume=resume,
            overwrite=overwrite,
            retry_failed=retry_failed,
            on_start=on_start,
            on_row=on_row,
        )
    finally:
        if progress is not None:
            progress.stop()

    bad = [row for row in result.rows if row["status"] != "ok"]
    if not quiet:
        _print_summary(plan, result.rows, fmt)
        stderr(
            f"{result.ran} runs in {result.elapsed_s:.1f} s ({result.skipped} already done): "
            f"{len(result.rows) - len(bad)} ok, {len(bad)} failed; rows in {folder / 'runs.jsonl'}"
        )
    if bad:
        lines = [f"{len(bad)} of {len(result.rows)} runs failed (see {folder / 'runs.jsonl'})"]
        for row in bad[:5]:
            axes = ", ".join(f"{k}={v}" for k, v in row["axes"].items())
            lines.append(f"run {row['run_id']} ({axes}; seed {row['seed']}): {row['error']}")
        if len(bad) > 5:
            lines.append(f"... and {len(bad) - 5} more")
        raise AccelsimError("\n".join(lines))


def _print_summary(plan: Plan, rows: list[dict[str, Any]], fmt: TableFormat) -> None:
    from accelsim.study.analysis import expand_patterns, group_rows, metric_keys
    from accelsim.study.plan import axis_paths
    from accelsim.study.views import sweep_view

    keys = metric_keys(rows)
    patterns = plan.study.metrics or DEFAULT_METRICS
    metrics = expand_patterns(patterns, keys)
    if plan.study.metrics and keys:
        missing = [p for p in plan.study.metrics if not expand_patterns([p], keys)]
        for pattern in missing:
            stderr(f"warning: metric {pattern!r} matches nothing in the results")
    replicates = plan.study.seeds.replicates
    title = f"{plan.study.name}: mean over {replicates} seed(s)" + (
        " ± standard deviation as a share of the mean" if replicates > 1 else ""
    )
    console(fmt).print(sweep_view(title, group_rows(rows), axis_paths(plan.study), metrics))


# ------------------------------------------------------------------------ export


def _load_rows(folder: Path, *outputs: Output) -> list[dict[str, Any]]:
    """A store's rows, once no output would write over the store's own files."""
    from accelsim.study.store import read_store, store_files

    refuse_overwriting_inputs(store_files(folder), *outputs)
    contents = read_store(folder)
    if contents.torn:
        stderr(
            "note: ignored a torn last line (a sweep was stopped while writing it; "
            "`accelsim sweep --resume` cleans it up)"
        )
    if contents.unreadable:
        stderr(f"warning: ignored {contents.unreadable} unreadable line(s)")
    return contents.ordered()


@user_errors
def export(
    folder: Annotated[Path, typer.Argument(help="A sweep's result folder.")],
    csv_out: Annotated[
        str | None, typer.Option("--csv", help="Write a CSV file ('-' for stdout).")
    ] = None,
    parquet_out: Annotated[
        Path | None, typer.Option("--parquet", help="Write a Parquet file (needs pyarrow).")
    ] = None,
) -> None:
    """Export a sweep's rows (one per run, every axis value and scalar metric) to CSV or Parquet."""
    from accelsim.errors import AccelsimError

    if csv_out is None and parquet_out is None:
        raise AccelsimError("give --csv FILE and/or --parquet FILE")
    if parquet_out is not None:
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise AccelsimError(
                'Parquet export needs pyarrow: pip install -e ".[parquet]" (or use --csv)'
            ) from None
    from accelsim.study.table import run_table

    columns, records = run_table(
        _load_rows(folder, Output("--csv", csv_out), Output("--parquet", parquet_out))
    )
    if csv_out is not None:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        if csv_out == "-":
            sys.stdout.write(buffer.getvalue())
        else:
            from accelsim.commands.common import write_atomic

            write_atomic(Path(csv_out), buffer.getvalue())
            stderr(f"wrote {csv_out} ({len(records)} rows, {len(columns)} columns)")
    if parquet_out is not None:
        _write_parquet(parquet_out, columns, records)
        stderr(f"wrote {parquet_out} ({len(records)} rows, {len(columns)} columns)")


def _write_parquet(path: Path, columns: list[str], records: list[dict[str, Any]]) -> None:
    import importlib
    import os
    import tempfile

    pa: Any = importlib.import_module("pyarrow")
    pq: Any = importlib.import_module("pyarrow.parquet")

    from accelsim.errors import AccelsimError

    data = {}
    for column in columns:
        values = [r[column] for r in records]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and str in kinds:  # a mixed axis: keep it readable as text
            values = [None if v is None else str(v) for v in values]
        data[column] = values
    try:
        table = pa.table(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except (pa.ArrowException, OSError) as exc:
        raise AccelsimError(f"{path}: cannot write Parquet: {exc}") from None


# ------------------------------------------------------------------------ pareto


@user_errors
def pareto(
    folder: Annotated[Path, typer.Argument(help="A sweep's result folder.")],
    x: Annotated[str, typer.Option("--x", help="Metric on x, e.g. totals.queries_per_j.")],
    y: Annotated[str, typer.Option("--y", help="Metric on y, e.g. workloads.feed.latency_s.p99.")],
    x_goal: Annotated[
        GoalName | None,
        typer.Option("--x-goal", help="min or max (default: by name; latency, power: min)."),
    ] = None,
    y_goal: Annotated[
        GoalName | None,
        typer.Option("--y-goal", help="min or max (default: by name; latency, power: min)."),
    ] = None,
    sla_met: Annotated[
        bool,
        typer.Option("--sla-met", help="Only points whose runs all met every workload's SLA."),
    ] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List dominated points too.")] = False,
    json_out: _Json = None,
    fmt: _Format = TableFormat.table,
) -> None:
    """The Pareto frontier of a sweep over two metrics (each point: mean of its replicates)."""
    from accelsim.study.analysis import guess_goal
    from accelsim.study.analysis import pareto as frontier
    from accelsim.study.views import pareto_view

    rows = _load_rows(folder, Output("--json", json_out))
    result = frontier(
        rows,
        x,
        y,
        x_goal.value if x_goal else guess_goal(x),
        y_goal.value if y_goal else guess_goal(y),
        sla_met=sla_met,
    )
    if json_out is not None:
        emit_json(result.document(), json_out)
    if json_out != "-":
        console(fmt).print(pareto_view(result, show_all=show_all))


# ------------------------------------------------------------------------ capacity


@user_errors
def capacity(
    scenario: Annotated[str, typer.Argument(help="A shipped scenario name or a YAML path.")],
    workload: Annotated[
        str | None,
        typer.Option(help="The workload whose rate to search (default: the only one)."),
    ] = None,
    set_: _Set = None,
    seeds: Annotated[
        int, typer.Option(min=1, max=1000, help="Replicates per probe (seed, seed+1, ...).")
    ] = 1,
    max_mean_latency: Annotated[
        str | None,
        typer.Option(help="Bound the mean latency instead of the SLA, e.g. '2 ms'."),
    ] = None,
    low: Annotated[
        float | None, typer.Option(help="A rate known to be sustained (skips bracketing).")
    ] = None,
    high: Annotated[float | None, typer.Option(help="A rate known not to be sustained.")] = None,
    tolerance: Annotated[
        float, typer.Option(min=1e-6, max=0.5, help="Stop when the bracket is this narrow.")
    ] = 0.01,
    confirm: Annotated[
        float,
        typer.Option(
            min=1,
            max=1000,
            help="Confirm the answer in a run this many times the probe length (1: don't).",
        ),
    ] = 10.0,
    min_chips: Annotated[
        bool,
        typer.Option("--min-chips", help="Search the fewest chips of --pool for --rate instead."),
    ] = False,
    pool: Annotated[str | None, typer.Option(help="With --min-chips: the pool to size.")] = None,
    rate: Annotated[
        str | None, typer.Option(help="With --min-chips: the target rate, e.g. 50000.")
    ] = None,
    workers: _Workers = None,
    json_out: _Json = None,
    quiet: _Quiet = False,
    fmt: _Format = TableFormat.table,
) -> None:
    """The largest arrival rate a workload sustains within its SLA (by bisection), or
    with --min-chips the fewest chips of a pool that sustain a target rate."""
    from accelsim.config.loader import load_scenario
    from accelsim.errors import AccelsimError
    from accelsim.study.capacity import ask, find_capacity
    from accelsim.study.executors import default_workers, open_executor
    from accelsim.study.views import capacity_line, capacity_view
    from accelsim.units import UnitError, parse_quantity

    overrides = list(set_ or [])
    resolved = load_scenario(scenario, overrides)
    refuse_overwriting_inputs(resolved.sources, Output("--json", json_out))
    try:
        bound = None if max_mean_latency is None else parse_quantity(max_mean_latency, "s")
        target = None if rate is None else parse_quantity(rate, "1/s")
    except UnitError as exc:
        raise AccelsimError(str(exc)) from None
    question = ask(
        resolved,
        overrides,
        workload=workload,
        seeds=seeds,
        max_mean_latency_s=bound,
        min_chips=min_chips,
        pool=pool,
        rate_per_s=target,
        low=low,
        high=high,
        tolerance=tolerance,
        confirm=confirm,
    )
    n_workers = min(workers or default_workers(), seeds)
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(open_executor("local", n_workers)) if n_workers > 1 else None
        on_probe = None
        if not quiet and sys.stderr.isatty():
            on_probe = stack.enter_context(_probe_progress(question.search == "min_chips"))
        answer = find_capacity(question, executor, on_probe)

    if json_out is not None:
        emit_json(answer.document(), json_out)
    if json_out != "-":
        if quiet:
            print(capacity_line(answer))
        else:
            console(fmt).print(capacity_view(answer))


@contextlib.contextmanager
def _probe_progress(chips: bool) -> Iterator[Callable[[float, float, bool], None]]:
    """A progress line on stderr naming the probe that runs, with the time spent."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from accelsim.study.views import run_length

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("capacity", total=None)
    count = 0

    def on_probe(value: float, duration_s: float, confirming: bool) -> None:
        nonlocal count
        count += 1
        what = f"{value:g} chips" if chips else f"{value:,.6g} /s"
        why = ", a confirming run" if confirming else ""
        progress.update(
            task, description=f"probe {count}: {what} for {run_length(duration_s)}{why}"
        )

    progress.start()
    try:
        yield on_probe
    finally:
        progress.stop()


# ------------------------------------------------------------------------ compare


def _side(ref: str, overrides: list[str]) -> tuple[Any, tuple[Path, ...]]:
    """One side of a comparison, and the files read for it: a result document read from
    a .json file, or a loaded scenario still to run."""
    import json

    from accelsim.errors import AccelsimError

    if ref.endswith(".json"):
        if overrides:
            raise AccelsimError(f"{ref}: --set applies to scenarios, not to result files")
        try:
            doc = json.loads(Path(ref).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AccelsimError(f"{ref}: file not found") from None
        except (OSError, ValueError) as exc:
            raise AccelsimError(f"{ref}: cannot read a result document: {exc}") from None
        if not isinstance(doc, dict) or "workloads" not in doc:
            raise AccelsimError(f"{ref}: not an accelsim result document")
        return doc, (Path(ref),)
    from accelsim.runner import load_checked

    resolved = load_checked(ref, overrides)
    return resolved, resolved.sources


def _document(side: Any) -> dict[str, Any]:
    """A side's result document: as read, or by running its scenario."""
    if isinstance(side, dict):
        return side
    from accelsim.runner import run_resolved

    return run_resolved(side)


@user_errors
def compare(
    a: Annotated[str, typer.Argument(help="Scenario A: a name, a YAML path, or a result .json.")],
    b: Annotated[str, typer.Argument(help="Scenario B: a name, a YAML path, or a result .json.")],
    set_: _Set = None,
    set_a: Annotated[
        list[str] | None, typer.Option("--set-a", help="Override a field of A only.")
    ] = None,
    set_b: Annotated[
        list[str] | None, typer.Option("--set-b", help="Override a field of B only.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Only metrics matching this pattern (* = any part)."),
    ] = None,
    json_out: _Json = None,
    fmt: _Format = TableFormat.table,
) -> None:
    """Two scenarios' metrics side by side, with the ratio B/A."""
    from accelsim.errors import AccelsimError
    from accelsim.study.analysis import compare_metrics, expand_patterns
    from accelsim.study.executors import flatten_metrics
    from accelsim.study.views import compare_view

    side_a, read_a = _side(a, [*(set_ or []), *(set_a or [])])
    side_b, read_b = _side(b, [*(set_ or []), *(set_b or [])])
    refuse_overwriting_inputs([*read_a, *read_b], Output("--json", json_out))
    doc_a, doc_b = _document(side_a), _document(side_b)
    rows = compare_metrics(flatten_metrics(doc_a), flatten_metrics(doc_b))
    if metric:
        keep = set(expand_patterns(metric, [r[0] for r in rows]))
        rows = [r for r in rows if r[0] in keep]
        if not rows:
            raise AccelsimError(f"no metric matches {', '.join(metric)}")
    if json_out is not None:
        emit_json(
            {
                "a": {"ref": a, "scenario": doc_a.get("scenario"), "seed": doc_a.get("seed")},
                "b": {"ref": b, "scenario": doc_b.get("scenario"), "seed": doc_b.get("seed")},
                "metrics": [{"metric": k, "a": va, "b": vb, "ratio": r} for k, va, vb, r in rows],
            },
            json_out,
        )
    if json_out != "-":
        names = str(doc_a.get("scenario")), str(doc_b.get("scenario"))
        console(fmt).print(compare_view(*names, rows))
