"""The processing pipeline for one export request, run in a worker process.

body bytes -> decompress -> parse (protobuf or OTLP/JSON) -> typed rows -> LLM processor
(normalise conventions, estimate missing tokens, price) -> encoded rows in spool files
(JSONEachRow; spans optionally as a Native block or an Arrow stream: see encoding.py).

Workers do all per-span Python work and write the encoded rows to disk themselves, so the
process that owns the store moves neither rows nor bytes of them: it only renames files into
a batch and tells ClickHouse to read them. The function takes and returns plain, picklable
values.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import xxhash

from tracehouse_collector.processors import llm, otlp_decode, runs, scores
from tracehouse_collector.processors.cost import Pricer
from tracehouse_collector.processors.encoding import encode, encode_json
from tracehouse_collector.processors.rows import ROW_BUILDERS, Limits, Rows

__all__ = ["EncodedRequest", "encode_rows", "process", "request_key"]

# What encode_rows writes (the run importers insert its output themselves).
INSERT_FORMAT = "JSONEachRow"
encode_rows = encode_json


@dataclass
class EncodedRequest:
    """One export request, decoded and encoded for insertion."""

    signal: str
    key: str  # identifies the request's content, so a retried export is recognised
    # table -> spool file of encoded rows; its extension names the format (encoding.FORMATS)
    files: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    rejected: int = 0
    error_message: str = ""


def request_key(signal: str, payload: bytes) -> str:
    # 128-bit XXH3: collisions are out of reach for the window of keys kept, and hashing a
    # 1.5 MB request costs ~0.1 ms instead of ~3 ms for a cryptographic hash.
    return xxhash.xxh3_128_hexdigest(payload, seed=len(signal)) + signal[0]


_pricers: dict[str | None, Pricer] = {}


def pricer(prices_path: str | None) -> Pricer:
    """This process's Pricer for a price file (loaded once; restart the collector to reload)."""
    p = _pricers.get(prices_path)
    if p is None:
        p = _pricers[prices_path] = Pricer.from_file(prices_path)
    return p


def write_spool_file(spool_dir: str, table: str, data: bytes, fsync: bool, ext: str = "jsonl") -> str:
    path = os.path.join(spool_dir, f"{uuid.uuid4().hex}.{table}.{ext}")
    with open(path, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    return path


def process(
    signal: str,
    body: bytes,
    content_type: str,
    content_encoding: str,
    max_request_bytes: int,
    max_attribute_bytes: int,
    spool_dir: str,
    fsync: bool = True,
    prices_path: str | None = None,
    llm_processor: bool = True,
    insert_format: str = "json",
) -> EncodedRequest:
    """Decode one request and spool its encoded rows. Raises otlp_decode.InvalidRequest."""
    if signal not in otlp_decode.REQUEST_TYPES:
        raise otlp_decode.InvalidRequest(f"unknown signal {signal!r}")
    payload = otlp_decode.decompress(body, content_encoding, max_request_bytes)
    message = otlp_decode.parse(signal, payload, content_type)
    # Experiment-run records leave the logs request here for the run tables (processors/runs.py).
    run_rows = runs.take_run_records(message) if signal == "logs" else None
    rows: Rows = ROW_BUILDERS[signal](message, Limits(max_attribute_bytes), run_rows)
    if signal == "traces" and llm_processor:
        llm.enrich(rows, pricer(prices_path))
    if signal == "logs":
        scores.normalize_log_scores(rows)
    out = EncodedRequest(signal=signal, key=request_key(signal, payload), rejected=rows.rejected)
    if rows.rejected:
        out.error_message = f"{rows.rejected} rejected: " + "; ".join(rows.errors)
    for table, table_rows in rows.tables.items():
        if table_rows:
            ext, data = encode(table, table_rows, insert_format)
            out.files[table] = write_spool_file(spool_dir, table, data, fsync, ext)
            out.rows += len(table_rows)
    return out
