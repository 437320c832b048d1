"""Mistral AI client instrumentation (`mistralai` >= 1.0, the `Mistral` client):
`chat.complete` / `complete_async` (and so `chat.parse` / `parse_async`), `chat.stream` /
`stream_async` (and so `parse_stream*`), event streams of CompletionEvent, and
`embeddings.create` / `create_async`, as OpenTelemetry GenAI client spans (current conventions)
and GenAI client metrics.

Importing this module does not import mistralai; patch() does. The objects the application
receives are the ones mistralai returns; event streams are wrapped in a transparent proxy that
ends the span exactly once, however the stream ends (exhausted, error, close, context manager
exit, garbage collection).

mistralai 2.x+ can emit call spans of its own when its opt-in telemetry is on (scope
`mistralai_sdk_tracer`); while this instrumentor traces a call, the SDK's span for that same
call is not started (our span's context is propagated in its place), so each call has one GenAI
span whose tokens are counted once.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from contextvars import Token
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
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

_CALL_KEY = otel_context.create_key("tracehouse-mistralai-call")
PROVIDER = "mistral_ai"
TTFC = "tracehouse.response.time_to_first_chunk"

# (modules to try: 2.x+ first, then 1.x), class, method, kind, is_async, streams
_TARGETS = (
    (("mistralai.client.chat", "mistralai.chat"), "Chat", "complete", "chat", False, False),
    (("mistralai.client.chat", "mistralai.chat"), "Chat", "complete_async", "chat", True, False),
    (("mistralai.client.chat", "mistralai.chat"), "Chat", "stream", "chat", False, True),
    (("mistralai.client.chat", "mistralai.chat"), "Chat", "stream_async", "chat", True, True),
    (
        ("mistralai.client.embeddings", "mistralai.embeddings"),
        "Embeddings",
        "create",
        "embeddings",
        False,
        False,
    ),
    (
        ("mistralai.client.embeddings", "mistralai.embeddings"),
        "Embeddings",
        "create_async",
        "embeddings",
        True,
        False,
    ),
)
_SDK_SPAN_HOOK = ("mistralai.client._hooks.tracing", "get_traced_request_and_span")

# Mistral finish reasons -> the conventions' ones; others are kept as they are.
_FINISH = {"model_length": "length"}


def _finish(reason: Any) -> str | None:
    return _FINISH.get(reason, str(reason)) if isinstance(reason, str) and reason else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _server(instance: Any, server_url: Any) -> tuple[str | None, int | None]:
    try:
        url = server_url if isinstance(server_url, str) and server_url else None
        if url is None:
            url = instance.sdk_configuration.get_server_details()[0]
        parts = urlsplit(url)
        return parts.hostname or None, parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except Exception:
        return None, None


# -- content (current GenAI conventions: role + parts) -------------------------------------------


def _thinking_text(thinking: Any) -> str:
    if isinstance(thinking, str):
        return thinking
    return "".join(get(t, "text", "") or "" for t in seq(thinking))


def _chunk_part(chunk: Any) -> dict[str, Any]:
    if isinstance(chunk, str):
        return {"type": "text", "content": chunk}
    kind = get(chunk, "type")
    if kind == "text":
        return {"type": "text", "content": get(chunk, "text", "")}
    if kind == "thinking":
        return {"type": "reasoning", "content": _thinking_text(get(chunk, "thinking"))}
    if kind == "image_url":
        image = get(chunk, "image_url")
        url = image if isinstance(image, str) else get(image, "url")
        if isinstance(url, str) and not url.startswith("data:"):
            return {"type": "uri", "modality": "image", "uri": url}
        return {"type": "blob", "modality": "image"}
    if kind == "document_url":
        return {"type": "uri", "modality": "document", "uri": get(chunk, "document_url")}
    if kind == "input_audio":
        return {"type": "blob", "modality": "audio"}
    return {"type": str(kind or "unknown")}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    return [_chunk_part(c) for c in seq(content)]


def _tool_call_part(tc: Any) -> dict[str, Any]:
    fn = get(tc, "function")
    part: dict[str, Any] = {"type": "tool_call"}
    tid = get(tc, "id")
    if isinstance(tid, str) and tid and tid != "null":
        part["id"] = tid
    part["name"] = get(fn, "name")
    part["arguments"] = args_json(jsonable(get(fn, "arguments")))
    return part


def _message(message: Any) -> dict[str, Any]:
    role = get(message, "role", "user")
    if not isinstance(role, str):
        role = "user"
    content = get(message, "content")
    if role == "tool":
        text = content if isinstance(content, str) else jsonable(content)
        part: dict[str, Any] = {
            "type": "tool_call_response",
            "id": get(message, "tool_call_id"),
            "response": text,
        }
        return {"role": "tool", "parts": [part]}
    parts = _content_parts(content)
    parts.extend(_tool_call_part(tc) for tc in seq(get(message, "tool_calls")))
    return {"role": role, "parts": parts}


# -- one traced call -----------------------------------------------------------------------------


class _Call:
    """A span for one call: request attributes at start, response attributes at the end."""

    def __init__(
        self, inst: MistralInstrumentor, instance: Any, kind: str, kwargs: dict[str, Any], stream: bool
    ) -> None:
        self.inst = inst
        self.kind = kind
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        model = get(kwargs, "model")
        host, port = _server(instance, get(kwargs, "server_url"))
        attrs: dict[str, Any] = {"gen_ai.operation.name": kind, "gen_ai.provider.name": PROVIDER}
        if isinstance(model, str) and model:
            attrs["gen_ai.request.model"] = model
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        self._request_attributes(attrs, kwargs, stream)
        name = f"{kind} {model}" if isinstance(model, str) and model else kind
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        # accumulated from stream events
        self.response_id: Any = None
        self.response_model: Any = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def _request_attributes(self, attrs: dict[str, Any], kw: dict[str, Any], stream: bool) -> None:
        if self.kind == "embeddings":
            dims = _int(get(kw, "output_dimension"))
            if dims is not None:
                attrs["gen_ai.embeddings.dimension.count"] = dims
            fmt = get(kw, "encoding_format")
            if isinstance(fmt, str):
                attrs["gen_ai.request.encoding_formats"] = [fmt]
            return
        for key, attr in (
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("temperature", "gen_ai.request.temperature"),
            ("top_p", "gen_ai.request.top_p"),
            ("top_k", "gen_ai.request.top_k"),
            ("random_seed", "gen_ai.request.seed"),
            ("presence_penalty", "gen_ai.request.presence_penalty"),
            ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ):
            value = get(kw, key)
            if _number(value):
                attrs[attr] = value
        stop = get(kw, "stop")
        if isinstance(stop, str):
            attrs["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list | tuple) and stop:
            attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        n = _int(get(kw, "n"))
        if n is not None and n != 1:
            attrs["gen_ai.request.choice.count"] = n
        fmt = get(get(kw, "response_format"), "type")
        if fmt in ("json_object", "json_schema"):
            attrs["gen_ai.output.type"] = "json"
        if stream:
            attrs["gen_ai.request.stream"] = True
        if not self.capture:
            return
        messages = [_message(m) for m in seq(get(kw, "messages"))]
        if messages:
            attrs["gen_ai.input.messages"] = self._json(messages)
        tools = seq(get(kw, "tools"))
        if tools:
            attrs["gen_ai.tool.definitions"] = self._json(jsonable(list(tools)))

    def _json(self, value: Any) -> str:
        return capped_json(value, self.inst.max_content_bytes)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        inp = _int(get(usage, "prompt_tokens"))
        out = _int(get(usage, "completion_tokens"))
        if inp is not None:
            self.input_tokens = inp
            self.span.set_attribute("gen_ai.usage.input_tokens", inp)
        if out is not None and self.kind != "embeddings":
            self.output_tokens = out
            self.span.set_attribute("gen_ai.usage.output_tokens", out)

    def _ids(self, rid: Any, model: Any) -> None:
        if isinstance(rid, str) and rid:
            self.span.set_attribute("gen_ai.response.id", rid)
        if isinstance(model, str) and model:
            self.span.set_attribute("gen_ai.response.model", model)
            self.metric_attrs["gen_ai.response.model"] = model

    def _output(self, messages: list[dict[str, Any]], reasons: list[str]) -> None:
        if reasons:
            self.span.set_attribute("gen_ai.response.finish_reasons", reasons)
        if self.capture and messages:
            self.span.set_attribute("gen_ai.output.messages", self._json(messages))

    def response(self, result: Any) -> None:
        """Attributes from a non-streamed response."""
        try:
            self._ids(get(result, "id"), get(result, "model"))
            self._usage(get(result, "usage"))
            if self.kind == "embeddings":
                return
            messages, reasons = [], []
            for choice in seq(get(result, "choices")):
                finish = _finish(get(choice, "finish_reason"))
                if finish:
                    reasons.append(finish)
                message = get(choice, "message")
                out: dict[str, Any] = (
                    _message(message) if message is not None else {"role": "assistant", "parts": []}
                )
                out["role"] = "assistant"
                out["finish_reason"] = finish
                messages.append(out)
            self._output(messages, reasons)
        except Exception:  # telemetry must never break the call
            pass

    def chunk(self, event: Any) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.monotonic() - self.started
        try:
            data = get(event, "data", event)
            self.response_id = get(data, "id") or self.response_id
            self.response_model = get(data, "model") or self.response_model
            if get(data, "usage") is not None:
                self.usage = get(data, "usage")
            for choice in seq(get(data, "choices")):
                slot = self.choices.setdefault(
                    get(choice, "index", 0) or 0, {"text": [], "reasoning": [], "tools": {}, "finish": None}
                )
                finish = get(choice, "finish_reason")
                if isinstance(finish, str) and finish:
                    slot["finish"] = finish
                delta = get(choice, "delta")
                content = get(delta, "content")
                if isinstance(content, str):
                    slot["text"].append(content)
                else:
                    for piece in seq(content):
                        part = _chunk_part(piece)
                        if part["type"] == "text":
                            slot["text"].append(part["content"])
                        elif part["type"] == "reasoning":
                            slot["reasoning"].append(part["content"])
                for tc in seq(get(delta, "tool_calls")):
                    index = get(tc, "index", 0) or 0
                    fn = get(tc, "function")
                    tool = slot["tools"].setdefault(index, {"id": None, "name": None, "arguments": []})
                    tid = get(tc, "id")
                    if isinstance(tid, str) and tid and tid != "null":
                        tool["id"] = tid
                    if get(fn, "name"):
                        tool["name"] = get(fn, "name")
                    args = get(fn, "arguments")
                    if args is not None:
                        tool["arguments"].append(args)
        except Exception:
            pass

    def _stream_results(self) -> None:
        if self.first_chunk is not None:
            self.span.set_attribute(TTFC, self.first_chunk)
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_chunk)
        self._ids(self.response_id, self.response_model)
        self._usage(self.usage)
        messages, reasons = [], []
        for index in sorted(self.choices):
            slot = self.choices[index]
            finish = _finish(slot["finish"])
            if finish:
                reasons.append(finish)
            parts: list[dict[str, Any]] = []
            if slot["reasoning"]:
                parts.append({"type": "reasoning", "content": "".join(slot["reasoning"])})
            text = "".join(slot["text"])
            if text:
                parts.append({"type": "text", "content": text})
            for i in sorted(slot["tools"]):
                tool = slot["tools"][i]
                pieces = tool["arguments"]
                if all(isinstance(p, str) for p in pieces):
                    arguments = args_json("".join(pieces))
                else:
                    arguments = jsonable(pieces[-1])
                part = {"type": "tool_call", "name": tool["name"], "arguments": arguments}
                if tool["id"]:
                    part = {
                        "type": "tool_call",
                        "id": tool["id"],
                        "name": tool["name"],
                        "arguments": arguments,
                    }
                parts.append(part)
            messages.append({"role": "assistant", "parts": parts, "finish_reason": finish})
        self._output(messages, reasons)

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


def _import_first(names: tuple[str, ...], cls_name: str) -> Any:
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        cls = getattr(module, cls_name, None)
        if cls is not None:
            return cls
    return None


class MistralInstrumentor(GenAIInstrumentor):
    name = "mistralai"
    packages = ("mistralai >= 1.0",)

    def patch(self) -> None:
        self.metrics = GenAIMetrics(self.meter)
        self._patched: list[tuple[Any, str]] = []
        for modules, cls_name, method, kind, is_async, streams in _TARGETS:
            cls = _import_first(modules, cls_name)
            if cls is None or method not in cls.__dict__:
                continue
            wrapper = self._async_wrapper(kind, streams) if is_async else self._sync_wrapper(kind, streams)
            wrapt.wrap_function_wrapper(cls, method, wrapper)
            self._patched.append((cls, method))
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

    def _start(self, instance: Any, kind: str, kwargs: dict[str, Any], stream: bool) -> _Call | None:
        if not is_instrumentation_enabled() or otel_context.get_value(_CALL_KEY) or inside_routed_call():
            return None
        try:
            return _Call(self, instance, kind, kwargs, stream)
        except Exception:
            return None

    @staticmethod
    def _attach(call: _Call) -> Token[otel_context.Context]:
        return otel_context.attach(
            otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(call.span))
        )

    def _sync_wrapper(self, kind: str, streams: bool) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kind, kwargs, streams)
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
            if streams and hasattr(result, "__next__"):
                return StreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper

    def _async_wrapper(self, kind: str, streams: bool) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kind, kwargs, streams)
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
            if streams and hasattr(result, "__anext__"):
                return AsyncStreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper


def _no_sdk_span_inside_ours(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """mistralai's own call span is not started for a call this instrumentor already traces; the
    request carries our span's context instead."""
    if otel_context.get_value(_CALL_KEY) or inside_routed_call():
        request = kwargs.get("request", args[4] if len(args) > 4 else None)
        span = kwargs.get("span", args[2] if len(args) > 2 else None)
        with contextlib.suppress(Exception):
            propagate.inject(request.headers)  # type: ignore[union-attr]
        return request, span
    return wrapped(*args, **kwargs)
