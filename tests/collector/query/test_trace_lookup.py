"""get_trace on a real chDB store: the trace's time range, then its spans, and beside them its
extras read from only the tables that may hold rows. A score, an annotation or an
operation-details event that arrives after a lookup found its table empty is in the next
lookup; a store without otel_logs, or one where a branch fails, still answers."""

from __future__ import annotations

import datetime as dt
import json
import statistics

import pytest
from tracehouse_collector.query import evals, summaries, traces
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
