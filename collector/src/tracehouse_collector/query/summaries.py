"""The one-row-per-trace summary the traces list and sessions show: totals, root span, first
input, last output, first error, scores and run name of each trace.

A page's rows are read from `trace_summary` (one row per trace and hour of its first span), found
by hour and id (page_summaries); a session's traces from their spans, restricted to the time
range `trace_index` gives them (trace_summaries).
"""

from __future__ import annotations

import math
from typing import Any

from tracehouse_collector.processors.normalize import NON_MODEL_OPERATIONS
from tracehouse_collector.query.genai_content import INPUT_KEYS, OUTPUT_KEYS, content_text
from tracehouse_collector.query.model_identity import MODEL_SQL
from tracehouse_collector.query.paging import iso
from tracehouse_collector.query.trace_shape import PREVIEW_CHARS, preview
from tracehouse_collector.query.values import money
from tracehouse_collector.store.client import Store, StoreError

SCORES_TABLE = "otel_scores"
# Attribute values are cut before they leave ClickHouse; prompts can be megabytes.
RAW_CHARS = 16384


# -- SQL pieces ------------------------------------------------------------------------------

_NON_MODEL = ", ".join(f"'{op}'" for op in sorted(NON_MODEL_OPERATIONS))
# An LLM call: a span with a model whose operation consumes tokens (not an agent or tool step).
# (Migration 0011, frozen, names it by its former home: query/traces.py LLM_SPAN.)
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


def time_range_of(store: Store, ids: list[str]) -> tuple[int, int] | None:
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
        out.setdefault(tid, {})[name] = score_value(v, label)
    return out


def names_of_runs(store: Store, run_ids: list[str]) -> dict[str, str]:
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


def score_value(mean: float | None, label: str) -> Any:
    """A score as traces show it: the mean value, or the latest label for label-only scores."""
    return round(mean, 6) if mean is not None and math.isfinite(mean) else (label or None)


def trace_summaries(
    store: Store, ids: list[str], chars: int = PREVIEW_CHARS, content: bool = True
) -> dict[str, dict[str, Any]]:
    """Summary rows (TRACE_COLUMNS) of the given traces, by trace id; without `content`, input,
    output and scores stay empty (and cost nothing to read)."""
    if not ids:
        return {}
    bounds = time_range_of(store, ids)
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
    run_names = names_of_runs(store, sorted({r["run_id"] for r in records} - {""})) if content else {}
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
            "cost_usd": money(r["cost_usd"]),
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
