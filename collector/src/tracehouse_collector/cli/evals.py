"""`tracehouse runs evals RUN`, `tracehouse runs compare --evals A B` and `tracehouse annotate`.

Each works on `--store` directly or through `--server URL` (api/rest_evals.py), like the other
read commands; `annotate` writes, so through a server it needs a key with the `annotate` scope.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

from tracehouse_collector.cli.common import add_read_args, fail, open_store, server_json
from tracehouse_collector.cli.output import render


def _with_source(fn: Callable[[argparse.Namespace, Any], Any]) -> Callable[[argparse.Namespace], int]:
    """Run `fn(args, store)` with the store opened here, or `fn(args, None)` with --server."""

    def wrapped(args: argparse.Namespace) -> int:
        from tracehouse_collector.cli.server_client import ServerError
        from tracehouse_collector.query.runs import RunNotFound
        from tracehouse_collector.store.client import StoreError

        with contextlib.ExitStack() as opened:
            try:
                store = None if args.server else opened.enter_context(open_store(args))
                return int(fn(args, store) or 0)
            except (ServerError, RunNotFound, StoreError, ValueError, OSError) as exc:
                return fail(str(exc).strip('"'))

    return wrapped


def _get(args: argparse.Namespace, path: str, query: dict[str, Any]) -> Any:
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return server_json(args, path + ("?" + urllib.parse.urlencode(query) if query else ""))


def _json_out(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _evals(args: argparse.Namespace, store: Any) -> None:
    from tracehouse_collector.query import evals as q

    if store is None:
        path = f"/api/v1/runs/{urllib.parse.quote(args.run, safe='')}/evals"
        page = _get(args, path, {"dataset": args.dataset, "limit": args.limit, "cursor": args.cursor})
    else:
        page = q.evals_page(store, args.run, args.dataset, args.limit, args.cursor)
    examples = page["examples"]
    if args.format == "json":
        _json_out(examples)
    else:
        sys.stdout.write(render(*q.evals_table(examples), args.format))
    if page["next_cursor"]:
        print(f"more: add --cursor {page['next_cursor']}", file=sys.stderr)


def compare(args: argparse.Namespace, store: Any) -> None:
    """`runs compare --evals`: the runs' examples side by side (the regression view)."""
    from tracehouse_collector.query import evals as q

    options = {"dataset": args.dataset, "change": args.change, "score": args.score}
    if store is None:
        result = _get(args, "/api/v1/evals/compare", {"ids": ",".join(args.runs), **options})
    else:
        result = q.compare_evals(store, args.runs, **options)
    if args.format == "json":
        _json_out(result["examples"])
        return
    sys.stdout.write(render(*q.compare_table(result), args.format))
    for s in result["summary"][1:]:
        counts = ", ".join(f"{n} {c}" for c, n in s["changes"].items())
        print(f"{s['label']} against {result['labels'][0]}: {counts}", file=sys.stderr)


def _parse_value(text: str, value_type: str | None) -> Any:
    """The value as typed on the command line: a number, true/false, or text."""
    if value_type == "text":
        return text
    if value_type == "bool" or (value_type is None and text.lower() in ("true", "false")):
        return text.lower()
    if value_type == "number" or value_type is None:
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            if value_type == "number":
                raise ValueError(f"{text!r} is not a number") from None
    return text


def _annotate(args: argparse.Namespace, store: Any) -> None:
    from tracehouse_collector.query import evals as q

    value = _parse_value(args.value, args.type)
    fields = {
        "name": args.name,
        "value": value,
        "value_type": args.type or ("bool" if value in ("true", "false") else None),
        "kind": args.kind,
        "user": args.user,
        "rationale": args.rationale,
        "trace_id": args.trace,
        "span_id": args.span,
        "run_id": args.run,
        "dataset": args.dataset,
        "example_id": args.example,
        "source": "cli",
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if store is None:
        added = server_json(args, "/api/v1/annotations", fields)
    else:
        added = q.add_annotation(store, fields)
    if args.format == "json":
        _json_out([added])
        return
    columns = ["id", "target", "name", "kind", "value", "user"]
    sys.stdout.write(render(columns, [[added[c] for c in columns]], args.format))


def add_run_parsers(rsub: Any) -> None:
    """`runs evals` (under `tracehouse runs`)."""
    p = rsub.add_parser(
        "evals", help="a run's eval examples: inputs, outputs, references, scores, linked traces"
    )
    p.add_argument("run", help="run id or a unique prefix")
    p.add_argument("--dataset", help="only this dataset's examples")
    p.add_argument("--limit", type=int, default=100, help="examples per page (default 100, at most 1000)")
    p.add_argument("--cursor", help="the page after this cursor (printed as 'more: add --cursor ...')")
    add_read_args(p)
    p.set_defaults(func=_with_source(_evals))


def add_compare_args(p: argparse.ArgumentParser) -> None:
    """The options `runs compare --evals` adds."""
    p.add_argument(
        "--evals",
        action="store_true",
        help="compare the runs' eval examples side by side: scores, deltas against the first run, "
        "and each example's change (worse, better, same, missing)",
    )
    p.add_argument("--dataset", help="with --evals: only this dataset")
    p.add_argument(
        "--change", choices=["worse", "better", "same", "missing"], help="with --evals: only examples with this change"
    )
    p.add_argument("--score", help="with --evals: judge changes by this score alone")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "annotate",
        help="add feedback or an expectation to a span, a trace or an eval example",
        description="Annotate a trace (--trace), one of its spans (--trace --span) or a run's eval "
        "example (--run --dataset --example). Feedback with a number or bool value joins the "
        "accuracy aggregates as a score.",
    )
    p.add_argument("name", help="what is judged, e.g. correctness")
    p.add_argument("value", help="a number, true/false, or text")
    p.add_argument("--type", choices=["number", "bool", "text"], help="the value's type (default: as it reads)")
    p.add_argument("--kind", choices=["feedback", "expectation"], default="feedback")
    p.add_argument("--trace", help="trace id (32 hex digits)")
    p.add_argument("--span", help="span id (16 hex digits), with --trace")
    p.add_argument("--run", help="run id or a unique prefix, with --dataset and --example")
    p.add_argument("--dataset")
    p.add_argument("--example", help="eval example id")
    p.add_argument("--user", help="who annotates (default: empty)")
    p.add_argument("--rationale", help="why")
    add_read_args(p)
    p.set_defaults(func=_with_source(_annotate))
