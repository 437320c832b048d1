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
import time
from contextvars import Token
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind

from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._common import (
    AsyncStreamProxy,
    GenAIMetrics,
    StreamProxy,
    args_json,
    capped_json,
    get,
    inside_routed_call,
    jsonable,
    record_error,
    seq,
)

_CALL_KEY = otel_context.create_key("tracehouse-anthropic-call")

# Where Messages lives: a package since anthropic 0.3x-ish, a module before.
_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.messages")
_CLASSES = ("Messages", "AsyncMessages")
_CALL_METHODS = ("create", "parse")  # parse() posts directly rather than through create()
_SDK_SPAN_HOOK = ("anthropic._base_client", "start_api_call_span")
_SDK_SCOPE = "com.anthropic.sdk.python"

# Anthropic stop_reason -> the conventions' finish reasons; others are kept as they are.
_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "stop_sequence": "stop"}

TTFC = "tracehouse.response.time_to_first_chunk"


def _finish(reason: Any) -> str | None:
    return _FINISH.get(reason, str(reason)) if reason else None


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


def _already_traced(model: Any) -> bool:
    """True inside a call we are already tracing, or inside another instrumentor's GenAI client
    span for this same Anthropic call (it wrapped the method outside ours), or inside a routed
    call (litellm) that is this call's span."""
    if otel_context.get_value(_CALL_KEY) or inside_routed_call():
        return True
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) != SpanKind.CLIENT:
        return False
    attrs = getattr(span, "attributes", None) or {}
    if "gen_ai.operation.name" not in attrs:
        return False
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", "") or ""
    if "anthropic" not in scope.lower() or scope == _SDK_SCOPE:
        return False
    other = attrs.get("gen_ai.request.model")
    return other is None or not isinstance(model, str) or other == model


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
    if kind in ("tool_use", "server_tool_use"):
        return {
            "type": "tool_call",
            "id": get(block, "id"),
            "name": get(block, "name"),
            "arguments": jsonable(get(block, "input")),
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


class _Call:
    """A span for one Messages call: request attributes at start, response attributes at the end."""

    def __init__(
        self, inst: AnthropicInstrumentor, instance: Any, kwargs: dict[str, Any], stream: bool
    ) -> None:
        self.inst = inst
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        model = get(kwargs, "model")
        host, port, provider = _server(instance)
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider}
        if isinstance(model, str):
            attrs["gen_ai.request.model"] = model
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        self._request_attributes(attrs, kwargs, stream)
        name = f"chat {model}" if isinstance(model, str) and model else "chat"
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        # accumulated from stream events
        self.message_id = self.message_model = self.stop_reason = None
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}

    def _request_attributes(self, attrs: dict[str, Any], kwargs: dict[str, Any], stream: bool) -> None:
        # Newer anthropic releases dropped temperature / top_p / top_k from the signature: they
        # then travel in extra_body, whose values win over the named ones (as they do on the wire).
        extra = kwargs.get("extra_body")
        kw = {**kwargs, **extra} if isinstance(extra, dict) else kwargs
        for key, attr in (
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("temperature", "gen_ai.request.temperature"),
            ("top_p", "gen_ai.request.top_p"),
            ("top_k", "gen_ai.request.top_k"),
        ):
            value = get(kw, key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[attr] = value
        stop = get(kw, "stop_sequences")
        if isinstance(stop, list | tuple) and stop:
            attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        if stream:
            attrs["gen_ai.request.stream"] = True
        # What selects the price variant (see the collector's price_context): tier and speed.
        for key, attr in (
            ("service_tier", "tracehouse.request.service_tier"),
            ("speed", "tracehouse.request.speed"),
        ):
            value = get(kw, key)
            if isinstance(value, str) and value:
                attrs[attr] = value
        if not self.capture:
            return
        messages = _input_messages(get(kw, "messages"))
        if messages:
            attrs["gen_ai.input.messages"] = self._json(messages)
        system = _system(get(kw, "system"))
        if system:
            attrs["gen_ai.system_instructions"] = self._json(system)
        tools = seq(get(kw, "tools"))
        if tools:
            attrs["gen_ai.tool.definitions"] = self._json(jsonable(list(tools)))

    def _json(self, value: Any) -> str:
        return capped_json(value, self.inst.max_content_bytes)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        inp = _int(get(usage, "input_tokens"))
        read = _int(get(usage, "cache_read_input_tokens"))
        created = _int(get(usage, "cache_creation_input_tokens"))
        out = _int(get(usage, "output_tokens"))
        span = self.span
        if inp is not None:
            self.input_tokens = inp + (read or 0) + (created or 0)
            span.set_attribute("gen_ai.usage.input_tokens", self.input_tokens)
        if read is not None:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", read)
        if created is not None:
            span.set_attribute("gen_ai.usage.cache_creation.input_tokens", created)
        if out is not None:
            self.output_tokens = out
            span.set_attribute("gen_ai.usage.output_tokens", out)
        # One-hour cache writes cost more than five-minute ones: their share of the writes.
        one_hour = _int(get(get(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
        if one_hour:
            span.set_attribute("tracehouse.usage.cache_creation_1h.input_tokens", one_hour)
        # The tier (standard, priority, batch) and speed Anthropic billed the call at.
        for key, attr in (
            ("service_tier", "tracehouse.response.service_tier"),
            ("speed", "tracehouse.response.speed"),
        ):
            value = get(usage, key)
            if isinstance(value, str) and value:
                span.set_attribute(attr, value)

    def _ids(self, rid: Any, model: Any) -> None:
        if isinstance(rid, str) and rid:
            self.span.set_attribute("gen_ai.response.id", rid)
        if isinstance(model, str) and model:
            self.span.set_attribute("gen_ai.response.model", model)
            self.metric_attrs["gen_ai.response.model"] = model

    def _output(self, parts: list[dict[str, Any]], stop_reason: Any) -> None:
        finish = _finish(stop_reason)
        if finish:
            self.span.set_attribute("gen_ai.response.finish_reasons", [finish])
        if self.capture and (parts or finish):
            message = {"role": "assistant", "parts": parts, "finish_reason": finish}
            self.span.set_attribute("gen_ai.output.messages", self._json([message]))

    def response(self, result: Any) -> None:
        """Attributes from a non-streamed Message."""
        try:
            if get(result, "usage") is None and get(result, "content") is None:
                return  # e.g. with_raw_response: not parsed here, never parsed for it
            self._ids(get(result, "id"), get(result, "model"))
            self._usage(get(result, "usage"))
            self._output(_parts(list(seq(get(result, "content")))), get(result, "stop_reason"))
        except Exception:  # telemetry must never break the call
            pass

    def chunk(self, event: Any) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.monotonic() - self.started
        try:
            kind = get(event, "type")
            if kind == "message_start":
                message = get(event, "message")
                self.message_id = get(message, "id")
                self.message_model = get(message, "model")
                self._merge_usage(get(message, "usage"))
            elif kind == "content_block_start":
                block = get(event, "content_block")
                self.blocks[get(event, "index", 0)] = {
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
                    {"type": "text", "id": None, "name": None, "input": None, "text": [], "json": []},
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
        except Exception:
            pass

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
                self.usage[key] = value
        for key in ("service_tier", "speed"):
            value = get(usage, key)
            if isinstance(value, str) and value:
                self.usage[key] = value
        one_hour = _int(get(get(usage, "cache_creation"), "ephemeral_1h_input_tokens"))
        if one_hour is not None:
            self.usage["cache_creation"] = {"ephemeral_1h_input_tokens": one_hour}

    def _stream_results(self) -> None:
        if self.first_chunk is not None:
            self.span.set_attribute(TTFC, self.first_chunk)
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_chunk)
        self._ids(self.message_id, self.message_model)
        if self.usage:
            self._usage(self.usage)
        parts = []
        for i in sorted(self.blocks):
            slot = self.blocks[i]
            kind = slot["type"]
            if kind in ("tool_use", "server_tool_use"):
                raw = "".join(slot["json"])
                arguments = jsonable(slot["input"])
                if raw:
                    arguments = args_json(raw)
                parts.append(
                    {"type": "tool_call", "id": slot["id"], "name": slot["name"], "arguments": arguments}
                )
            elif kind == "thinking":
                parts.append({"type": "reasoning", "content": "".join(slot["text"])})
            elif kind == "text":
                parts.append({"type": "text", "content": "".join(slot["text"])})
            else:
                parts.append({"type": str(kind or "unknown")})
        if parts or self.stop_reason:
            self._output(parts, self.stop_reason)

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if streamed:
                self._stream_results()
            if exc is not None:
                record_error(self.span, exc, self.metric_attrs, getattr(exc, "status_code", None))
        finally:
            self.span.end()
            self.inst.metrics.record(
                self.metric_attrs, time.monotonic() - self.started, self.input_tokens, self.output_tokens
            )


# -- the instrumentor ----------------------------------------------------------------------------


class AnthropicInstrumentor(GenAIInstrumentor):
    name = "anthropic"
    packages = ("anthropic >= 0.30",)

    def patch(self) -> None:
        from anthropic import AsyncStream, Stream

        self.metrics = GenAIMetrics(self.meter)
        self._patched: list[tuple[Any, str]] = []
        module = self._messages_module()
        for cls_name in _CLASSES:
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            is_async = cls_name.startswith("Async")
            for method in _CALL_METHODS:
                if hasattr(cls, method):
                    wrapper = self._async_wrapper(AsyncStream) if is_async else self._sync_wrapper(Stream)
                    wrapt.wrap_function_wrapper(cls, method, wrapper)
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

    def _start(self, instance: Any, kwargs: dict[str, Any], stream: bool) -> _Call | None:
        if not is_instrumentation_enabled() or _already_traced(kwargs.get("model")):
            return None
        try:
            return _Call(self, instance, kwargs, stream)
        except Exception:
            return None

    @staticmethod
    def _attach(call: _Call) -> Token[otel_context.Context]:
        return otel_context.attach(
            otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(call.span))
        )

    def _sync_wrapper(self, stream_cls: type) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kwargs, kwargs.get("stream") is True)
            if call is None:
                return wrapped(*args, **kwargs)
            token = self._attach(call)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if isinstance(result, stream_cls):
                return StreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper

    def _async_wrapper(self, stream_cls: type) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kwargs, kwargs.get("stream") is True)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = self._attach(call)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if isinstance(result, stream_cls):
                return AsyncStreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper

    def _stream_helper_wrapper(self, is_async: bool) -> Any:
        """messages.stream() returns a MessageStreamManager that posts when entered: the span
        starts then, and the raw event stream the MessageStream reads goes through the proxy, so
        iteration, text_stream, get_final_message(), until_done(), close() and the manager's
        exit all end it once. The manager is proxied only to see an application error that
        leaves its `with` block."""

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            manager = wrapped(*args, **kwargs)
            attr = f"_{type(manager).__name__}__api_request"
            request = getattr(manager, attr, None)
            if request is None:
                return manager
            holder: list[_Call] = []
            try:
                traced = (
                    self._traced_async(request, instance, kwargs, holder)
                    if is_async
                    else self._traced_sync(request, instance, kwargs, holder)
                )
                setattr(manager, attr, traced)
            except Exception:
                return manager
            return _AsyncManagerProxy(manager, holder) if is_async else _ManagerProxy(manager, holder)

        return wrapper

    def _traced_sync(self, request: Any, instance: Any, kwargs: dict[str, Any], holder: list[_Call]) -> Any:
        def traced_request() -> Any:
            call = self._start(instance, kwargs, True)
            if call is None:
                return request()
            holder.append(call)
            token = self._attach(call)
            try:
                raw = request()
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            return StreamProxy(raw, call)

        return traced_request

    def _traced_async(self, request: Any, instance: Any, kwargs: dict[str, Any], holder: list[_Call]) -> Any:
        async def traced_request() -> Any:
            call = self._start(instance, kwargs, True)
            if call is None:
                return await request
            holder.append(call)
            token = self._attach(call)
            try:
                raw = await request
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            return AsyncStreamProxy(raw, call)

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
    if otel_context.get_value(_CALL_KEY) or inside_routed_call():
        ours = trace.get_current_span().get_span_context()
        return trace.NonRecordingSpan(ours) if ours.is_valid else None
    return wrapped(*args, **kwargs)
