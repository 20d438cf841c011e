"""The study file: a base scenario, fixed overrides, axes, seeds and headline metrics.

```yaml
description: chip family x batch policy
base: ranking-mtia-vs-gpu          # shipped scenario name, or a path relative to this file
set:                               # fixed overrides, applied to the base before the axes
  simulation.duration_s: 1
axes:                              # groups; the runs are the product of the groups
  - zip:                           # same-length lists, taken together
      pools.rank.chip: [mtia-like-gen2, gpu-like-gen1]
      pools.rank.count: [3, 2]
  - grid:                          # every combination
      pools.rank.batching.max_batch_items: [128, 512]
  - random:                        # N samples from ranges (uniform, log-uniform or choices)
      samples: 4
      seed: 0
      ranges:
        workloads.feed.traffic.rate_per_s: {low: 5000, high: 20000, log: true}
seeds: {replicates: 2}             # replicate k runs with simulation.seed = base + k
metrics: [workloads.*.latency_s.p99, totals.queries_per_j]   # headline columns
```

A field path is any dotted path into the scenario, as with ``accelsim run --set``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from accelsim.config.loader import load_document, resolve_ref, validate
from accelsim.config.schema import Name, Number
from accelsim.config.yamlio import Document
from accelsim.errors import ConfigError

MAX_RUNS = 100_000
"""A study larger than this is almost certainly a mistake in its axes."""

FIELD_PATH_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
FieldPath = Annotated[str, Field(pattern=FIELD_PATH_PATTERN, max_length=300)]
MetricPattern = Annotated[str, Field(min_length=1, max_length=300)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Range(_Strict):
    """Where one random axis samples from: ``[low, high]`` (uniform, or log-uniform with
    ``log: true``; whole numbers with ``integer: true``), or one of ``choices``."""

    low: Number | None = None
    high: Number | None = None
    log: StrictBool = False
    integer: StrictBool = False
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Range:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.integer:
                raise ValueError("give either choices, or low and high (with log and integer)")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give both low and high, or a list of choices")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must not exceed high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an integer range needs whole-number low and high")
        return self


class RandomAxes(_Strict):
    samples: StrictInt = Field(ge=1, le=MAX_RUNS, description="How many points to draw.")
    seed: StrictInt = Field(
        0, ge=0, le=2**63 - 1, description="Seed of the sampler (not of the runs)."
    )
    ranges: dict[FieldPath, Range] = Field(min_length=1)


class AxisGroup(_Strict):
    """Exactly one of ``grid`` (every combination), ``zip`` (same-length lists taken
    together) or ``random`` (samples from ranges)."""

    grid: dict[FieldPath, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None, min_length=1
    )
    zip: dict[FieldPath, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None, min_length=1
    )
    random: RandomAxes | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AxisGroup:
        given = [k for k in ("grid", "zip", "random") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an axis group has exactly one of grid, zip or random"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.zip is not None:
            lengths = {len(v) for v in self.zip.values()}
            if len(lengths) > 1:
                sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.zip.items())
                raise ValueError(f"zipped lists must have the same length ({sizes})")
        return self

    def paths(self) -> list[str]:
        if self.random is not None:
            return list(self.random.ranges)
        return list((self.grid or self.zip or {}).keys())


class Seeds(_Strict):
    base: StrictInt | None = Field(
        None, ge=0, le=2**62, description="Seed of replicate 0 (default: the base scenario's)."
    )
    replicates: StrictInt = Field(1, ge=1, le=10_000)


class Study(_Strict):
    name: Name
    description: str = ""
    base: str = Field(
        min_length=1, description="A shipped scenario name, or a path relative to this file."
    )
    set: dict[FieldPath, Any] = Field(
        default_factory=dict, description="Fixed overrides applied to the base before the axes."
    )
    axes: list[AxisGroup] = Field(default_factory=list)
    seeds: Seeds = Seeds()
    metrics: list[MetricPattern] = Field(
        default_factory=list,
        description="Headline metrics (dotted keys of the result document; * matches any "
        "part), shown in the sweep summary. Every scalar metric is stored regardless.",
    )

    @model_validator(mode="after")
    def _distinct_paths(self) -> Study:
        seen: dict[str, str] = {path: "set" for path in self.set}
        for i, group in enumerate(self.axes):
            for path in group.paths():
                if path == "simulation.seed":
                    raise ValueError(
                        f"axes.{i}: simulation.seed cannot be an axis; use seeds: "
                        "{base: N, replicates: K} instead"
                    )
                if path in seen:
                    raise ValueError(f"axes.{i}: {path} is already set by {seen[path]}")
                seen[path] = f"axes.{i}"
        return self


@dataclass(frozen=True)
class LoadedStudy:
    study: Study
    path: Path
    doc: Document
    sources: tuple[Path, ...] = ()  # the study file and every file it extends


def load_study(ref: str | Path) -> LoadedStudy:
    """Read and validate a study by shipped name or path; errors name file:line:field."""
    try:
        path = resolve_ref(str(ref), "study", Path.cwd())
    except KeyError as exc:
        raise ConfigError.single(str(ref), str(exc.args[0])) from None
    read: list[Path] = []
    doc = load_document(path, "study", read=read)
    doc.data.setdefault("name", path.stem)
    return LoadedStudy(validate(doc, Study), path, doc, tuple(read))
