"""AnthropicInstrumentor against the real `anthropic` client talking to a local fake Messages API.

The fake server answers POST /v1/messages with JSON or an SSE event stream (message_start,
content_block_start/delta/stop, message_delta with usage, message_stop); the request's model
name selects special behaviours (errors, tool use, a cut-off stream). Spans go to an in-memory
exporter through a real SDK TracerProvider; metrics to an InMemoryMetricReader.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anthropic
import genai_support
import pytest
import wrapt
from helpers import unique, wait_for
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.anthropic import AnthropicInstrumentor, _server

# Anthropic's input_tokens excludes the cache: the inclusive OTel count is 10 + 100 + 20.
USAGE = {
    "input_tokens": 10,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 20,
    "output_tokens": 5,
}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}


def _message(model: str) -> dict[str, Any]:
    if model == "claude-tools":
        content, stop = [{"type": "text", "text": "Let me check."}, TOOL_USE], "tool_use"
    elif model == "claude-max":
        content, stop = [{"type": "text", "text": "Hel"}], "max_tokens"
    elif model == "claude-json":
        content, stop = [{"type": "text", "text": '{"greeting": "hi"}'}], "end_turn"
    elif model == "claude-refusal":
        content, stop = [], "refusal"
    else:
        content, stop = [{"type": "text", "text": "Hello!"}], "end_turn"
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model + "-2025",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": BILLED_USAGE if model == "claude-billed" else USAGE,
    }


# How Anthropic says what it billed: the tier, the speed, and the one-hour part of the writes.
BILLED_USAGE = {
    **USAGE,
    "cache_creation": {"ephemeral_5m_input_tokens": 15, "ephemeral_1h_input_tokens": 5},
    "service_tier": "batch",
    "speed": "fast",
}


def _events(model: str) -> list[dict[str, Any]]:
    start_usage = {**(BILLED_USAGE if model == "claude-billed" else USAGE), "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                **_message(model),
                "id": "msg_s1",
                "content": [],
                "stop_reason": None,
                "usage": start_usage,
            },
        }
    ]
    if model == "claude-tools":
        events += [
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me check."},
            },
            {"type": "content_block_stop", "index": 0},
            {"type": "content_block_start", "index": 1, "content_block": {**TOOL_USE, "input": {}}},
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
            {"type": "content_block_stop", "index": 1},
        ]
        stop = "tool_use"
    else:
        events += [
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo!"}},
            {"type": "content_block_stop", "index": 0},
        ]
        stop = "end_turn"
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    return events


class _Handler(genai_support.FakeAPIHandler):
    def _sse(self, events: list[dict[str, Any]], cut: bool = False) -> None:
        chunks = [
            b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events
        ]
        genai_support.send_stream(self, chunks, "text/event-stream", cut)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body, dict(self.headers)))  # type: ignore[attr-defined]
        model = body.get("model", "")
        if model in ("claude-400", "claude-500"):
            status = int(model[-3:])
            kind = "invalid_request_error" if status == 400 else "api_error"
            return self._json(status, {"type": "error", "error": {"type": kind, "message": "bad " + model}})
        if self.path != "/v1/messages":
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no"}})
        if body.get("stream"):
            events = _events(model)
            if model == "claude-cut":
                return self._sse(events[:3], cut=True)
            return self._sse(events)
        return self._json(200, _message(model))


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler)


@pytest.fixture
def client(api) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=api.base_url, api_key="test", max_retries=0)
    yield c
    c.close()


@pytest.fixture
def aclient(api) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=api.base_url, api_key="test", max_retries=0)


class Traced(genai_support.Traced):
    instrumentor_class = AnthropicInstrumentor


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


MESSAGES = [{"role": "user", "content": "Say hello"}]
USAGE_ATTRS = {
    "gen_ai.usage.input_tokens": 130,
    "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.cache_creation.input_tokens": 20,
    "gen_ai.usage.output_tokens": 5,
}
HELLO_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]


def _sampling(**params: Any) -> dict[str, Any]:
    import inspect

    from anthropic.resources.messages.messages import Messages

    if "temperature" in inspect.signature(Messages.create).parameters:
        return params
    return {"extra_body": params}


# -- create, non-streaming -------------------------------------------------------------------------


def test_create_attributes_exact(traced, client, api):
    msg = client.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=MESSAGES,
        system="Be brief.",
        stop_sequences=["END"],
        # anthropic 2.x has no named sampling params any more; older releases take them named
        **_sampling(temperature=0.5, top_p=0.9, top_k=40),
    )
    assert msg.content[0].text == "Hello!"
    span = traced.one()
    assert span.name == "chat claude-x"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.anthropic"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        **_server_attrs(api),
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.response.id": "msg_1",
        "gen_ai.response.model": "claude-x-2025",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_return_value_identical_and_uninstrument(traced, client):
    instrumented = client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    assert len(traced.spans()) == 1
    traced.instrumentor.uninstrument()
    from anthropic.resources.messages.messages import AsyncMessages, Messages

    for cls in (Messages, AsyncMessages):
        for method in ("create", "parse", "stream"):
            assert not isinstance(cls.__dict__[method], wrapt.ObjectProxy)
    plain = client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    assert len(traced.spans()) == 1
    assert type(instrumented) is type(plain) and instrumented.model_dump() == plain.model_dump()
    traced.instrument()  # the fixture uninstruments


@pytest.mark.parametrize(
    "model,reason",
    [("claude-max", "length"), ("claude-tools", "tool_call"), ("claude-refusal", "content_filter")],
)
def test_finish_reason_mapping(traced, client, model, reason):
    client.messages.create(model=model, max_tokens=8, messages=MESSAGES)
    assert traced.one().attributes["gen_ai.response.finish_reasons"] == (reason,)


def test_tool_use_and_tool_results(traced, client, api):
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, TOOL_USE]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"type": "text", "text": "and?"},
            ],
        },
    ]
    msg = client.messages.create(
        model="claude-tools",
        max_tokens=64,
        tools=tools,
        system=[{"type": "text", "text": "Sys A"}, {"type": "text", "text": "Sys B"}],
        messages=messages,
    )
    assert msg.content[1].input == {"city": "Paris"}
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    call = {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Let me check."}, call]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "sunny"}]},
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_2", "response": "ab"},
                {"type": "text", "content": "and?"},
            ],
        },
    ]
    assert json.loads(attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Sys A"},
        {"type": "text", "content": "Sys B"},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Let me check."}, call],
            "finish_reason": "tool_call",
        }
    ]
    # The conventions' shape: type and name at the top, the input schema as parameters.
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "w", "parameters": {"type": "object"}}
    ]
    assert api.requests[-1][1]["messages"] == messages


def test_parse_helper(traced, client):
    import pydantic

    class Greeting(pydantic.BaseModel):
        greeting: str

    parsed = client.messages.parse(
        model="claude-json", max_tokens=8, messages=MESSAGES, output_format=Greeting
    )
    assert parsed.parsed_output == Greeting(greeting="hi")
    attrs = traced.one().attributes  # parse() posts itself, not through create()
    assert attrs["gen_ai.usage.input_tokens"] == 130
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": '{"greeting": "hi"}'}
    ]


def test_iterator_arguments_reach_anthropic_whole(traced, client, api):
    client.messages.create(model="claude-x", max_tokens=8, messages=iter(MESSAGES), system="s")
    assert api.requests[-1][1]["messages"] == MESSAGES
    attrs = traced.one().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 130
    assert "gen_ai.input.messages" not in attrs  # not read: reading would consume it


@pytest.mark.parametrize(
    "model,status,cls",
    [("claude-400", 400, anthropic.BadRequestError), ("claude-500", 500, anthropic.InternalServerError)],
)
def test_http_error_recorded_and_reraised_unchanged(traced, client, model, status, cls):
    with pytest.raises(cls) as info:
        client.messages.create(model=model, max_tokens=8, messages=MESSAGES)
    exc = info.value
    assert type(exc) is cls and exc.status_code == status
    assert exc.body["error"]["message"] == "bad " + model
    span = traced.one()
    assert span.name == f"chat {model}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == cls.__name__
    assert span.attributes["http.response.status_code"] == status
    assert "gen_ai.response.id" not in span.attributes
    [event] = span.events
    assert event.name == "exception"


def test_connection_error_reraised(traced):
    c = anthropic.Anthropic(base_url="http://127.0.0.1:1", api_key="test", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    span = traced.one()
    assert span.attributes["error.type"] == "APIConnectionError"
    assert span.attributes["server.port"] == 1


def test_content_capture_off(api, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    t = Traced()
    t.instrument()
    try:
        client.messages.create(
            model="claude-tools",
            max_tokens=8,
            messages=MESSAGES,
            system="secret",
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
        )
    finally:
        t.instrumentor.uninstrument()
    attrs = t.one().attributes
    assert not [k for k in attrs if "messages" in k or "instructions" in k or "definitions" in k]
    assert attrs["gen_ai.usage.input_tokens"] == 130


def test_with_raw_response(traced, client):
    raw = client.messages.with_raw_response.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    assert raw.parse().content[0].text == "Hello!"
    span = traced.one()
    assert span.name == "chat claude-x" and span.status.status_code == StatusCode.UNSET


def test_provider_from_client_class():
    def instance(cls_name: str, host: str) -> Any:
        url = SimpleNamespace(host=host, port=None, scheme="https")
        client = type(cls_name, (), {"base_url": url})()
        return SimpleNamespace(_client=client)

    assert _server(instance("AnthropicBedrock", "bedrock-runtime.us-east-1.amazonaws.com")) == (
        "bedrock-runtime.us-east-1.amazonaws.com",
        443,
        "aws.bedrock",
    )
    assert (
        _server(instance("AsyncAnthropicVertex", "us-east5-aiplatform.googleapis.com"))[2] == "gcp.vertex_ai"
    )
    assert _server(instance("Anthropic", "api.anthropic.com"))[2] == "anthropic"
    assert _server(SimpleNamespace()) == (None, None, "anthropic")


def test_vertex_client_provider(traced, api):
    c = anthropic.AnthropicVertex(
        region="us-east5", project_id="p", access_token="t", base_url=api.base_url, max_retries=0
    )
    with pytest.raises(anthropic.NotFoundError):  # the fake server only knows /v1/messages
        c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    span = traced.one()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["error.type"] == "NotFoundError"


# -- raw event streams ----------------------------------------------------------------------------


def _check_stream_span(span: Any, text: str = "Hello!") -> None:
    attrs = dict(span.attributes)
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.id"] == "msg_s1"
    assert attrs["gen_ai.response.model"] == "claude-x-2025"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert {k: attrs[k] for k in USAGE_ATTRS} == USAGE_ATTRS
    genai_support.assert_time_to_first_chunk(span)
    assert "tracehouse.response.time_to_first_chunk" not in attrs  # the old name, no longer written
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    assert span.status.status_code == StatusCode.UNSET


def test_stream_exhausted(traced, client):
    stream = client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    types = []
    for event in stream:
        types.append(event.type)
        if event.type != "message_stop":
            assert traced.spans() == []
    assert types[0] == "message_start" and types[-1] == "message_stop"
    _check_stream_span(traced.one())
    stream.close()
    assert len(traced.spans()) == 1


def test_stream_tool_use_deltas(traced, client):
    for _ in client.messages.create(model="claude-tools", max_tokens=8, messages=MESSAGES, stream=True):
        pass
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Let me check."},
        {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
    ]


def test_stream_break_and_close(traced, client):
    stream = client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True)
    for event in stream:
        assert event.type == "message_start"
        break
    assert traced.spans() == []
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == "msg_s1"
    # message_start's usage is all that arrived
    assert span.attributes["gen_ai.usage.input_tokens"] == 130
    assert span.attributes["gen_ai.usage.output_tokens"] == 1
    stream.close()
    del stream
    gc.collect()
    assert len(traced.spans()) == 1


def test_stream_context_manager_and_app_error(traced, client):
    with client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True) as stream:
        assert stream.response.status_code == 200
        next(stream)
    assert traced.one().name == "chat claude-x"
    with (
        pytest.raises(ValueError),
        client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True) as s2,
    ):
        next(s2)
        raise ValueError("app gave up")
    span = traced.spans()[1]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "ValueError"
    del stream, s2
    gc.collect()
    assert len(traced.spans()) == 2


def test_stream_error_mid_stream(traced, client):
    stream = client.messages.create(model="claude-cut", max_tokens=8, messages=MESSAGES, stream=True)
    got = []
    # anthropic lets the HTTP client's error through mid-stream (httpx's RemoteProtocolError)
    with pytest.raises(Exception) as info:
        for event in stream:
            got.append(event)
    assert len(got) == 3
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == type(info.value).__qualname__ == "RemoteProtocolError"
    assert span.attributes["gen_ai.response.id"] == "msg_s1"
    stream.close()
    assert len(traced.spans()) == 1


def test_stream_garbage_collected(traced, client):
    stream = client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True)
    next(stream)
    assert traced.spans() == []
    del stream
    gc.collect()
    assert traced.one().attributes["gen_ai.response.model"] == "claude-x-2025"


# -- the MessageStream helper ----------------------------------------------------------------------


def test_stream_helper_text_stream_and_final_message(traced, client):
    with client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as stream:
        assert type(stream).__name__ == "MessageStream"
        assert traced.spans() == []
        assert "".join(stream.text_stream) == "Hello!"
        final = stream.get_final_message()
    assert final.content[0].text == "Hello!" and final.usage.cache_read_input_tokens == 100
    span = traced.one()
    assert span.name == "chat claude-x"
    _check_stream_span(span)
    assert span.attributes["gen_ai.request.max_tokens"] == 8


def test_stream_helper_until_done_and_get_final_text(traced, client):
    with client.messages.stream(model="claude-tools", max_tokens=8, messages=MESSAGES) as stream:
        stream.until_done()
        assert traced.spans() and stream.get_final_message().stop_reason == "tool_use"
        assert stream.get_final_text() == "Let me check."
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"][1]["arguments"] == {"city": "Paris"}


def test_stream_helper_exit_early_app_error_and_gc(traced, client):
    with client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as stream:
        for event in stream:
            assert event.type == "message_start"
            break
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    with (
        pytest.raises(ValueError),
        client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as s2,
    ):
        next(iter(s2))
        raise ValueError("app gave up")
    span = traced.spans()[1]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "ValueError"
    manager = client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES)
    s3 = manager.__enter__()
    next(iter(s3))
    del manager, s3
    gc.collect()
    assert len(traced.spans()) == 3
    # a manager never entered posts nothing and has no span
    client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES)
    gc.collect()
    assert len(traced.spans()) == 3


def test_stream_helper_error_on_enter_and_mid_stream(traced, client):
    with (
        pytest.raises(anthropic.BadRequestError),
        client.messages.stream(model="claude-400", max_tokens=8, messages=MESSAGES),
    ):
        pass
    with (
        pytest.raises(Exception) as info,
        client.messages.stream(model="claude-cut", max_tokens=8, messages=MESSAGES) as stream,
    ):
        stream.get_final_message()
    first, second = traced.spans()
    assert first.attributes["error.type"] == "BadRequestError"
    assert second.attributes["error.type"] == type(info.value).__qualname__
    assert second.status.status_code == StatusCode.ERROR


# -- async -----------------------------------------------------------------------------------------


def test_async_create_streams_and_helper(traced, aclient):
    async def main() -> None:
        msg = await aclient.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
        assert msg.content[0].text == "Hello!"
        stream = await aclient.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        assert [e.type async for e in stream][-1] == "message_stop"
        async with await aclient.messages.create(
            model="claude-x", max_tokens=8, messages=MESSAGES, stream=True
        ) as s2:
            await s2.__anext__()
        s3 = await aclient.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True)
        async for _ in s3:
            break
        await s3.close()
        async with aclient.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as s4:
            assert "".join([t async for t in s4.text_stream]) == "Hello!"
            final = await s4.get_final_message()
            assert final.usage.output_tokens == 5
        with pytest.raises(anthropic.BadRequestError):
            await aclient.messages.create(model="claude-400", max_tokens=8, messages=MESSAGES)
        with pytest.raises(ValueError):
            async with aclient.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as s5:
                raise ValueError("app")
        cut = await aclient.messages.create(model="claude-cut", max_tokens=8, messages=MESSAGES, stream=True)
        with pytest.raises(Exception, match="peer closed"):
            async for _ in cut:
                pass
        dropped = await aclient.messages.create(
            model="claude-x", max_tokens=8, messages=MESSAGES, stream=True
        )
        await dropped.__anext__()
        n = len(traced.spans())
        del dropped, s5
        gc.collect()
        assert len(traced.spans()) == n + 1
        await aclient.close()

    asyncio.run(main())
    spans = traced.spans()
    assert [s.name for s in spans] == ["chat claude-x"] * 5 + ["chat claude-400"] + ["chat claude-x"] + [
        "chat claude-cut",
        "chat claude-x",
    ]
    assert spans[0].attributes["gen_ai.usage.input_tokens"] == 130
    _check_stream_span(spans[1])
    assert "gen_ai.response.finish_reasons" not in spans[2].attributes  # left early
    assert "gen_ai.response.finish_reasons" not in spans[3].attributes
    _check_stream_span(spans[4])
    assert spans[5].attributes["error.type"] == "BadRequestError"
    assert spans[6].attributes["error.type"] == "ValueError"
    assert spans[7].attributes["error.type"] == "RemoteProtocolError"
    assert spans[8].status.status_code == StatusCode.UNSET


# -- cooperation with other instrumentation and with anthropic's own spans -------------------------


def test_sdk_native_span_not_duplicated(traced, api):
    """anthropic >= 2 starts a span of its own per call; inside ours it is not started."""
    c = anthropic.Anthropic(
        base_url=api.base_url, api_key="t", max_retries=0, open_telemetry={"tracer_provider": traced.provider}
    )
    c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    for _ in c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True):
        pass
    with c.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as s:
        s.until_done()
    assert [s.instrumentation_scope.name for s in traced.spans()] == [
        "tracehouse.instrumentors.anthropic"
    ] * 3
    # and our span is what each request propagates
    for span, (_path, _body, headers) in zip(traced.spans(), api.requests[-3:], strict=True):
        _version, trace_id, span_id, _flags = headers["traceparent"].split("-")
        assert (int(trace_id, 16), int(span_id, 16)) == (span.context.trace_id, span.context.span_id)
    # Uninstrumented, the SDK's own span is back.
    traced.instrumentor.uninstrument()
    try:
        c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
        assert traced.spans()[-1].instrumentation_scope.name == "com.anthropic.sdk.python"
    finally:
        traced.instrument()


def test_no_duplicate_inside_other_genai_client_span(traced, client):
    other = traced.provider.get_tracer("opentelemetry.instrumentation.anthropic")
    with other.start_as_current_span(
        "chat claude-x",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-x"},
    ):
        client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    assert [s.instrumentation_scope.name for s in traced.spans()] == [
        "opentelemetry.instrumentation.anthropic"
    ]
    app = traced.provider.get_tracer("app")
    with app.start_as_current_span("agent step"):
        client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    child, parent = traced.spans()[1:]
    assert child.instrumentation_scope.name == "tracehouse.instrumentors.anthropic"
    assert child.parent.span_id == parent.context.span_id


def test_suppression(traced, client):
    with suppress_instrumentation():
        client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
        with client.messages.stream(model="claude-x", max_tokens=8, messages=MESSAGES) as s:
            s.until_done()
    assert traced.spans() == []


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_token_usage_and_duration(traced, client, api):
    client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
    for _ in client.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True):
        pass
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude-400", max_tokens=8, messages=MESSAGES)
    metrics = traced.metrics()
    tokens, duration = metrics["gen_ai.client.token.usage"], metrics["gen_ai.client.operation.duration"]
    assert tokens.unit == "{token}" and duration.unit == "s"
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.response.model": "claude-x-2025",
        **_server_attrs(api),
    }
    u = genai_support.usage_points(metrics, base, failed_model="claude-400", error_type="BadRequestError")
    assert len(u.tokens) == 2
    assert (u.input.count, u.input.sum, u.output.count, u.output.sum) == (2, 260, 2, 10)
    assert list(u.input.explicit_bounds) == [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
    ]  # fmt: skip
    assert u.ok.count == 2 and u.ok.sum > 0
    assert list(u.ok.explicit_bounds) == [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ]  # fmt: skip
    assert u.failed.count == 1


# -- end to end: spans into a real collector -------------------------------------------------------


def test_collector_token_columns_end_to_end(collector, api):
    service = unique("anthropic-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=provider)
    c = anthropic.Anthropic(base_url=api.base_url, api_key="t", max_retries=0)
    try:
        c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES)
        with c.messages.stream(model="claude-tools", max_tokens=8, messages=MESSAGES) as s:
            s.until_done()
    finally:
        inst.uninstrument()
        c.close()
        provider.shutdown()
    rows = wait_for(
        lambda: (
            r
            if len(
                r := collector.sql(
                    "SELECT SpanName, GenAIProvider, InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens "
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
            "SpanName": name,
            "GenAIProvider": "anthropic",
            "InputTokens": 130,
            "OutputTokens": 5,
            "CacheReadTokens": 100,
            "CacheWriteTokens": 20,
        }
        for name in ("chat claude-tools", "chat claude-x")
    ]


def test_billing_context_tier_speed_and_one_hour_writes(traced, client):
    client.messages.create(model="claude-billed", max_tokens=8, messages=MESSAGES, service_tier="auto")
    list(client.messages.create(model="claude-billed", max_tokens=8, messages=MESSAGES, stream=True))
    for span in traced.spans():
        attrs = span.attributes
        assert attrs["tracehouse.response.service_tier"] == "batch"
        assert attrs["tracehouse.response.speed"] == "fast"
        assert attrs["tracehouse.usage.cache_creation_1h.input_tokens"] == 5
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 20
    assert traced.spans()[0].attributes["tracehouse.request.service_tier"] == "auto"
    assert len(traced.spans()) == 2
