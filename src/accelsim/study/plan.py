"""Expand a study's axes into runs, and check them against the base scenario first.

The runs are the Cartesian product of the axis groups (a grid group contributes
every combination of its lists, a zip group its lists taken together, a random
group its samples), each repeated for every replicate seed. A run is the base
scenario with ``--set``-style overrides: the study's ``set:`` first, then the
run's axis values, then ``simulation.seed``. Its id is a hash of its axis
values and seed, so it does not depend on the order of the runs or on which
other runs exist, and a resumed sweep recognises the runs it already has.

Before anything runs, :func:`make_plan` loads the base scenario and every axis
value on its own (every grid value, zip tuple, and the ends and choices of
random ranges), and turns any problem into an error at the study's file:line.
A grid's paths are therefore taken to be independent; fields that must change
together belong in one ``zip`` group, or in one mapping value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.config.study import MAX_RUNS, AxisGroup, LoadedStudy, Study
from accelsim.config.yamlio import Path_, dotted, parse_yaml
from accelsim.errors import ConfigError, Problem

RANDOM_DIGITS = 6
"""Random samples are rounded to this many significant digits (readable, stable ids)."""


@dataclass(frozen=True)
class Run:
    """One simulation of a sweep."""

    run_id: str
    axes: dict[str, Any]  # field path -> value, in axis order
    replicate: int
    seed: int

    def meta(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "axes": self.axes,
            "replicate": self.replicate,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Plan:
    study: Study
    source: str  # the study file
    scenario: str  # what load_scenario gets: a shipped name or an absolute path
    base_overrides: tuple[str, ...]  # the study's set:, as PATH=VALUE strings
    runs: tuple[Run, ...]
    fingerprint: str  # of the base scenario (with set:) and the set of run ids
    duplicates: int  # runs dropped because another run had the same axis values and seed
    sources: tuple[Path, ...] = ()  # every file the plan read: study, base scenario, refs

    def overrides(self, run: Run) -> list[str]:
        folder = Path(self.source).parent
        return [
            *self.base_overrides,
            *(assignment(path, localize(value, folder)) for path, value in run.axes.items()),
            f"simulation.seed={run.seed}",
        ]

    def task(self, run: Run) -> dict[str, Any]:
        """Plain, picklable data for the worker function."""
        return {"scenario": self.scenario, "overrides": self.overrides(run), "meta": run.meta()}

    def manifest(self) -> dict[str, Any]:
        return {
            "study": self.study.name,
            "source": self.source,
            "scenario": self.scenario,
            "fingerprint": self.fingerprint,
            "axes": axis_paths(self.study),
            "metrics": list(self.study.metrics),
            "runs": [run.meta() for run in self.runs],
        }


def axis_paths(study: Study) -> list[str]:
    return [path for group in study.axes for path in group.paths()]


def yaml_value(value: Any) -> str:
    """``value`` written so that reading it as YAML gives it back exactly."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=2**30, allow_unicode=True)
    text = text.removesuffix("\n").removesuffix("\n...").rstrip("\n")
    if parse_yaml(text, "<value>").data != value:  # pragma: no cover - defensive
        raise ValueError(f"cannot write {value!r} as a YAML value")
    return text


def assignment(path: str, value: Any) -> str:
    return f"{path}={yaml_value(value)}"


def _looks_like_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml", ".csv")) or value.startswith(("./", "../"))


def localize(value: Any, folder: Path) -> Any:
    """A relative file path in a study is relative to the study file, as in any config
    file; overrides are read relative to the working directory, so make it absolute."""
    if isinstance(value, str) and _looks_like_path(value):
        path = Path(value).expanduser()
        return value if path.is_absolute() else str((folder / path).resolve())
    return value


def run_id(axes: dict[str, Any], seed: int) -> str:
    canonical = json.dumps(
        {"axes": axes, "seed": seed}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------ expansion


@dataclass(frozen=True)
class _Point:
    values: dict[str, Any]
    where: dict[str, Path_]  # path -> location of the value in the study document


def _round(x: float) -> float:
    return float(f"{x:.{RANDOM_DIGITS}g}")


def _group_points(index: int, group: AxisGroup) -> list[_Point]:
    if group.grid is not None:
        paths = list(group.grid)
        points = []
        for combo in itertools.product(*(range(len(group.grid[p])) for p in paths)):
            points.append(
                _Point(
                    {p: group.grid[p][i] for p, i in zip(paths, combo, strict=True)},
                    {p: ("axes", index, "grid", p, i) for p, i in zip(paths, combo, strict=True)},
                )
            )
        return points
    if group.zip is not None:
        length = len(next(iter(group.zip.values())))
        return [
            _Point(
                {p: values[j] for p, values in group.zip.items()},
                {p: ("axes", index, "zip", p, j) for p in group.zip},
            )
            for j in range(length)
        ]
    assert group.random is not None
    import numpy as np

    rng = np.random.default_rng(group.random.seed)
    points = []
    for _ in range(group.random.samples):
        values: dict[str, Any] = {}
        for path, spec in group.random.ranges.items():
            if spec.choices is not None:
                values[path] = spec.choices[int(rng.integers(len(spec.choices)))]
                continue
            assert spec.low is not None and spec.high is not None
            if spec.integer:
                # Every whole number of [low, high] alike (log: each decade alike).
                low, high = int(spec.low), int(spec.high)
                if spec.log:
                    x = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
                    values[path] = min(high, max(low, math.floor(x)))
                else:
                    values[path] = int(rng.integers(low, high + 1))
            elif spec.log:
                values[path] = _round(
                    math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
                )
            else:
                values[path] = _round(float(rng.uniform(spec.low, spec.high)))
        points.append(_Point(values, {p: ("axes", index, "random", "ranges", p) for p in values}))
    return points


def expand(study: Study, base_seed: int, source: str = "study") -> tuple[list[Run], int]:
    """The runs of a study (duplicates dropped, first kept) and how many were dropped."""
    per_group = [_group_points(i, g) for i, g in enumerate(study.axes)]
    total = math.prod(len(p) for p in per_group) * study.seeds.replicates
    if total > MAX_RUNS:
        raise ConfigError.single(
            source,
            f"the axes give {total} runs, more than the {MAX_RUNS} a study may have",
            field="axes",
        )
    runs: list[Run] = []
    seen: set[str] = set()
    for combo in itertools.product(*per_group):
        axes: dict[str, Any] = {}
        for point in combo:
            axes.update(point.values)
        for k in range(study.seeds.replicates):
            seed = base_seed + k
            rid = run_id(axes, seed)
            if rid not in seen:
                seen.add(rid)
                runs.append(Run(rid, axes, k, seed))
    return runs, total - len(runs)


# ------------------------------------------------------------------------ preflight


def _units(study: Study) -> Iterable[tuple[dict[str, Any], dict[str, Path_]]]:
    """Every axis value on its own: grid values, zip tuples, ends and choices of ranges."""
    for index, group in enumerate(study.axes):
        if group.grid is not None:
            for path, values in group.grid.items():
                for i, value in enumerate(values):
                    yield {path: value}, {path: ("axes", index, "grid", path, i)}
        elif group.zip is not None:
            for point in _group_points(index, group):
                yield point.values, point.where
        else:
            assert group.random is not None
            for path, spec in group.random.ranges.items():
                where: Path_ = ("axes", index, "random", "ranges", path)
                if spec.choices is not None:
                    for i, choice in enumerate(spec.choices):
                        yield {path: choice}, {path: (*where, "choices", i)}
                else:
                    assert spec.low is not None and spec.high is not None
                    for end in (spec.low, spec.high):
                        value = round(end) if spec.integer else end
                        yield {path: value}, {path: where}


def _missing_parent(config: Any, path: str) -> str | None:
    """Why ``path`` cannot be a field of the validated base scenario, if it cannot."""
    parts = path.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, dict):
            if part not in node:
                here = ".".join(parts[:depth]) or "the scenario"
                known = ", ".join(map(str, node)) or "nothing"
                return f"the base scenario has no {part!r} in {here} (it has: {known})"
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None  # a null or a scalar: let validation judge the whole value
    return None


def make_plan(loaded: LoadedStudy) -> Plan:
    """Resolve the base scenario, check every axis value, and expand the runs."""
    from accelsim.config.loader import load_scenario, resolve_ref

    study, doc = loaded.study, loaded.doc
    base_loc = doc.loc(("base",))
    try:
        base_path = resolve_ref(study.base, "scenario", loaded.path.parent)
    except KeyError as exc:
        raise ConfigError.single(base_loc.source, str(exc.args[0]), base_loc.line, "base") from None
    # A shipped name stays a name, so that workers elsewhere find their own copy.
    is_name = not (
        study.base.endswith((".yaml", ".yml")) or "/" in study.base or os.sep in study.base
    )
    scenario = study.base if is_name else str(base_path.resolve())

    folder = loaded.path.parent
    where_set: dict[str, Path_] = {
        assignment(p, localize(v, folder)): ("set", p) for p, v in study.set.items()
    }
    base_overrides = tuple(where_set)
    try:
        base = load_scenario(scenario, list(base_overrides))
    except ConfigError as exc:
        raise ConfigError(_relocate(exc.problems, where_set, loaded, base_ok=False)) from None
    config = base.scenario.model_dump(mode="python")
    sources = [*loaded.sources, *base.sources]

    problems: list[Problem] = []
    for values, where in _units(study):
        unit = {assignment(p, localize(v, folder)): where[p] for p, v in values.items()}
        bad_paths = False
        for path in values:
            reason = _missing_parent(config, path)
            if reason is not None:
                key = where[path][: where[path].index(path) + 1]
                loc = doc.loc(key)
                problems.append(Problem(loc.source, loc.line, dotted(key), reason))
                bad_paths = True
        if bad_paths:
            continue
        try:
            sources += load_scenario(scenario, [*base_overrides, *unit]).sources
        except ConfigError as exc:
            problems.extend(_relocate(exc.problems, unit, loaded, base_ok=True))
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ConfigError(unique)

    base_seed = study.seeds.base if study.seeds.base is not None else base.scenario.simulation.seed
    runs, duplicates = expand(study, base_seed, str(loaded.path))
    # The runs are the base scenario plus their axis values and seed, all named by the run
    # ids: the same base and the same set of ids is the same sweep, in whatever order. The
    # base is taken as written (with extends: and set:), not as validated, so that a new
    # schema default in a later version does not orphan a store.
    fingerprint_doc = {
        "base": _base_document(base_path, base_overrides),
        "runs": sorted(run.run_id for run in runs),
    }
    fingerprint = hashlib.sha256(
        json.dumps(fingerprint_doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    return Plan(
        study=study,
        source=str(loaded.path),
        scenario=scenario,
        base_overrides=base_overrides,
        runs=tuple(runs),
        fingerprint=fingerprint,
        duplicates=duplicates,
        sources=tuple(dict.fromkeys(sources)),
    )


def _base_document(path: Path, overrides: Iterable[str]) -> Any:
    from accelsim.config.loader import load_document
    from accelsim.config.yamlio import apply_override

    doc = load_document(path, "scenario")
    for text in overrides:
        doc = apply_override(doc, text)
    return doc.data


def _relocate(
    problems: list[Problem], where: dict[str, Path_], loaded: LoadedStudy, *, base_ok: bool
) -> list[Problem]:
    """Point problems caused by the study's overrides at the study file's lines."""
    out: list[Problem] = []
    culprits = list(where.values())
    for problem in problems:
        assignment_text = problem.source.removeprefix("--set ")
        if problem.source.startswith("--set ") and assignment_text in where:
            field_path = where[assignment_text]
            message = f"{problem.field}: {problem.message}" if problem.field else problem.message
        elif base_ok and culprits:
            # The base alone is valid, so the value made the scenario invalid elsewhere.
            field_path = culprits[0]
            message = f"makes the scenario invalid: {problem}"
        else:
            out.append(problem)
            continue
        loc = loaded.doc.loc(field_path)
        out.append(Problem(loc.source, loc.line, dotted(field_path), message))
    return out
