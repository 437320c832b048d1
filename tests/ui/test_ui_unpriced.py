"""Unpriced models in the UI, in headless Chromium: calls of a model nobody prices, sent with the
real OpenTelemetry SDK over OTLP/HTTP beside priced calls. The overview's cost KPI and cost
breakdown and the Metrics page mark them ("no price" and the count of unpriced calls, equal to
REST's `unpriced_calls`), and the cost they show is REST's cost, never a $0 for the unknown model."""

from __future__ import annotations

import pytest
from browser import OPTION
from helpers import unique, wait_for
from ui_format import fmt_usd as fmt_cost

PRICED = "gpt-4o-mini"
CALLS = {PRICED: 4}
UNPRICED_CALLS = 3


@pytest.fixture(scope="module")
def unpriced_collector(start_collector):
    """A collector with priced gpt-4o-mini calls and calls of a model nobody prices, sent now."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    c = start_collector(name="unpriced-ui")
    mystery = f"mystery-llm-{unique('m')}"
    provider = TracerProvider(resource=Resource.create({"service.name": unique("unpriced-ui")}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{c.http_url}/v1/traces")))
    tracer = provider.get_tracer("tests")
    calls = {**CALLS, mystery: UNPRICED_CALLS}
    for model, n in calls.items():
        for i in range(n):
            with tracer.start_as_current_span(f"chat {model}") as span:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": model,
                        "gen_ai.response.model": model,
                        # Enough tokens for a cost above a cent: the KPI shows two decimals.
                        "gen_ai.usage.input_tokens": 40_000 + 1_000 * i,
                        "gen_ai.usage.output_tokens": 2_000 + 10 * i,
                    }
                )
    provider.shutdown()
    assert wait_for(lambda: c.scalar("SELECT count() FROM otel_traces") == sum(calls.values()), timeout=30)
    c.mystery = mystery
    return c


def cost_rows(c, **params) -> list[dict]:
    page = c.session.get(
        f"{c.http_url}/api/v1/query/cost", params={"since": "24h", **params}, timeout=30
    ).json()
    return [dict(zip(page["columns"], r, strict=True)) for r in page["rows"]]


def test_overview_marks_unpriced_calls_and_models(unpriced_collector, ui):
    c = unpriced_collector
    (total,) = cost_rows(c)
    by_model = {r["model"]: r for r in cost_rows(c, by="model")}
    assert total["unpriced_calls"] == UNPRICED_CALLS and float(total["cost_usd"]) >= 0.01
    assert by_model[c.mystery]["cost_usd"] is None  # REST itself: unknown, not free

    ui.open(c.http_url, "overview?since=24h")
    ui.page.wait_for_selector("#cost-by-model")
    cost_kpi = ui.page.locator('.kpi[data-kpi="cost"]')
    assert cost_kpi.locator(".value").inner_text() == fmt_cost(total["cost_usd"])
    assert cost_kpi.locator(".unpriced").inner_text() == f"{total['unpriced_calls']} unpriced calls"

    # The unpriced model is in the breakdown with its mark, outside the priced bar.
    item = ui.page.locator(f'#cost-by-model li[data-key="{c.mystery}"]')
    assert item.locator(".badge.no-price").inner_text() == "no price"
    assert item.locator(".unpriced-calls").inner_text().strip() == (
        f"{by_model[c.mystery]['unpriced_calls']} unpriced calls"
    )
    assert "$" not in item.inner_text()
    priced = ui.page.locator(f'#cost-by-model li[data-key="{PRICED}"]')
    assert priced.inner_text().startswith(f"{PRICED} {fmt_cost(by_model[PRICED]['cost_usd'])} (100%)")
    assert priced.locator(".no-price").count() == 0
    assert ui.page.locator("#cost-by-model .cost-bar span").count() == 1
    # By provider: openai has both, so its priced share carries the unpriced count too.
    (openai,) = cost_rows(c, by="provider")
    provider_item = ui.page.locator('#cost-by-provider li[data-key="openai"]')
    assert provider_item.locator(".badge.no-price").count() == 1
    assert provider_item.locator(".unpriced-calls").inner_text().strip() == (
        f"{openai['unpriced_calls']} unpriced calls"
    )


def test_metrics_page_marks_unpriced_models(unpriced_collector, ui):
    c = unpriced_collector
    (total,) = cost_rows(c)
    by_model = {r["model"]: r for r in cost_rows(c, by="model")}

    ui.open(c.http_url, "metrics?since=24h")
    ui.wait_ready()
    note = ui.page.locator("#unpriced-note")
    assert note.locator(".badge.no-price").inner_text() == "no price"
    assert note.locator(".unpriced-calls").inner_text() == f"{total['unpriced_calls']} unpriced calls"
    assert "tracehouse query cost --unpriced" in note.inner_text()

    table = ui.page.locator("#cost-by-model-table")
    assert table.locator("th").all_inner_texts() == [
        "model",
        "LLM calls",
        "tokens",
        "cost",
        "unpriced calls",
        "unpriced tokens",
    ]
    mystery = table.locator(f'tr[data-model="{c.mystery}"]').locator("td").all_inner_texts()
    expected = by_model[c.mystery]
    assert mystery == [
        f"{c.mystery}no price",
        str(expected["count"]),
        f"{expected['total_tokens']:,}",
        "unpriced",
        str(expected["unpriced_calls"]),
        f"{expected['unpriced_tokens']:,}",
    ]
    priced = table.locator(f'tr[data-model="{PRICED}"]').locator("td").all_inner_texts()
    assert priced == [
        PRICED,
        str(by_model[PRICED]["count"]),
        f"{by_model[PRICED]['total_tokens']:,}",
        fmt_cost(by_model[PRICED]["cost_usd"]),
        "–",
        "–",
    ]

    # The cost charts hold the priced spend only, and all of it: equal to REST's total.
    cost_series = ui.page.locator("#cost-chart").evaluate(OPTION)["series"]
    assert [s["name"] for s in cost_series] == [PRICED]
    assert sum(p[1] for s in cost_series for p in s["data"] if p[1] is not None) == pytest.approx(
        float(total["cost_usd"]), rel=1e-12
    )
    top = ui.page.locator("#top-models-chart").evaluate(OPTION)
    assert top["yAxis"][0]["data"] == [PRICED]
    tokens = ui.page.locator("#tokens-chart").evaluate(OPTION)["series"]
    assert sorted(s["name"] for s in tokens) == sorted([PRICED, c.mystery])  # usage still shown
