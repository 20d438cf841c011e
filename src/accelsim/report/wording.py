"""Numbers in sentences: how the plain-language readings round shares and figures, and name
memory tiers."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

TIER_NAMES = {
    "sram": "SRAM",
    "dram": "DRAM",
    "host": "host-link",
    "link": "chip-to-chip link",
}


def finite(value: Any) -> TypeGuard[float]:
    """A number (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def sig(value: float, digits: int = 2) -> str:
    """A number rounded to ``digits`` significant figures, never in exponent notation:
    ``sig(1618.4) == "1600"``, ``sig(0.4419) == "0.44"``."""
    if not finite(value):
        return "-"
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - exponent)
    rounded = round(value, digits - 1 - exponent)
    return f"{rounded:.{decimals}f}"


def percent(value: float) -> str:
    """A share as a whole percentage, or with one decimal below 1%."""
    return f"{100 * value:.0f}%" if value >= 0.01 else f"{100 * value:.1f}%"
