"""The traces list in headless Chromium over traces sent as OTLP: a sorted column shows the REST
order, the total equals SQL's count, a facet click narrows to the traces that hold the value, the
search box finds the one trace whose prompt holds a rare word, error rows say what went wrong,
runs show by name, and the default columns fit a 1,366 px laptop screen without scrolling."""

from __future__ import annotations

import json
import random
import time

import pytest
import tracehouse
from helpers import make_span, new_trace_id, records, rest_get, trace_request, unique, wait_for
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from tracehouse import _run_transport

pytestmark = pytest.mark.timeout(300)

MINUTE_NS = 60 * 10**9
MODELS = ["gpt-4o-mini", "gpt-4.1", "claude-sonnet-4"]
RARE = "quetzalcoatlus"
N = 24
IDS = "rows => rows.map(r => r.dataset.traceId)"


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


RUN_NAME = "nightly-eval-lr-0.01"


def _make_run(c, tmp) -> str:
    """A run named RUN_NAME, logged through the run SDK; its id."""
    previous = _run_transport._transport
    transport = _run_transport._transport = _run_transport.Transport(
        url=c.http_url + "/v1/logs", spool_dir=tmp / "spool"
    )
    try:
        with tracehouse.run(experiment=unique("exp"), name=RUN_NAME) as run:
            run.log_metric("loss", 0.5, step=1)
    finally:
        transport.shutdown(10)
        _run_transport._transport = previous
    assert wait_for(lambda: c.scalar(f"SELECT count() FROM runs WHERE RunId = '{run.id}'"), timeout=20)
    return run.id


@pytest.fixture(scope="module")
def listed(start_collector, tmp_path_factory):
    c = start_collector(name="trace-list")
    run_id = _make_run(c, tmp_path_factory.mktemp("trace-list"))
    rng = random.Random(3)
    now = time.time_ns()
    spans: dict[str, list] = {"shop": [], "helpdesk": []}
    facts = {}
    for i in range(N):
        tid = new_trace_id()
        start = now - (i + 1) * MINUTE_NS
        latency_ns = rng.randrange(5, 5000) * 10**6
        service = ["shop", "helpdesk"][i % 2]
        model = MODELS[i % 3]
        failed = i % 7 == 3
        prompt = f"Customer {i} asks about delivery" + (f" and the {RARE} exhibit" if i == 11 else "")
        root = make_span(
            f"request {i}",
            trace_id=tid,
            start_ns=start,
            duration_ns=latency_ns,
            attributes={"session.id": f"s-{i % 5}", "user.id": f"u-{i % 3}"}
            | ({"tracehouse.run.id": run_id} if i == 0 else {}),
        )
        call = make_span(
            f"chat {model}",
            trace_id=tid,
            parent_span_id=root.span_id,
            start_ns=start + 10**6,
            duration_ns=latency_ns // 2,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai" if model.startswith("gpt") else "anthropic",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": rng.randrange(10, 5000),
                "gen_ai.usage.output_tokens": rng.randrange(1, 500),
                # One cost as small as cheap calls get: its longest printed form must fit.
                "gen_ai.usage.cost": "0.000123456" if i == 5 else f"0.{rng.randrange(1, 99999):05d}",
                "gen_ai.input.messages": _messages("user", prompt),
                "gen_ai.output.messages": _messages("assistant", f"Reply {i}"),
            },
        )
        if failed:
            call.status.code = Status.STATUS_CODE_ERROR
            call.status.message = f"upstream timeout {i}"
        spans[service] += [root, call]
        facts[tid.hex()] = {"service": service, "model": model, "failed": failed, "i": i}
    for service, sent in spans.items():
        assert c.post("/v1/traces", trace_request(service, sent).SerializeToString()).status_code == 200
    assert wait_for(lambda: c.scalar("SELECT count() FROM otel_traces") == 2 * N, timeout=30)
    return c, facts


def _shown(ui) -> list[str]:
    ui.wait_ready()
    return ui.page.eval_on_selector_all("#traces-table tbody tr", IDS)


def _all_rest(c, **params) -> list[str]:
    ids, cursor = [], None
    while True:
        page = rest_get(c, "/api/v1/traces", since="1d", limit=10, **params, **({"cursor": cursor} if cursor else {}))
        ids += [r["trace_id"] for r in records(page)]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


@pytest.mark.parametrize(("header", "column"), [("latency", "latency_ms"), ("cost", "cost_usd"), ("tokens", "total_tokens")])
def test_sorting_a_column_shows_the_rest_order(listed, ui, header, column):
    c, _ = listed
    ui.open(c.http_url, "traces?since=1d&limit=10")
    _shown(ui)
    ui.page.click(f"#traces-table th[data-sort='{column}']")
    ui.page.wait_for_url(f"**sort={column}%3Adesc*")
    desc = _shown(ui)
    rest = _all_rest(c, sort=f"{column}:desc")
    assert desc == rest[:10]
    # the REST order itself is the column's order, from the rows' own values
    values = {r["trace_id"]: r[column] for r in records(rest_get(c, "/api/v1/traces", since="1d", limit=100))}
    assert [float(values[t]) for t in rest] == sorted((float(values[t]) for t in rest), reverse=True)
    # the next page continues the REST order exactly
    ui.page.click("#next-page")
    ui.page.wait_for_url("**cursor=*")
    assert _shown(ui) == rest[10:20]
    # a second click on the header turns the order around
    ui.page.click(f"#traces-table th[data-sort='{column}']")
    ui.page.wait_for_url(f"**sort={column}%3Aasc*")
    assert _shown(ui) == _all_rest(c, sort=f"{column}:asc")[:10]


def test_total_equals_sql_count(listed, ui):
    c, facts = listed
    ui.open(c.http_url, "traces?since=1d&limit=5")
    _shown(ui)
    sql = c.scalar("SELECT uniqExact(TraceId) FROM otel_traces WHERE Timestamp >= now() - INTERVAL 1 DAY")
    assert sql == len(facts)
    assert int(ui.page.get_attribute("#traces-total", "data-total")) == sql
    assert ui.page.inner_text("#traces-total") == f"{sql} traces"
    ui.open(c.http_url, "traces?since=1d&where=" + "status%20%3D%20'error'")
    _shown(ui)
    errors = c.scalar(
        "SELECT uniqExact(TraceId) FROM otel_traces WHERE StatusCode = 'Error' AND Timestamp >= now() - INTERVAL 1 DAY"
    )
    assert int(ui.page.get_attribute("#traces-total", "data-total")) == errors == sum(f["failed"] for f in facts.values())


def test_facet_click_narrows_to_the_right_rows(listed, ui):
    c, facts = listed
    ui.open(c.http_url, "traces?since=1d&limit=100")
    _shown(ui)
    button = ui.page.locator("#facets button.facet-value[data-field='model'][data-value='gpt-4.1']")
    expected = sorted(t for t, f in facts.items() if f["model"] == "gpt-4.1")
    assert button.locator(".facet-count").inner_text() == str(len(expected))
    button.click()
    ui.page.wait_for_url("**where=*")
    assert sorted(_shown(ui)) == expected
    assert int(ui.page.get_attribute("#traces-total", "data-total")) == len(expected)
    # a second facet narrows further (both conditions hold)
    ui.page.locator("#facets button.facet-value[data-field='service'][data-value='shop']").click()
    ui.page.wait_for_function(
        "() => (new URLSearchParams(location.hash.split('?')[1]).get('where') || '').includes(\"service = 'shop'\")"
    )
    both = sorted(t for t, f in facts.items() if f["model"] == "gpt-4.1" and f["service"] == "shop")
    assert sorted(_shown(ui)) == both and both
    # The run facet reads the run's name and narrows by its id.
    ui.open(c.http_url, "traces?since=1d&limit=100")
    _shown(ui)
    run = ui.page.locator("#facets button.facet-value[data-field='run']")
    assert run.count() == 1 and run.locator(".facet-label").inner_text() == RUN_NAME
    run.click()
    ui.page.wait_for_url("**where=*")
    assert _shown(ui) == [t for t, f in facts.items() if f["i"] == 0]


def test_search_finds_the_rare_word_only(listed, ui):
    c, facts = listed
    ui.open(c.http_url, "traces?since=1d")
    _shown(ui)
    ui.page.fill("#trace-search", RARE.capitalize())
    ui.page.press("#trace-search", "Enter")
    ui.page.wait_for_url("**search=*")
    target = next(t for t, f in facts.items() if f["i"] == 11)
    assert _shown(ui) == [target]
    assert ui.page.get_attribute("#traces-total", "data-total") == "1"
    ui.screenshot("search")


def test_error_text_run_name_and_fit_on_a_laptop(listed, ui):
    c, facts = listed
    ui.page.set_viewport_size({"width": 1366, "height": 768})
    ui.open(c.http_url, "traces?since=1d&limit=50")
    _shown(ui)
    for tid, f in facts.items():
        row = ui.page.locator(f"#traces-table tr[data-trace-id='{tid}']")
        if f["failed"]:
            assert row.locator(".row-error").inner_text() == f"upstream timeout {f['i']}"
        else:
            assert row.locator(".row-error").count() == 0
    run_link = ui.page.locator("#traces-table a.run-link")
    assert run_link.count() == 1 and run_link.inner_text() == RUN_NAME
    width = ui.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    table = ui.page.evaluate("() => document.getElementById('traces-table').getBoundingClientRect().right")
    assert table <= 1366
    # Numbers are never cut short by their column (the text would end in an ellipsis).
    cut = ui.page.eval_on_selector_all(
        "#traces-table td.num", "tds => tds.filter(td => td.scrollWidth > td.clientWidth).map(td => td.innerText)"
    )
    assert not cut, cut
    assert "$0.0001235" in ui.page.eval_on_selector_all("#traces-table td.num", "tds => tds.map(td => td.innerText)")
    ui.screenshot("laptop")


def test_sessions_header_sorts_on_the_server(listed, ui):
    c, _ = listed
    ui.open(c.http_url, "sessions?since=1d&limit=3")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    ui.page.click("#sessions-table th[data-sort='cost_usd']")
    ui.page.wait_for_url("**sort=cost_usd%3Adesc*")
    ui.wait_ready()
    shown = ui.page.eval_on_selector_all("#sessions-table tbody tr", "rows => rows.map(r => r.dataset.sessionId)")
    rest = records(rest_get(c, "/api/v1/sessions", since="1d", limit=100, sort="cost_usd:desc"))
    assert shown == [r["session_id"] for r in rest][:3]
    costs = [float(r["cost_usd"]) for r in rest]
    assert costs == sorted(costs, reverse=True) and len(rest) == 5


def test_rest_sort_search_count_facets_and_their_errors(listed):
    c, facts = listed
    page = rest_get(c, "/api/v1/traces", since="1d", limit=5, sort="latency_ms:asc", count="true", search="delivery")
    assert page["total"] == len(facts) and len(page["rows"]) == 5 and page["next_cursor"]
    facets = rest_get(c, "/api/v1/traces/facets", since="1d", size=2)
    assert [len(v) for k, v in facets.items() if k in ("model", "service")] == [2, 2]
    assert facets["status"] == [{"value": "unset", "traces": len(facts)}, {"value": "error", "traces": 3}]
    bad = {
        "sort": "prompt",
        "search": "---",
        "cursor": page["next_cursor"] + "x",
    }
    for key, value in bad.items():
        resp = c.session.get(c.http_url + "/api/v1/traces", params={"since": "1d", "sort": "latency_ms:asc", key: value})
        assert resp.status_code == 400 and resp.json()["error"], (key, resp.text)
    other = c.session.get(c.http_url + "/api/v1/traces", params={"sort": "cost_usd", "cursor": page["next_cursor"]})
    assert other.status_code == 400 and "another listing" in other.json()["error"]
    resp = c.session.get(c.http_url + "/api/v1/traces/facets", params={"size": "many"})
    assert resp.status_code == 400 and "size" in resp.json()["error"]
    resp = c.session.get(c.http_url + "/api/v1/sessions", params={"sort": "latency_ms"})
    assert resp.status_code == 400 and "bad sort" in resp.json()["error"]
