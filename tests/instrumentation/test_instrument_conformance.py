"""Every GenAI instrumentor against the OpenTelemetry GenAI semantic conventions (v1.41.1).

One driver per instrumented library makes the same kinds of call (sync, async, streamed, tool
calls, an error, a JSON response format) with the real client library against that library's
fake server (the handlers of its own test module); every span and metric exported is then checked
by the rules below, written from the conventions' attribute registry, span definitions and
message JSON schemas (not copied from them). A new provider gets the whole suite by adding a
driver to DRIVERS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import genai_support
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.trace import SpanKind, StatusCode

# -- the rules ------------------------------------------------------------------------------------

OPERATIONS = {
    "chat",
    "generate_content",
    "text_completion",
    "embeddings",
    "retrieval",
    "create_agent",
    "invoke_agent",
    "execute_tool",
    "invoke_workflow",
}
FINISH_REASONS = {"stop", "length", "content_filter", "tool_call", "error"}
OUTPUT_TYPES = {"text", "json", "image", "speech"}
ROLES = {"system", "user", "assistant", "tool"}

# Attribute types of the registry: str, int, float (double), bool, or a tuple of str (string[]).
STRING, INT, DOUBLE, BOOL, STRINGS = str, int, float, bool, tuple
TYPES: dict[str, type] = {
    "gen_ai.operation.name": STRING,
    "gen_ai.provider.name": STRING,
    "gen_ai.conversation.id": STRING,
    "gen_ai.output.type": STRING,
    "gen_ai.request.model": STRING,
    "gen_ai.request.max_tokens": INT,
    "gen_ai.request.choice.count": INT,
    "gen_ai.request.temperature": DOUBLE,
    "gen_ai.request.top_p": DOUBLE,
    "gen_ai.request.top_k": DOUBLE,
    "gen_ai.request.stop_sequences": STRINGS,
    "gen_ai.request.frequency_penalty": DOUBLE,
    "gen_ai.request.presence_penalty": DOUBLE,
    "gen_ai.request.seed": INT,
    "gen_ai.request.stream": BOOL,
    "gen_ai.request.encoding_formats": STRINGS,
    "gen_ai.embeddings.dimension.count": INT,
    "gen_ai.response.id": STRING,
    "gen_ai.response.model": STRING,
    "gen_ai.response.finish_reasons": STRINGS,
    "gen_ai.response.time_to_first_chunk": DOUBLE,
    "gen_ai.usage.input_tokens": INT,
    "gen_ai.usage.output_tokens": INT,
    "gen_ai.usage.cache_read.input_tokens": INT,
    "gen_ai.usage.cache_creation.input_tokens": INT,
    "gen_ai.usage.reasoning.output_tokens": INT,
    "gen_ai.input.messages": STRING,  # JSON text on spans
    "gen_ai.output.messages": STRING,
    "gen_ai.system_instructions": STRING,
    "gen_ai.tool.definitions": STRING,
    "server.address": STRING,
    "server.port": INT,
    "error.type": STRING,
    "http.response.status_code": INT,
    "openai.api.type": STRING,
    "openai.request.service_tier": STRING,
    "openai.response.service_tier": STRING,
    "openai.response.system_fingerprint": STRING,
}
CONTENT = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
)


def _nullable_string(value: Any) -> bool:
    return value is None or isinstance(value, str)


def check_part(part: Any, where: str) -> None:
    """A message part: `type` always; the fields each known type requires, typed."""
    assert isinstance(part, dict) and isinstance(part.get("type"), str), where
    kind = part["type"]
    if kind in ("text", "reasoning"):
        assert isinstance(part.get("content"), str), (where, part)
    elif kind == "tool_call":
        assert isinstance(part.get("name"), str) and _nullable_string(part.get("id")), (where, part)
    elif kind == "tool_call_response":
        assert "response" in part and _nullable_string(part.get("id")), (where, part)
    elif kind == "server_tool_call":
        assert isinstance(part.get("name"), str), (where, part)
        assert isinstance(part.get("server_tool_call"), dict) and isinstance(
            part["server_tool_call"].get("type"), str
        )
    elif kind == "server_tool_call_response":
        response = part.get("server_tool_call_response")
        assert isinstance(response, dict) and isinstance(response.get("type"), str), (where, part)
    elif kind == "uri" and "modality" in part:
        assert isinstance(part.get("uri"), str), (where, part)


def check_messages(value: Any, output: bool, where: str) -> None:
    assert isinstance(value, list), where
    for message in value:
        assert isinstance(message, dict) and isinstance(message.get("role"), str), (where, message)
        assert isinstance(message.get("parts"), list), (where, message)
        for part in message["parts"]:
            check_part(part, where)
        if output:
            # Required and a string; the schema allows other strings, our providers map to these
            # or to Tracehouse's "incomplete" for a stream left before the model finished.
            assert message.get("finish_reason") in FINISH_REASONS | {"incomplete"}, (where, message)


def check_tool_definitions(value: Any, where: str) -> None:
    assert isinstance(value, list), where  # empty only when truncated to fit
    for tool in value:
        assert isinstance(tool, dict), where
        assert isinstance(tool.get("type"), str) and isinstance(tool.get("name"), str), (where, tool)
        assert "function" not in tool, (where, tool)  # not OpenAI's nested shape
        if "description" in tool:
            assert isinstance(tool["description"], str), (where, tool)
        if "parameters" in tool:
            assert isinstance(tool["parameters"], dict), (where, tool)  # a JSON Schema document


def check_content(key: str, value: Any, where: str) -> None:
    if key == "gen_ai.tool.definitions":
        check_tool_definitions(value, where)
    elif key == "gen_ai.system_instructions":
        assert isinstance(value, list), where
        for part in value:
            check_part(part, where)
    else:
        check_messages(value, key == "gen_ai.output.messages", where)


def check_span(span: Any) -> dict[str, Any]:
    """One GenAI client span as exported; returns its attributes."""
    attrs = dict(span.attributes)
    where = span.name
    assert span.kind == SpanKind.CLIENT, where
    assert attrs.get("gen_ai.operation.name") in OPERATIONS, where
    assert isinstance(attrs.get("gen_ai.provider.name"), str) and attrs["gen_ai.provider.name"], where
    model = attrs.get("gen_ai.request.model")
    assert span.name == (
        f"{attrs['gen_ai.operation.name']} {model}" if model else attrs["gen_ai.operation.name"]
    )
    for key, value in attrs.items():
        if key in TYPES:
            expected = TYPES[key]
            assert type(value) is expected, (where, key, value)  # exact: no int for a double
            if expected is STRINGS:
                assert all(isinstance(v, str) for v in value), (where, key, value)
        else:
            assert key.startswith(("tracehouse.", "gen_ai.", "openai.", "server.")), (where, key)
    for reason in attrs.get("gen_ai.response.finish_reasons", ()):
        assert reason in FINISH_REASONS, (where, reason)
    if "gen_ai.output.type" in attrs:
        assert attrs["gen_ai.output.type"] in OUTPUT_TYPES, where
    if span.status.status_code == StatusCode.ERROR:
        assert attrs.get("error.type"), where  # conditionally required: the call failed
    for key in CONTENT:
        if key in attrs:
            check_content(key, json.loads(attrs[key]), f"{where} {key}")
    return attrs


def check_metrics(metrics: dict[str, Any], streamed: bool, failed: bool) -> None:
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    for point in duration.data.data_points:
        assert point.attributes["gen_ai.operation.name"] in OPERATIONS
        assert point.attributes["gen_ai.provider.name"]
        assert ("error.type" in point.attributes) is failed
    if "gen_ai.client.token.usage" in metrics:
        usage = metrics["gen_ai.client.token.usage"]
        assert usage.unit == "{token}"
        assert {p.attributes["gen_ai.token.type"] for p in usage.data.data_points} <= {"input", "output"}
    # Reported for streaming calls, and not otherwise.
    assert ("gen_ai.client.operation.time_to_first_chunk" in metrics) is (streamed and not failed)


# -- drivers: one per instrumented library ----------------------------------------------------------


@dataclass
class Driver:
    name: str
    instrumentor: Callable[[], Any]
    server: Callable[[], Iterator[Any]]
    # scenario -> a call (its client made inside); "stream" returns the stream, left to the test
    calls: Callable[[Any], dict[str, Callable[[], Any]]]
    errors: tuple[type[BaseException], ...] = ()
    skip: set[str] = field(default_factory=set)


def _run(coroutine_function: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: asyncio.run(coroutine_function())


def _openai_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import openai

    def client() -> Any:
        return openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)

    async def achat() -> None:
        async with openai.AsyncOpenAI(base_url=api.base_url, api_key="t", max_retries=0) as c:
            await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=1)

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    return {
        "sync": lambda: client().chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, temperature=1, top_p=1
        ),
        "async": _run(achat),
        "stream": lambda: client().chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ),
        "tools": lambda: client().chat.completions.create(model="gpt-tools", messages=MESSAGES, tools=tools),
        "error": lambda: client().chat.completions.create(model="gpt-400", messages=MESSAGES),
        "json": lambda: client().chat.completions.create(
            model="gpt-json", messages=MESSAGES, response_format={"type": "json_object"}
        ),
    }


def _openai_responses_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import openai

    def client() -> Any:
        return openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)

    async def asend() -> None:
        async with openai.AsyncOpenAI(base_url=api.base_url, api_key="t", max_retries=0) as c:
            await c.responses.create(model="gpt-4.1", input="hi", instructions="Be brief.")

    return {
        "sync": lambda: client().responses.create(
            model="gpt-4.1", input="hi", instructions="Be brief.", temperature=1
        ),
        "async": _run(asend),
        "stream": lambda: client().responses.create(model="gpt-4.1", input="hi", stream=True),
        "tools": lambda: client().responses.create(
            model="gpt-rtools",
            input="hi",
            tools=[{"type": "function", "name": "get_weather", "parameters": {}}],
        ),
        "json": lambda: client().responses.create(
            model="gpt-4.1", input="hi", text={"format": {"type": "json_object"}}
        ),
    }


def _openai_embeddings_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import openai

    def client() -> Any:
        return openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)

    async def aembed() -> None:
        async with openai.AsyncOpenAI(base_url=api.base_url, api_key="t", max_retries=0) as c:
            await c.embeddings.create(model="text-embedding-3-small", input="hi")

    return {
        "sync": lambda: client().embeddings.create(model="text-embedding-3-small", input="hi", dimensions=3),
        "async": _run(aembed),
    }


def _anthropic_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import anthropic

    def client() -> Any:
        return anthropic.Anthropic(base_url=api.base_url, api_key="t", max_retries=0)

    async def achat() -> None:
        async with anthropic.AsyncAnthropic(base_url=api.base_url, api_key="t", max_retries=0) as c:
            await c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES[1:])

    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    return {
        "sync": lambda: client().messages.create(
            model="claude-x",
            max_tokens=8,
            messages=MESSAGES[1:],
            system="Be brief.",
            extra_body={"temperature": 1, "top_k": 5},
        ),
        "async": _run(achat),
        "stream": lambda: client().messages.create(
            model="claude-x", max_tokens=8, messages=MESSAGES[1:], stream=True
        ),
        "tools": lambda: client().messages.create(
            model="claude-tools", max_tokens=8, messages=MESSAGES[1:], tools=tools
        ),
        "error": lambda: client().messages.create(model="claude-400", max_tokens=8, messages=MESSAGES[1:]),
    }


def _google_calls(api: Any) -> dict[str, Callable[[], Any]]:
    from google import genai
    from google.genai import types

    the_client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=api.base_url))

    def client() -> Any:
        return the_client  # a genai.Client closes its transport when collected

    async def agenerate() -> None:
        await client().aio.models.generate_content(model="gemini-x", contents="hi")

    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="w")])
    return {
        "sync": lambda: client().models.generate_content(
            model="gemini-x", contents="hi", config=types.GenerateContentConfig(temperature=1, top_k=3)
        ),
        "async": _run(agenerate),
        "stream": lambda: client().models.generate_content_stream(model="gemini-x", contents="hi"),
        "tools": lambda: client().models.generate_content(
            model="gemini-tools", contents="hi", config=types.GenerateContentConfig(tools=[tool])
        ),
        "error": lambda: client().models.generate_content(model="gemini-400", contents="hi"),
        "json": lambda: client().models.generate_content(
            model="gemini-x",
            contents="hi",
            config=types.GenerateContentConfig(response_mime_type="application/json"),
        ),
    }


def _litellm_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import litellm

    kw = {"api_base": api.base_url, "api_key": "t"}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    return {
        "sync": lambda: litellm.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, temperature=1, **kw
        ),
        "async": _run(lambda: litellm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, **kw)),
        "stream": lambda: litellm.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, stream=True, **kw
        ),
        "tools": lambda: litellm.completion(model="openai/gpt-tools", messages=MESSAGES, tools=tools, **kw),
        "error": lambda: litellm.completion(model="openai/gpt-400", messages=MESSAGES, **kw),
        "json": lambda: litellm.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, response_format={"type": "json_object"}, **kw
        ),
    }


def _bedrock_calls(api: Any) -> dict[str, Callable[[], Any]]:
    from test_instrument_bedrock import _client

    messages = [{"role": "user", "content": [{"text": "Say hello"}]}]
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    return {
        "sync": lambda: _client(api).converse(
            modelId="m-x", messages=messages, inferenceConfig={"temperature": 1, "topP": 1, "maxTokens": 5}
        ),
        "stream": lambda: _client(api).converse_stream(modelId="m-x", messages=messages)["stream"],
        "tools": lambda: _client(api).converse(modelId="m-tools", messages=messages, toolConfig=tools),
        "error": lambda: _client(api).converse(modelId="m-400", messages=messages),
    }


def _ollama_calls(api: Any) -> dict[str, Callable[[], Any]]:
    import ollama

    async def achat() -> None:
        await ollama.AsyncClient(host=api.base_url).chat("llama3", MESSAGES)

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    return {
        "sync": lambda: ollama.Client(host=api.base_url).chat(
            "llama3", MESSAGES, options={"temperature": 1, "top_k": 4}
        ),
        "async": _run(achat),
        "stream": lambda: ollama.Client(host=api.base_url).chat("llama3", MESSAGES, stream=True),
        "tools": lambda: ollama.Client(host=api.base_url).chat("llama-tools", MESSAGES, tools=tools),
        "error": lambda: ollama.Client(host=api.base_url).chat("llama-500", MESSAGES),
        "json": lambda: ollama.Client(host=api.base_url).chat("llama3", MESSAGES, format="json"),
    }


def _mistral_calls(api: Any) -> dict[str, Callable[[], Any]]:
    from mistralai.client import Mistral

    def client() -> Any:
        return Mistral(api_key="t", server_url=api.base_url)

    async def achat() -> None:
        await client().chat.complete_async(model="mistral-small", messages=MESSAGES)

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    return {
        "sync": lambda: client().chat.complete(model="mistral-small", messages=MESSAGES, temperature=1),
        "async": _run(achat),
        "stream": lambda: client().chat.stream(model="mistral-small", messages=MESSAGES),
        "tools": lambda: client().chat.complete(model="mistral-tools", messages=MESSAGES, tools=tools),
        "error": lambda: client().chat.complete(model="mistral-400", messages=MESSAGES),
        "json": lambda: client().chat.complete(
            model="mistral-small", messages=MESSAGES, response_format={"type": "json_object"}
        ),
    }


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def _server(module: str, path: str = "") -> Callable[[], Iterator[Any]]:
    def serve() -> Iterator[Any]:
        handler = __import__(module)._Handler
        yield from genai_support.fake_api(handler, path)

    return serve


def _instrumentor(module: str, cls: str) -> Callable[[], Any]:
    return lambda: getattr(__import__(f"tracehouse.instrumentors.{module}", fromlist=[cls]), cls)()


DRIVERS = [
    Driver(
        "openai-chat",
        _instrumentor("openai", "OpenAIInstrumentor"),
        _server("test_instrument_openai", "/v1"),
        _openai_calls,
    ),
    Driver(
        "openai-responses",
        _instrumentor("openai", "OpenAIInstrumentor"),
        _server("test_instrument_openai", "/v1"),
        _openai_responses_calls,
    ),
    Driver(
        "openai-embeddings",
        _instrumentor("openai", "OpenAIInstrumentor"),
        _server("test_instrument_openai", "/v1"),
        _openai_embeddings_calls,
    ),
    Driver(
        "anthropic",
        _instrumentor("anthropic", "AnthropicInstrumentor"),
        _server("test_instrument_anthropic"),
        _anthropic_calls,
    ),
    Driver(
        "google-genai",
        _instrumentor("google_genai", "GoogleGenAIInstrumentor"),
        _server("test_instrument_google_genai"),
        _google_calls,
    ),
    Driver(
        "litellm",
        _instrumentor("litellm", "LiteLLMInstrumentor"),
        _server("test_instrument_litellm", "/v1"),
        _litellm_calls,
    ),
    Driver(
        "bedrock",
        _instrumentor("bedrock", "BedrockInstrumentor"),
        _server("test_instrument_bedrock"),
        _bedrock_calls,
    ),
    Driver(
        "ollama",
        _instrumentor("ollama", "OllamaInstrumentor"),
        _server("test_instrument_ollama"),
        _ollama_calls,
    ),
    Driver(
        "mistralai",
        _instrumentor("mistralai", "MistralInstrumentor"),
        _server("test_instrument_mistralai"),
        _mistral_calls,
    ),
]
SCENARIOS = ("sync", "async", "stream", "abandoned", "tools", "error", "json")


class Session:
    """An instrumentor under test with in-memory spans, metrics and events."""

    def __init__(self, driver: Driver) -> None:
        self.traced = genai_support.Traced(instrumentor=driver.instrumentor())
        self.logs = InMemoryLogExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def __enter__(self) -> Session:
        self.traced.instrumentor.instrument(
            tracer_provider=self.traced.provider,
            meter_provider=self.traced.meter_provider,
            logger_provider=self.logger_provider,
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        self.traced.instrumentor.uninstrument()


@pytest.fixture(scope="module", params=DRIVERS, ids=[d.name for d in DRIVERS])
def driver_api(request) -> Iterator[tuple[Driver, Any]]:
    driver = request.param
    yield from ((driver, api) for api in driver.server())


def _call(calls: dict[str, Callable[[], Any]], scenario: str) -> BaseException | None:
    name = "stream" if scenario == "abandoned" else scenario
    if name not in calls:
        pytest.skip("not offered by this library's API or its fake server")
    try:
        result = calls[name]()
        if scenario == "stream":
            list(result)  # read to the end
        elif scenario == "abandoned":
            next(iter(result))  # the first chunk, then the application stops reading
            result.close()
    except Exception as exc:  # the error scenario's failure reaches the application unchanged
        return exc
    return None


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_spans_and_metrics_follow_the_conventions(driver_api, scenario, caplog):
    driver, api = driver_api
    with caplog.at_level(logging.WARNING, logger="opentelemetry"), Session(driver) as session:
        error = _call(driver.calls(api), scenario)
    assert (error is not None) is (scenario == "error"), error
    spans = session.traced.spans()
    assert len(spans) == 1, [s.name for s in spans]  # one call, one span
    attrs = check_span(spans[0])
    streamed = scenario in ("stream", "abandoned")
    check_metrics(session.traced.metrics(), streamed=streamed, failed=scenario == "error")
    if scenario == "error":
        assert spans[0].status.status_code == StatusCode.ERROR and attrs["error.type"]
    if streamed:
        assert attrs["gen_ai.request.stream"] is True and attrs["gen_ai.response.time_to_first_chunk"] > 0
    if scenario == "abandoned":
        # The model had not finished: no finish reason claimed, and none null in the messages.
        assert "gen_ai.response.finish_reasons" not in attrs
        for message in json.loads(attrs.get("gen_ai.output.messages", "[]")):
            assert message["finish_reason"] == "incomplete"
    if scenario == "tools":
        assert "gen_ai.tool.definitions" in attrs
        output = json.loads(attrs["gen_ai.output.messages"])
        assert any(p["type"] == "tool_call" for m in output for p in m["parts"])
    if scenario == "json":
        assert attrs["gen_ai.output.type"] == "json"
    if scenario in ("sync", "async") and attrs["gen_ai.operation.name"] != "embeddings":
        assert "gen_ai.input.messages" in attrs and "gen_ai.output.messages" in attrs
    assert not [r.getMessage() for r in caplog.records if "ended span" in r.getMessage()]


@pytest.mark.parametrize(
    ("setting", "on_span", "in_event"),
    [
        ("NO_CONTENT", False, False),
        ("false", False, False),
        ("SPAN_ONLY", True, False),
        ("true", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
    ],
)
def test_content_capture_settings(driver_api, monkeypatch, setting, on_span, in_event):
    driver, api = driver_api
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", setting)
    with Session(driver) as session:
        _call(driver.calls(api), "sync")
    span = session.traced.spans()[0]
    attrs = check_span(span)
    content_keys = [k for k in CONTENT if k in attrs]
    assert bool(content_keys) is (on_span and attrs["gen_ai.operation.name"] != "embeddings"), content_keys
    events = [r.log_record for r in session.logs.get_finished_logs()]
    assert len(events) == (1 if in_event else 0)
    if in_event:
        [event] = events
        assert event.event_name == "gen_ai.client.inference.operation.details"
        # On the call's span, with its attributes and the content as structured values.
        assert (event.trace_id, event.span_id) == (span.context.trace_id, span.context.span_id)
        assert event.attributes["gen_ai.operation.name"] == attrs["gen_ai.operation.name"]
        for key in CONTENT:
            if key in event.attributes:
                check_content(key, _structured(event.attributes[key]), f"event {key}")
        if attrs["gen_ai.operation.name"] != "embeddings":
            assert "gen_ai.input.messages" in event.attributes


def _structured(value: Any) -> Any:
    """An event attribute as plain lists and dicts (the SDK keeps sequences as tuples)."""
    if isinstance(value, tuple | list):
        return [_structured(v) for v in value]
    if isinstance(value, dict):
        return {k: _structured(v) for k, v in value.items()}
    return value


def test_truncated_content_is_valid_json_and_marked(driver_api, monkeypatch):
    driver, api = driver_api
    limit = 60
    monkeypatch.setenv("TRACEHOUSE_MAX_CONTENT_BYTES", str(limit))
    with Session(driver) as session:
        _call(driver.calls(api), "tools" if "tools" in driver.calls(api) else "sync")
    attrs = check_span(session.traced.spans()[0])
    captured = [k for k in CONTENT if k in attrs]
    if not captured:
        pytest.skip("no content captured for this operation")
    for key in captured:
        assert len(attrs[key].encode()) <= limit, key
        json.loads(attrs[key])  # check_span has checked its shape
    longer = [k for k in captured if k in attrs.get("tracehouse.content.truncated", ())]
    assert longer, "the tool call's content does not fit in 60 bytes: some was truncated and marked"


# -- scoring the call just made ---------------------------------------------------------------------


@pytest.fixture
def openai_api() -> Iterator[Any]:
    yield from DRIVERS[0].server()


def test_score_lands_on_the_llm_call_with_its_response_id(openai_api, monkeypatch):
    """One library is enough: the look-up is the call's, not the provider's."""
    import openai
    import tracehouse
    from tracehouse import _score

    driver, api = DRIVERS[0], openai_api

    logs = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    monkeypatch.setattr(_score, "_get_logger", lambda: provider.get_logger("test"))
    client = openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)
    with Session(driver) as session:
        app = session.traced.provider.get_tracer("app")
        with app.start_as_current_span("handle request") as outer:
            first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            client.responses.create(model="gpt-4.1", input="hi")  # another call, another id
            tracehouse.score("helpful", 1.0, response=first)  # the object the application holds
            tracehouse.score("format", 0.5, response=first.id)  # or its id
            tracehouse.score("latest", label="ok", last_llm_call=True)  # the call just made
            tracehouse.score("request", 0.2)  # no subject: the current span, as before
    chat, later, app_span = session.traced.spans()
    by_name = {
        r.log_record.attributes["gen_ai.evaluation.name"]: r.log_record for r in logs.get_finished_logs()
    }
    assert {k: (r.span_id, r.attributes.get("gen_ai.response.id")) for k, r in by_name.items()} == {
        "helpful": (chat.context.span_id, "chatcmpl-1"),
        "format": (chat.context.span_id, "chatcmpl-1"),
        "latest": (later.context.span_id, "resp_1"),
        "request": (outer.get_span_context().span_id, None),
    }
    assert {r.trace_id for r in by_name.values()} == {app_span.context.trace_id}
    with pytest.raises(ValueError, match="no LLM call that returned response id 'nope'"):
        tracehouse.score("x", 1.0, response="nope")


# -- nothing at import time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "library"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("google_genai", "google.genai"),
        ("litellm", "litellm"),
        ("bedrock", "botocore"),
        ("ollama", "ollama"),
        ("mistralai", "mistralai"),
    ],
)
def test_importing_an_instrumentor_does_not_import_its_library(module, library):
    """`opentelemetry-instrument` loads every entry point at start-up: that must stay cheap."""
    import os
    import subprocess
    import sys

    code = (
        f"import sys, tracehouse.instrumentors.{module} as m; print({library!r} in sys.modules, m.__name__)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["False", f"tracehouse.instrumentors.{module}"], out.stderr
