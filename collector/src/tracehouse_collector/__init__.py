"""Tracehouse collector: OTLP receivers -> processors -> ClickHouse store -> queries."""

from importlib.metadata import PackageNotFoundError, version

try:
    # Set at build time from the repository's VERSION file, which both distributions share.
    __version__ = version("tracehouse-collector")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
