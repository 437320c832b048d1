"""What every Tracehouse instrumentor shares: OpenTelemetry's BaseInstrumentor life cycle
(instrument once, uninstrument, dependency checks), a tracer and meter named after it, and the
content-capture settings, and the events that carry content when asked to."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any, ClassVar

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tracehouse import __version__, _config, _setup
from tracehouse._setup import ensure_tracing
from tracehouse.instrumentors._common import GenAIMetrics
from tracehouse.instrumentors._semconv import SCHEMA_URL


class _SetupOnFirstSpan(trace.Tracer):
    """A tracer that completes the deferred zero-code set-up before its first span."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        ensure_tracing()
        return self._tracer.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        ensure_tracing()
        return self._tracer.start_as_current_span(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracer, name)


class GenAIInstrumentor(BaseInstrumentor):
    name: ClassVar[str]  # Tracehouse's name: "openai"
    packages: ClassVar[Collection[str]]  # requirement strings of the instrumented distribution

    tracer: trace.Tracer
    meter: metrics.Meter

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.packages

    def _instrument(self, **kwargs: Any) -> None:
        scope = f"tracehouse.instrumentors.{self.name}"
        provider = kwargs.get("tracer_provider")
        tracer = trace.get_tracer(scope, __version__, provider, schema_url=SCHEMA_URL)
        # Without an explicit provider this is the global proxy tracer: zero-code mode sets the
        # provider up on the first call, so that an application's own set-up comes first.
        self.tracer = tracer if provider is not None else _SetupOnFirstSpan(tracer)
        self.meter = metrics.get_meter(
            scope, __version__, kwargs.get("meter_provider"), schema_url=SCHEMA_URL
        )
        self.metrics = GenAIMetrics(self.meter)
        self.logger_provider = kwargs.get("logger_provider")
        self._logger: Any = None
        # Where message content goes (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT).
        self.content = _config.content_capture()
        self.max_content_bytes = _config.max_content_bytes()
        self.inject_stream_usage = _config.inject_stream_usage()
        self.patch()

    def _uninstrument(self, **kwargs: Any) -> None:
        self.unpatch()

    def emit_event(self, name: str, attributes: dict[str, Any], span: trace.Span) -> None:
        """An OpenTelemetry event (a log record named `name`) on `span`."""
        from opentelemetry._logs import LogRecord

        if self._logger is None:
            self._logger = _setup.event_logger(self.logger_provider)
        self._logger.emit(
            LogRecord(
                timestamp=time.time_ns(),
                context=trace.set_span_in_context(span),
                event_name=name,
                attributes=attributes,
            )
        )

    def patch(self) -> None:
        raise NotImplementedError

    def unpatch(self) -> None:
        raise NotImplementedError
