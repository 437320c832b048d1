"""Real OpenTelemetry SDK clients (OTLP over gRPC and HTTP) -> exact rows in ClickHouse.

Every assertion runs right after force_flush returns, without polling: the collector answers
an export only after its rows are inserted, so they must be visible by then.
"""

from __future__ import annotations

import logging
import time
import warnings

import pytest
from helpers import is_lower_hex, quote, unique
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

pytestmark = pytest.mark.timeout(120)


def span_exporter(transport: str, collector):
    if transport in ("grpc", "grpc-gzip"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        compression = GrpcCompression.Gzip if transport == "grpc-gzip" else GrpcCompression.NoCompression
        return OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30, compression=compression)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    compression = Compression.Gzip if transport == "http-gzip" else Compression.NoCompression
    return OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces", timeout=30, compression=compression)


def metric_exporter(transport: str, collector):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=collector.http_url + "/v1/metrics", timeout=30)


def log_exporter(transport: str, collector):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=collector.http_url + "/v1/logs", timeout=30)


def hex_trace(ctx) -> str:
    return format(ctx.trace_id, "032x")


def hex_span(ctx) -> str:
    return format(ctx.span_id, "016x")


SPAN_ATTRIBUTES = {
    "str": "hello",
    "unicode": "héllo ✓ 日本",
    "int": 5,
    "neg": -42,
    "big": 9_007_199_254_740_993,  # not representable as a double: must stay exact
    "float": 1.5,
    "bool_t": True,
    "bool_f": False,
    "list_str": ["a", "b"],
    "list_int": [1, 2, 3],
    "list_float": [0.5, 2.25],
    "list_bool": [True, False],
}
EXPECTED_ATTRIBUTES = {
    "str": "hello",
    "unicode": "héllo ✓ 日本",
    "int": "5",
    "neg": "-42",
    "big": "9007199254740993",
    "float": "1.5",
    "bool_t": "true",
    "bool_f": "false",
    "list_str": '["a","b"]',
    "list_int": "[1,2,3]",
    "list_float": "[0.5,2.25]",
    "list_bool": "[true,false]",
}

TRACE_COLUMNS = """
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes,
    ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
    toUnixTimestamp64Nano(Timestamp) AS StartNs,
    Events.Name AS EventNames, Events.Attributes AS EventAttributes,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EventNs,
    Links.TraceId AS LinkTraceIds, Links.SpanId AS LinkSpanIds, Links.Attributes AS LinkAttributes
"""


def emit_trace(tracer) -> dict:
    """A small trace covering every span field; returns what the rows must contain."""
    t0 = time.time_ns() - 10_000_000_000
    target = tracer.start_span("linked-target", kind=SpanKind.PRODUCER, start_time=t0 - 5_000, attributes={})
    target.end(end_time=t0 - 1_000)

    parent = tracer.start_span("GET /items", kind=SpanKind.SERVER, start_time=t0, attributes=SPAN_ATTRIBUTES)
    parent.set_status(Status(StatusCode.OK))
    ctx = trace.set_span_in_context(parent)
    child = tracer.start_span(
        "db.query",
        context=ctx,
        kind=SpanKind.CLIENT,
        start_time=t0 + 1_000,
        links=[Link(target.get_span_context(), {"link.reason": "caused-by", "link.n": 2})],
    )
    child.add_event("cache.miss", {"cache.key": "abc", "cache.size": 3, "hit": False}, timestamp=t0 + 2_000)
    child.add_event("retry", {}, timestamp=t0 + 3_000)
    child.set_status(Status(StatusCode.ERROR, "upstream timed out"))
    child.end(end_time=t0 + 1_000 + 123_456_789)
    worker = tracer.start_span("consume", context=ctx, kind=SpanKind.CONSUMER, start_time=t0 + 10)
    worker.end(end_time=t0 + 20)
    internal = tracer.start_span("internal-step", context=ctx, start_time=t0 + 30)
    internal.end(end_time=t0 + 30)  # zero duration
    parent.end(end_time=t0 + 500_000_000)
    return {
        "t0": t0,
        "target": target.get_span_context(),
        "parent": parent.get_span_context(),
        "child": child.get_span_context(),
        "worker": worker.get_span_context(),
        "internal": internal.get_span_context(),
    }


@pytest.mark.parametrize(
    "transport,processor",
    [("grpc", "batch"), ("http", "simple"), ("http-gzip", "batch"), ("grpc", "simple"), ("grpc-gzip", "batch")],
)
def test_sdk_spans_stored_exactly(collector, transport, processor):
    service = unique("sdk-traces")
    resource = Resource.create({"service.name": service, "deployment.environment": "ci", "host.cpus": 2})
    provider = TracerProvider(resource=resource)
    exporter = span_exporter(transport, collector)
    proc = BatchSpanProcessor(exporter) if processor == "batch" else SimpleSpanProcessor(exporter)
    provider.add_span_processor(proc)
    tracer = provider.get_tracer("tests.sdk.tracer", "4.5.6")
    try:
        ids = emit_trace(tracer)
        assert provider.force_flush(30_000)
        rows = collector.sql(f"SELECT {TRACE_COLUMNS} FROM otel_traces WHERE ServiceName = {quote(service)}")
    finally:
        provider.shutdown()

    by_name = {r["SpanName"]: r for r in rows}
    assert len(rows) == 5, rows
    assert set(by_name) == {"linked-target", "GET /items", "db.query", "consume", "internal-step"}
    t0 = ids["t0"]
    trace_id = hex_trace(ids["parent"])

    parent = by_name["GET /items"]
    assert parent["TraceId"] == trace_id and is_lower_hex(parent["TraceId"], 32)
    assert parent["SpanId"] == hex_span(ids["parent"]) and is_lower_hex(parent["SpanId"], 16)
    assert parent["ParentSpanId"] == ""
    assert parent["SpanKind"] == "Server"
    assert parent["StatusCode"] == "Ok"
    assert parent["StatusMessage"] == ""
    assert parent["Duration"] == 500_000_000
    assert parent["StartNs"] == t0
    assert parent["SpanAttributes"] == EXPECTED_ATTRIBUTES
    assert parent["ServiceName"] == service
    assert parent["ScopeName"] == "tests.sdk.tracer"
    assert parent["ScopeVersion"] == "4.5.6"
    res = parent["ResourceAttributes"]
    assert res["service.name"] == service
    assert res["deployment.environment"] == "ci"
    assert res["host.cpus"] == "2"
    assert res["telemetry.sdk.language"] == "python"
    assert res["telemetry.sdk.name"] == "opentelemetry"
    assert parent["EventNames"] == [] and parent["LinkTraceIds"] == []

    child = by_name["db.query"]
    assert child["TraceId"] == trace_id
    assert child["SpanId"] == hex_span(ids["child"])
    assert child["ParentSpanId"] == parent["SpanId"]
    assert child["SpanKind"] == "Client"
    assert child["StatusCode"] == "Error"
    assert child["StatusMessage"] == "upstream timed out"
    assert child["Duration"] == 123_456_789
    assert child["StartNs"] == t0 + 1_000
    assert child["SpanAttributes"] == {}
    assert child["EventNames"] == ["cache.miss", "retry"]
    assert child["EventAttributes"] == [{"cache.key": "abc", "cache.size": "3", "hit": "false"}, {}]
    assert child["EventNs"] == [t0 + 2_000, t0 + 3_000]
    assert child["LinkTraceIds"] == [hex_trace(ids["target"])]
    assert child["LinkSpanIds"] == [hex_span(ids["target"])]
    assert child["LinkAttributes"] == [{"link.reason": "caused-by", "link.n": "2"}]

    target = by_name["linked-target"]
    assert target["SpanKind"] == "Producer"
    assert target["StatusCode"] == "Unset"
    assert target["TraceId"] == hex_trace(ids["target"]) != trace_id
    assert target["Duration"] == 4_000

    assert by_name["consume"]["SpanKind"] == "Consumer"
    assert by_name["consume"]["ParentSpanId"] == parent["SpanId"]
    assert by_name["consume"]["Duration"] == 10
    assert by_name["internal-step"]["SpanKind"] == "Internal"
    assert by_name["internal-step"]["Duration"] == 0

    # The materialized view indexes the trace by id with its time range.
    ts = collector.sql(
        "SELECT TraceId, min(Start) AS s, max(End) AS e, toUnixTimestamp(min(Start)) AS s_unix, "
        "toUnixTimestamp(max(End)) AS e_unix FROM otel_traces_trace_id_ts "
        f"WHERE TraceId IN ({quote(trace_id)}, {quote(hex_trace(ids['target']))}) GROUP BY TraceId"
    )
    assert {r["TraceId"] for r in ts} == {trace_id, hex_trace(ids["target"])}
    main = next(r for r in ts if r["TraceId"] == trace_id)
    assert main["s_unix"] == t0 // 1_000_000_000
    assert main["e_unix"] == (t0 + 1_000) // 1_000_000_000  # latest span *start* in the trace


def test_sdk_exporter_result_is_success_and_rows_visible_at_once(collector):
    """OTLPSpanExporter.export() returns SUCCESS only once the rows can be read."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    service = unique("sdk-direct")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("direct")
    for i in range(300):
        with tracer.start_as_current_span(f"s{i % 7}", attributes={"i": i}):
            pass
    spans = memory.get_finished_spans()
    assert len(spans) == 300
    grpc_exp = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
    http_exp = HttpExporter(endpoint=collector.http_url + "/v1/traces", timeout=30)
    try:
        assert grpc_exp.export(spans[:150]) == SpanExportResult.SUCCESS
        assert collector.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 150
        assert http_exp.export(spans[150:]) == SpanExportResult.SUCCESS
        rows = collector.sql(
            f"SELECT SpanId, SpanAttributes['i'] AS i FROM otel_traces WHERE ServiceName = {quote(service)}"
        )
    finally:
        grpc_exp.shutdown()
        http_exp.shutdown()
        provider.shutdown()
    assert len(rows) == 300
    assert {r["SpanId"] for r in rows} == {hex_span(s.context) for s in spans}
    assert sorted(int(r["i"]) for r in rows) == list(range(300))


# -- metrics ---------------------------------------------------------------------------------

DEFAULT_BOUNDS = [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metrics_stored_in_the_right_tables(collector, transport):
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    service = unique("sdk-metrics")
    reader = PeriodicExportingMetricReader(metric_exporter(transport, collector), export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "team": "ml"}),
        metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("tests.sdk.meter", "0.9")
    counter = meter.create_counter("requests", unit="1", description="requests served")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/a"})
    counter.add(10, {"route": "/b"})
    latency = meter.create_histogram("latency", unit="ms", description="request latency")
    for v in (1, 7, 7, 30, 1200):
        latency.record(v, {"route": "/a"})
    depth = meter.create_up_down_counter("queue.depth")
    depth.add(5)
    depth.add(-2)
    meter.create_observable_gauge(
        "temperature", callbacks=[lambda _options: [Observation(21.5, {"room": "lab"})]], unit="Cel"
    )
    size = meter.create_histogram("payload.size", unit="By")
    for v in (1, 2, 4, 8):
        size.record(v)
    try:
        assert provider.force_flush(30_000)
        svc = quote(service)
        sums = collector.sql(
            "SELECT MetricName, MetricDescription, MetricUnit, Attributes, Value, IsMonotonic, "
            "AggregationTemporality, ScopeName, ScopeVersion, ResourceAttributes "
            f"FROM otel_metrics_sum WHERE ServiceName = {svc} ORDER BY MetricName, Value"
        )
        hists = collector.sql(
            "SELECT MetricName, MetricUnit, Count, Sum, Min, Max, BucketCounts, ExplicitBounds, Attributes, "
            f"AggregationTemporality FROM otel_metrics_histogram WHERE ServiceName = {svc}"
        )
        gauges = collector.sql(
            f"SELECT MetricName, MetricUnit, Value, Attributes FROM otel_metrics_gauge WHERE ServiceName = {svc}"
        )
        exps = collector.sql(
            "SELECT MetricName, Count, Sum, Min, Max, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, "
            f"NegativeBucketCounts FROM otel_metrics_exponential_histogram WHERE ServiceName = {svc}"
        )
        summaries = collector.scalar(f"SELECT count() FROM otel_metrics_summary WHERE ServiceName = {svc}")
    finally:
        provider.shutdown()

    assert [(r["MetricName"], r["Attributes"], r["Value"]) for r in sums] == [
        ("queue.depth", {}, 3.0),
        ("requests", {"route": "/a"}, 7.0),
        ("requests", {"route": "/b"}, 10.0),
    ]
    requests_row = sums[1]
    assert requests_row["IsMonotonic"] is True
    assert requests_row["AggregationTemporality"] == 2  # cumulative, the SDK's default
    assert requests_row["MetricDescription"] == "requests served"
    assert requests_row["MetricUnit"] == "1"
    assert requests_row["ScopeName"] == "tests.sdk.meter"
    assert requests_row["ScopeVersion"] == "0.9"
    assert requests_row["ResourceAttributes"]["team"] == "ml"
    assert sums[0]["IsMonotonic"] is False

    assert len(hists) == 1, hists
    h = hists[0]
    assert h["MetricName"] == "latency" and h["MetricUnit"] == "ms"
    assert (h["Count"], h["Sum"], h["Min"], h["Max"]) == (5, 1245.0, 1.0, 1200.0)
    assert h["ExplicitBounds"] == DEFAULT_BOUNDS
    expected_buckets = [0] * 16
    expected_buckets[1] = 1  # 1 in (0, 5]
    expected_buckets[2] = 2  # 7, 7 in (5, 10]
    expected_buckets[4] = 1  # 30 in (25, 50]
    expected_buckets[11] = 1  # 1200 in (1000, 2500]
    assert h["BucketCounts"] == expected_buckets
    assert h["Attributes"] == {"route": "/a"}
    assert h["AggregationTemporality"] == 2

    assert gauges == [{"MetricName": "temperature", "MetricUnit": "Cel", "Value": 21.5, "Attributes": {"room": "lab"}}]

    assert len(exps) == 1, exps
    e = exps[0]
    assert e["MetricName"] == "payload.size"
    assert (e["Count"], e["Sum"], e["Min"], e["Max"]) == (4, 15.0, 1.0, 8.0)
    assert e["ZeroCount"] == 0
    assert sum(e["PositiveBucketCounts"]) == 4
    assert sum(e["NegativeBucketCounts"]) == 0
    assert isinstance(e["Scale"], int) and -10 <= e["Scale"] <= 20
    # value 1 falls in bucket index ceil(log2(1) * 2**scale) - 1 = -1: offset must place it there
    assert e["PositiveOffset"] == -1
    assert summaries == 0


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_logs_with_trace_context(collector, transport):
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    service = unique("sdk-logs")
    resource = Resource.create({"service.name": service})
    log_provider = LoggerProvider(resource=resource)
    log_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter(transport, collector)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=log_provider)
    tracer_provider = TracerProvider(resource=resource)
    tracer = tracer_provider.get_tracer("tests.logs")
    pylog = logging.getLogger(f"tests.logs.{service}")
    pylog.setLevel(logging.DEBUG)
    pylog.propagate = False
    pylog.addHandler(handler)
    try:
        with tracer.start_as_current_span("handle-request") as span:
            ctx = span.get_span_context()
            pylog.warning("disk %s is %d%% full", "sda", 91, extra={"disk_id": "sda", "used_pct": 91})
        pylog.error("outside any span: %s", "boom")
        pylog.info("plain info ✓")
        assert log_provider.force_flush(30_000)
        rows = collector.sql(
            "SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, TraceFlags, ServiceName, ScopeName, "
            "LogAttributes, ResourceAttributes, toUnixTimestamp64Nano(Timestamp) AS ns "
            f"FROM otel_logs WHERE ServiceName = {quote(service)} ORDER BY Timestamp"
        )
    finally:
        pylog.removeHandler(handler)
        log_provider.shutdown()
        tracer_provider.shutdown()

    assert [r["Body"] for r in rows] == ["disk sda is 91% full", "outside any span: boom", "plain info ✓"]
    warn, err, info = rows
    assert warn["SeverityText"] in ("WARN", "WARNING")
    assert warn["SeverityNumber"] == 13
    assert err["SeverityText"] == "ERROR" and err["SeverityNumber"] == 17
    assert info["SeverityText"] == "INFO" and info["SeverityNumber"] == 9
    assert warn["TraceId"] == hex_trace(ctx)
    assert warn["SpanId"] == hex_span(ctx)
    assert warn["TraceFlags"] == int(ctx.trace_flags) & 0xFF and warn["TraceFlags"] & 1 == 1  # sampled
    assert err["TraceId"] == "" and err["SpanId"] == ""
    assert warn["ServiceName"] == service
    assert warn["ScopeName"] == pylog.name
    assert warn["LogAttributes"]["disk_id"] == "sda"
    assert warn["LogAttributes"]["used_pct"] == "91"
    assert warn["LogAttributes"]["code.function.name"] == "test_sdk_logs_with_trace_context"
    assert warn["ResourceAttributes"]["service.name"] == service
    assert abs(warn["ns"] - time.time_ns()) < 120 * 1_000_000_000
    # the row is really stored with nanosecond precision, not rounded to the second
    assert warn["ns"] % 1_000_000_000 != 0 or err["ns"] % 1_000_000_000 != 0


def test_grpc_and_http_sdk_data_in_one_trace(collector):
    """Two services exporting over different transports share one trace id."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    svc_a, svc_b = unique("front"), unique("back")
    pa = TracerProvider(resource=Resource.create({"service.name": svc_a}))
    pa.add_span_processor(SimpleSpanProcessor(span_exporter("grpc", collector)))
    pb = TracerProvider(resource=Resource.create({"service.name": svc_b}))
    pb.add_span_processor(SimpleSpanProcessor(span_exporter("http", collector)))
    carrier: dict[str, str] = {}
    try:
        with pa.get_tracer("a").start_as_current_span("call-backend", kind=SpanKind.CLIENT) as client_span:
            TraceContextTextMapPropagator().inject(carrier)
        ctx = TraceContextTextMapPropagator().extract(carrier)
        with pb.get_tracer("b").start_as_current_span("serve", context=ctx, kind=SpanKind.SERVER):
            pass
        rows = collector.sql(
            "SELECT ServiceName, TraceId, SpanId, ParentSpanId FROM otel_traces "
            f"WHERE ServiceName IN ({quote(svc_a)}, {quote(svc_b)})"
        )
    finally:
        pa.shutdown()
        pb.shutdown()
    by_service = {r["ServiceName"]: r for r in rows}
    assert len(rows) == 2
    trace_id = hex_trace(client_span.get_span_context())
    assert by_service[svc_a]["TraceId"] == by_service[svc_b]["TraceId"] == trace_id
    assert by_service[svc_b]["ParentSpanId"] == by_service[svc_a]["SpanId"]
    assert "traceparent" in carrier
