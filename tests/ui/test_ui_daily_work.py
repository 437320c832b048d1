"""The pages of daily debugging and run comparison in headless Chromium over the store
`tracehouse demo` filled (issue 16): the trace view (time ruler, time to first token, stack
traces as code, errors in the tree, pretty JSON attributes, retrieval documents, tool arguments
and results, the span status in words), failed turns and tool calls in a session transcript,
the runs table grouped (sums and means), pinned and with saved column sets, legends on the
multi-run charts, the run page's traces, the SQL console's quick chart, and every page fitting
a 1,366 px laptop screen. Each figure is checked against REST or SQL read independently."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, quote

import numpy as np
import pytest
from browser import CANVAS_PAINTED, OPTION
from helpers import rest_get
from ui_format import fmt_int, fmt_ms, fmt_num, fmt_score, fmt_usd

pytestmark = pytest.mark.timeout(300)


def walk(spans):
    for s in spans:
        yield s
        yield from walk(s["children"])


def trace_of(c, where_sql: str) -> dict:
    """The REST trace of the newest demo trace with a span matching the SQL condition."""
    trace_id = c.scalar(f"SELECT TraceId FROM otel_traces WHERE {where_sql} ORDER BY Timestamp DESC LIMIT 1")
    assert trace_id, f"the demo recorded no span where {where_sql}"
    return rest_get(c, f"/api/v1/traces/{trace_id}")


def open_span(ui, c, trace: dict, span: dict):
    ui.open(c.http_url, f"trace/{trace['trace_id']}?span={span['span_id']}")
    ui.page.wait_for_selector(".span-row.selected")
    return ui.page.locator("#span-detail")


def sql_rows(c, query: str) -> list[list]:
    return c.sql_raw(query)["rows"]


def runs_by_name(c) -> dict[str, dict]:
    return {r["name"]: r for r in rest_get(c, "/api/v1/runs")}


# -- the trace view --------------------------------------------------------------------------


def test_stack_trace_renders_as_code_with_line_breaks(demo_collector, ui):
    trace = trace_of(demo_collector, "has(Events.Name, 'exception')")
    failing = next(s for s in walk(trace["spans"]) if any(e["name"] == "exception" for e in s["events"]))
    event = next(e for e in failing["events"] if e["name"] == "exception")["attributes"]
    stack = event["exception.stacktrace"]
    assert stack.count("\n") >= 3, "the demo's exception carries no multi-line stack trace"
    pane = open_span(ui, demo_collector, trace, failing)
    code = pane.locator("#span-exception pre.stacktrace code")
    # The text itself, line breaks and all, not an escaped JSON string with literal "\n".
    assert code.inner_text() == stack
    assert "\\n" not in code.inner_text()
    assert code.evaluate("el => getComputedStyle(el.parentElement).whiteSpace") == "pre"
    # Drawn as one line per line of the trace: the block is as tall as that many lines.
    lines = code.evaluate(
        "el => el.parentElement.scrollHeight / parseFloat(getComputedStyle(el.parentElement).lineHeight)"
    )
    assert round(lines) == stack.rstrip("\n").count("\n") + 1
    title = pane.locator("#span-exception .exception-title").inner_text()
    assert title == f"{event['exception.type']}: {event['exception.message']}"
    # The status in words, with the message the span carries.
    status = pane.locator(".span-status").inner_text()
    assert status == f"error: {failing['status_message']}" and failing["status"] == "Error"
    # Every failing span names its error in the tree itself.
    for s in walk(trace["spans"]):
        row = ui.page.locator(f'.span-row[data-span-id="{s["span_id"]}"]')
        if s["error"]:
            assert s["error"]["message"] in row.locator(".span-error").inner_text()
        else:
            assert row.locator(".span-error").count() == 0
    # A span that set no status reads as people say it, not OTel's "Unset".
    unset = next((s for s in walk(trace["spans"]) if s["status"] == "Unset"), None)
    if unset is not None:
        ui.page.click(f'.span-row[data-span-id="{unset["span_id"]}"]')
        assert ui.page.locator("#span-detail .span-status").inner_text() == "ok (no error reported)"


def test_retrieval_documents_and_tool_arguments_show(demo_collector, ui):
    trace = trace_of(demo_collector, "SpanAttributes['gen_ai.tool.name'] = 'get_weather'")
    spans = list(walk(trace["spans"]))
    retrieval = next(s for s in spans if s["operation"] == "retrieval")
    docs = json.loads(retrieval["attributes"]["gen_ai.retrieval.documents"])
    assert docs and all({"id", "score", "content"} <= set(d) for d in docs)
    pane = open_span(ui, demo_collector, trace, retrieval)
    items = pane.locator("#retrieval-documents li.document")
    assert items.count() == len(docs)
    for i, d in enumerate(docs):
        item = items.nth(i)
        assert item.get_attribute("data-id") == d["id"]
        assert item.locator(".document-content").inner_text() == d["content"]
        assert item.locator(".document-score").inner_text() == f"score {fmt_num(d['score'])}"
    query = retrieval["attributes"]["gen_ai.retrieval.query.text"]
    assert pane.locator("#retrieval-query").inner_text() == f"from support-docs · query: {query}"

    tool = next(s for s in spans if s["operation"] == "execute_tool")
    llm_call = next(s for s in spans if s["tool_calls"])  # the model's request for the tool
    asked = llm_call["tool_calls"][0]
    ui.page.click(f'.span-row[data-span-id="{tool["span_id"]}"]')
    pane = ui.page.locator("#span-detail")
    arguments = pane.locator("#tool-arguments pre.json")
    # The arguments the model sent, pretty-printed; the result the tool returned.
    assert json.loads(arguments.inner_text()) == json.loads(tool["attributes"]["gen_ai.tool.call.arguments"])
    assert json.loads(arguments.inner_text()) == (
        json.loads(asked["arguments"]) if isinstance(asked["arguments"], str) else asked["arguments"]
    )
    assert arguments.inner_text() == json.dumps(tool["tool"]["arguments"], indent=2, ensure_ascii=False)
    result = json.loads(pane.locator("#tool-result pre.json").inner_text())
    assert result == json.loads(tool["attributes"]["gen_ai.tool.call.result"])
    assert result["city"] in result["forecast"]


def test_time_ruler_first_token_and_duration_labels(demo_collector, ui):
    trace = trace_of(demo_collector, "SpanAttributes['gen_ai.response.time_to_first_chunk'] != ''")
    total = trace["duration_ms"]
    ui.open(demo_collector.http_url, f"trace/{trace['trace_id']}")
    ui.page.wait_for_selector("#trace-ruler .ruler-tick")
    ticks = ui.page.eval_on_selector_all(
        "#trace-ruler .ruler-tick",
        "ts => ts.map(t => [Number(t.dataset.ms), parseFloat(t.style.left), t.textContent])",
    )
    # Round steps of 1, 2 or 5 times a power of ten, at most six parts, from 0 to the end.
    step = ticks[1][0] - ticks[0][0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert ticks[0][0] == 0 and round(mantissa, 9) in (1, 2, 5, 10) and total / step <= 6
    assert len(ticks) == math.floor(total / step * (1 + 1e-9)) + 1
    for ms, left, text in ticks:
        assert left == pytest.approx(100 * ms / total, abs=1e-3)
        assert text == fmt_ms(ms)

    streamed = next(
        s for s in walk(trace["spans"]) if s["attributes"].get("gen_ai.response.time_to_first_chunk")
    )
    ttft_ms = float(streamed["attributes"]["gen_ai.response.time_to_first_chunk"]) * 1000
    assert 0 < ttft_ms <= streamed["duration_ms"]
    mark = ui.page.locator(f'.span-row[data-span-id="{streamed["span_id"]}"] .ttft-mark')
    left = mark.evaluate("el => parseFloat(el.style.left)")
    assert left == pytest.approx(
        100 * (streamed["offset_ms"] + ttft_ms) / total, abs=1e-3
    )  # CSS keeps 4 decimals
    ui.page.click(f'.span-row[data-span-id="{streamed["span_id"]}"]')
    assert ui.page.locator("#span-ttft").inner_text() == f"{fmt_ms(ttft_ms)} after the call started"

    labels = {b["span"]: b["text"] for b in label_boxes(ui)}
    assert labels == {s["span_id"]: fmt_ms(s["duration_ms"]) for s in walk(trace["spans"])} | {"": fmt_ms(total)}


# What the browser drew for each row of the waterfall (and the ruler, span ""): the box of the
# duration label's text (a Range, so text spilling out of its grid cell counts), of the row's
# bar (the ruler: each tick label), of the row, and the window's width.
LABEL_BOXES = """() => [...document.querySelectorAll('#trace-ruler, .span-row')].filter(r => !r.hidden).map(row => {
  const rect = (r) => { const b = r.getBoundingClientRect(); return {left: b.left, right: b.right, top: b.top,
    bottom: b.bottom}; };
  const label = row.querySelector('.waterfall-label');
  const text = document.createRange();
  text.selectNodeContents(label);
  const bars = row.id === 'trace-ruler' ? [...row.querySelectorAll('.ruler-tick')] : [row.querySelector('.waterfall-bar')];
  return {span: row.dataset.spanId || '', text: label.textContent, label: rect(text), cell: rect(label),
    bars: bars.map(rect), row: rect(row), width: window.innerWidth};
})"""


def label_boxes(ui) -> list[dict]:
    """LABEL_BOXES, after checking each label lies beside its bars (no shared pixel), inside
    its row and inside the window."""
    boxes = ui.page.evaluate(LABEL_BOXES)
    assert boxes and boxes[0]["span"] == ""  # the ruler first
    for b in boxes:
        label, row = b["label"], b["row"]
        assert label["right"] > label["left"], b  # drawn
        for bar in b["bars"]:
            apart = label["left"] >= bar["right"] or label["right"] <= bar["left"]
            assert apart or label["top"] >= bar["bottom"] or label["bottom"] <= bar["top"], (
                f"the duration label {b['text']!r} of span {b['span'] or 'ruler'} overlaps its bar: {label} {bar}"
            )
        assert row["left"] <= label["left"] and label["right"] <= row["right"], b
        assert row["top"] <= label["top"] and label["bottom"] <= row["bottom"], b
        assert label["right"] <= b["width"], b
    return boxes


@pytest.mark.parametrize("width", [1366, 1400])
def test_duration_labels_sit_beside_their_bars(demo_collector, ui, width):
    """In the slowest and the fastest trace, the one with the most spans, a failed one and a
    streamed one, no duration label shares a pixel with its bar, and each stays inside its row
    and the window, on a 1,366 px laptop screen and a wider one."""
    ui.page.set_viewport_size({"width": width, "height": 900})
    ids = {
        rest_get(demo_collector, "/api/v1/traces", since="30d", sort=sort, limit=1)["rows"][0][0]
        for sort in ("latency_ms", "spans", "latency_ms:asc")
    }
    ids |= {
        trace_of(demo_collector, cond)["trace_id"]
        for cond in ("has(Events.Name, 'exception')", "SpanAttributes['gen_ai.response.time_to_first_chunk'] != ''")
    }
    for trace_id in sorted(ids):
        ui.open(demo_collector.http_url, f"trace/{trace_id}")
        ui.wait_ready()
        trace = rest_get(demo_collector, f"/api/v1/traces/{trace_id}")
        boxes = label_boxes(ui)
        assert len(boxes) == 1 + sum(1 for _ in walk(trace["spans"]))
        # The labels make a column right of every bar of the trace.
        assert max(b["bars"][0]["right"] for b in boxes[1:]) < min(b["label"]["left"] for b in boxes[1:])


def test_json_attributes_are_pretty_printed_and_collapsible(demo_collector, ui):
    trace = trace_of(demo_collector, "SpanAttributes['gen_ai.tool.name'] = 'get_weather'")
    llm = next(s for s in walk(trace["spans"]) if s["attributes"].get("gen_ai.tool.definitions"))
    pane = open_span(ui, demo_collector, trace, llm)
    for key in ("gen_ai.input.messages", "gen_ai.tool.definitions"):
        row = pane.locator(f'#attr-table tr[data-key="{key}"]')
        details = row.locator("details.json-view")
        pretty = json.dumps(json.loads(llm["attributes"][key]), indent=2, ensure_ascii=False)
        assert details.locator("pre.json").text_content() == pretty
        # open when short, closed when long; a click on the summary toggles it
        assert details.evaluate("el => el.open") == (len(pretty) <= 400)
        was = details.evaluate("el => el.open")
        details.locator("summary").click()
        assert details.evaluate("el => el.open") is (not was)
    # Plain text wraps between words: no CSS that breaks inside a word where a space would do.
    text = pane.locator('#attr-table tr[data-key="gen_ai.request.model"] .attr-text')
    assert text.evaluate("el => getComputedStyle(el.closest('td')).wordBreak") != "break-all"


def test_trace_header_names_the_run(demo_collector, ui):
    runs = runs_by_name(demo_collector)
    run = runs["prompt-v2-gpt-4o"]
    trace = trace_of(demo_collector, f"RunId = '{run['id']}'")
    ui.open(demo_collector.http_url, f"trace/{trace['trace_id']}")
    link = ui.page.locator("#trace-run")
    assert link.inner_text() == run["name"] and link.get_attribute("href") == f"#/run/{run['id']}"


# -- sessions --------------------------------------------------------------------------------


def test_session_turns_show_their_error_and_tool_calls(demo_collector, ui):
    session = rest_get(demo_collector, "/api/v1/sessions/sess-travel")
    ui.open(demo_collector.http_url, "sessions/sess-travel")
    ui.page.wait_for_selector("#transcript .turn")
    turns = ui.page.locator("#transcript .turn")
    assert turns.count() == len(session["turns"]) == 2
    weather, failed = session["turns"]
    # The tool the model called, with the arguments the tool span recorded (read here by SQL).
    args, result = sql_rows(
        demo_collector,
        "SELECT SpanAttributes['gen_ai.tool.call.arguments'], SpanAttributes['gen_ai.tool.call.result'] "
        f"FROM otel_traces WHERE TraceId = '{weather['trace_id']}' AND GenAIOperation = 'execute_tool'",
    )[0]
    call = turns.nth(0).locator(".turn-tools details.tool-call")
    assert call.count() == 1 and call.get_attribute("data-tool") == "get_weather"
    city = json.loads(args)["city"]
    assert call.locator(".tool-signature").inner_text() == f'get_weather(city="{city}")'
    call.locator(":scope > summary").click()
    assert json.loads(call.locator(".tool-result pre.json").inner_text()) == json.loads(result)
    assert turns.nth(0).locator(".turn-error").count() == 0
    # The failed turn says why, naming the span the error arose in.
    span, etype, message = sql_rows(
        demo_collector,
        "SELECT SpanName, SpanAttributes['error.type'], StatusMessage FROM otel_traces "
        f"WHERE TraceId = '{failed['trace_id']}' AND StatusCode = 'Error' "
        "ORDER BY toUnixTimestamp64Nano(Timestamp) + Duration LIMIT 1",
    )[0]
    assert message and failed["error"] == {"span": span, "type": etype, "message": message}
    error = turns.nth(1).locator(".turn-error")
    assert error.inner_text() == f"{span}: {etype + ': ' if etype else ''}{message}"
    assert error.locator("a").get_attribute("href") == f"#/trace/{failed['trace_id']}"


# -- runs ------------------------------------------------------------------------------------


def group_cells(page, group: str) -> dict[str, tuple[str, str, float]]:
    """column -> (kind, text, value) of a group row's summaries."""
    cells = page.eval_on_selector_all(
        f'#runs-table tr.group-row[data-group="{group}"] td.group-value',
        "tds => tds.map(td => [td.dataset.column, td.dataset.kind, td.textContent, Number(td.dataset.value)])",
    )
    return {c: (k, t, v) for c, k, t, v in cells}


def test_grouped_runs_table_sums_and_means(demo_collector, ui):
    runs = rest_get(demo_collector, "/api/v1/runs")
    ui.open(demo_collector.http_url, "runs?group=experiment&hide=none")
    ui.page.wait_for_selector("#runs-table tr.group-row")
    groups = ui.page.eval_on_selector_all(
        "#runs-table tr.group-row", "rows => rows.map(r => [r.dataset.group, Number(r.dataset.runs)])"
    )
    groups = [tuple(g) for g in groups]
    experiments = sorted({r["experiment"] for r in runs})
    assert groups == [(e, sum(r["experiment"] == e for r in runs)) for e in experiments]
    for e in experiments:
        members = [r for r in runs if r["experiment"] == e]
        # Each group's runs sit under its header row.
        shown = ui.page.eval_on_selector_all(
            f'#runs-table tbody[data-group="{e}"] tr.run', "rows => rows.map(r => r.dataset.runId)"
        )
        assert sorted(shown) == sorted(r["id"] for r in members)
        cells = group_cells(ui.page, e)
        llm = [r["llm"] for r in members if r.get("llm")]
        if llm:
            calls = sum(u["calls"] for u in llm)
            tokens = sum(u["total_tokens"] for u in llm)
            cost = sum(Decimal(repr(u["cost_usd"])) for u in llm)
            assert cells["llm_calls"][:2] == ("sum", f"Σ {fmt_int(calls)}")
            assert cells["llm_tokens"][:2] == ("sum", f"Σ {fmt_int(tokens)}")
            assert cells["llm_cost"][:2] == ("sum", f"Σ {fmt_usd(cost)}")
            assert Decimal(repr(cells["llm_cost"][2])).quantize(Decimal("1e-12")) == cost.quantize(
                Decimal("1e-12")
            )
        metric_keys = sorted({k for r in members for k in r["metrics"]})
        assert metric_keys
        for k in metric_keys:
            values = [r["metrics"][k] for r in members if k in r["metrics"]]
            kind, text, value = cells[f"metrics.{k}"]
            assert kind == "mean" and value == pytest.approx(float(np.mean(values)), rel=1e-12)
            assert text == f"⌀ {fmt_num(float(np.mean(values)))}"
    ui.screenshot("by-experiment")

    # Grouped by a param: the runs without it form their own group.
    ui.page.select_option("#group-by", "params.optimizer")
    ui.page.wait_for_url("**group=params.optimizer*")
    ui.wait_ready()
    adam = [r for r in runs if r["params"].get("optimizer") == "adam"]
    assert len(adam) == 2
    cells = group_cells(ui.page, "adam")
    losses = [r["metrics"]["train/loss"] for r in adam]
    assert cells["metrics.train/loss"][2] == pytest.approx(float(np.mean(losses)), rel=1e-12)
    assert cells["params.learning_rate"][2] == pytest.approx(
        float(np.mean([r["params"]["learning_rate"] for r in adam]))
    )
    none = ui.page.locator('#runs-table tr.group-row[data-group="(none)"]')
    assert none.get_attribute("data-runs") == str(sum("optimizer" not in r["params"] for r in runs))


def test_pinned_runs_and_saved_column_sets(demo_collector, ui):
    runs = runs_by_name(demo_collector)
    pin = runs["adam-lr0.01"]
    ui.open(demo_collector.http_url, "runs?sort=name&dir=asc")
    ui.page.wait_for_selector("#runs-table tbody tr")

    def order() -> list[str]:
        return ui.page.eval_on_selector_all("#runs-table tbody tr.run", "rs => rs.map(r => r.dataset.runId)")

    by_name = [r["id"] for r in sorted(runs.values(), key=lambda r: r["name"])]
    assert order() == by_name
    ui.page.click(f'tr[data-run-id="{pin["id"]}"] button.pin')
    ui.wait_ready()
    assert ui.page.locator(f'tr.pinned[data-run-id="{pin["id"]}"]').count() == 1
    assert order() == [pin["id"]] + [i for i in by_name if i != pin["id"]]
    ui.page.reload()  # remembered by the browser
    ui.page.wait_for_selector(f'tr.pinned[data-run-id="{pin["id"]}"]')
    assert order()[0] == pin["id"]
    ui.page.click(f'tr[data-run-id="{pin["id"]}"] button.pin')
    ui.wait_ready()
    assert ui.page.locator("tr.pinned").count() == 0
    assert order() == by_name

    # A named column set: saved, columns changed, then restored with one click.
    ui.page.click("#column-chooser summary")
    before = ui.page.eval_on_selector_all(
        "#runs-table thead th[data-column]", "ths => ths.map(t => t.dataset.column)"
    )
    ui.page.fill("#column-set-name", "mine")
    ui.page.click("#save-column-set")
    ui.wait_ready()
    ui.page.click("#column-chooser summary")
    ui.page.wait_for_selector('button.column-set[data-name="mine"]')
    ui.page.uncheck('#column-chooser input[data-column="experiment"]')
    ui.page.wait_for_url("**hide=*")
    ui.wait_ready()
    assert ui.page.locator('#runs-table th[data-column="experiment"]').count() == 0
    # The last choice is remembered: the runs page opened afresh keeps it.
    ui.open(demo_collector.http_url, "runs?sort=name&dir=asc")
    ui.page.wait_for_selector("#runs-table tbody tr")
    assert ui.page.locator('#runs-table th[data-column="experiment"]').count() == 0
    ui.page.click("#column-chooser summary")
    ui.page.click('button.column-set[data-name="mine"]')
    ui.page.wait_for_url("**hide=*")
    ui.wait_ready()
    after = ui.page.eval_on_selector_all(
        "#runs-table thead th[data-column]", "ths => ths.map(t => t.dataset.column)"
    )
    assert after == before


def test_multi_run_charts_have_legends(demo_collector, ui):
    runs = rest_get(demo_collector, "/api/v1/runs")
    ui.open(demo_collector.http_url, "runs?pc=train/loss")
    par = ui.page.locator("#parallel-chart")
    par.wait_for()
    assert par.evaluate(CANVAS_PAINTED)
    popt = par.evaluate(OPTION)
    vm = popt["visualMap"][0]
    losses = [r["metrics"]["train/loss"] for r in runs if "train/loss" in r["metrics"]]
    assert vm["show"] is True and vm["text"] == ["train/loss high", "low"]
    assert (vm["min"], vm["max"]) == (min(losses), max(losses))
    scatter = ui.page.locator("#scatter-chart")
    sopt = scatter.evaluate(OPTION)
    assert sopt["legend"] and sopt["legend"][0].get("show", True) is not False
    x_col, y_col = sopt["xAxis"][0]["name"], sopt["yAxis"][0]["name"]

    def value(r, col):
        kind, key = col.split(".", 1)
        if kind in ("params", "metrics"):
            return r[kind].get(key)
        return ((r.get("llm") or {}).get("scores") or {}).get(key)

    expected = {}
    for r in runs:
        x, y = value(r, x_col), value(r, y_col)
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            expected.setdefault(r["experiment"], []).append((x, y))
    assert {s["name"]: sorted(tuple(p["value"]) for p in s["data"]) for s in sopt["series"]} == {
        k: sorted(v) for k, v in expected.items()
    }
    # The y axis' name is drawn inside the chart, not cut at its top edge.
    assert sopt["yAxis"][0]["nameLocation"] == "end" and sopt["grid"][0]["top"] >= 40


# -- run detail ------------------------------------------------------------------------------


def test_run_traces_have_headers_scores_and_the_runs_time_range(demo_collector, ui):
    run = rest_get(demo_collector, f"/api/v1/runs/{runs_by_name(demo_collector)['prompt-v2-gpt-4o']['id']}")
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    ui.page.wait_for_selector("#run-trace-list tbody tr")
    assert ui.page.eval_on_selector_all("#run-trace-list thead th", "ths => ths.map(t => t.textContent)") == [
        "", "name", "input", "output", "latency", "tokens", "cost", "scores", "start",
    ]  # fmt: skip
    since = (datetime.fromisoformat(run["start"]) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    until = (datetime.fromisoformat(run["end"]) + timedelta(hours=1)).isoformat(timespec="milliseconds")
    page = rest_get(
        demo_collector, "/api/v1/traces", since=since, until=until, where=f"run = '{run['id']}'", limit=20
    )
    cols = page["columns"]
    rows = [dict(zip(cols, r, strict=True)) for r in page["rows"]]
    assert len(rows) == run["llm"]["calls"]
    for r in rows:
        tr = ui.page.locator(f'#run-trace-list tr[data-trace-id="{r["trace_id"]}"]')
        assert sorted(tr.locator(".badge.score").all_inner_texts()) == sorted(
            f"{k} {fmt_score(v)}" for k, v in r["scores"].items()
        )
        assert tr.locator("td").nth(6).inner_text() == fmt_usd(r["cost_usd"])
    # No stray "null" text anywhere on the page.
    stray = ui.page.evaluate(
        "() => { const w = document.createTreeWalker(document.getElementById('view'), NodeFilter.SHOW_TEXT);"
        " let n = 0; while (w.nextNode()) if (w.currentNode.textContent.trim() === 'null') n++; return n; }"
    )
    assert stray == 0
    # "all, in the traces view": the run's own time range, not a fixed 30 days.
    href = ui.page.locator("#run-traces").get_attribute("href")
    q = parse_qs(href.split("?", 1)[1])
    assert q["where"] == [f"run = '{run['id']}'"]
    assert datetime.fromisoformat(q["since"][0].replace("Z", "+00:00")) == datetime.fromisoformat(since)
    assert datetime.fromisoformat(q["until"][0].replace("Z", "+00:00")) == datetime.fromisoformat(until)


def test_run_traces_link_lists_exactly_the_runs_traces(demo_collector, ui):
    run = rest_get(demo_collector, f"/api/v1/runs/{runs_by_name(demo_collector)['prompt-v2-gpt-4o']['id']}")
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    ui.page.wait_for_selector("#run-trace-list tbody tr")
    q = parse_qs(ui.page.locator("#run-traces").get_attribute("href").split("?", 1)[1])
    ui.page.click("#run-traces")
    ui.page.wait_for_url("**/#/traces?*")
    ui.wait_ready()
    ui.page.wait_for_selector("#traces-table tbody tr")
    shown = ui.page.eval_on_selector_all("#traces-table tbody tr", "rs => rs.map(r => r.dataset.traceId)")
    # The same traces SQL finds: the run's spans inside [since, until), one row per trace.
    want = {
        r[0]
        for r in sql_rows(
            demo_collector,
            f"SELECT DISTINCT TraceId FROM otel_traces WHERE RunId = '{run['id']}'",
        )
    }
    assert want and len(shown) == len(set(shown)) == len(want) == run["llm"]["calls"]
    assert set(shown) == want
    rest = rest_get(
        demo_collector,
        "/api/v1/traces",
        since=q["since"][0],
        until=q["until"][0],
        where=q["where"][0],
        limit=200,
    )
    assert [r[rest["columns"].index("trace_id")] for r in rest["rows"]] == shown
    assert int(ui.page.get_attribute("#traces-total", "data-total")) == len(want)
    # The fixed range is spelled out in the picker and kept across a filter change.
    picker = ui.page.locator("#range option#range-fixed")
    assert picker.evaluate("o => o.selected") and " – " in picker.inner_text()
    assert picker.get_attribute("title") == f"since={q['since'][0]} until={q['until'][0]}"
    ui.screenshot("fixed-range")
    # An until inside the run cuts its later traces: the page passes it to the server.
    starts = sorted(r[rest["columns"].index("start_time")] for r in rest["rows"])
    mid = starts[len(starts) // 2]
    ui.open(
        demo_collector.http_url,
        f"traces?since={quote(q['since'][0])}&until={quote(mid)}&where={quote(q['where'][0])}",
    )
    ui.page.wait_for_selector("#traces-table tbody tr")
    early = ui.page.eval_on_selector_all("#traces-table tbody tr", "rs => rs.map(r => r.dataset.traceId)")
    cut = rest_get(
        demo_collector, "/api/v1/traces", since=q["since"][0], until=mid, where=q["where"][0], limit=200
    )
    assert early == [r[cut["columns"].index("trace_id")] for r in cut["rows"]]
    assert 0 < len(early) < len(shown) and set(early) < want
    assert all(r[cut["columns"].index("start_time")] < mid for r in cut["rows"])
    ui.page.click("#traces-table th[data-sort='latency_ms']")
    ui.page.wait_for_url("**sort=latency_ms*")
    assert "until=" in ui.page.url
    # Picking a relative range drops the fixed end.
    ui.page.select_option("#range", "30d")
    ui.page.wait_for_url("**since=30d*")
    assert "until=" not in ui.page.url


def test_compare_names_runs(demo_collector, ui):
    runs = runs_by_name(demo_collector)
    base, cand = runs["prompt-v1-gpt-4o-mini"], runs["prompt-v2-gpt-4o"]
    ui.open(demo_collector.http_url, f"compare?ids={base['id']},{cand['id']}")
    ui.wait_ready()
    ui.page.wait_for_selector("#compare-evals-table tbody tr")
    page = ui.page
    options = page.eval_on_selector_all("#baseline option", "os => os.map(o => [o.textContent, o.title])")
    assert options == [[base["name"], base["id"]], [cand["name"], cand["id"]]]
    heads = page.eval_on_selector_all(
        "#compare-llm thead th a", "as => as.map(a => [a.textContent, a.title])"
    )
    assert heads == [[base["name"], base["id"]], [cand["name"], cand["id"]]]
    evals_heads = page.eval_on_selector_all(
        "#compare-evals-table thead th", "ts => ts.map(t => t.textContent)"
    )
    assert evals_heads[2:4] == [f"output {base['name']} (baseline)", f"output {cand['name']}"]
    assert f"{cand['name']} vs {base['name']}: " in page.text_content("#evals-summary")
    # No id fragment next to a name anywhere on the page.
    text = page.inner_text("#view")
    assert base["id"][:6] not in text and cand["id"][:6] not in text
    sgd, adam = runs["sgd-lr0.1"], runs["adam-lr0.03"]
    ui.open(demo_collector.http_url, f"compare?ids={sgd['id']},{adam['id']}")
    ui.wait_ready()
    page.wait_for_selector("#compare-charts .chart")
    option = page.locator("#compare-charts .chart").first.evaluate(OPTION)
    assert [s["name"] for s in option["series"]] == [sgd["name"], adam["name"]]
    # Two runs of one name (say, "baseline" in two experiments) keep distinct labels.
    twins = [
        {"id": "a1b2c3d4", "name": "baseline"},
        {"id": "e5f6a7b8", "name": "baseline"},
        {"id": "0f", "name": "x"},
    ]
    labels = page.evaluate("rs => import('/ui/lib.js').then(m => [...m.runLabels(rs).values()])", twins)
    assert labels == ["baseline (a1b2c3)", "baseline (e5f6a7)", "x"]


# -- SQL console -----------------------------------------------------------------------------


def test_sql_quick_chart_picks_bars_and_axes_by_size(demo_collector, ui):
    ui.open(demo_collector.http_url, "sql")
    ui.page.click("#sql-examples a >> text=LLM calls by model, last 24 h")
    ui.page.wait_for_selector("#sql-result tbody tr")
    expected = rest_get(demo_collector, "/api/v1/sql", q=ui.page.input_value("#sql-editor"))
    cols = expected["columns"]
    option = ui.page.locator("#sql-chart").evaluate(OPTION)
    assert option["xAxis"][0]["type"] == "category"
    assert {s["type"] for s in option["series"]} == {"bar"}  # categories: bars, not a line
    # Independent rule: the left axis is the first y's size (log10 of its largest value); a y
    # more than ten times off it opens the right axis; the rest join the nearer one.
    ys = ["calls", "tokens", "cost_usd"]
    size = {y: math.log10(max(abs(float(r[cols.index(y)])) for r in expected["rows"]) or 1) for y in ys}
    right = next(size[y] for y in ys if abs(size[y] - size["calls"]) > 1)
    want = [1 if abs(size[y] - right) < abs(size[y] - size["calls"]) else 0 for y in ys]
    assert [s["name"] for s in option["series"]] == ys
    assert [s["yAxisIndex"] for s in option["series"]] == want and len(option["yAxis"]) == 2
    for s in option["series"]:
        assert s["data"] == [float(r[cols.index(s["name"])]) for r in expected["rows"]]
    # y columns are checkboxes; unticking one leaves the others, in the URL.
    ui.page.uncheck('#chart-y input[data-column="tokens"]')
    ui.page.wait_for_url("**y=calls%2Ccost_usd*")
    ui.wait_ready()
    option = ui.page.locator("#sql-chart").evaluate(OPTION)
    assert [s["name"] for s in option["series"]] == ["calls", "cost_usd"]
    # The examples are still there after a query.
    ui.page.click(".sql-examples summary")
    assert ui.page.locator("#sql-examples a").count() >= 5


# -- a laptop screen -------------------------------------------------------------------------


def test_every_page_fits_a_1366_px_screen(demo_collector, ui):
    runs = runs_by_name(demo_collector)
    trace = trace_of(demo_collector, "SpanAttributes['gen_ai.tool.name'] = 'get_weather'")
    llm = next(s for s in walk(trace["spans"]) if s["attributes"].get("gen_ai.tool.definitions"))
    failed = trace_of(demo_collector, "has(Events.Name, 'exception')")
    thrown = next(s for s in walk(failed["spans"]) if any(e["name"] == "exception" for e in s["events"]))
    ui.page.set_viewport_size({"width": 1366, "height": 800})
    pages = [
        f"trace/{trace['trace_id']}?span={llm['span_id']}",
        f"trace/{failed['trace_id']}?span={thrown['span_id']}",
        "sessions/sess-travel",
        "sessions?since=30d",
        "sessions/sess-orders",
        "runs",
        "runs?group=experiment",
        f"runs?sel={runs['sgd-lr0.1']['id']},{runs['adam-lr0.03']['id']}",
        f"run/{runs['sgd-lr0.1']['id']}",
        f"run/{runs['prompt-v2-gpt-4o']['id']}",
        "sql?q=" + "SELECT%20RunId%2C%20Name%2C%20Status%20FROM%20runs%20FINAL%20LIMIT%205",
        "overview",
        "metrics",
        f"compare?ids={runs['prompt-v1-gpt-4o-mini']['id']},{runs['prompt-v2-gpt-4o']['id']}",
        f"compare?ids={runs['sgd-lr0.1']['id']},{runs['adam-lr0.03']['id']}",
        f"evals/{runs['prompt-v2-gpt-4o']['id']}",
    ]
    for n, route in enumerate(pages):
        ui.open(demo_collector.http_url, route)
        ui.wait_ready()
        widths = ui.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if widths[0] > widths[1]:  # name what sticks out, for the message
            out = ui.page.evaluate(
                "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
                " > innerWidth || e.scrollWidth > e.clientWidth + 1).slice(-6).map(e => e.tagName + '#' + e.id"
                " + '.' + e.className + ' ' + e.textContent.slice(0, 40))"
            )
            pytest.fail(f"{route}: {widths[0]} px wide on a {widths[1]} px screen: {out}")
        # Tables fit their own box too (a scrolling wrapper would hide the overflow from the page).
        over = ui.page.eval_on_selector_all(
            "#view table",
            "ts => ts.filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).map(t => t.id)",
        )
        assert not over, f"{route}: tables wider than the screen: {over}"
        ui.screenshot(f"{n}-{route.split('/')[0].split('?')[0]}")
