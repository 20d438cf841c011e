"""The plan file's demand shapes and hourly facility values, computed by hand."""

from __future__ import annotations

import math

import pytest

from accelsim.config.fleet_plan import HOURS, PlanFacility, RankingService

BASE = {
    "model": "dlrm-mlp-heavy",
    "items_per_query": {"kind": "fixed", "value": 10},
    "sla": {"latency_s": "20 ms"},
    "peak_rate_per_s": "1000 /s",
}


def test_a_diurnal_day_peaks_at_its_hour_and_dips_by_its_amplitude() -> None:
    service = RankingService.model_validate(
        {**BASE, "diurnal": {"amplitude": 0.5, "peak_hour": 20}}
    )
    rates = service.rates_per_s()
    assert rates[20] == pytest.approx(1000.0)
    assert rates[8] == pytest.approx(500.0)  # twelve hours away: 1 - amplitude
    assert rates[14] == pytest.approx(1000 * (1 - 0.5 * (1 - math.cos(math.pi / 2)) / 2))


def test_hourly_multipliers_are_relative_to_the_busiest_hour() -> None:
    hourly = [1.0] * HOURS
    hourly[3] = 4.0
    service = RankingService.model_validate({**BASE, "hourly": hourly})
    assert service.rates_per_s()[3] == 1000.0
    assert service.rates_per_s()[0] == 250.0


def test_no_shape_is_a_flat_day_and_units_are_read() -> None:
    service = RankingService.model_validate(BASE)
    assert service.rates_per_s() == (1000.0,) * HOURS
    assert "traffic" not in service.workload() and "peak_rate_per_s" not in service.workload()
    facility = PlanFacility.model_validate({"power_budget_w": "1.5 GW", "energy_usd_per_mwh": 60})
    assert facility.power_budget_w == 1.5e9
    assert facility.hourly("energy_usd_per_mwh") == (60.0,) * HOURS


@pytest.mark.parametrize(
    "extra",
    [
        {"hourly": [1.0] * 23},
        {"hourly": [0.0] * HOURS},
        {"hourly": [1.0] * HOURS, "diurnal": {}},
        {"traffic": {"kind": "poisson", "rate_per_s": 5}},
    ],
)
def test_bad_shapes_are_refused(extra: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RankingService.model_validate({**BASE, **extra})
