"""Langfuse's OTel attributes (`langfuse.observation.*`, `langfuse.session.id` ...): usage and
cost as JSON objects of buckets."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import (
    Buckets,
    CacheKeys,
    OperationKey,
    Producer,
    Text,
    UsageKeys,
)

_USAGE = "langfuse.observation.usage_details"
_METADATA = "langfuse.trace.metadata."

PRODUCER = Producer(
    name="langfuse",
    markers=frozenset({"langfuse.observation.type", "langfuse.observation.model.name", _USAGE}),
    operation=(
        OperationKey(
            "langfuse.observation.type",
            values={
                "generation": sc.CHAT,
                "embedding": sc.EMBEDDINGS,
                "agent": sc.INVOKE_AGENT,
                "tool": sc.EXECUTE_TOOL,
                "chain": sc.CHAIN,
                "retriever": sc.RETRIEVAL,
                "evaluator": sc.EVALUATION,
                "guardrail": sc.GUARDRAIL,
                "span": "",
                "event": "",
            },
        ),
    ),
    request_model=("langfuse.observation.model.name",),
    usage=(
        # An OpenAI-shaped usage object: prompt_tokens already includes cached_tokens.
        UsageKeys(
            json=_USAGE,
            when=("prompt_tokens", "completion_tokens"),
            when_is_enough=True,
            input=("prompt_tokens",),
            output=("completion_tokens",),
            total=("total_tokens",),
            reasoning=("completion_tokens_details.reasoning_tokens",),
            caches=(CacheKeys(read=("prompt_tokens_details.cached_tokens",)),),
        ),
        # usage_details proper: disjoint buckets ({"input": 10, "input_cached_tokens": 90,
        # "output": 5, "output_reasoning_tokens": 2, "total": 107}); Langfuse itself sums every key
        # containing "input" / "output".
        Buckets(json=_USAGE),
    ),
    cost=(Buckets(json="langfuse.observation.cost_details", total=("total", "total_cost")),),
    input_messages=(Text(("langfuse.observation.input",)),),
    output_messages=(Text(("langfuse.observation.output",)),),
    session=("langfuse.session.id", _METADATA + "langfuse_session_id"),
    user=("langfuse.user.id", _METADATA + "langfuse_user_id"),
    run=("langfuse.experiment.id",),  # a Langfuse experiment id identifies one dataset run
    experiment=("langfuse.experiment.name",),
)
