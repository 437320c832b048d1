"""The SQL Grafana's ClickHouse data source (grafana-clickhouse-datasource) generates for the
OpenTelemetry tables, and how its backend expands the time macros, for tests/e2e/test_grafana.py and
tests/e2e/test_store_upgrade.py.

The queries are the output of the plugin's own `generateSql` (src/data/sqlGenerator.ts at v4.20.0,
plus 29 commits to 2026-08-20) for the options its editor and data links build with OpenTelemetry
enabled (`otelVersion: latest`, database tracehouse); `__TRACE_ID__` and `__METRIC__` stand for the
values Grafana interpolates. When the plugin changes what it generates, regenerate them and keep
the tests' answers: that is how drift between Tracehouse's tables and the plugin shows.

How they were made: sqlGenerator.ts bundled with esbuild (`--bundle --platform=node`, `src` as
the import root) and `generateSql` called with, for database `tracehouse`:
- trace_search: table otel_traces, query type Traces, the columns of `otel.getLatestVersion()`'s
  traceColumnMap, `getDefaultTraceFilters()`, `getDefaultTraceOrderBy()`, limit 1000, meta
  {otelEnabled, otelVersion "latest", traceDurationUnit nanoseconds};
- trace_id: the same columns, no filters, meta as utils.ts builds for the trace link (isTraceIdMode,
  traceId, events/links prefixes "Events"/"Links", hasTraceTimestampTable, flattenNested false);
- logs, logs_before_v0151: table otel_logs, query type Logs, the logColumnMap of versions 1.30.0
  and 1.29.0, `getDefaultLogsFilters()`, `getDefaultLogsOrderBy()`, limit 1000;
- trace_logs: the logs columns, a TraceId equals filter and Time ascending, as utils.ts builds it;
- metric_*: query type TimeSeries in Trend mode, TimeUnix as the time column, sum(Value),
  avg(Value) or sum(Count), grouped by ServiceName, filtered by the time range and MetricName.
"""

from __future__ import annotations

import re

# fmt: off
PLUGIN_SQL = {
    # Explore, query type Traces, the editor's default filters and order (trace search)
    'trace_search': (
        'SELECT "TraceId" as traceID, "ServiceName" as serviceName, "SpanName" as operationName, '
        '"Timestamp" as startTime, multiply("Duration", 0.000001) as duration FROM '
        '"tracehouse"."otel_traces" WHERE ( Timestamp >= $__fromTime AND Timestamp <= $__toTime ) AND ( '
        "ParentSpanId = '' ) AND ( Duration > 0 ) ORDER BY Timestamp DESC, Duration DESC LIMIT 1000"
    ),
    # the trace view a trace search row links to (OTel defaults, events and links, the _trace_id_ts lookup)
    'trace_id': (
        "WITH '__TRACE_ID__' as __gf_trace_id, (SELECT min(Start) FROM "
        '"tracehouse"."otel_traces_trace_id_ts" WHERE TraceId = __gf_trace_id) as __gf_trace_start, '
        '(SELECT max(End) + 1 FROM "tracehouse"."otel_traces_trace_id_ts" WHERE TraceId = __gf_trace_id) '
        'as __gf_trace_end SELECT "TraceId" as traceID, "SpanId" as spanID, "ParentSpanId" as '
        'parentSpanID, "ServiceName" as serviceName, "SpanName" as operationName, '
        'multiply(toUnixTimestamp64Nano("Timestamp"), 0.000001) as startTime, multiply("Duration", '
        '0.000001) as duration, arrayMap(key -> map(\'key\', key, \'value\',"SpanAttributes"[key]), '
        'mapKeys("SpanAttributes")) as tags, arrayMap(key -> map(\'key\', key, '
        '\'value\',"ResourceAttributes"[key]), mapKeys("ResourceAttributes")) as serviceTags, '
        'if("StatusCode" IN (\'Error\', \'STATUS_CODE_ERROR\'), 2, 0) as statusCode, arrayMap((name, '
        'timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)), arrayMap(key '
        "-> map('key', key, 'value', attributes[key]), mapKeys(attributes)))::Tuple(name String, "
        'timestamp String, fields Array(Map(String, String))), "Events".Name, "Events".Timestamp, '
        '"Events".Attributes) AS logs, arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID, '
        "arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))::Tuple(traceID "
        'String, spanID String, tags Array(Map(String, String))), "Links".TraceId, "Links".SpanId, '
        '"Links".Attributes) AS references, "SpanKind" as kind, "StatusMessage" as statusMessage, '
        '"TraceState" as traceState FROM "tracehouse"."otel_traces" WHERE traceID = __gf_trace_id AND '
        '"Timestamp" >= __gf_trace_start AND "Timestamp" <= __gf_trace_end'
    ),
    # Explore, query type Logs, the editor's defaults, for the exporter's layout from v0.151 on
    'logs': (
        'SELECT Timestamp as "timestamp", Body as "body", SeverityText as "level", TraceId as "traceID", '
        'ResourceAttributes, ScopeAttributes, LogAttributes FROM "tracehouse"."otel_logs" WHERE ( '
        'timestamp >= $__fromTime AND timestamp <= $__toTime ) ORDER BY timestamp DESC LIMIT 1000'
    ),
    # the same, as the plugin writes it for a table that still has TimestampTime
    'logs_before_v0151': (
        'SELECT Timestamp as "timestamp", Body as "body", SeverityText as "level", TraceId as "traceID", '
        'ResourceAttributes, ScopeAttributes, LogAttributes FROM "tracehouse"."otel_logs" WHERE ( '
        'TimestampTime >= $__fromTime AND TimestampTime <= $__toTime ) ORDER BY (TimestampTime, '
        'timestamp) DESC LIMIT 1000'
    ),
    # the logs of a trace, the data link from the trace view (OTel log defaults)
    'trace_logs': (
        'SELECT Timestamp as "timestamp", Body as "body", SeverityText as "level", TraceId as "traceID", '
        'ResourceAttributes, ScopeAttributes, LogAttributes FROM "tracehouse"."otel_logs" WHERE ( '
        "traceID = '__TRACE_ID__' ) ORDER BY timestamp ASC"
    ),
    # a metric's time series: the builder's aggregate time series over a metric table
    'metric_sum': (
        'SELECT $__timeInterval(TimeUnix) as "time", ServiceName, sum(Value) FROM '
        '"tracehouse"."otel_metrics_sum" WHERE ( time >= $__fromTime AND time <= $__toTime ) AND ( '
        "MetricName = '__METRIC__' ) GROUP BY ServiceName, time LIMIT 1000"
    ),
    # the same over the gauge table
    'metric_gauge': (
        'SELECT $__timeInterval(TimeUnix) as "time", ServiceName, avg(Value) FROM '
        '"tracehouse"."otel_metrics_gauge" WHERE ( time >= $__fromTime AND time <= $__toTime ) AND ( '
        "MetricName = '__METRIC__' ) GROUP BY ServiceName, time LIMIT 1000"
    ),
    # the same over the histogram table (sum of Count)
    'metric_histogram': (
        'SELECT $__timeInterval(TimeUnix) as "time", ServiceName, sum(Count) FROM '
        '"tracehouse"."otel_metrics_histogram" WHERE ( time >= $__fromTime AND time <= $__toTime ) AND ( '
        "MetricName = '__METRIC__' ) GROUP BY ServiceName, time LIMIT 1000"
    ),
}
# fmt: on


def expand(sql: str, from_ms: int, to_ms: int, interval_s: int = 60, **values: str) -> str:
    """The SQL as the plugin's backend sends it to ClickHouse (pkg/macros: `$__fromTime` is
    `toDateTime(<from seconds>)`, `$__timeInterval(c)` is `toStartOfInterval(toDateTime(c), INTERVAL n
    second)`), with `__TRACE_ID__`/`__METRIC__` replaced by the given values."""
    sql = sql.replace("$__fromTime", f"toDateTime({from_ms // 1000})").replace(
        "$__toTime", f"toDateTime({to_ms // 1000})"
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql
    )
    for name, value in values.items():
        sql = sql.replace(f"__{name.upper()}__", value.replace("'", "\\'"))
    assert "$__" not in sql and "__TRACE_ID__" not in sql and "__METRIC__" not in sql, sql
    return sql


def dashboard_sql(sql: str, values: dict[str, str], from_s: int, to_s: int, interval_s: int = 60) -> str:
    """A dashboard panel's SQL as Grafana runs it: the data source's frontend macro
    (`$__conditionalAll`) and the dashboard variables expanded as the plugin's frontend does
    (`$__all` makes a conditional filter true), then the backend's time macros."""

    def conditional_all(m: re.Match[str]) -> str:
        return "1=1" if values.get(m.group(2)) == "$__all" else m.group(1)

    sql = re.sub(r"\$__conditionalAll\((.+?), \$(\w+)\)(?=\n|$)", conditional_all, sql, flags=re.M)
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({from_s}) AND \1 <= toDateTime({to_s})", sql)
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql
    )
    for name, value in values.items():
        quoted = "'" + value.replace("'", "\\'") + "'"
        sql = sql.replace(f"${{{name}:singlequote}}", quoted).replace(f"${{{name}}}", value)
        sql = re.sub(rf"\${name}\b", value, sql)
    assert "$" not in sql, sql
    return sql
