"""The canonical facts of an LLM span, whatever convention its producer used.

The normaliser (`normalize`) reads them off a span's attributes; token estimation (`tokens`)
fills usage that is missing; pricing (`cost`) turns usage into money; `llm` writes the facts
into the typed columns of `otel_traces`.

Token counts follow OpenTelemetry GenAI semantics: `input_tokens` includes cached tokens (read
and written) and `output_tokens` includes reasoning tokens, so the typed columns never double
count when they are added up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tracehouse_collector.processors.price_context import PriceContext


@dataclass
class GenAIFacts:
    operation: str = ""  # gen_ai.operation.name: chat, text_completion, embeddings, execute_tool, ...
    provider: str = ""  # gen_ai.provider.name vocabulary: openai, anthropic, aws.bedrock, gcp.gemini, ...
    request_model: str = ""
    response_model: str = ""
    input_tokens: int | None = None  # includes cache_read_tokens and cache_write_tokens
    output_tokens: int | None = None  # includes reasoning_tokens
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None  # the one-hour part of cache_write_tokens (Anthropic)
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    # A cost the producer reported (USD); it wins over computed prices.
    reported_cost_usd: Decimal | None = None
    reported_input_cost_usd: Decimal | None = None
    reported_output_cost_usd: Decimal | None = None
    # Request context selecting a price variant (service tier, batch, speed): see price_context.
    price_context: PriceContext = ()
    # Message content, used only to estimate tokens when the producer reported no usage.
    input_text: str = ""
    output_text: str = ""

    @property
    def model(self) -> str:
        return self.response_model or self.request_model

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None or self.total_tokens is not None
