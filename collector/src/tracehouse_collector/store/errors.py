"""The store's errors, apart from the client so that modules which only catch or raise them (the
SQL policy, the CLI's parsers) do not import clickhouse-connect, which takes half a second."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; the message is ClickHouse's own where there is one."""


class StoreUnavailableError(StoreError):
    """The store could not take the request now (down, overloaded, timed out): retry later."""


class StoreLockedError(StoreError):
    """The embedded store directory is owned by another process (usually `tracehouse serve`)."""
