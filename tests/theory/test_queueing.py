"""Closed-form queueing goldens: the engine must match theory within its statistical error.

With batching off (one query per batch) and no routing choice, a pool is a
textbook queue whose service time is the cost model's batch time:

* fixed query size, one chip: M/D/1, mean latency S + rho*S / (2(1-rho))
  (Pollaczek-Khinchine);
* exponential query sizes, one chip: M/G/1 with the exact moments of the
  (rounded) service time, again Pollaczek-Khinchine;
* exponential sizes, c chips, one shared queue: M/M/c, Erlang C.

The simulated mean comes with a 95%-style error bar from batch means over the
run (arrival order, 20 batches); each check asserts the closed form lies
within four standard errors, plus a small allowance where the model is only
approximately exponential.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel
from helpers import chip, model, resolved

QUERIES = 200_000


def batch_means(latency: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and its standard error, by the method of batch means."""
    parts = np.array_split(latency, batches)
    means = np.array([p.mean() for p in parts])
    return float(latency.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def simulated_latency(res) -> np.ndarray:  # type: ignore[no-untyped-def]
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    window = (wl.arrival_s >= records.warmup_s) & ~np.isnan(wl.finish_s)
    # Nothing may be lost: every arrival in the window is finished or still in flight.
    doc = summarize(res, records)["workloads"]["w"]
    assert doc["offered"] == doc["completed"] + doc["in_flight"]
    return wl.finish_s[window] - wl.arrival_s[window]


def erlang_c_wait(c: int, rho: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c at per-server utilisation rho."""
    a = c * rho
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait * mean_service_s / (c * (1 - rho))


def rounded_exponential_pmf(mean: float, upto: int) -> tuple[np.ndarray, np.ndarray]:
    """Sizes k = 1..upto and their probabilities when Exp(mean) is rounded and floored at 1."""
    k = np.arange(1, upto + 1, dtype=np.float64)
    upper = np.exp(-(k + 0.5) / mean)
    lower = np.exp(-(k - 0.5) / mean)
    p = lower - upper
    p[0] = 1 - np.exp(-1.5 / mean)  # rint(x) <= 1 for every x < 1.5
    return k.astype(np.int64), p


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_latency_matches_pollaczek_khinchine(rho: float) -> None:
    size = 800
    service = RankingCostModel(model(), chip()).batch(size).time_s
    rate = rho / service
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "fixed", "value": size},
        duration_s=QUERIES / rate,
        warmup_s=200 * service,
    )
    mean, stderr = batch_means(simulated_latency(res))
    theory = service + rho * service / (2 * (1 - rho))
    assert abs(mean - theory) < 4 * stderr, (mean, theory, stderr)
    # The error bar is tight enough for the check to mean something.
    assert stderr < 0.03 * theory


def test_mg1_exponential_sizes_match_pollaczek_khinchine() -> None:
    rho, mean_items = 0.7, 400
    cost = RankingCostModel(model(), chip())
    sizes, p = rounded_exponential_pmf(mean_items, 40 * mean_items)
    times = np.array([cost.batch(int(k)).time_s for k in sizes])
    es, es2 = float((p * times).sum()), float((p * times**2).sum())
    rate = rho / es
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": mean_items},
        duration_s=QUERIES / rate,
        warmup_s=200 * es,
    )
    mean, stderr = batch_means(simulated_latency(res))
    theory = es + rate * es2 / (2 * (1 - rho))
    assert abs(mean - theory) < 4 * stderr, (mean, theory, stderr)
    # Through this (almost linear) cost, service times are nearly exponential: SCV ~ 1.
    assert es2 / es**2 == pytest.approx(2.0, rel=0.01)


def test_mmc_shared_queue_matches_erlang_c() -> None:
    c, rho, mean_items = 4, 0.8, 2000
    cost = RankingCostModel(model(), chip())
    sizes, p = rounded_exponential_pmf(mean_items, 20 * mean_items)
    es = float((p * np.array([cost.batch(int(k)).time_s for k in sizes])).sum())
    rate = c * rho / es
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": mean_items},
        count=c,
        policy="shared_queue",
        duration_s=QUERIES / rate,
        warmup_s=200 * es,
    )
    mean, stderr = batch_means(simulated_latency(res))
    theory = es + erlang_c_wait(c, rho, es)
    # 1% allowance: rounded sizes and a tiny per-batch constant make S only nearly exponential.
    assert abs(mean - theory) < 4 * stderr + 0.01 * theory, (mean, theory, stderr)
