"""OpenAIInstrumentor against the real `openai` client talking to a local fake OpenAI API.

The fake server answers /v1/chat/completions (JSON and SSE), /v1/embeddings and /v1/responses;
the request's model name selects special behaviours (errors, tool calls, a cut-off stream).
Spans go to an in-memory exporter through a real SDK TracerProvider.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import genai_support
import openai
import pydantic
import pytest
import wrapt
from helpers import unique, wait_for
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.openai import OpenAIInstrumentor

USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 3,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 1},
}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def _chat_body(model: str) -> dict[str, Any]:
    if model == "gpt-tools":
        message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
        finish = "tool_calls"
    else:
        content = '{"greeting": "hi"}' if model == "gpt-json" else "Hello!"
        message = {"role": "assistant", "content": content}
        finish = "stop"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model + "-2024",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": USAGE,
        "system_fingerprint": "fp_test",
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model + "-2024",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "system_fingerprint": "fp_test",
        **extra,
    }


def _chat_chunks(model: str, include_usage: bool) -> list[dict[str, Any]]:
    if model == "gpt-tools":
        chunks = [
            _chunk(
                model,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {**TOOL_CALL, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
                    ],
                },
            ),
            _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            _chunk(model, {}, "tool_calls"),
        ]
    else:
        chunks = [
            _chunk(model, {"role": "assistant", "content": ""}),
            _chunk(model, {"content": "Hel"}),
            _chunk(model, {"content": "lo!"}),
            _chunk(model, {}, "stop"),
        ]
    if include_usage:
        for c in chunks:
            c["usage"] = None
        chunks.append({**_chunk(model, {}), "choices": [], "usage": USAGE})
    return chunks


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "gpt-4.1-2025",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 9,
        "output_tokens": 2,
        "total_tokens": 11,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}


class _Handler(genai_support.FakeAPIHandler):
    def _sse(self, events: list[Any], cut: bool = False) -> None:
        raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        if not cut:
            raw += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        # A cut stream promises more than it sends, then drops the connection.
        self.send_header("Content-Length", str(len(raw) + (10_000 if cut else 0)))
        self.send_header("Connection", "close" if cut else "keep-alive")
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        model = body.get("model", "")
        if model == "gpt-400":
            return self._json(
                400,
                {
                    "error": {
                        "message": "bad temperature",
                        "type": "invalid_request_error",
                        "param": "temperature",
                        "code": None,
                    }
                },
            )
        if model == "gpt-500":
            return self._json(
                500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
            )
        # OpenAI answers with the tier it served the call at: `auto` comes back as `default`.
        tier = body.get("service_tier")
        served = {"service_tier": "default" if tier == "auto" else tier} if tier else {}
        if self.path == "/v1/chat/completions":
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks = [{**c, **served} for c in _chat_chunks(model, include_usage)]
                if model == "gpt-cut":
                    return self._sse(chunks[:2], cut=True)
                return self._sse(chunks)
            return self._json(200, {**_chat_body(model), **served})
        if self.path == "/v1/embeddings":
            return self._json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                    "model": model + "-v1",
                    "usage": {"prompt_tokens": 5, "total_tokens": 5},
                },
            )
        if self.path == "/v1/responses":
            if body.get("stream"):
                created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
                return self._sse(
                    [
                        {"type": "response.created", "sequence_number": 0, "response": created},
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": 1,
                            "item_id": "msg_1",
                            "output_index": 0,
                            "content_index": 0,
                            "delta": "Hi there",
                        },
                        {"type": "response.completed", "sequence_number": 2, "response": RESPONSE},
                    ]
                )
            if model == "gpt-rtools":
                call = {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_9",
                    "name": "lookup",
                    "arguments": '{"q": 1}',
                    "status": "completed",
                }
                return self._json(200, {**RESPONSE, "model": model, "output": [call]})
            return self._json(200, {**RESPONSE, **served})
        self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler, "/v1")


@pytest.fixture
def client(api) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=api.base_url, api_key="test", max_retries=0)
    yield c
    c.close()


@pytest.fixture
def aclient(api) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=api.base_url, api_key="test", max_retries=0)


class Traced:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = OpenAIInstrumentor()

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def one(self) -> Any:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    t = Traced()
    t.instrumentor.instrument(tracer_provider=t.provider)
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield t
        gc.collect()
    t.instrumentor.uninstrument()
    # The SDK ignores a second end() (and attributes set after the end) with a warning: there
    # must be none, so every span was ended exactly once and complete when it ended.
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    assert not [r.getMessage() for r in records if "ended span" in r.getMessage()]


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello"},
]
INPUT_JSON = [
    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]},
]


# -- chat, non-streaming ---------------------------------------------------------------------------


def test_chat_attributes_exact(traced, client, api):
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop="END",
        seed=7,
        n=2,
    )
    assert resp.choices[0].message.content == "Hello!"
    span = traced.one()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.openai"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == INPUT_JSON
    assert json.loads(attrs.pop("gen_ai.output.messages")) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}
    ]
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        **_server_attrs(api),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": 0.2,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 2,
        "openai.api.type": "chat_completions",
        "openai.response.system_fingerprint": "fp_test",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 1,
    }


def test_return_value_identical_to_uninstrumented(traced, client):
    instrumented = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    emb = client.embeddings.create(model="text-embedding-3-small", input="hi")
    resp = client.responses.create(model="gpt-4.1", input="hi")
    assert len(traced.spans()) == 3
    traced.instrumentor.uninstrument()
    from openai.resources.chat.completions.completions import Completions

    assert not isinstance(Completions.__dict__["create"], wrapt.ObjectProxy)
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    plain_emb = client.embeddings.create(model="text-embedding-3-small", input="hi")
    plain_resp = client.responses.create(model="gpt-4.1", input="hi")
    assert len(traced.spans()) == 3  # uninstrumented: nothing more
    for a, b in ((instrumented, plain), (emb, plain_emb), (resp, plain_resp)):
        assert type(a) is type(b)
        assert a.model_dump() == b.model_dump()
    traced.instrumentor.instrument(tracer_provider=traced.provider)  # the fixture uninstruments


def test_iterator_arguments_reach_openai_whole(traced, client, api):
    tools = [{"type": "function", "function": {"name": "f"}}]
    client.chat.completions.create(model="gpt-4o-mini", messages=iter(MESSAGES), tools=(t for t in tools))
    sent = api.requests[-1][1]
    assert sent["messages"] == MESSAGES and sent["tools"] == tools
    attrs = traced.one().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert "gen_ai.input.messages" not in attrs  # not read: reading would consume them


def test_tool_calls_and_tool_messages(traced, client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    client.chat.completions.create(
        model="gpt-tools",
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]
    # The conventions' shape: type and name at the top, not OpenAI's nested `function`.
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]


@pytest.mark.parametrize(
    "model,status,cls",
    [("gpt-400", 400, openai.BadRequestError), ("gpt-500", 500, openai.InternalServerError)],
)
def test_http_error_recorded_and_reraised_unchanged(traced, client, model, status, cls):
    with pytest.raises(cls) as info:
        client.chat.completions.create(model=model, messages=MESSAGES)
    exc = info.value
    assert type(exc) is cls and exc.status_code == status
    assert exc.body["message"] in ("bad temperature", "boom")
    span = traced.one()
    assert span.name == f"chat {model}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == cls.__name__
    assert span.attributes["http.response.status_code"] == status
    assert "gen_ai.response.id" not in span.attributes
    [event] = span.events
    assert event.name == "exception" and event.attributes["exception.type"].endswith(cls.__name__)


def test_connection_error_reraised(traced):
    c = openai.OpenAI(base_url="http://127.0.0.1:1/v1", api_key="test", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = traced.one()
    assert span.attributes["error.type"] == "APIConnectionError"
    assert span.attributes["server.port"] == 1


def test_content_capture_off_and_truncation(api, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    t = Traced()
    t.instrumentor.instrument(tracer_provider=t.provider)
    try:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}]
        )
        client.responses.create(model="gpt-4.1", input="secret", instructions="hidden")
    finally:
        t.instrumentor.uninstrument()
    for span in t.spans():
        assert not [
            k for k in span.attributes if "messages" in k or "instructions" in k or "definitions" in k
        ]
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("TRACEHOUSE_MAX_CONTENT_BYTES", "120")
    t = Traced()
    t.instrumentor.instrument(tracer_provider=t.provider)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "é" * 100}])
    finally:
        t.instrumentor.uninstrument()
    attrs = t.one().attributes
    text = attrs["gen_ai.input.messages"]
    # Still JSON of the same shape, the content cut and marked, within the byte cap.
    assert len(text.encode()) <= 120
    [message] = json.loads(text)
    content = message["parts"][0]["content"]
    assert message["role"] == "user" and content.endswith("…[truncated]")
    assert content.removesuffix("…[truncated]") == "é" * len(content.removesuffix("…[truncated]"))
    assert attrs["tracehouse.content.truncated"] == ("gen_ai.input.messages",)


@pytest.mark.parametrize(
    ("value", "on_span"),
    [
        ("NO_CONTENT", False),
        ("no_content", False),
        ("false", False),
        ("0", False),
        ("EVENT_ONLY", False),  # content goes to the event, never to the span
        ("SPAN_ONLY", True),
        ("SPAN_AND_EVENT", True),
        ("true", True),
        ("", True),  # unset: on by default
    ],
)
def test_capture_setting_decides_span_content(api, client, monkeypatch, value, on_span):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    t = Traced()
    t.instrumentor.instrument(tracer_provider=t.provider)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        t.instrumentor.uninstrument()
    attrs = t.one().attributes
    assert ("gen_ai.input.messages" in attrs) is on_span
    assert ("gen_ai.output.messages" in attrs) is on_span


def test_unknown_capture_setting_captures_nothing(api, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe")
    t = Traced()
    with pytest.warns(RuntimeWarning, match="no message content is captured"):
        t.instrumentor.instrument(tracer_provider=t.provider)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        t.instrumentor.uninstrument()
    assert "gen_ai.input.messages" not in t.one().attributes


def test_provider_from_base_url(traced, api):
    # The base URL's host names the provider; these hosts are unreachable here, so each call
    # fails to connect, after its span has recorded the request side.
    cases = {
        "https://api.groq.com/openai/v1": ("groq", 443),
        "https://myres.openai.azure.com/openai": ("azure.ai.openai", 443),
        "http://localhost:11434/v1": ("ollama", 11434),
        "http://vllm.internal:8000/v1": ("openai", 8000),
    }
    for url in cases:
        c = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=2)
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=MESSAGES)
    spans = traced.spans()
    assert [(s.attributes["gen_ai.provider.name"], s.attributes["server.port"]) for s in spans] == list(
        cases.values()
    )
    assert [s.attributes["server.address"] for s in spans] == [
        "api.groq.com",
        "myres.openai.azure.com",
        "localhost",
        "vllm.internal",
    ]


def test_azure_clients_named_azure(traced, api):
    # Azure is told by the client class, sync or async, whatever host the resource has.
    from helpers import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: each call fails to connect
    kw = {"azure_endpoint": endpoint, "api_key": "x", "api_version": "2024-10-21", "max_retries": 0}
    with pytest.raises(openai.APIConnectionError):
        openai.AzureOpenAI(**kw).chat.completions.create(model="m", messages=MESSAGES)

    async def call() -> None:
        async with openai.AsyncAzureOpenAI(**kw) as c:
            await c.chat.completions.create(model="m", messages=MESSAGES)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(call())
    assert [s.attributes["gen_ai.provider.name"] for s in traced.spans()] == ["azure.ai.openai"] * 2


def test_with_raw_response_untouched(traced, client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(raw).__name__ == "LegacyAPIResponse"
    assert raw.parse().choices[0].message.content == "Hello!"
    span = traced.one()
    assert span.name == "chat gpt-4o-mini" and span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.id" not in span.attributes  # never parsed on the application's behalf


# -- chat, streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_exhausted(traced, client, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **kwargs)
    assert isinstance(stream, openai.Stream)
    assert traced.spans() == []  # open until the stream ends
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    span = traced.one()
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "chatcmpl-s1"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}
    ]
    assert isinstance(attrs["gen_ai.response.time_to_first_chunk"], float)
    assert "tracehouse.response.time_to_first_chunk" not in attrs  # the old name, no longer written
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < span.end_time / 1e9 - span.start_time / 1e9
    if include_usage:
        assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 3
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    else:
        assert "gen_ai.usage.input_tokens" not in attrs
    list(stream)  # iterating again after the end adds nothing
    assert len(traced.spans()) == 1


def test_stream_tool_call_deltas(traced, client):
    stream = client.chat.completions.create(model="gpt-tools", messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]


def test_stream_break_and_close(traced, client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for chunk in stream:
        assert chunk.choices[0].delta.role == "assistant"
        break
    assert traced.spans() == []
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-s1"
    stream.close()
    del stream
    gc.collect()
    assert len(traced.spans()) == 1


def test_stream_context_manager_and_response_attribute(traced, client):
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"] == "text/event-stream"
        next(stream)
    assert traced.one().name == "chat gpt-4o-mini"
    del stream
    gc.collect()
    assert len(traced.spans()) == 1


def test_stream_application_error_inside_with(traced, client):
    with (
        pytest.raises(ValueError),
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream,
    ):
        next(stream)
        raise ValueError("app gave up")
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "ValueError"
    assert stream.response.is_closed


def test_stream_error_mid_stream(traced, client):
    stream = client.chat.completions.create(model="gpt-cut", messages=MESSAGES, stream=True)
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 2
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "APIConnectionError"
    assert "gen_ai.response.time_to_first_chunk" in span.attributes
    stream.close()
    assert len(traced.spans()) == 1


def test_stream_garbage_collected(traced, client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    assert traced.spans() == []
    del stream
    gc.collect()
    assert traced.one().attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"


def test_chat_stream_helper(traced, client):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "Hello!"
    attrs = traced.one().attributes  # the helper goes through create(stream=True)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [{"type": "text", "content": "Hello!"}]


# -- async -------------------------------------------------------------------------------------------


def test_async_chat_and_streams(traced, aclient):
    async def main() -> None:
        resp = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert type(resp).__name__ == "ChatCompletion"
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Hello!"
        async with await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ) as s2:
            await s2.__anext__()
        s3 = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        async for _ in s3:
            break
        await s3.close()
        with pytest.raises(openai.BadRequestError):
            await aclient.chat.completions.create(model="gpt-400", messages=MESSAGES)
        emb = await aclient.embeddings.create(model="text-embedding-3-small", input=["a"])
        assert emb.data[0].embedding == [0.1, 0.2, 0.3]
        r = await aclient.responses.create(model="gpt-4.1", input="hi")
        assert r.output_text == "Hi there"
        await aclient.close()

    asyncio.run(main())
    spans = traced.spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 4 + [
        "chat gpt-400",
        "embeddings text-embedding-3-small",
        "chat gpt-4.1",
    ]
    assert spans[0].attributes["gen_ai.usage.output_tokens"] == 3
    assert spans[1].attributes["gen_ai.usage.input_tokens"] == 12
    assert spans[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.response.finish_reasons" not in spans[3].attributes  # broke off early
    assert spans[4].attributes["error.type"] == "BadRequestError"
    assert spans[5].attributes["gen_ai.usage.input_tokens"] == 5
    assert spans[6].attributes["gen_ai.response.id"] == "resp_1"


def test_async_stream_error_gc_and_responses_stream(traced, aclient):
    async def main() -> None:
        cut = await aclient.chat.completions.create(model="gpt-cut", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in cut:
                pass
        await cut.close()
        dropped = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        await dropped.__anext__()
        assert len(traced.spans()) == 1
        del dropped
        gc.collect()
        assert len(traced.spans()) == 2
        events = await aclient.responses.create(model="gpt-4.1", input="hi", stream=True)
        assert [e.type async for e in events][-1] == "response.completed"
        await aclient.close()

    asyncio.run(main())
    cut, dropped, resp = traced.spans()
    assert cut.attributes["error.type"] == "APIConnectionError" and cut.status.status_code == StatusCode.ERROR
    assert (
        dropped.status.status_code == StatusCode.UNSET
        and "gen_ai.response.finish_reasons" not in dropped.attributes
    )
    assert resp.attributes["gen_ai.usage.input_tokens"] == 9
    assert resp.attributes["gen_ai.response.finish_reasons"] == ("stop",)


# -- embeddings and responses ------------------------------------------------------------------------


def test_embeddings(traced, client, api):
    client.embeddings.create(
        model="text-embedding-3-small", input="hello", dimensions=3, encoding_format="float"
    )
    span = traced.one()
    assert span.name == "embeddings text-embedding-3-small"
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        **_server_attrs(api),
        "gen_ai.request.encoding_formats": ("float",),
        "gen_ai.embeddings.dimension.count": 3,
        "gen_ai.response.model": "text-embedding-3-small-v1",
        "gen_ai.usage.input_tokens": 5,
    }


def test_responses(traced, client, api):
    r = client.responses.create(
        model="gpt-4.1", input="Say hi", instructions="Be brief.", temperature=0.2, max_output_tokens=20
    )
    assert r.output_text == "Hi there"
    attrs = dict(traced.one().attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi there"}], "finish_reason": "stop"}
    ]
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4.1",
        **_server_attrs(api),
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 20,
        "openai.api.type": "responses",
        "gen_ai.response.id": "resp_1",
        "gen_ai.response.model": "gpt-4.1-2025",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.usage.cache_read.input_tokens": 3,
        "gen_ai.usage.reasoning.output_tokens": 0,
    }


def test_responses_tool_items(traced, client):
    client.responses.create(
        model="gpt-rtools",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "look it up"}]},
            {"type": "function_call", "call_id": "call_8", "name": "lookup", "arguments": '{"q": 0}'},
            {"type": "function_call_output", "call_id": "call_8", "output": "none"},
        ],
    )
    attrs = traced.one().attributes
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "look it up"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_8", "name": "lookup", "arguments": {"q": 0}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_8", "response": "none"}]},
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": 1}}],
            "finish_reason": "tool_call",
        }
    ]


def test_parse_helpers(traced, client):
    class Greeting(pydantic.BaseModel):
        greeting: str

    parsed = client.chat.completions.parse(model="gpt-json", messages=MESSAGES, response_format=Greeting)
    assert parsed.choices[0].message.parsed == Greeting(greeting="hi")
    r = client.responses.parse(model="gpt-4.1", input="hi")
    assert r.output_text == "Hi there"
    chat, resp = traced.spans()
    assert (chat.name, chat.attributes["gen_ai.usage.input_tokens"]) == ("chat gpt-json", 12)
    assert (resp.name, resp.attributes["gen_ai.response.id"]) == ("chat gpt-4.1", "resp_1")


def test_responses_stream(traced, client):
    stream = client.responses.create(model="gpt-4.1", input="Say hi", stream=True)
    types = [e.type for e in stream]
    assert types == ["response.created", "response.output_text.delta", "response.completed"]
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.id"] == "resp_1"
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.response.time_to_first_chunk" in attrs


# -- cooperation with other instrumentation ----------------------------------------------------------


def test_no_duplicate_inside_other_genai_client_span(traced, client):
    other = traced.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with other.start_as_current_span(
        "chat gpt-4o-mini",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert [s.instrumentation_scope.name for s in traced.spans()] == [
        "opentelemetry.instrumentation.openai_v2"
    ]
    # An unrelated parent span (an agent step, a tool) still gets our child span.
    app = traced.provider.get_tracer("app")
    with app.start_as_current_span("agent step"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    names = [(s.name, s.instrumentation_scope.name) for s in traced.spans()[1:]]
    assert names == [("chat gpt-4o-mini", "tracehouse.instrumentors.openai"), ("agent step", "app")]
    child, parent = traced.spans()[1:]
    assert child.parent.span_id == parent.context.span_id


def test_suppression_and_child_spans(traced, client, api):
    with suppress_instrumentation():
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert traced.spans() == []
    # Inside our call our span is current, so lower-level instrumentation (httpx) nests under it
    # and is not suppressed by us.
    seen = []

    def hook(request):
        seen.append((trace.get_current_span().get_span_context().span_id, is_instrumentation_enabled()))

    c = openai.OpenAI(
        base_url=api.base_url,
        api_key="test",
        http_client=openai.DefaultHttpxClient(event_hooks={"request": [hook]}),
    )
    c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert seen == [(traced.one().context.span_id, True)]


# -- end to end: zero-code activation into a real collector ----------------------------------------


SCRIPT = textwrap.dedent(
    """
    import sys
    import openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
    r = client.chat.completions.create(model="gpt-e2e", messages=[{"role": "user", "content": "hi"}])
    print(r.choices[0].message.content)
    """
)


def test_zero_code_activation_end_to_end(collector, api, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    on, off = unique("oai-on"), unique("oai-off")
    for service, activate in ((on, True), (off, False)):
        env = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_url, "OTEL_SERVICE_NAME": service}
        if activate:
            env["TRACEHOUSE_INSTRUMENT"] = "1"
        out = subprocess.run(
            [sys.executable, str(script), api.base_url], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "Hello!"
        assert "tracehouse" not in out.stderr, out.stderr
    rows = wait_for(
        lambda: collector.sql(
            "SELECT SpanName, GenAIRequestModel, GenAIProvider, InputTokens, OutputTokens, CacheReadTokens "
            f"FROM otel_traces WHERE ServiceName = '{on}'"
        ),
        timeout=20,
    )
    assert rows == [
        {
            "SpanName": "chat gpt-e2e",
            "GenAIRequestModel": "gpt-e2e",
            "GenAIProvider": "openai",
            "InputTokens": 12,
            "OutputTokens": 3,
            "CacheReadTokens": 4,
        }
    ]
    assert collector.sql(f"SELECT count() AS n FROM otel_traces WHERE ServiceName = '{off}'") == [{"n": 0}]


@pytest.fixture
def traced_inject(caplog, monkeypatch) -> Iterator[Traced]:
    monkeypatch.setenv("TRACEHOUSE_STREAM_USAGE", "inject")
    t = Traced()
    t.instrumentor.instrument(tracer_provider=t.provider)
    yield t
    t.instrumentor.uninstrument()


def test_stream_usage_injection_hides_the_extra_chunk(traced_inject, client, api):
    plain = openai.OpenAI(base_url=api.base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    # The application sees exactly the chunks it would see without the injection ...
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello!"
    # ... while the request asked for usage and the span has it.
    assert api.requests[-1][1]["stream_options"] == {"include_usage": True}
    attrs = traced_inject.one().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 3
    plain.close()


def test_stream_usage_injection_respects_the_applications_choice(traced_inject, client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert any(not c.choices and c.usage is not None for c in chunks)  # asked for: not hidden


def test_stream_usage_injection_async(traced_inject, aclient):
    async def run():
        stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        return [c async for c in stream]

    chunks = asyncio.run(run())
    assert all(c.choices for c in chunks)
    assert traced_inject.one().attributes["gen_ai.usage.output_tokens"] == 3


def test_no_injection_by_default(traced, client, api):
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "stream_options" not in api.requests[-1][1]


@pytest.mark.parametrize(
    ("requested", "served"), [("priority", "priority"), ("auto", "default"), ("flex", "flex")]
)
def test_service_tier_requested_and_served(traced, client, requested, served):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier=requested)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        service_tier=requested,
        stream=True,
        stream_options={"include_usage": True},
    )
    list(stream)
    client.responses.create(model="gpt-4.1", input="hi", service_tier=requested)
    spans = traced.spans()
    assert len(spans) == 3
    for span in spans:
        # The conventions set the request tier only when it is not `auto`.
        assert span.attributes.get("openai.request.service_tier") == (
            None if requested == "auto" else requested
        )
        assert span.attributes["openai.response.service_tier"] == served


def test_no_service_tier_attributes_when_neither_side_names_one(traced, client):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    attrs = traced.one().attributes
    assert "openai.request.service_tier" not in attrs and "openai.response.service_tier" not in attrs
