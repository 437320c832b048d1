"""Opening the store for `serve`, which must start even while a ClickHouse server is down.

A collector restarted during a store outage still has to accept exports (into its on-disk
queue) and replay what it queued before; so a server store that cannot be reached for a
transient reason (refused, timed out, overloaded) is opened lazily, and the writer connects
and applies the migrations once the server answers. Anything else (bad credentials, a wrong
database, the embedded store being locked) still stops the start with the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tracehouse_collector.store.client import (
    DSN,
    Store,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    is_transient,
)

log = logging.getLogger("tracehouse.store")


def _migrate(store: Store) -> None:
    applied = store.migrate()
    if applied:
        log.info("applied schema migrations %s", applied)


def open_store(dsn: str) -> tuple[Store, Callable[[], None] | None]:
    """Returns the store and, when it could not be reached yet, what makes it ready later."""
    try:
        store = Store(dsn)
    except StoreLockedError:
        raise
    except StoreError as exc:
        cause = exc.__cause__
        if DSN.parse(dsn).kind != "http" or cause is None or not is_transient(cause):
            raise
        log.warning("store unreachable (%s); accepting into the on-disk queue until it answers", exc)
        store = Store(dsn, lazy=True)

        def prepare() -> None:
            try:
                store.connect()
                _migrate(store)
            except StoreError as exc:  # the writer keeps retrying, with the store marked failing
                raise StoreUnavailableError(str(exc)) from exc

        return store, prepare
    _migrate(store)
    return store, None
