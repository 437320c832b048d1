"""What the command groups share: failing with a message, the store and server arguments, and
opening the store or calling the server those arguments name.

The store and the configuration are imported only when a command opens a store (clickhouse-connect
and chDB are heavy): a command given --server loads neither.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracehouse_collector.cli import server_client
from tracehouse_collector.cli.output import FORMATS

if TYPE_CHECKING:
    from tracehouse_collector.store.client import Store


def fail(message: str, code: int = 1) -> int:
    """Say what went wrong on stderr; the exit status to return."""
    print(f"tracehouse: {message}", file=sys.stderr)
    return code


# -- arguments ---------------------------------------------------------------------------------


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", help="store DSN: chdb:///dir or http(s)://user:pass@host:8123/db (TRACEHOUSE_STORE)"
    )
    p.add_argument("--data-dir", help="state directory (TRACEHOUSE_DATA_DIR, default ~/.tracehouse)")


def add_api_key_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api-key", default=os.environ.get("TRACEHOUSE_API_KEY"), help="API key (TRACEHOUSE_API_KEY)"
    )


def add_target_args(p: argparse.ArgumentParser) -> None:
    """Where a command reads: --store / --data-dir, or --server (settled by settle_read_target)."""
    add_store_args(p)
    p.add_argument(
        "--server",
        help="read through a running server's API instead of opening the store (TRACEHOUSE_SERVER, "
        "unless --store or --data-dir is given)",
    )
    add_api_key_arg(p)
    p.set_defaults(settle=settle_read_target)


def add_read_args(p: argparse.ArgumentParser) -> None:
    add_target_args(p)
    p.add_argument("--format", choices=FORMATS, default="table")


def settle_read_target(args: argparse.Namespace) -> str | None:
    """Choose where a read command reads, flags before variables: --server, or the store
    --store / --data-dir name (both is an error), else TRACEHOUSE_SERVER, else the store
    (TRACEHOUSE_STORE, or the default). Returns the error, if any."""
    local = [flag for flag, value in (("--store", args.store), ("--data-dir", args.data_dir)) if value]
    if args.server and local:
        return (
            f"--server and {' and '.join(local)} both name where to read; give one (--server reads "
            "through a running collector, --store / --data-dir open the store here)"
        )
    if not args.server and not local:
        args.server = os.environ.get("TRACEHOUSE_SERVER") or None
    return None


# -- the store -----------------------------------------------------------------------------------


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory (artifacts live under it): config.resolve_data_dir's choice."""
    from tracehouse_collector.config import resolve_data_dir

    return resolve_data_dir(args.data_dir, args.store)


@contextmanager
def open_store(args: argparse.Namespace, *, migrate: bool = True) -> Iterator[Store]:
    """The store --store / --data-dir name (migrated unless told not to), closed on the way out."""
    from tracehouse_collector.config import default_store
    from tracehouse_collector.store.client import Store

    store = Store(args.store or default_store(data_dir(args)))
    try:
        if migrate:
            store.migrate()
        yield store
    finally:
        store.close()


# -- a running server ------------------------------------------------------------------------------


def server_call(args: argparse.Namespace, path: str, payload: dict | None = None) -> bytes:
    """The body of GET `path` (or of POSTing `payload`) on --server, with --api-key."""
    return server_client.call(args.server, path, args.api_key, payload)


def server_json(args: argparse.Namespace, path: str, payload: dict | None = None) -> Any:
    return server_client.call_json(args.server, path, args.api_key, payload)
