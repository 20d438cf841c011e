"""Shared helpers of the study tests: small file-based worlds and CLI invocation.

The world is the in-memory test chip and model of ``tests/helpers.py`` written
to YAML, so every run is short and every number is known.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from clirunner import assert_ok, err, invoke, out  # noqa: F401  (re-exported)
from helpers import CHIP, MODEL


def error_lines(result: Result) -> list[str]:
    """The ``error:`` lines of a command that failed cleanly (exit 1, no traceback)."""
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in err(result).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors, lines
    return errors


def write(path: Path, data: Any) -> Path:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def scenario_data(
    *,
    rate: float = 2000.0,
    duration_s: float = 0.5,
    warmup_s: float = 0.05,
    seed: int = 3,
    items: dict[str, Any] | None = None,
    count: int = 2,
    batching: dict[str, Any] | None = None,
    policy: str = "join_shortest_queue",
    sla_s: float | None = 0.005,
) -> dict[str, Any]:
    workload: dict[str, Any] = {
        "model": "model.yaml",
        "traffic": {"kind": "poisson", "rate_per_s": rate},
        "items_per_query": items or {"kind": "uniform", "low": 1, "high": 64},
    }
    if sla_s is not None:
        workload["sla"] = {"latency_s": sla_s, "percentile": 99}
    return {
        "name": "study-test",
        "simulation": {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
        "workloads": {"w": workload},
        "pools": {
            "p": {
                "chip": "chip.yaml",
                "count": count,
                "serves": ["w"],
                "batching": batching or {"max_batch_items": 64, "max_wait_s": 0.0005},
            }
        },
        "router": {"policy": policy},
    }


def write_world(folder: Path, **scenario: Any) -> Path:
    """chip.yaml, model.yaml and scenario.yaml in ``folder``; returns the scenario."""
    write(folder / "chip.yaml", copy.deepcopy(CHIP))
    write(folder / "model.yaml", copy.deepcopy(MODEL))
    return write(folder / "scenario.yaml", scenario_data(**scenario))


STUDY = """\
description: a small grid-and-zip study of the test world
base: scenario.yaml
set:
  simulation.duration_s: 0.3
axes:
  - grid:
      pools.p.count: [1, 2]
      pools.p.batching.max_batch_items: [16, 64]
  - zip:
      workloads.w.traffic.rate_per_s: [1000, 3000]
      pools.p.batching.max_wait_s: [0.0002, 0.001]
seeds: {replicates: 2}
metrics: [workloads.w.latency_s.p99, totals.queries_per_j]
"""
"""2 x 2 grid points x 2 zip points x 2 seeds = 16 runs."""


def write_study(folder: Path, text: str = STUDY, name: str = "study.yaml", **scenario: Any) -> Path:
    write_world(folder, **scenario)
    return write(folder / name, text)


def rows_of(folder: Path) -> list[dict[str, Any]]:
    """Every complete line of a store, as written (no de-duplication)."""
    text = (folder / "runs.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def without_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "wall_s"}
