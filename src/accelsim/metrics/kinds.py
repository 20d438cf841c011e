"""The metrics a workload kind contributes to the result document, looked up by kind.

Shared code (``summary.py``) never asks whether a workload is ranking or LLM:
it looks the kind up in ``summary.METRIC_KINDS`` and calls what the entry
gives. A new workload kind adds its own module with one :class:`MetricsKind`
and one line in that registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario


@dataclass(frozen=True)
class MetricsKind:
    """How one workload kind is summarised."""

    unit: str  # what its perf/W and cost count, plural: "queries", "output_tokens"
    one: str  # the same, singular: "query", "output_token"
    noun: str  # what its requests are called in warnings: "queries", "requests"
    # (resolved, workload name, the fleet's records, w0, w1) -> the workload's entry
    workload: Callable[[ResolvedScenario, str, Any, float, float], dict[str, Any]]
    # (resolved, pool name, the fleet's records, w0, w1, per-chip cap) -> the pool's entry,
    # which holds ``unit`` (what it served) and ``energy_j``
    pool: Callable[[ResolvedScenario, str, Any, float, float, float], dict[str, Any]]
    # (resolved, pool name, the fleet's records, bin edges) -> the pool's timeline
    pool_timeline: Callable[[ResolvedScenario, str, Any, np.ndarray], dict[str, Any]]
    # the fleet's records -> (start, end, dynamic energy) of every busy interval
    busy: Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]
    # (the fleet's records, w0, w1) -> per workload, latency samples by series name
    # ("latency_s", "ttft_s", ...) over the window's completed requests, for exact CDFs
    samples: Callable[[Any, float, float], dict[str, dict[str, np.ndarray]]]
    # (the fleet's records, w0, w1) -> per workload, one column per request field (see
    # ``metrics.requests``): every request the run recorded, warm-up and in flight included
    requests: Callable[[Any, float, float], dict[str, dict[str, np.ndarray]]]
    # why a request of this kind is dropped (None: this kind never drops)
    dropped_because: str | None = None
