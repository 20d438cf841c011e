"""The terminal: tables that fit 80 columns, --format, help text, completion, and the
listing and starter commands (`workloads show`, `studies list`, `hardware list`, `init`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from clikit import SHORT, assert_ok, invoke, one_error, stdout, write_world
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.config.loader import catalog, load_chip
from clirunner import ENV

REFERENCE = Path(__file__).resolve().parents[2] / "validation" / "reference"
TWO_RUNS = """\
base: scenario.yaml
set: {simulation.duration_s: 0.2}
axes: [{grid: {pools.p.count: [1, 2]}}]
metrics: [workloads.w.latency_s.p99, totals.queries_per_j]
"""


def at_80_columns(*args: Any) -> Result:
    return CliRunner(env={**ENV, "COLUMNS": "80"}).invoke(app, [str(a) for a in args])


def assert_fits_80_columns(result: Result) -> str:
    assert_ok(result)
    text = stdout(result)
    assert text.strip(), "printed nothing"
    assert "…" not in text, text  # rich's mark of a cell cut short
    assert not re.search(r"\d…|…\d", text)
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert not too_long, too_long
    return text


LLM_SHORT = ("--set", "simulation.duration_s=4", "--set", "simulation.warmup_s=1")


@pytest.mark.parametrize(
    "args",
    [
        ("run", *SHORT),
        ("run", "llm-contemplating", *LLM_SHORT),
        ("run", "mixed-fleet-ranking-and-llm", *LLM_SHORT),
        ("explain", "--chip", "mtia-like-gen2", "--model", "dlrm-mlp-heavy"),
        ("explain", "--chip", "gpu-like-gen2-hbm", "--model", "llm-dense-8b", "--batch", 32),
        ("hardware", "list"),
        ("hardware", "show", "gpu-like-gen2-hbm"),
        ("workloads", "list"),
        ("workloads", "show", "llm-moe-8x7b"),
        ("workloads", "show", "ranking-mtia-vs-gpu"),
        ("studies", "list"),
        ("validate", "--fidelity"),
        (
            "compare",
            "ranking-mtia-vs-gpu",
            "ranking-mtia-vs-gpu",
            *SHORT,
            "--set-b",
            "simulation.seed=2",
        ),
    ],
    ids=lambda a: " ".join(map(str, a[:3])) if isinstance(a, tuple) else str(a),
)
def test_every_table_fits_80_columns_with_no_number_cut(args: tuple[Any, ...]) -> None:
    assert_fits_80_columns(at_80_columns(*args))


def test_sweep_pareto_capacity_and_calibrate_tables_fit_80_columns(tmp_path: Path) -> None:
    write_world(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text(TWO_RUNS, encoding="utf-8")
    folder = tmp_path / "out"
    text = assert_fits_80_columns(at_80_columns("sweep", study, "--out", folder, "-j", 1))
    assert "p99" in text
    assert_fits_80_columns(
        at_80_columns(
            "pareto", folder, "--x", "totals.queries_per_j", "--y", "workloads.w.latency_s.p99"
        )
    )
    scenario = tmp_path / "scenario.yaml"
    assert_fits_80_columns(
        at_80_columns(
            "capacity", scenario, "--low", 100, "--high", 3000, "--tolerance", 0.5, "--seeds", 1
        )
    )
    assert_fits_80_columns(
        at_80_columns(
            "calibrate",
            REFERENCE / "measurements.csv",
            "--chip",
            REFERENCE / "a100-sxm.yaml",
            "--param",
            "compute.kernel_overhead_s",
        )
    )


def test_a_wide_table_is_turned_on_its_side_keeping_its_numbers() -> None:
    """At 80 columns the LLM table (13 columns) shows each workload as a column; at the
    default width (160, not a terminal) it is drawn as it is."""
    narrow = assert_fits_80_columns(at_80_columns("run", "llm-contemplating", *LLM_SHORT))
    assert re.search(r"┃ LLM +┃ +ask_instant ┃ +ask_contemplating ┃", narrow)
    doc = json.loads(stdout(invoke("run", "llm-contemplating", *LLM_SHORT, "-q", "--json", "-")))
    offered = doc["workloads"]["ask_instant"]["offered"]
    assert re.search(rf"│ offered +│ +{offered} │", narrow)
    wide = stdout(invoke("run", "llm-contemplating", *LLM_SHORT))
    assert re.search(r"┃ LLM +┃ mode +┃ offered", wide)


def test_run_prints_csv_and_markdown() -> None:
    doc = json.loads(stdout(invoke("run", *SHORT, "-q", "--json", "-")))
    result = invoke("run", *SHORT, "--format", "csv")
    assert_ok(result)
    workloads, pools = result.stdout.split("\n\n")
    rows = list(csv.DictReader(io.StringIO(workloads)))
    assert [r["ranking"] for r in rows] == ["feed_mtia", "feed_gpu"]
    assert rows[0]["offered"] == str(doc["workloads"]["feed_mtia"]["offered"])
    assert [r["pool"] for r in csv.DictReader(io.StringIO(pools))] == ["mtia", "gpu"]
    assert "total:" in result.stderr  # lines that are not tables stay off the data

    markdown = invoke("run", *SHORT, "--format", "markdown")
    assert_ok(markdown)
    lines = markdown.stdout.splitlines()
    assert lines[0].startswith("**ranking-mtia-vs-gpu")
    header = lines.index(
        "| pool | chip | chips | util | batch | clock | avg power | peak | "
        "energy | per joule | $/hour |"
    )
    assert lines[header + 1] == "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert any(line.startswith("total: ") for line in lines)


@pytest.mark.parametrize(
    "args",
    [
        ("hardware", "list"),
        ("studies", "list"),
        ("explain", "--chip", "mtia-like-gen2", "--model", "dlrm-mlp-heavy"),
    ],
)
def test_tabular_commands_take_csv(args: tuple[str, ...]) -> None:
    result = invoke(*args, "--format", "csv")
    assert_ok(result)
    first = next(csv.reader(io.StringIO(result.stdout)))
    assert first[0] in ("name", "op")


def test_run_format_errors() -> None:
    assert one_error(invoke("run", *SHORT, "--format", "svg")) == (
        "error: --format svg goes with --report PATH"
    )
    assert one_error(invoke("run", *SHORT, "--format", "cvs")) == (
        "error: --format: unknown format 'cvs'; did you mean 'csv'? "
        "(known: table, csv, markdown, html, png, svg)"
    )


COMMANDS = [
    (),
    ("run",),
    ("explain",),
    ("schema",),
    ("sweep",),
    ("export",),
    ("pareto",),
    ("capacity",),
    ("compare",),
    ("validate",),
    ("report",),
    ("calibrate",),
    ("init",),
    ("hardware", "list"),
    ("hardware", "show"),
    ("workloads", "list"),
    ("workloads", "show"),
    ("studies", "list"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "accelsim")
def test_help_shows_plain_placeholders(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert_ok(result)
    text = stdout(result)
    # Not the Python type of a parameter (`<str>`, `<list[str]>`, `<int range>`).
    assert not re.search(r"<[a-z][a-z_ \[\],|]*>", text), text


def test_help_names_ranking_and_llm_inference_and_offers_completion() -> None:
    text = " ".join(stdout(invoke("--help")).split())
    assert "ranking" in text and "LLM inference" in text
    assert "--install-completion" in text and "--show-completion" in text


# ----------------------------------------------------------- listings and starters


def test_hardware_list_describes_each_chip_in_one_line() -> None:
    text = stdout(invoke("hardware", "list", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(text.split("\n\n")[0])))
    assert [r["name"] for r in rows] == list(catalog("chip"))
    for row in rows:
        assert row["description"] and "\n" not in row["description"]
        assert load_chip(row["name"]).description.startswith(row["description"])
    assert rows[0]["description"] == "Hypothetical server CPU socket (CPU-like baseline)"


def test_studies_list_names_each_shipped_study_and_its_base() -> None:
    rows = list(csv.DictReader(io.StringIO(stdout(invoke("studies", "list", "--format", "csv")))))
    assert [r["name"] for r in rows] == list(catalog("study"))
    by_name = {r["name"]: r for r in rows}
    assert by_name["ranking-fleet-sizing"]["base"] == "ranking-heterogeneous-fleet"
    assert "pools.mtia.count" in by_name["ranking-fleet-sizing"]["axes"]


def test_workloads_show_a_model_and_a_scenario() -> None:
    model = json.loads(stdout(invoke("workloads", "show", "llm-dense-8b", "--json")))
    assert model["kind"] == "llm" and model["layers"] == 32
    text = stdout(invoke("workloads", "show", "ranking-mtia-vs-gpu"))
    assert re.search(r"│ pools\.gpu\.count +│ 2 +│", text)
    assert re.search(r"│ workloads\.feed_gpu\.traffic\.rate_per_s +│ 10 k/s +│", text)


def test_workloads_show_unknown_names_and_other_kinds() -> None:
    line = one_error(invoke("workloads", "show", "llm-dense-9b"))
    assert line.startswith(
        "error: no model or scenario named 'llm-dense-9b'; did you mean 'llm-dense-1b', "
        "'llm-dense-8b' or 'llm-dense-70b'? (known: "
    )
    line = one_error(invoke("workloads", "show", str(REFERENCE / "a100-sxm.yaml")))
    assert (
        line == f"error: {REFERENCE / 'a100-sxm.yaml'}: a chip file (see `accelsim hardware show`)"
    )


def test_init_writes_a_starter_that_runs_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "mine.yaml"
    result = invoke("init", target)
    assert_ok(result)
    assert f"wrote {target}" in result.stderr
    text = target.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (target.parent / first.split("=", 1)[1]).resolve().name == "scenario.schema.json"
    doc = json.loads(stdout(invoke("run", target, "-q", "--json", "-")))
    assert doc["workloads"]["feed"]["completed"] > 0

    # Its LLM workload and pool, uncommented, run too.
    llm = tmp_path / "sub" / "llm.yaml"
    llm.write_text(re.sub(r"(?m)^  # ( *[a-z_]+:)", r"  \1", text), encoding="utf-8")
    doc = json.loads(stdout(invoke("run", llm, *LLM_SHORT, "-q", "--json", "-")))
    assert set(doc["workloads"]) == {"feed", "chat"} and doc["workloads"]["chat"]["completed"]

    before = target.read_bytes()
    assert one_error(invoke("init", target)) == (
        f"error: {target}: already exists; choose another path (init never writes over a file)"
    )
    assert target.read_bytes() == before


def test_init_writes_scenario_yaml_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("init"))
    assert (tmp_path / "scenario.yaml").is_file()


def test_shell_completion_offers_shipped_names() -> None:
    """`accelsim run llm-<TAB>` completes to the shipped LLM scenarios (the function
    typer calls for the SCENARIO argument; the shell protocol is typer's own)."""
    from accelsim.commands.common import complete_shipped

    assert complete_shipped("scenario")("llm-") == [
        n for n in catalog("scenario") if n.startswith("llm-")
    ]
    assert complete_shipped("chip")("mtia-like-gen2") == ["mtia-like-gen2-hbm", "mtia-like-gen2"]
    assert complete_shipped("study")("nothing") == []
