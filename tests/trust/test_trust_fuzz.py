"""Fuzzing: valid scenario, chip and model files, mutated (keys deleted, types swapped,
unknown keys, deep nesting, random unicode and bytes, huge integers, random tags,
truncation), run through the CLI. Every outcome must be exit 0, or exit 1 with only
``error:`` lines on stderr that each name a file: never a traceback, never a hang.

The example count is bounded and the examples are derandomized so that CI is
deterministic; set ACCELSIM_FUZZ_EXAMPLES=N to explore N fresh random examples per test.

Control characters, any line break (in keys and values too), nesting thousands of
levels deep, tiny and huge floats, integers of up to 6000 digits and every tag, the
!!bool tag included, all reach the CLI; `run` and `explain` write their JSON document
too, which must then parse with no NaN or infinity in it. Scenarios start from every
kind of traffic (but traces) and of query-size distribution.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trustkit import chip_data, crashed, describe, dump, err, invoke, model_data, scenario_data

from accelsim.config.files import ConfigCheck, check_config_file
from accelsim.config.loader import data_root, load_scenario
from accelsim.errors import AccelsimError

_EXAMPLES = int(os.environ.get("ACCELSIM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXAMPLES or 80,
    derandomize=not _EXAMPLES,
    deadline=None,
    database=None if not _EXAMPLES else settings.default.database,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
DUMP_DEPTH = 250  # yaml.safe_dump recurses (~330 levels at most): deeper goes in as text
TEXT_DEPTH = 5000  # flow-style nesting written into the text
RUN_BUDGET = 20_000  # query pieces; bigger scenarios are only loaded, not run
TAGS = [
    "!!python/object:os.system",
    "!!python/object/apply:os.system",
    "!!python/object/new:os.system",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!map",
    "!!seq",
    "!vendor",
    "!<tag:example.com,2024:x>",
]

# ------------------------------------------------------------------ mutations


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


# str.splitlines() breaks lines at these: a key or value holding one must stay one line.
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
texts = st.text(st.one_of(st.characters(), st.sampled_from(_BREAKS)), max_size=20)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e-15, 1e-15),  # windows, rates and energies of (almost) zero, subnormals too
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**300]),
    floats,
    texts,
    st.sampled_from(["", "1e400", "-5 /s", "3 TB/s", "400 W", "0 s", "NaN", "~", "null", "yes"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=8,
)


def _nested(depth: int, as_list: bool) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = [node] if as_list else {"a": node}
    return node


@st.composite
def tree_mutation(draw: st.DrawFn, data: Any) -> Any:
    paths = _paths(data)
    kind = draw(st.sampled_from(["delete", "swap", "nest", "add"]))
    if not paths or not isinstance(data, dict):
        return draw(values)
    path = draw(st.sampled_from(paths))
    parent = _parent(data, path)
    if kind == "delete":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    elif kind == "swap":
        parent[path[-1]] = draw(values)
    elif kind == "nest":
        depth = draw(st.integers(1, DUMP_DEPTH - len(path) - 1))
        parent[path[-1]] = _nested(depth, draw(st.booleans()))
    else:
        target = parent if isinstance(parent, dict) else data
        target[draw(texts.filter(bool))] = draw(values)
    return data


_SCALAR_LINE = re.compile(r"^(\s*(?:- )?[\w.-]+: )(\S.*)$", re.MULTILINE)


@st.composite
def text_mutation(draw: st.DrawFn, raw: bytes) -> bytes:
    kinds = ["unicode", "bytes", "tag", "huge", "deep", "truncate", "duplicate"]
    kind = draw(st.sampled_from(kinds))
    text = raw.decode("utf-8", errors="surrogateescape")
    if kind in ("tag", "huge", "deep"):
        lines = list(_SCALAR_LINE.finditer(text))
        if lines:
            m = draw(st.sampled_from(lines))
            if kind == "tag":
                new = f"{m.group(1)}{draw(st.sampled_from(TAGS))} {m.group(2)}"
            elif kind == "deep":
                depth = draw(st.integers(DUMP_DEPTH, TEXT_DEPTH))
                opening, closing = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
                new = f"{m.group(1)}{opening * depth}{m.group(2)}{closing * depth}"
            else:
                digits = draw(st.integers(19, 6000))
                sign = draw(st.sampled_from(["", "-"]))
                new = f"{m.group(1)}{sign}{'9' * digits}"
            text = text[: m.start()] + new + text[m.end() :]
        return text.encode("utf-8", errors="surrogateescape")
    at = draw(st.integers(0, len(raw)))
    if kind == "unicode":
        return raw[:at] + draw(texts.filter(bool)).encode() + raw[at:]
    if kind == "bytes":
        return raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at:]
    if kind == "truncate":
        return raw[:at]
    lines = raw.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    return b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 3))):
        data = draw(tree_mutation(data))
    raw = dump(data).encode("utf-8")
    for _ in range(draw(st.integers(0 if data != base else 1, 2))):
        raw = draw(text_mutation(raw))
    return raw


def _scenario(traffic: dict[str, Any] | None = None, sizes: dict[str, Any] | None = None) -> Any:
    data = scenario_data()
    if traffic:
        data["workloads"]["w"]["traffic"] = traffic
    if sizes:
        data["workloads"]["w"]["items_per_query"] = sizes
    return data


SCENARIOS = [
    _scenario(),
    _scenario(
        {
            "kind": "bursty",
            "rate_per_s": 300,
            "burst_rate_per_s": "2000 /s",
            "calm_s": 0.05,
            "burst_s": "10 ms",
        }
    ),
    _scenario(
        {"kind": "diurnal", "rate_per_s": 500, "amplitude": 0.9, "period_s": 0.2, "phase_s": 0.01}
    ),
    _scenario(sizes={"kind": "fixed", "value": 8}),
    _scenario(sizes={"kind": "lognormal", "median": 4, "sigma": 1.0, "max": 64}),
    _scenario(sizes={"kind": "exponential", "mean": 6, "max": 64}),
    _scenario(sizes={"kind": "empirical", "quantiles": [[0, 1], [0.5, 3], [0.9, 10], [1, 30]]}),
]

# -------------------------------------------------------------------- judging


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} in a JSON document")


def assert_clean(result: Any, *roots: Path, json_doc: Path | None = None) -> None:
    """Exit 0, or exit 1 with only `error:` lines that each name a file under ``roots``.
    On exit 0, ``json_doc`` (when given) must be a JSON document with no NaN or infinity."""
    assert not crashed(result), describe(result)
    assert "Traceback" not in result.output, describe(result)
    if result.exit_code == 0:
        if json_doc is not None:
            json.loads(json_doc.read_text(encoding="utf-8"), parse_constant=_no_constant)
            json_doc.unlink()
        return
    assert result.exit_code == 1, describe(result)
    lines = [line for line in err(result).splitlines() if line.strip()]
    assert lines, describe(result)
    names = tuple(f"error: {root}" for root in roots)
    for line in lines:
        assert line.startswith(names), describe(result)


def _pieces(path: Path) -> float:
    """Query pieces that running a scenario file would simulate (0 when it does not load,
    as `run` then fails before simulating; inf when too hard to tell)."""
    try:
        res = load_scenario(path)
    except AccelsimError:
        return 0.0  # `run` fails on it before simulating anything
    total = 0.0
    sim = res.scenario.simulation
    chips = sum(pool.count for pool in res.scenario.pools.values())
    for name, w in res.scenario.workloads.items():
        traffic = w.traffic
        if w.kind != "ranking" or traffic.kind == "trace":
            return math.inf
        rate = traffic.rate_per_s
        if traffic.kind == "bursty":
            rate = max(rate, traffic.burst_rate_per_s)  # type: ignore[union-attr]
        elif traffic.kind == "diurnal":
            rate *= 1 + traffic.amplitude  # type: ignore[union-attr]
        batch = min(
            p.batching.max_batch_items for p in res.scenario.pools.values() if name in p.serves
        )
        dist = w.items_per_query
        largest = getattr(dist, "value", None) or getattr(dist, "high", None)
        largest = largest or getattr(dist, "max", None) or dist.quantiles[-1][1]  # type: ignore[union-attr]
        total += rate * (sim.duration_s + sim.warmup_s) * math.ceil(largest / batch)
    return total if chips <= 64 else math.inf


def _world(folder: Path) -> None:
    (folder / "chip.yaml").write_text(dump(chip_data()), encoding="utf-8")
    (folder / "model.yaml").write_text(dump(model_data()), encoding="utf-8")
    (folder / "scenario.yaml").write_text(dump(scenario_data()), encoding="utf-8")


def _check_file(path: Path, *roots: Path) -> ConfigCheck:
    checked = check_config_file(path)
    for line in checked.errors:
        assert "internal error" not in line, line
        assert line.startswith(tuple(str(r) for r in roots)), line
    return checked


def _run(folder: Path, scenario: Path, *roots: Path) -> None:
    """`run` with its summary on stdout and its JSON document in a file."""
    doc = folder / "run.json"
    assert_clean(invoke("run", scenario, "--json", doc, limit_s=30), *roots, json_doc=doc)


def _explain(folder: Path, chip: Path, model: Path, *roots: Path) -> None:
    doc = folder / "explain.json"
    result = invoke("explain", "--chip", chip, "--model", model, "--json", doc, limit_s=30)
    assert_clean(result, *roots, json_doc=doc)


# ---------------------------------------------------------------------- tests


@FUZZ
@given(raw=st.sampled_from(SCENARIOS).flatmap(mutated))
def test_fuzzed_scenarios_fail_cleanly(tmp_path_factory: Any, raw: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    _world(folder)
    scenario = folder / "scenario.yaml"
    scenario.write_bytes(raw)
    roots = (folder, data_root())
    checked = _check_file(scenario, *roots)
    # A scenario that does not load is run at once (it fails before simulating anything).
    if (checked.errors and checked.kind == "scenario") or _pieces(scenario) <= RUN_BUDGET:
        _run(folder, scenario, *roots)


@FUZZ
@given(raw=mutated(chip_data()))
def test_fuzzed_chips_fail_cleanly(tmp_path_factory: Any, raw: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    _world(folder)
    chip = folder / "chip.yaml"
    chip.write_bytes(raw)
    roots = (folder, data_root())
    _check_file(chip, *roots)
    assert_clean(invoke("hardware", "show", chip, limit_s=30), *roots)
    model = folder / "model.yaml"
    _explain(folder, chip, model, *roots)
    _run(folder, folder / "scenario.yaml", *roots)


@FUZZ
@given(raw=mutated(model_data()))
def test_fuzzed_models_fail_cleanly(tmp_path_factory: Any, raw: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    _world(folder)
    model = folder / "model.yaml"
    model.write_bytes(raw)
    roots = (folder, data_root())
    _check_file(model, *roots)
    chip = folder / "chip.yaml"
    _explain(folder, chip, model, *roots)
    _run(folder, folder / "scenario.yaml", *roots)
