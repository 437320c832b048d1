"""MLflow tracing (`mlflow.spanType`, `mlflow.chat.tokenUsage`, `mlflow.llm.*`, `mlflow.trace.*`).
MLflow stores every attribute value JSON-encoded, so `"LLM"` arrives with its quotes."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import (
    Buckets,
    CacheCounting,
    CacheKeys,
    Case,
    OperationKey,
    Producer,
    Text,
    UsageKeys,
)

PRODUCER = Producer(
    name="mlflow",
    markers=frozenset({"mlflow.spanType", "mlflow.chat.tokenUsage"}),
    json_encoded=True,
    operation=(
        OperationKey(
            "mlflow.spanType",
            values={
                "LLM": sc.CHAT,
                "CHAT_MODEL": sc.CHAT,
                "EMBEDDING": sc.EMBEDDINGS,
                "RERANKER": sc.RERANK,
                "TOOL": sc.EXECUTE_TOOL,
                "AGENT": sc.INVOKE_AGENT,
                "CHAIN": sc.CHAIN,
                "RETRIEVER": sc.RETRIEVAL,
                "PARSER": sc.PARSE,
                "MEMORY": sc.MEMORY,
                "WORKFLOW": sc.INVOKE_WORKFLOW,
                "TASK": sc.EXECUTE_TASK,
                "GUARDRAIL": sc.GUARDRAIL,
                "EVALUATOR": sc.EVALUATION,
                "UNKNOWN": "",
            },
            case=Case.UPPER,
        ),
    ),
    provider=("mlflow.llm.provider",),
    request_model=("mlflow.llm.model",),
    usage=(
        # MLflow copies Anthropic's key names; whether input includes them varies by flavor, and
        # MLflow always reports total_tokens, which decides it.
        UsageKeys(
            json="mlflow.chat.tokenUsage",
            input=("input_tokens",),
            output=("output_tokens",),
            total=("total_tokens",),
            caches=(
                CacheKeys(
                    read=("cache_read_input_tokens",),
                    write=("cache_creation_input_tokens",),
                    counting=CacheCounting.BY_TOTAL,
                ),
            ),
        ),
    ),
    cost=(Buckets(json="mlflow.llm.cost", total=("total", "total_cost")),),
    input_messages=(Text(("mlflow.spanInputs",)),),
    output_messages=(Text(("mlflow.spanOutputs",)),),
    session=("mlflow.trace.session",),
    user=("mlflow.trace.user",),
    run=("mlflow.runId", "mlflow.sourceRun"),
    experiment=("mlflow.experimentName", "mlflow.experimentId"),  # no name on spans: the id still groups them
)
