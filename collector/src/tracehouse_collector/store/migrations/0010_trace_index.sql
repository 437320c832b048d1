-- trace_index: where each trace lies in time, by trace id, in one partition per month
-- Finding a trace by id needs its time range first (the span read is then limited to the day
-- partitions that hold it, and within them to few granules). The exporter's
-- otel_traces_trace_id_ts answers that, but it is partitioned by day: a lookup opens every day's
-- part of the retention period (31 for 30 days) and reads a bloom filter and a granule of 8192
-- rows in each. trace_index holds the same rows (Start, End: the first and last span start, in
-- whole seconds, per insert block) partitioned by month and in granules of 1024 rows, so a lookup
-- reads one or two parts and one small granule in each (bench/query measures both).
-- otel_traces_trace_id_ts stays as it is: the exporter and Grafana's trace views read it.
-- Rows expire with their month's partition (ttl_only_drop_parts): an expired trace's row may
-- outlive its spans by up to a month, and then finds no spans, as for an unknown id.

CREATE TABLE IF NOT EXISTS {{database}}.{{table trace_index}}{{on_cluster}}
(
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(ZSTD(1)),
    End DateTime CODEC(ZSTD(1))
)
ENGINE = {{engine MergeTree}}
PARTITION BY toYYYYMM(Start)
ORDER BY (TraceId, Start)
{{ttl Start}}
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.trace_index{{on_cluster}}
AS {{database}}.trace_index_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'trace_index_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.trace_index_mv{{on_cluster}}
TO {{database}}.{{table trace_index}}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM {{source otel_traces}}
WHERE TraceId != ''
GROUP BY TraceId;

-- The traces stored before this migration, copied from the exporter's table (row for row: no
-- grouping, so a large store needs no memory for it). On a cluster the copy goes through the
-- Distributed table, so each row lands on the shard its trace's spans are on.
INSERT INTO {{database}}.trace_index (TraceId, Start, End)
SELECT TraceId, Start, End
FROM {{database}}.otel_traces_trace_id_ts
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;
