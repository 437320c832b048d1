"""The LLM processor: canonical GenAI facts into the typed columns of otel_traces.

For every span: session, user, run and experiment ids from whatever convention carries them,
and canonical keys on `gen_ai.evaluation.result` events. For GenAI spans: operation, provider,
models, token usage (estimated from message content when the producer reported none), and
cost. Original attributes stay untouched in SpanAttributes.

Failed calls: a call whose span ended in error without reporting usage was not billed (the
provider bills tokens it reports, and reports none for a request it rejected or failed), so
its tokens are not estimated and its cost is 0 with PriceSource `not billed: failed without
usage`. A failed call that did report usage (a stream cut after its usage chunk, a refusal
that carries usage) is priced like any other.

Typed columns are written only when they hold something: ClickHouse fills the rest with their
defaults (0, '', false), which keeps rows small to encode and to parse.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from tracehouse_collector.processors import normalize
from tracehouse_collector.processors.cost import UNPRICED_SOURCE, Pricer
from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.rows import Rows, format_timestamp
from tracehouse_collector.processors.tokens import estimate_tokens

# Operations that consume and produce tokens, so missing usage is worth estimating.
TOKEN_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", ""})

NOT_BILLED_SOURCE = "not billed: failed without usage"
UNKNOWN_MODEL_METRIC = "tracehouse.pricing.unknown_model"
COLLECTOR_SERVICE = "tracehouse-collector"

_days: dict[str, dt.date] = {}


def _day(timestamp: str) -> dt.date:
    key = timestamp[:10]
    day = _days.get(key)
    if day is None:
        if len(_days) > 4096:
            _days.clear()
        day = _days[key] = dt.date.fromisoformat(key)
    return day


def _estimate(facts: GenAIFacts) -> bool:
    """Fill missing usage from message content; True when something was estimated."""
    if facts.has_usage or facts.operation not in TOKEN_OPERATIONS:
        return False
    if not facts.input_text and not facts.output_text:
        return False
    model = facts.model
    facts.input_tokens = estimate_tokens(facts.input_text, model)
    facts.output_tokens = estimate_tokens(facts.output_text, model)
    facts.total_tokens = facts.input_tokens + facts.output_tokens
    return True


def _write_facts(row: dict[str, Any], facts: GenAIFacts) -> None:
    """The typed columns of the facts that hold something (written out: this runs per span)."""
    if facts.operation:
        row["GenAIOperation"] = facts.operation
    if facts.provider:
        row["GenAIProvider"] = facts.provider
    if facts.request_model:
        row["GenAIRequestModel"] = facts.request_model
    if facts.response_model:
        row["GenAIResponseModel"] = facts.response_model
    inp, out, total = facts.input_tokens, facts.output_tokens, facts.total_tokens
    if inp:
        row["InputTokens"] = inp
    if out:
        row["OutputTokens"] = out
    if facts.cache_read_tokens:
        row["CacheReadTokens"] = facts.cache_read_tokens
    if facts.cache_write_tokens:
        row["CacheWriteTokens"] = facts.cache_write_tokens
    if facts.reasoning_tokens:
        row["ReasoningTokens"] = facts.reasoning_tokens
    if total is None and (inp or out):
        total = (inp or 0) + (out or 0)
    if total:
        row["TotalTokens"] = total


def enrich_row(row: dict[str, Any], pricer: Pricer, unpriced: Counter[tuple[str, str]]) -> None:
    attrs = row["SpanAttributes"]
    resource = row["ResourceAttributes"]
    session, user, run, experiment = normalize.context_ids(attrs, resource)
    if session:
        row["SessionId"] = session
    if user:
        row["UserId"] = user
    if run:
        row["RunId"] = run
    if experiment:
        row["ExperimentName"] = experiment
    names = row.get("Events.Name")
    if names:
        row["Events.Attributes"] = [
            normalize.normalize_evaluation_event(n, a) for n, a in zip(names, row["Events.Attributes"], strict=True)
        ]

    facts = normalize.extract(attrs, resource, row.get("SpanName", ""))
    if facts is None:
        return
    failed_unbilled = (
        row.get("StatusCode") == "Error" and not facts.has_usage and facts.operation in TOKEN_OPERATIONS
    )
    if not failed_unbilled and _estimate(facts):
        row["TokensEstimated"] = True
    _write_facts(row, facts)

    if failed_unbilled and facts.reported_cost_usd is None and facts.reported_input_cost_usd is None:
        row["PriceSource"] = NOT_BILLED_SOURCE
        return
    cost = pricer.price(facts, _day(row["Timestamp"]))
    if cost is None:
        return
    if cost.source == UNPRICED_SOURCE:
        # Cost columns stay 0: PriceSource says that 0 means "no price", not "free".
        unpriced[(facts.provider, facts.model)] += 1
        row["PriceSource"] = UNPRICED_SOURCE
        return
    # Decimal64(12): strings keep every digit through JSON.
    row["InputCostUSD"] = f"{cost.input_usd:.12f}"
    row["OutputCostUSD"] = f"{cost.output_usd:.12f}"
    row["TotalCostUSD"] = f"{cost.total_usd:.12f}"
    row["PriceSource"] = cost.source


def unknown_model_rows(unpriced: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    """The collector's own metric of spans whose model nobody prices (delta sums)."""
    now = format_timestamp(time.time_ns())
    resource = {"service.name": COLLECTOR_SERVICE}
    return [
        {
            "ResourceAttributes": resource,
            "ServiceName": COLLECTOR_SERVICE,
            "ScopeName": "tracehouse_collector.processors.llm",
            "MetricName": UNKNOWN_MODEL_METRIC,
            "MetricDescription": "LLM spans whose model has no price (PriceSource 'unpriced')",
            "MetricUnit": "{span}",
            "Attributes": {"gen_ai.provider.name": provider, "gen_ai.request.model": model},
            "StartTimeUnix": now,
            "TimeUnix": now,
            "Value": count,
            "AggregationTemporality": 1,  # delta
            "IsMonotonic": True,
        }
        for (provider, model), count in sorted(unpriced.items())
    ]


def enrich(rows: Rows, pricer: Pricer) -> None:
    """Enrich the trace rows of one request in place."""
    spans = rows.tables.get("otel_traces")
    if not spans:
        return
    unpriced: Counter[tuple[str, str]] = Counter()
    for row in spans:
        enrich_row(row, pricer, unpriced)
    if unpriced:
        rows.tables.setdefault("otel_metrics_sum", []).extend(unknown_model_rows(unpriced))
