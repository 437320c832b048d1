-- trace_summary_mv: the same rows for less CPU at insert (the first input and last output found by key index)
-- Migration 11's view found each span's input (and output) as the first non-empty of eight
-- (seven) attributes, with eight map lookups that each scan the map's keys and copy the value
-- (prompts of kilobytes), an array of them all copied once more, and leftUTF8 walking every
-- text for its 16384-character cut: about three quarters of the CPU of the view's query
-- (docs/benchmarks.md, "trace_summary_mv's insert cost"). Here indexOf finds each key's
-- position in the keys (no value copied), multiIf takes the first position whose value is
-- non-empty (and looks no further), the value at it is read once more, and the cut runs only
-- on texts over 16384 bytes (a text of at most that many bytes has at most that many
-- characters, so leftUTF8 would return it whole). indexOf gives a key's first position, as a map lookup does, and position 0 (no such
-- key) reads '': every row of trace_summary is what migration 11's view writes.
-- MODIFY QUERY swaps the query in place, so no insert meanwhile finds the store without the view
-- (as a DROP and CREATE would let it).

ALTER TABLE {{database}}.trace_summary_mv{{on_cluster}}
MODIFY QUERY
WITH
    indexOf(SpanAttributes.keys, 'gen_ai.input.messages') AS in_1,
    indexOf(SpanAttributes.keys, 'gen_ai.prompt') AS in_2,
    indexOf(SpanAttributes.keys, 'input.value') AS in_3,
    indexOf(SpanAttributes.keys, 'ai.prompt.messages') AS in_4,
    indexOf(SpanAttributes.keys, 'ai.prompt') AS in_5,
    indexOf(SpanAttributes.keys, 'traceloop.entity.input') AS in_6,
    indexOf(SpanAttributes.keys, 'langfuse.observation.input') AS in_7,
    indexOf(SpanAttributes.keys, 'mlflow.spanInputs') AS in_8,
    SpanAttributes.values[multiIf(SpanAttributes.values[in_1] != '', in_1, SpanAttributes.values[in_2] != '', in_2, SpanAttributes.values[in_3] != '', in_3, SpanAttributes.values[in_4] != '', in_4, SpanAttributes.values[in_5] != '', in_5, SpanAttributes.values[in_6] != '', in_6, SpanAttributes.values[in_7] != '', in_7, SpanAttributes.values[in_8] != '', in_8, 0)] AS input_first,
    if(length(input_first) > 16384, leftUTF8(input_first, 16384), input_first) AS input_text,
    indexOf(SpanAttributes.keys, 'gen_ai.output.messages') AS out_1,
    indexOf(SpanAttributes.keys, 'gen_ai.completion') AS out_2,
    indexOf(SpanAttributes.keys, 'output.value') AS out_3,
    indexOf(SpanAttributes.keys, 'ai.response.text') AS out_4,
    indexOf(SpanAttributes.keys, 'traceloop.entity.output') AS out_5,
    indexOf(SpanAttributes.keys, 'langfuse.observation.output') AS out_6,
    indexOf(SpanAttributes.keys, 'mlflow.spanOutputs') AS out_7,
    SpanAttributes.values[multiIf(SpanAttributes.values[out_1] != '', out_1, SpanAttributes.values[out_2] != '', out_2, SpanAttributes.values[out_3] != '', out_3, SpanAttributes.values[out_4] != '', out_4, SpanAttributes.values[out_5] != '', out_5, SpanAttributes.values[out_6] != '', out_6, SpanAttributes.values[out_7] != '', out_7, 0)] AS output_first,
    if(length(output_first) > 16384, leftUTF8(output_first, 16384), output_first) AS output_text
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
    min(if(input_text != '', (Timestamp, input_text), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS Input,
    max(if(output_text != '', (toUnixTimestamp64Nano(Timestamp) + toInt64(Duration), output_text), (toInt64(0), ''))) AS Output,
    min(if(StatusCode = 'Error', (Timestamp, leftUTF8(arrayFirst(x -> x != '', [StatusMessage, Events.Attributes[indexOf(Events.Name, 'exception')]['exception.message'], Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type'], SpanAttributes['error.type'], '']), 16384)), (toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), ''))) AS FirstError
FROM {{source otel_traces}}
WHERE TraceId != ''
GROUP BY TraceId;
