"""Parse physical quantities such as ``"3.2 TB/s"`` or ``"64 GiB"`` into SI floats.

Every quantity has a *dimension* (bytes, bytes per second, watts, ...). A config
field declares the dimension it wants; a value with another dimension is an
error that names the value, so ``bandwidth_bytes_per_s: 400 W`` is refused.
Plain numbers (``3.2e12``) are taken as SI in whatever dimension the field wants.

Decimal prefixes (k, M, G, T, P, E; m, u/µ, n, p) and binary prefixes
(Ki, Mi, Gi, Ti, Pi, Ei) are both understood. ``TOPS`` and ``TFLOPS`` are
read as T + OPS, T + FLOPS. Bits (``b``) convert to bytes.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["DIMENSION_LABELS", "UnitError", "format_quantity", "parse_quantity", "si_value"]


class UnitError(ValueError):
    """A value whose unit is unknown, malformed or of the wrong dimension."""


# base unit -> (dimension, factor to SI)
_BASE_UNITS: Final[dict[str, tuple[str, float]]] = {
    "B": ("bytes", 1.0),
    "byte": ("bytes", 1.0),
    "bytes": ("bytes", 1.0),
    "b": ("bytes", 1.0 / 8.0),
    "bit": ("bytes", 1.0 / 8.0),
    "B/s": ("bytes/s", 1.0),
    "b/s": ("bytes/s", 1.0 / 8.0),
    "bps": ("bytes/s", 1.0 / 8.0),
    "W": ("W", 1.0),
    "Hz": ("Hz", 1.0),
    "FLOP/s": ("ops/s", 1.0),
    "FLOPS": ("ops/s", 1.0),
    "FLOPs/s": ("ops/s", 1.0),
    "OP/s": ("ops/s", 1.0),
    "OPS": ("ops/s", 1.0),
    "ops/s": ("ops/s", 1.0),
    "s": ("s", 1.0),
    "sec": ("s", 1.0),
    "min": ("s", 60.0),
    "h": ("s", 3600.0),
    "J": ("J", 1.0),
    "Wh": ("J", 3600.0),
    "J/B": ("J/byte", 1.0),
    "J/b": ("J/byte", 8.0),
    "J/bit": ("J/byte", 8.0),
    "J/FLOP": ("J/op", 1.0),
    "J/OP": ("J/op", 1.0),
    "J/op": ("J/op", 1.0),
    "/s": ("1/s", 1.0),
    "qps": ("1/s", 1.0),
    "QPS": ("1/s", 1.0),
    "%": ("fraction", 0.01),
}

DIMENSION_LABELS: Final[dict[str, str]] = {
    "bytes": "bytes (e.g. '64 GiB')",
    "bytes/s": "bytes per second (e.g. '3.2 TB/s')",
    "W": "watts (e.g. '400 W')",
    "Hz": "hertz (e.g. '1.35 GHz')",
    "ops/s": "operations per second (e.g. '177 TFLOP/s', '350 TOPS')",
    "s": "seconds (e.g. '2 ms')",
    "J": "joules (e.g. '3 kJ')",
    "J/byte": "joules per byte (e.g. '0.6 pJ/B')",
    "J/op": "joules per operation (e.g. '0.5 pJ/FLOP')",
    "1/s": "a rate per second (e.g. '2000 /s')",
    "fraction": "a fraction (e.g. '0.7' or '70%')",
}

_DECIMAL: Final[dict[str, float]] = {
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,
    "μ": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}
_BINARY: Final[dict[str, float]] = {
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}

_NUMBER = r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY_RE: Final = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>\S.*?)?\s*$")


def _lookup_unit(unit: str) -> tuple[str, float] | None:
    """Return (dimension, factor) for a unit with an optional prefix, or None."""
    if unit in _BASE_UNITS:
        return _BASE_UNITS[unit]
    for prefixes in (_BINARY, _DECIMAL):
        for prefix, scale in prefixes.items():
            if unit.startswith(prefix) and len(unit) > len(prefix):
                base = _BASE_UNITS.get(unit[len(prefix) :])
                # Prefixed percent, minutes or hours make no sense.
                if base is not None and unit[len(prefix) :] not in {"%", "min", "h", "/s"}:
                    return base[0], base[1] * scale
    return None


def parse_quantity(value: object, dimension: str) -> float:
    """Parse ``value`` into an SI float of the given ``dimension``.

    ``value`` may be an int, a float or a string such as ``"3.2 TB/s"``.
    Raises :class:`UnitError` naming the value when it cannot be read, when
    its unit is unknown or when the unit belongs to another dimension.
    """
    if dimension not in DIMENSION_LABELS:
        raise KeyError(f"unknown dimension {dimension!r}")
    if isinstance(value, bool):
        raise UnitError(f"expected {DIMENSION_LABELS[dimension]}, got {value!r}")
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:
            raise UnitError(f"{str(value)[:20]}... is too large") from None
    elif isinstance(value, str):
        match = _QUANTITY_RE.match(value)
        if match is None:
            raise UnitError(f"cannot read {value!r} as {DIMENSION_LABELS[dimension]}")
        number = float(match.group("num").replace("_", ""))
        unit = match.group("unit")
        if unit is None:
            result = number
        else:
            found = _lookup_unit(unit)
            if found is None:
                raise UnitError(f"unknown unit {unit!r} in {value!r}")
            found_dimension, factor = found
            if found_dimension != dimension:
                raise UnitError(
                    f"{value!r} is in {found_dimension}, expected {DIMENSION_LABELS[dimension]}"
                )
            result = number * factor
    else:
        raise UnitError(f"expected {DIMENSION_LABELS[dimension]}, got {type(value).__name__}")
    if not math.isfinite(result):
        raise UnitError(f"{value!r} is not a finite number")
    return result


def si_value(value: str) -> float | None:
    """The SI number a quantity string stands for, whatever its dimension (``"0.5 ms"``
    -> 0.0005, ``"70%"`` -> 0.7, ``"2"`` -> 2.0); ``None`` for any other text (a chip
    name). For tables of values written as a config file would write them."""
    match = _QUANTITY_RE.match(value)
    if match is None:
        return None
    number = float(match.group("num").replace("_", ""))
    unit = match.group("unit")
    found = (None, 1.0) if unit is None else _lookup_unit(unit)
    if found is None:
        return None
    result = number * found[1]
    return result if math.isfinite(result) else None


_DISPLAY: Final[dict[str, tuple[str, bool]]] = {
    "bytes": ("B", True),
    "bytes/s": ("B/s", False),
    "W": ("W", False),
    "Hz": ("Hz", False),
    "ops/s": ("OP/s", False),
    "s": ("s", False),
    "J": ("J", False),
    "J/byte": ("J/B", False),
    "J/op": ("J/op", False),
    "1/s": ("/s", False),
}


def format_quantity(value: float, dimension: str, digits: int = 3, unit: str | None = None) -> str:
    """Format an SI float for people: ``format_quantity(3.2e12, "bytes/s") == "3.2 TB/s"``.

    ``unit`` replaces the dimension's display unit (e.g. ``"FLOP/s"`` for ``ops/s``).
    """
    default_unit, binary = _DISPLAY.get(dimension, ("", False))
    unit = default_unit if unit is None else unit
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    if binary:
        steps = [("Ei", 2.0**60), ("Pi", 2.0**50), ("Ti", 2.0**40), ("Gi", 2.0**30)]
        steps += [("Mi", 2.0**20), ("Ki", 2.0**10), ("", 1.0)]
    else:
        steps = [("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)]
        steps += [("", 1.0), ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12), ("f", 1e-15)]

    def number(x: float) -> str:
        # Never fall into exponent notation: 1000 MiB reads "1000 MiB", not "1e+03 MiB".
        return f"{x:.0f}" if abs(x) >= 10 ** (digits - 1) else f"{x:.{digits}g}"

    magnitude = abs(value)
    for prefix, scale in steps:
        if magnitude >= scale * 0.9995:
            return f"{number(value / scale)} {prefix}{unit}"
    prefix, scale = steps[-1]
    return f"{number(value / scale)} {prefix}{unit}"
