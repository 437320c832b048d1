-- Usage rollups keep each group's duration minimum and time-to-first-token range, to clamp sketch answers
-- A DDSketch answer may lie just outside the values it summarises (the bucket's representative
-- value); the query clamps it to the group's [min, max], which needs the minimum duration and
-- the TTFT minimum and maximum (the rollups kept only DurationMaxNs).
--
-- Rows written before this migration hold none of them, and their DEFAULTs must never narrow a
-- group's range (a wrong clamp would move a right answer): those rows read the widest range
-- their spans allow, so min() or max() over old and new rows stays a true bound.
--   DurationMinNs DEFAULT 0: no duration is below 0 (UInt64).
--   TtftMinMs DEFAULT 0 and TtftMaxMs DEFAULT inf (ClickHouse takes inf as a Float64 literal)
--   where the row counts TTFT spans; where it counts none (TtftSpans = 0) the row has no TTFT
--   value to bound, and +inf / -inf are the identities of min and max, so it leaves the range
--   of the group's other rows as it is. (A DEFAULT may read the row's other columns: old parts
--   compute it on read and when merged with new parts.)
-- The views write the same identities for a group of spans without TTFT: min(ifNull(ttft, inf))
-- and max(ifNull(ttft, -inf)) take only the spans that have one. Old rows are not backfilled:
-- a group made only of them is clamped to its max, as before.

ALTER TABLE {{database}}.{{table llm_usage_1m}}{{on_cluster}} ADD COLUMN IF NOT EXISTS DurationMinNs SimpleAggregateFunction(min, UInt64) DEFAULT 0 CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMinMs SimpleAggregateFunction(min, Float64) DEFAULT if(TtftSpans > 0, 0, inf) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMaxMs SimpleAggregateFunction(max, Float64) DEFAULT if(TtftSpans > 0, inf, -inf) CODEC(ZSTD(1));

-- cluster only: the Distributed table mirrors the columns
ALTER TABLE {{database}}.llm_usage_1m{{on_cluster}} ADD COLUMN IF NOT EXISTS DurationMinNs SimpleAggregateFunction(min, UInt64) DEFAULT 0 CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMinMs SimpleAggregateFunction(min, Float64) DEFAULT if(TtftSpans > 0, 0, inf) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMaxMs SimpleAggregateFunction(max, Float64) DEFAULT if(TtftSpans > 0, inf, -inf) CODEC(ZSTD(1));

ALTER TABLE {{database}}.{{table llm_usage_1h}}{{on_cluster}} ADD COLUMN IF NOT EXISTS DurationMinNs SimpleAggregateFunction(min, UInt64) DEFAULT 0 CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMinMs SimpleAggregateFunction(min, Float64) DEFAULT if(TtftSpans > 0, 0, inf) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMaxMs SimpleAggregateFunction(max, Float64) DEFAULT if(TtftSpans > 0, inf, -inf) CODEC(ZSTD(1));

-- cluster only: the Distributed table mirrors the columns
ALTER TABLE {{database}}.llm_usage_1h{{on_cluster}} ADD COLUMN IF NOT EXISTS DurationMinNs SimpleAggregateFunction(min, UInt64) DEFAULT 0 CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMinMs SimpleAggregateFunction(min, Float64) DEFAULT if(TtftSpans > 0, 0, inf) CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TtftMaxMs SimpleAggregateFunction(max, Float64) DEFAULT if(TtftSpans > 0, inf, -inf) CODEC(ZSTD(1));

ALTER TABLE {{database}}.llm_usage_1m_mv{{on_cluster}} MODIFY QUERY SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Start, ServiceName, SpanName, GenAIOperation,
    GenAIProvider, if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel) AS Model, ExperimentName,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    sum(Duration) AS DurationSumNs,
    max(Duration) AS DurationMaxNs,
    min(Duration) AS DurationMinNs,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(Duration / 1e6) AS DurationMs,
    countIf(isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftSpans,
    quantilesDDStateIf(0.01, 0.5, 0.9, 0.95, 0.99)(assumeNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk']))), isNotNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])))) AS TtftMs,
    min(ifNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])), inf)) AS TtftMinMs,
    max(ifNull(1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])), -inf)) AS TtftMaxMs,
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
    sum(Spans) AS Spans, sum(Errors) AS Errors, sum(DurationSumNs) AS DurationSumNs, max(DurationMaxNs) AS DurationMaxNs, min(DurationMinNs) AS DurationMinNs, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(DurationMs) AS DurationMs, sum(TtftSpans) AS TtftSpans, quantilesDDMergeState(0.01, 0.5, 0.9, 0.95, 0.99)(TtftMs) AS TtftMs, min(TtftMinMs) AS TtftMinMs, max(TtftMaxMs) AS TtftMaxMs, sum(InputTokens) AS InputTokens, sum(OutputTokens) AS OutputTokens, sum(CacheReadTokens) AS CacheReadTokens, sum(CacheWriteTokens) AS CacheWriteTokens, sum(ReasoningTokens) AS ReasoningTokens, sum(TotalTokens) AS TotalTokens, sum(EstimatedTokens) AS EstimatedTokens, sum(CostUSD) AS CostUSD, sum(UnpricedSpans) AS UnpricedSpans, sum(UnpricedTokens) AS UnpricedTokens
FROM {{source llm_usage_1m}}
GROUP BY Start, ServiceName, SpanName, GenAIOperation, GenAIProvider, Model, ExperimentName;
