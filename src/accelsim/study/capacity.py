"""Capacity: the largest arrival rate a workload sustains, or the fewest chips of a pool
that sustain a target rate.

A *probe* runs the scenario at one value (a rate, or a chip count) once per seed and
judges the runs against a :class:`Criterion`. A value is *sustained* when, averaged over
the seeds, every bound of the criterion holds (the targets of the workload's own SLA at
its percentile, whatever kind of workload it is: query latency for ranking, TTFT and
TPOT for LLM; or a bound on the mean latency instead), at least the SLA's share of
requests met it, and no run's backlog grew over the window (the test behind the run
summary's "cannot keep up" warning) or ended larger than a stable queue holds.

Probe length: the scenario's duration, lengthened when the window would expect too few
requests to judge the SLA's percentile (:func:`min_requests`), so a probe too short to
see any request is never judged on nothing.

Search: a rate is bracketed by doubling or halving from a start, then bisected. Doubling
stops at the ceiling the arrival budget sets (``MAX_ARRIVALS`` per run); a criterion that
held at every rate up to it answers "sustains at least X". A chip count doubles until it
sustains, then bisects.

Confirmation: near saturation a queue that starts empty can take longer to build up than
a probe lasts, so a probe can pass a rate a longer run fails. The answer is therefore
run again ``confirm`` times as long (10 by default); if it fails there, the search goes
on with probes that long. The answer holds in a run ``confirm`` times the probe length,
within what the arrival budget lets such a run hold.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from accelsim.config.checks import MAX_ARRIVALS
from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import LatencyTarget, TokenLatencyTarget
from accelsim.errors import AccelsimError

MAX_CHIPS = 100_000  # the scenario schema's limit on a pool's count
MAX_DURATION_S = 1e7  # the scenario schema's limit on simulation.duration_s
MIN_REQUESTS = 1000  # a probe's window expects at least this many requests ...
BEYOND_PERCENTILE = 10  # ... and at least this many beyond the SLA's percentile
MAX_MIN_REQUESTS = 100_000  # the most that rule asks for (a percentile near 100)
DEFAULT_CONFIRM = 10.0  # the answer is confirmed in a run this many times the probe's

SearchKind = Literal["max_rate", "min_chips"]

_LABELS = {"ttft": "TTFT", "tpot": "TPOT"}


# ------------------------------------------------------------------ what "sustains" means


@dataclass(frozen=True)
class Bound:
    """One statistic of a workload's result that must stay within a limit."""

    key: str  # the target's name: latency_s, ttft_s, tpot_s
    label: str  # for people: "p99 TTFT", "mean latency"
    path: tuple[str, str]  # where a run's value is in the workload's result entry
    limit_s: float


@dataclass(frozen=True)
class Criterion:
    """What "sustains" means for one workload: every bound within its limit, at least
    ``min_attainment`` of the requests within the SLA, and the fleet keeping up."""

    workload: str
    kind: Literal["sla", "mean"]
    bounds: tuple[Bound, ...]
    percentile: float | None = None
    min_attainment: float | None = None

    @classmethod
    def mean(cls, workload: str, bound_s: float) -> Criterion:
        """The mean latency within ``bound_s``."""
        return cls(
            workload, "mean", (Bound("latency_s", "mean latency", ("latency_s", "mean"), bound_s),)
        )

    @classmethod
    def sla(cls, workload: str, sla: LatencyTarget | TokenLatencyTarget) -> Criterion:
        """Every target of the workload's SLA (its fields in seconds: ``latency_s`` for a
        ranking workload, ``ttft_s`` and ``tpot_s`` for an LLM one) at the SLA's
        percentile, judged by the value the run summary observed (``observed_ttft_s``),
        and at least that percentile's share of requests within the whole SLA."""
        percentile = float(sla.percentile)
        bounds = tuple(
            Bound(
                name,
                f"p{percentile:g} {_LABELS.get(name[:-2], name[:-2])}",
                ("sla", f"observed_{name}"),
                float(getattr(sla, name)),
            )
            for name in type(sla).model_fields
            if name.endswith("_s") and getattr(sla, name) is not None
        )
        return cls(workload, "sla", bounds, percentile, percentile / 100)

    def describe(self) -> str:
        from accelsim.units import format_quantity

        limits = " and ".join(
            f"{b.label} ≤ {format_quantity(b.limit_s, 's', 4)}" for b in self.bounds
        )
        return f"{self.workload} {limits}"

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **{b.key: b.limit_s for b in self.bounds},
            "percentile": self.percentile,
        }


def min_requests(criterion: Criterion) -> int:
    """The requests a probe's window must expect: ``MIN_REQUESTS``, and enough that
    ``BEYOND_PERCENTILE`` of them lie beyond the SLA's percentile (1,000 for p99, 10,000
    for p99.9), at most ``MAX_MIN_REQUESTS``."""
    p = criterion.percentile
    if p is None:
        return MIN_REQUESTS
    beyond = MAX_MIN_REQUESTS if p >= 100 else math.ceil(BEYOND_PERCENTILE / (1 - p / 100))
    return min(MAX_MIN_REQUESTS, max(MIN_REQUESTS, beyond))


# ------------------------------------------------------------------ probes


@dataclass(frozen=True)
class ProbeRun:
    """One run of a probe: its result document, and whether the workload's backlog grew
    over the window (the summary's keep-up test, which the document only states in a
    warning)."""

    document: dict[str, Any]
    growing: bool


@dataclass(frozen=True)
class Probe:
    """The verdict on one value: each bound's statistic averaged over the seeds, and why."""

    value: float  # the rate, or the chip count
    sustained: bool
    statistics: tuple[float | None, ...] = ()  # per bound of the criterion, mean over seeds
    per_seed: tuple[tuple[float | None, ...], ...] = ()  # per bound, each seed's value
    attainment: float | None = None  # share of requests within the SLA, mean over seeds
    in_flight_share: float = 0.0  # the largest share of offered requests left in flight
    growing: bool = False  # a seed's backlog grew over the window
    backlogged: bool = False  # a seed ended with more in flight than a stable queue holds
    duration_s: float | None = None  # the probe's simulated duration

    def document(self, criterion: Criterion) -> dict[str, Any]:
        doc: dict[str, Any] = {"value": self.value, "duration_s": self.duration_s}
        for i, bound in enumerate(criterion.bounds):
            doc[bound.key] = self.statistics[i] if i < len(self.statistics) else None
            doc[f"{bound.key}_per_seed"] = list(self.per_seed[i]) if i < len(self.per_seed) else []
        doc.update(
            sla_attainment=self.attainment,
            in_flight_share=self.in_flight_share,
            backlog_growing=self.growing,
            backlogged=self.backlogged,
            sustained=self.sustained,
        )
        return doc


def _backlogged(doc: dict[str, Any], w: dict[str, Any], share: float) -> bool:
    """Whether a run ended with a backlog: more than ``share`` of the offered queries in
    flight, and more than twice what a stable queue holds by Little's law (arrival rate
    x mean latency, plus a margin of 10 for small numbers). The second test keeps slow
    requests (LLM answers lasting seconds) in a short run from counting as overload."""
    offered, in_flight = w["offered"], w["in_flight"]
    if not offered or in_flight <= share * offered:
        return False
    mean = (w.get("latency_s") or {}).get("mean")
    duration = (doc.get("window_s") or {}).get("duration")
    if mean is None or not duration:
        return True
    return bool(in_flight > 2 * (offered / duration) * mean + 10)


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean, or None when a value is missing (a seed saw nothing to measure)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


def _at(entry: dict[str, Any], path: tuple[str, str]) -> float | None:
    value = (entry.get(path[0]) or {}).get(path[1])
    return None if value is None else float(value)


def judge(
    value: float,
    runs: Sequence[ProbeRun],
    criterion: Criterion,
    duration_s: float | None = None,
) -> Probe:
    """Whether the runs of one probe (one per seed) sustain the criterion, on average."""
    from accelsim.metrics.summary import OVERLOAD_IN_FLIGHT_SHARE

    per_seed: list[list[float | None]] = [[] for _ in criterion.bounds]
    attainments: list[float | None] = []
    in_flight = 0.0
    growing = backlogged = False
    for run in runs:
        w = run.document["workloads"][criterion.workload]
        for i, bound in enumerate(criterion.bounds):
            per_seed[i].append(_at(w, bound.path))
        attainments.append(w.get("sla_attainment"))
        growing |= run.growing
        backlogged |= _backlogged(run.document, w, OVERLOAD_IN_FLIGHT_SHARE)
        offered = w["offered"]
        in_flight = max(in_flight, w["in_flight"] / offered if offered else 0.0)
    stats = tuple(_mean(values) for values in per_seed)
    attainment = _mean(attainments)
    within = all(
        s is not None and s <= b.limit_s for s, b in zip(stats, criterion.bounds, strict=True)
    )
    attained = criterion.min_attainment is None or (
        attainment is not None and attainment >= criterion.min_attainment
    )
    return Probe(
        value,
        bool(runs) and within and attained and not growing and not backlogged,
        stats,
        tuple(tuple(values) for values in per_seed),
        attainment,
        in_flight,
        growing,
        backlogged,
        duration_s,
    )


def run_probe(scenario: str, overrides: Sequence[str], workload: str) -> ProbeRun:
    """Picklable: one run of a probe."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import backlog_grows, summarize
    from accelsim.runner import load_checked

    resolved = load_checked(scenario, list(overrides))
    records = simulate(resolved)
    doc = summarize(resolved, records)
    return ProbeRun(doc, backlog_grows(records, workload, doc["workloads"][workload]["offered"]))


def probe_runs(
    scenario: str,
    overrides: Sequence[str],
    workload: str,
    seeds: Sequence[int],
    executor: Executor | None = None,
) -> list[ProbeRun]:
    """The runs of one probe, one per seed (in parallel on ``executor``)."""
    tasks = [[*overrides, f"simulation.seed={s}"] for s in seeds]
    if executor is None or len(tasks) == 1:
        return [run_probe(scenario, t, workload) for t in tasks]
    return list(executor.map(run_probe, [scenario] * len(tasks), tasks, [workload] * len(tasks)))


# ------------------------------------------------------------------ searches


@dataclass(frozen=True)
class SearchResult:
    best: float | None  # the largest sustained rate, or the smallest sustaining chip count
    fails_at: float | None  # the nearest value that did not sustain, if one was probed
    probes: list[Probe]
    note: str = ""
    at_least: bool = False  # best sustained and nothing above it was tried: a lower bound


def search_max_rate(
    evaluate: Callable[[float], Probe],
    start: float,
    *,
    low: float | None = None,
    high: float | None = None,
    failing: float | None = None,
    rel_tol: float = 0.01,
    limit: float = 1e9,
    step: float = 2.0,
    max_probes: int = 80,
) -> SearchResult:
    """Bisection for the largest value that sustains, assuming larger values are harder.

    Brackets from ``start`` (or ``low``/``high``, which are probed, or ``failing``, a
    value known not to sustain) by multiplying or dividing by ``step``, then halves the
    bracket until it is narrower than ``rel_tol`` of its upper end. Values above
    ``limit`` are never tried: a search that sustains up to it is a lower bound."""
    probes: list[Probe] = []

    def probe(x: float) -> bool:
        p = evaluate(x)
        probes.append(p)
        return p.sustained

    lo: float | None = None
    hi: float | None = failing
    if low is not None:
        if not probe(low):
            return SearchResult(None, low, probes, f"not sustained even at --low {low:g}")
        lo = low
    if high is not None:
        if probe(high):
            return SearchResult(high, None, probes, f"sustained at --high {high:g}: raise it", True)
        hi = high
    if lo is None and hi is None:
        if probe(start):
            lo = start
        else:
            hi = start
    while hi is None:
        assert lo is not None
        if len(probes) >= max_probes:
            return SearchResult(lo, None, probes, f"stopped after {max_probes} probes", True)
        if lo >= limit:
            return SearchResult(lo, None, probes, f"{limit:,.6g} is the search's ceiling", True)
        nxt = min(lo * step, limit)
        if probe(nxt):
            lo = nxt
        else:
            hi = nxt
    while lo is None:
        if len(probes) >= max_probes or hi < start * 1e-9:
            return SearchResult(None, hi, probes, "not sustained at any rate tried")
        if probe(hi / step):
            lo = hi / step
        else:
            hi /= step
    while hi - lo > rel_tol * hi and len(probes) < max_probes:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return SearchResult(lo, hi, probes)


def search_min_count(
    evaluate: Callable[[float], Probe], start: int, *, limit: int = 100_000, failing: int = 0
) -> SearchResult:
    """The smallest whole number that sustains, assuming larger numbers are easier;
    ``failing`` is a number known not to (0 cannot serve at all)."""
    probes: list[Probe] = []

    def probe(n: int) -> bool:
        p = evaluate(n)
        probes.append(p)
        return p.sustained

    if probe(start):
        lo, hi = failing, start  # lo: largest known failure
    else:
        lo = start
        hi = min(start * 2, limit)
        while not probe(hi):
            lo = hi
            if hi >= limit:
                return SearchResult(None, hi, probes, f"not sustained even with {hi}")
            hi = min(hi * 2, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid
    return SearchResult(hi, lo if lo > 0 else None, probes)


# ------------------------------------------------------------------ the question and answer


@dataclass(frozen=True)
class CapacityQuestion:
    """One capacity search, checked against its scenario."""

    scenario: str  # the scenario file
    scenario_name: str
    overrides: tuple[str, ...]
    workload: str
    criterion: Criterion
    seeds: tuple[int, ...]
    start_rate_per_s: float  # the scenario's own rate
    duration_s: float  # the scenario's own
    warmup_s: float
    search: SearchKind = "max_rate"
    pool: str | None = None  # min_chips: the pool to size ...
    target_rate_per_s: float | None = None  # ... for this rate
    chips: int = 1  # min_chips: the pool's own count ...
    chips_per_replica: int = 1  # ... and its replica size (chips come in whole replicas)
    low: float | None = None
    high: float | None = None
    tolerance: float = 0.01
    confirm: float = DEFAULT_CONFIRM

    @property
    def rate_path(self) -> str:
        return f"workloads.{self.workload}.traffic.rate_per_s"

    def probe_duration_s(self, rate_per_s: float) -> float:
        """A probe's duration at a rate: the scenario's, or long enough that its window
        expects :func:`min_requests` requests."""
        needed = min_requests(self.criterion) / rate_per_s
        return min(MAX_DURATION_S, max(self.duration_s, needed))

    @property
    def rate_ceiling_per_s(self) -> float:
        """The highest rate whose probe stays within the arrival budget (and the schema)."""
        return min(1e9, MAX_ARRIVALS / (self.warmup_s + self.duration_s) * (1 - 1e-9))

    def confirm_factor(self, rate_per_s: float) -> float:
        """How many probe lengths a confirming run at this rate may last: ``confirm``, or
        less when the arrival budget or the schema's longest duration would not hold it."""
        probe_s = self.probe_duration_s(rate_per_s)
        budget_s = MAX_ARRIVALS / rate_per_s * (1 - 1e-9) - self.warmup_s
        return max(1.0, min(self.confirm, budget_s / probe_s, MAX_DURATION_S / probe_s))


# What to do instead, for traffic whose load is not a rate.
NOT_SEARCHED = {
    "closed_loop": "; a closed loop's load is its users: sweep workloads.NAME.traffic.users "
    "in a study and read throughput and latency per step",
    "offline": "; an offline run measures the most the fleet serves: read its "
    "loadgen.offline_throughput_per_s",
}


def ask(
    resolved: ResolvedScenario,
    overrides: Sequence[str],
    *,
    workload: str | None = None,
    seeds: int = 1,
    max_mean_latency_s: float | None = None,
    min_chips: bool = False,
    pool: str | None = None,
    rate_per_s: float | None = None,
    low: float | None = None,
    high: float | None = None,
    tolerance: float = 0.01,
    confirm: float = DEFAULT_CONFIRM,
) -> CapacityQuestion:
    """The search a scenario and the command's options ask for, or an error saying why
    they cannot be searched."""
    sc = resolved.scenario
    name = _pick_workload(workload, sc, pool if min_chips else None)
    wl = sc.workloads[name]
    if wl.traffic.kind != "poisson":
        raise AccelsimError(
            f"workload {name}: capacity search needs poisson traffic (it has {wl.traffic.kind})"
            + NOT_SEARCHED.get(wl.traffic.kind, "")
        )
    if max_mean_latency_s is not None:
        if max_mean_latency_s <= 0:
            raise AccelsimError("--max-mean-latency must be positive")
        criterion = Criterion.mean(name, max_mean_latency_s)
    elif wl.sla is not None:
        criterion = Criterion.sla(name, wl.sla)
    else:
        raise AccelsimError(f"workload {name} has no sla; give --max-mean-latency (e.g. '10 ms')")
    chips = per_replica = 1
    if min_chips:
        if pool is None or rate_per_s is None:
            raise AccelsimError("--min-chips needs --pool P and --rate R")
        if pool not in sc.pools:
            raise AccelsimError(f"no pool {pool!r} (pools: {', '.join(sc.pools)})")
        if name not in sc.pools[pool].serves:
            raise AccelsimError(f"pool {pool} does not serve workload {name}")
        if rate_per_s <= 0:
            raise AccelsimError("--rate must be positive")
        chips, per_replica = sc.pools[pool].count, sc.pools[pool].chips_per_replica
    elif pool is not None or rate_per_s is not None:
        raise AccelsimError("--pool and --rate go with --min-chips")
    return CapacityQuestion(
        scenario=resolved.source,
        scenario_name=sc.name,
        overrides=tuple(overrides),
        workload=name,
        criterion=criterion,
        seeds=tuple(sc.simulation.seed + k for k in range(seeds)),
        start_rate_per_s=wl.traffic.rate_per_s,
        duration_s=sc.simulation.duration_s,
        warmup_s=sc.simulation.warmup_s,
        search="min_chips" if min_chips else "max_rate",
        pool=pool,
        target_rate_per_s=rate_per_s,
        chips=chips,
        chips_per_replica=per_replica,
        low=low,
        high=high,
        tolerance=tolerance,
        confirm=confirm,
    )


def _pick_workload(workload: str | None, scenario: Any, pool: str | None) -> str:
    names = list(scenario.workloads)
    if workload is not None:
        if workload not in scenario.workloads:
            raise AccelsimError(f"no workload {workload!r} (workloads: {', '.join(names)})")
        return workload
    if pool is not None and pool in scenario.pools:
        names = list(scenario.pools[pool].serves)
    if len(names) == 1:
        return str(names[0])
    raise AccelsimError(
        f"the scenario has several workloads: pick one with --workload ({', '.join(names)})"
    )


@dataclass(frozen=True)
class CapacityAnswer:
    question: CapacityQuestion
    result: SearchResult
    probe_duration_s: float | None  # the probe length at the answer
    confirmed_duration_s: float | None  # the longest run the answer was sustained over

    def document(self) -> dict[str, Any]:
        q, r = self.question, self.result
        return {
            "scenario": q.scenario_name,
            "search": q.search,
            "workload": q.workload,
            "pool": q.pool,
            "target_rate_per_s": q.target_rate_per_s,
            "criterion": q.criterion.document(),
            "seeds": list(q.seeds),
            "best": r.best,
            "fails_at": r.fails_at,
            "at_least": r.at_least,
            "note": r.note,
            "probe_duration_s": self.probe_duration_s,
            "confirmed_duration_s": self.confirmed_duration_s,
            "probes": [p.document(q.criterion) for p in r.probes],
        }


OnProbe = Callable[[float, float, bool], None]  # (value, duration_s, confirming)


@dataclass
class _Prober:
    """Runs and judges probes for a question, counting them for the progress display."""

    question: CapacityQuestion
    executor: Executor | None
    on_probe: OnProbe | None
    probes: list[Probe] = field(default_factory=list)

    def run(self, value: float, duration_s: float, extra: list[str], confirming: bool) -> Probe:
        q = self.question
        if self.on_probe is not None:
            self.on_probe(value, duration_s, confirming)
        overrides = [*q.overrides, *extra]
        if duration_s != q.duration_s:
            overrides.append(f"simulation.duration_s={duration_s!r}")
        runs = probe_runs(q.scenario, overrides, q.workload, q.seeds, self.executor)
        probe = judge(value, runs, q.criterion, duration_s)
        self.probes.append(probe)
        return probe

    def rate(self, rate_per_s: float, factor: float = 1.0) -> Probe:
        from accelsim.study.plan import assignment

        duration = self.question.probe_duration_s(rate_per_s) * factor
        extra = [assignment(self.question.rate_path, rate_per_s)]
        return self.run(rate_per_s, duration, extra, factor > 1)

    def replicas(self, replicas: float, factor: float = 1.0) -> Probe:
        from accelsim.study.plan import assignment

        q = self.question
        assert q.target_rate_per_s is not None
        chips = int(replicas) * q.chips_per_replica
        duration = q.probe_duration_s(q.target_rate_per_s) * factor
        extra = [assignment(q.rate_path, q.target_rate_per_s), f"pools.{q.pool}.count={chips}"]
        return self.run(chips, duration, extra, factor > 1)


def find_capacity(
    question: CapacityQuestion,
    executor: Executor | None = None,
    on_probe: OnProbe | None = None,
) -> CapacityAnswer:
    """Search, then confirm the answer in a run ``question.confirm`` times as long."""
    prober = _Prober(question, executor, on_probe)
    if question.search == "min_chips":
        return _min_chips(question, prober)
    q = question
    first = search_max_rate(
        prober.rate,
        q.start_rate_per_s,
        low=q.low,
        high=q.high,
        rel_tol=q.tolerance,
        limit=q.rate_ceiling_per_s,
    )
    if first.at_least and first.best is not None and first.best >= q.rate_ceiling_per_s:
        first = replace(
            first,
            note=f"a probe at a higher rate would pass the arrival budget of "
            f"{MAX_ARRIVALS:.0e} arrivals per run",
        )
    if first.best is None:
        return CapacityAnswer(q, replace(first, probes=prober.probes), None, None)
    best = first.best
    factor = q.confirm_factor(best)
    result, confirmed = first, 1.0
    if factor > 1:
        confirmed = factor
        if not prober.rate(best, factor).sustained:
            result = search_max_rate(
                lambda x: prober.rate(x, factor), best, failing=best, rel_tol=q.tolerance, step=1.25
            )
    result = replace(result, probes=prober.probes)
    if result.best is None:
        return CapacityAnswer(q, result, None, None)
    probe_s = q.probe_duration_s(result.best)
    return CapacityAnswer(q, result, probe_s, probe_s * confirmed)


def _min_chips(q: CapacityQuestion, prober: _Prober) -> CapacityAnswer:
    """The fewest replicas that sustain the target rate, confirmed like a rate, in chips."""
    assert q.target_rate_per_s is not None
    per = q.chips_per_replica
    limit = MAX_CHIPS // per
    result = search_min_count(prober.replicas, max(1, q.chips // per), limit=limit)
    probe_s = q.probe_duration_s(q.target_rate_per_s)
    factor = q.confirm_factor(q.target_rate_per_s)
    confirmed: float | None = probe_s
    if result.best is not None and factor > 1:
        best = int(result.best)
        confirmed = probe_s * factor
        if not prober.replicas(best, factor).sustained:
            if best < limit:
                result = search_min_count(
                    lambda n: prober.replicas(n, factor), best + 1, limit=limit, failing=best
                )
            else:
                result = SearchResult(None, best, [])
    if result.best is None:
        worst = None if result.fails_at is None else int(result.fails_at) * per
        note = f"not sustained even with {worst} chips"
        return CapacityAnswer(q, SearchResult(None, worst, prober.probes, note), None, None)
    scaled = SearchResult(
        result.best * per,
        None if result.fails_at is None else result.fails_at * per,
        prober.probes,
    )
    return CapacityAnswer(q, scaled, probe_s, confirmed)
