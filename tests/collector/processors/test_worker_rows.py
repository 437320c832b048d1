"""A decoding worker's output, byte for byte: a varied corpus of export requests through
`pipeline.process` (parse -> rows -> LLM processor -> encoded rows) gives exactly the rows
pinned in data/worker_rows.jsonl.

The pinned rows were written by the worker path as it was before its speed work (commit
c71fc0b), so every shortcut taken since (per-resource caching, fast exits, memoised price
lookups) is held to the old output: the same columns, the same values, the same bytes. The
corpus covers every attribute value type, cut values, events and links, rejected spans,
several resources and scopes, each convention's model call (bench/normalize's spans), price
variants, cache and reasoning tokens, failed calls, unpriced and self-hosted models, token
estimation, reported costs, context ids from span and resource, logs and metrics.

When a deliberate change alters the rows, rewrite the file with `TRACEHOUSE_WRITE_WORKER_ROWS=1`
and review the diff. genai-prices is not pinned, so a fresh install may bring newer price data:
when the installed version is not the one the pinned PriceSource values name, the price columns
(PriceSource and the costs) are left out of the comparison on both sides and every other byte is
still compared; the costs themselves are checked against genai-prices by the cost tests.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import re
from pathlib import Path

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from tracehouse_collector.processors import pipeline

from bench.normalize.run import SPANS

PINNED = Path(__file__).parent / "data" / "worker_rows.jsonl"
T0 = 1_795_168_800_000_000_000  # 2026-11-20 10:00:00 UTC
LIMIT = 4096  # max_attribute_bytes: small, so the corpus has values over it
# The collector's own unknown-model metric is stamped with the time of processing.
CLOCK_COLUMNS = ("StartTimeUnix", "TimeUnix")


def _value(v: object) -> AnyValue:
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=_kvs(v)))
    return AnyValue(string_value=str(v))


def _kvs(attrs: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


_serial = [0]


def _span(name: str, attrs: dict[str, object], **fields: object) -> Span:
    _serial[0] += 1
    n = _serial[0]
    start = T0 + n * 1_000_003_007
    span = Span(
        trace_id=(n // 4 + 1).to_bytes(16, "big"),
        span_id=(n + 1).to_bytes(8, "big"),
        parent_span_id=(n if n % 3 else 0).to_bytes(8, "big") if n % 3 else b"",
        name=name,
        kind=n % 6,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_234_567 * n,
        attributes=_kvs(attrs),
    )
    for key, value in fields.items():
        if key == "status":
            span.status.CopyFrom(value)  # type: ignore[arg-type]
        elif key == "events":
            span.events.extend(value)  # type: ignore[arg-type]
        elif key == "links":
            span.links.extend(value)  # type: ignore[arg-type]
        else:
            setattr(span, key, value)
    return span


def _chat(model: str, provider: str, **extra: object) -> dict[str, object]:
    attrs: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 1800,
        "gen_ai.usage.output_tokens": 240,
    }
    attrs.update(extra)
    return {k: v for k, v in attrs.items() if v is not None}


MESSAGES_IN = json.dumps(
    [{"role": "user", "parts": [{"type": "text", "content": "Where is my order 1234? " * 6}]}]
)
MESSAGES_OUT = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "On its way."}]}])
EVAL_EVENT = Span.Event(
    time_unix_nano=T0 + 5,
    name="gen_ai.evaluation.result",
    attributes=_kvs({"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.75}),
)


def _model_spans() -> list[Span]:
    """Model calls of every shape the LLM processor distinguishes."""
    spans = [_span(name, dict(attrs)) for name, attrs in SPANS.values()]
    spans += [
        _span("chat gpt-4o", _chat("gpt-4o", "openai", **{"gen_ai.response.model": "gpt-4o-2024-08-06"})),
        _span("chat", _chat("gpt-4o", "openai", **{"openai.response.service_tier": "priority"})),
        _span("chat", _chat("gpt-4o-mini", "openai", **{"tracehouse.request.batch": "true"})),
        _span("chat", _chat("gpt-4o", "openai", **{"openai.request.service_tier": "scale"})),
        _span(
            "chat",
            _chat(
                "claude-3-5-sonnet-20241022",
                "anthropic",
                **{
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.usage.cache_creation.input_tokens": 300,
                },
            ),
        ),
        _span(
            "chat",
            _chat("o3-mini", "openai", **{"gen_ai.usage.reasoning.output_tokens": 120, "server.port": 443}),
        ),
        _span(
            "chat", _chat("gpt-4o", "openai"), status=Status(code=Status.STATUS_CODE_ERROR, message="boom")
        ),
        _span(
            "chat",
            _chat(
                "gpt-4o", "openai", **{"gen_ai.usage.input_tokens": None, "gen_ai.usage.output_tokens": None}
            ),
            status=Status(code=Status.STATUS_CODE_ERROR, message="timeout"),
        ),
        _span(
            "chat",
            _chat(
                "gpt-4o",
                "openai",
                **{
                    "gen_ai.usage.input_tokens": None,
                    "gen_ai.usage.output_tokens": None,
                    "gen_ai.input.messages": MESSAGES_IN,
                    "gen_ai.output.messages": MESSAGES_OUT,
                },
            ),
        ),
        _span("chat", _chat("my-own-finetune-7", "openai")),
        _span("chat", _chat("llama3.1:8b", "ollama")),
        _span("chat", _chat("gemini-1.5-pro", "gcp.gemini", **{"gen_ai.usage.input_tokens": 250_000})),
        _span(
            "embeddings", _chat("text-embedding-3-small", "openai", **{"gen_ai.operation.name": "embeddings"})
        ),
        _span("chat", _chat("mistral-large-latest", "", **{"server.address": "api.mistral.ai"})),
        _span(
            "chat", _chat("gpt-4o", "langchain", **{"gen_ai.usage.input_tokens": "12.0", "user.id": "u-9"})
        ),
        _span("chat", _chat("gpt-4o", "openai", **{"gen_ai.usage.output_tokens": "garbage"})),
        _span("chat", _chat("gpt-4o", "openai"), events=[EVAL_EVENT]),
    ]
    return spans


def _plain_spans() -> list[Span]:
    """Spans with no GenAI semantics, carrying every attribute value type and row feature."""
    big = "x" * (LIMIT + 10)
    wide = "é" * (LIMIT // 2 + 3)  # over the limit in UTF-8 bytes, not in characters
    link = Span.Link(
        trace_id=(99).to_bytes(16, "big"),
        span_id=(98).to_bytes(8, "big"),
        trace_state="k=v",
        attributes=_kvs({"link.n": 1}),
    )
    event = Span.Event(time_unix_nano=T0 + 1, name="exception", attributes=_kvs({"exception.message": big}))
    return [
        _span(
            "GET /orders",
            {
                "http.request.method": "GET",
                "http.response.status_code": 200,
                "ratio": 0.1,
                "whole": 3.0,
                "huge": 1e20,
                "nan": float("nan"),
                "inf": float("-inf"),
                "flag": True,
                "off": False,
                "raw": b"\x00\x01\xfe",
                "list": ["a", 1, 2.5, True, "b", [1, [2]]],
                "map": {"k": "v", "n": {"deep": [1, 2]}, "inf": float("inf")},
                "empty": "",
                "none": AnyValue(),
                "unicode": "žluťoučký 🐴",
            },
            trace_state="vendor=1",
            links=[link],
        ),
        _span("cut", {"big": big, "wide": wide, "fine": "ok", "n": 7}, events=[event]),
        _span(
            "ok",
            {"session.id": "s-1", "langfuse.session.id": "s-2"},
            status=Status(code=Status.STATUS_CODE_OK),
        ),
        _span("mlflow", {"mlflow.trace.session": '"s-3"', "mlflow.spanType": '"CHAIN"'}),
        _span("bare", {}),
    ]


def _bad_spans() -> list[Span]:
    good = _span("x", {})
    bad = []
    for field, value in (
        ("trace_id", b"\x00" * 16),
        ("span_id", b"\x01\x02"),
        ("parent_span_id", b"\x01"),
        ("end_time_unix_nano", T0 - 1),
        ("start_time_unix_nano", 2**63 + 5),
    ):
        span = Span()
        span.CopyFrom(good)
        setattr(span, field, value)
        bad.append(span)
    return bad


def _resource(attrs: dict[str, object]) -> Resource:
    return Resource(attributes=_kvs(attrs))


def trace_requests() -> list[ExportTraceServiceRequest]:
    _serial[0] = 0
    first = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(
                    {"service.name": "shop", "service.version": "2.1", "session.id": "res-session"}
                ),
                scope_spans=[
                    ScopeSpans(spans=_model_spans()),
                    ScopeSpans(spans=_plain_spans()),
                ],
            ),
            ResourceSpans(
                resource=_resource({"service.name": "worker", "tracehouse.run.id": "run-7", "user.id": 12}),
                scope_spans=[ScopeSpans(spans=_model_spans()[:4] + _bad_spans())],
            ),
            ResourceSpans(resource=_resource({}), scope_spans=[ScopeSpans(spans=_plain_spans()[:2])]),
        ]
    )
    first.resource_spans[0].scope_spans[0].scope.name = "llm.sdk"
    first.resource_spans[0].scope_spans[0].scope.version = "0.9"
    first.resource_spans[1].scope_spans[0].scope.name = "other"
    second = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource({"service.name": "solo"}),
                scope_spans=[ScopeSpans(spans=[_span("chat", _chat("gpt-4o", "openai"))])],
            )
        ]
    )
    return [first, second]


def log_request() -> ExportLogsServiceRequest:
    record = LogRecord(
        time_unix_nano=T0,
        severity_number=9,
        severity_text="INFO",
        body=_value({"msg": "hello", "n": 2}),
        attributes=_kvs({"session.id": "s-1", "big": "y" * (LIMIT + 1)}),
        trace_id=(5).to_bytes(16, "big"),
        span_id=(6).to_bytes(8, "big"),
    )
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=_resource({"service.name": "shop"}), scope_logs=[ScopeLogs(log_records=[record])]
            )
        ]
    )


def metric_request() -> ExportMetricsServiceRequest:
    point = NumberDataPoint(
        time_unix_nano=T0, start_time_unix_nano=T0 - 10, as_double=1.5, attributes=_kvs({"k": 1})
    )
    metric = Metric(name="queue.depth", unit="1", gauge=Gauge(data_points=[point]))
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=_resource({"service.name": "shop"}), scope_metrics=[ScopeMetrics(metrics=[metric])]
            )
        ]
    )


def _requests() -> list[tuple[str, bytes, str]]:
    out = [("traces", r.SerializeToString(), "protobuf") for r in trace_requests()]
    # OTLP/JSON: ids as hex, the rest as protobuf's JSON mapping
    doc = json_format.MessageToDict(trace_requests()[1])
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    out.append(("traces", json.dumps(doc).encode(), "json"))
    out.append(("logs", log_request().SerializeToString(), "protobuf"))
    out.append(("metrics", metric_request().SerializeToString(), "protobuf"))
    return out


def _worker_output(tmp_path: Path) -> list[str]:
    """One line per request and table: the request, the table, then its rows exactly as spooled."""
    lines = []
    for i, (signal, body, content_type) in enumerate(_requests()):
        out = pipeline.process(signal, body, content_type, "", 10_000_000, LIMIT, str(tmp_path), fsync=False)
        lines.append(json.dumps({"request": i, "rejected": out.rejected, "error": out.error_message}))
        for table in sorted(out.files):
            data = Path(out.files[table]).read_bytes()
            # JSONEachRow, rows separated by commas on one line: one row a line here, for diffs.
            rows = orjson.loads(b"[" + data.rstrip(b"\n") + b"]")
            if table.startswith("otel_metrics"):
                for row in rows:
                    if row.get("ServiceName") == "tracehouse-collector":
                        row.update(dict.fromkeys(CLOCK_COLUMNS, "<now>"))
            else:
                assert b",".join(map(orjson.dumps, rows)) + b"\n" == data
            lines.append(json.dumps({"request": i, "table": table}))
            lines.extend(orjson.dumps(row).decode() for row in rows)
    return lines


PRICE_COLUMNS = ("PriceSource", "InputCostUSD", "OutputCostUSD", "TotalCostUSD")


def _pinned_prices_version(lines: list[str]) -> str | None:
    found = re.search(r'"PriceSource":"genai-prices ([^ "]+)', "\n".join(lines))
    return found.group(1) if found else None


def _without_prices(line: str) -> str:
    if '"PriceSource"' not in line:
        return line
    row = json.loads(line)
    return json.dumps({k: v for k, v in row.items() if k not in PRICE_COLUMNS})


def test_worker_rows_are_byte_identical_to_the_pinned_ones(tmp_path: Path) -> None:
    got = _worker_output(tmp_path)
    if os.environ.get("TRACEHOUSE_WRITE_WORKER_ROWS"):
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text("\n".join(got) + "\n")
    expected = PINNED.read_text().splitlines()
    if _pinned_prices_version(expected) != importlib.metadata.version("genai-prices"):
        got, expected = [_without_prices(x) for x in got], [_without_prices(x) for x in expected]
    assert len(got) == len(expected)
    for n, (line, want) in enumerate(zip(got, expected, strict=True)):
        assert line == want, f"line {n + 1} of {PINNED.name} differs"


def test_the_corpus_reaches_what_it_is_meant_to() -> None:
    """Guards the corpus itself: rejections, cut values, every price outcome, estimation."""
    lines = PINNED.read_text()
    spans = [json.loads(x) for x in lines.splitlines() if '"SpanAttributes"' in x]
    sources = {s.get("PriceSource", "") for s in spans}
    assert {"reported", "unpriced", "not billed: failed without usage"} <= sources
    assert any("service_tier=priority" in s for s in sources) and any(
        "no service_tier=scale" in s for s in sources
    )
    assert any(s.get("TokensEstimated") for s in spans)
    assert any("tracehouse.truncated" in s["SpanAttributes"] for s in spans)
    assert any(s.get("CacheWriteTokens") for s in spans) and any(s.get("ReasoningTokens") for s in spans)
    assert {"res-session", "s-1"} <= {s.get("SessionId") for s in spans}
    assert '"rejected": 5' in lines
