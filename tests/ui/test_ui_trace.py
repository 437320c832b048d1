"""Traces list and trace detail in headless Chromium over the store `tracehouse demo` filled:
filters and paging against the REST answers, the span tree (collapse/expand), and the detail
pane's request parameters, tool definitions, messages, scores and attribute search."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tool_trace(demo_collector) -> dict:
    """A live demo turn where the model called get_weather, as the REST API returns it."""
    trace_id = demo_collector.scalar(
        "SELECT TraceId FROM otel_traces WHERE SpanAttributes['gen_ai.tool.name'] = 'get_weather' "
        "ORDER BY Timestamp DESC LIMIT 1"
    )
    assert trace_id, "the demo made no tool call"
    resp = demo_collector.session.get(f"{demo_collector.http_url}/api/v1/traces/{trace_id}", timeout=30)
    resp.raise_for_status()
    return resp.json()


def walk(spans, depth=0):
    for s in spans:
        yield s, depth
        yield from walk(s["children"], depth + 1)


def visible_rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "#span-tree .span-row:not([hidden])", "rows => rows.map(r => r.dataset.spanId)"
    )


def test_span_tree_collapses_and_expands(demo_collector, ui, tool_trace):
    ui.open(demo_collector.http_url, f"trace/{tool_trace['trace_id']}")
    ui.page.wait_for_selector("#span-tree .span-row")
    order = [s["span_id"] for s, _ in walk(tool_trace["spans"])]
    assert visible_rows(ui.page) == order  # every span, depth first, as the API nests them
    assert ui.page.locator("#span-tree .waterfall-bar").count() == tool_trace["span_count"]

    root = tool_trace["spans"][0]
    assert root["name"] in ("support_agent", "invoke_agent support_agent") and root["children"]
    toggle = ui.page.locator(f'.span-row[data-span-id="{root["span_id"]}"] .tree-toggle')
    toggle.click()
    assert visible_rows(ui.page) == [root["span_id"]]
    assert toggle.get_attribute("aria-expanded") == "false"
    ui.screenshot("collapsed")
    toggle.click()
    assert visible_rows(ui.page) == order


def test_llm_span_detail_renders_request_tools_and_messages(demo_collector, ui, tool_trace):
    llm = next(s for s, _ in walk(tool_trace["spans"]) if s["attributes"].get("gen_ai.tool.definitions"))
    ui.open(demo_collector.http_url, f"trace/{tool_trace['trace_id']}")
    ui.page.click(f'.span-row[data-span-id="{llm["span_id"]}"]')
    pane = ui.page.locator("#span-detail")
    pane.locator("#request-params").wait_for()
    params = pane.locator("#request-params").inner_text()
    assert "temperature" in params and "0.2" in params
    tools = pane.locator("#tool-definitions .tool-def")
    assert tools.count() == 1
    assert "get_weather" in tools.first.inner_text()
    tools.first.locator("summary").click()  # the JSON schema opens on demand
    assert "city" in tools.first.locator("pre").inner_text()
    # The question the user asked is shown as a user message.
    question = next(m for m in llm["input"] if m["role"] == "user")
    text = question["parts"][0]["content"]
    assert text in pane.locator(".message.role-user").first.inner_text()
    # Tokens and cost as the API computed them.
    assert f"{llm['input_tokens']} in / {llm['output_tokens']} out" in pane.inner_text()
    # The selected span is in the URL, so the view can be shared.
    assert f"span={llm['span_id']}" in ui.page.url

    search = pane.locator("#attr-search")
    search.fill("gen_ai.request.temp")
    shown = pane.locator("#attr-table tr:visible")
    assert shown.count() == 1 and "gen_ai.request.temperature" in shown.first.inner_text()


def test_trace_scores_and_tool_span(demo_collector, ui, tool_trace):
    ui.open(demo_collector.http_url, f"trace/{tool_trace['trace_id']}")
    scores = ui.page.locator("#trace-scores .badge")
    scores.first.wait_for()
    assert tool_trace["scores"]
    assert sorted(scores.all_inner_texts()) == sorted(
        f"{k} {v if isinstance(v, str) else format(v, 'g')}" for k, v in tool_trace["scores"].items()
    )
    tool = next(s for s, _ in walk(tool_trace["spans"]) if s["name"] == "execute_tool get_weather")
    ui.page.click(f'.span-row[data-span-id="{tool["span_id"]}"]')
    assert ui.page.locator(".span-row.selected .span-icon").get_attribute("title") == "tool"
    pane_text = ui.page.locator("#span-detail").inner_text()
    assert "Tool get_weather" in pane_text


def test_traces_filter_and_paging_match_the_api(demo_collector, ui):
    api = demo_collector.session
    where = "request_model = 'gpt-4o'"
    expected = api.get(
        f"{demo_collector.http_url}/api/v1/traces",
        params={"since": "30d", "where": where, "limit": 10},
        timeout=30,
    ).json()
    ids = [r[expected["columns"].index("trace_id")] for r in expected["rows"]]
    assert len(ids) == 10 and expected["next_cursor"]

    ui.open(demo_collector.http_url, "traces?since=30d&limit=10")
    ui.page.fill("#where", where)
    ui.page.press("#where", "Enter")
    ui.page.wait_for_url("**where=*")
    ui.wait_ready()  # the filtered page, not the unfiltered one it replaces
    shown = ui.page.eval_on_selector_all("#traces-table tbody tr", "rows => rows.map(r => r.dataset.traceId)")
    assert shown == ids
    models = ui.page.eval_on_selector_all(
        "#traces-table tbody tr td:nth-child(6)", "c => c.map(x => x.textContent)"
    )
    # The list shows the model identity (the dated gpt-4o release that answered, without its
    # date: docs/querying.md), never the mini model alone.
    assert all("gpt-4o" in m.split(", ") for m in models), models

    ui.page.click("#next-page")
    ui.page.wait_for_url("**cursor=*")
    ui.wait_ready()
    page2 = ui.page.eval_on_selector_all("#traces-table tbody tr", "rows => rows.map(r => r.dataset.traceId)")
    assert page2 and not set(page2) & set(ids)
