-- trace_summary: one row per trace and hour of its first span, for sorted trace lists, counts and facets
-- A sorted page of the traces list, its count and its facets need per-trace totals of every trace
-- in a time range; computed from otel_traces they group every span of the range by TraceId, which
-- grows with the spans (about 3 s for 7 days of 10M spans). This table keeps those totals: the
-- materialized view writes one row per trace and insert block (what that block held of the trace),
-- and rows of one trace whose first spans fall in the same hour merge into one. A trace whose spans
-- arrive in several blocks can keep several rows, so readers always GROUP BY TraceId (min, max, sum
-- and the union of facet values over the rows give the totals over all the trace's spans).
-- Hour (the hour of a row's first span) leads the key, so a time range reads only its own rows.
-- Facets holds the (field, value) pairs the traces list counts (query/traces.py FACETS: model,
-- provider, service, status, session, user, run, as query/filters.py SPAN_FIELDS computes them);
-- SessionLast, per session id, the latest start of a span carrying it (the sessions list).
-- A page of the list shows each trace's root span, models, first input, last output and first
-- error: Root, Models, Input, Output and FirstError hold them (content cut at 16384 characters,
-- as the list reads it from spans), so a page reads its 50 rows here (by Hour and TraceId, in
-- granules of 256 rows) instead of the granules of 8192 spans that hold each trace's spans,
-- about 10 MB of attribute maps each: the price is a second copy of each trace's first input
-- and last output.
-- LLM calls are counted as query/traces.py LLM_SPAN: a model, and an operation that is not an
-- agent, tool, retrieval or other step (processors/semconv.py NON_MODEL_OPERATIONS).

CREATE TABLE IF NOT EXISTS {{database}}.{{table trace_summary}}{{on_cluster}}
(
    Hour DateTime CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(ZSTD(1)),
    Spans SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    Errors SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    LlmCalls SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    InputTokens SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    OutputTokens SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    TotalTokens SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    CostUSD SimpleAggregateFunction(sum, Decimal128(12)) CODEC(ZSTD(1)),
    Facets SimpleAggregateFunction(groupUniqArrayArray, Array(Tuple(String, String))) CODEC(ZSTD(1)),
    SessionLast SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(Int64))) CODEC(ZSTD(1)),
    Root SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9), String, String)) CODEC(ZSTD(1)),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)) CODEC(ZSTD(1)),
    Input SimpleAggregateFunction(min, Tuple(DateTime64(9), String)) CODEC(ZSTD(3)),
    Output SimpleAggregateFunction(max, Tuple(Int64, String)) CODEC(ZSTD(3)),
    FirstError SimpleAggregateFunction(min, Tuple(DateTime64(9), String)) CODEC(ZSTD(1))
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY toDate(Hour)
ORDER BY (Hour, TraceId)
{{ttl Hour}}
SETTINGS index_granularity = 256, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.trace_summary{{on_cluster}}
AS {{database}}.trace_summary_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'trace_summary_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.trace_summary_mv{{on_cluster}}
TO {{database}}.{{table trace_summary}}
AS SELECT
    toStartOfHour(min(Timestamp)) AS Hour,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    countIf(((GenAIRequestModel != '' OR GenAIResponseModel != '') AND GenAIOperation NOT IN ('agent_step', 'chain', 'create_agent', 'create_memory', 'create_memory_store', 'delete_memory', 'delete_memory_store', 'evaluation', 'execute_task', 'execute_tool', 'guardrail', 'invoke_agent', 'invoke_workflow', 'memory', 'parse', 'plan', 'prompt', 'retrieval', 'search_memory', 'update_memory', 'upsert_memory'))) AS LlmCalls,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(TotalTokens) AS TotalTokens,
    sum(TotalCostUSD) AS CostUSD,
    groupUniqArrayArray(arrayFilter(p -> p.2 != '', [
        ('model', replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', '')),
        ('provider', toString(GenAIProvider)),
        ('service', toString(ServiceName)),
        ('status', lower(toString(StatusCode))),
        ('session', SessionId),
        ('user', UserId),
        ('run', RunId)])) AS Facets,
    maxMapIf(([SessionId], [toUnixTimestamp64Nano(Timestamp)]), SessionId != '') AS SessionLast,
    min((ParentSpanId != '', Timestamp, SpanName, toString(ServiceName))) AS Root,
    groupUniqArrayIf(replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', ''), ((GenAIRequestModel != '' OR GenAIResponseModel != '') AND GenAIOperation NOT IN ('agent_step', 'chain', 'create_agent', 'create_memory', 'create_memory_store', 'delete_memory', 'delete_memory_store', 'evaluation', 'execute_task', 'execute_tool', 'guardrail', 'invoke_agent', 'invoke_workflow', 'memory', 'parse', 'plan', 'prompt', 'retrieval', 'search_memory', 'update_memory', 'upsert_memory')) AND replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', '') != '') AS Models,
    min(if(leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.input.messages'], SpanAttributes['gen_ai.prompt'], SpanAttributes['input.value'], SpanAttributes['ai.prompt.messages'], SpanAttributes['ai.prompt'], SpanAttributes['traceloop.entity.input'], SpanAttributes['langfuse.observation.input'], SpanAttributes['mlflow.spanInputs'], '']), 16384) != '', (Timestamp, leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.input.messages'], SpanAttributes['gen_ai.prompt'], SpanAttributes['input.value'], SpanAttributes['ai.prompt.messages'], SpanAttributes['ai.prompt'], SpanAttributes['traceloop.entity.input'], SpanAttributes['langfuse.observation.input'], SpanAttributes['mlflow.spanInputs'], '']), 16384)), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS Input,
    max(if(leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.output.messages'], SpanAttributes['gen_ai.completion'], SpanAttributes['output.value'], SpanAttributes['ai.response.text'], SpanAttributes['traceloop.entity.output'], SpanAttributes['langfuse.observation.output'], SpanAttributes['mlflow.spanOutputs'], '']), 16384) != '', (toUnixTimestamp64Nano(Timestamp) + toInt64(Duration), leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.output.messages'], SpanAttributes['gen_ai.completion'], SpanAttributes['output.value'], SpanAttributes['ai.response.text'], SpanAttributes['traceloop.entity.output'], SpanAttributes['langfuse.observation.output'], SpanAttributes['mlflow.spanOutputs'], '']), 16384)), (toInt64(0), ''))) AS Output,
    min(if(StatusCode = 'Error', (Timestamp, leftUTF8(arrayFirst(x -> x != '', [StatusMessage, Events.Attributes[indexOf(Events.Name, 'exception')]['exception.message'], Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type'], SpanAttributes['error.type'], '']), 16384)), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS FirstError
FROM {{source otel_traces}}
WHERE TraceId != ''
GROUP BY TraceId;

-- The traces stored before this migration, one row per trace. On a cluster
-- the copy goes through the Distributed table, so each row lands on the shard its trace is on.
INSERT INTO {{database}}.trace_summary
SELECT
    toStartOfHour(min(Timestamp)) AS Hour,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    count() AS Spans,
    countIf(StatusCode = 'Error') AS Errors,
    countIf(((GenAIRequestModel != '' OR GenAIResponseModel != '') AND GenAIOperation NOT IN ('agent_step', 'chain', 'create_agent', 'create_memory', 'create_memory_store', 'delete_memory', 'delete_memory_store', 'evaluation', 'execute_task', 'execute_tool', 'guardrail', 'invoke_agent', 'invoke_workflow', 'memory', 'parse', 'plan', 'prompt', 'retrieval', 'search_memory', 'update_memory', 'upsert_memory'))) AS LlmCalls,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(TotalTokens) AS TotalTokens,
    sum(TotalCostUSD) AS CostUSD,
    groupUniqArrayArray(arrayFilter(p -> p.2 != '', [
        ('model', replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', '')),
        ('provider', toString(GenAIProvider)),
        ('service', toString(ServiceName)),
        ('status', lower(toString(StatusCode))),
        ('session', SessionId),
        ('user', UserId),
        ('run', RunId)])) AS Facets,
    maxMapIf(([SessionId], [toUnixTimestamp64Nano(Timestamp)]), SessionId != '') AS SessionLast,
    min((ParentSpanId != '', Timestamp, SpanName, toString(ServiceName))) AS Root,
    groupUniqArrayIf(replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', ''), ((GenAIRequestModel != '' OR GenAIResponseModel != '') AND GenAIOperation NOT IN ('agent_step', 'chain', 'create_agent', 'create_memory', 'create_memory_store', 'delete_memory', 'delete_memory_store', 'evaluation', 'execute_task', 'execute_tool', 'guardrail', 'invoke_agent', 'invoke_workflow', 'memory', 'parse', 'plan', 'prompt', 'retrieval', 'search_memory', 'update_memory', 'upsert_memory')) AND replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), '[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\z', '') != '') AS Models,
    min(if(leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.input.messages'], SpanAttributes['gen_ai.prompt'], SpanAttributes['input.value'], SpanAttributes['ai.prompt.messages'], SpanAttributes['ai.prompt'], SpanAttributes['traceloop.entity.input'], SpanAttributes['langfuse.observation.input'], SpanAttributes['mlflow.spanInputs'], '']), 16384) != '', (Timestamp, leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.input.messages'], SpanAttributes['gen_ai.prompt'], SpanAttributes['input.value'], SpanAttributes['ai.prompt.messages'], SpanAttributes['ai.prompt'], SpanAttributes['traceloop.entity.input'], SpanAttributes['langfuse.observation.input'], SpanAttributes['mlflow.spanInputs'], '']), 16384)), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS Input,
    max(if(leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.output.messages'], SpanAttributes['gen_ai.completion'], SpanAttributes['output.value'], SpanAttributes['ai.response.text'], SpanAttributes['traceloop.entity.output'], SpanAttributes['langfuse.observation.output'], SpanAttributes['mlflow.spanOutputs'], '']), 16384) != '', (toUnixTimestamp64Nano(Timestamp) + toInt64(Duration), leftUTF8(arrayFirst(x -> x != '', [SpanAttributes['gen_ai.output.messages'], SpanAttributes['gen_ai.completion'], SpanAttributes['output.value'], SpanAttributes['ai.response.text'], SpanAttributes['traceloop.entity.output'], SpanAttributes['langfuse.observation.output'], SpanAttributes['mlflow.spanOutputs'], '']), 16384)), (toInt64(0), ''))) AS Output,
    min(if(StatusCode = 'Error', (Timestamp, leftUTF8(arrayFirst(x -> x != '', [StatusMessage, Events.Attributes[indexOf(Events.Name, 'exception')]['exception.message'], Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type'], SpanAttributes['error.type'], '']), 16384)), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS FirstError
FROM {{database}}.otel_traces
WHERE TraceId != ''
GROUP BY TraceId
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0, max_bytes_before_external_group_by = 1000000000;
