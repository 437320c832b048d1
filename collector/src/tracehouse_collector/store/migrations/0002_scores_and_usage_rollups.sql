-- Scores (evaluation results) and the per-minute and per-hour LLM usage rollups

CREATE TABLE IF NOT EXISTS {{database}}.{{table otel_scores}}{{on_cluster}}
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    Name LowCardinality(String) CODEC(ZSTD(1)),
    Value Nullable(Float64) CODEC(ZSTD(1)),
    Label String CODEC(ZSTD(1)),
    Explanation String CODEC(ZSTD(1)),
    ResponseId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Source LowCardinality(String) CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(Timestamp)
ORDER BY (Name, toDateTime(Timestamp))
{{ttl Timestamp}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.otel_scores{{on_cluster}}
AS {{database}}.otel_scores_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_scores_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

INSERT INTO {{database}}.otel_scores
SELECT
    ev_ts AS Timestamp, TraceId, SpanId, RunId,
    ev_attrs['gen_ai.evaluation.name'] AS Name,
    toFloat64OrNull(ev_attrs['gen_ai.evaluation.score.value']) AS Value,
    ev_attrs['gen_ai.evaluation.score.label'] AS Label,
    ev_attrs['gen_ai.evaluation.explanation'] AS Explanation,
    ev_attrs['gen_ai.response.id'] AS ResponseId,
    ServiceName, 'span_event' AS Source, ev_attrs AS Attributes
FROM {{database}}.otel_traces
ARRAY JOIN Events.Timestamp AS ev_ts, Events.Name AS ev_name, Events.Attributes AS ev_attrs
WHERE ev_attrs['gen_ai.evaluation.name'] != '' AND position(ev_name, 'evaluation') > 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.otel_scores_from_spans_mv{{on_cluster}}
TO {{database}}.{{table otel_scores}}
AS SELECT
    ev_ts AS Timestamp, TraceId, SpanId, RunId,
    ev_attrs['gen_ai.evaluation.name'] AS Name,
    toFloat64OrNull(ev_attrs['gen_ai.evaluation.score.value']) AS Value,
    ev_attrs['gen_ai.evaluation.score.label'] AS Label,
    ev_attrs['gen_ai.evaluation.explanation'] AS Explanation,
    ev_attrs['gen_ai.response.id'] AS ResponseId,
    ServiceName, 'span_event' AS Source, ev_attrs AS Attributes
FROM {{source otel_traces}}
ARRAY JOIN Events.Timestamp AS ev_ts, Events.Name AS ev_name, Events.Attributes AS ev_attrs
WHERE ev_attrs['gen_ai.evaluation.name'] != '' AND position(ev_name, 'evaluation') > 0;

INSERT INTO {{database}}.otel_scores
SELECT
    Timestamp, TraceId, SpanId, LogAttributes['tracehouse.run.id'] AS RunId,
    LogAttributes['gen_ai.evaluation.name'] AS Name,
    toFloat64OrNull(LogAttributes['gen_ai.evaluation.score.value']) AS Value,
    LogAttributes['gen_ai.evaluation.score.label'] AS Label,
    LogAttributes['gen_ai.evaluation.explanation'] AS Explanation,
    LogAttributes['gen_ai.response.id'] AS ResponseId,
    ServiceName, 'log' AS Source, LogAttributes AS Attributes
FROM {{database}}.otel_logs
WHERE LogAttributes['gen_ai.evaluation.name'] != ''
    AND position(if(EventName != '', EventName, LogAttributes['event.name']), 'evaluation') > 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.otel_scores_from_logs_mv{{on_cluster}}
TO {{database}}.{{table otel_scores}}
AS SELECT
    Timestamp, TraceId, SpanId, LogAttributes['tracehouse.run.id'] AS RunId,
    LogAttributes['gen_ai.evaluation.name'] AS Name,
    toFloat64OrNull(LogAttributes['gen_ai.evaluation.score.value']) AS Value,
    LogAttributes['gen_ai.evaluation.score.label'] AS Label,
    LogAttributes['gen_ai.evaluation.explanation'] AS Explanation,
    LogAttributes['gen_ai.response.id'] AS ResponseId,
    ServiceName, 'log' AS Source, LogAttributes AS Attributes
FROM {{source otel_logs}}
WHERE LogAttributes['gen_ai.evaluation.name'] != ''
    AND position(if(EventName != '', EventName, LogAttributes['event.name']), 'evaluation') > 0;

CREATE TABLE IF NOT EXISTS {{database}}.{{table llm_usage_1m}}{{on_cluster}}
(
    Start DateTime CODEC(Delta, ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    GenAIOperation LowCardinality(String) CODEC(ZSTD(1)),
    GenAIProvider LowCardinality(String) CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    ExperimentName LowCardinality(String) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationSumNs SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationMaxNs SimpleAggregateFunction(max, UInt64) CODEC(ZSTD(1)),
    DurationMs AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), Float64) CODEC(ZSTD(1)),
    TtftSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    TtftMs AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), Float64) CODEC(ZSTD(1)),
    InputTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    OutputTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CacheReadTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CacheWriteTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    ReasoningTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    TotalTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    EstimatedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CostUSD SimpleAggregateFunction(sum, Decimal128(12)) CODEC(ZSTD(1))
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY toDate(Start)
ORDER BY (Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName)
{{ttl Start}}
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.llm_usage_1m{{on_cluster}}
AS {{database}}.llm_usage_1m_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'llm_usage_1m_local', rand());

INSERT INTO {{database}}.llm_usage_1m
SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Start, ServiceName, SpanName, GenAIOperation,
    GenAIProvider, if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel) AS Model, ExperimentName,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sum(Duration) AS DurationSumNs,
    max(Duration) AS DurationMaxNs,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(Duration / 1e6) AS DurationMs,
    countIf(isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftSpans,
    quantilesDDStateIf(0.01, 0.5, 0.9, 0.95, 0.99)(assumeNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk']))), isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftMs,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CacheReadTokens) AS CacheReadTokens,
    sum(CacheWriteTokens) AS CacheWriteTokens,
    sum(ReasoningTokens) AS ReasoningTokens,
    sum(TotalTokens) AS TotalTokens,
    sumIf(otel_traces.TotalTokens, TokensEstimated) AS EstimatedTokens,
    sum(TotalCostUSD) AS CostUSD
FROM {{database}}.otel_traces
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.llm_usage_1m_mv{{on_cluster}}
TO {{database}}.{{table llm_usage_1m}}
AS SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Start, ServiceName, SpanName, GenAIOperation,
    GenAIProvider, if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel) AS Model, ExperimentName,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sum(Duration) AS DurationSumNs,
    max(Duration) AS DurationMaxNs,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(Duration / 1e6) AS DurationMs,
    countIf(isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftSpans,
    quantilesDDStateIf(0.01, 0.5, 0.9, 0.95, 0.99)(assumeNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk']))), isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftMs,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CacheReadTokens) AS CacheReadTokens,
    sum(CacheWriteTokens) AS CacheWriteTokens,
    sum(ReasoningTokens) AS ReasoningTokens,
    sum(TotalTokens) AS TotalTokens,
    sumIf(otel_traces.TotalTokens, TokensEstimated) AS EstimatedTokens,
    sum(TotalCostUSD) AS CostUSD
FROM {{source otel_traces}}
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;

CREATE TABLE IF NOT EXISTS {{database}}.{{table llm_usage_1h}}{{on_cluster}}
(
    Start DateTime CODEC(Delta, ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    GenAIOperation LowCardinality(String) CODEC(ZSTD(1)),
    GenAIProvider LowCardinality(String) CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    ExperimentName LowCardinality(String) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationSumNs SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    DurationMaxNs SimpleAggregateFunction(max, UInt64) CODEC(ZSTD(1)),
    DurationMs AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), Float64) CODEC(ZSTD(1)),
    TtftSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    TtftMs AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), Float64) CODEC(ZSTD(1)),
    InputTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    OutputTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CacheReadTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CacheWriteTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    ReasoningTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    TotalTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    EstimatedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)),
    CostUSD SimpleAggregateFunction(sum, Decimal128(12)) CODEC(ZSTD(1))
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY toDate(Start)
ORDER BY (Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName)
{{ttl Start}}
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.llm_usage_1h{{on_cluster}}
AS {{database}}.llm_usage_1h_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'llm_usage_1h_local', rand());

INSERT INTO {{database}}.llm_usage_1h
SELECT
    toStartOfHour(llm_usage_1m.Start) AS Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName,
    sum(Spans) AS Spans, sum(Errors) AS Errors, sum(DurationSumNs) AS DurationSumNs, max(DurationMaxNs) AS DurationMaxNs, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(DurationMs) AS DurationMs, sum(TtftSpans) AS TtftSpans, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(TtftMs) AS TtftMs, sum(InputTokens) AS InputTokens, sum(OutputTokens) AS OutputTokens, sum(CacheReadTokens) AS CacheReadTokens, sum(CacheWriteTokens) AS CacheWriteTokens, sum(ReasoningTokens) AS ReasoningTokens, sum(TotalTokens) AS TotalTokens, sum(EstimatedTokens) AS EstimatedTokens, sum(CostUSD) AS CostUSD
FROM {{database}}.llm_usage_1m
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.llm_usage_1h_mv{{on_cluster}}
TO {{database}}.{{table llm_usage_1h}}
AS SELECT
    toStartOfHour(llm_usage_1m.Start) AS Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName,
    sum(Spans) AS Spans, sum(Errors) AS Errors, sum(DurationSumNs) AS DurationSumNs, max(DurationMaxNs) AS DurationMaxNs, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(DurationMs) AS DurationMs, sum(TtftSpans) AS TtftSpans, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(TtftMs) AS TtftMs, sum(InputTokens) AS InputTokens, sum(OutputTokens) AS OutputTokens, sum(CacheReadTokens) AS CacheReadTokens, sum(CacheWriteTokens) AS CacheWriteTokens, sum(ReasoningTokens) AS ReasoningTokens, sum(TotalTokens) AS TotalTokens, sum(EstimatedTokens) AS EstimatedTokens, sum(CostUSD) AS CostUSD
FROM {{source llm_usage_1m}}
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;
