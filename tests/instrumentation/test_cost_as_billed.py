"""Cost as billed, end to end: OpenAI's real client, instrumented, against a locally served API,
through a real collector, priced against genai-prices computed independently."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from tracehouse_collector.processors import llm
from tracehouse_collector.processors.cost import GENAI_PRICES_SOURCE


def test_openai_priority_call_is_stored_at_the_priority_price(collector):
    """The instrumentor records the served tier; the collector prices it as OpenAI bills it."""
    import openai
    from genai_support import fake_api
    from helpers import unique
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from test_instrument_openai import _Handler
    from tracehouse.instrumentors.openai import OpenAIInstrumentor

    service = unique("tier")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces"))
    )
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    api = fake_api(_Handler, "/v1")
    server = next(api)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], service_tier="priority"
        )
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="gpt-500", messages=[{"role": "user", "content": "hi " * 400}]
            )
    finally:
        inst.uninstrument()
        provider.shutdown()
        next(api, None)
    rows = collector.sql(
        "SELECT GenAIRequestModel AS model, InputTokens, OutputTokens, TokensEstimated, "
        f"toString(TotalCostUSD) AS cost, PriceSource FROM otel_traces WHERE ServiceName = '{service}'"
    )
    by_model = {r["model"]: r for r in rows}
    priority = by_model["gpt-4o"]
    usage = {"input_tokens": priority["InputTokens"], "output_tokens": priority["OutputTokens"]}
    when = dt.datetime.now(dt.UTC)
    expected = calc_price(
        Usage(**usage, cache_read_tokens=4),
        "gpt-4o",
        provider_id="openai",
        genai_request_timestamp=when,
        price_context={"service_tier": "priority"},
    ).total_price
    assert Decimal(priority["cost"]) == expected
    assert priority["PriceSource"] == f"{GENAI_PRICES_SOURCE} service_tier=priority"
    failed = by_model["gpt-500"]
    assert failed["PriceSource"] == llm.NOT_BILLED_SOURCE and Decimal(failed["cost"]) == 0
    assert (failed["InputTokens"], failed["TokensEstimated"]) == (0, False)
