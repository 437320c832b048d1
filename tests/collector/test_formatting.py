"""The documented number formats (formatting.py; lib.js follows the same rules, checked in the
browser by test_ui_numbers.py) against Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tracehouse_collector.cli.output import render
from tracehouse_collector.formatting import fmt_cost, plain_decimal
from tracehouse_collector.query.values import jsonable


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.026100000000", "0.0261"),  # never 0.03
        ("0.001800000000", "0.0018"),
        ("0.03", "0.03"),
        ("12.345649", "12.35"),
        ("1234.5678", "1,234.57"),
        ("0.000012345", "0.00001235"),
        ("0.099996", "0.10"),
        ("999.995", "1,000.00"),
        ("-0.004", "-0.004"),
        ("0", "0.00"),
        ("0.000000000001", "0.000000000001"),
    ],
)
def test_fmt_cost_examples(value, text):
    assert fmt_cost(value) == text


@given(st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("1000000"), places=12))
def test_fmt_cost_keeps_four_significant_digits_and_at_least_cents(value):
    text = fmt_cost(value)
    shown = Decimal(text.replace(",", ""))
    assert len(text.partition(".")[2]) >= 2
    kept = min(12, max(2, 3 - value.adjusted()))  # decimals of 4 significant digits, at least cents
    assert abs(shown - value) <= Decimal(5).scaleb(-kept - 1)  # rounded, not cut
    assert abs(shown - value) <= value * Decimal("0.0005")  # 4 significant digits
    assert abs(shown - value) < Decimal("0.005")  # never more than half a cent off


def test_decimals_are_exact_without_padding_in_every_output():
    assert plain_decimal(Decimal("0.001800000000")) == "0.0018"
    assert plain_decimal(Decimal("0E-12")) == "0"
    assert plain_decimal(Decimal("100")) == "100" and plain_decimal(Decimal("1E+2")) == "100"
    assert jsonable(Decimal("0.026100000000")) == "0.0261"
    table = render(
        ["model", "cost_usd", "other"], [("m", Decimal("0.026100000000"), Decimal("0.001800000000"))], "table"
    )
    assert "0.0261" in table and "0.0018" in table and "0.001800000000" not in table


def test_table_marks_sketch_percentiles():
    columns = ["model", "count", "p50_ms", "p99_ms", "max_ms", "percentiles_error"]
    table = render(columns, [("a", 2000, 12.5, 99.0, 120.0, 0.01), ("b", 3, 4.0, 5.0, 5.0, 0.0)], "table")
    lines = table.splitlines()
    assert "~12.5" in lines[2] and "~99.0" in lines[2] and "~120" not in lines[2]
    assert "~" not in lines[3]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_table_doubles_read_as_the_value_they_hold(value):
    """The table prints a double to 15 significant digits: no binary noise (a mean of 0.9 and 0.7
    reads 0.8), and the printed text is still that double to 15 digits; JSON and CSV keep the
    shortest form that round-trips."""
    table = render(["x"], [[value]], "table").splitlines()[2].strip()
    assert table in (f"{value:.15g}", repr(value))  # repr only where 15 digits would overflow
    assert abs(float(table) - value) <= abs(value) * 1e-14
    assert render(["x"], [[value]], "csv").splitlines()[1] == repr(value)


def test_a_mean_of_scores_prints_without_float_noise():
    assert repr((0.9 + 0.8 + 0.7) / 3) == "0.8000000000000002"  # what the table used to print
    assert render(["mean"], [[(0.9 + 0.8 + 0.7) / 3]], "table").splitlines()[2].strip() == "0.8"
