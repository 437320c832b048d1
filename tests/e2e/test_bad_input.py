"""Bad input gets a clear error, never a crash; the collector keeps serving afterwards.

This module runs its own collector with small limits (64 KiB requests, 1 KiB attribute
values) so that the size checks are cheap to exercise.
"""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.rpc import status_pb2
from helpers import (
    BASE_NS,
    LOGS_SERVICE_EXPORT,
    METRICS_SERVICE_EXPORT,
    TRACE_SERVICE_EXPORT,
    kv,
    log_request,
    make_span,
    new_span_id,
    new_trace_id,
    quote,
    trace_request,
    unique,
    wait_for,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

pytestmark = pytest.mark.timeout(120)

MAX_REQUEST = 64 * 1024
MAX_ATTRIBUTE = 1024

RESPONSES = {
    TRACE_SERVICE_EXPORT: ExportTraceServiceResponse,
    METRICS_SERVICE_EXPORT: ExportMetricsServiceResponse,
    LOGS_SERVICE_EXPORT: ExportLogsServiceResponse,
}
SIGNAL_PATHS = {"traces": TRACE_SERVICE_EXPORT, "metrics": METRICS_SERVICE_EXPORT, "logs": LOGS_SERVICE_EXPORT}

# Bytes no OTLP request message can be parsed from.
GARBAGE = {
    "bad-wire-type": b"\x07\x01\x02\x03",
    "overlong-varint": b"\x08" + b"\xff" * 11,
    "length-past-end": b"\x0a\xff\x01abc",
    "nested-truncated": b"\x0a\x06\x12\x04\x12\x02\x0a",
    "end-group-without-start": b"\x0c",
}


@pytest.fixture(scope="module")
def small(start_collector):
    c = start_collector(
        env={"TRACEHOUSE_MAX_REQUEST_BYTES": str(MAX_REQUEST), "TRACEHOUSE_MAX_ATTRIBUTE_BYTES": str(MAX_ATTRIBUTE)},
        name="small-limits",
    )
    yield c
    # Whatever was thrown at it, it must still be alive and drain cleanly.
    assert c.running(), c.log_text()
    assert c.stop() == 0, c.log_text()


@pytest.fixture(scope="module")
def channel(small):
    ch = grpc.insecure_channel(small.grpc_endpoint)
    yield ch
    ch.close()


def grpc_call(channel, path: str, body: bytes, timeout: float = 30):
    stub = channel.unary_unary(path, request_serializer=None, response_deserializer=RESPONSES[path].FromString)
    return stub(body, timeout=timeout)


def grpc_error(channel, path: str, body: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        grpc_call(channel, path, body)
    return info.value


def status_of(resp) -> status_pb2.Status:
    """The google.rpc.Status body of a protobuf error response."""
    assert resp.headers["Content-Type"].startswith("application/x-protobuf"), resp.headers
    return status_pb2.Status.FromString(resp.content)


def good_body(service: str) -> tuple[bytes, str]:
    span = make_span("good")
    return trace_request(service, [span]).SerializeToString(), span.span_id.hex()


def assert_alive_and_accepting(c) -> None:
    h = c.health()
    assert h.status_code == 200 and h.json()["status"] == "ok", h.text
    service = unique("after-bad")
    body, span_id = good_body(service)
    r = c.post("/v1/traces", body)
    assert r.status_code == 200, r.content
    assert c.sql(f"SELECT SpanId FROM otel_traces WHERE ServiceName = {quote(service)}") == [{"SpanId": span_id}]


# -- malformed protobuf ----------------------------------------------------------------------


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_truncated_protobuf_http_400(small, signal):
    body = trace_request(unique(), [make_span(attributes={"k": "v" * 50})]).SerializeToString()
    if signal == "logs":
        body = log_request(unique(), ["hello world"] * 3).SerializeToString()
    for cut in (len(body) // 2, len(body) - 1):
        r = small.post(f"/v1/{signal}", body[:cut])
        assert r.status_code == 400, (cut, r.status_code, r.content)
        st = status_of(r)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert f"malformed OTLP/protobuf {signal} request" in st.message


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_protobuf_http_400(small, name):
    r = small.post("/v1/traces", GARBAGE[name])
    assert r.status_code == 400, r.content
    assert "malformed OTLP/protobuf traces request" in status_of(r).message


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_garbage_protobuf_grpc_invalid_argument(small, channel, signal):
    for body in GARBAGE.values():
        err = grpc_error(channel, SIGNAL_PATHS[signal], body)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (body, err)
        assert f"malformed OTLP/protobuf {signal} request" in err.details()


def test_truncated_protobuf_grpc_invalid_argument(small, channel):
    body = trace_request(unique(), [make_span(), make_span()]).SerializeToString()
    err = grpc_error(channel, TRACE_SERVICE_EXPORT, body[: len(body) - 5])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in err.details()


# -- JSON, content types, encodings ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"resourceSpans": 5}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b"\xff\xfe{}",
    ],
    ids=["syntax", "empty", "array", "string", "wrong-type", "bad-int64", "bad-utf8"],
)
def test_invalid_json_400(small, body):
    r = small.post("/v1/traces", body, "application/json")
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()
    assert err["code"] == 3
    assert "OTLP/JSON traces request" in err["message"], err


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/grpc", "multipart/form-data"])
def test_wrong_content_type_415(small, content_type):
    body, _ = good_body(unique())
    r = small.post("/v1/traces", body, content_type)
    assert r.status_code == 415, r.text
    msg = r.json()["message"]
    assert content_type in msg and "application/x-protobuf" in msg and "application/json" in msg


def test_missing_content_type_415(small):
    body, _ = good_body(unique())
    r = small.session.post(small.http_url + "/v1/logs", data=body, timeout=30)
    assert r.status_code == 415, r.text


@pytest.mark.parametrize("variant", ["garbage-after-header", "not-gzip-at-all", "truncated"])
def test_corrupt_gzip_400(small, variant):
    body, _ = good_body(unique())
    gz = gzip.compress(body)
    corrupt = {
        "garbage-after-header": gz[:10] + b"\x00garbage-garbage" + gz[27:],
        "not-gzip-at-all": b"this is not gzip data" * 3,
        "truncated": gz[: len(gz) // 2],
    }[variant]
    r = small.post("/v1/traces", corrupt, "application/x-protobuf", **{"Content-Encoding": "gzip"})
    assert r.status_code == 400, f"{variant}: HTTP {r.status_code} {r.content[:200]!r}"
    assert b"gzip" in r.content


def test_unsupported_content_encoding_400(small):
    body, _ = good_body(unique())
    r = small.post("/v1/traces", body, "application/x-protobuf", **{"Content-Encoding": "compress"})
    assert r.status_code in (400, 415), r.content
    assert b"compress" in r.content


# -- sizes -----------------------------------------------------------------------------------


def big_request(service: str, total_bytes: int) -> bytes:
    spans = [make_span(f"big-{i}", attributes={"v": "x" * 500}) for i in range(total_bytes // 520 + 1)]
    body = trace_request(service, spans).SerializeToString()
    assert len(body) > total_bytes
    return body


def test_oversized_protobuf_413(small):
    service = unique("oversized")
    body = big_request(service, 3 * MAX_REQUEST)
    r = small.post("/v1/traces", body)
    assert r.status_code == 413, r.content[:200]
    assert "limit" in status_of(r).message
    assert small.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 0


def test_oversized_json_413(small):
    doc = {"resourceSpans": [], "padding": "x" * (2 * MAX_REQUEST)}
    r = small.post("/v1/traces", json.dumps(doc).encode(), "application/json")
    assert r.status_code == 413
    assert "limit" in r.json()["message"]


def test_gzip_bomb_413(small):
    """A small gzip body that inflates past the limit is refused, not inflated in full."""
    bomb = gzip.compress(b"\x00" * (50 * MAX_REQUEST))
    assert len(bomb) < MAX_REQUEST
    r = small.post("/v1/traces", bomb, "application/x-protobuf", **{"Content-Encoding": "gzip"})
    assert r.status_code == 413, r.content[:200]


def test_request_just_under_the_limit_accepted(small):
    service = unique("under-limit")
    spans = [make_span(f"s{i}", attributes={"v": "y" * 500}) for i in range(80)]
    body = trace_request(service, spans).SerializeToString()
    assert MAX_REQUEST // 2 < len(body) < MAX_REQUEST
    r = small.post("/v1/traces", body)
    assert r.status_code == 200, r.content[:200]
    assert small.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 80


def test_oversized_grpc_resource_exhausted(small, channel):
    service = unique("oversized-grpc")
    err = grpc_error(channel, TRACE_SERVICE_EXPORT, big_request(service, 2 * MAX_REQUEST))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert small.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 0


# -- invalid spans: partial success ----------------------------------------------------------


def stored(c, query: str, n: int = 1) -> list[dict]:
    """The rows of `query` once at least `n` are there: an acknowledged request is durable at
    once, stored a batch later."""

    def enough() -> list[dict] | None:
        rows = c.sql(query)
        return rows if len(rows) >= n else None

    return wait_for(enough, timeout=30) or c.sql(query)


def mixed_request(service: str):
    valid = [make_span("valid-1"), make_span("valid-2", parent_span_id=new_span_id())]
    invalid = [
        make_span("short-trace-id", trace_id=b"\x01" * 8),
        make_span("zero-trace-id", trace_id=b"\x00" * 16),
        make_span("long-span-id", span_id=b"\x02" * 9),
        make_span("zero-span-id", span_id=b"\x00" * 8),
        make_span("empty-span-id", span_id=b""),
        make_span("bad-parent", parent_span_id=b"\x03" * 3),
        make_span("year-2300", start_ns=10_000_000_000_000_000_000),
        make_span("end-past-2262", start_ns=BASE_NS, duration_ns=2**63),
        make_span("ends-before-start", start_ns=BASE_NS, duration_ns=-1),
    ]
    evented = make_span("bad-event")
    ev = evented.events.add()
    ev.name = "far-future"
    ev.time_unix_nano = 2**64 - 1
    invalid.append(evented)
    spans = [invalid[0], valid[0], *invalid[1:5], valid[1], *invalid[5:]]
    return trace_request(service, spans), valid, len(invalid)


def test_partial_success_http_protobuf(small):
    service = unique("partial-http")
    req, valid, n_invalid = mixed_request(service)
    r = small.post("/v1/traces", req.SerializeToString())
    assert r.status_code == 200, r.content
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == n_invalid
    msg = resp.partial_success.error_message
    assert "trace_id" in msg and "span_id" in msg and "2262" in msg and "before start" in msg, msg
    rows = stored(small, f"SELECT SpanName, SpanId FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY SpanName", len(valid))
    assert rows == [{"SpanName": s.name, "SpanId": s.span_id.hex()} for s in valid]


def test_partial_success_grpc(small, channel):
    service = unique("partial-grpc")
    req, valid, n_invalid = mixed_request(service)
    resp = grpc_call(channel, TRACE_SERVICE_EXPORT, req.SerializeToString())
    assert resp.partial_success.rejected_spans == n_invalid
    assert resp.partial_success.error_message
    rows = stored(small, f"SELECT SpanId FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY SpanName", len(valid))
    assert [r["SpanId"] for r in rows] == [s.span_id.hex() for s in valid]


def test_timestamp_boundaries(small):
    """The last nanosecond DateTime64(9) can hold is accepted exactly; one past it is rejected."""
    service = unique("ts-edge")
    last = 2**63 - 1
    spans = [
        make_span("epoch", start_ns=0, duration_ns=0),
        make_span("last-ns", start_ns=last, duration_ns=0),
        make_span("one-past", start_ns=last + 1, duration_ns=0),
    ]
    r = small.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 1
    rows = stored(
        small,
        "SELECT SpanName, toUnixTimestamp64Nano(Timestamp) AS ns, toString(Timestamp) AS t FROM otel_traces "
        f"WHERE ServiceName = {quote(service)} ORDER BY ns",
        2,
    )
    assert rows == [
        {"SpanName": "epoch", "ns": 0, "t": "1970-01-01 00:00:00.000000000"},
        {"SpanName": "last-ns", "ns": last, "t": "2262-04-11 23:47:16.854775807"},
    ]


def test_spans_spread_over_many_days_in_one_request(small):
    """A skewed clock must not make a whole batch fail (ClickHouse limits partitions per insert)."""
    service = unique("many-days")
    day = 86_400 * 10**9
    spans = [make_span(f"d{i}", start_ns=BASE_NS - i * day) for i in range(150)]
    r = small.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content
    assert small.scalar(
        f"SELECT uniqExact(toDate(Timestamp)) FROM otel_traces WHERE ServiceName = {quote(service)}"
    ) == 150


def test_all_spans_invalid(small):
    service = unique("all-invalid")
    req = trace_request(service, [make_span(trace_id=b"\x00" * 16), make_span(span_id=b"\x01")])
    r = small.post("/v1/traces", req.SerializeToString())
    assert r.status_code == 200, r.content
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 2
    assert small.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 0


def test_partial_success_logs(small):
    service = unique("partial-logs")
    req = log_request(service, ["ok-1", "bad-trace-id", "ok-2", "far-future"])
    recs = req.resource_logs[0].scope_logs[0].log_records
    recs[1].trace_id = b"\x01" * 5
    recs[3].time_unix_nano = 2**63 + 5
    r = small.post("/v1/logs", req.SerializeToString())
    assert r.status_code == 200, r.content
    resp = ExportLogsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_log_records == 2
    bodies = stored(small, f"SELECT Body FROM otel_logs WHERE ServiceName = {quote(service)} ORDER BY Body", 2)
    assert [b["Body"] for b in bodies] == ["ok-1", "ok-2"]


def test_partial_success_metrics(small):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    service = unique("partial-metrics")
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", service))
    sm = rm.scope_metrics.add()
    good = sm.metrics.add()
    good.name = "good"
    for t in (BASE_NS, 2**63 + 1, BASE_NS + 1):  # the middle one is past 2262
        dp = good.gauge.data_points.add()
        dp.time_unix_nano = t
        dp.as_int = 7
    empty = sm.metrics.add()
    empty.name = "no-data"
    r = small.post("/v1/metrics", req.SerializeToString())
    assert r.status_code == 200, r.content
    resp = ExportMetricsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_data_points == 2
    assert "no-data" in resp.partial_success.error_message and "2262" in resp.partial_success.error_message
    rows = stored(
        small,
        f"SELECT MetricName, Value FROM otel_metrics_gauge WHERE ServiceName = {quote(service)} ORDER BY TimeUnix",
        2,
    )
    assert rows == [{"MetricName": "good", "Value": 7.0}] * 2


# -- huge attributes -------------------------------------------------------------------------


def test_huge_attribute_truncated_and_marked(small):
    service = unique("huge-attr")
    span = make_span(
        "huge",
        attributes={
            "prompt": "p" * 5000,
            "unicode": "é" * 3000,  # 6000 bytes; must be cut on a character boundary
            "small": "fine",
            "list": ["z" * 300] * 10,
        },
    )
    ev = span.events.add()
    ev.name = "ev"
    ev.time_unix_nano = BASE_NS
    ev.attributes.append(kv("payload", "q" * 4000))
    req = trace_request(service, [span])
    req.resource_spans[0].resource.attributes.append(kv("host.blob", "r" * 3000))
    r = small.post("/v1/traces", req.SerializeToString())
    assert r.status_code == 200, r.content
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    (row,) = stored(
        small,
        "SELECT SpanAttributes AS a, Events.Attributes AS ea, ResourceAttributes AS ra "
        f"FROM otel_traces WHERE ServiceName = {quote(service)}",
    )
    attrs = row["a"]
    assert attrs["prompt"] == "p" * MAX_ATTRIBUTE
    assert attrs["unicode"] == "é" * (MAX_ATTRIBUTE // 2)
    assert len(attrs["unicode"].encode()) <= MAX_ATTRIBUTE
    assert attrs["small"] == "fine"
    assert len(attrs["list"].encode()) <= MAX_ATTRIBUTE and attrs["list"].startswith('["zzz')
    assert set(attrs["tracehouse.truncated"].split(",")) == {"prompt", "unicode", "list"}
    assert row["ea"][0]["payload"] == "q" * MAX_ATTRIBUTE
    assert row["ea"][0]["tracehouse.truncated"] == "payload"
    assert row["ra"]["host.blob"] == "r" * MAX_ATTRIBUTE
    assert row["ra"]["tracehouse.truncated"] == "host.blob"


def test_attribute_at_the_limit_not_marked(small):
    service = unique("limit-attr")
    r = small.post(
        "/v1/traces", trace_request(service, [make_span(attributes={"exact": "e" * MAX_ATTRIBUTE})]).SerializeToString()
    )
    assert r.status_code == 200
    (row,) = stored(small, f"SELECT SpanAttributes AS a FROM otel_traces WHERE ServiceName = {quote(service)}")
    assert row["a"] == {"exact": "e" * MAX_ATTRIBUTE}


def test_huge_log_body_truncated(small):
    service = unique("huge-log")
    r = small.post("/v1/logs", log_request(service, ["L" * 10_000]).SerializeToString())
    assert r.status_code == 200, r.content
    (row,) = stored(small, f"SELECT length(Body) AS n FROM otel_logs WHERE ServiceName = {quote(service)}")
    assert row["n"] == MAX_ATTRIBUTE


def test_default_limit_truncates_200kb_value(collector):
    """With the default 64 KiB limit, a 200 KB attribute value is cut to 64 KiB and marked."""
    service = unique("default-limit")
    value = "0123456789" * 20_000
    r = collector.post(
        "/v1/traces", trace_request(service, [make_span(attributes={"big": value, "k": 1})]).SerializeToString()
    )
    assert r.status_code == 200, r.content
    (row,) = collector.sql(
        "SELECT length(SpanAttributes['big']) AS n, SpanAttributes['tracehouse.truncated'] AS t, "
        f"SpanAttributes['k'] AS k FROM otel_traces WHERE ServiceName = {quote(service)}"
    )
    assert row == {"n": 64 * 1024, "t": "big", "k": "1"}


# -- invalid UTF-8 ---------------------------------------------------------------------------


def invalid_utf8_bodies() -> dict[str, bytes]:
    marker = "MARKER"
    bad = b"\xff\xfe\xc3\x28\xa0\xa1"  # same length as the marker
    bodies = {
        "span-name": trace_request(unique(), [make_span(marker)]),
        "attribute-value": trace_request(unique(), [make_span(attributes={"k": marker})]),
        "attribute-key": trace_request(unique(), [make_span(attributes={marker: "v"})]),
        "service-name": trace_request(marker, [make_span()]),
    }
    out = {}
    for name, msg in bodies.items():
        raw = msg.SerializeToString()
        assert raw.count(marker.encode()) == 1
        out[name] = raw.replace(marker.encode(), bad)
    return out


@pytest.mark.parametrize("where", ["span-name", "attribute-value", "attribute-key", "service-name"])
def test_invalid_utf8_protobuf_http_400(small, where):
    r = small.post("/v1/traces", invalid_utf8_bodies()[where])
    assert r.status_code == 400, r.content
    msg = status_of(r).message
    assert "UTF-8" in msg or "utf-8" in msg.lower(), msg
    assert small.health().status_code == 200


def test_invalid_utf8_protobuf_grpc(small, channel):
    for body in invalid_utf8_bodies().values():
        err = grpc_error(channel, TRACE_SERVICE_EXPORT, body)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "utf-8" in err.details().lower()


def test_invalid_utf8_log_body(small):
    req = log_request(unique(), ["MARKER"])
    raw = req.SerializeToString().replace(b"MARKER", b"\xed\xa0\x80\xed\xb0\x80")  # encoded surrogates
    r = small.post("/v1/logs", raw)
    assert r.status_code == 400, r.content
    assert "utf-8" in status_of(r).message.lower()


# -- still healthy ---------------------------------------------------------------------------


def test_still_healthy_after_barrage(small, channel):
    """Throw everything at once (concurrently), then the collector still serves and stores."""
    from concurrent.futures import ThreadPoolExecutor

    payloads = [("application/x-protobuf", body, {}) for body in GARBAGE.values()]
    payloads += [("application/x-protobuf", body, {}) for body in invalid_utf8_bodies().values()]
    payloads += [
        ("application/json", b"{oops", {}),
        ("text/plain", b"x", {}),
        ("application/x-protobuf", gzip.compress(b"\x00" * (4 * MAX_REQUEST)), {"Content-Encoding": "gzip"}),
        ("application/x-protobuf", big_request(unique(), 2 * MAX_REQUEST), {}),
    ]
    # Corrupt gzip has its own exact test (test_corrupt_gzip_400); here it only must not hurt.
    gzip_payloads = [("application/x-protobuf", b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"})]

    def send(p):
        ct, body, headers = p
        return small.post("/v1/traces", body, ct, **headers).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, payloads * 3))
        gzip_codes = list(pool.map(send, gzip_payloads * 3))
    assert all(400 <= c < 500 for c in codes), codes
    assert all(c != 200 for c in gzip_codes), gzip_codes
    for body in list(GARBAGE.values())[:2]:
        assert grpc_error(channel, TRACE_SERVICE_EXPORT, body).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_alive_and_accepting(small)
    # and over gRPC too
    service = unique("after-bad-grpc")
    span = make_span("grpc-good", trace_id=new_trace_id())
    resp = grpc_call(channel, TRACE_SERVICE_EXPORT, trace_request(service, [span]).SerializeToString())
    assert not resp.HasField("partial_success")
    assert small.sql(f"SELECT SpanId FROM otel_traces WHERE ServiceName = {quote(service)}") == [
        {"SpanId": span.span_id.hex()}
    ]
    # None of it reached the collector's catch-all for unexpected errors.
    assert "unexpected error in" not in small.log_text()
