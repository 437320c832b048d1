"""bench/peers' report: the ratios it prints and the table's rows (not the timing itself)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from bench.peers.report import BASE, Result, ratios, table

RATIO = re.compile(r"\d\.\dx")
TRACEHOUSE = Result(BASE, spans=6144, acked_s=1.5, visible_s=2.0, lookup_ms=4.0)
PHOENIX = Result("Phoenix", spans=6144, acked_s=6.0, visible_s=12.0, lookup_ms=30.0)
MLFLOW = Result("MLflow", spans=6144, acked_s=3.0, visible_s=3.0, lookup_ms=2.0)


def test_ratios_read_as_how_many_times_tracehouse_is_ahead():
    got = ratios(TRACEHOUSE, PHOENIX)
    # spans/s: 6144/2 against 6144/12; acknowledged: 6 s against 1.5 s; lookup 30 ms against 4 ms
    assert got["spans_per_s"] == pytest.approx(float(Fraction(6144, 2) / Fraction(6144, 12)))
    assert got["spans_per_s"] == pytest.approx(6.0)
    assert got["acked_s"] == pytest.approx(4.0)
    assert got["lookup_ms"] == pytest.approx(7.5)
    # a peer ahead reads below 1
    assert ratios(TRACEHOUSE, MLFLOW)["lookup_ms"] == pytest.approx(0.5)
    assert ratios(TRACEHOUSE, TRACEHOUSE) == {"spans_per_s": 1.0, "acked_s": 1.0, "lookup_ms": 1.0}


def test_the_table_puts_tracehouse_first_and_lists_the_skipped():
    text = table([PHOENIX, TRACEHOUSE, MLFLOW], {"Other": "not installed in /tmp/venv"})
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [BASE, "Phoenix", "MLflow", "Other"]
    assert lines[1].split()[1:6] == ["6144", "1.50", "2.00", "3072", "4.0"]  # no ratios on its own row
    assert not RATIO.search(lines[1])
    assert lines[2].split()[1:] == ["6144", "6.00", "12.00", "512", "30.0", "6.0x,", "4.0x,", "7.5x"]
    assert lines[3].endswith("1.5x, 2.0x, 0.5x")
    assert lines[4] == f"{'Other':14} skipped: not installed in /tmp/venv"


def test_without_tracehouse_there_are_no_ratios():
    lines = table([PHOENIX], {}).splitlines()
    assert "ahead" not in lines[0] and not RATIO.search(lines[1])
