"""Shared helpers of the trust tests: running the CLI, judging failures, fixture files."""

from __future__ import annotations

import contextlib
import copy
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from typer.testing import CliRunner

from accelsim.cli import app
from helpers import CHIP, MODEL

_ENV = {
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "COLUMNS": None,
    "NO_COLOR": "1",
    "ACCELSIM_DATA": None,
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Hang(Exception):
    """Raised in the test process when a command runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Turn a hang into an exception (SIGALRM; the main thread only)."""

    def alarm(_signum: int, _frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*args: Any, limit_s: float = 30.0) -> Result:
    with time_limit(limit_s):
        return CliRunner(env=_ENV).invoke(app, [str(a) for a in args])


def out(result: Result) -> str:
    return _ANSI.sub("", result.stdout)


def err(result: Result) -> str:
    return _ANSI.sub("", result.stderr)


def crashed(result: Result) -> bool:
    """A command that ended by an exception other than a clean exit (CliRunner keeps the
    exception aside instead of printing a traceback)."""
    return result.exception is not None and not isinstance(result.exception, SystemExit)


def describe(result: Result) -> str:
    exc = result.exception
    kind = "" if exc is None else f"{type(exc).__name__}: {exc}"
    return (
        f"exit {result.exit_code} {kind}\n"
        f"stdout: {out(result)[-800:]}\nstderr: {err(result)[-800:]}"
    )


def error_lines(result: Result, *files: Path | str) -> list[str]:
    """Assert a clean user-error exit (code 1, no traceback, only ``error:`` lines on
    stderr, each naming one of ``files`` when given) and return those lines."""
    assert not crashed(result), describe(result)
    assert result.exit_code == 1, describe(result)
    assert "Traceback" not in result.output, describe(result)
    lines = [line for line in err(result).splitlines() if line.strip()]
    assert lines, "no error printed"
    assert all(line.startswith("error: ") for line in lines), lines
    if files:
        names = tuple(f"error: {f}" for f in files)
        assert all(line.startswith(names) for line in lines), (lines, files)
    return lines


def assert_ok(result: Result) -> None:
    assert not crashed(result), describe(result)
    assert result.exit_code == 0, describe(result)
    assert "Traceback" not in result.output


def chip_data() -> dict[str, Any]:
    return copy.deepcopy(CHIP)


def model_data() -> dict[str, Any]:
    return copy.deepcopy(MODEL)


def scenario_data(chip: str = "chip.yaml", model: str = "model.yaml") -> dict[str, Any]:
    """A small scenario: at most a few hundred queries of at most 16 items."""
    return {
        "name": "trust",
        "simulation": {"duration_s": 0.4, "warmup_s": 0.1, "seed": 3},
        "workloads": {
            "w": {
                "model": model,
                "traffic": {"kind": "poisson", "rate_per_s": "500 /s"},
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
        "router": {"policy": "join_shortest_queue"},
    }


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write(path: Path, data: Any) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else dump(data), encoding="utf-8")
    return path


def write_world(folder: Path) -> Path:
    """chip.yaml, model.yaml and scenario.yaml in ``folder``; returns the scenario."""
    write(folder / "chip.yaml", chip_data())
    write(folder / "model.yaml", model_data())
    return write(folder / "scenario.yaml", scenario_data())
