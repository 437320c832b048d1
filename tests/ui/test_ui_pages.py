"""Sessions, Metrics and SQL pages in headless Chromium over the store `tracehouse demo` filled,
each cross-checked against the REST API it reads."""

from __future__ import annotations

import pytest
from browser import CANVAS_PAINTED, OPTION
from helpers import records, rest_get


def test_sessions_list_and_transcript(demo_collector, ui):
    expected = records(rest_get(demo_collector, "/api/v1/sessions", since="7d", limit=50))
    ui.open(demo_collector.http_url, "sessions?since=7d")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    shown = ui.page.eval_on_selector_all(
        "#sessions-table tbody tr", "rows => rows.map(r => r.dataset.sessionId)"
    )
    assert shown == [s["session_id"] for s in expected]
    assert shown[:4] == ["sess-support", "sess-travel", "sess-orders", "sess-onboarding"]  # the live ones
    turns = ui.page.eval_on_selector_all(
        "#sessions-table tbody tr td:nth-child(3)", "c => c.map(x => x.textContent)"
    )
    assert turns == [str(s["traces"]) for s in expected]

    session = rest_get(demo_collector, "/api/v1/sessions/sess-travel")
    ui.page.click('#sessions-table a[href="#/sessions/sess-travel"]')
    ui.page.wait_for_selector("#transcript .turn")
    assert ui.page.locator("#transcript .turn").count() == len(session["turns"]) >= 2
    for i, turn in enumerate(session["turns"]):
        block = ui.page.locator("#transcript .turn").nth(i)
        assert block.get_attribute("data-trace-id") == turn["trace_id"]
        assert block.locator(".bubble.user .text").inner_text() == turn["input"]
        if turn["output"]:
            assert block.locator(".bubble.assistant .text").inner_text() == turn["output"]
        for name in turn["scores"]:
            assert name in block.locator(".turn-meta").inner_text()
    first = session["turns"][0]["trace_id"]
    ui.page.click(f'#transcript .turn[data-trace-id="{first}"] a.turn-link')
    ui.page.wait_for_selector("#span-tree .span-row")
    assert f"#/trace/{first}" in ui.page.url
    # The trace page links back to the session's transcript.
    ui.page.click('a[href="#/sessions/sess-travel"]')
    ui.page.wait_for_selector("#transcript .turn")


def test_unknown_session_is_a_clear_error(demo_collector, ui):
    ui.allow_console_error(r"status of 404")
    ui.open(demo_collector.http_url, "sessions/no-such-session")
    assert "not found" in ui.page.locator("#page-error").inner_text()


def test_metrics_charts_match_the_aggregates(demo_collector, ui):
    ui.open(demo_collector.http_url, "metrics?since=7d")
    ui.page.wait_for_selector("#runs-usage tbody tr")
    latency = records(rest_get(demo_collector, "/api/v1/query/latency", since="7d", by="hour"))
    requests_chart = ui.page.locator("#requests-chart")
    assert requests_chart.evaluate(CANVAS_PAINTED)
    series = requests_chart.evaluate(OPTION)["series"]
    drawn = lambda s: [p[1] for p in s["data"] if p[1] is not None]  # noqa: E731 - empty hours are gaps
    assert sum(drawn(series[0])) == sum(r["count"] for r in latency)
    assert sum(drawn(series[1])) == sum(round(r["count"] * r["error_rate"]) for r in latency) > 0

    cost = records(rest_get(demo_collector, "/api/v1/query/cost", since="7d", by="hour,model"))
    cost_series = ui.page.locator("#cost-chart").evaluate(OPTION)["series"]
    assert len(cost_series) >= 3 and sorted(s["name"] for s in cost_series) == sorted(
        {r["model"] for r in cost}
    )
    total = sum(v for s in cost_series for v in drawn(s))
    assert total == pytest.approx(sum(float(r["cost_usd"]) for r in cost))
    top = ui.page.locator("#top-models-chart").evaluate(OPTION)
    values = [d["value"] for d in top["series"][0]["data"]]
    assert values == sorted(values) and len(values) == len({r["model"] for r in cost})
    scores = ui.page.locator("#scores-chart").evaluate(OPTION)["series"]
    assert {"accuracy", "relevance"} <= {s["name"] for s in scores}

    runs = {r["name"]: r for r in rest_get(demo_collector, "/api/v1/runs", experiment="demo-prompt-eval")}
    assert len(runs) == 2, runs
    for name, run in runs.items():
        row = ui.page.locator(f'#runs-usage tr[data-run-id="{run["id"]}"]')
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == name and cells[2] == str(run["llm"]["calls"])
        assert float(cells[1]) == pytest.approx(run["llm"]["accuracy"], abs=1e-3)

    ui.page.select_option("#range", "1h")
    ui.page.wait_for_url("**since=1h*")
    ui.wait_ready()
    # A range of an hour is bucketed by minute.
    assert "by minute" in ui.page.locator("main p.muted").first.inner_text()


def test_sql_console_table_and_chart(demo_collector, ui):
    ui.open(demo_collector.http_url, "sql")
    ui.page.click("#sql-examples a >> text=LLM calls by model, last 24 h")
    ui.page.wait_for_selector("#sql-result tbody tr")
    query = ui.page.input_value("#sql-editor")
    expected = rest_get(demo_collector, "/api/v1/sql", q=query)
    cells = ui.page.eval_on_selector_all(
        "#sql-result tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [c[0] for c in cells] == [r[0] for r in expected["rows"]]
    n = len(expected["rows"])
    assert n >= 2  # the demo's calls use several models
    assert f"{n} rows" in ui.page.locator("#sql-status").inner_text()
    chart = ui.page.locator("#sql-chart")
    assert chart.evaluate(CANVAS_PAINTED)
    option = chart.evaluate(OPTION)
    assert option["xAxis"][0]["type"] == "category"
    assert [s["name"] for s in option["series"]] == ["calls", "tokens", "cost_usd"]
    # Chart settings travel in the URL.
    ui.page.select_option("#chart-type", "bar")
    ui.page.wait_for_url("**type=bar*")
    ui.page.wait_for_selector("#sql-chart")
    ui.page.wait_for_function(
        "() => { const el = document.querySelector('#sql-chart');"
        " return echarts.getInstanceByDom(el)?.getOption().series[0].type === 'bar'; }"
    )

    # Typed and run with Ctrl+Enter; a time column becomes a time axis.
    ui.page.fill(
        "#sql-editor",
        "SELECT toStartOfHour(Timestamp) AS hour, count() AS spans FROM otel_traces GROUP BY hour ORDER BY hour",
    )
    ui.page.press("#sql-editor", "Control+Enter")
    ui.page.wait_for_url("**q=SELECT+toStartOfHour*")
    ui.page.wait_for_function(
        "() => { const el = document.querySelector('#sql-chart');"
        " return el && echarts.getInstanceByDom(el)?.getOption().xAxis[0].type === 'time'; }"
    )


def test_sql_console_shows_refusals(demo_collector, ui):
    ui.allow_console_error(r"status of 400")
    ui.open(demo_collector.http_url, "sql?q=" + "INSERT%20INTO%20runs%20SELECT%20*%20FROM%20runs")
    error = ui.page.locator("#sql-error")
    error.wait_for()
    assert "read-only" in error.inner_text().lower() or "not allowed" in error.inner_text().lower()
