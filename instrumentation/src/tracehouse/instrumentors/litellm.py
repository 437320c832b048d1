"""LiteLLM instrumentation: `completion` / `acompletion` (streaming included) and `embedding` /
`aembedding` as one OpenTelemetry GenAI client span per call, whatever provider LiteLLM routes
the call to.

LiteLLM takes and returns OpenAI's shapes, so request attributes, message conversion and stream
accumulation are the OpenAI instrumentor's call (`_Call`); what differs is the provider, which
comes from LiteLLM's model routing ("anthropic/claude-..." -> anthropic) instead of a client URL.

One LLM call, one span: LiteLLM reaches providers through their SDKs (openai, ...) or httpx.
Its call's context is marked as inside a Tracehouse LLM call, where the SDK instrumentors make no span.

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
from typing import Any
from urllib.parse import urlsplit

import wrapt

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import starter, traced
from tracehouse.instrumentors._common import AsyncStreamProxy, StreamProxy, get
from tracehouse.instrumentors.openai import OpenAICall

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


class _Call(OpenAICall):
    """One LiteLLM call: the OpenAI call's attributes, with LiteLLM's provider and model."""

    openai_attributes = False

    def __init__(self, inst: LiteLLMInstrumentor, operation: str, params: dict[str, Any]) -> None:
        self.params = params
        self.provider, name = inst.route(params.get("model"), params)
        host, port = _server(params)
        super().__init__(
            inst,
            "embeddings" if operation == "embeddings" else "chat",
            params,
            name,
            self.provider,
            host,
            port,
        )
        self.litellm = inst

    def _usage(self, usage: Any) -> None:
        super()._usage(usage)
        if usage is None:
            return
        # Anthropic (and Bedrock) prompt-cache writes, counted inside the input tokens as reads are.
        written = get(usage, "cache_creation_input_tokens")
        if written is None:
            written = get(get(usage, "prompt_tokens_details"), "cache_creation_tokens")
        self.usage(cache_creation=written)

    def set_provider(self, litellm_name: Any) -> None:
        if self.provider is None and isinstance(litellm_name, str) and litellm_name:
            self.provider = _PROVIDERS.get(litellm_name, litellm_name)
            self.facts[sc.PROVIDER] = self.metric_attrs[sc.PROVIDER] = self.provider

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.litellm.stream_type)

    def returned(self, result: Any, is_async: bool) -> Any:
        if self.is_stream(result):
            self.set_provider(getattr(result, "custom_llm_provider", None))
            return _AsyncStream(result, self) if is_async else StreamProxy(result, self)
        hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            self.set_provider(hidden.get("custom_llm_provider"))
        return super().returned(result, is_async)

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None:
        if not self.ended and self.provider is None:
            # A model name without a provider prefix that LiteLLM's price map does not know: the
            # provider LiteLLM picked, from its error, or its routing once the call has succeeded
            # (asked before the call, a model it cannot route would print its help text twice).
            try:
                if exc is not None:
                    self.set_provider(getattr(exc, "llm_provider", None))
                else:
                    self.set_provider(self.litellm.resolve(self.params))
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
        self.stream_type = CustomStreamWrapper
        self._known = frozenset(str(getattr(p, "value", p)) for p in getattr(litellm, "provider_list", ()))
        self._prices = getattr(litellm, "model_cost", None) or {}
        self._get_provider = getattr(litellm, "get_llm_provider", None)
        self._replaced: list[tuple[Any, str, Any, Any]] = []
        wrappers = {}
        for name, (operation, is_async, positional) in _FUNCTIONS.items():
            original = getattr(main, name)
            wrapper = traced(starter(self._maker(operation, positional)), is_async)
            if not is_async:
                wrapper = _not_for_async(wrapper)
            wrappers[name] = (original, wrapt.FunctionWrapper(original, wrapper))
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

    def _maker(self, operation: str, positional: tuple[str, ...]) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> _Call:
            params = {**dict(zip(positional, args, strict=False)), **kwargs} if args else kwargs
            call = _Call(self, operation, params)
            call.start()
            return call

        return make


def _not_for_async(wrapper: Any) -> Any:
    """completion(acompletion=True) returns a coroutine: acompletion(), which makes that call,
    traces it."""

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if kwargs.get("acompletion") is True or kwargs.get("aembedding") is True:
            return wrapped(*args, **kwargs)
        return wrapper(wrapped, instance, args, kwargs)

    return sync_wrapper
