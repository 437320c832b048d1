"""Sorted trace pages, counts, facets and sorted sessions (read from trace_summary, migration 11)
against plain SQL over every span of otel_traces, on data with known answers.

The spans arrive in several inserts, so a trace can have several summary rows: one trace's spans
come in three inserts over three hours, one starts before the window and continues inside it,
one starts inside and continues past its end, one started more than the lookback before the
window. Every expectation is computed by GROUP BY TraceId over the spans themselves (or in
Python from the inserted rows), before and after the summary's rows are merged.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

import pytest
from tracehouse_collector.query import trace_list
from tracehouse_collector.query.sessions import list_sessions
from tracehouse_collector.query.summaries import trace_summaries
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.timeout(300)

# The listing window [SINCE, UNTIL), 12 hours long, well inside the lookback of a day.
UNTIL = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
SINCE = UNTIL - dt.timedelta(hours=12)
MODELS = ["gpt-4o-mini", "claude-sonnet-4-20250514", "gemini-2.5-flash"]

# Traces built on purpose (trace id -> what it tests).
SPLIT = "a" * 32  # starts inside, its spans in three inserts over three hours
BEFORE = "b" * 32  # starts 30 min before SINCE, continues inside: not listed
AFTER = "c" * 32  # starts inside, continues 2 h past UNTIL: listed, with those spans in its totals
LATE = "d" * 32  # starts at UNTIL: not listed
OLD = "e" * 32  # started 2 days before SINCE, one span inside: the documented exception


def _ts(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _span(tid: str, n: int, at: dt.datetime, **kw) -> dict:
    model = MODELS[n % 3]
    row = {
        "Timestamp": _ts(at), "TraceId": tid, "SpanId": f"{n:016x}", "ParentSpanId": "" if n % 7 == 0 else "1" * 16,
        "SpanName": f"chat {model}", "ServiceName": ["support-bot", "search-api"][n % 2],
        "Duration": 1_000_000 * (1 + n % 997), "StatusCode": "Error" if n % 11 == 3 else "Ok",
        "GenAIOperation": "chat", "GenAIProvider": model.split("-")[0], "GenAIRequestModel": model,
        "GenAIResponseModel": model, "InputTokens": 10 + n % 13, "OutputTokens": 3 + n % 5,
        "TotalTokens": 13 + n % 13 + n % 5, "TotalCostUSD": str(Decimal("0.000001234567") * (1 + n % 6)),
        "SessionId": f"sess-{n % 5}" if n % 4 else "", "UserId": f"user-{n % 3}",
        "RunId": "run-x" if n % 10 == 0 else "", "StatusMessage": f"failed #{n}" if n % 11 == 3 else "",
        "SpanAttributes": {
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"question {n}"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": f"answer {n}"}]}]),
        } if n % 3 else {},
    }  # fmt: skip
    row.update(kw)
    return row


def _inserts() -> list[list[dict]]:
    """The spans, in the inserts they arrive in."""
    rng = random.Random(11)
    first, second, third = [], [], []
    n = 0
    for t in range(60):  # ordinary traces around the window, each in one insert
        start = SINCE - dt.timedelta(hours=4) + dt.timedelta(seconds=rng.randrange(20 * 3600))
        tid = f"{t + 1:032x}"
        for k in range(1 + t % 4):
            n += 1
            first.append(_span(tid, n, start + dt.timedelta(milliseconds=250 * k)))
    s = SINCE + dt.timedelta(hours=2)
    first.append(_span(SPLIT, 9001, s, ParentSpanId=""))
    third.append(_span(SPLIT, 9002, s + dt.timedelta(minutes=30)))
    second.append(_span(SPLIT, 9003, s + dt.timedelta(hours=2, minutes=5), TotalCostUSD="0.5"))
    first.append(_span(BEFORE, 9011, SINCE - dt.timedelta(minutes=30), ParentSpanId=""))
    second.append(_span(BEFORE, 9012, SINCE + dt.timedelta(minutes=5)))
    a = UNTIL - dt.timedelta(minutes=10)
    first.append(_span(AFTER, 9021, a, ParentSpanId=""))
    third.append(_span(AFTER, 9022, a + dt.timedelta(hours=2), TotalCostUSD="0.25", Duration=5_000_000_000))
    second.append(_span(LATE, 9031, UNTIL, ParentSpanId=""))
    first.append(_span(OLD, 9041, SINCE - dt.timedelta(days=2), ParentSpanId=""))
    second.append(_span(OLD, 9042, SINCE + dt.timedelta(hours=1)))
    return [first, second, third]


def _insert(store: Store, rows: list[dict]) -> None:
    body = "\n".join(json.dumps(r) for r in rows)
    store.command(
        f"INSERT INTO tracehouse.otel_traces SETTINGS date_time_input_format='best_effort' FORMAT JSONEachRow\n{body}"
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('summary')}")
    store.migrate()
    for rows in _inserts():
        _insert(store, rows)
    yield store
    store.close()


@pytest.fixture(params=["as inserted", "merged"])
def merged(request, store):
    """Each check runs on the summary rows as the inserts left them, then merged."""
    if request.param == "merged":
        store.command("OPTIMIZE TABLE tracehouse.trace_summary FINAL")
    return store


def _ns(at: dt.datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000


# Every trace's totals over all its spans: the plain SQL the summary must agree with.
PLAIN_SQL = """
SELECT TraceId, toUnixTimestamp64Nano(min(Timestamp)) AS start_ns,
    max(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)) - start_ns AS latency,
    sum(TotalCostUSD) AS cost, sum(TotalTokens) AS tokens, count() AS spans
FROM otel_traces WHERE Timestamp >= {since:DateTime64(9)} GROUP BY TraceId
"""


def _plain(store: Store, since: dt.datetime = dt.datetime(1970, 1, 1)) -> dict[str, dict]:
    columns, rows = store.query(PLAIN_SQL, parameters={"since": _ts(since)})
    return {r[0]: dict(zip(columns, r, strict=True)) for r in rows}


def _listed(plain: dict[str, dict], exceptions: tuple[str, ...] = ()) -> list[str]:
    lo, hi = _ns(SINCE), _ns(UNTIL)
    return [t for t, f in plain.items() if lo <= f["start_ns"] < hi or t in exceptions]


def test_the_built_traces_are_where_the_test_says(store):
    plain = _plain(store)
    listed = set(_listed(plain))
    assert {SPLIT, AFTER} <= listed and not {BEFORE, LATE, OLD} & listed
    _, rows = store.query(
        "SELECT count() FROM trace_summary WHERE TraceId = {t:String}", parameters={"t": SPLIT}
    )
    assert rows[0][0] >= 2  # several rows until merged (or the merge already ran: see `merged`)
    assert plain[SPLIT]["cost"] == Decimal("0.5") + sum(
        Decimal("0.000001234567") * (1 + n % 6) for n in (9001, 9002)
    )


def _walk(store: Store, sort: str, limit: int = 9) -> list[dict]:
    rows, cursor = [], None
    for _ in range(100):
        page = trace_list.list_traces(
            store, since=SINCE.isoformat(), until=UNTIL.isoformat(), sort=sort, limit=limit, cursor=cursor
        )
        rows += page.records()
        cursor = page.next_cursor
        if not cursor:
            return rows
    raise AssertionError("the listing did not end")


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("cost_usd", "cost"),
        ("latency_ms:asc", "latency"),
        ("spans", "spans"),
        ("total_tokens:asc", "tokens"),
        ("start_time:asc", "start_ns"),
    ],
)
def test_sorted_pages_equal_plain_sql_over_every_span(merged, sort, key):
    plain = _plain(merged)
    descending = not sort.endswith(":asc")
    expected = sorted(_listed(plain), key=lambda t: (plain[t][key], t), reverse=descending)
    rows = _walk(merged, sort)
    assert [r["trace_id"] for r in rows] == expected
    # Each row as trace_summaries computes it from the trace's spans (ids: one of the trace's).
    from_spans = trace_summaries(merged, expected)
    _, ids = merged.query(
        "SELECT TraceId, groupUniqArray(SessionId), groupUniqArray(UserId), groupUniqArray(RunId) FROM otel_traces "
        "GROUP BY TraceId"
    )
    seen = {t: (set(s) - {""}, set(u) - {""}, set(r) - {""}) for t, s, u, r in ids}
    for r in rows:
        assert r["cost_usd"] == plain[r["trace_id"]]["cost"]
        assert r["spans"] == plain[r["trace_id"]]["spans"]
        want = from_spans[r["trace_id"]]
        assert {c: r[c] for c in r if not c.endswith("_id")} == {
            c: want[c] for c in r if not c.endswith("_id")
        }
        for column, values in zip(("session_id", "user_id", "run_id"), seen[r["trace_id"]], strict=True):
            assert r[column] in values or (r[column] == "" and not values)


def test_the_newest_first_listing_equals_plain_sql(merged):
    plain = _plain(merged)
    expected = sorted(_listed(plain), key=lambda t: (plain[t]["start_ns"], t), reverse=True)
    rows, cursor = [], None
    while True:
        page = trace_list.list_traces(
            merged, since=SINCE.isoformat(), until=UNTIL.isoformat(), limit=8, cursor=cursor
        )
        rows += page.records()
        if not (cursor := page.next_cursor):
            break
    assert [r["trace_id"] for r in rows] == expected


def test_count_equals_plain_sql_but_for_a_trace_quiet_through_the_lookback(merged):
    plain = _plain(merged)
    n = trace_list.count_traces(merged, since=SINCE.isoformat(), until=UNTIL.isoformat())
    # OLD has no span in the day before SINCE: the count cannot tell it started earlier.
    assert n == len(_listed(plain, exceptions=(OLD,)))
    where = "model = 'claude-sonnet-4'"
    _, rows = merged.query(
        "SELECT DISTINCT TraceId FROM otel_traces WHERE replaceRegexpOne(GenAIResponseModel, '-20[0-9][0-9][0-9][0-9][0-9][0-9]$', '') = 'claude-sonnet-4'"
    )
    with_model = {r[0] for r in rows}
    expected = [t for t in _listed(plain, exceptions=(OLD,)) if t in with_model]
    assert trace_list.count_traces(merged, since=SINCE.isoformat(), until=UNTIL.isoformat(), where=where) == len(
        expected
    )


FACET_SPAN_SQL = {
    "model": "replaceRegexpOne(GenAIResponseModel, '-20[0-9][0-9][0-9][0-9][0-9][0-9]$', '')",
    "provider": "toString(GenAIProvider)",
    "service": "toString(ServiceName)",
    "status": "lower(toString(StatusCode))",
    "session": "SessionId",
    "user": "UserId",
    "run": "RunId",
}


def test_facets_equal_plain_sql_over_every_span(merged):
    plain = _plain(merged)
    listed = _listed(plain, exceptions=(OLD,))  # as the count (the same trace set)
    got = trace_list.trace_facets(merged, since=SINCE.isoformat(), until=UNTIL.isoformat(), size=100)
    for field, expr in FACET_SPAN_SQL.items():
        # (OLD's span from before the lookback is not seen; every other listed span is later.)
        _, rows = merged.query(
            f"SELECT v, uniqExact(TraceId) FROM (SELECT TraceId, {expr} AS v FROM otel_traces "
            "WHERE TraceId IN {ids:Array(String)} AND Timestamp >= {since:DateTime64(9)} AND v != '') GROUP BY v",
            parameters={"ids": listed, "since": _ts(SINCE)},
        )
        expected = sorted(
            ({"value": v, "traces": n} for v, n in rows), key=lambda x: (-x["traces"], x["value"])
        )
        assert [{k: x[k] for k in ("value", "traces")} for x in got[field]] == expected, field


def test_sessions_sorted_by_cost_equal_plain_sql(merged):
    listed = _listed(_plain(merged), exceptions=(OLD,))
    plain = _plain(merged, since=SINCE)  # (OLD's span from before the lookback is not seen)
    _, rows = merged.query(
        "SELECT SessionId, TraceId FROM otel_traces WHERE SessionId != '' AND TraceId IN {ids:Array(String)} "
        "AND Timestamp >= {since:DateTime64(9)} GROUP BY SessionId, TraceId",
        parameters={"ids": listed, "since": _ts(SINCE)},
    )
    cost: dict[str, Decimal] = {}
    count: dict[str, int] = {}
    for sid, tid in rows:
        cost[sid] = cost.get(sid, Decimal(0)) + plain[tid]["cost"]
        count[sid] = count.get(sid, 0) + 1
    expected = sorted(cost, key=lambda s: (cost[s], s), reverse=True)
    got, cursor = [], None
    while True:
        page = list_sessions(
            merged, since=SINCE.isoformat(), until=UNTIL.isoformat(), sort="cost_usd", limit=2, cursor=cursor
        )
        for r in page.records():
            got.append(r["session_id"])
            assert (r["traces"], r["cost_usd"]) == (count[r["session_id"]], cost[r["session_id"]])
        if not (cursor := page.next_cursor):
            break
    assert got == expected
