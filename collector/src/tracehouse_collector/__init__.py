"""Tracehouse collector: OTLP receivers -> processors -> ClickHouse store -> queries."""

__version__ = "0.1.0"
