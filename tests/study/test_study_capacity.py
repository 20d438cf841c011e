"""`accelsim capacity` against queueing theory.

Batching off, fixed query size, one chip: an M/D/1 queue whose service time
S is the cost model's batch time. Its mean latency is S + rho*S / (2(1-rho))
(Pollaczek-Khinchine), so the largest rate whose mean latency stays under a
bound L = 2S solves rho / (2(1-rho)) = 1: rho* = 2/3, rate* = 2 / (3S).

The bisection, run on a handful of seeds with common random numbers, finds
the rate where the seeds' average mean latency crosses L. Its error is that
average's sampling error at rate*, divided by the slope of the theoretical
curve there: dW/d(rate) = S^2 / (2(1-rho)^2) = 4.5 S^2. The sampling error of
one seed's mean latency, for this run length, is measured on independent
seeds at rate*; the tolerance is four such standard errors plus the
bisection's own resolution, and the test checks that this is tight (a few
percent of rate*) so that the comparison means something.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from studykit import assert_ok, err, error_lines, invoke, write_world

from accelsim.model.ranking import RankingCostModel
from accelsim.study.analysis import probe_runs
from helpers import chip, model

SIZE = 800
QUERIES = 30_000  # per seed and probe, at rate*
SEEDS = 6
RESOLUTION = 0.002  # the bisection stops when its bracket is this narrow (relative)


def md1_world(folder: Path, *, rate: float, duration_s: float, warmup_s: float) -> Path:
    return write_world(
        folder,
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        seed=11,
        items={"kind": "fixed", "value": SIZE},
        count=1,
        batching={"max_batch_items": SIZE, "max_batch_queries": 1, "max_wait_s": 0},
        policy="shared_queue",
        sla_s=None,
    )


def test_capacity_matches_md1_theory_for_a_mean_latency_bound(tmp_path: Path) -> None:
    service = RankingCostModel(model(), chip()).batch(SIZE).time_s
    bound = 2 * service
    rho = 2 / 3
    theory = rho / service
    duration = QUERIES / theory
    scenario = md1_world(tmp_path, rate=0.5 / service, duration_s=duration, warmup_s=200 * service)

    result = invoke(
        "capacity",
        scenario,
        "--max-mean-latency",
        repr(bound),
        "--seeds",
        SEEDS,
        "--tolerance",
        RESOLUTION,
        "--json",
        "-",
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    found, fails_at = doc["best"], doc["fails_at"]
    assert doc["criterion"] == {"kind": "mean", "latency_s": bound, "percentile": None}
    assert doc["seeds"] == list(range(11, 11 + SEEDS))
    assert fails_at - found <= RESOLUTION * fails_at
    # The probes bracket the bound: sustained ones under it, the others over it.
    for probe in doc["probes"]:
        assert probe["sustained"] == (probe["latency_s"] <= bound), probe

    # Sampling error of one seed's mean latency at rate*, on seeds the search did not use.
    docs = probe_runs(
        str(scenario), [f"workloads.w.traffic.rate_per_s={theory!r}"], range(1000, 1008)
    )
    means = [d["workloads"]["w"]["latency_s"]["mean"] for d in docs]
    assert statistics.mean(means) == pytest.approx(bound, rel=0.03)  # P-K holds here
    stderr_of_average = statistics.stdev(means) / math.sqrt(SEEDS)
    slope = service**2 / (2 * (1 - rho) ** 2)
    tolerance = 4 * stderr_of_average / slope + RESOLUTION * theory
    assert tolerance < 0.04 * theory, "the run is too short for the check to mean anything"
    assert abs(found - theory) < tolerance, (found, theory, tolerance)


def test_fewest_chips_for_a_rate(tmp_path: Path) -> None:
    # Rate 3.5/S on a shared queue: 4 chips run at rho = 0.875, where M/D/4 waits about
    # half the M/M/4 (Erlang C) wait, ~0.8 S; 5 chips (rho = 0.7) wait ~0.1 S. A mean
    # latency bound of 1.5 S therefore needs exactly 5 chips, with wide margins both ways.
    service = RankingCostModel(model(), chip()).batch(SIZE).time_s
    rate = 3.5 / service
    scenario = md1_world(tmp_path, rate=rate, duration_s=12_000 / rate, warmup_s=100 * service)
    result = invoke(
        "capacity",
        scenario,
        "--min-chips",
        "--pool",
        "p",
        "--rate",
        repr(rate),
        "--max-mean-latency",
        repr(1.5 * service),
        "--json",
        "-",
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    assert (doc["best"], doc["fails_at"]) == (5, 4)
    by_count = {p["value"]: p for p in doc["probes"]}
    assert by_count[5]["latency_s"] < 1.5 * service < by_count[4]["latency_s"]
    assert not by_count[1]["sustained"] and by_count[1]["in_flight_share"] > 0.05


def test_capacity_within_the_sla_prints_its_probes(tmp_path: Path) -> None:
    scenario = write_world(tmp_path, rate=2000, duration_s=0.4, sla_s=0.002)
    result = invoke("capacity", scenario, "--tolerance", 0.05)
    assert_ok(result)
    text = result.stdout
    assert "probes (w p99 latency ≤ 2 ms)" in text
    assert "largest rate within w p99 latency ≤ 2 ms:" in text
    quiet = invoke("capacity", scenario, "--tolerance", 0.05, "-q")
    assert_ok(quiet)
    assert quiet.stdout.startswith("largest rate within w p99 latency ≤ 2 ms: ")
    assert len(quiet.stdout.splitlines()) == 1 and err(quiet) == ""


def test_capacity_errors(tmp_path: Path) -> None:
    scenario = write_world(tmp_path, sla_s=None)
    (line,) = error_lines(invoke("capacity", scenario))
    assert line == "error: workload w has no sla; give --max-mean-latency (e.g. '10 ms')"
    (line,) = error_lines(invoke("capacity", scenario, "--max-mean-latency", "3 W"))
    assert "'3 W' is in W" in line
    (line,) = error_lines(invoke("capacity", scenario, "--max-mean-latency", "1 ms", "--min-chips"))
    assert line == "error: --min-chips needs --pool P and --rate R"
    (line,) = error_lines(invoke("capacity", scenario, "--max-mean-latency", "1 ms", "--rate", "5"))
    assert line == "error: --pool and --rate go with --min-chips"
    (line,) = error_lines(invoke("capacity", scenario, "--workload", "nope"))
    assert line == "error: no workload 'nope' (workloads: w)"


def _doc(offered: int, in_flight: int, mean_s: float, duration_s: float = 1.0) -> dict:
    workload = {
        "offered": offered,
        "in_flight": in_flight,
        "latency_s": {"mean": mean_s},
        "sla": None,
        "sla_attainment": None,
    }
    return {"window_s": {"duration": duration_s}, "workloads": {"w": workload}}


def test_a_backlog_is_not_sustained_but_slow_requests_are() -> None:
    from accelsim.study.analysis import Criterion, judge

    bound = Criterion("w", "mean", 10.0)
    # 1000 queries/s of 1 ms each hold ~1 in flight: 300 left over is a backlog.
    assert not judge(1.0, [_doc(1000, 300, 0.001)], bound).sustained
    assert judge(1.0, [_doc(1000, 3, 0.001)], bound).sustained
    # 4 requests/s of 8 s each hold ~32 in flight (13% of a 60 s run): no backlog.
    assert judge(1.0, [_doc(240, 32, 8.0, duration_s=60)], bound).sustained
    assert not judge(1.0, [_doc(240, 120, 8.0, duration_s=60)], bound).sustained
    # The statistic is the mean over seeds: one seed over the bound can be carried.
    two = [_doc(1000, 1, 9.0), _doc(1000, 1, 10.5)]
    probe = judge(1.0, two, bound)
    assert probe.per_seed == [9.0, 10.5] and probe.statistic == 9.75 and probe.sustained


def test_fewest_chips_come_in_whole_replicas() -> None:
    result = invoke(
        "capacity",
        "llm-mtia-tensor-parallel",
        "--min-chips",
        "--pool",
        "mtia",
        "--rate",
        4,
        "--max-mean-latency",
        "20 s",
        "--set",
        "simulation.duration_s=30",
        "--json",
        "-",
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    assert doc["best"] is not None and doc["best"] % 4 == 0
    assert all(p["value"] % 4 == 0 for p in doc["probes"])
