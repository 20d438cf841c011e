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


Scenario = str | Path | Mapping[str, Any] | None
"""A shipped scenario name, a YAML path, a mapping of scenario fields, or None (the
default scenario)."""


def load_checked(
    scenario: Scenario = None,
    overrides: Sequence[str] = (),
    max_memory_bytes: float | None = None,
) -> ResolvedScenario:
    """Load a scenario and make every check that needs it resolved (arrival and memory
    budgets, power caps above idle power, models that fit their replicas), so a file that
    loads here runs, and ``validate --configs`` and ``run`` agree on it.
    ``max_memory_bytes`` replaces the default memory budget (a share of the machine's)."""
    from accelsim.model.checks import scenario_problems

    resolved = load_scenario(scenario, list(overrides))
    problems = scenario_problems(resolved, max_memory_bytes)
    if problems:
        raise ConfigError(problems)
    return resolved


def run_resolved(
    resolved: ResolvedScenario, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Simulate an already loaded scenario and summarise it."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize

    return summarize(resolved, simulate(resolved, progress))


def run_with_records(
    resolved: ResolvedScenario, progress: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], RunRecords]:
    """Simulate a loaded scenario and return its result document and the run's records
    (for per-request exports and exact latency CDFs)."""
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


def run_scenario(scenario: Scenario = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a scenario (shipped name, path, mapping, or the default), apply ``--set``-style
    overrides such as ``"pools.gpu.count=4"``, simulate it and return the result document.
    Raises :class:`accelsim.errors.ConfigError` for bad input."""
    return run_resolved(load_checked(scenario, overrides))
