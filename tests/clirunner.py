"""Run the CLI in-process for tests: plain, uncoloured output and the shipped data."""

from __future__ import annotations

import re
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from accelsim.cli import app

ENV = {
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "COLUMNS": None,
    "NO_COLOR": "1",
    "ACCELSIM_DATA": None,
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def invoke(*args: Any) -> Result:
    return CliRunner(env=ENV).invoke(app, [str(a) for a in args])


def out(result: Result) -> str:
    return ANSI.sub("", result.stdout)


def err(result: Result) -> str:
    return ANSI.sub("", result.stderr)


def assert_ok(result: Result) -> None:
    assert result.exception is None, (result.exception, result.output)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
