"""Runs and compare pages in headless Chromium over the store `tracehouse demo` filled: the table
against `GET /api/v1/runs`, sorting, the column chooser, the chart options (smoothing, log scale,
x = time), parallel coordinates and scatter, and the compare view (baseline, diff-only toggle,
deltas, LLM usage per run, overlaid curves)."""

from __future__ import annotations

import pytest
from browser import CANVAS_PAINTED, OPTION


@pytest.fixture(scope="module")
def runs(demo_collector) -> dict[str, dict]:
    resp = demo_collector.session.get(demo_collector.http_url + "/api/v1/runs", timeout=30)
    resp.raise_for_status()
    return {r["name"]: r for r in resp.json()}


def table_rows(page) -> list[str]:
    return page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map(r => r.dataset.runId)")


def column(page, name: str) -> list[str]:
    idx = page.eval_on_selector_all(
        "#runs-table thead th", "(ths, name) => ths.findIndex(th => th.dataset.column === name)", name
    )
    assert idx >= 0, f"no column {name}"
    return page.eval_on_selector_all(
        f"#runs-table tbody tr td:nth-child({idx + 1})", "tds => tds.map(td => td.textContent)"
    )


def test_table_matches_the_api_and_sorts(demo_collector, ui, runs):
    ui.open(demo_collector.http_url, "runs?experiment=demo-classifier&sort=metrics.train/loss&dir=asc")
    ui.page.wait_for_selector("#runs-table tbody tr")
    expected = sorted(
        (r for r in runs.values() if r["experiment"] == "demo-classifier" and "train/loss" in r["metrics"]),
        key=lambda r: r["metrics"]["train/loss"],
    )
    assert len(expected) >= 3, "the demo's training runs are missing: the comparison would prove nothing"
    assert table_rows(ui.page)[: len(expected)] == [r["id"] for r in expected]
    losses = column(ui.page, "metrics.train/loss")
    assert [float(v) for v in losses if v] == pytest.approx(
        [r["metrics"]["train/loss"] for r in expected], rel=1e-3
    )
    # min/max of a metric are on the cell's tooltip
    first = expected[0]
    title = ui.page.get_attribute(f'tr[data-run-id="{first["id"]}"] td[title^="min"]', "title")
    assert title.startswith("min ") and "max " in title
    # the model file of the logreg run is linked to the artifact download
    link = ui.page.locator(f'tr[data-run-id="{runs["logreg-final"]["id"]}"] a.badge')
    assert link.get_attribute("href").startswith("/api/v1/artifacts/")
    # header click sorts the other way
    ui.page.click('th[data-column="metrics.train/loss"]')
    ui.page.wait_for_url("**dir=desc*")
    ui.wait_ready()
    assert table_rows(ui.page)[: len(expected)] == [r["id"] for r in reversed(expected)]


def test_llm_columns_and_column_chooser(demo_collector, ui, runs):
    ui.open(demo_collector.http_url, "runs?experiment=demo-prompt-eval")
    ui.page.wait_for_selector("#runs-table tbody tr")
    run = runs["prompt-v2-gpt-4o"]
    row = ui.page.locator(f'tr[data-run-id="{run["id"]}"]')
    cost_idx = ui.page.eval_on_selector_all(
        "#runs-table thead th", "ths => ths.findIndex(th => th.dataset.column === 'llm_tokens')"
    )
    assert row.locator(f"td:nth-child({cost_idx + 1})").inner_text() == f"{run['llm']['total_tokens']:,}"
    assert column(ui.page, "scores.accuracy")  # mean accuracy score per run
    # Hide a column: gone from the table, remembered in the URL, so it survives a reload.
    ui.page.click("#column-chooser summary")
    ui.page.uncheck('#column-chooser input[data-column="params.prompt"]')
    ui.page.wait_for_url("**hide=*params.prompt*")  # with the columns hidden by default
    ui.wait_ready()
    assert ui.page.locator('th[data-column="params.prompt"]').count() == 0
    ui.page.reload()
    ui.page.wait_for_selector("#runs-table tbody tr")
    assert ui.page.locator('th[data-column="params.prompt"]').count() == 0
    assert ui.page.locator('th[data-column="params.model"]').count() == 1


def test_bad_filter_shows_the_server_error(demo_collector, ui):
    ui.allow_console_error(r"status of 400")
    ui.open(demo_collector.http_url, "runs")
    ui.page.fill("#where", "params.lr >")
    ui.page.press("#where", "Enter")
    assert "col" in ui.page.locator("#runs-error").inner_text()


def test_curve_options_parallel_and_scatter(demo_collector, ui, runs):
    sel = ",".join(runs[n]["id"] for n in ("sgd-lr0.1", "adam-lr0.03"))
    ui.open(demo_collector.http_url, f"runs?experiment=demo-classifier&sel={sel}")
    loss = ui.page.locator('#selected-charts .chart[data-metric="train/loss"]')
    loss.wait_for()
    assert loss.evaluate(CANVAS_PAINTED)
    option = loss.evaluate(OPTION)
    assert len(option["series"]) == 2 and len(option["series"][0]["data"]) == 300
    raw = option["series"][0]["data"]

    ui.page.goto(ui.page.url + "&smooth=0.9&log=1&x=time&pc=train/accuracy")
    ui.page.wait_for_function(
        "() => { const el = document.querySelector('#selected-charts .chart[data-metric=\"train/loss\"]');"
        " return el && echarts.getInstanceByDom(el) && echarts.getInstanceByDom(el).getOption().series.length === 4; }"
    )
    option = ui.page.locator('#selected-charts .chart[data-metric="train/loss"]').evaluate(OPTION)
    assert option["yAxis"][0]["type"] == "log"
    assert option["xAxis"][0]["name"] == "seconds since start"
    faint, smoothed = option["series"][0], option["series"][1]
    assert faint["lineStyle"]["opacity"] < 0.5
    ys_raw = [p[1] for p in faint["data"]]
    ys_smooth = [p[1] for p in smoothed["data"]]
    assert sorted(ys_raw) == sorted(p[1] for p in raw)  # the same points, by time instead of step
    # smoothing removes the noise: the smoothed curve moves less from point to point
    jitter = lambda ys: sum(abs(a - b) for a, b in zip(ys, ys[1:], strict=False))  # noqa: E731
    assert jitter(ys_smooth) < jitter(ys_raw) / 2
    assert max(p[0] for p in faint["data"]) > 0  # seconds, from the run's start

    par = ui.page.locator("#parallel-chart")
    assert par.evaluate(CANVAS_PAINTED)
    popt = par.evaluate(OPTION)
    assert [a["name"] for a in popt["parallelAxis"]][-1] == "train/accuracy"
    with_metric = [
        r for r in runs.values() if r["experiment"] == "demo-classifier" and "train/accuracy" in r["metrics"]
    ]
    assert len(popt["series"][0]["data"]) == len(with_metric)
    ui.page.select_option("#parallel-metric", "train/loss")
    ui.page.wait_for_url("**pc=train%2Floss*")

    ui.page.select_option("#scatter-x", "params.learning_rate")
    ui.page.wait_for_url("**sx=params.learning_rate*")
    ui.page.select_option("#scatter-y", "metrics.train/loss")
    ui.page.wait_for_url("**sy=metrics.train*")
    ui.page.wait_for_function(
        "() => { const el = document.querySelector('#scatter-chart'); const c = el && echarts.getInstanceByDom(el);"
        " return c && c.getOption().yAxis[0].name === 'metrics.train/loss'; }"
    )
    sopt = ui.page.locator("#scatter-chart").evaluate(OPTION)
    points = sorted(tuple(d["value"]) for d in sopt["series"][0]["data"])
    expected = sorted(
        (r["params"]["learning_rate"], r["metrics"]["train/loss"])
        for r in runs.values()
        if "learning_rate" in r["params"] and "train/loss" in r["metrics"]
    )
    assert [v for p in points for v in p] == pytest.approx([v for p in expected for v in p])


def test_compare_view(demo_collector, ui, runs):
    a, b = runs["prompt-v1-gpt-4o-mini"], runs["prompt-v2-gpt-4o"]
    ui.open(demo_collector.http_url, f"runs?experiment=demo-prompt-eval&sel={a['id']},{b['id']}")
    ui.page.click("#compare-selected")
    ui.page.wait_for_selector("#compare-params")
    assert (
        ui.page.locator("#compare-params tr[data-param]").count() == 4
    )  # examples, model, prompt, temperature
    ui.page.check("#diff-only")
    ui.page.wait_for_url("**diff=1*")
    ui.wait_ready()
    assert sorted(
        ui.page.eval_on_selector_all("#compare-params tr[data-param]", "r => r.map(x => x.dataset.param)")
    ) == [
        "model",
        "prompt",
    ]
    ui.page.uncheck("#diff-only")
    ui.page.wait_for_function(
        "() => document.querySelectorAll('#compare-params tr[data-param]').length === 4"
    )

    cmp = demo_collector.session.get(
        demo_collector.http_url + "/api/v1/runs/compare", params={"ids": f"{a['id']},{b['id']}"}
    ).json()
    cost_row = ui.page.locator('#compare-llm tr[data-llm="cost_usd"]')
    delta = cmp["llm"][b["id"]]["cost_usd"] - cmp["llm"][a["id"]]["cost_usd"]
    assert delta > 0
    assert "+" in cost_row.locator(".delta").inner_text()
    assert "worse" in cost_row.locator(".delta").get_attribute("class")  # more cost is worse
    acc_row = ui.page.locator('#compare-llm tr[data-llm="accuracy"]')
    assert (
        acc_row.locator("td").nth(1).inner_text().startswith(str(round(cmp["llm"][a["id"]]["accuracy"], 4)))
    )

    curves = ui.page.locator('#compare-charts .chart[data-metric="running_accuracy"]')
    curves.wait_for()
    assert curves.evaluate(CANVAS_PAINTED)
    assert len(curves.evaluate(OPTION)["series"]) == 2

    # The other run as baseline: deltas flip sign.
    ui.page.select_option("#baseline", b["id"])
    ui.page.wait_for_url(f"**base={b['id']}*")
    ui.wait_ready()
    assert ui.page.locator('#compare-llm tr[data-llm="cost_usd"] .delta').inner_text().startswith("-")
    ui.screenshot("baseline-b")


def test_compare_needs_two_runs(demo_collector, ui):
    ui.open(demo_collector.http_url, "compare")
    assert "at least two runs" in ui.page.locator(".empty").inner_text()


def test_compare_names_a_missing_run(demo_collector, ui, runs):
    ui.allow_console_error(r"status of 4\d\d")
    ui.open(demo_collector.http_url, f"compare?ids={runs['sgd-lr0.1']['id']},{'0' * 32}")
    assert f"no run {'0' * 32}" in ui.page.locator("#page-error").inner_text()
