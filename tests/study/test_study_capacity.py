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
from accelsim.study.capacity import Criterion, ProbeRun, judge, probe_runs
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
        "--confirm",
        1,  # the bisection against theory, without a confirming run
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
    runs = probe_runs(
        str(scenario), [f"workloads.w.traffic.rate_per_s={theory!r}"], "w", range(1000, 1008)
    )
    means = [r.document["workloads"]["w"]["latency_s"]["mean"] for r in runs]
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
    # What it prints; the confirming run is tested on its own (ten times longer, slow here).
    result = invoke("capacity", scenario, "--tolerance", 0.05, "--confirm", 1)
    assert_ok(result)
    text = result.stdout
    assert "probes (w p99 latency ≤ 2 ms)" in text
    assert "largest rate within w p99 latency ≤ 2 ms:" in text
    quiet = invoke("capacity", scenario, "--tolerance", 0.05, "--confirm", 1, "-q")
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


def _doc(offered: int, in_flight: int, mean_s: float, duration_s: float = 1.0) -> ProbeRun:
    workload = {
        "offered": offered,
        "in_flight": in_flight,
        "latency_s": {"mean": mean_s},
        "sla": None,
        "sla_attainment": None,
    }
    return ProbeRun({"window_s": {"duration": duration_s}, "workloads": {"w": workload}}, False)


def test_a_backlog_is_not_sustained_but_slow_requests_are() -> None:
    bound = Criterion.mean("w", 10.0)
    # 1000 queries/s of 1 ms each hold ~1 in flight: 300 left over is a backlog.
    assert not judge(1.0, [_doc(1000, 300, 0.001)], bound).sustained
    assert judge(1.0, [_doc(1000, 3, 0.001)], bound).sustained
    # 4 requests/s of 8 s each hold ~32 in flight (13% of a 60 s run): no backlog.
    assert judge(1.0, [_doc(240, 32, 8.0, duration_s=60)], bound).sustained
    assert not judge(1.0, [_doc(240, 120, 8.0, duration_s=60)], bound).sustained
    # The statistic is the mean over seeds: one seed over the bound can be carried.
    two = [_doc(1000, 1, 9.0), _doc(1000, 1, 10.5)]
    probe = judge(1.0, two, bound)
    assert probe.per_seed == ((9.0, 10.5),) and probe.statistics == (9.75,) and probe.sustained


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


# ------------------------------------------------------------------ honest answers


LLM_SCENARIO = {
    "name": "capacity-llm",
    "simulation": {"duration_s": 30, "warmup_s": 5, "seed": 1},
    "workloads": {
        "chat": {
            "kind": "llm",
            "model": "llm-dense-8b",
            "traffic": {"kind": "poisson", "rate_per_s": 30},
            "prompt_tokens": {"kind": "lognormal", "median": 300, "sigma": 0.5, "max": 2000},
            "output_tokens": {"kind": "lognormal", "median": 60, "sigma": 0.5, "max": 300},
            "sla": {"ttft_s": 0.5, "tpot_s": 0.03, "percentile": 99},
        }
    },
    "pools": {
        "gpu": {
            "chip": "gpu-like-gen2-hbm",
            "count": 1,
            "serves": ["chat"],
            "continuous_batching": {"max_batch_sequences": 16},
        }
    },
}


def _holds(scenario: Path, workload: str, rate: float, duration_s: float) -> bool:
    """Whether a run meets the workload's SLA with no keep-up warning."""
    result = invoke(
        "run",
        scenario,
        "--set",
        f"workloads.{workload}.traffic.rate_per_s={rate!r}",
        "--set",
        f"simulation.duration_s={duration_s!r}",
        "-q",
        "--json",
        "-",
    )
    assert_ok(result)
    doc = json.loads(result.stdout)
    return bool(doc["workloads"][workload]["sla"]["met"]) and not doc["warnings"]


@pytest.mark.parametrize("kind", ["ranking", "llm"])
def test_the_answer_holds_ten_times_longer_and_fails_at_115_percent(
    tmp_path: Path, kind: str
) -> None:
    if kind == "ranking":
        scenario, workload = write_world(tmp_path, duration_s=0.1, sla_s=0.002), "w"
    else:
        scenario = tmp_path / "llm.yaml"
        scenario.write_text(json.dumps(LLM_SCENARIO), encoding="utf-8")
        workload = "chat"
    result = invoke("capacity", scenario, "--tolerance", 0.05, "--json", "-")
    assert_ok(result)
    doc = json.loads(result.stdout)
    best, probe_s = doc["best"], doc["probe_duration_s"]
    assert best is not None and not doc["at_least"]
    assert doc["confirmed_duration_s"] == pytest.approx(10 * probe_s)
    if kind == "llm":  # judged by the LLM's own SLA: TTFT and TPOT at its percentile
        assert doc["criterion"] == {"kind": "sla", "ttft_s": 0.5, "tpot_s": 0.03, "percentile": 99}
        assert all(p["ttft_s"] is not None and p["tpot_s"] is not None for p in doc["probes"])
    assert _holds(scenario, workload, best, 10 * probe_s)
    assert not _holds(scenario, workload, 1.15 * best, 10 * probe_s)


def test_probes_too_short_to_see_a_query_are_lengthened(tmp_path: Path) -> None:
    # 0.1 ms at 2000 /s expects 0.2 queries: each probe runs long enough for 1000.
    scenario = write_world(tmp_path, duration_s=1e-4, warmup_s=0, sla_s=0.002)
    result = invoke("capacity", scenario, "--tolerance", 0.1, "--confirm", 1, "--json", "-")
    assert_ok(result)
    doc = json.loads(result.stdout)
    assert doc["best"] is not None and doc["fails_at"] is not None
    for probe in doc["probes"]:
        assert probe["duration_s"] == pytest.approx(max(1e-4, 1000 / probe["value"]))
        assert probe["latency_s"] is not None


def test_a_criterion_that_always_holds_stops_at_the_arrival_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of 20,000 arrivals per run caps a 0.05 + 0.4 s probe at 44,444 /s, which
    # 4 chips sustain within a 1 s bound: the answer is a lower bound, and says so.
    import accelsim.config.checks
    import accelsim.study.capacity

    monkeypatch.setattr(accelsim.config.checks, "MAX_ARRIVALS", 20_000)
    monkeypatch.setattr(accelsim.study.capacity, "MAX_ARRIVALS", 20_000)
    scenario = write_world(tmp_path, duration_s=0.4, count=4, sla_s=1.0)
    result = invoke("capacity", scenario, "-q", "--json", str(tmp_path / "cap.json"))
    assert_ok(result)
    doc = json.loads((tmp_path / "cap.json").read_text(encoding="utf-8"))
    ceiling = 20_000 / 0.45
    assert doc["at_least"] and doc["fails_at"] is None
    assert doc["best"] == pytest.approx(ceiling)
    assert all(p["value"] <= doc["best"] for p in doc["probes"])
    assert result.stdout.startswith(f"sustains at least {doc['best']:,.6g} /s within w p99")
    assert "arrival budget of 2e+04 arrivals per run" in result.stdout


def test_a_growing_backlog_is_not_sustained_even_within_the_sla() -> None:
    doc = _doc(1000, 3, 0.001)
    bound = Criterion.mean("w", 10.0)
    assert judge(1.0, [doc], bound).sustained
    growing = judge(1.0, [ProbeRun(doc.document, growing=True)], bound)
    assert not growing.sustained and growing.document(bound)["backlog_growing"]


def test_the_search_reports_each_probe_as_it_starts(tmp_path: Path) -> None:
    from accelsim.config.loader import load_scenario
    from accelsim.study.capacity import ask, find_capacity

    scenario = write_world(tmp_path, duration_s=0.1, sla_s=0.002)
    calls: list[tuple[float, float, bool]] = []
    question = ask(load_scenario(scenario), [], tolerance=0.1)
    answer = find_capacity(question, on_probe=lambda *call: calls.append(call))
    probes = answer.result.probes
    assert [(p.value, p.duration_s) for p in probes] == [(v, d) for v, d, _ in calls]
    assert [confirming for *_, confirming in calls] == [p.duration_s == 1.0 for p in probes]
    assert calls[-1][2] and answer.confirmed_duration_s == 1.0
