"""End to end: LLM spans from a real OpenTelemetry SDK get typed GenAI columns, tokens and cost."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


def _tracer(collector, service: str):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces")))
    return provider, provider.get_tracer("test.llm")


def _rows(collector, service: str) -> dict[str, dict]:
    rows = collector.sql(
        "SELECT SpanName, GenAIOperation, GenAIProvider, GenAIRequestModel, GenAIResponseModel, InputTokens, "
        "OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens, TotalTokens, TokensEstimated, "
        "toString(InputCostUSD) AS InputCostUSD, toString(OutputCostUSD) AS OutputCostUSD, "
        "toString(TotalCostUSD) AS TotalCostUSD, PriceSource, SessionId, UserId, RunId, ExperimentName, "
        f"SpanAttributes FROM otel_traces WHERE ServiceName = '{service}'"
    )
    return {r["SpanName"]: r for r in rows}


def _today_price(model: str, provider_id: str, **usage: int):
    now = dt.datetime.now(dt.UTC)
    return calc_price(Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=now)


def test_llm_span_typed_columns_and_cost(collector):
    service = f"llm-{uuid.uuid4().hex[:8]}"
    provider, tracer = _tracer(collector, service)
    with tracer.start_as_current_span("invoke_agent support", kind=SpanKind.INTERNAL):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.conversation.id": "conv-42",
                    "user.id": "user-7",
                }
            )
        with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", "GET")
    provider.shutdown()

    rows = _rows(collector, service)
    chat = rows["chat gpt-4o"]
    assert chat["GenAIOperation"] == "chat"
    assert chat["GenAIProvider"] == "openai"
    assert chat["GenAIRequestModel"] == "gpt-4o"
    assert chat["GenAIResponseModel"] == "gpt-4o-2024-08-06"
    assert (chat["InputTokens"], chat["OutputTokens"], chat["CacheReadTokens"]) == (1200, 300, 1000)
    assert chat["TotalTokens"] == 1500
    assert chat["TokensEstimated"] is False
    assert chat["SessionId"] == "conv-42"
    assert chat["UserId"] == "user-7"
    expected = _today_price("gpt-4o-2024-08-06", "openai", input_tokens=1200, cache_read_tokens=1000, output_tokens=300)
    assert Decimal(chat["InputCostUSD"]) == expected.input_price.quantize(Decimal("1e-12"))
    assert Decimal(chat["OutputCostUSD"]) == expected.output_price.quantize(Decimal("1e-12"))
    assert Decimal(chat["TotalCostUSD"]) == expected.total_price.quantize(Decimal("1e-12"))
    assert chat["PriceSource"].startswith("genai-prices ")
    # The producer's attributes are kept as they came.
    assert chat["SpanAttributes"]["gen_ai.usage.input_tokens"] == "1200"

    plain = rows["GET /health"]
    for column in ("GenAIOperation", "GenAIProvider", "GenAIRequestModel", "GenAIResponseModel", "PriceSource"):
        assert plain[column] == ""
    for column in ("InputTokens", "OutputTokens", "TotalTokens"):
        assert plain[column] == 0
    assert Decimal(plain["TotalCostUSD"]) == 0


def test_streaming_span_without_usage_gets_estimated_tokens(collector):
    service = f"llm-{uuid.uuid4().hex[:8]}"
    provider, tracer = _tracer(collector, service)
    with tracer.start_as_current_span("chat gpt-4", kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4",
                "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "The quick brown fox jumps over the lazy dog."}]}]',
                "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "The quick brown fox jumps over the lazy dog."}], "finish_reason": "stop"}]',
            }
        )
    provider.shutdown()
    row = _rows(collector, service)["chat gpt-4"]
    assert row["TokensEstimated"] is True
    assert row["InputTokens"] >= 10 and row["OutputTokens"] >= 10
    assert row["TotalTokens"] == row["InputTokens"] + row["OutputTokens"]
    assert Decimal(row["TotalCostUSD"]) > 0


def test_unknown_model_costs_zero_and_is_counted_in_sql(collector):
    service = f"llm-{uuid.uuid4().hex[:8]}"
    model = f"mystery-model-{uuid.uuid4().hex[:6]}"
    provider, tracer = _tracer(collector, service)
    for _ in range(3):
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 5,
                }
            )
    provider.shutdown()
    row = _rows(collector, service)[f"chat {model}"]
    assert row["InputTokens"] == 10
    assert Decimal(row["TotalCostUSD"]) == 0
    assert row["PriceSource"] == "unpriced"
    counted = collector.scalar(
        "SELECT sum(Value) FROM otel_metrics_sum WHERE MetricName = 'tracehouse.pricing.unknown_model' "
        f"AND Attributes['gen_ai.request.model'] = '{model}'"
    )
    assert counted == 3


@pytest.fixture(scope="module")
def priced_collector(start_collector, tmp_path_factory):
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text("models:\n  - match: 'inhouse-*'\n    prices: {input_mtok: 2, output_mtok: 6}\n")
    return start_collector(env={"TRACEHOUSE_PRICES": str(prices)}, name="priced")


def test_user_price_file_prices_custom_models(priced_collector):
    service = f"llm-{uuid.uuid4().hex[:8]}"
    provider, tracer = _tracer(priced_collector, service)
    with tracer.start_as_current_span("chat inhouse-7b", kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "inhouse-7b",
                "gen_ai.usage.input_tokens": 500_000,
                "gen_ai.usage.output_tokens": 250_000,
            }
        )
    provider.shutdown()
    row = _rows(priced_collector, service)["chat inhouse-7b"]
    assert (Decimal(row["InputCostUSD"]), Decimal(row["OutputCostUSD"]), Decimal(row["TotalCostUSD"])) == (
        Decimal("1"),
        Decimal("1.5"),
        Decimal("2.5"),
    )
    assert row["PriceSource"] == "user"


def test_broken_price_file_stops_serve_with_a_reason(tmp_path):
    from helpers import run_cli

    prices = tmp_path / "prices.yaml"
    prices.write_text("models: [{name: x, prices: {inptu_mtok: 1}}]")
    p = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--prices", str(prices), "--grpc-port", "0", "--http-port", "0", timeout=60)
    assert p.returncode != 0
    assert "inptu_mtok" in p.stderr
