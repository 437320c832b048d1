-- Evaluation examples of runs (with the traces that produced them) and annotations on spans, traces and examples

-- One row per (run, dataset, example); a re-recorded example replaces the earlier one (Version).
-- Inputs, Outputs, References and Metadata hold JSON text; Scores the example's numeric scores.
CREATE TABLE IF NOT EXISTS {{database}}.{{table run_evals}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Dataset String CODEC(ZSTD(1)),
    ExampleId String CODEC(ZSTD(1)),
    Inputs String CODEC(ZSTD(3)),
    Outputs String CODEC(ZSTD(3)),
    References String CODEC(ZSTD(3)),
    Scores Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    Metadata String CODEC(ZSTD(1)),
    CreatedTime DateTime64(9) CODEC(Delta, ZSTD(1)),
    UpdatedTime DateTime64(9) CODEC(Delta, ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (RunId, Dataset, ExampleId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_evals{{on_cluster}}
AS {{database}}.run_evals_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_evals_local', if(empty(RunId), rand(), cityHash64(RunId)));

-- The traces made while an example was produced (LUML's eval_traces_bridge): one row per link,
-- sharded like the spans they name.
CREATE TABLE IF NOT EXISTS {{database}}.{{table run_eval_traces}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Dataset String CODEC(ZSTD(1)),
    ExampleId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    LinkId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (RunId, Dataset, ExampleId, TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_eval_traces{{on_cluster}}
AS {{database}}.run_eval_traces_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_eval_traces_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

-- Feedback or expectations on a span, a trace or an eval example, by a user, with a rationale.
-- Target 'span' fills TraceId and SpanId, 'trace' TraceId, 'eval' RunId, Dataset and ExampleId.
-- Value is the value as text; NumberValue the same as a number for kinds number and bool.
CREATE TABLE IF NOT EXISTS {{database}}.{{table annotations}}{{on_cluster}}
(
    AnnotationId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Target LowCardinality(String) CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    Dataset String CODEC(ZSTD(1)),
    ExampleId String CODEC(ZSTD(1)),
    Name LowCardinality(String) CODEC(ZSTD(1)),
    Kind LowCardinality(String) CODEC(ZSTD(1)),
    ValueType LowCardinality(String) CODEC(ZSTD(1)),
    Value String CODEC(ZSTD(1)),
    NumberValue Nullable(Float64) CODEC(ZSTD(1)),
    User String CODEC(ZSTD(1)),
    Rationale String CODEC(ZSTD(1)),
    Source LowCardinality(String) CODEC(ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (Target, TraceId, SpanId, RunId, Dataset, ExampleId, AnnotationId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.annotations{{on_cluster}}
AS {{database}}.annotations_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'annotations_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

-- Feedback annotations are scores too: the aggregates read them from otel_scores (Source 'annotation').
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.otel_scores_from_annotations_mv{{on_cluster}}
TO {{database}}.{{table otel_scores}}
AS SELECT
    Timestamp, TraceId, SpanId, RunId, Name,
    NumberValue AS Value,
    if(ValueType = 'text', Value, '') AS Label,
    Rationale AS Explanation,
    '' AS ResponseId, '' AS ServiceName, 'annotation' AS Source,
    map('tracehouse.annotation.id', AnnotationId, 'tracehouse.annotation.user', User,
        'tracehouse.annotation.target', Target, 'tracehouse.eval.dataset', Dataset,
        'tracehouse.eval.example_id', ExampleId) AS Attributes
FROM {{source annotations}}
WHERE Kind = 'feedback';
