"""Traces and sessions: the one-row-per-request view, the full span tree, conversations.

Reads `otel_traces` and the tables kept from it, with rules that keep it fast on large stores:
- A trace is found by id through `trace_index` (ordered by TraceId, by month) which gives its
  time range; the span read is then restricted to that range (day partitions prune) and to the
  id (the TraceId bloom filter skips granules). Nothing scans all spans for one id.
- Lists read per-trace totals from `trace_summary` (one row per trace and hour of its first
  span), never grouping the spans of a window: sorted pages, counts, facets and sorted sessions
  group its rows of the window; a page's rows (totals, root span, first input, last output,
  first error) are its traces' rows, found by hour and id. Only `--where`/`--search` read spans.
- Lists page by keyset on (start, id) or (sort key, id), never OFFSET: the next page's cursor
  bounds the scan, so deep pages cost what the first page costs. A newest-first page is first
  looked for in recent time windows (1 h, 1 d, 7 d, 30 d before the cursor or --until) and the
  window only grows when it does not hold a full page.

Times travel as integer nanoseconds through ClickHouse (no time-zone guessing) and leave as
ISO-8601 UTC strings.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tracehouse_collector.processors.normalize import NON_MODEL_OPERATIONS
from tracehouse_collector.query.evals import (
    ANNOTATION_FIELDS,
    ANNOTATIONS_TABLE,
    MAX_ANNOTATIONS,
    annotation_from_fields,
)
from tracehouse_collector.query.genai_content import (
    CONTENT_TRUNCATED,
    FINISH_REASONS,
    INPUT_KEYS,
    INPUT_MESSAGES,
    OUTPUT_KEYS,
    OUTPUT_MESSAGES,
    SYSTEM_INSTRUCTIONS,
    TOOL_DEFINITIONS,
    content_text,
    finish_reasons,
    parse,
    tool_calls_of,
    tool_definitions,
    truncated_content,
)
from tracehouse_collector.query.model_identity import MODEL_SQL, model_identity
from tracehouse_collector.query.search import search_condition
from tracehouse_collector.query.trace_shape import (
    PREVIEW_CHARS,
    TRACE_ID_RE,
    TURN_COLUMNS,
    check_trace_id,
    preview,
    walk,
)
from tracehouse_collector.store.client import Store, StoreError

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_SESSION_TURNS = 1000
MAX_TRACE_SPANS = 20_000  # a trace shows at most its first this-many spans ("truncated": true)
SCORES_TABLE = "otel_scores"
# Attribute values are cut before they leave ClickHouse; prompts can be megabytes.
RAW_CHARS = 16384

# What the trace view shows as content; the collector cutting any of these shortened it.
CONTENT_KEYS = frozenset((*INPUT_KEYS, *OUTPUT_KEYS, SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS))


class NotFound(LookupError):
    """No trace / session with that id."""


@dataclass
class Page:
    """One page of a list: rows as the CLI renders them, and where the next page starts."""

    columns: list[str]
    rows: list[tuple]
    next_cursor: str | None = None

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# -- time and input checks -------------------------------------------------------------------

def parse_time(value: Any, what: str = "time", now: dt.datetime | None = None) -> int | None:
    """A point in time as Unix nanoseconds, in the time language of every query command
    (query/aggregates.parse_time: "24h"/"30m"/"7d" ago, or ISO-8601, UTC unless it says so)."""
    from tracehouse_collector.query.aggregates import parse_time as parse_when

    when = parse_when(value, now=now, what=what)
    if when is None:
        return None
    whole = int(when.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + when.microsecond * 1000


def _now_ns() -> int:
    """Now in Unix nanoseconds, to the microsecond as parse_time("0s") reads it."""
    return time.time_ns() // 1000 * 1000


def iso(ns: int) -> str:
    """Unix nanoseconds as ISO-8601 UTC with microseconds."""
    return dt.datetime.fromtimestamp(ns // 1000 / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    limit = int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    ns, sep, key = cursor.partition(":")
    if not sep or not ns.isdigit() or not key:
        raise ValueError(f"bad cursor {cursor!r}: pass the next_cursor of the previous page unchanged")
    return int(ns), key


def _encode_cursor(ns: int, key: str) -> str:
    return f"{ns}:{key}"


# -- SQL pieces ------------------------------------------------------------------------------

_NON_MODEL = ", ".join(f"'{op}'" for op in sorted(NON_MODEL_OPERATIONS))
# An LLM call: a span with a model whose operation consumes tokens (not an agent or tool step).
LLM_SPAN = f"((GenAIRequestModel != '' OR GenAIResponseModel != '') AND GenAIOperation NOT IN ({_NON_MODEL}))"
MODEL = MODEL_SQL


def _first_attr(keys: tuple[str, ...]) -> str:
    values = ", ".join(f"SpanAttributes['{k}']" for k in keys)
    return f"leftUTF8(arrayFirst(x -> x != '', [{values}, '']), {RAW_CHARS})"


INPUT_SQL = _first_attr(INPUT_KEYS)
OUTPUT_SQL = _first_attr(OUTPUT_KEYS)
END_NS = "(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration))"
# What a failed span says went wrong: its status message, else its exception's message and type.
ERROR_SQL = (
    "arrayFirst(x -> x != '', [StatusMessage, "
    "Events.Attributes[indexOf(Events.Name, 'exception')]['exception.message'], "
    "Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type'], "
    "SpanAttributes['error.type'], ''])"
)


def _time_conditions(since_ns: int | None, until_ns: int | None, params: dict[str, Any]) -> list[str]:
    out = []
    if since_ns is not None:
        params["since_ns"] = since_ns
        out.append("Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})")
    if until_ns is not None:
        params["until_ns"] = until_ns
        out.append("Timestamp < fromUnixTimestamp64Nano({until_ns:Int64})")
    return out


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


# -- the trace summary row -------------------------------------------------------------------

TRACE_COLUMNS = [
    "trace_id",
    "start_time",
    "root_span",
    "service",
    "status",
    "latency_ms",
    "spans",
    "llm_calls",
    "models",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "session_id",
    "user_id",
    "run_id",
    "input",
    "output",
    "scores",
    "error",  # what went wrong, on error rows: the first failed span's message or exception
    "run_name",  # the run's name, where the trace belongs to a run (run_id) that has one
]

_SUMMARY_SQL = f"""
SELECT
    TraceId,
    toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
    max({END_NS}) AS end_ns,
    count() AS spans,
    if(countIf(ParentSpanId = '') > 0, argMinIf(SpanName, Timestamp, ParentSpanId = ''),
       argMin(SpanName, Timestamp)) AS root_span,
    if(countIf(ParentSpanId = '') > 0, argMinIf(ServiceName, Timestamp, ParentSpanId = ''),
       argMin(ServiceName, Timestamp)) AS service,
    countIf(StatusCode = 'Error') AS errors,
    countIf({LLM_SPAN}) AS llm_calls,
    arraySort(groupUniqArrayIf({MODEL}, {LLM_SPAN} AND {MODEL} != '')) AS models,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(TotalTokens) AS total_tokens,
    sum(TotalCostUSD) AS cost_usd,
    anyIf(SessionId, SessionId != '') AS session_id,
    anyIf(UserId, UserId != '') AS user_id,
    anyIf(RunId, RunId != '') AS run_id,
    argMinIf({INPUT_SQL}, Timestamp, {INPUT_SQL} != '') AS input_raw,
    argMaxIf({OUTPUT_SQL}, {END_NS}, {OUTPUT_SQL} != '') AS output_raw,
    argMinIf({ERROR_SQL}, Timestamp, StatusCode = 'Error') AS error_text
FROM otel_traces
WHERE TraceId IN {{ids:Array(String)}}
  AND Timestamp >= fromUnixTimestamp64Nano({{lo_ns:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{hi_ns:Int64}})
GROUP BY TraceId
"""

# The same without message content, for totals (sessions): no attribute maps are read.
_TOTALS_SQL = _SUMMARY_SQL.replace(
    f"argMinIf({INPUT_SQL}, Timestamp, {INPUT_SQL} != '') AS input_raw", "'' AS input_raw"
).replace(f"argMaxIf({OUTPUT_SQL}, {END_NS}, {OUTPUT_SQL} != '') AS output_raw", "'' AS output_raw").replace(
    f"argMinIf({ERROR_SQL}, Timestamp, StatusCode = 'Error') AS error_text", "'' AS error_text"
)

# Time range of traces by id, from trace_index (migration 10: ordered by TraceId and partitioned
# by month, so this opens one or two parts and reads a few small granules in each, where the
# exporter's otel_traces_trace_id_ts, partitioned by day, opens one part per day of retention).
RANGE_SQL = """
SELECT count() AS n, toInt64(min(Start)) AS lo_s, toInt64(max(End)) AS hi_s
FROM trace_index
WHERE TraceId IN {ids:Array(String)}
"""


def _range_of(store: Store, ids: list[str]) -> tuple[int, int] | None:
    """[lo, hi) in Unix ns covering every span of the traces, from trace_index.

    Its Start/End are span start times cut to whole seconds, so hi is End + 1 s."""
    _, rows = store.query(RANGE_SQL, parameters={"ids": ids})
    n, lo_s, hi_s = rows[0]
    if not n:
        return None
    return lo_s * 1_000_000_000, (hi_s + 1) * 1_000_000_000


def _scores_by_trace(store: Store, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Scores per trace, {name: mean value, or the latest label for label-only scores}, from
    the scores table (scores of the trace itself and of any of its spans)."""
    from tracehouse_collector.store import ddl

    if SCORES_TABLE not in ddl.tables():
        return {}
    try:
        _, rows = store.query(
            f"SELECT TraceId, Name, avg(Value) AS v, argMaxIf(Label, Timestamp, Label != '') AS l "
            f"FROM {SCORES_TABLE} WHERE TraceId IN {{ids:Array(String)}} GROUP BY TraceId, Name ORDER BY Name",
            parameters={"ids": ids},
        )
    except StoreError:  # a store not yet migrated to the scores table
        return {}
    out: dict[str, dict[str, Any]] = {}
    for tid, name, v, label in rows:
        out.setdefault(tid, {})[name] = _score(v, label)
    return out


def _run_names(store: Store, run_ids: list[str]) -> dict[str, str]:
    """run id -> its name (the latest version of the run's row), for the runs that have one."""
    if not run_ids:
        return {}
    try:
        _, rows = store.query(
            "SELECT RunId, argMax(Name, Version) AS name FROM runs WHERE RunId IN {ids:Array(String)} "
            "GROUP BY RunId HAVING name != ''",
            parameters={"ids": run_ids},
        )
    except StoreError:  # a store without the runs table (made by the exporter alone)
        return {}
    return dict(rows)


def _score(mean: float | None, label: str) -> Any:
    """A score as traces show it: the mean value, or the latest label for label-only scores."""
    return round(mean, 6) if mean is not None and math.isfinite(mean) else (label or None)


def trace_summaries(
    store: Store, ids: list[str], chars: int = PREVIEW_CHARS, content: bool = True
) -> dict[str, dict[str, Any]]:
    """Summary rows (TRACE_COLUMNS) of the given traces, by trace id; without `content`, input,
    output and scores stay empty (and cost nothing to read)."""
    if not ids:
        return {}
    bounds = _range_of(store, ids)
    if bounds is None:
        return {}
    params = {"ids": ids, "lo_ns": bounds[0], "hi_ns": bounds[1]}
    columns, rows = store.query(_SUMMARY_SQL if content else _TOTALS_SQL, parameters=params)
    return _summary_records(store, [dict(zip(columns, row, strict=True)) for row in rows], chars, content)


def _summary_records(
    store: Store, records: list[dict[str, Any]], chars: int, content: bool
) -> dict[str, dict[str, Any]]:
    """TRACE_COLUMNS rows (and `_start_ns`) by trace id, of _SUMMARY_SQL's records, with scores
    and run names when `content`."""
    ids = [r["TraceId"] for r in records]
    scores = _scores_by_trace(store, ids) if content and ids else {}
    run_names = _run_names(store, sorted({r["run_id"] for r in records} - {""})) if content else {}
    out = {}
    for r in records:
        tid = r["TraceId"]
        out[tid] = {
            "trace_id": tid,
            "start_time": iso(r["start_ns"]),
            "root_span": r["root_span"],
            "service": r["service"],
            "status": "error" if r["errors"] else "ok",
            "latency_ms": round((r["end_ns"] - r["start_ns"]) / 1e6, 3),
            "spans": r["spans"],
            "llm_calls": r["llm_calls"],
            "models": list(r["models"]),
            "input_tokens": r["input_tokens"],
            "output_tokens": r["output_tokens"],
            "total_tokens": r["total_tokens"],
            "cost_usd": _money(r["cost_usd"]),
            "session_id": r["session_id"],
            "user_id": r["user_id"],
            "run_id": r["run_id"],
            "input": preview(content_text(r["input_raw"], "user"), chars),
            "output": preview(content_text(r["output_raw"]), chars),
            "scores": scores.get(tid, {}),
            "error": preview(r["error_text"], chars) if r["errors"] else "",
            "run_name": run_names.get(r["run_id"], ""),
            "_start_ns": r["start_ns"],
        }
    return out


# Pages, sorted listings, counts, facets and sorted sessions read per-trace totals from trace_summary
# (migration 11): rows of (hour of first span, trace id) with the totals of the spans each
# summarises. A trace can have several rows (its spans arrived in several inserts), so every
# read groups them by TraceId; a time range reads only its own hours' rows.
SUMMARY_TABLE = "trace_summary"

# The rows of a page from trace_summary (migration 11): all rows of each trace, found by the
# hours its spans cover (trace_index) and its id, the key's two columns, in a few granules of 256
# rows; the spans' granules hold about 10 MB of attribute maps each.
_PAGE_SQL = f"""
SELECT
    TraceId,
    toUnixTimestamp64Nano(min(Start)) AS start_ns,
    toUnixTimestamp64Nano(max(End)) AS end_ns,
    sum(Spans) AS spans,
    min(Root).3 AS root_span,
    min(Root).4 AS service,
    sum(Errors) AS errors,
    sum(LlmCalls) AS llm_calls,
    arraySort(groupUniqArrayArray(Models)) AS models,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(TotalTokens) AS total_tokens,
    sum(CostUSD) AS cost_usd,
    arraySort(groupUniqArrayArray(Facets)) AS facets,
    min(Input).2 AS input_raw,
    max(Output).2 AS output_raw,
    min(FirstError).2 AS error_text
FROM {SUMMARY_TABLE}
WHERE Hour IN (SELECT arrayJoin(arrayMap(h -> toDateTime(h), range(
        toUInt32(toStartOfHour(min(Start))), toUInt32(toStartOfHour(max(End))) + 1, 3600)))
    FROM trace_index WHERE TraceId IN {{ids:Array(String)}} GROUP BY TraceId)
  AND TraceId IN {{ids:Array(String)}}
GROUP BY TraceId
"""


def page_summaries(store: Store, ids: list[str], chars: int = PREVIEW_CHARS) -> dict[str, dict[str, Any]]:
    """trace_summaries of a page's traces, read from trace_summary rather than their spans."""
    if not ids:
        return {}
    columns, rows = store.query(_PAGE_SQL, parameters={"ids": ids})
    records = []
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        for field in ("session", "user", "run"):  # the first id of each kind, as the spans' any()
            r[f"{field}_id"] = next((v for f, v in r["facets"] if f == field), "")
        records.append(r)
    return _summary_records(store, records, chars, content=True)


def _money(value: Any) -> Decimal:
    return Decimal(value).normalize() if value else Decimal(0)


def json_ready(value: Any) -> Any:
    """`value` with every Decimal as a plain decimal string ("0.0000001", never "1E-7");
    the rest is left for output.jsonable."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


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
    after = _decode_cursor(cursor)

    top = after[0] if after else until_ns if until_ns is not None else _now_ns()
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
    next_cursor = _encode_cursor(page[-1]["_start_ns"], page[-1]["trace_id"]) if more else None
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
    window = ["TraceId != ''", *_time_conditions(lo, until_ns, params)]
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
SCORE_SORT = "score."
# A sorted listing, a count or facets read the summary rows of [since, until + LOOKBACK) and
# leave out every trace with a row in the LOOKBACK before `since` (it started earlier). The
# exception is a trace with no span in the LOOKBACK next to a bound: one with spans more than
# LOOKBACK before `since` and none in it is counted (a page still drops it: its summary knows
# its real start); spans more than LOOKBACK after `until` are missing from its sort key. The
# narrow summary rows make a day affordable (reading spans, an hour was).
LOOKBACK_NS = 86400 * 1_000_000_000


@dataclass(frozen=True)
class Sort:
    column: str  # a key of SORTS, or score.NAME
    descending: bool = True

    @property
    def spec(self) -> str:
        return f"{self.column}:{'desc' if self.descending else 'asc'}"


NEWEST_FIRST = Sort("start_time", True)


def _parse_sort(text: str | None, default: Sort, columns: list[str], scores: bool) -> Sort:
    """`column`, `column:asc` or `column:desc` (the default) -> Sort; ValueError names the columns."""
    if not text or not text.strip():
        return default
    column, _, direction = text.strip().partition(":")
    direction = direction.lower() or "desc"
    known = column in columns or (scores and column.startswith(SCORE_SORT) and len(column) > len(SCORE_SORT))
    if not known or direction not in ("asc", "desc"):
        names = ", ".join([*columns, "score.NAME"] if scores else columns)
        raise ValueError(f"bad sort {text!r}: one of {names}, optionally with :asc or :desc")
    return Sort(column, direction == "desc")


def parse_sort(text: str | None) -> Sort:
    """The traces list's order: a column of SORTS or score.NAME, descending unless `:asc`."""
    return _parse_sort(text, NEWEST_FIRST, list(SORTS), scores=True)


def _keyset_after(cursor: str | None, order: Sort, id_column: str, params: dict[str, Any], ids: re.Pattern | None) -> str:
    """The WHERE clause of a sorted page that starts after the cursor's (key, id), or ''."""
    if not cursor:
        return ""
    kind, params["c_key"], params["c_id"] = _decode_sorted_cursor(cursor, order, ids)
    key = "toDecimal128({c_key:String}, 12)" if kind.startswith("Decimal") else f"{{c_key:{kind}}}"
    cmp = "<" if order.descending else ">"
    return f"WHERE key {cmp} {key} OR (key = {key} AND {id_column} {cmp} {{c_id:String}})"


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


def _trace_set_sql(
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
    window = ["TraceId != ''", *_time_conditions(since_ns, span_hi, params)]
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
        inner = _trace_set_sql(since_ns, until_ns, filters, params, aggregate, checked=True)
        return f"SELECT TraceId, key FROM ({inner})"
    if not _scores_available():
        raise ValueError("this store has no scores table: sort by a score needs it")
    params["sort_score"] = order.column[len(SCORE_SORT) :]
    # Traces without a numeric score of that name come last in either direction.
    missing = "-1e308" if order.descending else "1e308"
    inner = _trace_set_sql(since_ns, until_ns, filters, params, checked=True)
    return (
        f"SELECT t.TraceId AS TraceId, ifNull(s.v, {missing}) AS key FROM ({inner}) AS t LEFT JOIN "
        f"(SELECT TraceId, avg(Value) AS v FROM {SCORES_TABLE} WHERE Name = {{sort_score:String}} "
        "AND TraceId != '' GROUP BY TraceId) AS s ON t.TraceId = s.TraceId"
    )


def _cursor_value(value: Any) -> tuple[str, str]:
    """(ClickHouse parameter type, text) of a sort key, exactly as the store returned it."""
    if isinstance(value, Decimal):
        return "Decimal128(12)", format(value, "f")
    if isinstance(value, float):
        return "Float64", repr(value)
    return "Int64", str(int(value))


def _encode_sorted_cursor(order: Sort, value: Any, trace_id: str) -> str:
    kind, text = _cursor_value(value)
    raw = json.dumps([order.spec, kind, text, trace_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_sorted_cursor(cursor: str, order: Sort, id_pattern: re.Pattern | None = TRACE_ID_RE) -> tuple[str, str, str]:
    """(type, value, row id) after which a sorted page starts; the id is a trace id unless
    `id_pattern` is None."""
    try:
        spec, kind, text, tid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise ValueError(f"bad cursor {cursor!r}: pass the next_cursor of the previous page unchanged") from None
    if spec != order.spec or kind not in ("Decimal128(12)", "Float64", "Int64") or (id_pattern and not id_pattern.match(str(tid))):
        raise ValueError(f"cursor {cursor!r} belongs to another listing (sort {spec}, not {order.spec})")
    return kind, str(text), str(tid)


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
    where = _keyset_after(cursor, order, "TraceId", params, TRACE_ID_RE)
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
    next_cursor = _encode_sorted_cursor(order, page[-1][1], page[-1][0]["trace_id"]) if more else None
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
    inner = _trace_set_sql(parse_time(since, "since"), parse_time(until, "until"), filters, params)
    _, rows = store.query(f"SELECT count() FROM ({inner})", parameters=params)
    return int(rows[0][0])


# Facets: filter field -> its span expression (as the filter language compares it), so a click
# on a value adds `field = 'value'` and keeps exactly the traces counted.
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
    inner = _trace_set_sql(since_ns, until_ns, filters, params, ", groupUniqArrayArray(Facets) AS pairs")
    _, rows = store.query(
        f"SELECT p.1 AS field, p.2 AS value, count() AS traces FROM ({inner}) ARRAY JOIN pairs AS p "
        "GROUP BY field, value ORDER BY traces DESC, value LIMIT {size:UInt32} BY field",
        parameters=params,
    )
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in FACETS}
    for field, value, n in rows:
        out[field].append({"value": value, "traces": n})
    # A run is filtered by its id but read by its name: runs with a name carry it as "label".
    names = _run_names(store, [v["value"] for v in out["run"]])
    for v in out["run"]:
        if v["value"] in names:
            v["label"] = names[v["value"]]
    if _scores_available():
        listed = _trace_set_sql(since_ns, until_ns, filters, params)
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


# -- get_trace -------------------------------------------------------------------------------

# The trace's time range, from trace_index (migration 10: the trace-id time table partitioned by
# month, so a lookup opens one or two parts instead of one per day of retention).
TRACE_INDEX = "trace_index"
LOOKUP_RANGE_SQL = (
    f"SELECT toUInt32(min(Start)), toUInt32(max(End)) FROM {TRACE_INDEX} WHERE TraceId = {{trace_id:String}}"
)
# The tables a trace's extras come from (scores, operation-details events, annotations), by the
# kind of row they give (EXTRAS_BRANCHES).
EXTRA_TABLES = {"score": SCORES_TABLE, "details": "otel_logs", "annotation": ANNOTATIONS_TABLE}
# Which of them may hold rows: they are usually empty, and reading an empty table still costs a
# statement's planning (~4 ms of CPU each, ~13 ms for the three at 50k spans, a third of a
# lookup), while this costs ~2. total_rows is exact for a MergeTree table and NULL for a
# Distributed one (then the table is read); a table that does not exist (a store the exporter
# made without otel_logs) is not listed.
FILLED_TABLES_SQL = (
    "SELECT name FROM system.tables WHERE database = currentDatabase()"
    f" AND name IN {tuple(name.rpartition('.')[2] for name in EXTRA_TABLES.values())}"
    " AND NOT total_rows <=> 0"
)

# The trace's spans within its time range (whole seconds, from LOOKUP_RANGE_SQL: `start`, `end`),
# so the read prunes other days' partitions and, by the primary key's time and the TraceId bloom
# filter, most granules of the day. The range comes from a statement of its own and is passed as
# parameters: as a scalar subquery in this statement (WITH (...) AS trace_range) planning it
# cost about as much as the separate statement (median 18.2 against 17.9 ms at 50k spans, the
# range statement included; docs/benchmarks.md), and an unknown id stops after the range.
SPANS_SQL = """
SELECT
    SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
    toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration,
    StatusCode, StatusMessage, ScopeName,
    SpanAttributes, ResourceAttributes,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns, Events.Name, Events.Attributes,
    Links.TraceId, Links.SpanId,
    GenAIOperation, GenAIProvider, GenAIRequestModel, GenAIResponseModel,
    InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens, TotalTokens,
    TokensEstimated, TotalCostUSD, SessionId, UserId, RunId
FROM otel_traces
WHERE TraceId = {trace_id:String}
  AND Timestamp >= toDateTime64({start:UInt32}, 9)
  AND Timestamp < toDateTime64({end:UInt32} + 1, 9)
ORDER BY Timestamp, SpanId
LIMIT {max_spans:UInt32}
SETTINGS use_skip_indexes_on_data_read = 0
"""
# use_skip_indexes_on_data_read = 0: the TraceId bloom filter drops granules while the read is
# planned, so only the few that may hold the trace get column readers; applied while reading
# (the default), every granule of the day gets them and is skipped one by one. Measured with
# disjoint trace ids per variant (bench/query stores, 2 loaded cores): median 58.8 -> 54.4 ms at
# 10M spans, no difference at 1M. Skipping the range's implicit min-max projection and the
# parts' column statistics (optimize_use_implicit_projections, use_statistics) measured no
# difference; nor did 1 MB granules or compact parts for the wide read (docs/benchmarks.md).


def trace_range(store: Store, trace_id: str) -> tuple[int, int] | None:
    """(first, last) span start of a trace in whole Unix seconds, from trace_index; None for an
    id it does not hold."""
    _, rows = store.query(LOOKUP_RANGE_SQL, parameters={"trace_id": trace_id})
    start, end = rows[0]
    return (start, end) if end else None  # no rows: min and max of nothing are 0


def filled_extra_tables(store: Store) -> list[str]:
    """The kinds of EXTRA_TABLES whose tables may hold rows."""
    _, rows = store.query(FILLED_TABLES_SQL)
    names = {name for (name,) in rows}
    return [kind for kind, table in EXTRA_TABLES.items() if table.rpartition(".")[2] in names]


def _span_node(
    r: dict[str, Any], trace_start: int, event_content: dict[str, str] | None = None
) -> dict[str, Any]:
    """One span of the tree; `event_content`: the content its operation-details event carried,
    read where the span itself has none (content captured as events only)."""
    attrs: dict[str, str] = r["SpanAttributes"]
    content = {**event_content, **attrs} if event_content else attrs
    input_raw = next((content[k] for k in INPUT_KEYS if content.get(k)), "")
    output_raw = next((content[k] for k in OUTPUT_KEYS if content.get(k)), "")
    node: dict[str, Any] = {
        "span_id": r["SpanId"],
        "parent_span_id": r["ParentSpanId"],
        "name": r["SpanName"],
        "kind": r["SpanKind"],
        "service": r["ServiceName"],
        "start_time": iso(r["start_ns"]),
        "offset_ms": round((r["start_ns"] - trace_start) / 1e6, 3),
        "duration_ms": round(r["Duration"] / 1e6, 3),
        "status": r["StatusCode"],
        "status_message": r["StatusMessage"],
        "operation": r["GenAIOperation"],
        "provider": r["GenAIProvider"],
        "model": r["GenAIResponseModel"] or r["GenAIRequestModel"],  # this call's own model
        "request_model": r["GenAIRequestModel"],
        "input_tokens": r["InputTokens"],
        "output_tokens": r["OutputTokens"],
        "cache_read_tokens": r["CacheReadTokens"],
        "cache_write_tokens": r["CacheWriteTokens"],
        "reasoning_tokens": r["ReasoningTokens"],
        "total_tokens": r["TotalTokens"],
        "tokens_estimated": bool(r["TokensEstimated"]),
        "cost_usd": _money(r["TotalCostUSD"]),
        "session_id": r["SessionId"],
        "user_id": r["UserId"],
        "run_id": r["RunId"],
        "input": parse(input_raw) if input_raw else None,
        "output": parse(output_raw) if output_raw else None,
        "tool_calls": tool_calls_of(content.get(OUTPUT_MESSAGES, "")),
        "tool_definitions": tool_definitions(content.get(TOOL_DEFINITIONS, "")),
        "system_instructions": parse(content[SYSTEM_INSTRUCTIONS])
        if content.get(SYSTEM_INSTRUCTIONS)
        else None,
        "finish_reasons": finish_reasons(content),
        "content_truncated": truncated_content(content, CONTENT_KEYS),
        "tool": None,
        "error": None,
        "events": [],
        "links": [
            {"trace_id": t, "span_id": s} for t, s in zip(r["Links.TraceId"], r["Links.SpanId"], strict=True)
        ],
        "scope": r["ScopeName"],
        "attributes": dict(attrs),
        "resource": dict(r["ResourceAttributes"]),
        "orphan": False,
        "children": [],
    }
    if attrs.get("gen_ai.tool.name") or r["GenAIOperation"] == "execute_tool":
        node["tool"] = {
            "name": attrs.get("gen_ai.tool.name", ""),
            "call_id": attrs.get("gen_ai.tool.call.id", ""),
            "arguments": parse(attrs.get("gen_ai.tool.call.arguments", "")) or None,
            "result": parse(attrs.get("gen_ai.tool.call.result", "")) or None,
        }
    for ns, name, ev_attrs in zip(r["event_ns"], r["Events.Name"], r["Events.Attributes"], strict=True):
        node["events"].append(
            {"name": name, "offset_ms": round((ns - trace_start) / 1e6, 3), "attributes": dict(ev_attrs)}
        )
        if name == "exception" and node["error"] is None:
            node["error"] = {
                "type": ev_attrs.get("exception.type", ""),
                "message": ev_attrs.get("exception.message", ""),
            }
    if r["StatusCode"] == "Error" and node["error"] is None:
        node["error"] = {"type": attrs.get("error.type", ""), "message": r["StatusMessage"]}
    return node


# The GenAI conventions' event that carries a call's content as structured values; with
# content captured as events only (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY)
# it is the only place the content is. It is a log record on the call's span (otel_logs).
OPERATION_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# The event is emitted when its call ends: it is looked for from the trace's first span start to
# an hour after its last (trace_index keeps span starts only; no model call runs for an hour), so
# the read needs nothing from the span read and runs beside it (get_trace).
DETAILS_AFTER_S = 3600
_DETAILS_BRANCH = f"""WITH ({LOOKUP_RANGE_SQL}) AS trace_range
SELECT 'details', SpanId, '', NULL, '', LogAttributes
FROM otel_logs
WHERE TraceId = {{trace_id:String}} AND EventName = {{event:String}}
  AND Timestamp >= toDateTime64(trace_range.1, 9)
  AND Timestamp < toDateTime64(trace_range.2 + 1 + {DETAILS_AFTER_S}, 9)
LIMIT {MAX_TRACE_SPANS}"""
_DETAIL_KEYS = (
    SYSTEM_INSTRUCTIONS,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TOOL_DEFINITIONS,
    FINISH_REASONS,
    CONTENT_TRUNCATED,
)


def _detail_content(rows: list[tuple[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    return {sid: {k: attrs[k] for k in _DETAIL_KEYS if attrs.get(k)} for sid, attrs in rows if sid}


# A trace's scores, its calls' operation-details events and its annotations, one branch per
# table, read in one statement (UNION ALL of the branches whose tables may hold rows). Rows:
# ('score', '', name, mean value, latest label, {}), ('details', span id, '', NULL, '', event
# attributes) and ('annotation', span id, name, number value, '', the annotation's other fields).
EXTRAS_BRANCHES = {
    "score": f"""SELECT 'score' AS kind, '' AS span_id, toString(Name) AS name, avg(Value) AS value,
    argMaxIf(Label, Timestamp, Label != '') AS label,
    CAST(map(), 'Map(LowCardinality(String), String)') AS attributes
FROM {SCORES_TABLE}
WHERE TraceId = {{trace_id:String}}
GROUP BY Name""",
    "details": _DETAILS_BRANCH,
    "annotation": f"""SELECT 'annotation', SpanId, toString(Name), NumberValue, '',
    CAST(map({", ".join(f"'{k}', {c}" for k, c in ANNOTATION_FIELDS.items())}),
         'Map(LowCardinality(String), String)')
FROM (
    SELECT * FROM {ANNOTATIONS_TABLE} WHERE TraceId = {{trace_id:String}}
    ORDER BY Version DESC LIMIT 1 BY AnnotationId
)
LIMIT {MAX_ANNOTATIONS}""",
}


def _extras_rows(store: Store, params: dict[str, Any], kinds: list[str]) -> list[tuple[Any, ...]]:
    """The rows of the EXTRAS_BRANCHES of `kinds`; if one statement fails (a store not migrated
    to one of the tables), each branch alone, a failing one answering none."""
    if not kinds:
        return []
    sql = "\nUNION ALL\n".join(f"({EXTRAS_BRANCHES[k]})" for k in kinds)
    try:
        return store.query(sql, parameters=params, describe_empty=False)[1]
    except StoreError:
        if len(kinds) == 1:
            return []
        return [row for k in kinds for row in _extras_rows(store, params, [k])]


def _trace_extras(
    store: Store, trace_id: str, kinds: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, str]], list[dict[str, Any]]]:
    """(scores as _scores_by_trace gives them, span id -> the content keys of its
    operation-details event, the annotations on the trace and its spans, oldest first) of one
    trace, read from the EXTRA_TABLES of `kinds` (default: those filled_extra_tables gives)."""
    if kinds is None:
        kinds = filled_extra_tables(store)
    params = {"trace_id": trace_id, "event": OPERATION_DETAILS_EVENT}
    rows = _extras_rows(store, params, kinds)
    scored = sorted((r for r in rows if r[0] == "score"), key=lambda r: r[2])
    scores = {name: _score(v, label) for _, _, name, v, label, _ in scored}
    details = _detail_content([(sid, attrs) for kind, sid, _, _, _, attrs in rows if kind == "details"])
    notes = [
        annotation_from_fields({**attrs, "time": iso(int(attrs["time"]))}, span, name, number)
        for kind, span, name, number, _, attrs in rows
        if kind == "annotation"
    ]
    return scores, details, sorted(notes, key=lambda a: (a["time"], a["id"]))


# Where get_trace reads a trace's extras beside its spans (threads start on first use; the
# store's reader slots still bound how many queries run at once).
_EXTRAS_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tracehouse-trace-extras")


def build_tree(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Link span nodes (in start order) to their parents; returns the top level.

    Every span appears exactly once: one whose parent is missing, or that sits in a parent
    cycle (a broken producer), goes to the top level marked "orphan"."""
    by_id = {n["span_id"]: n for n in nodes}
    parent_of: dict[int, dict[str, Any]] = {}
    roots = []
    for n in nodes:
        parent = by_id.get(n["parent_span_id"]) if n["parent_span_id"] else None
        if parent is not None and parent is not n:
            parent["children"].append(n)
            parent_of[id(n)] = parent
        else:
            n["orphan"] = bool(n["parent_span_id"])
            roots.append(n)
    seen = {id(s) for _, s in walk(roots)}
    for n in nodes:
        if id(n) not in seen:  # in a cycle: cut it here and hang it at the top
            parent_of[id(n)]["children"].remove(n)
            n["orphan"] = True
            roots.append(n)
            seen.update(id(s) for _, s in walk([n]))
    return roots


def get_trace(store: Store, trace_id: str) -> dict[str, Any]:
    """The whole trace as a tree: every span with timing offsets from the trace start, GenAI
    facts, content, tool calls, errors, events and attributes. Spans whose parent never
    arrived are kept at the top level with "orphan": true. Raises NotFound."""
    tid = check_trace_id(trace_id)
    # The extras (scores, event content, annotations: small reads of the tables that may hold
    # rows, usually none) on a thread and read connection of their own, beside the range lookup
    # and the span read here.
    extras = _EXTRAS_READS.submit(_trace_extras, store, tid)
    try:
        span_range = trace_range(store, tid)
        if span_range is None:
            raise NotFound(f"trace {tid} not found")
        start_s, end_s = span_range
        params = {"trace_id": tid, "start": start_s, "end": end_s, "max_spans": MAX_TRACE_SPANS + 1}
        columns, rows = store.query(SPANS_SQL, parameters=params, describe_empty=False)
    finally:
        wait([extras])  # no read of this lookup outlives it (a caller may close the store next)
    if not rows:
        raise NotFound(f"trace {tid} not found")
    truncated = len(rows) > MAX_TRACE_SPANS
    rows = rows[:MAX_TRACE_SPANS]
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    start = min(r["start_ns"] for r in records)
    end = max(r["start_ns"] + r["Duration"] for r in records)
    scores, details, notes = extras.result()
    nodes = [_span_node(r, start, details.get(r["SpanId"])) for r in records]
    by_span: dict[str, list[dict[str, Any]]] = {}
    for a in notes:
        by_span.setdefault(a["span_id"], []).append(a)
    for n in nodes:
        n["annotations"] = by_span.get(n["span_id"], [])
    roots = build_tree(nodes)
    llm = [n for n in nodes if n["model"] and n["operation"] not in NON_MODEL_OPERATIONS]  # as LLM_SPAN
    return {
        "trace_id": tid,
        "start_time": iso(start),
        "duration_ms": round((end - start) / 1e6, 3),
        "span_count": len(nodes),
        "services": sorted({n["service"] for n in nodes}),
        "status": "error" if any(n["status"] == "Error" for n in nodes) else "ok",
        "llm_calls": len(llm),
        "models": sorted({model_identity(n["model"]) for n in llm}),
        "input_tokens": sum(n["input_tokens"] for n in nodes),
        "output_tokens": sum(n["output_tokens"] for n in nodes),
        "total_tokens": sum(n["total_tokens"] for n in nodes),
        "cost_usd": _money(sum((n["cost_usd"] for n in nodes), Decimal(0))),
        "session_id": next((n["session_id"] for n in nodes if n["session_id"]), ""),
        "user_id": next((n["user_id"] for n in nodes if n["user_id"]), ""),
        "run_id": next((n["run_id"] for n in nodes if n["run_id"]), ""),
        "scores": scores,
        "annotations": [a for a in notes if not a["span_id"]],
        "truncated": truncated,
        "spans": roots,
    }


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
    bounds = _range_of(store, ids)
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
    after = _decode_cursor(cursor)
    top = after[0] if after else until_ns if until_ns is not None else _now_ns()
    lows: list[int | None] = [
        top - w * 1_000_000_000 for w in WINDOWS_S if since_ns is None or top - w * 1_000_000_000 > since_ns
    ]
    lows.append(since_ns)
    for lo in lows:
        # max() over a window is exact for every session seen in it: no impostors here.
        params: dict[str, Any] = {"n": limit + 1}
        conds = ["SessionId != ''", *_time_conditions(lo, until_ns, params)]
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
    next_cursor = _encode_cursor(page[-1][1], page[-1][0]) if more else None
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
                _money(tot["cost_usd"]),
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
    return _parse_sort(text, LAST_ACTIVE_FIRST, list(SESSION_SORTS), scores=False)


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
    traces_sql = _trace_set_sql(
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
    where = _keyset_after(cursor, order, "SessionId", params, None)
    direction = "DESC" if order.descending else "ASC"
    _, found = store.query(
        f"SELECT * FROM ({keyed}) {where} ORDER BY key {direction}, SessionId {direction} LIMIT {{n:UInt32}}",
        parameters=params,
    )
    page, more = found[:limit], len(found) > limit
    rows = [(sid, user, iso(first), iso(last), *counts, _money(cost)) for sid, user, first, last, *counts, cost, _ in page]
    next_cursor = _encode_sorted_cursor(order, page[-1][-1], page[-1][0]) if more else None
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
        "cost_usd": _money(sum((s["cost_usd"] for s in ordered), Decimal(0))),
        "turns": turns,
    }
