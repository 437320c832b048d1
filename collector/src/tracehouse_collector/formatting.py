"""Numbers as people read them, one rule per kind, shared by the CLI table and (in lib.js) the
web UI; JSON, CSV and Parquet keep the exact values.

- Costs (USD): 4 significant digits and never fewer than 2 decimals, rounded half up; trailing
  zeros past the cents dropped: 0.0261, 12.35, 1,234.57, 0.00001235. Never a bare two-decimal
  rounding that turns $0.0261 into $0.03.
- Other decimals (ClickHouse Decimal columns): exact, without the type's padding zeros
  (0.001800000000 reads 0.0018).
- Percentiles answered by the rollup's sketch (a row whose `percentiles_error` > 0): marked `~`.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

COST_DIGITS = 4


def fmt_cost(value: Any) -> str:
    d = Decimal(str(value))
    if not d:
        return "0.00"
    decimals = min(12, max(2, COST_DIGITS - 1 - d.adjusted()))
    q = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    whole, _, frac = f"{q:,.{decimals}f}".partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def plain_decimal(d: decimal.Decimal) -> str:
    """The exact value without padding zeros, never in exponent form."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def is_cost_column(name: str) -> bool:
    return name == "cost" or name.endswith("cost_usd") or name.endswith("_cost")


def table_marks(columns: Sequence[str], row: Sequence[Any]) -> dict[int, str]:
    """Cells of a table row to show otherwise than their value: costs by fmt_cost, sketch
    percentiles with a leading `~`."""
    out: dict[int, str] = {}
    approx = "percentiles_error" in columns and (row[columns.index("percentiles_error")] or 0) > 0
    for i, (name, value) in enumerate(zip(columns, row, strict=True)):
        if value is None:
            continue
        if is_cost_column(name) and isinstance(value, (Decimal, int, float, str)):
            try:
                out[i] = fmt_cost(value)
            except decimal.InvalidOperation:
                continue
        elif approx and name.startswith(("p", "ttft_p")) and name.endswith("_ms"):
            out[i] = f"~{value}"
    return out
