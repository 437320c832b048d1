"""The gRPC tracehouse.query.v1.Query service on the OTLP/gRPC port, through a real grpc client
with the generated stubs; and the generated code matches proto/ exactly."""

from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from helpers import BASE_NS, REPO, make_span, run_cli, trace_request, unique, wait_for
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
