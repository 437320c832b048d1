"""`tracehouse query latency|cost|accuracy|errors`: aggregates on the store or through a server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tracehouse_collector.cli.common import add_read_args, fail, open_store, server_call
from tracehouse_collector.cli.output import FORMATS, render
from tracehouse_collector.store.errors import StoreError

HELP = {
    "latency": "latency percentiles, mean, max, error rate and time to first token",
    "cost": "token sums by type, cost in USD (null where nothing was priced), the share of estimated "
    "tokens and the unpriced calls and tokens; --unpriced lists the models that lack a price",
    "accuracy": "evaluation scores: count, mean and label counts per evaluation",
    "errors": "errors by error.type (or status), with their rate",
}


# A filter for each kind's help; each finds rows on the demo's data (tests/e2e/test_demo.py).
# `model` is the model identity, so 'gpt-4o' matches the dated gpt-4o-2025-01-01 responses.
WHERE_EXAMPLE = {
    "latency": "model = 'gpt-4o' AND duration_ms > 2s",
    "cost": "model = 'gpt-4o' AND duration_ms > 2s",
    "accuracy": "model = 'gpt-4o' AND experiment = 'demo-prompt-eval'",
    "errors": "model = 'gpt-4o-mini' AND service = 'demo-support-bot'",
}


def add_parsers(sub: Any) -> None:
    from tracehouse_collector.query.dimensions import DIMENSIONS, KINDS  # not the query engine

    p = sub.add_parser("query", help="aggregates: latency, cost, accuracy, errors")
    kinds = p.add_subparsers(dest="kind", required=True)
    for kind in KINDS:
        q = kinds.add_parser(kind, help=HELP[kind], description=HELP[kind])
        q.add_argument("--by", default="", help=f"dimensions, comma-separated: {', '.join(DIMENSIONS)}")
        q.add_argument(
            "--since", default="24h", help="start: a duration back from now (15m, 24h, 30d) or ISO time"
        )
        q.add_argument(
            "--until", help="end (exclusive): a duration back from now or an ISO time; default now"
        )
        q.add_argument("--service", help="only spans of this service")
        q.add_argument("--where", help=f'filter, e.g. "{WHERE_EXAMPLE[kind]}" (docs/querying.md)')
        q.add_argument("--all-spans", action="store_true", help="every span, not only LLM calls")
        if kind == "cost":
            q.add_argument(
                "--unpriced",
                action="store_true",
                help="list the models with no known price (calls, tokens), to add to a price file",
            )
        q.add_argument(
            "--plan", choices=("auto", "raw", "rollup"), default="auto", help="force a plan (default auto)"
        )
        q.add_argument("-o", "--output", help="write to this file instead of stdout")
        add_read_args(q)
        for action in q._actions:  # add parquet to the shared --format choices
            if action.dest == "format":
                action.choices = (*FORMATS, "parquet")
        q.set_defaults(func=cmd_query)


def _params(args: argparse.Namespace) -> dict:
    return {
        "by": [d for d in args.by.split(",") if d.strip()],
        "since": args.since,
        "until": args.until,
        "service": args.service,
        "where": args.where,
        "all_spans": args.all_spans,
        **({"unpriced": True} if getattr(args, "unpriced", False) else {}),
        "plan": args.plan,
    }


def _run_local(args: argparse.Namespace, params: dict) -> tuple[list[str], list, bytes | None]:
    from tracehouse_collector.query import aggregates

    # Check the parameters before opening (and migrating) a store.
    aggregates.build(args.kind, **params)
    with open_store(args) as store:
        if args.format == "parquet":
            return [], [], aggregates.aggregate_parquet(store, args.kind, **params)
        result = aggregates.aggregate(store, args.kind, **params)
        return result.columns, result.rows, None


def cmd_query(args: argparse.Namespace) -> int:
    params = _params(args)
    if args.format == "parquet" and not args.output and sys.stdout.isatty():
        return fail("--format parquet writes a binary file: give -o FILE (or redirect stdout)")
    try:
        if args.server:
            path = f"/api/v1/query/{args.kind}"
            if args.format == "parquet":
                columns, rows, blob = (
                    [],
                    [],
                    server_call(args, path, {**params, "format": "parquet"}),
                )
            else:
                answer = json.loads(server_call(args, path, params))
                columns, rows, blob = answer["columns"], answer["rows"], None
        else:
            columns, rows, blob = _run_local(args, params)
    except (RuntimeError, ValueError, StoreError) as exc:  # ValueError: QueryError, FilterError
        return fail(str(exc))
    data = blob if blob is not None else render(columns, rows, args.format).encode()
    if args.output:
        try:
            Path(args.output).write_bytes(data)
        except OSError as exc:
            return fail(f"cannot write {args.output}: {exc.strerror}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
