"""The traces list: pages newest first or sorted, counts and facets, with their filters.

Rules that keep it fast on large stores:
- Lists read per-trace totals from `trace_summary` (one row per trace and hour of its first
  span), never grouping the spans of a window: sorted pages, counts, facets and sorted sessions
  group its rows of the window; a page's rows (totals, root span, first input, last output,
  first error) are its traces' rows, found by hour and id. Only `--where`/`--search` read spans.
- Lists page by keyset on (start, id) or (sort key, id), never OFFSET: the next page's cursor
  bounds the scan, so deep pages cost what the first page costs. A newest-first page is first
  looked for in recent time windows (1 h, 1 d, 7 d, 30 d before the cursor or --until) and the
  window only grows when it does not hold a full page.
"""

from __future__ import annotations

from typing import Any

from tracehouse_collector.query.paging import (
    DEFAULT_LIMIT,
    SCORE_SORT,
    Page,
    Sort,
    check_limit,
    decode_cursor,
    encode_cursor,
    encode_sorted_cursor,
    keyset_after,
    now_ns,
    parse_order,
    parse_time,
    time_conditions,
)
from tracehouse_collector.query.search import search_condition
from tracehouse_collector.query.summaries import (
    SCORES_TABLE,
    SUMMARY_TABLE,
    TRACE_COLUMNS,
    names_of_runs,
    page_summaries,
)
from tracehouse_collector.query.trace_shape import TRACE_ID_RE
from tracehouse_collector.store.client import Store, StoreError


def _span_filter(where: str | None, params: dict[str, Any]) -> str | None:
    """The --where filter compiled to parameterised SQL over span fields, or None."""
    if not where or not where.strip():
        return None
    try:
        from tracehouse_collector.query import filters
    except ImportError:
        raise ValueError("--where is not available: this build has no filter language") from None
    compiled = filters.compile_filter(where, filters.SPAN_FIELDS, param_prefix="wf")
    params.update(compiled.params)
    return compiled.sql


# -- list_traces -----------------------------------------------------------------------------


# Without a lower time bound, a page is first looked for among recent spans only: the first
# window that holds a full page of traces, all of which started inside it, gives the exact
# answer at the cost of reading that window (see _candidates).
WINDOWS_S = (3600, 86400, 7 * 86400, 30 * 86400)


def list_traces(
    store: Store,
    since: Any = None,
    until: Any = None,
    service: str | None = None,
    where: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
    cursor: str | None = None,
    sort: str | None = None,
    search: str | None = None,
) -> Page:
    """Traces newest first (or in the order of `sort`), one summary row each; `next_cursor`
    continues the listing.

    A trace belongs to the listing when its first span started in [since, until); `service`,
    `where` and `search` each keep traces with at least one span that matches (the filter
    language of query/filters.py over span fields; full-text search of query/search.py).
    `sort` is a column of SORTS (or score.NAME), optionally with `:asc` or `:desc` (the default).
    """
    limit = check_limit(limit)
    order = parse_sort(sort)
    since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
    params: dict[str, Any] = {}
    filters = _list_filters(service, where, search, params)
    if order != NEWEST_FIRST:
        return _sorted_page(store, order, since_ns, until_ns, filters, params, limit, cursor)
    after = decode_cursor(cursor)

    top = after[0] if after else until_ns if until_ns is not None else now_ns()
    lows: list[int | None] = [
        top - w * 1_000_000_000 for w in WINDOWS_S if since_ns is None or top - w * 1_000_000_000 > since_ns
    ]
    lows.append(since_ns)  # the real bound (None: all time) always comes last
    for i, lo in enumerate(lows):
        final = i == len(lows) - 1
        fetch = limit + 1
        while True:
            found = _candidates(store, lo, until_ns, after, filters, dict(params), fetch)
            summaries = page_summaries(store, [tid for tid, _ in found])
            # A trace with spans in the window that started before it is an impostor: its
            # min() here is not its start.
            genuine = [summaries[tid] for tid, _ in found if tid in summaries]
            genuine = [s for s in genuine if lo is None or s["_start_ns"] >= lo]
            exact = len(genuine) == len(found)
            if final and not exact and len(found) == fetch and len(genuine) <= limit:
                fetch *= 2  # impostors took places of the page: look further
                continue
            break
        if final or (exact and len(found) > limit):
            break
    page, more = genuine[:limit], len(genuine) > limit
    rows = [tuple(s[c] for c in TRACE_COLUMNS) for s in page]
    next_cursor = encode_cursor(page[-1]["_start_ns"], page[-1]["trace_id"]) if more else None
    return Page(list(TRACE_COLUMNS), rows, next_cursor)


def _candidates(
    store: Store,
    lo: int | None,
    until_ns: int | None,
    after: tuple[int, str] | None,
    filters: list[str],
    params: dict[str, Any],
    n: int,
) -> list[tuple[str, int]]:
    """(trace id, first span start within the spans read) of the n newest traces with spans
    in [lo, until) (and before the cursor) that match the filters; the starts come from the
    trace_summary rows of [lo, until), the filters from the spans."""
    params["n"] = n
    window = ["TraceId != ''", *time_conditions(lo, until_ns, params)]
    conds = _summary_rows("since_ns" if lo is not None else None, "until_ns" if until_ns is not None else None)
    having = ""
    if after is not None:
        # Every row of a trace that starts before the cursor is in this bound, so min() is exact.
        params["c_ns"], params["c_id"] = after
        conds.append("Start <= fromUnixTimestamp64Nano({c_ns:Int64})")
        having = "HAVING start_ns < {c_ns:Int64} OR (start_ns = {c_ns:Int64} AND TraceId < {c_id:String})"
    for f in filters:
        conds.append("TraceId IN (SELECT TraceId FROM otel_traces WHERE " + " AND ".join([*window, f]) + ")")
    sql = (
        f"SELECT TraceId, toUnixTimestamp64Nano(min(Start)) AS start_ns FROM {SUMMARY_TABLE}"
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
        + f" GROUP BY TraceId {having} ORDER BY start_ns DESC, TraceId DESC LIMIT {{n:UInt32}}"
    )
    return store.query(sql, parameters=params)[1]


def _list_filters(service: str | None, where: str | None, search_text: str | None, params: dict[str, Any]) -> list[str]:
    """The span conditions of a listing (a trace is listed when a span meets each one)."""
    filters = []
    if service:
        params["service"] = service
        filters.append("ServiceName = {service:String}")
    span_filter = _span_filter(where, params)
    if span_filter:
        filters.append(f"({span_filter})")
    if search_text and search_text.strip():
        filters.append(search_condition(search_text, params, prefix="search"))
    return filters


# -- sorted listings, counts and facets ------------------------------------------------------

# Sortable columns of the traces list -> the per-trace aggregate over its summary rows.
SORTS = {
    "start_time": "start_ns",
    "latency_ms": "toUnixTimestamp64Nano(max(End)) - start_ns",
    "cost_usd": "sum(CostUSD)",
    "total_tokens": "sum(TotalTokens)",
    "input_tokens": "sum(InputTokens)",
    "output_tokens": "sum(OutputTokens)",
    "spans": "sum(Spans)",
    "llm_calls": "sum(LlmCalls)",
}


# A sorted listing, a count or facets read the summary rows of [since, until + LOOKBACK) and
# leave out every trace with a row in the LOOKBACK before `since` (it started earlier). The
# exception is a trace with no span in the LOOKBACK next to a bound: one with spans more than
# LOOKBACK before `since` and none in it is counted (a page still drops it: its summary knows
# its real start); spans more than LOOKBACK after `until` are missing from its sort key. The
# narrow summary rows make a day affordable (reading spans, an hour was).
LOOKBACK_NS = 86400 * 1_000_000_000


NEWEST_FIRST = Sort("start_time", True)


def parse_sort(text: str | None) -> Sort:
    """The traces list's order: a column of SORTS or score.NAME, descending unless `:asc`."""
    return parse_order(text, NEWEST_FIRST, list(SORTS), scores=True)


def _summary_rows(lo: str | None, hi: str | None) -> list[str]:
    """Conditions keeping the trace_summary rows whose first span started in [lo, hi) (names
    of Int64 ns parameters; None: unbounded). Hour, the key's first column, prunes the read."""
    out = []
    if lo:
        out += [
            f"Hour >= toStartOfHour(fromUnixTimestamp64Nano({{{lo}:Int64}}))",
            f"Start >= fromUnixTimestamp64Nano({{{lo}:Int64}})",
        ]
    if hi:
        out += [
            f"Hour < fromUnixTimestamp64Nano({{{hi}:Int64}})",
            f"Start < fromUnixTimestamp64Nano({{{hi}:Int64}})",
        ]
    return out


def trace_set_sql(
    since_ns: int | None,
    until_ns: int | None,
    filters: list[str],
    params: dict[str, Any],
    aggregates: str = "",
    checked: bool = False,
) -> str:
    """SELECT TraceId, start_ns[, aggregates over its trace_summary rows] of every trace that
    started in [since, until) and has, for each filter, a span that meets it (see LOOKBACK_NS).
    `checked`: the caller checks every trace's start itself (a page does, from its spans), so
    traces that started before `since` may be among these, with what their rows from it hold."""
    if since_ns is not None:
        params["set_since"], params["set_lo"] = since_ns, since_ns - LOOKBACK_NS
    if until_ns is not None:
        params["set_until"], params["set_hi"] = until_ns, until_ns + LOOKBACK_NS
    since = "set_since" if since_ns is not None else None
    hi = "set_hi" if until_ns is not None else None
    conds = _summary_rows(since, hi)
    if since and not checked:
        earlier = " AND ".join(_summary_rows("set_lo", since))
        conds.append(f"TraceId NOT IN (SELECT TraceId FROM {SUMMARY_TABLE} WHERE {earlier})")
    # The spans of the listed traces all lie in [since, until + LOOKBACK).
    span_hi = None if until_ns is None else until_ns + LOOKBACK_NS
    window = ["TraceId != ''", *time_conditions(since_ns, span_hi, params)]
    for f in filters:
        conds.append("TraceId IN (SELECT TraceId FROM otel_traces WHERE " + " AND ".join([*window, f]) + ")")
    return (
        f"SELECT TraceId, toUnixTimestamp64Nano(min(Start)) AS start_ns{aggregates} FROM {SUMMARY_TABLE}"
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
        + " GROUP BY TraceId"
        + (" HAVING start_ns < {set_until:Int64}" if until_ns is not None else "")
    )


def _scores_available() -> bool:
    from tracehouse_collector.store import ddl

    return SCORES_TABLE in ddl.tables()


def _sort_key_sql(order: Sort, since_ns, until_ns, filters, params) -> str:
    """SELECT TraceId, key of the listed traces, `key` ordering them, and of traces that
    started before `since` (_sorted_page leaves those out)."""
    if not order.column.startswith(SCORE_SORT):
        aggregate = f", {SORTS[order.column]} AS key"
        inner = trace_set_sql(since_ns, until_ns, filters, params, aggregate, checked=True)
        return f"SELECT TraceId, key FROM ({inner})"
    if not _scores_available():
        raise ValueError("this store has no scores table: sort by a score needs it")
    params["sort_score"] = order.column[len(SCORE_SORT) :]
    # Traces without a numeric score of that name come last in either direction.
    missing = "-1e308" if order.descending else "1e308"
    inner = trace_set_sql(since_ns, until_ns, filters, params, checked=True)
    return (
        f"SELECT t.TraceId AS TraceId, ifNull(s.v, {missing}) AS key FROM ({inner}) AS t LEFT JOIN "
        f"(SELECT TraceId, avg(Value) AS v FROM {SCORES_TABLE} WHERE Name = {{sort_score:String}} "
        "AND TraceId != '' GROUP BY TraceId) AS s ON t.TraceId = s.TraceId"
    )


def _sorted_page(
    store: Store,
    order: Sort,
    since_ns: int | None,
    until_ns: int | None,
    filters: list[str],
    params: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> Page:
    """One page of traces in `order`, ties broken by trace id in the same direction; the
    cursor is the last row's (key, trace id), so the next page starts exactly after it."""
    keyed = _sort_key_sql(order, since_ns, until_ns, filters, params)
    where = keyset_after(cursor, order, "TraceId", params, TRACE_ID_RE)
    direction = "DESC" if order.descending else "ASC"
    fetch = limit + 1
    while True:
        params["n"] = fetch
        _, found = store.query(
            f"SELECT TraceId, key FROM ({keyed}) {where} ORDER BY key {direction}, TraceId {direction} "
            "LIMIT {n:UInt32}",
            parameters=params,
        )
        summaries = page_summaries(store, [tid for tid, _ in found])
        # A trace that started before `since` (_sort_key_sql keeps them): its summary knows.
        genuine = [
            (summaries[tid], key)
            for tid, key in found
            if tid in summaries and (since_ns is None or summaries[tid]["_start_ns"] >= since_ns)
        ]
        if len(genuine) > limit or len(found) < fetch:
            break
        fetch *= 2
    page, more = genuine[:limit], len(genuine) > limit
    rows = [tuple(s[c] for c in TRACE_COLUMNS) for s, _ in page]
    next_cursor = encode_sorted_cursor(order, page[-1][1], page[-1][0]["trace_id"]) if more else None
    return Page(list(TRACE_COLUMNS), rows, next_cursor)


def count_traces(
    store: Store,
    since: Any = None,
    until: Any = None,
    service: str | None = None,
    where: str | None = None,
    search: str | None = None,
) -> int:
    """How many traces the listing with these filters holds (all its pages together)."""
    params: dict[str, Any] = {}
    filters = _list_filters(service, where, search, params)
    inner = trace_set_sql(parse_time(since, "since"), parse_time(until, "until"), filters, params)
    _, rows = store.query(f"SELECT count() FROM ({inner})", parameters=params)
    return int(rows[0][0])


# Facets: filter field -> its span expression (as the filter language compares it), so a click
# on a value adds `field = 'value'` and keeps exactly the traces counted. (Migration 0011, frozen,
# names FACETS by its former home, query/traces.py.)
FACETS = ("model", "provider", "service", "status", "session", "user", "run")
FACET_VALUES = 10


def trace_facets(
    store: Store,
    since: Any = None,
    until: Any = None,
    service: str | None = None,
    where: str | None = None,
    search: str | None = None,
    size: int = FACET_VALUES,
) -> dict[str, list[dict[str, Any]]]:
    """{field: [{"value", "traces"}, ...]} for the facet fields and `score.NAME` labels: among the
    traces the listing holds, how many have a span with that value (most first, `size` each).
    Adding `field = 'value'` to the filter keeps exactly those traces."""
    size = max(1, min(int(size), 100))
    params: dict[str, Any] = {"size": size}
    filters = _list_filters(service, where, search, params)
    since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
    # trace_summary's Facets: the distinct non-empty (field, value) pairs of FACETS, each value
    # as the field's SPAN_FIELDS expression computes it (frozen in migration 11).
    inner = trace_set_sql(since_ns, until_ns, filters, params, ", groupUniqArrayArray(Facets) AS pairs")
    _, rows = store.query(
        f"SELECT p.1 AS field, p.2 AS value, count() AS traces FROM ({inner}) ARRAY JOIN pairs AS p "
        "GROUP BY field, value ORDER BY traces DESC, value LIMIT {size:UInt32} BY field",
        parameters=params,
    )
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in FACETS}
    for field, value, n in rows:
        out[field].append({"value": value, "traces": n})
    # A run is filtered by its id but read by its name: runs with a name carry it as "label".
    names = names_of_runs(store, [v["value"] for v in out["run"]])
    for v in out["run"]:
        if v["value"] in names:
            v["label"] = names[v["value"]]
    if _scores_available():
        listed = trace_set_sql(since_ns, until_ns, filters, params)
        try:
            _, labels = store.query(
                f"SELECT Name, Label, uniqExact(TraceId) AS traces FROM {SCORES_TABLE} WHERE Label != '' "
                f"AND TraceId IN (SELECT TraceId FROM ({listed})) GROUP BY Name, Label "
                "ORDER BY traces DESC, Label LIMIT {size:UInt32} BY Name",
                parameters=params,
            )
        except StoreError:  # a store not yet migrated to the scores table
            labels = []
        for name, label, n in labels:
            out.setdefault(f"score.{name}", []).append({"value": label, "traces": n})
    return out
