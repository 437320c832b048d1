"""Rows -> bytes in a ClickHouse input format, for the spool files the store inserts.

Two encodings, chosen per table:
- ``jsonl`` (``JSONEachRow``): every table, by default;
- ``arrows`` (Arrow IPC stream, ClickHouse ``ArrowStream``) for the span table when the
  collector is told to (``TRACEHOUSE_INSERT_FORMAT=arrow``): columns are built in bulk by
  pyarrow, and ClickHouse converts whole columns instead of parsing text. In isolation
  ClickHouse reads it at a quarter of the CPU of JSON; end to end on a 2-core machine it has
  not yet shown a saving (docs/benchmarks.md), so JSON stays the default.

Both put the same values into the same columns: a key a row leaves out, or an Arrow null,
takes the column's default, as an omitted JSON key does. Timestamps and decimals stay in the
text form the row builders give them and are converted in bulk (pyarrow's parsers are exact:
nanosecond timestamps read as UTC, decimals at their 12 places).
"""

from __future__ import annotations

import functools
from collections import Counter
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson

JSON_EXT = "jsonl"
ARROW_EXT = "arrows"
# File extension -> the ClickHouse format that reads it.
FORMATS = {JSON_EXT: "JSONEachRow", ARROW_EXT: "ArrowStream"}

# Per column of otel_traces that the row builders fill: the Arrow type its values are given
# in, and for text that ClickHouse stores as something else, the type it is converted to.
_SPAN_COLUMNS = {
    "Timestamp": ("str", "time"),
    "TraceId": ("str", None),
    "SpanId": ("str", None),
    "ParentSpanId": ("str", None),
    "TraceState": ("str", None),
    "SpanName": ("str", None),
    "SpanKind": ("str", None),
    "ServiceName": ("str", None),
    "ResourceAttributes": ("map", None),
    "ScopeName": ("str", None),
    "ScopeVersion": ("str", None),
    "SpanAttributes": ("map", None),
    "Duration": ("u64", None),
    "StatusCode": ("str", None),
    "StatusMessage": ("str", None),
    "Events.Timestamp": ("list<str>", "list<time>"),
    "Events.Name": ("list<str>", None),
    "Events.Attributes": ("list<map>", None),
    "Links.TraceId": ("list<str>", None),
    "Links.SpanId": ("list<str>", None),
    "Links.TraceState": ("list<str>", None),
    "Links.Attributes": ("list<map>", None),
    "GenAIOperation": ("str", None),
    "GenAIProvider": ("str", None),
    "GenAIRequestModel": ("str", None),
    "GenAIResponseModel": ("str", None),
    "InputTokens": ("u64", None),
    "OutputTokens": ("u64", None),
    "CacheReadTokens": ("u64", None),
    "CacheWriteTokens": ("u64", None),
    "ReasoningTokens": ("u64", None),
    "TotalTokens": ("u64", None),
    "TokensEstimated": ("bool", None),
    "InputCostUSD": ("str", "cost"),
    "OutputCostUSD": ("str", "cost"),
    "TotalCostUSD": ("str", "cost"),
    "PriceSource": ("str", None),
    "RunId": ("str", None),
    "SessionId": ("str", None),
    "UserId": ("str", None),
    "ExperimentName": ("str", None),
}
ARROW_TABLES: dict[str, dict[str, tuple[str, str | None]]] = {"otel_traces": _SPAN_COLUMNS}


@functools.cache
def _arrow_type(name: str) -> Any:
    """An Arrow type by the short name used above (pyarrow is imported on first use only:
    it takes a fifth of a second, which commands that never encode should not pay)."""
    import pyarrow as pa

    if name.startswith("list<"):
        return pa.list_(_arrow_type(name[5:-1]))
    return {
        "str": pa.string(),
        "map": pa.map_(pa.string(), pa.string()),
        "time": pa.timestamp("ns"),  # the text is UTC, as rows.format_timestamp writes it
        "u64": pa.uint64(),
        "bool": pa.bool_(),
        # ClickHouse narrows to Decimal64(12), refusing what does not fit, as it does for text
        "cost": pa.decimal128(38, 12),
    }[name]


class UnknownColumn(ValueError):
    """A row holds a key the Arrow schema of its table does not declare (a programming error)."""


def insert_format(path: str) -> str:
    """The ClickHouse format of a spool file, from its extension."""
    return FORMATS[path.rsplit(".", 1)[-1]]


def encode_json(rows: list[dict[str, Any]]) -> bytes:
    # JSONEachRow takes rows separated by commas as well as newlines, so one dumps() of the
    # whole list, brackets cut off, does what a dumps() per row did, about 5x faster.
    return orjson.dumps(rows)[1:-1] + b"\n"


def _map_column(dicts: list[Any]) -> Any:
    """A Map(String, String) column from dicts, flattened in two C-level extends per row
    (about twice as fast as letting pyarrow walk the dicts)."""
    import pyarrow as pa

    if None in dicts:  # some rows lack the column: pyarrow marks them null (default: {})
        return pa.array(dicts, _arrow_type("map"))
    offsets = [0]
    keys: list[str] = []
    values: list[str] = []
    for d in dicts:
        keys.extend(d)
        values.extend(d.values())
        offsets.append(len(keys))
    text = _arrow_type("str")
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, text), pa.array(values, text))


def _column(values: list[Any], given: str, stored: str | None) -> Any:
    import pyarrow as pa

    array = _map_column(values) if given == "map" else pa.array(values, _arrow_type(given))
    return array if stored is None else array.cast(_arrow_type(stored))


def _columns(rows: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, list[Any]]:
    """Rows -> {column: values}, None where a row lacks the column; in C where it can be
    (a Counter of keys, itemgetter and zip transpose the columns every row has)."""
    counts = Counter(chain.from_iterable(rows))
    unknown = [k for k in counts if k not in schema]
    if unknown:
        raise UnknownColumn(f"no Arrow type declared for {unknown}")
    n = len(rows)
    full = [k for k, c in counts.items() if c == n]
    columns: dict[str, list[Any]] = {}
    if len(full) > 1:
        columns.update(zip(full, map(list, zip(*map(itemgetter(*full), rows), strict=True)), strict=True))
    elif full:
        columns[full[0]] = list(map(itemgetter(full[0]), rows))
    for k, c in counts.items():
        if c < n:
            columns[k] = [r.get(k) for r in rows]
    return columns


def encode_arrow(table: str, rows: list[dict[str, Any]]) -> bytes:
    """One Arrow IPC stream holding the rows, with the columns that any row fills."""
    import pyarrow as pa

    schema = ARROW_TABLES[table]
    columns = _columns(rows, schema)
    names = list(columns)
    arrays = [_column(values, *schema[name]) for name, values in columns.items()]
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def warm_up() -> None:
    """Load pyarrow and its cast kernels (a fraction of a second, once per process)."""
    row = {"Timestamp": "1970-01-01 00:00:00.000000000", "InputCostUSD": "0", "SpanAttributes": {}}
    encode_arrow("otel_traces", [row])


def encode(table: str, rows: list[dict[str, Any]], insert_format: str = "json") -> tuple[str, bytes]:
    """(file extension, bytes) of the rows of one table."""
    if insert_format == "arrow" and table in ARROW_TABLES:
        return ARROW_EXT, encode_arrow(table, rows)
    return JSON_EXT, encode_json(rows)
