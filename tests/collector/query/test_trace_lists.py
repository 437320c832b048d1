"""The traces list sorted, counted, faceted and searched, against a real chDB store.

Every expectation is computed here in Python from the rows the test inserted (Decimal for
cost), never read back from the code under test: sorted pages walked to the end equal the
Python order (ties broken by trace id), the count equals the number of listed traces, a facet's
count equals the traces holding that value and its filter keeps exactly them, and a search
finds the traces whose content holds every word and no other.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

import pytest
from tracehouse_collector.query import trace_list
from tracehouse_collector.query.sessions import list_sessions
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.timeout(300)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MODELS = ["gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash"]
SERVICES = ["support-bot", "search-api"]
RARE = "zanzibarquokka"  # one prompt holds it
N_TRACES = 40


def _ts(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _make() -> tuple[list[dict], list[dict], list[dict], dict[str, dict]]:
    """(spans, scores, runs, expected facts per trace id)."""
    rng = random.Random(7)
    spans, scores, runs, facts = [], [], [], {}
    runs.append({"RunId": "run-a", "Name": "baseline-lr-0.01", "Version": 1, "Experiment": "e"})
    runs.append({"RunId": "run-a", "Name": "baseline-lr-0.001", "Version": 2, "Experiment": "e"})
    for t in range(N_TRACES):
        tid = f"{t + 1:032x}"
        start = NOW - dt.timedelta(minutes=5 + t * 7, microseconds=rng.randrange(10**6))
        service = SERVICES[t % 2]
        model = MODELS[t % 3]
        n_llm = 1 + t % 3
        # Ties on purpose: cost (per call) repeats every 5 traces, tokens every 4.
        cost = Decimal("0.000123456789") * (1 + t % 5)
        error = t % 9 == 4
        prompt = f"Question {t} about refunds and Shipping" + (f" {RARE.upper()}" if t == 17 else "")
        root = {
            "Timestamp": _ts(start), "TraceId": tid, "SpanId": f"{t:08x}00000000", "ParentSpanId": "",
            "SpanName": "agent", "ServiceName": service, "Duration": 0, "StatusCode": "Ok",
            "SpanAttributes": {}, "SessionId": f"sess-{t % 4}", "UserId": f"user-{t % 3}",
            "RunId": "run-a" if t % 10 == 0 else "",
        }  # fmt: skip
        end = start
        kids = []
        for k in range(n_llm):
            at = start + dt.timedelta(milliseconds=100 + 50 * k)
            dur_ns = rng.randrange(1, 5_000) * 1_000_000
            end = max(end, at + dt.timedelta(microseconds=dur_ns // 1000))
            attrs = {"gen_ai.input.messages": _messages("user", prompt)}
            attrs["gen_ai.output.messages"] = _messages("assistant", f"Answer {t}.{k}: see policy")
            if k == 1:
                attrs["gen_ai.tool.call.arguments"] = json.dumps({"city": f"Paris{t}"})
            failed = error and k == n_llm - 1
            kids.append({
                "Timestamp": _ts(at), "TraceId": tid, "SpanId": f"{t:08x}{k + 1:08x}", "ParentSpanId": root["SpanId"],
                "SpanName": f"chat {model}", "ServiceName": service, "Duration": dur_ns,
                "StatusCode": "Error" if failed else "Ok", "StatusMessage": f"rate limited #{t}" if failed else "",
                "SpanAttributes": attrs, "GenAIOperation": "chat", "GenAIProvider": model.split("-")[0],
                "GenAIRequestModel": model, "GenAIResponseModel": model, "InputTokens": 10 * (1 + t % 4),
                "OutputTokens": 5, "TotalTokens": 10 * (1 + t % 4) + 5, "TotalCostUSD": str(cost),
            })  # fmt: skip
        root["Duration"] = int((end - start).total_seconds() * 1e9) + 1000
        spans += [root, *kids]
        end_ns = max(
            int(dt.datetime.strptime(s["Timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp() * 1e6)
            * 1000
            + s["Duration"]
            for s in [root, *kids]
        )
        start_ns = int(start.timestamp() * 1e6) * 1000
        facts[tid] = {
            "start_ns": start_ns, "latency_ns": end_ns - start_ns,
            "cost": sum((Decimal(k["TotalCostUSD"]) for k in kids), Decimal(0)),
            "tokens": sum(k["TotalTokens"] for k in kids), "spans": 1 + n_llm, "service": service,
            "model": model, "error": error, "prompt": prompt, "session": root["SessionId"], "user": root["UserId"],
            "run": root["RunId"],
        }  # fmt: skip
        if t % 3 != 2:  # a third has no score
            value = round(rng.random(), 3) if t % 6 else 0.5  # ties at 0.5
            scores.append({"Timestamp": _ts(start), "TraceId": tid, "SpanId": "", "Name": "relevance", "Value": value})
            facts[tid]["relevance"] = value
        if t % 4 == 0:
            label = "good" if t % 8 == 0 else "bad"
            scores.append({"Timestamp": _ts(start), "TraceId": tid, "SpanId": "", "Name": "verdict", "Label": label})
            facts[tid]["verdict"] = label
    return spans, scores, runs, facts


SPANS, SCORES, RUNS, FACTS = _make()


def _insert(store: Store, table: str, rows: list[dict]) -> None:
    body = "\n".join(json.dumps(r) for r in rows)
    store.command(f"INSERT INTO tracehouse.{table} SETTINGS date_time_input_format='best_effort' FORMAT JSONEachRow\n{body}")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('lists')}")
    store.migrate()
    _insert(store, "otel_traces", SPANS)
    _insert(store, "otel_scores", SCORES)
    _insert(store, "runs", RUNS)
    yield store
    store.close()


def _walk(store: Store, limit: int = 7, **kw) -> list[dict]:
    rows, cursor = [], None
    for _ in range(100):
        page = trace_list.list_traces(store, since="30d", limit=limit, cursor=cursor, **kw)
        rows += page.records()
        cursor = page.next_cursor
        if not cursor:
            return rows
    raise AssertionError("the listing did not end")


def _expected(key, descending: bool, ids=None) -> list[str]:
    ids = list(FACTS) if ids is None else ids
    return sorted(ids, key=lambda t: (key(FACTS[t]), t), reverse=descending)


MISSING = object()


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("start_time", lambda f: f["start_ns"]),
        ("latency_ms", lambda f: f["latency_ns"]),
        ("cost_usd", lambda f: f["cost"]),
        ("total_tokens", lambda f: f["tokens"]),
        ("spans", lambda f: f["spans"]),
    ],
)
@pytest.mark.parametrize("descending", [True, False])
def test_sorted_pages_follow_the_order_exactly(store, sort, key, descending):
    rows = _walk(store, sort=f"{sort}:{'desc' if descending else 'asc'}")
    assert [r["trace_id"] for r in rows] == _expected(key, descending)


@pytest.mark.parametrize("descending", [True, False])
def test_sort_by_score_puts_unscored_last(store, descending):
    rows = _walk(store, limit=5, sort=f"score.relevance:{'desc' if descending else 'asc'}")
    scored = [t for t in FACTS if "relevance" in FACTS[t]]
    unscored = [t for t in FACTS if "relevance" not in FACTS[t]]
    expected = _expected(lambda f: f["relevance"], descending, scored) + sorted(unscored, reverse=descending)
    assert [r["trace_id"] for r in rows] == expected


def test_sort_with_filter_and_bad_input(store):
    rows = _walk(store, limit=3, sort="cost_usd:asc", where="service = 'search-api'")
    ids = [t for t in FACTS if FACTS[t]["service"] == "search-api"]
    assert [r["trace_id"] for r in rows] == _expected(lambda f: f["cost"], False, ids)
    with pytest.raises(ValueError, match="bad sort"):
        trace_list.list_traces(store, sort="prompt")
    first = trace_list.list_traces(store, since="30d", limit=2, sort="latency_ms")
    with pytest.raises(ValueError, match="another listing"):
        trace_list.list_traces(store, since="30d", limit=2, sort="cost_usd", cursor=first.next_cursor)


def test_count_equals_the_listed_traces(store):
    assert trace_list.count_traces(store, since="30d") == N_TRACES
    errors = [t for t in FACTS if FACTS[t]["error"]]
    assert trace_list.count_traces(store, since="30d", where="status = 'error'") == len(errors)
    assert len(_walk(store, where="status = 'error'")) == len(errors)
    recent = [t for t in FACTS if FACTS[t]["start_ns"] >= (NOW - dt.timedelta(hours=2)).timestamp() * 1e9]
    assert trace_list.count_traces(store, since="2h") == len(recent) > 0


def test_facets_count_and_narrow(store):
    facets = trace_list.trace_facets(store, since="30d")
    for field, fact in (("model", "model"), ("service", "service"), ("session", "session"), ("user", "user")):
        expected = {}
        for f in FACTS.values():
            expected[f[fact]] = expected.get(f[fact], 0) + 1
        got = {v["value"]: v["traces"] for v in facets[field]}
        assert got == expected, field
    assert {v["value"]: v["traces"] for v in facets["run"]} == {"run-a": sum(1 for f in FACTS.values() if f["run"])}
    assert [v["label"] for v in facets["run"]] == ["baseline-lr-0.001"]  # the run's latest name
    verdicts = {v["value"]: v["traces"] for v in facets["score.verdict"]}
    assert verdicts == {
        label: sum(1 for f in FACTS.values() if f.get("verdict") == label) for label in ("good", "bad")
    }
    # A click adds field = 'value': the listing keeps exactly the traces counted.
    value = facets["model"][0]["value"]
    narrowed = _walk(store, where=f"model = '{value}'")
    assert sorted(r["trace_id"] for r in narrowed) == sorted(t for t in FACTS if FACTS[t]["model"] == value)
    assert len(narrowed) == facets["model"][0]["traces"]
    labelled = _walk(store, where="score.verdict = 'good'")
    assert len(labelled) == verdicts["good"]
    # Facets follow the filter.
    only = trace_list.trace_facets(store, since="30d", where="service = 'support-bot'")
    assert {v["value"] for v in only["service"]} == {"support-bot"}


def test_search_finds_the_rare_word_and_nothing_else(store):
    target = next(t for t in FACTS if RARE in FACTS[t]["prompt"].lower())
    for text in (RARE, RARE.upper(), f"  {RARE}, refunds "):
        rows = _walk(store, search=text)
        assert [r["trace_id"] for r in rows] == [target], text
    assert trace_list.count_traces(store, since="30d", search=RARE) == 1
    assert [r["trace_id"] for r in _walk(store, where=f"input MATCH '{RARE}'")] == [target]
    assert _walk(store, where=f"output MATCH '{RARE}'") == []
    # Every word must be there; words in other attributes (the model name) do not count.
    assert _walk(store, search=f"{RARE} nosuchword") == []
    assert _walk(store, search="gemini") == []
    # Tool arguments are searched; whole tokens only ("paris1" is not in "Paris17").
    assert [r["trace_id"] for r in _walk(store, search="paris17")] == [f"{18:032x}"]
    assert _walk(store, search="paris") == []
    # The search works with a sort.
    both = _walk(store, search="refunds shipping", sort="cost_usd:asc")
    assert [r["trace_id"] for r in both] == _expected(lambda f: f["cost"], False)
    with pytest.raises(ValueError, match="no words"):
        trace_list.list_traces(store, search="--")


def test_rows_carry_error_text_and_run_names(store):
    rows = {r["trace_id"]: r for r in _walk(store)}
    for tid, f in FACTS.items():
        t = int(tid, 16) - 1
        assert rows[tid]["error"] == (f"rate limited #{t}" if f["error"] else "")
        assert rows[tid]["run_name"] == ("baseline-lr-0.001" if f["run"] else "")


def _sessions_walk(store: Store, sort: str | None, limit: int = 3) -> list[dict]:
    rows, cursor = [], None
    while True:
        page = list_sessions(store, since="30d", limit=limit, cursor=cursor, sort=sort)
        rows += page.records()
        cursor = page.next_cursor
        if not cursor:
            return rows


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        (None, lambda s: s["last"]),
        ("last_time:asc", lambda s: s["last"]),
        ("first_time", lambda s: s["first"]),
        ("traces:asc", lambda s: s["traces"]),
        ("cost_usd", lambda s: s["cost"]),
        ("total_tokens:asc", lambda s: s["tokens"]),
    ],
)
def test_sessions_sorted_server_side(store, sort, key):
    sessions: dict[str, dict] = {}
    for f in FACTS.values():
        s = sessions.setdefault(f["session"], {"traces": 0, "cost": Decimal(0), "tokens": 0, "first": f["start_ns"], "last": 0})
        s["traces"] += 1
        s["cost"] += f["cost"]
        s["tokens"] += f["tokens"]
        s["first"] = min(s["first"], f["start_ns"])
        s["last"] = max(s["last"], f["start_ns"])  # only root spans carry the session id
    descending = not (sort or "").endswith(":asc")
    expected = sorted(sessions, key=lambda sid: (key(sessions[sid]), sid), reverse=descending)
    rows = _sessions_walk(store, sort)
    assert [r["session_id"] for r in rows] == expected
    for r in rows:
        assert r["traces"] == sessions[r["session_id"]]["traces"]
        assert r["cost_usd"] == sessions[r["session_id"]]["cost"]
    with pytest.raises(ValueError, match="bad sort"):
        list_sessions(store, sort="latency_ms")
