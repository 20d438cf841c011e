"""No command writes over a file it reads: an output that is (directly, through a
symlink, ``..`` or a hard link) the scenario, a file it pulls in, a study file or a
sweep's own store files is refused before any work, in one line naming both, exit 1,
with every input byte-identical afterwards and nothing written."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trustkit import assert_ok, chip_data, error_lines, invoke, model_data, scenario_data, write


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run with ``folder`` as the working directory (a result document names its chip and
    model relative to it)."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@dataclass(frozen=True)
class World:
    root: Path
    scenario: Path
    chip: Path
    parent_chip: Path
    model: Path
    trace: Path
    study: Path
    store: Path
    result: Path

    @property
    def scenario_inputs(self) -> list[Path]:
        return [self.scenario, self.chip, self.parent_chip, self.model, self.trace]


def _make_world(root: Path) -> World:
    write(root / "parent-chip.yaml", chip_data())
    write(root / "chip.yaml", "extends: parent-chip.yaml\nname: chip\n")
    write(root / "model.yaml", model_data())
    rows = "".join(f"{i * 0.002:.3f},4\n" for i in range(200))
    write(root / "trace.csv", "timestamp_s,items\n" + rows)
    data = scenario_data()
    data["workloads"]["t"] = {
        "model": "model.yaml",
        "traffic": {"kind": "trace", "path": "trace.csv"},
        "items_per_query": {"kind": "fixed", "value": 4},
    }
    data["pools"]["p"]["serves"] = ["w", "t"]
    write(root / "scenario.yaml", data)
    write(
        root / "study.yaml",
        "base: scenario.yaml\nset:\n  simulation.duration_s: 0.2\n"
        "axes:\n  - grid:\n      pools.p.count: [1, 2]\n",
    )
    world = World(
        root,
        root / "scenario.yaml",
        root / "chip.yaml",
        root / "parent-chip.yaml",
        root / "model.yaml",
        root / "trace.csv",
        root / "study.yaml",
        root / "res",
        root / "result.json",
    )
    with inside(root):
        assert_ok(invoke("sweep", world.study, "--out", world.store, "-q", "-j", "1"))
        assert_ok(invoke("run", "scenario.yaml", "-q", "--json", "result.json"))
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = _make_world(tmp_path_factory.mktemp("world"))
    with inside(made.root):
        yield made


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a regular file by the hash of its bytes, a link by
    where it leads, a folder as such."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[key] = "folder"
            else:
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refused(args: tuple[object, ...], output: Path | str, read: Path, root: Path) -> None:
    """The command fails cleanly, naming the output and the input, and nothing under
    ``root`` changes."""
    before = snapshot(root)
    (line,) = error_lines(invoke(*args, limit_s=20))
    assert line.startswith("error: --"), line
    assert str(output) in line and f"would write over {read}" in line, line
    assert snapshot(root) == before


# ------------------------------------------------------------------ the cases

STORE_X, STORE_Y = "totals.queries_per_j", "workloads.w.latency_s.p99"


def test_run_json_onto_its_scenario(world: World) -> None:
    refused(
        ("run", "scenario.yaml", "-q", "--json", "scenario.yaml"),
        "scenario.yaml",
        world.scenario,
        world.root,
    )


def test_run_json_onto_a_file_the_scenario_pulls_in(world: World) -> None:
    for read in (world.chip, world.parent_chip, world.model, world.trace):
        refused(("run", world.scenario, "-q", "--json", read), read, read, world.root)


def test_run_report_onto_an_input(world: World) -> None:
    refused(
        ("run", world.scenario, "-q", "--report", world.model), world.model, world.model, world.root
    )


def test_run_report_folder_holding_a_link_to_an_input(world: World, tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / "01-old.png").symlink_to(world.chip)
    args = ("run", world.scenario, "-q", "--report", charts, "--format", "png")
    refused(args, charts, world.chip, world.root)
    assert [p.name for p in charts.iterdir()] == ["01-old.png"]


def test_export_onto_the_store(world: World) -> None:
    rows = world.store / "runs.jsonl"
    refused(("export", world.store, "--csv", rows), rows, rows, world.root)
    refused(("export", world.store, "--parquet", rows), rows, rows, world.root)


def test_report_onto_the_store(world: World) -> None:
    manifest = world.store / "study.json"
    refused(("report", world.store, "-o", manifest), manifest, manifest, world.root)
    # ... or onto the base scenario its study.json names.
    refused(
        ("report", world.store, "-o", world.scenario), world.scenario, world.scenario, world.root
    )


def test_report_of_a_result_onto_it_or_its_chip(world: World) -> None:
    refused(
        ("report", "result.json", "-o", "result.json"),
        "result.json",
        Path("result.json"),
        world.root,
    )
    refused(
        ("report", "result.json", "-o", world.parent_chip),
        world.parent_chip,
        world.parent_chip,
        world.root,
    )


def test_pareto_onto_the_store(world: World) -> None:
    rows = world.store / "runs.jsonl"
    args = ("pareto", world.store, "--x", STORE_X, "--y", STORE_Y, "--json", rows)
    refused(args, rows, rows, world.root)


def test_capacity_onto_the_scenario(world: World) -> None:
    args = ("capacity", world.scenario, "--workload", "w", "--json", world.scenario)
    refused(args, world.scenario, world.scenario, world.root)


def test_explain_onto_its_chip(world: World) -> None:
    args = ("explain", "--chip", world.chip, "--model", world.model, "--json", world.parent_chip)
    refused(args, world.parent_chip, world.parent_chip, world.root)


def test_compare_onto_one_of_its_sides(world: World) -> None:
    args = ("compare", "result.json", world.scenario, "--json", "result.json")
    refused(args, "result.json", Path("result.json"), world.root)
    args = ("compare", "result.json", world.scenario, "--json", world.trace)
    refused(args, world.trace, world.trace, world.root)


def test_sweep_into_a_folder_that_would_write_over_an_input(world: World, tmp_path: Path) -> None:
    refused(("sweep", world.study, "--out", world.study), world.study, world.study, world.root)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "runs.jsonl").symlink_to(world.trace)
    refused(("sweep", world.study, "--out", linked), linked, world.trace, world.root)
    # A study file kept as the folder's study.json.
    own = tmp_path / "own"
    own.mkdir()
    text = world.study.read_text().replace("base: scenario.yaml", f"base: {world.scenario}")
    study = write(own / "study.json", text)
    refused(("sweep", study, "--out", own), own, study, world.root)


def test_a_refused_export_leaves_the_sweep_resumable(world: World) -> None:
    rows = world.store / "runs.jsonl"
    error_lines(invoke("export", world.store, "--csv", rows))
    result = invoke("sweep", world.study, "--out", world.store, "--resume", "-j", "1")
    assert_ok(result)
    assert "0 runs in" in result.stderr and "(2 already done)" in result.stderr


def test_a_hard_link_to_an_input_is_refused(world: World, tmp_path: Path) -> None:
    twin = tmp_path / "twin.yaml"
    os.link(world.model, twin)
    refused(("run", world.scenario, "-q", "--json", twin), twin, world.model, world.root)


def test_outputs_beside_the_inputs_are_written(world: World, tmp_path: Path) -> None:
    out = tmp_path / "scenario.json"
    assert_ok(invoke("run", world.scenario, "-q", "--json", out))
    assert out.stat().st_size > 0


# ------------------------------------------------------------------ property


@dataclass(frozen=True)
class Command:
    name: str
    args: Callable[[World, Path], tuple[object, ...]]  # (world, output) -> command line
    inputs: Callable[[World], list[Path]]


COMMANDS = (
    Command(
        "run --json",
        lambda w, o: ("run", w.scenario, "-q", "--json", o),
        lambda w: w.scenario_inputs,
    ),
    Command(
        "run --report",
        lambda w, o: ("run", w.scenario, "-q", "--report", o),
        lambda w: w.scenario_inputs,
    ),
    Command(
        "run --report png",
        lambda w, o: ("run", w.scenario, "-q", "--report", o, "--format", "svg"),
        lambda w: w.scenario_inputs,
    ),
    Command(
        "explain --json",
        lambda w, o: ("explain", "--chip", w.chip, "--model", w.model, "--json", o),
        lambda w: [w.chip, w.parent_chip, w.model],
    ),
    Command(
        "capacity --json",
        lambda w, o: ("capacity", w.scenario, "--workload", "w", "--json", o),
        lambda w: w.scenario_inputs,
    ),
    Command(
        "compare --json",
        lambda w, o: ("compare", w.result, w.scenario, "--json", o),
        lambda w: [w.result, *w.scenario_inputs],
    ),
    Command(
        "sweep --out",
        lambda w, o: ("sweep", w.study, "--out", o, "-q"),
        lambda w: [w.study, *w.scenario_inputs],
    ),
    Command(
        "export --csv",
        lambda w, o: ("export", w.store, "--csv", o),
        lambda w: [w.store / "study.json", w.store / "runs.jsonl"],
    ),
    Command(
        "export --parquet",
        lambda w, o: ("export", w.store, "--parquet", o),
        lambda w: [w.store / "study.json", w.store / "runs.jsonl"],
    ),
    Command(
        "pareto --json",
        lambda w, o: ("pareto", w.store, "--x", STORE_X, "--y", STORE_Y, "--json", o),
        lambda w: [w.store / "study.json", w.store / "runs.jsonl"],
    ),
    Command(
        "report DIR",
        lambda w, o: ("report", w.store, "-o", o),
        lambda w: [w.store / "study.json", w.store / "runs.jsonl", *w.scenario_inputs],
    ),
    Command(
        "report FILE",
        lambda w, o: ("report", w.result, "-o", o),
        lambda w: [w.result, w.chip, w.parent_chip, w.model],
    ),
)

FORMS = ("as read", "relative", "through ..", "symlink", "symlinked folder", "hard link")


def disguise(world: World, read: Path, form: str, aside: Path) -> Path:
    """Another name for the file ``read``; new names live in ``aside``, outside the world."""
    if form == "as read":
        return read
    if form == "relative":
        return Path(os.path.relpath(read, Path.cwd()))
    if form == "through ..":
        return read.parent / "res" / ".." / read.name
    if form == "symlink":
        link = aside / f"link-{len(list(aside.iterdir()))}{read.suffix}"
        link.symlink_to(read)
        return link
    if form == "symlinked folder":
        folder = aside / f"folder-{len(list(aside.iterdir()))}"
        folder.symlink_to(read.parent, target_is_directory=True)
        return folder / read.name
    link = aside / f"hard-{len(list(aside.iterdir()))}{read.suffix}"
    os.link(read, link)
    return link


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_command_changes_an_input_whatever_output_it_is_given(
    world: World, tmp_path: Path, data: st.DataObject
) -> None:
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    read = data.draw(st.sampled_from(command.inputs(world)), label="input")
    form = data.draw(st.sampled_from(FORMS), label="form")
    aside = tmp_path / "aside"
    aside.mkdir(exist_ok=True)
    output = disguise(world, read, form, aside)
    before = snapshot(world.root)
    result = invoke(*command.args(world, output), limit_s=20)
    (line,) = error_lines(result)
    assert "would write over" in line and str(read.name) in line, (command.name, line)
    assert snapshot(world.root) == before, command.name
