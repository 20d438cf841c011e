"""The report of a run or a sweep: its charts and tables, as one self-contained HTML file
or as static images.

* :func:`result_report` reads a result document (and, when the run's records are at
  hand, every request's latency via :func:`request_latencies`);
* :func:`study_report` reads a sweep's folder (``runs.jsonl``, or any ``*.jsonl`` of rows
  with flat dotted metric keys);
* :func:`render_html` writes the page: plotly.js is inlined (no network is needed to open
  it), each chart's figure is embedded as JSON and drawn on load, and the page records
  any JavaScript error into ``<pre id="js-errors">``;
* :func:`write_static` draws the same charts with matplotlib into PNG or SVG files.

Rooflines come from the explain document of each pool's chip and model, at the step its
workload kind takes from the run (see :mod:`accelsim.report.kinds`: ranking at the pool's
``max_batch_items``; LLM prefill at the mean prompt and decode at the mean batch and
context the run saw), read by :func:`accelsim.report.lesson.lesson`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from accelsim import __version__
from accelsim.errors import AccelsimError
from accelsim.report import plots
from accelsim.report.kinds import REPORT_KINDS, kind_of, per_work_unit, pool_kind
from accelsim.report.kinds.base import ReportKind
from accelsim.report.markup import esc, grouped_table, num, ops_table, pct, qty, rate, table
from accelsim.report.plots import Chart
from accelsim.report.terminal import CI_NOTE
from accelsim.report.wording import finite, sig

Samples = dict[str, dict[str, list[tuple[float, float]]]]  # workload -> key -> CDF points
MAX_ROOFLINES = 6


@dataclass
class Roofline:
    """One pool's chip and model on a roofline, with its reading."""

    title: str
    explain: dict[str, Any]
    chart: Chart


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    items: list[str | Chart] = field(default_factory=list)  # HTML (escaped) and charts, in order

    @property
    def charts(self) -> list[Chart]:
        return [item for item in self.items if isinstance(item, Chart)]


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]


# ---------------------------------------------------------------------- data from a run


def request_latencies(records: Any, quantiles: int = plots.CDF_QUANTILES) -> Samples:
    """CDF points of each workload's latency series (for LLMs also time to first token) over
    the requests that arrived in the measured window and completed, from a run's
    :class:`accelsim.engine.records.RunRecords`."""
    from accelsim.metrics.summary import METRIC_KINDS

    out: Samples = {}
    for kind, fleet in records.fleets.items():
        samples = METRIC_KINDS[kind].samples(fleet, records.warmup_s, records.end_s)
        for name, series in samples.items():
            out[name] = {
                key: plots.cdf_points(cast("Sequence[float]", values), quantiles)
                for key, values in series.items()
            }
    return out


def _roofline_cases(
    config: dict[str, Any],
    pools_doc: dict[str, Any],
    workloads_doc: dict[str, Any],
    chip_of: Callable[[str], Any],
    model_of: Callable[[str], Any],
    context: str,
) -> tuple[list[Roofline], list[str]]:
    """The explain document and roofline chart of each pool's (chip, model)."""
    from accelsim.report.explain import explain

    out: list[Roofline] = []
    notes: list[str] = []
    for pool_name, pool in config.get("pools", {}).items():
        seen: set[str] = set()
        for workload in pool.get("serves", []):
            wl = config["workloads"][workload]
            if wl["model"] in seen:
                continue
            seen.add(wl["model"])
            try:
                chip = chip_of(pool_name)
                model = model_of(workload)
                p, w = pools_doc.get(pool_name, {}), workloads_doc.get(workload, {})
                cap = p.get("power_cap_w")
                cap = cap if finite(cap) and cap > chip.power.idle_w else None
                setting, what = kind_of(wl).roofline_setting(pool, p, w)
                doc = explain(
                    model,
                    chip,
                    setting.batch,
                    context_tokens=setting.context_tokens,
                    prompt_tokens=setting.prompt_tokens,
                    chips_per_replica=setting.chips_per_replica,
                    power_cap_w=cap,
                    pipeline=setting.pipeline,
                    expert=setting.expert,
                    micro_batches=setting.micro_batches,
                    expert_imbalance=setting.expert_imbalance,
                )
            except (AccelsimError, ValueError, KeyError, TypeError) as exc:
                notes.append(f"roofline of pool {pool_name} ({wl['model']}) left out: {exc}")
                continue
            if len(out) == MAX_ROOFLINES:
                notes.append(f"only the first {MAX_ROOFLINES} rooflines are drawn")
                return out, notes
            title = f"pool {pool_name}: {doc['model']} on {doc['chip']}, {what}"
            chart = plots.roofline_chart(
                doc,
                plots.roofline_frame(chip, str(doc["dtype"])),
                f"roofline-{pool_name}-{doc['model']}",
                f"pool {pool_name}" + (f", {context}" if context else ""),
            )
            out.append(Roofline(title, doc, chart))
    return out, notes


# ---------------------------------------------------------------------- HTML pieces


def _summary_tables(doc: dict[str, Any]) -> str:
    parts = []
    for kind in REPORT_KINDS.values():
        rows = [
            row
            for n, w in doc["workloads"].items()
            if kind_of(w) is kind
            for row in kind.html_rows(doc, n, w)
        ]
        if rows:
            numeric = 1 + kind.html_columns.index("offered")
            parts.append(table([f"{kind.label} workload", *kind.html_columns], rows, numeric))
    if parts:
        parts.append(f'<p class="note">{esc(CI_NOTE)}</p>')
    rows = []
    for n, p in doc["pools"].items():
        kind = pool_kind(doc, n)
        rows.append(
            [
                esc(n),
                esc(p["chip"]),
                kind.pool_chips(p),
                pct(p["utilization"]),
                f"{num(p[kind.batch_key], '.1f')} {kind.batch_unit_short}",
                pct(p.get("mean_clock_ratio")),
                qty(p["avg_power_w"], "W"),
                qty(p["peak_power_w"], "W"),
                qty(p["energy_j"], "J"),
                f"{num(p.get(kind.per_joule_key), '.3g')} {kind.per_joule_column}",
                num(p.get("cost_per_hour_usd"), ".3g"),
            ]
        )
    headers = ["pool", "chip", "chips", "utilisation", "mean batch", "mean clock"]
    headers += ["avg power", "peak power", "energy", "perf/W", "$/hour"]
    parts.append(table(headers, rows, numeric_from=2))
    slotted = [n for n in doc["pools"] if not pool_kind(doc, n).busy_is_load]
    if slotted:
        parts.append(
            f'<p class="note">Utilisation of {esc(", ".join(slotted))} is busy time: a replica '
            "iterates whenever one sequence is in flight, so it reads near 100% at any load"
            + (
                ". The occupancy timeline below shows the share of batch slots and KV cache "
                "in use.</p>"
                if (doc.get("timeline") or {}).get("t_s")
                else ".</p>"
            )
        )
    t = doc["totals"]
    per_joule = [
        f"{t[k.per_joule_key]:.3g} {k.per_joule_unit}"
        for k in per_work_unit()
        if finite(t.get(k.per_joule_key))
    ]
    parts.append(
        f"<p>Fleet: {qty(t['avg_power_w'], 'W')} average, {qty(t['peak_power_w'], 'W')} peak, "
        f"{qty(t['energy_j'], 'J')} over the window"
        + (f"; {esc(', '.join(per_joule))}" if per_joule else "")
        + f". Facility (PUE {num(t['pue'], 'g')}): {qty(t['facility_avg_power_w'], 'W')} "
        "average.</p>"
    )
    return "".join(parts)


def _roofline_html(case: Roofline) -> str:
    """The reading of one roofline, then its ops table (folded)."""
    doc = case.explain
    reading = "".join(f"<li>{esc(line)}</li>" for line in doc.get("lesson", []))
    parts = [f'<div class="lesson"><strong>Reading</strong><ul>{reading}</ul></div>']
    tables = [
        (f"<h4>{step.phase}</h4>" if step.phase else "") + ops_table(step.ops)
        for step in kind_of(doc).explain_steps(doc)
    ]
    ridges = ", ".join(
        f"{esc(t)} {sig(v, 3)}" for t, v in doc["ridge_point_flops_per_byte"].items() if finite(v)
    )
    tables.append(f"<p>Ridge points ({esc(doc['dtype'])} FLOP per byte streamed): {ridges}.</p>")
    parts.append(
        "<details><summary>op by op (as in <code>accelsim explain</code>)</summary>"
        f'<div class="scroll">{"".join(tables)}</div></details>'
    )
    return "".join(parts)


# ---------------------------------------------------------------------- building reports


def result_report(
    doc: dict[str, Any],
    *,
    samples: Samples | None = None,
    resolved: Any = None,
    base_dir: Path | None = None,
) -> Report:
    """The report of one run. ``samples`` (from :func:`request_latencies`) draw full latency
    CDFs; ``resolved`` (the run's :class:`~accelsim.config.loader.ResolvedScenario`) gives the
    chips and models for the rooflines, which are otherwise loaded by the names in the
    document's ``config`` (paths relative to ``base_dir``)."""
    from accelsim.config.loader import load_chip, load_model

    for key in ("workloads", "pools", "totals", "window_s", "config"):
        if key not in doc:
            raise AccelsimError(f"not an accelsim result document (no {key!r} key)")
    config = doc["config"]
    where = base_dir or Path.cwd()

    def chip_of(pool: str) -> Any:
        if resolved is not None:
            return resolved.chips[pool]
        return load_chip(config["pools"][pool]["chip"], where)

    def model_of(workload: str) -> Any:
        if resolved is not None:
            return resolved.models[workload]
        return load_model(config["workloads"][workload]["model"], where)

    window = doc["window_s"]
    sections = [
        Section(
            "summary",
            "Summary",
            f"Seed {doc['seed']}; {window['duration']:g} s measured after {window['start']:g} s "
            "of warm-up. Latencies are over the requests that arrived in the measured window.",
            [_summary_tables(doc), *plots.perf_per_watt_charts(doc)],
        )
    ]
    sections.append(
        Section(
            "latency",
            "Latency distributions",
            "Each CDF gives, for a latency on the x axis, the share of completed requests that "
            "finished within it, every workload on the same axis; dots mark p50 and p99, a star "
            "the SLA target that bounds that latency (a curve passing left of its star meets "
            "it). Each tail chart turns the top of its CDF over: the share of requests slower "
            "than each latency, on log axes, so that p99 and p99.9 stand apart.",
            items=list(plots.latency_charts(doc, samples))
            or ['<p class="note">No request completed in the measured window.</p>'],
        )
    )
    rooflines, notes = _roofline_cases(
        config, doc["pools"], doc["workloads"], chip_of, model_of, "from this run"
    )
    sections.append(_roofline_section(rooflines, notes))
    timelines = plots.timeline_charts(doc)
    if timelines:
        sections.append(
            Section(
                "timelines",
                "Over time",
                "Sampled over the measured window: how busy each pool was, how many requests "
                "waited or ran, how large its batches were, and what it drew.",
                items=list(timelines),
            )
        )
    return Report(
        title=f"accelsim report: {doc['scenario']}",
        subtitle=(
            f"result document schema {doc.get('schema_version')}, accelsim "
            f"{doc.get('accelsim_version')}; every chip profile is hypothetical"
        ),
        sections=sections,
        warnings=list(doc.get("warnings", [])),
    )


def _roofline_section(
    rooflines: list[Roofline],
    notes: list[str],
    placed: str = "Each chart places the ops of one step of the workload on the chip of its pool",
) -> Section:
    items: list[str | Chart] = []
    for case in rooflines:
        items += [f"<h3>{esc(case.title)}</h3>", case.chart, _roofline_html(case)]
    items += [f'<p class="note">{esc(n)}</p>' for n in notes]
    return Section(
        "roofline",
        "Rooflines",
        "A roofline plots what an op attains (FLOP/s) against its arithmetic intensity (FLOPs "
        "per byte it moves). Below a tier's ridge point an op waits on that memory; above it, "
        f"on the matrix engines. {placed}; the reading below each says what bounds them and "
        "what would move them.",
        items,
    )


def explain_report(doc: dict[str, Any], chip: Any) -> Report:
    """The report of one explain document: its roofline on ``chip`` (the
    :class:`~accelsim.config.schema.Chip` it was built for), the reading and the ops."""
    chips = doc.get("chips_per_replica", 1)
    steps = ", ".join(step.label for step in kind_of(doc).explain_steps(doc))
    case = Roofline(
        f"{doc['model']} on {doc['chip']}: {steps}",
        doc,
        plots.roofline_chart(
            doc,
            plots.roofline_frame(chip, str(doc["dtype"])),
            f"roofline-{doc['chip']}-{doc['model']}",
            "accelsim explain" + (f", {chips}-way tensor parallel" if chips > 1 else ""),
        ),
    )
    return Report(
        title=f"accelsim explain: {doc['model']} on {doc['chip']}",
        subtitle=f"{steps}; every chip profile is hypothetical",
        sections=[
            _roofline_section([case], [], "The chart places the ops of each step on the chip")
        ],
    )


def read_study_rows(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The rows of a sweep folder (failed runs dropped) and its manifest, if any.

    A folder written by ``accelsim sweep`` is read with :mod:`accelsim.study.store`; any
    other folder, from every ``*.jsonl`` file in it (one JSON object per line, with
    ``metrics`` holding flat dotted keys)."""
    if not folder.is_dir():
        raise AccelsimError(f"{folder}: not a folder")
    manifest: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    if (folder / "runs.jsonl").is_file() or (folder / "study.json").is_file():
        from accelsim.study.store import read_store

        contents = read_store(folder)
        manifest = contents.manifest
        rows = contents.ordered()
    else:
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise AccelsimError(f"{folder}: no runs.jsonl or other *.jsonl rows here")
        for path in files:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise AccelsimError(f"{path}:{number}: not a JSON object") from None
                if isinstance(row, dict):
                    rows.append(row)
    good = []
    for row in rows:
        if row.get("status", "ok") != "ok" or not isinstance(row.get("metrics"), dict):
            continue
        row.setdefault("axes", {})
        good.append(row)
    if not good:
        raise AccelsimError(f"{folder}: no successful runs to report on")
    return good, manifest


def study_report(folder: Path) -> Report:
    """The report of a sweep: its runs, throughput against latency, the perf/W Pareto front,
    and the rooflines of the chips and models it swept."""
    rows, manifest = read_study_rows(folder)
    axes: list[str] = list((manifest or {}).get("axes") or [])
    for row in rows:
        for key in row["axes"]:
            if key not in axes:
                axes.append(key)
    workloads = plots.study_workloads(rows)
    sections = [
        Section("runs", "Runs", _study_intro(rows, manifest), [_study_table(rows, axes, workloads)])
    ]
    load = plots.load_axes(axes)
    if load:
        curves: list[str | Chart] = [
            plots.throughput_latency_chart(rows, axes, w) for w in workloads
        ]
        intro = (
            "Each point is one run, each curve one setting of the other axes along the load "
            f"({', '.join(load)}): it bends up where the fleet nears its capacity, as queues "
            "grow and the tail latency with them."
        )
    else:
        curves = []
        intro = (
            "This study has no load axis (no axis sets a workload's traffic), so there is no "
            "throughput-latency curve to draw: each setting runs at one offered load. Sweep "
            "a traffic rate (e.g. workloads.NAME.traffic.rate_per_s) to draw one."
        )
    sections.append(Section("throughput", "Throughput vs latency", intro, items=curves))
    serves = _serves(manifest)
    fronts: list[str | Chart] = []
    for w, kind in workloads.items():
        front = plots.pareto_chart(rows, w, kind, axes, serves)
        if front is None:
            fronts.append(
                f'<p class="note">No Pareto chart for {esc(w)}: no axis of this study can '
                "affect it (neither its settings nor those of the pools that serve it are "
                "swept), so its runs differ by the seed's noise only.</p>"
            )
        else:
            fronts.append(front)
    sections.append(
        Section(
            "pareto",
            "Perf/W vs latency",
            "For each workload, over the axes that can affect it: the perf/W of the pools "
            "that serve it against its p99 latency. The Pareto front joins the points that "
            "no other point beats on both: every other one gives up one without gaining the "
            "other.",
            items=fronts,
        )
    )
    rooflines, notes = _study_rooflines(rows, axes, manifest)
    sections.append(_roofline_section(rooflines, notes))
    name = (manifest or {}).get("study") or folder.name
    return Report(
        title=f"accelsim study report: {name}",
        subtitle=f"{len(rows)} successful runs from {folder}; every chip profile is hypothetical",
        sections=sections,
    )


def _serves(manifest: dict[str, Any] | None) -> dict[str, list[str]] | None:
    """Pool -> the workloads it serves, in the study's base scenario (None if it does not
    load: every axis then counts for every workload)."""
    base = (manifest or {}).get("scenario")
    if not base:
        return None
    from accelsim.config.loader import load_scenario

    try:
        scenario = load_scenario(base).scenario
    except AccelsimError:
        return None
    return {name: list(pool.serves) for name, pool in scenario.pools.items()}


def _study_intro(rows: list[dict[str, Any]], manifest: dict[str, Any] | None) -> str:
    where = (manifest or {}).get("scenario")
    return f"{len(rows)} runs" + (f" of the base scenario {where}" if where else "") + "."


def _study_table(
    rows: list[dict[str, Any]], axes: list[str], workloads: dict[str, ReportKind]
) -> str:
    """One row per run: its axes and seed, then each workload's metrics under the
    workload's name, then the fleet's; the page scrolls it sideways if it is still wider."""
    Column = tuple[str, str, Callable[[Any], str]]
    groups: list[tuple[str, list[Column]]] = []
    for w, kind in workloads.items():
        cols: list[Column] = [
            ("req/s", f"workloads.{w}.throughput_per_s", rate),
            ("p99", f"workloads.{w}.latency_s.p99", lambda v: qty(v, "s")),
            ("SLA", f"workloads.{w}.sla_attainment", pct),
        ]
        cols += [
            (label, f"workloads.{w}.{metric}", cell) for label, metric, cell in kind.study_columns
        ]
        groups.append((w, cols))
    fleet: list[Column] = [("avg power", "totals.avg_power_w", lambda v: qty(v, "W"))]
    fleet += [
        (k.per_joule_column, f"totals.{k.per_joule_key}", lambda v: num(v, ".3g"))
        for k in per_work_unit()
    ]
    groups.append(("fleet", fleet))
    groups = [
        (name, [c for c in cols if any(finite(r["metrics"].get(c[1])) for r in rows)])
        for name, cols in groups
    ]
    metric_cols = [c for _, cols in groups for c in cols]
    body = []
    for row in rows:
        cells = [esc(row["axes"].get(a, "-")) for a in axes] + [esc(row.get("seed", "-"))]
        cells += [fmt(row["metrics"].get(key)) for _, key, fmt in metric_cols]
        body.append(cells)
    heads = [a.rsplit(".", 1)[-1] if a.count(".") else a for a in axes] + ["seed"]
    return grouped_table(
        [("", heads), *((name, [c[0] for c in cols]) for name, cols in groups)],
        body,
        numeric_from=len(axes) + 1,
    )


_ROOFLINE_AXES = (".chip", ".model", ".max_batch_items", ".chips_per_replica", ".power_cap_w")


def _unflatten(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[parts[-1]] = value
    return out


def _study_rooflines(
    rows: list[dict[str, Any]], axes: list[str], manifest: dict[str, Any] | None
) -> tuple[list[Roofline], list[str]]:
    """Rooflines of each distinct chip x model x batch the study swept, on its base scenario."""
    base = (manifest or {}).get("scenario")
    if not base:
        return [], ["no study.json naming the base scenario here, so no rooflines"]
    from accelsim.config.loader import load_scenario

    keys = [a for a in axes if a.endswith(_ROOFLINE_AXES)]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(json.dumps(row["axes"].get(k)) for k in keys), []).append(row)
    out: list[Roofline] = []
    notes: list[str] = []
    for values, group in groups.items():
        overrides = [f"{k}={json.loads(v)}" for k, v in zip(keys, values, strict=True)]
        try:
            resolved = load_scenario(base, overrides)
        except AccelsimError as exc:
            notes.append(f"rooflines left out: cannot load the base scenario {base}: {exc}")
            return out, notes
        mean = _unflatten(_mean_metrics(group))
        setting = ", ".join(o.rsplit(".", 1)[-1] for o in overrides) or "base scenario"
        cases, more = _roofline_cases(
            resolved.scenario.model_dump(mode="json"),
            mean.get("pools", {}),
            mean.get("workloads", {}),
            resolved.chips.__getitem__,
            resolved.models.__getitem__,
            setting,
        )
        notes += more
        for case in cases:
            case.title += f" ({setting})"
            if values:
                case.chart.id += "-" + "-".join(str(json.loads(v)).replace(" ", "") for v in values)
        out += cases
        if len(out) >= MAX_ROOFLINES:
            if len(groups) > 1:
                notes.append(f"only the first {MAX_ROOFLINES} rooflines are drawn")
            return out[:MAX_ROOFLINES], notes
    return out, notes


def _mean_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sums: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row["metrics"].items():
            if finite(value):
                sums.setdefault(key, []).append(float(value))
    return {k: sum(v) / len(v) for k, v in sums.items()}


# ---------------------------------------------------------------------- rendering


_CSS = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1250px;
       padding: 0 24px 48px; color: #1a1a1a; line-height: 1.45; }
header { border-bottom: 2px solid #0072B2; margin-bottom: 12px; }
h1 { margin: 20px 0 4px; font-size: 26px; } h2 { margin-top: 36px; border-bottom: 1px solid #ccc; }
h3 { margin-top: 28px; } h4 { margin: 12px 0 4px; }
.sub { color: #555; margin: 0 0 12px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 9px; text-align: left; white-space: nowrap; }
th { background: #f3f6f9; white-space: normal; vertical-align: bottom; }
th.group { text-align: center; border-bottom: 2px solid #0072B2; background: #e8eef4; }
th.group:empty { background: none; border-bottom: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #00734d; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.warn { background: #fff6d6; border-left: 4px solid #e6a700; padding: 6px 10px; margin: 6px 0; }
.note { color: #555; font-size: 13px; }
.lesson { background: #f2f8fc; border-left: 4px solid #0072B2; padding: 8px 14px; margin: 10px 0; }
.lesson ul { margin: 6px 0 0; padding-left: 20px; }
figure.chart { margin: 18px 0 26px; border: 1px solid #e2e2e2; padding: 8px; }
figure.chart figcaption { font-size: 13px; color: #444; padding: 4px 6px; }
.scroll { overflow-x: auto; max-width: 100%; }
#js-errors { color: #b00020; white-space: pre-wrap; }
"""

# Recorded before anything else runs, so that a failure anywhere on the page shows up in
# <pre id="js-errors"> (which the end-to-end test reads from the DOM).
_ERROR_HOOK = """
window.__accelsimErrors = [];
window.__accelsimRecord = function (message) {
  window.__accelsimErrors.push(String(message));
  var el = document.getElementById("js-errors");
  if (el) { el.textContent = window.__accelsimErrors.join("\\n"); el.hidden = false; }
};
window.onerror = function (message, source, line) {
  window.__accelsimRecord("error: " + message + (source ? " (" + source + ":" + line + ")" : ""));
};
window.addEventListener("unhandledrejection", function (event) {
  var r = event.reason;
  window.__accelsimRecord("unhandled rejection: " + (r && r.message ? r.message : r));
});
"""

_DRAW = """
(function () {
  var record = window.__accelsimRecord;
  var box = document.getElementById("js-errors");
  if (window.__accelsimErrors.length) {  // errors from before the box existed
    box.textContent = window.__accelsimErrors.join("\\n");
    box.hidden = false;
  }
  var figures = document.querySelectorAll("figure.chart");
  var drawn = 0;
  document.body.setAttribute("data-charts", String(figures.length));
  figures.forEach(function (figure) {
    var holder = figure.querySelector(".plot");
    try {
      var spec = JSON.parse(document.getElementById(figure.getAttribute("data-spec")).textContent);
      Plotly.newPlot(holder, spec.data, spec.layout,
                     {responsive: true, displaylogo: false}).then(function () {
        figure.setAttribute("data-status", "drawn");
        drawn += 1;
        document.body.setAttribute("data-charts-drawn", String(drawn));
      }, function (error) {
        figure.setAttribute("data-status", "failed");
        record("chart " + figure.id + ": " + error);
      });
    } catch (error) {
      figure.setAttribute("data-status", "failed");
      record("chart " + figure.id + ": " + error);
    }
  });
})();
"""


def _json_script(value: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: Report, plotly_js: str) -> str:
    """The whole page; ``plotly_js`` is the plotly.js bundle, inlined as is."""
    figures: list[str] = []
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in report.sections)
    body: list[str] = []
    for section in report.sections:
        body.append(f'<section id="{esc(section.id)}"><h2>{esc(section.title)}</h2>')
        if section.intro:
            body.append(f'<p class="sub">{esc(section.intro)}</p>')
        for item in section.items:
            if isinstance(item, str):
                body.append(f'<div class="scroll">{item}</div>')
                continue
            chart = item
            index = len(figures)
            figure = plots.plotly_figure(chart)
            spec_id = f"chart-spec-{index}"
            figures.append(spec_id)
            notes = "".join(f"<br>{esc(n)}" for n in chart.notes)
            body.append(
                f'<figure class="chart" id="chart-{esc(chart.id)}" data-spec="{spec_id}" '
                f'data-traces="{len(figure["data"])}" data-status="pending">'
                f'<div class="plot"></div>'
                f"<figcaption>{esc(chart.subtitle)}{notes}</figcaption>"
                f'<script type="application/json" id="{spec_id}">{_json_script(figure)}</script>'
                "</figure>"
            )
        body.append("</section>")
    warnings = "".join(f'<div class="warn">warning: {esc(w)}</div>' for w in report.warnings)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(report.title)}</title>"
        f"<style>{_CSS}</style>"
        f"<script>{_ERROR_HOOK}</script>"
        # plotly.js inline, as plotly's own include_plotlyjs=True writes it: no network needed.
        f'<script type="text/javascript">{plotly_js}</script>'
        "</head><body>"
        f'<header><h1>{esc(report.title)}</h1><p class="sub">{esc(report.subtitle)}</p>'
        f"<nav>{nav}</nav></header>{warnings}{''.join(body)}"
        f'<footer class="note"><p>Written by accelsim {esc(__version__)}. '
        "Charts drawn with plotly.js, inlined in this file.</p>"
        '<pre id="js-errors" hidden></pre></footer>'
        f"<script>{_DRAW}</script>"
        "</body></html>\n"
    )


def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package (the ``report`` extra)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_static(
    report: Report,
    folder: Path,
    fmt: Literal["png", "svg"],
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Each chart of the report as ``folder/NN-ID.png`` (or ``.svg``), drawn with matplotlib."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AccelsimError(f"{folder}: cannot write: {exc.strerror or exc}") from None
    charts = report.charts()
    paths = []
    for i, chart in enumerate(charts, 1):
        path = folder / f"{i:02d}-{_slug(chart.id)}.{fmt}"
        plots.save_static(chart, path, fmt)
        paths.append(path)
        if progress is not None:
            progress(i, len(charts))
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
