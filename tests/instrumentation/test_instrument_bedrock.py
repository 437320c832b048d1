"""BedrockInstrumentor against real boto3 `bedrock-runtime` clients talking to a local fake
Bedrock Runtime API.

The fake server answers POST /model/{modelId}/converse, /converse-stream, /invoke and
/invoke-with-response-stream with JSON or AWS event streams (application/vnd.amazon.eventstream,
encoded below); the model id selects special behaviours (errors, tool use, a stream that fails
midway). Spans go to an in-memory exporter through a real SDK TracerProvider; metrics to an
InMemoryMetricReader.
"""

from __future__ import annotations

import base64
import gc
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import genai_support
import pytest
import wrapt
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from botocore.response import StreamingBody
from helpers import unique, wait_for
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from tracehouse.instrumentors.bedrock import BedrockInstrumentor

# Bedrock's inputTokens excludes the cache: the inclusive OTel count is 10 + 100 + 20.
USAGE = {
    "inputTokens": 10,
    "outputTokens": 5,
    "totalTokens": 135,
    "cacheReadInputTokens": 100,
    "cacheWriteInputTokens": 20,
}
USAGE_ATTRS = {
    "gen_ai.usage.input_tokens": 130,
    "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.cache_creation.input_tokens": 20,
    "gen_ai.usage.output_tokens": 5,
}
TOOL_USE = {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}}
MODEL = "anthropic.claude-3-haiku"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]
HELLO_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}], "finish_reason": "stop"}]

# -- the AWS event-stream encoding ---------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + bytes([7]) + struct.pack(">H", len(v)) + v


def _message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return _message(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return _message(headers, json.dumps({"message": message}).encode())


def chunk(payload: dict[str, Any]) -> bytes:
    return event("chunk", {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()})


# -- the fake API ----------------------------------------------------------------------------------


def _converse(model: str) -> dict[str, Any]:
    content, stop = [{"text": "Hello!"}], "end_turn"
    if model == "m-tools":
        content, stop = [{"text": "Let me check."}, TOOL_USE], "tool_use"
    elif model == "m-max":
        content, stop = [{"text": "Hel"}], "max_tokens"
    elif model == "m-guard":
        content, stop = [], "guardrail_intervened"
    elif model == "m-filter":
        content, stop = [], "content_filtered"
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": USAGE,
        "metrics": {"latencyMs": 12},
    }


def _converse_events(model: str) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if model == "m-tools":
        events += [
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event(
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "get_weather"}}},
            ),
            event(
                "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": '}}}
            ),
            event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
            event("contentBlockStop", {"contentBlockIndex": 1}),
        ]
        stop = "tool_use"
    else:
        events += [
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo!"}}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
        ]
        stop = "end_turn"
    if model == "m-midfail":
        return events[:2] + [exception("modelStreamErrorException", "model fell over")]
    return events + [
        event("messageStop", {"stopReason": stop}),
        event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 12}}),
    ]


ANTHROPIC_USAGE = {
    "input_tokens": 10,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 20,
    "output_tokens": 5,
}


def _invoke(model: str, body: dict[str, Any]) -> dict[str, Any]:
    if model.startswith("anthropic."):
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-haiku-20240307",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        }
    if model.startswith("amazon.nova"):
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello!"}]}},
            "stopReason": "max_tokens",
            "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
        }
    if model.startswith("meta.llama"):
        return {
            "generation": "Hello!",
            "prompt_token_count": 8,
            "generation_token_count": 2,
            "stop_reason": "length",
        }
    if model.startswith("amazon.titan-embed"):
        return {"embedding": [0.1, 0.2], "inputTextTokenCount": 4}
    return {  # Titan text
        "inputTextTokenCount": 6,
        "results": [{"tokenCount": 4, "outputText": "Hello!", "completionReason": "FINISH"}],
    }


def _invoke_chunks() -> list[bytes]:
    return [
        chunk(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_s1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-3-haiku-20240307",
                    "content": [],
                    "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
                },
            }
        ),
        chunk({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo!"}}),
        chunk({"type": "content_block_stop", "index": 0}),
        chunk({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
        chunk(
            {
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": 10,
                    "outputTokenCount": 5,
                    "invocationLatency": 100,
                    "firstByteLatency": 50,
                },
            }
        ),
    ]


class _Handler(genai_support.FakeAPIHandler):
    def _send(self, status: int, raw: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def do_GET(self) -> None:
        self._json(200, {"modelSummaries": []})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.path, raw, dict(self.headers)))  # type: ignore[attr-defined]
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "model":
            return self._json(404, {"message": "no"}, {"x-amzn-ErrorType": "ResourceNotFoundException"})
        model, op = unquote(parts[2]), parts[3]
        if model == "m-400":
            error = {"message": "The provided model identifier is invalid."}
            return self._json(
                400, error, {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/"}
            )
        if op == "converse":
            return self._json(200, _converse(model))
        if op == "converse-stream":
            return genai_support.send_stream(
                self, list(_converse_events(model)), "application/vnd.amazon.eventstream"
            )
        if op == "invoke" and model == "m-cut":
            # promises more than it sends, then drops the connection
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "10000")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'{"partial": ')
            self.wfile.flush()
            self.close_connection = True
            return None
        if op == "invoke":
            return self._send(200, json.dumps(_invoke(model, json.loads(raw))).encode(), "application/json")
        if op == "invoke-with-response-stream":
            return genai_support.send_stream(
                self, list(_invoke_chunks()), "application/vnd.amazon.eventstream"
            )
        return self._json(404, {"message": "no"}, {"x-amzn-ErrorType": "ResourceNotFoundException"})


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that closed its stream early drops the connection: not worth a traceback


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def _client(api: Any, service: str = "bedrock-runtime") -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=api.base_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def client(api) -> Any:
    """Made once, before any instrumenting: existing clients are traced too."""
    return _client(api)


class Traced(genai_support.Traced):
    instrumentor_class = BedrockInstrumentor


@pytest.fixture
def traced(caplog, client) -> Iterator[Traced]:
    yield from genai_support.exactly_once(caplog, Traced())


def _server_attrs(api) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": api.server_port}


# -- Converse ------------------------------------------------------------------------------------


def test_converse_attributes_exact(traced, client, api):
    response = client.converse(
        modelId=MODEL,
        messages=MESSAGES,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 64, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        additionalModelRequestFields={"top_k": 40},
    )
    assert response["output"]["message"]["content"] == [{"text": "Hello!"}]
    span = traced.one()
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "tracehouse.instrumentors.bedrock"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": MODEL,
        **_server_attrs(api),
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_return_value_identical_and_uninstrument(traced, client):
    instrumented = client.converse(modelId=MODEL, messages=MESSAGES)
    assert len(traced.spans()) == 1
    traced.instrumentor.uninstrument()
    from botocore.client import BaseClient

    assert not isinstance(BaseClient.__dict__["_make_api_call"], wrapt.ObjectProxy)
    plain = client.converse(modelId=MODEL, messages=MESSAGES)
    assert len(traced.spans()) == 1
    instrumented.pop("ResponseMetadata"), plain.pop("ResponseMetadata")
    assert instrumented == plain
    traced.instrument()  # the fixture uninstruments
    client.converse(modelId=MODEL, messages=MESSAGES)  # a client made before instrument()
    assert len(traced.spans()) == 2


@pytest.mark.parametrize(
    "model,reason",
    [
        ("m-max", "length"),
        ("m-tools", "tool_call"),
        ("m-guard", "content_filter"),
        ("m-filter", "content_filter"),
    ],
)
def test_finish_reason_mapping(traced, client, model, reason):
    client.converse(modelId=model, messages=MESSAGES)
    assert traced.one().attributes["gen_ai.response.finish_reasons"] == (reason,)


def test_tool_use_and_tool_results(traced, client, api):
    tools = [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]
    messages = [
        {"role": "user", "content": [{"text": "Weather?"}]},
        {"role": "assistant", "content": [{"text": "Let me check."}, TOOL_USE]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tu_1", "content": [{"text": "sunny"}]}}]},
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tu_2", "content": [{"json": {"temp": 21}}]}},
                {"text": "and?"},
                {"cachePoint": {"type": "default"}},
            ],
        },
    ]
    response = client.converse(
        modelId="m-tools", messages=messages, toolConfig={"tools": tools}, system=[{"text": "Sys"}]
    )
    assert response["output"]["message"]["content"][1] == TOOL_USE
    attrs = traced.one().attributes
    call = {"type": "tool_call", "id": "tu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Let me check."}, call]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "tu_1", "response": "sunny"}]},
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "tu_2", "response": {"temp": 21}},
                {"type": "text", "content": "and?"},
            ],
        },
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Let me check."}, call],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [  # the conventions' shape
        {
            "type": "function",
            "name": t["toolSpec"]["name"],
            "parameters": t["toolSpec"]["inputSchema"]["json"],
        }
        | ({"description": t["toolSpec"]["description"]} if "description" in t["toolSpec"] else {})
        for t in tools
    ]


def test_client_error_recorded_and_reraised_unchanged(traced, client):
    with pytest.raises(ClientError) as info:
        client.converse(modelId="m-400", messages=MESSAGES)
    exc = info.value
    assert type(exc).__name__ == "ValidationException"
    assert exc.response["Error"]["Code"] == "ValidationException"
    assert exc.response["Error"]["Message"] == "The provided model identifier is invalid."
    span = traced.one()
    assert span.name == "chat m-400"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "ValidationException"
    assert span.attributes["http.response.status_code"] == 400
    with pytest.raises(ClientError):
        client.converse_stream(modelId="m-400", messages=MESSAGES)
    assert traced.spans()[1].attributes["error.type"] == "ValidationException"


def test_other_services_and_operations_untraced(traced, client, api):
    control = _client(api, "bedrock")
    control.list_foundation_models()
    assert traced.spans() == []


def test_content_capture_off(monkeypatch, caplog, client):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    for t in genai_support.exactly_once(caplog, Traced()):
        if t.instrumentor.content.span:
            pytest.fail("content capture still on")
        client.converse(modelId=MODEL, messages=MESSAGES, system=[{"text": "s"}])
        attrs = t.one().attributes
        assert not [k for k in attrs if k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system"))]
        assert attrs["gen_ai.usage.input_tokens"] == 130


# -- ConverseStream --------------------------------------------------------------------------------


def _check_stream_span(span: Any, text: str = "Hello!") -> None:
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert {k: attrs[k] for k in USAGE_ATTRS} == USAGE_ATTRS
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    genai_support.assert_time_to_first_chunk(span, client_reads_whole_kb=True)
    assert span.status.status_code == StatusCode.UNSET


def test_converse_stream_exhausted(traced, client):
    response = client.converse_stream(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 8})
    stream = response["stream"]
    from botocore.eventstream import EventStream

    assert isinstance(stream, EventStream)
    assert traced.spans() == []
    events = list(stream)
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    span = traced.one()
    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.request.max_tokens"] == 8
    _check_stream_span(span)


def test_converse_stream_tool_use(traced, client):
    for _ in client.converse_stream(modelId="m-tools", messages=MESSAGES)["stream"]:
        pass
    attrs = traced.one().attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Let me check."},
        {"type": "tool_call", "id": "tu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
    ]


def test_converse_stream_break_close_and_gc(traced, client):
    stream = client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
    for _ in stream:
        break
    assert traced.spans() == []
    stream.close()
    span = traced.one()
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.response.finish_reasons" not in span.attributes
    stream.close()  # a second close ends nothing again
    response = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    next(iter(response["stream"]))
    del response
    gc.collect()
    assert len(traced.spans()) == 2
    client.converse_stream(modelId=MODEL, messages=MESSAGES)  # never read at all
    gc.collect()
    assert len(traced.spans()) == 3


def test_converse_stream_error_mid_stream(traced, client):
    stream = client.converse_stream(modelId="m-midfail", messages=MESSAGES)["stream"]
    with pytest.raises(EventStreamError) as info:
        for _ in stream:
            pass
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    span = traced.one()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "modelStreamErrorException"


# -- InvokeModel -----------------------------------------------------------------------------------


def test_invoke_model_anthropic_body_still_readable(traced, client):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "temperature": 0.2,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    response = client.invoke_model(modelId=MODEL, body=json.dumps(body))
    assert isinstance(response["body"], StreamingBody)
    data = json.loads(response["body"].read())
    assert data["content"][0]["text"] == "Hello!" and data["usage"] == ANTHROPIC_USAGE
    assert response["body"].read() == b""
    span = traced.one()
    assert span.name == f"chat {MODEL}"
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.system_instructions")) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == HELLO_OUT
    assert {k: v for k, v in attrs.items() if not k.startswith("server.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.id": "msg_1",
        "gen_ai.response.model": "claude-3-haiku-20240307",
        "gen_ai.response.finish_reasons": ("stop",),
        **USAGE_ATTRS,
    }


def test_invoke_model_titan_nova_and_embeddings(traced, client):
    titan = client.invoke_model(
        modelId="amazon.titan-text-express-v1",
        body=json.dumps({"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 20, "topP": 0.8}}),
    )
    assert json.loads(titan["body"].read())["results"][0]["outputText"] == "Hello!"
    nova = client.invoke_model(
        modelId="amazon.nova-lite-v1:0",
        body=json.dumps(
            {
                "schemaVersion": "messages-v1",
                "messages": MESSAGES,
                "system": [{"text": "s"}],
                "inferenceConfig": {"maxTokens": 9},
            }
        ).encode(),
    )
    assert json.loads(nova["body"].read())["usage"]["inputTokens"] == 7
    client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "Hi"}))
    t, n, e = traced.spans()
    assert t.attributes["gen_ai.usage.input_tokens"] == 6 and t.attributes["gen_ai.usage.output_tokens"] == 4
    assert t.attributes["gen_ai.request.max_tokens"] == 20 and t.attributes["gen_ai.request.top_p"] == 0.8
    assert t.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(t.attributes["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Hello!"}
    ]
    assert n.attributes["gen_ai.usage.input_tokens"] == 7 and n.attributes["gen_ai.usage.output_tokens"] == 3
    assert n.attributes["gen_ai.request.max_tokens"] == 9
    assert n.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert json.loads(n.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert e.name == "embeddings amazon.titan-embed-text-v2:0"
    assert e.attributes["gen_ai.operation.name"] == "embeddings"
    assert e.attributes["gen_ai.usage.input_tokens"] == 4


def test_invoke_model_error(traced, client):
    with pytest.raises(ClientError) as info:
        client.invoke_model(modelId="m-400", body=b"{}")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert traced.one().attributes["error.type"] == "ValidationException"


def test_invoke_model_llama(traced, client):
    body = {"prompt": "Say hello", "max_gen_len": 12, "temperature": 0.1}
    response = client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=json.dumps(body))
    assert json.loads(response["body"].read())["generation"] == "Hello!"
    attrs = traced.one().attributes
    assert attrs["gen_ai.request.max_tokens"] == 12 and attrs["gen_ai.request.temperature"] == 0.1
    assert attrs["gen_ai.usage.input_tokens"] == 8 and attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)


def test_invoke_model_body_cut_off(traced, client):
    traced.instrumentor.uninstrument()
    plain = client.invoke_model(modelId="m-cut", body=b"{}")
    with pytest.raises(Exception) as expected:
        plain["body"].read()
    traced.instrument()
    response = client.invoke_model(modelId="m-cut", body=b"{}")
    span = traced.one()  # the call failed, the span is ended with the error
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == type(expected.value).__qualname__
    # and the application still gets that error when it reads the body
    with pytest.raises(type(expected.value)):
        response["body"].read()


def test_invoke_model_with_response_stream(traced, client):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert chunks[-1]["type"] == "message_stop"
    span = traced.one()
    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.response.id"] == "msg_s1"
    _check_stream_span(span)
    # left early and collected: ended once
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    next(iter(response["body"]))
    del response
    gc.collect()
    assert len(traced.spans()) == 2
    assert "gen_ai.response.finish_reasons" not in traced.spans()[1].attributes


# -- cooperation, suppression, import ------------------------------------------------------------


def test_no_duplicate_inside_other_genai_client_span(traced, client):
    other = traced.provider.get_tracer("opentelemetry.instrumentation.botocore")
    with other.start_as_current_span(
        "chat m",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "aws.bedrock"},
    ):
        client.converse(modelId=MODEL, messages=MESSAGES)
    assert [s.instrumentation_scope.name for s in traced.spans()] == [
        "opentelemetry.instrumentation.botocore"
    ]
    app = traced.provider.get_tracer("app")
    with (
        app.start_as_current_span("agent step"),
        app.start_as_current_span(
            "invoke_agent a", kind=SpanKind.CLIENT, attributes={"gen_ai.operation.name": "invoke_agent"}
        ),
    ):
        client.converse(modelId=MODEL, messages=MESSAGES)
    child, parent, _ = traced.spans()[1:]
    assert child.instrumentation_scope.name == "tracehouse.instrumentors.bedrock"
    assert child.parent.span_id == parent.context.span_id


def test_suppression(traced, client):
    with suppress_instrumentation():
        client.converse(modelId=MODEL, messages=MESSAGES)
        for _ in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
            pass
    assert traced.spans() == []


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_token_usage_and_duration(traced, client, api):
    client.converse(modelId=MODEL, messages=MESSAGES)
    for _ in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
        pass
    with pytest.raises(ClientError):
        client.converse(modelId="m-400", messages=MESSAGES)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": MODEL,
        **_server_attrs(api),
    }
    u = genai_support.usage_points(traced.metrics(), base, failed_model="m-400", error_type="ValidationException")
    assert len(u.tokens) == 2
    assert (u.input.count, u.input.sum, u.output.count, u.output.sum) == (2, 260, 2, 10)
    assert u.ok.count == 2
    assert u.failed.count == 1


# -- end to end: spans into a real collector -------------------------------------------------------


def test_collector_token_columns_end_to_end(collector, api, client):
    service = unique("bedrock-e2e")
    provider = genai_support.collector_provider(collector, service)
    inst = BedrockInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        client.converse(modelId=MODEL, messages=MESSAGES)
        for _ in client.converse_stream(modelId="m-tools", messages=MESSAGES)["stream"]:
            pass
    finally:
        inst.uninstrument()
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
            "GenAIProvider": "aws.bedrock",
            "InputTokens": 130,
            "OutputTokens": 5,
            "CacheReadTokens": 100,
            "CacheWriteTokens": 20,
        }
        for name in (f"chat {MODEL}", "chat m-tools")
    ]
