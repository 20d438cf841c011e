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

import numpy as np
import pytest

from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel
from accelsim.validation.formulas import (
    batch_means,
    erlang_c_wait,
    md1_wait,
    mg1_wait,
    rounded_exponential_pmf,
    service_moments,
)
from helpers import chip, model, resolved

QUERIES = 200_000
BATCHES = 20


def simulated_latency(res) -> np.ndarray:  # type: ignore[no-untyped-def]
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    window = (wl.arrival_s >= records.warmup_s) & ~np.isnan(wl.finish_s)
    # Nothing may be lost: every arrival in the window is finished or still in flight.
    doc = summarize(res, records)["workloads"]["w"]
    assert doc["offered"] == doc["completed"] + doc["in_flight"]
    return wl.finish_s[window] - wl.arrival_s[window]


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
    mean, stderr = batch_means(simulated_latency(res), BATCHES)
    theory = service + md1_wait(rho, service)
    assert abs(mean - theory) < 4 * stderr, (mean, theory, stderr)
    # The error bar is tight enough for the check to mean something.
    assert stderr < 0.03 * theory


def test_mg1_exponential_sizes_match_pollaczek_khinchine() -> None:
    rho, mean_items = 0.7, 400
    cost = RankingCostModel(model(), chip())
    es, es2 = service_moments(
        lambda items: cost.batch(items).time_s, *rounded_exponential_pmf(mean_items)
    )
    rate = rho / es
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": mean_items},
        duration_s=QUERIES / rate,
        warmup_s=200 * es,
    )
    mean, stderr = batch_means(simulated_latency(res), BATCHES)
    theory = es + mg1_wait(rho, es, es2)
    assert abs(mean - theory) < 4 * stderr, (mean, theory, stderr)
    # Through this (almost linear) cost, service times are nearly exponential: SCV ~ 1.
    assert es2 / es**2 == pytest.approx(2.0, rel=0.01)


def test_mmc_shared_queue_matches_erlang_c() -> None:
    c, rho, mean_items = 4, 0.8, 2000
    cost = RankingCostModel(model(), chip())
    es, _ = service_moments(
        lambda items: cost.batch(items).time_s, *rounded_exponential_pmf(mean_items)
    )
    rate = c * rho / es
    res = resolved(
        rate_per_s=rate,
        sizes={"kind": "exponential", "mean": mean_items},
        count=c,
        policy="shared_queue",
        duration_s=QUERIES / rate,
        warmup_s=200 * es,
    )
    mean, stderr = batch_means(simulated_latency(res), BATCHES)
    theory = es + erlang_c_wait(c, rho, es)
    # 1% allowance: rounded sizes and a tiny per-batch constant make S only nearly exponential.
    assert abs(mean - theory) < 4 * stderr + 0.01 * theory, (mean, theory, stderr)
