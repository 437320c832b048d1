-- trace_span_docs: every span once more, as one JSON document, ordered by trace, for the lookup
-- of one trace by id
-- otel_traces is ordered the exporter's way (service, span name, time), so one trace's spans lie
-- in several granules of up to 8192 spans, and reading them opens some thirty column files
-- (attribute maps, events, links, the typed LLM columns), each decompressing a block of its
-- own: about 20 ms of a 1M-span store's lookup went there, and more at 10M. Here each span is
-- a single JSON text (the fields query/traces.py get_trace shows, under the names its span read
-- gives them) beside its trace id, in trace order, granules of 256 rows and compressed blocks of
-- 128 KiB: a lookup reads one column, and only the blocks that hold its trace (about 3 ms at 1M
-- spans, docs/benchmarks.md). The price is a second copy of the spans (as much disk as
-- otel_traces or more: JSON text compresses less well than its columns) and some CPU per
-- insert. ZSTD(3) and 128 KiB blocks rather than ZSTD(1) and 64 KiB: a third less disk where
-- prompts repeat (bench/peers: 387 against 580 bytes a span), for a fraction of a millisecond
-- more per lookup.
-- Partitioned by month, so a lookup opens a part or a few per month of retention rather than
-- one per day. Retention therefore removes rows (not whole parts, as on the day-partitioned
-- tables: a month's part would outlive its spans by up to a month) in TTL merges, at most one a
-- day per part (merge_with_ttl_timeout), so a document outlives its span by at most about a day,
-- as a day partition of otel_traces does. A lookup that finds no document (spans written past
-- this view, a document expired before its span) falls back to reading otel_traces.
-- 64-bit numbers may come as JSON numbers or strings (output_format_json_quote_64bit_integers),
-- the cost as a decimal string; the reader accepts both.

CREATE TABLE IF NOT EXISTS {{database}}.{{table trace_span_docs}}{{on_cluster}}
(
    TraceId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Span String CODEC(ZSTD(3))
)
ENGINE = {{engine MergeTree}}
PARTITION BY toYYYYMM(Timestamp)
PRIMARY KEY TraceId
ORDER BY (TraceId, Timestamp, SpanId)
{{ttl Timestamp}}
SETTINGS index_granularity = 256, min_compress_block_size = 131072, max_compress_block_size = 131072,
    merge_with_ttl_timeout = 86400, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.trace_span_docs{{on_cluster}}
AS {{database}}.trace_span_docs_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'trace_span_docs_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.trace_span_docs_mv{{on_cluster}}
TO {{database}}.{{table trace_span_docs}}
AS SELECT
    TraceId,
    Timestamp,
    SpanId,
    formatRowNoNewline('JSONEachRow',
        SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
        toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration,
        StatusCode, StatusMessage, ScopeName,
        SpanAttributes, ResourceAttributes,
        arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns,
        Events.Name AS `Events.Name`, Events.Attributes AS `Events.Attributes`,
        Links.TraceId AS `Links.TraceId`, Links.SpanId AS `Links.SpanId`,
        GenAIOperation, GenAIProvider, GenAIRequestModel, GenAIResponseModel,
        InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens, TotalTokens,
        TokensEstimated, toString(TotalCostUSD) AS TotalCostUSD, SessionId, UserId, RunId) AS Span
FROM {{source otel_traces}}
WHERE TraceId != '';

-- The spans stored before this migration. On a cluster the copy goes through the Distributed
-- table, so each row lands on the shard its trace's spans are on.
INSERT INTO {{database}}.trace_span_docs (TraceId, Timestamp, SpanId, Span)
SELECT
    TraceId,
    Timestamp,
    SpanId,
    formatRowNoNewline('JSONEachRow',
        SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
        toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration,
        StatusCode, StatusMessage, ScopeName,
        SpanAttributes, ResourceAttributes,
        arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns,
        Events.Name AS `Events.Name`, Events.Attributes AS `Events.Attributes`,
        Links.TraceId AS `Links.TraceId`, Links.SpanId AS `Links.SpanId`,
        GenAIOperation, GenAIProvider, GenAIRequestModel, GenAIResponseModel,
        InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens, TotalTokens,
        TokensEstimated, toString(TotalCostUSD) AS TotalCostUSD, SessionId, UserId, RunId) AS Span
FROM {{database}}.otel_traces
WHERE TraceId != ''
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;
