"""Shared by the instrumentor tests: an instrumentor under test with in-memory span and metric
exporters, and the check that every span was ended exactly once."""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# A fake server streams its first chunk FIRST_CHUNK_DELAY_S after the request and the rest
# REST_DELAY_S later, so an instrumentor's time to first chunk has known bounds.
FIRST_CHUNK_DELAY_S = 0.1
REST_DELAY_S = 0.3


def send_stream(
    handler: BaseHTTPRequestHandler, chunks: list[bytes], content_type: str, cut: bool = False
) -> None:
    """Answer 200 with `chunks` as one streamed body, paced by the delays above. A `cut` stream
    promises more than it sends, then drops the connection."""
    time.sleep(FIRST_CHUNK_DELAY_S)
    # As real servers do: without it, Nagle holds the first chunk back for the client's delayed
    # ACK (about 40 ms on Linux), and that would be measured as time to first chunk.
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(sum(map(len, chunks)) + (10_000 if cut else 0)))
    handler.send_header("Connection", "close" if cut else "keep-alive")
    handler.end_headers()
    handler.wfile.write(chunks[0])
    handler.wfile.flush()
    if len(chunks) > 1:
        time.sleep(REST_DELAY_S)
        handler.wfile.write(b"".join(chunks[1:]))
        handler.wfile.flush()
    if cut:
        handler.close_connection = True


def assert_time_to_first_chunk(
    span: Any, attribute: str = "gen_ai.response.time_to_first_chunk", client_reads_whole_kb: bool = False
) -> None:
    """Between the fake server's delays: not before its first chunk left, well before the rest.

    `client_reads_whole_kb`: the client library hands out nothing until it has read 1 KiB or the
    end of the body (botocore reads event streams so), so a small first chunk reaches the
    instrumentor only with the rest; the upper bound is then the span's end."""
    ttft = span.attributes[attribute]
    duration_s = (span.end_time - span.start_time) / 1e9
    # Half the gap as the margin: a busy machine may wake the client late for the first chunk.
    latest = duration_s if client_reads_whole_kb else duration_s - REST_DELAY_S / 2
    assert FIRST_CHUNK_DELAY_S <= ttft <= latest, (ttft, duration_s)


class Traced:
    """Subclass per test module, naming the instrumentor class under test (or pass one)."""

    instrumentor_class: ClassVar[type]

    def __init__(self, instrumentor: Any = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.instrumentor = instrumentor if instrumentor is not None else self.instrumentor_class()

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


class FakeAPIHandler(BaseHTTPRequestHandler):
    """What every fake provider API shares: keep-alive HTTP/1.1, no request log, JSON answers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


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


class UsagePoints(NamedTuple):
    """The GenAI client metrics' points for one model: token usage by type, duration of the
    successful calls and of the failed ones."""

    tokens: dict[tuple, Any]  # every token-usage point
    input: Any
    output: Any
    ok: Any  # gen_ai.client.operation.duration of the calls that succeeded
    failed: Any  # ... and of those that failed with `error_type`


def usage_points(metrics: dict[str, Any], base: dict[str, Any], failed_model: str, error_type: str) -> UsagePoints:
    """Look up, in `metrics` (Traced.metrics()), the points of the calls described by `base`
    (their attributes) and of a call to `failed_model` that raised `error_type`."""
    tokens = points_by_attributes(metrics["gen_ai.client.token.usage"])
    duration = points_by_attributes(metrics["gen_ai.client.operation.duration"])
    failed = {k: v for k, v in base.items() if k != "gen_ai.response.model"}  # no response came
    failed.update({"gen_ai.request.model": failed_model, "error.type": error_type})
    return UsagePoints(
        tokens=tokens,
        input=tokens[key({**base, "gen_ai.token.type": "input"})],
        output=tokens[key({**base, "gen_ai.token.type": "output"})],
        ok=duration[key(base)],
        failed=duration[key(failed)],
    )


def key(attributes: Any) -> tuple:
    return tuple(sorted(dict(attributes).items()))
