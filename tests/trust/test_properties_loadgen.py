"""Property tests of LoadGen traffic (offline and closed loops) on both engines: random
users, think times, chips, batching and sizes.

Invariants checked on every example:

* conservation: offered = completed + dropped + in flight, and an offline run's
  requests are exactly those it was given;
* a closed loop never has more than its users in the system, and each request after the
  first ``users`` is sent exactly a think time after a response (fixed think);
* Little's law, sample path by sample path: each user is always either waiting for a
  response or thinking, so over the window the time requests spend in the system plus
  the time users spend thinking is users x window;
* offline: the makespan is the last completion, and throughput x makespan = completed.

The example counts are bounded for CI; set ACCELSIM_PROPERTY_EXAMPLES=N to explore more.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Scenario
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel
from helpers import chip, llm_resolved, model, resolved

EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SIZES = st.one_of(
    st.integers(1, 400).map(lambda v: {"kind": "fixed", "value": v}),
    st.tuples(st.integers(1, 50), st.integers(50, 400)).map(
        lambda b: {"kind": "uniform", "low": b[0], "high": b[1]}
    ),
)
BATCHING = st.one_of(
    st.none(),
    st.builds(
        lambda items, wait: {"max_batch_items": items, "max_wait_s": wait},
        st.integers(1, 2000),
        st.sampled_from([0.0, 1e-5, 1e-3]),
    ),
)


def _ranking(
    traffic: dict[str, Any], sizes: dict[str, Any], chips: int, batching: Any, warmup_s: float
) -> ResolvedScenario:
    service_s = RankingCostModel(model(), chip()).batch(400).time_s
    base = resolved(rate_per_s=1.0, sizes=sizes, count=chips, batching=batching)
    data = base.scenario.model_dump(mode="json")
    data["workloads"]["w"]["traffic"] = traffic
    data["simulation"].update(duration_s=400 * service_s, warmup_s=warmup_s * service_s)
    return dataclasses.replace(base, scenario=Scenario.model_validate(data))


def _loop_identity(
    arrival: np.ndarray, finish: np.ndarray, think_s: float, users: int, w0: float, w1: float
) -> None:
    """Time in the system + time thinking over [w0, w1) = users x (w1 - w0)."""
    end = np.where(np.isnan(finish), w1, finish)
    in_system = np.clip(np.minimum(end, w1) - np.maximum(arrival, w0), 0, None).sum()
    done = finish[~np.isnan(finish)]
    thinking = np.clip(np.minimum(done + think_s, w1) - np.maximum(done, w0), 0, None).sum()
    assert np.isclose(in_system + thinking, users * (w1 - w0), rtol=1e-9, atol=0)


@SETTINGS
@given(
    users=st.integers(1, 12),
    think=st.sampled_from([0.0, 0.5, 3.0]),
    chips=st.integers(1, 3),
    sizes=SIZES,
    batching=BATCHING,
    warmup=st.sampled_from([0.0, 20.0]),
)
def test_ranking_closed_loop_conserves_and_obeys_littles_law(
    users: int, think: float, chips: int, sizes: dict[str, Any], batching: Any, warmup: float
) -> None:
    service_s = RankingCostModel(model(), chip()).batch(400).time_s
    think_s = think * service_s
    traffic = {"kind": "closed_loop", "users": users, "think_s": think_s}
    res = _ranking(traffic, sizes, chips, batching, warmup)
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    entry = summarize(res, records)["workloads"]["w"]
    assert entry["offered"] == entry["completed"] + entry["dropped"] + entry["in_flight"]
    assert int(np.isnan(wl.finish_s).sum()) <= users
    assert int((wl.arrival_s == 0).sum()) == users
    later = np.sort(wl.finish_s[~np.isnan(wl.finish_s)] + think_s)
    later = later[later < records.end_s]
    assert np.allclose(np.sort(wl.arrival_s[users:]), later, rtol=0, atol=1e-12)
    _loop_identity(wl.arrival_s, wl.finish_s, think_s, users, records.warmup_s, records.end_s)


@SETTINGS
@given(requests=st.integers(1, 300), chips=st.integers(1, 3), sizes=SIZES, batching=BATCHING)
def test_ranking_offline_serves_exactly_its_requests(
    requests: int, chips: int, sizes: dict[str, Any], batching: Any
) -> None:
    res = _ranking({"kind": "offline", "requests": requests}, sizes, chips, batching, 0.0)
    records = simulate(res)
    wl = records.fleets["ranking"].workloads["w"]
    doc = summarize(res, records)
    entry, loadgen = doc["workloads"]["w"], doc["workloads"]["w"]["loadgen"]
    assert entry["offered"] == requests == len(wl.arrival_s)
    assert loadgen["completed"] + loadgen["unfinished"] == requests
    if loadgen["makespan_s"] is not None:
        assert loadgen["makespan_s"] == float(np.nanmax(wl.finish_s))
        assert np.isclose(loadgen["offline_throughput_per_s"] * loadgen["makespan_s"], requests)
        # Little's law over the makespan: mean in system x makespan = total latency
        assert np.isclose(wl.finish_s.sum(), entry["latency_s"]["mean"] * requests)


@settings(max_examples=max(3, EXAMPLES // 5), deadline=None)
@given(
    users=st.integers(1, 20),
    think=st.sampled_from([0.0, 0.02, 0.2]),
    replicas=st.integers(1, 2),
    kv_policy=st.sampled_from(["reserve", "preempt"]),
)
def test_llm_closed_loop_conserves_and_obeys_littles_law(
    users: int, think: float, replicas: int, kv_policy: str
) -> None:
    res = llm_resolved(
        rate_per_s=1.0,
        prompt={"kind": "uniform", "low": 8, "high": 512},
        output={"kind": "uniform", "low": 1, "high": 64},
        count=replicas,
        batching={"kv_policy": kv_policy, "max_batch_tokens": 512},
        modes={"instant": 0.7, "contemplating": 0.3},
        extra={
            "traffic": {"kind": "closed_loop", "users": users, "think_s": think},
            "contemplating": {
                "branches": 2,
                "branch_output_tokens": {"kind": "fixed", "value": 4},
                "aggregation_output_tokens": {"kind": "fixed", "value": 4},
            },
        },
        duration_s=4.0,
        warmup_s=1.0,
    )
    records = simulate(res)
    rec = records.fleets["llm"].workloads["w"]
    entry = summarize(res, records)["workloads"]["w"]
    assert entry["offered"] == entry["completed"] + entry["dropped"] + entry["in_flight"]
    assert not rec.rejected.any()
    assert int(np.isnan(rec.finish_s).sum()) <= users
    assert int(rec.generated_tokens.sum()) >= int(rec.output_tokens[~np.isnan(rec.finish_s)].sum())
    _loop_identity(rec.arrival_s, rec.finish_s, think, users, records.warmup_s, records.end_s)
