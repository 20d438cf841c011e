"""Run a sweep's runs on an executor and record each one as it finishes.

The worker function :func:`run_task` is top-level and takes plain data (the
scenario name or path, the override strings, and the run's identity), so any
``concurrent.futures.Executor`` can run it: a local process pool (the
default), a thread for ``--workers 1``, or Dask through
``dask.distributed.Client.get_executor()``. A run that raises becomes a
``failed`` row with its error; the sweep goes on.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from accelsim.errors import AccelsimError
from accelsim.study.plan import Plan, Run
from accelsim.study.store import StoreWriter, read_store

Backend = Literal["local", "dask"]

SKIPPED_KEYS = frozenset(
    {"config", "schema_version", "accelsim_version", "scenario", "seed", "warnings"}
)
"""Top-level keys of the result document that are not metrics."""

MAX_ERROR_CHARS = 2000

Scalar = float | int | bool | None


def flatten_metrics(doc: dict[str, Any]) -> dict[str, Scalar]:
    """Every numeric (and boolean) leaf of a result document, by dotted key, ``config``
    and the other bookkeeping keys left out. Nulls stay (a metric with no value);
    strings and lists are not metrics. NaN and infinities become null."""
    out: dict[str, Scalar] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif node is None or isinstance(node, bool | int):
            out[prefix] = node
        elif isinstance(node, float):
            out[prefix] = node if math.isfinite(node) else None

    for key, value in doc.items():
        if key not in SKIPPED_KEYS:
            walk(value, key)
    return out


def describe(exc: BaseException) -> str:
    """One line: a user error's own message, anything else with its type."""
    text = str(exc) if isinstance(exc, AccelsimError) else f"{type(exc).__name__}: {exc}"
    text = " | ".join(line for line in text.splitlines() if line.strip()) or type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def make_row(
    meta: dict[str, Any],
    *,
    status: str,
    error: str | None,
    wall_s: float,
    metrics: dict[str, Scalar] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "run_id": meta["run_id"],
        "status": status,
        "error": error,
        "wall_s": round(wall_s, 4),
        "replicate": meta["replicate"],
        "seed": meta["seed"],
        "axes": meta["axes"],
        "metrics": metrics or {},
        "warnings": list(warnings),
    }


def run_one(scenario: str, overrides: Sequence[str], meta: dict[str, Any]) -> dict[str, Any]:
    """Simulate one run and return its store row (never raises for a bad run)."""
    start = time.perf_counter()
    try:
        from accelsim.runner import run_scenario

        doc = run_scenario(scenario, list(overrides))
    except Exception as exc:
        return make_row(
            meta, status="failed", error=describe(exc), wall_s=time.perf_counter() - start
        )
    return make_row(
        meta,
        status="ok",
        error=None,
        wall_s=time.perf_counter() - start,
        metrics=flatten_metrics(doc),
        warnings=[str(w) for w in doc.get("warnings", [])],
    )


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """The worker function: a :meth:`Plan.task` in, a store row out."""
    return run_one(task["scenario"], task["overrides"], task["meta"])


# ------------------------------------------------------------------------ executors


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _exit_with_parent() -> None:
    """Worker initializer: end this worker when the sweep's process ends, even by SIGKILL
    (an orphaned pool worker would otherwise wait for work forever)."""
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - not started by multiprocessing
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def open_executor(
    backend: Backend = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    dask_processes: bool = True,
) -> Iterator[Executor]:
    """An executor for the runs. ``local``: a process pool of ``workers`` processes (a
    single thread for one worker). ``dask``: the cluster at ``scheduler``, or a local
    Dask cluster of ``workers`` single-threaded workers when no address is given."""
    workers = workers or default_workers()
    if backend == "local":
        if scheduler is not None:
            raise AccelsimError("--scheduler needs --backend dask")
        if workers == 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as thread:
                yield thread
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: safe however many threads this process has (the progress bar has one).
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
        )
        try:
            yield pool
        except BaseException:
            # Interrupted or failed: stop the runs in flight instead of waiting for them.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return
    if backend != "dask":
        raise AccelsimError(f"unknown backend {backend!r} (one of: local, dask)")
    yield from _dask_executor(workers, scheduler, dask_processes)


def _distributed() -> Any:
    import importlib

    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise AccelsimError(
            'the dask backend needs dask.distributed: pip install -e ".[dask]"'
        ) from None


def _dask_executor(workers: int, scheduler: str | None, processes: bool) -> Iterator[Executor]:
    distributed = _distributed()
    import logging

    cluster = None
    try:
        if scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
        raise AccelsimError(f"cannot start or reach {where}: {exc}") from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------------ sweeping


@dataclass(frozen=True)
class SweepResult:
    planned: int
    skipped: int  # already in the store when the sweep started
    ran: int
    failed: int  # of the runs made now
    elapsed_s: float
    rows: list[dict[str, Any]]  # every row of the store, in plan order


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT while worker processes start, so that they inherit that: Ctrl-C then
    interrupts this process only (which stops the workers) instead of printing a
    traceback from every worker."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(
    plan: Plan,
    runs: Sequence[Run],
    executor: Executor,
    on_row: Callable[[dict[str, Any]], None],
) -> None:
    """Submit ``runs`` and hand each row to ``on_row`` as its run finishes."""
    with _children_ignore_sigint():
        futures: dict[Future[dict[str, Any]], Run] = {
            executor.submit(run_task, plan.task(run)): run for run in runs
        }
    try:
        for future in as_completed(futures):
            run = futures[future]
            try:
                row = future.result()
            except BrokenProcessPool as exc:
                raise AccelsimError(
                    f"a worker process died ({exc}); the runs that finished are saved: "
                    "continue with --resume"
                ) from None
            except Exception as exc:  # the executor failed the task (e.g. a Dask worker died)
                row = make_row(run.meta(), status="failed", error=describe(exc), wall_s=0.0)
            on_row(row)
    finally:
        for future in futures:
            future.cancel()


def run_sweep(
    plan: Plan,
    out: Path,
    *,
    backend: Backend = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    dask_processes: bool = True,
    on_start: Callable[[int, int], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run the plan's runs that the store at ``out`` does not have yet, recording each.

    ``overwrite`` first removes the results of a sweep already in ``out``.
    ``on_start(planned, to_run)`` is called once before the first run, ``on_row(row)``
    after each run is safely stored."""
    start = time.perf_counter()
    failed = 0
    ran = 0
    if backend == "dask":
        _distributed()  # fail before the store is created
    elif scheduler is not None:
        raise AccelsimError("--scheduler needs --backend dask")
    with StoreWriter(out, plan.manifest(), resume=resume, overwrite=overwrite) as store:
        previous = store.previous.rows
        todo = [
            run
            for run in plan.runs
            if run.run_id not in previous
            or (retry_failed and previous[run.run_id].get("status") != "ok")
        ]
        if on_start is not None:
            on_start(len(plan.runs), len(todo))
        if todo:
            n = min(workers or default_workers(), len(todo)) if backend == "local" else workers

            def record(row: dict[str, Any]) -> None:
                nonlocal failed, ran
                store.append(row)
                ran += 1
                failed += row["status"] != "ok"
                if on_row is not None:
                    on_row(row)

            with open_executor(backend, n, scheduler, dask_processes=dask_processes) as pool:
                execute(plan, todo, pool, record)
    contents = read_store(out)
    planned_ids = {run.run_id for run in plan.runs}
    rows = [row for row in contents.ordered() if row["run_id"] in planned_ids]
    return SweepResult(
        planned=len(plan.runs),
        skipped=len(plan.runs) - len(todo),
        ran=ran,
        failed=failed,
        elapsed_s=time.perf_counter() - start,
        rows=rows,
    )
