"""The LLM processor on literal rows: one span per producer -> typed columns, cost from genai-prices."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from tracehouse_collector.processors import llm
from tracehouse_collector.processors.cost import Pricer
from tracehouse_collector.processors.rows import Rows

DAY = "2026-11-20 10:00:00.000000000"
WHEN = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def _row(attrs: dict[str, str], name: str = "span") -> dict:
    return {"Timestamp": DAY, "SpanName": name, "SpanAttributes": attrs, "ResourceAttributes": {"service.name": "svc"}}


PRODUCERS = {
    "otel-current": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": "2000",
            "gen_ai.usage.cache_read.input_tokens": "1500",
            "gen_ai.usage.output_tokens": "400",
        },
        ("chat", "openai", "gpt-4o", "gpt-4o-2024-08-06", 2000, 400, 1500, 0, 2400),
        ("gpt-4o-2024-08-06", "openai", {"input_tokens": 2000, "cache_read_tokens": 1500, "output_tokens": 400}),
    ),
    "otel-deprecated": (
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": "321",
            "gen_ai.usage.completion_tokens": "45",
        },
        ("chat", "openai", "gpt-4o-mini", "", 321, 45, 0, 0, 366),
        ("gpt-4o-mini", "openai", {"input_tokens": 321, "output_tokens": 45}),
    ),
    "openinference": (
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "anthropic",
            "llm.system": "anthropic",
            "llm.model_name": "claude-3-5-sonnet-20241022",
            "llm.token_count.prompt": "3200",
            "llm.token_count.prompt_details.cache_read": "2000",
            "llm.token_count.prompt_details.cache_write": "1000",
            "llm.token_count.completion": "150",
            "llm.token_count.total": "3350",
        },
        ("chat", "anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", 3200, 150, 2000, 1000, 3350),
        (
            "claude-3-5-sonnet-20241022",
            "anthropic",
            {"input_tokens": 3200, "cache_read_tokens": 2000, "cache_write_tokens": 1000, "output_tokens": 150},
        ),
    ),
    "openllmetry": (
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.prompt_tokens": "900",
            "gen_ai.usage.completion_tokens": "60",
            "llm.usage.total_tokens": "960",
            "gen_ai.usage.cache_read_input_tokens": "800",
            "gen_ai.usage.cache_creation_input_tokens": "0",
            "traceloop.association.properties.session_id": "s-1",
        },
        ("chat", "anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", 900, 60, 800, 0, 960),
        ("claude-3-5-haiku-20241022", "anthropic", {"input_tokens": 900, "cache_read_tokens": 800, "output_tokens": 60}),
    ),
    "vercel-ai-sdk": (
        {
            "operation.name": "ai.generateText.doGenerate",
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.provider": "mistral.chat",
            "ai.model.id": "mistral-large-latest",
            "ai.usage.promptTokens": "120",
            "ai.usage.completionTokens": "30",
        },
        ("chat", "mistral_ai", "mistral-large-latest", "", 120, 30, 0, 0, 150),
        ("mistral-large-latest", "mistral", {"input_tokens": 120, "output_tokens": 30}),
    ),
    "mlflow": (
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 70, "output_tokens": 7, "total_tokens": 77}),
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.system": "openai",
        },
        ("chat", "openai", "gpt-4o-mini", "", 70, 7, 0, 0, 77),
        ("gpt-4o-mini", "openai", {"input_tokens": 70, "output_tokens": 7}),
    ),
}


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_producer_span_to_typed_columns_and_cost(producer):
    attrs, expected, (model, provider_id, usage) = PRODUCERS[producer]
    # Deprecated-convention producers name the operation only in the span name ("chat MODEL").
    row = _row(dict(attrs), name=f"chat {model}")
    unpriced: Counter = Counter()
    llm.enrich_row(row, Pricer(), unpriced)
    op, prov, req, resp, inp, out, cache_read, cache_write, total = expected
    assert row.get("GenAIOperation", "") == op
    assert row.get("GenAIProvider", "") == prov
    assert row.get("GenAIRequestModel", "") == req
    assert row.get("GenAIResponseModel", "") == resp
    assert row.get("InputTokens", 0) == inp
    assert row.get("OutputTokens", 0) == out
    assert row.get("CacheReadTokens", 0) == cache_read
    assert row.get("CacheWriteTokens", 0) == cache_write
    assert row.get("TotalTokens", 0) == total
    assert "TokensEstimated" not in row
    price = calc_price(Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=WHEN)
    q = Decimal("1e-12")
    assert Decimal(row["InputCostUSD"]) == price.input_price.quantize(q)
    assert Decimal(row["OutputCostUSD"]) == price.output_price.quantize(q)
    assert Decimal(row["TotalCostUSD"]) == price.total_price.quantize(q)
    assert row["PriceSource"].startswith("genai-prices ")
    assert row["SpanAttributes"] == attrs  # originals untouched
    assert not unpriced


def test_langfuse_reported_cost_wins():
    row = _row(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.usage_details": json.dumps({"input": 100, "output": 10}),
            "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002, "total": 0.003}),
            "langfuse.session.id": "lf-s",
        }
    )
    llm.enrich_row(row, Pricer(), Counter())
    assert (row["InputCostUSD"], row["OutputCostUSD"], row["TotalCostUSD"], row["PriceSource"]) == (
        "0.001000000000",
        "0.002000000000",
        "0.003000000000",
        "reported",
    )
    assert row["SessionId"] == "lf-s"


def test_non_llm_spans_get_no_typed_columns():
    rows = [
        _row({"http.request.method": "GET", "url.path": "/health", "http.response.status_code": "200"}, "GET /health"),
        _row({"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, "SELECT"),
    ]
    for row in rows:
        before = set(row)
        llm.enrich_row(row, Pricer(), Counter())
        assert set(row) == before  # nothing added: ClickHouse defaults (0, '', false) apply


def test_context_ids_on_any_span():
    row = _row({"tracehouse.run.id": "run-1", "session.id": "s-9", "http.request.method": "POST"})
    row["ResourceAttributes"]["tracehouse.experiment.name"] = "mnist"
    llm.enrich_row(row, Pricer(), Counter())
    assert (row["RunId"], row["SessionId"], row["ExperimentName"]) == ("run-1", "s-9", "mnist")
    assert "GenAIOperation" not in row


def test_estimated_tokens_are_marked_and_priced():
    row = _row(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hello there, how are you?"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Fine, thanks."}]}]),
        }
    )
    llm.enrich_row(row, Pricer(), Counter())
    assert row["TokensEstimated"] is True
    assert row["InputTokens"] > 0 and row["OutputTokens"] > 0
    assert Decimal(row["TotalCostUSD"]) > 0


def test_evaluation_events_get_canonical_keys():
    row = _row({"gen_ai.operation.name": "chat"})
    row["Events.Name"] = ["gen_ai.evaluation.result", "exception"]
    row["Events.Attributes"] = [{"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score": "0.8"}, {"k": "v"}]
    llm.enrich_row(row, Pricer(), Counter())
    assert row["Events.Attributes"][0]["gen_ai.evaluation.score.value"] == "0.8"
    assert row["Events.Attributes"][1] == {"k": "v"}


def test_unknown_models_become_collector_metric_rows():
    rows = Rows()
    rows.tables["otel_traces"] = [
        _row({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "zz-unknown",
              "gen_ai.usage.input_tokens": "5", "gen_ai.usage.output_tokens": "5"})
        for _ in range(4)
    ]
    llm.enrich(rows, Pricer())
    (metric,) = rows.tables["otel_metrics_sum"]
    assert metric["MetricName"] == llm.UNKNOWN_MODEL_METRIC
    assert metric["Value"] == 4
    assert metric["Attributes"] == {"gen_ai.provider.name": "openai", "gen_ai.request.model": "zz-unknown"}
    # Marked unpriced, cost columns left out: 0 here means "no price", not "free".
    assert all(r["PriceSource"] == "unpriced" and "TotalCostUSD" not in r for r in rows.tables["otel_traces"])
