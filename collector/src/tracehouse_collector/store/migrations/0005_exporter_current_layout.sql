-- The exporter's current layout: otel_logs and the five metric tables, otel_metrics_exponential_histogram by its name
-- Follows the OpenTelemetry Collector ClickHouse exporter's templates (internal/sqltemplates/) of its
-- current releases (otel_logs as changed in v0.151.0):
-- - otel_logs: no TimestampTime; PARTITION BY toDate(Timestamp); ORDER BY
--   (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp), no separate PRIMARY KEY; the body index
--   on lower(Body) (idx_lower_body); the exporter's __otel_materialized_* resource columns.
-- - metric tables: MetricName LowCardinality(String); StartTimeUnix, TimeUnix and the exemplars'
--   TimeUnix as DateTime (seconds); idx_time_minmax; ORDER BY (ServiceName, MetricName,
--   toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix).
-- - the exponential histogram table takes the exporter's name, otel_metrics_exponential_histogram.
-- The exporter picks `text` indexes on ClickHouse 26.2 and later; these are its bloom-filter variant,
-- which every supported server has (same index names, same queries).
--
-- A sorting key cannot be altered, so each table is built anew under a `_v5` staging name, filled
-- from the old one and swapped in with EXCHANGE TABLES (atomic); the staging table, holding the old
-- rows, is dropped only after (otel_metrics_exp_histogram, in migration 6). Run again after an
-- interruption, it starts from a fresh staging table, so no row is lost or doubled. Migrations run
-- before a collector accepts data; on a cluster `tracehouse schema --cluster` runs them before the
-- collectors start, and the copies go through the Distributed tables (insert_distributed_sync), so
-- each row lands on the shard its key picks before the swap.
-- Materialized views that read otel_logs follow the name, so they keep firing on the new table.

-- otel_logs: built anew under a staging name, filled from otel_logs, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_logs_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_logs_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_logs_v5}}{{on_cluster}}
(
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    `__otel_materialized_k8s.cluster.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.cluster.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.container.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.container.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.deployment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.deployment.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.namespace.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.namespace.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.node.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.node.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.uid` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.uid'] CODEC(ZSTD(1)),
    `__otel_materialized_deployment.environment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['deployment.environment.name'] CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)
{{ttl Timestamp}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_logs_v5{{on_cluster}}
AS {{database}}.otel_logs_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_logs_v5_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

INSERT INTO {{database}}.otel_logs_v5 (Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName)
SELECT Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName
FROM {{database}}.otel_logs
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

EXCHANGE TABLES {{database}}.{{table otel_logs}} AND {{database}}.{{table otel_logs_v5}}{{on_cluster}};

-- cluster only: the Distributed table takes the new columns
CREATE OR REPLACE TABLE {{database}}.otel_logs{{on_cluster}}
AS {{database}}.otel_logs_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_logs_local', if(empty(TraceId), rand(), cityHash64(TraceId)));

DROP TABLE {{database}}.{{table otel_logs_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_logs_v5{{on_cluster}} SYNC;

-- otel_metrics_gauge: built anew under a staging name, filled from otel_metrics_gauge, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_gauge_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_gauge_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_metrics_gauge_v5}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime, Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_metrics_gauge_v5{{on_cluster}}
AS {{database}}.otel_metrics_gauge_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_gauge_v5_local', rand());

INSERT INTO {{database}}.otel_metrics_gauge_v5 (ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Value, Flags, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId)
SELECT ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Value, Flags, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId
FROM {{database}}.otel_metrics_gauge
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

EXCHANGE TABLES {{database}}.{{table otel_metrics_gauge}} AND {{database}}.{{table otel_metrics_gauge_v5}}{{on_cluster}};

-- cluster only: the Distributed table takes the new columns
CREATE OR REPLACE TABLE {{database}}.otel_metrics_gauge{{on_cluster}}
AS {{database}}.otel_metrics_gauge_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_gauge_local', rand());

DROP TABLE {{database}}.{{table otel_metrics_gauge_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_metrics_gauge_v5{{on_cluster}} SYNC;

-- otel_metrics_sum: built anew under a staging name, filled from otel_metrics_sum, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_sum_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_sum_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_metrics_sum_v5}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime, Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_metrics_sum_v5{{on_cluster}}
AS {{database}}.otel_metrics_sum_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_sum_v5_local', rand());

INSERT INTO {{database}}.otel_metrics_sum_v5 (ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Value, Flags, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, AggregationTemporality, IsMonotonic)
SELECT ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Value, Flags, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, AggregationTemporality, IsMonotonic
FROM {{database}}.otel_metrics_sum
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

EXCHANGE TABLES {{database}}.{{table otel_metrics_sum}} AND {{database}}.{{table otel_metrics_sum_v5}}{{on_cluster}};

-- cluster only: the Distributed table takes the new columns
CREATE OR REPLACE TABLE {{database}}.otel_metrics_sum{{on_cluster}}
AS {{database}}.otel_metrics_sum_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_sum_local', rand());

DROP TABLE {{database}}.{{table otel_metrics_sum_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_metrics_sum_v5{{on_cluster}} SYNC;

-- otel_metrics_histogram: built anew under a staging name, filled from otel_metrics_histogram, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_histogram_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_histogram_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_metrics_histogram_v5}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),
    Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime, Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_metrics_histogram_v5{{on_cluster}}
AS {{database}}.otel_metrics_histogram_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_histogram_v5_local', rand());

INSERT INTO {{database}}.otel_metrics_histogram_v5 (ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, BucketCounts, ExplicitBounds, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, Flags, Min, Max, AggregationTemporality)
SELECT ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, BucketCounts, ExplicitBounds, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, Flags, Min, Max, AggregationTemporality
FROM {{database}}.otel_metrics_histogram
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

EXCHANGE TABLES {{database}}.{{table otel_metrics_histogram}} AND {{database}}.{{table otel_metrics_histogram_v5}}{{on_cluster}};

-- cluster only: the Distributed table takes the new columns
CREATE OR REPLACE TABLE {{database}}.otel_metrics_histogram{{on_cluster}}
AS {{database}}.otel_metrics_histogram_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_histogram_local', rand());

DROP TABLE {{database}}.{{table otel_metrics_histogram_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_metrics_histogram_v5{{on_cluster}} SYNC;

-- otel_metrics_exponential_histogram: built anew under a staging name, filled from otel_metrics_exp_histogram, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_exponential_histogram_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_exponential_histogram_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_metrics_exponential_histogram_v5}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime, Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_metrics_exponential_histogram_v5{{on_cluster}}
AS {{database}}.otel_metrics_exponential_histogram_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_exponential_histogram_v5_local', rand());

INSERT INTO {{database}}.otel_metrics_exponential_histogram_v5 (ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeOffset, NegativeBucketCounts, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, Flags, Min, Max, AggregationTemporality)
SELECT ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeOffset, NegativeBucketCounts, Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId, Flags, Min, Max, AggregationTemporality
FROM {{database}}.otel_metrics_exp_histogram
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

CREATE TABLE IF NOT EXISTS {{database}}.{{table otel_metrics_exponential_histogram}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    Exemplars Nested (FilteredAttributes Map(LowCardinality(String), String), TimeUnix DateTime, Value Float64, SpanId String, TraceId String) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE IF NOT EXISTS {{database}}.otel_metrics_exponential_histogram{{on_cluster}}
AS {{database}}.otel_metrics_exponential_histogram_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_exponential_histogram_local', rand());

EXCHANGE TABLES {{database}}.{{table otel_metrics_exponential_histogram}} AND {{database}}.{{table otel_metrics_exponential_histogram_v5}}{{on_cluster}};

DROP TABLE {{database}}.{{table otel_metrics_exponential_histogram_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_metrics_exponential_histogram_v5{{on_cluster}} SYNC;

-- otel_metrics_summary: built anew under a staging name, filled from otel_metrics_summary, then swapped in.
DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_summary_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_summary_v5{{on_cluster}} SYNC;

CREATE TABLE {{database}}.{{table otel_metrics_summary_v5}}{{on_cluster}}
(
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested (Quantile Float64, Value Float64) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
)
ENGINE = {{engine MergeTree}}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
{{ttl TimeUnix}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {{dedup_window}};

-- cluster only
CREATE TABLE {{database}}.otel_metrics_summary_v5{{on_cluster}}
AS {{database}}.otel_metrics_summary_v5_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_summary_v5_local', rand());

INSERT INTO {{database}}.otel_metrics_summary_v5 (ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, ValueAtQuantiles.Quantile, ValueAtQuantiles.Value, Flags)
SELECT ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttrCount, ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, Attributes, StartTimeUnix, TimeUnix, Count, Sum, ValueAtQuantiles.Quantile, ValueAtQuantiles.Value, Flags
FROM {{database}}.otel_metrics_summary
SETTINGS insert_distributed_sync = 1, max_partitions_per_insert_block = 0;

EXCHANGE TABLES {{database}}.{{table otel_metrics_summary}} AND {{database}}.{{table otel_metrics_summary_v5}}{{on_cluster}};

-- cluster only: the Distributed table takes the new columns
CREATE OR REPLACE TABLE {{database}}.otel_metrics_summary{{on_cluster}}
AS {{database}}.otel_metrics_summary_local
ENGINE = Distributed({{cluster}}, '{{database}}', 'otel_metrics_summary_local', rand());

DROP TABLE {{database}}.{{table otel_metrics_summary_v5}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE {{database}}.otel_metrics_summary_v5{{on_cluster}} SYNC;
