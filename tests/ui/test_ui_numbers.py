"""The pictures against the data, in headless Chromium: every chart's drawn series, bucket by
bucket, against the REST answer; one colour per model and per run on every chart and page; the
figures printed on the pages against REST rendered with the documented formatting
(formatting.py, lib.js).

The data is seeded for the edge cases: a sparse model (calls in three hours of the day only), a
one-call model (all its percentiles equal), a failed call without a response model beside the
dated response model of the others (one model identity, one row), costs between $0.01 and
$0.10, and a model with more than EXACT_MAX_COUNT calls, so the day's percentiles come from the
rollup's sketch and are marked approximate.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from decimal import Decimal

import pytest
from browser import OPTION
from helpers import make_span, trace_request, wait_for
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from tracehouse_collector.formatting import fmt_cost
from tracehouse_collector.query.aggregates import EXACT_MAX_COUNT
from ui_format import fmt_ms

pytestmark = pytest.mark.timeout(300)

HOUR_NS = 3600 * 10**9
SPARSE_HOURS = (2, 5, 9)  # hours before now with calls of the sparse model
BULK = EXACT_MAX_COUNT + 100


def fmt_percentile(row, key) -> str:
    """lib.js fmtPercentile: '≈' before a sketch's answer."""
    text = fmt_ms(row[key])
    return f"≈{text}" if row["percentiles_error"] and row[key] is not None else text


@pytest.fixture(scope="module")
def numbers_collector(start_collector):
    c = start_collector(name="numbers")
    rng = random.Random(15)
    now_ns = time.time_ns()
    spans = []

    def call(model, response, ago_ns, ms, cost, error=False, session=None):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": rng.randrange(50, 900),
            "gen_ai.usage.output_tokens": rng.randrange(5, 300),
            "gen_ai.usage.cost": str(cost),
        }
        if response:
            attrs["gen_ai.response.model"] = response
        if session:
            attrs["session.id"] = session
        span = make_span(
            f"chat {model}", start_ns=now_ns - ago_ns, duration_ns=int(ms * 1e6), attributes=attrs
        )
        if error:
            span.status.code = Status.STATUS_CODE_ERROR
        spans.append(span)

    for i in range(BULK):  # many calls over the day: the sketch answers the day's percentiles
        call(
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            rng.randrange(HOUR_NS // 2, 20 * HOUR_NS),
            rng.lognormvariate(5.5, 0.7),
            Decimal("0.00002"),
            session=f"s{i % 3}",
        )
    call("gpt-4o-mini", "", 4 * HOUR_NS + 17, 2033.0, Decimal("0"), error=True)  # failed: request model only
    for h in SPARSE_HOURS:
        for k in range(2):
            call(
                "claude-sonnet-4",
                "claude-sonnet-4-20250514",
                h * HOUR_NS + k * 10**9 + 5 * 10**9,
                rng.uniform(300, 900),
                Decimal("0.0261"),
                session="s-sparse",
            )
    call("o3-mini", "o3-mini-2025-01-31", 3 * HOUR_NS + 10**9, 4.679, Decimal("0.0731"))  # one call
    for i in range(0, len(spans), 500):
        r = c.post("/v1/traces", trace_request("numbers-app", spans[i : i + 500]).SerializeToString())
        assert r.status_code == 200, r.text
    assert wait_for(lambda: c.scalar("SELECT count() FROM otel_traces") == len(spans), timeout=30)
    return c


def rest(c, kind: str, **params) -> list[dict]:
    page = c.session.get(
        f"{c.http_url}/api/v1/query/{kind}", params={"since": "24h", **params}, timeout=30
    ).json()
    return [dict(zip(page["columns"], r, strict=True)) for r in page["rows"]]


def series_of(ui, chart_id: str) -> list[dict]:
    return ui.page.locator(f"#{chart_id}").evaluate(OPTION)["series"]


def bucket_ms(text: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_metrics_charts_equal_rest_bucket_by_bucket(numbers_collector, ui):
    c = numbers_collector
    ui.open(c.http_url, "metrics?since=24h")
    ui.wait_ready()
    by_hour = {bucket_ms(r["hour"]): r for r in rest(c, "latency", by="hour")}
    cost_hm = rest(c, "cost", by="hour,model")
    per_hour = defaultdict(lambda: {"total_tokens": 0, "cost_usd": Decimal(0)})
    for r in cost_hm:
        per_hour[bucket_ms(r["hour"])]["total_tokens"] += r["total_tokens"]
        per_hour[bucket_ms(r["hour"])]["cost_usd"] += Decimal(r["cost_usd"] or 0)

    # Every series of a chart lies on the same hourly buckets of the range; an hour without
    # calls is a gap (null), never a zero or a bridged line.
    charts = {
        cid: series_of(ui, cid) for cid in ("requests-chart", "latency-chart", "tokens-chart", "cost-chart")
    }
    xs = {tuple(p[0] for p in s["data"]) for ss in charts.values() for s in ss}
    assert len(xs) == 1
    (grid,) = xs
    assert all(b - a == 3600_000 for a, b in zip(grid, grid[1:], strict=False)) and len(grid) >= 24
    assert set(by_hour) <= set(grid)
    assert any(t not in by_hour for t in grid), "the seeded data leaves some hours empty"

    requests, errors = charts["requests-chart"]
    latency = {s["name"]: s for s in charts["latency-chart"]}
    for i, t in enumerate(grid):
        row = by_hour.get(t)
        assert requests["data"][i][1] == (row["count"] if row else None)
        assert errors["data"][i][1] == (round(row["count"] * row["error_rate"]) if row else None)
        for level in ("p50", "p90", "p99"):
            assert latency[level]["data"][i][1] == (row[f"{level}_ms"] if row else None), (level, t)
        # Stacked: each bucket's total over the models equals REST's total for that hour.
        for cid, field in (("tokens-chart", "total_tokens"), ("cost-chart", "cost_usd")):
            drawn = [s["data"][i][1] for s in charts[cid] if s["data"][i][1] is not None]
            if t in per_hour:
                assert sum(drawn) == pytest.approx(float(per_hour[t][field]), rel=1e-9), (cid, t)
            else:
                assert drawn == [], (cid, t)
    # The stack is per (bucket, model): each segment equals REST's row for that model and hour.
    tokens = {s["name"]: s for s in charts["tokens-chart"]}
    for r in cost_hm:
        i = grid.index(bucket_ms(r["hour"]))
        assert tokens[r["model"]]["data"][i][1] == r["total_tokens"]
    # Sparse: the sparse model has values in its three hours only.
    assert sum(v is not None for _, v in tokens["claude-sonnet-4"]["data"]) == len(SPARSE_HOURS)
    # The one-call model's percentiles are equal: the three lines stay apart by style.
    styles = {(s["lineStyle"]["type"], s["lineStyle"]["width"], s["symbol"]) for s in latency.values()}
    assert len(styles) == 3
    # Units on axes and tooltips.
    for cid, unit in (("latency-chart", "ms"), ("cost-chart", "USD"), ("tokens-chart", "tokens")):
        y = ui.page.locator(f"#{cid}").evaluate(
            "el => echarts.getInstanceByDom(el).getOption().yAxis[0].name"
        )
        assert y == unit
    assert (
        ui.page.locator("#latency-chart").evaluate(
            "el => echarts.getInstanceByDom(el).getOption().tooltip[0].valueFormatter(1234.5)"
        )
        == "1.23 s"
    )


def test_one_model_one_row_and_one_colour_everywhere(numbers_collector, ui):
    c = numbers_collector
    models = {r["model"]: r for r in rest(c, "cost", by="model")}
    # The failed call (request model only) and the dated responses are one model.
    assert sorted(models) == ["claude-sonnet-4", "gpt-4o-mini", "o3-mini"]
    assert models["gpt-4o-mini"]["count"] == BULK + 1

    ui.open(c.http_url, "metrics?since=24h")
    ui.wait_ready()
    colours = defaultdict(set)
    for cid in ("tokens-chart", "cost-chart"):
        for s in series_of(ui, cid):
            colours[s["name"]].add(s["color"])
    top = ui.page.locator("#top-models-chart").evaluate("el => echarts.getInstanceByDom(el).getOption()")
    for name, d in zip(top["yAxis"][0]["data"], top["series"][0]["data"], strict=True):
        colours[name].add(d["itemStyle"]["color"])
    table = ui.page.eval_on_selector_all(
        "#cost-by-model-table tbody tr",
        "rows => rows.map(r => [r.dataset.model, r.querySelector('.swatch').style.background, r.querySelector('.cost').innerText])",
    )
    ui.open(c.http_url, "overview?since=24h")
    ui.wait_ready()
    legend = ui.page.eval_on_selector_all(
        "#cost-by-model li",
        "items => items.map(i => [i.dataset.key, i.querySelector('.swatch').style.background])",
    )
    css = {}
    for model, colour in legend:
        css[model] = colour
    for model, colour, _ in table:
        assert css.get(model, colour) == colour  # the same swatch colour on both pages
        css[model] = colour
    # ECharts keeps the colour as given (hsl); the DOM reports rgb: compare through the browser.
    to_rgb = (
        "c => { const e = document.createElement('i'); e.style.background = c; return e.style.background; }"
    )
    for model, given in colours.items():
        assert len(given) == 1, (model, given)  # one colour in every chart of the page
        assert ui.page.evaluate(to_rgb, given.pop()) == css[model], model
    assert len(set(css.values())) == len(css)  # and different models differ
    # Every cost printed is REST's, with the documented formatting (never two decimals).
    for model, _, text in table:
        assert text == "$" + fmt_cost(models[model]["cost_usd"]), model
    assert "$" + fmt_cost("0.1566") == "$0.1566" and fmt_cost("0.0261") == "0.0261"


def test_overview_figures_equal_rest(numbers_collector, ui):
    c = numbers_collector
    ui.open(c.http_url, "overview?since=24h")
    ui.wait_ready()
    (lat,) = rest(c, "latency")
    (cost,) = rest(c, "cost")
    kpi = lambda key: ui.page.locator(f'.kpi[data-kpi="{key}"] .value').inner_text()  # noqa: E731
    assert lat["count"] > EXACT_MAX_COUNT and lat["percentiles_error"] > 0
    assert kpi("p50") == fmt_percentile(lat, "p50_ms") and kpi("p50").startswith("≈")
    assert kpi("p99") == fmt_percentile(lat, "p99_ms")
    assert "approximate" in ui.page.locator('.kpi[data-kpi="p99"]').get_attribute("title")
    assert kpi("cost") == "$" + fmt_cost(cost["cost_usd"])
    legend = ui.page.eval_on_selector_all(
        "#cost-by-model li", "items => items.map(i => [i.dataset.key, i.innerText])"
    )
    for model, text in legend:
        (row,) = rest(c, "cost", by="model", where=f"model = '{model}'")
        assert f" ${fmt_cost(row['cost_usd'])} (" in text, (model, text)
    # The hourly chart: the same buckets and values as REST, gaps where no call was made.
    by_hour = {bucket_ms(r["hour"]): r for r in rest(c, "latency", by="hour")}
    for s in series_of(ui, "latency-chart"):
        for t, v in s["data"]:
            assert v == (by_hour[t][f"{s['name']}_ms"] if t in by_hour else None)


def test_traces_and_sessions_costs_equal_rest(numbers_collector, ui):
    c = numbers_collector
    ui.open(c.http_url, "sessions?since=24h")
    ui.wait_ready()
    sessions = c.session.get(f"{c.http_url}/api/v1/sessions", params={"since": "24h"}, timeout=30).json()
    rows = [dict(zip(sessions["columns"], r, strict=True)) for r in sessions["rows"]]
    cells = ui.page.eval_on_selector_all("main table tbody tr", "rows => rows.map(r => r.innerText)")
    for row in rows:
        assert any(row["session_id"] in cell and "$" + fmt_cost(row["cost_usd"]) in cell for cell in cells), (
            row
        )
    ui.open(c.http_url, "traces?since=24h")
    ui.wait_ready()
    page = c.session.get(
        f"{c.http_url}/api/v1/traces", params={"since": "24h", "limit": 50}, timeout=30
    ).json()
    first = dict(zip(page["columns"], page["rows"][0], strict=True))
    text = ui.page.locator("main table tbody tr").first.inner_text()
    assert "$" + fmt_cost(first["cost_usd"]) in text


def test_empty_state_names_the_collectors_own_ports(start_collector, ui):
    c = start_collector(name="empty")
    ui.open(c.http_url, "overview")
    ui.wait_ready()
    text = ui.page.locator("#otlp-endpoints").inner_text()
    grpc_port = c.session.get(f"{c.http_url}/healthz", timeout=10).json()["grpc_port"]
    assert c.http_url in text and f":{grpc_port}" in text
    assert str(grpc_port) == c.grpc_endpoint.rsplit(":", 1)[1]


def test_lib_js_formats_costs_as_formatting_py(numbers_collector, ui):
    """lib.js fmtCost and formatting.fmt_cost agree digit for digit, on the decimal text."""
    rng = random.Random(7)
    values = ["0.026100000000", "0.001800000000", "0.099996", "999.995", "0", "-0.004"]
    values += [str(Decimal(rng.randrange(1, 10**rng.randrange(2, 19))).scaleb(-12)) for _ in range(300)]
    ui.open(numbers_collector.http_url, "overview?since=24h")
    ui.wait_ready()
    shown = ui.page.evaluate("vs => import('/ui/lib.js').then(m => vs.map(m.fmtCost))", values)
    assert shown == ["$" + fmt_cost(v) if not v.startswith("-") else "-$" + fmt_cost(v)[1:] for v in values]


def test_a_run_has_one_colour_on_runs_compare_and_its_own_page(demo_collector, ui):
    c = demo_collector
    runs = c.session.get(f"{c.http_url}/api/v1/runs", params={"experiment": "demo-classifier"}, timeout=30).json()
    assert len(runs) >= 2
    ids = [r["id"] for r in runs[:3]]

    def colours(selector: str) -> dict[str, set]:
        out = defaultdict(set)
        for option in ui.page.eval_on_selector_all(
            selector, "els => els.map(el => echarts.getInstanceByDom(el).getOption())"
        ):
            for s in option["series"]:
                out[s["name"]].add(s["color"])
        return out

    ui.open(c.http_url, f"runs?experiment=demo-classifier&sel={','.join(ids)}")
    ui.wait_ready()
    on_runs = colours("#selected-charts .chart")
    # Compare, with the runs in the other order: a colour follows the run, not its position.
    ui.open(c.http_url, f"compare?ids={','.join(reversed(ids))}")
    ui.wait_ready()
    on_compare = colours("#compare-charts .chart")
    assert on_runs and on_compare
    for name in set(on_runs) | set(on_compare):
        assert len(on_runs[name] | on_compare[name]) == 1, name
    id_of = {r["name"]: r["id"] for r in runs[:3]}
    assert len(id_of) == len(ids)  # the demo's runs have distinct names: a legend names one run
    by_id = {id_of[name]: colour for name, (colour,) in on_compare.items()}
    assert len(set(by_id.values())) == len(by_id)  # different runs, different colours
    checked = 0
    for run_id in ids:  # each run's own page draws its curves in its colour
        ui.open(c.http_url, f"run/{run_id}")
        ui.wait_ready()
        own = {col for cols in colours("#run-charts .chart").values() for col in cols}
        if own:  # a run whose metrics were each logged once has no curves
            assert own == {by_id[run_id]}
            checked += 1
    assert checked
