"""Anthropic client instrumentation: the Messages API (`messages.create`, `messages.parse`,
`messages.stream`), sync and async, raw event streams and the MessageStream helper, as
OpenTelemetry GenAI client spans (current conventions) and GenAI client metrics.

Importing this module does not import anthropic; patch() does, once BaseInstrumentor has checked
that it is installed. The objects the application receives are the ones anthropic returns; raw
event streams are wrapped in a transparent proxy that ends the span exactly once, however the
stream ends (the MessageStream helper reads its raw stream through the same proxy).

Usage follows the OTel conventions: `gen_ai.usage.input_tokens` INCLUDES cache reads and cache
writes (Anthropic's `input_tokens` excludes them), with `gen_ai.usage.cache_read.input_tokens`
and `gen_ai.usage.cache_creation.input_tokens` beside it.

anthropic >= 2.x emits call spans of its own (scope `com.anthropic.sdk.python`); while this
instrumentor traces a call, the SDK's span for that same call is not started (a non-recording
stand-in with our span's context takes its place, so the request still propagates a trace
context), and each call has one GenAI span whose tokens are counted once.
"""

from __future__ import annotations

import importlib
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import IN_CALL, LLMCall, function_tool, output_type, starter, traced
from tracehouse.instrumentors._common import (
    AsyncStreamProxy,
    StreamProxy,
    args_json,
    get,
    jsonable,
    seq,
)

# Where Messages lives: a package since anthropic 0.3x-ish, a module before.
_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.messages")
_CLASSES = ("Messages", "AsyncMessages")
_CALL_METHODS = ("create", "parse")  # parse() posts directly rather than through create()
_SDK_SPAN_HOOK = ("anthropic._base_client", "start_api_call_span")
_SDK_SCOPE = "com.anthropic.sdk.python"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _server(instance: Any) -> tuple[str | None, int | None, str]:
    client = getattr(instance, "_client", None)
    host = port = None
    try:
        url = client.base_url  # type: ignore[union-attr]
        host = url.host or None
        port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    except Exception:
        pass
    cls = type(client).__name__
    if "Bedrock" in cls:
        provider = "aws.bedrock"
    elif "Vertex" in cls:
        provider = "gcp.vertex_ai"
    else:
        named = getattr(client, "_gen_ai_provider_name", None)
        provider = named if isinstance(named, str) and named else "anthropic"
    return host, port, provider


# -- content (current GenAI conventions: role + parts) -------------------------------------------


def _text_of(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content
    blocks = seq(content)
    if blocks and all(get(b, "type") == "text" for b in blocks):
        return "".join(get(b, "text", "") for b in blocks)
    return jsonable(content)


def _block_part(block: Any) -> dict[str, Any]:
    if isinstance(block, str):
        return {"type": "text", "content": block}
    kind = get(block, "type")
    if kind == "text":
        return {"type": "text", "content": get(block, "text", "")}
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": get(block, "id"),
            "name": get(block, "name"),
            "arguments": jsonable(get(block, "input")),
        }
    if kind == "server_tool_use":  # a tool Anthropic runs itself (web search, code execution)
        return _server_tool_call(get(block, "id"), get(block, "name"), jsonable(get(block, "input")))
    if isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result":
        return {
            "type": "server_tool_call_response",
            "id": get(block, "tool_use_id"),
            "server_tool_call_response": {"type": kind, "content": jsonable(get(block, "content"))},
        }
    if kind == "tool_result":
        return {
            "type": "tool_call_response",
            "id": get(block, "tool_use_id"),
            "response": _text_of(get(block, "content")),
        }
    if kind == "thinking":
        return {"type": "reasoning", "content": get(block, "thinking", "")}
    if kind in ("image", "document"):
        source = get(block, "source")
        modality = "image" if kind == "image" else "document"
        if get(source, "type") == "url" and get(source, "url"):
            return {"type": "uri", "modality": modality, "uri": get(source, "url")}
        part: dict[str, Any] = {"type": "blob", "modality": modality}
        if get(source, "media_type"):
            part["mime_type"] = get(source, "media_type")
        return part
    return {"type": str(kind or "unknown")}


def _server_tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "type": "server_tool_call",
        "id": call_id,
        "name": name,
        "server_tool_call": {"type": name, "arguments": arguments},
    }


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Client tools (`{name, description, input_schema}`) as functions; server tools
    (`{type: web_search_20250305, name}`) keep their type."""
    out = []
    for tool in seq(tools):
        kind = get(tool, "type")
        custom = kind in (None, "custom")
        out.append(
            function_tool(
                get(tool, "name", kind),
                get(tool, "description"),
                jsonable(get(tool, "input_schema")),
                "function" if custom else str(kind),
            )
        )
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    return [_block_part(b) for b in (content if isinstance(content, list | tuple) else [content])]


def _input_messages(messages: Any) -> list[dict[str, Any]]:
    out = []
    for message in seq(messages):
        parts = _parts(get(message, "content"))
        role = get(message, "role", "user")
        if parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"  # Anthropic sends tool results as user turns
        out.append({"role": role, "parts": parts})
    return out


def _system(system: Any) -> list[dict[str, Any]] | None:
    if isinstance(system, str):
        return [{"type": "text", "content": system}] if system else None
    parts = _parts(list(seq(system)))
    return parts or None


# -- one traced call -----------------------------------------------------------------------------


class _Call(LLMCall):
    """One Messages call: Anthropic's request, Message and stream events as the call's facts."""

    def __init__(
        self, inst: AnthropicInstrumentor, instance: Any, kwargs: dict[str, Any], stream: bool
    ) -> None:
        host, port, provider = _server(instance)
        super().__init__(inst, sc.CHAT, get(kwargs, "model"), provider, host, port)
        self.stream_class: Any = None
        # accumulated from stream events
        self.message_id = self.message_model = self.stop_reason = None
        self.stream_usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self._request(kwargs, stream)

    def _request(self, kwargs: dict[str, Any], stream: bool) -> None:
        # Newer anthropic releases dropped temperature / top_p / top_k from the signature: they
        # then travel in extra_body, whose values win over the named ones (as they do on the wire).
        extra = kwargs.get("extra_body")
        kw = {**kwargs, **extra} if isinstance(extra, dict) else kwargs
        self.request(
            max_tokens=get(kw, "max_tokens"),
            temperature=get(kw, "temperature"),
            top_p=get(kw, "top_p"),
            top_k=get(kw, "top_k"),
            stop=get(kw, "stop_sequences"),
            stream=stream,
            output_type=output_type(get(kw, "output_format")),
        )
        # What selects the price variant (see the collector's price_context): tier and speed.
        for key, attr in (
            ("service_tier", "tracehouse.request.service_tier"),
            ("speed", "tracehouse.request.speed"),
        ):
            value = get(kw, key)
            if isinstance(value, str) and value:
                self.attrs[attr] = value
        if self.capture:
            tools = seq(get(kw, "tools"))
            self.inputs(
                _input_messages(get(kw, "messages")),
                _system(get(kw, "system")),
                _tool_definitions(tools) if tools else None,
            )

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.stream_class)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        inp = _int(get(usage, "input_tokens"))
        read = _int(get(usage, "cache_read_input_tokens"))
        created = _int(get(usage, "cache_creation_input_tokens"))
        total = None if inp is None else inp + (read or 0) + (created or 0)
        self.usage(total, get(usage, "output_tokens"), read, created)
        # One-hour cache writes cost more than five-minute ones: their share of the writes.
        one_hour = _int(get(get(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
        if one_hour:
            self.facts["tracehouse.usage.cache_creation_1h.input_tokens"] = one_hour
        # The tier (standard, priority, batch) and speed Anthropic billed the call at.
        for key, attr in (
            ("service_tier", "tracehouse.response.service_tier"),
            ("speed", "tracehouse.response.speed"),
        ):
            value = get(usage, key)
            if isinstance(value, str) and value:
                self.facts[attr] = value

    def _output(self, parts: list[dict[str, Any]], stop_reason: Any) -> None:
        self.finish_reasons([stop_reason])
        if self.capture and (parts or stop_reason):
            self.outputs([{"role": "assistant", "parts": parts, "finish_reason": stop_reason}])

    def on_response(self, result: Any) -> None:
        if get(result, "usage") is None and get(result, "content") is None:
            return  # e.g. with_raw_response: not parsed here, never parsed for it
        self.response_ids(get(result, "id"), get(result, "model"))
        self._usage(get(result, "usage"))
        self._output(_parts(list(seq(get(result, "content")))), get(result, "stop_reason"))

    def process_chunk(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self.message_id = get(message, "id")
            self.message_model = get(message, "model")
            self._merge_usage(get(message, "usage"))
        elif kind == "content_block_start":
            block = get(event, "content_block")
            self.blocks[get(event, "index", 0)] = {
                "block": block,
                "type": get(block, "type"),
                "id": get(block, "id"),
                "name": get(block, "name"),
                "input": get(block, "input"),
                "text": [get(block, "text") or get(block, "thinking") or ""],
                "json": [],
            }
        elif kind == "content_block_delta":
            slot = self.blocks.setdefault(
                get(event, "index", 0),
                {
                    "block": None,
                    "type": "text",
                    "id": None,
                    "name": None,
                    "input": None,
                    "text": [],
                    "json": [],
                },
            )
            delta = get(event, "delta")
            dtype = get(delta, "type")
            if dtype == "text_delta":
                slot["text"].append(get(delta, "text", ""))
            elif dtype == "thinking_delta":
                slot["text"].append(get(delta, "thinking", ""))
            elif dtype == "input_json_delta":
                slot["json"].append(get(delta, "partial_json", ""))
        elif kind == "message_delta":
            self.stop_reason = get(get(event, "delta"), "stop_reason") or self.stop_reason
            self._merge_usage(get(event, "usage"))

    def _merge_usage(self, usage: Any) -> None:
        """message_delta usage is cumulative and may carry only some fields."""
        for key in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
        ):
            value = _int(get(usage, key))
            if value is not None:
                self.stream_usage[key] = value
        for key in ("service_tier", "speed"):
            value = get(usage, key)
            if isinstance(value, str) and value:
                self.stream_usage[key] = value
        one_hour = _int(get(get(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
        if one_hour is not None:
            self.stream_usage["cache_creation"] = {"ephemeral_1h_input_tokens": one_hour}

    def on_stream_end(self) -> None:
        self.response_ids(self.message_id, self.message_model)
        if self.stream_usage:
            self._usage(self.stream_usage)
        parts = []
        for i in sorted(self.blocks):
            slot = self.blocks[i]
            kind = slot["type"]
            if kind in ("tool_use", "server_tool_use"):
                raw = "".join(slot["json"])
                arguments = args_json(raw) if raw else jsonable(slot["input"])
                if kind == "tool_use":
                    parts.append(
                        {"type": "tool_call", "id": slot["id"], "name": slot["name"], "arguments": arguments}
                    )
                else:
                    parts.append(_server_tool_call(slot["id"], slot["name"], arguments))
            elif kind == "thinking":
                parts.append({"type": "reasoning", "content": "".join(slot["text"])})
            elif kind == "text":
                parts.append({"type": "text", "content": "".join(slot["text"])})
            elif slot["block"] is not None:
                parts.append(_block_part(slot["block"]))
            else:
                parts.append({"type": str(kind or "unknown")})
        if parts or self.stop_reason:
            self._output(parts, self.stop_reason)


# -- the instrumentor ----------------------------------------------------------------------------


class AnthropicInstrumentor(GenAIInstrumentor):
    name = "anthropic"
    packages = ("anthropic >= 0.30",)

    def patch(self) -> None:
        from anthropic import AsyncStream, Stream

        self._patched: list[tuple[Any, str]] = []
        module = self._messages_module()
        for cls_name in _CLASSES:
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            is_async = cls_name.startswith("Async")
            start = starter(self._maker(AsyncStream if is_async else Stream), "anthropic", (_SDK_SCOPE,))
            for method in _CALL_METHODS:
                if hasattr(cls, method):
                    wrapt.wrap_function_wrapper(cls, method, traced(start, is_async))
                    self._patched.append((cls, method))
            if hasattr(cls, "stream"):
                wrapt.wrap_function_wrapper(cls, "stream", self._stream_helper_wrapper(is_async))
                self._patched.append((cls, "stream"))
        try:
            hook_module = importlib.import_module(_SDK_SPAN_HOOK[0])
        except ImportError:
            hook_module = None
        if hook_module is not None and hasattr(hook_module, _SDK_SPAN_HOOK[1]):
            wrapt.wrap_function_wrapper(hook_module, _SDK_SPAN_HOOK[1], _no_sdk_span_inside_ours)
            self._patched.append((hook_module, _SDK_SPAN_HOOK[1]))

    def unpatch(self) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []

    @staticmethod
    def _messages_module() -> Any:
        for name in _MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "Messages"):
                return module
        raise ImportError("anthropic Messages resource not found")

    def _maker(self, stream_class: Any, streamed: bool | None = None) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> _Call:
            call = _Call(
                self, instance, kwargs, kwargs.get("stream") is True if streamed is None else streamed
            )
            call.stream_class = stream_class
            call.start()
            return call

        return make

    def _stream_helper_wrapper(self, is_async: bool) -> Any:
        """messages.stream() returns a MessageStreamManager that posts when entered: the span
        starts then, and the raw event stream the MessageStream reads goes through the proxy, so
        iteration, text_stream, get_final_message(), until_done(), close() and the manager's
        exit all end it once. The manager is proxied only to see an application error that
        leaves its `with` block."""
        start = starter(self._maker(object, streamed=True), "anthropic", (_SDK_SCOPE,))

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            manager = wrapped(*args, **kwargs)
            attr = f"_{type(manager).__name__}__api_request"
            request = getattr(manager, attr, None)
            if request is None:
                return manager
            holder: list[_Call] = []
            try:
                if is_async:
                    traced_request = _traced_async(start, request, instance, kwargs, holder)
                else:
                    traced_request = _traced_sync(start, request, instance, kwargs, holder)
                setattr(manager, attr, traced_request)
            except Exception:
                return manager
            return _AsyncManagerProxy(manager, holder) if is_async else _ManagerProxy(manager, holder)

        return wrapper


def _traced_sync(start: Any, request: Any, instance: Any, kwargs: dict[str, Any], holder: list[_Call]) -> Any:
    def traced_request() -> Any:
        call = start(instance, (), kwargs)
        if call is None:
            return request()
        holder.append(call)
        return StreamProxy(call.run(request), call)

    return traced_request


def _traced_async(
    start: Any, request: Any, instance: Any, kwargs: dict[str, Any], holder: list[_Call]
) -> Any:
    async def traced_request() -> Any:
        call = start(instance, (), kwargs)
        if call is None:
            return await request
        holder.append(call)
        return AsyncStreamProxy(await call.run_async(lambda: request), call)

    return traced_request()


class _ManagerProxy(wrapt.ObjectProxy):
    """MessageStreamManager as the application knows it; an error leaving its `with` block is
    the span's error (the manager itself only closes the stream)."""

    def __init__(self, manager: Any, holder: list[_Call]) -> None:
        super().__init__(manager)
        self._self_holder = holder

    def __enter__(self) -> Any:
        return self.__wrapped__.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc is not None and self._self_holder:
            self._self_holder[0].end(exc, streamed=True)
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class _AsyncManagerProxy(wrapt.ObjectProxy):
    """AsyncMessageStreamManager as the application knows it (see _ManagerProxy)."""

    def __init__(self, manager: Any, holder: list[_Call]) -> None:
        super().__init__(manager)
        self._self_holder = holder

    async def __aenter__(self) -> Any:
        return await self.__wrapped__.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc is not None and self._self_holder:
            self._self_holder[0].end(exc, streamed=True)
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


def _no_sdk_span_inside_ours(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """anthropic's own call span is not started for a call this instrumentor already traces: it
    gets a non-recording stand-in carrying our span's context, so that what it propagates in the
    request headers (unless its `propagation` option is off) is our span."""
    if otel_context.get_value(IN_CALL):
        ours = trace.get_current_span().get_span_context()
        return trace.NonRecordingSpan(ours) if ours.is_valid else None
    return wrapped(*args, **kwargs)
