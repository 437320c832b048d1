"""One model is one row: the documented model identity in every aggregate, plan and view.

A failed call carries only its request model (`gpt-4o-mini`); the successful ones report the
dated snapshot (`gpt-4o-mini-2024-07-18`). Latency, cost and errors by model, on both plans,
the traces list and the model filter all count them as one model; the stored request and
response models stay queryable.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from tracehouse_collector.query import aggregates, trace_list
from tracehouse_collector.query.model_identity import MODEL_SQL, model_identity
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.timeout(120)

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
SINCE, UNTIL = NOW - dt.timedelta(hours=12, seconds=7), NOW
NAMES = {
    # stored name -> identity
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "claude-sonnet-4-20250514": "claude-sonnet-4",
    "claude-3-5-sonnet@20240620": "claude-3-5-sonnet",
    "gpt-4o-mini": "gpt-4o-mini",
    "gpt-4-0613": "gpt-4-0613",  # not a full date: kept
    "llama3.1:8b": "llama3.1:8b",
    "2024-07-18": "2024-07-18",  # nothing before the date: kept
    "": "",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('identity')}")
    store.migrate()
    rows = []
    for i in range(30):
        failed = i % 10 == 0  # 3 failed calls: request model only
        at = SINCE + dt.timedelta(minutes=20 * i + 1)
        response = "" if failed else "gpt-4o-mini-2024-07-18"
        rows.append(
            f"('{at:%Y-%m-%d %H:%M:%S}', 'idsvc', 'chat gpt-4o-mini', 't{i:031d}', 's{i:015d}', 'chat', 'openai', "
            f"'gpt-4o-mini', '{response}', {(i + 1) * 1_000_000}, '{'Error' if failed else 'Ok'}', "
            f"{10 + i}, toDecimal64('0.0001', 12), 'genai-prices')"
        )
    store.command(
        "INSERT INTO tracehouse.otel_traces (Timestamp, ServiceName, SpanName, TraceId, SpanId, GenAIOperation, "
        "GenAIProvider, GenAIRequestModel, GenAIResponseModel, Duration, StatusCode, TotalTokens, TotalCostUSD, "
        "PriceSource) VALUES " + ",".join(rows)
    )
    yield store
    store.close()


def test_python_identity():
    for name, identity in NAMES.items():
        assert model_identity(name) == identity
        assert model_identity("", name) == identity
        assert model_identity(name, "other-model") == (identity or "other-model")


def test_sql_identity_matches_python(store):
    names = list(NAMES)
    exprs = ", ".join(
        MODEL_SQL.replace("GenAIResponseModel", "''").replace("GenAIRequestModel", f"'{n}'") for n in names
    )
    _, rows = store.query(f"SELECT [{exprs}]")
    assert list(rows[0][0]) == [model_identity(n) for n in names]


@pytest.mark.parametrize("plan", ["raw", "rollup"])
@pytest.mark.parametrize("kind", ["latency", "cost"])
def test_one_model_one_row(store, kind, plan):
    result = aggregates.aggregate(
        store, kind, by=["model"], since=SINCE, until=UNTIL, service="idsvc", plan=plan
    )
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert [(r["model"], r["count"]) for r in rows] == [("gpt-4o-mini", 30)]
    # the filter on `model` is the identity too
    filtered = aggregates.aggregate(
        store, kind, by=["model"], since=SINCE, until=UNTIL, where="model = 'gpt-4o-mini'", plan=plan
    )
    assert [r[1] for r in filtered.rows] == [30]


def test_errors_and_raw_fields(store):
    errors = aggregates.aggregate(store, "errors", by=["model"], since=SINCE, until=UNTIL, service="idsvc")
    assert [(r[0], r[2], r[3]) for r in errors.rows] == [("gpt-4o-mini", 3, 30)]
    by_response = aggregates.aggregate(
        store, "cost", by=["response_model"], since=SINCE, until=UNTIL, service="idsvc", plan="raw"
    )
    assert [(r[0], r[1]) for r in by_response.rows] == [("", 3), ("gpt-4o-mini-2024-07-18", 27)]
    narrowed = aggregates.aggregate(
        store, "cost", by=["model"], since=SINCE, until=UNTIL, where="response_model = ''", plan="raw"
    )
    assert [(r[0], r[1]) for r in narrowed.rows] == [("gpt-4o-mini", 3)]


def test_traces_list_names_the_identity(store):
    page = trace_list.list_traces(store, since=SINCE, until=UNTIL, service="idsvc", limit=100)
    models = {m for row in page.rows for m in row[page.columns.index("models")]}
    assert models == {"gpt-4o-mini"}


def test_grafana_dashboards_use_the_identity():
    """Every panel that names a model computes it the same way as the query modules."""
    root = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"
    checked = 0
    for path in root.glob("*.json"):
        for sql in _sql_strings(json.loads(path.read_text())):
            if "GenAIResponseModel" in sql:
                assert sql.count("GenAIResponseModel") == 2 * sql.count(MODEL_SQL), sql  # twice in each
                checked += 1
    assert checked >= 5


def _sql_strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("rawSql", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _sql_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _sql_strings(value)
