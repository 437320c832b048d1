"""The normaliser: whatever convention a producer used -> canonical GenAI facts.

Spans arrive as plain rows whose attribute maps are ``dict[str, str]`` (see ``rows``). This
module reads them and answers three questions, without changing the row:

* ``extract``: the canonical ``GenAIFacts`` of an LLM/GenAI span (operation, provider, models,
  token usage with OpenTelemetry semantics, a cost the producer reported), or ``None`` for a
  span with no GenAI semantics at all;
* ``context_ids``: session, user, run and experiment of any span;
* ``normalize_evaluation_event``: canonical keys for evaluation-result span events.

Conventions read (attribute names taken from each producer's own source, see the tests):

* OpenTelemetry GenAI, current (``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.usage.cache_read.input_tokens`` ...) and deprecated (``gen_ai.system``,
  ``gen_ai.usage.prompt_tokens``, ``gen_ai.prompt``, operation only in the span name);
* OpenInference (``openinference.span.kind``, ``llm.token_count.*``, ``llm.cost.*``);
* OpenLLMetry / Traceloop (``llm.request.type``, ``llm.usage.total_tokens``,
  ``gen_ai.prompt.N.content``, ``traceloop.span.kind``, ``traceloop.association.properties.*``);
* Vercel AI SDK (``ai.operationId``, ``ai.model.*``, ``ai.usage.*`` of v3/v4, v5 and v6+);
* Langfuse (``langfuse.observation.*``, ``langfuse.session.id`` ...);
* MLflow (``mlflow.spanType``, ``mlflow.chat.tokenUsage``, ``mlflow.llm.cost``; MLflow stores
  every attribute value JSON-encoded, so ``"LLM"`` arrives with its quotes);
* pydantic-ai / logfire, Strands, OpenLIT where they differ from the above.

Token semantics are OpenTelemetry's: ``input_tokens`` includes cache reads and cache writes,
``output_tokens`` includes reasoning tokens. Producers that report them *outside* (Anthropic's
own usage object, copied verbatim by many) are folded in here, once; see ``_resolve_usage``.

Cost: this runs on every span. A span with none of the marker keys costs one C-level
``isdisjoint`` over its keys; JSON is parsed only for the attributes that need it, and message
text (for token estimation) is only assembled when the producer reported no usage at all.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

from tracehouse_collector.processors import price_context
from tracehouse_collector.processors.genai_facts import GenAIFacts

__all__ = [
    "NON_MODEL_OPERATIONS",
    "context_ids",
    "extract",
    "normalize_evaluation_event",
    "normalize_provider",
    "parse_decimal",
    "parse_int",
]

# -- value parsing ---------------------------------------------------------------------------

_MAX_COUNT = 2**63 - 1


def parse_int(value: str | None) -> int | None:
    """A token count from an attribute string: "12", "12.0", " 12 " -> 12; "", garbage,
    negatives, NaN and infinities -> None. Never raises."""
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        if not math.isfinite(f):
            return None
        n = int(f)
    except TypeError:
        return None
    if n < 0 or n > _MAX_COUNT:
        return None
    return n


def parse_decimal(value: Any) -> Decimal | None:
    """A USD amount: attribute string or JSON number -> Decimal; garbage/negative/NaN -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = repr(value)
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not d.is_finite() or d < 0:
        return None
    return d


def _json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _unquote(value: str | None) -> str:
    """MLflow JSON-encodes every attribute value: '"LLM"' -> 'LLM'. Other strings unchanged."""
    if value and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        decoded = _json(value)
        if isinstance(decoded, str):
            return decoded
    return value or ""


def _num(value: Any) -> int | None:
    """A token count from a parsed JSON value (int, float or numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_COUNT else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and 0 <= value <= _MAX_COUNT else None
    if isinstance(value, str):
        return parse_int(value)
    return None


def _first(get: Any, keys: tuple[str, ...]) -> str:
    for k in keys:
        v = get(k)
        if v:
            return v
    return ""


def _first_int(get: Any, keys: tuple[str, ...]) -> int | None:
    for k in keys:
        v = get(k)
        if v:
            n = parse_int(v)
            if n is not None:
                return n
    return None


# -- providers -------------------------------------------------------------------------------

# The OTel gen_ai.provider.name well-known values, plus `ollama` and a few hosts OTel does not
# list yet, spelled the way OpenLLMetry's GenAISystem enum spells them (lowercase, underscores).
_CANONICAL_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "aws.bedrock",
        "azure.ai.openai",
        "azure.ai.inference",
        "gcp.gemini",
        "gcp.vertex_ai",
        "gcp.gen_ai",
        "cohere",
        "mistral_ai",
        "groq",
        "deepseek",
        "x_ai",
        "perplexity",
        "ibm.watsonx.ai",
        "moonshot_ai",
        "ollama",
        "together_ai",
        "fireworks",
        "hugging_face",
        "openrouter",
        "replicate",
        "aleph_alpha",
        "cerebras",
    }
)

# Spellings seen in the wild, keyed with '-' and ' ' folded to '_'. Sources: OTel deprecated
# gen_ai.system values (az.ai.*, vertex_ai, gemini, xai), OpenLLMetry's old GenAISystem values
# ("Azure", "AWS", "Google", "MistralAI", "TogetherAI", "Watsonx" ...), OpenInference
# llm.provider / llm.system values (azure, aws, google, vertexai, mistralai, xai, amazon),
# Vercel provider ids ("amazon-bedrock", "google.vertex.chat", "googleVertex.anthropic.messages",
# "azure.chat", "togetherai.chat" ...), LangChain ls_provider names (google_genai, bedrock_converse).
_PROVIDER_ALIASES = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "azure.inference": "azure.ai.inference",
    "azure_ai": "azure.ai.inference",
    "azureai": "azure.ai.inference",
    "azure_ai_foundry": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "amazon": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "bedrock_mantle": "aws.bedrock",
    "anthropic_aws": "aws.bedrock",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google.genai": "gcp.gemini",
    "google.generative_ai": "gcp.gemini",
    "google_generative_ai": "gcp.gemini",
    "google_generativeai": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "googleai": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "google.vertex": "gcp.vertex_ai",
    "google_vertex": "gcp.vertex_ai",
    "google_vertexai": "gcp.vertex_ai",
    "googlevertex": "gcp.vertex_ai",
    "google_vertex_ai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "gcp": "gcp.gen_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "x.ai": "x_ai",
    "grok": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "watsonx.ai": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
    "ibm_watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "together": "together_ai",
    "togetherai": "together_ai",
    "together.ai": "together_ai",
    "fireworks_ai": "fireworks",
    "fireworksai": "fireworks",
    "huggingface": "hugging_face",
    "hf": "hugging_face",
    "alephalpha": "aleph_alpha",
    "cohere_ai": "cohere",
    "deep_seek": "deepseek",
    "perplexity_ai": "perplexity",
    "pplx": "perplexity",
    "claude": "anthropic",
}


@lru_cache(maxsize=4096)
def normalize_provider(name: str) -> str:
    """Any spelling of a provider -> the gen_ai.provider.name vocabulary.

    Exact matches first, then aliases, then the longest dotted prefix that is known, so
    Vercel ids ('openai.chat', 'anthropic.messages', 'google.vertex.chat') fold to their
    provider. Unknown names come back lower-cased and stripped, otherwise kept.
    """
    s = (name or "").strip().lower()
    if not s or s in _CANONICAL_PROVIDERS:
        return s
    key = s.replace("-", "_").replace(" ", "_")
    hit = _PROVIDER_ALIASES.get(key)
    if hit:
        return hit
    if key in _CANONICAL_PROVIDERS:
        return key
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in _CANONICAL_PROVIDERS:
            return prefix
        hit = _PROVIDER_ALIASES.get(prefix)
        if hit:
            return hit
    return s


# Orchestration frameworks some instrumentations put where the provider goes (OpenLLMetry sets
# gen_ai.provider.name "langchain"/"langgraph" on chain spans and as the fallback when it cannot
# detect the vendor). They name no endpoint, so extract() reports no provider rather than them.
_FRAMEWORKS = frozenset(
    {"langchain", "langgraph", "llama_index", "llamaindex", "crewai", "haystack", "autogen", "dspy", "_other"}
)


def _openinference_provider(provider: str, system: str) -> str:
    """OpenInference splits the host (llm.provider: azure, aws, google) from the model vendor
    (llm.system: openai, anthropic, vertexai). gen_ai.provider.name names the endpoint, so the
    host wins, refined where OTel has a finer value."""
    p = provider.strip().lower()
    sy = system.strip().lower()
    if p == "azure":
        # Azure OpenAI serves OpenAI models; anything else on Azure is AI Inference (Foundry).
        return "azure.ai.openai" if sy in ("", "openai") else "azure.ai.inference"
    if p == "google" and sy in ("vertexai", "vertex_ai", "vertex"):
        return "gcp.vertex_ai"
    return normalize_provider(p or sy)


# Only consulted when no attribute names a provider: the endpoint host is unambiguous.
_HOST_PROVIDERS = (
    ("openai.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("models.ai.azure.com", "azure.ai.inference"),
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("bedrock-runtime", "aws.bedrock"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere", "cohere"),
    ("api.together", "together_ai"),
    ("fireworks.ai", "fireworks"),
    ("openrouter.ai", "openrouter"),
)


def _provider_from_host(host: str) -> str:
    host = host.lower()
    for needle, provider in _HOST_PROVIDERS:
        if needle in host:
            return provider
    return ""


# -- operations ------------------------------------------------------------------------------

# Operations that are not a model call. Their spans often carry the *aggregate* usage of the
# model calls beneath them (Vercel ai.generateText, pydantic-ai "agent run", Strands and
# OpenInference AGENT spans, OTel invoke_agent), so usage and cost are not read from them:
# summing a trace would otherwise count every token twice. Token estimation should likewise
# skip them (their facts carry no usage and no input/output text).
NON_MODEL_OPERATIONS = frozenset(
    {
        "invoke_agent",
        "create_agent",
        "agent_step",
        "invoke_workflow",
        "execute_tool",
        "execute_task",
        "chain",
        "retrieval",
        "guardrail",
        "evaluation",
        "plan",
        "prompt",
        "parse",
        "memory",
        "create_memory",
        "update_memory",
        "upsert_memory",
        "delete_memory",
        "search_memory",
        "create_memory_store",
        "delete_memory_store",
    }
)

# Values OTel spans put first in their name ("chat gpt-4o", "execute_tool get_weather").
_SPAN_NAME_OPERATIONS = frozenset(
    {
        "chat",
        "text_completion",
        "embeddings",
        "generate_content",
        "execute_tool",
        "invoke_agent",
        "create_agent",
        "invoke_workflow",
        "retrieval",
        "rerank",
    }
)

_OTEL_OPERATION_ALIASES = {"completion": "text_completion", "embedding": "embeddings", "reranking": "rerank"}

_OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "RERANKER": "rerank",
    "CHAIN": "chain",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluation",
    "PROMPT": "prompt",
    "UNKNOWN": "",
}

_MLFLOW_SPAN_TYPES = {
    "LLM": "chat",
    "CHAT_MODEL": "chat",
    "EMBEDDING": "embeddings",
    "RERANKER": "rerank",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "CHAIN": "chain",
    "RETRIEVER": "retrieval",
    "PARSER": "parse",
    "MEMORY": "memory",
    "WORKFLOW": "invoke_workflow",
    "TASK": "execute_task",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluation",
    "UNKNOWN": "",
}

_LANGFUSE_TYPES = {
    "generation": "chat",
    "embedding": "embeddings",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "chain": "chain",
    "retriever": "retrieval",
    "evaluator": "evaluation",
    "guardrail": "guardrail",
    "span": "",
    "event": "",
}

_TRACELOOP_REQUEST_TYPES = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
    "unknown": "",
}

_TRACELOOP_SPAN_KINDS = {
    "workflow": "invoke_workflow",
    "task": "execute_task",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "unknown": "",
}

# Vercel AI SDK: the span name and ai.operationId are the operation id. The outer call spans
# (ai.generateText ...) carry the usage summed over their doGenerate/doStream steps, which carry
# it again: the outer ones are mapped to non-model operations (invoke_agent, as the SDK's own
# OTel integration does; invoke_workflow for embed/rerank wrappers) so only steps are counted.
_VERCEL_OPERATIONS = {
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
    "ai.rerank.doRerank": "rerank",
    "ai.toolCall": "execute_tool",
    "ai.generateText": "invoke_agent",
    "ai.streamText": "invoke_agent",
    "ai.generateObject": "invoke_agent",
    "ai.streamObject": "invoke_agent",
    "ai.embed": "invoke_workflow",
    "ai.embedMany": "invoke_workflow",
    "ai.rerank": "invoke_workflow",
}

# OpenLLMetry names model spans "<vendor>.<kind>": openai.chat, bedrock.completion, cohere.rerank.
_DOTTED_NAME_KINDS = {
    "chat": "chat",
    "completion": "text_completion",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "embedding": "embeddings",
    "rerank": "rerank",
}


def _operation(get: Any, span_name: str) -> str:
    op = get("gen_ai.operation.name")
    if op:
        op = op.strip().lower()
        return _OTEL_OPERATION_ALIASES.get(op, op)
    kind = get("openinference.span.kind")
    if kind:
        op = _OPENINFERENCE_KINDS.get(kind.strip().upper())
        if op == "chat" and (get("llm.prompts") or get("llm.prompts.0.prompt.text")):
            return "text_completion"  # OpenInference records completions-API prompts there
        if op:
            return op
    vid = get("ai.operationId")
    if vid:
        op = _VERCEL_OPERATIONS.get(vid)
        if op is not None:
            return op
    lf = get("langfuse.observation.type")
    if lf:
        op = _LANGFUSE_TYPES.get(lf.strip().lower())
        if op:
            return op
    ml = get("mlflow.spanType")
    if ml:
        op = _MLFLOW_SPAN_TYPES.get(_unquote(ml).strip().upper())
        if op:
            return op
    rt = get("llm.request.type")
    if rt:
        op = _TRACELOOP_REQUEST_TYPES.get(rt.strip().lower())
        if op:
            return op
    tk = get("traceloop.span.kind")
    if tk:
        op = _TRACELOOP_SPAN_KINDS.get(tk.strip().lower())
        if op:
            return op
    # pydantic-ai (logfire) agent-run spans name no operation but carry the run's messages.
    if get("pydantic_ai.all_messages") or get("all_messages_events"):
        return "invoke_agent"
    if span_name:
        head = span_name.split(" ", 1)[0]
        if head in _SPAN_NAME_OPERATIONS:
            return head  # deprecated OTel: the operation only in "chat gpt-4o"
        elif head == span_name:
            dot = span_name.rfind(".")
            if dot > 0:
                op = _DOTTED_NAME_KINDS.get(span_name[dot + 1 :].lower())
                if op:
                    return op
    if get("gen_ai.tool.name") or get("gen_ai.tool.call.id"):
        return "execute_tool"  # pydantic-ai tool spans name only the tool
    return ""


# -- usage -----------------------------------------------------------------------------------

# How a producer's input count relates to its cache counts.
_INCLUSIVE = 0  # input already includes cache reads/writes (OTel spec, OpenAI, OpenInference)
_EXCLUSIVE = 1  # input excludes them (Anthropic's usage object, Langfuse-style buckets)
_AUTO = 2  # unknown: decided from a reported total, else treated as exclusive


def _resolve_usage(
    inp: int | None,
    out: int | None,
    cache_read: int | None,
    cache_write: int | None,
    reasoning: int | None,
    total: int | None,
    mode: int,
) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) with OTel semantics, never counting a cache or reasoning token
    twice and never dropping one.

    Cache tokens are folded into input when the producer reported them outside it:
    * always for known-exclusive producers;
    * whenever input < cache_read + cache_write (an inclusive count cannot be smaller);
    * whenever a reported total equals input + output + cache (and not input + output): the
      producer's total counts the cache tokens its input left out (Bedrock Converse's
      totalTokens, as passed on by Strands and OpenInference);
    * for `_AUTO` producers (Anthropic-style attribute names), unless the reported total
      equals input + output, which is how OpenLLMetry reports its cache-inclusive input.
    Reasoning is folded into output only when the total proves output excluded it (Gemini's
    candidatesTokenCount vs thoughtsTokenCount, passed on by Vercel v5 and others) or when
    output < reasoning.
    A reported total smaller than the resolved input + output is replaced by the sum.
    """
    o = out or 0
    cache = (cache_read or 0) + (cache_write or 0)
    if inp is not None and cache:
        if (total is not None and total == inp + o + cache) or inp < cache or mode == _EXCLUSIVE:
            exclusive = True
        elif mode == _AUTO:
            exclusive = total is None or total != inp + o
        else:
            exclusive = False
        if exclusive:
            inp += cache
            cache = 0  # now inside inp, so the total check below sees it as such
    if out is not None and reasoning:
        i = inp or 0
        if out < reasoning or (
            total is not None
            and total != i + out
            and total in (i + out + reasoning, i + out + cache + reasoning)
        ):
            out += reasoning
    if inp is not None or out is not None:
        s = (inp or 0) + (out or 0)
        if total is None or total < s:
            total = s
    return inp, out, total


# Usage readers, one per convention. Each returns
# (input, output, cache_read, cache_write, reasoning, total, mode) or None when the span has
# nothing in that convention.
_Usage = tuple[int | None, int | None, int | None, int | None, int | None, int | None, int]


def _langfuse_usage(raw: str) -> _Usage | None:
    d = _json(raw)
    if not isinstance(d, dict) or not d:
        return None
    if "prompt_tokens" in d or "completion_tokens" in d:
        # OpenAI-shaped usage object: prompt_tokens already includes cached_tokens.
        pd = d.get("prompt_tokens_details")
        cd = d.get("completion_tokens_details")
        return (
            _num(d.get("prompt_tokens")),
            _num(d.get("completion_tokens")),
            _num(pd.get("cached_tokens")) if isinstance(pd, dict) else None,
            None,
            _num(cd.get("reasoning_tokens")) if isinstance(cd, dict) else None,
            _num(d.get("total_tokens")),
            _INCLUSIVE,
        )
    # Langfuse usage_details are disjoint buckets ({"input": 10, "input_cached_tokens": 90,
    # "output": 5, "output_reasoning_tokens": 2, "total": 107}); Langfuse itself sums every key
    # containing "input" / "output". Summing them here gives OTel's inclusive counts directly.
    inp = out = cr = cw = rs = total = None
    for key, value in d.items():
        n = _num(value)
        if n is None:
            continue
        k = key.lower()
        if k in ("total", "total_tokens"):
            total = n
        elif "input" in k or "prompt" in k or "cache" in k:
            inp = (inp or 0) + n
            if "cache" in k:
                if "creat" in k or "write" in k:
                    cw = (cw or 0) + n
                else:
                    cr = (cr or 0) + n
        elif "output" in k or "completion" in k or "reasoning" in k:
            out = (out or 0) + n
            if "reasoning" in k:
                rs = (rs or 0) + n
    if inp is None and out is None and total is None:
        return None
    return inp, out, cr, cw, rs, total, _INCLUSIVE


def _mlflow_usage(raw: str) -> _Usage | None:
    d = _json(raw)
    if isinstance(d, str):  # double-encoded
        d = _json(d)
    if not isinstance(d, dict):
        return None
    inp = _num(d.get("input_tokens"))
    out = _num(d.get("output_tokens"))
    total = _num(d.get("total_tokens"))
    if inp is None and out is None and total is None:
        return None
    # MLflow copies Anthropic's key names; whether input includes them varies by flavor, and
    # MLflow always reports total_tokens, which decides it (see _resolve_usage).
    return (
        inp,
        out,
        _num(d.get("cache_read_input_tokens")),
        _num(d.get("cache_creation_input_tokens")),
        None,
        total,
        _AUTO,
    )


def _vercel_usage(get: Any) -> _Usage | None:
    total = parse_int(get("ai.usage.totalTokens"))
    if get("ai.usage.inputTokenDetails.noCacheTokens") or get("ai.usage.inputTokenDetails.cacheReadTokens"):
        # AI SDK 6+: inputTokens is the total, with a noCache/cacheRead/cacheWrite breakdown;
        # outputTokens includes reasoning.
        return (
            parse_int(get("ai.usage.inputTokens")),
            parse_int(get("ai.usage.outputTokens")),
            parse_int(get("ai.usage.inputTokenDetails.cacheReadTokens")),
            parse_int(get("ai.usage.inputTokenDetails.cacheWriteTokens")),
            _first_int(get, ("ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens")),
            total,
            _INCLUSIVE,
        )
    inp = _first_int(get, ("ai.usage.inputTokens", "ai.usage.promptTokens"))
    out = _first_int(get, ("ai.usage.outputTokens", "ai.usage.completionTokens"))
    if inp is None and out is None:
        tokens = parse_int(get("ai.usage.tokens"))  # embeddings
        if tokens is None and total is None:
            return None
        return tokens, None, None, None, None, total, _INCLUSIVE
    cr = parse_int(get("ai.usage.cachedInputTokens"))
    cw = None
    mode = _INCLUSIVE
    provider = (get("ai.model.provider") or "").lower()
    if "anthropic" in provider or "bedrock" in provider:
        # AI SDK 3-5 passes Anthropic's / Bedrock Converse's input count through unchanged: it
        # excludes cachedInputTokens (cache reads), and cache writes appear only in
        # ai.response.providerMetadata (anthropic.cacheCreationInputTokens,
        # bedrock.usage.cacheWriteInputTokens). OpenAI/Google counts include their cache.
        mode = _EXCLUSIVE
        meta = get("ai.response.providerMetadata")
        if meta and ("acheCreationInputTokens" in meta or "acheWriteInputTokens" in meta):
            cw = _vercel_cache_write(_json(meta))
    return inp, out, cr, cw, parse_int(get("ai.usage.reasoningTokens")), total, mode


def _vercel_cache_write(meta: Any) -> int | None:
    if not isinstance(meta, dict):
        return None
    anthropic = meta.get("anthropic")
    if isinstance(anthropic, dict):
        n = _num(anthropic.get("cacheCreationInputTokens"))
        if n is not None:
            return n
        usage = anthropic.get("usage")
        if isinstance(usage, dict):
            n = _num(usage.get("cache_creation_input_tokens"))
            if n is not None:
                return n
    bedrock = meta.get("bedrock")
    if isinstance(bedrock, dict):
        usage = bedrock.get("usage")
        if isinstance(usage, dict):
            return _num(usage.get("cacheWriteInputTokens"))
    return None


def _openinference_usage(get: Any) -> _Usage | None:
    inp = parse_int(get("llm.token_count.prompt"))
    out = parse_int(get("llm.token_count.completion"))
    total = parse_int(get("llm.token_count.total"))
    if inp is None and out is None and total is None:
        return None
    # The spec and the Anthropic instrumentation (since 2025-03) count cache reads and writes
    # inside llm.token_count.prompt. The Bedrock Converse path passes inputTokens, which
    # excludes them, with a totalTokens that includes them: the total check catches that.
    return (
        inp,
        out,
        parse_int(get("llm.token_count.prompt_details.cache_read")),
        parse_int(get("llm.token_count.prompt_details.cache_write")),
        parse_int(get("llm.token_count.completion_details.reasoning")),
        total,
        _INCLUSIVE,
    )


_OTEL_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OTEL_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_OTEL_TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")
_OTEL_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",  # OTel
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry >= 0.5, OpenLIT
    "llm.usage.reasoning_tokens",  # OpenLLMetry < 0.5
    "gen_ai.usage.details.reasoning_tokens",  # pydantic-ai
    "gen_ai.usage.reasoning_output_tokens",
    "gen_ai.usage.completion_tokens_details.reasoning",  # OpenLIT
)


def _otel_usage(get: Any) -> _Usage | None:
    inp = _first_int(get, _OTEL_INPUT)
    out = _first_int(get, _OTEL_OUTPUT)
    total = _first_int(get, _OTEL_TOTAL)
    if inp is None and out is None and total is None:
        return None
    # Which cache attribute names the producer used says how it counts input.
    cr = parse_int(get("gen_ai.usage.cache_read.input_tokens"))
    cw = _first_int(
        get, ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens")
    )
    mode = _INCLUSIVE  # current OTel names: "SHOULD be included in gen_ai.usage.input_tokens"
    if cr is None and cw is None:
        # pydantic-ai's usage details, and OpenAI-style cached counts, are inside input.
        cr = _first_int(get, ("gen_ai.usage.details.cache_read_tokens", "gen_ai.usage.cached_input_tokens"))
        cw = parse_int(get("gen_ai.usage.details.cache_write_tokens"))
    if cr is None and cw is None:
        # Anthropic's own field names, copied next to Anthropic's input_tokens (which excludes
        # them) by hand-rolled and Strands instrumentation, but next to an input that includes
        # them by OpenLLMetry (which also reports total = input + output): decided per span.
        cr = _first_int(
            get,
            (
                "gen_ai.usage.cache_read_input_tokens",
                "gen_ai.usage.cache_read_tokens",
                "gen_ai.usage.prompt_tokens_details.cache_read",
            ),
        )
        cw = _first_int(
            get,
            (
                "gen_ai.usage.cache_creation_input_tokens",
                "gen_ai.usage.cache_write_input_tokens",
                "gen_ai.usage.cache_write_tokens",
                "gen_ai.usage.prompt_tokens_details.cache_write",
            ),
        )
        mode = _AUTO
    return inp, out, cr, cw, _first_int(get, _OTEL_REASONING), total, mode


# -- reported cost ---------------------------------------------------------------------------


def _cost_from_details(raw: str) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """Langfuse cost_details / MLflow mlflow.llm.cost JSON -> (total, input, output)."""
    d = _json(raw)
    if isinstance(d, str):
        d = _json(d)
    if not isinstance(d, dict):
        return None, None, None
    total = inp = out = None
    for key, value in d.items():
        v = parse_decimal(value)
        if v is None:
            continue
        k = key.lower()
        if k in ("total", "total_cost"):
            total = v
        elif "input" in k or "prompt" in k or "cache" in k:
            inp = v if inp is None else inp + v
        elif "output" in k or "completion" in k or "reasoning" in k:
            out = v if out is None else out + v
    return total, inp, out


def _reported_cost(get: Any) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    total = inp = out = None
    raw = get("langfuse.observation.cost_details") or get("mlflow.llm.cost")
    if raw:
        total, inp, out = _cost_from_details(raw)
    if total is None and inp is None and out is None:
        # OpenInference llm.cost.*; gen_ai.usage.cost (OpenLIT and others, USD total).
        total = parse_decimal(get("llm.cost.total"))
        if total is None:
            total = parse_decimal(get("gen_ai.usage.cost"))
        inp = parse_decimal(get("llm.cost.prompt"))
        out = parse_decimal(get("llm.cost.completion"))
    if total is None and (inp is not None or out is not None):
        total = (inp or Decimal(0)) + (out or Decimal(0))
    return total, inp, out


# -- message text (only for token estimation) ------------------------------------------------

# Keys whose string values are structure, not content the model read or wrote.
_SKIP_KEYS = frozenset(
    {
        "role",
        "type",
        "id",
        "tool_call_id",
        "toolCallId",
        "finish_reason",
        "finishReason",
        "model",
        "mime_type",
        "mimeType",
        "media_type",
        "modality",
        "url",
        "uri",
        "image_url",
        "data",
        "signature",
        "encrypted_content",
        "detail",
        "name",
        "provider",
        "providerOptions",
        "cache_control",
    }
)
_BINARY_PART_TYPES = frozenset(
    {"blob", "image", "image_url", "file", "audio", "input_audio", "uri", "input_image"}
)


def _collect(value: Any, out: list[str]) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if v:
                out.append(v)
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            if v.get("type") in _BINARY_PART_TYPES:
                continue
            stack.extend(reversed([x for k, x in v.items() if k not in _SKIP_KEYS]))


def _text_of(raw: str | None, out: list[str]) -> None:
    """Content text of an attribute value: JSON messages/parts walked for their strings, any
    other string taken as it is."""
    if not raw:
        return
    c = raw[0]
    if c in '[{"':
        parsed = _json(raw)
        if parsed is not None:
            _collect(parsed, out)
            return
    out.append(raw)


def _indexed(get: Any, prefix: str, suffix: str, out: list[str]) -> bool:
    """Flattened lists: gen_ai.prompt.0.content, llm.input_messages.0.message.content ...
    A message without content (a tool call) does not end the list while its role is there."""
    found = False
    for i in range(10_000):
        v = get(f"{prefix}{i}{suffix}")
        if v is not None:
            found = True
            _text_of(v, out)
        elif get(f"{prefix}{i}.role") is None and get(f"{prefix}{i}.message.role") is None:
            break
    return found


def _openinference_contents(get: Any, prefix: str, out: list[str]) -> bool:
    """llm.input_messages.N.message.contents.M.message_content.text (multimodal messages)."""
    found = False
    for i in range(10_000):
        if get(f"{prefix}{i}.message.contents.0.message_content.text") is None:
            if get(f"{prefix}{i}.message.role") is None:
                break
            continue
        for j in range(10_000):
            v = get(f"{prefix}{i}.message.contents.{j}.message_content.text")
            if v is None:
                break
            found = True
            out.append(v)
    return found


def _input_text(get: Any) -> str:
    out: list[str] = []
    si = get("gen_ai.system_instructions")
    im = get("gen_ai.input.messages")
    if si or im:
        _text_of(si, out)
        _text_of(im, out)
    elif get("gen_ai.prompt"):
        _text_of(get("gen_ai.prompt"), out)
    elif (
        _indexed(get, "gen_ai.prompt.", ".content", out)
        or _indexed(get, "llm.prompts.", ".content", out)
        or _indexed(get, "llm.input_messages.", ".message.content", out)
        or _openinference_contents(get, "llm.input_messages.", out)
    ):
        pass
    elif get("ai.prompt.messages"):
        _text_of(get("ai.prompt.messages"), out)
    elif get("ai.prompt"):
        _text_of(get("ai.prompt"), out)
    elif get("ai.values") or get("ai.value"):
        _text_of(get("ai.values") or get("ai.value"), out)
    elif get("langfuse.observation.input"):
        _text_of(get("langfuse.observation.input"), out)
    elif get("mlflow.spanInputs"):
        _text_of(get("mlflow.spanInputs"), out)
    elif get("input.value"):
        _text_of(get("input.value"), out)
    else:
        _indexed(get, "embedding.embeddings.", ".embedding.text", out)
    return "\n".join(out)


def _output_text(get: Any) -> str:
    out: list[str] = []
    om = get("gen_ai.output.messages")
    if om:
        _text_of(om, out)
    elif get("gen_ai.completion"):
        _text_of(get("gen_ai.completion"), out)
    elif (
        _indexed(get, "gen_ai.completion.", ".content", out)
        or _indexed(get, "llm.completions.", ".content", out)
        or _indexed(get, "llm.output_messages.", ".message.content", out)
        or _openinference_contents(get, "llm.output_messages.", out)
    ):
        pass
    elif get("ai.response.text") or get("ai.response.object") or get("ai.response.toolCalls"):
        _text_of(get("ai.response.text"), out)
        _text_of(get("ai.response.object"), out)
        _text_of(get("ai.response.toolCalls"), out)
    elif get("langfuse.observation.output"):
        _text_of(get("langfuse.observation.output"), out)
    elif get("mlflow.spanOutputs"):
        _text_of(get("mlflow.spanOutputs"), out)
    elif get("output.value"):
        _text_of(get("output.value"), out)
    return "\n".join(out)


# -- extract ---------------------------------------------------------------------------------

# A span is looked at only if it has one of these keys: every convention above sets at least one
# of them on every span it marks as GenAI.
_MARKERS = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.total_tokens",
        "gen_ai.tool.name",
        "openinference.span.kind",
        "llm.model_name",
        "llm.token_count.prompt",
        "llm.request.type",
        "llm.usage.total_tokens",
        "traceloop.span.kind",
        "ai.operationId",
        "ai.model.id",
        "langfuse.observation.type",
        "langfuse.observation.model.name",
        "langfuse.observation.usage_details",
        "mlflow.spanType",
        "mlflow.chat.tokenUsage",
    }
)

_REQUEST_MODEL_KEYS = (
    "gen_ai.request.model",
    "ai.model.id",
    "llm.request.model_name",
    "llm.model_name",  # OpenInference: the response model when known, else the requested one
    "embedding.model_name",
    "reranker.model_name",
    "langfuse.observation.model.name",
)
_RESPONSE_MODEL_KEYS = (
    "gen_ai.response.model",
    "ai.response.model",
    "llm.response.model_name",
    "llm.model_name",
)


# The one-hour part of the cache writes (Anthropic's usage.cache_creation.ephemeral_1h_input_tokens).
CACHE_WRITE_1H_KEYS = (
    "tracehouse.usage.cache_creation_1h.input_tokens",
    "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens",
)


def extract(
    span_attrs: dict[str, str], resource_attrs: dict[str, str], span_name: str = ""
) -> GenAIFacts | None:
    """Canonical GenAI facts of a span, or None when the span carries no GenAI/LLM semantics at all.

    Everything is read from the span's own attributes (`resource_attrs` is accepted for the
    processor's uniform call and is not consulted: no convention puts usage or models there).
    Spans of NON_MODEL_OPERATIONS get operation/provider/models only. `input_text` and
    `output_text` are filled only when the producer reported no usage.
    """
    if _MARKERS.isdisjoint(span_attrs):
        return None
    get = span_attrs.get
    operation = _operation(get, span_name)

    request_model = _first(get, _REQUEST_MODEL_KEYS) or _unquote(get("mlflow.llm.model"))
    response_model = _first(get, _RESPONSE_MODEL_KEYS)

    p = get("gen_ai.provider.name") or get("gen_ai.system") or get("ai.model.provider")
    if p:
        provider = normalize_provider(p)
    elif get("llm.provider") or get("llm.system"):
        provider = _openinference_provider(get("llm.provider") or "", get("llm.system") or "")
    elif get("mlflow.llm.provider"):
        provider = normalize_provider(_unquote(get("mlflow.llm.provider")))
    else:
        provider = ""
    if provider in _FRAMEWORKS:
        provider = ""
    if not provider:
        host = get("server.address")
        provider = _provider_from_host(host) if host else ""

    facts = GenAIFacts(
        operation=operation, provider=provider, request_model=request_model, response_model=response_model
    )
    if operation in NON_MODEL_OPERATIONS:
        # Aggregates of the model calls below them, if anything: see NON_MODEL_OPERATIONS.
        return facts if (operation or provider or request_model or response_model) else None

    raw = get("langfuse.observation.usage_details")
    usage = _langfuse_usage(raw) if raw else None
    if usage is None:
        raw = get("mlflow.chat.tokenUsage")
        usage = _mlflow_usage(raw) if raw else None
    if usage is None and (get("ai.operationId") or get("ai.model.id")):
        usage = _vercel_usage(get)
    if usage is None:
        usage = _openinference_usage(get)
    if usage is None:
        usage = _otel_usage(get)

    if usage is not None:
        inp, out, cr, cw, rs, total, mode = usage
        facts.input_tokens, facts.output_tokens, facts.total_tokens = _resolve_usage(
            inp, out, cr, cw, rs, total, mode
        )
        facts.cache_read_tokens = cr
        facts.cache_write_tokens = cw
        facts.reasoning_tokens = rs
        if cw:
            facts.cache_write_1h_tokens = _first_int(get, CACHE_WRITE_1H_KEYS)
    facts.price_context = price_context.from_attributes(get)

    facts.reported_cost_usd, facts.reported_input_cost_usd, facts.reported_output_cost_usd = _reported_cost(
        get
    )

    if not facts.has_usage:
        facts.input_text = _input_text(get)
        facts.output_text = _output_text(get)
    if (
        operation
        or provider
        or request_model
        or response_model
        or facts.has_usage
        or facts.reported_cost_usd is not None
    ):
        return facts
    return None


# -- context ids -----------------------------------------------------------------------------

_SESSION_KEYS = (
    "session.id",  # OTel registry, OpenInference, Langfuse, MLflow (root span)
    "gen_ai.conversation.id",  # OTel GenAI
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.sessionId",
    "ai.telemetry.metadata.sessionId",  # Vercel AI SDK metadata, Langfuse's documented key
    "ai.telemetry.metadata.session_id",
    "mlflow.trace.session",
    "langfuse.trace.metadata.langfuse_session_id",
)
_USER_KEYS = (
    "user.id",  # OTel registry, OpenInference, Langfuse, MLflow (root span)
    "enduser.id",  # OTel registry (the application's end user)
    "langfuse.user.id",
    "traceloop.association.properties.user_id",
    "traceloop.association.properties.userId",
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user_id",
    "mlflow.trace.user",
    "langfuse.trace.metadata.langfuse_user_id",
    "gen_ai.user",  # OpenLLMetry: the request's end-user field (OpenAI `user`)
    "llm.user",
)
_RUN_KEYS = (
    "tracehouse.run.id",
    "mlflow.runId",
    "mlflow.sourceRun",
    "langfuse.experiment.id",  # a Langfuse experiment id identifies one dataset run
)
_EXPERIMENT_KEYS = (
    "tracehouse.experiment.name",
    "mlflow.experimentName",
    "langfuse.experiment.name",
    "mlflow.experimentId",  # no name on MLflow spans; the id still groups them
)
# key -> (field, rank): field 0..3 = session, user, run, experiment; lower rank wins.
_CONTEXT_FIELDS = {
    key: (field, rank)
    for field, keys in enumerate((_SESSION_KEYS, _USER_KEYS, _RUN_KEYS, _EXPERIMENT_KEYS))
    for rank, key in enumerate(keys)
}
_CONTEXT_KEYS = frozenset(_CONTEXT_FIELDS)


def _scan_context(attrs: dict[str, str], out: list[str], fixed: tuple[bool, ...]) -> None:
    """Fill out[field] from the best-ranked non-empty key of `attrs`, except fixed fields."""
    ranks = [len(_CONTEXT_FIELDS)] * 4
    for key in _CONTEXT_KEYS.intersection(attrs):
        field, rank = _CONTEXT_FIELDS[key]
        if fixed[field] or rank >= ranks[field]:
            continue
        v = attrs[key]
        if v and key.startswith("mlflow."):
            v = _unquote(v)
        if v:
            out[field] = v
            ranks[field] = rank


def context_ids(span_attrs: dict[str, str], resource_attrs: dict[str, str]) -> tuple[str, str, str, str]:
    """(session_id, user_id, run_id, experiment_name) from any convention; '' where absent.
    Applies to every span, LLM or not; span attributes win over resource attributes."""
    out = ["", "", "", ""]
    if not _CONTEXT_KEYS.isdisjoint(span_attrs):
        _scan_context(span_attrs, out, (False, False, False, False))
    if resource_attrs and not _CONTEXT_KEYS.isdisjoint(resource_attrs) and not all(out):
        _scan_context(resource_attrs, out, (bool(out[0]), bool(out[1]), bool(out[2]), bool(out[3])))
    return out[0], out[1], out[2], out[3]


# -- evaluation events -----------------------------------------------------------------------

EVALUATION_EVENT = "gen_ai.evaluation.result"
_EVAL_NAME = "gen_ai.evaluation.name"
_EVAL_SCORE = "gen_ai.evaluation.score.value"
_EVAL_LABEL = "gen_ai.evaluation.score.label"
_EVAL_EXPLANATION = "gen_ai.evaluation.explanation"
_RESPONSE_ID = "gen_ai.response.id"

# Older and other spellings of the same facts: the 2024 draft (event gen_ai.evaluation.<method>,
# e.g. gen_ai.evaluation.user_feedback, with gen_ai.evaluation.score and a `comment`), Microsoft's
# Azure AI Foundry samples (gen_ai.evaluation.<name> with gen_ai.evaluation.score /
# gen_ai.evaluation.reasoning / gen_ai.evaluation.result as the label), OpenInference's
# evaluation.* attribute names.
_EVAL_NAME_KEYS = ("gen_ai.evaluation.metric", "evaluation.name", "gen_ai.evaluator.name")
_EVAL_SCORE_KEYS = ("gen_ai.evaluation.score", "evaluation.score", "score")
_EVAL_LABEL_KEYS = (
    "gen_ai.evaluation.label",
    "gen_ai.evaluation.result",
    "gen_ai.evaluation.verdict",
    "evaluation.label",
    "label",
)
_EVAL_EXPLANATION_KEYS = (
    "gen_ai.evaluation.reasoning",
    "gen_ai.evaluation.comment",
    "evaluation.explanation",
    "explanation",
    "comment",
)
_RESPONSE_ID_KEYS = ("gen_ai.evaluation.response_id", "response_id")


def _evaluation_method(name: str) -> str | None:
    """The evaluation named by an event name, '' for the canonical event, None for others."""
    if name == EVALUATION_EVENT:
        return ""
    if name.startswith("gen_ai.evaluation."):
        return name[len("gen_ai.evaluation.") :]
    if name.startswith("gen_ai.") and ".evaluation." in name:
        return name.split(".evaluation.", 1)[1]  # vendor pattern gen_ai.<system>.evaluation.<method>
    return None


def _score(value: str) -> str | None:
    """The score as sent when it is a finite number, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return value.strip() if math.isfinite(f) else None


def normalize_evaluation_event(name: str, attrs: dict[str, str]) -> dict[str, str]:
    """For an evaluation-result event (gen_ai.evaluation.result and its older spellings),
    ``attrs`` with the canonical keys added where they are missing; originals are kept and a
    canonical key already present is never overwritten. Other events: ``attrs`` itself."""
    method = _evaluation_method(name or "")
    if method is None:
        return attrs
    out = dict(attrs)
    get = attrs.get
    if not get(_EVAL_NAME):
        v = _first(get, _EVAL_NAME_KEYS) or method
        if v:
            out[_EVAL_NAME] = v
    label = ""
    if not get(_EVAL_LABEL):
        label = _first(get, _EVAL_LABEL_KEYS)
    if not get(_EVAL_SCORE):
        raw = _first(get, _EVAL_SCORE_KEYS).strip()
        if raw:
            score = _score(raw)
            if score is None and raw.lower() in ("true", "false"):
                score = "1" if raw.lower() == "true" else "0"
            if score is not None:
                out[_EVAL_SCORE] = score
            elif not label and not get(_EVAL_LABEL):
                label = raw  # "pass" / "relevant" sent as the score is a label
    if label:
        out[_EVAL_LABEL] = label
    if not get(_EVAL_EXPLANATION):
        v = _first(get, _EVAL_EXPLANATION_KEYS)
        if v:
            out[_EVAL_EXPLANATION] = v
    if not get(_RESPONSE_ID):
        v = _first(get, _RESPONSE_ID_KEYS)
        if v:
            out[_RESPONSE_ID] = v
    return out
