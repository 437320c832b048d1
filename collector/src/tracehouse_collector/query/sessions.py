"""Sessions: conversations across traces, listed by last activity or sorted, and one session
as its turns (each trace's input and output, the tools it called, the error that failed it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracehouse_collector.query.genai_content import parse
from tracehouse_collector.query.paging import (
    DEFAULT_LIMIT,
    Page,
    Sort,
    check_limit,
    decode_cursor,
    encode_cursor,
    encode_sorted_cursor,
    iso,
    keyset_after,
    now_ns,
    parse_order,
    parse_time,
    time_conditions,
)
from tracehouse_collector.query.summaries import time_range_of, trace_summaries
from tracehouse_collector.query.trace_list import WINDOWS_S, trace_set_sql
from tracehouse_collector.query.trace_shape import TURN_COLUMNS
from tracehouse_collector.query.traces import MAX_TRACE_SPANS, NotFound
from tracehouse_collector.query.values import money
from tracehouse_collector.store.client import Store

MAX_SESSION_TURNS = 1000


# -- the steps a transcript shows: tool calls and the error that failed a turn ----------------

_STEPS_SQL = """
SELECT TraceId, SpanName, StatusCode, StatusMessage, SpanAttributes['error.type'] AS error_type,
    SpanAttributes['gen_ai.tool.name'] AS tool, SpanAttributes['gen_ai.tool.call.id'] AS call_id,
    substring(SpanAttributes['gen_ai.tool.call.arguments'], 1, {chars:UInt32}) AS arguments,
    substring(SpanAttributes['gen_ai.tool.call.result'], 1, {chars:UInt32}) AS result,
    toUnixTimestamp64Nano(Timestamp) AS start_ns, toUnixTimestamp64Nano(Timestamp) + Duration AS end_ns
FROM otel_traces
WHERE TraceId IN {ids:Array(String)}
  AND Timestamp >= fromUnixTimestamp64Nano({lo_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({hi_ns:Int64})
  AND (StatusCode = 'Error' OR GenAIOperation = 'execute_tool' OR SpanAttributes['gen_ai.tool.name'] != '')
ORDER BY start_ns, SpanId
LIMIT {n:UInt32}
"""


def turn_steps(store: Store, ids: list[str], chars: int = 2000) -> dict[str, dict[str, Any]]:
    """Per trace: "tools", its tool calls in start order ({name, call_id, arguments, result,
    status}), and "error", the failure that ended first ({span, type, message}: the span where
    the error arose, not the parents it travelled through), or None."""
    if not ids:
        return {}
    bounds = time_range_of(store, ids)
    if bounds is None:
        return {}
    params = {"ids": ids, "lo_ns": bounds[0], "hi_ns": bounds[1], "chars": chars, "n": MAX_TRACE_SPANS}
    columns, rows = store.query(_STEPS_SQL, parameters=params)
    out: dict[str, dict[str, Any]] = {}
    first_end: dict[str, int] = {}
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        steps = out.setdefault(r["TraceId"], {"error": None, "tools": []})
        if r["tool"] or r["arguments"] or r["result"]:
            steps["tools"].append(
                {
                    "name": r["tool"] or r["SpanName"],
                    "call_id": r["call_id"],
                    "arguments": parse(r["arguments"]) if r["arguments"] else None,
                    "result": parse(r["result"]) if r["result"] else None,
                    "status": "error" if r["StatusCode"] == "Error" else "ok",
                }
            )
        if r["StatusCode"] == "Error" and r["end_ns"] < first_end.get(r["TraceId"], r["end_ns"] + 1):
            first_end[r["TraceId"]] = r["end_ns"]
            steps["error"] = {"span": r["SpanName"], "type": r["error_type"], "message": r["StatusMessage"]}
    return out


# -- sessions --------------------------------------------------------------------------------

SESSION_COLUMNS = [
    "session_id",
    "user_id",
    "first_time",
    "last_time",
    "traces",
    "llm_calls",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
]


def list_sessions(
    store: Store,
    since: Any = None,
    until: Any = None,
    user: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
    cursor: str | None = None,
    sort: str | None = None,
) -> Page:
    """Sessions (conversations across traces), most recently active first, or in the order
    of `sort` (a column of SESSION_SORTS, optionally with `:asc` or `:desc`).

    A page is found in two steps: the sessions whose spans were seen last (in growing time
    windows, as list_traces), then the totals of those sessions' traces. Usage counts every
    span of a session's traces, so LLM calls below a root span that carries the session id
    count too. With --since/--until, only traces that started in that range count.
    """
    limit = check_limit(limit)
    since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
    order = parse_session_sort(sort)
    if order != LAST_ACTIVE_FIRST:
        return _sorted_sessions(store, order, since_ns, until_ns, user, limit, cursor)
    after = decode_cursor(cursor)
    top = after[0] if after else until_ns if until_ns is not None else now_ns()
    lows: list[int | None] = [
        top - w * 1_000_000_000 for w in WINDOWS_S if since_ns is None or top - w * 1_000_000_000 > since_ns
    ]
    lows.append(since_ns)
    for lo in lows:
        # max() over a window is exact for every session seen in it: no impostors here.
        params: dict[str, Any] = {"n": limit + 1}
        conds = ["SessionId != ''", *time_conditions(lo, until_ns, params)]
        if user:
            params["user"] = user
            conds.append("UserId = {user:String}")
        having = ""
        if after is not None:
            params["c_ns"], params["c_id"] = after
            having = "HAVING last_ns < {c_ns:Int64} OR (last_ns = {c_ns:Int64} AND SessionId < {c_id:String})"
        _, found = store.query(
            "SELECT SessionId, toUnixTimestamp64Nano(max(Timestamp)) AS last_ns FROM otel_traces WHERE "
            + " AND ".join(conds)
            + f" GROUP BY SessionId {having} ORDER BY last_ns DESC, SessionId DESC LIMIT {{n:UInt32}}",
            parameters=params,
        )
        if len(found) > limit:
            break
    page, more = found[:limit], len(found) > limit
    rows = _session_rows(store, page, since_ns, until_ns)
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if more else None
    return Page(list(SESSION_COLUMNS), rows, next_cursor)


def _session_rows(
    store: Store, page: list[tuple[str, int]], since_ns: int | None, until_ns: int | None
) -> list[tuple]:
    """SESSION_COLUMNS rows of (session id, last activity ns) pairs, from their traces' totals."""
    totals = _session_totals(store, [sid for sid, _ in page], since_ns, until_ns)
    rows = []
    for sid, last_ns in page:
        tot = totals.get(sid)
        if tot is None:  # its traces all started outside [since, until)
            continue
        rows.append(
            (
                sid,
                tot["user_id"],
                iso(tot["first_ns"]),
                iso(last_ns),
                tot["traces"],
                tot["llm_calls"],
                tot["input_tokens"],
                tot["output_tokens"],
                tot["total_tokens"],
                money(tot["cost_usd"]),
            )
        )
    return rows


# Sortable columns of the sessions list -> the per-session SQL aggregate (over its traces' rows
# `t`, each trace's totals over all its spans, as the page shows them).
SESSION_SORTS = {
    "last_time": "max(session_ns)",
    "first_time": "min(t.start_ns)",
    "traces": "count()",
    "llm_calls": "sum(t.llm_calls)",
    "input_tokens": "sum(t.input_tokens)",
    "output_tokens": "sum(t.output_tokens)",
    "total_tokens": "sum(t.total_tokens)",
    "cost_usd": "sum(t.cost)",
}
LAST_ACTIVE_FIRST = Sort("last_time", True)


def parse_session_sort(text: str | None) -> Sort:
    """The sessions list's order: a column of SESSION_SORTS, descending unless `:asc`."""
    return parse_order(text, LAST_ACTIVE_FIRST, list(SESSION_SORTS), scores=False)


def _sorted_sessions(
    store: Store,
    order: Sort,
    since_ns: int | None,
    until_ns: int | None,
    user: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """One page of sessions in `order`, ties broken by session id; keyset cursor as traces'.

    From trace_summary: each listed trace's totals and, per session id its spans carry, the
    latest start of such a span (its activity in the session, to the trace's last span)."""
    params: dict[str, Any] = {"n": limit + 1}
    filters = []
    if user:
        params["user"] = user
        filters.append("UserId = {user:String}")
    traces_sql = trace_set_sql(
        since_ns,
        until_ns,
        filters,
        params,
        ", sum(LlmCalls) AS llm_calls, sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, "
        f"sum(TotalTokens) AS total_tokens, sum(CostUSD) AS cost, maxMap(SessionLast) AS sessions, "
        f"anyIf({_USER_SQL}, {_USER_SQL} != '') AS user_id",
    )
    key = SESSION_SORTS[order.column]
    # Each session's row, as _session_rows gives it (the user of its first trace that has one).
    keyed = (
        f"SELECT SessionId, argMinIf(t.user_id, (t.start_ns, t.TraceId), t.user_id != '') AS user_id, "
        "min(t.start_ns) AS first_ns, max(session_ns) AS last_ns, count() AS traces, sum(t.llm_calls) AS llm_calls, "
        "sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens, "
        f"sum(t.total_tokens) AS total_tokens, sum(t.cost) AS cost_usd, {key} AS key FROM ({traces_sql}) AS t "
        "ARRAY JOIN t.sessions.1 AS SessionId, t.sessions.2 AS session_ns GROUP BY SessionId"
    )
    where = keyset_after(cursor, order, "SessionId", params, None)
    direction = "DESC" if order.descending else "ASC"
    _, found = store.query(
        f"SELECT * FROM ({keyed}) {where} ORDER BY key {direction}, SessionId {direction} LIMIT {{n:UInt32}}",
        parameters=params,
    )
    page, more = found[:limit], len(found) > limit
    rows = [(sid, user, iso(first), iso(last), *counts, money(cost)) for sid, user, first, last, *counts, cost, _ in page]
    next_cursor = encode_sorted_cursor(order, page[-1][-1], page[-1][0]) if more else None
    return Page(list(SESSION_COLUMNS), rows, next_cursor)


# A summary row's user (trace_summary's Facets hold at most a few user ids per trace).
_USER_SQL = "arrayFirst(p -> p.1 = 'user', Facets).2"


def _session_traces(
    store: Store, session_ids: list[str], limit: int | None = None
) -> list[tuple[str, str, int, int]]:
    """(session id, trace id, first and last start of its spans that carry the session id)
    of the sessions' traces, oldest first; the SessionId bloom filter finds them."""
    _, rows = store.query(
        "SELECT SessionId, TraceId, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns, "
        "toUnixTimestamp64Nano(max(Timestamp)) AS last_ns FROM otel_traces "
        "WHERE SessionId IN {sids:Array(String)} GROUP BY SessionId, TraceId ORDER BY start_ns, TraceId"
        + (" LIMIT {n:UInt32}" if limit else ""),
        parameters={"sids": session_ids, "n": limit or 0},
    )
    return rows


def _session_totals(
    store: Store, session_ids: list[str], since_ns: int | None, until_ns: int | None
) -> dict[str, dict[str, Any]]:
    if not session_ids:
        return {}
    pairs = _session_traces(store, session_ids)
    summaries = trace_summaries(store, sorted({p[1] for p in pairs}), content=False)
    out: dict[str, dict[str, Any]] = {}
    for sid, tid, _, _ in pairs:
        s = summaries.get(tid)
        if s is None or (since_ns is not None and s["_start_ns"] < since_ns):
            continue
        if until_ns is not None and s["_start_ns"] >= until_ns:
            continue
        tot = out.setdefault(
            sid,
            {"user_id": "", "first_ns": s["_start_ns"], "traces": 0, "llm_calls": 0, "input_tokens": 0,
             "output_tokens": 0, "total_tokens": 0, "cost_usd": Decimal(0)},
        )  # fmt: skip
        tot["user_id"] = tot["user_id"] or s["user_id"]
        tot["first_ns"] = min(tot["first_ns"], s["_start_ns"])
        tot["traces"] += 1
        for key in ("llm_calls", "input_tokens", "output_tokens", "total_tokens", "cost_usd"):
            tot[key] += s[key]
    return out


def get_session(store: Store, session_id: str, chars: int = 2000) -> dict[str, Any]:
    """A conversation: its traces in time order, each with its input and output. Raises NotFound."""
    if not session_id or not session_id.strip():
        raise ValueError("session id is empty")
    found = _session_traces(store, [session_id], MAX_SESSION_TURNS)
    if not found:
        raise NotFound(f"session {session_id!r} not found")
    summaries = trace_summaries(store, [tid for _, tid, _, _ in found], chars=chars)
    ordered = sorted(summaries.values(), key=lambda s: (s["_start_ns"], s["trace_id"]))
    steps = turn_steps(store, [s["trace_id"] for s in ordered])
    # The CLI table shows TURN_COLUMNS; REST and the UI's transcript also get names, scores,
    # the error that failed a turn and the tools it called.
    turns = [
        {
            **{c: (i if c == "turn" else s[c]) for c in TURN_COLUMNS},
            "root_span": s["root_span"],
            "scores": s["scores"],
            **steps.get(s["trace_id"], {"error": None, "tools": []}),
        }
        for i, s in enumerate(ordered, 1)
    ]
    return {
        "session_id": session_id,
        "user_id": next((s["user_id"] for s in ordered if s["user_id"]), ""),
        "first_time": turns[0]["start_time"] if turns else None,
        # as in list_sessions: the latest start of a span that carries the session id
        "last_time": iso(max(last for _, _, _, last in found)),
        "traces": len(turns),
        "llm_calls": sum(s["llm_calls"] for s in ordered),
        "total_tokens": sum(s["total_tokens"] for s in ordered),
        "cost_usd": money(sum((s["cost_usd"] for s in ordered), Decimal(0))),
        "turns": turns,
    }
