"""The charts of a report as data: what each one draws, from which numbers, with which units."""

from __future__ import annotations

import json
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
            labels = [chart.y_label] if chart.categories else [chart.x_label, chart.y_label]
            for label in labels:
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
    assert seen == {"perfw", "cdf", "tail", "roofline", "timeline", "throughput", "pareto"}


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
            assert set(samples[name]) == {k for k, _ in plots.kind_of(w).cdf_series}
            for key in samples[name]:
                points = samples[name][key]
                values = [v for v, _ in points]
                shares = [p for _, p in points]
                assert values == sorted(values) and shares == sorted(set(shares))
                assert shares[0] == 0 and shares[-1] == 1
                # 201 even shares, then ten a decade beyond 90% up to 1 - 1/n for the tail
                assert {k / 200 for k in range(201)} <= {round(p, 12) for p in shares}
                if key != "tpot_s":  # TPOT counts only requests of two tokens or more
                    n = w["completed"]
                    last = 1 - 10 ** -(math.floor(10 * math.log10(n) + 1e-9) / 10)
                    assert max(p for p in shares if p < 1) == pytest.approx(
                        max(last, 199 / 200), rel=1e-9
                    )
                by_share = dict((round(p, 12), v) for v, p in points)
                assert by_share[0.5] == pytest.approx(w[key]["p50"], rel=1e-12)
                assert by_share[0.99] == pytest.approx(w[key]["p99"], rel=1e-12)
                assert values[-1] == pytest.approx(w[key]["max"], rel=1e-12)


def test_a_cdf_without_records_is_drawn_from_the_percentiles_and_says_so(
    ranking_run: Any,
) -> None:
    doc, samples, _ = ranking_run
    exact = {c.id: c for c in plots.latency_charts(doc, samples)}
    rough = {c.id: c for c in plots.latency_charts(doc, None)}
    assert list(exact) == list(rough) == ["cdf-latency", "tail-latency"]
    assert "percentiles in the result document" in rough["cdf-latency"].subtitle
    assert "completed requests of the measured window" in exact["cdf-latency"].subtitle
    for name, w in doc["workloads"].items():
        lat = w["latency_s"]
        (line,) = [s for s in rough["cdf-latency"].series if s.name.startswith(name + " (")]
        assert line.x == pytest.approx([1e3 * lat[k] for k in ("p50", "p90", "p99", "max")])
        assert line.y == [50, 90, 99, 100]
        (tail,) = [s for s in rough["tail-latency"].series if s.name.startswith(name + " (")]
        assert tail.y == pytest.approx([50, 10, 1])  # the max (nobody slower) is off a log axis


def test_cdfs_overlay_every_workload_on_one_log_axis_with_marks_and_targets(
    ranking_run: Any, llm_run: Any
) -> None:
    """One chart per latency series with every workload's curve; each curve's p50 and p99
    are dots on it; each SLA target is a star on the chart of the series it bounds (TTFT
    and TPOT for an LLM, never its end-to-end latency)."""
    doc, samples, _ = ranking_run
    cdf = plots.latency_charts(doc, samples)[0]
    assert cdf.x_log and cdf.id == "cdf-latency"
    for name, w in doc["workloads"].items():
        (dots,) = [s for s in cdf.series if s.name == f"{name} p50, p99"]
        assert dots.x == pytest.approx([1e3 * w["latency_s"]["p50"], 1e3 * w["latency_s"]["p99"]])
        assert dots.y == [50, 99] and not dots.legend
    # both workloads share their 20 ms p99 target: one star, named for both
    (star,) = [s for s in cdf.series if s.symbol == "star"]
    assert star.name == "feed_mtia, feed_gpu: p99 target 20 ms"
    assert (star.x, star.y) == ([20.0], [99.0])

    doc, samples, _ = llm_run
    charts = {c.id: c for c in plots.latency_charts(doc, samples)}
    assert list(charts) == [
        *("cdf-latency", "cdf-ttft", "cdf-tpot"),
        *("tail-latency", "tail-ttft", "tail-tpot"),
    ]
    sla = doc["workloads"]["chat"]["sla"]
    assert not [s for s in charts["cdf-latency"].series if s.symbol == "star"]
    for key in ("ttft", "tpot"):
        (star,) = [s for s in charts[f"cdf-{key}"].series if s.symbol == "star"]
        assert star.x == [pytest.approx(1e3 * sla[f"{key}_s"])] and star.y == [99.0]
        (star,) = [s for s in charts[f"tail-{key}"].series if s.symbol == "star"]
        assert star.y == [pytest.approx(1.0)]  # p99: 1% may be slower
    tail = charts["tail-latency"]
    assert tail.x_log and tail.y_log
    (curve,) = [s for s in tail.series if s.legend]
    completed = doc["workloads"]["chat"]["completed"]
    last = 10 ** -(math.floor(10 * math.log10(completed) + 1e-9) / 10)
    assert min(curve.y) == pytest.approx(100 * min(last, 1 / 200))


def test_perf_per_watt_bars_give_each_pool_and_the_fleet(ranking_run: Any) -> None:
    doc = ranking_run[0]
    (chart,) = plots.perf_per_watt_charts(doc)
    assert chart.categories == ["mtia (mtia-like-gen2)", "gpu (gpu-like-gen2-hbm)", "fleet"]
    heights = [s.y[0] for s in chart.series]
    expected = [doc["pools"][p]["queries_per_j"] for p in ("mtia", "gpu")]
    assert heights == [*expected, doc["totals"]["queries_per_j"]]
    # the fleet's figure lies between its pools' (it is their energy-weighted mean)
    assert min(expected) < heights[2] < max(expected)


def test_every_op_sits_under_the_roof_its_reading_names() -> None:
    """Each op is placed at its FLOPs per byte of the tier that bounds it, so it sits under
    that tier's roof; embedding_bags (bound by DRAM) placed by the bytes of every tier sat
    above the DRAM roof."""
    from accelsim.config.loader import load_chip, load_model
    from accelsim.report.explain import explain

    for chip_name, model_name, batch in (
        ("mtia-like-gen2", "dlrm-dcn-large", 128),
        ("mtia-like-gen2", "dlrm-embedding-heavy", 256),
        ("gpu-like-gen2-hbm", "llm-dense-8b", 32),
    ):
        chip, model = load_chip(chip_name), load_model(model_name)
        doc = explain(model, chip, batch)
        frame = plots.roofline_frame(chip, str(doc["dtype"]))
        chart = plots.roofline_chart(doc, frame, "r")
        ops = [s for s in chart.series if s.name.startswith("ops:")]
        steps = plots.kind_of(doc).explain_steps(doc)
        for series, step in zip(ops, steps, strict=True):
            placed = [op for op in step.ops if plots.placing_tier(op) and op["flops"] > 0]
            assert len(placed) == len(series.x)
            for op, x, y in zip(placed, series.x, series.y, strict=True):
                tier = plots.placing_tier(op)
                assert tier == (op["bound"] if op["bound"] in op["bytes_by_tier"] else tier)
                attained = op["flops"] / op["time_s"]
                assert x == pytest.approx(op["flops"] / op["bytes_by_tier"][tier])
                assert y * 1e12 == pytest.approx(attained)  # TFLOP/s
                roof = min(frame.matrix_flops_per_s, x * frame.tier_bytes_per_s[tier])
                assert attained <= roof * (1 + 1e-9), (chip_name, op["name"], tier)
        if model_name == "dlrm-embedding-heavy":
            (bags,) = [op for op in doc["ops"] if op["name"] == "embedding_bags"]
            assert bags["bound"] == "dram"
            dram = frame.tier_bytes_per_s["dram"]
            # where the old chart put it: above the DRAM roof its reading names
            assert bags["flops"] / bags["time_s"] > bags["arithmetic_intensity"] * dram


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
    window = (doc["window_s"]["start"], doc["window_s"]["end"])
    for chart in charts.values():  # one x range for the whole stack, so the axes line up
        assert chart.stacked and chart.x_range == pytest.approx(window)
    util = charts["timeline-utilization"]
    for s, (name, series) in zip(util.series, tl["pools"].items(), strict=True):
        assert s.name.startswith(name)
        assert s.y == pytest.approx([100 * v for v in series["utilization"]])
    power = charts["timeline-power"]
    # Power per chip, times the chips, integrates back to the pools' energy.
    energy = sum(
        sum(s.y) * doc["pools"][name]["chips"] * tl["bin_s"]
        for s, name in zip(power.series, tl["pools"], strict=True)
    )
    assert energy == pytest.approx(sum(p["energy_j"] for p in doc["pools"].values()), rel=1e-9)
    # each chip's TDP (no cap below it in this scenario) is a line
    assert sorted(r.value for r in power.refs) == sorted(
        p["tdp_w"] / p["chips"] for p in doc["pools"].values()
    )
    assert all(r.label.endswith(" TDP " + r.label.rsplit(" ", 2)[-2] + " W") for r in power.refs)

    doc = llm_run[0]
    charts = {c.id: c for c in plots.timeline_charts(doc)}
    # an LLM replica is busy whenever a sequence is in flight: its load is its occupancy
    assert "timeline-utilization" not in charts
    assert {"timeline-batch-llm", "timeline-occupancy"} <= set(charts)
    occupancy = charts["timeline-occupancy"]
    slots = doc["config"]["pools"]["gpu"]["continuous_batching"]["max_batch_sequences"]
    batch = next(s for s in occupancy.series if s.name.endswith("batch slots"))
    kv = next(s for s in occupancy.series if s.name.endswith("KV cache"))
    series = doc["timeline"]["pools"]["gpu"]
    assert batch.y == pytest.approx(
        [100 * v / slots for v in series["mean_batch"] if v is not None]
    )
    assert kv.y == pytest.approx([100 * v for v in series["kv_utilization"] if v is not None])


def test_a_power_cap_below_tdp_is_a_line_of_its_own() -> None:
    resolved = load_scenario(
        "perf-per-watt-capped", ["simulation.duration_s=0.5", "simulation.warmup_s=0.1"]
    )
    doc, _ = simulate_with_samples(resolved)
    power = next(c for c in plots.timeline_charts(doc) if c.id == "timeline-power")
    caps = {r.value for r in power.refs if " cap " in r.label}
    expected = {
        p["power_cap_w"]
        for p in doc["pools"].values()
        if p["power_cap_w"] < p["tdp_w"] / p["chips"]
    }
    assert expected and caps == expected


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
    # feed_mtia's perf/W is its own pool's, not the fleet's
    rows = [json.loads(line) for line in (study / "runs.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    assert sorted(every.y) == sorted(r["metrics"]["pools.mtia.queries_per_j"] for r in ok)


def test_axes_that_cannot_affect_a_workload_are_left_out() -> None:
    serves = {"a_pool": ["a", "b"], "c_pool": ["c"]}
    axes = [
        "workloads.a.traffic.rate_per_s",
        "workloads.b.traffic.rate_per_s",  # shares a pool with a
        "workloads.c.traffic.rate_per_s",
        "pools.a_pool.count",
        "pools.c_pool.count",
        "simulation.seed",
    ]
    assert plots.axes_affecting(axes, "a", serves) == [axes[0], axes[1], axes[3], axes[5]]
    assert plots.axes_affecting(axes, "c", serves) == [axes[2], axes[4], axes[5]]
    assert plots.axes_affecting(axes, "a", None) == axes
    assert plots.axes_affecting(axes[4:5], "a", serves) == []


def test_a_study_without_load_axis_draws_no_curve_and_no_pareto_of_untouched_workloads(
    tmp_path: Path,
) -> None:
    """Sweeping only the GPU pool's size: no throughput-latency curves (there is no load to
    run along), and no Pareto chart for feed_mtia, which that pool does not serve."""
    folder = tmp_path / "sizes"
    rows = write_study(folder, [4000.0, 4000.0])
    for i, row in enumerate(rows):
        row["axes"] = {"pools.gpu.count": 2 + i}
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((folder / "study.json").read_text())
    manifest["axes"] = ["pools.gpu.count"]
    (folder / "study.json").write_text(json.dumps(manifest))
    report = study_report(folder)
    ids = [c.id for c in report.charts()]
    assert not [i for i in ids if i.startswith("throughput-latency")]
    assert "pareto-feed_gpu" in ids and "pareto-feed_mtia" not in ids
    sections = {s.id: s for s in report.sections}
    assert "no load axis" in sections["throughput"].intro
    text = " ".join(i for i in sections["pareto"].items if isinstance(i, str))
    assert "No Pareto chart for feed_mtia" in text


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
    assert len(svgs) == 2  # the CDF and its tail
    for svg in svgs:
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_the_summary_keeps_the_per_mode_rows_the_terminal_shows(llm_run: Any) -> None:
    from accelsim.report.kinds import kind_of

    doc, samples, resolved = llm_run
    w = doc["workloads"]["chat"]
    assert set(w["by_mode"]) == {"instant", "thinking"}
    summary = result_report(doc, samples=samples, resolved=resolved).sections[0].items[0]
    assert isinstance(summary, str)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", summary)
    for mode, m in [("all", w), *w["by_mode"].items()]:
        i = cells.index(mode)
        assert cells[i + 1 : i + 3] == [str(m["offered"]), str(m["completed"])], mode
    terminal = kind_of(w).terminal_rows(doc, "chat", w)
    assert [row[1] for row in terminal] == ["all", "instant", "thinking"]
    # an LLM pool's busy share is explained, and its occupancy drawn instead
    assert "Utilisation of gpu is busy time" in summary
