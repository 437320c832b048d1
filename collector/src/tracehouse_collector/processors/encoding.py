"""Rows -> bytes in a ClickHouse input format, for the spool files the store inserts.

Three encodings, chosen per table:
- ``jsonl`` (``JSONEachRow``): every table, by default;
- ``native`` (ClickHouse ``Native``) for the span table when the collector is told to
  (``TRACEHOUSE_INSERT_FORMAT=native``): ClickHouse's own column layout, built by the compiled
  encoder that clickhouse-connect ships (``clickhouse-connect-core``). ClickHouse copies the
  columns in instead of parsing text (0.3 against 1.4 CPU-s per 100k spans into a Null
  table), but the encoder costs a worker about four times what orjson does, so end to end on
  two shared cores it saves nothing and JSON stays the default (docs/benchmarks.md);
- ``arrows`` (Arrow IPC stream, ClickHouse ``ArrowStream``) for the span table
  (``TRACEHOUSE_INSERT_FORMAT=arrow``): ClickHouse reads it about as cheaply as Native, but
  pyarrow's columns cost the workers more than they save (docs/benchmarks.md).

All put the same values into the same columns: a key a row leaves out, an Arrow null, or a
Native column a block lacks takes the column's default, as an omitted JSON key does. The row
builders give timestamps and decimals in their exact text form; Arrow converts them in bulk
(pyarrow's parsers are exact: nanosecond timestamps read as UTC, decimals at their 12
places), Native takes timestamps as integer nanoseconds and decimals as text.
"""

from __future__ import annotations

import calendar
import functools
from collections import Counter
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

JSON_EXT = "jsonl"
ARROW_EXT = "arrows"
NATIVE_EXT = "native"
# File extension -> the ClickHouse format that reads it.
FORMATS = {JSON_EXT: "JSONEachRow", ARROW_EXT: "ArrowStream", NATIVE_EXT: "Native"}


class Column(NamedTuple):
    """How the row builders give a column of a table, and how each encoding writes it."""

    given: str  # the Arrow type its values are given in (short names: _arrow_type)
    arrow_stored: str | None  # for text stored as something else, the Arrow type it converts to
    clickhouse: str  # its type in the table, which a Native block declares


# Every column of otel_traces that the row builders fill (tests hold these to the table).
_SPAN_COLUMNS = {
    "Timestamp": Column("str", "time", "DateTime64(9)"),
    "TraceId": Column("str", None, "String"),
    "SpanId": Column("str", None, "String"),
    "ParentSpanId": Column("str", None, "String"),
    "TraceState": Column("str", None, "String"),
    "SpanName": Column("str", None, "LowCardinality(String)"),
    "SpanKind": Column("str", None, "LowCardinality(String)"),
    "ServiceName": Column("str", None, "LowCardinality(String)"),
    "ResourceAttributes": Column("map", None, "Map(LowCardinality(String), String)"),
    "ScopeName": Column("str", None, "String"),
    "ScopeVersion": Column("str", None, "String"),
    "SpanAttributes": Column("map", None, "Map(LowCardinality(String), String)"),
    "Duration": Column("u64", None, "UInt64"),
    "StatusCode": Column("str", None, "LowCardinality(String)"),
    "StatusMessage": Column("str", None, "String"),
    "Events.Timestamp": Column("list<str>", "list<time>", "Array(DateTime64(9))"),
    "Events.Name": Column("list<str>", None, "Array(LowCardinality(String))"),
    "Events.Attributes": Column("list<map>", None, "Array(Map(LowCardinality(String), String))"),
    "Links.TraceId": Column("list<str>", None, "Array(String)"),
    "Links.SpanId": Column("list<str>", None, "Array(String)"),
    "Links.TraceState": Column("list<str>", None, "Array(String)"),
    "Links.Attributes": Column("list<map>", None, "Array(Map(LowCardinality(String), String))"),
    "GenAIOperation": Column("str", None, "LowCardinality(String)"),
    "GenAIProvider": Column("str", None, "LowCardinality(String)"),
    "GenAIRequestModel": Column("str", None, "LowCardinality(String)"),
    "GenAIResponseModel": Column("str", None, "LowCardinality(String)"),
    "InputTokens": Column("u64", None, "UInt64"),
    "OutputTokens": Column("u64", None, "UInt64"),
    "CacheReadTokens": Column("u64", None, "UInt64"),
    "CacheWriteTokens": Column("u64", None, "UInt64"),
    "ReasoningTokens": Column("u64", None, "UInt64"),
    "TotalTokens": Column("u64", None, "UInt64"),
    "TokensEstimated": Column("bool", None, "Bool"),
    "InputCostUSD": Column("str", "cost", "Decimal(18, 12)"),
    "OutputCostUSD": Column("str", "cost", "Decimal(18, 12)"),
    "TotalCostUSD": Column("str", "cost", "Decimal(18, 12)"),
    "PriceSource": Column("str", None, "LowCardinality(String)"),
    "RunId": Column("str", None, "String"),
    "SessionId": Column("str", None, "String"),
    "UserId": Column("str", None, "String"),
    "ExperimentName": Column("str", None, "LowCardinality(String)"),
}
TABLE_COLUMNS: dict[str, dict[str, Column]] = {"otel_traces": _SPAN_COLUMNS}


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
    """A row holds a key its table's columns do not declare (a programming error)."""


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
        raise UnknownColumn(f"no column declared for {unknown}")
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

    schema = TABLE_COLUMNS[table]
    columns = _columns(rows, schema)
    names = list(columns)
    arrays = [_column(values, schema[name].given, schema[name].arrow_stored) for name, values in columns.items()]
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


# What a Native column a row leaves out holds: the column's default, as JSON and Arrow give it.
_NATIVE_DEFAULTS = {"str": "", "u64": 0, "bool": False, "map": {}}
_EPOCH_SECONDS: dict[str, int] = {}


def _nanos(text: str) -> int:
    """'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' (UTC, as rows.format_timestamp writes it) -> nanoseconds
    since the epoch, exactly; the seconds part is looked up once per distinct second."""
    prefix = text[:19]
    seconds = _EPOCH_SECONDS.get(prefix)
    if seconds is None:
        if len(_EPOCH_SECONDS) > 65536:
            _EPOCH_SECONDS.clear()
        fields = (prefix[:4], prefix[5:7], prefix[8:10], prefix[11:13], prefix[14:16], prefix[17:19])
        seconds = _EPOCH_SECONDS[prefix] = calendar.timegm(tuple(map(int, fields)))
    return seconds * 1_000_000_000 + int(text[20:])


def _native_values(values: list[Any], column: Column) -> list[Any]:
    if column.arrow_stored == "time":
        return list(map(_nanos, values))
    if column.arrow_stored == "list<time>":
        return [list(map(_nanos, v)) if v else [] for v in values]
    if None in values:
        default = "0" if column.arrow_stored == "cost" else _NATIVE_DEFAULTS.get(column.given)
        if default is None:  # lists: a fresh one per row, never shared
            return [[] if v is None else v for v in values]
        return [default if v is None else v for v in values]
    return values


# The binding of clickhouse-connect-core's module this code calls (it has no public API of its
# own, so a wheel with another binding is refused at start-up rather than trusted).
NATIVE_BINDING_API = 3


@functools.cache
def _native_encoder() -> Any:
    """clickhouse-connect's compiled Native encoder (the `clickhouse-connect-core` wheel)."""
    try:
        import _ch_core
    except ImportError as exc:
        raise RuntimeError(
            "TRACEHOUSE_INSERT_FORMAT=native needs the clickhouse-connect-core package: "
            "pip install 'tracehouse-collector[native]'"
        ) from exc
    if getattr(_ch_core, "BINDING_API_VERSION", None) != NATIVE_BINDING_API:
        raise RuntimeError(
            f"clickhouse-connect-core offers binding API {getattr(_ch_core, 'BINDING_API_VERSION', None)}, "
            f"this collector needs {NATIVE_BINDING_API}: pip install 'tracehouse-collector[native]'"
        )
    return _ch_core.encode_native_block


def encode_native(table: str, rows: list[dict[str, Any]]) -> bytes:
    """One Native block holding the rows, with the columns that any row fills."""
    schema = TABLE_COLUMNS[table]
    columns = _columns(rows, schema)
    names = list(columns)
    return _native_encoder()(
        names,
        [schema[name].clickhouse for name in names],
        [_native_values(values, schema[name]) for name, values in columns.items()],
        len(rows),
        None,
    )


def warm_up(insert_format: str) -> None:
    """Load the encoder of a format up front (pyarrow and its cast kernels take a fraction of a
    second, once per process) and fail at start-up, not at the first request, if it is missing."""
    row = {"Timestamp": "1970-01-01 00:00:00.000000000", "InputCostUSD": "0", "SpanAttributes": {}}
    if insert_format == "arrow":
        encode_arrow("otel_traces", [row])
    elif insert_format == "native":
        encode_native("otel_traces", [row])


def encode(table: str, rows: list[dict[str, Any]], insert_format: str = "json") -> tuple[str, bytes]:
    """(file extension, bytes) of the rows of one table."""
    if table in TABLE_COLUMNS:
        if insert_format == "native":
            return NATIVE_EXT, encode_native(table, rows)
        if insert_format == "arrow":
            return ARROW_EXT, encode_arrow(table, rows)
    return JSON_EXT, encode_json(rows)
