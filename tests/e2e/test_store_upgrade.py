"""A store made before migration 5 upgrades to the exporter's current layout without losing a row.

The store is built and filled as the collector did before migration 5: the released migrations
1-4 and that collector's write path (exponential histograms into `otel_metrics_exp_histogram`),
fed by the OpenTelemetry SDK's exporters (traces, logs, every metric kind the SDK makes) and an
OTLP summary. Then today's `tracehouse serve` starts on it, applies migrations 5 on, and every row
is still there, readable by the queries Grafana's ClickHouse data source generates; the views
and rollups keep filling from new data. A store made before migration 7 (rollups without
minimum and TTFT range) keeps its rollup answers, and new data gets the full clamp.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest
from collectors import Collector
from grafana_plugin import PLUGIN_SQL, expand
from helpers import kv, quote, unique, wait_for
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.resources import Resource
from tracehouse_collector.store import ddl

# `tracehouse serve` as it was before migration N: only the migrations before it (and what
# `patch` changes in its write path).
_BEFORE_MIGRATION = """
import sys
from tracehouse_collector.store import ddl

released = ddl.migrations()[:{applied}]
ddl.migrations = lambda: released
{patch}
from tracehouse_collector.cli.app import main
sys.exit(main(sys.argv[1:]))
"""
# Before migration 5: the exponential histogram rows written to the table's old name.
BEFORE_MIGRATION_5 = _BEFORE_MIGRATION.format(
    applied=4,
    patch="""
from tracehouse_collector.processors import rows
_add = rows.Rows.add

def add(self, table, row):
    _add(self, "otel_metrics_exp_histogram" if table == "otel_metrics_exponential_histogram" else table, row)

rows.Rows.add = add
""",
)
BEFORE_MIGRATION_7 = _BEFORE_MIGRATION.format(applied=6, patch="")

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
        assert new.scalar("SELECT max(Version) FROM schema_migrations") == len(ddl.migrations()) >= 6
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
    since_5 = list(range(5, len(ddl.migrations()) + 1))
    for cut, applied, counts in results:
        assert applied == since_5 and counts == [5, 3, 4, 5, 6, 7], (cut, counts)


# Clustered values whose sketch answers lie outside them (see tests/collector/query/test_percentiles.py):
# durations in [123.4, 123.45] ms are answered 122.745, a TTFT of 4.679 ms 4.711.
CLUSTERED_MS, FLAT_TTFT_MS, LEVELS = 123.4, 4.679, (50, 90, 95, 99)


def _send_llm_calls(collector: Collector, service: str, start: dt.datetime, calls: dict) -> None:
    """{model: (durations ms, TTFT ms)} as chat spans one second apart from `start`, through the
    SDK's OTLP/HTTP exporter (explicit times, so they land in a chosen hour)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces"),
            max_export_batch_size=500,
            max_queue_size=10_000,
        )
    )
    tracer = provider.get_tracer("tests.upgrade.rollup")
    at = int(start.timestamp()) * 10**9
    for model, (durations, ttfts) in calls.items():
        for ms, ttft in zip(durations, ttfts, strict=True):
            span = tracer.start_span(
                f"chat {model}", start_time=at,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": model, "gen_ai.response.time_to_first_chunk": ttft / 1000},
            )  # fmt: skip
            span.end(end_time=at + int(round(ms * 1e6)))
            at += 10**9
    assert provider.force_flush(60_000)
    provider.shutdown()


def _latency(collector: Collector, service: str, since: dt.datetime, until: dt.datetime) -> dict[str, dict]:
    body = {"by": ["model"], "service": service, "plan": "rollup",
            "since": since.isoformat(), "until": until.isoformat()}  # fmt: skip
    r = collector.session.post(collector.http_url + "/api/v1/query/latency", json=body, timeout=120)
    assert r.status_code == 200, r.text
    rows = [dict(zip(r.json()["columns"], row, strict=True)) for row in r.json()["rows"]]
    return {row["model"]: row for row in rows}


def test_a_store_from_before_migration_7_keeps_answering_and_new_data_gets_the_full_clamp(tmp_path):
    """Rollup rows written before migration 7 keep their answers (clamped to the max only, as
    then); a group mixing them with newer rows is never clamped wrongly (its percentiles stay
    within the sketch's bound of numpy's); a group of new rows is clamped to [min, max] for the
    duration and the time to first token."""
    rng = np.random.default_rng(7)
    service, n = unique("upgrade7"), 1_200
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    # Whole hours: the rollup plan reads llm_usage_1h alone.
    since, until = hour - dt.timedelta(hours=5), hour + dt.timedelta(hours=2)
    clustered = (rng.uniform(CLUSTERED_MS, CLUSTERED_MS + 0.05, n).round(6), np.full(n, FLAT_TTFT_MS))
    old_calls = {
        "old-only": clustered,
        "mixed": (rng.uniform(100, 101, n).round(6), rng.uniform(30, 31, n).round(3)),
    }
    new_calls = {
        "new-only": clustered,
        "mixed": (rng.uniform(200, 201, 400).round(6), rng.uniform(60, 61, 400).round(3)),
    }

    data_dir = tmp_path / "collector"
    old = Collector(data_dir, workers=0, command=[sys.executable, "-c", BEFORE_MIGRATION_7]).start()
    try:
        _send_llm_calls(old, service, hour + dt.timedelta(minutes=1), old_calls)
        assert old.scalar("SELECT max(Version) FROM schema_migrations") == 6
        svc = quote(service)
        wait_for(
            lambda: old.scalar(f"SELECT sum(Spans) FROM llm_usage_1h WHERE ServiceName = {svc}") == 2 * n,
            timeout=60,
        )
        # What the rollup answered before: the sketch, clamped to the max.
        [sketch] = old.sql(
            "SELECT quantilesDDMerge(0.01, 0.5, 0.9, 0.95, 0.99)(DurationMs) AS q, max(DurationMaxNs) / 1e6 AS max_ms, "
            "quantilesDDMerge(0.01, 0.5, 0.9, 0.95, 0.99)(TtftMs) AS tq "
            f"FROM llm_usage_1h WHERE ServiceName = {svc} AND Model = 'old-only'"
        )
    finally:
        assert old.stop() == 0

    new = Collector(data_dir, workers=0).start()  # today's collector: migration 7 at start
    try:
        assert new.scalar("SELECT max(Version) FROM schema_migrations") == len(ddl.migrations()) >= 7
        before = _latency(new, service, since, until)
        assert before["old-only"]["count"] == n and before["old-only"]["percentiles_error"] == 0.01
        assert [before["old-only"][f"p{q}_ms"] for q in LEVELS] == [
            round(min(v, sketch["max_ms"]), 3) for v in sketch["q"]
        ]
        assert [before["old-only"][f"ttft_p{q}_ms"] for q in LEVELS] == [round(v, 3) for v in sketch["tq"]]

        _send_llm_calls(new, service, hour + dt.timedelta(minutes=30), new_calls)
        svc = quote(service)
        wait_for(
            lambda: (
                new.scalar(f"SELECT sum(Spans) FROM llm_usage_1h WHERE ServiceName = {svc}") == 3 * n + 400
            ),
            timeout=60,
        )
        after = _latency(new, service, since, until)
        assert after["old-only"] == before["old-only"]  # its rows' answers are kept
        for model, calls in new_calls.items():
            durations, ttfts = (
                np.concatenate([c[i] for c in (calls, old_calls.get(model, ([], [])))]) for i in (0, 1)
            )
            row = after[model]
            assert row["count"] == len(durations) and row["percentiles_error"] == 0.01
            for prefix, values in (("", durations), ("ttft_", ttfts)):
                for q in LEVELS:
                    got = row[f"{prefix}p{q}_ms"]
                    lo, hi = (np.percentile(values, q, method=m) for m in ("lower", "higher"))
                    assert lo * 0.99 - 1e-3 <= got <= hi * 1.01 + 1e-3, (model, prefix, q, got, lo, hi)
                    if model == "new-only":  # the full clamp
                        assert values.min() - 5e-4 <= got <= values.max() + 5e-4, (prefix, q, got)
        assert after["new-only"]["ttft_p50_ms"] == FLAT_TTFT_MS
        assert after["new-only"]["p50_ms"] == round(clustered[0].min(), 3)
    finally:
        assert new.stop() == 0


def test_traces_stored_before_the_trace_index_are_found_by_id_after_it(tmp_path):
    """The trace-id lookup reads trace_index (migration 10, or its number after renumbering):
    a store filled before it gets its traces copied in on upgrade, so they are still found by
    id, with every span; new traces fill it through its view. The same holds for the span
    documents the lookup reads (trace_span_docs, migration 13)."""
    version = next(m.version for m in ddl.migrations() if m.file.endswith("_trace_index.sql"))
    before = _BEFORE_MIGRATION.format(applied=version - 1, patch="")
    service = unique("upgrade-index")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    data_dir = tmp_path / "collector"
    old = Collector(data_dir, workers=0, command=[sys.executable, "-c", before]).start()
    try:
        _send_llm_calls(old, service, start, {"m-old": (np.array([10.0, 20.0, 30.0]), np.array([1.0, 2.0, 3.0]))})
        svc = quote(service)
        wait_for(lambda: old.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {svc}") == 3, timeout=60)
        assert old.scalar("SELECT count() FROM system.columns WHERE table = 'trace_index'") == 0
        old_ids = [r["TraceId"] for r in old.sql(f"SELECT TraceId FROM otel_traces WHERE ServiceName = {svc}")]
    finally:
        assert old.stop() == 0

    new = Collector(data_dir, workers=0).start()
    try:
        assert new.scalar("SELECT max(Version) FROM schema_migrations") == len(ddl.migrations())
        _send_llm_calls(new, service, start + dt.timedelta(minutes=5), {"m-new": (np.array([40.0]), np.array([4.0]))})
        wait_for(lambda: new.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {svc}") == 4, timeout=60)
        new_ids = [
            r["TraceId"]
            for r in new.sql(f"SELECT TraceId FROM otel_traces WHERE ServiceName = {svc} AND SpanName = 'chat m-new'")
        ]
        for tid in old_ids + new_ids:
            r = new.session.get(f"{new.http_url}/api/v1/traces/{tid}", timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["trace_id"] == tid and r.json()["span_count"] == 1
        ids = ", ".join(quote(t) for t in old_ids + new_ids)
        assert new.scalar(f"SELECT uniqExact(TraceId) FROM trace_index WHERE TraceId IN ({ids})") == 4
        # and the lookup read their spans from the span documents (migration 13 copies the old
        # ones in; its view writes the new ones), not from the fallback over otel_traces
        assert new.scalar(f"SELECT count() FROM trace_span_docs WHERE TraceId IN ({ids})") == 4
        r = new.session.get(f"{new.http_url}/api/v1/traces/{'ab' * 16}", timeout=60)
        assert r.status_code == 404, r.text
    finally:
        assert new.stop() == 0


# (error.type attribute, status, status description) of the spans the ErrorType test sends, and
# the error type the errors aggregate gives each (docs/querying.md: `error.type`, else the
# status message, else `_OTHER`; none for a span without either).
_ERROR_CASES = [
    ("RateLimitError", "ERROR", "429 from the provider"),
    ("", "ERROR", "the model went away"),
    ("", "ERROR", ""),
    ("Timeout", "OK", ""),
    ("", "OK", ""),
    ("", "UNSET", ""),
]


def _expected_error_type(error_attr: str, status: str, description: str) -> str:
    if error_attr:
        return error_attr
    if status == "ERROR":
        return f"status: {description}" if description else "_OTHER"
    return ""


# The time to first token (seconds) of each _ERROR_CASES span; None: the span has none.
_TTFT_S = [0.25, None, 1.5, None, 0.125, 2.0]


def _send_error_spans(collector: Collector, service: str, model: str, start: dt.datetime) -> None:
    """One chat span per _ERROR_CASES row (with its _TTFT_S), one second apart from `start`."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces")))
    tracer = provider.get_tracer("tests.upgrade.errors")
    at = int(start.timestamp()) * 10**9
    for (error_attr, status, description), ttft in zip(_ERROR_CASES, _TTFT_S, strict=True):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        if error_attr:
            attributes["error.type"] = error_attr
        if ttft is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = ttft
        span = tracer.start_span(f"chat {model}", start_time=at, attributes=attributes)
        span.set_status(Status(getattr(StatusCode, status), description or None))
        span.end(end_time=at + 5 * 10**6)
        at += 10**9
    provider.shutdown()


def test_spans_stored_before_the_error_type_and_ttft_columns_get_them_on_upgrade(tmp_path):
    """The errors aggregate reads ErrorType and latency reads TimeToFirstTokenMs (migration 12,
    or its number after renumbering), columns computed at insert: spans stored before it get
    them by the migration's mutation, and old and new spans are counted by the same rule."""
    version = next(m.version for m in ddl.migrations() if m.file.endswith("_error_type_and_ttft.sql"))
    before = _BEFORE_MIGRATION.format(applied=version - 1, patch="")
    service = unique("upgrade-errors")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    data_dir = tmp_path / "collector"
    svc = quote(service)
    old = Collector(data_dir, workers=0, command=[sys.executable, "-c", before]).start()
    try:
        _send_error_spans(old, service, "m-old", start)
        wait_for(lambda: old.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {svc}") == 6, timeout=60)
        assert old.scalar("SELECT count() FROM system.columns WHERE table = 'otel_traces' AND name = 'ErrorType'") == 0
    finally:
        assert old.stop() == 0

    new = Collector(data_dir, workers=0).start()
    try:
        assert new.scalar("SELECT max(Version) FROM schema_migrations") == len(ddl.migrations())
        _send_error_spans(new, service, "m-new", start + dt.timedelta(minutes=5))
        wait_for(lambda: new.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {svc}") == 12, timeout=60)
        stored = new.sql(
            "SELECT GenAIRequestModel AS model, ErrorType, TimeToFirstTokenMs AS ttft FROM otel_traces "
            f"WHERE ServiceName = {svc} ORDER BY Timestamp"
        )
        want_types = sorted(_expected_error_type(*case) for case in _ERROR_CASES)
        want_ttft = [None if s is None else s * 1000 for s in _TTFT_S]
        for model in ("m-old", "m-new"):
            assert sorted(r["ErrorType"] for r in stored if r["model"] == model) == want_types
            assert [r["ttft"] for r in stored if r["model"] == model] == want_ttft
        body = {"by": ["model"], "service": service, "since": "1d"}
        r = new.session.post(new.http_url + "/api/v1/query/errors", json=body, timeout=120)
        assert r.status_code == 200, r.text
        rows = [dict(zip(r.json()["columns"], row, strict=True)) for row in r.json()["rows"]]
        got = sorted((row["model"], row["error_type"], row["errors"], row["spans"]) for row in rows)
        want = sorted(
            (model, kind, want_types.count(kind), len(_ERROR_CASES))
            for model in ("m-old", "m-new")
            for kind in set(want_types) - {""}
        )
        assert got == want
    finally:
        assert new.stop() == 0
