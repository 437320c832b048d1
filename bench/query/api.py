"""Trace lookup and aggregates as a client sees them: through REST and gRPC of a running collector.

bench.query.run loads the store, then hands its directory here: a `tracehouse serve` process
opens it, and each case is timed from a client in this process over keep-alive connections
(HTTP/1.1 for REST, one gRPC channel), the median of repeated calls after one warm-up. Each
figure is printed beside its target (issue 19) and beside the same call made in-process (the
query module alone), so what the API layers add is visible.
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.collector import free_port, stop, wait_http

# Issue 19's targets (ms): a trace by id at 50k spans and at 10M; aggregates over 2 h of 50k
# spans and over 24 h of 10M.
LOOKUP_TARGET_MS = {"small": 10, "large": 25}
AGGREGATE_TARGET_MS = {"small": 25, "large": 100}
LARGE_SPANS = 5_000_000  # from here on a store is judged by the 10M targets
AGGREGATES = ("latency", "cost", "errors")


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    runs.sort()
    return runs[len(runs) // 2]


def _start(store_dir: str, data_dir: Path) -> tuple[subprocess.Popen, int, int]:
    grpc_port, http_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "tracehouse_collector", "serve", "--store", f"chdb://{store_dir}",
        "--data-dir", str(data_dir), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
    ]  # fmt: skip
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - the collector writes it until the end
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    wait_http(f"http://127.0.0.1:{http_port}/healthz", proc, timeout=120, log=data_dir / "serve.log")
    return proc, grpc_port, http_port


def _rest_get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise SystemExit(f"GET {path}: {resp.status} {body[:300]!r}")
    return body


def measure(
    store_dir: str, ids: list[str], spans: int, repeat: int, in_process: dict[str, float]
) -> list[tuple[str, float, float | None, int]]:
    """(case, API ms, in-process ms or None, target ms) for every case; `in_process` holds the
    in-process figures bench.query.run measured, by case name."""
    import grpc
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2 as pb
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2_grpc

    size = "large" if spans >= LARGE_SPANS else "small"
    window = "24h" if size == "large" else "2h"
    data_dir = Path(store_dir).parent / (Path(store_dir).name + "-serve")
    data_dir.mkdir(exist_ok=True)
    proc, grpc_port, http_port = _start(store_dir, data_dir)
    rng = random.Random(2)
    out: list[tuple[str, float, float | None, int]] = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = query_pb2_grpc.QueryStub(channel)
        lookup_target = LOOKUP_TARGET_MS[size]
        out.append(
            (
                "trace lookup, REST",
                _median(lambda: _rest_get(conn, f"/api/v1/traces/{rng.choice(ids)}"), repeat * 3),
                in_process.get("lookup"),
                lookup_target,
            )
        )
        out.append(
            (
                "trace lookup, gRPC",
                _median(lambda: stub.GetTrace(pb.GetTraceRequest(trace_id=rng.choice(ids)), timeout=60), repeat * 3),
                in_process.get("lookup"),
                lookup_target,
            )
        )
        for kind in AGGREGATES:
            path = f"/api/v1/query/{kind}?by=model&since={window}"
            request = pb.AggregateRequest(kind=kind, by=["model"], since=window)
            ms_rest = _median(lambda p=path: _rest_get(conn, p), repeat)
            ms_grpc = _median(lambda r=request: stub.Aggregate(r, timeout=60), repeat)
            target = AGGREGATE_TARGET_MS[size]
            out.append((f"{kind} by model, {window}, REST", ms_rest, in_process.get(f"{kind} {window}"), target))
            out.append((f"{kind} by model, {window}, gRPC", ms_grpc, in_process.get(f"{kind} {window}"), target))
        channel.close()
        conn.close()
    finally:
        stop(proc)
    return out


def report(rows: list[tuple[str, float, float | None, int]], spans: int, repeat: int) -> None:
    print(f"\nthrough the API of a running collector ({spans:,} spans, {os.cpu_count()} CPUs)")
    print(f"{'case':<34} {'API ms':>8} {'in-process ms':>14} {'target':>8}  ok")
    print("-" * 72)
    for label, ms, local, target in rows:
        local_s = f"{local:14.1f}" if local is not None else f"{'-':>14}"
        print(f"{label:<34} {ms:8.1f} {local_s} {'<=' + str(target):>8}  {'yes' if ms <= target else 'NO'}")
    size = "10M" if spans >= LARGE_SPANS else "50k"
    print(
        f"targets: issue 19's for {size} spans; median of {repeat * 3} lookups (random ids) and "
        f"{repeat} aggregates after one warm-up"
    )
