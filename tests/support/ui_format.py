"""The web UI's documented number formatting (docs/web-ui.md, lib.js), written again in Python
so browser tests can render a REST answer the way the page must show it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tracehouse_collector import formatting


def fmt_usd(value: Any) -> str:
    """lib.js fmtCost: the documented cost rule (formatting.fmt_cost) with the dollar sign."""
    return "$" + formatting.fmt_cost(value)


def _fixed(x: float, places: int) -> str:
    """JavaScript's Number.prototype.toFixed: the exact binary value, ties rounded up (Python's
    format() rounds them to even: 7.25 -> '7.2' where toFixed says '7.3')."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def fmt_ms(ms: float | None) -> str:
    """lib.js fmtMs."""
    if ms is None:
        return "–"
    if ms >= 60000:
        return f"{_fixed(ms / 60000, 1)} min"
    if ms >= 1000:
        return f"{_fixed(ms / 1000, 2)} s"
    return f"{_fixed(ms, 1)} ms" if ms < 10 else f"{_fixed(ms, 0)} ms"  # Math.round: ties up too


def fmt_int(n: int | None) -> str:
    """lib.js fmtInt: thousands separated, a dash for none or zero."""
    return f"{int(n):,}" if n else "–"


def fmt_num(v: Any) -> str:
    """lib.js fmtNum: whole numbers whole, others to 4 significant digits (no exponent here)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if float(v).is_integer():
        return str(int(v))
    rounded = float(f"{v:.4g}")
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def fmt_score(v: Any) -> str:
    """lib.js fmtScore: a number by fmt_num, a label as it is."""
    return fmt_num(v) if isinstance(v, int | float) else str(v)
