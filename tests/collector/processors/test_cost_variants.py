"""Cost as the provider bills it: price variants chosen by the span's context, one-hour cache
writes, failed calls without usage, and unpriced models. Every expected price is genai-prices'
own `calc_price` with the same context, computed independently of Tracehouse's rate cache."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from tracehouse_collector.processors import llm, normalize, price_context
from tracehouse_collector.processors.cost import GENAI_PRICES_SOURCE, UNPRICED_SOURCE, Pricer
from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.rows import Rows

TODAY = dt.date(2026, 11, 26)  # after the batch variants' start date (2026-10-14)
USAGE = {"input_tokens": 1000, "output_tokens": 100}


def _library(model: str, provider_id: str, context: dict[str, str] | None, **usage: int) -> Decimal:
    when = dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=dt.UTC)
    return calc_price(
        Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=when, price_context=context
    ).total_price


def _facts(provider: str, model: str, attrs: dict[str, str], **usage: int) -> GenAIFacts:
    return GenAIFacts(
        provider=provider,
        request_model=model,
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        cache_write_tokens=usage.get("cache_write_tokens"),
        cache_write_1h_tokens=usage.get("cache_write_1h_tokens"),
        price_context=price_context.from_attributes(attrs.get),
    )


# (provider, genai-prices id, model, span attributes, the context genai-prices must be given)
VARIANTS = [
    (
        "openai",
        "openai",
        "gpt-4o",
        {"openai.response.service_tier": "priority"},
        {"service_tier": "priority"},
    ),
    (
        "openai",
        "openai",
        "gpt-4o",
        {"gen_ai.openai.response.service_tier": "priority"},
        {"service_tier": "priority"},
    ),
    (
        "openai",
        "openai",
        "gpt-4.1",
        {"openai.request.service_tier": "priority"},
        {"service_tier": "priority"},
    ),
    ("openai", "openai", "gpt-5", {"openai.response.service_tier": "flex"}, {"service_tier": "flex"}),
    ("openai", "openai", "gpt-4o", {"tracehouse.request.batch": "true"}, {"processing": "batch"}),
    (
        "openai",
        "openai",
        "gpt-4o-mini",
        {"llm.invocation_parameters": '{"temperature": 0, "service_tier": "priority"}'},
        {"service_tier": "priority"},
    ),
    (
        "anthropic",
        "anthropic",
        "claude-haiku-4-5",
        {"tracehouse.response.service_tier": "batch"},
        {"processing": "batch"},
    ),
    (
        "anthropic",
        "anthropic",
        "claude-haiku-4-5",
        {"tracehouse.request.batch": "true"},
        {"processing": "batch"},
    ),
    ("anthropic", "anthropic", "claude-fable-5-2", {"tracehouse.response.speed": "fast"}, {"speed": "fast"}),
    (
        "gcp.gemini",
        "google",
        "gemini-2.5-flash",
        {"tracehouse.request.batch": "true"},
        {"processing": "batch"},
    ),
    (
        "mistral_ai",
        "mistral",
        "codestral-2508",
        {"tracehouse.request.batch": "true"},
        {"processing": "batch"},
    ),
    ("groq", "groq", "openai/gpt-oss-120b", {"tracehouse.request.batch": "true"}, {"processing": "batch"}),
    ("x_ai", "x-ai", "grok-4.3", {"tracehouse.request.batch": "true"}, {"processing": "batch"}),
]


@pytest.mark.parametrize(("provider", "provider_id", "model", "attrs", "context"), VARIANTS)
def test_variant_price_equals_genai_prices_with_the_same_context(
    provider, provider_id, model, attrs, context
):
    cost = Pricer().price(_facts(provider, model, attrs, **USAGE), TODAY)
    expected = _library(model, provider_id, context, **USAGE)
    assert cost is not None
    assert cost.total_usd == expected
    assert expected != _library(model, provider_id, None, **USAGE)  # the variant changes the price
    assert cost.source == GENAI_PRICES_SOURCE + " " + " ".join(f"{k}={v}" for k, v in sorted(context.items()))


def test_priority_gpt_4o_is_billed_70_percent_more():
    pricer = Pricer()
    base = pricer.price(_facts("openai", "gpt-4o", {}, **USAGE), TODAY)
    priority = pricer.price(
        _facts("openai", "gpt-4o", {"openai.response.service_tier": "priority"}, **USAGE), TODAY
    )
    assert base is not None and priority is not None
    assert base.total_usd == Decimal("0.0035") and base.source == GENAI_PRICES_SOURCE
    assert priority.total_usd == Decimal("0.00595")


def test_the_tier_the_provider_returned_wins_over_the_one_requested():
    attrs = {"openai.request.service_tier": "priority", "openai.response.service_tier": "default"}
    cost = Pricer().price(_facts("openai", "gpt-4o", attrs, **USAGE), TODAY)
    assert cost is not None and cost.source == GENAI_PRICES_SOURCE
    assert cost.total_usd == _library("gpt-4o", "openai", None, **USAGE)
    # A request of `auto` says nothing; the response's tier is what was billed.
    assert price_context.from_attributes({"openai.request.service_tier": "auto"}.get) == ()


@pytest.mark.parametrize(
    ("model", "attrs", "named"),
    [
        ("gpt-4o", {"openai.response.service_tier": "scale"}, "service_tier=scale"),  # a tier nobody prices
        ("gpt-4o", {"openai.response.service_tier": "flex"}, "service_tier=flex"),  # no flex price for gpt-4o
    ],
)
def test_unknown_context_values_fall_back_to_the_base_price_and_say_so(model, attrs, named):
    cost = Pricer().price(_facts("openai", model, attrs, **USAGE), TODAY)
    assert cost is not None
    assert cost.total_usd == _library(model, "openai", None, **USAGE)
    assert cost.source == f"{GENAI_PRICES_SOURCE} base price, no {named}"


def test_anthropic_priority_tier_is_base_price_and_named():
    attrs = {"tracehouse.response.service_tier": "priority"}
    cost = Pricer().price(_facts("anthropic", "claude-haiku-4-5", attrs, **USAGE), TODAY)
    assert cost is not None and cost.total_usd == _library("claude-haiku-4-5", "anthropic", None, **USAGE)
    assert cost.source.endswith("base price, no service_tier=priority")


def test_one_applied_and_one_unknown_value_are_both_named():
    attrs = {"tracehouse.request.batch": "true", "tracehouse.response.speed": "turbo"}
    cost = Pricer().price(_facts("anthropic", "claude-haiku-4-5", attrs, **USAGE), TODAY)
    assert cost is not None
    assert cost.total_usd == _library("claude-haiku-4-5", "anthropic", {"processing": "batch"}, **USAGE)
    assert cost.source == f"{GENAI_PRICES_SOURCE} processing=batch, base price, no speed=turbo"


def test_user_prices_apply_to_every_context_and_say_so(tmp_path):
    from tracehouse_collector.processors.cost import load_price_file

    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - name: my-model\n    prices: {input_mtok: 1.0, output_mtok: 2.0}\n")
    pricer = Pricer(load_price_file(path))
    cost = pricer.price(
        _facts("openai", "my-model", {"openai.response.service_tier": "priority"}, **USAGE), TODAY
    )
    assert cost is not None and cost.total_usd == Decimal("0.0012")
    assert cost.source == "user base price, no service_tier=priority"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-fable-5-2"])
def test_one_hour_cache_writes_are_priced_apart(model):
    usage = {
        "input_tokens": 10_000,
        "cache_write_tokens": 4000,
        "cache_write_1h_tokens": 1000,
        "output_tokens": 10,
    }
    cost = Pricer().price(_facts("anthropic", model, {}, **usage), TODAY)
    assert cost is not None and cost.total_usd == _library(model, "anthropic", None, **usage)
    five_minutes_only = {**usage, "cache_write_1h_tokens": 0}
    assert cost.total_usd > _library(model, "anthropic", None, **five_minutes_only)
    batch = Pricer().price(_facts("anthropic", model, {"tracehouse.request.batch": "1"}, **usage), TODAY)
    assert batch is not None and batch.total_usd == _library(
        model, "anthropic", {"processing": "batch"}, **usage
    )


def test_the_normaliser_reads_context_and_one_hour_writes_off_the_span():
    facts = normalize.extract(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": "10000",
            "gen_ai.usage.cache_creation.input_tokens": "4000",
            "tracehouse.usage.cache_creation_1h.input_tokens": "1000",
            "gen_ai.usage.output_tokens": "10",
            "tracehouse.response.service_tier": "batch",
        },
        {},
    )
    assert facts is not None
    assert facts.cache_write_1h_tokens == 1000
    assert facts.price_context == (("processing", "batch"),)


# -- failed calls ------------------------------------------------------------------------------


def _span(attrs: dict[str, str], status: str = "Unset") -> dict:
    return {
        "Timestamp": "2026-11-26 12:00:00.000000000",
        "SpanName": "chat gpt-4o",
        "StatusCode": status,
        "SpanAttributes": attrs,
        "ResourceAttributes": {},
    }


def _enrich(*spans: dict) -> list[dict]:
    rows = Rows()
    rows.tables["otel_traces"] = list(spans)
    llm.enrich(rows, Pricer())
    return rows.tables["otel_traces"]


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
PROMPT = '[{"role": "user", "parts": [{"type": "text", "content": "' + "word " * 400 + '"}]}]'


@pytest.mark.parametrize(
    "attrs",
    [
        {**CHAT, "gen_ai.input.messages": PROMPT, "error.type": "500"},  # HTTP 500, prompt captured
        {**CHAT, "error.type": "openai.RateLimitError"},  # rejected, nothing captured
        {**CHAT, "gen_ai.input.messages": PROMPT, "error.type": "APIConnectionError"},  # never reached it
    ],
)
def test_failed_calls_without_usage_are_not_billed(attrs):
    (row,) = _enrich(_span(attrs, "Error"))
    assert row["PriceSource"] == llm.NOT_BILLED_SOURCE
    assert "TotalCostUSD" not in row and "InputTokens" not in row
    assert not row.get("TokensEstimated")


def test_the_same_prompt_that_succeeded_without_usage_is_still_estimated():
    (row,) = _enrich(_span({**CHAT, "gen_ai.input.messages": PROMPT}))
    assert row["TokensEstimated"] is True and row["InputTokens"] > 0
    assert Decimal(row["TotalCostUSD"]) > 0


@pytest.mark.parametrize(
    "extra",
    [
        # A stream cut after its usage chunk.
        {"gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "100", "error.type": "StreamCut"},
        # A refusal that carried usage (content filter), reported by the SDK as an error.
        {
            "gen_ai.usage.input_tokens": "1000",
            "gen_ai.usage.output_tokens": "100",
            "error.type": "ContentFilter",
        },
    ],
)
def test_failed_calls_that_reported_usage_keep_their_cost(extra):
    (row,) = _enrich(_span({**CHAT, **extra}, "Error"))
    assert row["PriceSource"] == GENAI_PRICES_SOURCE
    assert Decimal(row["TotalCostUSD"]) == _library("gpt-4o", "openai", None, **USAGE)


def test_a_failed_call_with_a_reported_cost_keeps_it():
    (row,) = _enrich(_span({**CHAT, "gen_ai.usage.cost": "0.5", "error.type": "500"}, "Error"))
    assert row["PriceSource"] == "reported" and Decimal(row["TotalCostUSD"]) == Decimal("0.5")


def test_unpriced_models_are_marked_not_free():
    attrs = {**CHAT, "gen_ai.request.model": "mystery-model", "gen_ai.usage.input_tokens": "10"}
    (row,) = _enrich(_span(attrs))
    assert row["PriceSource"] == UNPRICED_SOURCE and "TotalCostUSD" not in row
