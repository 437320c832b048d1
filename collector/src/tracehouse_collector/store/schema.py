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
    # Retention (`tracehouse schema --ttl`, see store/ddl.py): the time column it applies to,
    # by default the column of a time PARTITION BY; retention=False keeps rows forever.
    ttl_column: str = ""
    retention: bool = True

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


# The typed LLM columns Tracehouse adds to the exporter's otel_traces: why, in docs/architecture.md;
# how the LLM processor fills them, in docs/conventions-and-cost.md.
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


# -- v2: scores and rollups (query module) ---------------------------------------------------
# Evaluation results, one row per score, from `gen_ai.evaluation.result` span events and log
# records (the SDK's tracehouse.score() sends a log record). A score keeps only the ids of
# what it evaluates; its model, run and session come from the span at query time, so a score
# that arrives before its span still counts once the span is there.
SCORES = Table(
    name="otel_scores",
    columns=(
        _c("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        _c("TraceId", "String"),
        _c("SpanId", "String"),
        _c("RunId", "String"),
        _c("Name", "LowCardinality(String)"),
        _c("Value", "Nullable(Float64)"),
        _c("Label", "String"),
        _c("Explanation", "String"),
        _c("ResponseId", "String"),
        _c("ServiceName", "LowCardinality(String)"),
        _c("Source", "LowCardinality(String)"),  # span_event | log
        _c("Attributes", _ATTR_MAP),
    ),
    indexes=(
        "idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
        "idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1",
    ),
    partition_by="toDate(Timestamp)",
    order_by="(Name, toDateTime(Timestamp))",
)

_EVAL_COLUMNS = """{a}['gen_ai.evaluation.name'] AS Name,
    toFloat64OrNull({a}['gen_ai.evaluation.score.value']) AS Value,
    {a}['gen_ai.evaluation.score.label'] AS Label,
    {a}['gen_ai.evaluation.explanation'] AS Explanation,
    {a}['gen_ai.response.id'] AS ResponseId"""

# The LLM processor (spans) and processors/scores.py (logs) add the canonical gen_ai.evaluation.*
# keys to evaluation events of every spelling; these selects pick those events out.
SCORES_FROM_SPANS_SELECT = f"""SELECT
    ev_ts AS Timestamp, TraceId, SpanId, RunId,
    {_EVAL_COLUMNS.format(a="ev_attrs")},
    ServiceName, 'span_event' AS Source, ev_attrs AS Attributes
FROM {DATABASE}.otel_traces
ARRAY JOIN Events.Timestamp AS ev_ts, Events.Name AS ev_name, Events.Attributes AS ev_attrs
WHERE ev_attrs['gen_ai.evaluation.name'] != '' AND position(ev_name, 'evaluation') > 0"""

SCORES_FROM_LOGS_SELECT = f"""SELECT
    Timestamp, TraceId, SpanId, LogAttributes['tracehouse.run.id'] AS RunId,
    {_EVAL_COLUMNS.format(a="LogAttributes")},
    ServiceName, 'log' AS Source, LogAttributes AS Attributes
FROM {DATABASE}.otel_logs
WHERE LogAttributes['gen_ai.evaluation.name'] != ''
    AND position(if(EventName != '', EventName, LogAttributes['event.name']), 'evaluation') > 0"""

# Usage of every span per minute and per hour, the rollups behind long-range latency and cost
# questions (the hourly one keeps 30-day questions to a few thousand rows per group; the
# per-minute one answers minute buckets and the partial hours at a range's edges).
# Counts, token and cost sums are exact; percentiles are DDSketch states (quantilesDD) with a
# relative error of at most ROLLUP_RELATIVE_ERROR on each reported value.
ROLLUP_RELATIVE_ERROR = 0.01
ROLLUP_LEVELS = (0.5, 0.9, 0.95, 0.99)
_DD = f"quantilesDD({ROLLUP_RELATIVE_ERROR}, {', '.join(map(str, ROLLUP_LEVELS))})"
ROLLUP_DIMENSIONS = ("ServiceName", "SpanName", "GenAIOperation", "GenAIProvider", "Model", "ExperimentName")
TTFT_MS_SQL = (
    "1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), "
    "toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk']))"
)


def _sum(type_: str) -> str:
    return f"SimpleAggregateFunction(sum, {type_})"


def _usage_table(name: str, extra: tuple[Column, ...] = ()) -> Table:
    return Table(
        name=name,
        columns=(
            _c("Start", "DateTime", "Delta, ZSTD(1)"),  # start of the minute / hour
            _c("ServiceName", "LowCardinality(String)"),
            _c("SpanName", "LowCardinality(String)"),
            _c("GenAIOperation", "LowCardinality(String)"),
            _c("GenAIProvider", "LowCardinality(String)"),
            _c("Model", "LowCardinality(String)"),
            _c("ExperimentName", "LowCardinality(String)"),
            _c("Spans", _sum("UInt64")),
            _c("Errors", _sum("UInt64")),
            _c("DurationSumNs", _sum("UInt64")),
            _c("DurationMaxNs", "SimpleAggregateFunction(max, UInt64)"),
            _c("DurationMs", f"AggregateFunction({_DD}, Float64)"),
            _c("TtftSpans", _sum("UInt64")),
            _c("TtftMs", f"AggregateFunction({_DD}, Float64)"),
            _c("InputTokens", _sum("UInt64")),
            _c("OutputTokens", _sum("UInt64")),
            _c("CacheReadTokens", _sum("UInt64")),
            _c("CacheWriteTokens", _sum("UInt64")),
            _c("ReasoningTokens", _sum("UInt64")),
            _c("TotalTokens", _sum("UInt64")),
            _c("EstimatedTokens", _sum("UInt64")),
            _c("CostUSD", _sum("Decimal128(12)")),
            *extra,
        ),
        engine="AggregatingMergeTree",
        partition_by="toDate(Start)",
        # Time first: every rollup read is a time range, which the primary key then prunes.
        order_by="(Start, " + ", ".join(ROLLUP_DIMENSIONS) + ")",
        # Rows carry two sketches each: smaller granules read less for a short time range.
        settings={"index_granularity": 1024},
    )


# v4 adds the calls and tokens of models nobody prices (PriceSource 'unpriced'), so cost
# aggregates can say how much spend they are missing. Migration 2 keeps its own shape.
UNPRICED_COLUMNS = (_c("UnpricedSpans", _sum("UInt64")), _c("UnpricedTokens", _sum("UInt64")))
_USAGE_1M_V2 = _usage_table("llm_usage_1m")
_USAGE_1H_V2 = _usage_table("llm_usage_1h")
USAGE_1M = _usage_table("llm_usage_1m", UNPRICED_COLUMNS)
USAGE_1H = _usage_table("llm_usage_1h", UNPRICED_COLUMNS)

# The rollup's row for a group of spans; also used by the query planner on raw spans at the
# edges of a range, so both sides make identical states.
_USAGE_STATES_V2: tuple[tuple[str, str], ...] = (
    ("count()", "Spans"),
    ("countIf(StatusCode = 'Error')", "Errors"),
    ("sum(Duration)", "DurationSumNs"),
    ("max(Duration)", "DurationMaxNs"),
    (f"{_DD.replace('quantilesDD', 'quantilesDDState')}(Duration / 1e6)", "DurationMs"),
    (f"countIf(isNotNull({TTFT_MS_SQL}))", "TtftSpans"),
    (
        f"{_DD.replace('quantilesDD', 'quantilesDDStateIf')}(assumeNotNull({TTFT_MS_SQL}), isNotNull({TTFT_MS_SQL}))",
        "TtftMs",
    ),
    ("sum(InputTokens)", "InputTokens"),
    ("sum(OutputTokens)", "OutputTokens"),
    ("sum(CacheReadTokens)", "CacheReadTokens"),
    ("sum(CacheWriteTokens)", "CacheWriteTokens"),
    ("sum(ReasoningTokens)", "ReasoningTokens"),
    ("sum(TotalTokens)", "TotalTokens"),
    # Qualified: the column TotalTokens, not the alias of the sum above.
    ("sumIf(otel_traces.TotalTokens, TokensEstimated)", "EstimatedTokens"),
    ("sum(TotalCostUSD)", "CostUSD"),
)
UNPRICED_SQL = "PriceSource = 'unpriced'"
USAGE_STATES = (
    *_USAGE_STATES_V2,
    (f"countIf({UNPRICED_SQL})", "UnpricedSpans"),
    (f"sumIf(otel_traces.TotalTokens, {UNPRICED_SQL})", "UnpricedTokens"),
)


def _usage_1m_select(states: tuple[tuple[str, str], ...]) -> str:
    columns = ",\n    ".join(f"{expr} AS {alias}" for expr, alias in states)
    return f"""SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Start, ServiceName, SpanName, GenAIOperation,
    GenAIProvider, if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel) AS Model, ExperimentName,
    {columns}
FROM {DATABASE}.otel_traces
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName"""


_USAGE_1M_SELECT_V2 = _usage_1m_select(_USAGE_STATES_V2)
USAGE_1M_SELECT = _usage_1m_select(USAGE_STATES)


def _merge_state(alias: str) -> str:
    if alias in ("DurationMs", "TtftMs"):
        return f"{_DD.replace('quantilesDD', 'quantilesDDMergeState')}({alias})"
    return f"{'max' if alias == 'DurationMaxNs' else 'sum'}({alias})"


# The hourly rollup is fed from the per-minute one (a cascaded view): each inserted block is
# grouped once from raw spans, and the hour only merges the few minute rows that made.
def _usage_1h_select(states: tuple[tuple[str, str], ...]) -> str:
    return f"""SELECT
    toStartOfHour(llm_usage_1m.Start) AS Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName,
    {", ".join(f"{_merge_state(alias)} AS {alias}" for _, alias in states)}
FROM {DATABASE}.llm_usage_1m
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName"""


_USAGE_1H_SELECT_V2 = _usage_1h_select(_USAGE_STATES_V2)
USAGE_1H_SELECT = _usage_1h_select(USAGE_STATES)


def _add_columns(table: str, columns: tuple[Column, ...]) -> str:
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {c.ddl()}" for c in columns)
    return f"ALTER TABLE {DATABASE}.{table} {adds}"


def _modify_query(view: str, select: str) -> str:
    return f"ALTER TABLE {DATABASE}.{view} MODIFY QUERY {select}"


def _mv(name: str, target: str, select: str) -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{name}\nTO {DATABASE}.{target}\nAS {select}"


def _backfill(target: str, select: str) -> str:
    # Fills a new table from data stored before its view existed (migrations run before the
    # collector accepts data, so no row is counted twice).
    return f"INSERT INTO {DATABASE}.{target}\n{select}"


# -- v3: experiment runs (processors/runs.py fills them from `tracehouse.run.*` log records) --
# Runs are few and kept forever (retention=False, no time partition); metric points are many.
# - runs: one row per state record the SDK sends (start, tag change, end), each carrying the
#   whole state, so ReplacingMergeTree(Version) keeps the newest and `FINAL` reads one row per
#   run. ORDER BY (Experiment, RunId): `runs list --experiment` reads a key prefix.
# - run_params, run_artifacts: ReplacingMergeTree keyed by (RunId, Key|Name): a value logged
#   again replaces the old one ("latest value per run"), and a run's rows sit together.
# - run_metrics: every point, never replaced; ORDER BY (RunId, Key, Step, Timestamp) makes the
#   full history of one metric a contiguous range read in step order, and "compare 50 runs"
#   50 such ranges. A repeated step stays as two rows; readers take the later Timestamp.
# - run_metric_summary: AggregatingMergeTree filled by a materialized view, one row per
#   (RunId, Key) after merges: last value (argMax by (Step, Timestamp)), min, max, count. Lists
#   and comparisons of many runs read it instead of scanning histories.
# - models: one row per registered model file (a `kind="model"` artifact), by name then digest.
_RUN_ID = _c("RunId", "String")
_EXPERIMENT = _c("Experiment", "LowCardinality(String)")
_VERSION = _c("Version", "UInt64", "Delta, ZSTD(1)")

RUNS = Table(
    name="runs",
    columns=(
        _RUN_ID,
        _EXPERIMENT,
        _c("Name", "String"),
        _c("ParentId", "String"),
        _c("Status", "LowCardinality(String)"),
        _c("StartTime", "DateTime64(9)"),
        _c("EndTime", "Nullable(DateTime64(9))"),
        _c("Tags", "Map(String, String)"),
        _c("Metadata", "Map(LowCardinality(String), String)"),  # git, command, python, host...
        _c("Packages", "Map(String, String)"),  # installed distributions: name -> version
        _c("ServiceName", "LowCardinality(String)"),
        _VERSION,
    ),
    engine="ReplacingMergeTree(Version)",
    partition_by="tuple()",
    order_by="(Experiment, RunId)",
    retention=False,
)

RUN_PARAMS = Table(
    name="run_params",
    columns=(
        _RUN_ID,
        _c("Key", "String"),
        _c("Value", "String"),  # JSON text of the typed value: 0.01, 64, true, "adam", {...}
        _c("Type", "LowCardinality(String)"),  # int | float | bool | str | json
        _VERSION,
    ),
    engine="ReplacingMergeTree(Version)",
    partition_by="tuple()",
    order_by="(RunId, Key)",
    retention=False,
)

RUN_METRICS = Table(
    name="run_metrics",
    columns=(
        _RUN_ID,
        _c("Key", "LowCardinality(String)"),
        _c("Step", "Int64", "Delta, ZSTD(1)"),
        _c("Value", "Float64", "Gorilla, ZSTD(1)"),
        _c("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
    ),
    partition_by="tuple()",
    order_by="(RunId, Key, Step, Timestamp)",
    retention=False,
)

RUN_METRIC_SUMMARY = Table(
    name="run_metric_summary",
    columns=(
        _RUN_ID,
        _c("Key", "LowCardinality(String)"),
        _c("Last", "AggregateFunction(argMax, Float64, Tuple(Int64, DateTime64(9)))", ""),
        _c("LastStep", "SimpleAggregateFunction(max, Int64)"),
        _c("Min", "SimpleAggregateFunction(min, Float64)"),
        _c("Max", "SimpleAggregateFunction(max, Float64)"),
        _c("Count", "SimpleAggregateFunction(sum, UInt64)"),
    ),
    engine="AggregatingMergeTree",
    partition_by="tuple()",
    order_by="(RunId, Key)",
    retention=False,
)

RUN_METRIC_SUMMARY_SELECT = f"""SELECT
    RunId, Key, argMaxState(Value, (Step, Timestamp)) AS Last, max(Step) AS LastStep,
    min(Value) AS Min, max(Value) AS Max, count() AS Count
FROM {DATABASE}.run_metrics
GROUP BY RunId, Key"""

RUN_ARTIFACTS = Table(
    name="run_artifacts",
    columns=(
        _RUN_ID,
        _c("Name", "String"),
        _c("Path", "String"),  # where the client read it (informational, never used to store)
        _c("Digest", "String"),  # sha256 hex of the bytes, the key in the artifact store
        _c("Size", "UInt64"),
        _c("Kind", "LowCardinality(String)"),  # file | folder | model | ...
        _c("Metadata", "String"),  # JSON object
        _c("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        _VERSION,
    ),
    engine="ReplacingMergeTree(Version)",
    partition_by="tuple()",
    order_by="(RunId, Name)",
    retention=False,
)

MODELS = Table(
    name="models",
    columns=(
        _c("Name", "String"),
        _c("Digest", "String"),
        _c("Size", "UInt64"),
        _RUN_ID,
        _EXPERIMENT,
        _c("Metadata", "String"),
        _c("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        _VERSION,
    ),
    engine="ReplacingMergeTree(Version)",
    partition_by="tuple()",
    order_by="(Name, Digest, RunId)",
    retention=False,
)

RUN_TABLES = (RUNS, RUN_PARAMS, RUN_METRICS, RUN_METRIC_SUMMARY, RUN_ARTIFACTS, MODELS)

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
        SCORES,
        USAGE_1M,
        USAGE_1H,
        *RUN_TABLES,
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
    Migration(
        2,
        "Scores (evaluation results) and the per-minute and per-hour LLM usage rollups",
        (
            SCORES.ddl(),
            _backfill("otel_scores", SCORES_FROM_SPANS_SELECT),
            _mv("otel_scores_from_spans_mv", "otel_scores", SCORES_FROM_SPANS_SELECT),
            _backfill("otel_scores", SCORES_FROM_LOGS_SELECT),
            _mv("otel_scores_from_logs_mv", "otel_scores", SCORES_FROM_LOGS_SELECT),
            _USAGE_1M_V2.ddl(),
            _backfill("llm_usage_1m", _USAGE_1M_SELECT_V2),
            _mv("llm_usage_1m_mv", "llm_usage_1m", _USAGE_1M_SELECT_V2),
            _USAGE_1H_V2.ddl(),
            _backfill("llm_usage_1h", _USAGE_1H_SELECT_V2),
            _mv("llm_usage_1h_mv", "llm_usage_1h", _USAGE_1H_SELECT_V2),
        ),
    ),
    Migration(
        3,
        "Experiment runs: runs, params, step metrics (+ per-key summary), artifacts, models",
        (
            *(t.ddl() for t in RUN_TABLES),
            _mv("run_metric_summary_mv", "run_metric_summary", RUN_METRIC_SUMMARY_SELECT),
        ),
    ),
    Migration(
        4,
        "Usage rollups count unpriced calls and tokens (models with no known price)",
        (
            # Rows rolled up before this count 0 unpriced: spans stored before it have no
            # 'unpriced' PriceSource either, so the raw and rollup plans still agree.
            _add_columns("llm_usage_1m", UNPRICED_COLUMNS),
            _add_columns("llm_usage_1h", UNPRICED_COLUMNS),
            _modify_query("llm_usage_1m_mv", USAGE_1M_SELECT),
            _modify_query("llm_usage_1h_mv", USAGE_1H_SELECT),
        ),
    ),
)


def all_statements() -> list[str]:
    """Every DDL statement, in order, as `tracehouse schema --print` shows it."""
    out = [f"CREATE DATABASE IF NOT EXISTS {DATABASE}", MIGRATIONS_TABLE]
    for m in MIGRATIONS:
        out.extend(m.statements)
    return out
