"""Top-level behaviour: help, version, the default scenario, light start-up."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import yaml
from clikit import SHORT, assert_ok, invoke, stdout

import accelsim
from accelsim.config.loader import DEFAULT_SCENARIO, catalog


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert_ok(result)
    text = stdout(result)
    assert "Usage:" in text
    for command in ("run", "explain", "schema", "hardware", "workloads"):
        assert command in text


def test_subcommand_help() -> None:
    for args in (("run", "--help"), ("hardware", "--help"), ("explain", "--help")):
        result = invoke(*args)
        assert_ok(result)
        assert "Usage:" in stdout(result)
    assert "--set" in stdout(invoke("run", "--help"))


def test_version_matches_the_package() -> None:
    result = invoke("--version")
    assert_ok(result)
    assert stdout(result).strip() == f"accelsim {accelsim.__version__}"
    assert accelsim.__version__ == version("accelsim")


def test_run_without_argument_runs_the_default_scenario() -> None:
    shipped = yaml.safe_load(catalog("scenario")[DEFAULT_SCENARIO].read_text(encoding="utf-8"))
    result = invoke("run", *SHORT)
    assert_ok(result)
    text = stdout(result)
    assert text.startswith(DEFAULT_SCENARIO)
    assert "1 s measured after 0.2 s warm-up" in text
    # The workload table and the pool table, with every workload and pool in them.
    for header in ("ranking", "offered", "done", "in flight", "p99 ms", "SLA"):
        assert header in text
    for header in ("pool", "chip", "util", "avg power", "energy", "queries/J"):
        assert header in text
    for name in shipped["workloads"]:
        assert f" {name} " in text
    for name, pool in shipped["pools"].items():
        assert f" {name} " in text
        assert pool["chip"] in text
    assert "total:" in text
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_quiet_run_prints_nothing() -> None:
    result = invoke("run", *SHORT, "--quiet")
    assert_ok(result)
    assert result.stdout == ""
    assert result.stderr == ""


def test_importing_the_cli_stays_light() -> None:
    """`accelsim --help` must not pay for numpy, simpy or pydantic."""
    code = (
        "import sys, accelsim.cli\n"
        "heavy = [m for m in ('numpy', 'simpy', 'pydantic') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_real_entry_point_reports_errors_without_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncompute: [1, 2\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "accelsim.cli", "hardware", "show", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {bad}:")
