"""Pages of the traces and sessions lists: limits, time bounds, keyset cursors and sort orders.

Lists page by keyset on (start, id) or (sort key, id), never OFFSET: the next page's cursor
bounds the scan, so deep pages cost what the first page costs.

Times travel as integer nanoseconds through ClickHouse (no time-zone guessing) and leave as
ISO-8601 UTC strings.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tracehouse_collector.query.trace_shape import TRACE_ID_RE

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


@dataclass
class Page:
    """One page of a list: rows as the CLI renders them, and where the next page starts."""

    columns: list[str]
    rows: list[tuple]
    next_cursor: str | None = None

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# -- time and input checks -------------------------------------------------------------------

def parse_time(value: Any, what: str = "time", now: dt.datetime | None = None) -> int | None:
    """A point in time as Unix nanoseconds, in the time language of every query command
    (query/aggregates.parse_time: "24h"/"30m"/"7d" ago, or ISO-8601, UTC unless it says so)."""
    from tracehouse_collector.query.aggregates import parse_time as parse_when

    when = parse_when(value, now=now, what=what)
    if when is None:
        return None
    whole = int(when.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + when.microsecond * 1000


def now_ns() -> int:
    """Now in Unix nanoseconds, to the microsecond as parse_time("0s") reads it."""
    return time.time_ns() // 1000 * 1000


def iso(ns: int) -> str:
    """Unix nanoseconds as ISO-8601 UTC with microseconds."""
    return dt.datetime.fromtimestamp(ns // 1000 / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    limit = int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    ns, sep, key = cursor.partition(":")
    if not sep or not ns.isdigit() or not key:
        raise ValueError(f"bad cursor {cursor!r}: pass the next_cursor of the previous page unchanged")
    return int(ns), key


def encode_cursor(ns: int, key: str) -> str:
    return f"{ns}:{key}"


def time_conditions(since_ns: int | None, until_ns: int | None, params: dict[str, Any]) -> list[str]:
    out = []
    if since_ns is not None:
        params["since_ns"] = since_ns
        out.append("Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})")
    if until_ns is not None:
        params["until_ns"] = until_ns
        out.append("Timestamp < fromUnixTimestamp64Nano({until_ns:Int64})")
    return out


# -- sort orders and their cursors -------------------------------------------------------------

SCORE_SORT = "score."


@dataclass(frozen=True)
class Sort:
    column: str  # a key of SORTS, or score.NAME
    descending: bool = True

    @property
    def spec(self) -> str:
        return f"{self.column}:{'desc' if self.descending else 'asc'}"


def parse_order(text: str | None, default: Sort, columns: list[str], scores: bool) -> Sort:
    """`column`, `column:asc` or `column:desc` (the default) -> Sort; ValueError names the columns."""
    if not text or not text.strip():
        return default
    column, _, direction = text.strip().partition(":")
    direction = direction.lower() or "desc"
    known = column in columns or (scores and column.startswith(SCORE_SORT) and len(column) > len(SCORE_SORT))
    if not known or direction not in ("asc", "desc"):
        names = ", ".join([*columns, "score.NAME"] if scores else columns)
        raise ValueError(f"bad sort {text!r}: one of {names}, optionally with :asc or :desc")
    return Sort(column, direction == "desc")


def keyset_after(cursor: str | None, order: Sort, id_column: str, params: dict[str, Any], ids: re.Pattern | None) -> str:
    """The WHERE clause of a sorted page that starts after the cursor's (key, id), or ''."""
    if not cursor:
        return ""
    kind, params["c_key"], params["c_id"] = decode_sorted_cursor(cursor, order, ids)
    key = "toDecimal128({c_key:String}, 12)" if kind.startswith("Decimal") else f"{{c_key:{kind}}}"
    cmp = "<" if order.descending else ">"
    return f"WHERE key {cmp} {key} OR (key = {key} AND {id_column} {cmp} {{c_id:String}})"


def _cursor_value(value: Any) -> tuple[str, str]:
    """(ClickHouse parameter type, text) of a sort key, exactly as the store returned it."""
    if isinstance(value, Decimal):
        return "Decimal128(12)", format(value, "f")
    if isinstance(value, float):
        return "Float64", repr(value)
    return "Int64", str(int(value))


def encode_sorted_cursor(order: Sort, value: Any, trace_id: str) -> str:
    kind, text = _cursor_value(value)
    raw = json.dumps([order.spec, kind, text, trace_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_sorted_cursor(cursor: str, order: Sort, id_pattern: re.Pattern | None = TRACE_ID_RE) -> tuple[str, str, str]:
    """(type, value, row id) after which a sorted page starts; the id is a trace id unless
    `id_pattern` is None."""
    try:
        spec, kind, text, tid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise ValueError(f"bad cursor {cursor!r}: pass the next_cursor of the previous page unchanged") from None
    if spec != order.spec or kind not in ("Decimal128(12)", "Float64", "Int64") or (id_pattern and not id_pattern.match(str(tid))):
        raise ValueError(f"cursor {cursor!r} belongs to another listing (sort {spec}, not {order.spec})")
    return kind, str(text), str(tid)
