"""The real `openai` and `anthropic` clients, instrumented by Tracehouse (GenAI conventions
v1.41.1), make tool-calling calls against locally served APIs and export to a real collector;
the trace API (`/api/v1/traces/{id}`) gives back their tool calls, finish reasons and tool
definitions in the conventions' shapes, and a span spelled as older producers spell it (and
as Tracehouse did before) reads the same. Content captured as events only reaches the trace
view from its `gen_ai.client.inference.operation.details` log record; a score of a response
keeps its id; time to first chunk is read in both spellings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import genai_support
import openai
import pytest
from helpers import unique, wait_for
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.trace import SpanKind
from tracehouse.instrumentors.anthropic import AnthropicInstrumentor
from tracehouse.instrumentors.openai import OpenAIInstrumentor
from tracehouse_collector.store.schema import TTFT_MS_SQL

pytestmark = pytest.mark.timeout(180)

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": SCHEMA,
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA},
    }
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city", "input_schema": SCHEMA},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
]
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
CALL_OF_OPENAI = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}, "type": "tool_call"}


class _Handler(genai_support.FakeAPIHandler):
    """OpenAI's chat completions and Anthropic's messages, each answering with tool calls."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/chat/completions"):
            self._json(
                200,
                {
                    "id": "chatcmpl-e2e",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": "gpt-4o-2024-08-06",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls",
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "call_1",
                                        "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                                    }
                                ],
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
                },
            )
        elif self.path.endswith("/messages"):
            self._json(
                200,
                {
                    "id": "msg_e2e",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-3-5-sonnet-20241022",
                    "content": [
                        {"type": "text", "text": "Let me look."},
                        {
                            "type": "server_tool_use",
                            "id": "srvtoolu_1",
                            "name": "web_search",
                            "input": {"query": "Paris weather"},
                        },
                        {
                            "type": "web_search_tool_result",
                            "tool_use_id": "srvtoolu_1",
                            "content": [
                                {"type": "web_search_result", "title": "Sunny", "url": "https://w.example"}
                            ],
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 120, "output_tokens": 40},
                },
            )
        else:
            self._json(404, {"error": {"message": self.path}})


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from genai_support.fake_api(_Handler)


@pytest.fixture
def instrumented(collector, monkeypatch) -> Iterator[Any]:
    """Both instrumentors exporting to the collector; `setup(env)` first sets the environment."""
    made: list[Any] = []

    def setup(**env: str) -> Any:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        service = unique("spellings")
        provider = genai_support.collector_provider(collector, service)
        logs = LoggerProvider(resource=provider.resource)
        logs.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=collector.http_url + "/v1/logs"))
        )
        for instrumentor in (OpenAIInstrumentor(), AnthropicInstrumentor()):
            instrumentor.instrument(tracer_provider=provider, logger_provider=logs)
            made.append(instrumentor)
        made.append(logs)
        return provider, logs

    yield setup
    for thing in made:
        if isinstance(thing, LoggerProvider):
            thing.shutdown()
        else:
            thing.uninstrument()


def _trace(collector, trace_id: str, spans: int) -> dict[str, Any]:
    """The trace from the API once its `spans` spans are stored."""
    got: dict[str, Any] = {}

    def arrived() -> bool:
        r = collector.session.get(f"{collector.http_url}/api/v1/traces/{trace_id}", timeout=30)
        if r.status_code != 200:
            return False
        got.update(r.json())
        return got["span_count"] >= spans

    assert wait_for(arrived, timeout=30), got
    return got


def _spans(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    stack = list(trace["spans"])
    while stack:
        s = stack.pop()
        out[s["name"]] = s
        stack.extend(s["children"])
    return out


def test_tool_calls_finish_reasons_and_definitions_through_a_real_collector(collector, api, instrumented):
    provider, logs = instrumented()
    tracer = provider.get_tracer("app")
    oai = openai.OpenAI(base_url=api.base_url + "/v1", api_key="k", max_retries=0)
    claude = anthropic.Anthropic(base_url=api.base_url, api_key="k", max_retries=0)
    with tracer.start_as_current_span("agent") as root:
        response = oai.chat.completions.create(model="gpt-4o", messages=QUESTION, tools=OPENAI_TOOLS)
        claude.messages.create(
            model="claude-3-5-sonnet-20241022", max_tokens=100, messages=QUESTION, tools=ANTHROPIC_TOOLS
        )
        # What an older producer (and Tracehouse before v1.41.1) wrote for the same OpenAI call.
        with tracer.start_as_current_span("chat gpt-4o (old spelling)", kind=SpanKind.CLIENT) as old:
            old.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.prompt_tokens": 82,
                    "gen_ai.usage.completion_tokens": 17,
                    "gen_ai.response.finish_reasons": ["tool_calls"],
                    "gen_ai.tool.definitions": json.dumps(OPENAI_TOOLS),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{k: v for k, v in CALL_OF_OPENAI.items()}],
                                "finish_reason": "tool_calls",
                            }
                        ]
                    ),
                }
            )
    from tracehouse import _score

    score_logger = logs.get_logger("test-scores")
    real_logger = _score._get_logger
    _score._get_logger = lambda: score_logger
    try:
        _score.score("helpful", 1.0, response=response)
    finally:
        _score._get_logger = real_logger
    trace_id = format(root.get_span_context().trace_id, "032x")

    spans = _spans(_trace(collector, trace_id, 4))
    new_openai, new_anthropic, old_openai = (
        spans["chat gpt-4o"],
        spans["chat claude-3-5-sonnet-20241022"],
        spans["chat gpt-4o (old spelling)"],
    )
    # What the instrumentation wrote is the v1.41.1 spelling.
    assert json.loads(new_openai["attributes"]["gen_ai.response.finish_reasons"]) == ["tool_call"]
    assert json.loads(new_openai["attributes"]["gen_ai.tool.definitions"]) == [WEATHER]

    for span in (new_openai, old_openai):
        assert span["tool_calls"] == [CALL_OF_OPENAI]
        assert span["finish_reasons"] == ["tool_call"]
        assert span["tool_definitions"] == [WEATHER]
        assert (span["provider"], span["input_tokens"], span["output_tokens"], span["total_tokens"]) == (
            "openai",
            82,
            17,
            99,
        )
        assert not span["tokens_estimated"]
    assert new_openai["cost_usd"] == old_openai["cost_usd"] != "0"

    assert new_anthropic["tool_calls"] == [
        {
            "id": "srvtoolu_1",
            "name": "web_search",
            "arguments": {"query": "Paris weather"},
            "type": "server_tool_call",
        },
        {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}, "type": "tool_call"},
    ]
    assert new_anthropic["finish_reasons"] == ["tool_call"]
    assert new_anthropic["tool_definitions"] == [
        WEATHER,
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    server_result = new_anthropic["output"][0]["parts"][2]
    assert server_result["type"] == "server_tool_call_response"
    assert server_result["server_tool_call_response"]["content"][0]["title"] == "Sunny"

    # The score of the response keeps the response's id (otel_scores.ResponseId).
    def scored() -> list[dict[str, Any]]:
        return collector.sql(f"SELECT SpanId, ResponseId FROM otel_scores WHERE TraceId = '{trace_id}'")

    assert wait_for(lambda: scored(), timeout=30)
    assert scored() == [{"SpanId": new_openai["span_id"], "ResponseId": "chatcmpl-e2e"}]


def test_content_captured_as_events_only_reaches_the_trace_view(collector, api, instrumented):
    provider, _ = instrumented(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="EVENT_ONLY")
    tracer = provider.get_tracer("app")
    oai = openai.OpenAI(base_url=api.base_url + "/v1", api_key="k", max_retries=0)
    with tracer.start_as_current_span("agent") as root:
        oai.chat.completions.create(model="gpt-4o", messages=QUESTION, tools=OPENAI_TOOLS)
    trace_id = format(root.get_span_context().trace_id, "032x")

    def details_stored() -> int:
        return collector.scalar(
            f"SELECT count() FROM otel_logs WHERE TraceId = '{trace_id}' "
            "AND EventName = 'gen_ai.client.inference.operation.details'"
        )

    assert wait_for(lambda: details_stored() == 1, timeout=30)
    span = _spans(_trace(collector, trace_id, 2))["chat gpt-4o"]
    assert "gen_ai.input.messages" not in span["attributes"]  # the span itself holds no content
    assert span["input"] == [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
    assert span["tool_calls"] == [CALL_OF_OPENAI]
    assert span["tool_definitions"] == [WEATHER]
    assert span["finish_reasons"] == ["tool_call"]


def test_time_to_first_chunk_read_in_both_spellings(collector):
    service = unique("ttft")
    provider = genai_support.collector_provider(collector, service)
    tracer = provider.get_tracer("app")
    for key, seconds in (
        ("gen_ai.response.time_to_first_chunk", 0.25),
        ("tracehouse.response.time_to_first_chunk", 0.5),  # Tracehouse before v1.41.1
    ):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    key: seconds,
                }
            )
    provider.shutdown()

    def counted() -> int:
        return collector.scalar(f"SELECT sum(TtftSpans) FROM llm_usage_1m WHERE ServiceName = '{service}'")

    assert wait_for(lambda: counted() == 2, timeout=30), counted()  # the rollup counts both
    # and the expression the rollups and the latency queries share reads both values.
    rows = collector.sql(
        f"SELECT arraySort(groupArray({TTFT_MS_SQL})) AS ms FROM otel_traces WHERE ServiceName = '{service}'"
    )
    assert rows[0]["ms"] == [250, 500]
