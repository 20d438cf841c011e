"""What a workload's entry adds under MLPerf LoadGen-style traffic (``loadgen`` key).

* ``offline`` (every request at time 0): ``makespan_s``, the time from 0 to the last
  completion (None while any request is unfinished at the end of the run), and the
  throughput over it, ``offline_throughput_per_s`` = completed / makespan, plus
  ``offline_output_tokens_per_s`` (LLM) or ``offline_items_per_s`` (ranking).
* ``closed_loop`` (``users`` who think ``think_s`` between a response and their next
  request): the mean response time ``mean_response_s`` of the window's completed
  requests and the throughput the interactive response-time law gives for it,
  ``users_over_cycle_per_s`` = users / (mean response + think time), which the measured
  ``throughput_per_s`` matches up to the window's edges.

Open-loop traffic adds nothing, so their results are unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelsim.config.schema import AnyTraffic, ClosedLoopTraffic, OfflineTraffic
from accelsim.metrics.common import json_float

LOADGEN_TRAFFIC = ("offline", "closed_loop")  # traffic kinds with a ``loadgen`` block

# Per-request column -> the offline rate named after it.
_RATE_OF = {"generated_tokens": "offline_output_tokens_per_s", "items": "offline_items_per_s"}


def loadgen_entry(
    traffic: AnyTraffic, columns: dict[str, np.ndarray], throughput_per_s: float
) -> dict[str, Any] | None:
    """The ``loadgen`` block of a workload with offline or closed-loop traffic (None for
    other traffic), from its per-request columns (``metrics.requests``'s)."""
    if isinstance(traffic, OfflineTraffic):
        return _offline(traffic, columns)
    if isinstance(traffic, ClosedLoopTraffic):
        return _closed_loop(traffic, columns, throughput_per_s)
    return None


def _rejected(columns: dict[str, np.ndarray]) -> np.ndarray:
    rejected = columns.get("rejected")
    if rejected is None:
        return np.zeros(len(columns["finish_s"]), bool)
    out: np.ndarray = np.asarray(rejected, dtype=bool)
    return out


def _finished(columns: dict[str, np.ndarray]) -> np.ndarray:
    done: np.ndarray = ~np.isnan(columns["finish_s"]) & ~_rejected(columns)
    return done


def _offline(traffic: OfflineTraffic, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    done = _finished(columns)
    completed = int(done.sum())
    unfinished = int((np.isnan(columns["finish_s"]) & ~_rejected(columns)).sum())
    makespan = float(columns["finish_s"][done].max()) if completed and not unfinished else None
    out: dict[str, Any] = {
        "scenario": "offline",
        "requests": traffic.requests,
        "completed": completed,
        "unfinished": unfinished,
        "makespan_s": makespan,
        "offline_throughput_per_s": json_float(completed / makespan) if makespan else None,
    }
    for column, key in _RATE_OF.items():
        if column in columns:
            served = float(columns[column][done].sum())
            out[key] = json_float(served / makespan) if makespan else None
    return out


def _closed_loop(
    traffic: ClosedLoopTraffic, columns: dict[str, np.ndarray], throughput_per_s: float
) -> dict[str, Any]:
    done = _finished(columns) & columns["in_window"]
    response = columns["finish_s"][done] - columns["arrival_s"][done]
    mean = json_float(response.mean()) if response.size else None
    cycle = None if mean is None else mean + traffic.think_s
    return {
        "scenario": "closed_loop",
        "users": traffic.users,
        "think_s": traffic.think_s,
        "think": traffic.think,
        "mean_response_s": mean,
        "throughput_per_s": throughput_per_s,
        "users_over_cycle_per_s": json_float(traffic.users / cycle) if cycle else None,
    }
