"""Ingest benchmark.

A load process sends pre-serialized OTLP/gRPC trace requests (512 realistic LLM spans each,
about 2 KB of prompt text per span, fresh span ids in every request) with a fixed number of
exports in flight, retrying what the server asks to be retried. The figure is spans/s from the
first send until every acknowledged span is queryable, printed beside the same load against a
parse-only gRPC receiver (protobuf parsing and nothing else) run in the same invocation.

    make bench-ingest               # defaults below
    make bench-ingest ARGS="--requests 400 --concurrency 8"
    make bench-ingest ARGS="--readers 8"   # also: the same load with 8 heavy SQL readers, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from bench.collector import free_port, stop
from bench.ingest.readers import HeavyReaders

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}

_WORDS = (  # noqa: SIM905
    "the model should answer concisely using the retrieved context about invoices payments refunds "
    "customers orders shipping delays warehouse inventory policy escalation summary please cite sources"  # noqa: SIM905
).split()
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022", "gemini-1.5-pro", "mistral-large-latest"]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _text(rng: random.Random, n_bytes: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_bytes:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def insert_formats(text: str) -> list[str]:
    """--insert-format's value: TRACEHOUSE_INSERT_FORMAT values, comma-separated."""
    from tracehouse_collector.config import INSERT_FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in INSERT_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(INSERT_FORMATS)} (comma-separated), got {text!r}")
    return formats


def build_requests(n_requests: int, spans_per_request: int, seed: int = 7) -> list[bytes]:
    """Serialized requests; every span id (and trace id) is fresh."""
    rng = random.Random(seed)
    prompts = [_text(rng, 2000) for _ in range(16)]
    answers = [_text(rng, 300) for _ in range(16)]
    now = time.time_ns()
    resource = Resource(
        attributes=[
            _kv("service.name", "bench-llm-app"),
            _kv("service.version", "1.4.2"),
            _kv("deployment.environment", "bench"),
            _kv("telemetry.sdk.language", "python"),
        ]
    )
    out = []
    for r in range(n_requests):
        spans = []
        trace_id = os.urandom(16)
        for i in range(spans_per_request):
            if i % 8 == 0:
                trace_id = os.urandom(16)
            model = MODELS[(r + i) % len(MODELS)]
            start = now + (r * spans_per_request + i) * 1_000_000
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=os.urandom(8),
                    parent_span_id=os.urandom(8),
                    name=f"chat {model}",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + rng.randint(200_000_000, 4_000_000_000),
                    attributes=[
                        _kv("gen_ai.operation.name", "chat"),
                        _kv("gen_ai.provider.name", "openai"),
                        _kv("gen_ai.request.model", model),
                        _kv("gen_ai.response.model", model),
                        _kv("gen_ai.request.temperature", 0.2),
                        _kv("gen_ai.request.max_tokens", 512),
                        _kv("gen_ai.usage.input_tokens", rng.randint(200, 900)),
                        _kv("gen_ai.usage.output_tokens", rng.randint(20, 300)),
                        _kv("gen_ai.response.finish_reasons", '["stop"]'),
                        _kv("gen_ai.response.id", f"chatcmpl-{r}-{i}"),
                        _kv("gen_ai.input.messages", prompts[(r + i) % 16]),
                        _kv("gen_ai.output.messages", answers[(r * 7 + i) % 16]),
                        _kv("session.id", f"session-{r % 50}"),
                        _kv("user.id", f"user-{i % 20}"),
                        _kv("server.address", "api.openai.com"),
                        _kv("server.port", 443),
                    ],
                    status=Status(code=Status.STATUS_CODE_UNSET),
                )
            )
        req = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=resource,
                    scope_spans=[ScopeSpans(spans=spans)],
                )
            ]
        )
        req.resource_spans[0].scope_spans[0].scope.name = "tracehouse.bench"
        out.append(req.SerializeToString())
    return out


# -- load -------------------------------------------------------------------------------------


RETRY_FOR_S = 300  # how long send_all retries one refused export before it stops the run


async def send_all(target: str, requests: list[bytes], concurrency: int) -> tuple[float, int, int]:
    """Send every request (retrying retryable failures); returns (first send time, acked, retries)."""
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    acked = 0
    retries = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        export = channel.unary_unary(
            METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )
        first = time.perf_counter()

        async def worker() -> None:
            nonlocal acked, retries
            while not queue.empty():
                body = queue.get_nowait()
                # Overload answers are retried as an SDK would, but not forever: a collector
                # that refuses one request for this long is stuck, not busy.
                give_up = time.perf_counter() + RETRY_FOR_S
                while True:
                    try:
                        await export(body, timeout=60)
                        acked += 1
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in RETRYABLE:
                            raise
                        if time.perf_counter() > give_up:
                            raise SystemExit(
                                f"an export was refused for {RETRY_FOR_S} s ({exc.code().name}: {exc.details()})"
                            ) from None
                        retries += 1
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return first, acked, retries


# -- baseline: parse-only receiver -------------------------------------------------------------


def _parse_only_server(port: int) -> None:
    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])

        async def export(request: bytes, context: object) -> ExportTraceServiceResponse:
            ExportTraceServiceRequest.FromString(request)
            return ExportTraceServiceResponse()

        handler = grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user+system) of a process and, separately, of its live children."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    return one(pid), sum(one(c) for c in children)


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads, summed by thread name (chDB names its threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (decoding workers), in MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_baseline(requests: list[bytes], concurrency: int, spans: int) -> dict:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from bench.ingest.run import _parse_only_server; _parse_only_server({port})"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        first, acked, retries = asyncio.run(send_all(f"127.0.0.1:{port}", requests, concurrency))
        elapsed = time.perf_counter() - first
        return {
            "name": "parse-only gRPC receiver",
            "spans": acked * spans,
            "seconds": elapsed,
            "spans_per_s": acked * spans / elapsed,
            "retries": retries,
            "peak_rss_mb": _peak_rss_mb(proc.pid),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _sql(http: str, query: str) -> list[list]:
    req = urllib.request.Request(
        f"{http}/api/v1/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["rows"]


def run_tracehouse(
    requests: list[bytes],
    concurrency: int,
    spans: int,
    workers: int,
    llm_processor: bool = True,
    readers: int = 0,
    insert_format: str = "json",
    merge_inserts: bool = True,
) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-"))
    grpc_port, http_port = free_port(), free_port()
    http = f"http://127.0.0.1:{http_port}"
    env = dict(os.environ)
    env["TRACEHOUSE_LLM_PROCESSOR"] = "1" if llm_processor else "0"
    env["TRACEHOUSE_INSERT_FORMAT"] = insert_format
    if not merge_inserts:  # the writer before merging: one insert per sealed batch
        env["TRACEHOUSE_MAX_INSERT_ROWS"] = "0"
    cmd = [
        sys.executable, "-m", "tracehouse_collector", "serve",
        "--data-dir", str(data_dir), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
        "--workers", str(workers),
    ]  # fmt: skip
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - the collector writes it until the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{http}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"collector did not start; see {data_dir / 'serve.log'}")
            time.sleep(0.2)
        # Warm up: each decoding worker starts (imports, price table) on its first request;
        # that start-up is not what a span costs, so it happens before the measured load.
        warm = build_requests(4 * max(1, workers), 1, seed=99)
        asyncio.run(send_all(f"127.0.0.1:{grpc_port}", warm, len(warm)))
        warm_by = time.time() + 120
        while int(_sql(http, "SELECT count() FROM otel_traces")[0][0]) < len(warm):
            if time.time() > warm_by or proc.poll() is not None:
                raise SystemExit(f"the warm-up spans never became queryable; see {data_dir / 'serve.log'}")
            time.sleep(0.05)
        with urllib.request.urlopen(f"{http}/healthz", timeout=10) as resp:
            writer_before = json.loads(resp.read())["writer"]
        cpu_before = _cpu_seconds(proc.pid)
        threads_before = _thread_cpu(proc.pid)
        with HeavyReaders(http, readers) as heavy:
            first, acked, retries = asyncio.run(send_all(f"127.0.0.1:{grpc_port}", requests, concurrency))
            acked_at = time.perf_counter()
        expected = acked * spans
        while True:
            count = int(_sql(http, "SELECT count() FROM otel_traces")[0][0]) - len(warm)
            if count >= expected:
                break
            if time.perf_counter() - acked_at > 120:
                raise SystemExit(f"only {count} of {expected} acknowledged spans became queryable")
            time.sleep(0.05)
        elapsed = time.perf_counter() - first
        with urllib.request.urlopen(f"{http}/healthz", timeout=10) as resp:
            writer_stats = json.loads(resp.read())["writer"]
        cpu_after = _cpu_seconds(proc.pid)
        threads_after = _thread_cpu(proc.pid)
        by_thread = {k: v - threads_before.get(k, 0.0) for k, v in threads_after.items()}
        by_thread = dict(sorted(((k, round(v, 2)) for k, v in by_thread.items() if v >= 0.05), key=lambda kv: -kv[1]))
        distinct = int(_sql(http, "SELECT uniqExact(SpanId) FROM otel_traces")[0][0]) - len(warm)
        writer = "merged inserts" if merge_inserts else "insert per batch"
        name = f"tracehouse ({workers} workers, {insert_format}, {writer}){'' if llm_processor else ', no LLM'}"
        return {
            "name": name + (f" + {readers} SQL readers" if readers else ""),
            "read": heavy.summary() if readers else None,
            "spans": expected,
            "seconds": elapsed,
            "spans_per_s": expected / elapsed,
            "retries": retries,
            "stored": count,
            "distinct_span_ids": distinct,
            "ack_to_queryable_s": time.perf_counter() - acked_at,
            "peak_rss_mb": _peak_rss_mb(proc.pid),
            "cpu_s_main": cpu_after[0] - cpu_before[0],
            "cpu_s_workers": cpu_after[1] - cpu_before[1],
            "cpu_s_main_by_thread": by_thread,
            "rows_per_batch": (writer_stats["rows_inserted"] - writer_before["rows_inserted"])
            / max(1, writer_stats["batches"] - writer_before["batches"]),
        }
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="export requests to send (default 200)")
    parser.add_argument("--spans", type=int, default=512, help="spans per request (default 512)")
    parser.add_argument(
        "--concurrency", type=int, default=32,
        help="exports in flight, as from that many application processes (default 32)",
    )
    parser.add_argument("--workers", type=int, default=2, help="collector decoding workers (default 2)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--llm-processor",
        choices=("on", "off", "both"),
        default="on",
        help="run the collector with the LLM processor (normalise, tokens, cost), without it, or both",
    )
    parser.add_argument(
        "--insert-format",
        type=insert_formats,
        default=["json"],
        help="how the collector hands spans to ClickHouse (TRACEHOUSE_INSERT_FORMAT): json, native or "
        "arrow; several, comma-separated, run side by side (default json)",
    )
    parser.add_argument(
        "--writer",
        choices=("merged", "per-batch", "both"),
        default="both",
        help="the writer merging batches queued during an insert into the next one (merged), the "
        "writer before it (per-batch: TRACEHOUSE_MAX_INSERT_ROWS=0, one insert per batch), or both "
        "side by side (default)",
    )
    parser.add_argument(
        "--readers",
        type=int,
        default=0,
        help="also run the load with this many heavy SQL readers querying during ingest (default 0: not)",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    requests = build_requests(args.requests, args.spans)
    size = sum(len(r) for r in requests)
    print(
        f"built {args.requests} requests x {args.spans} spans "
        f"({size / len(requests) / args.spans:.0f} bytes/span, {size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    results = []
    if not args.skip_baseline:
        results.append(run_baseline(requests, args.concurrency, args.spans))
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.llm_processor]
    formats = args.insert_format
    writers = {"merged": [True], "per-batch": [False], "both": [False, True]}[args.writer]
    for llm_on in modes:
        for fmt in formats:
            for merge in writers:
                results.append(
                    run_tracehouse(
                        requests, args.concurrency, args.spans, args.workers, llm_on,
                        insert_format=fmt, merge_inserts=merge,
                    )  # fmt: skip
                )
    if args.readers:  # the last configuration again, with readers, to compare with the quiet run
        results.append(
            run_tracehouse(
                requests, args.concurrency, args.spans, args.workers, modes[-1], args.readers, formats[-1]
            )
        )
    servers = []  # two collectors against a ClickHouse server (bench/ingest/server.py), per format
    if os.environ.get("TRACEHOUSE_BENCH_CLICKHOUSE"):
        from bench.ingest import server as server_mode

        for fmt in formats:
            for merge in writers:
                servers.append(
                    server_mode.run_server_mode(  # fresh span ids: the server keeps every run's rows
                        os.environ["TRACEHOUSE_BENCH_CLICKHOUSE"], build_requests(args.requests, args.spans),
                        args.concurrency, args.spans,
                        args.workers, insert_format=fmt, merge_inserts=merge,
                    )  # fmt: skip
                )
    if args.json:
        print(json.dumps(results + servers, indent=2))
        return 0
    base = results[0]["spans_per_s"]
    print(f"{'receiver':58} {'spans':>8} {'seconds':>8} {'spans/s':>10} {'ratio':>7} {'retries':>8} {'peak MiB':>9}")
    for r in results + servers:
        print(
            f"{r['name']:58} {r['spans']:>8} {r['seconds']:>8.2f} {r['spans_per_s']:>10.0f} "
            f"{r['spans_per_s'] / base:>7.2f} {r['retries']:>8} {r['peak_rss_mb']:>9.0f}"
        )
    for th in results[1:] if not args.skip_baseline else results:
        print(f"{th['name']}:")
        lost = th["spans"] - th["distinct_span_ids"]
        dup = th["stored"] - th["distinct_span_ids"]
        print(f"  stored {th['stored']} rows, {th['distinct_span_ids']} distinct span ids; lost {lost}, duplicated {dup}")
        print(
            f"  CPU seconds during the load: main process {th['cpu_s_main']:.1f}, "
            f"decoding workers {th['cpu_s_workers']:.1f}; acknowledged->queryable {th['ack_to_queryable_s']:.2f}s"
        )
        per_100k = (th["cpu_s_main"] + th["cpu_s_workers"]) / th["spans"] * 100_000
        print(
            f"  {per_100k:.1f} CPU-s per 100k spans; {th['rows_per_batch']:.0f} rows per insert on average; "
            f"peak memory {th['peak_rss_mb']:.0f} MiB (main process + workers)"
        )
        print("  main process CPU by thread: " + ", ".join(f"{k} {v}" for k, v in th["cpu_s_main_by_thread"].items()))
    for th in results:
        if th.get("read"):
            rd = th["read"]
            print(
                f"{th['name']}: {rd['queries']} reads, p50 {rd['read_p50_s']:.2f}s, p95 {rd['read_p95_s']:.2f}s, "
                f"max {rd['read_max_s']:.2f}s; told to retry (503) {rd['busy_503']} times"
                + (f"; errors {rd['errors']}" if rd["errors"] else "")
            )
    for server in servers:
        print(server_mode.report(server))
    return 0
