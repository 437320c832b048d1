"""The overview in headless Chromium over the store `tracehouse demo` filled: KPIs, the cost
breakdown and mean scores against the aggregates API, in both themes."""

from __future__ import annotations

import pytest
from browser import CANVAS_PAINTED
from tracehouse_collector.formatting import fmt_cost


def rows(c, kind: str, **params) -> list[dict]:
    page = c.session.get(
        f"{c.http_url}/api/v1/query/{kind}", params={"since": "7d", **params}, timeout=30
    ).json()
    return [dict(zip(page["columns"], r, strict=True)) for r in page["rows"]]


def kpi(page, key: str) -> str:
    return page.locator(f'.kpi[data-kpi="{key}"] .value').inner_text()


def test_kpis_cost_breakdown_and_scores(demo_collector, ui):
    ui.open(demo_collector.http_url, "overview?since=7d")
    ui.page.wait_for_selector("#kpis")
    latency = rows(demo_collector, "latency")[0]
    cost = rows(demo_collector, "cost")[0]
    assert kpi(ui.page, "llm_calls") == f"{latency['count']:,}"
    assert kpi(ui.page, "tokens") == f"{cost['total_tokens']:,}"
    assert kpi(ui.page, "cost") == "$" + fmt_cost(cost["cost_usd"])  # the documented rule, not 2 decimals
    # Calls of models with no price are marked beside the cost, never silently left out.
    mark = ui.page.locator('.kpi[data-kpi="cost"] .unpriced')
    if cost["unpriced_calls"]:
        assert mark.inner_text() == f"{cost['unpriced_calls']:,} unpriced call" + (
            "s" if cost["unpriced_calls"] > 1 else ""
        )
    else:
        assert mark.count() == 0
    traces = demo_collector.scalar(
        "SELECT uniqExact(TraceId) FROM otel_traces WHERE Timestamp >= now() - INTERVAL 7 DAY"
    )
    assert kpi(ui.page, "traces") == f"{traces:,}"

    scores = {r["evaluation"]: r["mean"] for r in rows(demo_collector, "accuracy") if r["mean"] is not None}
    # human_review: the demo reviewer's feedback annotations, scores like the others
    assert set(scores) == {"accuracy", "human_review", "relevance"}
    for name, mean in scores.items():
        assert float(kpi(ui.page, f"score.{name}")) == pytest.approx(mean, rel=1e-3)

    by_model = {r["model"]: float(r["cost_usd"]) for r in rows(demo_collector, "cost", by="model")}
    legend = ui.page.eval_on_selector_all("#cost-by-model li", "items => items.map(i => i.dataset.key)")
    assert len(legend) >= 3 and legend == sorted((m for m, v in by_model.items() if v > 0), key=lambda m: -by_model[m])
    widths = ui.page.eval_on_selector_all(
        "#cost-by-model .cost-bar span", "spans => spans.map(s => parseFloat(s.style.width))"
    )
    assert sum(widths) == pytest.approx(100, abs=0.5)
    assert ui.page.locator("#cost-by-provider li").count() >= 1
    assert ui.page.locator("#latency-chart").evaluate(CANVAS_PAINTED)
    assert ui.page.locator("#recent-traces tr").count() == 8


def test_dark_theme_is_remembered(demo_collector, ui):
    ui.open(demo_collector.http_url, "overview?since=7d")
    ui.page.wait_for_selector("#kpis")
    before = ui.page.evaluate("getComputedStyle(document.body).backgroundColor")
    ui.page.click("#theme-toggle")
    ui.page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    ui.page.wait_for_selector("#kpis")
    after = ui.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert before != after
    ui.page.reload()
    ui.page.wait_for_selector("#kpis")
    assert ui.page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert ui.page.locator("#latency-chart").evaluate(CANVAS_PAINTED)
    for route in ("traces?since=7d", "runs?experiment=demo-classifier", "metrics?since=7d", "sessions"):
        ui.open(demo_collector.http_url, route)
        ui.page.wait_for_selector("main table, main .chart")
        ui.screenshot("dark-" + route.split("?")[0])
