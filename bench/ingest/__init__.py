"""Ingest benchmark: OTLP/gRPC spans/s through `tracehouse serve` until queryable."""
