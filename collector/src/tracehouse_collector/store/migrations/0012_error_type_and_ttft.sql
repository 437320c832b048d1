-- otel_traces.ErrorType and TimeToFirstTokenMs: a span's error type and time to first token, computed once at insert
-- The errors aggregate groups spans by their error type: `error.type` when the span carries it,
-- else for a failed span its status message, else '_OTHER'; '' for a span without an error.
-- Read from SpanAttributes, that makes the aggregate decompress every span's attribute map,
-- prompts and replies included (at 10M spans, a day's errors by model read ~1 GB). As a
-- MATERIALIZED column it is computed once from the map the insert already holds and read as a
-- small LowCardinality column. MATERIALIZED: inserts (ours and the exporter's) need not name
-- it, and `SELECT *` leaves it out, so the exporter's column set is unchanged to readers.
-- TimeToFirstTokenMs likewise: the time to first token in ms from
-- `gen_ai.response.time_to_first_chunk` (or Tracehouse's own attribute), NULL without one, which
-- raw latency percentiles (and the raw edges of the rollup plan) read for every call.
-- Spans stored before this migration get both from MATERIALIZE COLUMN mutations, which run in
-- the background (mutations_sync = 0: a large store starts without waiting for them, ~2 s per
-- million spans); until one reaches a part, reads compute the same expression from that part's
-- attributes (the same answer, only slower).

ALTER TABLE {{database}}.{{table otel_traces}}{{on_cluster}} ADD COLUMN IF NOT EXISTS ErrorType LowCardinality(String) MATERIALIZED multiIf(SpanAttributes['error.type'] != '', SpanAttributes['error.type'], StatusCode = 'Error', if(StatusMessage != '', 'status: ' || left(StatusMessage, 80), '_OTHER'), '') CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TimeToFirstTokenMs Nullable(Float64) MATERIALIZED 1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])) CODEC(ZSTD(1));

-- cluster only: the Distributed table mirrors the columns
ALTER TABLE {{database}}.otel_traces{{on_cluster}} ADD COLUMN IF NOT EXISTS ErrorType LowCardinality(String) MATERIALIZED multiIf(SpanAttributes['error.type'] != '', SpanAttributes['error.type'], StatusCode = 'Error', if(StatusMessage != '', 'status: ' || left(StatusMessage, 80), '_OTHER'), '') CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS TimeToFirstTokenMs Nullable(Float64) MATERIALIZED 1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk'])) CODEC(ZSTD(1));

ALTER TABLE {{database}}.{{table otel_traces}}{{on_cluster}} MATERIALIZE COLUMN ErrorType, MATERIALIZE COLUMN TimeToFirstTokenMs
SETTINGS mutations_sync = 0;
