"""Request bodies -> OTLP protobuf messages: decompression, protobuf and OTLP/JSON parsing.

Every failure raises InvalidRequest with a message a user can act on; nothing here may crash
the caller on hostile input.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SIGNALS = ("traces", "metrics", "logs")

REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


class InvalidRequest(Exception):
    """The request cannot be decoded; maps to gRPC INVALID_ARGUMENT / HTTP 400."""


class RequestTooLarge(InvalidRequest):
    """The (decompressed) request exceeds the configured size; gRPC RESOURCE_EXHAUSTED / HTTP 413."""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo a Content-Encoding, refusing to inflate past `limit` bytes (zip bombs)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise RequestTooLarge(f"request body is {len(body)} bytes; the limit is {limit}")
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidRequest(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit:
            raise RequestTooLarge(f"request body inflates past the limit of {limit} bytes")
        if not inflater.eof:
            raise InvalidRequest(f"{encoding} body is truncated")
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidRequest(f"cannot decompress {encoding} body: {exc}") from None
    return out


def _brief(exc: BaseException, limit: int = 600) -> str:
    """A parser's message, cut short: it may quote a hostile value of any size."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def parse_protobuf(signal: str, payload: bytes) -> Message:
    msg = REQUEST_TYPES[signal]()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidRequest(f"malformed OTLP/protobuf {signal} request: {_brief(exc)}") from None
    return msg


# OTLP/JSON differs from protobuf's canonical JSON: trace and span ids are hex, not base64.
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
# A value of the wrong length: the span validator then rejects the span, not the request.
_BAD_ID = base64.b64encode(b"\xff").decode()


# Deeper JSON than any request the protobuf runtime accepts (100 nested messages); past it,
# recursion here, in the JSON-to-protobuf parser or in the row encoder would fail.
MAX_JSON_DEPTH = 200


def _hex_ids_to_base64(node: Any, depth: int = 0) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise InvalidRequest(f"OTLP/JSON request nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
                except ValueError:
                    node[key] = _BAD_ID
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _hex_ids_to_base64(item, depth + 1)
    return node


def parse_json(signal: str, payload: bytes) -> Message:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed OTLP/JSON {signal} request: {_brief(exc)}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"OTLP/JSON {signal} request must be a JSON object")
    msg = REQUEST_TYPES[signal]()
    try:
        json_format.ParseDict(_hex_ids_to_base64(doc), msg, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, binascii.Error) as exc:
        raise InvalidRequest(f"invalid OTLP/JSON {signal} request: {_brief(exc)}") from None
    return msg


def parse(signal: str, payload: bytes, content_type: str) -> Message:
    if content_type == "json":
        return parse_json(signal, payload)
    return parse_protobuf(signal, payload)
