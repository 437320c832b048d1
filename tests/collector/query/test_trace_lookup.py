"""get_trace on a real chDB store: the trace's span documents (or, without them, its time range
and then its spans), and beside them its extras read from only the tables that may hold rows.
The documents give exactly the records the span read gives, and the same tree. A score, an annotation or an
operation-details event that arrives after a lookup found its table empty is in the next
lookup; a store without otel_logs, or one where a branch fails, still answers."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from decimal import Decimal

import pytest
from tracehouse_collector.query import evals, summaries, traces
from tracehouse_collector.query.trace_shape import walk
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.timeout(300)

TRACE = "ab" * 16
ROOT, CALL = "1" * 16, "2" * 16
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
QUESTION = "what is a granule?"


def _ts(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert(store: Store, table: str, rows: list[dict]) -> None:
    body = "\n".join(json.dumps(r) for r in rows)
    store.command(
        f"INSERT INTO tracehouse.{table} SETTINGS date_time_input_format='best_effort' FORMAT JSONEachRow\n{body}"
    )


@pytest.fixture
def store(tmp_path):
    store = Store(f"chdb://{tmp_path}")
    store.migrate()
    # The call's span carries no content: it is in its operation-details event (EVENT_ONLY).
    _insert(
        store,
        "otel_traces",
        [
            {"Timestamp": _ts(START), "TraceId": TRACE, "SpanId": ROOT, "SpanName": "agent run",
             "ServiceName": "bot", "Duration": 3_000_000_000, "StatusCode": "Ok"},
            {"Timestamp": _ts(START + dt.timedelta(seconds=1)), "TraceId": TRACE, "SpanId": CALL,
             "ParentSpanId": ROOT, "SpanName": "chat gpt-4o-mini", "ServiceName": "bot", "Duration": 900_000_000,
             "StatusCode": "Ok", "GenAIOperation": "chat", "GenAIRequestModel": "gpt-4o-mini"},
        ],
    )  # fmt: skip
    yield store
    store.close()


def _add_extras(store: Store) -> list[float]:
    values = [0.25, 0.5, 1.0]
    _insert(
        store,
        "otel_scores",
        [{"Timestamp": _ts(START + dt.timedelta(minutes=i)), "TraceId": TRACE, "Name": "helpfulness", "Value": v,
          "Label": f"l{i}"} for i, v in enumerate(values)],
    )  # fmt: skip
    _insert(
        store,
        "annotations",
        [{"AnnotationId": "note-1", "Timestamp": _ts(START + dt.timedelta(minutes=5)), "Target": "trace",
          "TraceId": TRACE, "Name": "verdict", "Kind": "human", "ValueType": "label", "Value": "good",
          "User": "ann", "Rationale": "clear", "Source": "ui", "Version": 1}],
    )  # fmt: skip
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}])
    _insert(
        store,
        "otel_logs",
        [{"Timestamp": _ts(START + dt.timedelta(seconds=2)), "TraceId": TRACE, "SpanId": CALL,
          "EventName": traces.OPERATION_DETAILS_EVENT, "LogAttributes": {"gen_ai.input.messages": messages}}],
    )  # fmt: skip
    return values


def _call(tree: dict) -> dict:
    (root,) = tree["spans"]
    (call,) = root["children"]
    return call


def test_empty_extra_tables_are_not_read_and_rows_added_later_are(store):
    start = int(START.timestamp())
    assert traces.trace_range(store, TRACE) == (start, start + 1)
    assert traces.filled_extra_tables(store) == []
    tree = traces.get_trace(store, TRACE)
    assert tree["span_count"] == 2 and tree["scores"] == {} and tree["annotations"] == []
    assert _call(tree)["input"] is None

    values = _add_extras(store)
    assert sorted(traces.filled_extra_tables(store)) == ["annotation", "details", "score"]
    tree = traces.get_trace(store, TRACE)
    assert tree["scores"] == {"helpfulness": pytest.approx(statistics.mean(values))}
    assert tree["scores"] == summaries._scores_by_trace(store, [TRACE])[TRACE]
    assert tree["annotations"] == evals.list_annotations(store, trace_id=TRACE)
    assert [(a["name"], a["value"], a["user"]) for a in tree["annotations"]] == [("verdict", "good", "ann")]
    assert QUESTION in json.dumps(_call(tree)["input"])


def test_a_store_without_otel_logs_and_a_failing_branch(store):
    _add_extras(store)
    with_logs = traces.get_trace(store, TRACE)
    store.command("DROP TABLE tracehouse.otel_logs")
    assert sorted(traces.filled_extra_tables(store)) == ["annotation", "score"]
    tree = traces.get_trace(store, TRACE)
    assert _call(tree)["input"] is None
    assert (tree["scores"], tree["annotations"]) == (with_logs["scores"], with_logs["annotations"])
    # Asked for every table, the one statement fails on the missing one: each branch alone then,
    # the failing one answering none.
    scores, details, notes = traces._trace_extras(store, TRACE, list(traces.EXTRA_TABLES))
    assert (scores, details, notes) == (tree["scores"], {}, tree["annotations"])


def test_an_unknown_id(store):
    assert traces.trace_range(store, "cd" * 16) is None
    with pytest.raises(traces.NotFound):
        traces.get_trace(store, "cd" * 16)


# -- the span documents (trace_span_docs, migration 13) against the span read ----------------

WIDE = "cd" * 16
# Values a JSON text must carry exactly: quotes, backslashes, control characters, newlines,
# non-ASCII and astral characters, a long value, numbers past 2**53 and a 12-digit cost.
AWKWARD = 'say "hi"\\n\tthen\x01 stop\r\n— 日本語 🚀 ' + "x" * 70_000
STACK = 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\nValueError: bad'


def _wide_trace(store: Store) -> None:
    at = START + dt.timedelta(minutes=30)
    _insert(
        store,
        "otel_traces",
        [
            {"Timestamp": _ts(at), "TraceId": WIDE, "SpanId": "a" * 16, "SpanName": "agent", "SpanKind": "Server",
             "ServiceName": "svc", "Duration": 2**63 + 5, "StatusCode": "Error", "StatusMessage": "boom",
             "ScopeName": "scope", "SpanAttributes": {"gen_ai.input.messages": AWKWARD, "k": "v"},
             "ResourceAttributes": {"service.name": "svc", "host": "h1"},
             "Events.Timestamp": [_ts(at + dt.timedelta(milliseconds=5))], "Events.Name": ["exception"],
             "Events.Attributes": [{"exception.type": "ValueError", "exception.stacktrace": STACK}],
             "Links.TraceId": [TRACE], "Links.SpanId": [ROOT], "Links.TraceState": [""], "Links.Attributes": [{}],
             "SessionId": "s1", "UserId": "u1", "RunId": "r1"},
            {"Timestamp": _ts(at + dt.timedelta(seconds=1)), "TraceId": WIDE, "SpanId": "b" * 16,
             "ParentSpanId": "a" * 16, "SpanName": "chat m", "ServiceName": "svc", "Duration": 12345,
             "GenAIOperation": "chat", "GenAIProvider": "openai", "GenAIRequestModel": "m",
             "GenAIResponseModel": "m-2024-01-01", "InputTokens": 2**60, "OutputTokens": 7, "CacheReadTokens": 3,
             "CacheWriteTokens": 2, "ReasoningTokens": 1, "TotalTokens": 2**60 + 7, "TokensEstimated": True,
             "TotalCostUSD": "123456.000000000001"},
        ],
    )  # fmt: skip


def _records_from_spans(store: Store, trace_id: str) -> list[dict]:
    start, end = traces.trace_range(store, trace_id)
    params = {"trace_id": trace_id, "start": start, "end": end, "max_spans": traces.MAX_TRACE_SPANS + 1}
    columns, rows = store.query(traces.SPANS_SQL, parameters=params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _records_from_docs(store: Store, trace_id: str) -> list[dict]:
    params = {"trace_id": trace_id, "max_spans": traces.MAX_TRACE_SPANS + 1}
    return [traces.span_record_of_doc(doc) for (doc,) in store.query(traces.DOCS_SQL, parameters=params)[1]]


def test_span_documents_give_the_span_read_records_exactly(store):
    _wide_trace(store)
    for trace_id in (TRACE, WIDE):
        from_docs = _records_from_docs(store, trace_id)
        assert len(from_docs) == 2 and traces.span_records(store, trace_id) == from_docs
        assert from_docs == _records_from_spans(store, trace_id)
        # equal types too: a str "1" and an int 1 differ, a Decimal equals its int
        assert [{k: type(v) for k, v in r.items()} for r in from_docs] == [
            {k: type(v) for k, v in r.items()} for r in _records_from_spans(store, trace_id)
        ]
    call = _records_from_docs(store, WIDE)[1]
    assert call["TotalCostUSD"] == Decimal("123456.000000000001") and call["InputTokens"] == 2**60


def test_the_lookup_is_the_same_with_and_without_span_documents(store):
    _wide_trace(store)
    _add_extras(store)
    with_docs = [traces.get_trace(store, t) for t in (TRACE, WIDE)]
    root = with_docs[1]["spans"][0]
    assert root["attributes"]["gen_ai.input.messages"] == AWKWARD and root["duration_ms"] == round(
        (2**63 + 5) / 1e6, 3
    )
    assert root["events"][0]["attributes"]["exception.stacktrace"] == STACK
    store.command("TRUNCATE TABLE tracehouse.trace_span_docs")  # a store whose spans bypassed the view
    assert _records_from_docs(store, WIDE) == []
    assert traces.span_records(store, WIDE) == _records_from_spans(store, WIDE)
    assert [traces.get_trace(store, t) for t in (TRACE, WIDE)] == with_docs


def test_span_documents_with_quoted_numbers_or_bytes_that_are_not_utf8(store):
    (doc,) = store.query(
        "SELECT Span FROM tracehouse.trace_span_docs WHERE SpanId = {s:String}", parameters={"s": CALL}
    )[1][0]
    expected = traces.span_record_of_doc(doc)
    quoted = json.loads(doc)
    for key in ("start_ns", "Duration", "InputTokens", "TotalTokens"):
        quoted[key] = str(quoted[key])
    quoted["event_ns"] = [str(n) for n in quoted["event_ns"]]
    assert traces.span_record_of_doc(json.dumps(quoted)) == expected
    raw = json.dumps({**json.loads(doc), "SpanName": "chat\udcff"}, ensure_ascii=False).encode(
        "utf-8", "surrogateescape"
    )
    assert traces.span_record_of_doc(raw)["SpanName"] == "chat\ufffd"


def test_a_trace_over_the_span_limit_is_cut_at_the_same_spans_both_ways(store):
    n = traces.MAX_TRACE_SPANS + 3
    store.command(
        "INSERT INTO tracehouse.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, Duration) "
        f"SELECT toDateTime64({int(START.timestamp())}, 9) + toIntervalMillisecond(number % 997), "
        "{t:String}, lower(hex(toUInt64(number + 1))), 'step', 'svc', 1000 FROM numbers({n:UInt64})",
        parameters={"t": WIDE, "n": n},
    )
    tree = traces.get_trace(store, WIDE)
    assert tree["truncated"] is True and tree["span_count"] == traces.MAX_TRACE_SPANS
    shown = sorted(s["span_id"] for _, s in walk(tree["spans"]))
    assert len(_records_from_docs(store, WIDE)) == traces.MAX_TRACE_SPANS + 1
    store.command("TRUNCATE TABLE tracehouse.trace_span_docs")
    again = traces.get_trace(store, WIDE)
    assert again["truncated"] is True and sorted(s["span_id"] for _, s in walk(again["spans"])) == shown


def test_spans_inserted_latest_first_come_in_start_order(store):
    """The documents are read unordered and sorted by (start, span id); spans of one trace in
    several parts, inserted latest first, still come in the span read's order."""
    for k in (3, 2, 1):
        _insert(
            store,
            "otel_traces",
            [{"Timestamp": _ts(START + dt.timedelta(seconds=k)), "TraceId": WIDE, "SpanId": f"{k}{s}" * 8,
              "SpanName": f"step {k}", "ServiceName": "svc", "Duration": 1000} for s in "ba"],
        )  # fmt: skip
    records = traces.span_records(store, WIDE)
    assert [r["SpanId"] for r in records] == ["1a" * 8, "1b" * 8, "2a" * 8, "2b" * 8, "3a" * 8, "3b" * 8]
    assert records == _records_from_spans(store, WIDE)


def test_span_documents_in_blocks_of_up_to_a_mebibyte_read_back_the_same(store):
    """The documents are compressed in blocks of up to 1 MiB (a block a granule: less CPU and
    disk than 128 KiB blocks, docs/benchmarks.md); a trace whose documents fill several granules
    and blocks reads back the span read's records."""
    settings = store.query(
        "SELECT create_table_query FROM system.tables WHERE database = 'tracehouse' AND name = 'trace_span_docs'"
    )[1][0][0]
    assert "min_compress_block_size = 131072, max_compress_block_size = 1048576" in settings
    at = START + dt.timedelta(minutes=40)
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "words " * 600}]}])
    _insert(
        store,
        "otel_traces",
        [{"Timestamp": _ts(at + dt.timedelta(milliseconds=i)), "TraceId": WIDE, "SpanId": f"{i:016x}",
          "SpanName": "chat m", "ServiceName": "svc", "Duration": i,
          "SpanAttributes": {"gen_ai.input.messages": f"{i} {prompt}"}} for i in range(900)],
    )  # fmt: skip
    blocks = store.query(
        "SELECT sum(marks), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = 'tracehouse' AND table = 'trace_span_docs' AND active"
    )[1][0]
    assert blocks[0] >= 4 and blocks[1] > 2 << 20  # several granules, more than 2 MiB of documents
    from_docs = _records_from_docs(store, WIDE)
    assert len(from_docs) == 900 and from_docs == _records_from_spans(store, WIDE)
