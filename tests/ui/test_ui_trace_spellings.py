"""The trace view in headless Chromium shows calls spelled as the GenAI conventions v1.41.1 say
(server tool calls and their results, finish reasons, flat tool definitions, content cut to fit)
and as older producers spell them (Bedrock's toolSpec definitions, OpenAI's `tool_calls`)."""

from __future__ import annotations

import json
import time

from helpers import make_span, new_span_id, new_trace_id, trace_request, unique, wait_for
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
QUESTION = "What is the weather in Paris? " * 4


def _send(collector) -> tuple[str, str, str]:
    trace_id, new_id, old_id = new_trace_id(), new_span_id(), new_span_id()
    start = time.time_ns() - 5_000_000_000
    base = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-3-5-sonnet-20241022"}
    new = make_span(
        "chat claude-3-5-sonnet-20241022",
        trace_id=trace_id,
        span_id=new_id,
        start_ns=start,
        kind=Span.SPAN_KIND_CLIENT,
        attributes={
            **base,
            "gen_ai.provider.name": "anthropic",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": QUESTION[:40] + "…[truncated]"}]}]
            ),
            "tracehouse.content.truncated": ["gen_ai.input.messages"],
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "server_tool_call",
                                "id": "srvtoolu_1",
                                "name": "web_search",
                                "server_tool_call": {
                                    "type": "web_search",
                                    "arguments": {"query": "Paris weather"},
                                },
                            },
                            {
                                "type": "server_tool_call_response",
                                "id": "srvtoolu_1",
                                "server_tool_call_response": {
                                    "type": "web_search_tool_result",
                                    "content": [{"title": "Sunny in Paris"}],
                                },
                            },
                        ],
                        "finish_reason": "incomplete",
                    }
                ]
            ),
            "gen_ai.tool.definitions": json.dumps(
                [
                    {
                        "type": "function",
                        "name": "get_weather",
                        "description": "Weather now",
                        "parameters": SCHEMA,
                    },
                    {"type": "web_search_20250305", "name": "web_search"},
                ]
            ),
        },
    )
    old = make_span(
        "chat claude (old spelling)",
        trace_id=trace_id,
        span_id=old_id,
        start_ns=start + 2_000_000,
        kind=Span.SPAN_KIND_CLIENT,
        attributes={
            **base,
            "gen_ai.system": "aws.bedrock",
            "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.response.finish_reasons": ["tool_calls"],
            "gen_ai.tool.definitions": json.dumps(
                [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Weather now",
                            "inputSchema": {"json": SCHEMA},
                        }
                    }
                ]
            ),
        },
    )
    r = collector.post("/v1/traces", trace_request(unique("ui-spellings"), [new, old]).SerializeToString())
    assert r.status_code == 200, r.text
    tid = trace_id.hex()
    assert wait_for(
        lambda: collector.scalar(f"SELECT count() FROM otel_traces WHERE TraceId = '{tid}'") == 2, timeout=30
    )
    return tid, new_id.hex(), old_id.hex()


def test_trace_view_shows_both_spellings(demo_collector, ui):
    trace_id, new_id, old_id = _send(demo_collector)
    ui.open(demo_collector.http_url, f"trace/{trace_id}")
    ui.page.click(f'.span-row[data-span-id="{new_id}"]')
    pane = ui.page.locator("#span-detail")
    pane.locator("#tool-definitions").wait_for()
    text = pane.inner_text()
    assert "→ server tool call web_search" in text and "Paris weather" in text
    assert "← server tool result" in text and "Sunny in Paris" in text
    assert "incomplete" in pane.locator("dl.facts").first.inner_text()
    # No usage was reported: tokens estimated from content the instrumentation cut.
    assert "(estimated from truncated content: at least)" in text
    names = pane.locator("#tool-definitions .tool-def summary strong").all_inner_texts()
    assert names == ["get_weather", "web_search"]
    ui.screenshot("server-tool-call")

    ui.page.click(f'.span-row[data-span-id="{old_id}"]')
    pane.locator("#tool-definitions").wait_for()
    facts = pane.locator("dl.facts").first.inner_text()
    assert "tool_call" in facts and "tool_calls" not in facts  # the old spelling, read as v1.41.1's
    tool = pane.locator("#tool-definitions .tool-def").first
    assert tool.locator("summary").inner_text().startswith("get_weather")
    tool.locator("summary").click()
    assert json.loads(tool.locator("pre").inner_text()) == SCHEMA  # Bedrock's inputSchema.json
