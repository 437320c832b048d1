"""Result values as JSON can carry them: what the CLI's output formats and the APIs both send."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from typing import Any

from tracehouse_collector.formatting import plain_decimal


def jsonable(value: Any) -> Any:
    """A value as JSON can carry it (ClickHouse types included)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return plain_decimal(value)  # exact, without the padding zeros of the column's scale
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return str(value)
