"""Tracehouse collector: OTLP receivers -> processors -> ClickHouse store -> queries."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # `__version__` is read from the installed metadata on first use: importlib.metadata costs
    # more than the whole start-up of a CLI command that only calls a server.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        # Set at build time from the repository's VERSION file, which both distributions share.
        found = version("tracehouse-collector")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
