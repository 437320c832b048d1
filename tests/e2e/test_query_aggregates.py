"""Latency, cost and error aggregates against independent computations (numpy, Decimal).

Generated LLM spans with known durations, statuses, tokens and costs go through a real
collector as OTLP; every aggregate is recomputed here from what was sent, on the raw plan
(exact) and on the rollup plan (exact counts and sums, percentiles within the sketch's 1%).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest
from helpers import make_span, run_cli, trace_request, unique
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from tracehouse_collector.query import aggregates
from tracehouse_collector.store.schema import ROLLUP_RELATIVE_ERROR

pytestmark = pytest.mark.timeout(240)

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
SPAN_HOURS = 12
# Not minute-aligned, so the rollup plan must add raw spans at both edges.
SINCE = (T0 + dt.timedelta(seconds=-17)).isoformat()
UNTIL = (T0 + dt.timedelta(hours=SPAN_HOURS, seconds=-23)).isoformat()
LEVELS = (50, 90, 95, 99)
MODELS = [
    ("gpt-4o", "gpt-4o-2024-08-06"),
    ("gpt-4o-mini", ""),
    ("claude-sonnet-4", "claude-sonnet-4-20250514"),
]
PROVIDER = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic"}


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


@pytest.fixture(scope="module")
def data(collector):
    """Send the spans; return the service and one dict per span with what the test expects."""
    rng = random.Random(6)
    service = unique("agg")
    expected: list[dict] = []
    spans = []
    for i in range(1200):
        req_model, resp_model = MODELS[i % 3]
        offset_ns = rng.randrange(0, SPAN_HOURS * 3600 * 10**9)
        start = _ns(T0) + offset_ns
        duration_ns = int(rng.lognormvariate(6, 0.8) * 1e6) + rng.randrange(1000)  # ~400 ms, with ns noise
        error = rng.random() < 0.1
        error_type = rng.choice(["timeout", "rate_limit"]) if error else ""
        inp, out = rng.randrange(10, 5000), rng.randrange(1, 800)
        cache = rng.randrange(0, inp) if i % 4 == 0 else 0
        cost = Decimal(rng.randrange(1, 10**9)) / Decimal(10**12)  # exact to 12 decimal places
        ttft = round(rng.uniform(0.05, 0.9), 6) if rng.random() < 0.4 or i == 0 else None
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER[req_model],
            "gen_ai.request.model": req_model,
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
            "gen_ai.usage.cost": str(cost),
            "session.id": f"s{i % 5}",
            "user.id": f"u{i % 4}",
            "tracehouse.run.id": f"run{i % 2}",
        }
        if resp_model:
            attrs["gen_ai.response.model"] = resp_model
        if cache:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cache
        if error_type:
            attrs["error.type"] = error_type
        if ttft is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
        span = make_span("chat " + req_model, start_ns=start, duration_ns=duration_ns, attributes=attrs)
        if error:
            span.status.code = Status.STATUS_CODE_ERROR
        spans.append(span)
        expected.append(
            {
                "model": resp_model or req_model,
                "provider": PROVIDER[req_model],
                "start": dt.datetime.fromtimestamp(start / 1e9, dt.UTC),
                "ms": duration_ns / 1e6,
                "error": error,
                "error_type": error_type,
                "input": inp,
                "output": out,
                "cache": cache,
                "cost": cost,
                "ttft_ms": None if ttft is None else ttft * 1000,
                "session": f"s{i % 5}",
                "llm": True,
            }
        )
    # Spans that are no LLM call: counted only with --all-spans. Half are agent and tool steps,
    # which carry a GenAI operation but call no model themselves.
    for j in range(60):
        start = _ns(T0) + rng.randrange(0, SPAN_HOURS * 3600 * 10**9)
        duration_ns = rng.randrange(1, 5000) * 1_000_000
        step = {
            0: {},
            1: {"gen_ai.operation.name": "invoke_agent"},
            2: {"gen_ai.operation.name": "execute_tool"},
        }
        spans.append(make_span("agent step", start_ns=start, duration_ns=duration_ns, attributes=step[j % 3]))
        expected.append(
            {
                "model": "",
                "provider": "",
                "start": dt.datetime.fromtimestamp(start / 1e9, dt.UTC),
                "ms": duration_ns / 1e6,
                "error": False,
                "llm": False,
                "ttft_ms": None,
            }
        )
    for chunk in range(0, len(spans), 400):
        r = collector.post(
            "/v1/traces", trace_request(service, spans[chunk : chunk + 400]).SerializeToString()
        )
        assert r.status_code == 200, r.content
    return service, expected


def query(collector, kind, **params) -> list[dict]:
    r = collector.session.post(collector.http_url + f"/api/v1/query/{kind}", json=params, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def in_range(e) -> bool:
    return dt.datetime.fromisoformat(SINCE) <= e["start"] < dt.datetime.fromisoformat(UNTIL)


def groups(expected, key, llm_only=True):
    out = defaultdict(list)
    for e in expected:
        if in_range(e) and (e["llm"] or not llm_only):
            out[key(e)].append(e)
    return out


def check_latency_exact(row, items):
    ms = np.array([e["ms"] for e in items])
    assert row["count"] == len(items)
    for q in LEVELS:
        assert row[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q), abs=1e-3)
    assert row["mean_ms"] == pytest.approx(ms.mean(), abs=1e-3)
    assert row["max_ms"] == pytest.approx(ms.max(), abs=1e-3)
    assert row["error_rate"] == pytest.approx(sum(e["error"] for e in items) / len(items), rel=1e-12)
    ttft = np.array([e["ttft_ms"] for e in items if e["ttft_ms"] is not None])
    assert row["ttft_count"] == len(ttft)
    for q in LEVELS:
        if len(ttft):
            assert row[f"ttft_p{q}_ms"] == pytest.approx(np.percentile(ttft, q), abs=1e-3)
        else:
            assert row[f"ttft_p{q}_ms"] is None


def within_sketch(value, values, q):
    """A DDSketch answer: within the relative error of a value ranked at the quantile."""
    lo = np.percentile(values, q, method="lower") * (1 - ROLLUP_RELATIVE_ERROR) - 1e-3
    hi = np.percentile(values, q, method="higher") * (1 + ROLLUP_RELATIVE_ERROR) + 1e-3
    return lo <= value <= hi


def params(**kw):
    return {"since": SINCE, "until": UNTIL, **kw}


def test_latency_by_model_raw_is_exact(collector, data):
    service, expected = data
    rows = query(collector, "latency", **params(by=["model"], service=service, plan="raw"))
    exp = groups(expected, lambda e: e["model"])
    assert [r["model"] for r in rows] == sorted(exp)
    for row in rows:
        check_latency_exact(row, exp[row["model"]])


def test_latency_rollup_agrees_with_raw(collector, data):
    service, expected = data
    raw = query(collector, "latency", **params(by=["provider", "model"], service=service, plan="raw"))
    roll = query(collector, "latency", **params(by=["provider", "model"], service=service, plan="rollup"))
    assert len(raw) == len(roll) == 3
    exp = groups(expected, lambda e: (e["provider"], e["model"]))
    for r, k in zip(raw, roll, strict=True):
        assert (r["provider"], r["model"]) == (k["provider"], k["model"])
        for col in ("count", "max_ms", "ttft_count"):
            assert k[col] == r[col]
        assert k["error_rate"] == pytest.approx(r["error_rate"], rel=1e-12)
        assert k["mean_ms"] == pytest.approx(r["mean_ms"], abs=2e-3)
        items = exp[(r["provider"], r["model"])]
        ms = [e["ms"] for e in items]
        ttft = [e["ttft_ms"] for e in items if e["ttft_ms"] is not None]
        for q in LEVELS:
            assert within_sketch(k[f"p{q}_ms"], ms, q), (q, k[f"p{q}_ms"], np.percentile(ms, q))
            assert within_sketch(k[f"ttft_p{q}_ms"], ttft, q)


def test_planner_picks_rollup_for_long_ranges_and_raw_otherwise():
    now = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
    plan = lambda **kw: aggregates.build(**kw, now=now)[2]  # noqa: E731
    assert plan(kind="latency", by=["model"], since="24h") == "rollup"
    assert plan(kind="latency", by=["model"], since="1h") == "raw"
    assert (
        plan(kind="cost", by=["day", "provider"], since="30d", where="model = 'x' AND service != 'y'")
        == "rollup"
    )
    assert plan(kind="cost", by=["session"], since="30d") == "raw"  # not a rollup dimension
    assert (
        plan(kind="latency", by=["model"], since="30d", where="duration_ms > 5") == "raw"
    )  # not a rollup field
    assert plan(kind="errors", by=["model"], since="30d") == "raw"
    with pytest.raises(aggregates.QueryError, match="rollup cannot answer"):
        aggregates.build(kind="cost", by=["user"], plan="rollup")


def cost_expectation(items):
    inp = sum(e["input"] for e in items)
    out = sum(e["output"] for e in items)
    return {
        "count": len(items),
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": sum(e["cache"] for e in items),
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": inp + out,
        "cost_usd": sum((e["cost"] for e in items), Decimal(0)),
        "estimated_share": 0.0,
        "unpriced_calls": 0,
        "unpriced_tokens": 0,
    }


@pytest.mark.parametrize("plan", ["raw", "rollup"])
def test_cost_by_provider_and_hour_is_exact_on_both_plans(collector, data, plan):
    service, expected = data
    rows = query(collector, "cost", **params(by=["provider", "hour"], service=service, plan=plan))
    hour = lambda e: e["start"].replace(minute=0, second=0, microsecond=0)  # noqa: E731
    exp = groups(expected, lambda e: (e["provider"], hour(e)))
    assert len(rows) == len(exp)
    for row in rows:
        key = (row["provider"], dt.datetime.fromisoformat(row["hour"]).replace(tzinfo=dt.UTC))
        want = cost_expectation(exp[key])
        got = {**row, "cost_usd": Decimal(row["cost_usd"])}
        del got["provider"], got["hour"]
        assert got == want


def test_errors_by_model_count_each_error_type(collector, data):
    service, expected = data
    rows = query(collector, "errors", **params(by=["model"], service=service))
    exp = groups(expected, lambda e: e["model"])
    want = []
    for model, items in exp.items():
        kinds = defaultdict(int)
        for e in items:
            if e["error"]:
                kinds[e["error_type"]] += 1
        for kind, n in kinds.items():
            want.append((model, kind, n, len(items)))
    got = [(r["model"], r["error_type"], r["errors"], r["spans"]) for r in rows]
    assert sorted(got) == sorted(want)
    for r in rows:
        assert r["error_rate"] == pytest.approx(r["errors"] / r["spans"])


def test_all_spans_counts_non_llm_spans(collector, data):
    service, expected = data
    llm = query(collector, "latency", **params(service=service, plan="raw"))
    every = query(collector, "latency", **params(service=service, all_spans=True, plan="raw"))
    assert llm[0]["count"] == sum(1 for e in expected if in_range(e) and e["llm"])
    assert every[0]["count"] == sum(1 for e in expected if in_range(e))
    check_latency_exact(every[0], [e for e in expected if in_range(e)])


def test_where_filter_and_session_dimension(collector, data):
    service, expected = data
    rows = query(
        collector,
        "latency",
        **params(by=["session"], service=service, where="provider = 'openai' AND duration_ms > 300"),
    )
    exp = groups(
        [e for e in expected if e["llm"] and e["provider"] == "openai" and e["ms"] > 300],
        lambda e: e["session"],
    )
    assert [r["session"] for r in rows] == sorted(exp)
    for row in rows:
        check_latency_exact(row, exp[row["session"]])


def test_cost_rollup_with_where_on_model(collector, data):
    service, expected = data
    where = "model IN ('gpt-4o-2024-08-06', 'gpt-4o-mini')"
    raw = query(collector, "cost", **params(by=["day"], service=service, where=where, plan="raw"))
    roll = query(collector, "cost", **params(by=["day"], service=service, where=where, plan="auto"))
    assert raw == roll
    items = [e for e in expected if in_range(e) and e["llm"] and e["model"] != "claude-sonnet-4-20250514"]
    assert Decimal(raw[0]["cost_usd"]) == sum((e["cost"] for e in items), Decimal(0))


def test_cli_through_server_json_csv_parquet(collector, data, tmp_path):
    service, expected = data
    args = [
        "query",
        "cost",
        "--by",
        "model",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--service",
        service,
        "--server",
        collector.http_url,
    ]
    p = run_cli(*args, "--format", "json")
    assert p.returncode == 0, p.stderr
    records = json.loads(p.stdout)
    exp = groups(expected, lambda e: e["model"])
    assert {r["model"]: Decimal(r["cost_usd"]) for r in records} == {
        m: sum((e["cost"] for e in items), Decimal(0)) for m, items in exp.items()
    }
    p = run_cli(*args, "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0][:3] == ["model", "count", "input_tokens"] and len(rows) == 4
    out = tmp_path / "cost.parquet"
    p = run_cli(*args, "--format", "parquet", "-o", str(out))
    assert p.returncode == 0, p.stderr
    blob = out.read_bytes()
    assert blob[:4] == b"PAR1" and blob[-4:] == b"PAR1"
    # A Parquet answer leaves no settings behind on the server's read connection.
    assert collector.scalar("SELECT 1") == 1
    import pyarrow.parquet as pq  # chDB's own dependency, so always installed with the collector

    table = pq.read_table(out)
    assert table.num_rows == 3 and "cost_usd" in table.column_names


def test_cli_on_a_store_directly_and_errors(tmp_path):
    store = f"chdb://{tmp_path / 'store'}"
    p = run_cli("query", "latency", "--by", "model,hour", "--store", store, "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []
    p = run_cli("query", "latency", "--by", "model", "--store", store)
    assert p.returncode == 0 and p.stdout.splitlines()[0].split()[:3] == ["model", "count", "p50_ms"]
    p = run_cli("query", "latency", "--by", "colour", "--store", store)
    assert p.returncode == 1 and "unknown dimension 'colour'" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("query", "cost", "--since", "last week", "--store", store)
    assert p.returncode == 1 and "since: 'last week' is neither a duration" in p.stderr
    p = run_cli("query", "cost", "--where", "cost_usd > 'cheap'", "--store", store)
    assert p.returncode == 1 and "col 12: cost_usd is a number" in p.stderr


def test_rest_errors(collector):
    url = collector.http_url + "/api/v1/query/"
    r = collector.session.get(url + "latency", params={"by": "model,planet"}, timeout=30)
    assert r.status_code == 400 and "unknown dimension 'planet'" in r.json()["error"]
    r = collector.session.get(url + "speed", timeout=30)
    assert r.status_code == 404
    r = collector.session.get(url + "cost", params={"since": "2024-01-02", "until": "2024-01-01"}, timeout=30)
    assert r.status_code == 400 and "must be after since" in r.json()["error"]
    r = collector.session.get(url + "cost", params={"colour": "red"}, timeout=30)
    assert r.status_code == 400 and "unknown parameter" in r.json()["error"]
    r = collector.session.get(url + "cost", params={"by": "day", "since": "1h"}, timeout=30)
    assert r.status_code == 200 and r.json()["columns"][:2] == ["day", "count"]


def test_parse_time():
    now = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert aggregates.parse_time("24h", now) == now - dt.timedelta(hours=24)
    assert aggregates.parse_time("30d", now) == now - dt.timedelta(days=30)
    assert aggregates.parse_time("15m", now) == now - dt.timedelta(minutes=15)
    assert aggregates.parse_time("2024-05-01T10:00:00Z", now) == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert aggregates.parse_time("2024-05-01", now) == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    with pytest.raises(aggregates.QueryError, match="until: 'soon'"):
        aggregates.parse_time("soon", now, "until")


def test_split_range_uses_the_coarsest_whole_periods():
    t = lambda s: dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC)  # noqa: E731
    levels = [("h", dt.timedelta(hours=1)), ("m", dt.timedelta(minutes=1))]
    got = aggregates.split_range(t("2024-03-01 09:58:30"), t("2024-03-01 12:01:10"), levels)
    assert got == [
        ("otel_traces", t("2024-03-01 09:58:30"), t("2024-03-01 09:59:00")),
        ("m", t("2024-03-01 09:59:00"), t("2024-03-01 10:00:00")),
        ("h", t("2024-03-01 10:00:00"), t("2024-03-01 12:00:00")),
        ("m", t("2024-03-01 12:00:00"), t("2024-03-01 12:01:00")),
        ("otel_traces", t("2024-03-01 12:01:00"), t("2024-03-01 12:01:10")),
    ]
    # Inside one minute: raw only. Open end: the coarsest level runs on.
    assert aggregates.split_range(t("2024-03-01 10:00:05"), t("2024-03-01 10:00:50"), levels) == [
        ("otel_traces", t("2024-03-01 10:00:05"), t("2024-03-01 10:00:50"))
    ]
    assert aggregates.split_range(t("2024-03-01 10:00:00"), None, levels) == [
        ("h", t("2024-03-01 10:00:00"), None)
    ]


def test_upgrade_to_v2_backfills_rollups_and_scores(tmp_path):
    """Spans stored before the rollups and scores existed are in them after the upgrade."""
    from tracehouse_collector.store import ddl
    from tracehouse_collector.store.client import Store

    store = Store(f"chdb://{tmp_path / 'old'}")
    try:
        for stmt in ddl.bookkeeping_statements() + ddl.migrations()[0].statements():
            store.command(stmt)
        store.command("INSERT INTO tracehouse.schema_migrations (Version, Description) VALUES (1, 'v1')")
        store.command(
            "INSERT INTO tracehouse.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration, "
            "GenAIOperation, GenAIRequestModel, TotalCostUSD, `Events.Timestamp`, `Events.Name`, `Events.Attributes`) "
            "SELECT toDateTime64('2024-03-01 00:00:00', 9, 'UTC') + toIntervalMinute(number), "
            "lower(hex(MD5(toString(number)))), substring(lower(hex(MD5(toString(-number)))), 1, 16), 'old', 'chat', "
            "(number + 1) * 1000000, 'chat', 'm-old', toDecimal64(number, 12) / 1000, "
            "[toDateTime64('2024-03-01 00:00:00', 9, 'UTC')], ['gen_ai.evaluation.result'], "
            "[map('gen_ai.evaluation.name', 'old-eval', 'gen_ai.evaluation.score.value', toString(number % 2))] "
            "FROM numbers(600)"
        )
        assert store.migrate() == [m.version for m in ddl.migrations() if m.version >= 2]
        since, until = "2024-02-29", "2024-03-02"
        raw = aggregates.aggregate(store, "cost", by=["model"], since=since, until=until, plan="raw")
        roll = aggregates.aggregate(store, "cost", by=["model"], since=since, until=until, plan="rollup")
        assert raw.rows == roll.rows
        assert raw.rows[0][:2] == ("m-old", 600) and raw.rows[0][8] == Decimal(sum(range(600))) / 1000
        acc = aggregates.aggregate(store, "accuracy", by=["model"], since=since, until=until)
        assert [r[:4] for r in acc.rows] == [("m-old", "old-eval", 600, 0.5)]
    finally:
        store.close()


@pytest.mark.parametrize("by", [["minute"], ["service", "span"], []])
def test_rollup_equals_raw_for_counts_and_costs(collector, data, by):
    """Minute buckets (per-minute rollup only), every span (--all-spans) and no grouping."""
    service, _ = data
    for all_spans in (False, True):
        kw = params(by=by, service=service, all_spans=all_spans)
        raw = query(collector, "cost", **kw, plan="raw")
        roll = query(collector, "cost", **kw, plan="rollup")
        assert raw == roll and raw
        lat_raw = query(collector, "latency", **kw, plan="raw")
        lat_roll = query(collector, "latency", **kw, plan="rollup")
        for r, k in zip(lat_raw, lat_roll, strict=True):
            assert (r["count"], r["max_ms"], r["error_rate"]) == (k["count"], k["max_ms"], k["error_rate"])


# -- unpriced models -------------------------------------------------------------------------

T1 = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
U_SINCE, U_UNTIL = (
    (T1 - dt.timedelta(seconds=31)).isoformat(),
    (T1 + dt.timedelta(hours=10, seconds=7)).isoformat(),
)


@pytest.fixture(scope="module")
def unpriced_data(collector):
    """gpt-4o calls priced by genai-prices, calls of a model nobody prices, and failed calls
    without usage (not billed), spread over ten hours; with the genai-prices total expected."""
    from genai_prices import Usage, calc_price

    rng = random.Random(25)
    service, mystery = unique("unpriced"), f"mystery-llm-{unique('m')}"
    spans, priced, mystery_tokens = [], Decimal(0), 0
    for i in range(300):
        start = _ns(T1) + rng.randrange(0, 10 * 3600 * 10**9)
        model = mystery if i % 3 == 0 else "gpt-4o"
        inp, out = rng.randrange(10, 3000), rng.randrange(1, 500)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
        }
        failed = i % 10 == 1
        if not failed:
            attrs.update({"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out})
            if model == mystery:
                mystery_tokens += inp + out
            else:
                when = dt.datetime.fromtimestamp(start / 1e9, dt.UTC).replace(
                    hour=12, minute=0, second=0, microsecond=0
                )
                priced += calc_price(
                    Usage(input_tokens=inp, output_tokens=out),
                    "gpt-4o",
                    provider_id="openai",
                    genai_request_timestamp=when,
                ).total_price
        else:
            attrs.update(
                {"gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]'}
            )
        span = make_span(f"chat {model}", start_ns=start, duration_ns=1_000_000, attributes=attrs)
        if failed:
            span.status.code = Status.STATUS_CODE_ERROR
        spans.append(span)
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content
    calls = sum(1 for i in range(300) if i % 3 == 0 and i % 10 != 1)
    return service, mystery, priced, calls, mystery_tokens


@pytest.mark.parametrize("plan", ["raw", "rollup"])
def test_unpriced_models_have_a_null_cost_and_are_counted_on_both_plans(collector, unpriced_data, plan):
    service, mystery, priced, calls, tokens = unpriced_data
    kw = {"since": U_SINCE, "until": U_UNTIL, "service": service, "plan": plan}
    by_model = {r["model"]: r for r in query(collector, "cost", by=["model"], **kw)}
    assert by_model[mystery]["cost_usd"] is None  # unknown, not free
    assert (by_model[mystery]["unpriced_calls"], by_model[mystery]["unpriced_tokens"]) == (calls, tokens)
    assert Decimal(by_model["gpt-4o"]["cost_usd"]) == priced  # failed calls add nothing
    assert by_model["gpt-4o"]["unpriced_calls"] == 0
    (total,) = query(collector, "cost", **kw)
    assert Decimal(total["cost_usd"]) == priced
    assert (total["unpriced_calls"], total["unpriced_tokens"]) == (calls, tokens)
    assert total["estimated_share"] == 0  # failed calls' prompts were not estimated as billed


def test_rollup_and_raw_agree_on_unpriced_counts_by_hour(collector, unpriced_data):
    service = unpriced_data[0]
    kw = {"since": U_SINCE, "until": U_UNTIL, "service": service, "by": ["hour", "model"]}
    raw, roll = query(collector, "cost", **kw, plan="raw"), query(collector, "cost", **kw, plan="rollup")
    assert raw == roll and any(r["cost_usd"] is None for r in raw)


def test_query_cost_unpriced_lists_the_models_lacking_a_price(collector, unpriced_data):
    service, mystery, _, calls, tokens = unpriced_data
    p = run_cli(
        "query",
        "cost",
        "--unpriced",
        "--since",
        U_SINCE,
        "--until",
        U_UNTIL,
        "--service",
        service,
        "--server",
        collector.http_url,
        "--format",
        "json",
    )
    assert p.returncode == 0, p.stderr
    (row,) = json.loads(p.stdout)
    assert (row["provider"], row["model"], row["calls"], row["total_tokens"]) == (
        "openai",
        mystery,
        calls,
        tokens,
    )
    assert set(row) == {"provider", "model", *aggregates.UNPRICED_COLUMNS}
    r = collector.session.get(
        collector.http_url + "/api/v1/query/latency", params={"unpriced": "1"}, timeout=30
    )
    assert r.status_code == 400 and "only the cost aggregate" in r.json()["error"]


def test_upgrade_to_v4_counts_unpriced_calls_in_the_rollups(tmp_path):
    """A v3 store gains the rollup columns; calls stored after the upgrade are counted there."""
    from tracehouse_collector.store import ddl
    from tracehouse_collector.store.client import Store

    store = Store(f"chdb://{tmp_path / 'v3'}")
    insert = (
        "INSERT INTO tracehouse.otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, Duration, "
        "GenAIOperation, GenAIRequestModel, TotalTokens, TotalCostUSD, PriceSource) "
        "SELECT toDateTime64('2024-03-01 00:00:00', 9, 'UTC') + toIntervalMinute(number), "
        "lower(hex(MD5(toString(number)))), substring(lower(hex(MD5(toString(-number)))), 1, 16), 's', 'chat', "
        "1000000, 'chat', {model}, 10, {cost}, {source} FROM numbers({n})"
    )
    try:
        for stmt in ddl.bookkeeping_statements():
            store.command(stmt)
        for m in ddl.migrations()[:3]:
            for stmt in m.statements():
                store.command(stmt)
            store.command(
                f"INSERT INTO tracehouse.schema_migrations (Version, Description) VALUES ({m.version}, 'x')"
            )
        store.command(insert.format(model="'m-old'", cost="toDecimal64(1, 12)", source="''", n=120))
        assert store.migrate() == [m.version for m in ddl.migrations() if m.version >= 4]
        store.command(insert.format(model="'m-new'", cost="0", source="'unpriced'", n=90))
        since, until = "2024-02-29", "2024-03-02"
        raw = aggregates.aggregate(store, "cost", by=["model"], since=since, until=until, plan="raw")
        roll = aggregates.aggregate(store, "cost", by=["model"], since=since, until=until, plan="rollup")
        assert raw.rows == roll.rows
        rows = {r[0]: dict(zip(raw.columns, r, strict=True)) for r in raw.rows}
        assert rows["m-new"]["cost_usd"] is None and rows["m-new"]["unpriced_calls"] == 90
        assert rows["m-new"]["unpriced_tokens"] == 900
        assert rows["m-old"]["cost_usd"] == 120 and rows["m-old"]["unpriced_calls"] == 0
    finally:
        store.close()
