"""OllamaInstrumentor against the real `ollama` client talking to a local fake Ollama server.

The fake server answers POST /api/chat and /api/generate with JSON or NDJSON streams (content
chunks, then a final `done` chunk with the counts), /api/embed and /api/embeddings with JSON;
the request's model name selects special behaviours (HTTP errors, tool calls, an error line in
the stream, a cut-off stream). Spans go to an in-memory exporter through a real SDK
TracerProvider; metrics to an InMemoryMetricReader.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import genai_support
import ollama
import pytest
import wrapt
from helpers import unique, wait_for
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.ollama import OllamaInstrumentor

COUNTS = {"prompt_eval_count": 12, "eval_count": 7, "total_duration": 1000, "eval_duration": 500}
TOOL_CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CREATED = "2025-01-01T00:00:00Z"


def _final(model: str, path: str) -> dict[str, Any]:
    reason = "length" if model == "llama-max" else "stop"
    return {"model": model + ":latest", "created_at": CREATED, "done": True, "done_reason": reason, **COUNTS}


def _chat(model: str) -> dict[str, Any]:
    if model == "llama-tools":
        message = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
    elif model == "llama-think":
        message = {"role": "assistant", "content": "Hello!", "thinking": "greet"}
    else:
        message = {"role": "assistant", "content": "Hello!"}
    return {**_final(model, "/api/chat"), "message": message}


def _chunks(model: str, path: str) -> list[dict[str, Any]]:
    base = {"model": model + ":latest", "created_at": CREATED, "done": False}
    if path == "/api/chat":
        if model == "llama-tools":
            pieces = [{"message": {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}}]
        else:
            pieces = [{"message": {"role": "assistant", "content": t}} for t in ("Hel", "lo!")]
        last = {"message": {"role": "assistant", "content": ""}}
    else:
        pieces = [{"response": t} for t in ("Hel", "lo!")]
        last = {"response": ""}
    return [{**base, **p} for p in pieces] + [{**_final(model, path), **last}]


class _Handler(genai_support.FakeAPIHandler):
    def _ndjson(self, lines: list[dict[str, Any]], cut: bool = False) -> None:
        chunks = [json.dumps(line).encode() + b"\n" for line in lines]
        genai_support.send_stream(self, chunks, "application/x-ndjson", cut)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        model = body.get("model", "")
        if model == "llama-404":
            return self._json(404, {"error": f"model '{model}' not found"})
        if model == "llama-500":
            return self._json(500, {"error": "boom"})
        if self.path == "/api/embed":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return self._json(
                200,
                {"model": model, "embeddings": [[0.1, 0.2, 0.3] for _ in inputs], "prompt_eval_count": 4},
            )
        if self.path == "/api/embeddings":
            return self._json(200, {"embedding": [0.1, 0.2, 0.3]})
        if self.path not in ("/api/chat", "/api/generate"):
            return self._json(404, {"error": "not found"})
        if body.get("stream", True):
            chunks = _chunks(model, self.path)
            if model == "llama-cut":
                return self._ndjson(chunks[:1], cut=True)
            if model == "llama-errline":
                return self._ndjson([chunks[0], {"error": "model crashed"}])
            return self._ndjson(chunks)
        if self.path == "/api/chat":
            return self._json(200, _chat(model))
        return self._json(200, {**_final(model, self.path), "response": "Hello!"})


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler)


@pytest.fixture
def client(api) -> Iterator[ollama.Client]:
    c = ollama.Client(host=api.base_url)
    yield c
    c.close()


@pytest.fixture
def aclient(api) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=api.base_url)


class Traced(genai_support.Traced):
    instrumentor_class = OllamaInstrumentor


@pytest.fixture
def traced(caplog) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
USAGE_ATTRS = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7}
HELLO_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]
OPTIONS = {"temperature": 0.5, "top_p": 0.9, "top_k": 40, "num_predict": 64, "seed": 7, "stop": ["END"]}
OPTION_ATTRS = {
    "gen_ai.request.temperature": 0.5,
    "gen_ai.request.top_p": 0.9,
    "gen_ai.request.top_k": 40,
    "gen_ai.request.max_tokens": 64,
    "gen_ai.request.seed": 7,
    "gen_ai.request.stop_sequences": ("END",),
}


# -- non-streaming -----------------------------------------------------------------------------


def test_chat_attributes_exact(traced, client, api):
    resp = client.chat(model="llama3", messages=MESSAGES, options=OPTIONS)
    assert isinstance(resp, ollama.ChatResponse) and resp.message.content == "Hello!"
    span = traced.one()
    assert span.name == "chat llama3"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.ollama"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]},
    ]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "llama3",
        **_server_attrs(api),
        **OPTION_ATTRS,
        "gen_ai.response.model": "llama3:latest",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_chat_positional_args_options_model_and_message_objects(traced, client, api):
    messages = [ollama.Message(role="user", content="Say hello")]
    client.chat("llama3", messages, options=ollama.Options(temperature=0.2, num_predict=5), format="json")
    attrs = traced.one().attributes
    assert attrs["gen_ai.request.model"] == "llama3"
    assert attrs["gen_ai.request.temperature"] == 0.2 and attrs["gen_ai.request.max_tokens"] == 5
    assert attrs["gen_ai.output.type"] == "json"
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]


def test_generate(traced, client, api):
    resp = client.generate(model="llama3", prompt="Say hello", system="Be brief.", options={"num_predict": 3})
    assert resp.response == "Hello!"
    span = traced.one()
    assert span.name == "text_completion llama3"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "llama3",
        **_server_attrs(api),
        "gen_ai.request.max_tokens": 3,
        "gen_ai.response.model": "llama3:latest",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_embed_and_embeddings(traced, client, api):
    resp = client.embed(model="nomic", input=["a", "b"], dimensions=3)
    assert len(resp.embeddings) == 2
    legacy = client.embeddings(model="nomic", prompt="a")
    assert list(legacy.embedding) == [0.1, 0.2, 0.3]
    first, second = traced.spans()
    assert first.name == second.name == "embeddings nomic"
    assert dict(first.attributes) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "nomic",
        **_server_attrs(api),
        "gen_ai.embeddings.dimension.count": 3,
        "gen_ai.response.model": "nomic",
        "gen_ai.usage.input_tokens": 4,
    }
    assert "gen_ai.usage.input_tokens" not in second.attributes
    assert second.status.status_code == StatusCode.UNSET


def test_tool_calls_and_tool_results(traced, client):
    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
          city: The city
        """
        return "sunny"

    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    resp = client.chat(model="llama-tools", messages=messages, tools=[get_weather])
    assert resp.message.tool_calls[0].function.name == "get_weather"
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(attrs["gen_ai.input.messages"])[1:] == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "response": "sunny", "name": "get_weather"}],
        },
    ]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [{"type": "function", "name": "get_weather"}]
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]


def test_thinking_and_length(traced, client):
    client.chat(model="llama-think", messages=MESSAGES)
    client.chat(model="llama-max", messages=MESSAGES)
    think, length = traced.spans()
    assert json.loads(think.attributes["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "reasoning", "content": "greet"},
        {"type": "text", "content": "Hello!"},
    ]
    assert length.attributes["gen_ai.response.finish_reasons"] == ("length",)


@pytest.mark.parametrize("model,status", [("llama-404", 404), ("llama-500", 500)])
def test_http_error_recorded_and_reraised_unchanged(traced, client, model, status):
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=model, messages=MESSAGES)
    assert info.value.status_code == status
    span = traced.one()
    assert span.name == f"chat {model}"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "ResponseError"
    assert span.attributes["http.response.status_code"] == status
    [event] = span.events
    assert event.name == "exception"


def test_connection_error_reraised(traced):
    c = ollama.Client(host="http://127.0.0.1:1")
    with pytest.raises(ConnectionError):
        c.generate(model="llama3", prompt="x")
    span = traced.one()
    assert span.attributes["error.type"] == "ConnectionError"
    assert span.attributes["server.port"] == 1


def test_content_capture_off(api, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    t = Traced()
    t.instrument()
    try:
        client.chat(
            model="llama-tools", messages=MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}]
        )
        client.generate(model="llama3", prompt="secret", system="secret")
    finally:
        t.instrumentor.uninstrument()
    for span in t.spans():
        attrs = span.attributes
        assert not [k for k in attrs if "messages" in k or "instructions" in k or "definitions" in k]
        assert attrs["gen_ai.usage.input_tokens"] == 12


def test_iterator_messages_reach_ollama_whole(traced, client, api):
    client.chat(model="llama3", messages=iter(MESSAGES))
    assert api.requests[-1][1]["messages"] == MESSAGES
    attrs = traced.one().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert "gen_ai.input.messages" not in attrs


def test_return_value_identical_and_uninstrument(traced, client):
    instrumented = client.chat(model="llama3", messages=MESSAGES)
    traced.instrumentor.uninstrument()
    for cls in (ollama.Client, ollama.AsyncClient):
        for method in ("chat", "generate", "embed", "embeddings"):
            assert not isinstance(cls.__dict__[method], wrapt.ObjectProxy)
    assert not isinstance(ollama.chat, wrapt.ObjectProxy)
    plain = client.chat(model="llama3", messages=MESSAGES)
    assert len(traced.spans()) == 1
    assert type(instrumented) is type(plain) and instrumented.model_dump() == plain.model_dump()
    traced.instrument()  # the fixture uninstruments


def test_module_level_functions_traced(traced, api, monkeypatch):
    monkeypatch.setattr(ollama._client._client, "base_url", api.base_url)
    assert ollama.chat(model="llama3", messages=MESSAGES).message.content == "Hello!"
    assert ollama.embed(model="nomic", input="a").embeddings
    chat, embed = traced.spans()
    assert chat.name == "chat llama3" and embed.name == "embeddings nomic"
    assert chat.attributes["server.port"] == api.server_port


# -- streaming ---------------------------------------------------------------------------------


def _check_stream_span(span: Any, operation: str = "chat") -> None:
    assert span.name == f"{operation} llama3"
    assert span.status.status_code == StatusCode.UNSET
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.model"] == "llama3:latest"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 7
    assert json.loads(attrs["gen_ai.output.messages"]) == HELLO_OUT
    genai_support.assert_time_to_first_chunk(span)


def test_stream_chat_and_generate_exhausted(traced, client):
    stream = client.chat(model="llama3", messages=MESSAGES, stream=True)
    texts = []
    for chunk in stream:
        assert isinstance(chunk, ollama.ChatResponse)
        texts.append(chunk.message.content)
        if not chunk.done:
            assert traced.spans() == []
    assert "".join(texts) == "Hello!"
    _check_stream_span(traced.one())
    stream.close()
    assert "".join(c.response for c in client.generate(model="llama3", prompt="hi", stream=True)) == "Hello!"
    _check_stream_span(traced.spans()[1], "text_completion")


def test_stream_request_sent_inside_the_span(traced, client, monkeypatch):
    """ollama sends the request on the first step: that step runs with our span current."""
    from opentelemetry import trace

    seen = []
    send = client._client.send

    def recording_send(*args: Any, **kwargs: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context())
        return send(*args, **kwargs)

    monkeypatch.setattr(client._client, "send", recording_send)
    stream = client.chat(model="llama3", messages=MESSAGES, stream=True)
    assert seen == []
    next(stream)
    assert trace.get_current_span().get_span_context().is_valid is False
    for _ in stream:
        pass
    [ctx] = seen
    assert ctx.span_id == traced.one().get_span_context().span_id


def test_stream_tool_calls(traced, client):
    for _ in client.chat(model="llama-tools", messages=MESSAGES, stream=True):
        pass
    attrs = traced.one().attributes
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]


def test_stream_break_then_close_and_gc(traced, client):
    stream = client.chat(model="llama3", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    assert traced.spans() == []
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.model"] == "llama3:latest"
    stream2 = client.chat(model="llama3", messages=MESSAGES, stream=True)
    next(stream2)
    del stream, stream2
    gc.collect()
    assert len(traced.spans()) == 2


def test_stream_never_iterated_collected(traced, client, api):
    before = len(api.requests)
    stream = client.chat(model="llama3", messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    assert len(api.requests) == before  # ollama sends the request on the first step
    assert len(traced.spans()) == 1


@pytest.mark.parametrize(
    "model,error,status",
    [
        ("llama-404", "ResponseError", 404),
        ("llama-errline", "ResponseError", None),
        ("llama-cut", None, None),
    ],
)
def test_stream_errors(traced, client, model, error, status):
    stream = client.chat(model=model, messages=MESSAGES, stream=True)
    with pytest.raises(Exception) as info:
        for _ in stream:
            pass
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == (error or type(info.value).__qualname__)
    assert span.attributes.get("http.response.status_code") == status
    stream.close()
    assert len(traced.spans()) == 1


def test_async_calls_and_streams(traced, aclient, api):
    async def main() -> None:
        resp = await aclient.chat(model="llama3", messages=MESSAGES)
        assert resp.message.content == "Hello!"
        assert (await aclient.generate(model="llama3", prompt="hi")).response == "Hello!"
        assert (await aclient.embed(model="nomic", input="a")).embeddings
        stream = await aclient.chat(model="llama3", messages=MESSAGES, stream=True)
        assert "".join([c.message.content async for c in stream]) == "Hello!"
        partial = await aclient.generate(model="llama3", prompt="hi", stream=True)
        async for _ in partial:
            break
        await partial.aclose()
        with pytest.raises(ollama.ResponseError):
            await aclient.chat(model="llama-500", messages=MESSAGES)
        bad = await aclient.chat(model="llama-404", messages=MESSAGES, stream=True)
        with pytest.raises(ollama.ResponseError):
            async for _ in bad:
                pass
        await aclient.close()

    asyncio.run(main())
    spans = traced.spans()
    assert [s.name for s in spans] == [
        "chat llama3",
        "text_completion llama3",
        "embeddings nomic",
        "chat llama3",
        "text_completion llama3",
        "chat llama-500",
        "chat llama-404",
    ]
    assert spans[0].attributes["gen_ai.usage.output_tokens"] == 7
    _check_stream_span(spans[3])
    assert "gen_ai.response.finish_reasons" not in spans[4].attributes
    assert spans[5].attributes["http.response.status_code"] == 500
    assert spans[6].attributes["error.type"] == "ResponseError"


def test_suppression(traced, client):
    with suppress_instrumentation():
        client.chat(model="llama3", messages=MESSAGES)
        for _ in client.chat(model="llama3", messages=MESSAGES, stream=True):
            pass
    assert traced.spans() == []


def test_metrics_token_usage_and_duration(traced, client, api):
    client.chat(model="llama3", messages=MESSAGES)
    for _ in client.chat(model="llama3", messages=MESSAGES, stream=True):
        pass
    with pytest.raises(ollama.ResponseError):
        client.chat(model="llama-404", messages=MESSAGES)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "llama3",
        "gen_ai.response.model": "llama3:latest",
        **_server_attrs(api),
    }
    u = genai_support.usage_points(traced.metrics(), base, failed_model="llama-404", error_type="ResponseError")
    assert len(u.tokens) == 2
    assert (u.input.count, u.input.sum, u.output.count, u.output.sum) == (2, 24, 2, 14)
    assert u.ok.count == 2
    assert u.failed.count == 1


# -- end to end: spans into a real collector -------------------------------------------------------


def test_collector_token_columns_end_to_end(collector, api):
    service = unique("ollama-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = OllamaInstrumentor()
    inst.instrument(tracer_provider=provider)
    c = ollama.Client(host=api.base_url)
    try:
        c.chat(model="llama3", messages=MESSAGES)
        for _ in c.generate(model="llama3", prompt="hi", stream=True):
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
            "SpanName": name,
            "GenAIProvider": "ollama",
            "GenAIRequestModel": "llama3",
            "InputTokens": 12,
            "OutputTokens": 7,
        }
        for name in ("chat llama3", "text_completion llama3")
    ]
