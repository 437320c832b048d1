"""Result values as JSON can carry them: what the CLI's output formats and the APIs both send.

Only `decimal` is imported: dates and times are known by their `isoformat`, and UUIDs and IP
addresses read as their `str` (the fallback), so a CLI command rendering a server's JSON answer
loads no more than it needs.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

from tracehouse_collector.formatting import plain_decimal


def jsonable(value: Any) -> Any:
    """A value as JSON can carry it (ClickHouse types included)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return plain_decimal(value)  # exact, without the padding zeros of the column's scale
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if callable(getattr(value, "isoformat", None)):  # datetime, date, time
        return value.isoformat()
    return str(value)  # UUID, IPv4Address, IPv6Address and anything else


def money(value: Any) -> Decimal:
    return Decimal(value).normalize() if value else Decimal(0)


def json_ready(value: Any) -> Any:
    """`value` with every Decimal as a plain decimal string ("0.0000001", never "1E-7");
    the rest is left for output.jsonable."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
