"""The processing pipeline for one export request, run in a worker process.

body bytes -> decompress -> parse (protobuf or OTLP/JSON) -> typed rows -> processors ->
encoded blocks (JSONEachRow, which ClickHouse parses natively and in parallel).

Workers do all per-span Python work, so the process that owns the store only moves bytes.
The function takes and returns plain, picklable values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from tracehouse_collector.processors import otlp_decode
from tracehouse_collector.processors.rows import ROW_BUILDERS, Limits, Rows

INSERT_FORMAT = "JSONEachRow"


@dataclass
class EncodedRequest:
    """One export request, decoded and encoded for insertion."""

    signal: str
    key: str  # identifies the request's content, so a retried export is recognised
    blocks: dict[str, bytes] = field(default_factory=dict)  # table -> JSONEachRow rows
    rows: int = 0
    rejected: int = 0
    error_message: str = ""


def request_key(signal: str, payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16, person=signal.encode()[:16]).hexdigest()


def encode_rows(rows: list[dict]) -> bytes:
    dumps = orjson.dumps
    return b"\n".join([dumps(r) for r in rows]) + b"\n"


def process(
    signal: str,
    body: bytes,
    content_type: str,
    content_encoding: str,
    max_request_bytes: int,
    max_attribute_bytes: int,
) -> EncodedRequest:
    """Decode and encode one request. Raises otlp_decode.InvalidRequest on bad input."""
    if signal not in otlp_decode.REQUEST_TYPES:
        raise otlp_decode.InvalidRequest(f"unknown signal {signal!r}")
    payload = otlp_decode.decompress(body, content_encoding, max_request_bytes)
    message = otlp_decode.parse(signal, payload, content_type)
    rows: Rows = ROW_BUILDERS[signal](message, Limits(max_attribute_bytes))
    out = EncodedRequest(signal=signal, key=request_key(signal, payload), rejected=rows.rejected)
    if rows.rejected:
        out.error_message = f"{rows.rejected} rejected: " + "; ".join(rows.errors)
    for table, table_rows in rows.tables.items():
        if table_rows:
            out.blocks[table] = encode_rows(table_rows)
            out.rows += len(table_rows)
    return out
