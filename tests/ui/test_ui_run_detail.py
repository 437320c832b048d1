"""The run page in headless Chromium over the store `tracehouse demo` filled: info and params
against the REST API, charts (reduced on the server for long histories, full resolution after a
zoom), artifact previews (image, CSV, text), the model's reproduce command (run for real), and
the run's traces."""

from __future__ import annotations

import shlex

import pytest
import tracehouse
from browser import CANVAS_PAINTED
from helpers import run_cli, run_sdk_to, wait_for


@pytest.fixture(scope="module")
def runs(demo_collector) -> dict[str, dict]:
    resp = demo_collector.session.get(demo_collector.http_url + "/api/v1/runs", timeout=30)
    resp.raise_for_status()
    return {r["name"]: r for r in resp.json()}


def show(c, run_id: str) -> dict:
    return c.session.get(f"{c.http_url}/api/v1/runs/{run_id}", timeout=30).json()


def test_info_params_charts_and_previews(demo_collector, ui, runs):
    run = show(demo_collector, runs["sgd-lr0.1"]["id"])
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    info = ui.page.locator("#run-info")
    info.wait_for()
    text = info.inner_text()
    assert run["id"] in text and run["metadata"]["python.version"] in text
    assert run["metadata"]["command"] in text
    params = dict(
        ui.page.eval_on_selector_all(
            "#run-params tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
    )
    assert run["params"] and params == {k: str(v) for k, v in run["params"].items()}

    loss = ui.page.locator('#run-charts .chart[data-metric="train/loss"]')
    ui.page.wait_for_selector('#run-charts .chart[data-metric="train/loss"][data-points]')
    assert loss.evaluate(CANVAS_PAINTED)
    assert loss.get_attribute("data-points") == "300" and loss.get_attribute("data-downsampled") == "false"

    # Previews: the PNG decodes, the CSV is a table, the text file is shown.
    img = ui.page.locator('.artifact[data-name="loss_curve.png"] img')
    img.wait_for()
    ui.page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [240, 120]
    csv = ui.page.locator('.artifact[data-name="validation_curve.csv"] table')
    csv.wait_for()
    assert csv.locator("th").all_inner_texts() == ["step", "loss", "accuracy"]
    assert csv.locator("tbody tr").count() == 10  # a row every 30 of 300 steps
    notes = ui.page.locator('.artifact[data-name="notes.txt"] pre')
    notes.wait_for()
    assert f"Run {run['name']}" in notes.inner_text()


def test_artifact_download_headers(demo_collector, runs):
    run = show(demo_collector, runs["sgd-lr0.1"]["id"])
    png = next(a for a in run["artifacts"] if a["name"] == "loss_curve.png")
    resp = demo_collector.session.get(
        f"{demo_collector.http_url}/api/v1/artifacts/{png['digest']}", params={"name": "x.html"}, timeout=30
    )
    # Never served as a page of the collector's origin.
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    part = demo_collector.session.get(
        f"{demo_collector.http_url}/api/v1/artifacts/{png['digest']}",
        params={"name": "loss_curve.png"},
        headers={"Range": "bytes=0-7"},
        timeout=30,
    )
    assert part.status_code == 206 and part.content == b"\x89PNG\r\n\x1a\n"
    assert part.headers["Content-Type"] == "image/png"


def test_long_history_is_reduced_and_zoom_loads_every_point(demo_collector, ui, tmp_path):
    sdk = run_sdk_to(demo_collector.http_url, tmp_path / "spool")
    with sdk, tracehouse.run(experiment="ui-long", name="long-history") as run:
        for step in range(20_000):
            run.log_metric("loss", 9.0 if step == 5_123 else (step % 100) / 100, step=step)
    url = f"{demo_collector.http_url}/api/v1/runs/{run.id}/series"
    assert wait_for(
        lambda: demo_collector.session.get(url, params={"key": "loss"}).json().get("total") == 20_000, 30
    )

    ui.open(demo_collector.http_url, f"run/{run.id}")
    sel = '#run-charts .chart[data-metric="loss"]'
    ui.page.wait_for_selector(sel + "[data-points]")
    chart = ui.page.locator(sel)
    assert chart.get_attribute("data-downsampled") == "true"
    assert int(chart.get_attribute("data-points")) <= 1500
    data = chart.evaluate("el => echarts.getInstanceByDom(el).getOption().series[0].data")
    assert [5123, 9] in data  # the spike survives the reduction

    chart.evaluate(
        "el => echarts.getInstanceByDom(el).dispatchAction({type: 'dataZoom', startValue: 5000, endValue: 5400})"
    )
    ui.page.wait_for_selector(sel + "[data-zoom]")
    assert chart.get_attribute("data-downsampled") == "false"
    lo, hi = map(int, chart.get_attribute("data-zoom").split("-"))
    assert lo <= 5000 and hi >= 5400 and int(chart.get_attribute("data-points")) == hi - lo + 1
    data = chart.evaluate("el => echarts.getInstanceByDom(el).getOption().series[0].data")
    inside = [p for p in data if lo <= p[0] <= hi]
    assert [p[0] for p in inside] == list(range(lo, hi + 1))  # every step of the window
    assert data[0][0] == 0 and data[-1][0] == 19_999  # the rest of the curve is kept around it


def test_model_reproduce_command_runs(demo_collector, ui, runs):
    run = show(demo_collector, runs["logreg-final"]["id"])
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    command = ui.page.locator("#run-models code.reproduce").inner_text()
    model = next(a for a in run["artifacts"] if a["kind"] == "model")
    assert command == f"tracehouse reproduce {model['digest'][:16]} --server {demo_collector.http_url}"
    result = run_cli(*shlex.split(command)[1:], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass" in result.stdout


def test_run_traces_and_llm_usage(demo_collector, ui, runs):
    run = runs["prompt-v2-gpt-4o"]
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    ui.page.wait_for_selector("#run-trace-list tbody tr")
    shown = ui.page.eval_on_selector_all(
        "#run-trace-list tbody tr", "rows => rows.map(r => r.dataset.traceId)"
    )
    api = demo_collector.session.get(
        demo_collector.http_url + "/api/v1/traces",
        params={"since": "30d", "where": f"run = '{run['id']}'", "limit": 20},
        timeout=30,
    ).json()
    assert shown == [r[api["columns"].index("trace_id")] for r in api["rows"]]
    assert len(shown) == 8
    llm = ui.page.locator("#run-llm").inner_text()
    assert f"{run['llm']['calls']}" in llm and "score accuracy" in llm
    ui.page.click(f'#run-trace-list tr[data-trace-id="{shown[0]}"] a')
    ui.page.wait_for_selector("#span-tree .span-row")
    assert f"#/trace/{shown[0]}" in ui.page.url


def test_single_values_are_a_table_not_charts(demo_collector, ui, runs):
    run = show(demo_collector, runs["logreg-final"]["id"])
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    ui.wait_ready()
    values = dict(
        ui.page.eval_on_selector_all(
            "#run-values tr", "rows => rows.map(r => [r.dataset.metric, r.cells[1].textContent])"
        )
    )
    once = {k: s for k, s in run["metrics"].items() if s["count"] == 1}
    assert once and set(values) == set(once)
    assert float(values["train/accuracy"]) == pytest.approx(once["train/accuracy"]["last"], rel=1e-3)
    assert ui.page.locator('#run-charts .chart[data-metric="train/accuracy"]').count() == 0
