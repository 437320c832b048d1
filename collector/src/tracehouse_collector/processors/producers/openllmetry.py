"""OpenLLMetry / Traceloop (traceloop/openllmetry `semconv_ai`): `llm.request.type`,
`traceloop.span.kind`, flattened `gen_ai.prompt.N.*` messages, association properties. Its
`gen_ai.usage.*` spellings are read with OTel's (`otel_genai`)."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import Indexed, OperationKey, Producer

_ASSOCIATION = "traceloop.association.properties."

PRODUCER = Producer(
    name="openllmetry",
    markers=frozenset({"llm.request.type", "llm.usage.total_tokens", "traceloop.span.kind"}),
    operation=(
        OperationKey(
            "llm.request.type",
            values={
                "chat": sc.CHAT,
                "completion": sc.TEXT_COMPLETION,
                "embedding": sc.EMBEDDINGS,
                "rerank": sc.RERANK,
                "unknown": "",
            },
        ),
        OperationKey(
            "traceloop.span.kind",
            values={
                "workflow": sc.INVOKE_WORKFLOW,
                "task": sc.EXECUTE_TASK,
                "agent": sc.INVOKE_AGENT,
                "tool": sc.EXECUTE_TOOL,
                "unknown": "",
            },
        ),
    ),
    # Model spans are named "<vendor>.<kind>": openai.chat, bedrock.completion, cohere.rerank.
    span_name_suffixes={
        "chat": sc.CHAT,
        "completion": sc.TEXT_COMPLETION,
        "completions": sc.TEXT_COMPLETION,
        "embeddings": sc.EMBEDDINGS,
        "embedding": sc.EMBEDDINGS,
        "rerank": sc.RERANK,
    },
    input_messages=(Indexed("gen_ai.prompt.", ".content"), Indexed("llm.prompts.", ".content")),
    output_messages=(Indexed("gen_ai.completion.", ".content"), Indexed("llm.completions.", ".content")),
    session=(_ASSOCIATION + "session_id", _ASSOCIATION + "sessionId"),
    user=(
        _ASSOCIATION + "user_id",
        _ASSOCIATION + "userId",
        "gen_ai.user",  # the request's end-user field (OpenAI `user`)
        "llm.user",
    ),
)
