"""The fleet plan file: services with a daily demand, candidate chips with the serving
configurations to try for each service, a facility, and what to minimise.

```yaml
description: ranking + LLM under 100 MW
services:                       # a scenario workload without `traffic`, plus its demand
  feed:
    model: dlrm-mlp-heavy
    items_per_query: {kind: lognormal, median: 150, sigma: 0.6, max: 1500}
    sla: {latency_s: 20 ms, percentile: 99}
    peak_rate_per_s: 3e6 /s     # the busiest hour's rate
    diurnal: {amplitude: 0.5, peak_hour: 20}   # or hourly: [24 multipliers]
candidates:
  mtia2:
    chip: mtia-like-gen2
    max_chips: 400000           # availability cap (optional)
    serves:                     # per service, the serving configurations to try
      feed: [{batching: {max_batch_items: 512, max_wait_s: 1 ms}}]
facility:
  power_budget_w: 100 MW        # facility power (IT x PUE), every hour
  pue: 1.2
  energy_usd_per_mwh: 70        # or 24 hourly prices
  headroom: 1.2                 # capacity >= demand x headroom, every hour
objective: cost                 # cost (per year), power (peak facility power) or carbon
```

A service's rate at hour ``h`` is ``peak_rate_per_s x shape[h]``, the shape being the
``hourly`` multipliers divided by their largest, or a cosine between 1 (at
``peak_hour``) and ``1 - amplitude``, or flat. Chip price and service life come from the
chip profile's ``economics`` unless a candidate sets them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictInt, Tag, model_validator

from accelsim.config.loader import Kind, load_document, resolve_ref, validate
from accelsim.config.schema import (
    POOL_RULES,
    AnyModel,
    Batching,
    Chip,
    ContinuousBatching,
    LLMModel,
    LLMWorkload,
    Name,
    Number,
    RankingModel,
    RankingWorkload,
    RatePerS,
    Seconds,
    Strict,
    Watts,
)
from accelsim.config.yamlio import Document, Path_, apply_override, dotted
from accelsim.errors import ConfigError, Problem

HOURS = 24

Hourly = Annotated[list[Annotated[Number, Field(ge=0)]], Field(min_length=HOURS, max_length=HOURS)]


class Diurnal(Strict):
    """A cosine day: 1 at ``peak_hour``, ``1 - amplitude`` twelve hours away."""

    amplitude: Number = Field(0.5, ge=0, le=1)
    peak_hour: Number = Field(20.0, ge=0, lt=HOURS)


class _Demand(Strict):
    peak_rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e12)] = Field(
        description="The rate at the busiest hour."
    )
    hourly: Hourly | None = Field(
        None, description="24 multipliers, hour 0 first; divided by the largest."
    )
    diurnal: Diurnal | None = None
    probe_rate_per_s: Annotated[RatePerS, Field(gt=0, le=1e9)] | None = Field(
        None,
        description="Where one replica's capacity search starts (default: the peak / 10^4).",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> _Demand:
        if self.hourly is not None and self.diurnal is not None:
            raise ValueError("give hourly or diurnal, not both")
        if self.hourly is not None and max(self.hourly) <= 0:
            raise ValueError("hourly: at least one hour needs a positive multiplier")
        if getattr(self, "sla", None) is None:
            raise ValueError("a service needs an sla (what its replicas must sustain)")
        return self

    def shape(self) -> tuple[float, ...]:
        """The rate at each hour as a share of the peak (the largest is 1)."""
        if self.hourly is not None:
            top = max(self.hourly)
            return tuple(float(m) / top for m in self.hourly)
        if self.diurnal is not None:
            a, peak = self.diurnal.amplitude, self.diurnal.peak_hour
            return tuple(
                1 - a * (1 - math.cos(2 * math.pi * (h - peak) / HOURS)) / 2 for h in range(HOURS)
            )
        return (1.0,) * HOURS

    def rates_per_s(self) -> tuple[float, ...]:
        return tuple(self.peak_rate_per_s * s for s in self.shape())

    def workload(self) -> dict[str, Any]:
        """The scenario workload this service is (without traffic, which a run sets)."""
        return self.model_dump(
            mode="json",
            exclude={"peak_rate_per_s", "hourly", "diurnal", "probe_rate_per_s", "traffic"},
            exclude_none=True,
        )


class RankingService(_Demand, RankingWorkload):
    traffic: None = Field(  # type: ignore[assignment]
        None, description="Not set here: the planner sets the rate of every run."
    )


class LLMService(_Demand, LLMWorkload):
    traffic: None = Field(  # type: ignore[assignment]
        None, description="Not set here: the planner sets the rate of every run."
    )


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "ranking"))
    return str(getattr(value, "kind", "ranking"))


Service = Annotated[
    Annotated[RankingService, Tag("ranking")] | Annotated[LLMService, Tag("llm")],
    Discriminator(_kind),
]


class ServingConfig(Strict):
    """One way to serve a service on a chip: the fields of a scenario pool that matter."""

    chips_per_replica: StrictInt = Field(1, ge=1, le=1024)
    batching: Batching | None = None
    continuous_batching: ContinuousBatching | None = None
    power_cap_w: Annotated[Watts, Field(gt=0)] | None = None

    def pool_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Candidate(Strict):
    chip: str = Field(min_length=1, description="A shipped chip name or a path to a YAML file.")
    max_chips: StrictInt | None = Field(None, ge=0, le=10**9, description="Availability cap.")
    unit_price_usd: Number | None = Field(None, ge=0, description="Default: the chip's.")
    service_life_years: Number | None = Field(None, gt=0, le=50, description="Default: the chip's.")
    serves: dict[Name, list[ServingConfig]] = Field(
        min_length=1, description="Per service, the serving configurations to try."
    )


class PlanFacility(Strict):
    power_budget_w: Annotated[Watts, Field(gt=0)] | None = Field(
        None, description="Facility power (IT x PUE) allowed at every hour."
    )
    pue: Number = Field(1.0, ge=1.0, le=5.0)
    energy_usd_per_mwh: Number | Hourly = Field(
        80.0, description="Price of facility energy: one number, or 24 hourly prices."
    )
    carbon_kg_per_mwh: Number | Hourly = Field(
        0.0, description="Carbon intensity of facility energy: one number, or 24 hourly."
    )
    headroom: Number = Field(
        1.0, ge=1.0, le=10.0, description="Capacity >= demand x headroom at every hour."
    )
    parked_power_share: Number | None = Field(
        None,
        ge=0,
        le=1,
        description="Park replicas an hour does not need, at this share of their idle "
        "power (default: no parking; every replica serves all day).",
    )

    def hourly(self, name: Literal["energy_usd_per_mwh", "carbon_kg_per_mwh"]) -> tuple[float, ...]:
        value = getattr(self, name)
        if isinstance(value, list):
            return tuple(float(v) for v in value)
        return (float(value),) * HOURS


class Characterise(Strict):
    """How one replica is characterised (see ``accelsim capacity``)."""

    duration_s: Annotated[Seconds, Field(ge=1e-6, le=1e5)] = Field(
        0.1, description="Shortest probe (a probe also expects 1,000 requests at least)."
    )
    warmup_s: Annotated[Seconds, Field(ge=0, le=1e5)] = 0.1
    seed: StrictInt = Field(1, ge=0, le=2**62)
    tolerance: Number = Field(0.05, ge=1e-4, le=0.5)
    confirm: Number = Field(2.0, ge=1, le=100)
    sla_margin: Number = Field(
        0.9,
        gt=0,
        le=1,
        description="Characterise against the SLA's targets times this, so that a plan "
        "keeps a margin for what one run sees and another does not.",
    )


class Verify(Strict):
    """The slice of the plan simulated at the peak hour, one run per service."""

    max_replicas: StrictInt = Field(
        24, ge=1, le=10_000, description="Replicas of a service in the slice, at most."
    )
    requests: StrictInt = Field(
        20_000, ge=100, le=10**7, description="Requests a service's run expects to measure."
    )
    warmup_share: Number = Field(
        0.25, ge=0, le=10, description="Warm-up, as a share of the measured window."
    )
    seed: StrictInt = Field(1, ge=0, le=2**62)


class Plan(Strict):
    name: Name
    description: str = ""
    services: dict[Name, Service] = Field(min_length=1)
    candidates: dict[Name, Candidate] = Field(min_length=1)
    facility: PlanFacility = PlanFacility()
    objective: Literal["cost", "power", "carbon"] = "cost"
    characterise: Characterise = Characterise()
    verify: Verify = Verify()
    roadmap: dict[Name, Annotated[list[Name], Field(min_length=1)]] | None = Field(
        None,
        description="Steps to plan one after the other, each with only these candidates "
        "available (e.g. one step per chip generation); default: one plan with all.",
    )


@dataclass(frozen=True)
class ResolvedPlan:
    """A validated plan with its chips (by candidate) and models (by service) loaded."""

    plan: Plan
    path: Path
    doc: Document
    chips: dict[str, Chip]
    chip_files: dict[str, Path]
    models: dict[str, RankingModel | LLMModel]
    model_files: dict[str, Path]
    sources: tuple[Path, ...] = ()  # every file read: the plan, its extends, chips, models

    def problem(self, path: Path_, message: str) -> Problem:
        loc = self.doc.loc(path)
        return Problem(loc.source, loc.line, dotted(path), message)


def load_plan(ref: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ResolvedPlan:
    """Read a plan by shipped name or path, apply ``--set`` overrides, load every chip and
    model it names and check its cross-references; errors name file:line:field."""
    try:
        path = resolve_ref(str(ref), "plan", Path.cwd())
    except KeyError as exc:
        raise ConfigError.single(str(ref), str(exc.args[0])) from None
    read: list[Path] = []
    doc = load_document(path, "plan", read=read)
    doc.data.setdefault("name", path.stem)
    for assignment in overrides:
        doc = apply_override(doc, assignment)
    plan = validate(doc, Plan)
    problems: list[Problem] = []

    def problem(at: Path_, message: str) -> None:
        loc = doc.loc(at)
        problems.append(Problem(loc.source, loc.line, dotted(at), message))

    def resolve(at: Path_, name: str, kind: Kind, schema: Any) -> tuple[Any, Path | None]:
        loc = doc.loc(at)
        base = Path(loc.source).parent if not loc.source.startswith("--set") else Path.cwd()
        try:
            found = resolve_ref(name, kind, base)
            return validate(load_document(found, kind, read=read), schema), found
        except KeyError as exc:
            problem(at, str(exc.args[0]))
        except ConfigError as exc:
            problems.extend(exc.problems)
        return None, None

    models: dict[str, RankingModel | LLMModel] = {}
    model_files: dict[str, Path] = {}
    for name, service in plan.services.items():
        model, found = resolve(("services", name, "model"), service.model, "model", AnyModel)
        if model is None or found is None:
            continue
        if model.kind != service.kind:
            problem(
                ("services", name, "model"),
                f"{model.name} is a {model.kind} model but the service is {service.kind}",
            )
        models[name], model_files[name] = model, found
    chips: dict[str, Chip] = {}
    chip_files: dict[str, Path] = {}
    served: set[str] = set()
    for cand_name, cand in plan.candidates.items():
        chip, found = resolve(("candidates", cand_name, "chip"), cand.chip, "chip", Chip)
        if chip is not None and found is not None:
            chips[cand_name], chip_files[cand_name] = chip, found
        for served_name, configs in cand.serves.items():
            at: Path_ = ("candidates", cand_name, "serves", served_name)
            if served_name not in plan.services:
                known = ", ".join(plan.services)
                problem(at, f"unknown service {served_name!r} (services: {known})")
                continue
            if not configs:
                problem(at, "give at least one serving configuration ({} for the defaults)")
            served.add(served_name)
            kind = plan.services[served_name].kind
            for i, config in enumerate(configs):
                for field, message in _config_problems(config, kind):
                    problem((*at, i, field), message)
        if chip is not None and chip.economics is None and cand.unit_price_usd is None:
            problem(
                ("candidates", cand_name),
                f"{chip.name} has no economics: give unit_price_usd (and service_life_years)",
            )
    for step, names in (plan.roadmap or {}).items():
        for i, name in enumerate(names):
            if name not in plan.candidates:
                known = ", ".join(plan.candidates)
                problem(("roadmap", step, i), f"unknown candidate {name!r} (candidates: {known})")
    for name in plan.services:
        if name not in served:
            problem(("services", name), "no candidate serves this service")
    if problems:
        raise ConfigError(problems)
    return ResolvedPlan(plan, path, doc, chips, chip_files, models, model_files, tuple(read))


def _config_problems(config: ServingConfig, kind: str) -> list[tuple[str, str]]:
    """A serving configuration against the pool rules of its service's kind."""
    rules = POOL_RULES[kind]
    out = []
    for other_kind, other in POOL_RULES.items():
        for section in other.sections:
            if other_kind != kind and getattr(config, section) is not None:
                out.append(
                    (
                        section,
                        f"{section} is for {other.label} services; this one is {rules.label} "
                        f"(set {' or '.join(rules.sections)} instead)",
                    )
                )
    if config.chips_per_replica != 1 and not rules.multi_chip_replicas:
        out.append(("chips_per_replica", f"{rules.label} replicas are one chip each"))
    return out
