"""OpenAI client instrumentation: chat completions, embeddings and the Responses API, sync and
async, streaming included, as OpenTelemetry GenAI client spans (current conventions).

Importing this module does not import openai (`opentelemetry-instrument` loads every entry
point at start-up); patch() does, once BaseInstrumentor has checked that openai is installed.
The objects the application receives are the ones openai returns; streams are
wrapped in a transparent proxy that ends the span exactly once, however the stream ends.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import LLMCall, openai_tools, output_type, starter, traced
from tracehouse.instrumentors._common import args_json as _args_json
from tracehouse.instrumentors._common import get as _get
from tracehouse.instrumentors._common import given as _given
from tracehouse.instrumentors._common import jsonable as _jsonable
from tracehouse.instrumentors._common import seq as _seq

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

# openai.api.type, by the kind of call
_API_TYPES = {"chat": "chat_completions", "responses": "responses"}


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
        finish = "tool_call"
    else:
        finish = "stop"
    return [{"role": "assistant", "parts": parts, "finish_reason": finish}], finish


# -- one traced call -----------------------------------------------------------------------------


class OpenAICall(LLMCall):
    """One chat, Responses or embeddings call: OpenAI's shapes mapped to the call's facts."""

    openai_attributes = True  # openai.*: the OpenAI API's own (not LiteLLM's other providers)

    def __init__(
        self,
        inst: GenAIInstrumentor,
        kind: str,
        kwargs: dict[str, Any],
        model: Any,
        provider: Any,
        host: Any,
        port: Any,
    ) -> None:
        operation = sc.EMBEDDINGS if kind == "embeddings" else sc.CHAT
        super().__init__(inst, operation, model, provider, host, port)
        self.kind = kind
        self.stream_class: Any = None
        # accumulated from stream chunks
        self.choices: dict[int, dict[str, Any]] = {}
        self.stream_id = self.stream_model = self.stream_tier = self.stream_fingerprint = None
        self.stream_usage: Any = None
        self.final_response: Any = None
        self.injected_usage = False  # set when we added stream_options.include_usage
        self._request(kwargs)

    def _request(self, kw: dict[str, Any]) -> None:
        # kw is the call's kwargs dict. A NotGiven / Omit sentinel fails every isinstance test
        # in request() as None does, so plain lookups read what _get() would.
        if self.kind == "embeddings":
            self.request(encoding_format=kw.get("encoding_format"), dimensions=kw.get("dimensions"))
            return
        if self.kind == "chat":
            max_tokens = kw.get("max_completion_tokens")
            if max_tokens is None or not _given(max_tokens):
                max_tokens = kw.get("max_tokens")
            fmt = output_type(kw.get("response_format"))
        else:
            max_tokens = kw.get("max_output_tokens")
            fmt = output_type(_get(_get(kw, "text"), "format"))
        conversation = kw.get("conversation")
        self.request(
            max_tokens=max_tokens,
            temperature=kw.get("temperature"),
            top_p=kw.get("top_p"),
            frequency_penalty=kw.get("frequency_penalty"),
            presence_penalty=kw.get("presence_penalty"),
            seed=kw.get("seed"),
            choice_count=kw.get("n"),
            stop=kw.get("stop"),
            stream=kw.get("stream") is True,
            output_type=fmt,
            conversation_id=conversation if isinstance(conversation, str) else _get(conversation, "id"),
        )
        if self.openai_attributes:
            self.attrs[sc.OPENAI_API_TYPE] = _API_TYPES[self.kind]
            tier = kw.get("service_tier")
            if isinstance(tier, str) and tier and tier != "auto":
                self.attrs[sc.OPENAI_REQUEST_SERVICE_TIER] = tier
        if not self.capture:
            return
        if self.kind == "chat":
            messages = _chat_input(kw.get("messages"))
            system = None
        else:
            messages, system = _responses_input(_get(kw, "instructions"), _get(kw, "input"))
        tools = kw.get("tools")
        self.inputs(messages, system, openai_tools(tools) if _seq(tools) else None)

    def prepare(self, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """With TRACEHOUSE_STREAM_USAGE=inject, ask a chat stream for its usage chunk."""
        if not self.inst.inject_stream_usage or self.kind != "chat" or kwargs.get("stream") is not True:
            return args, kwargs
        options = _get(kwargs, "stream_options")  # None also for the SDK's NotGiven / Omit
        if options is not None and not isinstance(options, dict):
            return args, kwargs  # a type we do not know how to extend: leave the request alone
        if options and options.get("include_usage"):
            return args, kwargs  # the application asked for it: it sees the chunk
        self.injected_usage = True
        return args, {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.stream_class)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        # Chat names first, Responses names only when those are missing: looking up an attribute
        # a pydantic model does not have is slow.
        inp = _get(usage, "prompt_tokens")
        if inp is None:
            inp = _get(usage, "input_tokens")
        out = None
        if self.kind != "embeddings":
            out = _get(usage, "completion_tokens")
            if out is None:
                out = _get(usage, "output_tokens")
        in_details = _get(usage, "prompt_tokens_details")
        if in_details is None:
            in_details = _get(usage, "input_tokens_details")
        out_details = _get(usage, "completion_tokens_details")
        if out_details is None:
            out_details = _get(usage, "output_tokens_details")
        self.usage(
            inp,
            out,
            cache_read=_get(in_details, "cached_tokens"),
            reasoning=_get(out_details, "reasoning_tokens"),
        )

    def _ids(self, rid: Any, model: Any, tier: Any = None, fingerprint: Any = None) -> None:
        self.response_ids(rid, model)
        if not self.openai_attributes:
            return
        # The tier OpenAI billed the call at (it answers `auto` with the one it used).
        for key, value in (
            (sc.OPENAI_RESPONSE_SERVICE_TIER, tier),
            (sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, fingerprint),
        ):
            if isinstance(value, str) and value:
                self.facts[key] = self.metric_attrs[key] = value

    def on_response(self, result: Any) -> None:
        """Facts from a non-streamed result (or the final Response of a Responses stream)."""
        if self.kind == "embeddings":
            self._ids(None, _get(result, "model"))
            self._usage(_get(result, "usage"))
            return
        if self.kind == "responses":
            self._ids(_get(result, "id"), _get(result, "model"), _get(result, "service_tier"))
            self._usage(_get(result, "usage"))
            messages, finish = _responses_output(result)
            self.finish_reasons([finish])
            if self.capture:
                self.outputs(messages)
            return
        choices = _get(result, "choices")
        if choices is None:  # e.g. with_raw_response: not parsed here, never parsed for it
            return
        self._ids(
            _get(result, "id"),
            _get(result, "model"),
            _get(result, "service_tier"),
            _get(result, "system_fingerprint"),
        )
        self._usage(_get(result, "usage"))
        self.finish_reasons(_get(choice, "finish_reason") for choice in choices)
        if not self.capture:
            return
        out = []
        for choice in choices:
            message = _get(choice, "message")
            content = _get(message, "content")
            parts = (
                [{"type": "text", "content": content}] if type(content) is str else _content_parts(content)
            )
            refusal = _get(message, "refusal")
            if refusal:
                parts.append({"type": "text", "content": refusal})
            tool_calls = _get(message, "tool_calls")
            if tool_calls:
                parts.extend(_tool_call_part(c) for c in tool_calls)
            out.append(
                {
                    "role": _get(message, "role", "assistant"),
                    "parts": parts,
                    "finish_reason": _get(choice, "finish_reason"),
                }
            )
        self.outputs(out)

    def process_chunk(self, chunk: Any) -> bool | None:
        """Accumulate a streamed chunk; True for the usage chunk we injected (hidden)."""
        if self.injected_usage and not _get(chunk, "choices") and _get(chunk, "usage") is not None:
            self.stream_usage = _get(chunk, "usage")
            return True
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
        if not self.stream_fingerprint:
            self.stream_fingerprint = _get(chunk, "system_fingerprint")
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

    def on_stream_end(self) -> None:
        if self.kind == "responses":
            if self.final_response is not None:
                self.on_response(self.final_response)
            return
        self._ids(self.stream_id, self.stream_model, self.stream_tier, self.stream_fingerprint)
        self._usage(self.stream_usage)
        ordered = [self.choices[i] for i in sorted(self.choices)]
        self.finish_reasons(c["finish"] for c in ordered)
        if not (self.capture and ordered):
            return
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
            out.append({"role": acc["role"] or "assistant", "parts": parts, "finish_reason": acc["finish"]})
        self.outputs(out)


# -- the instrumentor ----------------------------------------------------------------------------


class OpenAIInstrumentor(GenAIInstrumentor):
    name = "openai"
    packages = ("openai >= 1.0",)

    def patch(self) -> None:
        from openai import AsyncStream, Stream

        for module, cls, method, kind in _TARGETS:
            is_async = cls.startswith("Async")
            start = starter(self._maker(kind, AsyncStream if is_async else Stream), "openai")
            wrapt.wrap_function_wrapper(module, f"{cls}.{method}", traced(start, is_async))

    def unpatch(self) -> None:
        import importlib

        for module, cls, method, _kind in _TARGETS:
            unwrap(getattr(importlib.import_module(module), cls), method)

    def _maker(self, kind: str, stream_class: type) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> OpenAICall:
            host, port, provider = _server(instance)
            call = OpenAICall(self, kind, kwargs, _get(kwargs, "model"), provider, host, port)
            call.stream_class = stream_class
            call.start()
            return call

        return make
