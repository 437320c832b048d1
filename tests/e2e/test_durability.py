"""Durability under store faults: the collector in front of a ClickHouse HTTP endpoint that fails.

The store is `fake_clickhouse.py` (ClickHouse's HTTP interface over chDB, in its own process),
reached through the collector's `http://` store path; tests switch it between healthy, failing
(HTTP 503), hanging, refusing connections (process stopped) and refusing one request's rows.
Every test checks that each acknowledged span is stored exactly once.
"""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
from collectors import Collector
from fake_clickhouse import FakeClickHouseProcess
from google.rpc import error_details_pb2, status_pb2
from helpers import TRACE_SERVICE_EXPORT, free_port, make_span, new_trace_id, quote, trace_request, unique
from load import (
    Load,
    assert_stored_once,
    collector_env,
    make_load_requests,
    queue_empty,
    stored_counts,
    stored_span_ids,
    wait_until,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


# -- the real OTel SDK, store failing mid-load --------------------------------------------------


class RecordingProcessor(SimpleSpanProcessor):
    """Exports each span as it ends and keeps the ids of those the collector acknowledged."""

    def __init__(self, exporter) -> None:
        super().__init__(exporter)
        self.acked: set[str] = set()
        self.failed = 0

    def on_end(self, span) -> None:
        if self.span_exporter.export((span,)) == SpanExportResult.SUCCESS:
            self.acked.add(f"{span.context.span_id:016x}")
        else:
            self.failed += 1


def sdk_load(endpoint: str, service: str, stop: threading.Event, transport: str) -> RecordingProcessor:
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=10)
    processor = RecordingProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("durability-tests")

    def run() -> None:
        i = 0
        while not stop.is_set():
            with tracer.start_as_current_span(f"call-{i}") as span:
                span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                span.set_attribute("i", i)
            i += 1
            time.sleep(0.01)
        provider.shutdown()

    processor.thread = threading.Thread(target=run, daemon=True)  # type: ignore[attr-defined]
    processor.thread.start()  # type: ignore[attr-defined]
    return processor


# HTTP 503 from the store is covered by the tests below; here a hang and a refused connection.
@pytest.mark.parametrize(("fault", "transport"), [("hang", "grpc"), ("refused", "http")])
def test_store_fails_mid_load_every_acknowledged_span_once(start_collector, fake_store, fault, transport):
    c = start_collector(env=collector_env(fake_store), workers=1, name=f"fail-{fault}")
    service = unique(f"durable-{fault}")
    stop = threading.Event()
    endpoint = c.grpc_endpoint if transport == "grpc" else c.http_url
    load = sdk_load(endpoint, service, stop, transport)
    try:
        wait_until(lambda: len(load.acked) >= 20, 30, "acks with a healthy store")
        if fault == "refused":
            fake_store.stop()
        else:
            fake_store.fault(fault)
        acked_before = len(load.acked)
        # The collector keeps acknowledging while the store is away: the rows go to the queue.
        wait_until(lambda: c.health().json()["store_status"] != "ok", 30, "the collector to notice the fault")
        wait_until(lambda: len(load.acked) >= acked_before + 50, 30, "acks while the store is failing")
        health = c.health().json()
        assert health["queue"]["requests"] > 0 and health["queue"]["bytes"] > 0, health
        assert health["writer"]["acked_from_queue"] > 0, health
        if fault == "refused":
            fake_store.start()
        else:
            fake_store.fault("ok")
        acked_at_restore = len(load.acked)
        wait_until(lambda: len(load.acked) >= acked_at_restore + 20, 30, "acks after the store is back")
    finally:
        stop.set()
        load.thread.join(timeout=60)  # type: ignore[attr-defined]
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    assert c.health().json()["store_status"] == "ok"
    n, distinct = stored_counts(fake_store, service)
    # Every acknowledged span once; an export the SDK gave up on may have landed too.
    assert n == distinct and len(load.acked) <= distinct <= len(load.acked) + load.failed, (
        n,
        distinct,
        len(load.acked),
        load.failed,
    )
    assert_stored_once(fake_store, service, load.acked)
    assert c.stop() == 0


# -- kill -9 while the queue holds data ----------------------------------------------------------


def test_kill9_with_a_full_queue_then_restart_replays_exactly_once(start_collector, fake_store):
    c = start_collector(env=collector_env(fake_store), workers=1, name="kill-queued")
    fake_store.fault("unavailable")
    service = unique("kill-queued")
    n_requests, per_request = 60, 20
    bodies, all_ids = make_load_requests(service, n_requests, per_request)
    load = Load(c.http_url, bodies, threads=4).start()
    try:
        load.wait_acked(40, timeout=60)
        health = c.health().json()
        assert health["store_status"] == "failing" and health["queue"]["requests"] >= 30, health
        assert c.kill() == -9
        acked_at_kill = load.acked_snapshot()
        assert len(acked_at_kill) < n_requests, "the load finished before the kill; nothing was tested"
        fake_store.fault("ok")
        c.start()
        # Replayed at start: what was acknowledged before the crash is in the store now.
        assert_stored_once(fake_store, service, {s for r in acked_at_kill for s in all_ids[r]})
        load.wait_acked(n_requests, timeout=120)
    finally:
        load.pause()
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    # A late retry of acknowledged requests (their answers lost) is not stored again.
    for body in bodies[:5]:
        assert c.post("/v1/traces", body).status_code == 200
    assert stored_counts(fake_store, service) == (n_requests * per_request, n_requests * per_request)
    assert_stored_once(fake_store, service, {s for ids in all_ids for s in ids})
    assert c.stop() == 0


def test_retry_of_a_queued_request_is_not_stored_twice(start_collector, fake_store):
    """Dedup covers requests acknowledged from the queue and not yet inserted, across a restart."""
    c = start_collector(env=collector_env(fake_store), workers=1, name="queued-dedup")
    fake_store.fault("reset")  # connections closed without an answer
    service = unique("queued-dedup")
    spans = [make_span("q", trace_id=new_trace_id()) for _ in range(7)]
    body = trace_request(service, spans).SerializeToString()
    assert c.post("/v1/traces", body).status_code == 200
    assert c.post("/v1/traces", body).status_code == 200  # retried while queued
    assert c.health().json()["queue"]["requests"] == 1
    assert c.kill() == -9
    fake_store.fault("ok")
    c.start()  # replays the queue
    assert stored_span_ids(fake_store, service) == {s.span_id.hex(): 1 for s in spans}
    assert c.post("/v1/traces", body).status_code == 200  # retried after the restart: committed
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    assert stored_span_ids(fake_store, service) == {s.span_id.hex(): 1 for s in spans}
    assert c.stop() == 0


# -- a full queue answers the retryable codes ------------------------------------------------------


def test_full_queue_answers_retryable_codes_and_loses_nothing(start_collector, fake_store):
    c = start_collector(
        env=collector_env(fake_store, TRACEHOUSE_MAX_QUEUE_BYTES="60000"), workers=1, name="full"
    )
    fake_store.fault("unavailable")
    service = unique("full")
    bodies, all_ids = make_load_requests(service, 40, 10)
    acked: set[int] = set()
    refused_http = None
    for i, body in enumerate(bodies):
        r = c.post("/v1/traces", body)
        if r.status_code == 200:
            acked.add(i)
            continue
        refused_http = r
        break
    assert refused_http is not None, "the queue never filled"
    assert len(acked) >= 2, "nothing was queued before the queue was full"
    assert refused_http.status_code == 429, refused_http.content
    assert int(refused_http.headers["Retry-After"]) >= 1
    status = status_pb2.Status.FromString(refused_http.content)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and "queue is full" in status.message
    health = c.health().json()
    assert health["queue"]["bytes"] <= 60000 and health["writer"]["refused_overload"] >= 1, health
    # gRPC: RESOURCE_EXHAUSTED with a RetryInfo delay, which OTel SDKs honour.
    with grpc.insecure_channel(c.grpc_endpoint) as ch:
        stub = ch.unary_unary(TRACE_SERVICE_EXPORT, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            stub(bodies[-1], timeout=30)
    err = info.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    retry = dict(err.trailing_metadata())["google.rpc.retryinfo-bin"]
    assert error_details_pb2.RetryInfo.FromString(retry).retry_delay.seconds >= 1
    # The store returns; the queue drains; the exporters' retries now succeed.
    fake_store.fault("ok")
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    for body in bodies:
        assert c.post("/v1/traces", body).status_code == 200
    assert_stored_once(fake_store, service, {s for ids in all_ids for s in ids})
    assert stored_counts(fake_store, service) == (400, 400)
    assert c.stop() == 0


# -- a permanently bad request cannot block the queue ------------------------------------------------


def test_bad_rows_are_quarantined_and_the_queue_moves_on(start_collector, fake_store):
    marker = unique("POISON")
    c = start_collector(env=collector_env(fake_store), workers=1, name="poison")
    fake_store.fault("unavailable")
    service = unique("poison")
    good_a, ids_a = make_load_requests(service, 3, 5)
    bad = trace_request(service, [make_span("bad", attributes={"note": marker})]).SerializeToString()
    good_b, ids_b = make_load_requests(service, 3, 5)
    for body in [*good_a, bad, *good_b]:
        assert c.post("/v1/traces", body).status_code == 200  # queued while the store is away
    # The store comes back but refuses the one request's rows as invalid data, for good.
    fake_store.fault("poison", marker=marker)
    wait_until(lambda: queue_empty(c), 60, "the queue to drain past the bad request")
    expected = {s for ids in ids_a + ids_b for s in ids}
    assert set(stored_span_ids(fake_store, service)) == expected
    assert_stored_once(fake_store, service, expected)
    health = c.health().json()
    assert health["writer"]["quarantined"] == 1 and health["store_status"] == "ok", health
    # Its rows are kept for an operator, with ClickHouse's reason.
    reasons = list(c.data_dir.glob("journal/*/quarantine/*/reasons.json"))
    assert len(reasons) == 1
    assert "Code: 27" in next(iter(json.loads(reasons[0].read_text()).values()))
    quarantined = [p for p in reasons[0].parent.iterdir() if p.name != "reasons.json"]
    assert len(quarantined) == 1 and marker.encode() in quarantined[0].read_bytes()
    # With the store healthy an export waits for its insert, so a refusal reaches its sender.
    bad2 = trace_request(service, [make_span("bad2", attributes={"note": marker})]).SerializeToString()
    r = c.post("/v1/traces", bad2)
    assert r.status_code == 400 and "refused by the store" in status_pb2.Status.FromString(r.content).message
    good_c, ids_c = make_load_requests(service, 1, 5)
    assert c.post("/v1/traces", good_c[0]).status_code == 200
    assert_stored_once(fake_store, service, expected | set(ids_c[0]))
    assert c.stop() == 0


def test_server_store_path_round_trip(start_collector, fake_store):
    """The http:// store path end to end: ingest, dedup, and read-only SQL through the collector."""
    c = start_collector(env=collector_env(fake_store), workers=1, name="server-store")
    service = unique("server-store")
    spans = [make_span("rt", trace_id=new_trace_id(), attributes={"k": "v"}) for _ in range(4)]
    body = trace_request(service, spans).SerializeToString()
    r = c.post("/v1/traces", body)
    assert r.status_code == 200 and not ExportTraceServiceResponse.FromString(r.content).HasField(
        "partial_success"
    )
    assert c.post("/v1/traces", body).status_code == 200
    rows = c.sql(
        f"SELECT SpanId, SpanAttributes['k'] AS k FROM otel_traces WHERE ServiceName = {quote(service)}"
    )
    assert sorted((r["SpanId"], r["k"]) for r in rows) == sorted((s.span_id.hex(), "v") for s in spans)
    with pytest.raises(Exception, match="(?i)readonly"):
        c.sql("INSERT INTO otel_traces (SpanId) VALUES ('x')")
    assert c.stop() == 0


def test_collector_starts_and_restarts_while_the_store_is_down(start_collector, tmp_path):
    """A store that is down at start (even one never set up) does not stop the collector."""
    store = FakeClickHouseProcess(tmp_path / "late-clickhouse", free_port())  # not started yet
    try:
        c = start_collector(env=collector_env(store), workers=1, name="store-down-at-start")
        health = c.health().json()
        assert health["store_status"] == "failing", health
        service = unique("store-down")
        bodies, all_ids = make_load_requests(service, 6, 10)
        for body in bodies[:3]:
            assert c.post("/v1/traces", body).status_code == 200
        assert c.health().json()["queue"]["requests"] == 3
        # Crash and restart, the store still down: the queue is loaded again and accepting goes on.
        assert c.kill() == -9
        c.start()
        assert c.health().json()["queue"]["requests"] == 3
        for body in bodies[3:]:
            assert c.post("/v1/traces", body).status_code == 200
        assert c.health().json()["queue"]["requests"] == 6
        # The store appears: the collector creates the schema and drains the queue in order.
        store.start()
        wait_until(
            lambda: queue_empty(c) and c.health().json()["store_status"] == "ok", 60, "the queue to drain"
        )
        assert_stored_once(store, service, {s for ids in all_ids for s in ids})
        assert stored_counts(store, service) == (60, 60)
        assert c.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 60
        assert c.stop() == 0
    finally:
        store.stop()


def test_sigterm_with_the_store_down_keeps_the_queue_for_the_next_start(start_collector, fake_store):
    c = start_collector(env=collector_env(fake_store), workers=1, name="stop-store-down")
    fake_store.fault("unavailable")
    service = unique("stop-store-down")
    bodies, all_ids = make_load_requests(service, 4, 10)
    for body in bodies:
        assert c.post("/v1/traces", body).status_code == 200
    started = time.monotonic()
    assert c.stop() == 0, c.log_text()
    assert time.monotonic() - started < 10, "shutdown waited for a store that was already failing"
    assert "batches stay queued" in c.log_text()
    fake_store.fault("ok")
    c.start()
    assert_stored_once(fake_store, service, {s for ids in all_ids for s in ids})
    assert stored_counts(fake_store, service) == (40, 40)
    assert c.stop() == 0


def test_server_store_credentials_are_checked_end_to_end(start_collector, tmp_path):
    """The DSN's password reaches the server: right, the data flows; missing or wrong, the
    start stops with the server's own refusal instead of writing anywhere."""
    store = FakeClickHouseProcess(tmp_path / "ch-auth", free_port(), password="s3cret").start()
    try:
        c = start_collector(env=collector_env(store), workers=1, name="store-auth")
        service = unique("store-auth")
        spans = [make_span("auth", trace_id=new_trace_id()) for _ in range(3)]
        assert c.post("/v1/traces", trace_request(service, spans).SerializeToString()).status_code == 200
        assert stored_span_ids(store, service) == {s.span_id.hex(): 1 for s in spans}
        assert c.stop() == 0
        for dsn in (store.dsn.replace(":s3cret@", "@"), store.dsn.replace("s3cret", "wrong")):
            refused = Collector(tmp_path / f"refused-{len(dsn)}", env={"TRACEHOUSE_STORE": dsn})
            with pytest.raises(RuntimeError, match="(?s)exited with 1.*Authentication failed"):
                refused.start()
            assert "s3cret" not in refused.log_text()  # the password is not echoed
    finally:
        store.stop()
