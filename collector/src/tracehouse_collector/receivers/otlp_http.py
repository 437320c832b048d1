"""OTLP/HTTP receiver: POST /v1/traces, /v1/metrics, /v1/logs.

Bodies in application/x-protobuf or application/json (the OTLP JSON encoding), optionally
gzip- or deflate-compressed. Responses use the request's encoding; errors carry a
google.rpc.Status body and, when retryable, a Retry-After header.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2

from tracehouse_collector.receivers.otlp_grpc import export_response
from tracehouse_collector.server.ingest import (
    Ingest,
    InvalidRequest,
    Overloaded,
    RequestTooLarge,
    RowsRefused,
    Unavailable,
)

log = logging.getLogger("tracehouse.http")

CONTENT_TYPES = {"application/x-protobuf": "protobuf", "application/json": "json"}
# gRPC status codes used in google.rpc.Status bodies.
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _INTERNAL, _UNAVAILABLE = 3, 8, 13, 14


def _reply(message, encoding: str, status: int = 200, headers: dict | None = None) -> web.Response:
    if encoding == "json":
        body = json_format.MessageToJson(message, indent=None).encode()
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)
    return web.Response(
        status=status, body=message.SerializeToString(), content_type="application/x-protobuf", headers=headers
    )


def _error(encoding: str, http_status: int, code: int, message: str, retry_after: float | None = None):
    headers = {"Retry-After": str(max(1, int(retry_after)))} if retry_after is not None else None
    return _reply(status_pb2.Status(code=code, message=message), encoding, http_status, headers)


def inflight_middleware(ingest: Ingest, max_body_bytes: int) -> Callable:
    """Reserves an OTLP request's bytes (server/inflight.py) before its body is read: a request that
    does not fit now is answered 429 + Retry-After (or 413 past the size limit), unread."""

    @web.middleware
    async def reserve_bytes(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path not in OTLP_PATHS or request.method != "POST":
            return await handler(request)
        encoding = CONTENT_TYPES.get(request.content_type.lower(), "json")
        size = request.content_length
        if size is not None and size > max_body_bytes:
            # Answered unread; aiohttp drains what is still coming for a few seconds, then closes.
            response = _error(
                encoding, 413, _INVALID_ARGUMENT, f"request body of {size} bytes exceeds the limit of {max_body_bytes}"
            )
            response.force_close()
            return response
        try:
            reservation = ingest.reserve(max_body_bytes if size is None else size)
        except Overloaded as exc:
            return _error(encoding, 429, _RESOURCE_EXHAUSTED, str(exc), exc.retry_after_s)
        except Unavailable as exc:
            return _error(encoding, 503, _UNAVAILABLE, str(exc), exc.retry_after_s)
        try:
            return await handler(request)
        finally:
            reservation.release()

    return reserve_bytes


OTLP_PATHS = frozenset({"/v1/traces", "/v1/metrics", "/v1/logs"})


def add_routes(app: web.Application, ingest: Ingest) -> None:
    async def export(request: web.Request) -> web.StreamResponse:
        signal = request.match_info["signal"]
        mime = request.content_type.lower()
        encoding = CONTENT_TYPES.get(mime)
        if encoding is None:
            return web.json_response(
                {
                    "code": _INVALID_ARGUMENT,
                    "message": f"unsupported Content-Type {mime!r}; "
                    "send application/x-protobuf or application/json",
                },
                status=415,
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(encoding, 413, _INVALID_ARGUMENT, "request body exceeds the configured limit")
        try:
            result = await ingest.export(signal, body, encoding, request.headers.get("Content-Encoding", ""))
        except RequestTooLarge as exc:
            return _error(encoding, 413, _INVALID_ARGUMENT, str(exc))
        except (InvalidRequest, RowsRefused) as exc:
            return _error(encoding, 400, _INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            return _error(encoding, 429, _RESOURCE_EXHAUSTED, str(exc), exc.retry_after_s)
        except Unavailable as exc:
            return _error(encoding, 503, _UNAVAILABLE, str(exc), exc.retry_after_s)
        except Exception:
            log.exception("unexpected error in %s export", signal)
            return _error(encoding, 500, _INTERNAL, "internal error; see the collector log")
        return _reply(export_response(signal, result.rejected, result.error_message), encoding)

    for signal in ("traces", "metrics", "logs"):
        app.router.add_post(f"/v1/{{signal:{signal}}}", export)
