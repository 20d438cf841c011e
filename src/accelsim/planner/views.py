"""Tables of a fleet plan's result document, for the terminal."""

from __future__ import annotations

from typing import Any

from accelsim.units import format_quantity


def _w(value: float | None) -> str:
    return "" if value is None else format_quantity(value, "W", 4)


def _usd(value: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"${value / scale:,.3g}{unit}"
    return f"${value:,.0f}"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:,.4g} /s"


def plan_view(doc: dict[str, Any]) -> Any:
    """Every table of a plan: characterisation, each step's mix, verification, and the
    roadmap comparison when there are several steps."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(f"{doc['plan']}  (objective: {doc['objective']})", style="bold")]

    ch = Table(title="one replica of each option (characterised)", title_justify="left")
    for col in ("service", "chip", "config", "chips", "capacity", "power there", "idle", ""):
        ch.add_column(col, justify="left" if col in ("service", "chip", "") else "right")
    for r in doc["characterisation"]:
        ch.add_row(
            r["service"],
            r["chip"],
            f"#{r['config']}",
            str(r["chips_per_replica"]),
            _rate(r["capacity_per_s"]) if r["capacity_per_s"] else "misses SLA",
            _w(r["power_at_capacity_w"]),
            _w(r["idle_w"]),
            "cached" if r["cached"] else "",
        )
    parts.append(ch)

    budget = doc["facility"].get("power_budget_w")
    for step in doc["steps"]:
        if step["status"] != "ok":
            parts.append(Text(f"{step['name']}: {step['message']}", style="red"))
            continue
        t = Table(title=f"{step['name']}: the fleet", title_justify="left")
        columns = (
            "service",
            "chip",
            "config",
            "replicas",
            "chips",
            "util at peak",
            "power at peak",
            "MWh/day",
            "cost/year",
            "tCO2/year",
        )
        for col in columns:
            t.add_column(col, justify="left" if col in ("service", "chip") else "right")
        for r in step["fleet"]:
            t.add_row(
                r["service"],
                r["chip"],
                f"#{r['config']}",
                f"{r['replicas']:,}",
                f"{r['chips']:,}",
                f"{r['utilization_at_peak']:.1%}",
                _w(r["power_at_peak_hour_w"]),
                f"{r['energy_mwh_per_day']:,.4g}",
                _usd(r["cost_usd_per_year"]),
                f"{r['carbon_t_per_year']:,.4g}",
            )
        parts.append(t)
        tot = step["totals"]
        of = f" of {_w(budget)} budget" if budget else ""
        parts.append(
            Text(
                f"total: {tot['chips']:,} chips; facility power {_w(tot['peak_facility_power_w'])} "
                f"at hour {tot['peak_hour']}{of}; {tot['energy_mwh_per_day']:,.4g} MWh/day; "
                f"{_usd(tot['cost_usd_per_year'])}/year ({_usd(tot['capex_usd_per_year'])} chips, "
                f"{_usd(tot['energy_usd_per_year'])} energy); "
                f"{tot['carbon_t_per_year']:,.4g} tCO2/year; solved in {step['solve_s']:.2f} s"
            )
        )
        if step.get("verification"):
            parts.append(verification_view(step["name"], step["verification"]))
    if len(doc["steps"]) > 1:
        parts.append(roadmap_view(doc))
    return Group(*parts)


def verification_view(name: str, rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    v = Table(title=f"{name}: a slice simulated at the peak hour", title_justify="left")
    for col in ("service", "hour", "slice", "replicas", "SLA", "attained", "planned", "simulated"):
        v.add_column(col, justify="left" if col == "service" else "right")
    v.add_column("error", justify="right")
    for r in rows:
        v.add_row(
            r["service"],
            str(r["hour"]),
            f"1/{1 / r['slice_fraction']:,.4g}",
            str(r["replicas"]),
            "met" if r["sla_met"] else "MISSED",
            "" if r["sla_attainment"] is None else f"{r['sla_attainment']:.2%}",
            _w(r["planned_power_w"]),
            _w(r["simulated_power_w"]),
            f"{r['power_error']:+.1%}",
        )
    return v


def roadmap_view(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title="roadmap: the same traffic, step by step", title_justify="left")
    for col in ("step", "chips", "facility power", "MWh/day", "cost/year", "tCO2/year", "mix"):
        t.add_column(col, justify="left" if col in ("step", "mix") else "right")
    for step in doc["steps"]:
        if step["status"] != "ok":
            t.add_row(step["name"], "", "", "", "", "", step["message"])
            continue
        tot = step["totals"]
        chips: dict[str, int] = {}
        for r in step["fleet"]:
            chips[r["chip"]] = chips.get(r["chip"], 0) + r["chips"]
        t.add_row(
            step["name"],
            f"{tot['chips']:,}",
            _w(tot["peak_facility_power_w"]),
            f"{tot['energy_mwh_per_day']:,.4g}",
            _usd(tot["cost_usd_per_year"]),
            f"{tot['carbon_t_per_year']:,.4g}",
            ", ".join(f"{chip} {n:,}" for chip, n in chips.items()),
        )
    return t
