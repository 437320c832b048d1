"""CLI output at the edges: an empty result keeps its header (table and CSV; JSON is `[]`), and
a zero cost prints as a plain decimal (never `0E-12`), on the store and through a server."""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal

import pytest
from helpers import make_span, quote, run_cli, trace_request, unique

pytestmark = pytest.mark.timeout(240)

EMPTY_SELECT = "SELECT SpanName AS name, Duration AS ns, TotalCostUSD AS cost_usd FROM otel_traces WHERE 0"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    store = f"chdb://{tmp_path_factory.mktemp('empty') / 'data'}"
    assert run_cli("schema", "--store", store).returncode == 0
    return ["--store", store]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_an_empty_sql_result_keeps_its_header(empty_store, fmt):
    p = run_cli("sql", EMPTY_SELECT, *empty_store, "--format", fmt)
    assert p.returncode == 0, p.stderr
    if fmt == "json":
        assert json.loads(p.stdout) == []
    elif fmt == "csv":
        assert p.stdout == "name,ns,cost_usd\n"
    else:
        assert p.stdout.splitlines() == ["name  ns  cost_usd", "----  --  --------", "(0 rows)"]


def test_an_empty_result_through_a_server_keeps_its_header(collector):
    p = run_cli("sql", EMPTY_SELECT, "--server", collector.http_url, "--format", "csv")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "name,ns,cost_usd\n"


def test_query_cost_on_an_empty_store(empty_store):
    table = run_cli("query", "cost", *empty_store)
    assert table.returncode == 0, table.stderr
    header, _, row, count = table.stdout.splitlines()
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert cells["count"] == "0" and cells["cost_usd"] == "0.00" and count == "(1 row)"
    rows = list(csv.DictReader(io.StringIO(run_cli("query", "cost", *empty_store, "--format", "csv").stdout)))
    assert [(r["count"], r["cost_usd"]) for r in rows] == [("0", "0")]
    by_model = run_cli("query", "cost", "--by", "model", *empty_store, "--format", "csv")
    assert by_model.returncode == 0 and by_model.stdout.startswith("model,count,")
    assert len(by_model.stdout.splitlines()) == 1


@pytest.fixture(scope="module")
def zero_cost(start_collector):
    """LLM calls of a priced model that used no tokens: priced, at a cost of exactly zero."""
    c = start_collector(name="zero-cost")
    service = unique("zero-cost")
    spans = [
        make_span(
            "chat gpt-4o-mini",
            start_ns=time.time_ns() - (i + 1) * 10**9,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 0,
                "gen_ai.usage.output_tokens": 0,
            },
        )
        for i in range(3)
    ]
    assert c.post("/v1/traces", trace_request(service, spans).SerializeToString()).status_code == 200
    (cost, source), = c.sql_raw(
        f"SELECT sum(TotalCostUSD), any(PriceSource) FROM otel_traces WHERE ServiceName = {quote(service)}"
    )["rows"]
    assert Decimal(str(cost)) == 0 and source, (cost, source)  # priced, and zero
    return c, service


def _cost_outputs(args: list[str], service: str) -> dict[str, str]:
    out = {}
    for fmt in ("table", "csv", "json"):
        p = run_cli("query", "cost", "--by", "model", "--service", service, *args, "--format", fmt)
        assert p.returncode == 0, p.stderr
        out[fmt] = p.stdout
    return out


def _check_zero(out: dict[str, str]) -> None:
    for text in out.values():
        assert "E-" not in text and "e-" not in text, text
    (record,) = json.loads(out["json"])
    assert record["count"] == 3 and Decimal(str(record["cost_usd"])) == 0
    assert str(record["cost_usd"]) == "0"
    (row,) = csv.DictReader(io.StringIO(out["csv"]))
    assert row["cost_usd"] == "0"
    header, _, line, _ = out["table"].splitlines()
    assert dict(zip(header.split(), line.split(), strict=True))["cost_usd"] == "0.00"


def test_a_zero_cost_prints_as_a_plain_decimal(zero_cost):
    c, service = zero_cost
    _check_zero(_cost_outputs(["--server", c.http_url], service))
    assert c.stop() == 0
    _check_zero(_cost_outputs(["--store", c.store_dsn], service))
