"""Calibrate a chip's efficiency and overhead parameters to measured rows.

A chip profile written from a datasheet leaves its achievable efficiencies at
generic defaults. Given measured rows of the fidelity table's shape (see
:mod:`accelsim.validation.fidelity`), :func:`calibrate` fits a few of them by
bounded least squares (scipy's ``least_squares``, trust-region reflective) on
the rows marked ``fit`` that use the chip, and reports the error of every row
before and after, so the held-out rows say whether the fit generalises.

The residual of a row is ``log(accelsim / measured)``: a relative error that
weighs a 10 ms and a 400 ms row alike and treats "twice too fast" and "twice
too slow" the same. Parameters are fitted in units scaled to about 1 so that
the solver's steps are balanced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accelsim.config.schema import Chip
from accelsim.errors import AccelsimError
from accelsim.validation.fidelity import (
    Comparison,
    FidelityTable,
    Measurement,
    Summary,
    accelsim_s,
    summarize,
)


@dataclass(frozen=True)
class Parameter:
    """A chip field the fit may move, with its bounds."""

    path: tuple[str, ...]  # field path inside the chip, e.g. ("compute", "gemm_efficiency")
    low: float
    high: float
    scale: float = 1.0  # the fit works in value / scale
    unit: str = ""  # how the written profile spells the value ("us" for seconds)

    @property
    def name(self) -> str:
        return ".".join(self.path)


# What a datasheet does not give, and so what calibration moves by default. The upper
# bounds are physical: no kernel streams DRAM at its full nominal bandwidth (refresh and
# bank conflicts take a few percent), and none keeps the matrix engines busy every cycle.
PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(("compute", "gemm_efficiency"), 0.2, 1.0),
        Parameter(("compute", "attention_efficiency"), 0.1, 0.95),
        Parameter(("compute", "memory_overlap"), 0.0, 1.0),
        Parameter(("compute", "kernel_overhead_s"), 0.0, 50e-6, scale=1e-6, unit="us"),
        Parameter(("memory", "dram", "stream_efficiency"), 0.3, 0.95),
    )
}
DEFAULT_PARAMETERS = tuple(PARAMETERS)


def value_of(chip: Chip, parameter: Parameter) -> float:
    node: Any = chip
    for part in parameter.path:
        node = getattr(node, part)
    return float(node)


def with_values(chip: Chip, values: dict[str, float]) -> Chip:
    """The chip with the named parameters set (validated like a loaded profile)."""
    data = chip.model_dump()
    for name, value in values.items():
        node = data
        *parents, leaf = PARAMETERS[name].path
        for part in parents:
            node = node[part]
        node[leaf] = value
    return Chip.model_validate(data)


@dataclass(frozen=True)
class Calibration:
    """A fit and the error of every row before and after it."""

    chip: Chip  # the base chip
    fitted: dict[str, float]  # parameter name -> fitted value
    initial: dict[str, float]  # parameter name -> the base chip's value
    before: tuple[Comparison, ...]
    after: tuple[Comparison, ...]
    cost_evaluations: int

    def summary(self, after: bool, split: str | None = None) -> Summary:
        rows = self.after if after else self.before
        return summarize([c for c in rows if split is None or c.measurement.split == split])


def _rows_for(measurements: Sequence[Measurement], chip: Chip) -> list[Measurement]:
    return [m for m in measurements if m.chip.name == chip.name]


def _compare(rows: Sequence[Measurement], chip: Chip) -> tuple[Comparison, ...]:
    return tuple(Comparison(m, accelsim_s(dataclasses.replace(m, chip=chip))) for m in rows)


def calibrate(
    measurements: Sequence[Measurement], chip: Chip, parameters: Sequence[str] = DEFAULT_PARAMETERS
) -> Calibration:
    """Fit ``parameters`` of ``chip`` to the ``fit`` rows measured on it (rows whose
    chip has the same name); every row on the chip is compared before and after."""
    from scipy.optimize import least_squares

    unknown = [p for p in parameters if p not in PARAMETERS]
    if unknown:
        raise AccelsimError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}"
        )
    rows = _rows_for(measurements, chip)
    fit_rows = [m for m in rows if m.split == "fit"]
    if len(fit_rows) < len(parameters):
        raise AccelsimError(
            f"{len(fit_rows)} fit row(s) measured on {chip.name}, fewer than the "
            f"{len(parameters)} parameters to fit: add rows or fit fewer parameters (--param)"
        )
    specs = [PARAMETERS[p] for p in parameters]
    initial = {p.name: value_of(chip, p) for p in specs}
    evaluations = 0

    def chip_at(x: Sequence[float]) -> Chip:
        return with_values(
            chip, {p.name: float(v) * p.scale for p, v in zip(specs, x, strict=True)}
        )

    def residuals(x: Sequence[float]) -> list[float]:
        nonlocal evaluations
        evaluations += 1
        at = chip_at(x)
        return [
            math.log(accelsim_s(dataclasses.replace(m, chip=at)) / m.measured_s) for m in fit_rows
        ]

    x0 = [min(max(initial[p.name], p.low), p.high) / p.scale for p in specs]
    result = least_squares(
        residuals,
        x0,
        bounds=([p.low / p.scale for p in specs], [p.high / p.scale for p in specs]),
        method="trf",
        x_scale=1.0,
    )
    # Snap values the solver left a hair inside a bound onto it (they read as 4e-30, not 0).
    x = [
        p.low / p.scale
        if v - p.low / p.scale < 1e-9
        else p.high / p.scale
        if p.high / p.scale - v < 1e-9
        else float(v)
        for p, v in zip(specs, result.x, strict=True)
    ]
    fitted_chip = chip_at(x)
    return Calibration(
        chip=chip,
        fitted={p.name: value_of(fitted_chip, p) for p in specs},
        initial=initial,
        before=_compare(rows, chip),
        after=_compare(rows, fitted_chip),
        cost_evaluations=evaluations,
    )


def calibrated_errors(table: FidelityTable) -> Mapping[str, float]:
    """Each row's error after calibrating its chip on that chip's ``fit`` rows (all the
    default parameters), by row id; rows on a chip with too few fit rows are left out."""
    measurements = [c.measurement for c in table.comparisons]
    chips = {m.chip.name: m.chip for m in measurements}
    errors: dict[str, float] = {}
    for chip in chips.values():
        fit = [m for m in _rows_for(measurements, chip) if m.split == "fit"]
        if len(fit) < len(DEFAULT_PARAMETERS):
            continue
        errors.update((c.measurement.id, c.error) for c in calibrate(measurements, chip).after)
    return errors


def fitted_profile(calibration: Calibration, extends: str, source: str) -> str:
    """A profile that ``extends:`` the base chip with the fitted values (YAML text)."""
    holdout = calibration.summary(True, "holdout")
    fit = calibration.summary(True, "fit")
    lines = [
        f"# Calibrated from {source}: {fit.rows} fit rows; median |error| "
        f"{fit.median_abs_error:.1%} on them, {holdout.median_abs_error:.1%} on "
        f"{holdout.rows} held-out rows.",
        "# Written by accelsim calibrate. Reference data for what-if studies, not a product.",
        f"extends: {extends}",
        f"name: {calibration.chip.name}-calibrated",
    ]
    tree: dict[str, Any] = {}
    for name, value in calibration.fitted.items():
        p = PARAMETERS[name]
        node = tree
        for part in p.path[:-1]:
            node = node.setdefault(part, {})
        node[p.path[-1]] = f"{value / p.scale:.4g} {p.unit}" if p.unit else float(f"{value:.4g}")
    lines += [f"{key}: {_flow(value)}" for key, value in tree.items()]
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)
