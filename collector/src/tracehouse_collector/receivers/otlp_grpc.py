"""OTLP/gRPC receiver: TraceService, MetricsService and LogsService on one grpc.aio server.

Requests arrive as raw bytes (no deserializer) and are parsed in the decoding workers, so
this process never builds protobuf objects for them.

Export is unary on the wire but served as a client stream: a unary handler has its message
received before it runs, a stream handler runs first and reads the message itself. That lets
an export reserve its bytes (server/inflight.py) before any of them are buffered, and be refused
with RESOURCE_EXHAUSTED, its body never read, when they are not there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracehouse_collector.config import ServeSettings
from tracehouse_collector.server.ingest import Ingest, InvalidRequest, Overloaded, RowsRefused, Unavailable

log = logging.getLogger("tracehouse.grpc")

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}


def export_response(signal: str, rejected: int, message: str) -> Any:
    """The Export*ServiceResponse for a signal, with partial_success set when rows were rejected."""
    if signal == "traces":
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
    elif signal == "metrics":
        resp = ExportMetricsServiceResponse()
        if rejected:
            resp.partial_success.rejected_data_points = rejected
    else:
        resp = ExportLogsServiceResponse()
        if rejected:
            resp.partial_success.rejected_log_records = rejected
    if rejected:
        resp.partial_success.error_message = message
    return resp


def retry_metadata(seconds: float) -> tuple[tuple[str, bytes], ...]:
    # OTel SDKs read RetryInfo from this trailer to decide how long to back off.
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, int(seconds))))
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),)


async def _one_message(requests: Any) -> bytes | None:
    async for message in requests:
        return message
    return None


def _handler(ingest: Ingest, signal: str, max_message_bytes: int) -> Callable:
    async def export(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        encoding = ""  # gRPC undoes its own message compression before we see the bytes
        reservation = None
        try:
            # Its size is unknown until it has arrived: reserve the most it can be.
            reservation = ingest.reserve(max_message_bytes)
            request = await _one_message(requests)
            if request is None:
                raise InvalidRequest("the call carried no request message")
            reservation.resize(len(request))
            result = await ingest.export(signal, request, "protobuf", encoding)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RowsRefused as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            context.set_trailing_metadata(retry_metadata(exc.retry_after_s))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Unavailable as exc:
            context.set_trailing_metadata(retry_metadata(exc.retry_after_s))
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s export", signal)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the collector log")
        finally:
            if reservation is not None:
                reservation.release()
        return export_response(signal, result.rejected, result.error_message)

    return export


def server_options(settings: ServeSettings) -> list[tuple[str, int]]:
    """Message size, streams per connection, and the timeouts for slow and idle connections."""
    ms = lambda seconds: int(seconds * 1000)  # noqa: E731
    return [
        ("grpc.max_receive_message_length", settings.message_limit),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", settings.grpc_max_streams),
        # A connection that has not finished its TLS and HTTP/2 preface by then is closed.
        ("grpc.server_handshake_timeout_ms", ms(settings.http_header_timeout_s)),
        ("grpc.max_connection_idle_ms", ms(settings.grpc_idle_timeout_s)),
        ("grpc.max_connection_age_ms", ms(settings.grpc_max_connection_age_s)),
        ("grpc.max_connection_age_grace_ms", ms(max(settings.ack_timeout_s, 5) + 5)),
        # Ping policy: the server checks a silent peer every 2 min and drops it 20 s later;
        # clients may ping every 10 s with calls in flight (OTel SDKs do not ping at all),
        # and a client pinging faster is disconnected after 2 strikes.
        ("grpc.keepalive_time_ms", 120_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_permit_without_calls", 0),
    ]


def build_server(
    ingest: Ingest,
    host: str,
    port: int,
    settings: ServeSettings,
    interceptors: list | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=interceptors or None, options=server_options(settings))
    handlers = []
    for signal, service in SERVICES.items():
        method = grpc.stream_unary_rpc_method_handler(
            _handler(ingest, signal, settings.message_limit),
            request_deserializer=None,
            response_serializer=lambda m: m.SerializeToString(),
        )
        handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
    server.add_generic_rpc_handlers(tuple(handlers))
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        if credentials is not None:
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:  # grpc raises rather than returning 0 when the port is taken
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port} (address in use?)")
    return server, bound
