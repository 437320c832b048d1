"""Ingest with the store down: how much the collector accepts, and its peak memory, while
exports go to the on-disk queue; then how fast the queue drains once the store is back.

Three runs of the same load as `bench.ingest` (pre-serialized OTLP/gRPC requests of 512 LLM
spans, a fixed number of exports in flight):
1. store healthy (embedded chDB), as `make bench-ingest` measures it;
2. store down: the collector points at a ClickHouse HTTP address where nothing listens, so
   every export is acknowledged from the queue until it holds --queue-bytes, and refused with
   RESOURCE_EXHAUSTED after that (each request is sent once here, refusals are counted);
3. the store comes back (the tests' chDB-backed fake ClickHouse, in its own process, on that
   address): the collector drains its queue into it; every acknowledged span must arrive once.

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
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.collector import stop
from bench.ingest.run import METHOD, _peak_rss_mb, build_requests, free_port, run_tracehouse

REPO = Path(__file__).resolve().parents[2]
FAKE_CLICKHOUSE = REPO / "tests" / "support" / "fake_clickhouse.py"


async def send_once(
    target: str, requests: list[bytes], concurrency: int
) -> tuple[int, dict[str, int], float]:
    """Send each request once; returns (acknowledged, other outcomes by status code, seconds)."""
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    acked = 0
    outcomes: dict[str, int] = {}
    todo = list(reversed(requests))
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        export = channel.unary_unary(
            METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        first = time.perf_counter()

        async def worker() -> None:
            nonlocal acked
            while todo:
                body = todo.pop()
                try:
                    await export(body, timeout=60)
                    acked += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes[exc.code().name] = outcomes.get(exc.code().name, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked, outcomes, time.perf_counter() - first


def _health(http: str) -> dict:
    with urllib.request.urlopen(f"{http}/healthz", timeout=10) as resp:
        return json.loads(resp.read())


def _fake_sql(port: int, query: str) -> list[dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/?database=tracehouse&default_format=JSONEachRow", data=query.encode()
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def run_store_down(
    requests: list[bytes], concurrency: int, spans: int, workers: int, queue_bytes: int
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
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - the collector writes it until the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    fake = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                if _health(http)["status"] == "ok":
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"collector did not start; see {data_dir / 'serve.log'}")
            time.sleep(0.2)
        acked, outcomes, seconds = asyncio.run(send_once(f"127.0.0.1:{grpc_port}", requests, concurrency))
        queue = _health(http)["queue"]
        rss_down = _peak_rss_mb(proc.pid)
        # The store comes back.
        fake_log = open(data_dir / "fake-clickhouse.log", "w")  # noqa: SIM115
        fake = subprocess.Popen(
            [sys.executable, str(FAKE_CLICKHOUSE), "--port", str(store_port), "--data", str(data_dir / "ch")],
            stdout=fake_log,
            stderr=subprocess.STDOUT,
        )
        back = time.perf_counter()
        while True:
            health = _health(http)
            if health["store_status"] == "ok" and health["queue"]["requests"] == 0:
                break
            if time.perf_counter() - back > 600:
                raise SystemExit(f"the queue did not drain; see {data_dir}")
            time.sleep(0.2)
        drain_s = time.perf_counter() - back
        row = _fake_sql(store_port, "SELECT count() AS n, uniqExact(SpanId) AS u FROM otel_traces")[0]
        return {
            "name": "tracehouse serve, store down then back",
            "sent_spans": len(requests) * spans,
            "acked_spans": acked * spans,
            "refused": outcomes,
            "accept_seconds": seconds,
            "acked_spans_per_s": acked * spans / seconds,
            "queue_bytes_at_end": queue["bytes"],
            "queue_bytes_per_span": queue["bytes"] / max(1, acked * spans),
            "peak_rss_mb_store_down": rss_down,
            "drain_seconds": drain_s,
            "peak_rss_mb_after_drain": _peak_rss_mb(proc.pid),
            "stored": int(row["n"]),
            "distinct_span_ids": int(row["u"]),
        }
    finally:
        stop(proc)
        if fake is not None:
            fake.kill()
            fake.wait()
        log.close()
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
    args = parser.parse_args(argv)
    requests = build_requests(args.requests, args.spans)
    results = {}
    if not args.skip_healthy:
        results["healthy"] = run_tracehouse(requests, args.concurrency, args.spans, args.workers)
    results["store_down"] = run_store_down(
        requests, args.concurrency, args.spans, args.workers, args.queue_bytes
    )
    print(json.dumps(results, indent=2))
    down = results["store_down"]
    lost = down["acked_spans"] - down["distinct_span_ids"]
    dup = down["stored"] - down["distinct_span_ids"]
    print(
        f"store down: acknowledged {down['acked_spans']} of {down['sent_spans']} spans; lost {lost}, duplicated {dup}"
    )
    return 0 if lost == 0 and dup == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
