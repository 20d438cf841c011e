"""Shared helpers for the CLI tests: invoking the app and writing small fixture files.

Fixture files are written from the in-memory test chip and model of
``tests/helpers.py`` so every number (and every line number an error should
name) is known exactly, independent of the shipped data.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from clirunner import assert_ok, invoke  # noqa: F401  (re-exported)
from clirunner import err as stderr
from clirunner import out as stdout  # noqa: F401  (re-exported)
from helpers import CHIP, MODEL

# Keep runs of the shipped scenario short.
SHORT = ("--set", "simulation.duration_s=1", "--set", "simulation.warmup_s=0.2")

BOUNDS = {"compute", "sram", "dram", "host", "overhead"}


def error_lines(result: Result) -> list[str]:
    """The ``error:`` lines of a run that must fail cleanly as a user error."""
    # A crash also gives exit code 1 in CliRunner, with the exception kept aside
    # instead of a printed traceback: only SystemExit is a clean exit.
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in stderr(result).splitlines() if line.strip()]
    assert lines, "no error printed"
    assert all(line.startswith("error: ") for line in lines), lines
    assert result.stdout == "", "a failing command printed to stdout"
    return lines


def one_error(result: Result) -> str:
    lines = error_lines(result)
    assert len(lines) == 1, lines
    return lines[0]


def json_stdout(result: Result) -> Any:
    assert_ok(result)
    return json.loads(result.stdout)  # fails on anything besides one JSON document


# --------------------------------------------------------------------- fixtures


def chip_data() -> dict[str, Any]:
    return copy.deepcopy(CHIP)


def model_data() -> dict[str, Any]:
    return copy.deepcopy(MODEL)


def scenario_data(
    *, chip: str = "chip.yaml", model: str = "model.yaml", rate: float = 500.0
) -> dict[str, Any]:
    return {
        "name": "cli-test",
        "description": "two test chips serving the tiny ranker",
        "simulation": {"duration_s": 1.0, "warmup_s": 0.2, "seed": 7},
        "workloads": {
            "w": {
                "model": model,
                "traffic": {"kind": "poisson", "rate_per_s": rate},
                "items_per_query": {"kind": "uniform", "low": 1, "high": 16},
                "sla": {"latency_s": "20 ms", "percentile": 99},
            }
        },
        "pools": {
            "p": {
                "chip": chip,
                "count": 2,
                "serves": ["w"],
                "batching": {"max_batch_items": 64, "max_wait_s": "0.5 ms"},
            }
        },
    }


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write(path: Path, data_or_text: Any) -> Path:
    text = data_or_text if isinstance(data_or_text, str) else dump(data_or_text)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based number of the line holding ``needle`` (its n-th occurrence)."""
    hits = [
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line
    ]
    assert len(hits) >= occurrence, f"{needle!r} not in {path}"
    return hits[occurrence - 1]


def write_world(folder: Path, **scenario: Any) -> Path:
    """chip.yaml, model.yaml and scenario.yaml in ``folder``; returns the scenario path."""
    write(folder / "chip.yaml", chip_data())
    write(folder / "model.yaml", model_data())
    return write(folder / "scenario.yaml", scenario_data(**scenario))
