"""The normaliser: whatever convention a producer used -> canonical GenAI facts.

Spans arrive as plain rows whose attribute maps are ``dict[str, str]`` (see ``rows``). This
module reads them and answers three questions, without changing the row:

* ``extract``: the canonical ``GenAIFacts`` of an LLM/GenAI span (operation, provider, models,
  token usage with OpenTelemetry semantics, a cost the producer reported), or ``None`` for a
  span with no GenAI semantics at all;
* ``context_ids``: session, user, run and experiment of any span;
* ``normalize_evaluation_event``: canonical keys for evaluation-result events
  (``evaluation_events``).

What each producer calls these facts is declared in ``producers/`` (one module per convention:
OpenTelemetry GenAI current and deprecated, OpenInference, OpenLLMetry/Traceloop, Vercel AI SDK,
Langfuse, MLflow, pydantic-ai, Tracehouse's own), applied in their declared precedence by
``resolve``. This module is the order the facts are read in.

Token semantics are OpenTelemetry's: ``input_tokens`` includes cache reads and cache writes,
``output_tokens`` includes reasoning tokens; ``usage.to_otel`` folds in, once, what a producer
reported outside them.

Cost: this runs on every span. A span with none of the marker keys costs one C-level
``isdisjoint`` over its keys; JSON is parsed only for the attributes that need it, and message
text (for token estimation) is only assembled when the producer reported no usage at all.
"""

from __future__ import annotations

from tracehouse_collector.processors import price_context, producers
from tracehouse_collector.processors.evaluation_events import normalize_evaluation_event
from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.provider_names import (
    NOT_A_PROVIDER,
    normalize_provider,
    provider_from_host,
)
from tracehouse_collector.processors.resolve import Conventions
from tracehouse_collector.processors.semconv import NON_MODEL_OPERATIONS, SERVER_ADDRESS
from tracehouse_collector.processors.usage import to_otel
from tracehouse_collector.processors.values import parse_decimal, parse_int

__all__ = [
    "CONVENTIONS",
    "NON_MODEL_OPERATIONS",
    "context_ids",
    "extract",
    "normalize_evaluation_event",
    "normalize_provider",
    "parse_decimal",
    "parse_int",
]

# Every known producer's declarations, as lookup tables (built once, at import).
CONVENTIONS = Conventions(producers.load(), producers.ASPECT_PRECEDENCE)


def extract(
    span_attrs: dict[str, str],
    resource_attrs: dict[str, str],
    span_name: str = "",
    conventions: Conventions = CONVENTIONS,
) -> GenAIFacts | None:
    """Canonical GenAI facts of a span, or None when the span carries no GenAI/LLM semantics at all.

    Everything is read from the span's own attributes (`resource_attrs` is accepted for the
    processor's uniform call and is not consulted: no convention puts usage or models there).
    Spans of NON_MODEL_OPERATIONS get operation/provider/models only. `input_text` and
    `output_text` are filled only when the producer reported no usage.
    """
    if conventions.markers.isdisjoint(span_attrs):
        return None
    get = span_attrs.get
    operation = conventions.operation(get, span_name)
    request_model = conventions.request_model(get)
    response_model = conventions.response_model(get)
    provider = conventions.provider(get)
    if provider in NOT_A_PROVIDER:
        provider = ""  # an orchestration framework or a placeholder names no endpoint
    if not provider:
        host = get(SERVER_ADDRESS)
        provider = provider_from_host(host) if host else ""

    facts = GenAIFacts(
        operation=operation, provider=provider, request_model=request_model, response_model=response_model
    )
    if operation in NON_MODEL_OPERATIONS:
        # Aggregates of the model calls below them, if anything: see NON_MODEL_OPERATIONS.
        return facts if (operation or provider or request_model or response_model) else None

    usage = conventions.usage(get)
    if usage is not None:
        facts.input_tokens, facts.output_tokens, facts.total_tokens = to_otel(usage)
        facts.cache_read_tokens = usage.cache_read_tokens
        facts.cache_write_tokens = usage.cache_write_tokens
        facts.reasoning_tokens = usage.reasoning_tokens
        if usage.cache_write_tokens:
            facts.cache_write_1h_tokens = conventions.cache_write_1h(get)
    facts.price_context = price_context.of_span(span_attrs)
    if not conventions.cost_keys.isdisjoint(span_attrs):
        facts.reported_cost_usd, facts.reported_input_cost_usd, facts.reported_output_cost_usd = (
            conventions.reported_cost(get)
        )

    if not facts.has_usage:
        facts.input_text = conventions.input_text(get)
        facts.output_text = conventions.output_text(get)
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


def context_ids(
    span_attrs: dict[str, str], resource_attrs: dict[str, str], conventions: Conventions = CONVENTIONS
) -> tuple[str, str, str, str]:
    """(session_id, user_id, run_id, experiment_name) from any convention; '' where absent.
    Applies to every span, LLM or not; span attributes win over resource attributes."""
    out = ["", "", "", ""]
    keys = conventions.context_keys
    if not keys.isdisjoint(span_attrs):
        conventions.scan_context(span_attrs, out, (False, False, False, False))
    if resource_attrs and not keys.isdisjoint(resource_attrs) and not all(out):
        conventions.scan_context(
            resource_attrs, out, (bool(out[0]), bool(out[1]), bool(out[2]), bool(out[3]))
        )
    return out[0], out[1], out[2], out[3]
