"""The shipped plans: each loads, they share one characterisation, and (slow) each
one's verification slice meets its SLAs with planned and simulated power within 5%."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim.config.fleet_plan import load_plan
from accelsim.config.loader import catalog
from accelsim.planner.characterise import entries
from clirunner import assert_ok, invoke, out

SHIPPED = ("fleet-100mw", "fleet-1gw", "fleet-roadmap")


def test_the_shipped_plans_load_and_share_their_characterisation() -> None:
    assert set(SHIPPED) <= set(catalog("plan"))
    keys = {name: {e.key for e in entries(load_plan(name))} for name in SHIPPED}
    assert keys["fleet-100mw"] <= keys["fleet-1gw"] == keys["fleet-roadmap"]
    roadmap = load_plan("fleet-roadmap").plan.roadmap
    assert roadmap is not None
    generations = [{c for c in step if c.startswith("mtia")} for step in roadmap.values()]
    assert generations == [{"mtia1"}, {"mtia2"}, {"mtia3"}, {"mtia4"}]


def test_every_shipped_chip_in_a_plan_is_hypothetical() -> None:
    for name in SHIPPED:
        for chip in load_plan(name).chips.values():
            assert chip.hypothetical, chip.name


@pytest.mark.slow
def test_each_shipped_plan_verifies(tmp_path: Path) -> None:
    """Characterise from cold (into a temporary cache), solve, and simulate each step's
    slice at the peak hour: every service meets its SLA, and the slice's simulated power
    is within 5% of the plan's."""
    for name in SHIPPED:
        result = invoke("plan", name, "--cache", tmp_path / "cache", "-q", "--json", "-")
        assert_ok(result)
        doc = json.loads(out(result))
        for step in doc["steps"]:
            assert step["status"] == "ok", step
            assert {v["service"] for v in step["verification"]} == set(doc["services"])
            for v in step["verification"]:
                assert v["sla_met"], (name, step["name"], v)
                assert abs(v["power_error"]) < 0.05, (name, step["name"], v)
