"""Traces and sessions: list, show and sessions over REST and the CLI (through --server, and on
--store once the server has stopped), on traces of known shape sent by the real OTel SDK
through a real collector (see traces_data.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal

import pytest
import requests
from helpers import make_span, new_trace_id, run_cli, trace_request
from tracehouse_collector.query.paging import iso
from tracehouse_collector.query.trace_shape import walk
from traces_data import CALL_COST, MS, PAGING_TRACES, send_scenario

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def served(start_collector):
    collector = start_collector(name="traces")
    return collector, send_scenario(collector)


@pytest.fixture(scope="module")
def api(served):
    collector, _ = served

    def get(path: str, **params):
        return requests.get(collector.http_url + path, params=params, timeout=60)

    return get


def _records(answer: dict) -> list[dict]:
    return [dict(zip(answer["columns"], row, strict=True)) for row in answer["rows"]]


def _spans(tree: dict) -> dict[str, dict]:
    return {s["span_id"]: s for _, s in walk(tree["spans"])}


# -- list ------------------------------------------------------------------------------------


def test_list_has_one_row_per_trace_with_its_facts(served, api):
    _, sc = served
    r = api("/api/v1/traces", service=sc.service, since="2h")
    assert r.status_code == 200, r.text
    rows = _records(r.json())
    # The three turns, newest first; the old trace is outside --since 2h.
    assert [row["trace_id"] for row in rows] == sc.turn_ids[::-1]
    by_id = {row["trace_id"]: row for row in rows}
    t0, t1, t2 = (by_id[t] for t in sc.turn_ids)

    assert t0["root_span"] == "agent.turn" and t0["service"] == sc.service
    assert t0["start_time"].startswith(iso(sc.base_ns)[:19])
    assert [t0["latency_ms"], t1["latency_ms"], t2["latency_ms"]] == [2000.0, 3000.0, 1500.0]
    assert [t0["status"], t1["status"], t2["status"]] == ["ok", "ok", "error"]
    assert [t0["spans"], t1["spans"], t2["spans"]] == [3, 4, 3]
    # The tool step is not an LLM call.
    assert [t0["llm_calls"], t1["llm_calls"], t2["llm_calls"]] == [1, 2, 1]
    assert t1["models"] == ["gpt-4o-mini"]  # the model identity
    assert (t1["input_tokens"], t1["output_tokens"], t1["total_tokens"]) == (201, 41, 242)
    assert Decimal(t1["cost_usd"]) == 2 * CALL_COST
    # session and user come from the root span; the LLM spans below it do not carry them.
    assert {row["session_id"] for row in rows} == {sc.session_id}
    assert {row["user_id"] for row in rows} == {sc.user_id}
    # First input: the user's question of the first call; last output: the final answer.
    assert t1["input"] == sc.questions[1]
    assert t1["output"] == sc.answers[1]
    assert t0["scores"] == {"relevance": 0.8}
    assert t1["scores"] == {}


def test_list_paging_returns_each_trace_exactly_once(served, api):
    _, sc = served
    seen, cursor, pages = [], None, 0
    while True:
        params = {"service": sc.paging_service, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        answer = api("/api/v1/traces", **params).json()
        seen += [row["trace_id"] for row in _records(answer)]
        pages += 1
        cursor = answer["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(sc.paging_ids) and len(seen) == PAGING_TRACES
    # Newest first, ties broken by trace id, the same order in one page as across pages.
    one_page = [row["trace_id"] for row in _records(api("/api/v1/traces", service=sc.paging_service).json())]
    assert seen == one_page


def test_list_time_window(served, api):
    _, sc = served
    # until = the second turn's start: only the first turn is before it.
    until = iso(sc.base_ns + 10_000 * MS)
    rows = _records(api("/api/v1/traces", service=sc.service, since="30d", until=until).json())
    assert [r["trace_id"] for r in rows] == [sc.turn_ids[0], sc.old_trace_id]


def test_list_since_cuts_by_trace_start(served, api):
    """A trace that started before --since is not listed, although some of its spans are
    after it (its start as seen from those spans alone would be wrong)."""
    _, sc = served
    since = iso(sc.base_ns + 500 * MS)  # inside the first turn, which runs 0..2000 ms
    rows = _records(api("/api/v1/traces", service=sc.service, since=since).json())
    assert [r["trace_id"] for r in rows] == sc.turn_ids[:0:-1]
    # With a page of one, the dropped trace must not cost a place either.
    answer = api("/api/v1/traces", service=sc.service, since=since, limit=1).json()
    rest = api("/api/v1/traces", service=sc.service, since=since, cursor=answer["next_cursor"]).json()
    assert [r["trace_id"] for r in _records(answer) + _records(rest)] == sc.turn_ids[:0:-1]
    assert rest["next_cursor"] is None


def test_list_where_filter(served, api):
    _, sc = served
    r = api("/api/v1/traces", service=sc.service, since="2h", where="status = 'error' AND span = 'db.query'")
    assert r.status_code == 200, r.text
    assert [row["trace_id"] for row in _records(r.json())] == [sc.turn_ids[2]]
    r = api(
        "/api/v1/traces",
        service=sc.service,
        since="2h",
        where="attributes['gen_ai.tool.name'] = 'get_weather'",
    )
    assert [row["trace_id"] for row in _records(r.json())] == [sc.turn_ids[1]]
    r = api("/api/v1/traces", service=sc.service, since="2h", where="score.relevance > 0.5")
    assert [row["trace_id"] for row in _records(r.json())] == [sc.turn_ids[0]]


def test_list_bad_parameters_are_400_with_a_message(api):
    r = api("/api/v1/traces", where="model = ")
    assert r.status_code == 400 and "col " in r.json()["error"]
    r = api("/api/v1/traces", since="yesterday-ish")
    assert r.status_code == 400 and "since" in r.json()["error"] and "duration" in r.json()["error"]
    r = api("/api/v1/traces", cursor="garbage")
    assert r.status_code == 400 and "cursor" in r.json()["error"]
    r = api("/api/v1/traces", limit="0")
    assert r.status_code == 400 and "limit" in r.json()["error"]
    r = api("/api/v1/traces", limit="ten")
    assert r.status_code == 400 and "limit" in r.json()["error"]


# -- show ------------------------------------------------------------------------------------


def test_show_is_the_tree_with_offsets_and_facts(served, api):
    _, sc = served
    r = api(f"/api/v1/traces/{sc.turn_ids[1]}")
    assert r.status_code == 200, r.text
    tree = r.json()
    assert tree["trace_id"] == sc.turn_ids[1] and tree["span_count"] == 4
    assert tree["duration_ms"] == 3000.0 and tree["llm_calls"] == 2 and tree["status"] == "ok"
    assert tree["session_id"] == sc.session_id and Decimal(tree["cost_usd"]) == 2 * CALL_COST
    [root] = tree["spans"]
    assert (root["name"], root["kind"], root["offset_ms"], root["duration_ms"]) == (
        "agent.turn",
        "Server",
        0.0,
        3000.0,
    )
    shape = [(c["name"], c["offset_ms"], c["duration_ms"]) for c in root["children"]]
    assert shape == [
        ("chat gpt-4o-mini", 100.0, 600.0),
        ("execute_tool get_weather", 800.0, 200.0),
        ("chat gpt-4o-mini", 1100.0, 1800.0),
    ]
    first, tool, second = root["children"]
    assert all(c["children"] == [] and c["parent_span_id"] == root["span_id"] for c in root["children"])
    assert first["model"] == "gpt-4o-mini-2024-07-18" and first["provider"] == "openai"
    assert (first["input_tokens"], first["output_tokens"]) == (100, 20)
    assert Decimal(first["cost_usd"]) == CALL_COST
    assert first["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}, "type": "tool_call"}
    ]
    assert first["input"][1]["parts"][0]["content"] == sc.questions[1]
    assert tool["tool"] == {
        "name": "get_weather",
        "call_id": "call_1",
        "arguments": {"city": "Oslo"},
        "result": {"sky": "sunny"},
    }
    assert second["output"][0]["parts"][0]["content"] == sc.answers[1]
    assert second["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert second["resource"]["service.name"] == sc.service


def test_show_error_and_exception_event(served, api):
    _, sc = served
    tree = api(f"/api/v1/traces/{sc.turn_ids[2]}").json()
    assert tree["status"] == "error"
    db = next(s for _, s in walk(tree["spans"]) if s["name"] == "db.query")
    assert db["status"] == "Error" and db["status_message"] == "database went away"
    assert db["error"] == {"type": "ConnectionError", "message": "database went away"}
    [event] = db["events"]
    assert event["name"] == "exception" and event["offset_ms"] == 1390.0


def test_show_keeps_orphans_at_the_top(served, api):
    _, sc = served
    tree = api(f"/api/v1/traces/{sc.turn_ids[0]}").json()
    assert [(s["name"], s["orphan"]) for s in tree["spans"]] == [
        ("agent.turn", False),
        ("cache.lookup", True),
    ]
    orphan = tree["spans"][1]
    assert orphan["span_id"] == sc.orphan_span_id and orphan["parent_span_id"] == "0badc0de0badc0de"
    assert orphan["offset_ms"] == 1200.0
    llm = tree["spans"][0]["children"][0]
    assert [e["name"] for e in llm["events"]] == ["gen_ai.evaluation.result"]
    assert tree["scores"] == {"relevance": 0.8}


def test_show_survives_a_parent_cycle(served, api):
    """A broken producer's spans that are each other's parents still all appear, once."""
    collector, sc = served
    tid, a, b, c = new_trace_id(), b"\x0a" * 8, b"\x0b" * 8, b"\x0c" * 8
    start = sc.base_ns + 100_000 * MS
    spans = [
        make_span("root", trace_id=tid, span_id=c, start_ns=start, duration_ns=10 * MS),
        make_span("a", trace_id=tid, span_id=a, parent_span_id=b, start_ns=start + MS, duration_ns=MS),
        make_span("b", trace_id=tid, span_id=b, parent_span_id=a, start_ns=start + 2 * MS, duration_ns=MS),
    ]
    r = collector.post("/v1/traces", trace_request(sc.service + "-cycle", spans).SerializeToString())
    assert r.status_code == 200, r.text
    tree = api(f"/api/v1/traces/{tid.hex()}").json()
    assert [(s["name"], s["orphan"], [c["name"] for c in s["children"]]) for s in tree["spans"]] == [
        ("root", False, []),
        ("a", True, ["b"]),
    ]
    assert tree["span_count"] == 3


def test_show_unknown_and_bad_ids(api):
    r = api("/api/v1/traces/" + "ab" * 16)
    assert r.status_code == 404 and "not found" in r.json()["error"]
    r = api("/api/v1/traces/not-a-trace")
    assert r.status_code == 400 and "32 hexadecimal" in r.json()["error"]


# -- sessions --------------------------------------------------------------------------------


def test_sessions_list_and_show(served, api):
    _, sc = served
    rows = _records(api("/api/v1/sessions", since="2h", user=sc.user_id).json())
    assert len(rows) == 1
    s = rows[0]
    assert (s["session_id"], s["user_id"], s["traces"]) == (sc.session_id, sc.user_id, 3)
    # LLM calls below the root count although only the root span carries the session id.
    assert s["llm_calls"] == 4 and s["total_tokens"] == 120 + (120 + 122) + 120
    assert Decimal(s["cost_usd"]) == 4 * CALL_COST
    assert s["first_time"] == iso(sc.base_ns) and s["last_time"] == iso(sc.base_ns + 20_000 * MS)

    r = api(f"/api/v1/sessions/{sc.session_id}")
    assert r.status_code == 200, r.text
    session = r.json()
    assert [t["trace_id"] for t in session["turns"]] == sc.turn_ids
    assert [t["input"] for t in session["turns"]] == sc.questions
    assert [t["output"] for t in session["turns"]] == sc.answers
    assert [t["turn"] for t in session["turns"]] == [1, 2, 3]
    assert api("/api/v1/sessions/no-such-session").status_code == 404


def test_sessions_paging_returns_each_session_once(served, api):
    _, sc = served
    seen, cursor = [], None
    for _ in range(10):
        params = {"user": sc.pager_user, "limit": 1, **({"cursor": cursor} if cursor else {})}
        answer = api("/api/v1/sessions", **params).json()
        seen += [(r["session_id"], r["traces"]) for r in _records(answer)]
        cursor = answer["next_cursor"]
        if not cursor:
            break
    expected_sessions = PAGING_TRACES // 2 + 1
    # Most recently active first: the session of the last pair comes first.
    assert [s for s, _ in seen] == [
        f"pager-sess-{sc.paging_service[7:]}-{i}" for i in reversed(range(expected_sessions))
    ]
    assert sum(n for _, n in seen) == PAGING_TRACES


# -- CLI through the server ------------------------------------------------------------------


def test_cli_traces_list_json_through_server(served):
    collector, sc = served
    out = run_cli(
        "traces",
        "list",
        "--server",
        collector.http_url,
        "--service",
        sc.service,
        "--since",
        "2h",
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["trace_id"] for r in rows] == sc.turn_ids[::-1]
    assert rows[0]["status"] == "error" and rows[0]["llm_calls"] == 1


def test_cli_traces_show_table_is_an_indented_tree(served):
    collector, sc = served
    out = run_cli("traces", "show", sc.turn_ids[1], "--server", collector.http_url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"trace {sc.turn_ids[1]}") and "3000.0 ms" in lines[0]
    tree = [ln for ln in lines if re.match(r"\s+\d+\.\d\s+\d+\.\d\s", ln)]
    assert [re.split(r"\s{2,}", ln.strip(), maxsplit=2) for ln in tree] == [
        ["0.0", "3000.0", "agent.turn [Server]"],
        ["100.0", "600.0", "chat gpt-4o-mini [Client]"],
        ["800.0", "200.0", "execute_tool get_weather [Internal]"],
        ["1100.0", "1800.0", "chat gpt-4o-mini [Client]"],
    ]
    # Children are indented one level below the root.
    assert tree[1].index("chat") == tree[0].index("agent.turn") + 2
    assert "tool call: get_weather" in out.stdout
    assert any(
        "model gpt-4o-mini-2024-07-18" in ln and "100 in / 20 out" in ln and ln.endswith("finish tool_call")
        for ln in lines
    )


def test_cli_traces_show_json_and_errors(served):
    collector, sc = served
    out = run_cli("traces", "show", sc.turn_ids[0], "--server", collector.http_url, "--format", "json")
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    assert [s["name"] for s in tree["spans"]] == ["agent.turn", "cache.lookup"]
    out = run_cli("traces", "show", "ab" * 16, "--server", collector.http_url)
    assert out.returncode == 1 and "not found" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("traces", "show", "../sql", "--server", collector.http_url)
    assert out.returncode == 1 and "32 hexadecimal" in out.stderr
    out = run_cli("traces", "list", "--where", "model ==", "--server", collector.http_url)
    assert out.returncode == 1 and "col " in out.stderr and "Traceback" not in out.stderr


def test_cli_sessions_through_server(served):
    collector, sc = served
    out = run_cli("sessions", "list", "--server", collector.http_url, "--user", sc.user_id, "--format", "csv")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.strip().splitlines()
    assert header.startswith("session_id,user_id,first_time") and row.startswith(
        f"{sc.session_id},{sc.user_id},"
    )
    out = run_cli("sessions", "show", sc.session_id, "--server", collector.http_url, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [t["input"] for t in json.loads(out.stdout)["turns"]] == sc.questions


# -- CLI on the store itself (after the server released it): same answers ---------------------


def test_cli_on_store_matches_the_server(served, api):
    collector, sc = served
    over_rest = api("/api/v1/traces", service=sc.paging_service).json()
    tree_rest = api(f"/api/v1/traces/{sc.turn_ids[1]}").json()
    collector.stop()
    store = ["--store", collector.store_dsn, "--data-dir", str(collector.data_dir)]
    out = run_cli("traces", "list", "--service", sc.paging_service, "--format", "json", *store)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == _records(over_rest)
    out = run_cli("traces", "show", sc.turn_ids[1], "--format", "json", *store)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == tree_rest
    # Paging on the store: the cursor printed on stderr continues the listing.
    out = run_cli(
        "traces", "list", "--service", sc.paging_service, "--limit", "4", "--format", "json", *store
    )
    cursor = re.search(r"--cursor (\S+)", out.stderr).group(1)
    out2 = run_cli(
        "traces", "list", "--service", sc.paging_service, "--cursor", cursor, "--format", "json", *store
    )
    ids = [r["trace_id"] for r in json.loads(out.stdout) + json.loads(out2.stdout)]
    assert ids == [r["trace_id"] for r in _records(over_rest)]
    out = run_cli("sessions", "show", sc.session_id, *store)
    assert out.returncode == 0, out.stderr
    assert sc.questions[2] in out.stdout and f"session {sc.session_id}" in out.stdout


_EXPLAIN = """
import sys
from tracehouse_collector.query import traces as tq
from tracehouse_collector.store.client import Store
store = Store(sys.argv[1])
tid = sys.argv[2]
start, end = tq.trace_range(store, tid)
spans_params = {"trace_id": tid, "start": start, "end": end, "max_spans": 100}
docs_params = {"trace_id": tid, "max_spans": 100}
for sql, params in ((tq.DOCS_SQL, docs_params), (tq.LOOKUP_RANGE_SQL, {"trace_id": tid}), (tq.SPANS_SQL, spans_params)):
    print("\\n".join(r[0] for r in store.query("EXPLAIN indexes = 1 " + sql, parameters=params)[1]))
    print("=====")
store.close()
"""


def test_lookup_by_id_reads_few_granules_by_trace_id(served):
    """get_trace's statements, as the store plans them: the span documents are read by their
    primary key (TraceId), a granule or two of them; without documents, the range lookup reads
    trace_index by its primary key, and the span read prunes other days' partitions by the range
    it got and uses the TraceId bloom filter. (Run on the store directly, after the server has
    released it.)"""
    collector, sc = served
    collector.stop()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _EXPLAIN,
            collector.store_dsn,
            sc.turn_ids[0],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # Without the tree drawing, so the checks do not depend on where in the plan the read sits.
    docs_plan, range_plan, spans_plan, _ = re.sub(r"[│├└─]", " ", out.stdout).split("=====")
    assert re.search(r"PrimaryKey\s+Keys:\s+TraceId", docs_plan), docs_plan
    granules = [(int(a), int(b)) for a, b in re.findall(r"Granules: (\d+)/(\d+)", docs_plan)]
    assert granules and granules[-1][0] <= 2, docs_plan
    assert re.search(r"PrimaryKey\s+Keys:\s+TraceId", range_plan), range_plan
    # Min-Max / Partition pruning on the time range: parts of other days are never opened.
    assert re.search(r"(Min-Max|Partition)\s+Keys:\s+(Timestamp|toDate\(Timestamp\))", spans_plan), spans_plan
    counts = [(int(a), int(b)) for a, b in re.findall(r"Parts: (\d+)/(\d+)", spans_plan)]
    assert counts and counts[-1][0] < counts[0][1], spans_plan
    assert re.search(r"Skip\s+Name: idx_trace_id", spans_plan), spans_plan
