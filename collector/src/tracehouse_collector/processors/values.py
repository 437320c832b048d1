"""Attribute values as producers send them -> numbers, amounts and JSON, never raising.

Span attribute values reach the processors as strings (`rows` renders arrays and maps as JSON
text); counts and amounts inside JSON arrive as numbers or numeric strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

MAX_COUNT = 2**63 - 1  # what an Int64 holds


def parse_int(value: str | None) -> int | None:
    """A token count from an attribute string: "12", "12.0", " 12 " -> 12; "", garbage,
    negatives, NaN and infinities -> None. Never raises."""
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        if not math.isfinite(f):
            return None
        n = int(f)
    except TypeError:
        return None
    if n < 0 or n > MAX_COUNT:
        return None
    return n


def parse_decimal(value: Any) -> Decimal | None:
    """A USD amount: attribute string or JSON number -> Decimal; garbage/negative/NaN -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = repr(value)
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not d.is_finite() or d < 0:
        return None
    return d


def json_value(value: str | None) -> Any:
    """Parsed JSON, or None for an empty or malformed value."""
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def json_object(value: str | None) -> dict[str, Any] | None:
    """A JSON object, also when it arrives encoded twice (MLflow's attribute values are JSON)."""
    d = json_value(value)
    if isinstance(d, str):
        d = json_value(d)
    return d if isinstance(d, dict) else None


def unquote(value: str | None) -> str:
    """A JSON-encoded string attribute (MLflow encodes every value): '"LLM"' -> 'LLM'. Other
    strings unchanged."""
    if value and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        decoded = json_value(value)
        if isinstance(decoded, str):
            return decoded
    return value or ""


def count(value: Any) -> int | None:
    """A token count from a parsed JSON value (int, float or numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and 0 <= value <= MAX_COUNT else None
    if isinstance(value, str):
        return parse_int(value)
    return None


def first(get: Callable[[str], str | None], keys: tuple[str, ...]) -> str:
    """The first non-empty value among `keys`, else ''."""
    for k in keys:
        v = get(k)
        if v:
            return v
    return ""
