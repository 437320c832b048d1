"""A store made before migration 5 upgrades to the exporter's current layout without losing a row.

The store is built and filled as the collector did before migration 5: the released migrations
1-4 and that collector's write path (exponential histograms into `otel_metrics_exp_histogram`),
fed by the OpenTelemetry SDK's exporters (traces, logs, every metric kind the SDK makes) and an
OTLP summary. Then today's `tracehouse serve` starts on it, applies migrations 5 and 6, and every row
is still there, readable by the queries Grafana's ClickHouse data source generates; the views
and rollups keep filling from new data.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import pytest
from collectors import Collector
from grafana_plugin import PLUGIN_SQL, expand
from helpers import kv, quote, unique, wait_for
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.resources import Resource
from tracehouse_collector.store import ddl

# `tracehouse serve` as it was before migration 5: only migrations 1-4, and the exponential
# histogram rows written to the table's old name.
BEFORE_MIGRATION_5 = """
import sys
from tracehouse_collector.processors import rows
from tracehouse_collector.store import ddl

released = ddl.migrations()[:4]
ddl.migrations = lambda: released
_add = rows.Rows.add

def add(self, table, row):
    _add(self, "otel_metrics_exp_histogram" if table == "otel_metrics_exponential_histogram" else table, row)

rows.Rows.add = add
from tracehouse_collector.cli.app import main
sys.exit(main(sys.argv[1:]))
"""

METRIC_TABLES = ("gauge", "sum", "histogram", "summary")
# The columns otel_logs has in both layouts (the old one adds TimestampTime, the new one the
# exporter's materialized columns).
LOG_COLUMNS = (
    "Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, ResourceSchemaUrl, "
    "ResourceAttributes, ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName"
)


def _metric_rows(collector: Collector, table: str, service: str) -> list[dict]:
    """A metric table's rows with their times in whole seconds (the exporter's DateTime keeps no more)."""
    times = ("StartTimeUnix", "TimeUnix", "Exemplars.TimeUnix")
    columns = [
        r["name"]
        for r in collector.sql(
            f"SELECT name FROM system.columns WHERE database = 'tracehouse' AND table = '{table}' ORDER BY position"
        )
        if r["name"] not in times
    ]
    seconds = "toUnixTimestamp(StartTimeUnix) AS start_s, toUnixTimestamp(TimeUnix) AS time_s"
    if "Exemplars.Value" in columns:
        seconds += ", arrayMap(t -> toUnixTimestamp(t), Exemplars.TimeUnix) AS exemplar_s"
    return collector.sql(
        f"SELECT {', '.join(columns)}, {seconds} FROM {table} WHERE ServiceName = {quote(service)} "
        "ORDER BY MetricName, toString(Attributes), time_s"
    )


def _snapshot(collector: Collector, service: str, exp_table: str, log_columns: str) -> dict[str, list[dict]]:
    svc = quote(service)
    out = {
        "traces": collector.sql(f"SELECT * FROM otel_traces WHERE ServiceName = {svc} ORDER BY SpanId"),
        "trace_ids": collector.sql(
            "SELECT TraceId, min(Start) AS s, max(End) AS e FROM otel_traces_trace_id_ts WHERE TraceId IN "
            f"(SELECT TraceId FROM otel_traces WHERE ServiceName = {svc}) GROUP BY TraceId ORDER BY TraceId"
        ),
        "logs": collector.sql(
            f"SELECT {log_columns} FROM otel_logs WHERE ServiceName = {svc} ORDER BY Timestamp, Body"
        ),
        "scores": collector.sql(
            f"SELECT * FROM otel_scores WHERE ServiceName = {svc} ORDER BY Timestamp, Source"
        ),
        "usage": collector.sql(
            "SELECT Start, Model, sum(Spans) AS spans, sum(InputTokens) AS input FROM llm_usage_1m "
            f"WHERE ServiceName = {svc} GROUP BY Start, Model ORDER BY Start, Model"
        ),
        "exponential_histogram": _metric_rows(collector, exp_table, service),
    }
    for kind in METRIC_TABLES:
        out[kind] = _metric_rows(collector, f"otel_metrics_{kind}", service)
    return out


def _send_traces_logs_and_metrics(collector: Collector, service: str, tag: str) -> str:
    """Through the SDK's OTLP/HTTP exporters: an LLM call with a score event under an agent step
    with an exception and a link, a log record in the trace and a score log record, and every
    metric kind the SDK makes (a summary as OTLP protobuf). Returns the trace id."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Link, Status, StatusCode

    resource = Resource.create({"service.name": service, "k8s.pod.name": f"pod-{tag}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces"))
    )
    log_provider = LoggerProvider(resource=resource)
    log_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=collector.http_url + "/v1/logs"))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=collector.http_url + "/v1/metrics"), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=log_provider)
    pylog = logging.getLogger(f"tests.upgrade.{service}.{tag}")
    pylog.setLevel(logging.INFO)
    pylog.propagate = False
    pylog.addHandler(handler)
    tracer = tracer_provider.get_tracer("tests.upgrade")
    try:
        with tracer.start_as_current_span("warm-up") as other:
            pass
        with tracer.start_as_current_span(
            "invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent"},
            links=[Link(other.get_span_context(), {"link.reason": "follows"})],
        ) as agent:  # fmt: skip
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30, "gen_ai.response.id": f"resp-{tag}",
                },
            ) as chat:  # fmt: skip
                chat.add_event(
                    "gen_ai.evaluation.result",
                    {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.5},
                )
                pylog.info("answered %s", tag)
            agent.record_exception(RuntimeError(f"tool failed {tag}"))
            agent.set_status(Status(StatusCode.ERROR, "tool failed"))
            trace_id = format(agent.get_span_context().trace_id, "032x")
        pylog.info(
            "scored %s", tag,
            extra={"event.name": "gen_ai.evaluation.result", "gen_ai.evaluation.name": "accuracy",
                   "gen_ai.evaluation.score.value": 0.75},
        )  # fmt: skip
        meter = meter_provider.get_meter("tests.upgrade.meter")
        meter.create_counter("requests").add(7, {"route": "/a"})
        meter.create_up_down_counter("queue.depth").add(3)
        latency = meter.create_histogram("latency", unit="ms")
        for v in (1, 7, 30):
            latency.record(v, {"route": "/a"})
        size = meter.create_histogram("payload.size", unit="By")
        for v in (1, 2, 4, 8):
            size.record(v)
        meter.create_observable_gauge(
            "temperature", callbacks=[lambda _o: [Observation(21.5, {"room": "lab"})]]
        )
        assert meter_provider.force_flush(30_000) and log_provider.force_flush(30_000)
    finally:
        pylog.removeHandler(handler)
        for provider in (tracer_provider, log_provider, meter_provider):
            provider.shutdown()
    summary = ExportMetricsServiceRequest()
    rm = summary.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", service)])
    metric = rm.scope_metrics.add().metrics.add(name="rpc.latency", unit="s")
    minute = 0 if tag == "before" else 60 * 10**9  # (an identical request would be taken for a retry)
    dp = metric.summary.data_points.add(time_unix_nano=1_750_000_000_123_456_789 + minute, count=4, sum=2.5)
    dp.quantile_values.add(quantile=0.5, value=0.4)
    dp.quantile_values.add(quantile=0.99, value=1.1)
    r = collector.post("/v1/metrics", summary.SerializeToString())
    assert r.status_code == 200, r.text
    return trace_id


def test_a_store_filled_before_migration_5_upgrades_without_losing_a_row(tmp_path):
    data_dir, service = tmp_path / "collector", unique("upgrade")
    old = Collector(data_dir, workers=0, command=[sys.executable, "-c", BEFORE_MIGRATION_5]).start()
    try:
        trace_id = _send_traces_logs_and_metrics(old, service, "before")
        assert old.scalar("SELECT max(Version) FROM schema_migrations") == 4
        assert old.scalar("SELECT count() FROM system.columns WHERE database = 'tracehouse' "
                          "AND table = 'otel_logs' AND name = 'TimestampTime'") == 1  # fmt: skip
        before = _snapshot(old, service, "otel_metrics_exp_histogram", LOG_COLUMNS)
        # The data source's query for that layout answers before the upgrade.
        old_logs = old.sql(expand(PLUGIN_SQL["logs_before_v0151"], 1_000_000, 4_000_000_000_000))
    finally:
        assert old.stop() == 0

    new = Collector(data_dir, workers=0).start()  # today's collector: migration 5 at start
    try:
        assert new.scalar("SELECT max(Version) FROM schema_migrations") == len(ddl.migrations()) == 6
        after = _snapshot(new, service, "otel_metrics_exponential_histogram", LOG_COLUMNS)
        tables = {
            r["table"]
            for r in new.sql("SELECT DISTINCT table FROM system.columns WHERE database = 'tracehouse'")
        }
        assert "otel_metrics_exp_histogram" not in tables and not any(t.endswith("_v5") for t in tables)

        # Every row, every value (metric times in whole seconds, as the exporter now keeps them).
        # (The SDK exports its cumulative metrics at the flush and again at shutdown: two points each.)
        assert {k: len(v) for k, v in before.items()} == {
            "traces": 3, "trace_ids": 2, "logs": 2, "scores": 2, "usage": 2, "exponential_histogram": 2,
            "gauge": 2, "sum": 4, "histogram": 2, "summary": 1,
        }  # fmt: skip
        assert after == before
        assert after["summary"][0]["time_s"] == 1_750_000_000  # the nanoseconds dropped, the second kept
        types = {
            (r["table"], r["name"]): r["type"]
            for r in new.sql("SELECT table, name, type FROM system.columns WHERE database = 'tracehouse' "
                             "AND name IN ('TimeUnix', 'MetricName', 'TimestampTime')")
        }  # fmt: skip
        assert types[("otel_metrics_exponential_histogram", "TimeUnix")] == "DateTime"
        assert types[("otel_metrics_sum", "MetricName")] == "LowCardinality(String)"
        assert not any(name == "TimestampTime" for _t, name in types)
        assert new.scalar(
            f"SELECT groupUniqArray(`__otel_materialized_k8s.pod.name`) FROM otel_logs WHERE ServiceName = {quote(service)}"
        ) == ["pod-before"]

        # The data source's queries for the new layout read the old rows.
        logs = new.sql(expand(PLUGIN_SQL["logs"], 1_000_000, 4_000_000_000_000))
        assert [r["body"] for r in logs] == [r["body"] for r in old_logs] and len(logs) == 2
        view = new.sql(expand(PLUGIN_SQL["trace_id"], 0, 0, trace_id=trace_id))
        assert sorted(r["operationName"] for r in view) == ["chat gpt-4o-mini", "invoke_agent helper"]
        assert [
            len(r["logs"]) + len(r["references"]) for r in sorted(view, key=lambda r: r["operationName"])
        ] == [1, 2]
        of_trace = new.sql(expand(PLUGIN_SQL["trace_logs"], 0, 0, trace_id=trace_id))
        assert [r["body"] for r in of_trace] == ["answered before"]

        # New data after the upgrade: every table, view and rollup takes it.
        second = _send_traces_logs_and_metrics(new, service, "after")
        svc = quote(service)
        wait_for(
            lambda: new.scalar(f"SELECT count() FROM otel_scores WHERE ServiceName = {svc}") == 4, timeout=30
        )
        assert new.scalar(f"SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = {quote(second)}") >= 1
        assert (
            new.scalar(
                f"SELECT sum(Spans) FROM llm_usage_1m WHERE ServiceName = {svc} AND Model = 'gpt-4o-mini'"
            )
            == 2
        )
        assert (
            new.scalar(
                f"SELECT sum(Spans) FROM llm_usage_1h WHERE ServiceName = {svc} AND Model = 'gpt-4o-mini'"
            )
            == 2
        )
        counts = {
            kind: new.scalar(f"SELECT count() FROM otel_metrics_{kind} WHERE ServiceName = {svc}")
            for kind in (*METRIC_TABLES, "exponential_histogram")
        }
        assert counts == {k: 2 * len(before[k]) for k in counts}
        assert new.scalar(
            f"SELECT arraySort(groupArray(`__otel_materialized_k8s.pod.name`)) FROM otel_logs WHERE ServiceName = {svc} "
            "AND Body LIKE 'answered%'"
        ) == ["pod-after", "pod-before"]
    finally:
        assert new.stop() == 0


# Migration 5 cut short after each of its statements (a crash, a lost connection), then run again
# from the start by the next `migrate()`: the rows are all there, once.
_INTERRUPTED = """
import json, sys
from tracehouse_collector.store import ddl
from tracehouse_collector.store.client import Store

store = Store(sys.argv[1])
kinds = ("gauge", "sum", "histogram", "exp_histogram", "summary")
fill = ["INSERT INTO tracehouse.otel_logs (Timestamp, ServiceName, Body) "
        "SELECT toDateTime64('2026-01-01 00:00:00', 9) + number, 's', toString(number) FROM numbers(5)"]
fill += [f"INSERT INTO tracehouse.otel_metrics_{k} (ServiceName, MetricName, TimeUnix) "
         f"SELECT 's', toString(number), toDateTime64('2026-01-01 00:00:00', 9) + number FROM numbers({3 + i})"
         for i, k in enumerate(kinds)]
count = "SELECT " + ", ".join(
    f"(SELECT count() FROM tracehouse.{t})"
    for t in ("otel_logs", *(f"otel_metrics_{k}" for k in kinds[:3]), "otel_metrics_exponential_histogram",
              "otel_metrics_summary"))
fifth = ddl.migrations()[4].statements()
out = []
for cut in range(len(fifth) + 1):
    store.command("DROP DATABASE IF EXISTS tracehouse SYNC")
    for stmt in ddl.bookkeeping_statements():
        store.command(stmt)
    for m in ddl.migrations()[:4]:
        for stmt in [*m.statements(), f"INSERT INTO tracehouse.schema_migrations (Version, Description) VALUES ({m.version}, '')"]:
            store.command(stmt)
    for stmt in fill + fifth[:cut]:
        store.command(stmt)
    out.append([cut, store.migrate(), list(store.query(count)[1][0])])
store.close()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_migration_5_interrupted_after_any_statement_and_run_again_keeps_every_row_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, f"chdb://{tmp_path / 'store'}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(ddl.migrations()[4].statements()) + 1
    for cut, applied, counts in results:
        assert applied == [5, 6] and counts == [5, 3, 4, 5, 6, 7], (cut, counts)
