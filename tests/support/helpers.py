"""Helpers shared by the test modules: CLI runner, OTLP protobuf builders, small utilities."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

REPO = Path(__file__).resolve().parents[2]  # tests/support/ -> the checkout
TRACE_SERVICE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_SERVICE_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS_SERVICE_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracehouse_cmd(*args: str) -> list[str]:
    """The `tracehouse` CLI, run with the interpreter running the tests."""
    return [sys.executable, "-m", "tracehouse_collector", *args]


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, input_text: str | None = None
) -> subprocess.CompletedProcess:
    """Run `tracehouse ARGS`; TRACEHOUSE_* variables of the test environment are not inherited."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    full_env.update(env or {})
    return subprocess.run(
        tracehouse_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(REPO),
        input=input_text,
    )


def unique(prefix: str = "svc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_trace_id() -> bytes:
    return uuid.uuid4().bytes


def new_span_id() -> bytes:
    return uuid.uuid4().bytes[:8]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Poll until predicate() is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_list(values) -> str:
    return "(" + ", ".join(quote(v) for v in values) + ")"


_HEX = re.compile(r"^[0-9a-f]+$")


def is_lower_hex(value: str, length: int) -> bool:
    return len(value) == length and bool(_HEX.match(value))


# -- OTLP protobuf builders ------------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    out = AnyValue()
    if isinstance(value, AnyValue):
        out.CopyFrom(value)
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, (list, tuple)):
        out.array_value.values.extend(any_value(v) for v in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(kv(k, v) for k, v in value.items())
    else:
        out.string_value = str(value)
    return out


def kv(key: str, value: Any) -> KeyValue:
    out = KeyValue(key=key)
    out.value.CopyFrom(any_value(value))
    return out


BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC


def make_span(
    name: str = "op",
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    start_ns: int = BASE_NS,
    duration_ns: int = 1_000_000,
    attributes: dict[str, Any] | None = None,
    kind: int = Span.SPAN_KIND_INTERNAL,
) -> Span:
    span = Span(
        trace_id=new_trace_id() if trace_id is None else trace_id,
        span_id=new_span_id() if span_id is None else span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
    )
    for k, v in (attributes or {}).items():
        span.attributes.append(kv(k, v))
    return span


def trace_request(service: str, spans: list[Span], scope: str = "tests") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.spans.extend(spans)
    return req


def log_request(service: str, bodies: list[str]) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", service))
    sl = rl.scope_logs.add()
    for i, body in enumerate(bodies):
        rec = sl.log_records.add()
        rec.time_unix_nano = BASE_NS + i
        rec.body.string_value = body
    return req


def rest_get(collector, path: str, **params) -> Any:
    """GET a REST path of a started collector with query parameters; the JSON answer."""
    resp = collector.session.get(collector.http_url + path, params=params, timeout=30)
    resp.raise_for_status()
    return resp.json()


def records(page: dict) -> list[dict]:
    """A REST listing ({"columns", "rows"}) as one dict per row."""
    return [dict(zip(page["columns"], r, strict=True)) for r in page["rows"]]


def score_request(
    service: str, scores: list[tuple[bytes, bytes, str, float | str]]
) -> ExportLogsServiceRequest:
    """`gen_ai.evaluation.result` log records, one per (trace id, span id or b"", name, value),
    a str value being a label: what tracehouse.score() sends."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", service))
    logs = rl.scope_logs.add().log_records
    for trace_id, span_id, name, value in scores:
        rec = logs.add()
        rec.time_unix_nano = time.time_ns()
        rec.event_name = "gen_ai.evaluation.result"
        rec.trace_id, rec.span_id = trace_id, span_id
        rec.attributes.append(kv("gen_ai.evaluation.name", name))
        key = "gen_ai.evaluation.score.label" if isinstance(value, str) else "gen_ai.evaluation.score.value"
        rec.attributes.append(kv(key, value))
    return req


@contextlib.contextmanager
def run_sdk_to(http_url: str, spool_dir: Path, flush_s: float = 60):
    """The run SDK (tracehouse.run) sending to the collector at http_url for the duration of the
    block, with its own spool; everything logged is flushed before the block ends."""
    from tracehouse import _run_transport

    previous = _run_transport._transport
    transport = _run_transport._transport = _run_transport.Transport(
        url=http_url + "/v1/logs", spool_dir=spool_dir
    )
    try:
        yield transport
        assert transport.flush(flush_s), "the run SDK could not deliver everything"
    finally:
        _run_transport._transport = previous
        transport.shutdown(5)
