"""`accelsim plan`: a plan with injected characterisation gives the hand-computed fleet;
infeasible plans and bad files fail with one located line and exit 1.

The toy plan: one ranking service at a flat 10,500 queries/s, two shipped chips with
their economics (mtia-like-gen2: 4,800 USD over 5 years = 960 USD/year;
gpu-like-gen2-hbm: 32,000 USD over 4 years = 8,000 USD/year), energy free. Injected
replicas: 1,000 /s at a flat 50 W on the MTIA-like chip, 5,000 /s at 300 W on the
GPU-like one. Capex per 1 /s: 0.96 vs 1.6 USD/year, so the optimum is 11 MTIA-like
replicas (11,000 /s): 10,560 USD/year (10 MTIA-like + 1 GPU-like would cost 17,600).
Its facility power at PUE 1.5 is 11 x 50 x 1.5 = 825 W.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plankit import PLAN, toy

from accelsim.config.fleet_plan import load_plan
from accelsim.planner.characterise import Cache, entries
from clirunner import assert_ok, err, invoke, out


def test_toy_plan_gives_the_hand_computed_fleet(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke("plan", plan, "--cache", cache, "--no-verify", "--json", "-")
    assert_ok(result)
    doc = json.loads(out(result))
    step = doc["steps"][0]
    assert [(r["candidate"], r["replicas"], r["chips"]) for r in step["fleet"]] == [
        ("mtia", 11, 11)
    ]
    assert step["totals"]["cost_usd_per_year"] == pytest.approx(10560.0)
    assert step["totals"]["peak_facility_power_w"] == pytest.approx(825.0)
    assert step["fleet"][0]["utilization_at_peak"] == pytest.approx(10500 / 11000)
    assert all(row["cached"] for row in doc["characterisation"])


def test_the_table_names_the_mix_and_the_totals(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke("plan", plan, "--cache", cache, "--no-verify")
    assert_ok(result)
    text = out(result)
    assert "mtia-like-gen2" in text and "11" in text
    assert "825 W" in text and "of 1 kW budget" in text


def test_an_infeasible_budget_names_itself_and_the_budget_needed(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke(
        "plan",
        plan,
        "--cache",
        cache,
        "--no-verify",
        "-q",
        "--set",
        "facility.power_budget_w=500 W",
    )
    assert result.exit_code == 1
    lines = err(result).strip().splitlines()
    assert len(lines) == 1, lines
    # 10,500 /s at 1.5 x 50 W per 1,000 /s (MTIA-like) needs 11 replicas: 825 W.
    assert "power_budget_w" in lines[0] and "825 W" in lines[0]
    assert "Traceback" not in result.output


def test_a_service_with_no_fitting_chip_names_the_availability_caps(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke(
        "plan",
        plan,
        "--cache",
        cache,
        "--no-verify",
        "-q",
        "--set",
        "candidates.mtia.max_chips=5",
        "--set",
        "candidates.gpu.max_chips=1",
    )
    assert result.exit_code == 1
    assert "max_chips" in err(result)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("  pue: 1.5", "  pue: 1.5\n  pu: 2", "facility.pu", "unknown field"),
        ("power_budget_w: 1 kW", "power_budget_w: 1 kJ", "facility.power_budget_w", "watts"),
        ("chip: gpu-like-gen2-hbm", "chip: gpu-like-gen9", "candidates.gpu.chip", "no chip"),
        ("      web: [{}]", "      wbe: [{}]", "candidates.gpu.serves.wbe", "unknown service"),
        (
            "      web: [{}]",
            "      web: [{continuous_batching: {}}]",
            "candidates.gpu.serves.web.0.continuous_batching",
            "for LLM",
        ),
        ("    peak_rate_per_s: 10500 /s", "", "services.web.peak_rate_per_s", "required"),
        ("    sla: {latency_s: 20 ms}\n", "", "services.web", "needs an sla"),
    ],
)
def test_bad_plans_fail_with_one_located_line(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    assert old in PLAN
    path = tmp_path / "bad.yaml"
    path.write_text(PLAN.replace(old, new), encoding="utf-8")
    result = invoke("plan", path, "--cache", tmp_path / "cache", "-q")
    assert result.exit_code == 1, result.output
    lines = err(result).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}:")
    assert f": {field}: " in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache").exists()  # nothing characterised


def test_a_bad_set_is_a_located_error(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke("plan", plan, "--cache", cache, "-q", "--set", "objective=speed")
    assert result.exit_code == 1
    assert "objective" in err(result) and "--set" in err(result)


def test_plan_refuses_to_write_over_its_plan(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    before = plan.read_text(encoding="utf-8")
    result = invoke("plan", plan, "--cache", cache, "--no-verify", "--json", plan)
    assert result.exit_code == 1
    assert "would write over" in err(result)
    assert plan.read_text(encoding="utf-8") == before


def test_json_to_a_file_and_the_slice_to_verify(tmp_path: Path) -> None:
    from accelsim.planner import fleet
    from accelsim.planner.optimise import optimise
    from accelsim.planner.verify import slices

    plan, cache = toy(tmp_path)
    target = tmp_path / "out" / "plan.json"
    assert_ok(invoke("plan", plan, "--cache", cache, "--no-verify", "-q", "--json", target))
    assert json.loads(target.read_text(encoding="utf-8"))["plan"] == "toy"
    # The slice: 11 replicas, at most 4 in the slice: N = 11 / 4, round(11 / N) = 4
    # replicas carrying 10,500 x 4 / 11 /s, each at the plan's load per replica.
    resolved = load_plan(str(plan))
    results = {e.key: Cache(cache).get(e.key) for e in entries(resolved)}
    solution = optimise(fleet.problem(resolved, fleet.options(resolved, results)))  # type: ignore[arg-type]
    (piece,) = slices(resolved, solution)
    (option,) = piece.options
    assert option.replicas == 4
    assert option.rate_per_s == pytest.approx(10500 * 4 / 11)
    assert option.planned_w == pytest.approx(4 * 50.0)
    pool = piece.scenario["pools"][option.workload]
    assert pool["count"] == 4 and pool["batching"] == {"max_batch_items": 512, "max_wait_s": 0.001}


def test_schema_plan_is_json_schema(tmp_path: Path) -> None:
    result = invoke("schema", "plan")
    assert_ok(result)
    doc = json.loads(out(result))
    plan = doc["definitions"]["Plan"]
    assert {"services", "candidates", "facility", "objective"} <= set(plan["properties"])
