"""Nothing acknowledged is lost, and retried exports are not stored twice.

- identical requests (HTTP, gRPC, concurrent, across a restart) are stored once;
- kill -9 in the middle of a load, restart on the same data dir, let the clients retry what
  was not acknowledged (as SDKs do): every span is stored exactly once;
- SIGTERM drains: what was acknowledged before the signal is there after a restart.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from helpers import (
    LOGS_SERVICE_EXPORT,
    TRACE_SERVICE_EXPORT,
    log_request,
    new_trace_id,
    quote,
    unique,
    wait_for,
)
from load import Load, make_load_requests, spans_request
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

pytestmark = pytest.mark.timeout(240)


def span_counts(c, service: str) -> dict[str, int]:
    rows = c.sql(f"SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = {quote(service)} GROUP BY SpanId")
    return {r["SpanId"]: r["n"] for r in rows}


def grpc_export(endpoint: str, path: str, body: bytes, response_type):
    with grpc.insecure_channel(endpoint) as ch:
        stub = ch.unary_unary(path, request_serializer=None, response_deserializer=response_type.FromString)
        return stub(body, timeout=30)


# -- identical requests ----------------------------------------------------------------------


def test_same_protobuf_posted_twice_stored_once(collector):
    service = unique("dedup-http")
    req, span_ids = spans_request(service, 25)
    body = req.SerializeToString()
    for _ in range(2):
        r = collector.post("/v1/traces", body)
        assert r.status_code == 200, r.content
        assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    assert span_counts(collector, service) == dict.fromkeys(span_ids, 1)
    # ... and a third time once its batch has left the queue (committed, the key remembered)
    assert wait_for(lambda: collector.health().json()["queue"]["requests"] == 0, timeout=30)
    assert collector.post("/v1/traces", body).status_code == 200
    assert span_counts(collector, service) == dict.fromkeys(span_ids, 1)


def test_same_request_sent_twice_over_grpc_stored_once(collector):
    service = unique("dedup-grpc")
    req, span_ids = spans_request(service, 10)
    body = req.SerializeToString()
    for _ in range(2):
        resp = grpc_export(collector.grpc_endpoint, TRACE_SERVICE_EXPORT, body, ExportTraceServiceResponse)
        assert not resp.HasField("partial_success")
    assert span_counts(collector, service) == dict.fromkeys(span_ids, 1)
    # the same bytes over the other transport are the same request
    assert collector.post("/v1/traces", body).status_code == 200
    assert span_counts(collector, service) == dict.fromkeys(span_ids, 1)


def test_same_json_posted_twice_stored_once(collector):
    service = unique("dedup-json")
    trace_id = new_trace_id().hex()
    spans = [
        {"traceId": trace_id, "spanId": f"{i + 1:016x}", "name": "j", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000000000000100"}
        for i in range(5)
    ]
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                              "scopeSpans": [{"spans": spans}]}]}
    body = json.dumps(doc).encode()
    for _ in range(2):
        assert collector.post("/v1/traces", body, "application/json").status_code == 200
    assert span_counts(collector, service) == {f"{i + 1:016x}": 1 for i in range(5)}


def test_concurrent_identical_requests_stored_once(collector):
    """Retries that arrive while the first attempt is still being written wait for it."""
    service = unique("dedup-concurrent")
    req, span_ids = spans_request(service, 40)
    body = req.SerializeToString()

    def via_http(_):
        return collector.post("/v1/traces", body).status_code

    def via_grpc(_):
        grpc_export(collector.grpc_endpoint, TRACE_SERVICE_EXPORT, body, ExportTraceServiceResponse)
        return 200

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(via_http if i % 2 else via_grpc, i) for i in range(8)]
        codes = [f.result() for f in futures]
    assert codes == [200] * 8
    assert span_counts(collector, service) == dict.fromkeys(span_ids, 1)


def test_logs_request_posted_twice_stored_once(collector):
    service = unique("dedup-logs")
    body = log_request(service, [f"line {i}" for i in range(7)]).SerializeToString()
    assert collector.post("/v1/logs", body).status_code == 200
    grpc_export(collector.grpc_endpoint, LOGS_SERVICE_EXPORT, body, ExportLogsServiceResponse)
    rows = collector.sql(f"SELECT Body, count() AS n FROM otel_logs WHERE ServiceName = {quote(service)} GROUP BY Body")
    assert sorted((r["Body"], r["n"]) for r in rows) == sorted((f"line {i}", 1) for i in range(7))


def test_distinct_requests_are_not_deduplicated(collector):
    """Control: dedup is by the whole request, two different requests are both kept."""
    service = unique("dedup-control")
    a, ids_a = spans_request(service, 3, tag="a")
    b, ids_b = spans_request(service, 3, tag="b")
    assert collector.post("/v1/traces", a.SerializeToString()).status_code == 200
    assert collector.post("/v1/traces", b.SerializeToString()).status_code == 200
    assert span_counts(collector, service) == dict.fromkeys(ids_a + ids_b, 1)


# -- load with interruptions -----------------------------------------------------------------


def assert_exactly_once(c, service: str, all_ids: list[list[str]], which: set[int] | None = None) -> None:
    counts = span_counts(c, service)
    wanted = range(len(all_ids)) if which is None else sorted(which)
    missing = [(r, s) for r in wanted for s in all_ids[r] if s not in counts]
    dupes = {s: n for s, n in counts.items() if n != 1}
    assert not missing, f"{len(missing)} acknowledged spans missing, e.g. {missing[:5]}"
    assert not dupes, f"{len(dupes)} spans stored more than once, e.g. {list(dupes.items())[:5]}"
    if which is None:
        assert len(counts) == sum(len(ids) for ids in all_ids)
        total = c.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}")
        assert total == sum(len(ids) for ids in all_ids)


@pytest.mark.slow
def test_kill9_during_load_then_retry_stores_everything_exactly_once(start_collector):
    c = start_collector(name="crash")
    service = unique("crash")
    n_requests, per_request = 200, 50
    bodies, all_ids = make_load_requests(service, n_requests, per_request)
    load = Load(c.http_url, bodies, threads=6).start()
    try:
        kills = []
        for threshold in (30, 90, 150):
            load.wait_acked(threshold, timeout=90)
            before = load.n_acked
            assert c.kill() == -9
            acked_at_kill = load.acked_snapshot()
            kills.append((before, len(acked_at_kill)))
            assert len(acked_at_kill) < n_requests, "the load finished before the kill; nothing was tested"
            c.start()
            # What was acknowledged before the crash is there as soon as the server is back.
            assert_exactly_once(c, service, all_ids, acked_at_kill)
        load.wait_acked(n_requests, timeout=120)
    finally:
        load.pause()
    assert not load.partial
    # the kills really interrupted the load: some requests needed more than one attempt
    assert any(a > 1 for a in load.attempts), (kills, load.statuses)
    assert_exactly_once(c, service, all_ids)
    per_request_rows = c.sql(
        f"SELECT SpanAttributes['tag'] AS tag, count() AS n FROM otel_traces WHERE ServiceName = {quote(service)} "
        "GROUP BY tag"
    )
    assert len(per_request_rows) == n_requests and all(r["n"] == per_request for r in per_request_rows)
    assert c.health().status_code == 200
    assert c.stop() == 0


@pytest.mark.slow
def test_sigterm_drains_acknowledged_requests(start_collector):
    c = start_collector(name="drain")
    service = unique("drain")
    n_requests, per_request = 120, 50
    bodies, all_ids = make_load_requests(service, n_requests, per_request)
    load = Load(c.http_url, bodies, threads=6).start()
    try:
        load.wait_acked(30, timeout=90)
        assert c.stop() == 0, c.log_text()
        load.pause()
        acked = load.acked_snapshot()
        assert len(acked) < n_requests, "the load finished before SIGTERM; nothing was tested"
        log = c.log_text()
        assert "draining" in log and "stopped" in log
        c.start()
        assert_exactly_once(c, service, all_ids, acked)
        # the rest, retried by the clients, lands exactly once too
        load.resume()
        load.wait_acked(n_requests, timeout=120)
    finally:
        load.pause()
    assert_exactly_once(c, service, all_ids)
    assert c.stop() == 0


@pytest.mark.slow
def test_retry_after_restart_is_not_stored_again(start_collector):
    """The committed-request keys survive a restart: a late retry is answered without a duplicate."""
    c = start_collector(name="restart-dedup")
    service = unique("restart-dedup")
    req, span_ids = spans_request(service, 20)
    body = req.SerializeToString()
    assert c.post("/v1/traces", body).status_code == 200
    assert c.stop() == 0
    c.start()
    r = c.post("/v1/traces", body)
    assert r.status_code == 200, r.content
    assert span_counts(c, service) == dict.fromkeys(span_ids, 1)
    # also after a crash rather than a clean stop
    assert c.kill() == -9
    c.start()
    grpc_export(c.grpc_endpoint, TRACE_SERVICE_EXPORT, body, ExportTraceServiceResponse)
    assert span_counts(c, service) == dict.fromkeys(span_ids, 1)
    assert c.stop() == 0
