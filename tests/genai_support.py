"""Shared by the instrumentor tests: an instrumentor under test with in-memory span and metric
exporters, and the check that every span was ended exactly once."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Traced:
    """Subclass per test module, naming the instrumentor class under test."""

    instrumentor_class: ClassVar[type]

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.instrumentor = self.instrumentor_class()

    def instrument(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.provider, meter_provider=self.meter_provider)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def one(self) -> Any:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        out = {}
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = m
        return out


def fake_api(handler: type[BaseHTTPRequestHandler], path: str = "") -> Iterator[Any]:
    """A provider's API faked by `handler` on a free local port, for one test module.

    The server records requests in `server.requests` and has its `base_url` (plus `path`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.base_url = f"http://127.0.0.1:{server.server_port}{path}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def exactly_once(caplog: pytest.LogCaptureFixture, traced: Traced) -> Iterator[Traced]:
    """Instrument for one test, then check no span was ended twice or changed after its end."""
    traced.instrument()
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield traced
        gc.collect()
    traced.instrumentor.uninstrument()
    # The SDK ignores a second end() (and attributes set after the end) with a warning: there
    # must be none, so every span was ended exactly once and complete when it ended.
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    assert not [r.getMessage() for r in records if "ended span" in r.getMessage()]


def collector_provider(collector: Any, service: str) -> TracerProvider:
    """A TracerProvider exporting each span at once over OTLP/HTTP to a running collector."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces"))
    )
    return provider


def points_by_attributes(metric: Any) -> dict[tuple, Any]:
    """A metric's data points keyed by their attributes, as `key(attributes)` spells them."""
    return {key(p.attributes): p for p in metric.data.data_points}


def key(attributes: Any) -> tuple:
    return tuple(sorted(dict(attributes).items()))
