"""accelsim calibrate: a bounded least-squares fit of a chip's efficiencies to measured rows.

The fit is checked where its answer is known: rows "measured" on a chip whose
parameters we set are fitted from a base chip with other values, and the fit
must find the set values again."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
from trustkit import assert_ok, error_lines, invoke

from accelsim.config.loader import load_chip
from accelsim.errors import AccelsimError
from accelsim.validation.calibrate import PARAMETERS, calibrate, value_of, with_values
from accelsim.validation.fidelity import (
    Measurement,
    accelsim_s,
    load_measurements,
    measurements_path,
)

REFERENCE = Path(__file__).resolve().parents[2] / "validation" / "reference"
A100 = REFERENCE / "a100-sxm.yaml"
TRUE = {
    "compute.gemm_efficiency": 0.6,
    "compute.memory_overlap": 0.3,
    "compute.kernel_overhead_s": 8e-6,
}


def a100_rows() -> list[Measurement]:
    return [m for m in load_measurements(measurements_path()) if m.chip.name == "a100-sxm"]


def synthetic(rows: list[Measurement]) -> list[Measurement]:
    """The rows, re-measured on the A100 reference with the TRUE parameter values."""
    truth = with_values(rows[0].chip, TRUE)
    return [
        dataclasses.replace(m, measured_s=accelsim_s(dataclasses.replace(m, chip=truth)))
        for m in rows
    ]


def test_the_fit_recovers_parameters_it_is_given() -> None:
    rows = synthetic(a100_rows())
    base = rows[0].chip
    assert value_of(base, PARAMETERS["compute.gemm_efficiency"]) == 0.75
    result = calibrate(rows, base, tuple(TRUE))
    for name, value in TRUE.items():
        assert result.fitted[name] == pytest.approx(value, rel=1e-3), name
    assert result.summary(True).worst_abs_error < 1e-4
    assert result.summary(False).worst_abs_error > 0.05  # the base chip was off


def test_calibrating_the_reference_a100_improves_its_held_out_rows() -> None:
    result = calibrate(a100_rows(), load_chip(str(A100)))
    assert result.summary(True, "fit").rows >= 5
    assert result.summary(True, "holdout").rows >= 5
    # The target after calibration: held-out median within 10%.
    assert result.summary(True, "holdout").median_abs_error <= 0.10
    for name, value in result.fitted.items():
        p = PARAMETERS[name]
        assert p.low <= value <= p.high


def test_too_few_rows_and_unknown_parameters_are_clear_errors() -> None:
    rows = a100_rows()[:2]
    with pytest.raises(AccelsimError, match="fewer than the 5 parameters"):
        calibrate([dataclasses.replace(m, split="fit") for m in rows], rows[0].chip)
    with pytest.raises(AccelsimError, match="unknown parameter"):
        calibrate(a100_rows(), rows[0].chip, ("compute.warp_speed",))


def test_the_command_writes_a_profile_that_extends_the_base_and_reproduces_the_fit(
    tmp_path: Path,
) -> None:
    out = tmp_path / "fitted.yaml"
    result = invoke(
        "calibrate",
        str(measurements_path()),
        "--chip",
        str(A100),
        "--param",
        "compute.gemm_efficiency",
        "--param",
        "compute.kernel_overhead_s",
        "-o",
        str(out),
    )
    assert_ok(result)
    assert "holdout" in result.stdout and "compute.gemm_efficiency" in result.stdout
    text = out.read_text()
    assert f"extends: {A100}" in text
    assert len(text.splitlines()) <= 6
    fitted = load_chip(str(out))
    assert fitted.name == "a100-sxm-calibrated"
    again = calibrate(a100_rows(), load_chip(str(A100)), ("compute.gemm_efficiency",))
    assert fitted.compute.gemm_efficiency != load_chip(str(A100)).compute.gemm_efficiency
    assert 0.2 <= again.fitted["compute.gemm_efficiency"] <= 1.0


def test_the_command_never_writes_over_its_measurements(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_bytes(measurements_path().read_bytes())
    before = rows.read_bytes()
    result = invoke("calibrate", str(rows), "--chip", str(A100), "-o", str(rows))
    assert result.exit_code == 1
    assert "would write over" in error_lines(result)[0]
    assert rows.read_bytes() == before


def test_a_bad_row_is_a_file_and_line_error(tmp_path: Path) -> None:
    text = measurements_path().read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(text) if line.startswith("id,"))
    header = text[first].split(",")
    row = next(csv.reader([text[first + 1]]))
    row[header.index("measured_s")] = "fast"
    text[first + 1] = ",".join(f'"{cell}"' for cell in row)
    bad = tmp_path / "bad.csv"
    # The model and chip files are named relative to the measurements file.
    for ref in REFERENCE.glob("*.yaml"):
        (tmp_path / ref.name).write_bytes(ref.read_bytes())
    bad.write_text("\n".join(text) + "\n", encoding="utf-8")
    result = invoke("calibrate", str(bad), "--chip", str(A100))
    assert result.exit_code == 1
    assert error_lines(result)[0].startswith(f"error: {bad}:{first + 2}:")
