"""Exactly once across the dangerous window: ClickHouse has committed a batch, the collector has
not learned so (or has not marked it done in its journal), and then the connection drops or
the collector dies.

The fake store (`fake_clickhouse.py`) produces that window on purpose: `commit_reset` commits an
INSERT and closes the connection without an answer; `commit_hang` commits and holds the answer
back while the test kills the collector. The retry (after the reset) and the journal replay
(after the restart) send the same rows again; only a stable deduplication token per batch keeps
them from being stored twice. `tests/support/mutants.py dedup-token` checks that these tests catch a
token that changes between attempts.
"""

from __future__ import annotations

import threading

import grpc
import pytest
import requests
from helpers import TRACE_SERVICE_EXPORT, make_span, new_trace_id, trace_request, unique
from load import assert_stored_once, collector_env, queue_empty, stored_counts, wait_until
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

TRANSPORTS = ["grpc", "http"]


def _requests(service: str, n: int, per_request: int) -> tuple[list[bytes], set[str]]:
    bodies, ids = [], set()
    for r in range(n):
        spans = [make_span(f"op-{r}-{i}", trace_id=new_trace_id()) for i in range(per_request)]
        bodies.append(trace_request(service, spans).SerializeToString())
        ids |= {s.span_id.hex() for s in spans}
    return bodies, ids


def _export(c, transport: str, body: bytes) -> bool:
    """One export as an SDK makes it; True when the collector acknowledged it."""
    if transport == "http":
        try:
            return c.post("/v1/traces", body).status_code == 200
        except requests.RequestException:
            return False
    try:
        with grpc.insecure_channel(c.grpc_endpoint) as channel:
            stub = channel.unary_unary(
                TRACE_SERVICE_EXPORT,
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            response = stub(body, timeout=60)
    except grpc.RpcError:
        return False
    return not response.HasField("partial_success")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batch_committed_then_connection_dropped_is_stored_once(start_collector, fake_store, transport):
    c = start_collector(env=collector_env(fake_store), workers=1, name=f"commit-reset-{transport}")
    service = unique(f"commit-reset-{transport}")
    bodies, ids = _requests(service, 6, 10)
    # Three INSERTs in a row land and lose their answer: the first batch and its retries.
    fake_store.fault("commit_reset", count=3)
    for body in bodies:
        assert _export(c, transport, body)
    wait_until(lambda: fake_store.committed_then_failed() == 3, 60, "three committed-then-dropped INSERTs")
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    assert_stored_once(fake_store, service, ids)
    assert stored_counts(fake_store, service) == (len(ids), len(ids))
    assert c.health().json()["writer"]["store_errors"] >= 3  # the drops were seen, and retried
    assert c.stop() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill9_after_the_store_committed_replays_the_batch_once(start_collector, fake_store, transport):
    c = start_collector(env=collector_env(fake_store), workers=1, name=f"commit-kill-{transport}")
    service = unique(f"commit-kill-{transport}")
    bodies, ids = _requests(service, 1, 25)
    fake_store.fault("commit_hang", count=1, hang_s=120)
    acked: list[bool] = []
    sender = threading.Thread(target=lambda: acked.append(_export(c, transport, bodies[0])), daemon=True)
    sender.start()
    # ClickHouse holds the rows; the collector is still waiting for the answer when it dies.
    wait_until(lambda: fake_store.committed_then_failed() == 1, 60, "the store to commit the batch")
    assert stored_counts(fake_store, service) == (len(ids), len(ids))
    assert c.kill() == -9
    sender.join(timeout=60)
    fake_store.fault("ok")
    c.start()  # replays the journal: the committed batch is sent again
    if not acked[0]:  # the SDK saw no answer, so it exports again (at-least-once delivery)
        assert _export(c, transport, bodies[0])
    wait_until(lambda: queue_empty(c), 60, "the replayed queue to drain")
    assert_stored_once(fake_store, service, ids)
    assert stored_counts(fake_store, service) == (len(ids), len(ids))
    # A late retry of the same export (its answer lost) is not stored again either.
    assert _export(c, transport, bodies[0])
    wait_until(lambda: queue_empty(c), 60, "the queue to drain")
    assert stored_counts(fake_store, service) == (len(ids), len(ids))
    assert c.stop() == 0
