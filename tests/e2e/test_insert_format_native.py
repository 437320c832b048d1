"""TRACEHOUSE_INSERT_FORMAT=native end to end: a real OpenTelemetry SDK sends the same spans to
a collector writing Native blocks and to one writing JSONEachRow (the default); both stores
must hold the same rows, LLM columns and the trace summaries included (the rollups' states are
compared byte for byte in tests/collector/store/test_insert_formats.py). A value the collector
does not know stops it at start-up with the choices named."""

from __future__ import annotations

import pytest
from collectors import Collector
from helpers import run_cli, unique
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

pytestmark = pytest.mark.timeout(180)

# Each read leaves out nothing a user sees: every stored column, ordered by span id, and the
# timestamps as integers (the SQL API shows them to the microsecond).
READS = {
    "otel_traces": "SELECT toUnixTimestamp64Nano(Timestamp), arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), "
    "* FROM otel_traces WHERE ServiceName = {svc} ORDER BY SpanId",
    "trace_summary": "SELECT * FROM trace_summary FINAL WHERE has(Facets, ('service', {svc})) ORDER BY TraceId",
}


def _send(collectors: list[Collector], service: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "tést"}))
    for c in collectors:  # the same spans, ids included, to every collector
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=c.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("native-e2e", "1.0")
    with tracer.start_as_current_span("agent run", kind=SpanKind.SERVER) as root:
        root.set_attribute("session.id", "s-1")
        for i, model in enumerate(["gpt-4o-mini", "claude-3-5-haiku-20241022", "no-such-model"]):
            with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.request.model", model)
                span.set_attribute("gen_ai.usage.input_tokens", 1000 + i)
                span.set_attribute("gen_ai.usage.output_tokens", 7)
                span.set_attribute("gen_ai.input.messages", '[{"role":"user","content":"héllo 🌍 \\n \\"q\\""}]')
                span.add_event("retry", {"attempt": i, "delay.s": 0.25})
                if i == 2:
                    span.set_status(Status(StatusCode.ERROR, "rate limited ⏳"))
    provider.shutdown()


def test_native_inserts_store_what_json_inserts_store(start_collector) -> None:
    native = start_collector(env={"TRACEHOUSE_INSERT_FORMAT": "native"}, name="native")
    json_ = start_collector(name="json")
    service = unique("native-svc")
    _send([native, json_], service)  # each export is answered once its rows are stored
    for table, sql in READS.items():
        query = sql.replace("{svc}", f"'{service}'")
        native_rows, json_rows = native.sql_raw(query), json_.sql_raw(query)
        assert native_rows["rows"] == json_rows["rows"], f"{table} differs"
    rows = native.sql(f"SELECT SpanName, InputTokens, TotalCostUSD, StatusMessage FROM otel_traces "
                      f"WHERE ServiceName = '{service}' ORDER BY SpanName")  # fmt: skip
    assert len(rows) == 4
    by_name = {r["SpanName"]: r for r in rows}
    assert by_name["chat gpt-4o-mini"]["InputTokens"] == 1000
    assert float(by_name["chat gpt-4o-mini"]["TotalCostUSD"]) > 0
    assert by_name["chat no-such-model"]["StatusMessage"] == "rate limited ⏳"


def test_an_unknown_insert_format_stops_the_start(tmp_path) -> None:
    proc = run_cli("serve", "--data-dir", str(tmp_path), env={"TRACEHOUSE_INSERT_FORMAT": "parquet"}, timeout=60)
    assert proc.returncode != 0
    assert "TRACEHOUSE_INSERT_FORMAT must be one of json, native, arrow, got 'parquet'" in proc.stderr
