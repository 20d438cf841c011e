"""The seams: layers import one way, kinds and policies plug in through registries.

A new routing policy is one class plus one line in each of two registries (the
config's names, the engine's classes); a new workload kind is its own modules
plus one registry line per layer. These tests hold that shape.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelsim.config import schema
from accelsim.engine.routing import ROUTERS, Router
from accelsim.engine.simulation import FLEETS, simulate
from accelsim.errors import ConfigError
from accelsim.metrics.summary import METRIC_KINDS, summarize
from accelsim.report.kinds import REPORT_KINDS
from helpers import resolved

SRC = Path(__file__).resolve().parents[2] / "src" / "accelsim"

# Lower layers first. A module may import its own layer and the layers before it.
LAYERS = (
    {"__version__", "units", "errors"},
    {"config"},
    {"model"},
    {"engine"},
    {"metrics"},
    {"runner", "validation"},
    {"study", "planner"},
    {"report"},
    # the command line, and the Python API the package's __init__ loads on first use
    {"commands", "cli", "api", "__init__"},
)


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, accelsim module) of every import in a file, top-level or inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "accelsim":
                out += [(node.lineno, f"accelsim.{a.name}") for a in node.names]
            elif node.module.startswith("accelsim."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("accelsim.")]
    return out


def test_no_import_runs_back_up_the_layers() -> None:
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        here = _layer(parts[0])
        for line, module in _imports(path):
            target = module.split(".")[1]
            if _layer(target) > here:
                upward.append(f"{path.relative_to(SRC)}:{line} imports {module}")
        # No reaching up by name at run time either: import_module only of a named
        # third-party package (an optional dependency).
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                and not (
                    isinstance(node.args[0], ast.Constant)
                    and not str(node.args[0].value).startswith("accelsim")
                )
            ):
                upward.append(f"{path.relative_to(SRC)}:{node.lineno} imports a module by name")
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from accelsim.study.store import Store\n")
    assert _imports(bad) == [(2, "accelsim.study.store")]
    assert _layer("study") > _layer("config")


def test_every_workload_kind_has_an_entry_in_every_layer() -> None:
    workload_union = typing.get_args(typing.get_args(schema.Workload)[0])
    kinds = {typing.get_args(w.model_fields["kind"].annotation)[0] for w in workload_union}
    assert kinds == {"ranking", "llm"}
    assert set(schema.POOL_RULES) == kinds
    assert set(FLEETS) == kinds
    assert set(METRIC_KINDS) == kinds
    assert set(REPORT_KINDS) == kinds
    assert list(schema.ROUTER_POLICIES) == list(ROUTERS)


class _LastUnit(Router):
    """A test-only policy: always the last unit that serves the workload."""

    name = "last_unit"

    def pick(self, items: int = 1) -> Any:
        return self.units[-1]


def test_a_router_policy_is_one_class_and_one_line_per_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base: dict[str, Any] = {"rate_per_s": 2000, "sizes": {"kind": "fixed", "value": 4}}
    from accelsim.config.loader import load_scenario

    with pytest.raises(ConfigError, match=r"router\.policy: Input should be"):
        load_scenario("ranking-mtia-vs-gpu", ["router.policy=last_unit"])
    monkeypatch.setitem(schema.ROUTER_POLICIES, "last_unit", "always the last chip")
    monkeypatch.setitem(ROUTERS, "last_unit", _LastUnit)
    res = resolved(**base, count=3, policy="last_unit", duration_s=1.0)
    records = simulate(res)
    stations = records.fleets["ranking"].workloads["w"].station
    assert stations.size > 1000
    assert np.all(stations == 2)
    doc = summarize(res, records)
    assert doc["config"]["router"]["policy"] == "last_unit"
    assert doc["workloads"]["w"]["completed"] > 0


@pytest.mark.parametrize(
    ("scenario", "setting", "message"),
    [
        (
            "llm-chat-gpu",
            "pools.gpu.batching.max_batch_items=64",
            "pools.gpu.batching: batching is for ranking pools; this pool serves LLM "
            "workloads (set continuous_batching instead)",
        ),
        (
            "ranking-mtia-vs-gpu",
            "pools.gpu.continuous_batching.max_batch_tokens=64",
            "pools.gpu.continuous_batching: continuous_batching is for LLM pools; this pool "
            "serves ranking workloads (set batching instead)",
        ),
        (
            "ranking-mtia-vs-gpu",
            "pools.gpu.chips_per_replica=2",
            "pools.gpu.chips_per_replica: ranking replicas are one chip each "
            "(tensor parallelism is for LLM pools)",
        ),
    ],
)
def test_a_pool_section_meant_for_another_kind_is_an_error(
    scenario: str, setting: str, message: str
) -> None:
    from accelsim.config.loader import load_scenario

    with pytest.raises(ConfigError) as err:
        load_scenario(scenario, [setting])
    assert message in str(err.value)


def test_validate_configs_and_run_refuse_the_same_scenario(tmp_path: Path) -> None:
    """A check that needs the resolved scenario (here: the model does not fit a replica)
    is made when the file is loaded, by both `validate --configs` and `run`."""
    from accelsim.config.files import check_config_file
    from accelsim.model.checks import scenario_problems
    from accelsim.runner import load_checked

    path = tmp_path / "too-big.yaml"
    path.write_text(
        "name: too-big\n"
        "workloads:\n"
        "  chat:\n"
        "    kind: llm\n"
        "    model: llm-dense-70b\n"
        "    traffic: {kind: poisson, rate_per_s: 1}\n"
        "    prompt_tokens: {kind: fixed, value: 100}\n"
        "    output_tokens: {kind: fixed, value: 10}\n"
        "pools:\n"
        "  one: {chip: mtia-like-gen1, count: 1, serves: [chat]}\n"
    )
    checked = check_config_file(path, "scenario", str(path), scenario_problems)
    with pytest.raises(ConfigError) as err:
        load_checked(str(path))
    assert not checked.ok
    assert "does not fit the DRAM of a replica" in str(err.value)
    assert checked.errors == tuple(str(err.value).splitlines())
