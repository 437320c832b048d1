"""GoogleGenAIInstrumentor against the real `google-genai` client talking to a local fake Gemini API.

The fake server answers POST .../models/{model}:generateContent with JSON,
:streamGenerateContent?alt=sse with an SSE stream of GenerateContentResponse chunks, and
:batchEmbedContents / :embedContent with embeddings; the model name selects special behaviours
(errors, function calls, a cut-off stream). Spans go to an in-memory exporter through a real SDK
TracerProvider; metrics to an InMemoryMetricReader.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import genai_support
import pytest
import wrapt
from google import genai
from google.genai import errors, types
from helpers import unique, wait_for
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.google_genai import GoogleGenAIInstrumentor

# Gemini's prompt count includes the cached tokens; OTel output = candidates + thoughts.
USAGE = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "candidatesTokenCount": 5,
    "thoughtsTokenCount": 7,
    "totalTokenCount": 132,
}
USAGE_ATTRS = {
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.output_tokens": 12,
    "gen_ai.usage.reasoning.output_tokens": 7,
}
CALL = {"name": "get_weather", "args": {"city": "Paris"}}


def _response(model: str) -> dict[str, Any]:
    if model == "gemini-tools":
        parts, finish = [{"text": "Let me check."}, {"functionCall": CALL}], "STOP"
    elif model == "gemini-max":
        parts, finish = [{"text": "Hel"}], "MAX_TOKENS"
    elif model == "gemini-safety":
        parts, finish = [], "SAFETY"
    elif model == "gemini-recitation":
        parts, finish = [], "RECITATION"
    else:
        parts, finish = [{"text": "Thinking...", "thought": True}, {"text": "Hello!"}], "STOP"
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": USAGE,
        "modelVersion": model + "-001",
        "responseId": "resp_1",
    }


def _chunks(model: str) -> list[dict[str, Any]]:
    base = {"modelVersion": model + "-001", "responseId": "resp_s1"}
    partial = {**USAGE, "candidatesTokenCount": 1}
    del partial["totalTokenCount"]

    def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: Any = partial) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {**base, "candidates": [candidate], "usageMetadata": usage}

    if model == "gemini-tools":
        return [
            chunk([{"text": "Let me "}]),
            chunk([{"text": "check."}]),
            chunk([{"functionCall": CALL}], "STOP", USAGE),
        ]
    return [
        chunk([{"text": "Thinking...", "thought": True}]),
        chunk([{"text": "Hel"}]),
        chunk([{"text": "lo!"}], "STOP", USAGE),
    ]


class _Handler(genai_support.FakeAPIHandler):
    def _sse(self, chunks: list[dict[str, Any]], cut: bool = False) -> None:
        raw = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
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
        self.server.requests.append((self.path, body, dict(self.headers)))  # type: ignore[attr-defined]
        path, _, _query = self.path.partition("?")
        model, _, method = path.rsplit("/", 1)[-1].partition(":")
        if model in ("gemini-400", "gemini-500"):
            status = int(model[-3:])
            kind = "INVALID_ARGUMENT" if status == 400 else "INTERNAL"
            return self._json(status, {"error": {"code": status, "message": "bad " + model, "status": kind}})
        if method == "generateContent":
            if model == "gemini-afc":  # a function call, until the request carries its response
                last = body["contents"][-1]["parts"][-1]
                return self._json(
                    200, _response("gemini-x" if "functionResponse" in last else "gemini-tools")
                )
            return self._json(200, _response(model))
        if method == "streamGenerateContent":
            chunks = _chunks(model)
            if model == "gemini-cut":
                return self._sse(chunks[:2], cut=True)
            return self._sse(chunks)
        if method == "batchEmbedContents":
            n = len(body["requests"])
            return self._json(200, {"embeddings": [{"values": [0.1, 0.2, 0.3]} for _ in range(n)]})
        if method == "embedContent":
            return self._json(200, {"embedding": {"values": [0.1, 0.2, 0.3]}})
        return self._json(404, {"error": {"code": 404, "message": "no " + self.path, "status": "NOT_FOUND"}})


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler)


def _client(api: Any, **kwargs: Any) -> genai.Client:
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=api.base_url), **kwargs)


@pytest.fixture
def client(api) -> Iterator[genai.Client]:
    c = _client(api)
    yield c
    c.close()


class Traced(genai_support.Traced):
    instrumentor_class = GoogleGenAIInstrumentor


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


HELLO_OUT = [
    {
        "role": "assistant",
        "parts": [{"type": "reasoning", "content": "Thinking..."}, {"type": "text", "content": "Hello!"}],
        "finish_reason": "stop",
    }
]


# -- generate_content ------------------------------------------------------------------------------


def test_generate_content_attributes_exact(traced, client, api):
    response = client.models.generate_content(
        model="gemini-x",
        contents="Say hello",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.",
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            max_output_tokens=64,
            stop_sequences=["END"],
            seed=7,
            candidate_count=2,
        ),
    )
    assert response.text == "Hello!"
    span = traced.one()
    assert span.name == "generate_content gemini-x"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.google_genai"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-x",
        **_server_attrs(api),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 2,
        "gen_ai.response.id": "resp_1",
        "gen_ai.response.model": "gemini-x-001",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }
    body = api.requests[-1][1]
    assert body["generationConfig"]["temperature"] == 0.5


_PATCHED = ("generate_content", "generate_content_stream", "embed_content")


def test_return_value_identical_and_uninstrument(traced, client):
    instrumented = client.models.generate_content(model="gemini-x", contents="hi")
    assert len(traced.spans()) == 1
    from google.genai.models import AsyncModels, Models

    methods = [cls.__dict__[m] for cls in (Models, AsyncModels) for m in _PATCHED]
    assert all(isinstance(m, wrapt.FunctionWrapper) for m in methods)
    traced.instrumentor.uninstrument()
    methods = [cls.__dict__[m] for cls in (Models, AsyncModels) for m in _PATCHED]
    assert not [m for m in methods if hasattr(m, "__wrapped__")]
    plain = client.models.generate_content(model="gemini-x", contents="hi")
    assert len(traced.spans()) == 1
    assert type(instrumented) is type(plain)
    assert instrumented.model_dump(exclude={"sdk_http_response"}) == plain.model_dump(
        exclude={"sdk_http_response"}
    )
    traced.instrument()  # the fixture uninstruments


@pytest.mark.parametrize(
    "model,reason",
    [("gemini-max", "length"), ("gemini-safety", "content_filter"), ("gemini-recitation", "content_filter")],
)
def test_finish_reason_mapping(traced, client, model, reason):
    client.models.generate_content(model=model, contents="hi")
    assert traced.one().attributes["gen_ai.response.finish_reasons"] == (reason,)


def test_function_calls_and_responses(traced, client, api):
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="w")])
    contents = [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        types.Content(
            role="model",
            parts=[types.Part(text="Let me check."), types.Part(function_call=types.FunctionCall(**CALL))],
        ),
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})],
        ),
        {"role": "user", "parts": [{"text": "and?"}]},
    ]
    response = client.models.generate_content(
        model="gemini-tools",
        contents=contents,
        config=types.GenerateContentConfig(
            tools=[tool],
            system_instruction=types.Content(parts=[types.Part(text="Sys A"), types.Part(text="Sys B")]),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert response.function_calls[0].args == {"city": "Paris"}
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    call = {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Let me check."}, call]},
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": None,
                    "name": "get_weather",
                    "response": {"result": "sunny"},
                }
            ],
        },
        {"role": "user", "parts": [{"type": "text", "content": "and?"}]},
    ]
    assert json.loads(attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Sys A"},
        {"type": "text", "content": "Sys B"},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Let me check."}, call],
            "finish_reason": "stop",
        }
    ]
    # One definition per function declaration, in the conventions' shape.
    [definition] = json.loads(attrs["gen_ai.tool.definitions"])
    assert (definition["type"], definition["name"]) == ("function", "get_weather")
    assert api.requests[-1][1]["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_automatic_function_calling_is_one_span(traced, client, api):
    calls = []

    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    n = len(api.requests)
    response = client.models.generate_content(
        model="gemini-afc", contents="Weather?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert response.text == "Hello!" and calls == ["Paris"] and len(api.requests) == n + 2
    attrs = traced.one().attributes
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "The weather in a city."}
    ]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == HELLO_OUT


def test_chat_send_message(traced, client):
    chat = client.chats.create(model="gemini-x")
    assert chat.send_message("hi").text == "Hello!"
    assert "".join(c.text or "" for c in chat.send_message_stream("again")) == "Hello!"
    first, second = traced.spans()
    assert json.loads(second.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
        {
            "role": "assistant",
            "parts": [{"type": "reasoning", "content": "Thinking..."}, {"type": "text", "content": "Hello!"}],
        },
        {"role": "user", "parts": [{"type": "text", "content": "again"}]},
    ]
    assert second.attributes["gen_ai.request.stream"] is True


def test_no_duplicate_inside_other_genai_client_span(traced, client):
    other = traced.provider.get_tracer("opentelemetry.instrumentation.google_genai")
    with other.start_as_current_span(
        "generate_content gemini-x",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.operation.name": "generate_content", "gen_ai.request.model": "gemini-x"},
    ):
        client.models.generate_content(model="gemini-x", contents="hi")
    assert [s.instrumentation_scope.name for s in traced.spans()] == [
        "opentelemetry.instrumentation.google_genai"
    ]


def test_loose_parts_and_blobs(traced, client):
    client.models.generate_content(
        model="gemini-x",
        contents=[
            "Describe",
            types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
            types.Part.from_uri(file_uri="gs://b/clip.mp4", mime_type="video/mp4"),
        ],
    )
    assert json.loads(traced.one().attributes["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Describe"},
                {"type": "blob", "modality": "image", "mime_type": "image/png"},
                {"type": "uri", "uri": "gs://b/clip.mp4", "modality": "video", "mime_type": "video/mp4"},
            ],
        }
    ]


def test_content_capture_off_and_size_cap(client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    t = Traced()
    t.instrument()
    try:
        client.models.generate_content(
            model="gemini-x", contents="secret", config={"system_instruction": "sys", "temperature": 0.1}
        )
    finally:
        t.instrumentor.uninstrument()
    attrs = t.one().attributes
    assert not [k for k in attrs if k.startswith("gen_ai.input") or k.startswith("gen_ai.output")]
    assert "gen_ai.system_instructions" not in attrs and attrs["gen_ai.request.temperature"] == 0.1
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("TRACEHOUSE_MAX_CONTENT_BYTES", "120")
    t = Traced()
    t.instrument()
    try:
        client.models.generate_content(model="gemini-x", contents="é" * 100)
    finally:
        t.instrumentor.uninstrument()
    raw = t.one().attributes["gen_ai.input.messages"]
    assert len(raw.encode()) <= 120
    [message] = json.loads(raw)  # still JSON: the text cut and marked
    assert message["parts"][0]["content"].endswith("…[truncated]")


def test_errors_reraised_unchanged(traced, client):
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-400", contents="hi")
    assert info.value.code == 400 and info.value.message == "bad gemini-400"
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model="gemini-500", contents="hi")
    first, second = traced.spans()
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["error.type"] == "ClientError"
    assert first.attributes["http.response.status_code"] == 400
    assert first.events[0].name == "exception"
    assert second.attributes["error.type"] == "ServerError"


def test_vertex_provider(traced, api):
    c = genai.Client(vertexai=True, api_key="x", http_options=types.HttpOptions(base_url=api.base_url))
    c.models.generate_content(model="gemini-x", contents="hi")
    span = traced.one()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 120


# -- streaming -------------------------------------------------------------------------------------


def _check_stream_span(span: Any, api: Any) -> None:
    attrs = dict(span.attributes)
    assert span.name == "generate_content gemini-x"
    assert span.status.status_code == StatusCode.UNSET
    assert attrs.pop("gen_ai.response.time_to_first_chunk") > 0
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    attrs.pop("gen_ai.input.messages")
    assert attrs == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-x",
        **_server_attrs(api),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": "resp_s1",
        "gen_ai.response.model": "gemini-x-001",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_stream_exhausted(traced, client, api):
    stream = client.models.generate_content_stream(model="gemini-x", contents="hi")
    assert traced.spans() == []
    text = "".join(chunk.text or "" for chunk in stream)
    assert text == "Hello!"
    _check_stream_span(traced.one(), api)
    assert api.requests[-1][0].endswith(":streamGenerateContent?alt=sse")


def test_stream_function_call(traced, client):
    chunks = list(client.models.generate_content_stream(model="gemini-tools", contents="hi"))
    assert chunks[-1].function_calls[0].name == "get_weather"
    out = json.loads(traced.one().attributes["gen_ai.output.messages"])
    assert out[0]["parts"] == [
        {"type": "text", "content": "Let me check."},
        {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}},
    ]


def test_stream_closed_early_and_garbage_collected(traced, client):
    stream = client.models.generate_content_stream(model="gemini-x", contents="hi")
    next(stream)
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == "resp_s1"
    stream.close()
    dropped = client.models.generate_content_stream(model="gemini-x", contents="hi")
    next(dropped)
    del stream, dropped
    gc.collect()
    assert len(traced.spans()) == 2


def test_stream_errors(traced, client):
    with pytest.raises(errors.ClientError):
        for _ in client.models.generate_content_stream(model="gemini-400", contents="hi"):
            pass
    got = []
    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever the HTTP client raises, unchanged
        for chunk in client.models.generate_content_stream(model="gemini-cut", contents="hi"):
            got.append(chunk)
    assert len(got) == 2
    first, second = traced.spans()
    assert first.attributes["error.type"] == "ClientError"
    assert second.status.status_code == StatusCode.ERROR
    assert second.attributes["error.type"] == type(info.value).__qualname__
    assert second.attributes["gen_ai.response.id"] == "resp_s1"


def test_span_is_current_for_each_request(traced, client, monkeypatch):
    """The stream's request is made on its first chunk, outside the call: our span is current then."""
    from google.genai import _api_client
    from opentelemetry import trace

    seen = []
    for name in ("request", "request_streamed"):
        original = getattr(_api_client.BaseApiClient, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(trace.get_current_span().get_span_context().span_id)
            return _original(*args, **kwargs)

        monkeypatch.setattr(_api_client.BaseApiClient, name, spy)
    app = traced.provider.get_tracer("app")
    with app.start_as_current_span("agent step"):
        client.models.generate_content(model="gemini-x", contents="hi")
        for _ in client.models.generate_content_stream(model="gemini-x", contents="hi"):
            pass
    first, second, parent = traced.spans()
    assert seen == [first.context.span_id, second.context.span_id]
    assert first.parent.span_id == second.parent.span_id == parent.context.span_id


# -- embeddings ------------------------------------------------------------------------------------


def test_embed_content(traced, client, api):
    result = client.models.embed_content(
        model="text-embedding-004", contents=["a", "b"], config={"output_dimensionality": 3}
    )
    assert len(result.embeddings) == 2
    span = traced.one()
    assert span.name == "embeddings text-embedding-004"
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "text-embedding-004",
        **_server_attrs(api),
        "gen_ai.embeddings.dimension.count": 3,
    }
    assert api.requests[-1][0].endswith(":batchEmbedContents")


# -- async -----------------------------------------------------------------------------------------


def test_async_generate_stream_embed_and_errors(traced, api):
    async def main() -> None:
        c = _client(api)
        response = await c.aio.models.generate_content(model="gemini-x", contents="hi")
        assert response.text == "Hello!"
        stream = await c.aio.models.generate_content_stream(model="gemini-x", contents="hi")
        assert "".join([chunk.text or "" async for chunk in stream]) == "Hello!"
        s2 = await c.aio.models.generate_content_stream(model="gemini-x", contents="hi")
        async for _ in s2:
            break
        await s2.aclose()
        result = await c.aio.models.embed_content(model="text-embedding-004", contents="a")
        assert result.embeddings[0].values == [0.1, 0.2, 0.3]
        with pytest.raises(errors.ClientError):
            await c.aio.models.generate_content(model="gemini-400", contents="hi")
        cut = await c.aio.models.generate_content_stream(model="gemini-cut", contents="hi")
        with pytest.raises(Exception):  # noqa: B017, PT011 - the HTTP client's error, unchanged
            async for _ in cut:
                pass
        dropped = await c.aio.models.generate_content_stream(model="gemini-x", contents="hi")
        await dropped.__anext__()
        n = len(traced.spans())
        del dropped
        gc.collect()
        assert len(traced.spans()) == n + 1
        await c.aio.aclose()

    asyncio.run(main())
    spans = traced.spans()
    assert [s.name for s in spans] == ["generate_content gemini-x"] * 3 + [
        "embeddings text-embedding-004",
        "generate_content gemini-400",
        "generate_content gemini-cut",
        "generate_content gemini-x",
    ]
    assert dict(spans[0].attributes)["gen_ai.usage.output_tokens"] == 12
    _check_stream_span(spans[1], api)
    assert "gen_ai.response.finish_reasons" not in spans[2].attributes
    assert spans[4].attributes["error.type"] == "ClientError"
    assert spans[5].status.status_code == StatusCode.ERROR
    assert spans[6].status.status_code == StatusCode.UNSET


# -- suppression, import, metrics ------------------------------------------------------------------


def test_suppression(traced, client):
    with suppress_instrumentation():
        client.models.generate_content(model="gemini-x", contents="hi")
        for _ in client.models.generate_content_stream(model="gemini-x", contents="hi"):
            pass
    assert traced.spans() == []


def test_metrics_token_usage_and_duration(traced, client, api):
    client.models.generate_content(model="gemini-x", contents="hi")
    for _ in client.models.generate_content_stream(model="gemini-x", contents="hi"):
        pass
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-400", contents="hi")
    base = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-x",
        "gen_ai.response.model": "gemini-x-001",
        **_server_attrs(api),
    }
    u = genai_support.usage_points(traced.metrics(), base, failed_model="gemini-400", error_type="ClientError")
    assert len(u.tokens) == 2
    assert (u.input.count, u.input.sum, u.output.count, u.output.sum) == (2, 240, 2, 24)
    assert u.ok.count == 2
    assert u.failed.count == 1


# -- end to end: spans into a real collector -------------------------------------------------------


def test_collector_token_columns_end_to_end(collector, api):
    service = unique("google-genai-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = GoogleGenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    c = _client(api)
    try:
        c.models.generate_content(model="gemini-x", contents="hi")
        for _ in c.models.generate_content_stream(model="gemini-x", contents="hi"):
            pass
    finally:
        inst.uninstrument()
        c.close()
        provider.shutdown()
    rows = wait_for(
        lambda: (
            r
            if len(
                r := collector.sql(
                    "SELECT GenAIProvider, GenAIRequestModel, InputTokens, OutputTokens, ReasoningTokens, "
                    f"CacheReadTokens FROM otel_traces WHERE ServiceName = '{service}'"
                )
            )
            == 2
            else None
        ),
        timeout=20,
    )
    assert (
        rows
        == [
            {
                "GenAIProvider": "gcp.gemini",
                "GenAIRequestModel": "gemini-x",
                "InputTokens": 120,
                "OutputTokens": 12,
                "ReasoningTokens": 7,
                "CacheReadTokens": 100,
            }
        ]
        * 2
    )


@pytest.mark.parametrize("tier", [types.ServiceTier.PRIORITY, "flex"])
def test_requested_service_tier_recorded(traced, client, tier):
    client.models.generate_content(model="gemini-x", contents="hi", config={"service_tier": tier})
    value = "priority" if tier == types.ServiceTier.PRIORITY else "flex"
    assert traced.one().attributes["tracehouse.request.service_tier"] == value
