"""Amazon Bedrock Runtime instrumentation (boto3 / botocore `bedrock-runtime` clients): the
Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream operations, as
OpenTelemetry GenAI client spans (current conventions) and GenAI client metrics.

boto3 creates its client classes at run time, so the hook is `BaseClient._make_api_call`, the
one method every botocore operation goes through; only clients of the `bedrock-runtime` service
and the four operations above are traced (clients made before instrumenting included).
Importing this module does not import botocore; patch() does.

What the application receives is what botocore returns, with two transparent changes: a stream
(`response["stream"]` of ConverseStream, `response["body"]` of InvokeModelWithResponseStream) is
wrapped in a proxy that ends the span exactly once however the stream ends, and InvokeModel's
`body` is read to parse it and replaced by a new StreamingBody of the same bytes.

Usage follows the OTel conventions: `gen_ai.usage.input_tokens` INCLUDES cache reads and cache
writes (Bedrock's `inputTokens`, like Anthropic's `input_tokens`, excludes them), with
`gen_ai.usage.cache_read.input_tokens` and `gen_ai.usage.cache_creation.input_tokens` beside it.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import IN_CALL, LLMCall, function_tool
from tracehouse.instrumentors._common import args_json, get, jsonable, seq
from tracehouse.instrumentors.anthropic import _input_messages as _anthropic_messages
from tracehouse.instrumentors.anthropic import _parts as _anthropic_parts
from tracehouse.instrumentors.anthropic import _system as _anthropic_system
from tracehouse.instrumentors.anthropic import _tool_definitions as _anthropic_tools

_SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})
_STREAMING = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})
PROVIDER = "aws.bedrock"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _server(client: Any) -> tuple[str | None, int | None]:
    try:
        url = urlsplit(client.meta.endpoint_url)
        return url.hostname or None, url.port or {"https": 443, "http": 80}.get(url.scheme)
    except Exception:
        return None, None


def _already_traced() -> bool:
    """True inside a call we already trace, or inside another instrumentation's GenAI client
    span (e.g. opentelemetry-instrumentation-botocore's Bedrock extension wrapped outside ours),
    or inside a routed call (litellm) that is this call's span."""
    if otel_context.get_value(IN_CALL):
        return True
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) != SpanKind.CLIENT:
        return False
    attrs = getattr(span, "attributes", None) or {}
    if attrs.get(sc.OPERATION) not in (sc.CHAT, sc.TEXT_COMPLETION, sc.EMBEDDINGS):
        return False  # e.g. an agent's invoke_agent span: our call is its child
    provider = attrs.get(sc.PROVIDER, attrs.get("gen_ai.system", PROVIDER))  # or the deprecated name
    return provider in (PROVIDER, "aws_bedrock")


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    """botocore ClientError (and EventStreamError): the AWS error code and HTTP status."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = get(get(response, "Error"), "Code")
        status = _int(get(get(response, "ResponseMetadata"), "HTTPStatusCode"))
        if isinstance(code, str) and code:
            return code, status
    return type(exc).__qualname__, None


# -- content: Converse (and Nova) blocks -> role + parts -----------------------------------------


def _text_or_json(content: Any) -> Any:
    blocks = seq(content)
    if blocks and all(isinstance(b, dict) and "text" in b for b in blocks):
        return "".join(str(b["text"]) for b in blocks)
    if len(blocks) == 1 and isinstance(blocks[0], dict) and "json" in blocks[0]:
        return jsonable(blocks[0]["json"])
    return jsonable(list(blocks)) if blocks else content


def _block_part(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return {"type": "text", "content": block} if isinstance(block, str) else None
    if "text" in block:
        return {"type": "text", "content": block["text"]}
    if "toolUse" in block:
        use = block["toolUse"]
        return {
            "type": "tool_call",
            "id": get(use, "toolUseId"),
            "name": get(use, "name"),
            "arguments": args_json(jsonable(get(use, "input"))),
        }
    if "toolResult" in block:
        result = block["toolResult"]
        return {
            "type": "tool_call_response",
            "id": get(result, "toolUseId"),
            "response": _text_or_json(get(result, "content")),
        }
    if "reasoningContent" in block:
        reasoning = get(get(block["reasoningContent"], "reasoningText"), "text")
        return {"type": "reasoning", "content": reasoning or ""}
    for kind in ("image", "document", "video", "audio"):
        if kind in block:
            part: dict[str, Any] = {"type": "blob", "modality": kind}
            fmt = get(block[kind], "format")
            uri = get(get(get(block[kind], "source"), "s3Location"), "uri")
            if uri:
                part = {"type": "uri", "modality": kind, "uri": uri}
            if isinstance(fmt, str):
                part["mime_type"] = (
                    fmt if "/" in fmt else f"{'application' if kind == 'document' else kind}/{fmt}"
                )
            return part
    if "cachePoint" in block:
        return None  # a cache marker, not content
    return {"type": next(iter(block), "unknown")}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    return [p for p in (_block_part(b) for b in seq(content)) if p is not None]


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Converse `toolConfig.tools` (`{toolSpec: {name, description, inputSchema: {json}}}`)."""
    out = []
    for tool in seq(tools):
        spec = get(tool, "toolSpec")
        if spec is None:  # a cache point or a system tool
            kind = next(iter(tool), "unknown") if isinstance(tool, dict) and tool else "unknown"
            out.append(function_tool(kind, kind=kind))
            continue
        out.append(
            function_tool(
                get(spec, "name"), get(spec, "description"), jsonable(get(get(spec, "inputSchema"), "json"))
            )
        )
    return out


def _input_messages(messages: Any) -> list[dict[str, Any]]:
    out = []
    for message in seq(messages):
        parts = _parts(get(message, "content"))
        role = get(message, "role", "user")
        if parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"  # Bedrock sends tool results as user turns
        out.append({"role": role, "parts": parts})
    return out


# -- one traced call -----------------------------------------------------------------------------


class _Call(LLMCall):
    """One Bedrock operation: Converse and the model bodies of InvokeModel as the call's facts."""

    def __init__(
        self, inst: BedrockInstrumentor, client: Any, operation: str, params: dict[str, Any]
    ) -> None:
        self.body: dict[str, Any] | None = None
        self.kind = "converse"  # or "anthropic", "nova", "titan", "embed", "other"
        model = get(params, "modelId")
        if operation.startswith("InvokeModel"):
            self.body = _json_body(get(params, "body"))
            self.kind = _body_kind(self.body, model)
        host, port = _server(client)
        super().__init__(
            inst, sc.EMBEDDINGS if self.kind == "embed" else sc.CHAT, model, PROVIDER, host, port
        )
        self.api = operation
        # accumulated from stream events
        self.stop_reason: Any = None
        self.stream_usage: dict[str, int] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.response_id = self.response_model = None
        try:
            if self.body is not None:
                self._invoke_request(self.body)
            elif self.kind == "converse":
                self._converse_request(params)
        except Exception:
            pass
        if operation in _STREAMING:
            self.request(stream=True)

    def error_facts(self, exc: BaseException) -> tuple[str, int | None]:
        return _error_code(exc)

    def _params(self, config: Any, keys: dict[str, tuple[str, ...]]) -> None:
        """Request parameters from the first of their spellings found in `config`."""
        found = {}
        for param, names in keys.items():
            for key in names:
                value = get(config, key)
                if value is not None:
                    found[param] = value
                    break
        self.request(**found)

    def _converse_request(self, params: dict[str, Any]) -> None:
        self._params(
            get(params, "inferenceConfig"),
            {
                "max_tokens": ("maxTokens",),
                "temperature": ("temperature",),
                "top_p": ("topP",),
                "stop": ("stopSequences",),
            },
        )
        self._params(get(params, "additionalModelRequestFields"), {"top_k": ("top_k", "topK")})
        if self.capture:
            tools = get(get(params, "toolConfig"), "tools")
            self.inputs(
                _input_messages(get(params, "messages")),
                _parts(get(params, "system")),
                _tool_definitions(tools) if seq(tools) else None,
            )

    def _invoke_request(self, body: dict[str, Any]) -> None:
        if self.kind == "anthropic":
            self._params(
                body,
                {
                    "max_tokens": ("max_tokens",),
                    "temperature": ("temperature",),
                    "top_p": ("top_p",),
                    "top_k": ("top_k",),
                    "stop": ("stop_sequences",),
                },
            )
            if self.capture:
                tools = get(body, "tools")
                self.inputs(
                    _anthropic_messages(get(body, "messages")),
                    _anthropic_system(get(body, "system")),
                    _anthropic_tools(tools) if seq(tools) else None,
                )
        elif self.kind == "nova":
            self._params(
                get(body, "inferenceConfig"),
                {
                    "max_tokens": ("maxTokens", "max_new_tokens"),
                    "temperature": ("temperature",),
                    "top_p": ("topP", "top_p"),
                    "top_k": ("topK", "top_k"),
                    "stop": ("stopSequences",),
                },
            )
            if self.capture:
                tools = get(get(body, "toolConfig"), "tools")
                self.inputs(
                    _input_messages(get(body, "messages")),
                    _parts(get(body, "system")),
                    _tool_definitions(tools) if seq(tools) else None,
                )
        elif self.kind == "other":
            self._params(
                body,
                {
                    "max_tokens": ("max_tokens", "max_gen_len"),
                    "temperature": ("temperature",),
                    "top_p": ("top_p",),
                    "top_k": ("top_k",),
                    "stop": ("stop", "stop_sequences"),
                },
            )
        elif self.kind == "titan":
            self._params(
                get(body, "textGenerationConfig"),
                {
                    "max_tokens": ("maxTokenCount",),
                    "temperature": ("temperature",),
                    "top_p": ("topP",),
                    "stop": ("stopSequences",),
                },
            )
            text = get(body, "inputText")
            if self.capture and isinstance(text, str):
                self.inputs([{"role": "user", "parts": [{"type": "text", "content": text}]}])

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, inp: Any, out: Any, read: Any = None, write: Any = None) -> None:
        inp, read, write = _int(inp), _int(read), _int(write)
        total = None if inp is None else inp + (read or 0) + (write or 0)
        self.usage(total, out, read, write)

    def _converse_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage(
                get(usage, "inputTokens"),
                get(usage, "outputTokens"),
                get(usage, "cacheReadInputTokens", get(usage, "cacheReadInputTokenCount")),
                get(usage, "cacheWriteInputTokens", get(usage, "cacheWriteInputTokenCount")),
            )

    def _output(self, parts: list[dict[str, Any]], stop_reason: Any) -> None:
        self.finish_reasons([stop_reason])
        if self.capture and (parts or stop_reason):
            self.outputs([{"role": "assistant", "parts": parts, "finish_reason": stop_reason}])

    def on_response(self, result: Any) -> None:
        """Converse's result (InvokeModel's body is read by the instrumentor: invoke_response)."""
        self._converse_usage(get(result, "usage"))
        message = get(get(result, "output"), "message")
        self._output(_parts(get(message, "content")), get(result, "stopReason"))

    def invoke_response(self, data: bytes) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        try:
            if not isinstance(body, dict):
                return
            if self.kind == "anthropic" or get(body, "type") == "message":
                self.response_ids(get(body, "id"), get(body, "model"))
                usage = get(body, "usage")
                self._usage(
                    get(usage, "input_tokens"),
                    get(usage, "output_tokens"),
                    get(usage, "cache_read_input_tokens"),
                    get(usage, "cache_creation_input_tokens"),
                )
                self._output(_anthropic_parts(list(seq(get(body, "content")))), get(body, "stop_reason"))
            elif "output" in body or "usage" in body:  # Nova
                self._converse_usage(get(body, "usage"))
                message = get(get(body, "output"), "message")
                self._output(_parts(get(message, "content")), get(body, "stopReason"))
            elif "prompt_token_count" in body or "generation_token_count" in body:  # Meta Llama
                self._usage(get(body, "prompt_token_count"), get(body, "generation_token_count"))
                if isinstance(get(body, "generation"), str):
                    self._output([{"type": "text", "content": body["generation"]}], get(body, "stop_reason"))
            elif "results" in body or "inputTextTokenCount" in body:  # Titan text / embeddings
                results = [r for r in seq(get(body, "results")) if isinstance(r, dict)]
                counts = [_int(r.get("tokenCount")) for r in results]
                out = sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
                self._usage(get(body, "inputTextTokenCount"), out)
                if results:
                    parts = [{"type": "text", "content": r.get("outputText", "")} for r in results]
                    self._output(parts, results[0].get("completionReason"))
        except Exception:
            pass

    # -- streams ---------------------------------------------------------------------------------

    def process_chunk(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        if "chunk" in event:  # InvokeModelWithResponseStream: a model's own JSON chunk
            raw = get(event["chunk"], "bytes")
            if isinstance(raw, str):
                raw = base64.b64decode(raw)
            payload = json.loads(raw) if raw else None
            if isinstance(payload, dict):
                self._model_chunk(payload)
        else:
            self._converse_event(event)

    def _slot(self, index: Any) -> dict[str, Any]:
        return self.blocks.setdefault(
            index if isinstance(index, int) else 0,
            {"type": "text", "id": None, "name": None, "text": [], "json": []},
        )

    def _converse_event(self, event: dict[str, Any]) -> None:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = get(get(start, "start"), "toolUse")
            if use is not None:
                slot = self._slot(get(start, "contentBlockIndex"))
                slot.update(type="tool_use", id=get(use, "toolUseId"), name=get(use, "name"))
        elif "contentBlockDelta" in event:
            delta_event = event["contentBlockDelta"]
            slot = self._slot(get(delta_event, "contentBlockIndex"))
            delta = get(delta_event, "delta") or {}
            if "text" in delta:
                slot["text"].append(str(delta["text"]))
            elif "toolUse" in delta:
                slot["type"] = "tool_use"
                slot["json"].append(get(delta["toolUse"], "input", ""))
            elif "reasoningContent" in delta:
                slot["type"] = "reasoning"
                slot["text"].append(get(delta["reasoningContent"], "text", "") or "")
        elif "messageStop" in event:
            self.stop_reason = get(event["messageStop"], "stopReason") or self.stop_reason
        elif "metadata" in event:
            usage = get(event["metadata"], "usage")
            if isinstance(usage, dict):
                self.stream_usage.update(
                    {
                        k: v
                        for k, v in (
                            ("input", get(usage, "inputTokens")),
                            ("output", get(usage, "outputTokens")),
                            (
                                "read",
                                get(usage, "cacheReadInputTokens", get(usage, "cacheReadInputTokenCount")),
                            ),
                            (
                                "write",
                                get(usage, "cacheWriteInputTokens", get(usage, "cacheWriteInputTokenCount")),
                            ),
                        )
                        if _int(v) is not None
                    }
                )

    def _model_chunk(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "message_start":  # Anthropic
            message = get(payload, "message")
            self.response_id, self.response_model = get(message, "id"), get(message, "model")
            self._anthropic_usage(get(message, "usage"))
        elif kind == "content_block_start":
            block = get(payload, "content_block")
            slot = self._slot(get(payload, "index"))
            if get(block, "type") == "tool_use":
                slot.update(type="tool_use", id=get(block, "id"), name=get(block, "name"))
        elif kind == "content_block_delta":
            slot = self._slot(get(payload, "index"))
            delta = get(payload, "delta")
            dtype = get(delta, "type")
            if dtype == "text_delta":
                slot["text"].append(get(delta, "text", ""))
            elif dtype == "input_json_delta":
                slot["json"].append(get(delta, "partial_json", ""))
            elif dtype == "thinking_delta":
                slot["type"] = "reasoning"
                slot["text"].append(get(delta, "thinking", ""))
        elif kind == "message_delta":
            self.stop_reason = get(get(payload, "delta"), "stop_reason") or self.stop_reason
            self._anthropic_usage(get(payload, "usage"))
        elif kind is None and ("outputText" in payload or "completionReason" in payload):  # Titan
            self._slot(get(payload, "index")).setdefault("text", []).append(payload.get("outputText") or "")
            self.stop_reason = payload.get("completionReason") or self.stop_reason
        elif kind is None:  # Nova: Converse-shaped events
            self._converse_event(payload)
        metrics = payload.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            # The usage the model reported wins; these are the fallback.
            for key, name in (
                ("input", "inputTokenCount"),
                ("output", "outputTokenCount"),
                ("read", "cacheReadInputTokenCount"),
                ("write", "cacheWriteInputTokenCount"),
            ):
                if key not in self.stream_usage and _int(metrics.get(name)) is not None:
                    self.stream_usage[key] = metrics[name]

    def _anthropic_usage(self, usage: Any) -> None:
        for key, name in (
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("read", "cache_read_input_tokens"),
            ("write", "cache_creation_input_tokens"),
        ):
            value = _int(get(usage, name))
            if value is not None:
                self.stream_usage[key] = value

    def on_stream_end(self) -> None:
        self.response_ids(self.response_id, self.response_model)
        if self.stream_usage:
            u = self.stream_usage
            self._usage(u.get("input"), u.get("output"), u.get("read"), u.get("write"))
        parts = []
        for i in sorted(self.blocks):
            slot = self.blocks[i]
            if slot["type"] == "tool_use":
                raw = "".join(slot["json"])
                parts.append(
                    {
                        "type": "tool_call",
                        "id": slot["id"],
                        "name": slot["name"],
                        "arguments": args_json(raw) if raw else {},
                    }
                )
            elif slot["type"] == "reasoning":
                parts.append({"type": "reasoning", "content": "".join(slot["text"])})
            else:
                parts.append({"type": "text", "content": "".join(slot["text"])})
        if parts or self.stop_reason:
            self._output(parts, self.stop_reason)


def _json_body(body: Any) -> dict[str, Any] | None:
    """InvokeModel's request body when it is JSON bytes or text (a file object is not read)."""
    if isinstance(body, bytes | bytearray | str):
        try:
            value = json.loads(body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _body_kind(body: dict[str, Any] | None, model: Any) -> str:
    model = model.lower() if isinstance(model, str) else ""
    if body is None:
        return "embed" if "embed" in model else "other"
    if "anthropic_version" in body or "anthropic" in model and "messages" in body:
        return "anthropic"
    if "embed" in model:
        return "embed"
    if "messages" in body:
        return "nova"
    if "inputText" in body:
        return "titan"
    return "other"


class _EventStreamProxy(wrapt.ObjectProxy):
    """A botocore EventStream as the application knows it; `call.end()` runs once, however it
    ends: exhausted, failed mid-stream, closed, or collected."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_iter: Any = None

    def __iter__(self) -> _EventStreamProxy:
        return self

    def __next__(self) -> Any:
        if self._self_iter is None:
            self._self_iter = iter(self.__wrapped__)
        try:
            event = next(self._self_iter)
        except StopIteration:
            self._self_call.end(streamed=True)
            raise
        except BaseException as exc:
            self._self_call.end(exc, streamed=True)
            raise
        self._self_call.chunk(event)
        return event

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.end(streamed=True)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None:
            call.end(streamed=True)


# -- the instrumentor ----------------------------------------------------------------------------


class BedrockInstrumentor(GenAIInstrumentor):
    name = "bedrock"
    packages = ("botocore >= 1.34",)

    def patch(self) -> None:
        from botocore.client import BaseClient

        wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", self._wrapper)
        self._patched = [(BaseClient, "_make_api_call")]

    def unpatch(self) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []

    def _start(self, client: Any, operation: Any, params: Any) -> _Call | None:
        if operation not in _OPERATIONS or not is_instrumentation_enabled():
            return None
        try:
            if client.meta.service_model.service_name != _SERVICE or _already_traced():
                return None
            call = _Call(self, client, operation, params if isinstance(params, dict) else {})
            call.start()
            return call
        except Exception:
            return None

    def _wrapper(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        operation = args[0] if args else kwargs.get("operation_name")
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        call = self._start(instance, operation, params)
        if call is None:
            return wrapped(*args, **kwargs)
        result = call.run(lambda: wrapped(*args, **kwargs))
        try:
            key = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}.get(operation)
            if key is not None:
                stream = result.get(key) if isinstance(result, dict) else None
                if stream is not None:
                    result[key] = _EventStreamProxy(stream, call)
                    return result
                call.end(streamed=True)
                return result
            if operation == "Converse":
                call.response(result)
        except Exception:
            pass
        if operation == "InvokeModel":
            try:
                self._read_body(call, result)
            except BaseException as exc:
                # The body failed to arrive: the error the application would have had reading it.
                call.end(exc)
                raise
        call.end()
        return result

    @staticmethod
    def _read_body(call: _Call, result: Any) -> None:
        """InvokeModel: read the body, give the application a fresh StreamingBody of the same
        bytes, and parse it."""
        from botocore.response import StreamingBody

        body = result.get("body") if isinstance(result, dict) else None
        if body is None or not hasattr(body, "read"):
            return
        try:
            data = body.read()
        except Exception as exc:
            # The body broke off: the application gets this same error when it reads the body
            # (as it would have), and the call failed.
            result["body"] = StreamingBody(_BrokenBody(exc), None)
            call.end(exc)
            return
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        call.invoke_response(data)


class _BrokenBody(io.RawIOBase):
    """The raw stream of an InvokeModel body whose read failed: every read raises that error."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self._exc = exc

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = -1) -> bytes:
        raise self._exc
