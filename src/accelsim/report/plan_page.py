"""The HTML page of a fleet plan (``accelsim plan --report``): the mix of each step,
power by hour and by service, the cost and carbon breakdown, the verification slice,
and the roadmap comparison when the plan has several steps. It reads only the plan's
result document."""

from __future__ import annotations

from typing import Any

from accelsim.report import plots
from accelsim.report.html import Report, Section
from accelsim.report.markup import esc, num, pct, qty, table


def _usd(value: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"${value / scale:,.3g}{unit}"
    return f"${value:,.0f}"


def _mix_table(step: dict[str, Any]) -> str:
    rows = [
        [
            esc(r["service"]),
            esc(r["chip"]),
            f"#{r['config']}",
            f"{r['replicas']:,}",
            f"{r['chips']:,}",
            pct(r["utilization_at_peak"]),
            qty(r["power_at_peak_hour_w"], "W"),
            num(r["energy_mwh_per_day"]),
            _usd(r["capex_usd_per_year"]),
            _usd(r["energy_usd_per_year"]),
            num(r["carbon_t_per_year"]),
        ]
        for r in step["fleet"]
    ]
    headers = [
        "service",
        "chip",
        "config",
        "replicas",
        "chips",
        "util at peak",
        "power at peak",
        "MWh/day",
        "chips $/year",
        "energy $/year",
        "tCO2/year",
    ]
    return table(headers, rows, 2)


def _totals(step: dict[str, Any], budget: float | None) -> str:
    t = step["totals"]
    of = f" of a {qty(budget, 'W')} budget" if budget else ""
    return (
        f"<p>{t['chips']:,} chips; facility power {qty(t['peak_facility_power_w'], 'W')} at "
        f"hour {t['peak_hour']}{of}; {num(t['energy_mwh_per_day'])} MWh a day; "
        f"{_usd(t['cost_usd_per_year'])} a year ({_usd(t['capex_usd_per_year'])} chips, "
        f"{_usd(t['energy_usd_per_year'])} energy); {num(t['carbon_t_per_year'])} t CO2 a year.</p>"
    )


def _verification_table(rows: list[dict[str, Any]]) -> str:
    out = [
        [
            esc(v["service"]),
            str(v["hour"]),
            f"1/{1 / v['slice_fraction']:,.4g}",
            str(v["replicas"]),
            '<span class="ok">met</span>' if v["sla_met"] else '<span class="bad">missed</span>',
            pct(v["sla_attainment"]),
            qty(v["planned_power_w"], "W"),
            qty(v["simulated_power_w"], "W"),
            f"{100 * v['power_error']:+.1f}%",
        ]
        for v in rows
    ]
    headers = ["service", "hour", "slice", "replicas", "SLA", "attained", "planned", "simulated"]
    return table([*headers, "error"], out, 1)


def _power_chart(doc: dict[str, Any], budget: float | None) -> plots.Chart:
    series = [
        plots.Series(
            step["name"],
            list(range(24)),
            [w / 1e6 for w in step["hourly_facility_power_w"]],
            mode="lines+markers",
            color=plots.PALETTE[i % len(plots.PALETTE)],
        )
        for i, step in enumerate(s for s in doc["steps"] if s["status"] == "ok")
    ]
    refs = (
        [] if not budget else [plots.RefLine("y", budget / 1e6, "power budget", "dash", "#c00000")]
    )
    return plots.Chart(
        id="plan-facility-power",
        title="Facility power by hour",
        subtitle="IT power x PUE of the planned fleet at each hour of the day, one line per step",
        x_label="hour of the day",
        y_label="facility power (MW)",
        series=series,
        y_from_zero=True,
        refs=refs,
    )


def _service_power_chart(step: dict[str, Any], services: list[str]) -> plots.Chart:
    """One line per service, in the plan's order (so a service keeps its colour)."""
    by_service: dict[str, list[float]] = {name: [0.0] * 24 for name in services}
    for r in step["fleet"]:
        hourly = by_service[r["service"]]
        for h, w in enumerate(r["hourly_power_w"]):
            hourly[h] += w
    series = [
        plots.Series(
            name,
            list(range(24)),
            [w / 1e6 for w in hourly],
            color=plots.PALETTE[i % len(plots.PALETTE)],
        )
        for i, (name, hourly) in enumerate(by_service.items())
    ]
    return plots.Chart(
        id=f"plan-service-power-{step['name']}",
        title=f"Power by service: {step['name']}",
        subtitle="facility power each service's replicas draw at each hour (parked ones included)",
        x_label="hour of the day",
        y_label="facility power (MW)",
        series=series,
        y_from_zero=True,
    )


def _roadmap_chart(steps: list[dict[str, Any]]) -> plots.Chart:
    ok = [s for s in steps if s["status"] == "ok"]
    return plots.Chart(
        id="plan-roadmap",
        title="Roadmap: cost against facility power",
        subtitle="each point is one step of the roadmap, planned for the same traffic",
        x_label="peak facility power (MW)",
        y_label="cost per year (billion USD)",
        series=[
            plots.Series(
                "steps",
                [s["totals"]["peak_facility_power_w"] / 1e6 for s in ok],
                [s["totals"]["cost_usd_per_year"] / 1e9 for s in ok],
                mode="lines+markers",
                labels=[s["name"] for s in ok],
                color=plots.PALETTE[0],
            )
        ],
    )


def plan_report(doc: dict[str, Any]) -> Report:
    """The report of a plan's result document."""
    budget = doc["facility"].get("power_budget_w")
    steps = doc["steps"]
    sections = []
    for step in steps:
        items: list[Any] = []
        if step["status"] != "ok":
            items.append(f'<p class="bad">{esc(step["message"])}</p>')
        else:
            items += [
                _mix_table(step),
                _totals(step, budget),
                _service_power_chart(step, list(doc["services"])),
            ]
            if step.get("verification"):
                items.append(_verification_table(step["verification"]))
        sections.append(
            Section(
                f"step-{step['name']}",
                f"Mix: {step['name']}" if len(steps) > 1 else "Mix",
                f"Candidates: {', '.join(step['candidates'])}. The verification table (when "
                "present) compares a simulated slice of the fleet at each service's busiest "
                "hour with the plan.",
                items,
            )
        )
    sections.append(
        Section(
            "power",
            "Power by hour",
            "The daily shape of the fleet's facility power against the budget.",
            [_power_chart(doc, budget)],
        )
    )
    if len(steps) > 1:
        rows = [
            [
                esc(s["name"]),
                f"{s['totals']['chips']:,}" if s["status"] == "ok" else "-",
                qty(s["totals"]["peak_facility_power_w"], "W") if s["status"] == "ok" else "-",
                _usd(s["totals"]["cost_usd_per_year"]) if s["status"] == "ok" else "-",
                num(s["totals"]["carbon_t_per_year"]) if s["status"] == "ok" else "-",
                esc(s.get("message", "")),
            ]
            for s in steps
        ]
        sections.append(
            Section(
                "roadmap",
                "Roadmap",
                "The same traffic planned once per step, each with its own candidates.",
                [
                    table(["step", "chips", "facility power", "cost/year", "tCO2/year", ""], rows),
                    _roadmap_chart(steps),
                ],
            )
        )
    characterised = [
        [
            esc(r["service"]),
            esc(r["chip"]),
            f"#{r['config']}",
            str(r["chips_per_replica"]),
            num(r["capacity_per_s"]) + " /s" if r["capacity_per_s"] else "misses its SLA",
            qty(r["power_at_capacity_w"], "W"),
            qty(r["idle_w"], "W"),
        ]
        for r in doc["characterisation"]
    ]
    sections.append(
        Section(
            "replicas",
            "Replicas",
            "One replica of each option, characterised by simulation: its largest rate within "
            "the SLA, its power there, and its idle power.",
            [
                table(
                    ["service", "chip", "config", "chips", "capacity", "power", "idle"],
                    characterised,
                    3,
                )
            ],
        )
    )
    return Report(
        title=f"accelsim fleet plan: {doc['plan']}",
        subtitle=f"objective: {doc['objective']}; every chip profile is hypothetical",
        sections=sections,
    )
