"""`tracehouse traces list|show` and `tracehouse sessions list|show`.

Each reads the store directly (`--store`) or a running server's REST API (`--server URL`);
both paths return the same data, so the rendering below does not care which one answered. To
start quickly, the `--server` path loads neither the store nor the query modules that read it
(query/trace_list.py, query/traces.py, query/sessions.py): only the light query/trace_shape.py,
and orjson only where a span's content needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from tracehouse_collector.cli.common import add_read_args, fail, open_store, server_json
from tracehouse_collector.cli.output import render
from tracehouse_collector.query.trace_shape import TURN_COLUMNS, check_trace_id, preview, walk
from tracehouse_collector.query.values import json_ready, jsonable
from tracehouse_collector.store.errors import StoreError


def _fetch(args: argparse.Namespace, path: str, payload: dict[str, Any], local: str, *local_args: str) -> Any:
    """The answer of the REST `path` on --server (as JSON), or on the store of the function
    `local` ("module.function" of the query package)(store, *local_args, **payload)."""
    if args.server:
        return server_json(args, path, {k: v for k, v in payload.items() if v is not None})
    from importlib import import_module

    module, _, function = local.partition(".")
    with open_store(args) as store:
        answer = getattr(import_module(f"tracehouse_collector.query.{module}"), function)(store, *local_args, **payload)
        return jsonable(json_ready(_plain(answer)))


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _plain(value: Any) -> Any:
    from tracehouse_collector.query.paging import Page

    if isinstance(value, Page):
        return {"columns": value.columns, "rows": value.rows, "next_cursor": value.next_cursor}
    return value


def _run(args: argparse.Namespace, body: Callable[[], int]) -> int:
    errors: tuple[type[Exception], ...] = (RuntimeError, ValueError, StoreError)
    if not args.server:  # the store's own answers
        from tracehouse_collector.query.traces import NotFound

        errors += (NotFound,)
    try:
        return body()
    except errors as exc:
        return fail(str(exc))


def _listing(args: argparse.Namespace, *filters: str) -> dict[str, Any]:
    """A listing's parameters: the time window, `filters`, and the page (limit, cursor)."""
    return {key: getattr(args, key) for key in ("since", "until", *filters, "limit", "cursor")}


def _print_page(answer: dict[str, Any], fmt: str) -> None:
    sys.stdout.write(render(answer["columns"], answer["rows"], fmt))
    if answer.get("next_cursor"):
        print(f"more: add --cursor {answer['next_cursor']}", file=sys.stderr)


def _print_json(answer: dict[str, Any]) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")


# -- traces ----------------------------------------------------------------------------------


def cmd_traces_list(args: argparse.Namespace) -> int:
    payload = _listing(args, "service", "where", "search", "sort")

    def body() -> int:
        answer = _fetch(args, "/api/v1/traces", payload, "trace_list.list_traces")
        if args.format == "table":
            answer = _table_view(answer)
        _print_page(answer, args.format)
        return 0

    return _run(args, body)


# Left out of the list's table view (json and csv keep them): the per-direction token counts.
_TABLE_HIDDEN = {"input_tokens", "output_tokens"}


def _table_view(answer: dict[str, Any]) -> dict[str, Any]:
    """The list for a terminal: one line per trace, short previews, no columns that are
    empty on every row."""
    columns = answer["columns"]
    keep = [
        i
        for i, c in enumerate(columns)
        if c not in _TABLE_HIDDEN
        and (
            not answer["rows"]
            or c in ("trace_id", "start_time")
            or any(row[i] not in ("", [], {}, None) for row in answer["rows"])
        )
    ]
    rows = []
    for row in answer["rows"]:
        cells = []
        for i in keep:
            v = row[i]
            if columns[i] in ("input", "output"):
                v = preview(v or "", 60)
            elif columns[i] == "models":
                v = ", ".join(v)
            cells.append(v)
        rows.append(cells)
    return {**answer, "columns": [columns[i] for i in keep], "rows": rows}


def _tree_text(trace: dict[str, Any]) -> str:
    """The trace as an indented tree: offset, duration, name, then the facts that matter."""
    lines = [
        f"trace {trace['trace_id']}  {trace['start_time']}  {trace['duration_ms']:.1f} ms  "
        f"{trace['span_count']} spans  status {trace['status']}",
    ]
    facts = [
        f"llm calls {trace['llm_calls']}",
        f"tokens {trace['total_tokens']}",
        f"cost ${trace['cost_usd']}",
    ]
    for key in ("session_id", "user_id", "run_id"):
        if trace.get(key):
            facts.append(f"{key.removesuffix('_id')} {trace[key]}")
    if trace.get("scores"):
        facts.append("scores " + ", ".join(f"{k}={v}" for k, v in trace["scores"].items()))
    lines.append("  " + "  ".join(facts))
    lines += [f"  {_annotation_text(a)}" for a in trace.get("annotations") or []]
    lines.append(f"  {'offset ms':>10} {'dur ms':>10}  span")
    for depth, s in walk(trace["spans"]):
        pad = "  " * depth
        mark = " ✗" if s["status"] == "Error" else ""
        orphan = " (orphan: parent not received)" if s["orphan"] else ""
        lines.append(
            f"  {s['offset_ms']:>10.1f} {s['duration_ms']:>10.1f}  {pad}{s['name']} [{s['kind']}]{mark}{orphan}"
        )
        detail = pad + " " * 26
        if s["model"]:
            usage = f"{s['input_tokens']} in / {s['output_tokens']} out"
            if s["tokens_estimated"]:
                usage += (
                    " (estimated from truncated content: at least)"
                    if s["content_truncated"]
                    else " (estimated)"
                )
            finish = f"  finish {','.join(s['finish_reasons'])}" if s["finish_reasons"] else ""
            lines.append(f"{detail}model {s['model']}  tokens {usage}  cost ${s['cost_usd']}{finish}")
        for label, key in (("input", "input"), ("output", "output")):
            if s[key] is not None:
                from tracehouse_collector.query.genai_content import content_text  # orjson: only here

                raw = s[key] if isinstance(s[key], str) else _dumps(s[key])
                lines.append(
                    f"{detail}{label}: {preview(content_text(raw, 'user' if key == 'input' else None), 100)}"
                )
        for call in s["tool_calls"]:
            args = call.get("arguments")
            args = args if isinstance(args, str) else _dumps(args)
            kind = "server tool call" if call.get("type") == "server_tool_call" else "tool call"
            lines.append(f"{detail}{kind}: {call.get('name')}({preview(args, 80)})")
        if s["tool"]:
            result = s["tool"].get("result")
            shown = result if isinstance(result, str) else _dumps(result)
            lines.append(f"{detail}tool {s['tool'].get('name')} -> {preview(shown or '', 80)}")
        if s["error"]:
            err = s["error"]
            lines.append(
                f"{detail}error: {': '.join(x for x in (err.get('type'), err.get('message')) if x) or 'status Error'}"
            )
        lines += [f"{detail}{_annotation_text(a)}" for a in s.get("annotations") or []]
    return "\n".join(lines) + "\n"


def _annotation_text(a: dict[str, Any]) -> str:
    """One annotation on a line: kind, name = value, who and when, why."""
    value = a["value"] if isinstance(a["value"], str) else _dumps(a["value"])
    by = f" by {a['user']}" if a.get("user") else ""
    why = f": {preview(a['rationale'], 100)}" if a.get("rationale") else ""
    return f"annotation {a['kind']} {a['name']}={value}{by} at {a['time']}{why}"


def _flat_spans(trace: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "depth", "span_id", "parent_span_id", "name", "kind", "service", "offset_ms", "duration_ms",
        "status", "model", "input_tokens", "output_tokens", "cost_usd", "orphan",
    ]  # fmt: skip
    rows = []
    for depth, s in walk(trace["spans"]):
        notes = "; ".join(_annotation_text(a).removeprefix("annotation ") for a in s.get("annotations") or [])
        rows.append([depth, *(s[c] for c in columns[1:]), notes])
    return [*columns, "annotations"], rows


def cmd_traces_show(args: argparse.Namespace) -> int:
    def body() -> int:
        trace_id = check_trace_id(args.trace_id)  # before it becomes part of a URL
        trace = _fetch(args, f"/api/v1/traces/{trace_id}", {}, "traces.get_trace", trace_id)
        if args.format == "json":
            _print_json(trace)
        elif args.format == "csv":
            sys.stdout.write(render(*_flat_spans(trace), "csv"))
        else:
            sys.stdout.write(_tree_text(trace))
        return 0

    return _run(args, body)


# -- sessions --------------------------------------------------------------------------------


def cmd_sessions_list(args: argparse.Namespace) -> int:
    payload = _listing(args, "user", "sort")

    def body() -> int:
        answer = _fetch(args, "/api/v1/sessions", payload, "sessions.list_sessions")
        _print_page(answer, args.format)
        return 0

    return _run(args, body)


def cmd_sessions_show(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    def body() -> int:
        path = f"/api/v1/sessions/{quote(args.session_id, safe='')}"
        session = _fetch(args, path, {}, "sessions.get_session", args.session_id)
        if args.format == "json":
            _print_json(session)
            return 0
        if args.format == "table":
            print(
                f"session {session['session_id']}  user {session['user_id'] or '-'}  {session['traces']} traces  "
                f"{session['first_time']} .. {session['last_time']}  tokens {session['total_tokens']}  "
                f"cost ${session['cost_usd']}"
            )
        columns = list(TURN_COLUMNS)
        rows = [[t[c] for c in columns] for t in session["turns"]]
        sys.stdout.write(render(columns, rows, args.format))
        return 0

    return _run(args, body)


# -- parsers ---------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    def window(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--since",
            help="from this time: a duration ago (30m, 24h, 7d) or an ISO-8601 time (UTC unless it says)",
        )
        p.add_argument("--until", help="up to this time (same forms as --since)")
        p.add_argument("--limit", type=int, default=50, help="rows per page (default 50, at most 1000)")
        p.add_argument("--cursor", help="continue a listing: the cursor the previous page printed")

    traces_p = sub.add_parser("traces", help="list traces or show one as a span tree")
    tsub = traces_p.add_subparsers(dest="traces_command", required=True)
    p = tsub.add_parser("list", help="one row per trace, newest first")
    window(p)
    p.add_argument("--service", help="traces with a span of this service")
    p.add_argument("--where", help="traces with a span matching this filter, e.g. \"model = 'gpt-4o'\"")
    p.add_argument("--search", help="traces with a call whose prompt, response or tool data holds every word")
    p.add_argument(
        "--sort",
        help="order by a column: start_time, latency_ms, cost_usd, total_tokens, input_tokens, output_tokens, "
        "spans, llm_calls or score.NAME, descending unless it ends in :asc (latency_ms:asc)",
    )
    add_read_args(p)
    p.set_defaults(func=cmd_traces_list)
    p = tsub.add_parser("show", help="a whole trace as an indented span tree (--format json: nested)")
    p.add_argument("trace_id", help="the trace id (32 hex digits)")
    add_read_args(p)
    p.set_defaults(func=cmd_traces_show)

    sessions_p = sub.add_parser("sessions", help="list conversations (sessions) or show one")
    ssub = sessions_p.add_subparsers(dest="sessions_command", required=True)
    p = ssub.add_parser("list", help="sessions, most recently active first")
    window(p)
    p.add_argument("--user", help="sessions of this user")
    p.add_argument(
        "--sort",
        help="order by last_time (default), first_time, traces, llm_calls, input_tokens, output_tokens, "
        "total_tokens or cost_usd, descending unless it ends in :asc",
    )
    add_read_args(p)
    p.set_defaults(func=cmd_sessions_list)
    p = ssub.add_parser("show", help="the turns of one session: input and output per trace")
    p.add_argument("session_id")
    add_read_args(p)
    p.set_defaults(func=cmd_sessions_show)
