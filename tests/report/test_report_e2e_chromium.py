"""End to end: reports rendered by headless Chromium, checked from the DOM after the page's
scripts ran: every chart of each report kind (ranking, LLM, contemplating, mixed fleet,
study, `explain --report`) drew (its SVG, one trace group per trace, its axis titles and
legend), the page recorded no JavaScript error, the CDFs overlay their workloads on a log
axis with each target on the chart it bounds, and stacked timelines share their plot
area. No pixel comparison.

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


# The charts of each page, in order.
RANKING = [
    *("perfw-queries", "cdf-latency", "tail-latency"),
    *("roofline-mtia-dlrm-dcn-large", "roofline-gpu-dlrm-dcn-large"),
    *("timeline-utilization", "timeline-in-system", "timeline-batch-ranking", "timeline-power"),
]
LLM_LATENCY = [
    *("cdf-latency", "cdf-ttft", "cdf-tpot"),
    *("tail-latency", "tail-ttft", "tail-tpot"),
]
LLM_TIMELINES = ["timeline-occupancy", "timeline-in-system", "timeline-batch-llm", "timeline-power"]
PAGES = {
    "ranking": RANKING,
    "llm": [*LLM_LATENCY, "roofline-gpu-llm-dense-8b", *LLM_TIMELINES],
    "contemplating": [
        *("perfw-output_tokens", *LLM_LATENCY),
        *("roofline-instant-llm-dense-8b", "roofline-contemplating-llm-dense-8b"),
        *LLM_TIMELINES,
    ],
    "mixed": [
        *LLM_LATENCY,
        *("roofline-ranking-dlrm-mlp-heavy", "roofline-llm-llm-dense-8b"),
        *("timeline-utilization", "timeline-occupancy", "timeline-in-system"),
        *("timeline-batch-ranking", "timeline-batch-llm", "timeline-power"),
    ],
    "study": [
        *("throughput-latency-feed_mtia", "throughput-latency-feed_gpu"),
        *("pareto-feed_mtia", "pareto-feed_gpu"),
        *(
            "roofline-mtia-dlrm-dcn-large",
            "roofline-gpu-dlrm-dcn-large",
        ),
    ],
    "explain": ["roofline-mtia-like-gen2-dlrm-embedding-heavy"],
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    assert_ok(invoke("run", *SHORT, "-q", "--report", folder / "ranking.html"))
    assert_ok(invoke("run", "llm-chat-gpu", *SHORT_LLM, "-q", "--report", folder / "llm.html"))
    for scenario, name in (
        ("llm-contemplating", "contemplating"),
        ("mixed-fleet-ranking-and-llm", "mixed"),
    ):
        assert_ok(invoke("run", scenario, *SHORT_LLM, "-q", "--report", folder / f"{name}.html"))
    write_study(folder / "study", [3000.0, 9000.0, 20000.0])
    assert_ok(invoke("report", folder / "study", "-q", "-o", folder / "study.html"))
    explain = ("explain", "--chip", "mtia-like-gen2", "--model", "dlrm-embedding-heavy")
    assert_ok(invoke(*explain, "--report", folder / "explain.html"))
    return {p.stem: p for p in folder.glob("*.html")}


def _text(svg: str, cls: str) -> list[str]:
    return [
        html.unescape(re.sub(r"<[^>]+>", "", t))
        for t in re.findall(rf'<text class="{cls}"[^>]*>(.*?)</text>', svg, re.S)
    ]


_DOMS: dict[Path, str] = {}


def page_dom(page: Path) -> str:
    """The page's DOM after its scripts ran (each page is drawn once per session)."""
    assert BROWSER is not None
    if page not in _DOMS:
        _DOMS[page] = dump_dom(BROWSER, page)
    return _DOMS[page]


def check_page(page: Path, expected: list[str], dom: str | None = None) -> str:
    """Every chart of the page drew, with its traces, titles and legend; the page's DOM."""
    dom = page_dom(page) if dom is None else dom
    assert js_errors(dom) == "", js_errors(dom)
    charts = figures(dom)
    assert [attrs["id"].removeprefix("chart-") for attrs, _ in charts] == expected
    assert f'data-charts-drawn="{len(expected)}"' in dom
    for attrs, body in charts:
        name = attrs["id"]
        assert attrs["data-status"] == "drawn", name
        assert 'class="plot js-plotly-plot"' in body, name
        assert body.count('class="main-svg"') >= 2, name
        spec = json.loads(
            re.search(r'<script type="application/json"[^>]*>(.*?)</script>', body, re.S).group(1)
        )
        traces = re.findall(r'<g class="trace (?:scatter|bars)[^"]*"', body)
        assert len(traces) == int(attrs["data-traces"]) == len(spec["data"]), name
        # every trace left a mark: a line path, marker points or bars
        marks = body.count('class="js-line"') + body.count('class="point"')
        assert marks >= len(traces), name
        layout = spec["layout"]
        assert _text(body, "xtitle") == [layout["xaxis"]["title"]["text"]], name
        assert _text(body, "ytitle") == [layout["yaxis"]["title"]["text"]], name
        named = [t["name"] for t in spec["data"] if t.get("showlegend", True)]
        assert _text(body, "legendtext") == named, name
        assert _text(body, "gtitle") == [layout["title"]["text"]], name
    return dom


def _plot_area(dom: str, chart: str) -> tuple[float, float]:
    """The x offset and width of a drawn chart's plot area (its x axis), in pixels."""
    for attrs, body in figures(dom):
        if attrs["id"] == f"chart-{chart}":
            match = re.search(
                r'<rect class="nsewdrag drag"[^>]*x="([\d.]+)"[^>]*width="([\d.]+)"', body
            )
            assert match, chart
            return float(match.group(1)), float(match.group(2))
    raise AssertionError(f"no chart {chart}")


@pytest.mark.parametrize("page", list(PAGES))
def test_each_report_kind_draws_every_chart(pages: dict[str, Path], page: str) -> None:
    check_page(pages[page], PAGES[page])


def test_cdfs_overlay_the_workloads_with_marks_and_the_target_on_its_curve(
    pages: dict[str, Path],
) -> None:
    """The contemplating page: instant and contemplating requests on one log axis per
    latency series; the TTFT target (a star) on the TTFT chart, not the end-to-end one."""
    dom = page_dom(pages["contemplating"])
    specs = {
        attrs["id"]: json.loads(
            re.search(r'<script type="application/json"[^>]*>(.*?)</script>', body, re.S).group(1)
        )
        for attrs, body in figures(dom)
    }
    for key in ("latency", "ttft", "tpot"):
        for chart in (f"cdf-{key}", f"tail-{key}"):
            spec = specs[f"chart-{chart}"]
            assert spec["layout"]["xaxis"]["type"] == "log", chart
            curves = [t["name"].split(" ")[0] for t in spec["data"] if t["mode"] == "lines"]
            assert curves == ["ask_instant", "ask_contemplating"], chart
        stars = [t for t in specs[f"chart-cdf-{key}"]["data"] if "star" in str(t.get("marker"))]
        assert len(stars) == (0 if key == "latency" else 1), key
    assert specs["chart-tail-ttft"]["layout"]["yaxis"]["type"] == "log"


def test_stacked_timelines_share_their_x_axis(pages: dict[str, Path]) -> None:
    """Drawn, the timelines' plot areas start and end at the same pixels, whatever their
    legends, so that a moment lines up down the stack."""
    for page in ("mixed", "contemplating"):
        dom = page_dom(pages[page])
        areas = {_plot_area(dom, c) for c in PAGES[page] if c.startswith("timeline-")}
        assert len(areas) == 1, (page, areas)


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
    assert statuses.count("failed") == 1 and statuses.count("drawn") == len(RANKING) - 1
    assert "chart chart-cdf-latency: SyntaxError" in js_errors(dom)
    with pytest.raises(AssertionError):
        check_page(broken, RANKING, dom)

    from plotly.offline import get_plotlyjs

    bare = tmp_path / "bare.html"
    bare.write_text(page.replace(get_plotlyjs(), ""), encoding="utf-8")
    dom = dump_dom(BROWSER, bare)
    assert "Plotly is not defined" in js_errors(dom)
    assert {attrs["data-status"] for attrs, _ in figures(dom)} == {"failed"}
