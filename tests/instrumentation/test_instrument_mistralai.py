"""MistralInstrumentor against the real `mistralai` client talking to a local fake Mistral API.

The fake server answers POST /v1/chat/completions with JSON or an SSE stream of completion
chunks (usage on the last one, then `data: [DONE]`), and /v1/embeddings with JSON; the request's
model name selects special behaviours (HTTP errors, tool calls, a cut-off stream). Spans go to
an in-memory exporter through a real SDK TracerProvider; metrics to an InMemoryMetricReader.
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
from helpers import unique, wait_for
from mistralai.client import Mistral, errors, models
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.mistralai import MistralInstrumentor

USAGE = {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def _completion(model: str) -> dict[str, Any]:
    if model == "mistral-tools":
        message = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
        reason = "tool_calls"
    elif model == "mistral-max":
        message, reason = {"role": "assistant", "content": "Hel"}, "model_length"
    else:
        message, reason = {"role": "assistant", "content": "Hello!"}, "stop"
    return {
        "id": "cmpl_1",
        "object": "chat.completion",
        "model": model + "-2501",
        "created": 1,
        "usage": USAGE,
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
    }


def _chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": "cmpl_s1", "object": "chat.completion.chunk", "created": 1, "model": model + "-2501"}
    if model == "mistral-tools":
        deltas = [({"role": "assistant", "content": ""}, None), ({"tool_calls": [TOOL_CALL]}, "tool_calls")]
    else:
        deltas = [
            ({"role": "assistant", "content": "Hel"}, None),
            ({"content": "lo!"}, None),
            ({"content": ""}, "stop"),
        ]
    out = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": r}]} for d, r in deltas]
    out[-1]["usage"] = USAGE
    return out


class _Handler(genai_support.FakeAPIHandler):
    def _sse(self, chunks: list[dict[str, Any]], cut: bool = False) -> None:
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        if not cut:
            events.append(b"data: [DONE]\n\n")
        genai_support.send_stream(self, events, "text/event-stream", cut)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body, dict(self.headers)))  # type: ignore[attr-defined]
        model = body.get("model", "")
        if model in ("mistral-400", "mistral-500"):
            return self._json(
                int(model[-3:]), {"object": "error", "message": "bad " + model, "type": "invalid"}
            )
        if self.path == "/v1/embeddings":
            raw = body.get("inputs", body.get("input"))
            inputs = raw if isinstance(raw, list) else [raw]
            return self._json(
                200,
                {
                    "id": "emb_1",
                    "object": "list",
                    "model": model,
                    "usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4},
                    "data": [
                        {"object": "embedding", "embedding": [0.1, 0.2], "index": i}
                        for i in range(len(inputs))
                    ],
                },
            )
        if self.path != "/v1/chat/completions":
            return self._json(404, {"object": "error", "message": "no"})
        if body.get("stream"):
            chunks = _chunks(model)
            if model == "mistral-cut":
                return self._sse(chunks[:1], cut=True)
            return self._sse(chunks)
        return self._json(200, _completion(model))


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler)


@pytest.fixture
def client(api) -> Iterator[Mistral]:
    with Mistral(api_key="test", server_url=api.base_url) as c:
        yield c


class Traced(genai_support.Traced):
    instrumentor_class = MistralInstrumentor


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
USAGE_ATTRS = {"gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 6}
HELLO_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]


# -- complete ----------------------------------------------------------------------------------


def test_complete_attributes_exact(traced, client, api):
    resp = client.chat.complete(
        model="mistral-small",
        messages=MESSAGES,
        temperature=0.5,
        top_p=0.9,
        max_tokens=64,
        random_seed=7,
        stop=["END"],
        presence_penalty=0.1,
        response_format={"type": "json_object"},
    )
    assert isinstance(resp, models.ChatCompletionResponse)
    assert resp.choices[0].message.content == "Hello!"
    span = traced.one()
    assert span.name == "chat mistral-small"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.mistralai"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]},
    ]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "mistral-small",
        **_server_attrs(api),
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.presence_penalty": 0.1,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.output.type": "json",
        "gen_ai.response.id": "cmpl_1",
        "gen_ai.response.model": "mistral-small-2501",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_tool_calls_tool_results_and_model_objects(traced, client):
    messages = [
        models.UserMessage(content=[models.TextChunk(text="Weather?")]),
        models.AssistantMessage(content="", tool_calls=[models.ToolCall(**TOOL_CALL)]),
        models.ToolMessage(content="sunny", tool_call_id="call_1", name="get_weather"),
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    resp = client.chat.complete(model="mistral-tools", messages=messages, tools=tools)
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    tool_part = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": [tool_part]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [  # the conventions' shape
        {
            "type": "function",
            "name": t["function"]["name"],
            **{k: v for k, v in t["function"].items() if k != "name"},
        }
        for t in tools
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [tool_part], "finish_reason": "tool_call"}
    ]


def test_finish_reason_model_length(traced, client):
    client.chat.complete(model="mistral-max", messages=MESSAGES)
    assert traced.one().attributes["gen_ai.response.finish_reasons"] == ("length",)


def test_parse_helper_one_span(traced, client):
    from pydantic import BaseModel

    class Greeting(BaseModel):
        greeting: str

    with pytest.raises(Exception):  # noqa: B017 - "Hello!" is not a Greeting; the span is what counts
        client.chat.parse(response_format=Greeting, model="mistral-small", messages=MESSAGES)
    span = traced.one()
    assert span.attributes["gen_ai.output.type"] == "json"
    assert span.attributes["gen_ai.usage.input_tokens"] == 11


def test_embeddings(traced, client, api):
    resp = client.embeddings.create(model="mistral-embed", inputs=["a", "b"], output_dimension=2)
    assert len(resp.data) == 2
    span = traced.one()
    assert span.name == "embeddings mistral-embed"
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "mistral-embed",
        **_server_attrs(api),
        "gen_ai.embeddings.dimension.count": 2,
        "gen_ai.response.id": "emb_1",
        "gen_ai.response.model": "mistral-embed",
        "gen_ai.usage.input_tokens": 4,
    }


@pytest.mark.parametrize("model,status", [("mistral-400", 400), ("mistral-500", 500)])
def test_http_error_recorded_and_reraised_unchanged(traced, client, model, status):
    with pytest.raises(errors.SDKError) as info:
        client.chat.complete(model=model, messages=MESSAGES)
    assert type(info.value) is errors.SDKError and info.value.status_code == status
    span = traced.one()
    assert span.name == f"chat {model}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "SDKError"
    assert span.attributes["http.response.status_code"] == status
    assert "gen_ai.response.id" not in span.attributes
    [event] = span.events
    assert event.name == "exception"


def test_connection_error_reraised(traced):
    with Mistral(api_key="t", server_url="http://127.0.0.1:1") as c, pytest.raises(Exception) as info:
        c.chat.complete(model="mistral-small", messages=MESSAGES)
    span = traced.one()
    assert span.attributes["error.type"] == type(info.value).__qualname__
    assert span.attributes["server.port"] == 1


def test_content_capture_off(api, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    t = Traced()
    t.instrument()
    try:
        client.chat.complete(
            model="mistral-tools",
            messages=MESSAGES,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    finally:
        t.instrumentor.uninstrument()
    attrs = t.one().attributes
    assert not [k for k in attrs if "messages" in k or "definitions" in k]
    assert attrs["gen_ai.usage.input_tokens"] == 11


def test_iterator_messages_reach_mistral_whole(traced, client, api):
    client.chat.complete(model="mistral-small", messages=iter(MESSAGES))
    assert api.requests[-1][1]["messages"] == MESSAGES
    attrs = traced.one().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert "gen_ai.input.messages" not in attrs


def test_return_value_identical_and_uninstrument(traced, client):
    instrumented = client.chat.complete(model="mistral-small", messages=MESSAGES)
    traced.instrumentor.uninstrument()
    from mistralai.client.chat import Chat
    from mistralai.client.embeddings import Embeddings

    for cls, methods in (
        (Chat, ("complete", "complete_async", "stream", "stream_async")),
        (Embeddings, ("create", "create_async")),
    ):
        for method in methods:
            assert not isinstance(cls.__dict__[method], wrapt.ObjectProxy)
    plain = client.chat.complete(model="mistral-small", messages=MESSAGES)
    assert len(traced.spans()) == 1
    assert type(instrumented) is type(plain) and instrumented.model_dump() == plain.model_dump()
    traced.instrument()  # the fixture uninstruments


# -- stream ------------------------------------------------------------------------------------


def _check_stream_span(span: Any) -> None:
    assert span.name == "chat mistral-small"
    assert span.status.status_code == StatusCode.UNSET
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "cmpl_s1"
    assert attrs["gen_ai.response.model"] == "mistral-small-2501"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 11 and attrs["gen_ai.usage.output_tokens"] == 6
    assert json.loads(attrs["gen_ai.output.messages"]) == HELLO_OUT
    genai_support.assert_time_to_first_chunk(span)


def test_stream_exhausted(traced, client):
    stream = client.chat.stream(model="mistral-small", messages=MESSAGES)
    texts = []
    for event in stream:
        assert isinstance(event, models.CompletionEvent)
        texts.append(event.data.choices[0].delta.content)
    assert "".join(texts) == "Hello!"
    _check_stream_span(traced.one())
    stream.close()
    assert len(traced.spans()) == 1


def test_stream_tool_calls(traced, client):
    for _ in client.chat.stream(model="mistral-tools", messages=MESSAGES):
        pass
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]


def test_stream_break_close_context_manager_and_gc(traced, client):
    stream = client.chat.stream(model="mistral-small", messages=MESSAGES)
    for _ in stream:
        break
    assert traced.spans() == []
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == "cmpl_s1"
    with client.chat.stream(model="mistral-small", messages=MESSAGES) as s2:
        next(s2)
    assert len(traced.spans()) == 2
    with pytest.raises(ValueError), client.chat.stream(model="mistral-small", messages=MESSAGES) as s3:
        next(s3)
        raise ValueError("app gave up")
    assert traced.spans()[2].attributes["error.type"] == "ValueError"
    s4 = client.chat.stream(model="mistral-small", messages=MESSAGES)
    next(s4)
    del stream, s2, s3, s4
    gc.collect()
    assert len(traced.spans()) == 4


def test_stream_errors(traced, client):
    with pytest.raises(errors.SDKError):
        client.chat.stream(model="mistral-400", messages=MESSAGES)
    assert traced.one().attributes["http.response.status_code"] == 400
    stream = client.chat.stream(model="mistral-cut", messages=MESSAGES)
    with pytest.raises(Exception) as info:
        for _ in stream:
            pass
    span = traced.spans()[1]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == type(info.value).__qualname__
    assert span.attributes["gen_ai.response.id"] == "cmpl_s1"
    stream.close()
    assert len(traced.spans()) == 2


def test_async_complete_stream_embeddings(traced, api):
    async def main() -> None:
        async with Mistral(api_key="t", server_url=api.base_url) as c:
            resp = await c.chat.complete_async(model="mistral-small", messages=MESSAGES)
            assert resp.choices[0].message.content == "Hello!"
            stream = await c.chat.stream_async(model="mistral-small", messages=MESSAGES)
            assert "".join([e.data.choices[0].delta.content async for e in stream]) == "Hello!"
            async with await c.chat.stream_async(model="mistral-small", messages=MESSAGES) as s2:
                async for _ in s2:
                    break
            await c.embeddings.create_async(model="mistral-embed", inputs="a")
            with pytest.raises(errors.SDKError):
                await c.chat.complete_async(model="mistral-500", messages=MESSAGES)

    asyncio.run(main())
    spans = traced.spans()
    assert [s.name for s in spans] == [
        "chat mistral-small",
        "chat mistral-small",
        "chat mistral-small",
        "embeddings mistral-embed",
        "chat mistral-500",
    ]
    assert spans[0].attributes["gen_ai.usage.output_tokens"] == 6
    _check_stream_span(spans[1])
    assert "gen_ai.response.finish_reasons" not in spans[2].attributes
    assert spans[3].attributes["gen_ai.usage.input_tokens"] == 4
    assert spans[4].attributes["http.response.status_code"] == 500


def test_sdk_native_span_not_duplicated(traced, api, monkeypatch):
    """mistralai's own telemetry, on through the global provider: inside our span it starts none."""
    from mistralai.client._hooks import tracing

    calls = []
    monkeypatch.setattr(
        tracing,
        "get_or_create_otel_tracer",
        lambda provider=None: (True, traced.provider.get_tracer("mistralai_sdk_tracer")),
    )
    monkeypatch.setattr(tracing, "configure_telemetry_for_hook", lambda *a, **k: calls.append(1) or True)
    with Mistral(api_key="t", server_url=api.base_url) as c:
        c.chat.complete(model="mistral-small", messages=MESSAGES)
        traced.instrumentor.uninstrument()
        c.chat.complete(model="mistral-small", messages=MESSAGES)
        traced.instrument()
    assert calls
    scopes = [s.instrumentation_scope.name for s in traced.spans()]
    assert scopes == ["tracehouse.instrumentors.mistralai", "mistralai_sdk_tracer"]
    # our span's context went out with the first request
    ours = traced.spans()[0].get_span_context()
    assert f"{ours.trace_id:032x}-{ours.span_id:016x}" in api.requests[-2][2]["traceparent"]


def test_suppression(traced, client):
    with suppress_instrumentation():
        client.chat.complete(model="mistral-small", messages=MESSAGES)
        for _ in client.chat.stream(model="mistral-small", messages=MESSAGES):
            pass
    assert traced.spans() == []


def test_metrics_token_usage_and_duration(traced, client, api):
    client.chat.complete(model="mistral-small", messages=MESSAGES)
    for _ in client.chat.stream(model="mistral-small", messages=MESSAGES):
        pass
    with pytest.raises(errors.SDKError):
        client.chat.complete(model="mistral-400", messages=MESSAGES)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "mistral-small",
        "gen_ai.response.model": "mistral-small-2501",
        **_server_attrs(api),
    }
    u = genai_support.usage_points(traced.metrics(), base, failed_model="mistral-400", error_type="SDKError")
    assert len(u.tokens) == 2
    assert (u.input.count, u.input.sum, u.output.count, u.output.sum) == (2, 22, 2, 12)
    assert u.ok.count == 2
    assert u.failed.count == 1


# -- end to end: spans into a real collector -------------------------------------------------------


def test_collector_token_columns_end_to_end(collector, api):
    service = unique("mistralai-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = MistralInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        with Mistral(api_key="t", server_url=api.base_url) as c:
            c.chat.complete(model="mistral-small", messages=MESSAGES)
            for _ in c.chat.stream(model="mistral-tools", messages=MESSAGES):
                pass
    finally:
        inst.uninstrument()
        provider.shutdown()
    rows = wait_for(
        lambda: (
            r
            if len(
                r := collector.sql(
                    "SELECT SpanName, GenAIProvider, GenAIRequestModel, InputTokens, OutputTokens "
                    f"FROM otel_traces WHERE ServiceName = '{service}' ORDER BY SpanName"
                )
            )
            == 2
            else None
        ),
        timeout=20,
    )
    assert rows == [
        {
            "SpanName": f"chat {model}",
            "GenAIProvider": "mistral_ai",
            "GenAIRequestModel": model,
            "InputTokens": 11,
            "OutputTokens": 6,
        }
        for model in ("mistral-small", "mistral-tools")
    ]
