"""`tracehouse schema`: print or apply the DDL, for one node or a cluster, with optional retention."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracehouse_collector.cli.common import add_store_args, fail, open_store
from tracehouse_collector.store import ddl, schema


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("schema", help="create or upgrade the schema, or print its DDL")
    add_store_args(p)
    p.add_argument("--print", action="store_true", help="print the DDL instead of applying it")
    p.add_argument(
        "--cluster",
        metavar="NAME",
        help="render for a ClickHouse cluster: ON CLUSTER NAME, Replicated engines, Distributed tables",
    )
    p.add_argument(
        "--ttl",
        metavar="AGE",
        help="retention as ClickHouse TTL on each table's time column, e.g. 30d, 12h, 4w; off removes it",
    )
    p.set_defaults(func=run)


def _apply_cluster(store, cluster: str, retention: ddl.Retention | None) -> list[int]:
    """Create or upgrade a cluster's schema; record versions in a table every node shares."""
    # A single-node schema made here earlier (a collector started before this command) would
    # be skipped by IF NOT EXISTS and leave the node out of the cluster schema: refuse instead.
    plain = store.query(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s AND name IN %(names)s "
        "AND engine NOT IN ('Distributed', 'MaterializedView') AND engine NOT LIKE 'Replicated%%'",
        parameters={"db": schema.DATABASE, "names": tuple(sorted(ddl.tables()))},
    )[1]
    if plain:
        found = ", ".join(f"{name} ({engine})" for name, engine in plain)
        raise ddl.DDLError(
            f"this node already has single-node tables: {found}; a cluster schema cannot be laid over "
            "them (move their data into the cluster tables and drop them first)"
        )
    deployment = ddl.Deployment(cluster, retention)
    for stmt in ddl.bookkeeping_statements(deployment):
        store.command(stmt)
    done = {
        int(r[0]) for r in store.query(f"SELECT Version FROM {schema.DATABASE}.schema_migrations FINAL")[1]
    }
    applied = []
    for m in ddl.migrations():
        if m.version in done:
            continue
        for stmt in m.statements(deployment):
            store.command(stmt)
        store.command(
            f"INSERT INTO {schema.DATABASE}.schema_migrations (Version, Description) VALUES ({m.version}, %(d)s)",
            parameters={"d": m.description},
        )
        applied.append(m.version)
    return applied


def _apply_retention(store, retention: ddl.Retention, cluster: str | None) -> int:
    from tracehouse_collector.store.client import StoreError

    changed = 0
    for stmt in ddl.retention_statements(retention, cluster):
        try:
            store.command(stmt)
            changed += 1
        except StoreError as exc:
            # Removing a retention that was never set is already done.
            if retention.forever and "TTL" in str(exc):
                continue
            raise
    return changed


def run(args: argparse.Namespace) -> int:
    try:
        cluster = ddl.check_cluster_name(args.cluster) if args.cluster else None
        retention = ddl.Retention.parse(args.ttl) if args.ttl else None
        if args.print:
            for stmt in ddl.script(cluster, retention):
                print(stmt + ";\n")
            return 0
    except ddl.DDLError as exc:
        return fail(str(exc))

    from tracehouse_collector.store.client import StoreError

    try:
        with open_store(args, migrate=False) as store:
            if cluster and store.dsn.kind != "http":
                return fail(
                    "--cluster needs a ClickHouse server store (--store http(s)://user:pass@host:8123/db)"
                )
            applied = _apply_cluster(store, cluster, retention) if cluster else store.migrate()
            if retention is not None:
                changed = _apply_retention(store, retention, cluster)
                what = "removed" if retention.forever else f"{retention.amount} {retention.unit.lower()}(s)"
                print(f"retention {what} on {changed} tables", file=sys.stderr)
    except (StoreError, ddl.DDLError) as exc:
        return fail(str(exc))
    print(_what_was_done(applied))
    return 0


def _what_was_done(applied: list[int]) -> str:
    """`applied` (the migration versions this run applied) as a sentence: a new store was
    created, an older one migrated, or one at the latest version left as it was."""
    versions = [m.version for m in ddl.migrations()]
    latest = versions[-1]
    if not applied:
        return f"schema up to date: version {latest}, nothing to apply"
    if applied == versions:
        return f"schema created: version {latest} (migrations {versions[0]}-{latest} applied)"
    return f"schema migrated to version {latest} (migrations {', '.join(map(str, applied))} applied)"
