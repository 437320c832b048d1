"""Hand-built OTLP/JSON (and gzip bodies) over HTTP -> exact rows.

OTLP/JSON differs from protobuf's canonical JSON: ids are hex (case-insensitive), int64s are
strings (numbers accepted too), field names lowerCamelCase, enums integers.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib

import pytest
from helpers import BASE_NS, make_span, quote, trace_request, unique
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

pytestmark = pytest.mark.timeout(120)


def ids() -> tuple[str, str]:
    """A fresh (trace id, span id) pair in lowercase hex."""
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def attr(key: str, **value) -> dict:
    return {"key": key, "value": value}


def resource(service: str, *extra: dict) -> dict:
    return {"attributes": [attr("service.name", stringValue=service), *extra]}


def post_json(collector, path: str, doc: dict, **headers):
    return collector.post(path, json.dumps(doc).encode(), "application/json", **headers)


def test_json_traces_every_field(collector):
    service = unique("json-traces")
    trace_id, _ = ids()
    root_id, child_id, link_span = (ids()[1] for _ in range(3))
    link_trace, _ = ids()
    start = 1_700_000_000_123_456_789
    doc = {
        "resourceSpans": [
            {
                "resource": resource(service, attr("process.pid", intValue="4321")),
                "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
                "scopeSpans": [
                    {
                        "scope": {"name": "json.scope", "version": "2.0"},
                        "spans": [
                            {
                                # upper-case hex must be accepted and stored lower-case
                                "traceId": trace_id.upper(),
                                "spanId": root_id.upper(),
                                "parentSpanId": "",
                                "traceState": "vendor=abc",
                                "name": "POST /predict",
                                "kind": 2,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 250_000_000),
                                "attributes": [
                                    attr("http.status_code", intValue="200"),
                                    attr("ratio", doubleValue=0.25),
                                    attr("whole", doubleValue=3.0),
                                    attr("ok", boolValue=True),
                                    attr("tags", arrayValue={"values": [{"stringValue": "x"}, {"intValue": "2"}]}),
                                    attr("m", kvlistValue={"values": [attr("a", stringValue="b")]}),
                                    attr("raw", bytesValue=base64.b64encode(b"\x01\x02\x03").decode()),
                                    attr("quote", stringValue='say "hi"\n'),
                                ],
                                "status": {"code": 1},
                            },
                            {
                                "traceId": trace_id,
                                "spanId": child_id,
                                "parentSpanId": root_id,
                                "name": "model.forward",
                                "kind": 3,
                                # int64 as a JSON number is accepted as well
                                "startTimeUnixNano": start + 1_000,
                                "endTimeUnixNano": start + 101_000,
                                "events": [
                                    {
                                        "timeUnixNano": str(start + 5_000),
                                        "name": "exception",
                                        "attributes": [attr("exception.type", stringValue="ValueError")],
                                    }
                                ],
                                "links": [
                                    {
                                        "traceId": link_trace,
                                        "spanId": link_span,
                                        "traceState": "k=v",
                                        "attributes": [attr("why", stringValue="batch")],
                                    }
                                ],
                                "status": {"code": 2, "message": "shape mismatch"},
                            },
                        ],
                    }
                ],
            }
        ]
    }
    r = post_json(collector, "/v1/traces", doc)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {}  # full success: no partialSuccess

    rows = collector.sql(
        "SELECT TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, StatusCode, StatusMessage, "
        "Duration, toUnixTimestamp64Nano(Timestamp) AS ns, SpanAttributes, ResourceAttributes, ScopeName, "
        "ScopeVersion, Events.Name AS en, Events.Attributes AS ea, "
        "arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS ets, Links.TraceId AS lt, "
        "Links.SpanId AS ls, Links.TraceState AS lts, Links.Attributes AS la "
        f"FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY Timestamp"
    )
    assert len(rows) == 2
    root, child = rows
    assert root["TraceId"] == trace_id and root["SpanId"] == root_id
    assert root["ParentSpanId"] == ""
    assert root["TraceState"] == "vendor=abc"
    assert root["SpanName"] == "POST /predict"
    assert root["SpanKind"] == "Server"
    assert root["StatusCode"] == "Ok"
    assert root["Duration"] == 250_000_000
    assert root["ns"] == start
    assert root["SpanAttributes"] == {
        "http.status_code": "200",
        "ratio": "0.25",
        "whole": "3",
        "ok": "true",
        "tags": '["x",2]',
        "m": '{"a":"b"}',
        "raw": "AQID",
        "quote": 'say "hi"\n',
    }
    assert root["ResourceAttributes"] == {"service.name": service, "process.pid": "4321"}
    assert root["ScopeName"] == "json.scope" and root["ScopeVersion"] == "2.0"

    assert child["TraceId"] == trace_id and child["SpanId"] == child_id
    assert child["ParentSpanId"] == root_id
    assert child["SpanKind"] == "Client"
    assert child["StatusCode"] == "Error" and child["StatusMessage"] == "shape mismatch"
    assert child["Duration"] == 100_000
    assert child["en"] == ["exception"]
    assert child["ea"] == [{"exception.type": "ValueError"}]
    assert child["ets"] == [start + 5_000]
    assert child["lt"] == [link_trace] and child["ls"] == [link_span] and child["lts"] == ["k=v"]
    assert child["la"] == [{"why": "batch"}]

    assert collector.scalar(f"SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = {quote(trace_id)}") >= 1


def test_json_content_type_with_charset(collector):
    service = unique("json-charset")
    trace_id, span_id = ids()
    doc = {
        "resourceSpans": [
            {
                "resource": resource(service),
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "ünïcode span ✓",
                                "startTimeUnixNano": str(BASE_NS),
                                "endTimeUnixNano": str(BASE_NS + 7),
                            }
                        ]
                    }
                ],
            }
        ]
    }
    r = collector.post(
        "/v1/traces", json.dumps(doc, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
    )
    assert r.status_code == 200, r.text
    rows = collector.sql(f"SELECT SpanName, SpanKind, Duration FROM otel_traces WHERE ServiceName = {quote(service)}")
    assert rows == [{"SpanName": "ünïcode span ✓", "SpanKind": "Unspecified", "Duration": 7}]


def metric_doc(service: str, trace_id: str, span_id: str) -> dict:
    t0, t1 = str(BASE_NS), str(BASE_NS + 60_000_000_000)
    return {
        "resourceMetrics": [
            {
                "resource": resource(service, attr("host.name", stringValue="gpu-01")),
                "schemaUrl": "https://example.com/res",
                "scopeMetrics": [
                    {
                        "scope": {"name": "json.meter", "version": "3"},
                        "schemaUrl": "https://example.com/scope",
                        "metrics": [
                            {
                                "name": "tokens.total",
                                "description": "tokens",
                                "unit": "{token}",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "attributes": [attr("model", stringValue="gpt")],
                                            "startTimeUnixNano": t0,
                                            "timeUnixNano": t1,
                                            "asInt": "9007199254740993",
                                            "exemplars": [
                                                {
                                                    "timeUnixNano": t1,
                                                    "asInt": "5",
                                                    "traceId": trace_id.upper(),
                                                    "spanId": span_id,
                                                    "filteredAttributes": [attr("user", stringValue="u1")],
                                                }
                                            ],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "gpu.util",
                                "unit": "1",
                                "gauge": {
                                    "dataPoints": [
                                        {"timeUnixNano": t1, "asDouble": 0.875, "attributes": [attr("gpu", intValue="0")]},
                                        {"timeUnixNano": t1, "asDouble": 0.5, "attributes": [attr("gpu", intValue="1")]},
                                    ]
                                },
                            },
                            {
                                "name": "step.latency",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": t0,
                                            "timeUnixNano": t1,
                                            "count": "6",
                                            "sum": 12.5,
                                            "min": 0.5,
                                            "max": 5,
                                            "bucketCounts": ["1", "2", "3"],
                                            "explicitBounds": [1, 2.5],
                                            "flags": 0,
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "payload.bytes",
                                "unit": "By",
                                "exponentialHistogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": t0,
                                            "timeUnixNano": t1,
                                            "count": "7",
                                            "sum": 100.0,
                                            "scale": 3,
                                            "zeroCount": "1",
                                            "positive": {"offset": -2, "bucketCounts": ["1", "0", "4"]},
                                            "negative": {"offset": 5, "bucketCounts": ["1"]},
                                            "min": -40.0,
                                            "max": 60.0,
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "rpc.duration",
                                "unit": "ms",
                                "summary": {
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": t0,
                                            "timeUnixNano": t1,
                                            "count": "10",
                                            "sum": 55.5,
                                            "quantileValues": [
                                                {"quantile": 0.5, "value": 4.0},
                                                {"quantile": 0.99, "value": 20.25},
                                            ],
                                        }
                                    ]
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }


def test_json_metrics_all_five_kinds(collector):
    service = unique("json-metrics")
    trace_id, span_id = ids()
    r = post_json(collector, "/v1/metrics", metric_doc(service, trace_id, span_id))
    assert r.status_code == 200, r.text
    assert r.json() == {}
    svc = quote(service)
    t0_s, t1_s = BASE_NS // 10**9, BASE_NS // 10**9 + 60

    (s,) = collector.sql(
        "SELECT MetricName, MetricDescription, MetricUnit, Attributes, Value, AggregationTemporality, IsMonotonic, "
        "toUnixTimestamp(StartTimeUnix) AS st, toUnixTimestamp(TimeUnix) AS tt, ResourceAttributes, "
        "ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeSchemaUrl, Exemplars.TraceId AS xt, "
        "Exemplars.SpanId AS xs, Exemplars.Value AS xv, Exemplars.FilteredAttributes AS xa "
        f"FROM otel_metrics_sum WHERE ServiceName = {svc}"
    )
    assert s["MetricName"] == "tokens.total" and s["MetricDescription"] == "tokens" and s["MetricUnit"] == "{token}"
    assert s["Attributes"] == {"model": "gpt"}
    assert s["Value"] == float(9007199254740993)
    assert s["AggregationTemporality"] == 1 and s["IsMonotonic"] is True
    assert (s["st"], s["tt"]) == (t0_s, t1_s)
    assert s["ResourceAttributes"] == {"service.name": service, "host.name": "gpu-01"}
    assert s["ResourceSchemaUrl"] == "https://example.com/res"
    assert s["ScopeSchemaUrl"] == "https://example.com/scope"
    assert (s["ScopeName"], s["ScopeVersion"]) == ("json.meter", "3")
    assert s["xt"] == [trace_id] and s["xs"] == [span_id] and s["xv"] == [5.0]
    assert s["xa"] == [{"user": "u1"}]

    gauges = collector.sql(
        f"SELECT MetricName, MetricUnit, Attributes, Value FROM otel_metrics_gauge WHERE ServiceName = {svc} "
        "ORDER BY Value"
    )
    assert gauges == [
        {"MetricName": "gpu.util", "MetricUnit": "1", "Attributes": {"gpu": "1"}, "Value": 0.5},
        {"MetricName": "gpu.util", "MetricUnit": "1", "Attributes": {"gpu": "0"}, "Value": 0.875},
    ]

    (h,) = collector.sql(
        "SELECT MetricName, Count, Sum, Min, Max, BucketCounts, ExplicitBounds, AggregationTemporality "
        f"FROM otel_metrics_histogram WHERE ServiceName = {svc}"
    )
    assert h == {
        "MetricName": "step.latency",
        "Count": 6,
        "Sum": 12.5,
        "Min": 0.5,
        "Max": 5.0,
        "BucketCounts": [1, 2, 3],
        "ExplicitBounds": [1.0, 2.5],
        "AggregationTemporality": 2,
    }

    (e,) = collector.sql(
        "SELECT MetricName, Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeOffset, "
        f"NegativeBucketCounts, Min, Max, AggregationTemporality FROM otel_metrics_exponential_histogram WHERE ServiceName = {svc}"
    )
    assert e == {
        "MetricName": "payload.bytes",
        "Count": 7,
        "Sum": 100.0,
        "Scale": 3,
        "ZeroCount": 1,
        "PositiveOffset": -2,
        "PositiveBucketCounts": [1, 0, 4],
        "NegativeOffset": 5,
        "NegativeBucketCounts": [1],
        "Min": -40.0,
        "Max": 60.0,
        "AggregationTemporality": 1,
    }

    (q,) = collector.sql(
        "SELECT MetricName, MetricUnit, Count, Sum, ValueAtQuantiles.Quantile AS qs, ValueAtQuantiles.Value AS vs "
        f"FROM otel_metrics_summary WHERE ServiceName = {svc}"
    )
    assert q == {"MetricName": "rpc.duration", "MetricUnit": "ms", "Count": 10, "Sum": 55.5,
                 "qs": [0.5, 0.99], "vs": [4.0, 20.25]}


def test_json_logs(collector):
    service = unique("json-logs")
    trace_id, span_id = ids()
    observed = BASE_NS + 999
    doc = {
        "resourceLogs": [
            {
                "resource": resource(service),
                "scopeLogs": [
                    {
                        "scope": {"name": "json.logger", "version": "7", "attributes": [attr("lib", stringValue="x")]},
                        "logRecords": [
                            {
                                "timeUnixNano": str(BASE_NS),
                                "severityNumber": 17,
                                "severityText": "ERROR",
                                "body": {"stringValue": "training diverged: loss=nan"},
                                "attributes": [attr("epoch", intValue="3"), attr("lr", doubleValue=0.001)],
                                "traceId": trace_id,
                                "spanId": span_id,
                                "flags": 1,
                                "eventName": "train.diverged",
                            },
                            {
                                # no timeUnixNano: the observed time is used
                                "observedTimeUnixNano": str(observed),
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {"kvlistValue": {"values": [attr("step", intValue="10"), attr("ok", boolValue=True)]}},
                            },
                        ],
                    }
                ],
            }
        ]
    }
    r = post_json(collector, "/v1/logs", doc)
    assert r.status_code == 200, r.text
    assert r.json() == {}
    rows = collector.sql(
        "SELECT toUnixTimestamp64Nano(Timestamp) AS ns, SeverityNumber, SeverityText, Body, LogAttributes, TraceId, "
        "SpanId, TraceFlags, ScopeName, ScopeVersion, ScopeAttributes, EventName, ServiceName "
        f"FROM otel_logs WHERE ServiceName = {quote(service)} ORDER BY Timestamp"
    )
    assert len(rows) == 2
    err, info = rows
    assert err["ns"] == BASE_NS
    assert (err["SeverityNumber"], err["SeverityText"]) == (17, "ERROR")
    assert err["Body"] == "training diverged: loss=nan"
    assert err["LogAttributes"] == {"epoch": "3", "lr": "0.001"}
    assert err["TraceId"] == trace_id and err["SpanId"] == span_id and err["TraceFlags"] == 1
    assert err["ScopeName"] == "json.logger" and err["ScopeVersion"] == "7"
    assert err["ScopeAttributes"] == {"lib": "x"}
    assert err["EventName"] == "train.diverged"
    assert info["ns"] == observed
    assert json.loads(info["Body"]) == {"step": 10, "ok": True}
    assert info["TraceId"] == "" and info["SpanId"] == ""


def test_json_partial_success_response(collector):
    service = unique("json-partial")
    good_trace, good_span = ids()
    spans = [
        {"traceId": good_trace, "spanId": good_span, "name": "good",
         "startTimeUnixNano": str(BASE_NS), "endTimeUnixNano": str(BASE_NS + 1)},
        # not hex at all
        {"traceId": "zz" * 16, "spanId": "0102030405060708", "name": "bad-hex",
         "startTimeUnixNano": str(BASE_NS), "endTimeUnixNano": str(BASE_NS + 1)},
        # all-zero trace id
        {"traceId": "0" * 32, "spanId": "0102030405060708", "name": "zero-trace",
         "startTimeUnixNano": str(BASE_NS), "endTimeUnixNano": str(BASE_NS + 1)},
        # span id too short
        {"traceId": good_trace, "spanId": "0102", "name": "short-span",
         "startTimeUnixNano": str(BASE_NS), "endTimeUnixNano": str(BASE_NS + 1)},
    ]
    doc = {"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"spans": spans}]}]}
    r = post_json(collector, "/v1/traces", doc)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 3
    assert "trace_id" in partial["errorMessage"] and "span_id" in partial["errorMessage"]
    rows = collector.sql(f"SELECT SpanName, TraceId, SpanId FROM otel_traces WHERE ServiceName = {quote(service)}")
    assert rows == [{"SpanName": "good", "TraceId": good_trace, "SpanId": good_span}]


def test_non_finite_metric_values_preserved(collector):
    """NaN and ±Inf are valid OTLP doubles; they must not be stored as 0."""
    import math

    from helpers import kv
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    service = unique("non-finite")
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", service))
    sm = rm.scope_metrics.add()
    for name, value in [("nan", math.nan), ("pos-inf", math.inf), ("neg-inf", -math.inf), ("finite", 2.5)]:
        m = sm.metrics.add()
        m.name = name
        dp = m.gauge.data_points.add()
        dp.time_unix_nano = BASE_NS
        dp.as_double = value
    r = collector.post("/v1/metrics", req.SerializeToString())
    assert r.status_code == 200, r.content
    rows = collector.sql(
        "SELECT MetricName, isNaN(Value) AS nan, isInfinite(Value) AS inf, sign(Value) AS sgn, toString(Value) AS v "
        f"FROM otel_metrics_gauge WHERE ServiceName = {quote(service)} ORDER BY MetricName"
    )
    got = {r["MetricName"]: r for r in rows}
    assert set(got) == {"nan", "pos-inf", "neg-inf", "finite"}
    assert got["finite"]["v"] == "2.5"
    assert got["nan"]["nan"] == 1, got["nan"]
    assert got["pos-inf"]["inf"] == 1 and got["pos-inf"]["sgn"] == 1, got["pos-inf"]
    assert got["neg-inf"]["inf"] == 1 and got["neg-inf"]["sgn"] == -1, got["neg-inf"]


# -- compressed bodies -----------------------------------------------------------------------


def _proto_body(service: str, n: int = 3) -> tuple[bytes, list[str]]:
    spans = [make_span(f"gz-{i}", attributes={"i": i, "pad": "x" * 200}) for i in range(n)]
    return trace_request(service, spans).SerializeToString(), sorted(s.span_id.hex() for s in spans)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_protobuf_body(collector, encoding):
    service = unique(f"pb-{encoding}")
    body, span_ids = _proto_body(service)
    compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    assert len(compressed) < len(body)
    r = collector.post("/v1/traces", compressed, "application/x-protobuf", **{"Content-Encoding": encoding})
    assert r.status_code == 200, f"{r.status_code} {r.content!r}"
    assert r.headers["Content-Type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert not resp.HasField("partial_success")
    rows = collector.sql(
        f"SELECT SpanId, SpanAttributes['pad'] AS pad FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY SpanId"
    )
    assert [row["SpanId"] for row in rows] == span_ids
    assert all(row["pad"] == "x" * 200 for row in rows)


def test_gzip_json_body(collector):
    service = unique("json-gzip")
    trace_id, span_id = ids()
    doc = {
        "resourceSpans": [
            {
                "resource": resource(service),
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": trace_id, "spanId": span_id, "name": "zipped", "kind": 1,
                             "startTimeUnixNano": str(BASE_NS), "endTimeUnixNano": str(BASE_NS + 42)}
                        ]
                    }
                ],
            }
        ]
    }
    r = collector.post(
        "/v1/traces", gzip.compress(json.dumps(doc).encode()), "application/json", **{"Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {}
    rows = collector.sql(f"SELECT TraceId, SpanId, SpanKind, Duration FROM otel_traces WHERE ServiceName = {quote(service)}")
    assert rows == [{"TraceId": trace_id, "SpanId": span_id, "SpanKind": "Internal", "Duration": 42}]


def test_protobuf_identity_encoding_and_response(collector):
    """Content-Encoding: identity is the same as none; the protobuf response parses."""
    service = unique("pb-identity")
    body, span_ids = _proto_body(service, n=2)
    r = collector.post("/v1/traces", body, "application/x-protobuf", **{"Content-Encoding": "identity"})
    assert r.status_code == 200, r.content
    assert ExportTraceServiceResponse.FromString(r.content) == ExportTraceServiceResponse()
    got = collector.sql(f"SELECT SpanId FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY SpanId")
    assert [g["SpanId"] for g in got] == span_ids
