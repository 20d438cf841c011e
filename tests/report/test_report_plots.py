"""The charts of a report as data: what each one draws, from which numbers, with which units."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from reportkit import SHORT, SHORT_LLM, write_study

from accelsim.commands.report import simulate_with_samples
from accelsim.config.loader import load_scenario
from accelsim.report import plots
from accelsim.report.html import Report, result_report, study_report


def _overrides(short: tuple[str, ...]) -> list[str]:
    return [v for i, v in enumerate(short) if i % 2]


@pytest.fixture(scope="module")
def ranking_run() -> tuple[dict[str, Any], Any, Any]:
    resolved = load_scenario(None, _overrides(SHORT))
    doc, samples = simulate_with_samples(resolved)
    return doc, samples, resolved


@pytest.fixture(scope="module")
def llm_run() -> tuple[dict[str, Any], Any, Any]:
    resolved = load_scenario("llm-chat-gpu", _overrides(SHORT_LLM))
    doc, samples = simulate_with_samples(resolved)
    return doc, samples, resolved


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    write_study(folder, [4000.0, 12000.0, 30000.0])
    return folder


def all_reports(ranking_run: Any, llm_run: Any, study: Path) -> list[Report]:
    out = []
    for doc, samples, resolved in (ranking_run, llm_run):
        out.append(result_report(doc, samples=samples, resolved=resolved))
        out.append(result_report(doc))
    out.append(study_report(study))
    return out


_UNIT = re.compile(r"\((?:[^()]*(?:%|ms|s|W|count|items|sequences|FLOP/B|FLOP/s|/J|/s)[^()]*)\)")


def test_every_chart_names_its_axes_with_units_and_draws_something(
    ranking_run: Any, llm_run: Any, study: Path
) -> None:
    seen = set()
    for report in all_reports(ranking_run, llm_run, study):
        for chart in report.charts():
            seen.add(chart.id.split("-")[0])
            for label in (chart.x_label, chart.y_label):
                assert _UNIT.search(label), (chart.id, label)
            assert chart.title and chart.subtitle, chart.id
            drawn = chart.drawn_series()
            assert drawn, chart.id
            for s in drawn:
                assert len(s.x) == len(s.y) and s.name, (chart.id, s.name)
                assert all(math.isfinite(v) for v in [*s.x, *s.y]), (chart.id, s.name)
                if chart.x_log:
                    assert min(s.x) > 0, (chart.id, s.name)
                if chart.y_log:
                    assert min(s.y) > 0, (chart.id, s.name)
    assert seen == {"cdf", "roofline", "timeline", "throughput", "pareto"}


def test_plotly_accepts_every_figure(ranking_run: Any, llm_run: Any, study: Path) -> None:
    go = pytest.importorskip("plotly.graph_objects")
    for report in all_reports(ranking_run, llm_run, study):
        for chart in report.charts():
            figure = plots.plotly_figure(chart)
            go.Figure(figure)  # validates every property name and value; raises if one is wrong
            assert figure["layout"]["xaxis"]["title"]["text"] == chart.x_label
            assert figure["layout"]["yaxis"]["title"]["text"] == chart.y_label
            assert len(figure["data"]) == len(chart.drawn_series()) + len(chart.refs)


def test_the_cdf_from_every_request_passes_through_the_documents_percentiles(
    ranking_run: Any, llm_run: Any
) -> None:
    for doc, samples, _ in (ranking_run, llm_run):
        for name, w in doc["workloads"].items():
            for key in samples[name]:
                points = samples[name][key]
                assert len(points) == plots.CDF_QUANTILES + 1
                values = [v for v, _ in points]
                assert values == sorted(values)
                assert points[0][1] == 0 and points[-1][1] == 1
                by_share = dict((p, v) for v, p in points)
                # The 100th and 198th of 200 quantiles are exactly p50 and p99.
                assert by_share[0.5] == pytest.approx(w[key]["p50"], rel=1e-12)
                assert by_share[0.99] == pytest.approx(w[key]["p99"], rel=1e-12)
                assert values[-1] == pytest.approx(w[key]["max"], rel=1e-12)


def test_a_cdf_without_records_is_drawn_from_the_percentiles_and_says_so(
    ranking_run: Any,
) -> None:
    doc, samples, _ = ranking_run
    name, w = next(iter(doc["workloads"].items()))
    exact = plots.latency_cdf_chart(name, w, samples[name])
    rough = plots.latency_cdf_chart(name, w, None)
    assert "percentiles in the result document" in rough.subtitle
    assert "percentiles" not in exact.subtitle and "completed requests" in exact.subtitle
    (line,) = rough.series
    lat = w["latency_s"]
    assert line.x == pytest.approx([1e3 * lat[k] for k in ("p50", "p90", "p99", "max")])
    assert line.y == [50, 90, 99, 100]
    assert any(r.label.startswith("mean ") for r in rough.refs)


def test_every_op_sits_under_the_roof(ranking_run: Any, llm_run: Any) -> None:
    """An op's attained FLOP/s can exceed neither the matrix peak nor its intensity times
    the fastest memory tier's rate: the chart's points obey the roofline they sit on."""
    for doc, samples, resolved in (ranking_run, llm_run):
        report = result_report(doc, samples=samples, resolved=resolved)
        charts = [c for c in report.charts() if c.id.startswith("roofline")]
        assert len(charts) == len(doc["pools"])
        for chart in charts:
            roofs = [s for s in chart.series if "roof" in s.name or "peak" in s.name]
            peak = max(max(s.y) for s in roofs)
            steepest = max((s.y[0] / s.x[0] for s in roofs if "roof" in s.name), default=0.0)
            ops = [s for s in chart.series if s.name.startswith("ops:")]
            assert ops and all(s.x for s in ops), chart.id
            for s in ops:
                for x, y in zip(s.x, s.y, strict=True):
                    assert y <= min(peak, x * steepest) * (1 + 1e-9), (chart.id, x, y)


def test_roofline_of_an_llm_pool_uses_the_runs_mean_prompt_batch_and_context(
    llm_run: Any,
) -> None:
    doc, samples, resolved = llm_run
    report = result_report(doc, samples=samples, resolved=resolved)
    section = next(s for s in report.sections if s.id == "roofline")
    (chart,) = section.charts
    pool = doc["pools"]["gpu"]
    batch = round(pool["mean_batch_sequences"])
    prompt = round(doc["workloads"]["chat"]["mean_prompt_tokens"])
    assert f"prefill of {prompt} tokens" in chart.subtitle
    assert f"decode, {batch} sequences at " in chart.subtitle
    context = round(
        pool["kv_utilization"]["mean"] * pool["kv_capacity_tokens"] / pool["mean_batch_sequences"]
    )
    assert f"at {context} tokens" in chart.subtitle
    text = " ".join(item for item in section.items if isinstance(item, str))
    assert "Decode: " in text and "Reading" in text


def test_timelines_follow_the_document(ranking_run: Any, llm_run: Any) -> None:
    doc = ranking_run[0]
    charts = {c.id: c for c in plots.timeline_charts(doc)}
    assert set(charts) == {
        "timeline-utilization",
        "timeline-in-system",
        "timeline-batch-ranking",
        "timeline-power",
    }
    tl = doc["timeline"]
    util = charts["timeline-utilization"]
    for s, (name, series) in zip(util.series, tl["pools"].items(), strict=True):
        assert s.name.startswith(name)
        assert s.y == pytest.approx([100 * v for v in series["utilization"]])
    power = charts["timeline-power"]
    total = next(s for s in power.series if s.name == "fleet total")
    # The power series integrate back to the pools' energy (the document's own invariant).
    energy = sum(p["energy_j"] for p in doc["pools"].values())
    assert sum(total.y) * tl["bin_s"] == pytest.approx(energy, rel=1e-9)
    llm_ids = {c.id for c in plots.timeline_charts(llm_run[0])}
    assert {"timeline-batch-llm", "timeline-kv"} <= llm_ids


def test_pareto_front() -> None:
    points = [(1.0, 10.0), (2.0, 30.0), (1.5, 5.0), (3.0, 30.0), (4.0, 40.0), (0.5, 1.0)]
    assert plots.pareto_front(points) == [5, 0, 1, 4]
    assert plots.pareto_front([]) == []


def test_study_charts(study: Path) -> None:
    report = study_report(study)
    ids = [c.id for c in report.charts()]
    assert ids[:4] == [
        "throughput-latency-feed_mtia",
        "throughput-latency-feed_gpu",
        "pareto-feed_mtia",
        "pareto-feed_gpu",
    ]
    curve = report.charts()[0]
    # The load is an axis, so each setting of the others is one curve over it (here: one).
    (line,) = curve.series
    assert line.mode == "lines+markers" and len(line.x) == 3 and line.x == sorted(line.x)
    assert sum(1 for i in ids if i.startswith("roofline-")) == 2
    pareto = report.charts()[2]
    front = next(s for s in pareto.series if s.name.startswith("Pareto front"))
    every = next(s for s in pareto.series if s.name == "every run")
    assert len(every.x) == 3  # the failed run is left out
    for x, y in zip(every.x, every.y, strict=True):
        # no run is better than a front point on both axes
        assert not any(fx > x and fy < y for fx, fy in zip(front.x, front.y, strict=True))


def test_static_png_and_svg(tmp_path: Path, ranking_run: Any) -> None:
    pytest.importorskip("matplotlib")
    from accelsim.report.html import write_static

    doc, samples, resolved = ranking_run
    report = result_report(doc, samples=samples, resolved=resolved)
    pngs = write_static(report, tmp_path / "png", "png")
    assert [p.name.split("-", 1)[1] for p in pngs] == [f"{c.id}.png" for c in report.charts()]
    for path in pngs:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    latency = type(report)(report.title, report.subtitle, report.sections[1:2])
    svgs = write_static(latency, tmp_path / "svg", "svg")
    assert len(svgs) == len(doc["workloads"])
    for svg in svgs:
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text
