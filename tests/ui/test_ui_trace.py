"""Traces list and trace detail in headless Chromium over the store `tracehouse demo` filled:
filters and paging against the REST answers, the span tree (collapse/expand), and the detail
pane's request parameters, tool definitions, messages, scores and attribute search."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal

import numpy as np
import pytest
from ui_format import fmt_int, fmt_ms, fmt_score, fmt_usd


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
        f"{k} {fmt_score(v)}" for k, v in tool_trace["scores"].items()
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


# -- a trace with known answers: one LLM call per provider's tool shape, known usage and scores --

# What each provider puts in gen_ai.tool.definitions, and what the pane must show for it:
# (name, description, JSON schema) per tool.
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FX_SCHEMA = {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"}}}
TOOL_SHAPES = {
    "openai": (
        [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ],
        [("get_weather", "Weather now", WEATHER_SCHEMA)],
    ),
    "anthropic": (
        [
            {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA},
            {"name": "convert", "description": "FX rate", "input_schema": FX_SCHEMA},
        ],
        [("get_weather", "Weather now", WEATHER_SCHEMA), ("convert", "FX rate", FX_SCHEMA)],
    ),
    "aws.bedrock": (
        {
            "tools": [
                {
                    "toolSpec": {
                        "name": "convert",
                        "description": "FX rate",
                        "inputSchema": {"json": FX_SCHEMA},
                    }
                }
            ]
        },
        [("convert", "FX rate", FX_SCHEMA)],
    ),
    "gcp.gemini": (
        [
            {
                "function_declarations": [
                    {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_SCHEMA},
                    {"name": "convert", "description": "FX rate", "parametersJsonSchema": FX_SCHEMA},
                ]
            },
            {"google_search": {}},
        ],
        [
            ("get_weather", "Weather now", WEATHER_SCHEMA),
            ("convert", "FX rate", FX_SCHEMA),
            ("google_search", "", {"google_search": {}}),
        ],
    ),
    "semconv": (
        [{"type": "function", "name": "convert", "description": "FX rate", "parameters": FX_SCHEMA}],
        [("convert", "FX rate", FX_SCHEMA)],
    ),
}
# Per LLM call: input and output tokens, the cost the producer reported, duration (ms).
USAGE = {
    "openai": (12345, 678, "0.0261234", 1500),
    "anthropic": (900, 100, "0.00001235", 250),
    "aws.bedrock": (1, 2, "1234.5678", 7.25),
    "gcp.gemini": (40000, 5000, "0.5", 61000),
    "semconv": (0, 3, "0", 12),
}
# Scores: name -> values on the LLM spans (their mean is the trace's score), or a label.
SCORES = {"relevance": [0.8, 0.65], "precision": [0.123456789], "judged": [3.0], "helpful": "yes"}


def _scores(spans: dict) -> list[tuple]:
    """SCORES on the LLM spans: the n-th value of a name on the n-th provider's span."""
    providers = list(spans)
    return [
        (spans[providers[i]].trace_id, spans[providers[i]].span_id, name, value)
        for name, values in SCORES.items()
        for i, value in enumerate([values] if isinstance(values, str) else values)
    ]


@pytest.fixture(scope="module")
def shapes(start_collector):
    """A trace sent over OTLP: root -> plan -> the OpenAI call, and root -> one call per other
    tool shape; known tokens, costs, durations, request parameters and scores."""
    from helpers import make_span, new_trace_id, score_request, trace_request, wait_for

    c = start_collector(name="shapes")
    trace_id, now = new_trace_id(), time.time_ns() - 120 * 10**9
    root = make_span("answer question", trace_id=trace_id, start_ns=now, duration_ns=62_000 * 10**6)
    plan = make_span("plan", trace_id=trace_id, parent_span_id=root.span_id, start_ns=now + 10**6,
                     duration_ns=2_000 * 10**6)  # fmt: skip
    llm = {}
    for i, (provider, (tools, _)) in enumerate(TOOL_SHAPES.items()):
        inp, out, cost, ms = USAGE[provider]
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai" if provider == "semconv" else provider,
            "gen_ai.request.model": f"model-{provider}",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.stop_sequences": ["END", "STOP"],
            "gen_ai.response.id": f"resp-{provider}",
            "gen_ai.response.finish_reasons": ["tool_calls", "stop"],
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
            "gen_ai.usage.cost": cost,
            "gen_ai.system_instructions": json.dumps(
                [{"type": "text", "content": f"You answer as {provider}."}]
            ),
            "gen_ai.tool.definitions": json.dumps(tools),
        }
        parent = plan if provider == "openai" else root
        llm[provider] = make_span(f"chat {provider}", trace_id=trace_id, parent_span_id=parent.span_id,
                                  start_ns=now + (i + 2) * 10**6, duration_ns=int(ms * 10**6), attributes=attrs)  # fmt: skip
    spans = [root, plan, *llm.values()]
    assert c.post("/v1/traces", trace_request("shapes-app", spans).SerializeToString()).status_code == 200
    assert (
        c.post("/v1/logs", score_request("shapes-app", _scores(llm)).SerializeToString()).status_code == 200
    )
    n_scores = sum(1 if isinstance(v, str) else len(v) for v in SCORES.values())
    assert wait_for(
        lambda: (
            c.scalar("SELECT count() FROM otel_traces") == len(spans)
            and c.scalar("SELECT count() FROM otel_scores") == n_scores
        ),
        timeout=30,
    )
    tree = c.session.get(f"{c.http_url}/api/v1/traces/{trace_id.hex()}", timeout=30).json()
    return (
        c,
        tree,
        {s["span_id"]: s for s, _ in walk(tree["spans"])},
        {p: s.span_id.hex() for p, s in llm.items()},
    )


def test_known_trace_header_and_badges_equal_the_sent_usage(shapes, ui):
    c, tree, by_id, llm = shapes
    tokens = sum(inp + out for inp, out, _, _ in USAGE.values())
    cost = sum(Decimal(cost) for _, _, cost, _ in USAGE.values())
    assert tree["total_tokens"] == tokens and Decimal(tree["cost_usd"]) == cost  # REST against what was sent
    ui.open(c.http_url, f"trace/{tree['trace_id']}")
    ui.page.wait_for_selector("#span-tree .span-row")
    header = ui.page.locator(".toolbar .muted").first.inner_text()
    assert f"{fmt_ms(62_000)} · 7 spans · {fmt_int(tokens)} tokens · {fmt_usd(cost)}" in header, header
    assert "1.0 min" in header and "59,029 tokens" in header and "$1,235.09" in header  # by hand

    for provider, span_id in llm.items():
        inp, out, cost_text, ms = USAGE[provider]
        row = ui.page.locator(f'.span-row[data-span-id="{span_id}"]')
        if inp + out:
            assert row.locator(".badge.tokens").inner_text() == f"{fmt_int(inp + out)} tok"
        if Decimal(cost_text):
            assert row.locator(".badge.cost").inner_text() == fmt_usd(cost_text)
        else:
            assert row.locator(".badge.cost").count() == 0
        assert (
            row.locator(".waterfall-label").inner_text()
            == fmt_ms(ms)
            == fmt_ms(by_id[span_id]["duration_ms"])
        )
        row.click()
        facts = _pairs(ui.page.locator("#span-detail dl.facts").first)
        assert facts["tokens"] == f"{fmt_int(inp)} in / {fmt_int(out)} out", provider
        assert facts["duration"] == fmt_ms(ms)
        assert facts.get("cost") == (fmt_usd(cost_text) if Decimal(cost_text) else None)
    assert (
        fmt_usd("0.00001235") == "$0.00001235" and fmt_ms(7.25) == "7.3 ms" and fmt_ms(10.5) == "11 ms"
    )  # the rule, by hand


def _pairs(dl) -> dict[str, str]:
    keys = dl.locator("dt").all_inner_texts()
    values = dl.locator("dd").all_inner_texts()
    return dict(zip(keys, values, strict=True))


def test_nested_collapse_keeps_a_collapsed_child_closed(shapes, ui):
    c, tree, _, llm = shapes
    order = [s["span_id"] for s, _ in walk(tree["spans"])]
    root, plan = (
        tree["spans"][0]["span_id"],
        next(s["span_id"] for s, _ in walk(tree["spans"]) if s["name"] == "plan"),
    )
    ui.open(c.http_url, f"trace/{tree['trace_id']}")
    ui.page.wait_for_selector("#span-tree .span-row")
    assert visible_rows(ui.page) == order and order.index(llm["openai"]) == order.index(plan) + 1
    ui.page.click(f'.span-row[data-span-id="{plan}"] .tree-toggle')
    assert visible_rows(ui.page) == [s for s in order if s != llm["openai"]]
    ui.page.click(f'.span-row[data-span-id="{root}"] .tree-toggle')
    assert visible_rows(ui.page) == [root]
    ui.page.click(f'.span-row[data-span-id="{root}"] .tree-toggle')  # plan opens still collapsed
    assert visible_rows(ui.page) == [s for s in order if s != llm["openai"]]
    ui.page.click(f'.span-row[data-span-id="{plan}"] .tree-toggle')
    assert visible_rows(ui.page) == order


def test_every_tool_shape_request_parameters_and_system_instructions(shapes, ui):
    c, tree, _, llm = shapes
    ui.open(c.http_url, f"trace/{tree['trace_id']}")
    ui.page.wait_for_selector("#span-tree .span-row")
    for provider, span_id in llm.items():
        ui.page.click(f'.span-row[data-span-id="{span_id}"]')
        pane = ui.page.locator("#span-detail")
        pane.locator("#request-params").wait_for()
        assert _pairs(pane.locator("#request-params")) == {
            "max_tokens": "512",
            "stop_sequences": "END, STOP",
            "temperature": "0.2",
            "response.id": f"resp-{provider}",
        }, provider
        # Finish reasons are a fact of their own, in the conventions' values (tool_calls -> tool_call).
        facts = pane.locator("dl.facts").first.inner_text()
        assert re.search(r"finish\s+tool_call, stop\b", facts), facts
        assert pane.locator(".message.role-system .text").inner_text() == f"You answer as {provider}."
        expected = TOOL_SHAPES[provider][1]
        assert (
            pane.locator("h2", has_text="Tools available").inner_text()
            == f"Tools available ({len(expected)})"
        )
        tools = pane.locator("#tool-definitions .tool-def")
        assert tools.count() == len(expected), provider
        for i, (name, description, schema) in enumerate(expected):
            tool = tools.nth(i)
            assert tool.locator(".tool-name").inner_text() == name
            assert (
                tool.locator(".tool-description").inner_text().strip() if description else ""
            ) == description
            assert not tool.locator(".tool-schema").is_visible()  # the schema opens on demand
            tool.locator("summary").click()
            assert json.loads(tool.locator(".tool-schema").inner_text()) == schema, (provider, name)


def test_known_trace_scores_as_badges(shapes, ui):
    c, tree, _, _ = shapes
    expected = {
        name: values if isinstance(values, str) else float(np.round(np.mean(values), 6))
        for name, values in SCORES.items()
    }
    assert tree["scores"] == expected  # REST: the mean per name, a label as it is
    ui.open(c.http_url, f"trace/{tree['trace_id']}")
    badges = ui.page.locator("#trace-scores .badge")
    badges.first.wait_for()
    assert sorted(badges.all_inner_texts()) == sorted(f"{k} {fmt_score(v)}" for k, v in expected.items())
    assert sorted(badges.all_inner_texts()) == [
        "helpful yes",
        "judged 3",
        "precision 0.1235",
        "relevance 0.725",
    ]
