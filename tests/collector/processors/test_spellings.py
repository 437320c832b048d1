"""The LLM processor reads the spellings Tracehouse's instrumentation writes since it follows the
GenAI conventions v1.41.1 exactly (issue 13), and still the older ones: the same call, spelled
either way, is stored with the same facts.

What changed in the spans: finish reasons (`tool_call` for `tool_calls`, `content_filter`),
tool definitions (`{type, name, description, parameters}` for the providers' own shapes),
Anthropic's server tools (`server_tool_call` parts for `tool_call` parts), content cut to fit
(strings ending in `…[truncated]`, listed in `tracehouse.content.truncated`), tool and agent
spans named `execute_tool X` / `invoke_agent X`, and `@trace(kind="llm")` spans whose provider
is `unknown`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import pytest
import tiktoken
from genai_prices import Usage, calc_price
from tracehouse_collector.processors import llm
from tracehouse_collector.processors.cost import UNPRICED_SOURCE, Pricer
from tracehouse_collector.processors.tokens import ENCODING

DAY = "2026-11-20 10:00:00.000000000"
WHEN = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
MARK = "…[truncated]"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TYPED = (
    "GenAIOperation",
    "GenAIProvider",
    "GenAIRequestModel",
    "GenAIResponseModel",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "ReasoningTokens",
    "TotalTokens",
    "TokensEstimated",
    "InputCostUSD",
    "OutputCostUSD",
    "TotalCostUSD",
    "PriceSource",
)


def _stored(attrs: dict[str, str], name: str = "chat", unpriced: Counter | None = None) -> dict:
    row = {"Timestamp": DAY, "SpanName": name, "SpanAttributes": dict(attrs), "ResourceAttributes": {}}
    llm.enrich_row(row, Pricer(), Counter() if unpriced is None else unpriced)
    assert row["SpanAttributes"] == attrs  # originals untouched
    return {k: row[k] for k in TYPED if k in row}


def _messages(*parts: dict, finish: str) -> str:
    return json.dumps([{"role": "assistant", "parts": list(parts), "finish_reason": finish}])


def _price(model: str, provider: str, **usage: int) -> dict[str, Decimal]:
    price = calc_price(Usage(**usage), model, provider_id=provider, genai_request_timestamp=WHEN)
    q = Decimal("1e-12")
    return {
        "InputCostUSD": price.input_price.quantize(q),
        "OutputCostUSD": price.output_price.quantize(q),
        "TotalCostUSD": price.total_price.quantize(q),
    }


TOOL_CALL = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
OPENAI_CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": "812",
    "gen_ai.usage.output_tokens": "19",
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Paris?"}]}]),
}
ANTHROPIC_CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-3-5-sonnet-20241022",
    "gen_ai.response.model": "claude-3-5-sonnet-20241022",
    "gen_ai.usage.input_tokens": "1500",
    "gen_ai.usage.cache_read.input_tokens": "1000",
    "gen_ai.usage.output_tokens": "80",
}

# The same call spelled as Tracehouse writes it now, and as it (and others) wrote it before.
CALLS = {
    "openai tool call": (
        {
            **OPENAI_CALL,
            "gen_ai.response.finish_reasons": '["tool_call"]',
            "gen_ai.output.messages": _messages(TOOL_CALL, finish="tool_call"),
            "gen_ai.tool.definitions": json.dumps(
                [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
            ),
        },
        {
            **OPENAI_CALL,
            "gen_ai.response.finish_reasons": '["tool_calls"]',
            "gen_ai.output.messages": _messages(TOOL_CALL, finish="tool_calls"),
            "gen_ai.tool.definitions": json.dumps(
                [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
            ),
        },
        ("chat", "openai", "gpt-4o", "gpt-4o-2024-08-06", 812, 19, 0, 831),
        ("gpt-4o-2024-08-06", "openai", {"input_tokens": 812, "output_tokens": 19}),
    ),
    "anthropic server tool, refused": (
        {
            **ANTHROPIC_CALL,
            "gen_ai.response.finish_reasons": '["content_filter"]',
            "gen_ai.output.messages": _messages(
                {
                    "type": "server_tool_call",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "server_tool_call": {"type": "web_search", "arguments": {"query": "weather"}},
                },
                finish="content_filter",
            ),
            "gen_ai.tool.definitions": json.dumps(
                [{"type": "function", "name": "get_weather", "description": "d", "parameters": SCHEMA}]
            ),
        },
        {
            **ANTHROPIC_CALL,
            "gen_ai.response.finish_reasons": '["refusal"]',
            "gen_ai.output.messages": _messages(
                {
                    "type": "tool_call",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "arguments": {"query": "weather"},
                },
                finish="refusal",
            ),
            "gen_ai.tool.definitions": json.dumps(
                [{"name": "get_weather", "description": "d", "input_schema": SCHEMA}]
            ),
        },
        (
            "chat",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20241022",
            1500,
            80,
            1000,
            1580,
        ),
        (
            "claude-3-5-sonnet-20241022",
            "anthropic",
            {"input_tokens": 1500, "cache_read_tokens": 1000, "output_tokens": 80},
        ),
    ),
}


@pytest.mark.parametrize("call", CALLS)
def test_a_call_in_either_spelling_is_stored_with_the_same_facts(call):
    new, old, (operation, provider, request, response, inp, out, cache_read, total), priced = CALLS[call]
    stored = _stored(new)
    assert _stored(old) == stored
    expected = {
        "GenAIOperation": operation,
        "GenAIProvider": provider,
        "GenAIRequestModel": request,
        "GenAIResponseModel": response,
        "InputTokens": inp,
        "OutputTokens": out,
        "TotalTokens": total,
        **({"CacheReadTokens": cache_read} if cache_read else {}),
    }
    assert {k: stored[k] for k in expected} == expected
    assert "TokensEstimated" not in stored
    model, provider_id, usage = priced
    assert {k: Decimal(stored[k]) for k in ("InputCostUSD", "OutputCostUSD", "TotalCostUSD")} == _price(
        model, provider_id, **usage
    )


def _tokens(*texts: str) -> int:
    return len(tiktoken.get_encoding(ENCODING).encode_ordinary("\n".join(texts)))


def test_stream_without_usage_estimated_alike_from_server_tool_parts_in_either_spelling():
    question = "What is the weather in Paris, and should I take an umbrella?"
    stream = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet-20241022",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": question}]}]
        ),
    }
    text = {"type": "text", "content": "Searching the forecast for you."}
    new = {
        **stream,
        "gen_ai.output.messages": _messages(
            text,
            {
                "type": "server_tool_call",
                "id": "srvtoolu_1",
                "name": "web_search",
                "server_tool_call": {"type": "web_search", "arguments": {"query": "Paris weather tomorrow"}},
            },
            finish="incomplete",  # the application stopped reading the stream
        ),
    }
    old = {
        **stream,
        "gen_ai.output.messages": _messages(
            text,
            {
                "type": "tool_call",
                "id": "srvtoolu_1",
                "name": "web_search",
                "arguments": {"query": "Paris weather tomorrow"},
            },
            finish="tool_calls",
        ),
    }
    stored = _stored(new)
    assert _stored(old) == stored
    assert stored["TokensEstimated"] is True
    assert stored["InputTokens"] == _tokens(question)
    assert stored["OutputTokens"] == _tokens("Searching the forecast for you.", "Paris weather tomorrow")


def test_estimate_from_truncated_content_counts_what_is_there_not_the_mark():
    kept = "The first part of a long document that the instrumentation had to cut "
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.output.messages": _messages({"type": "text", "content": "Fine."}, finish="stop"),
    }
    cut = {
        **base,
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": kept + MARK}]}]
        ),
        "tracehouse.content.truncated": '["gen_ai.input.messages"]',
    }
    stored = _stored(cut)
    assert stored["TokensEstimated"] is True
    # A lower bound: the text that arrived, without the mark the instrumentation put at the cut.
    assert stored["InputTokens"] == _tokens(kept) < _tokens(kept + MARK)
    assert stored["OutputTokens"] == _tokens("Fine.")


@pytest.mark.parametrize(
    ("name", "attrs", "operation"),
    [
        ("execute_tool get_weather", {"gen_ai.tool.name": "get_weather"}, "execute_tool"),
        (
            "execute_tool get_weather",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
            "execute_tool",
        ),
        (
            "invoke_agent planner",
            {"gen_ai.agent.name": "planner", "gen_ai.request.model": "gpt-4o"},
            "invoke_agent",
        ),
        (
            "invoke_agent planner",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"},
            "invoke_agent",
        ),
        (
            "get_weather",
            {"gen_ai.tool.name": "get_weather"},
            "execute_tool",
        ),  # before: named after the function
    ],
)
def test_tool_and_agent_spans_by_name_or_attribute_carry_no_usage(name, attrs, operation):
    # Agent spans often carry the usage of the calls below them: it must not be counted twice.
    stored = _stored({**attrs, "gen_ai.usage.input_tokens": "500", "gen_ai.usage.output_tokens": "50"}, name)
    assert stored["GenAIOperation"] == operation
    assert not any(
        k in stored for k in ("InputTokens", "OutputTokens", "TotalTokens", "TotalCostUSD", "PriceSource")
    )


def test_provider_unknown_is_no_provider():
    """`@trace(kind="llm")` without a provider writes `unknown`: not a provider to group or price
    by. The call is priced as one naming no provider, and an unpriced model is counted so."""
    call = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": "1000",
        "gen_ai.usage.output_tokens": "100",
    }
    unknown = _stored({**call, "gen_ai.provider.name": "unknown"})
    assert "GenAIProvider" not in unknown
    assert unknown == _stored(call)
    assert {k: Decimal(unknown[k]) for k in ("InputCostUSD", "OutputCostUSD", "TotalCostUSD")} == _price(
        "gpt-4o", "openai", input_tokens=1000, output_tokens=100
    )
    # The endpoint's host still names the provider, as it does for spans naming none.
    hosted = _stored({**call, "gen_ai.provider.name": "unknown", "server.address": "api.anthropic.com"})
    assert hosted["GenAIProvider"] == "anthropic"

    unpriced: Counter = Counter()
    row = _stored(
        {**call, "gen_ai.provider.name": "unknown", "gen_ai.request.model": "inhouse-7b"}, unpriced=unpriced
    )
    assert row["PriceSource"] == UNPRICED_SOURCE
    assert unpriced == Counter({("", "inhouse-7b"): 1})


def test_agent_span_named_only_by_its_name_and_agent_name():
    """`invoke_agent {name}` with `gen_ai.agent.name` and nothing else is still an agent step."""
    assert _stored({"gen_ai.agent.name": "planner"}, "invoke_agent planner") == {"GenAIOperation": "invoke_agent"}
