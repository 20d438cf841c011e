"""`accelsim plan --report`: the plan's HTML page holds the mix, the power and cost
breakdown and, for a roadmap, the comparison of its steps (the toy plan of plankit,
whose fleets are computed by hand: 11 MTIA-like replicas, 10,560 USD a year; with only
the GPU-like chip, 3 replicas at 8,000 USD each, 24,000 USD a year)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plankit import toy

from clirunner import assert_ok, invoke

pytest.importorskip("plotly")


def test_the_page_shows_the_mix_and_draws_power_by_hour(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    page = tmp_path / "plan.html"
    assert_ok(invoke("plan", plan, "--cache", cache, "--no-verify", "-q", "--report", page))
    text = page.read_text(encoding="utf-8")
    assert "accelsim fleet plan: toy" in text
    assert "mtia-like-gen2" in text and ">11<" in text and "$9.6k" not in text
    assert "$10.6k" in text  # 11 x 960 USD a year of chips, energy free
    charts = re.findall(r'<figure class="chart" id="chart-([^"]+)"', text)
    assert charts == ["plan-service-power-toy", "plan-facility-power"]


def test_a_roadmap_page_compares_its_steps(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    page = tmp_path / "roadmap.html"
    result = invoke(
        "plan",
        plan,
        "--cache",
        cache,
        "--no-verify",
        "-q",
        "--set",
        "roadmap={asic: [mtia], gpus: [gpu]}",
        "--set",
        "facility.power_budget_w=2 kW",
        "--report",
        page,
    )
    assert_ok(result)
    text = page.read_text(encoding="utf-8")
    assert "Mix: asic" in text and "Mix: gpus" in text and "Roadmap" in text
    assert "$10.6k" in text and "$24k" in text
    assert "chart-plan-roadmap" in text


def test_report_refuses_to_write_over_the_plan(tmp_path: Path) -> None:
    plan, cache = toy(tmp_path)
    result = invoke("plan", plan, "--cache", cache, "--no-verify", "-q", "--report", plan)
    assert result.exit_code == 1
    assert "would write over" in result.stderr
