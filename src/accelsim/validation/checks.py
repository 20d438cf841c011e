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

The closed forms are in :mod:`accelsim.validation.formulas`, the reference chip,
model and scenarios in :mod:`accelsim.validation.reference`. Anything the suite
does not check yet is listed in :data:`NOT_CHECKED` (nothing, now).

To add a check, write a function ``(budget: Budget) -> CheckResult`` and
decorate it with ``@check``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import LLMModel, Scenario
from accelsim.engine.records import RunRecords
from accelsim.validation.formulas import (
    batch_means,
    erlang_c_wait,
    md1_wait,
    mg1_wait,
    rounded_exponential_pmf,
    service_moments,
)
from accelsim.validation.reference import (
    cost_model,
    fleet_scenario,
    reference_chip,
    reference_model,
    single_pool_scenario,
)

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
        service + md1_wait(rho, service),
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


def _exponential_service_moments() -> tuple[float, float]:
    """E[S] and E[S^2] of a query of exponential size (mean EXP_MEAN_ITEMS), served
    alone by the reference model on the reference chip."""
    cost = cost_model(reference_chip(), reference_model())
    return service_moments(
        lambda items: cost.batch(items).time_s, *rounded_exponential_pmf(EXP_MEAN_ITEMS)
    )


@check
def check_mm1(budget: Budget) -> CheckResult:
    rho = 0.7
    es, es2 = _exponential_service_moments()
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
        es + mg1_wait(rho, es, es2),
        mean,
        stderr,
        budget,
        budget.queries,
        note=f"1 chip, batching off, exponential sizes; service SCV {es2 / es**2 - 1:.6f}",
    )


@check
def check_mmc(budget: Budget) -> CheckResult:
    c, rho = 4, 0.8
    es, es2 = _exponential_service_moments()
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
    cache read, the element-wise kernels, the unhidden share of each kernel's compute and
    the kernel overheads, all computed here from the shapes by hand."""
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
    dram, compute = chip.memory.dram, chip.compute
    bandwidth = dram.bandwidth_bytes_per_s * dram.stream_efficiency
    vector = compute.vector_flops_per_s * compute.vector_efficiency
    # One token per GEMM fills 1 row of a 16-row tile; every N here fills whole 128-wide
    # tiles, and one matrix unit means no waves.
    matrix = compute.matrix_flops_per_s["bf16"] * compute.gemm_efficiency / 16

    def busy(compute_s: float, memory_s: float) -> float:
        return max(compute_s, memory_s) + (1 - compute.memory_overlap) * min(compute_s, memory_s)

    def gemm(n: float, k: float) -> float:  # 2 FLOPs and 2 bytes (bf16) per weight
        return busy(2 * n * k / matrix, 2 * n * k / bandwidth)

    def elementwise(elements: float, flops: float, bytes_: float) -> float:
        return busy(elements * flops / vector, elements * bytes_ / bandwidth)

    q, kv = heads * head_dim, kv_heads * head_dim
    per_layer = (
        2 * elementwise(d, 4, 4)  # two RMSNorms: read and write bf16
        + gemm(q + 2 * kv, d)
        + elementwise(q + kv, 3, 4)  # rotary
        + busy(2 * kv / vector, 2 * kv * 4 / bandwidth)  # K and V read and cached
        + gemm(d, q)
        + 2 * elementwise(d, 1, 6)  # residual adds
        + gemm(2 * ffn, d)
        + elementwise(ffn, 5, 6)  # SiLU x up
        + gemm(d, ffn)
    )
    # Attention at the mean context: its compute and bytes both grow with the context.
    attention = busy(
        4 * layers * q * mean_context / vector, mean_context * kv_per_token / bandwidth
    )
    head = elementwise(d, 4, 4) + gemm(vocab, d) + elementwise(vocab, 5, 4)
    overheads = _OVERHEAD_S * (12 * layers + 3)  # 12 kernels per layer; norm, head, sampling
    expected = layers * per_layer + attention + head + overheads
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
