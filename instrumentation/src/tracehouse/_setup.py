"""Tracing set-up: use the application's TracerProvider when it has one, else install ours.

Ours exports OTLP to wherever the standard variables say (default: a local `tracehouse serve`),
batches in the background, flushes at interpreter exit and keeps working in forked workers
(the SDK's batch processor restarts its thread after fork).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from tracehouse import _config

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# OpenTelemetry is imported inside the functions: this module is loaded by the start-up hook,
# which must stay cheap until tracing is actually needed.
_lock = threading.Lock()
_provider: Any = None
_lazy = False  # zero-code activation: set up on first use rather than at start-up
export_target: tuple[str | None, dict[str, str] | None] = (None, None)  # init's endpoint, headers


_EXPORTERS = {
    # signal: (URL path, HTTP exporter, gRPC exporter)
    "traces": (
        "/v1/traces",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter:OTLPSpanExporter",
    ),
    "metrics": (
        "/v1/metrics",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter:OTLPMetricExporter",
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter:OTLPMetricExporter",
    ),
    "logs": (  # scores (tracehouse.score) travel as log records
        "/v1/logs",
        "opentelemetry.exporter.otlp.proto.http._log_exporter:OTLPLogExporter",
        "opentelemetry.exporter.otlp.proto.grpc._log_exporter:OTLPLogExporter",
    ),
}


def _load(target: str) -> Any:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _exporter(signal: str, endpoint: str | None, headers: dict[str, str] | None) -> Any:
    """The OTLP exporter for a signal, as the standard variables (or init's arguments) say."""
    path, http_exporter, grpc_exporter = _EXPORTERS[signal]
    upper = signal.upper()
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).strip().lower() or "http/protobuf"
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")
    configured = specific or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        try:
            cls = _load(grpc_exporter)
        except ImportError as exc:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: pip install 'tracehouse[grpc]'"
            ) from exc
        return cls(endpoint=endpoint or configured or _config.DEFAULT_GRPC_ENDPOINT, headers=headers)
    if protocol not in ("http/protobuf", "http"):
        raise RuntimeError(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}; use http/protobuf or grpc")
    cls = _load(http_exporter)
    if endpoint:
        return cls(endpoint=endpoint.rstrip("/") + path, headers=headers)
    if specific:
        return cls(headers=headers)  # the SDK reads the signal-specific URL as it is
    base = (configured or _config.DEFAULT_ENDPOINT).rstrip("/")
    return cls(endpoint=base + path, headers=headers)


def _setup_metrics(resource: Any, endpoint: str | None, headers: dict[str, str] | None) -> None:
    """Our MeterProvider, for the GenAI client metrics, unless the application has one."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return
    reader = PeriodicExportingMetricReader(
        _exporter("metrics", endpoint, headers)
    )  # OTEL_METRIC_EXPORT_INTERVAL
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))  # flushes at exit


def has_sdk_provider() -> bool:
    """True when the application (or an earlier init) already set a real TracerProvider."""
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def setup_tracing(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    headers: dict[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> Any:
    """Return the provider spans go to, creating and registering ours only when none exists."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tracehouse._context import ContextSpanProcessor

    global _provider, export_target
    with _lock:
        if _provider is not None:
            return _provider
        export_target = (endpoint, headers)  # for other signals set up later (scores: logs)
        current = trace.get_tracer_provider()
        if has_sdk_provider():
            # An existing OpenTelemetry set-up: attach to it, never install a second provider.
            if isinstance(current, TracerProvider):
                current.add_span_processor(ContextSpanProcessor())
            _provider = current
            return current
        attributes = {}
        if service_name:
            attributes["service.name"] = service_name
        resource = Resource.create(attributes)  # merges OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
        provider = TracerProvider(resource=resource)  # registers its own flush at exit
        provider.add_span_processor(ContextSpanProcessor())
        provider.add_span_processor(BatchSpanProcessor(exporter or _exporter("traces", endpoint, headers)))
        trace.set_tracer_provider(provider)
        _provider = provider
        if exporter is None:
            _setup_metrics(resource, endpoint, headers)
        return provider


def enable_lazy_setup() -> None:
    """Zero-code mode: tracing is set up by `ensure_tracing` on the first instrumented call."""
    global _lazy
    _lazy = True


def ensure_tracing() -> None:
    """Called before creating a span: completes a deferred zero-code set-up (cheap when done)."""
    if _provider is None and _lazy:
        try:
            setup_tracing()
        except Exception as exc:  # never break the application's call
            import sys

            print(f"tracehouse: tracing not set up: {exc!r}", file=sys.stderr)


_logger: Any = None
_logger_lock = threading.Lock()  # not _lock: setting up the logger may set up tracing


def event_logger(provider: Any = None) -> Any:
    """Tracehouse's logger for events (scores, GenAI operation details): on `provider`, else on
    the application's SDK LoggerProvider, else on ours (exporting OTLP like the spans)."""
    global _logger
    from opentelemetry import _logs

    from tracehouse import __version__

    if provider is not None:
        return provider.get_logger("tracehouse", __version__)
    if _logger is not None:
        return _logger
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    with _logger_lock:
        if _logger is not None:
            return _logger
        current = _logs.get_logger_provider()
        if not isinstance(current, LoggerProvider):
            ensure_tracing()
            from opentelemetry import trace

            resource = getattr(trace.get_tracer_provider(), "resource", None) or Resource.create({})
            current = LoggerProvider(resource=resource)  # flushes at exit
            current.add_log_record_processor(BatchLogRecordProcessor(_exporter("logs", *export_target)))
            _logs.set_logger_provider(current)
        _logger = current.get_logger("tracehouse", __version__)
        return _logger
