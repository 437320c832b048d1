"""`tracehouse sql`: one read-only SQL statement, on the store or through a server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracehouse_collector.cli.common import add_read_args, fail, open_store, server_json
from tracehouse_collector.cli.output import render


def cmd_sql(args: argparse.Namespace) -> int:
    statement = args.statement if args.statement != "-" else sys.stdin.read()
    if args.server:
        try:
            result = server_json(args, "/api/v1/sql", {"sql": statement})
        except RuntimeError as exc:
            return fail(str(exc))
        columns, rows = result["columns"], result["rows"]
    else:
        from tracehouse_collector.query.sql import run_readonly
        from tracehouse_collector.store.errors import StoreError

        try:
            with open_store(args) as store:
                res = run_readonly(store, statement)
        except (StoreError, ValueError) as exc:
            return fail(str(exc))
        columns, rows = res.columns, res.rows
    sys.stdout.write(render(columns, rows, args.format))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("sql", help="run a read-only SQL statement in the tracehouse database")
    p.add_argument("statement", help="the SQL statement, or - to read it from stdin")
    add_read_args(p)
    p.set_defaults(func=cmd_sql)
