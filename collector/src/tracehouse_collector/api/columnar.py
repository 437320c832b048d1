"""Columnar answers: a REST read returns Apache Arrow (IPC stream) instead of row JSON.

A client asks with `Accept: application/vnd.apache.arrow.stream` or `?format=arrow`. ClickHouse
writes the stream itself (FORMAT ArrowStream), so a large result is never decoded into Python
rows on the server, and types arrive as they are stored (DateTime64 as timestamps, Decimal as
decimal128, UInt64 as uint64, Map as map). Errors stay JSON ({"error": message}).
"""

from __future__ import annotations

from aiohttp import web

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FORMAT = "ArrowStream"  # ClickHouse's name of the output format


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
