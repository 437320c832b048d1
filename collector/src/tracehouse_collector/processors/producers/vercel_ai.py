"""Vercel AI SDK telemetry (`ai.*`): the operation id, `ai.model.*`, and usage in the shapes of
AI SDK 3-5 and 6+. It also writes some `gen_ai.*` names, read with OTel's."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import (
    CacheCounting,
    CacheKeys,
    Case,
    JsonPath,
    OperationKey,
    Producer,
    Text,
    UsageKeys,
)

_META = "ai.response.providerMetadata"
_METADATA = "ai.telemetry.metadata."

PRODUCER = Producer(
    name="vercel_ai",
    markers=frozenset({"ai.operationId", "ai.model.id"}),
    # The span name and ai.operationId are the operation id. The outer call spans
    # (ai.generateText ...) carry the usage summed over their doGenerate/doStream steps, which
    # carry it again: the outer ones are mapped to non-model operations (invoke_agent, as the
    # SDK's own OTel integration does; invoke_workflow for embed/rerank wrappers) so only steps
    # are counted.
    operation=(
        OperationKey(
            "ai.operationId",
            values={
                "ai.generateText.doGenerate": sc.CHAT,
                "ai.streamText.doStream": sc.CHAT,
                "ai.generateObject.doGenerate": sc.CHAT,
                "ai.streamObject.doStream": sc.CHAT,
                "ai.embed.doEmbed": sc.EMBEDDINGS,
                "ai.embedMany.doEmbed": sc.EMBEDDINGS,
                "ai.rerank.doRerank": sc.RERANK,
                "ai.toolCall": sc.EXECUTE_TOOL,
                "ai.generateText": sc.INVOKE_AGENT,
                "ai.streamText": sc.INVOKE_AGENT,
                "ai.generateObject": sc.INVOKE_AGENT,
                "ai.streamObject": sc.INVOKE_AGENT,
                "ai.embed": sc.INVOKE_WORKFLOW,
                "ai.embedMany": sc.INVOKE_WORKFLOW,
                "ai.rerank": sc.INVOKE_WORKFLOW,
            },
            case=Case.EXACT,
        ),
    ),
    provider=("ai.model.provider",),
    request_model=("ai.model.id",),
    response_model=("ai.response.model",),
    usage_when=("ai.operationId", "ai.model.id"),
    usage=(
        # AI SDK 6+: inputTokens is the total, with a noCache/cacheRead/cacheWrite breakdown;
        # outputTokens includes reasoning.
        UsageKeys(
            when=("ai.usage.inputTokenDetails.noCacheTokens", "ai.usage.inputTokenDetails.cacheReadTokens"),
            when_is_enough=True,
            input=("ai.usage.inputTokens",),
            output=("ai.usage.outputTokens",),
            total=("ai.usage.totalTokens",),
            reasoning=("ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens"),
            caches=(
                CacheKeys(
                    read=("ai.usage.inputTokenDetails.cacheReadTokens",),
                    write=("ai.usage.inputTokenDetails.cacheWriteTokens",),
                ),
            ),
        ),
        # AI SDK 3-5 (v3 says prompt/completion, v4-5 input/output; embeddings report `tokens`).
        UsageKeys(
            input=("ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"),
            output=("ai.usage.outputTokens", "ai.usage.completionTokens"),
            total=("ai.usage.totalTokens",),
            reasoning=("ai.usage.reasoningTokens",),
            caches=(
                # Anthropic's and Bedrock Converse's input count is passed through unchanged: it
                # excludes cachedInputTokens (cache reads), and cache writes appear only in the
                # provider metadata. OpenAI/Google counts include their cache.
                CacheKeys(
                    read=("ai.usage.cachedInputTokens",),
                    write=(
                        JsonPath(_META, "anthropic.cacheCreationInputTokens"),
                        JsonPath(_META, "anthropic.usage.cache_creation_input_tokens"),
                        JsonPath(_META, "bedrock.usage.cacheWriteInputTokens"),
                    ),
                    counting=CacheCounting.SEPARATE,
                    only_if=("ai.model.provider", ("anthropic", "bedrock")),
                ),
                CacheKeys(read=("ai.usage.cachedInputTokens",)),
            ),
        ),
    ),
    input_messages=(
        Text(("ai.prompt.messages",)),
        Text(("ai.prompt",)),
        Text(("ai.values",)),
        Text(("ai.value",)),
    ),
    output_messages=(Text(("ai.response.text", "ai.response.object", "ai.response.toolCalls")),),
    session=(_METADATA + "sessionId", _METADATA + "session_id"),  # Langfuse's documented key
    user=(_METADATA + "userId", _METADATA + "user_id"),
)
