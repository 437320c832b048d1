"""OpenAI client instrumentation: chat completions, embeddings and the Responses API, sync and
async, streaming included, as OpenTelemetry GenAI client spans (current conventions).

Importing this module does not import openai (`opentelemetry-instrument` loads every entry
point at start-up); patch() does, once BaseInstrumentor has checked that openai is installed.
The objects the application receives are the ones openai returns; streams are
wrapped in a transparent proxy that ends the span exactly once, however the stream ends.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind

from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._common import AsyncStreamProxy as _AsyncStreamProxy
from tracehouse.instrumentors._common import GenAIMetrics, capped_json, inside_routed_call, record_error
from tracehouse.instrumentors._common import StreamProxy as _StreamProxy
from tracehouse.instrumentors._common import args_json as _args_json
from tracehouse.instrumentors._common import get as _get
from tracehouse.instrumentors._common import given as _given
from tracehouse.instrumentors._common import jsonable as _jsonable
from tracehouse.instrumentors._common import seq as _seq

_CALL_KEY = otel_context.create_key("tracehouse-openai-call")

# (module, class, method, kind)
_TARGETS = (
    ("openai.resources.chat.completions.completions", "Completions", "create", "chat"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", "chat"),
    ("openai.resources.embeddings", "Embeddings", "create", "embeddings"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", "embeddings"),
    ("openai.resources.responses.responses", "Responses", "create", "responses"),
    ("openai.resources.responses.responses", "AsyncResponses", "create", "responses"),
    # Structured-output helpers post directly rather than through create().
    ("openai.resources.chat.completions.completions", "Completions", "parse", "chat"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", "chat"),
    ("openai.resources.responses.responses", "Responses", "parse", "responses"),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", "responses"),
)

# Host suffix -> gen_ai.provider.name (well-known values of the conventions where one exists).
_PROVIDERS = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
)
_OLLAMA_PORT = 11434

TTFC = "tracehouse.response.time_to_first_chunk"

_NUMERIC_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
)


# -- small helpers -----------------------------------------------------------------------------


_servers: weakref.WeakKeyDictionary[Any, tuple[Any, tuple[str | None, int | None, str]]] = (
    weakref.WeakKeyDictionary()
)


def _server(instance: Any) -> tuple[str | None, int | None, str]:
    """(host, port, provider) of the client behind a resource, cached per client and base URL."""
    client = getattr(instance, "_client", None)
    url = getattr(client, "base_url", None)
    try:
        cached = _servers.get(client)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached[0] is url:
        return cached[1]
    found = _find_server(client, url)
    with contextlib.suppress(TypeError):
        _servers[client] = (url, found)
    return found


def _find_server(client: Any, url: Any) -> tuple[str | None, int | None, str]:
    host = port = None
    try:
        host = url.host or None
        port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    except Exception:
        pass
    provider = "openai"
    if "Azure" in type(client).__name__:  # AzureOpenAI and AsyncAzureOpenAI
        provider = "azure.ai.openai"
    elif host:
        lowered = host.lower()
        for suffix, name in _PROVIDERS:
            if lowered == suffix.lstrip(".") or lowered.endswith(
                suffix if suffix.startswith(".") else "." + suffix
            ):
                provider = name
                break
        else:
            if port == _OLLAMA_PORT:
                provider = "ollama"
    return host, port, provider


def _already_traced(model: Any) -> bool:
    """True inside a call we are already tracing, or inside another instrumentor's GenAI client
    span for this same OpenAI call (it wrapped the method outside ours), or inside a routed call
    (litellm) that is this call's span."""
    if otel_context.get_value(_CALL_KEY) or inside_routed_call():
        return True
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) != SpanKind.CLIENT:
        return False
    attrs = getattr(span, "attributes", None) or {}
    if "gen_ai.operation.name" not in attrs:
        return False
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", "") or ""
    if "openai" not in scope.lower():
        return False
    other = attrs.get("gen_ai.request.model")
    return other is None or not _given(model) or other == model


# -- message conversion (current GenAI conventions: role + parts) --------------------------------


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content if isinstance(content, list | tuple) else [content]:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
            continue
        kind = _get(part, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "content": _get(part, "text", "")})
        elif kind == "refusal":
            parts.append({"type": "text", "content": _get(part, "refusal", "")})
        elif kind == "image_url":
            url = _get(_get(part, "image_url"), "url")
            parts.append({"type": "uri", "modality": "image", "uri": url} if url else {"type": "image"})
        elif kind == "input_image" and _get(part, "image_url"):
            parts.append({"type": "uri", "modality": "image", "uri": _get(part, "image_url")})
        else:
            parts.append({"type": str(kind or "unknown")})
    return parts


def _tool_call_part(call: Any) -> dict[str, Any]:
    function = _get(call, "function")
    return {
        "type": "tool_call",
        "id": _get(call, "id"),
        "name": _get(function, "name"),
        "arguments": _args_json(_get(function, "arguments")),
    }


def _chat_input(messages: Any) -> list[dict[str, Any]]:
    out = []
    for message in _seq(messages):
        if type(message) is dict:  # the common case, read directly; anything else through _get
            role = message.get("role")
            if type(role) is not str:
                role = _get(message, "role", "user")
            content = message.get("content")
            if type(content) is str and role != "tool":
                parts = [{"type": "text", "content": content}]
                if message.get("tool_calls"):
                    for call in _get(message, "tool_calls") or []:
                        parts.append(_tool_call_part(call))
                out.append({"role": role, "parts": parts})
                continue
        else:
            role = _get(message, "role", "user")
        if role == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": _get(message, "tool_call_id"),
                    "response": _text_of(_get(message, "content")),
                }
            ]
        else:
            parts = _content_parts(_get(message, "content"))
            for call in _get(message, "tool_calls") or []:
                parts.append(_tool_call_part(call))
        out.append({"role": role, "parts": parts})
    return out


def _text_of(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content
    parts = _content_parts(content)
    if all(p.get("type") == "text" for p in parts):
        return "".join(p["content"] or "" for p in parts)
    return _jsonable(content)


def _responses_input(
    instructions: Any, items: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    system = [{"type": "text", "content": instructions}] if isinstance(instructions, str) else None
    if items is None:
        return [], system
    if isinstance(items, str):
        return [{"role": "user", "parts": [{"type": "text", "content": items}]}], system
    out: list[dict[str, Any]] = []
    for item in _seq(items):
        kind = _get(item, "type", "message")
        if kind == "message":
            out.append({"role": _get(item, "role", "user"), "parts": _content_parts(_get(item, "content"))})
        elif kind == "function_call":
            part = {
                "type": "tool_call",
                "id": _get(item, "call_id"),
                "name": _get(item, "name"),
                "arguments": _args_json(_get(item, "arguments")),
            }
            if out and out[-1]["role"] == "assistant":
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "assistant", "parts": [part]})
        elif kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": _get(item, "call_id"),
                            "response": _get(item, "output"),
                        }
                    ],
                }
            )
        else:
            out.append({"role": "user", "parts": [{"type": str(kind)}]})
    return out, system


def _responses_output(response: Any) -> tuple[list[dict[str, Any]], str]:
    parts: list[dict[str, Any]] = []
    tool_calls = False
    for item in _get(response, "output") or []:
        kind = _get(item, "type")
        if kind == "message":
            parts.extend(_content_parts(_get(item, "content")))
        elif kind == "function_call":
            tool_calls = True
            parts.append(
                {
                    "type": "tool_call",
                    "id": _get(item, "call_id"),
                    "name": _get(item, "name"),
                    "arguments": _args_json(_get(item, "arguments")),
                }
            )
        elif kind == "reasoning":
            summary = "".join(_get(s, "text", "") for s in _get(item, "summary") or [])
            if summary:
                parts.append({"type": "reasoning", "content": summary})
        elif kind:
            parts.append({"type": str(kind)})
    status = _get(response, "status")
    reason = _get(_get(response, "incomplete_details"), "reason")
    if reason == "max_output_tokens":
        finish = "length"
    elif reason:
        finish = str(reason)
    elif status == "failed":
        finish = "error"
    elif tool_calls:
        finish = "tool_calls"
    else:
        finish = "stop"
    return [{"role": "assistant", "parts": parts, "finish_reason": finish}], finish


# -- one traced call -----------------------------------------------------------------------------


class _Call:
    """A span for one API call: request attributes at start, response attributes at the end."""

    def __init__(self, inst: OpenAIInstrumentor, kind: str, instance: Any, kwargs: dict[str, Any]) -> None:
        self.inst = inst
        self.kind = kind
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        operation = "embeddings" if kind == "embeddings" else "chat"
        model = _get(kwargs, "model")
        host, port, provider = _server(instance)
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider}
        if isinstance(model, str):
            attrs["gen_ai.request.model"] = model
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._request_attributes(attrs, kwargs)
        name = f"{operation} {model}" if isinstance(model, str) and model else operation
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        # accumulated from stream chunks
        self.choices: dict[int, dict[str, Any]] = {}
        self.stream_id = self.stream_model = self.stream_tier = None
        self.stream_usage: Any = None
        self.injected_usage = False  # set when we added stream_options.include_usage
        # Response attributes, set on the span in one call when it ends.
        self.result_attrs: dict[str, Any] = {}

    def _set(self, key: str, value: Any) -> None:
        self.result_attrs[key] = value

    def _request_attributes(self, attrs: dict[str, Any], kw: dict[str, Any]) -> None:
        # kw is the call's kwargs dict. A NotGiven / Omit sentinel fails every isinstance test
        # below as None does, so plain lookups read what _get() would.
        for key, attr in _NUMERIC_PARAMS:
            value = kw.get(key)
            if value is not None and isinstance(value, int | float) and not isinstance(value, bool):
                attrs[attr] = value
        if self.kind == "embeddings":
            fmt = _get(kw, "encoding_format")
            if isinstance(fmt, str):
                attrs["gen_ai.request.encoding_formats"] = [fmt]
            dims = _get(kw, "dimensions")
            if isinstance(dims, int):
                attrs["gen_ai.embeddings.dimension.count"] = dims
            return
        max_tokens = kw.get("max_output_tokens") if self.kind == "responses" else None
        if self.kind == "chat":
            max_tokens = kw.get("max_completion_tokens")
            if max_tokens is None or not _given(max_tokens):
                max_tokens = kw.get("max_tokens")
        if isinstance(max_tokens, int):
            attrs["gen_ai.request.max_tokens"] = max_tokens
        stop = kw.get("stop")
        if stop is None:
            pass
        elif isinstance(stop, str):
            attrs["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list | tuple) and stop:
            attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        n = kw.get("n")
        if isinstance(n, int) and n != 1:
            attrs["gen_ai.request.choice.count"] = n
        if kw.get("stream") is True:
            attrs["gen_ai.request.stream"] = True
        tier = kw.get("service_tier")
        if isinstance(tier, str) and tier:
            attrs["openai.request.service_tier"] = tier
        if not self.capture:
            return
        if self.kind == "chat":
            messages = _chat_input(kw.get("messages"))
            system = None
        else:
            messages, system = _responses_input(_get(kw, "instructions"), _get(kw, "input"))
        if messages:
            attrs["gen_ai.input.messages"] = self._json(messages)
        if system:
            attrs["gen_ai.system_instructions"] = self._json(system)
        tools = _seq(kw.get("tools"))
        if tools:
            attrs["gen_ai.tool.definitions"] = self._json(_jsonable(list(tools)))

    def _json(self, value: Any) -> str:
        return capped_json(value, self.inst.max_content_bytes)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        # Chat names first, Responses names only when those are missing: looking up an attribute
        # a pydantic model does not have is slow.
        set_ = self.result_attrs
        inp = _get(usage, "prompt_tokens")
        if inp is None:
            inp = _get(usage, "input_tokens")
        out = _get(usage, "completion_tokens")
        if out is None:
            out = _get(usage, "output_tokens")
        if isinstance(inp, int):
            self.input_tokens = inp
            set_["gen_ai.usage.input_tokens"] = inp
        if isinstance(out, int) and self.kind != "embeddings":
            self.output_tokens = out
            set_["gen_ai.usage.output_tokens"] = out
        in_details = _get(usage, "prompt_tokens_details")
        if in_details is None:
            in_details = _get(usage, "input_tokens_details")
        cached = _get(in_details, "cached_tokens")
        if isinstance(cached, int):
            set_["gen_ai.usage.cache_read.input_tokens"] = cached
        out_details = _get(usage, "completion_tokens_details")
        if out_details is None:
            out_details = _get(usage, "output_tokens_details")
        reasoning = _get(out_details, "reasoning_tokens")
        if isinstance(reasoning, int):
            set_["gen_ai.usage.reasoning.output_tokens"] = reasoning

    def _ids(self, rid: Any, model: Any, tier: Any = None) -> None:
        if isinstance(rid, str) and rid:
            self._set("gen_ai.response.id", rid)
        # The tier OpenAI billed the call at (it answers `auto` with the one it used).
        if isinstance(tier, str) and tier:
            self._set("openai.response.service_tier", tier)
        if isinstance(model, str) and model:
            self._set("gen_ai.response.model", model)
            self.metric_attrs["gen_ai.response.model"] = model

    def response(self, result: Any) -> None:
        """Attributes from a non-streamed result (or the final Response of a Responses stream)."""
        try:
            if self.kind == "embeddings":
                self._ids(None, _get(result, "model"))
                self._usage(_get(result, "usage"))
                return
            if self.kind == "responses":
                self._ids(_get(result, "id"), _get(result, "model"), _get(result, "service_tier"))
                self._usage(_get(result, "usage"))
                messages, finish = _responses_output(result)
                self._set("gen_ai.response.finish_reasons", [finish])
                if self.capture:
                    self._set("gen_ai.output.messages", self._json(messages))
                return
            choices = _get(result, "choices")
            if choices is None:  # e.g. with_raw_response: not parsed here, never parsed for it
                return
            self._ids(_get(result, "id"), _get(result, "model"), _get(result, "service_tier"))
            self._usage(_get(result, "usage"))
            capture = self.capture
            reasons = []
            out = []
            for choice in choices:
                finish = _get(choice, "finish_reason")
                if finish:
                    reasons.append(str(finish))
                if not capture:
                    continue
                message = _get(choice, "message")
                content = _get(message, "content")
                parts = [{"type": "text", "content": content}] if type(content) is str else _content_parts(content)
                refusal = _get(message, "refusal")
                if refusal:
                    parts.append({"type": "text", "content": refusal})
                tool_calls = _get(message, "tool_calls")
                if tool_calls:
                    parts.extend(_tool_call_part(c) for c in tool_calls)
                out.append(
                    {"role": _get(message, "role", "assistant"), "parts": parts, "finish_reason": finish}
                )
            if reasons:
                self._set("gen_ai.response.finish_reasons", reasons)
            if capture:
                self._set("gen_ai.output.messages", self._json(out))
        except Exception:  # telemetry must never break the call
            pass

    def chunk(self, chunk: Any) -> bool | None:
        """Accumulate a streamed chunk; True for the usage chunk we injected (hidden)."""
        if self.first_chunk is None:
            self.first_chunk = time.monotonic() - self.started
        if self.injected_usage and not _get(chunk, "choices") and _get(chunk, "usage") is not None:
            self.stream_usage = _get(chunk, "usage")
            return True
        try:
            if self.kind == "responses":
                if _get(chunk, "type") in ("response.completed", "response.incomplete", "response.failed"):
                    self.final_response = _get(chunk, "response")
                elif _get(chunk, "type") == "response.created":
                    created = _get(chunk, "response")
                    self._ids(_get(created, "id"), _get(created, "model"))
                return None
            if not self.stream_id:
                self.stream_id = _get(chunk, "id")
            if not self.stream_model:
                self.stream_model = _get(chunk, "model")
            if not self.stream_tier:
                self.stream_tier = _get(chunk, "service_tier")
            if isinstance(chunk, dict):
                self._dict_chunk(chunk)
                return None
            # The SDK's chunk objects, with plain attribute reads: a NotGiven / Omit sentinel read
            # where _get() would have read None is falsy and fails the same tests.
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.stream_usage = usage
            for choice in getattr(chunk, "choices", None) or ():
                index = getattr(choice, "index", 0)
                if type(index) is not int:
                    index = _get(choice, "index", 0)
                acc = self.choices.get(index)
                if acc is None:
                    acc = self.choices[index] = {"role": None, "text": [], "tools": {}, "finish": None}
                delta = getattr(choice, "delta", None)
                if delta is not None:
                    if not acc["role"]:
                        acc["role"] = _get(delta, "role")
                    content = getattr(delta, "content", None)
                    if isinstance(content, str):
                        acc["text"].append(content)
                    tool_calls = getattr(delta, "tool_calls", None)
                    if tool_calls:
                        self._tool_call_deltas(acc, tool_calls)
                finish = getattr(choice, "finish_reason", None)
                if finish:
                    acc["finish"] = finish
        except Exception:
            pass
        return None

    def _dict_chunk(self, chunk: dict[str, Any]) -> None:
        usage = _get(chunk, "usage")
        if usage is not None:
            self.stream_usage = usage
        for choice in _get(chunk, "choices") or ():
            index = _get(choice, "index", 0)
            acc = self.choices.get(index)
            if acc is None:
                acc = self.choices[index] = {"role": None, "text": [], "tools": {}, "finish": None}
            delta = _get(choice, "delta")
            if not acc["role"]:
                acc["role"] = _get(delta, "role")
            content = _get(delta, "content")
            if isinstance(content, str):
                acc["text"].append(content)
            tool_calls = _get(delta, "tool_calls")
            if tool_calls:
                self._tool_call_deltas(acc, tool_calls)
            finish = _get(choice, "finish_reason")
            if finish:
                acc["finish"] = finish

    @staticmethod
    def _tool_call_deltas(acc: dict[str, Any], tool_calls: Any) -> None:
        for call in tool_calls:
            slot = acc["tools"].setdefault(_get(call, "index", 0), {"id": None, "name": None, "args": []})
            slot["id"] = slot["id"] or _get(call, "id")
            function = _get(call, "function")
            slot["name"] = slot["name"] or _get(function, "name")
            if isinstance(_get(function, "arguments"), str):
                slot["args"].append(_get(function, "arguments"))

    def _stream_results(self) -> None:
        if self.first_chunk is not None:
            self._set(TTFC, self.first_chunk)
            self._set("gen_ai.response.time_to_first_chunk", self.first_chunk)
        if self.kind == "responses":
            final = getattr(self, "final_response", None)
            if final is not None:
                self.response(final)
            return
        self._ids(self.stream_id, self.stream_model, self.stream_tier)
        self._usage(self.stream_usage)
        ordered = [self.choices[i] for i in sorted(self.choices)]
        reasons = [c["finish"] for c in ordered if c["finish"]]
        if reasons:
            self._set("gen_ai.response.finish_reasons", reasons)
        if self.capture and ordered:
            out = []
            for acc in ordered:
                parts: list[dict[str, Any]] = []
                if acc["text"]:
                    parts.append({"type": "text", "content": "".join(acc["text"])})
                for i in sorted(acc["tools"]):
                    slot = acc["tools"][i]
                    parts.append(
                        {
                            "type": "tool_call",
                            "id": slot["id"],
                            "name": slot["name"],
                            "arguments": _args_json("".join(slot["args"])),
                        }
                    )
                out.append(
                    {"role": acc["role"] or "assistant", "parts": parts, "finish_reason": acc["finish"]}
                )
            self._set("gen_ai.output.messages", self._json(out))

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
            if self.result_attrs:
                self.span.set_attributes(self.result_attrs)
            self.span.end()
            self.inst.metrics.record(
                self.metric_attrs, time.monotonic() - self.started, self.input_tokens, self.output_tokens
            )


# -- the instrumentor ----------------------------------------------------------------------------


class OpenAIInstrumentor(GenAIInstrumentor):
    name = "openai"
    packages = ("openai >= 1.0",)

    def patch(self) -> None:
        from openai import AsyncStream, Stream

        self.metrics = GenAIMetrics(self.meter)
        for module, cls, method, kind in _TARGETS:
            is_async = cls.startswith("Async")
            wrapper = self._async_wrapper(kind, AsyncStream) if is_async else self._sync_wrapper(kind, Stream)
            wrapt.wrap_function_wrapper(module, f"{cls}.{method}", wrapper)

    def unpatch(self) -> None:
        import importlib

        for module, cls, method, _kind in _TARGETS:
            unwrap(getattr(importlib.import_module(module), cls), method)

    def _start(self, kind: str, instance: Any, kwargs: dict[str, Any]) -> _Call | None:
        if not is_instrumentation_enabled() or _already_traced(kwargs.get("model")):
            return None
        try:
            return _Call(self, kind, instance, kwargs)
        except Exception:
            return None

    def _with_stream_usage(self, call: _Call, kwargs: dict[str, Any]) -> dict[str, Any]:
        """With TRACEHOUSE_STREAM_USAGE=inject, ask a chat stream for its usage chunk."""
        if not self.inject_stream_usage or call.kind != "chat" or kwargs.get("stream") is not True:
            return kwargs
        options = _get(kwargs, "stream_options")  # None also for the SDK's NotGiven / Omit
        if options is not None and not isinstance(options, dict):
            return kwargs  # a type we do not know how to extend: leave the request alone
        if options and options.get("include_usage"):
            return kwargs  # the application asked for it: it sees the chunk
        call.injected_usage = True
        return {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}

    def _sync_wrapper(self, kind: str, stream_cls: type) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(kind, instance, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            kwargs = self._with_stream_usage(call, kwargs)
            token = otel_context.attach(
                otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(call.span))
            )
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if isinstance(result, stream_cls):
                return _StreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper

    def _async_wrapper(self, kind: str, stream_cls: type) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(kind, instance, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            kwargs = self._with_stream_usage(call, kwargs)
            token = otel_context.attach(
                otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(call.span))
            )
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if isinstance(result, stream_cls):
                return _AsyncStreamProxy(result, call)
            call.response(result)
            call.end()
            return result

        return wrapper
