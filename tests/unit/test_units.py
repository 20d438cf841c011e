import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accelsim.units import UnitError, format_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "dimension", "expected"),
    [
        ("3.2 TB/s", "bytes/s", 3.2e12),
        ("900 GB/s", "bytes/s", 900e9),
        ("128 MiB", "bytes", 128 * 2**20),
        ("64 GiB", "bytes", 64 * 2**30),
        ("64GiB", "bytes", 64 * 2**30),
        ("400 W", "W", 400.0),
        ("1.35 GHz", "Hz", 1.35e9),
        ("177 TFLOP/s", "ops/s", 177e12),
        ("177 TFLOPS", "ops/s", 177e12),
        ("350 TOPS", "ops/s", 350e12),
        ("2 ms", "s", 2e-3),
        ("5 us", "s", 5e-6),
        ("5 µs", "s", 5e-6),
        ("2 min", "s", 120.0),
        ("0.6 pJ/B", "J/byte", 0.6e-12),
        ("4 pJ/bit", "J/byte", 32e-12),
        ("0.5 pJ/FLOP", "J/op", 0.5e-12),
        ("100 Gb/s", "bytes/s", 12.5e9),
        ("2000 /s", "1/s", 2000.0),
        ("2 kQPS", "1/s", 2000.0),
        ("70%", "fraction", 0.7),
        ("1_000", "bytes", 1000.0),
        (3.2e12, "bytes/s", 3.2e12),
        (7, "W", 7.0),
        ("1e3", "s", 1000.0),
    ],
)
def test_parses_decimal_and_binary_prefixes(text: object, dimension: str, expected: float) -> None:
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "dimension", "fragment"),
    [
        ("3 TB/z", "bytes/s", "unknown unit 'TB/z'"),
        ("400 W", "bytes/s", "'400 W' is in W"),
        ("64 GiB", "s", "expected seconds"),
        ("fast", "s", "cannot read 'fast'"),
        ("", "s", "cannot read"),
        ("1e999 W", "W", "not a finite number"),
        (True, "W", "expected watts"),
        ([1], "W", "got list"),
        ("5 k%", "fraction", "unknown unit"),
    ],
)
def test_bad_values_name_the_value(text: object, dimension: str, fragment: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_quantity(text, dimension)
    assert fragment in str(info.value)


def test_unknown_dimension_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        parse_quantity("1 W", "furlongs")


@pytest.mark.parametrize(
    ("value", "dimension", "text"),
    [
        (3.2e12, "bytes/s", "3.2 TB/s"),
        (64 * 2**30, "bytes", "64 GiB"),
        (2e-3, "s", "2 ms"),
        (0.0, "W", "0 W"),
        (450.0, "W", "450 W"),
    ],
)
def test_format_for_people(value: float, dimension: str, text: str) -> None:
    assert format_quantity(value, dimension) == text


@given(
    st.floats(min_value=1e-15, max_value=1e18, allow_nan=False),
    st.sampled_from(["bytes", "bytes/s", "W", "s", "ops/s", "J/byte"]),
)
def test_formatted_values_parse_back(value: float, dimension: str) -> None:
    text = format_quantity(value, dimension, digits=12)
    assert math.isclose(parse_quantity(text, dimension), value, rel_tol=1e-9)
