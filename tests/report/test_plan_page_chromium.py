"""End to end: a fleet plan's page (a shipped roadmap plan, with an injected
characterisation so no simulation runs) rendered by headless Chromium: every chart drew
and the page recorded no JavaScript error."""

from __future__ import annotations

from pathlib import Path

import pytest
from reportkit import NO_CHROMIUM, assert_ok, chromium, dump_dom, figures, invoke, js_errors

from accelsim.config.fleet_plan import load_plan
from accelsim.planner.characterise import Cache, entries

BROWSER = chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason=NO_CHROMIUM)


def test_a_roadmap_plan_page_draws_every_chart(tmp_path: Path) -> None:
    assert BROWSER is not None
    cache = Cache(tmp_path / "cache")
    for entry in entries(load_plan("fleet-roadmap")):
        cache.put(
            {
                "key": entry.key,
                "capacity_per_s": 1.0 if entry.service in ("assistant", "answers") else 1e4,
                "power_at_capacity_w": 100.0 * entry.chips_per_replica,
                "floor_w": 50.0 * entry.chips_per_replica,
                "slope_w_per_rps": 1e-3,
            }
        )
    page = tmp_path / "roadmap.html"
    result = invoke(
        "plan", "fleet-roadmap", "--cache", cache.folder, "--no-verify", "-q", "--report", page
    )
    assert_ok(result)
    dom = dump_dom(BROWSER, page)
    assert js_errors(dom) == "", js_errors(dom)
    charts = figures(dom)
    # Power by service for each of the 4 steps, power by hour, the roadmap.
    assert len(charts) == 6
    assert 'data-charts-drawn="6"' in dom
    assert all(attrs["data-status"] == "drawn" for attrs, _ in charts)
