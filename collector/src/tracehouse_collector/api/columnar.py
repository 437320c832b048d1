"""Columnar answers: a REST read returns Apache Arrow (IPC stream) instead of row JSON.

A client asks with `Accept: application/vnd.apache.arrow.stream` or `?format=arrow`. ClickHouse
writes the stream itself (FORMAT ArrowStream), so a large result is never decoded into Python
rows on the server, and types arrive as they are stored (DateTime64 as timestamps, Decimal as
decimal128, UInt64 as uint64, Map as map). Errors stay JSON ({"error": message}).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from aiohttp import web

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FORMAT = "ArrowStream"  # ClickHouse's name of the output format
_DATETIME = re.compile(r"(?:LowCardinality\()?(?:Nullable\()?DateTime(?:\(.*\))?\)*")


def wants_arrow(request: web.Request, fmt: str | None = None) -> bool:
    """Whether the client asked for Arrow: by `format` (the parameter, as read) or by Accept."""
    if fmt is not None:
        return fmt.strip().lower() == "arrow"
    if request.query.get("format", "").strip().lower() == "arrow":
        return True
    accept = request.headers.get("Accept", "")
    return any(part.split(";", 1)[0].strip().lower() == ARROW_STREAM for part in accept.split(","))


def arrow_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=ARROW_STREAM)


def with_timestamps(body: bytes, types_of: Callable[[Sequence[str]], Sequence[str]]) -> bytes:
    """The stream with its DateTime columns as UTC timestamps (seconds).

    ClickHouse writes DateTime (not DateTime64) to Arrow as plain uint32 seconds, which readers
    would show as numbers: `toStartOfDay(Timestamp)` and the aggregates' day/hour/minute among
    them. `types_of(column names)` gives ClickHouse's type of each column, by position; it is
    asked only when the stream has uint32 columns, and only those columns are rewritten.
    """
    import pyarrow as pa  # chDB's dependency; loaded on the first Arrow answer, not at start-up

    reader = pa.ipc.open_stream(body)
    schema = reader.schema
    candidates = [i for i, field in enumerate(schema) if field.type == pa.uint32()]
    if not candidates:
        return body
    types = types_of(schema.names)
    columns = [i for i in candidates if i < len(types) and _DATETIME.fullmatch(types[i])]
    if not columns:
        return body
    table = reader.read_all()
    utc = pa.timestamp("s", "UTC")
    for i in columns:
        table = table.set_column(
            i, schema.field(i).with_type(utc), table.column(i).cast(pa.int64()).cast(utc)
        )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
