"""Eval examples in headless Chromium over the store `tracehouse demo` filled: a run's Evals view
against `GET /api/v1/runs/{id}/evals` (means with numpy), the regression view on Compare against
`GET /api/v1/evals/compare` (deltas recomputed with Decimal, the worse/better filter), and
annotating a span from the trace page (read back through REST)."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest


@pytest.fixture(scope="module")
def eval_runs(demo_collector) -> tuple[dict, dict]:
    resp = demo_collector.session.get(
        demo_collector.http_url + "/api/v1/runs", params={"experiment": "demo-prompt-eval"}, timeout=30
    )
    runs = {r["name"]: r for r in resp.json()}
    return runs["prompt-v1-gpt-4o-mini"], runs["prompt-v2-gpt-4o"]


def _cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        selector, "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.textContent))"
    )


def _shown(value) -> str:
    """A value as the page writes it: text as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_evals_view_matches_the_api(demo_collector, ui, eval_runs):
    run = eval_runs[1]
    expected = demo_collector.session.get(f"{demo_collector.http_url}/api/v1/runs/{run['id']}/evals", timeout=30).json()
    assert len(expected) == 8
    ui.open(demo_collector.http_url, f"run/{run['id']}")
    ui.page.click("#run-evals-link")
    ui.wait_ready()
    ui.page.wait_for_selector("#evals-table tbody tr")
    rows = _cells(ui.page, "#evals-table tbody tr")
    assert [r[1] for r in rows] == [e["example_id"] for e in expected]
    for row, e in zip(rows, expected, strict=True):
        assert row[0] == "review-sentiment"
        assert row[2:5] == [_shown(e["inputs"]), _shown(e["outputs"]), _shown(e["references"])]
        assert row[5] == ("1" if e["scores"]["exact_match"] == 1 else "0")
        for a in e["annotations"]:
            assert a["name"] in row[6] and _shown(a["value"]) in row[6] and a["user"] in row[6]
    links = ui.page.eval_on_selector_all(
        "#evals-table tbody tr", "rows => rows.map(r => [...r.querySelectorAll('a.trace-link')].map(a => a.getAttribute('href')))"
    )
    assert links == [[f"#/trace/{t}" for t in e["trace_ids"]] for e in expected]
    mean = np.mean([e["scores"]["exact_match"] for e in expected])
    shown = ui.page.text_content('#evals-means [data-score="exact_match"]')
    assert shown == f"mean exact_match {float(f'{mean:.4g}'):g}"
    # A wrong label's annotations are shown with its example.
    wrong = [e for e in expected if e["scores"]["exact_match"] == 0]
    assert wrong, "the demo's stronger model got every label right: nothing to show"
    assert all(any(a["name"] == "expected_label" for a in e["annotations"]) for e in wrong)


def test_regression_view_deltas_and_filter(demo_collector, ui, eval_runs):
    base, cand = eval_runs
    api = demo_collector.session.get(
        f"{demo_collector.http_url}/api/v1/evals/compare", params={"ids": f"{base['id']},{cand['id']}"}, timeout=30
    ).json()
    ui.open(demo_collector.http_url, f"compare?ids={base['id']},{cand['id']}")
    ui.wait_ready()
    ui.page.wait_for_selector("#compare-evals-table tbody tr")
    rows = _cells(ui.page, "#compare-evals-table tbody tr")
    assert [r[0] for r in rows] == [e["example_id"] for e in api["examples"]]
    for row, e in zip(rows, api["examples"], strict=True):
        b, c = (r["scores"]["exact_match"] for r in e["runs"])
        assert row[2].startswith(_shown(e["runs"][0]["outputs"])) and row[3].startswith(_shown(e["runs"][1]["outputs"]))
        # Columns: example, inputs, 2 outputs, exact_match per run, its delta, the change.
        assert [Decimal(row[4]), Decimal(row[5])] == [Decimal(repr(b)), Decimal(repr(c))]
        delta = Decimal(repr(c)) - Decimal(repr(b))
        assert (Decimal(row[6].lstrip("+")) if row[6] != "–" else None) == delta
        assert row[7] == ("worse" if delta < 0 else "better" if delta > 0 else "same")
    changes = [r[7] for r in rows]
    assert {"worse", "better"} <= set(changes), "the demo's runs should differ both ways"
    summary = ui.page.text_content("#evals-summary")
    assert f"{changes.count('worse')} worse, {changes.count('better')} better, {changes.count('same')} same" in summary

    ui.page.select_option("#evals-change", "worse")
    ui.page.wait_for_url("**change=worse*")
    ui.wait_ready()
    filtered = _cells(ui.page, "#compare-evals-table tbody tr")
    assert [r[0] for r in filtered] == [e["example_id"] for e in api["examples"] if e["changes"] == ["worse"]]
    assert {r[7] for r in filtered} == {"worse"}


def test_annotate_a_span_from_the_trace_page(demo_collector, ui, eval_runs):
    run = eval_runs[0]
    examples = demo_collector.session.get(f"{demo_collector.http_url}/api/v1/runs/{run['id']}/evals", timeout=30).json()
    (trace,) = examples[0]["trace_ids"]
    before = demo_collector.session.get(
        f"{demo_collector.http_url}/api/v1/annotations", params={"trace_id": trace}, timeout=30
    ).json()
    ui.open(demo_collector.http_url, f"trace/{trace}")
    ui.wait_ready()
    ui.page.wait_for_selector("#annotation-list li")
    shown = ui.page.eval_on_selector_all("#annotation-list li.annotation", "lis => lis.map(li => li.dataset.annotationId)")
    assert shown == [a["id"] for a in before]
    llm_row = ui.page.locator(".span-row.llm").first
    span_id = llm_row.get_attribute("data-span-id")
    llm_row.click()
    # An expectation: the demo's data other tests read keeps its scores (feedback would be one).
    ui.page.fill("#annotation-name", "ideal_label")
    ui.page.fill("#annotation-value", "positive")
    ui.page.select_option("#annotation-kind", "expectation")
    ui.page.fill("#annotation-user", "ui-tester")
    ui.page.fill("#annotation-rationale", "polite but terse")
    ui.page.check("#annotation-on-span")
    ui.page.click("#annotation-form button[type=submit]")
    ui.page.wait_for_function(
        "n => document.querySelectorAll('#annotation-list li.annotation').length > n", arg=len(before)
    )
    after = demo_collector.session.get(
        f"{demo_collector.http_url}/api/v1/annotations", params={"trace_id": trace}, timeout=30
    ).json()
    (added,) = [a for a in after if a["id"] not in {b["id"] for b in before}]
    assert (added["target"], added["span_id"], added["name"], added["kind"], added["value"], added["value_type"],
            added["user"], added["rationale"], added["source"]) == (
        "span", span_id, "ideal_label", "expectation", "positive", "text", "ui-tester", "polite but terse", "ui")  # fmt: skip
    text = ui.page.text_content(f'#annotation-list li[data-annotation-id="{added["id"]}"]')
    assert "ideal_label = positive" in text and "ui-tester" in text and f"span {span_id[:8]}" in text


def test_evals_view_loads_pages_with_the_more_button(demo_collector, ui, eval_runs):
    run = eval_runs[1]
    expected = demo_collector.session.get(f"{demo_collector.http_url}/api/v1/runs/{run['id']}/evals", timeout=30).json()
    ui.open(demo_collector.http_url, f"evals/{run['id']}?limit=3")
    ui.wait_ready()
    ui.page.wait_for_selector("#evals-table tbody tr")
    shown_counts = []
    while True:
        rows = _cells(ui.page, "#evals-table tbody tr")
        shown_counts.append(len(rows))
        if not ui.page.query_selector("#evals-more"):
            break
        ui.page.click("#evals-more")
        ui.page.wait_for_function(f"document.querySelectorAll('#evals-table tbody tr').length > {len(rows)}")
    assert shown_counts == [3, 6, 8]
    assert [(r[0], r[1]) for r in rows] == [(e["dataset"], e["example_id"]) for e in expected]
    assert ui.page.text_content("#evals-count") == "8 examples"
