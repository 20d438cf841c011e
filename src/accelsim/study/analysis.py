"""Questions asked of results: Pareto frontiers and comparisons.

Metric keys are the dotted keys of a flattened result document
(``workloads.feed.latency_s.p99``, ``totals.queries_per_j``); in a store,
``axis.PATH`` names an axis value and ``wall_s``, ``seed`` and ``replicate``
a run's own fields.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accelsim.errors import AccelsimError

Goal = Literal["min", "max"]
RUN_FIELDS = ("wall_s", "seed", "replicate")

_MINIMISED = ("latency", "wait", "energy", "power", "wall_s", "in_flight", "dropped", "_w", "_j")


def guess_goal(metric: str) -> Goal:
    """Whether smaller is better for a metric, judged by its name (``queries_per_j`` and
    other rates are maximised; latencies, waits, energy and power minimised)."""
    last = metric.rsplit(".", 2)
    name = ".".join(last[-2:]) if len(last) > 1 else metric
    if "per_j" in name or "per_s" in name or "attainment" in name or name.endswith(".met"):
        return "max"
    return "min" if any(token in name for token in _MINIMISED) else "max"


# ------------------------------------------------------------------ store rows


def metric_keys(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every metric key of the rows, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.get("metrics", {}):
            seen.setdefault(key, None)
    return list(seen)


def axis_keys(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.get("axes", {}):
            seen.setdefault(key, None)
    return list(seen)


def value_of(row: dict[str, Any], key: str) -> Any:
    if key.startswith("axis."):
        return row.get("axes", {}).get(key[len("axis.") :])
    if key in RUN_FIELDS:
        return row.get(key)
    return row.get("metrics", {}).get(key)


def check_metric(key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Raise a helpful error if no row has ``key``."""
    known = metric_keys(rows) + [f"axis.{a}" for a in axis_keys(rows)] + list(RUN_FIELDS)
    if key in known:
        return
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise AccelsimError(
        f"no metric {key!r} in these results{hint}; `accelsim export DIR --csv -` lists them all"
    )


def expand_patterns(patterns: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Metric keys matching the patterns (``*`` matches within one dotted part)."""
    out: dict[str, None] = {}
    for pattern in patterns:
        parts = pattern.split(".")
        for key in keys:
            key_parts = key.split(".")
            if len(key_parts) == len(parts) and all(
                fnmatch.fnmatchcase(k, p) for k, p in zip(key_parts, parts, strict=True)
            ):
                out.setdefault(key, None)
    return list(out)


def _mean(values: Iterable[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float) and v is not None]
    return sum(numbers) / len(numbers) if numbers else None


@dataclass
class Group:
    """The runs of one point of the axes (its replicates)."""

    axes: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") == "ok"]

    def mean(self, key: str) -> float | None:
        """Mean over the replicates that ran and have a value (booleans count as 0/1)."""
        return _mean(value_of(r, key) for r in self.ok)

    def spread(self, key: str) -> float | None:
        """Sample standard deviation over the replicates that ran and have a value
        (``None`` below two values)."""
        numbers = [float(v) for r in self.ok if isinstance(v := value_of(r, key), int | float)]
        if len(numbers) < 2:
            return None
        mean = sum(numbers) / len(numbers)
        return math.sqrt(sum((x - mean) ** 2 for x in numbers) / (len(numbers) - 1))


def _key(axes: dict[str, Any]) -> str:
    import json

    return json.dumps(axes, sort_keys=True)


def group_rows(rows: Iterable[dict[str, Any]]) -> list[Group]:
    groups: dict[str, Group] = {}
    for row in rows:
        axes = row.get("axes", {})
        groups.setdefault(_key(axes), Group(dict(axes))).rows.append(row)
    return list(groups.values())


# ------------------------------------------------------------------ Pareto


def pareto_front(points: Sequence[tuple[float, float]], x_goal: Goal, y_goal: Goal) -> list[int]:
    """Indices of the points no other point beats on both coordinates, ordered by x.

    A point is dominated when another is at least as good on both and better on one."""
    sx = 1.0 if x_goal == "max" else -1.0
    sy = 1.0 if y_goal == "max" else -1.0
    order = sorted(range(len(points)), key=lambda i: (-sx * points[i][0], -sy * points[i][1]))
    front: list[int] = []
    best_y = -math.inf
    for i in order:
        y = sy * points[i][1]
        if y > best_y:
            front.append(i)
            best_y = y
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


@dataclass(frozen=True)
class ParetoResult:
    x: str
    y: str
    x_goal: Goal
    y_goal: Goal
    points: list[dict[str, Any]]  # every point of the axes with both values
    frontier: list[int]  # indices into points
    excluded: int  # points left out: no value for x or y (or, if asked, an SLA missed)

    def document(self) -> dict[str, Any]:
        return {
            "x": {"metric": self.x, "goal": self.x_goal},
            "y": {"metric": self.y, "goal": self.y_goal},
            "frontier": [self.points[i] for i in self.frontier],
            "dominated": len(self.points) - len(self.frontier),
            "excluded": self.excluded,
        }


def met_every_sla(group: Group) -> bool:
    """Whether every run of the group ran and met the SLA of every workload that has one."""
    if not group.rows or len(group.ok) != len(group.rows):
        return False
    for row in group.ok:
        for key, value in row.get("metrics", {}).items():
            if key.startswith("workloads.") and key.endswith(".sla.met") and value is not True:
                return False
    return True


def pareto(
    rows: Sequence[dict[str, Any]],
    x: str,
    y: str,
    x_goal: Goal,
    y_goal: Goal,
    *,
    sla_met: bool = False,
) -> ParetoResult:
    """The frontier over the points of the axes (each the mean of its replicates); with
    ``sla_met``, over the points whose every run met every workload's SLA."""
    check_metric(x, rows)
    check_metric(y, rows)
    points: list[dict[str, Any]] = []
    excluded = 0
    for group in group_rows(rows):
        vx, vy = group.mean(x), group.mean(y)
        if vx is None or vy is None or (sla_met and not met_every_sla(group)):
            excluded += 1
            continue
        points.append(
            {
                "axes": group.axes,
                "x": vx,
                "y": vy,
                "runs": len(group.ok),
                "run_ids": [r["run_id"] for r in group.ok],
            }
        )
    front = pareto_front([(p["x"], p["y"]) for p in points], x_goal, y_goal)
    return ParetoResult(x, y, x_goal, y_goal, points, front, excluded)


# ------------------------------------------------------------------ compare


def compare_metrics(
    a: dict[str, Any], b: dict[str, Any]
) -> list[tuple[str, Any, Any, float | None]]:
    """(key, a, b, b / a) for every metric of either, a's order first."""
    rows = []
    for key in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(key), b.get(key)
        ratio = None
        if (
            isinstance(va, int | float)
            and isinstance(vb, int | float)
            and not isinstance(va, bool)
            and not isinstance(vb, bool)
            and va != 0
        ):
            ratio = vb / va
        rows.append((key, va, vb, ratio))
    return rows
