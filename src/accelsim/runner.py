"""One call from a scenario to its result document, for studies, checks and notebooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelsim.config.loader import ResolvedScenario, load_scenario
from accelsim.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from accelsim.engine.records import RunRecords
    from accelsim.metrics.streaming import Percentiles


Scenario = str | Path | Mapping[str, Any] | None
"""A shipped scenario name, a YAML path, a mapping of scenario fields, or None (the
default scenario)."""


def load_checked(
    scenario: Scenario = None,
    overrides: Sequence[str] = (),
    max_memory_bytes: float | None = None,
    percentiles: Percentiles = "auto",
) -> ResolvedScenario:
    """Load a scenario and make every check that needs it resolved (arrival and memory
    budgets, power caps above idle power, models that fit their replicas), so a file that
    loads here runs, and ``validate --configs`` and ``run`` agree on it.
    ``max_memory_bytes`` replaces the default memory budget (a share of the machine's);
    ``percentiles`` is the run's (see :func:`run_resolved`), which sets what it keeps."""
    from accelsim.model.checks import scenario_problems

    resolved = load_scenario(scenario, list(overrides))
    problems = scenario_problems(resolved, max_memory_bytes, percentiles)
    if problems:
        raise ConfigError(problems)
    return resolved


def run_resolved(
    resolved: ResolvedScenario,
    progress: Callable[[float], None] | None = None,
    percentiles: Percentiles = "auto",
) -> dict[str, Any]:
    """Simulate an already loaded scenario and summarise it.

    ``percentiles``: ``"exact"`` keeps every request's record and gives exact
    percentiles; ``"sketch"`` streams the ranking records into summaries of flat memory,
    with percentiles from quantile sketches (within 0.5%); ``"auto"`` streams a run of
    more than :data:`accelsim.config.checks.STREAM_ABOVE_REQUESTS` expected ranking
    queries and keeps the records of a smaller one."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.streaming import record_sinks
    from accelsim.metrics.summary import summarize

    sinks = record_sinks(resolved, percentiles)
    return summarize(resolved, simulate(resolved, progress, sinks=sinks))


def run_with_records(
    resolved: ResolvedScenario, progress: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], RunRecords]:
    """Simulate a loaded scenario and return its result document and the run's records
    (for per-request exports and exact latency CDFs): every record is kept, so the
    percentiles are exact."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize

    records = simulate(resolved, progress)
    return summarize(resolved, records), records


def run_keeping_requests(
    resolved: ResolvedScenario, progress: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Simulate a loaded scenario and return its result document and, per workload, every
    request's record as columns (see :mod:`accelsim.metrics.requests`)."""
    from accelsim.metrics.requests import request_columns

    doc, records = run_with_records(resolved, progress)
    return doc, request_columns(resolved, records)


def run_scenario(
    scenario: Scenario = None,
    overrides: Sequence[str] = (),
    percentiles: Percentiles = "auto",
) -> dict[str, Any]:
    """Load a scenario (shipped name, path, mapping, or the default), apply ``--set``-style
    overrides such as ``"pools.gpu.count=4"``, simulate it and return the result document
    (``percentiles`` as in :func:`run_resolved`).
    Raises :class:`accelsim.errors.ConfigError` for bad input."""
    resolved = load_checked(scenario, overrides, percentiles=percentiles)
    return run_resolved(resolved, percentiles=percentiles)
