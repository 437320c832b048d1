"""One trace by id: the full span tree with content, tool calls, errors, events, scores,
operation-details events and annotations.

A trace's spans are read from `trace_span_docs` (migration 13: each span as one JSON text,
ordered by trace id), one column and the few blocks that hold the trace. Where that finds none,
the spans are read from otel_traces: `trace_index` (ordered by TraceId, by month) gives the
trace's time range, and the span read is restricted to that range (day partitions prune) and to
the id (the TraceId bloom filter skips granules). Nothing scans all spans for one id.

The traces list is query/trace_list.py, sessions query/sessions.py, the summary row they share
query/summaries.py and their pages and cursors query/paging.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from decimal import Decimal
from typing import Any

import orjson

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
    finish_reasons,
    parse,
    tool_calls_of,
    tool_definitions,
    truncated_content,
)
from tracehouse_collector.query.model_identity import model_identity
from tracehouse_collector.query.paging import iso
from tracehouse_collector.query.summaries import SCORES_TABLE, score_value
from tracehouse_collector.query.trace_shape import check_trace_id, walk
from tracehouse_collector.query.values import money
from tracehouse_collector.store.client import Store, StoreError

MAX_TRACE_SPANS = 20_000  # a trace shows at most its first this-many spans ("truncated": true)

# What the trace view shows as content; the collector cutting any of these shortened it.
CONTENT_KEYS = frozenset((*INPUT_KEYS, *OUTPUT_KEYS, SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS))


class NotFound(LookupError):
    """No trace / session with that id."""


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
# made without otel_logs) is not listed. It is compared here rather than in the statement:
# filtering on total_rows there doubled the statement's time (1.8 against 3.6 ms at 50k spans).
FILLED_TABLES_SQL = (
    "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase()"
    f" AND name IN {tuple(name.rpartition('.')[2] for name in EXTRA_TABLES.values())}"
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


# The trace's spans as the JSON texts migration 13's view wrote: one column, in the few 128 KiB
# blocks that hold the trace (otel_traces' SPANS_SQL opens some thirty columns, each in blocks of
# granules up to 8192 spans: ~20 ms against ~3 at 1M spans). Unordered, they are sorted here
# (ordering them in the statement cost a millisecond or two of its ~4 at 50k spans); only a
# trace over the span limit is read again in order (DOCS_SQL), to cut it at its first spans.
UNORDERED_DOCS_SQL = """
SELECT Span FROM trace_span_docs
WHERE TraceId = {trace_id:String}
LIMIT {max_spans:UInt32}
"""
DOCS_SQL = """
SELECT Span FROM trace_span_docs
WHERE TraceId = {trace_id:String}
ORDER BY Timestamp, SpanId
LIMIT {max_spans:UInt32}
"""
# The document's 64-bit fields: numbers or strings, as the server's JSON settings wrote them.
_DOC_INTS = (
    "start_ns",
    "Duration",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "ReasoningTokens",
    "TotalTokens",
)


def span_record_of_doc(doc: str | bytes) -> dict[str, Any]:
    """One span document of trace_span_docs as the record SPANS_SQL gives (same keys, types)."""
    try:
        r: dict[str, Any] = orjson.loads(doc)
    except orjson.JSONDecodeError:  # bytes that are not UTF-8, as another writer may store them
        raw = doc if isinstance(doc, bytes) else doc.encode("utf-8", "surrogateescape")
        r = orjson.loads(raw.decode("utf-8", "replace"))
    for key in _DOC_INTS:
        r[key] = int(r[key])
    r["event_ns"] = [int(ns) for ns in r["event_ns"]]
    r["TotalCostUSD"] = Decimal(r["TotalCostUSD"])
    r["TokensEstimated"] = bool(r["TokensEstimated"])
    return r


def span_records(store: Store, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans (at most MAX_TRACE_SPANS + 1, in start order) as records with SPANS_SQL's
    columns: from trace_span_docs, or where it holds none of them, from otel_traces."""
    params = {"trace_id": trace_id, "max_spans": MAX_TRACE_SPANS + 1}
    _, docs = store.query(UNORDERED_DOCS_SQL, parameters=params, describe_empty=False)
    if len(docs) > MAX_TRACE_SPANS:
        _, docs = store.query(DOCS_SQL, parameters=params, describe_empty=False)
    if docs:
        # as ORDER BY Timestamp, SpanId (code point order is UTF-8 byte order)
        return sorted(
            (span_record_of_doc(doc) for (doc,) in docs), key=lambda r: (r["start_ns"], r["SpanId"])
        )
    span_range = trace_range(store, trace_id)
    if span_range is None:
        return []
    params.update(start=span_range[0], end=span_range[1])
    columns, rows = store.query(SPANS_SQL, parameters=params, describe_empty=False)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def trace_range(store: Store, trace_id: str) -> tuple[int, int] | None:
    """(first, last) span start of a trace in whole Unix seconds, from trace_index; None for an
    id it does not hold."""
    _, rows = store.query(LOOKUP_RANGE_SQL, parameters={"trace_id": trace_id})
    start, end = rows[0]
    return (start, end) if end else None  # no rows: min and max of nothing are 0


def filled_extra_tables(store: Store) -> list[str]:
    """The kinds of EXTRA_TABLES whose tables may hold rows."""
    _, rows = store.query(FILLED_TABLES_SQL)
    names = {name for name, total_rows in rows if total_rows != 0}  # None: unknown, may hold rows
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
        "cost_usd": money(r["TotalCostUSD"]),
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
    scores = {name: score_value(v, label) for _, _, name, v, label, _ in scored}
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
    # rows, usually none) on a thread and read connection of their own, beside the span read
    # here.
    extras = _EXTRAS_READS.submit(_trace_extras, store, tid)
    try:
        records = span_records(store, tid)
    finally:
        wait([extras])  # no read of this lookup outlives it (a caller may close the store next)
    if not records:
        raise NotFound(f"trace {tid} not found")
    truncated = len(records) > MAX_TRACE_SPANS
    records = records[:MAX_TRACE_SPANS]
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
        "cost_usd": money(sum((n["cost_usd"] for n in nodes), Decimal(0))),
        "session_id": next((n["session_id"] for n in nodes if n["session_id"]), ""),
        "user_id": next((n["user_id"] for n in nodes if n["user_id"]), ""),
        "run_id": next((n["run_id"] for n in nodes if n["run_id"]), ""),
        "scores": scores,
        "annotations": [a for a in notes if not a["span_id"]],
        "truncated": truncated,
        "spans": roots,
    }
