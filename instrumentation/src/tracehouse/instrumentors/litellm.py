"""LiteLLM instrumentation: `completion` / `acompletion` (streaming included) and `embedding` /
`aembedding` as one OpenTelemetry GenAI client span per call, whatever provider LiteLLM routes
the call to.

LiteLLM takes and returns OpenAI's shapes, so request attributes, message conversion and stream
accumulation are the OpenAI instrumentor's call (`_Call`); what differs is the provider, which
comes from LiteLLM's model routing ("anthropic/claude-..." -> anthropic) instead of a client URL.

One LLM call, one span: LiteLLM reaches providers through their SDKs (openai, ...) or httpx.
Its call runs in `routed_call_context`, inside which the SDK instrumentors make no span.

Where the functions live: `litellm.main` defines them. Recent LiteLLM exposes `litellm.completion`
as a dispatcher that bound main's function at import (`_PYTHON_COMPLETION`); older versions
re-export main's functions. Every such reference to main's function is replaced by the same
wrapper, so `from litellm import completion` done before or after `instrument()` is traced.
`acompletion` runs main's `completion` internally: that inner call is part of the outer span.

Importing this module does not import litellm.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._common import (
    AsyncStreamProxy,
    GenAIMetrics,
    StreamProxy,
    get,
    routed_call_context,
)
from tracehouse.instrumentors.openai import _Call as _OpenAICall

_CALL_KEY = otel_context.create_key("tracehouse-litellm-call")

# litellm.main function -> (gen_ai.operation.name, async, names of its leading positional params)
_FUNCTIONS = {
    "completion": ("chat", False, ("model", "messages")),
    "acompletion": ("chat", True, ("model", "messages")),
    "embedding": ("embeddings", False, ("model", "input")),
    "aembedding": ("embeddings", True, ("model", "input")),
}

# Other references to a litellm.main function: (module, attribute, function). Replaced only
# while they still are main's function.
_REFERENCES = (
    *(("litellm", name, name) for name in _FUNCTIONS),
    ("litellm.chat_completions.dispatch", "_PYTHON_COMPLETION", "completion"),
    ("litellm.chat_completions.dispatch", "_PYTHON_ACOMPLETION", "acompletion"),
    ("litellm.embeddings.dispatch", "_PYTHON_EMBEDDING", "embedding"),
    ("litellm.embeddings.dispatch", "_PYTHON_AEMBEDDING", "aembedding"),
)

# LiteLLM provider -> gen_ai.provider.name, where the conventions name it differently.
_PROVIDERS = {
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "xai": "x_ai",
    "cohere_chat": "cohere",
    "ollama_chat": "ollama",
    "watsonx": "ibm.watsonx.ai",
}


def _server(params: dict[str, Any]) -> tuple[str | None, int | None]:
    base = params.get("api_base") or params.get("base_url")
    if not isinstance(base, str) or not base:
        return None, None
    try:
        url = urlsplit(base)
        return url.hostname or None, url.port or {"https": 443, "http": 80}.get(url.scheme)
    except ValueError:
        return None, None


class _Call(_OpenAICall):
    """One LiteLLM call: the OpenAI call's attributes, with LiteLLM's provider and model."""

    def __init__(self, inst: LiteLLMInstrumentor, operation: str, params: dict[str, Any]) -> None:
        # The state _OpenAICall's methods read (see its __init__), set up for LiteLLM.
        self.inst = inst  # type: ignore[assignment]
        self.kind = operation  # "chat" / "embeddings": the OpenAI kinds with the same shapes
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        self.params = params
        model = params.get("model")
        self.provider, name = inst.route(model, params)
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation}
        if self.provider:
            attrs["gen_ai.provider.name"] = self.provider
        if name:
            attrs["gen_ai.request.model"] = name
        host, port = _server(params)
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._request_attributes(attrs, params)
        span_name = f"{operation} {name}" if name else operation
        self.span = inst.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        self.choices: dict[int, dict[str, Any]] = {}
        self.stream_id = self.stream_model = self.stream_tier = None
        self.stream_usage: Any = None
        self.injected_usage = False
        self.result_attrs: dict[str, Any] = {}
        self.context = otel_context.set_value(_CALL_KEY, True, routed_call_context(self.span))

    def _usage(self, usage: Any) -> None:
        super()._usage(usage)
        if usage is None:
            return
        # Anthropic (and Bedrock) prompt-cache writes, counted inside the input tokens as reads are.
        written = get(usage, "cache_creation_input_tokens")
        if written is None:
            written = get(get(usage, "prompt_tokens_details"), "cache_creation_tokens")
        if isinstance(written, int) and not isinstance(written, bool):
            self.result_attrs["gen_ai.usage.cache_creation.input_tokens"] = written

    def set_provider(self, litellm_name: Any) -> None:
        if self.provider is None and isinstance(litellm_name, str) and litellm_name:
            self.provider = _PROVIDERS.get(litellm_name, litellm_name)
            self.result_attrs["gen_ai.provider.name"] = self.provider
            self.metric_attrs["gen_ai.provider.name"] = self.provider

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None:
        if not self.ended and self.provider is None:
            # A model name without a provider prefix that LiteLLM's price map does not know: the
            # provider LiteLLM picked, from its error, or its routing once the call has succeeded
            # (asked before the call, a model it cannot route would print its help text twice).
            try:
                if exc is not None:
                    self.set_provider(getattr(exc, "llm_provider", None))
                else:
                    self.set_provider(self.inst.resolve(self.params))
            except Exception:
                pass
        super().end(exc, streamed)


class _AsyncStream(AsyncStreamProxy):
    """LiteLLM's stream closes with a plain `close()` and an async `aclose()`."""

    def close(self) -> None:  # type: ignore[override]
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.end(streamed=True)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_call.end(streamed=True)


class LiteLLMInstrumentor(GenAIInstrumentor):
    name = "litellm"
    packages = ("litellm >= 1.40",)

    def patch(self) -> None:
        import litellm
        from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

        main = importlib.import_module("litellm.main")
        self.metrics = GenAIMetrics(self.meter)
        self._stream_type = CustomStreamWrapper
        self._known = frozenset(str(getattr(p, "value", p)) for p in getattr(litellm, "provider_list", ()))
        self._prices = getattr(litellm, "model_cost", None) or {}
        self._get_provider = getattr(litellm, "get_llm_provider", None)
        self._replaced: list[tuple[Any, str, Any, Any]] = []
        wrappers = {}
        for name, (operation, is_async, positional) in _FUNCTIONS.items():
            original = getattr(main, name)
            make = self._async_wrapper if is_async else self._sync_wrapper
            wrappers[name] = (original, wrapt.FunctionWrapper(original, make(operation, positional)))
        for module_name, attr, name in (*(("litellm.main", n, n) for n in _FUNCTIONS), *_REFERENCES):
            module = sys.modules.get(module_name)  # litellm imports its dispatchers itself
            original, wrapper = wrappers[name]
            if module is not None and getattr(module, attr, None) is original:
                setattr(module, attr, wrapper)
                self._replaced.append((module, attr, original, wrapper))

    def unpatch(self) -> None:
        for module, attr, original, wrapper in getattr(self, "_replaced", ()):
            if getattr(module, attr, None) is wrapper:
                setattr(module, attr, original)
        self._replaced = []

    # -- provider routing -------------------------------------------------------------------------

    def route(self, model: Any, params: dict[str, Any]) -> tuple[str | None, str | None]:
        """(gen_ai.provider.name or None when not known before the call, model name as the
        provider knows it) from LiteLLM's own tables; nothing here can fail or print."""
        if not isinstance(model, str) or not model:
            return None, None
        provider: str | None = None
        name = model
        prefix, slash, rest = model.partition("/")
        if slash and prefix in self._known:
            provider, name = prefix, rest
        explicit = params.get("custom_llm_provider")
        if isinstance(explicit, str) and explicit:
            provider = explicit
        if provider is None:
            entry = self._prices.get(model)
            found = entry.get("litellm_provider") if isinstance(entry, dict) else None
            provider = found if isinstance(found, str) and found else None
        return (_PROVIDERS.get(provider, provider) if provider else None), name

    def resolve(self, params: dict[str, Any]) -> str | None:
        """LiteLLM's provider for a call that it has routed already."""
        if self._get_provider is None:
            return None
        api_base = params.get("api_base") or params.get("base_url")
        return self._get_provider(
            params.get("model"), api_base=api_base if isinstance(api_base, str) else None
        )[1]

    # -- wrappers ---------------------------------------------------------------------------------

    def _start(self, operation: str, positional: tuple[str, ...], args: Any, kwargs: Any) -> _Call | None:
        if not is_instrumentation_enabled() or otel_context.get_value(_CALL_KEY):
            return None
        try:
            params = {**dict(zip(positional, args, strict=False)), **kwargs} if args else kwargs
            return _Call(self, operation, params)
        except Exception:
            return None

    def _with_stream_usage(self, call: _Call, kwargs: dict[str, Any]) -> dict[str, Any]:
        """With TRACEHOUSE_STREAM_USAGE=inject, ask a chat stream for its usage chunk (hidden)."""
        if not self.inject_stream_usage or call.kind != "chat" or kwargs.get("stream") is not True:
            return kwargs
        options = kwargs.get("stream_options")
        if options is not None and not isinstance(options, dict):
            return kwargs
        if options and options.get("include_usage"):
            return kwargs  # the application asked for it: it sees the chunk
        call.injected_usage = True
        return {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}

    def _finish(self, call: _Call, result: Any, proxy: type) -> Any:
        if isinstance(result, self._stream_type):
            call.set_provider(getattr(result, "custom_llm_provider", None))
            return proxy(result, call)
        hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            call.set_provider(hidden.get("custom_llm_provider"))
        call.response(result)
        call.end()
        return result

    def _sync_wrapper(self, operation: str, positional: tuple[str, ...]) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            # completion(acompletion=True) returns a coroutine: acompletion(), which makes that
            # call, traces it.
            if kwargs.get("acompletion") is True or kwargs.get("aembedding") is True:
                return wrapped(*args, **kwargs)
            call = self._start(operation, positional, args, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            kwargs = self._with_stream_usage(call, kwargs)
            token = otel_context.attach(call.context)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            return self._finish(call, result, StreamProxy)

        return wrapper

    def _async_wrapper(self, operation: str, positional: tuple[str, ...]) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(operation, positional, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            kwargs = self._with_stream_usage(call, kwargs)
            token = otel_context.attach(call.context)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            return self._finish(call, result, _AsyncStream)

        return wrapper
