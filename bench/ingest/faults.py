"""Ingest with the store down: how much the collector accepts, and its peak memory, while
exports go to the on-disk queue; then how fast the queue drains once the store is back.

Three runs of the same load as `bench.ingest` (pre-serialized OTLP/gRPC requests of 512 LLM
spans, a fixed number of exports in flight):
1. store healthy (embedded chDB), as `make bench-ingest` measures it;
2. store down: the collector points at a ClickHouse HTTP address where nothing listens, so
   every export is acknowledged from the queue until it holds --queue-bytes, and refused with
   RESOURCE_EXHAUSTED after that (not retried here: the refusals are counted). UNAVAILABLE
   ("not taken, retry") is retried with the same request, as an OTel SDK does, and counted
   apart. With 16 or more exports in flight on one connection it comes from gRPC itself: its
   server refuses a new stream (RST_STREAM REFUSED_STREAM) while the connection holds more
   than TRACEHOUSE_GRPC_MAX_STREAMS (16) calls, counting answered calls not yet released;
3. the store comes back (the tests' chDB-backed fake ClickHouse, in its own process, on that
   address): the collector drains its queue into it; every acknowledged span must arrive once
   (checked span id by span id).

Every wait is bounded: a collector or fake ClickHouse that exits, or does not answer in time,
stops the run with an error naming it and the end of its log.

    python -m bench.ingest.faults --requests 200 [--queue-bytes 1073741824]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.collector import free_port, stop
from bench.ingest.run import METHOD, _peak_rss_mb, build_requests, run_tracehouse

REPO = Path(__file__).resolve().parents[2]
FAKE_CLICKHOUSE = REPO / "tests" / "support" / "fake_clickhouse.py"
START_TIMEOUT_S = 120  # a collector's or the fake's start, on a busy 2-core machine
RPC_TIMEOUT_S = 60
MAX_ATTEMPTS = 5  # an export answered UNAVAILABLE is sent again up to this many times in all
LOG_TAIL_LINES = 20


class Child:
    """A process this bench started, its output going to a log file; every error about it
    names it and quotes the end of that log (the data directory holding it is removed)."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def error(self, what: str) -> SystemExit:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError as exc:
            tail = [f"(cannot read {self.log_path}: {exc})"]
        return SystemExit(f"{self.name} {what}; the end of its output:\n" + "\n".join(tail))

    def check(self) -> None:
        """Raise if the process has exited."""
        if self.proc.poll() is not None:
            raise self.error(f"exited with status {self.proc.returncode}")


def wait_for(what: str, ready: Callable[[], bool], children: list[Child], timeout_s: float) -> float:
    """Poll `ready` until true; raise, naming `what` and the first child's log, after timeout_s
    or as soon as a child exits. Returns the seconds waited. Connection errors count as not ready."""
    start = time.monotonic()
    while True:
        for child in children:
            child.check()
        try:
            if ready():
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout_s:
            raise children[0].error(f"did not {what} within {timeout_s:g} s")
        time.sleep(0.2)


@dataclass
class Sent:
    acked: list[int] = field(default_factory=list)  # indexes of the acknowledged requests
    refused: dict[str, int] = field(default_factory=dict)  # final outcome by status code
    first_reason: dict[str, str] = field(default_factory=dict)  # retried answer -> its first message
    retries: dict[str, int] = field(default_factory=dict)  # retryable answer -> times retried
    seconds: float = 0.0


async def send_each(target: str, requests: list[bytes], concurrency: int) -> Sent:
    """Send each request until it is acknowledged or refused for good.

    RESOURCE_EXHAUSTED (the queue is full) is final here: counting those is the point of the
    run. UNAVAILABLE is retried with the same bytes (the collector recognises a retry), at most
    MAX_ATTEMPTS times, as an OTel SDK does: it means "not taken, try again", e.g. a stream
    that gRPC refused with more calls on the connection than the collector allows.
    """
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    sent = Sent()
    todo = list(reversed(range(len(requests))))
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        export = channel.unary_unary(
            METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        first = time.perf_counter()

        async def worker() -> None:
            while todo:
                index = todo.pop()
                for attempt in range(MAX_ATTEMPTS):
                    try:
                        await export(requests[index], timeout=RPC_TIMEOUT_S)
                        sent.acked.append(index)
                        break
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code().name
                        if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == MAX_ATTEMPTS - 1:
                            sent.refused[code] = sent.refused.get(code, 0) + 1
                            break
                        sent.first_reason.setdefault(code, exc.details() or "")
                        sent.retries[code] = sent.retries.get(code, 0) + 1
                        await asyncio.sleep(0.2 * 2**attempt)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent.seconds = time.perf_counter() - first
    return sent


def span_ids(requests: list[bytes]) -> set[str]:
    """The span ids these requests carry, hex as the store keeps them."""
    out: set[str] = set()
    for body in requests:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                out.update(span.span_id.hex() for span in ss.spans)
    return out


def _health(http: str) -> dict:
    with urllib.request.urlopen(f"{http}/healthz", timeout=10) as resp:
        return json.loads(resp.read())


def _answers_ping(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
        return resp.status == 200


def _fake_sql(port: int, query: str) -> list[dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/?database=tracehouse&default_format=JSONEachRow", data=query.encode()
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def run_store_down(
    requests: list[bytes],
    concurrency: int,
    spans: int,
    workers: int,
    queue_bytes: int,
    drain_timeout_s: float = 600,
) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-faults-"))
    grpc_port, http_port, store_port = free_port(), free_port(), free_port()
    http = f"http://127.0.0.1:{http_port}"
    env = dict(os.environ)
    env["TRACEHOUSE_STORE"] = f"http://default@127.0.0.1:{store_port}/tracehouse"
    env["TRACEHOUSE_MAX_QUEUE_BYTES"] = str(queue_bytes)
    cmd = [
        sys.executable, "-m", "tracehouse_collector", "serve",
        "--data-dir", str(data_dir / "collector"), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
        "--workers", str(workers),
    ]  # fmt: skip
    collector = Child("the collector (tracehouse serve)", cmd, data_dir / "serve.log", env)
    fake = None
    try:
        wait_for("answer /healthz", lambda: _health(http)["status"] == "ok", [collector], START_TIMEOUT_S)
        sent = asyncio.run(send_each(f"127.0.0.1:{grpc_port}", requests, concurrency))
        collector.check()
        queue = _health(http)["queue"]
        rss_down = _peak_rss_mb(collector.proc.pid)
        # The store comes back.
        fake_cmd = [
            sys.executable, str(FAKE_CLICKHOUSE), "--port", str(store_port), "--data", str(data_dir / "ch"),
        ]  # fmt: skip
        fake = Child(f"the fake ClickHouse ({FAKE_CLICKHOUSE})", fake_cmd, data_dir / "fake-clickhouse.log")
        back = time.perf_counter()
        url = f"http://127.0.0.1:{store_port}"
        wait_for("answer /ping", lambda: _answers_ping(url), [fake, collector], START_TIMEOUT_S)

        def drained() -> bool:
            health = _health(http)
            return health["store_status"] == "ok" and health["queue"]["requests"] == 0

        wait_for("drain its queue into the store", drained, [collector, fake], drain_timeout_s)
        drain_s = time.perf_counter() - back
        stored_rows = _fake_sql(store_port, "SELECT SpanId FROM otel_traces")
        stored = {row["SpanId"] for row in stored_rows}
        acked_ids = span_ids([requests[i] for i in sent.acked])
        acked = len(sent.acked)
        return {
            "name": "tracehouse serve, store down then back",
            "sent_spans": len(requests) * spans,
            "acked_spans": acked * spans,
            "refused": sent.refused,
            "retried": sent.retries,
            "retried_because": sent.first_reason,
            "accept_seconds": sent.seconds,
            "acked_spans_per_s": acked * spans / sent.seconds,
            "queue_bytes_at_end": queue["bytes"],
            "queue_bytes_per_span": queue["bytes"] / max(1, acked * spans),
            "peak_rss_mb_store_down": rss_down,
            "drain_seconds": drain_s,
            "peak_rss_mb_after_drain": _peak_rss_mb(collector.proc.pid),
            "stored": len(stored_rows),
            "distinct_span_ids": len(stored),
            "lost": len(acked_ids - stored),  # acknowledged, not stored
            "duplicated": len(stored_rows) - len(stored),
            "stored_unacknowledged": len(stored - acked_ids),  # a final refusal that landed anyway
        }
    finally:
        stop(collector.proc)
        if fake is not None:
            fake.proc.kill()
            fake.proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="export requests to send (default 200)")
    parser.add_argument("--spans", type=int, default=512, help="spans per request (default 512)")
    parser.add_argument("--concurrency", type=int, default=32, help="exports in flight (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="collector decoding workers (default 2)")
    parser.add_argument(
        "--queue-bytes", type=int, default=1 << 30, help="TRACEHOUSE_MAX_QUEUE_BYTES for the store-down run"
    )
    parser.add_argument("--skip-healthy", action="store_true", help="only the store-down run")
    parser.add_argument(
        "--drain-timeout", type=float, default=600, help="seconds the queue may take to drain (default 600)"
    )
    args = parser.parse_args(argv)
    requests = build_requests(args.requests, args.spans)
    results = {}
    if not args.skip_healthy:
        results["healthy"] = run_tracehouse(requests, args.concurrency, args.spans, args.workers)
    results["store_down"] = run_store_down(
        requests, args.concurrency, args.spans, args.workers, args.queue_bytes, args.drain_timeout
    )
    print(json.dumps(results, indent=2))
    print(summary(results["store_down"]))
    down = results["store_down"]
    return 0 if down["lost"] == 0 and down["duplicated"] == 0 else 1


def summary(down: dict) -> str:
    """The store-down run in words: what was acknowledged, lost, refused and retried."""
    lines = [
        f"store down: acknowledged {down['acked_spans']} of {down['sent_spans']} spans; "
        f"lost {down['lost']}, duplicated {down['duplicated']}"
    ]
    for code, n in down["refused"].items():
        why = " (the queue is full; an SDK would retry them later)" if code == "RESOURCE_EXHAUSTED" else ""
        lines.append(f"  refused, not sent again here: {n} exports answered {code}{why}")
    for code, n in down["retried"].items():
        lines.append(
            f"  retried: exports were answered {code} {n} time{'s' if n != 1 else ''} and sent again, as an OTel SDK does "
            f"(a retryable answer); the first said: {down['retried_because'][code]}"
        )
    if down["stored_unacknowledged"]:
        lines.append(f"  stored though not acknowledged: {down['stored_unacknowledged']} spans")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
