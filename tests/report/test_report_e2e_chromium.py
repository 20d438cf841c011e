"""End to end: reports rendered by headless Chromium, checked from the DOM after the page's
scripts ran: every chart drew (its SVG, one trace group per trace, its axis titles and
legend), and the page recorded no JavaScript error. No pixel comparison.

Skips, with the reason, only where no Chromium is installed (.ci/run installs it)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from reportkit import (
    NO_CHROMIUM,
    SHORT,
    SHORT_LLM,
    assert_ok,
    chromium,
    dump_dom,
    figures,
    invoke,
    js_errors,
    write_study,
)

BROWSER = chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason=NO_CHROMIUM)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    assert_ok(invoke("run", *SHORT, "-q", "--report", folder / "ranking.html"))
    assert_ok(invoke("run", "llm-chat-gpu", *SHORT_LLM, "-q", "--report", folder / "llm.html"))
    write_study(folder / "study", [3000.0, 9000.0, 20000.0])
    assert_ok(invoke("report", folder / "study", "-q", "-o", folder / "study.html"))
    return {p.stem: p for p in folder.glob("*.html")}


def _text(svg: str, cls: str) -> list[str]:
    return [
        html.unescape(re.sub(r"<[^>]+>", "", t))
        for t in re.findall(rf'<text class="{cls}"[^>]*>(.*?)</text>', svg, re.S)
    ]


def check_page(page: Path, expected_charts: int) -> None:
    assert BROWSER is not None
    dom = dump_dom(BROWSER, page)
    assert js_errors(dom) == "", js_errors(dom)
    charts = figures(dom)
    assert len(charts) == expected_charts
    assert f'data-charts-drawn="{expected_charts}"' in dom
    for attrs, body in charts:
        name = attrs["id"]
        assert attrs["data-status"] == "drawn", name
        assert 'class="plot js-plotly-plot"' in body, name
        assert body.count('class="main-svg"') >= 2, name
        spec = json.loads(
            re.search(r'<script type="application/json"[^>]*>(.*?)</script>', body, re.S).group(1)
        )
        traces = re.findall(r'<g class="trace scatter[^"]*"', body)
        assert len(traces) == int(attrs["data-traces"]) == len(spec["data"]), name
        # every trace left a mark: a line path or marker points
        assert body.count('class="js-line"') + body.count('class="point"') >= len(traces), name
        layout = spec["layout"]
        assert _text(body, "xtitle") == [layout["xaxis"]["title"]["text"]], name
        assert _text(body, "ytitle") == [layout["yaxis"]["title"]["text"]], name
        assert _text(body, "legendtext") == [t["name"] for t in spec["data"]], name
        assert _text(body, "gtitle") == [layout["title"]["text"]], name


def test_ranking_run_report_draws_every_chart(pages: dict[str, Path]) -> None:
    check_page(pages["ranking"], 8)  # 2 CDFs, 2 rooflines, 4 timelines


def test_llm_run_report_draws_every_chart(pages: dict[str, Path]) -> None:
    check_page(pages["llm"], 7)  # CDF, roofline, 5 timelines (with batch and KV use)


def test_study_report_draws_every_chart(pages: dict[str, Path]) -> None:
    check_page(pages["study"], 6)  # 2 throughput-latency, 2 Pareto, 2 rooflines


def test_the_check_catches_a_broken_chart_and_a_missing_library(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    """The same check fails on a page whose chart cannot draw: it is not a check that
    cannot fail."""
    assert BROWSER is not None
    page = pages["ranking"].read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(
        page.replace('id="chart-spec-1">{', 'id="chart-spec-1">{oops', 1), encoding="utf-8"
    )
    dom = dump_dom(BROWSER, broken)
    statuses = [attrs["data-status"] for attrs, _ in figures(dom)]
    assert statuses.count("failed") == 1 and statuses.count("drawn") == 7
    assert "chart chart-cdf-feed_gpu: SyntaxError" in js_errors(dom)
    with pytest.raises(AssertionError):
        check_page(broken, 8)

    from plotly.offline import get_plotlyjs

    bare = tmp_path / "bare.html"
    bare.write_text(page.replace(get_plotlyjs(), ""), encoding="utf-8")
    dom = dump_dom(BROWSER, bare)
    assert "Plotly is not defined" in js_errors(dom)
    assert {attrs["data-status"] for attrs, _ in figures(dom)} == {"failed"}
