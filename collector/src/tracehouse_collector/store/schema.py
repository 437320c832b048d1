"""The ClickHouse schema, kept as data, and the versioned migrations that create it.

The OpenTelemetry tables keep the exact column names and types of the OpenTelemetry
Collector's ClickHouse exporter, so Grafana's ClickHouse data source and dashboards built for
that exporter read Tracehouse unchanged. `otel_traces` adds typed LLM columns at the end.

Choices, and why:
- Partition by day. Retention is a TTL that drops whole parts (`ttl_only_drop_parts`), and
  almost every query carries a time range, so day partitions prune without making many tiny
  parts at the low volumes of an embedded store.
- ORDER BY of `otel_traces` is (ServiceName, SpanName, toDateTime(Timestamp)), as the exporter:
  dashboards filter by service, group by span name and scan a time range; second precision in
  the key keeps rows of one span name together for compression. Looking a trace up by id goes
  through `otel_traces_trace_id_ts` (ordered by TraceId) to find the time range first, then
  the bloom filter on TraceId skips granules inside it.
- Codecs: ZSTD(1) everywhere (text-heavy attribute maps compress 5-10x at low CPU cost);
  Delta before ZSTD on timestamps, which grow monotonically within a part; T64 on token
  counters, small integers in wide columns.
- Skip indexes: bloom filters on TraceId (0.1% false positives, it is the needle we look up
  most), on attribute map keys and values (the "find spans where attribute = x" question), a
  set index on the LLM model columns (few distinct values per granule), and bloom filters on
  run and session ids that the experiment and session views filter by. otel_traces has no
  bloom filter over span attribute *values*, unlike the exporter: LLM spans carry prompts and
  completions of kilobytes there, hashing them cost ~20% of insert CPU, and the values people
  look up (session, user, run, model) have typed, indexed columns.
- `non_replicated_deduplication_window`: plain MergeTree remembers the hashes of its last
  inserted blocks, so a batch re-inserted with the same `insert_deduplication_token` (after a
  crash between insert and acknowledgement) is dropped instead of stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DATABASE = "tracehouse"
DEDUP_WINDOW = 10_000

_ATTR_MAP = "Map(LowCardinality(String), String)"
_EXEMPLARS = (
    "Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime64(9), "
    "Value Float64, SpanId String, TraceId String)"
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    codec: str = "ZSTD(1)"
    default: str = ""

    def ddl(self) -> str:
        parts = [self.name, self.type]
        if self.default:
            parts.append(f"DEFAULT {self.default}")
        if self.codec:
            parts.append(f"CODEC({self.codec})")
        return " ".join(parts)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str
    indexes: tuple[str, ...] = ()
    primary_key: str = ""
    engine: str = "MergeTree"
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self, database: str = DATABASE) -> str:
        body = [f"    {c.ddl()}" for c in self.columns]
        body += [f"    INDEX {ix}" for ix in self.indexes]
        settings = {
            "index_granularity": 8192,
            "ttl_only_drop_parts": 1,
            "non_replicated_deduplication_window": DEDUP_WINDOW,
            **self.settings,
        }
        lines = [
            f"CREATE TABLE IF NOT EXISTS {database}.{self.name}\n(\n" + ",\n".join(body) + "\n)",
            f"ENGINE = {self.engine}",
            f"PARTITION BY {self.partition_by}",
        ]
        if self.primary_key:
            lines.append(f"PRIMARY KEY {self.primary_key}")
        lines.append(f"ORDER BY {self.order_by}")
        lines.append("SETTINGS " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
        return "\n".join(lines)


def _c(name: str, type_: str, codec: str = "ZSTD(1)", default: str = "") -> Column:
    return Column(name, type_, codec, default)


_ATTR_INDEXES = {
    "ResourceAttributes": ("idx_res_attr_key", "idx_res_attr_value"),
    "ScopeAttributes": ("idx_scope_attr_key", "idx_scope_attr_value"),
    "SpanAttributes": ("idx_span_attr_key", "idx_span_attr_value"),
    "LogAttributes": ("idx_log_attr_key", "idx_log_attr_value"),
    "Attributes": ("idx_attr_key", "idx_attr_value"),
}


def _map_indexes(*maps: str) -> tuple[str, ...]:
    out: list[str] = []
    for m in maps:
        key_ix, value_ix = _ATTR_INDEXES[m]
        out.append(f"{key_ix} mapKeys({m}) TYPE bloom_filter(0.01) GRANULARITY 1")
        out.append(f"{value_ix} mapValues({m}) TYPE bloom_filter(0.01) GRANULARITY 1")
    return tuple(out)


# The typed LLM columns Tracehouse adds to the exporter's otel_traces (see DESIGN.md).
LLM_COLUMNS: tuple[Column, ...] = (
    _c("GenAIOperation", "LowCardinality(String)"),
    _c("GenAIProvider", "LowCardinality(String)"),
    _c("GenAIRequestModel", "LowCardinality(String)"),
    _c("GenAIResponseModel", "LowCardinality(String)"),
    _c("InputTokens", "UInt64", "T64, ZSTD(1)"),
    _c("OutputTokens", "UInt64", "T64, ZSTD(1)"),
    _c("CacheReadTokens", "UInt64", "T64, ZSTD(1)"),
    _c("CacheWriteTokens", "UInt64", "T64, ZSTD(1)"),
    _c("ReasoningTokens", "UInt64", "T64, ZSTD(1)"),
    _c("TotalTokens", "UInt64", "T64, ZSTD(1)"),
    _c("TokensEstimated", "Bool"),
    _c("InputCostUSD", "Decimal64(12)"),
    _c("OutputCostUSD", "Decimal64(12)"),
    _c("TotalCostUSD", "Decimal64(12)"),
    _c("PriceSource", "LowCardinality(String)"),
    _c("RunId", "String"),
    _c("SessionId", "String"),
    _c("UserId", "String"),
    _c("ExperimentName", "LowCardinality(String)"),
)

TRACES = Table(
    name="otel_traces",
    columns=(
        _c("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        _c("TraceId", "String"),
        _c("SpanId", "String"),
        _c("ParentSpanId", "String"),
        _c("TraceState", "String"),
        _c("SpanName", "LowCardinality(String)"),
        _c("SpanKind", "LowCardinality(String)"),
        _c("ServiceName", "LowCardinality(String)"),
        _c("ResourceAttributes", _ATTR_MAP),
        _c("ScopeName", "String"),
        _c("ScopeVersion", "String"),
        _c("SpanAttributes", _ATTR_MAP),
        _c("Duration", "UInt64"),
        _c("StatusCode", "LowCardinality(String)"),
        _c("StatusMessage", "String"),
        _c("Events", f"Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes {_ATTR_MAP})"),
        _c("Links", f"Nested (TraceId String, SpanId String, TraceState String, Attributes {_ATTR_MAP})"),
        *LLM_COLUMNS,
    ),
    indexes=(
        "idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
        *_map_indexes("ResourceAttributes"),
        "idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1",
        "idx_duration Duration TYPE minmax GRANULARITY 1",
        "idx_genai_model GenAIResponseModel TYPE set(100) GRANULARITY 4",
        "idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1",
        "idx_session_id SessionId TYPE bloom_filter(0.01) GRANULARITY 1",
    ),
    partition_by="toDate(Timestamp)",
    order_by="(ServiceName, SpanName, toDateTime(Timestamp))",
)

TRACE_ID_TS = Table(
    name="otel_traces_trace_id_ts",
    columns=(
        _c("TraceId", "String"),
        _c("Start", "DateTime", "Delta, ZSTD(1)"),
        _c("End", "DateTime", "Delta, ZSTD(1)"),
    ),
    indexes=("idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1",),
    partition_by="toDate(Start)",
    order_by="(TraceId, Start)",
)

TRACE_ID_TS_MV = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.otel_traces_trace_id_ts_mv
TO {DATABASE}.otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM {DATABASE}.otel_traces
WHERE TraceId != ''
GROUP BY TraceId"""

LOGS = Table(
    name="otel_logs",
    columns=(
        _c("Timestamp", "DateTime64(9)", "Delta(8), ZSTD(1)"),
        _c("TimestampTime", "DateTime", "", "toDateTime(Timestamp)"),
        _c("TraceId", "String"),
        _c("SpanId", "String"),
        _c("TraceFlags", "UInt8", ""),
        _c("SeverityText", "LowCardinality(String)"),
        _c("SeverityNumber", "UInt8", ""),
        _c("ServiceName", "LowCardinality(String)"),
        _c("Body", "String"),
        _c("ResourceSchemaUrl", "LowCardinality(String)"),
        _c("ResourceAttributes", _ATTR_MAP),
        _c("ScopeSchemaUrl", "LowCardinality(String)"),
        _c("ScopeName", "String"),
        _c("ScopeVersion", "LowCardinality(String)"),
        _c("ScopeAttributes", _ATTR_MAP),
        _c("LogAttributes", _ATTR_MAP),
        _c("EventName", "String"),
    ),
    indexes=(
        "idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
        *_map_indexes("ResourceAttributes", "ScopeAttributes", "LogAttributes"),
        "idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
    ),
    partition_by="toDate(TimestampTime)",
    primary_key="(ServiceName, TimestampTime)",
    order_by="(ServiceName, TimestampTime, Timestamp)",
)

_METRIC_HEAD = (
    _c("ResourceAttributes", _ATTR_MAP),
    _c("ResourceSchemaUrl", "String"),
    _c("ScopeName", "String"),
    _c("ScopeVersion", "String"),
    _c("ScopeAttributes", _ATTR_MAP),
    _c("ScopeDroppedAttrCount", "UInt32"),
    _c("ScopeSchemaUrl", "String"),
    _c("ServiceName", "LowCardinality(String)"),
    _c("MetricName", "String"),
    _c("MetricDescription", "String"),
    _c("MetricUnit", "String"),
    _c("Attributes", _ATTR_MAP),
    _c("StartTimeUnix", "DateTime64(9)", "Delta, ZSTD(1)"),
    _c("TimeUnix", "DateTime64(9)", "Delta, ZSTD(1)"),
)


def _metric_table(kind: str, *columns: Column) -> Table:
    return Table(
        name=f"otel_metrics_{kind}",
        columns=_METRIC_HEAD + columns,
        indexes=_map_indexes("ResourceAttributes", "ScopeAttributes", "Attributes"),
        partition_by="toDate(TimeUnix)",
        order_by="(ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))",
    )


METRICS_GAUGE = _metric_table(
    "gauge",
    _c("Value", "Float64"),
    _c("Flags", "UInt32"),
    _c("Exemplars", _EXEMPLARS),
)
METRICS_SUM = _metric_table(
    "sum",
    _c("Value", "Float64"),
    _c("Flags", "UInt32"),
    _c("Exemplars", _EXEMPLARS),
    _c("AggregationTemporality", "Int32"),
    _c("IsMonotonic", "Boolean", "Delta, ZSTD(1)"),
)
METRICS_HISTOGRAM = _metric_table(
    "histogram",
    _c("Count", "UInt64", "Delta, ZSTD(1)"),
    _c("Sum", "Float64"),
    _c("BucketCounts", "Array(UInt64)"),
    _c("ExplicitBounds", "Array(Float64)"),
    _c("Exemplars", _EXEMPLARS),
    _c("Flags", "UInt32"),
    _c("Min", "Float64"),
    _c("Max", "Float64"),
    _c("AggregationTemporality", "Int32"),
)
METRICS_EXP_HISTOGRAM = _metric_table(
    "exp_histogram",
    _c("Count", "UInt64", "Delta, ZSTD(1)"),
    _c("Sum", "Float64"),
    _c("Scale", "Int32"),
    _c("ZeroCount", "UInt64"),
    _c("PositiveOffset", "Int32"),
    _c("PositiveBucketCounts", "Array(UInt64)"),
    _c("NegativeOffset", "Int32"),
    _c("NegativeBucketCounts", "Array(UInt64)"),
    _c("Exemplars", _EXEMPLARS),
    _c("Flags", "UInt32"),
    _c("Min", "Float64"),
    _c("Max", "Float64"),
    _c("AggregationTemporality", "Int32"),
)
METRICS_SUMMARY = _metric_table(
    "summary",
    _c("Count", "UInt64", "Delta, ZSTD(1)"),
    _c("Sum", "Float64"),
    _c("ValueAtQuantiles", "Nested (Quantile Float64, Value Float64)"),
    _c("Flags", "UInt32"),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        TRACES,
        TRACE_ID_TS,
        LOGS,
        METRICS_GAUGE,
        METRICS_SUM,
        METRICS_HISTOGRAM,
        METRICS_EXP_HISTOGRAM,
        METRICS_SUMMARY,
    )
}

MIGRATIONS_TABLE = f"""CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations
(
    Version UInt32,
    Description String,
    AppliedAt DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY Version"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Append only: a released migration never changes, a new one gets the next version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "OpenTelemetry tables (exporter-compatible) with typed LLM columns",
        (
            TRACES.ddl(),
            TRACE_ID_TS.ddl(),
            TRACE_ID_TS_MV,
            LOGS.ddl(),
            METRICS_GAUGE.ddl(),
            METRICS_SUM.ddl(),
            METRICS_HISTOGRAM.ddl(),
            METRICS_EXP_HISTOGRAM.ddl(),
            METRICS_SUMMARY.ddl(),
        ),
    ),
)


def all_statements() -> list[str]:
    """Every DDL statement, in order, as `tracehouse schema --print` shows it."""
    out = [f"CREATE DATABASE IF NOT EXISTS {DATABASE}", MIGRATIONS_TABLE]
    for m in MIGRATIONS:
        out.extend(m.statements)
    return out
