"""Fidelity checks: the simulator against answers that theory knows exactly.

Each check is one small function, registered in :data:`CHECKS` with the
:func:`check` decorator, that builds what it needs in memory (a reference chip
and model, never the shipped files), runs it and returns a :class:`CheckResult`:
what theory expects, what accelsim produced, the relative error, an interval
and whether it passed. Two kinds of check:

* **statistical** (queueing): the simulated mean comes with an error bar from
  batch means over the run (arrival order, 20 batches); the check passes when
  the closed form lies within ``z`` standard errors of the simulated mean
  (``ci_low``/``ci_high``);
* **identities** (roofline, energy): exact up to floating point; the check
  passes when the relative error is at most ``1e-9`` (``ci_low``/``ci_high``
  are None).

Not checked yet: batch-1 LLM decode time against weight bytes / bandwidth; the suite
was written before LLM serving existed (see :data:`NOT_CHECKED`).

To add a check, write a function ``(budget: Budget) -> CheckResult`` and
decorate it with ``@check``.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Chip, RankingModel, Scenario
from accelsim.engine.records import RunRecords

# --------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one fidelity check."""

    id: str
    name: str
    expected: float
    simulated: float
    unit: str  # "s", "FLOP/s", "B/s", "J", "queries"
    error: float  # relative: (simulated - expected) / expected
    ci_low: float | None  # the interval the expected value must lie in (statistical checks)
    ci_high: float | None
    passed: bool
    criterion: str
    samples: int | None = None  # queries measured, for statistical checks
    note: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("expected", "simulated", "error", "ci_low", "ci_high"):
            value = doc[key]
            if value is not None and not math.isfinite(value):
                doc[key] = None
        return doc


@dataclass(frozen=True)
class Budget:
    """How hard the statistical checks work."""

    queries: int  # measured queries per statistical check
    batches: int = 20  # batch means
    z: float = 4.0  # half-width of the interval, in standard errors


FULL = Budget(queries=1_000_000)
QUICK = Budget(queries=100_000)

Check = Callable[[Budget], CheckResult]
CHECKS: list[Check] = []

NOT_CHECKED: tuple[str, ...] = ()

IDENTITY_RTOL = 1e-9


def check(func: Check) -> Check:
    """Register a check; checks run in the order they are registered."""
    CHECKS.append(func)
    return func


def run_checks(
    budget: Budget = FULL,
    checks: list[Check] | None = None,
    progress: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run checks in order. A check that raises is reported as failed, never skipped."""
    results = []
    for func in CHECKS if checks is None else checks:
        start = time.perf_counter()
        try:
            result = func(budget)
        except Exception as exc:  # a crashing check is a failed check
            name = func.__name__.removeprefix("check_").replace("_", "-")
            result = CheckResult(
                id=name,
                name=name,
                expected=math.nan,
                simulated=math.nan,
                unit="",
                error=math.nan,
                ci_low=None,
                ci_high=None,
                passed=False,
                criterion="the check ran",
                note=f"crashed: {type(exc).__name__}: {exc}",
            )
        result = _with_seconds(result, time.perf_counter() - start)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _with_seconds(result: CheckResult, seconds: float) -> CheckResult:
    return CheckResult(**{**asdict(result), "seconds": round(seconds, 3)})


def _relative(simulated: float, expected: float) -> float:
    if expected == 0:
        return 0.0 if simulated == 0 else math.inf
    return (simulated - expected) / expected


def statistical(
    id: str,
    name: str,
    expected: float,
    mean: float,
    stderr: float,
    budget: Budget,
    samples: int,
    unit: str = "s",
    note: str = "",
) -> CheckResult:
    """Pass when ``expected`` lies within ``z`` standard errors of the simulated ``mean``."""
    low, high = mean - budget.z * stderr, mean + budget.z * stderr
    ok = bool(math.isfinite(mean) and math.isfinite(stderr) and low <= expected <= high)
    return CheckResult(
        id=id,
        name=name,
        expected=expected,
        simulated=mean,
        unit=unit,
        error=_relative(mean, expected),
        ci_low=low,
        ci_high=high,
        passed=ok,
        criterion=f"expected within simulated ± {budget.z:g} standard errors "
        f"(batch means, {budget.batches} batches)",
        samples=samples,
        note=note,
    )


def identity(
    id: str, name: str, expected: float, simulated: float, unit: str, note: str = ""
) -> CheckResult:
    """Pass when ``simulated`` equals ``expected`` up to floating point."""
    error = _relative(simulated, expected)
    return CheckResult(
        id=id,
        name=name,
        expected=expected,
        simulated=simulated,
        unit=unit,
        error=error,
        ci_low=None,
        ci_high=None,
        passed=bool(math.isfinite(error) and abs(error) <= IDENTITY_RTOL),
        criterion=f"|relative error| <= {IDENTITY_RTOL:g}",
        note=note,
    )


def batch_means(values: np.ndarray, batches: int) -> tuple[float, float]:
    """Mean and its standard error, by the method of batch means (values in time order)."""
    if values.size < 2 * batches:
        return (float(values.mean()) if values.size else math.nan), math.inf
    parts = np.array_split(values, batches)
    means = np.array([p.mean() for p in parts])
    return float(values.mean()), float(means.std(ddof=1) / math.sqrt(batches))


# ------------------------------------------------------- reference chip and model

# A small chip whose host link is slow, so that a batch's time is (almost exactly)
# linear in its items: service times then follow the query sizes.
REFERENCE_CHIP: dict[str, Any] = {
    "name": "reference-chip",
    "description": "Built-in reference chip of `accelsim validate` (hypothetical).",
    "compute": {
        "matrix_flops_per_s": {"bf16": 100e12, "int8": 200e12},
        "vector_flops_per_s": 10e12,
        "gemm_efficiency": 0.5,
        "vector_efficiency": 0.5,
        "kernel_overhead_s": 0.0,
        "clock_hz": 1e9,
    },
    "memory": {
        "sram": {
            "capacity_bytes": 64 * 2**20,
            "bandwidth_bytes_per_s": 1e12,
            "stream_efficiency": 1.0,
            "random_efficiency": 0.5,
            "access_granularity_bytes": 32,
            "energy_per_byte_j": 1e-12,
        },
        "dram": {
            "capacity_bytes": 16 * 2**30,
            "bandwidth_bytes_per_s": 100e9,
            "stream_efficiency": 0.8,
            "random_efficiency": 0.4,
            "access_granularity_bytes": 64,
            "energy_per_byte_j": 20e-12,
        },
    },
    "host_link": {"bandwidth_bytes_per_s": 16e6, "latency_s": 0.0, "energy_per_byte_j": 0.0},
    "power": {
        "idle_w": 10.0,
        "tdp_w": 50.0,
        "energy_per_flop_j": {"bf16": 0.5e-12, "int8": 0.25e-12},
        "vector_energy_per_flop_j": 1e-12,
    },
}

REFERENCE_MODEL: dict[str, Any] = {
    "name": "reference-ranker",
    "description": "Built-in tiny ranking model of `accelsim validate`.",
    "dtype": "bf16",
    "dense_features": 1,
    "bottom_mlp": [4],
    "embedding_tables": [{"name": "t", "rows": 16, "dim": 4, "pooling_factor": 1, "dtype": "fp16"}],
    "interaction": {"kind": "dot"},
    "top_mlp": [1],
}


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def reference_chip(**changes: Any) -> Chip:
    """The reference chip; nested mappings in ``changes`` merge key by key."""
    return Chip.model_validate(_merged(REFERENCE_CHIP, changes))


def reference_model(**changes: Any) -> RankingModel:
    return RankingModel.model_validate(_merged(REFERENCE_MODEL, changes))


NO_BATCHING: dict[str, Any] = {"max_batch_items": 10**8, "max_batch_queries": 1, "max_wait_s": 0}


def single_pool_scenario(
    *,
    rate_per_s: float,
    sizes: dict[str, Any],
    count: int = 1,
    batching: dict[str, Any] | None = None,
    policy: str = "shared_queue",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    seed: int = 1,
    chip: Chip | None = None,
    model: RankingModel | None = None,
) -> ResolvedScenario:
    """One Poisson workload ``w`` served by one pool ``p`` (batching off by default)."""
    return fleet_scenario(
        workloads={"w": {"rate_per_s": rate_per_s, "sizes": sizes}},
        pools={
            "p": {
                "chip": chip or reference_chip(),
                "count": count,
                "serves": ["w"],
                "batching": NO_BATCHING if batching is None else batching,
            }
        },
        policy=policy,
        duration_s=duration_s,
        warmup_s=warmup_s,
        seed=seed,
        model=model,
    )


def fleet_scenario(
    *,
    workloads: dict[str, dict[str, Any]],
    pools: dict[str, dict[str, Any]],
    policy: str = "join_shortest_queue",
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    seed: int = 1,
    model: RankingModel | None = None,
) -> ResolvedScenario:
    """A scenario built in memory, without files.

    ``workloads``: name -> {rate_per_s, sizes[, model, sla]}; ``pools``: name ->
    {chip (a Chip), count, serves[, batching]}.
    """
    scenario = Scenario.model_validate(
        {
            "name": "validation",
            "simulation": {"duration_s": duration_s, "warmup_s": warmup_s, "seed": seed},
            "workloads": {
                name: {
                    "model": "built-in",
                    "traffic": {"kind": "poisson", "rate_per_s": w["rate_per_s"]},
                    "items_per_query": w["sizes"],
                    **({"sla": w["sla"]} if "sla" in w else {}),
                }
                for name, w in workloads.items()
            },
            "pools": {
                name: {
                    "chip": p["chip"].name,
                    "count": p["count"],
                    "serves": p["serves"],
                    **({"batching": p["batching"]} if "batching" in p else {}),
                }
                for name, p in pools.items()
            },
            "router": {"policy": policy},
        }
    )
    return ResolvedScenario(
        scenario=scenario,
        source="<validation>",
        chips={name: p["chip"] for name, p in pools.items()},
        models={
            name: w.get("model") or model or reference_model() for name, w in workloads.items()
        },
        traces={},
    )


# ------------------------------------------------------------------ queueing


def _window_latencies(resolved: ResolvedScenario, workload: str = "w") -> np.ndarray:
    """Latencies of the queries that arrived in the measured window and finished, in
    arrival order."""
    from accelsim.engine.simulation import simulate

    records = simulate(resolved)
    wl = records.fleets["ranking"].workloads[workload]
    done = (wl.arrival_s >= records.warmup_s) & ~np.isnan(wl.finish_s)
    latency: np.ndarray = wl.finish_s[done] - wl.arrival_s[done]
    return latency


@lru_cache(maxsize=8)
def _cost_model(chip_json: str, model_json: str) -> Any:
    from accelsim.model.ranking import RankingCostModel

    return RankingCostModel(
        RankingModel.model_validate_json(model_json), Chip.model_validate_json(chip_json)
    )


def cost_model(chip: Chip, model: RankingModel) -> Any:
    """The memoised cost model of ``model`` on ``chip``."""
    return _cost_model(chip.model_dump_json(), model.model_dump_json())


def rounded_exponential_pmf(mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Sizes k = 1..K and their probabilities when Exp(mean) is rounded and floored at 1
    (as the engine samples ``exponential`` sizes); K leaves out less than 1e-15."""
    upto = math.ceil(mean * 36.0) + 2
    k = np.arange(1, upto + 1, dtype=np.float64)
    p = np.exp(-(k - 0.5) / mean) - np.exp(-(k + 0.5) / mean)
    p[0] = 1 - math.exp(-1.5 / mean)  # rint(x) <= 1 for every x < 1.5
    return k.astype(np.int64), p


def service_moments(cost: Any, sizes: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Exact E[S] and E[S^2] of the batch time of a query whose size has pmf ``p``.

    A batch's time is convex and piecewise linear in its items, so when it is
    linear between the smallest and the largest size and at points in between,
    it is linear everywhere on that range and the moments follow from those of
    the size; otherwise every size is costed.
    """
    lo, hi = int(sizes[0]), int(sizes[-1])
    t_lo, t_hi = cost.batch(lo).time_s, cost.batch(hi).time_s
    slope = (t_hi - t_lo) / (hi - lo)
    probes = np.unique(np.geomspace(lo, hi, 24).astype(np.int64))
    affine = all(
        abs(cost.batch(int(k)).time_s - (t_lo + slope * (k - lo))) <= 1e-12 * t_hi for k in probes
    )
    if affine:
        times = t_lo + slope * (sizes - lo).astype(np.float64)
    else:
        times = np.array([cost.batch(int(k)).time_s for k in sizes])
    return float((p * times).sum()), float((p * times**2).sum())


def erlang_c_wait(c: int, rho: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c at per-server utilisation ``rho``."""
    a = c * rho
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait * mean_service_s / (c * (1 - rho))


def _md1(rho: float, budget: Budget) -> CheckResult:
    size = 800
    chip, model = reference_chip(), reference_model()
    service = cost_model(chip, model).batch(size).time_s
    rate = rho / service
    res = single_pool_scenario(
        rate_per_s=rate,
        sizes={"kind": "fixed", "value": size},
        duration_s=budget.queries / rate,
        warmup_s=500 * service,
        seed=11,
    )
    mean, stderr = batch_means(_window_latencies(res), budget.batches)
    return statistical(
        f"md1-rho{rho:g}",
        f"M/D/1 mean latency, ρ={rho:g} (Pollaczek-Khinchine)",
        service + rho * service / (2 * (1 - rho)),
        mean,
        stderr,
        budget,
        budget.queries,
        note=f"1 chip, batching off, {size}-item queries, S = {service:.4g} s",
    )


@check
def check_md1_rho_05(budget: Budget) -> CheckResult:
    return _md1(0.5, budget)


@check
def check_md1_rho_08(budget: Budget) -> CheckResult:
    return _md1(0.8, budget)


EXP_MEAN_ITEMS = 1000


@check
def check_mm1(budget: Budget) -> CheckResult:
    rho = 0.7
    chip, model = reference_chip(), reference_model()
    es, es2 = service_moments(cost_model(chip, model), *rounded_exponential_pmf(EXP_MEAN_ITEMS))
    rate = rho / es
    res = single_pool_scenario(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": EXP_MEAN_ITEMS},
        duration_s=budget.queries / rate,
        warmup_s=500 * es,
        seed=12,
    )
    mean, stderr = batch_means(_window_latencies(res), budget.batches)
    return statistical(
        "mm1",
        f"M/M/1 mean latency, ρ={rho:g} (Pollaczek-Khinchine)",
        es + rate * es2 / (2 * (1 - rho)),
        mean,
        stderr,
        budget,
        budget.queries,
        note=f"1 chip, batching off, exponential sizes; service SCV {es2 / es**2 - 1:.6f}",
    )


@check
def check_mmc(budget: Budget) -> CheckResult:
    c, rho = 4, 0.8
    chip, model = reference_chip(), reference_model()
    es, es2 = service_moments(cost_model(chip, model), *rounded_exponential_pmf(EXP_MEAN_ITEMS))
    rate = c * rho / es
    res = single_pool_scenario(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": EXP_MEAN_ITEMS},
        count=c,
        policy="shared_queue",
        duration_s=budget.queries / rate,
        warmup_s=500 * es,
        seed=13,
    )
    mean, stderr = batch_means(_window_latencies(res), budget.batches)
    return statistical(
        "mmc",
        f"M/M/{c} mean latency, ρ={rho:g} (Erlang C)",
        es + erlang_c_wait(c, rho, es),
        mean,
        stderr,
        budget,
        budget.queries,
        note=f"{c} chips, one shared queue, exponential sizes; service SCV {es2 / es**2 - 1:.6f}",
    )


# ------------------------------------------------- a fleet: Little's law, energy


@dataclass(frozen=True)
class FleetRun:
    resolved: ResolvedScenario
    records: RunRecords
    doc: dict[str, Any]


@lru_cache(maxsize=2)
def fleet_run(queries: int) -> FleetRun:
    """Two pools of different chips serving one workload with dynamic batching and
    lognormal sizes, at about 60% load, routed by join-shortest-queue."""
    from accelsim.engine.simulation import simulate
    from accelsim.metrics.summary import summarize

    # The host link's energy per byte is exaggerated so that dynamic energy is a large
    # share of the total (about 40%): the energy check then sees any error in it.
    slow = reference_chip(host_link={"energy_per_byte_j": 1e-6})
    fast = reference_chip(
        name="reference-chip-fast",
        host_link={"bandwidth_bytes_per_s": 32e6, "energy_per_byte_j": 1e-6},
        power={"idle_w": 20.0, "tdp_w": 90.0},
    )
    model = reference_model()
    # Items per second each chip sustains in large batches (its batch time per item).
    per_item_s = {
        chip.name: (
            cost_model(chip, model).batch(1001).time_s - cost_model(chip, model).batch(1).time_s
        )
        / 1000
        for chip in (slow, fast)
    }
    capacity = 2 / per_item_s[slow.name] + 1 / per_item_s[fast.name]
    median, sigma = 100.0, 0.8
    mean_items = median * math.exp(sigma**2 / 2)
    rate = 0.6 * capacity / mean_items
    duration = queries / rate
    batching = {"max_batch_items": 512, "max_wait_s": 5e-4}
    res = fleet_scenario(
        workloads={
            "w": {
                "rate_per_s": rate,
                "sizes": {"kind": "lognormal", "median": median, "sigma": sigma, "max": 4000},
            }
        },
        pools={
            "slow": {"chip": slow, "count": 2, "serves": ["w"], "batching": batching},
            "fast": {"chip": fast, "count": 1, "serves": ["w"], "batching": batching},
        },
        policy="join_shortest_queue",
        duration_s=duration,
        warmup_s=0.02 * duration,
        seed=14,
        model=model,
    )
    records = simulate(res)
    return FleetRun(res, records, summarize(res, records))


@check
def check_littles_law(budget: Budget) -> CheckResult:
    run = fleet_run(budget.queries)
    records, doc = run.records, run.doc
    w0, w1 = records.warmup_s, records.end_s
    wl = records.fleets["ranking"].workloads["w"]
    summary = doc["workloads"]["w"]
    # What the result document says: arrival rate times mean latency.
    lam_w = summary["offered"] / (w1 - w0) * summary["latency_s"]["mean"]
    # What the run did: the time-average number of queries in the system, in sub-windows.
    finish = np.where(np.isnan(wl.finish_s), np.inf, wl.finish_s)
    edges = np.linspace(w0, w1, budget.batches + 1)
    in_system, little = [], []
    for a, b in itertools.pairwise(edges):
        overlap = np.clip(np.minimum(finish, b) - np.maximum(wl.arrival_s, a), 0, None)
        in_system.append(overlap.sum() / (b - a))
        arrived = (wl.arrival_s >= a) & (wl.arrival_s < b)
        done = arrived & np.isfinite(finish)
        latency = finish[done] - wl.arrival_s[done]
        little.append(arrived.sum() / (b - a) * (latency.mean() if latency.size else 0.0))
    l_mean = float(np.mean(in_system))
    diff = np.asarray(in_system) - np.asarray(little)
    stderr = float(diff.std(ddof=1) / math.sqrt(budget.batches))
    return statistical(
        "little",
        "Little's law L = λW (2 pools, batching)",
        lam_w,
        l_mean,
        stderr,
        budget,
        summary["offered"],
        unit="queries",
        note="L: time-average queries in the system; λ, W: offered rate and mean latency "
        "from the result document; error bar from batch means of L - λW",
    )


# ------------------------------------------------------------------ roofline

_OVERHEAD_S = 2e-6


@check
def check_roofline_compute(budget: Budget) -> CheckResult:
    from accelsim.model.roofline import ChipRates, Op, op_cost

    chip = reference_chip(compute={"kernel_overhead_s": _OVERHEAD_S})
    flops = 1e12
    cost = op_cost(ChipRates(chip), Op("gemm", "gemm", "matrix", "bf16", flops, ()))
    achieved = flops / (cost.time_s - chip.compute.kernel_overhead_s)
    peak = chip.compute.matrix_flops_per_s["bf16"]
    result = identity(
        "roofline-compute",
        "roofline: pure-compute op at peak × efficiency",
        peak * chip.compute.gemm_efficiency,
        achieved,
        "FLOP/s",
        note=f"{flops:g} bf16 FLOPs, no bytes; bound: {cost.bound}",
    )
    return result if cost.bound == "compute" else _failed(result, "not compute-bound")


@check
def check_roofline_stream(budget: Budget) -> CheckResult:
    from accelsim.model.roofline import ChipRates, Op, Traffic, op_cost

    chip = reference_chip(compute={"kernel_overhead_s": _OVERHEAD_S})
    moved = 1e9
    op = Op("copy", "elementwise", "vector", "bf16", 0.0, (Traffic("dram", "stream", moved),))
    cost = op_cost(ChipRates(chip), op)
    achieved = moved / (cost.time_s - chip.compute.kernel_overhead_s)
    dram = chip.memory.dram
    result = identity(
        "roofline-stream",
        "roofline: pure-stream op at bandwidth × efficiency",
        dram.bandwidth_bytes_per_s * dram.stream_efficiency,
        achieved,
        "B/s",
        note=f"{moved:g} bytes streamed from DRAM, no FLOPs; bound: {cost.bound}",
    )
    return result if cost.bound == "dram" else _failed(result, "not DRAM-bound")


def _failed(result: CheckResult, why: str) -> CheckResult:
    return CheckResult(**{**asdict(result), "passed": False, "note": f"{why}; {result.note}"})


@check
def check_energy_integral(budget: Budget) -> CheckResult:
    run = fleet_run(budget.queries)
    records, doc, res = run.records, run.doc, run.resolved
    w0, w1 = records.warmup_s, records.end_s
    b = records.fleets["ranking"].batches
    # Power as a step function of time: idle power of every chip, plus each batch's
    # dynamic energy spread evenly over its duration. Integrate it over the window.
    idle = sum(
        res.chips[name].power.idle_w * pool.count for name, pool in res.scenario.pools.items()
    )
    span = b.end_s - b.start_s
    power = np.divide(b.dynamic_energy_j, span, out=np.zeros_like(span), where=span > 0)
    times = np.concatenate([b.start_s, b.end_s, [w0, w1]])
    steps = np.concatenate([power, -power, [0.0, 0.0]])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(steps[order])
    seg_start, seg_end = np.clip(times[:-1], w0, w1), np.clip(times[1:], w0, w1)
    integral = idle * (w1 - w0) + float(((seg_end - seg_start) * level[:-1]).sum())
    return identity(
        "energy",
        "energy = ∫ power dt (2 pools)",
        integral,
        doc["totals"]["energy_j"],
        "J",
        note="∫ of idle power plus each batch's dynamic power over the window vs the "
        "result document's total energy",
    )


# ------------------------------------------------------------------ LLM decode


@check
def check_llm_batch1_decode(budget: Budget) -> CheckResult:
    """At a trickle of requests, each decode step reads every weight once: the simulated
    time per output token is weight bytes / (DRAM bandwidth x efficiency), plus the KV
    cache read and the kernel overheads, all computed here from the shapes by hand."""
    from accelsim.config.loader import ResolvedScenario
    from accelsim.config.schema import LLMModel, Scenario
    from accelsim.engine.simulation import simulate

    chip = reference_chip(memory={"sram": None}, compute={"kernel_overhead_s": _OVERHEAD_S})
    layers, d, heads, kv_heads, ffn, vocab = 8, 1024, 16, 4, 4096, 32_000
    model = LLMModel(
        name="reference-llm",
        layers=layers,
        d_model=d,
        heads=heads,
        kv_heads=kv_heads,
        ffn_dim=ffn,
        vocab=vocab,
    )
    head_dim = d // heads
    body = layers * (2 * d * heads * head_dim + 2 * d * kv_heads * head_dim + 3 * d * ffn)
    weight_bytes = 2.0 * (body + vocab * d)  # bf16; the LM head, not the input embedding
    prompt, output = 128, 256
    kv_per_token = 2 * layers * kv_heads * head_dim * 2
    mean_context = prompt + output / 2  # context grows by one token a step
    dram = chip.memory.dram
    bandwidth = dram.bandwidth_bytes_per_s * dram.stream_efficiency
    overheads = _OVERHEAD_S * (5 * layers + 1)  # 4 GEMMs and attention per layer, LM head
    expected = (weight_bytes + (mean_context + 1) * kv_per_token) / bandwidth + overheads
    rate = 0.2 / (output * expected)  # one request in flight at a time, nearly always
    requests = max(20, budget.queries // 20_000)
    scenario = Scenario.model_validate(
        {
            "name": "validate-llm-decode",
            "simulation": {"duration_s": requests / rate, "warmup_s": 0, "seed": 5},
            "workloads": {
                "w": {
                    "kind": "llm",
                    "model": "reference-llm",
                    "traffic": {"kind": "poisson", "rate_per_s": rate},
                    "prompt_tokens": {"kind": "fixed", "value": prompt},
                    "output_tokens": {"kind": "fixed", "value": output},
                }
            },
            "pools": {"p": {"chip": "reference-chip", "count": 1, "serves": ["w"]}},
        }
    )
    resolved = ResolvedScenario(scenario, "<validate>", {"p": chip}, {"w": model}, {})
    rec = simulate(resolved).fleets["llm"].workloads["w"]
    done = ~np.isnan(rec.finish_s)
    arrival, finish = rec.arrival_s[done], rec.finish_s[done]
    tpot = (finish - rec.first_token_s[done]) / (output - 1)
    # A request that overlapped another decoded in a batch of two: keep those that ran
    # alone (the previous one had finished before it arrived; the next arrived after it).
    previous_end = np.concatenate(([-np.inf], finish[:-1]))
    next_start = np.concatenate((arrival[1:], [np.inf]))
    alone = (previous_end < arrival) & (next_start > finish)
    lone = int(alone.sum())
    result = identity(
        "llm-decode",
        "LLM batch-1 decode: weights / bandwidth",
        expected,
        float(tpot[alone].mean()) if lone else math.nan,
        "s",
        note=f"mean time per output token of {lone} requests that ran alone: "
        f"{weight_bytes / 2**20:.0f} MiB of bf16 weights over {bandwidth / 1e9:.0f} GB/s, "
        "plus KV reads and kernel overheads",
    )
    return result if lone >= 5 else _failed(result, "fewer than 5 requests ran alone")


# ------------------------------------------------------------ config files

CONFIG_KINDS = ("chip", "model", "scenario", "study")

# Top-level keys that tell a file's kind when its folder does not.
_KIND_KEYS: dict[str, frozenset[str]] = {
    "scenario": frozenset({"workloads", "pools", "simulation", "router"}),
    "chip": frozenset({"compute", "memory", "host_link", "power", "chip_to_chip", "economics"}),
    "model": frozenset(
        {"embedding_tables", "bottom_mlp", "top_mlp", "interaction", "dense_features", "layers"}
    ),
}
_KIND_FOLDERS = {"hardware": "chip", "models": "model", "scenarios": "scenario", "studies": "study"}


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of loading one configuration file."""

    path: str  # as shown to the user
    kind: str  # chip, model, scenario, study, or "?" when it could not be told
    errors: tuple[str, ...]  # one line each, naming a file (empty when the file is fine)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "ok": self.ok, "errors": list(self.errors)}


def shipped_config_files() -> list[tuple[str, str, Any]]:
    """Every shipped YAML file as (display path, kind, path), chips first."""
    from accelsim.config.loader import catalog, data_root

    root = data_root()
    out = []
    for kind in CONFIG_KINDS:
        for path in catalog(kind).values():  # type: ignore[arg-type]
            try:
                shown = str(path.relative_to(root))
            except ValueError:
                shown = str(path)
            out.append((shown, kind, path))
    return out


def check_config_file(path: Any, kind: str | None = None, shown: str | None = None) -> ConfigCheck:
    """Load one file (a :class:`pathlib.Path`) as ``kind`` (told from its folder and keys
    when None), with everything it refers to. Problems become one-line errors; an
    unexpected exception is reported as an internal error rather than raised."""
    from pathlib import Path

    from accelsim.errors import AccelsimError

    path = Path(path)
    shown = str(path) if shown is None else shown
    try:
        if not path.is_file():
            why = "file not found" if not path.exists() else "not a regular file"
            if path.is_dir():
                why = "is a directory, expected a YAML file"
            return ConfigCheck(shown, kind or "?", (f"{shown}: {why}",))
        if kind is None:
            kind = guess_kind(path)
        _load_config(path, kind)
    except AccelsimError as exc:
        return ConfigCheck(shown, kind or "?", _error_lines(exc))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return ConfigCheck(shown, kind or "?", (f"{shown}: cannot read: {reason}",))
    except Exception as exc:
        return ConfigCheck(
            shown,
            kind or "?",
            (
                f"{shown}: internal error ({type(exc).__name__}: {_one_line(exc)}); "
                "this is a bug in accelsim, please report it",
            ),
        )
    return ConfigCheck(shown, kind, ())


def _error_lines(exc: Exception) -> tuple[str, ...]:
    """One line per problem, with any line break inside a problem (say, in a field name)
    escaped so that it cannot split the problem over two lines."""
    from accelsim.errors import ConfigError

    texts = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [str(exc)]
    return tuple(_printable(text) for text in texts)


def _printable(text: str) -> str:
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def guess_kind(path: Any, _seen: frozenset[Any] = frozenset()) -> str:
    """chip, model, scenario or study, from the file's top-level keys, what it
    ``extends:``, or its folder."""
    from accelsim.config.loader import catalog
    from accelsim.config.yamlio import load_yaml
    from accelsim.errors import ConfigError

    doc = load_yaml(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    if data.get("kind") in ("ranking", "llm"):
        return "model"
    for kind, marks in _KIND_KEYS.items():
        if set(data) & marks:
            return kind
    folder = _KIND_FOLDERS.get(path.resolve().parent.name)
    if folder is not None:
        return folder
    parent = data.get("extends")
    if isinstance(parent, str) and parent:
        if parent.endswith((".yaml", ".yml")) or "/" in parent:
            target = (path.parent / parent).expanduser()
            if target.resolve() in _seen or not target.is_file():
                return "chip"  # loading it reports the cycle or the missing file
            return guess_kind(target, _seen | {path.resolve()})
        kinds = [k for k in CONFIG_KINDS if parent in catalog(k)]  # type: ignore[arg-type]
        if len(kinds) == 1:
            return kinds[0]
    raise ConfigError.single(
        str(path),
        "cannot tell whether this is a chip, model, scenario or study file "
        "(expected keys such as compute:, embedding_tables: or workloads:)",
        line=1,
    )


def _load_config(path: Any, kind: str) -> None:
    from accelsim.config import loader, schema
    from accelsim.config.schema import RankingModel

    ref = str(path)
    if kind == "chip":
        loader.load_chip(ref)
    elif kind == "model":
        generic = getattr(loader, "load_model", None)
        if generic is not None:
            generic(ref)
            return
        doc = loader.load_document(path, "model")
        llm: Any = getattr(schema, "LLMModel", None)
        is_llm = isinstance(doc.data, dict) and doc.data.get("kind") == "llm" and llm is not None
        loader.validate(doc, llm if is_llm else RankingModel)
    elif kind == "scenario":
        loader.load_scenario(ref)
    elif kind == "study":
        load_study = _study_loader()
        if load_study is None:
            loader.load_document(path, "study")  # the YAML and its extends: chain only
        else:
            load_study(ref)
    else:
        raise ValueError(f"unknown config kind {kind!r}")


def _study_loader() -> Callable[[str], Any] | None:
    """The study loader of this version of accelsim, if it has one."""
    import importlib

    for module in ("accelsim.config.loader", "accelsim.study", "accelsim.study.schema"):
        try:
            found = getattr(importlib.import_module(module), "load_study", None)
        except ImportError:
            continue
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None
