"""bench/ingest/faults.py at a tiny size: it finishes (every wait is bounded) and its
exactly-once check holds; and how its sender treats the collector's retryable answers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bench.collector import clean_env, free_port
from bench.ingest.faults import MAX_ATTEMPTS, Child, send_each, span_ids, wait_for
from bench.ingest.run import METHOD

REPO = Path(__file__).resolve().parents[2]
REQUESTS, SPANS = 6, 32


def _run_faults(*args: str) -> tuple[dict, str]:
    """The bench's store-down run at a tiny size: its JSON and its summary's first line."""
    # The timeout is the "it finishes" check: a wait without an end fails here, not in CI's limit.
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ingest.faults", "--skip-healthy", "--requests", str(REQUESTS),
         "--spans", str(SPANS), "--concurrency", "4", "--drain-timeout", "90", *args],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, end = json.JSONDecoder().raw_decode(proc.stdout)
    return results["store_down"], proc.stdout[end:].strip().splitlines()[0]


def test_the_store_down_run_finishes_and_every_acknowledged_span_arrives_once():
    down, summary = _run_faults()
    total = REQUESTS * SPANS
    # The queue (1 GiB) never fills with 6 small requests: all are acknowledged from it.
    assert down["sent_spans"] == down["acked_spans"] == total
    assert down["refused"] == {}
    assert down["stored"] == down["acked_spans"] == down["distinct_span_ids"]
    assert (down["lost"], down["duplicated"], down["stored_unacknowledged"]) == (0, 0, 0)
    assert summary == f"store down: acknowledged {total} of {total} spans; lost 0, duplicated 0"


def test_with_a_full_queue_the_refused_exports_are_not_stored():
    # About 115 KB of spool per request of 32 spans: two fit, the rest find the queue full.
    down, summary = _run_faults("--queue-bytes", "250000")
    acked_requests = down["acked_spans"] // SPANS
    assert 1 <= acked_requests < REQUESTS
    assert down["refused"] == {"RESOURCE_EXHAUSTED": REQUESTS - acked_requests}
    assert down["stored"] == down["acked_spans"] == down["distinct_span_ids"]
    assert (down["lost"], down["duplicated"], down["stored_unacknowledged"]) == (0, 0, 0)
    assert summary.endswith("; lost 0, duplicated 0")


def _request(n: int) -> bytes:
    spans = [Span(trace_id=bytes([n]) * 16, span_id=bytes([n, i]) * 4, name="s") for i in range(3)]
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    ).SerializeToString()


async def _serve_and_send(requests: list[bytes], answers: dict[bytes, list[grpc.StatusCode]]):
    """A gRPC server answering each request with its listed codes, in turn (then OK)."""
    calls: dict[bytes, int] = {}

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> ExportTraceServiceResponse:
        calls[body] = calls.get(body, 0) + 1
        codes = answers.get(body, [])
        if calls[body] <= len(codes):
            await context.abort(codes[calls[body] - 1], "try again")
        return ExportTraceServiceResponse()

    server = grpc.aio.server()
    service, method = METHOD.strip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=None, response_serializer=ExportTraceServiceResponse.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        return await send_each(f"127.0.0.1:{port}", requests, 2), calls
    finally:
        await server.stop(None)


def test_the_sender_retries_unavailable_and_counts_a_full_queue_as_refused():
    requests = [_request(n) for n in range(5)]
    unavailable, exhausted = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED
    answers = {
        requests[0]: [unavailable, unavailable],  # acknowledged on the third attempt
        requests[1]: [exhausted],  # the queue is full: not sent again
        requests[2]: [unavailable] * MAX_ATTEMPTS,  # never taken: refused after the last attempt
    }
    sent, calls = asyncio.run(_serve_and_send(requests, answers))
    assert sorted(sent.acked) == [0, 3, 4]
    assert sent.refused == {"RESOURCE_EXHAUSTED": 1, "UNAVAILABLE": 1}
    assert sent.retries == {"UNAVAILABLE": 2 + (MAX_ATTEMPTS - 1)}
    assert sent.first_reason == {"UNAVAILABLE": "try again"}
    assert [calls[r] for r in requests] == [3, 1, MAX_ATTEMPTS, 1, 1]
    # The span ids the exactly-once check compares with the store, read back from the bytes.
    assert span_ids(requests[:1]) == {(bytes([0, i]) * 4).hex() for i in range(3)}


def test_a_wait_stops_with_the_child_named_and_its_log_when_it_exits_or_never_answers(tmp_path):
    script = "import sys, time; print('starting up', flush=True); time.sleep(float(sys.argv[1])); sys.exit(3)"
    quitter = Child("the quitter", [sys.executable, "-c", script, "0"], tmp_path / "quitter.log")
    quitter.proc.wait(timeout=30)
    with pytest.raises(SystemExit, match=r"^the quitter exited with status 3; .*\nstarting up$"):
        wait_for("answer", lambda: False, [quitter], 30)
    sleeper = Child("the sleeper", [sys.executable, "-c", script, "60"], tmp_path / "sleeper.log")
    try:
        started = time.monotonic()
        with pytest.raises(SystemExit, match=r"^the sleeper did not answer within 1 s; .*\nstarting up$"):
            wait_for("answer", lambda: False, [sleeper], 1)
        assert time.monotonic() - started < 10
    finally:
        sleeper.proc.kill()
        sleeper.proc.wait()
