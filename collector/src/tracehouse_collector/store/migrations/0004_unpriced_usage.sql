-- Usage rollups count unpriced calls and tokens (models with no known price)

ALTER TABLE {{database}}.{{table llm_usage_1m}}{{on_cluster}} ADD COLUMN IF NOT EXISTS UnpricedSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS UnpricedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

-- cluster only: the Distributed table mirrors the columns
ALTER TABLE {{database}}.llm_usage_1m{{on_cluster}} ADD COLUMN IF NOT EXISTS UnpricedSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS UnpricedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

ALTER TABLE {{database}}.{{table llm_usage_1h}}{{on_cluster}} ADD COLUMN IF NOT EXISTS UnpricedSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS UnpricedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

-- cluster only: the Distributed table mirrors the columns
ALTER TABLE {{database}}.llm_usage_1h{{on_cluster}} ADD COLUMN IF NOT EXISTS UnpricedSpans SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS UnpricedTokens SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1));

ALTER TABLE {{database}}.llm_usage_1m_mv{{on_cluster}} MODIFY QUERY SELECT
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
    sum(TotalCostUSD) AS CostUSD,
    countIf(PriceSource = 'unpriced') AS UnpricedSpans,
    sumIf(otel_traces.TotalTokens, PriceSource = 'unpriced') AS UnpricedTokens
FROM {{source otel_traces}}
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;

ALTER TABLE {{database}}.llm_usage_1h_mv{{on_cluster}} MODIFY QUERY SELECT
    toStartOfHour(llm_usage_1m.Start) AS Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName,
    sum(Spans) AS Spans, sum(Errors) AS Errors, sum(DurationSumNs) AS DurationSumNs, max(DurationMaxNs) AS DurationMaxNs, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(DurationMs) AS DurationMs, sum(TtftSpans) AS TtftSpans, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(TtftMs) AS TtftMs, sum(InputTokens) AS InputTokens, sum(OutputTokens) AS OutputTokens, sum(CacheReadTokens) AS CacheReadTokens, sum(CacheWriteTokens) AS CacheWriteTokens, sum(ReasoningTokens) AS ReasoningTokens, sum(TotalTokens) AS TotalTokens, sum(EstimatedTokens) AS EstimatedTokens, sum(CostUSD) AS CostUSD, sum(UnpricedSpans) AS UnpricedSpans, sum(UnpricedTokens) AS UnpricedTokens
FROM {{source llm_usage_1m}}
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;
