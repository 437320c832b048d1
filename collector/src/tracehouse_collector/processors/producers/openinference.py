"""OpenInference (Arize Phoenix, `openinference-semantic-conventions`): `openinference.span.kind`,
`llm.*` model, provider, token counts and cost, flattened `llm.input_messages.N.*`,
`input.value` / `output.value`."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import (
    CacheKeys,
    Case,
    CostKeys,
    Indexed,
    IndexedParts,
    OperationKey,
    Producer,
    ProviderPair,
    Refine,
    Text,
    UsageKeys,
)

_VERTEX = "gcp.vertex_ai"

PRODUCER = Producer(
    name="openinference",
    markers=frozenset({"openinference.span.kind", "llm.model_name", "llm.token_count.prompt"}),
    operation=(
        OperationKey(
            "openinference.span.kind",
            values={
                "LLM": sc.CHAT,
                "EMBEDDING": sc.EMBEDDINGS,
                "RERANKER": sc.RERANK,
                "CHAIN": sc.CHAIN,
                "TOOL": sc.EXECUTE_TOOL,
                "AGENT": sc.INVOKE_AGENT,
                "RETRIEVER": sc.RETRIEVAL,
                "GUARDRAIL": sc.GUARDRAIL,
                "EVALUATOR": sc.EVALUATION,
                "PROMPT": sc.PROMPT,
                "UNKNOWN": "",
            },
            case=Case.UPPER,
            # Completions-API prompts are recorded under llm.prompts.
            refine=(Refine(sc.CHAT, ("llm.prompts", "llm.prompts.0.prompt.text"), sc.TEXT_COMPLETION),),
        ),
    ),
    # llm.provider is the host (azure, aws, google), llm.system the model vendor (openai,
    # anthropic, vertexai). gen_ai.provider.name names the endpoint, so the host wins, refined
    # where OTel has a finer value: Azure OpenAI serves OpenAI models, anything else on Azure is
    # AI Inference (Foundry).
    provider=(
        ProviderPair(
            host="llm.provider",
            vendor="llm.system",
            pairs={
                ("azure", ""): "azure.ai.openai",
                ("azure", "openai"): "azure.ai.openai",
                ("azure", "*"): "azure.ai.inference",
                ("google", "vertexai"): _VERTEX,
                ("google", "vertex_ai"): _VERTEX,
                ("google", "vertex"): _VERTEX,
            },
        ),
    ),
    request_model=(
        "llm.request.model_name",
        "llm.model_name",  # the response model when known, else the requested one
        "embedding.model_name",
        "reranker.model_name",
    ),
    response_model=("llm.response.model_name", "llm.model_name"),
    # The spec and the Anthropic instrumentation (since 2025-03) count cache reads and writes
    # inside llm.token_count.prompt. The Bedrock Converse path passes inputTokens, which
    # excludes them, with a totalTokens that includes them: the total check catches that.
    usage=(
        UsageKeys(
            input=("llm.token_count.prompt",),
            output=("llm.token_count.completion",),
            total=("llm.token_count.total",),
            reasoning=("llm.token_count.completion_details.reasoning",),
            caches=(
                CacheKeys(
                    read=("llm.token_count.prompt_details.cache_read",),
                    write=("llm.token_count.prompt_details.cache_write",),
                ),
            ),
        ),
    ),
    cost=(CostKeys(total=("llm.cost.total",), input=("llm.cost.prompt",), output=("llm.cost.completion",)),),
    input_messages=(
        Indexed("llm.input_messages.", ".message.content"),
        IndexedParts("llm.input_messages.", ".message.contents.", ".message_content.text", ".message.role"),
        Text(("input.value",)),
        Indexed("embedding.embeddings.", ".embedding.text"),
    ),
    output_messages=(
        Indexed("llm.output_messages.", ".message.content"),
        IndexedParts("llm.output_messages.", ".message.contents.", ".message_content.text", ".message.role"),
        Text(("output.value",)),
    ),
)
