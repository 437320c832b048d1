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
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import IN_CALL, LLMCall, openai_tools, output_type, starter, traced
from tracehouse.instrumentors._common import args_json, get, jsonable, seq

PROVIDER = "mistral_ai"

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


class _Call(LLMCall):
    """One chat or embeddings call: Mistral's request, response and stream events as facts."""

    def __init__(
        self, inst: MistralInstrumentor, instance: Any, kind: str, kwargs: dict[str, Any], stream: bool
    ) -> None:
        host, port = _server(instance, get(kwargs, "server_url"))
        super().__init__(inst, kind, get(kwargs, "model"), PROVIDER, host, port)
        self.kind = kind
        self.streams = stream
        # accumulated from stream events
        self.response_id: Any = None
        self.response_model: Any = None
        self.stream_usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}
        self._request(kwargs, stream)

    def _request(self, kw: dict[str, Any], stream: bool) -> None:
        if self.kind == sc.EMBEDDINGS:
            self.request(encoding_format=get(kw, "encoding_format"), dimensions=get(kw, "output_dimension"))
            return
        self.request(
            max_tokens=get(kw, "max_tokens"),
            temperature=get(kw, "temperature"),
            top_p=get(kw, "top_p"),
            top_k=get(kw, "top_k"),
            seed=get(kw, "random_seed"),
            presence_penalty=get(kw, "presence_penalty"),
            frequency_penalty=get(kw, "frequency_penalty"),
            stop=get(kw, "stop"),
            choice_count=get(kw, "n"),
            output_type=output_type(get(kw, "response_format")),
            stream=stream,
        )
        if self.capture:
            tools = seq(get(kw, "tools"))
            self.inputs(
                [_message(m) for m in seq(get(kw, "messages"))],
                None,
                openai_tools(tools) if tools else None,
            )

    def is_stream(self, result: Any) -> bool:
        return self.streams and (hasattr(result, "__next__") or hasattr(result, "__anext__"))

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is not None:
            out = get(usage, "completion_tokens") if self.kind != sc.EMBEDDINGS else None
            self.usage(get(usage, "prompt_tokens"), out)

    def on_response(self, result: Any) -> None:
        self.response_ids(get(result, "id"), get(result, "model"))
        self._usage(get(result, "usage"))
        if self.kind == sc.EMBEDDINGS:
            return
        choices = seq(get(result, "choices"))
        self.finish_reasons(get(choice, "finish_reason") for choice in choices)
        if not self.capture:
            return
        messages = []
        for choice in choices:
            message = get(choice, "message")
            out: dict[str, Any] = (
                _message(message) if message is not None else {"role": "assistant", "parts": []}
            )
            out["role"] = "assistant"
            out["finish_reason"] = get(choice, "finish_reason")
            messages.append(out)
        self.outputs(messages)

    def process_chunk(self, event: Any) -> None:
        data = get(event, "data", event)
        self.response_id = get(data, "id") or self.response_id
        self.response_model = get(data, "model") or self.response_model
        if get(data, "usage") is not None:
            self.stream_usage = get(data, "usage")
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

    def on_stream_end(self) -> None:
        self.response_ids(self.response_id, self.response_model)
        self._usage(self.stream_usage)
        ordered = [self.choices[i] for i in sorted(self.choices)]
        self.finish_reasons(slot["finish"] for slot in ordered)
        if not self.capture:
            return
        messages = []
        for slot in ordered:
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
                part: dict[str, Any] = {"type": "tool_call"}
                if tool["id"]:
                    part["id"] = tool["id"]
                part.update(name=tool["name"], arguments=arguments)
                parts.append(part)
            messages.append({"role": "assistant", "parts": parts, "finish_reason": slot["finish"]})
        self.outputs(messages)


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
        self._patched: list[tuple[Any, str]] = []
        for modules, cls_name, method, kind, is_async, streams in _TARGETS:
            cls = _import_first(modules, cls_name)
            if cls is None or method not in cls.__dict__:
                continue
            wrapt.wrap_function_wrapper(cls, method, traced(starter(self._maker(kind, streams)), is_async))
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

    def _maker(self, kind: str, streams: bool) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> _Call:
            call = _Call(self, instance, kind, kwargs, streams)
            call.start()
            return call

        return make


def _no_sdk_span_inside_ours(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """mistralai's own call span is not started for a call this instrumentor already traces; the
    request carries our span's context instead."""
    if otel_context.get_value(IN_CALL):
        request = kwargs.get("request", args[4] if len(args) > 4 else None)
        span = kwargs.get("span", args[2] if len(args) > 2 else None)
        with contextlib.suppress(Exception):
            propagate.inject(request.headers)  # type: ignore[union-attr]
        return request, span
    return wrapped(*args, **kwargs)
