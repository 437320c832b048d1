"""Ollama client instrumentation: `chat`, `generate`, `embed` and the deprecated `embeddings`
of `ollama.Client` and `ollama.AsyncClient` (and the module-level `ollama.chat` & co., which are
methods of a default client bound at import), as OpenTelemetry GenAI client spans (current
conventions) and GenAI client metrics.

Importing this module does not import ollama; patch() does. The objects the application
receives are the ones ollama returns; with `stream=True` ollama returns a (async) generator of
chunks that sends the request on its first step: it is wrapped in a transparent proxy that ends
the span exactly once, however iteration ends (exhausted, break then close / garbage collection,
an error, `aclose()`).

Usage: `prompt_eval_count` is `gen_ai.usage.input_tokens`, `eval_count` is
`gen_ai.usage.output_tokens`; `done_reason` is the finish reason. `generate` is the
`text_completion` operation.
"""

from __future__ import annotations

import importlib
import inspect
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
    capped_json,
    get,
    inside_routed_call,
    jsonable,
    record_error,
    seq,
)

_CALL_KEY = otel_context.create_key("tracehouse-ollama-call")

# method -> GenAI operation name
_METHODS = {"chat": "chat", "generate": "text_completion", "embed": "embeddings", "embeddings": "embeddings"}
_CLASSES = ("Client", "AsyncClient")
PROVIDER = "ollama"
TTFC = "tracehouse.response.time_to_first_chunk"

# Ollama `options` -> request attributes
_OPTIONS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("num_predict", "gen_ai.request.max_tokens"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _server(instance: Any) -> tuple[str | None, int | None]:
    try:
        url = instance._client.base_url
        return url.host or None, url.port or {"https": 443, "http": 80}.get(url.scheme)
    except Exception:
        return None, None


# -- content (current GenAI conventions: role + parts) -------------------------------------------


def _tool_call_parts(tool_calls: Any) -> list[dict[str, Any]]:
    parts = []
    for tc in seq(tool_calls):
        fn = get(tc, "function")
        part: dict[str, Any] = {"type": "tool_call", "name": get(fn, "name")}
        tid = get(tc, "id")
        if tid:
            part["id"] = tid
        part["arguments"] = jsonable(get(fn, "arguments"))
        parts.append(part)
    return parts


def _message_parts(message: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    thinking = get(message, "thinking")
    if isinstance(thinking, str) and thinking:
        parts.append({"type": "reasoning", "content": thinking})
    content = get(message, "content")
    role = get(message, "role")
    if isinstance(content, str) and (content or not get(message, "tool_calls")):
        if role == "tool":
            part: dict[str, Any] = {"type": "tool_call_response", "response": content}
            if get(message, "tool_name"):
                part["name"] = get(message, "tool_name")
            parts.append(part)
        else:
            parts.append({"type": "text", "content": content})
    for _ in seq(get(message, "images")):
        parts.append({"type": "blob", "modality": "image"})
    parts.extend(_tool_call_parts(get(message, "tool_calls")))
    return parts


def _tool_definitions(tools: Any) -> list[Any]:
    out = []
    for tool in seq(tools):
        if callable(tool) and not hasattr(tool, "model_dump"):
            # a Python function: ollama derives the schema from its docstring
            out.append({"type": "function", "function": {"name": getattr(tool, "__name__", str(tool))}})
        else:
            out.append(jsonable(tool))
    return out


# -- one traced call -----------------------------------------------------------------------------


class _Call:
    """A span for one call: request attributes at start, response attributes at the end."""

    def __init__(
        self, inst: OllamaInstrumentor, instance: Any, method: str, kwargs: dict[str, Any], stream: bool
    ) -> None:
        self.inst = inst
        self.method = method
        self.operation = _METHODS[method]
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        model = get(kwargs, "model")
        host, port = _server(instance)
        attrs: dict[str, Any] = {"gen_ai.operation.name": self.operation, "gen_ai.provider.name": PROVIDER}
        if isinstance(model, str) and model:
            attrs["gen_ai.request.model"] = model
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        self._request_attributes(attrs, kwargs, stream)
        name = f"{self.operation} {model}" if isinstance(model, str) and model else self.operation
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        # accumulated from stream chunks
        self.model: Any = None
        self.done_reason: Any = None
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.last: Any = None

    def _request_attributes(self, attrs: dict[str, Any], kwargs: dict[str, Any], stream: bool) -> None:
        options = get(kwargs, "options")
        for key, attr in _OPTIONS:
            value = get(options, key)
            if _number(value):
                attrs[attr] = value
        stop = get(options, "stop")
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list | tuple) and stop:
            attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        if self.operation == "embeddings":
            dims = _int(get(kwargs, "dimensions"))
            if dims is not None:
                attrs["gen_ai.embeddings.dimension.count"] = dims
            return
        fmt = get(kwargs, "format")
        if fmt == "json" or isinstance(fmt, dict):
            attrs["gen_ai.output.type"] = "json"
        if stream:
            attrs["gen_ai.request.stream"] = True
        if not self.capture:
            return
        system: list[dict[str, Any]] = []
        if self.method == "chat":
            messages = []
            for message in seq(get(kwargs, "messages")):
                parts = _message_parts(message)
                role = get(message, "role", "user")
                messages.append({"role": role, "parts": parts})
            if messages:
                attrs["gen_ai.input.messages"] = self._json(messages)
            tools = _tool_definitions(get(kwargs, "tools"))
            if tools:
                attrs["gen_ai.tool.definitions"] = self._json(tools)
        else:
            prompt = get(kwargs, "prompt")
            if isinstance(prompt, str) and prompt:
                prompt_parts: list[dict[str, Any]] = [{"type": "text", "content": prompt}]
                prompt_parts.extend({"type": "blob", "modality": "image"} for _ in seq(get(kwargs, "images")))
                attrs["gen_ai.input.messages"] = self._json([{"role": "user", "parts": prompt_parts}])
            instructions = get(kwargs, "system")
            if isinstance(instructions, str) and instructions:
                system.append({"type": "text", "content": instructions})
        if system:
            attrs["gen_ai.system_instructions"] = self._json(system)

    def _json(self, value: Any) -> str:
        return capped_json(value, self.inst.max_content_bytes)

    # -- results ---------------------------------------------------------------------------------

    def _common(self, result: Any) -> None:
        span = self.span
        model = get(result, "model")
        if isinstance(model, str) and model:
            span.set_attribute("gen_ai.response.model", model)
            self.metric_attrs["gen_ai.response.model"] = model
        inp = _int(get(result, "prompt_eval_count"))
        if inp is not None:
            self.input_tokens = inp
            span.set_attribute("gen_ai.usage.input_tokens", inp)
        out = _int(get(result, "eval_count"))
        if out is not None and self.operation != "embeddings":
            self.output_tokens = out
            span.set_attribute("gen_ai.usage.output_tokens", out)

    def _output(self, parts: list[dict[str, Any]], reason: Any) -> None:
        finish = str(reason) if reason else None
        if finish:
            self.span.set_attribute("gen_ai.response.finish_reasons", [finish])
        if self.capture and (parts or finish):
            message = {"role": "assistant", "parts": parts, "finish_reason": finish}
            self.span.set_attribute("gen_ai.output.messages", self._json([message]))

    def response(self, result: Any) -> None:
        """Attributes from a non-streamed response."""
        try:
            self._common(result)
            if self.operation == "embeddings":
                return
            if self.method == "chat":
                parts = _message_parts(get(result, "message"))
            else:
                parts = []
                thinking = get(result, "thinking")
                if isinstance(thinking, str) and thinking:
                    parts.append({"type": "reasoning", "content": thinking})
                text = get(result, "response")
                if isinstance(text, str):
                    parts.append({"type": "text", "content": text})
            self._output(parts, get(result, "done_reason"))
        except Exception:  # telemetry must never break the call
            pass

    def chunk(self, chunk: Any) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.monotonic() - self.started
        try:
            self.last = chunk
            if self.method == "chat":
                message = get(chunk, "message")
                content, thinking = get(message, "content"), get(message, "thinking")
                self.tool_calls.extend(seq(get(message, "tool_calls")))
            else:
                content, thinking = get(chunk, "response"), get(chunk, "thinking")
            if isinstance(content, str) and content:
                self.text.append(content)
            if isinstance(thinking, str) and thinking:
                self.thinking.append(thinking)
        except Exception:
            pass

    def _stream_results(self) -> None:
        if self.first_chunk is not None:
            self.span.set_attribute(TTFC, self.first_chunk)
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_chunk)
        if self.last is None:
            return
        self._common(self.last)  # the final chunk (done=True) carries the counts
        parts: list[dict[str, Any]] = []
        if self.thinking:
            parts.append({"type": "reasoning", "content": "".join(self.thinking)})
        if self.text:
            parts.append({"type": "text", "content": "".join(self.text)})
        parts.extend(_tool_call_parts(self.tool_calls))
        reason = get(self.last, "done_reason") if get(self.last, "done") else None
        if parts or reason:
            self._output(parts, reason)

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


class _GeneratorProxy(StreamProxy):
    """A generator of chunks. Ollama sends the request on the first step, so each step runs with
    the call's span as the current span (an HTTP client span is its child, and propagates it)."""

    def __next__(self) -> Any:
        token = _attach(self._self_call)  # type: ignore[arg-type]
        try:
            return super().__next__()
        finally:
            otel_context.detach(token)


class _AsyncGeneratorProxy(AsyncStreamProxy):
    """An async generator of chunks (see _GeneratorProxy); `aclose()` ends the span too."""

    async def __anext__(self) -> Any:
        token = _attach(self._self_call)  # type: ignore[arg-type]
        try:
            return await super().__anext__()
        finally:
            otel_context.detach(token)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_call.end(streamed=True)


def _attach(call: _Call) -> Token[otel_context.Context]:
    return otel_context.attach(otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(call.span)))


# -- the instrumentor ----------------------------------------------------------------------------


class OllamaInstrumentor(GenAIInstrumentor):
    name = "ollama"
    packages = ("ollama >= 0.4",)

    def patch(self) -> None:
        client_module = importlib.import_module("ollama._client")
        self.metrics = GenAIMetrics(self.meter)
        self._patched: list[tuple[Any, str]] = []
        self._rebound: dict[str, Any] = {}
        for cls_name in _CLASSES:
            cls = getattr(client_module, cls_name, None)
            if cls is None:
                continue
            for method in _METHODS:
                original = cls.__dict__.get(method)
                if original is None:
                    continue
                try:
                    names = [p for p in inspect.signature(original).parameters if p != "self"]
                except (TypeError, ValueError):
                    names = ["model"]
                is_async = inspect.iscoroutinefunction(original)
                wrapper = (
                    self._async_wrapper(method, names) if is_async else self._sync_wrapper(method, names)
                )
                wrapt.wrap_function_wrapper(cls, method, wrapper)
                self._patched.append((cls, method))
        self._rebind_module_functions()

    def _rebind_module_functions(self) -> None:
        """`ollama.chat` & co. were bound to the default client before the class was patched:
        bind them again, through the patched methods."""
        module = importlib.import_module("ollama")
        default = getattr(module, "_client", None)
        if default is None:
            return
        for method in _METHODS:
            current = getattr(module, method, None)
            if getattr(current, "__self__", None) is default and not isinstance(current, wrapt.ObjectProxy):
                self._rebound[method] = current
                setattr(module, method, getattr(default, method))

    def unpatch(self) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []
        module = importlib.import_module("ollama")
        for method, original in getattr(self, "_rebound", {}).items():
            setattr(module, method, original)
        self._rebound = {}

    def _start(self, instance: Any, method: str, kwargs: dict[str, Any]) -> _Call | None:
        if not is_instrumentation_enabled() or otel_context.get_value(_CALL_KEY) or inside_routed_call():
            return None
        try:
            return _Call(self, instance, method, kwargs, kwargs.get("stream") is True)
        except Exception:
            return None

    @staticmethod
    def _params(names: list[str], args: Any, kwargs: Any) -> dict[str, Any]:
        if not args:
            return kwargs
        params = dict(zip(names, args, strict=False))
        params.update(kwargs)
        return params

    def _sync_wrapper(self, method: str, names: list[str]) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, method, self._params(names, args, kwargs))
            if call is None:
                return wrapped(*args, **kwargs)
            token = _attach(call)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if hasattr(result, "__next__") and hasattr(result, "close"):
                return _GeneratorProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper

    def _async_wrapper(self, method: str, names: list[str]) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, method, self._params(names, args, kwargs))
            if call is None:
                return await wrapped(*args, **kwargs)
            token = _attach(call)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if hasattr(result, "__anext__"):
                return _AsyncGeneratorProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper
