"""Ingest into a ClickHouse server with two collectors: the scale-out set-up of deploy/.

Runs when TRACEHOUSE_BENCH_CLICKHOUSE names a server (a store DSN,
`http://user:pass@host:8123/tracehouse`). The schema is applied once, then two collectors write
to that server and the load is split between them, call by call, as a balancer would. Reported:
spans/s from the first send until every acknowledged span is queryable in the server, lost and
duplicated spans, and each collector's peak memory (main process plus decoding workers).

    TRACEHOUSE_BENCH_CLICKHOUSE=http://default:pw@127.0.0.1:8123/tracehouse make bench-ingest
    python -m bench.ingest.server --requests 200            # this mode alone
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.collector import free_port, stop, wait_http
from bench.ingest.run import _peak_rss_mb, build_requests, insert_formats, send_all

ENV = "TRACEHOUSE_BENCH_CLICKHOUSE"
SERVICE = "bench-llm-app"  # the service name build_requests gives every span


def _start_collector(
    dsn: str, workers: int, data_dir: Path, insert_format: str = "json", merge_inserts: bool = True
) -> tuple[subprocess.Popen, int, int]:
    grpc_port, http_port = free_port(), free_port()
    env = {**os.environ, "TRACEHOUSE_STORE": dsn, "TRACEHOUSE_INSERT_FORMAT": insert_format}
    if not merge_inserts:  # the writer before merging: one insert per sealed batch
        env["TRACEHOUSE_MAX_INSERT_ROWS"] = "0"
    cmd = [
        sys.executable, "-m", "tracehouse_collector", "serve", "--data-dir", str(data_dir),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--workers", str(workers),
    ]  # fmt: skip
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - the collector writes it until the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    wait_http(f"http://127.0.0.1:{http_port}/healthz", proc, timeout=120, log=data_dir / "serve.log")
    return proc, grpc_port, http_port


async def _send_split(targets: list[str], requests: list[bytes], concurrency: int) -> tuple[float, int, int]:
    """Request i goes to collector i mod n; each gets its share of the exports in flight."""
    n = len(targets)
    parts = await asyncio.gather(
        *(send_all(t, requests[i::n], max(1, concurrency // n)) for i, t in enumerate(targets))
    )
    return min(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


def run_server_mode(
    dsn: str,
    requests: list[bytes],
    concurrency: int,
    spans: int,
    workers: int,
    collectors: int = 2,
    insert_format: str = "json",
    merge_inserts: bool = True,
) -> dict:
    from tracehouse_collector.store.client import DSN, Store

    if DSN.parse(dsn).kind != "http":
        raise SystemExit(f"{ENV} must name a ClickHouse server (http(s)://user:pass@host:8123/tracehouse)")
    schema = subprocess.run(
        [sys.executable, "-m", "tracehouse_collector", "schema", "--store", dsn],
        capture_output=True,
        text=True,
    )
    if schema.returncode != 0:
        raise SystemExit(f"tracehouse schema failed: {schema.stderr.strip()}")
    store = Store(dsn)
    count_sql = f"SELECT count(), uniqExact(SpanId) FROM otel_traces WHERE ServiceName = '{SERVICE}'"
    rows_before, distinct_before = (int(v) for v in store.query(count_sql)[1][0])
    root = Path(tempfile.mkdtemp(prefix="tracehouse-bench-server-"))
    started = []
    try:
        for i in range(collectors):
            (root / f"c{i}").mkdir()
            started.append(_start_collector(dsn, workers, root / f"c{i}", insert_format, merge_inserts))
        targets = [f"127.0.0.1:{grpc}" for _p, grpc, _h in started]
        first, acked, retries = asyncio.run(_send_split(targets, requests, concurrency))
        acked_at = time.perf_counter()
        expected = acked * spans
        while True:
            rows, distinct = (int(v) for v in store.query(count_sql)[1][0])
            if distinct - distinct_before >= expected:
                break
            if time.perf_counter() - acked_at > 300:
                break  # reported as lost below
            time.sleep(0.1)
        elapsed = time.perf_counter() - first
        return {
            "name": f"{collectors} collectors -> ClickHouse server ({workers} workers each, {insert_format}, "
            + ("merged inserts)" if merge_inserts else "insert per batch)"),
            "store": DSN.parse(dsn).display(),
            "spans": expected,
            "seconds": elapsed,
            "spans_per_s": expected / elapsed,
            "retries": retries,
            "stored": rows - rows_before,
            "distinct_span_ids": distinct - distinct_before,
            "ack_to_queryable_s": time.perf_counter() - acked_at,
            "peak_rss_mb_each": [round(_peak_rss_mb(p.pid), 1) for p, _g, _h in started],
            "peak_rss_mb": sum(_peak_rss_mb(p.pid) for p, _g, _h in started),
        }
    finally:
        for proc, _g, _h in started:
            stop(proc)
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def report(result: dict) -> str:
    lost = result["spans"] - result["distinct_span_ids"]
    dup = result["stored"] - result["distinct_span_ids"]
    return (
        f"{result['name']} at {result['store']}:\n"
        f"  {result['spans']} spans in {result['seconds']:.2f}s = {result['spans_per_s']:.0f} spans/s, "
        f"{result['retries']} retries; lost {lost}, duplicated {dup}\n"
        f"  peak memory per collector (MiB, with its workers): {result['peak_rss_mb_each']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--collectors", type=int, default=2)
    parser.add_argument("--store", default=os.environ.get(ENV), help=f"server store DSN ({ENV})")
    parser.add_argument(
        "--insert-format", type=insert_formats, default=["json"],
        help="how spans reach the server (TRACEHOUSE_INSERT_FORMAT): json, native or arrow; several, "
        "comma-separated, side by side (default json)",
    )  # fmt: skip
    parser.add_argument(
        "--writer", choices=("merged", "per-batch", "both"), default="both",
        help="merged inserts, one insert per batch (TRACEHOUSE_MAX_INSERT_ROWS=0), or both side by side (default)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.store:
        parser.error(f"name a ClickHouse server with --store or {ENV}")
    formats = args.insert_format
    writers = {"merged": [True], "per-batch": [False], "both": [False, True]}[args.writer]
    ok = True
    for fmt in formats:
        for merge in writers:
            requests = build_requests(args.requests, args.spans)  # fresh span ids: one server holds every run
            result = run_server_mode(
                args.store, requests, args.concurrency, args.spans, args.workers, args.collectors, fmt, merge
            )
            print(report(result))
            ok = ok and result["distinct_span_ids"] == result["spans"] == result["stored"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
