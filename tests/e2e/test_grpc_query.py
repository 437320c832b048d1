"""The gRPC tracehouse.query.v1.Query service on the OTLP/gRPC port, through a real grpc client
with the generated stubs; and the generated code matches proto/ exactly."""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import tracehouse
from helpers import (
    BASE_NS,
    REPO,
    make_span,
    new_span_id,
    new_trace_id,
    rest_get,
    run_cli,
    run_sdk_to,
    score_request,
    trace_request,
    unique,
    wait_for,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2 as pb
from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2_grpc
from traces_data import CALL_COST, PAGING_TRACES, send_scenario

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def scenario(collector):
    return send_scenario(collector)


@pytest.fixture(scope="module")
def stub(collector):
    channel = grpc.insecure_channel(collector.grpc_endpoint)
    yield query_pb2_grpc.QueryStub(channel)
    channel.close()


def value(v: pb.Value):
    kind = v.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "json_value":
        return json.loads(v.json_value)
    return getattr(v, kind)


def records(table: pb.Table) -> list[dict]:
    names = [c.name for c in table.columns]
    return [dict(zip(names, [value(v) for v in row.values], strict=True)) for row in table.rows]


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_list_traces_typed_values(stub, scenario):
    resp = stub.ListTraces(pb.ListTracesRequest(service=scenario.service, since="2h"), timeout=30)
    rows = records(resp.table)
    assert [r["trace_id"] for r in rows] == scenario.turn_ids[::-1]
    assert resp.next_cursor == ""
    newest = resp.table.rows[0].values
    kinds = {c.name: newest[i].WhichOneof("kind") for i, c in enumerate(resp.table.columns)}
    assert kinds["llm_calls"] == "int_value" and kinds["latency_ms"] == "double_value"
    assert kinds["models"] == "json_value" and kinds["cost_usd"] == "string_value"
    by_id = {r["trace_id"]: r for r in rows}
    t1 = by_id[scenario.turn_ids[1]]
    assert (t1["llm_calls"], t1["latency_ms"], t1["models"]) == (2, 3000.0, ["gpt-4o-mini"])
    assert Decimal(t1["cost_usd"]) == 2 * CALL_COST
    assert by_id[scenario.turn_ids[0]]["scores"] == {"relevance": 0.8}


def test_list_traces_paging(stub, scenario):
    seen, cursor = [], ""
    for _ in range(10):
        resp = stub.ListTraces(pb.ListTracesRequest(service=scenario.paging_service, limit=2, cursor=cursor))
        seen += [r["trace_id"] for r in records(resp.table)]
        cursor = resp.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(scenario.paging_ids) and len(seen) == PAGING_TRACES


def test_get_trace_is_a_nested_tree(stub, scenario):
    t = stub.GetTrace(pb.GetTraceRequest(trace_id=scenario.turn_ids[1]), timeout=30)
    assert (t.trace_id, t.span_count, t.duration_ms, t.llm_calls) == (scenario.turn_ids[1], 4, 3000.0, 2)
    assert t.session_id == scenario.session_id and Decimal(t.cost_usd) == 2 * CALL_COST
    [root] = t.spans
    assert (root.name, root.kind, root.offset_ms, root.duration_ms) == ("agent.turn", "Server", 0.0, 3000.0)
    assert [(c.name, c.offset_ms, c.duration_ms) for c in root.children] == [
        ("chat gpt-4o-mini", 100.0, 600.0),
        ("execute_tool get_weather", 800.0, 200.0),
        ("chat gpt-4o-mini", 1100.0, 1800.0),
    ]
    first, tool, second = root.children
    assert (first.model, first.input_tokens, first.output_tokens) == ("gpt-4o-mini-2024-07-18", 100, 20)
    assert [(c.id, c.name, json.loads(c.arguments_json), c.type) for c in first.tool_calls] == [
        ("call_1", "get_weather", {"city": "Oslo"}, "tool_call")
    ]
    assert (list(first.finish_reasons), list(second.finish_reasons)) == (["tool_call"], ["stop"])
    assert json.loads(tool.tool_json)["result"] == {"sky": "sunny"}
    assert json.loads(second.output_json)[0]["parts"][0]["content"] == scenario.answers[1]
    assert second.attributes["gen_ai.provider.name"] == "openai"


def test_get_trace_error_and_orphan(stub, scenario):
    t = stub.GetTrace(pb.GetTraceRequest(trace_id=scenario.turn_ids[2]))
    db = next(c for c in t.spans[0].children if c.name == "db.query")
    assert t.status == "error" and db.has_error and db.error_type == "ConnectionError"
    assert [(e.name, e.offset_ms) for e in db.events] == [("exception", 1390.0)]
    t = stub.GetTrace(pb.GetTraceRequest(trace_id=scenario.turn_ids[0]))
    assert [(s.name, s.orphan) for s in t.spans] == [("agent.turn", False), ("cache.lookup", True)]
    assert json.loads(t.scores_json) == {"relevance": 0.8}


def test_errors_map_to_status_codes(stub):
    code, details = code_of(lambda: stub.GetTrace(pb.GetTraceRequest(trace_id="ab" * 16)))
    assert code == grpc.StatusCode.NOT_FOUND and "not found" in details
    code, details = code_of(lambda: stub.GetTrace(pb.GetTraceRequest(trace_id="xyz")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "32 hexadecimal" in details
    code, details = code_of(lambda: stub.ListTraces(pb.ListTracesRequest(where="model = ")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "col " in details
    code, details = code_of(lambda: stub.ListTraces(pb.ListTracesRequest(cursor="nope")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cursor" in details
    code, details = code_of(lambda: stub.GetSession(pb.GetSessionRequest(session_id="no-such-session")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: stub.Sql(pb.SqlRequest(sql="SELEC 1")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Syntax error" in details
    code, details = code_of(lambda: stub.Sql(pb.SqlRequest(sql="DROP TABLE otel_traces")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_sessions(stub, scenario):
    resp = stub.ListSessions(pb.ListSessionsRequest(since="2h", user=scenario.user_id))
    [s] = records(resp.table)
    assert (s["session_id"], s["traces"], s["llm_calls"]) == (scenario.session_id, 3, 4)
    session = stub.GetSession(pb.GetSessionRequest(session_id=scenario.session_id))
    assert [t.trace_id for t in session.turns] == scenario.turn_ids
    assert [t.input for t in session.turns] == scenario.questions
    assert [t.output for t in session.turns] == scenario.answers
    assert session.user_id == scenario.user_id and Decimal(session.cost_usd) == 4 * CALL_COST


# -- sorted, counted, searched and faceted listings: the same answers as REST ------------------

MS = 1_000_000
# Per trace: latency (ms; 450 three times, so ties break by trace id), cost (ties too), model.
LATENCIES = [120, 450, 450, 80, 990, 300, 450, 60, 700]
COSTS = [Decimal("0.0001") * (i * 7 % 5 + 1) for i in range(len(LATENCIES))]
MODELS = ["claude-3-5-haiku" if i % 3 == 0 else "gpt-4o-mini" for i in range(len(LATENCIES))]
QUALITY = {0: 0.25, 2: 0.9, 3: 0.25, 5: 0.6}  # numeric score "quality"; the rest have none
VERDICTS = {1: "good", 2: "good", 4: "bad"}  # label score "verdict"
RARE = 4  # the one trace whose prompt holds the rare word


@dataclass
class Listing:
    service: str
    word: str
    run_id: str
    run_name: str
    ids: list[str] = field(default_factory=list)  # hex trace ids, by index
    errors: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def listing(collector, tmp_path_factory) -> Listing:
    """Nine two-span traces (agent.turn over one LLM call) of known latency, cost, tokens,
    model, prompt, scores, status and run (a named one, for the first three), sent over
    OTLP/HTTP, an hour ago."""
    name = unique("grpc-lists-run")
    with run_sdk_to(collector.http_url, tmp_path_factory.mktemp("run-spool")), tracehouse.run(name=name) as run:
        pass
    lst = Listing(service=unique("grpc-lists"), word=f"quokka{unique('w')[-8:]}", run_id=run.id, run_name=name)
    base = (int(time.time()) - 3600) * 10**9
    spans, scores = [], []
    for i, latency in enumerate(LATENCIES):
        trace_id, root_id, start = new_trace_id(), new_span_id(), base + i * 10**9
        lst.ids.append(trace_id.hex())
        prompt = f"Tell me about the {lst.word} please" if i == RARE else f"Tell me about topic {i}"
        root = make_span(
            "agent.turn",
            trace_id=trace_id,
            span_id=root_id,
            start_ns=start,
            duration_ns=latency * MS,
            attributes={
                "user.id": f"user-{i % 2}-{lst.service}",
                "session.id": f"s-{i % 4}-{lst.service}",
                **({"tracehouse.run.id": run.id} if i < 3 else {}),
            },
        )
        if i in (3, 7):
            root.status.code = Status.STATUS_CODE_ERROR
            lst.errors.add(trace_id.hex())
        llm = make_span(
            f"chat {MODELS[i]}",
            trace_id=trace_id,
            parent_span_id=root_id,
            start_ns=start + MS,
            duration_ns=(latency - 2) * MS,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic" if MODELS[i].startswith("claude") else "openai",
                "gen_ai.request.model": MODELS[i],
                "gen_ai.usage.input_tokens": 10 * (i % 4) + 5,
                "gen_ai.usage.output_tokens": 3 * i,
                "gen_ai.usage.cost": str(COSTS[i]),
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": f"About {i}."}]}]
                ),
            },
        )
        spans += [root, llm]
        scores += [(trace_id, b"", "quality", QUALITY[i])] if i in QUALITY else []
        scores += [(trace_id, b"", "verdict", VERDICTS[i])] if i in VERDICTS else []
    assert collector.post("/v1/traces", trace_request(lst.service, spans).SerializeToString()).status_code == 200
    assert collector.post("/v1/logs", score_request(lst.service, scores).SerializeToString()).status_code == 200
    ids = ", ".join(f"'{t}'" for t in lst.ids)
    wait_for(lambda: collector.scalar(f"SELECT count() FROM otel_scores WHERE TraceId IN ({ids})") == len(scores))
    wait_for(lambda: collector.scalar(f"SELECT count() FROM runs WHERE RunId = '{run.id}' AND Name = '{name}'"))
    return lst


def expected_order(lst: Listing, key, descending: bool = True) -> list[str]:
    """Trace ids ordered by key(index), ties by trace id in the same direction (as the listing)."""
    return sorted(lst.ids, key=lambda t: (key(lst.ids.index(t)), t), reverse=descending)


def grpc_walk(stub, request_of) -> tuple[list[str], list[str]]:
    """(trace or session ids over every page, the cursors) of a gRPC listing."""
    seen, cursors, cursor = [], [], ""
    for _ in range(20):
        resp = request_of(cursor)
        seen += [value(row.values[0]) for row in resp.table.rows]
        cursor = resp.next_cursor
        cursors.append(cursor)
        if not cursor:
            return seen, cursors
    raise AssertionError("the listing did not end")


def rest_walk(collector, path: str, **params) -> tuple[list[str], list[str]]:
    seen, cursors, cursor = [], [], None
    for _ in range(20):
        page = rest_get(collector, path, **params, **({"cursor": cursor} if cursor else {}))
        seen += [row[0] for row in page["rows"]]
        cursor = page["next_cursor"]
        cursors.append(cursor or "")
        if not cursor:
            return seen, cursors
    raise AssertionError("the listing did not end")


MISSING = float("-inf")
SORTS = {
    "latency_ms": (lambda i: LATENCIES[i], True),
    "latency_ms:asc": (lambda i: LATENCIES[i], False),
    "cost_usd": (lambda i: COSTS[i], True),
    "total_tokens:asc": (lambda i: 10 * (i % 4) + 5 + 3 * i, False),
    "start_time:asc": (lambda i: i, False),
    # Traces without the score come last in either direction.
    "score.quality": (lambda i: QUALITY.get(i, MISSING), True),
    "score.quality:asc": (lambda i: QUALITY.get(i, -MISSING), False),
}


@pytest.mark.parametrize("sort", list(SORTS))
def test_list_traces_sorted_pages_match_rest(stub, collector, listing, sort):
    """Walking a sorted listing 2 rows a page over gRPC gives the order REST gives (cursor for
    cursor) and the order computed here from what was sent."""
    key, descending = SORTS[sort]
    got, cursors = grpc_walk(
        stub,
        lambda c: stub.ListTraces(
            pb.ListTracesRequest(service=listing.service, since="2h", sort=sort, limit=2, cursor=c), timeout=30
        ),
    )
    rest, rest_cursors = rest_walk(
        collector, "/api/v1/traces", service=listing.service, since="2h", sort=sort, limit=2
    )
    assert got == rest == expected_order(listing, key, descending)
    assert cursors == rest_cursors and len(cursors) == 5


def test_list_traces_sorted_values(stub, listing):
    """The rows of a sorted page carry the values they were sorted by."""
    resp = stub.ListTraces(pb.ListTracesRequest(service=listing.service, since="2h", sort="cost_usd", limit=3))
    rows = records(resp.table)
    assert [Decimal(r["cost_usd"]) for r in rows] == sorted(COSTS, reverse=True)[:3]
    assert [r["latency_ms"] for r in rows] == [float(LATENCIES[listing.ids.index(r["trace_id"])]) for r in rows]


def test_list_traces_count_equals_sql(stub, collector, listing):
    """total (only with count) is the number of traces SQL finds, whatever page is asked for."""
    svc, haiku, word = listing.service, "claude-3-5-haiku", listing.word
    in_service = f"TraceId IN (SELECT TraceId FROM otel_traces WHERE ServiceName = '{svc}')"
    cases = [
        ({}, f"SELECT uniqExact(TraceId) FROM otel_traces WHERE {in_service}"),
        (
            {"where": f"model = '{haiku}'"},
            f"SELECT uniqExact(TraceId) FROM otel_traces WHERE {in_service} AND GenAIRequestModel = '{haiku}'",
        ),
        (
            {"search": word.upper()},
            f"SELECT uniqExact(TraceId) FROM otel_traces WHERE {in_service} "
            f"AND positionCaseInsensitive(SpanAttributes['gen_ai.input.messages'], '{word}') > 0",
        ),
        ({"where": "status = 'error'"}, f"SELECT uniqExact(TraceId) FROM otel_traces WHERE {in_service} "
         "AND StatusCode = 'Error'"),  # fmt: skip
    ]
    for filters, sql in cases:
        expected = collector.scalar(sql)
        resp = stub.ListTraces(pb.ListTracesRequest(service=svc, since="2h", limit=1, count=True, **filters))
        assert resp.HasField("total") and resp.total == expected, filters
        page = rest_get(collector, "/api/v1/traces", service=svc, since="2h", limit=1, count="true", **filters)
        assert page["total"] == resp.total
        sorted_resp = stub.ListTraces(
            pb.ListTracesRequest(service=svc, since="2h", sort="latency_ms", count=True, **filters)
        )
        assert sorted_resp.total == len(sorted_resp.table.rows) == expected
    assert (collector.scalar(cases[0][1]), collector.scalar(cases[2][1])) == (len(LATENCIES), 1)
    plain = stub.ListTraces(pb.ListTracesRequest(service=svc, since="2h", limit=1))
    assert not plain.HasField("total")


def test_trace_facets_match_rest(stub, collector, listing):
    """TraceFacets answers what GET /api/v1/traces/facets answers, field for field, in order; and
    its counts are those of the data sent."""

    def facets(**filters) -> dict:
        resp = stub.TraceFacets(pb.TraceFacetsRequest(service=listing.service, since="2h", **filters), timeout=30)
        return {
            f.field: [{"value": v.value, "traces": v.traces, **({"label": v.label} if v.label else {})} for v in f.values]
            for f in resp.facets
        }

    for filters in ({}, {"size": 1}, {"where": "model = 'claude-3-5-haiku'"}, {"search": listing.word}):
        got = facets(**filters)
        rest = rest_get(collector, "/api/v1/traces/facets", service=listing.service, since="2h", **filters)
        assert got == rest and list(got) == list(rest), filters
    every = facets()
    assert list(every)[:7] == ["model", "provider", "service", "status", "session", "user", "run"]
    assert every["model"] == [{"value": "gpt-4o-mini", "traces": 6}, {"value": "claude-3-5-haiku", "traces": 3}]
    assert every["service"] == [{"value": listing.service, "traces": len(LATENCIES)}]
    assert every["score.verdict"] == [{"value": "good", "traces": 2}, {"value": "bad", "traces": 1}]
    assert every["run"] == [{"value": listing.run_id, "traces": 3, "label": listing.run_name}]
    assert {v["value"]: v["traces"] for v in every["status"]}["error"] == len(listing.errors)
    # A click on a facet value narrows the listing to exactly the traces it counted.
    narrowed = facets(where="model = 'claude-3-5-haiku'")
    assert narrowed["model"] == [{"value": "claude-3-5-haiku", "traces": 3}]
    assert all(len(values) <= 1 for values in facets(size=1).values())


def test_search_finds_the_one_trace_with_a_rare_word(stub, listing):
    """The search box and the filter language's MATCH find the trace whose prompt holds the
    word, and no other; the word is in the input, not the output."""
    rare = [listing.ids[RARE]]

    def found(**req) -> list[str]:
        resp = stub.ListTraces(pb.ListTracesRequest(service=listing.service, since="2h", **req))
        return [r["trace_id"] for r in records(resp.table)]

    assert found(search=listing.word) == rare
    assert found(search=f"{listing.word.upper()} tell") == rare  # every word, any case
    assert found(where=f"content MATCH '{listing.word}'") == rare
    assert found(where=f"input MATCH '{listing.word}'") == rare
    assert found(where=f"output MATCH '{listing.word}'") == []
    assert found(search=f"{listing.word} topic") == []  # "topic" is in other prompts only
    assert len(found(search="tell")) == len(LATENCIES)
    assert found(search=listing.word, sort="latency_ms", count=True) == rare


def test_sessions_sorted_pages_match_rest(stub, collector, scenario):
    """Sessions sorted by a column page exactly as REST's (the pager user's four sessions of
    2, 2, 2 and 1 traces)."""
    for sort in ("traces", "traces:asc", "first_time:asc"):
        got, cursors = grpc_walk(
            stub,
            lambda c, sort=sort: stub.ListSessions(
                pb.ListSessionsRequest(since="2h", user=scenario.pager_user, sort=sort, limit=1, cursor=c)
            ),
        )
        rest, rest_cursors = rest_walk(
            collector, "/api/v1/sessions", since="2h", user=scenario.pager_user, sort=sort, limit=1
        )
        assert got == rest and cursors == rest_cursors and len(got) == 4, sort
    by_traces, _ = grpc_walk(
        stub,
        lambda c: stub.ListSessions(pb.ListSessionsRequest(since="2h", user=scenario.pager_user, sort="traces:asc", cursor=c)),
    )
    assert by_traces[0].endswith("-3")  # the one session of a single trace (job 6)


def test_listing_errors_match_rest(stub, collector, listing):
    """Bad sorts, cursors and searches: INVALID_ARGUMENT with the very message of REST's 400."""
    svc = listing.service
    first = stub.ListTraces(pb.ListTracesRequest(service=svc, since="2h", sort="latency_ms", limit=2))
    cases = [
        ("/api/v1/traces", pb.ListTracesRequest, {"sort": "colour"}),
        ("/api/v1/traces", pb.ListTracesRequest, {"sort": "latency_ms:sideways"}),
        ("/api/v1/traces", pb.ListTracesRequest, {"sort": "cost_usd", "cursor": "not-a-cursor"}),
        # a cursor of another sort order
        ("/api/v1/traces", pb.ListTracesRequest, {"sort": "cost_usd", "cursor": first.next_cursor}),
        ("/api/v1/traces", pb.ListTracesRequest, {"cursor": first.next_cursor}),
        ("/api/v1/traces", pb.ListTracesRequest, {"search": "!!! ???"}),
        ("/api/v1/traces/facets", pb.TraceFacetsRequest, {"search": "!!!"}),
        ("/api/v1/traces/facets", pb.TraceFacetsRequest, {"where": "model = "}),
        ("/api/v1/sessions", pb.ListSessionsRequest, {"sort": "latency_ms"}),
        ("/api/v1/sessions", pb.ListSessionsRequest, {"sort": "traces", "cursor": first.next_cursor}),
    ]
    rpcs = {
        pb.ListTracesRequest: stub.ListTraces,
        pb.TraceFacetsRequest: stub.TraceFacets,
        pb.ListSessionsRequest: stub.ListSessions,
    }
    for path, request, params in cases:
        scope = {"service": svc} if request is not pb.ListSessionsRequest else {}
        resp = collector.session.get(collector.http_url + path, params={**scope, **params}, timeout=30)
        assert resp.status_code == 400, (path, params, resp.text)
        code, details = code_of(lambda request=request, params=params, scope=scope: rpcs[request](request(**scope, **params)))
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, resp.json()["error"]), (path, params)
    _, details = code_of(lambda: stub.ListTraces(pb.ListTracesRequest(sort="colour")))
    assert details.startswith("bad sort 'colour': one of start_time, latency_ms")


def test_sql(stub, scenario):
    table = stub.Sql(
        pb.SqlRequest(
            sql=f"SELECT count() AS spans, sum(TotalCostUSD) AS cost, [1, 2] AS arr, NULL AS nothing "
            f"FROM otel_traces WHERE ServiceName = '{scenario.service}'"
        )
    )
    [row] = records(table)
    assert row["cost"] == "0.006"  # Decimal: exact, as a string without padding zeros
    assert row == {"spans": 11, "cost": row["cost"], "arr": [1, 2], "nothing": None}
    assert table.rows[0].values[2].WhichOneof("kind") == "json_value"


def test_aggregate(stub, scenario):
    request = pb.AggregateRequest(kind="cost", by=["model"], service=scenario.service, since="2h")
    rows = {r["model"]: r for r in records(stub.Aggregate(request))}
    row = rows["gpt-4o-mini"]  # the model identity: the snapshot date removed
    assert row["model"] == "gpt-4o-mini" and row["count"] == 4
    assert Decimal(str(row["cost_usd"])) == 4 * CALL_COST
    # Latency says whether its percentiles are exact (a raw scan here: 0) or a sketch's bound.
    latency = records(
        stub.Aggregate(
            pb.AggregateRequest(kind="latency", by=["model"], service=scenario.service, since="2h")
        )
    )
    assert [(r["model"], r["count"], r["percentiles_error"]) for r in latency] == [("gpt-4o-mini", 4, 0.0)]
    code, _ = code_of(lambda: stub.Aggregate(pb.AggregateRequest(kind="nonsense", by=["model"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_aggregate_reports_unpriced_models(stub, collector):
    """Cost rows count calls of a model nobody prices (its cost null, not 0); `unpriced` lists
    those models, as `tracehouse query cost --unpriced` does."""
    service, mystery = unique("grpc-unpriced"), f"mystery-llm-{unique('m')}"
    spans = [
        make_span(
            f"chat {model}",
            start_ns=BASE_NS + i * 10**9,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 100 + i,
                "gen_ai.usage.output_tokens": 10,
            },
        )
        for i, model in enumerate(["gpt-4o-mini", mystery, mystery])
    ]
    assert collector.post("/v1/traces", trace_request(service, spans).SerializeToString()).status_code == 200
    since, until = "2023-11-14T22:00:00Z", "2023-11-14T23:00:00Z"
    wait_for(
        lambda: collector.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = '{service}'") == 3
    )
    request = pb.AggregateRequest(kind="cost", by=["model"], service=service, since=since, until=until)
    rows = {r["model"]: r for r in records(stub.Aggregate(request))}
    assert rows[mystery]["cost_usd"] is None
    assert (rows[mystery]["unpriced_calls"], rows[mystery]["unpriced_tokens"]) == (2, 101 + 102 + 20)
    assert Decimal(rows["gpt-4o-mini"]["cost_usd"]) > 0 and rows["gpt-4o-mini"]["unpriced_calls"] == 0
    request = pb.AggregateRequest(kind="cost", service=service, since=since, until=until, unpriced=True)
    (listed,) = records(stub.Aggregate(request))
    assert (listed["provider"], listed["model"], listed["calls"], listed["total_tokens"]) == (
        "openai",
        mystery,
        2,
        223,
    )
    code, details = code_of(lambda: stub.Aggregate(pb.AggregateRequest(kind="latency", unpriced=True)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "only the cost aggregate" in details


def test_generated_code_matches_proto(tmp_path):
    """Regenerating from proto/ gives the committed files byte for byte (`make proto`)."""
    spec = importlib.util.spec_from_file_location("proto_generate", REPO / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in module.generate(tmp_path)}
    committed_dir = Path(module.PACKAGE_DIR)
    committed = {p.relative_to(committed_dir): p.read_bytes() for p in committed_dir.rglob("*_pb2*.py*")}
    assert fresh.keys() == committed.keys()
    stale = [str(p) for p in fresh if fresh[p] != committed[p]]
    assert not stale, f"generated code differs from proto/ (run `make proto`): {stale}"


def test_api_keys_guard_the_query_service_and_rest(start_collector):
    """With API keys on, the Query service and the traces REST/CLI refuse calls without a key."""
    key = "tq-" + "7" * 40
    guarded = start_collector(env={"TRACEHOUSE_API_KEYS": key}, name="grpc-auth")
    with grpc.insecure_channel(guarded.grpc_endpoint) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        code, _ = code_of(lambda: stub.ListTraces(pb.ListTracesRequest(limit=5), timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        resp = stub.ListTraces(pb.ListTracesRequest(limit=5), metadata=[("authorization", f"Bearer {key}")])
        assert [c.name for c in resp.table.columns][:2] == ["trace_id", "start_time"]
    out = run_cli("traces", "list", "--server", guarded.http_url, "--format", "json")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    out = run_cli("traces", "list", "--server", guarded.http_url, "--api-key", key, "--format", "json")
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stderr
