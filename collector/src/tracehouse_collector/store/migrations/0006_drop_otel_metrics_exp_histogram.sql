-- Drop otel_metrics_exp_histogram, whose rows migration 5 moved to otel_metrics_exponential_histogram
-- A migration of its own, so that migration 5 can always be run again after an interruption.

DROP TABLE IF EXISTS {{database}}.{{table otel_metrics_exp_histogram}}{{on_cluster}} SYNC;

-- cluster only
DROP TABLE IF EXISTS {{database}}.otel_metrics_exp_histogram{{on_cluster}} SYNC;
