"""Property tests over random valid scenarios: random chips and ranking models, several
pools and workloads, every router and every query-size distribution.

(tests/unit/test_engine.py covers one pool and one workload of the test chip and model.)

No corner is left out: a fixed ``hit_rate`` on a chip without SRAM, a chip that draws
no power at all and one that draws almost none (power and energies down to the smallest
subnormal float) are generated too; test_trust_hostile.py pins each down.

The example counts are bounded for CI; set ACCELSIM_PROPERTY_EXAMPLES=N to explore N
examples per test (fresh random ones each time: the tests are not derandomized).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config.loader import ResolvedScenario
from accelsim.config.schema import Chip, RankingModel, Scenario
from accelsim.engine.records import RunRecords
from accelsim.engine.simulation import simulate
from accelsim.metrics.summary import summarize
from accelsim.model.ranking import RankingCostModel

DTYPES = ["fp32", "bf16", "fp16", "fp8", "int8"]
EVENT_BUDGET = 20_000  # query pieces per example, to keep each run short


def _f(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Log-uniform-ish floats in [lo, hi]."""
    if lo <= 0:
        return st.floats(min_value=lo, max_value=hi)
    return st.floats(min_value=math.log10(lo), max_value=math.log10(hi)).map(
        lambda x: min(hi, max(lo, 10**x))
    )


def _tier(draw: st.DrawFn, capacity: tuple[float, float], bw: tuple[float, float]) -> dict:
    return {
        "capacity_bytes": draw(_f(*capacity)),
        "bandwidth_bytes_per_s": draw(_f(*bw)),
        "stream_efficiency": draw(st.floats(0.05, 1.0)),
        "random_efficiency": draw(st.floats(0.01, 1.0)),
        "access_granularity_bytes": draw(st.sampled_from([1, 8, 32, 64, 128, 4096])),
        "energy_per_byte_j": draw(_f(0, 1e-10)),
    }


@st.composite
def chips(draw: st.DrawFn, name: str = "chip") -> Chip:
    dtypes = draw(st.lists(st.sampled_from(DTYPES), min_size=1, max_size=5, unique=True))
    # One chip in four draws no idle power, or almost none (perf/W near overflow).
    corner = draw(st.integers(0, 3)) == 0
    idle = draw(st.sampled_from([0.0, 5e-324, 1e-306]) if corner else _f(0.01, 500))
    energy = draw(st.one_of(st.just({}), st.fixed_dictionaries({d: _f(0, 5e-12) for d in dtypes})))
    data = {
        "name": name,
        "compute": {
            "matrix_flops_per_s": {d: draw(_f(1e10, 5e15)) for d in dtypes},
            "vector_flops_per_s": draw(_f(1e9, 1e14)),
            "gemm_efficiency": draw(st.floats(0.01, 1.0)),
            "vector_efficiency": draw(st.floats(0.01, 1.0)),
            "kernel_overhead_s": draw(_f(0, 5e-5)),
            "clock_hz": draw(_f(1e8, 5e9)),
        },
        "memory": {
            "sram": _tier(draw, (2**16, 2**30), (1e10, 5e13)) if draw(st.booleans()) else None,
            "dram": _tier(draw, (2**20, 2**38), (1e9, 1e13)),
        },
        "host_link": {
            "bandwidth_bytes_per_s": draw(_f(1e6, 5e11)),
            "latency_s": draw(_f(0, 1e-4)),
            "energy_per_byte_j": draw(_f(0, 1e-9)),
        },
        "power": {
            "idle_w": idle,
            "tdp_w": idle + draw(st.floats(1, 1000)),
            "energy_per_flop_j": energy,
            "vector_energy_per_flop_j": draw(_f(0, 1e-11)),
        },
    }
    return Chip.model_validate(data)


@st.composite
def models(draw: st.DrawFn, name: str = "model") -> RankingModel:
    dot = draw(st.booleans())
    widths = st.integers(1, 512)
    bottom = draw(st.lists(widths, min_size=1, max_size=3))
    dim = bottom[-1] if dot else None
    tables = [
        {
            "name": f"t{i}",
            "count": draw(st.integers(1, 30)),
            "rows": draw(st.integers(1, 10**10)),
            "dim": dim if dim is not None else draw(st.integers(1, 256)),
            "pooling_factor": draw(_f(0.01, 200)),
            "dtype": draw(st.sampled_from(DTYPES)),
            **draw(
                st.one_of(
                    st.fixed_dictionaries({"zipf_alpha": st.floats(0, 3)}),
                    st.fixed_dictionaries({"hit_rate": st.floats(0.01, 1.0)}),
                )
            ),
        }
        for i in range(draw(st.integers(1, 3)))
    ]
    interaction: dict[str, Any] = {"kind": "dot"}
    if not dot:
        interaction = {
            "kind": "cross",
            "layers": draw(st.integers(1, 4)),
            "rank": draw(st.none() | st.integers(1, 64)),
        }
    data = {
        "name": name,
        "dtype": draw(st.sampled_from(DTYPES)),
        "dense_features": draw(st.integers(0, 1024)),
        "bottom_mlp": bottom,
        "embedding_tables": tables,
        "interaction": interaction,
        "top_mlp": draw(st.lists(widths, min_size=1, max_size=3)),
    }
    return RankingModel.model_validate(data)


def _largest_size(dist: dict[str, Any]) -> int:
    kind = dist["kind"]
    if kind == "fixed":
        return int(dist["value"])
    if kind == "uniform":
        return int(dist["high"])
    if kind == "empirical":
        return int(dist["quantiles"][-1][1])
    return int(dist["max"])


sizes = st.one_of(
    st.fixed_dictionaries({"kind": st.just("fixed"), "value": st.integers(1, 300)}),
    st.integers(1, 300).flatmap(
        lambda lo: st.fixed_dictionaries(
            {"kind": st.just("uniform"), "low": st.just(lo), "high": st.integers(lo, 300)}
        )
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("lognormal"),
            "median": st.floats(1, 200),
            "sigma": st.floats(0, 2),
            "max": st.integers(1, 300),
        }
    ),
    st.fixed_dictionaries(
        {"kind": st.just("exponential"), "mean": st.floats(0.5, 200), "max": st.integers(1, 300)}
    ),
    st.lists(st.integers(1, 300), min_size=2, max_size=4).map(
        lambda v: {
            "kind": "empirical",
            "quantiles": [[i / (len(v) - 1), x] for i, x in enumerate(sorted(v))],
        }
    ),
)


@st.composite
def scenarios(draw: st.DrawFn) -> ResolvedScenario:
    n_work = draw(st.integers(1, 3))
    n_pool = draw(st.integers(1, 3))
    work_names = [f"w{i}" for i in range(n_work)]
    pool_names = [f"p{i}" for i in range(n_pool)]
    # Every workload is served by at least one pool; pools may share workloads.
    serves: dict[str, list[str]] = {p: [] for p in pool_names}
    for w in work_names:
        for p in draw(st.lists(st.sampled_from(pool_names), min_size=1, unique=True)):
            serves[p].append(w)
    for p in pool_names:
        if not serves[p]:
            serves[p].append(draw(st.sampled_from(work_names)))
    pools = {
        p: {
            "chip": f"chip-{p}",
            "count": draw(st.integers(1, 4)),
            "serves": serves[p],
            "batching": {
                "max_batch_items": draw(st.integers(1, 512)),
                "max_batch_queries": draw(st.none() | st.integers(1, 64)),
                "max_wait_s": draw(st.sampled_from([0.0, 1e-5, 1e-4, 1e-3, 1e-2])),
            },
        }
        for p in pool_names
    }
    workloads = {}
    pieces = 0.0
    for w in work_names:
        dist = draw(sizes)
        rate = draw(_f(20, 20_000))
        smallest_batch = min(
            pools[p]["batching"]["max_batch_items"] for p in pool_names if w in serves[p]
        )
        pieces += rate * math.ceil(_largest_size(dist) / smallest_batch)
        sla = draw(
            st.none()
            | st.fixed_dictionaries({"latency_s": _f(1e-5, 1.0), "percentile": st.floats(1, 100)})
        )
        workloads[w] = {
            "model": f"model-{w}",
            "traffic": {"kind": "poisson", "rate_per_s": rate},
            "items_per_query": dist,
            **({"sla": sla} if sla else {}),
        }
    total = min(0.5, EVENT_BUDGET / pieces)
    warmup = total * draw(st.floats(0, 0.5))
    scenario = Scenario.model_validate(
        {
            "name": "random",
            "simulation": {
                "duration_s": total - warmup,
                "warmup_s": warmup,
                "seed": draw(st.integers(0, 2**63 - 1)),
            },
            "workloads": workloads,
            "pools": pools,
            "router": {
                "policy": draw(
                    st.sampled_from(["round_robin", "join_shortest_queue", "shared_queue"])
                )
            },
        }
    )
    the_chips = {p: draw(chips(f"chip-{p}")) for p in pool_names}
    the_models = {w: draw(models(f"model-{w}")) for w in work_names}
    return ResolvedScenario(scenario, "<random>", the_chips, the_models, {})


def assert_finite_and_non_negative(node: object, path: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "config":
                assert_finite_and_non_negative(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            assert_finite_and_non_negative(value, f"{path}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        assert math.isfinite(node) and node >= 0, (path, node)


_EXAMPLES = int(os.environ.get("ACCELSIM_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(res=scenarios())
def test_invariants_hold_on_random_fleets(res: ResolvedScenario) -> None:
    records = simulate(res)
    check_invariants(res, records, summarize(res, records))


def check_invariants(res: ResolvedScenario, records: RunRecords, doc: dict[str, Any]) -> None:
    """What every run's records and document must satisfy, whatever the fleet."""
    json.dumps(doc, allow_nan=False)  # a valid JSON document: no NaN or infinity anywhere
    assert_finite_and_non_negative(doc)
    scenario = res.scenario
    duration = doc["window_s"]["duration"]
    names = list(scenario.workloads)
    costs = {
        (p, w): RankingCostModel(res.models[w], res.chips[p])
        for p, pool in scenario.pools.items()
        for w in pool.serves
    }
    for w, entry in doc["workloads"].items():
        # Conservation: every query that arrived in the window is accounted for.
        assert entry["offered"] == entry["completed"] + entry["dropped"] + entry["in_flight"]
        rec = records.fleets["ranking"].workloads[w]
        in_window = (rec.arrival_s >= records.warmup_s) & (rec.arrival_s < records.end_s)
        assert entry["offered"] == int(in_window.sum())
        lat = entry["latency_s"]
        if entry["completed"]:
            assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
            assert lat["mean"] <= lat["max"] * (1 + 1e-12)
            assert entry["queue_wait_s"]["mean"] <= lat["mean"] * (1 + 1e-12)
        else:
            assert lat["mean"] is None
        if entry["sla_attainment"] is not None:
            assert 0 <= entry["sla_attainment"] <= 1
        if "by_pool" in entry:
            assert sum(p["completed"] for p in entry["by_pool"].values()) == entry["completed"]
        # Latency >= service time: a query of n items on a pool batching at most m items
        # spends at least one batch of min(n, m) items (batch time grows with items).
        done = ~np.isnan(rec.finish_s)
        assert np.all(rec.start_s[done] >= rec.arrival_s[done])
        assert np.all(rec.finish_s[done] > rec.start_s[done])
        for i in np.flatnonzero(done):
            pool = records.fleets["ranking"].stations[rec.station[i]].pool
            m = scenario.pools[pool].batching.max_batch_items
            service = costs[pool, w].batch(int(min(rec.items[i], m))).time_s
            assert rec.finish_s[i] - rec.arrival_s[i] >= service * (1 - 1e-9), (w, pool, i)
    b = records.fleets["ranking"].batches
    assert np.all(b.items >= 1) and np.all(b.end_s >= b.start_s)
    for p, entry in doc["pools"].items():
        pool = scenario.pools[p]
        assert 0.0 <= entry["utilization"] <= 1.0 + 1e-9, entry
        assert entry["energy_j"] >= entry["idle_power_w"] * duration * (1 - 1e-12)
        if entry["mean_batch_items"] is not None:
            assert 1 <= entry["mean_batch_items"] <= pool.batching.max_batch_items
        served = [names.index(w) for w in pool.serves]
        stations = [i for i, s in enumerate(records.fleets["ranking"].stations) if s.pool == p]
        sel = np.isin(b.station, stations)
        assert np.all(np.isin(b.workload[sel], served))  # a pool runs only what it serves
        assert np.all(b.items[sel] <= pool.batching.max_batch_items)
    # No chip runs two batches at once.
    for device in np.unique(b.device):
        sel = b.device == device
        order = np.argsort(b.start_s[sel], kind="stable")
        starts, ends = b.start_s[sel][order], b.end_s[sel][order]
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)
    total = sum(p["energy_j"] for p in doc["pools"].values())
    assert math.isclose(doc["totals"]["energy_j"], total, rel_tol=1e-12)


@settings(
    max_examples=_EXAMPLES or 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(res=scenarios(), share=st.floats(0.05, 1.0), spare=st.floats(0.01, 1.5))
def test_power_aware_routing_and_shifted_caps_keep_the_invariants(
    res: ResolvedScenario, share: float, spare: float
) -> None:
    """Power-aware routing under a facility that shifts its budget: the same invariants,
    and caps that stay above idle power, at most their ceiling, and within the budget."""
    data = res.scenario.model_dump()
    for workload in data["workloads"].values():
        workload["sla"] = workload["sla"] or {"latency_s": 0.01, "percentile": 99.0}
    data["router"] = {"policy": "power_aware", "sla_share": share}
    pools = data["pools"]
    idle = sum(res.chips[p].power.idle_w * pool["count"] for p, pool in pools.items())
    tdp = sum(res.chips[p].power.tdp_w * pool["count"] for p, pool in pools.items())
    budget = (idle + spare * (tdp - idle)) * 1.2
    interval = res.scenario.simulation.duration_s / 7 + res.scenario.simulation.warmup_s / 3
    data["facility"] = {
        "pue": 1.2,
        "power_budget_w": budget,
        "budget_policy": "shift",
        "shift_interval_s": interval,
    }
    shifted = ResolvedScenario(Scenario.model_validate(data), res.source, res.chips, res.models, {})
    records = simulate(shifted)
    doc = summarize(shifted, records)
    check_invariants(shifted, records, doc)
    history = records.power_caps
    assert history is not None
    assert history.it_budget_w == budget / 1.2
    total = sum(np.array(caps) * pools[p]["count"] for p, caps in history.caps_w.items())
    assert np.all(total <= history.it_budget_w * (1 + 1e-9))
    for p, caps in history.caps_w.items():
        power = res.chips[p].power
        assert all(power.idle_w < c <= power.tdp_w * (1 + 1e-12) for c in caps)
    for entry in doc["totals"]["power_shifting"]["pools"].values():
        assert entry["min_cap_w"] <= entry["mean_cap_w"] * (1 + 1e-12)
        assert entry["mean_cap_w"] <= entry["max_cap_w"] * (1 + 1e-12)


def _without_seed(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    del doc["seed"]
    del doc["config"]["simulation"]["seed"]
    return doc


@settings(
    max_examples=_EXAMPLES or 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(res=scenarios())
def test_same_seed_same_document_and_another_seed_another(res: ResolvedScenario) -> None:
    def run(seed: int) -> dict[str, Any]:
        data = res.scenario.model_dump()
        data["simulation"]["seed"] = seed
        other = ResolvedScenario(
            Scenario.model_validate(data), res.source, res.chips, res.models, res.traces
        )
        return summarize(other, simulate(other))

    seed = res.scenario.simulation.seed
    one, two = run(seed), run(seed)
    assert json.dumps(one) == json.dumps(two)
    other = run((seed + 1) % 2**63)
    arrived = sum(w["offered"] for d in (one, other) for w in d["workloads"].values())
    if arrived:
        assert json.dumps(_without_seed(one)) != json.dumps(_without_seed(other))
