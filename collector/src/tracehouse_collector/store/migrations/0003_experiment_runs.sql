-- Experiment runs: runs, params, step metrics (+ per-key summary), artifacts, models

CREATE TABLE IF NOT EXISTS {{database}}.{{table runs}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Experiment LowCardinality(String) CODEC(ZSTD(1)),
    Name String CODEC(ZSTD(1)),
    ParentId String CODEC(ZSTD(1)),
    Status LowCardinality(String) CODEC(ZSTD(1)),
    StartTime DateTime64(9) CODEC(ZSTD(1)),
    EndTime Nullable(DateTime64(9)) CODEC(ZSTD(1)),
    Tags Map(String, String) CODEC(ZSTD(1)),
    Metadata Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Packages Map(String, String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (Experiment, RunId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.runs{{on_cluster}}
AS {{database}}.runs_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'runs_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE TABLE IF NOT EXISTS {{database}}.{{table run_params}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Key String CODEC(ZSTD(1)),
    Value String CODEC(ZSTD(1)),
    Type LowCardinality(String) CODEC(ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (RunId, Key)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_params{{on_cluster}}
AS {{database}}.run_params_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_params_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE TABLE IF NOT EXISTS {{database}}.{{table run_metrics}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Key LowCardinality(String) CODEC(ZSTD(1)),
    Step Int64 CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(Gorilla, ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine MergeTree}}
PARTITION BY tuple()
ORDER BY (RunId, Key, Step, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_metrics{{on_cluster}}
AS {{database}}.run_metrics_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_metrics_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE TABLE IF NOT EXISTS {{database}}.{{table run_metric_summary}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Key LowCardinality(String) CODEC(ZSTD(1)),
    Last AggregateFunction(argMax, Float64, Tuple(Int64, DateTime64(9))),
    LastStep SimpleAggregateFunction(max, Int64) CODEC(ZSTD(1)),
    Min SimpleAggregateFunction(min, Float64) CODEC(ZSTD(1)),
    Max SimpleAggregateFunction(max, Float64) CODEC(ZSTD(1)),
    Count SimpleAggregateFunction(sum, UInt64) CODEC(ZSTD(1))
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY tuple()
ORDER BY (RunId, Key)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_metric_summary{{on_cluster}}
AS {{database}}.run_metric_summary_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_metric_summary_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE TABLE IF NOT EXISTS {{database}}.{{table run_artifacts}}{{on_cluster}}
(
    RunId String CODEC(ZSTD(1)),
    Name String CODEC(ZSTD(1)),
    Path String CODEC(ZSTD(1)),
    Digest String CODEC(ZSTD(1)),
    Size UInt64 CODEC(ZSTD(1)),
    Kind LowCardinality(String) CODEC(ZSTD(1)),
    Metadata String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (RunId, Name)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.run_artifacts{{on_cluster}}
AS {{database}}.run_artifacts_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'run_artifacts_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE TABLE IF NOT EXISTS {{database}}.{{table models}}{{on_cluster}}
(
    Name String CODEC(ZSTD(1)),
    Digest String CODEC(ZSTD(1)),
    Size UInt64 CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    Experiment LowCardinality(String) CODEC(ZSTD(1)),
    Metadata String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine ReplacingMergeTree(Version)}}
PARTITION BY tuple()
ORDER BY (Name, Digest, RunId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only: the Distributed table that takes the public name
CREATE TABLE IF NOT EXISTS {{database}}.models{{on_cluster}}
AS {{database}}.models_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'models_local', if(empty(RunId), rand(), cityHash64(RunId)));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.run_metric_summary_mv{{on_cluster}}
TO {{database}}.{{table run_metric_summary}}
AS SELECT
    RunId, Key, argMaxState(Value, (Step, Timestamp)) AS Last, max(Step) AS LastStep,
    min(Value) AS Min, max(Value) AS Max, count() AS Count
FROM {{source run_metrics}}
GROUP BY RunId, Key;
