"""LiteLLMInstrumentor against the real `litellm` package talking to a local fake provider.

The fake server answers in OpenAI's wire format (/v1/chat/completions as JSON or SSE,
/v1/embeddings) and in Anthropic's (/v1/messages, JSON); the request's model name selects
special behaviours (errors, tool calls, a cut-off stream). LiteLLM reaches it through `api_base`,
so nothing leaves the machine: the price map is LiteLLM's bundled copy, and every test checks
that no connection went anywhere but to loopback.
"""

from __future__ import annotations

import os

# Before litellm is imported: its price map from the bundled copy, not fetched.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import asyncio
import gc
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import genai_support
import litellm
import litellm.main
import pytest
from helpers import unique, wait_for
from litellm import acompletion as acompletion_imported_early
from litellm import completion as completion_imported_early
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.litellm import LiteLLMInstrumentor
from tracehouse.instrumentors.openai import OpenAIInstrumentor

ORIGINAL_COMPLETION = litellm.main.completion  # as LiteLLM defines it, before any instrument()

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
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
INPUT_JSON = [
    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]},
]
HELLO_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]
TOOL_OUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
        ],
        "finish_reason": "tool_call",  # the conventions' value, whatever the provider said
    }
]


def _chat(model: str) -> dict[str, Any]:
    if model == "gpt-tools":
        message, finish = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}, "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "Hello!"}, "stop"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model + "-2024",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def _chunks(model: str, include_usage: bool) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model + "-2024",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    if model == "gpt-tools":
        first = {**TOOL_CALL, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
        chunks = [
            chunk({"role": "assistant", "tool_calls": [first]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({}, "tool_calls"),
        ]
    else:
        chunks = [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo!"}),
        ]
        chunks.append(chunk({}, "stop"))
    if include_usage:
        chunks.append({**chunk({}), "choices": [], "usage": USAGE})
    return chunks


# Anthropic counts input without the cache: the OTel input count is 10 + 100 read + 20 written.
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x-2025",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "output_tokens": 5,
    },
}


class _Handler(genai_support.FakeAPIHandler):
    def _send(self, status: int, raw: bytes, content_type: str, extra_length: int = 0) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw) + extra_length))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        model = body.get("model", "")
        if model == "gpt-400":
            error = {"error": {"message": "bad temperature", "type": "invalid_request_error", "code": None}}
            return self._send(400, json.dumps(error).encode(), "application/json")
        path = self.path.partition("?")[0]  # Azure's paths carry the API version
        if path.endswith("/messages"):
            return self._send(200, json.dumps(ANTHROPIC_MESSAGE).encode(), "application/json")
        if path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
            usage = {"prompt_tokens": 5, "total_tokens": 5}
            reply = {"object": "list", "data": data, "model": model + "-v1", "usage": usage}
            return self._send(200, json.dumps(reply).encode(), "application/json")
        if not body.get("stream"):
            return self._send(200, json.dumps(_chat(model)).encode(), "application/json")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _chunks(model, include_usage)
        if model == "gpt-cut":  # promises more than it sends, then drops the connection
            raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events[:2])
            self.close_connection = True
            return self._send(200, raw, "text/event-stream", extra_length=10_000)
        raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self._send(200, raw, "text/event-stream")


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler, "/v1")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch) -> Iterator[None]:
    """Fail a test whose code (litellm included) tries to connect anywhere but loopback."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test: no network ({address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert attempts == []


class Traced(genai_support.Traced):
    instrumentor_class = LiteLLMInstrumentor


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _kw(api: Any, **extra: Any) -> dict[str, Any]:
    return {"api_base": api.base_url, "api_key": "test", **extra}


def _server(api: Any) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


def _messages(attrs: dict[str, Any], key: str) -> Any:
    return json.loads(attrs.pop(key))


# -- chat ------------------------------------------------------------------------------------------


def test_chat_attributes_exact(traced, api):
    resp = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["END"],
        seed=7,
        **_kw(api),
    )
    assert isinstance(resp, litellm.ModelResponse)
    assert resp.choices[0].message.content == "Hello!"
    span = traced.one()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.litellm"
    attrs = dict(span.attributes)
    assert _messages(attrs, "gen_ai.input.messages") == INPUT_JSON
    assert _messages(attrs, "gen_ai.output.messages") == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",  # LiteLLM's provider prefix is not part of it
        **_server(api),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": 0.2,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 1,
    }
    metrics = traced.metrics()
    usage = metrics["gen_ai.client.token.usage"].data.data_points
    assert {(p.attributes["gen_ai.token.type"], p.sum) for p in usage} == {("input", 12), ("output", 3)}
    assert all(p.attributes["gen_ai.provider.name"] == "openai" for p in usage)


def test_imported_before_instrumentation_and_positional_args(traced, api):
    # `from litellm import completion` ran at this module's import, before instrument().
    completion_imported_early("gpt-4o-mini", MESSAGES, custom_llm_provider="openai", **_kw(api))
    litellm.main.completion("gpt-4o-mini", MESSAGES, custom_llm_provider="openai", **_kw(api))
    asyncio.run(acompletion_imported_early("gpt-4o-mini", MESSAGES, custom_llm_provider="openai", **_kw(api)))
    spans = traced.spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 3
    for span in spans:
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert json.loads(span.attributes["gen_ai.input.messages"]) == INPUT_JSON
    traced.instrumentor.uninstrument()
    from litellm.chat_completions import dispatch

    assert (
        litellm.main.completion is ORIGINAL_COMPLETION and dispatch._PYTHON_COMPLETION is ORIGINAL_COMPLETION
    )
    completion_imported_early("gpt-4o-mini", MESSAGES, custom_llm_provider="openai", **_kw(api))
    assert len(traced.spans()) == 3  # uninstrumented: nothing more
    traced.instrument()  # the fixture uninstruments


def test_tool_calls(traced, api):
    resp = litellm.completion(
        model="openai/gpt-tools",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        **_kw(api),
    )
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    attrs = dict(traced.one().attributes)
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": TOOL_OUT[0]["parts"]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == TOOL_OUT


def test_http_error_recorded_and_reraised_unchanged(traced, api):
    with pytest.raises(litellm.BadRequestError) as traced_error:
        litellm.completion(model="openai/gpt-400", messages=MESSAGES, temperature=9, **_kw(api))
    span = traced.one()
    traced.instrumentor.uninstrument()
    with pytest.raises(litellm.BadRequestError) as plain_error:
        litellm.completion(model="openai/gpt-400", messages=MESSAGES, temperature=9, **_kw(api))
    traced.instrument()
    assert type(traced_error.value) is type(plain_error.value)
    assert str(traced_error.value) == str(plain_error.value)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "BadRequestError"
    assert span.attributes["http.response.status_code"] == 400
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.response.id" not in span.attributes
    assert [e.name for e in span.events] == ["exception"]


def test_anthropic_wire_format(traced):
    server = genai_support.fake_api(_Handler)
    anthropic_api = next(server)
    try:
        resp = litellm.completion(
            model="anthropic/claude-x", messages=MESSAGES, max_tokens=20, **_kw(anthropic_api)
        )
        path, sent = anthropic_api.requests[-1]
    finally:
        next(server, None)
    assert path == "/v1/messages" and sent["model"] == "claude-x"  # Anthropic's API was spoken
    assert resp.choices[0].message.content == "Hello!"
    attrs = dict(traced.one().attributes)
    assert _messages(attrs, "gen_ai.output.messages") == HELLO_OUT
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-x"
    assert attrs["gen_ai.response.model"] == "claude-x-2025"
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.usage.input_tokens"] == 130
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 20


def test_content_capture_off_and_size_cap(api, caplog, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    for t in genai_support.exactly_once(caplog, Traced()):
        litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, tools=TOOLS, **_kw(api))
        attrs = t.one().attributes
        assert not [k for k in attrs if k in ("gen_ai.input.messages", "gen_ai.output.messages")]
        assert "gen_ai.tool.definitions" not in attrs and attrs["gen_ai.usage.input_tokens"] == 12
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    monkeypatch.setenv("TRACEHOUSE_MAX_CONTENT_BYTES", "120")
    long = [{"role": "user", "content": "é" * 500}]
    for t in genai_support.exactly_once(caplog, Traced()):
        litellm.completion(model="openai/gpt-4o-mini", messages=long, **_kw(api))
        captured = t.one().attributes["gen_ai.input.messages"]
        assert 100 < len(captured.encode()) <= 120
        [message] = json.loads(captured)  # still JSON: the text cut and marked, not the bytes
        assert message["parts"][0]["content"].endswith("…[truncated]")


# -- streams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_exhausted(traced, api, include_usage):
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = litellm.completion(
        model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **options, **_kw(api)
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    assert traced.spans() == []  # lazy: the span ends with the stream
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello!"
    attrs = dict(traced.one().attributes)
    assert _messages(attrs, "gen_ai.output.messages") == HELLO_OUT
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.id"] == "chatcmpl-s1"
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < 30
    usage = {k: v for k, v in attrs.items() if k.startswith("gen_ai.usage.")}
    if include_usage:
        assert usage == {
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.usage.cache_read.input_tokens": 4,
            "gen_ai.usage.reasoning.output_tokens": 1,
        }
    else:
        assert usage == {}  # the collector estimates them


def test_stream_break_close_and_garbage_collection(traced, api):
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api))
    for _chunk in stream:
        break
    stream.close()
    assert len(traced.spans()) == 1
    with litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api)) as stream:
        next(stream)
    assert len(traced.spans()) == 2
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api))
    next(stream)
    del stream, _chunk
    gc.collect()
    spans = traced.spans()
    assert len(spans) == 3
    assert all(s.status.status_code == StatusCode.UNSET for s in spans)
    # What arrived before the end is kept.
    assert json.loads(spans[0].attributes["gen_ai.output.messages"])[0]["role"] == "assistant"


def test_stream_error_mid_stream(traced, api):
    stream = litellm.completion(model="openai/gpt-cut", messages=MESSAGES, stream=True, **_kw(api))
    with pytest.raises(Exception) as raised:
        list(stream)
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__


def test_stream_usage_injection_hidden_from_the_application(api, caplog, monkeypatch):
    monkeypatch.setenv("TRACEHOUSE_STREAM_USAGE", "inject")
    for t in genai_support.exactly_once(caplog, Traced()):
        chunks = list(
            litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api))
        )
        assert api.requests[-1][1]["stream_options"] == {"include_usage": True}
        assert all(c.choices for c in chunks)  # the usage-only chunk was ours to read, not the app's
        assert t.one().attributes["gen_ai.usage.output_tokens"] == 3


# -- async and embeddings --------------------------------------------------------------------------


def test_async_chat_stream_and_embeddings(traced, api):
    async def run() -> list[Any]:
        resp = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, **_kw(api))
        stream = await litellm.acompletion(
            model="openai/gpt-tools", messages=MESSAGES, stream=True, **_kw(api)
        )
        chunks = [c async for c in stream]
        early = await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api)
        )
        await early.__anext__()
        await early.aclose()
        async with await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **_kw(api)
        ) as managed:
            await managed.__anext__()
        emb = await litellm.aembedding(model="openai/text-embedding-3-small", input=["hi"], **_kw(api))
        return [resp, chunks, emb]

    resp, chunks, emb = asyncio.run(run())
    assert resp.choices[0].message.content == "Hello!" and len(chunks) >= 4
    assert emb.data[0]["embedding"] == [0.1, 0.2, 0.3]
    spans = traced.spans()
    assert [s.name for s in spans] == [
        "chat gpt-4o-mini",
        "chat gpt-tools",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "embeddings text-embedding-3-small",
    ]
    assert spans[0].attributes["gen_ai.usage.input_tokens"] == 12
    assert json.loads(spans[1].attributes["gen_ai.output.messages"]) == TOOL_OUT
    assert spans[1].attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert spans[2].attributes["gen_ai.request.stream"] is True
    assert spans[3].attributes["gen_ai.response.id"] == "chatcmpl-s1"  # ended at the `async with` exit
    assert spans[4].attributes["gen_ai.usage.input_tokens"] == 5
    assert spans[4].attributes["gen_ai.response.model"] == "text-embedding-3-small-v1"


def test_embeddings(traced, api):
    resp = litellm.embedding(
        model="openai/text-embedding-3-small", input=["a", "b"], dimensions=3, **_kw(api)
    )
    assert resp.data[0]["embedding"] == [0.1, 0.2, 0.3]
    assert dict(traced.one().attributes) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        **_server(api),
        "gen_ai.embeddings.dimension.count": 3,
        "gen_ai.response.model": "text-embedding-3-small-v1",
        "gen_ai.usage.input_tokens": 5,
    }


# -- one LLM call, one span ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root_api() -> Iterator[Any]:
    """The fake provider at the server root, as Azure and Anthropic clients address it."""
    yield from genai_support.fake_api(_Handler)


def test_one_span_with_the_openai_instrumentor_active(traced, api, root_api):
    """LiteLLM calls the openai SDK's create() for Azure chat and for embeddings with an
    encoding format (other OpenAI calls go through the SDK's lower-level post())."""
    # LiteLLM caches its SDK clients by key, and a client binds the SDK method when first used:
    # a key of this test's own gets clients made while the openai instrumentor is on.
    azure = {"api_base": root_api.base_url, "api_key": "one-span-test", "api_version": "2024-10-21"}
    emb = {"api_base": api.base_url, "api_key": "one-span-test", "encoding_format": "float"}

    def calls() -> None:
        litellm.completion(model="azure/my-deployment", messages=MESSAGES, **azure)
        list(litellm.completion(model="azure/my-deployment", messages=MESSAGES, stream=True, **azure))
        litellm.embedding(model="openai/text-embedding-3-small", input=["hi"], **emb)

        async def run() -> None:
            await litellm.acompletion(model="azure/my-deployment", messages=MESSAGES, **azure)
            await litellm.aembedding(model="openai/text-embedding-3-small", input=["hi"], **emb)

        asyncio.run(run())

    names = ["chat my-deployment"] * 2 + ["embeddings text-embedding-3-small", "chat my-deployment"]
    names.append("embeddings text-embedding-3-small")
    openai_inst = OpenAIInstrumentor()
    openai_inst.instrument(tracer_provider=traced.provider, meter_provider=traced.meter_provider)
    try:
        # The control: without LiteLLM's instrumentor, the openai one traces these SDK calls.
        traced.instrumentor.uninstrument()
        calls()
        spans = traced.spans()
        assert [(s.instrumentation_scope.name, s.name) for s in spans] == [
            ("tracehouse.instrumentors.openai", n) for n in names
        ]
        traced.exporter.clear()
        traced.instrument()
        calls()
        spans = traced.spans()
        assert [(s.instrumentation_scope.name, s.name) for s in spans] == [
            ("tracehouse.instrumentors.litellm", n) for n in names
        ]
        assert {s.attributes["gen_ai.provider.name"] for s in spans[:2]} == {"azure.ai.openai"}
        assert spans[0].attributes["gen_ai.usage.input_tokens"] == 12
    finally:
        openai_inst.uninstrument()


def test_routed_call_suppresses_sdk_instrumentor_spans(traced, root_api):
    """Any SDK a routing library calls: the anthropic instrumentor makes no span inside a routed
    call's context, and does outside it."""
    import anthropic
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from tracehouse.instrumentors._call import IN_CALL
    from tracehouse.instrumentors.anthropic import AnthropicInstrumentor

    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=traced.provider, meter_provider=traced.meter_provider)
    client = anthropic.Anthropic(base_url=root_api.base_url, api_key="t", max_retries=0)
    try:
        outer = traced.provider.get_tracer("router").start_span("chat routed")
        token = otel_context.attach(otel_context.set_value(IN_CALL, True, trace.set_span_in_context(outer)))
        try:
            client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES[1:])
        finally:
            otel_context.detach(token)
            outer.end()
        assert [s.name for s in traced.spans()] == ["chat routed"]
        client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES[1:])
        assert traced.spans()[-1].instrumentation_scope.name == "tracehouse.instrumentors.anthropic"
    finally:
        inst.uninstrument()
        client.close()


def test_provider_routing(traced):
    inst = traced.instrumentor
    assert inst.route("anthropic/claude-3-5-haiku", {}) == ("anthropic", "claude-3-5-haiku")
    assert inst.route("bedrock/anthropic.claude-v2", {}) == ("aws.bedrock", "anthropic.claude-v2")
    assert inst.route("gemini/gemini-2.0-flash", {}) == ("gcp.gemini", "gemini-2.0-flash")
    assert inst.route("gpt-4o-mini", {}) == ("openai", "gpt-4o-mini")  # from LiteLLM's price map
    assert inst.route("my-deployment", {"custom_llm_provider": "azure"}) == (
        "azure.ai.openai",
        "my-deployment",
    )
    assert inst.route("no-such-model", {}) == (None, "no-such-model")


def test_registered_for_zero_code_and_opentelemetry_instrument():
    import tomllib
    from pathlib import Path

    from tracehouse.instrumentors import INSTRUMENTORS

    pyproject = Path(__file__).parents[2] / "instrumentation" / "pyproject.toml"
    entry_points = tomllib.loads(pyproject.read_text())["project"]["entry-points"][
        "opentelemetry_instrumentor"
    ]
    assert entry_points["tracehouse_litellm"] == "tracehouse._launcher:LiteLLM"  # defers to the import
    assert INSTRUMENTORS["litellm"] == ("litellm", "tracehouse.instrumentors.litellm:LiteLLMInstrumentor")


# -- end to end: spans as the collector stores them ------------------------------------------------


def test_spans_stored_by_the_collector(collector, api):
    service = unique("litellm-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=provider)
    server = genai_support.fake_api(_Handler)
    anthropic_api = next(server)
    try:
        litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, **_kw(api))
        options = {"stream_options": {"include_usage": True}}
        list(
            litellm.completion(
                model="openai/gpt-tools", messages=MESSAGES, stream=True, **options, **_kw(api)
            )
        )
        litellm.completion(model="anthropic/claude-x", messages=MESSAGES, max_tokens=8, **_kw(anthropic_api))
        with pytest.raises(litellm.BadRequestError):
            litellm.completion(model="openai/gpt-400", messages=MESSAGES, **_kw(api))
    finally:
        inst.uninstrument()
        next(server, None)
        provider.shutdown()
    rows = wait_for(
        lambda: (
            r
            if len(
                r := collector.sql(
                    "SELECT SpanName, StatusCode, GenAIOperation, GenAIProvider, GenAIRequestModel, "
                    "InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, TokensEstimated, "
                    "SpanAttributes['error.type'] AS error "
                    f"FROM otel_traces WHERE ServiceName = '{service}' ORDER BY SpanName"
                )
            )
            == 4
            else None
        ),
        timeout=20,
    )
    # The failed call reported no usage: it was not billed, so no tokens are estimated for it.
    failed = row("chat gpt-400", "Error", "openai", "gpt-400", 0, 0, 0, 0, "BadRequestError")
    assert rows == [
        row("chat claude-x", "Unset", "anthropic", "claude-x", 130, 5, 100, 20, ""),
        failed,
        row("chat gpt-4o-mini", "Unset", "openai", "gpt-4o-mini", 12, 3, 4, 0, ""),
        row("chat gpt-tools", "Unset", "openai", "gpt-tools", 12, 3, 4, 0, ""),
    ]


def row(name, status, provider, model, inp, out, read, write, error, estimated=False) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "SpanName": name,
        "StatusCode": status,
        "GenAIOperation": "chat",
        "GenAIProvider": provider,
        "GenAIRequestModel": model,
        "InputTokens": inp,
        "OutputTokens": out,
        "CacheReadTokens": read,
        "CacheWriteTokens": write,
        "TokensEstimated": estimated,
        "error": error,
    }


# An unmodified application; only the socket guard is the test's: it fails on any connection
# that is not to the local fake provider.
SCRIPT = textwrap.dedent(
    """
    import socket, sys
    real_connect = socket.socket.connect
    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise SystemExit(f"network: {address}")
        return real_connect(self, address)
    socket.socket.connect = connect

    import litellm
    r = litellm.completion(model="azure/gpt-e2e", messages=[{"role": "user", "content": "hi"}],
                           api_base=sys.argv[1], api_key="x", api_version="2024-10-21")
    print(r.choices[0].message.content)
    """
)


def test_zero_code_one_span_and_disabling(collector, root_api, tmp_path):
    """TRACEHOUSE_INSTRUMENT=1 hooks litellm and openai: one span, LiteLLM's. With the litellm
    instrumentor disabled the openai one traces the same call (LiteLLM's Azure chat goes through
    the openai SDK's create()) instead."""
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    runs = {}
    for requested, disabled in (("litellm,openai", ""), ("1", "tracehouse_litellm")):
        service = unique("litellm-zero-code")
        env = {
            **base,
            "TRACEHOUSE_INSTRUMENT": requested,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_url,
            "OTEL_SERVICE_NAME": service,
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled,
        }
        proc = subprocess.Popen(
            [sys.executable, str(script), root_api.base_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs[service] = proc
    scopes, stored = [], []
    for service, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip().endswith("Hello!")
        assert "tracehouse:" not in err, err
        rows = wait_for(
            lambda s=service: collector.sql(
                "SELECT ScopeName, SpanName, GenAIProvider, InputTokens FROM otel_traces "
                f"WHERE ServiceName = '{s}'"
            ),
            timeout=20,
        )
        # The app has exited, so each of its exports was answered; the collector answers once the
        # rows are inserted: the count is final, with no need to wait for a second span.
        assert collector.sql(f"SELECT count() AS n FROM otel_traces WHERE ServiceName = '{service}'") == [
            {"n": 1}
        ]
        assert rows[0]["SpanName"] == "chat gpt-e2e" and rows[0]["GenAIProvider"] == "azure.ai.openai"
        scopes.append(rows[0]["ScopeName"])
        stored.append(rows[0])
    assert scopes == ["tracehouse.instrumentors.litellm", "tracehouse.instrumentors.openai"]
    # LiteLLM's span has the usage; the openai instrumentor does not parse LiteLLM's raw response.
    assert stored[0]["InputTokens"] == 12
