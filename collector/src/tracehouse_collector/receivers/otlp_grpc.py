"""OTLP/gRPC receiver: TraceService, MetricsService and LogsService on one grpc.aio server.

Requests arrive as raw bytes (no deserializer) and are parsed in the decoding workers, so
this process never builds protobuf objects for them.
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

from tracehouse_collector.ingest import Ingest, InvalidRequest, Overloaded, RowsRefused, Unavailable

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


def _retry_metadata(seconds: float) -> tuple[tuple[str, bytes], ...]:
    # OTel SDKs read RetryInfo from this trailer to decide how long to back off.
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, int(seconds))))
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),)


def _handler(ingest: Ingest, signal: str) -> Callable:
    async def export(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        encoding = ""  # gRPC undoes its own message compression before we see the bytes
        try:
            result = await ingest.export(signal, request, "protobuf", encoding)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RowsRefused as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            context.set_trailing_metadata(_retry_metadata(exc.retry_after_s))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Unavailable as exc:
            context.set_trailing_metadata(_retry_metadata(exc.retry_after_s))
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception:
            log.exception("unexpected error in %s export", signal)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the collector log")
        return export_response(signal, result.rejected, result.error_message)

    return export


def build_server(
    ingest: Ingest,
    host: str,
    port: int,
    max_message_bytes: int,
    interceptors: list | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(
        interceptors=interceptors or None,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    handlers = []
    for signal, service in SERVICES.items():
        method = grpc.unary_unary_rpc_method_handler(
            _handler(ingest, signal),
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
