"""What the trace view reads from a GenAI span's content (query/genai_content.py): tool calls,
tool definitions and finish reasons in the GenAI conventions v1.41.1, from the spelling
Tracehouse writes now and from the older spellings still arriving from other producers."""

from __future__ import annotations

import json

import pytest
from tracehouse_collector.query import genai_content as gc

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": SCHEMA,
}

# One tool, as each producer spells its definition.
TOOL_SHAPES = {
    "v1.41.1": WEATHER,
    "openai, mistral, ollama, litellm": {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA},
    },
    "anthropic": {"name": "get_weather", "description": "Weather in a city", "input_schema": SCHEMA},
    "bedrock": {
        "toolSpec": {
            "name": "get_weather",
            "description": "Weather in a city",
            "inputSchema": {"json": SCHEMA},
        }
    },
    "gemini": {
        "function_declarations": [
            {"name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA}
        ]
    },
    "gemini (camelCase)": {
        "functionDeclarations": [
            {"name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA}
        ]
    },
}


@pytest.mark.parametrize("shape", TOOL_SHAPES)
def test_tool_definitions_of_every_shape_read_as_the_conventions_define_them(shape):
    assert gc.tool_definitions(json.dumps([TOOL_SHAPES[shape]])) == [WEATHER]


def test_tool_definitions_keep_server_tools_their_type_and_unknown_shapes_as_they_came():
    raw = json.dumps(
        [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},  # Anthropic server tool
            {"function_declarations": [{"name": "a"}, {"name": "b", "description": "B"}]},
            {"google_search": {}},
        ]
    )
    assert gc.tool_definitions(raw) == [
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "function", "name": "a"},
        {"type": "function", "name": "b", "description": "B"},
        {"google_search": {}},
    ]
    assert gc.tool_definitions("") == [] and gc.tool_definitions("not json") == []


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("tool_call", "tool_call"),  # v1.41.1, what Tracehouse writes now
        ("tool_calls", "tool_call"),  # OpenAI's, what Tracehouse wrote before
        ("tool_use", "tool_call"),
        ("end_turn", "stop"),
        ("MAX_TOKENS", "length"),
        ("refusal", "content_filter"),
        ("RECITATION", "content_filter"),
        ("SAFETY", "content_filter"),
        ("content_filter", "content_filter"),
        ("error", "error"),
        ("incomplete", "incomplete"),  # Tracehouse's own: a stream abandoned before its end
        ("something_new", "something_new"),
    ],
)
def test_finish_reasons_in_the_conventions_values(spelled, canonical):
    assert gc.finish_reasons({"gen_ai.response.finish_reasons": json.dumps([spelled])}) == [canonical]
    output = [{"role": "assistant", "parts": [], "finish_reason": spelled}]
    assert gc.finish_reasons({"gen_ai.output.messages": json.dumps(output)}) == [canonical]


def test_finish_reasons_attribute_wins_and_vercel_is_read_last():
    attrs = {
        "gen_ai.response.finish_reasons": '["stop","tool_calls"]',
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [], "finish_reason": "length"}]),
    }
    assert gc.finish_reasons(attrs) == ["stop", "tool_call"]
    assert gc.finish_reasons({"ai.response.finishReason": "tool-calls"}) == ["tool_call"]
    assert gc.finish_reasons({}) == []


SERVER_CALL = {
    "type": "server_tool_call",
    "id": "srvtoolu_1",
    "name": "web_search",
    "server_tool_call": {"type": "web_search", "arguments": {"query": "weather Paris"}},
}
SERVER_RESULT = {
    "type": "server_tool_call_response",
    "id": "srvtoolu_1",
    "server_tool_call_response": {"type": "web_search_tool_result", "content": [{"title": "Paris sunny"}]},
}


def test_tool_calls_of_client_and_server_tool_calls_and_openai_messages():
    new = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me look."},
                SERVER_CALL,
                SERVER_RESULT,
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert gc.tool_calls_of(json.dumps(new)) == [
        {
            "id": "srvtoolu_1",
            "name": "web_search",
            "arguments": {"query": "weather Paris"},
            "type": "server_tool_call",
        },
        {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}, "type": "tool_call"},
    ]
    # A hand-rolled producer's OpenAI-shaped output message.
    old = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert gc.tool_calls_of(json.dumps(old)) == [
        {"id": "call_1", "name": "f", "arguments": {"x": 1}, "type": "tool_call"}
    ]


def test_message_text_reads_server_tool_parts():
    raw = json.dumps([{"role": "assistant", "parts": [SERVER_CALL, SERVER_RESULT]}])
    assert gc.content_text(raw) == (
        '[server tool call web_search({"query":"weather Paris"})] [{"title":"Paris sunny"}]'
    )


def test_truncated_content_lists_what_producer_and_collector_cut():
    attrs = {
        "tracehouse.content.truncated": '["gen_ai.input.messages","gen_ai.tool.definitions"]',
        "tracehouse.truncated": "gen_ai.output.messages,gen_ai.input.messages,http.request.body",
    }
    content = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions"}
    assert gc.truncated_content(attrs, content) == [
        "gen_ai.input.messages",
        "gen_ai.tool.definitions",
        "gen_ai.output.messages",
    ]
    assert gc.truncated_content({}, content) == []
