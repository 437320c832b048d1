"""OpenTelemetry GenAI semantic conventions: v1.41.1 and the deprecated names before it
(`gen_ai.system`, `gen_ai.usage.prompt_tokens`, `gen_ai.prompt`, the operation only in the span
name), and the `gen_ai.usage.*` spellings other producers write beside them (OpenLLMetry,
pydantic-ai, OpenLIT, Strands), which are read as one usage."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import (
    CacheCounting,
    CacheKeys,
    CostKeys,
    OperationKey,
    OperationMarker,
    Producer,
    Text,
    UsageKeys,
)

PRODUCER = Producer(
    name="otel_genai",
    markers=frozenset(
        {
            sc.GEN_AI_OPERATION_NAME,
            sc.GEN_AI_PROVIDER_NAME,
            sc.GEN_AI_SYSTEM,
            sc.GEN_AI_REQUEST_MODEL,
            sc.GEN_AI_RESPONSE_MODEL,
            sc.GEN_AI_USAGE_INPUT_TOKENS,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS,
            sc.GEN_AI_USAGE_PROMPT_TOKENS,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS,
            "gen_ai.usage.total_tokens",
            sc.GEN_AI_TOOL_NAME,
            sc.GEN_AI_AGENT_NAME,  # an agent span named only "invoke_agent {name}"
        }
    ),
    operation=(
        OperationKey(
            sc.GEN_AI_OPERATION_NAME,
            values={"completion": sc.TEXT_COMPLETION, "embedding": sc.EMBEDDINGS, "reranking": sc.RERANK},
            keep_unknown=True,
        ),
    ),
    # Deprecated spans name the operation only in their name: "chat gpt-4o", "execute_tool get_weather".
    span_name_operations=frozenset(
        {
            sc.CHAT,
            sc.TEXT_COMPLETION,
            sc.EMBEDDINGS,
            sc.GENERATE_CONTENT,
            sc.EXECUTE_TOOL,
            sc.INVOKE_AGENT,
            sc.CREATE_AGENT,
            sc.INVOKE_WORKFLOW,
            sc.RETRIEVAL,
            sc.RERANK,
        }
    ),
    # pydantic-ai tool spans name only the tool.
    operation_fallback=(OperationMarker((sc.GEN_AI_TOOL_NAME, sc.GEN_AI_TOOL_CALL_ID), sc.EXECUTE_TOOL),),
    provider=(sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM),
    request_model=(sc.GEN_AI_REQUEST_MODEL,),
    response_model=(sc.GEN_AI_RESPONSE_MODEL,),
    usage=(
        UsageKeys(
            input=(sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS),
            output=(sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS),
            total=("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),  # the second: OpenLLMetry
            reasoning=(
                sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
                "gen_ai.usage.reasoning_tokens",  # OpenLLMetry >= 0.5, OpenLIT
                "llm.usage.reasoning_tokens",  # OpenLLMetry < 0.5
                "gen_ai.usage.details.reasoning_tokens",  # pydantic-ai
                "gen_ai.usage.reasoning_output_tokens",
                "gen_ai.usage.completion_tokens_details.reasoning",  # OpenLIT
            ),
            # Which cache attribute names the producer used says how it counts input.
            caches=(
                # Current OTel: "SHOULD be included in gen_ai.usage.input_tokens".
                CacheKeys(
                    read=(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,),
                    write=(
                        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                        "gen_ai.usage.cache_write.input_tokens",
                    ),
                ),
                # pydantic-ai's usage details and OpenAI-style cached counts are inside input.
                CacheKeys(
                    read=("gen_ai.usage.details.cache_read_tokens", "gen_ai.usage.cached_input_tokens"),
                    write=("gen_ai.usage.details.cache_write_tokens",),
                ),
                # Anthropic's own field names, copied next to Anthropic's input_tokens (which
                # excludes them) by hand-rolled and Strands instrumentation, but next to an input
                # that includes them by OpenLLMetry (which also reports total = input + output).
                CacheKeys(
                    read=(
                        "gen_ai.usage.cache_read_input_tokens",
                        "gen_ai.usage.cache_read_tokens",
                        "gen_ai.usage.prompt_tokens_details.cache_read",
                    ),
                    write=(
                        "gen_ai.usage.cache_creation_input_tokens",
                        "gen_ai.usage.cache_write_input_tokens",
                        "gen_ai.usage.cache_write_tokens",
                        "gen_ai.usage.prompt_tokens_details.cache_write",
                    ),
                    counting=CacheCounting.BY_TOTAL,
                ),
            ),
        ),
    ),
    cache_write_1h=("gen_ai.usage.cache_creation.ephemeral_1h_input_tokens",),
    cost=(CostKeys(total=("gen_ai.usage.cost",)),),  # OpenLIT and others: a USD total
    input_messages=(
        Text((sc.GEN_AI_SYSTEM_INSTRUCTIONS, sc.GEN_AI_INPUT_MESSAGES)),
        Text((sc.GEN_AI_PROMPT,)),
    ),
    output_messages=(Text((sc.GEN_AI_OUTPUT_MESSAGES,)), Text((sc.GEN_AI_COMPLETION,))),
    # session.id and user.id are the general registry's, also used by OpenInference, Langfuse
    # and MLflow (on the root span); enduser.id is the application's end user.
    session=(sc.SESSION_ID, sc.GEN_AI_CONVERSATION_ID),
    user=(sc.USER_ID, sc.ENDUSER_ID),
)
