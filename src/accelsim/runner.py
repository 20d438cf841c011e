"""One call from a scenario to its result document, for studies, checks and notebooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelsim.config.loader import ResolvedScenario, load_scenario


def run_resolved(
    resolved: ResolvedScenario, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Simulate an already loaded scenario and summarise it."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize

    return summarize(resolved, simulate(resolved, progress))


def run_scenario(
    scenario: str | Path | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Load a scenario (shipped name, path, or the default), apply ``--set``-style
    overrides such as ``"pools.gpu.count=4"``, simulate it and return the result document.
    Raises :class:`accelsim.errors.ConfigError` for bad input."""
    return run_resolved(load_scenario(scenario, list(overrides)))
