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
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import (
    AsyncCurrentSpanStream,
    CurrentSpanStream,
    LLMCall,
    function_tool,
    openai_tools,
    starter,
    traced,
)
from tracehouse.instrumentors._common import get, jsonable, seq

# method -> GenAI operation name
_METHODS = {"chat": "chat", "generate": "text_completion", "embed": "embeddings", "embeddings": "embeddings"}
_CLASSES = ("Client", "AsyncClient")
PROVIDER = "ollama"


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


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped definitions, or Python functions (ollama derives their schema itself)."""
    return [
        function_tool(getattr(t, "__name__", str(t)))
        if callable(t) and not hasattr(t, "model_dump")
        else openai_tools([t])[0]
        for t in seq(tools)
    ]


# -- one traced call -----------------------------------------------------------------------------


class _Call(LLMCall):
    """One chat, generate or embed call: Ollama's request, response and chunks as facts."""

    def __init__(self, inst: OllamaInstrumentor, instance: Any, method: str, kwargs: dict[str, Any]) -> None:
        host, port = _server(instance)
        super().__init__(inst, _METHODS[method], get(kwargs, "model"), PROVIDER, host, port)
        self.method = method
        # accumulated from stream chunks
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.last: Any = None
        self._request(kwargs, kwargs.get("stream") is True)

    def _request(self, kwargs: dict[str, Any], stream: bool) -> None:
        options = get(kwargs, "options")
        fmt = get(kwargs, "format")
        embeds = self.operation == sc.EMBEDDINGS
        self.request(
            temperature=get(options, "temperature"),
            top_p=get(options, "top_p"),
            top_k=get(options, "top_k"),
            max_tokens=get(options, "num_predict"),
            seed=get(options, "seed"),
            frequency_penalty=get(options, "frequency_penalty"),
            presence_penalty=get(options, "presence_penalty"),
            stop=get(options, "stop"),
            dimensions=get(kwargs, "dimensions") if embeds else None,
            stream=stream and not embeds,
            output_type=sc.OUTPUT_JSON if not embeds and (fmt == "json" or isinstance(fmt, dict)) else None,
        )
        if embeds or not self.capture:
            return
        if self.method == "chat":
            messages = [
                {"role": get(m, "role", "user"), "parts": _message_parts(m)}
                for m in seq(get(kwargs, "messages"))
            ]
            self.inputs(messages, None, _tool_definitions(get(kwargs, "tools")))
            return
        prompt = get(kwargs, "prompt")
        prompt_messages = None
        if isinstance(prompt, str) and prompt:
            prompt_parts: list[dict[str, Any]] = [{"type": "text", "content": prompt}]
            prompt_parts.extend({"type": "blob", "modality": "image"} for _ in seq(get(kwargs, "images")))
            prompt_messages = [{"role": "user", "parts": prompt_parts}]
        instructions = get(kwargs, "system")
        system = (
            [{"type": "text", "content": instructions}]
            if isinstance(instructions, str) and instructions
            else None
        )
        self.inputs(prompt_messages, system)

    def is_stream(self, result: Any) -> bool:
        return (hasattr(result, "__next__") and hasattr(result, "close")) or hasattr(result, "__anext__")

    def returned(self, result: Any, is_async: bool) -> Any:
        if self.is_stream(result):
            # Ollama sends the request on the first step: each step runs with the span current.
            return AsyncCurrentSpanStream(result, self) if is_async else CurrentSpanStream(result, self)
        return super().returned(result, is_async)

    # -- results ---------------------------------------------------------------------------------

    def _common(self, result: Any) -> None:
        self.response_ids(None, get(result, "model"))
        out = get(result, "eval_count") if self.operation != sc.EMBEDDINGS else None
        self.usage(get(result, "prompt_eval_count"), out)

    def _output(self, parts: list[dict[str, Any]], reason: Any) -> None:
        self.finish_reasons([reason])
        if self.capture and (parts or reason):
            self.outputs([{"role": "assistant", "parts": parts, "finish_reason": reason}])

    def on_response(self, result: Any) -> None:
        self._common(result)
        if self.operation == sc.EMBEDDINGS:
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

    def process_chunk(self, chunk: Any) -> None:
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

    def on_stream_end(self) -> None:
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


# -- the instrumentor ----------------------------------------------------------------------------


class OllamaInstrumentor(GenAIInstrumentor):
    name = "ollama"
    packages = ("ollama >= 0.4",)

    def patch(self) -> None:
        client_module = importlib.import_module("ollama._client")
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
                wrapt.wrap_function_wrapper(
                    cls, method, traced(starter(self._maker(method, names)), is_async)
                )
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

    def _maker(self, method: str, names: list[str]) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> _Call:
            params = kwargs
            if args:
                params = dict(zip(names, args, strict=False))
                params.update(kwargs)
            call = _Call(self, instance, method, params)
            call.start()
            return call

        return make
