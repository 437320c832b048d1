"""The web UI in headless Chromium (Playwright) against a real collector, filled through OTLP by
the OTel SDK and the run SDK with hand-made data (markup in prompts, a failing tool): traces
list, trace detail, filter errors, paging, runs, run charts, theme and the empty state. Every
test fails on a browser console error (tests/support/browser.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import tracehouse
from helpers import unique, wait_for
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from tracehouse import _run_transport

USER_TEXT = "What is the capital of <b>France</b>?"  # markup must show as text, never render
ANSWER_TEXT = "The capital of France is Paris."


def populate(collector, tmp: Path) -> dict:
    """One agent trace (root + LLM child with messages and tokens), one failing trace, one run."""
    service = unique("uiapp")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces"))
    )
    tracer = provider.get_tracer("ui-test")
    with tracer.start_as_current_span(
        "agent.answer", attributes={"session.id": "sess-1", "user.id": "alice"}
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 21,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.input.messages": json.dumps(
                    [
                        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                        {"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]},
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER_TEXT}]}]
                ),
            },
        ):
            time.sleep(0.01)
        ok_id = format(root.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("agent.broken") as broken:
        with tracer.start_as_current_span("tool lookup") as tool:
            tool.set_status(Status(StatusCode.ERROR, "lookup failed: no such city"))
        err_id = format(broken.get_span_context().trace_id, "032x")
    provider.shutdown()

    previous = _run_transport._transport
    transport = _run_transport._transport = _run_transport.Transport(
        url=collector.http_url + "/v1/logs", spool_dir=tmp / "spool"
    )
    try:
        experiment = unique("exp")
        with tracehouse.run(experiment=experiment, name="ui-run", params={"lr": 0.01, "opt": "adam"}) as run:
            for step in range(20):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 20}, step=step)
            (tmp / "notes.txt").write_text("ui test artifact\n")
            run.log_artifact(tmp / "notes.txt")
        run_id = run.id
        with tracehouse.run(experiment=experiment, name="ui-run-2", params={"lr": 0.1, "opt": "sgd"}) as run2:
            for step in range(10):
                run2.log_metric("loss", 2.0 / (step + 1), step=step)
        run2_id = run2.id
    finally:
        transport.shutdown(10)
        _run_transport._transport = previous

    s = requests.Session()
    assert wait_for(lambda: s.get(collector.http_url + f"/api/v1/traces/{ok_id}").ok, timeout=20)
    assert wait_for(lambda: s.get(collector.http_url + f"/api/v1/traces/{err_id}").ok, timeout=20)
    for rid, points in ((run_id, 40), (run2_id, 10)):
        url = collector.http_url + f"/api/v1/runs/{rid}/metrics"
        assert wait_for(lambda url=url, points=points: len(s.get(url).json()) >= points, timeout=20)
    return {
        "service": service,
        "ok_id": ok_id,
        "err_id": err_id,
        "run_id": run_id,
        "run2_id": run2_id,
        "experiment": experiment,
    }


@pytest.fixture(scope="module")
def filled(start_collector, tmp_path_factory):
    c = start_collector(name="ui")
    return c, populate(c, tmp_path_factory.mktemp("ui-spool"))


def test_traces_list_and_detail(filled, ui):
    c, data = filled
    page = ui.page
    ui.open(c.http_url, "traces?since=1h")
    table = page.locator("#traces-table")
    table.get_by_text("agent.answer").wait_for()
    ui.screenshot("traces")
    text = table.inner_text()
    assert "gpt-4o-mini" in text
    assert "alice" in text and "sess-1" in text
    assert "<b>France</b>" in text  # escaped, shown as typed
    assert table.locator("b").count() == 0
    assert "30" in text  # total tokens of the LLM call
    # the failing trace is marked as an error
    assert "error" in page.get_attribute(f'tr[data-trace-id="{data["err_id"]}"]', "class")

    page.click(f'tr[data-trace-id="{data["ok_id"]}"] a')
    page.locator("#span-tree").get_by_text("chat gpt-4o-mini").first.wait_for()
    assert page.url.endswith(f"#/trace/{data['ok_id']}")
    assert "agent.answer" in page.inner_text("#span-tree")
    assert page.locator("#span-tree .waterfall-bar").count() == 2
    page.locator("#span-tree").get_by_text("chat gpt-4o-mini", exact=True).click()
    pane = page.locator("#span-detail")
    pane.get_by_text(ANSWER_TEXT, exact=True).wait_for()
    ui.screenshot("trace-detail")
    assert USER_TEXT in pane.inner_text() and "Be brief." in pane.inner_text()
    assert pane.locator(".message.role-assistant").count() >= 1
    # the selected span travels in the URL: reloading opens the same pane
    assert "span=" in page.url
    page.reload()
    page.locator("#span-detail").get_by_text(ANSWER_TEXT, exact=True).wait_for()
    # attribute search narrows the attribute table
    page.fill("#attr-search", "response.model")
    rows = page.locator("#attr-table tr:visible")
    assert rows.count() == 1 and "gen_ai.response.model" in rows.first.inner_text()
    # the session link opens that session's transcript
    page.click("text=sess-1")
    page.locator("#transcript .turn").first.wait_for()
    assert page.url.endswith("#/sessions/sess-1")
    assert USER_TEXT in page.inner_text("#transcript")


def test_error_trace_shows_error_mark(filled, ui):
    c, data = filled
    ui.open(c.http_url, f"trace/{data['err_id']}")
    ui.page.locator("#span-tree").get_by_text("tool lookup").first.wait_for()
    assert ui.page.locator("#span-tree .span-row.error").count() >= 1
    assert "lookup failed" in ui.page.text_content("#span-tree")


def test_bad_filter_shows_the_server_error(filled, ui):
    c, _ = filled
    ui.allow_console_error(r"status of 400")  # the browser logs the refused request
    expected = requests.get(c.http_url + "/api/v1/traces", params={"where": "latency >>> 3"}).json()["error"]
    ui.open(c.http_url, "traces?since=1h")
    ui.page.fill("#where", "latency >>> 3")
    ui.page.press("#where", "Enter")
    assert expected[:40] in ui.page.locator("#traces-error").inner_text()
    assert "where=latency" in ui.page.url  # the filter travels in the URL


def test_traces_paging(filled, ui):
    c, data = filled
    ui.open(c.http_url, "traces?since=1h&limit=1")
    ui.page.wait_for_selector("#traces-table tbody tr")
    ids = "rows => rows.map(r => r.dataset.traceId)"
    first = ui.page.eval_on_selector_all("#traces-table tbody tr", ids)
    ui.page.click("#next-page")
    ui.page.wait_for_selector(f"#traces-table tr[data-trace-id]:not([data-trace-id='{first[0]}'])")
    second = ui.page.eval_on_selector_all("#traces-table tbody tr", ids)
    assert len(first) == len(second) == 1
    assert set(first) | set(second) == {data["ok_id"], data["err_id"]}  # newest first, then the older one
    assert "cursor=" in ui.page.url


def test_runs_list_and_run_chart(filled, ui):
    c, data = filled
    page = ui.page
    ui.allow_console_error(r"status of 400")  # the bad filter below, on purpose
    ui.open(c.http_url, "runs")
    table = page.locator("#runs-table")
    table.get_by_text("ui-run-2").wait_for()
    assert "adam" in table.inner_text() and "finished" in table.inner_text()
    assert table.locator("input[type=checkbox]").count() >= 2
    # sorting by a column header keeps the run and marks the sorted column
    page.click('#runs-table th[data-column="name"]')
    page.wait_for_url("**sort=name*")
    ui.wait_ready()
    assert page.locator('#runs-table th.sorted[data-column="name"]').count() == 1
    assert "sort=name" in page.url
    # a filter narrows the table; a bad one shows the server's message
    ui.open(c.http_url, f"runs?experiment={data['experiment']}&where=params.lr%20%3E%200.5")
    page.get_by_text("No runs match").wait_for()
    ui.open(c.http_url, "runs?where=bogus%20%3D%201")
    assert "unknown field 'bogus'" in page.locator("#runs-error").inner_text()
    ui.open(c.http_url, f"runs?experiment={data['experiment']}&where=params.lr%20%3C%200.5")
    page.locator("#runs-table").get_by_text("ui-run", exact=True).wait_for()
    # selecting two runs overlays their curves: one line per run in the shared "loss" chart
    for rid in (data["run_id"], data["run2_id"]):
        page.check(f'tr[data-run-id="{rid}"] input[type=checkbox]')
        page.wait_for_url(f"**{rid}*")
        ui.wait_ready()
    page.wait_for_selector('#selected-charts .chart[data-metric="loss"] canvas')
    assert data["run2_id"] in page.url and data["run_id"] in page.url
    lines = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector('#selected-charts .chart[data-metric=loss]'))"
        ".getOption().series.map(s => s.data.length)"
    )
    assert sorted(lines) == [10, 20]
    ui.screenshot("runs-selected")
    page.click(f'tr[data-run-id="{data["run_id"]}"] td a')
    page.wait_for_url(f"**#/run/{data['run_id']}")
    ui.wait_ready()
    ui.screenshot("run-detail")
    metrics = page.eval_on_selector_all("#run-charts .chart", "els => els.map(e => e.dataset.metric)")
    assert set(metrics) == {"loss", "acc"}
    assert page.locator("#run-charts .chart canvas").count() == 2
    assert "lr" in page.inner_text("#run-params")
    link = page.locator('.artifact[data-name="notes.txt"] a')
    assert link.inner_text() == "download"
    href = link.get_attribute("href")
    assert requests.get(c.http_url + href, timeout=10).content == b"ui test artifact\n"
    page.click("#run-traces")  # no trace carries this run: empty, no error
    page.get_by_text("No traces match").wait_for()


def test_overview_kpis_and_theme_toggle(filled, ui):
    c, _ = filled
    page = ui.page
    ui.open(c.http_url, "overview?since=1h")
    page.wait_for_selector("#kpis")
    assert page.inner_text('#kpis [data-kpi="traces"] .value') == "2"
    page.wait_for_selector("#latency-chart canvas")
    assert "agent.answer" in page.inner_text("#recent-traces")
    assert "ui-run" in page.inner_text("#recent-runs")
    ui.screenshot("overview")
    before = page.get_attribute("html", "data-theme")
    page.click("#theme-toggle")
    after = page.get_attribute("html", "data-theme")
    assert {before, after} == {"light", "dark"}
    page.reload()  # remembered across loads
    page.wait_for_selector("#kpis")
    assert page.get_attribute("html", "data-theme") == after


def test_empty_collector_tells_what_to_run(start_collector, ui):
    c = start_collector(name="ui-empty")
    ui.open(c.http_url, "traces")
    empty = ui.page.locator(".empty")
    empty.wait_for()
    assert "tracehouse demo" in empty.inner_text() and "TRACEHOUSE_INSTRUMENT=1" in empty.inner_text()
    ui.open(c.http_url, "runs")
    ui.page.locator(".empty").get_by_text("tracehouse.run").first.wait_for()
    ui.open(c.http_url, "overview")
    ui.page.locator(".empty h2").get_by_text("No traces yet").wait_for()
    for route, text in (
        ("sessions", "No sessions yet"),
        ("metrics", "No traces yet"),
        ("compare", "at least two runs"),
    ):
        ui.open(c.http_url, route)
        ui.page.locator(".empty").get_by_text(text).first.wait_for()


def test_static_files_are_served(filled):
    c, _ = filled
    index = requests.get(c.http_url + "/")
    assert index.status_code == 200 and "app.js" in index.text
    lib = requests.get(c.http_url + "/ui/vendor/echarts/echarts.min.js")
    assert lib.status_code == 200 and len(lib.content) > 500_000
    assert requests.get(c.http_url + "/ui/../config.py").status_code in (403, 404)
