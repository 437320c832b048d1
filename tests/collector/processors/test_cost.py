"""Pricing: Tracehouse's fast path must give genai-prices' own answer, and user prices win."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from tracehouse_collector.processors.cost import (
    GENAI_PRICES_SOURCE,
    UNPRICED,
    PriceFileError,
    Pricer,
    load_price_file,
)
from tracehouse_collector.processors.genai_facts import GenAIFacts

TODAY = dt.date(2026, 11, 26)


def _library(model: str, provider_id: str, day: dt.date, **usage: int):
    when = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    return calc_price(Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=when)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model", "usage"),
    [
        ("openai", "openai", "gpt-4o", {"input_tokens": 1234, "output_tokens": 567}),
        ("openai", "openai", "gpt-4o", {"input_tokens": 5000, "cache_read_tokens": 4000, "output_tokens": 10}),
        ("openai", "openai", "gpt-4o-mini", {"input_tokens": 1, "output_tokens": 0}),
        (
            "anthropic",
            "anthropic",
            "claude-sonnet-4-5",
            {"input_tokens": 3000, "cache_read_tokens": 1000, "cache_write_tokens": 1500, "output_tokens": 800},
        ),
        # Tiered: above 200k input tokens every token costs the higher rate.
        ("anthropic", "anthropic", "claude-sonnet-4-5", {"input_tokens": 250_000, "output_tokens": 1000}),
        ("gcp.gemini", "google", "gemini-1.5-pro", {"input_tokens": 100_000, "output_tokens": 2000}),
        ("gcp.gemini", "google", "gemini-1.5-pro", {"input_tokens": 300_000, "output_tokens": 2000}),
        ("mistral_ai", "mistral", "mistral-large-latest", {"input_tokens": 777, "output_tokens": 333}),
    ],
)
def test_price_equals_genai_prices(provider, provider_id, model, usage):
    pricer = Pricer()
    facts = GenAIFacts(
        provider=provider,
        request_model=model,
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_tokens"),
        cache_write_tokens=usage.get("cache_write_tokens"),
    )
    expected = _library(model, provider_id, TODAY, **usage)
    cost = pricer.price(facts, TODAY)
    assert cost is not None and cost.source == GENAI_PRICES_SOURCE
    assert cost.input_usd == expected.input_price
    assert cost.output_usd == expected.output_price
    assert cost.total_usd == expected.total_price
    # The second call is served from the cached rates and must agree too.
    assert pricer.price(facts, TODAY) == cost


def test_tiers_are_cached_separately():
    pricer = Pricer()
    small = GenAIFacts(provider="gcp.gemini", request_model="gemini-1.5-pro", input_tokens=1000, output_tokens=0)
    large = GenAIFacts(provider="gcp.gemini", request_model="gemini-1.5-pro", input_tokens=200_000, output_tokens=0)
    a, b = pricer.price(small, TODAY), pricer.price(large, TODAY)
    # Per token, the large request pays the higher tier.
    assert b.input_usd / 200_000 > a.input_usd / 1000


def test_price_valid_at_the_span_date():
    pricer = Pricer()
    facts = GenAIFacts(provider="anthropic", request_model="claude-opus-4-6", input_tokens=1_000_000, output_tokens=0)
    before = pricer.price(facts, dt.date(2026, 3, 1))
    after = pricer.price(facts, dt.date(2026, 3, 20))
    assert before.input_usd == _library("claude-opus-4-6", "anthropic", dt.date(2026, 3, 1), input_tokens=1_000_000).input_price
    assert after.input_usd == _library("claude-opus-4-6", "anthropic", dt.date(2026, 3, 20), input_tokens=1_000_000).input_price


def test_response_model_wins_and_request_model_is_the_fallback():
    pricer = Pricer()
    dated = GenAIFacts(
        provider="openai", request_model="gpt-4o", response_model="gpt-4o-2024-08-06", input_tokens=100, output_tokens=100
    )
    assert pricer.price(dated, TODAY).source == GENAI_PRICES_SOURCE
    odd = GenAIFacts(
        provider="openai", request_model="gpt-4o", response_model="my-proxy-alias", input_tokens=100, output_tokens=100
    )
    assert pricer.price(odd, TODAY) == pricer.price(
        GenAIFacts(provider="openai", request_model="gpt-4o", input_tokens=100, output_tokens=100), TODAY
    )


def test_the_request_model_fallback_is_per_request_model_whatever_was_priced_before():
    """One Pricer remembers what it resolved: an alias it cannot price is priced at each call's
    own request model, or unpriced without one that it knows, in either order."""
    pricer = Pricer()
    alias = {"provider": "openai", "response_model": "my-proxy-alias", "input_tokens": 1000, "output_tokens": 10}
    nobody = GenAIFacts(request_model="no-such-model-xyz", **alias)  # type: ignore[arg-type]
    mini = GenAIFacts(request_model="gpt-4o-mini", **alias)  # type: ignore[arg-type]
    big = GenAIFacts(request_model="gpt-4o", **alias)  # type: ignore[arg-type]
    for _ in range(2):
        assert pricer.price(nobody, TODAY) is UNPRICED
        for facts in (mini, big):
            expected = _library(facts.request_model, "openai", TODAY, input_tokens=1000, output_tokens=10)
            cost = pricer.price(facts, TODAY)
            assert (cost.input_usd, cost.output_usd) == (expected.input_price, expected.output_price)
    assert pricer.unknown[("openai", "my-proxy-alias")] == 2


def test_reported_cost_wins():
    facts = GenAIFacts(
        provider="openai",
        request_model="gpt-4o",
        input_tokens=100,
        output_tokens=100,
        reported_cost_usd=Decimal("0.5"),
        reported_input_cost_usd=Decimal("0.2"),
        reported_output_cost_usd=Decimal("0.3"),
    )
    cost = Pricer().price(facts, TODAY)
    assert (cost.input_usd, cost.output_usd, cost.total_usd, cost.source) == (
        Decimal("0.2"),
        Decimal("0.3"),
        Decimal("0.5"),
        "reported",
    )


def test_unknown_model_costs_zero_and_is_counted():
    pricer = Pricer()
    facts = GenAIFacts(provider="openai", request_model="no-such-model-xyz", input_tokens=10, output_tokens=10)
    assert pricer.price(facts, TODAY) is UNPRICED
    assert pricer.price(facts, TODAY) is UNPRICED
    assert pricer.unknown[("openai", "no-such-model-xyz")] == 2


def test_nothing_to_price():
    pricer = Pricer()
    assert pricer.price(GenAIFacts(provider="openai", request_model="gpt-4o"), TODAY) is None  # no usage
    assert pricer.price(GenAIFacts(provider="openai", input_tokens=5), TODAY) is None  # no model
    local = GenAIFacts(provider="ollama", request_model="llama3.1", input_tokens=5, output_tokens=5)
    assert pricer.price(local, TODAY) is None  # self-hosted: no list price
    assert not pricer.unknown


# -- user price file ---------------------------------------------------------------------------


def test_user_prices_override_and_add(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        """
models:
  - match: "acme-*"
    prices: {input_mtok: 1.0, output_mtok: 4.0}
  - name: gpt-4o
    provider: openai
    prices:
      input_mtok: 10
      output_mtok: 20
      cache_read_mtok: 1
  - name: acme-special
    prices:
      input_mtok: {base: 2, tiers: [{start: 1000, price: 3}]}
      output_mtok: 5
"""
    )
    pricer = Pricer.from_file(str(path))
    own = pricer.price(
        GenAIFacts(provider="openai", request_model="gpt-4o", input_tokens=1_000_000, cache_read_tokens=500_000, output_tokens=1_000_000),
        TODAY,
    )
    assert own.source == "user"
    assert own.input_usd == Decimal("5.5")  # 500k uncached at $10/M + 500k cached at $1/M
    assert own.output_usd == Decimal("20")
    # The override is provider-specific: the same model elsewhere keeps genai-prices' price.
    azure = pricer.price(GenAIFacts(provider="azure.ai.openai", request_model="gpt-4o", input_tokens=10, output_tokens=0), TODAY)
    assert azure.source == GENAI_PRICES_SOURCE
    pattern = pricer.price(GenAIFacts(request_model="acme-7b", input_tokens=2_000_000, output_tokens=0), TODAY)
    assert (pattern.input_usd, pattern.source) == (Decimal("2"), "user")
    # Exact names win over patterns that also match; tiers apply.
    special_low = pricer.price(GenAIFacts(request_model="acme-special", input_tokens=1000, output_tokens=0), TODAY)
    special_high = pricer.price(GenAIFacts(request_model="acme-special", input_tokens=1001, output_tokens=0), TODAY)
    assert special_low.input_usd == Decimal("0.002")
    assert special_high.input_usd == Decimal("0.003003")


def test_json_price_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [{"name": "m1", "prices": {"input_mtok": "0.5", "output_mtok": 1}}]}))
    cost = Pricer.from_file(str(path)).price(GenAIFacts(request_model="m1", input_tokens=2_000_000, output_tokens=1_000_000), TODAY)
    assert (cost.input_usd, cost.output_usd, cost.total_usd) == (Decimal("1"), Decimal("1"), Decimal("2"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models: [{name: x, prices: {inptu_mtok: 1}}]", "inptu_mtok"),
        ("models: [{name: x, prices: {input_mtok: -1}}]", "non-negative"),
        ("models: [{name: x, prices: {input_mtok: cheap}}]", "not a number"),
        ("models: [{prices: {input_mtok: 1}}]", "exactly one of 'name' or 'match'"),
        ("models: [{name: x, match: y, prices: {input_mtok: 1}}]", "exactly one of 'name' or 'match'"),
        ("models: [{name: x}]", "'prices'"),
        ("prices: []", "'models' list"),
        ("models: [{name: x, prices: {input_mtok: {tiers: []}}}]", "'base'"),
        ("models: [: bad", "not valid YAML"),
    ],
)
def test_bad_price_files_say_why(tmp_path, content, message):
    path = tmp_path / "prices.yaml"
    path.write_text(content)
    with pytest.raises(PriceFileError) as err:
        load_price_file(path)
    assert message in str(err.value)


def test_missing_price_file(tmp_path):
    with pytest.raises(PriceFileError, match="No such file"):
        load_price_file(tmp_path / "absent.yaml")


def test_source_names_the_package_version():
    assert f"genai-prices {genai_prices.__version__}" == GENAI_PRICES_SOURCE
