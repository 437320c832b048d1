"""Grafana on Tracehouse's tables, with known data and known answers.

- Every panel and variable of the shipped dashboard (deploy/grafana/dashboards/), run as Grafana
  runs it, against agent traces whose answers are computed here apart: an LLM call is a model
  call only, as in `tracehouse query` (agent, tool, retrieval and chain steps carry a GenAI
  operation but are not LLM calls); an agent that fails with its model call is one failed call.
- The exact queries Grafana's ClickHouse data source generates for OpenTelemetry tables
  (tests/support/grafana_plugin.py): trace search, the trace view through `otel_traces_trace_id_ts`, logs,
  the logs of a trace, and a metric's time series. Their answers are checked, so a table that
  drifts from what the plugin expects fails here.

The data goes through a real collector of its own (a store no other test writes), as OTLP.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import numpy as np
import pytest
from grafana_plugin import PLUGIN_SQL, dashboard_sql, expand
from helpers import REPO, kv, make_span, new_span_id, new_trace_id, trace_request, unique, wait_for
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from tracehouse_collector.query.aggregates import MODEL_CALL

DASHBOARD = REPO / "deploy/grafana/dashboards/tracehouse-llm-usage.json"
T0_NS = 1_750_000_000_000_000_000  # 2025-06-15 15:06:40 UTC
MINUTE_NS = 60 * 10**9
FROM_S, TO_S = T0_NS // 10**9 - 3600, T0_NS // 10**9 + 3 * 3600
MODELS = (("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic"))
TRACES = 12


def _status_error(span: Span, message: str) -> Span:
    span.status.code = Status.STATUS_CODE_ERROR
    span.status.message = message
    return span


def _agent_traces(service: str) -> tuple[list[Span], list[dict]]:
    """Twelve agent runs, one a minute and a half apart. Each: an agent span, two model calls,
    a tool call (linked to the previous run), a retrieval and a chain step. Every fourth agent
    fails together with its first model call (an exception event on both); run 6 has a failed
    model call under an agent that recovers. Returns the spans and, per model call, what the
    answers are computed from."""
    spans, calls = [], []
    previous: tuple[bytes, bytes] | None = None
    for t in range(TRACES):
        trace_id, root_id = new_trace_id(), new_span_id()
        start = T0_NS + t * 90 * 10**9
        failed = t % 4 == 0
        root = make_span(
            "invoke_agent planner", trace_id=trace_id, span_id=root_id, start_ns=start,
            duration_ns=9 * 10**9, attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
        )  # fmt: skip
        if failed:
            _status_error(root, "planner gave up")
            ev = root.events.add(name="exception", time_unix_nano=start + 8 * 10**9)
            ev.attributes.extend(
                [kv("exception.type", "AgentError"), kv("exception.message", "planner gave up")]
            )
        spans.append(root)
        for c in range(2):
            model, provider = MODELS[(t + c) % 2]
            inp, out = 200 + 17 * t + 5 * c, 30 + 3 * t + c
            call_start = start + (1 + 3 * c) * 10**9
            duration = (400 + 37 * t + 111 * c) * 10**6 + 123_457
            span = make_span(
                f"chat {model}", trace_id=trace_id, parent_span_id=root_id, start_ns=call_start, duration_ns=duration,
                kind=Span.SPAN_KIND_CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
                    "gen_ai.response.model": model, "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                },
            )  # fmt: skip
            error = (failed and c == 0) or (t == 6 and c == 1)
            if error:
                _status_error(span, "rate limited")
                ev = span.events.add(name="exception", time_unix_nano=call_start + duration)
                ev.attributes.extend(
                    [kv("exception.type", "RateLimitError"), kv("exception.message", "rate limited")]
                )
            spans.append(span)
            calls.append(
                {"trace": trace_id.hex(), "start": call_start, "duration": duration, "model": model,
                 "provider": provider, "input": inp, "output": out, "error": error, "service": service}
            )  # fmt: skip
        tool = make_span(
            "execute_tool search", trace_id=trace_id, parent_span_id=root_id, start_ns=start + 2 * 10**9,
            duration_ns=10**9, attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        )  # fmt: skip
        if previous:
            link = tool.links.add(trace_id=previous[0], span_id=previous[1])
            link.attributes.append(kv("link.reason", "follows"))
        spans.append(tool)
        steps = (
            ("retrieval docs", 5, 2, {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}),
            ("chain answer", 7, 1, {"gen_ai.operation.name": "chain"}),
        )
        for name, at_s, seconds, attributes in steps:
            spans.append(
                make_span(
                    name,
                    trace_id=trace_id,
                    parent_span_id=root_id,
                    start_ns=start + at_s * 10**9,
                    duration_ns=seconds * 10**9,
                    attributes=attributes,
                )
            )
        previous = (trace_id, root_id)
    return spans, calls


def _logs_request(service: str, calls: list[dict]) -> tuple[ExportLogsServiceRequest, list[dict]]:
    """One log record per model call, in its trace, and one outside any trace."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([kv("service.name", service), kv("k8s.pod.name", "agent-0")])
    sl = rl.scope_logs.add()
    sl.scope.name = "agent.logging"
    records = []
    for i, call in enumerate([*calls, {"trace": "", "start": T0_NS + 5 * MINUTE_NS + 1, "error": False}]):
        rec = sl.log_records.add()
        rec.time_unix_nano = call["start"] + 1_000
        rec.severity_text = "ERROR" if call["error"] else "INFO"
        rec.severity_number = 17 if call["error"] else 9
        rec.body.string_value = f"call {i} done"
        if call["trace"]:
            rec.trace_id = bytes.fromhex(call["trace"])
        rec.attributes.append(kv("call.index", i))
        records.append(
            {
                "ns": rec.time_unix_nano,
                "body": f"call {i} done",
                "level": rec.severity_text,
                "trace": call["trace"],
            }
        )
    return req, records


def _metrics_request(service: str) -> tuple[ExportMetricsServiceRequest, dict[str, list[tuple[int, float]]]]:
    """Delta sums, a gauge and histograms of one metric each, a point every 20 seconds for ten minutes."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", service))
    sm = rm.scope_metrics.add()
    sm.scope.name = "agent.metrics"
    points: dict[str, list[tuple[int, float]]] = {"sum": [], "gauge": [], "histogram": []}
    total = sm.metrics.add(name="agent.tokens", unit="{token}")
    total.sum.aggregation_temporality = 1  # delta
    total.sum.is_monotonic = True
    gauge = sm.metrics.add(name="agent.queue", unit="{run}")
    hist = sm.metrics.add(name="agent.step.duration", unit="s")
    hist.histogram.aggregation_temporality = 1
    for i in range(30):
        ts = T0_NS + i * 20 * 10**9 + 250_000_000  # a fraction of a second: the exporter's DateTime drops it
        dp = total.sum.data_points.add(
            time_unix_nano=ts, start_time_unix_nano=ts - 20 * 10**9, as_double=10.0 + i
        )
        dp.attributes.append(kv("kind", "input"))
        gauge.gauge.data_points.add(time_unix_nano=ts, as_double=float(i % 7))
        hdp = hist.histogram.data_points.add(
            time_unix_nano=ts, start_time_unix_nano=ts - 20 * 10**9, count=3 + i % 4, sum=1.5 * (3 + i % 4)
        )
        hdp.explicit_bounds.extend([1.0, 2.0])
        hdp.bucket_counts.extend([1, 1, 1 + i % 4])
        points["sum"].append((ts, 10.0 + i))
        points["gauge"].append((ts, float(i % 7)))
        points["histogram"].append((ts, float(3 + i % 4)))
    return req, points


@pytest.fixture(scope="module")
def store(start_collector):
    """A collector of its own, holding the agent traces, their logs and the metrics."""
    collector = start_collector(name="grafana")
    service = unique("agents")
    spans, calls = _agent_traces(service)
    logs, records = _logs_request(service, calls)
    metrics, points = _metrics_request(service)
    for path, body in (
        ("/v1/traces", trace_request(service, spans)),
        ("/v1/logs", logs),
        ("/v1/metrics", metrics),
    ):
        r = collector.post(path, body.SerializeToString())
        assert r.status_code == 200, r.text
    wait_for(lambda: collector.scalar("SELECT count() FROM otel_traces") == len(spans), timeout=30)
    return {"collector": collector, "service": service, "spans": spans, "calls": calls, "records": records,
            "points": points}  # fmt: skip


def _rows(collector, sql: str) -> list[dict]:
    result = collector.sql_raw(sql)
    return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]


def _panels() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = {p["title"]: t["rawSql"] for p in dashboard["panels"] for t in p.get("targets", [])}
    out.update({f"${v['name']}": v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"})
    return out


def _price(call: dict) -> Decimal:
    from genai_prices import Usage, calc_price

    day = time.gmtime(call["start"] // 10**9)
    noon = dt.datetime(day.tm_year, day.tm_mon, day.tm_mday, 12, tzinfo=dt.UTC)
    usage = Usage(input_tokens=call["input"], output_tokens=call["output"])
    return calc_price(
        usage, call["model"], provider_id=call["provider"], genai_request_timestamp=noon
    ).total_price


def _minute(ns: int) -> int:
    return ns // MINUTE_NS * 60


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def test_every_dashboard_panel_answers_from_model_calls_only(store):
    collector, service, calls = store["collector"], store["service"], store["calls"]
    assert len(store["spans"]) == TRACES * 6 and len(calls) == TRACES * 2  # 72 spans, 24 of them model calls
    panels = _panels()
    assert all(MODEL_CALL in sql for title, sql in panels.items() if not title.startswith("Trace ")), (
        "every LLM panel uses the definition of an LLM call of `tracehouse query`"
    )
    values = {"service": service, "model": "$__all", "trace_id": calls[0]["trace"]}

    def run(title: str, **override: str) -> list[dict]:
        return _rows(collector, dashboard_sql(panels[title], {**values, **override}, FROM_S, TO_S))

    # Known answers, computed from what was sent.
    durations_ms = {m: np.array([c["duration"] / 1e6 for c in calls if c["model"] == m]) for m, _ in MODELS}
    errors = sum(c["error"] for c in calls)
    assert errors == TRACES // 4 + 1  # the agents' failures count once each, plus run 6's
    costs = [_price(c) for c in calls]
    assert all(p > 0 for p in costs)

    assert run("LLM requests") == [{"requests": 24}]
    assert run("Total tokens") == [{"tokens": sum(c["input"] + c["output"] for c in calls)}]
    assert run("Unpriced calls") == [{"unpriced_calls": 0, "unpriced_tokens": 0}]
    assert run("Total cost") == [{"cost_usd": float(sum(costs, Decimal(0)))}]
    (rate,) = run("Error rate")
    assert _close(rate["error_rate"], errors / 24)

    by_minute: dict[tuple[int, str], list[dict]] = {}
    for c in calls:
        by_minute.setdefault((_minute(c["start"]), c["model"]), []).append(c)
    requests = run("Requests by model")
    assert {(r["time"], r["model"], r["requests"]) for r in requests} == {
        (_iso(m), model, len(cs)) for (m, model), cs in by_minute.items()
    }
    minutes = sorted({m for m, _ in by_minute})
    latency = run("Latency percentiles")
    assert [r["time"] for r in latency] == [_iso(m) for m in minutes]
    for row, m in zip(latency, minutes, strict=True):
        d = np.array([c["duration"] / 1e6 for c in calls if _minute(c["start"]) == m])
        for level, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            assert _close(row[key], float(np.quantile(d, level))), (m, key)
    tokens = run("Tokens")
    assert [(r["input"], r["output"], r["cache_read"], r["reasoning"]) for r in tokens] == [
        (sum(c["input"] for c in calls if _minute(c["start"]) == m),
         sum(c["output"] for c in calls if _minute(c["start"]) == m), 0, 0)
        for m in minutes
    ]  # fmt: skip
    cost_rows = run("Cost by model")
    expected_cost = {}
    for c, p in zip(calls, costs, strict=True):
        key = (_iso(_minute(c["start"])), c["model"])
        expected_cost[key] = expected_cost.get(key, Decimal(0)) + p
    assert {(r["time"], r["model"]): r["cost_usd"] for r in cost_rows} == {
        k: float(v) for k, v in expected_cost.items()
    }
    assert run("Unpriced calls by model") == []

    table = {r["model"]: r for r in run("By model")}
    assert set(table) == {m for m, _ in MODELS}
    for model, provider in MODELS:
        mine = [(c, p) for c, p in zip(calls, costs, strict=True) if c["model"] == model]
        row = table[model]
        assert (row["provider"], row["requests"], row["errors"]) == (
            provider,
            12,
            sum(c["error"] for c, _ in mine),
        )
        assert (row["input_tokens"], row["output_tokens"]) == (
            sum(c["input"] for c, _ in mine),
            sum(c["output"] for c, _ in mine),
        )
        assert row["cost_usd"] == float(sum((p for _, p in mine), Decimal(0)))
        for level, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            assert abs(row[key] - float(np.quantile(durations_ms[model], level))) <= 0.05 + 1e-9, (model, key)

    recent = run("Recent LLM calls")
    newest_first = sorted(calls, key=lambda c: -c["start"])
    assert [(r["trace_id"], r["model"], r["input_tokens"], r["status"]) for r in recent] == [
        (c["trace"], c["model"], c["input"], "Error" if c["error"] else "Unset") for c in newest_first
    ]

    # Variables: this service, and its models, never an empty one (agent and tool steps have none).
    assert {"ServiceName": service} in run("$service")
    models = [r["model"] for r in _rows(collector, dashboard_sql(panels["$model"], values, FROM_S, TO_S))]
    assert models == sorted(m for m, _ in MODELS)
    # One model picked: the panels narrow to it.
    assert run("LLM requests", model="gpt-4o-mini") == [{"requests": 12}]


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))  # as the SQL API writes DateTime


def test_dashboard_trace_panel_shows_events_and_links(store):
    collector, calls = store["collector"], store["calls"]
    trace = calls[8]["trace"]  # run 4: the agent failed with its first model call; its tool links run 3
    panel = _panels()[next(t for t in _panels() if t.startswith("Trace "))]
    rows = _rows(
        collector,
        dashboard_sql(panel, {"trace_id": trace, "service": "$__all", "model": "$__all"}, FROM_S, TO_S),
    )
    assert len(rows) == 6 and {r["traceID"] for r in rows} == {trace}
    by_name = {r["operationName"]: r for r in rows}
    agent, first_call = by_name["invoke_agent planner"], rows[1]
    assert agent["statusCode"] == 2 and agent["statusMessage"] == "planner gave up"
    assert [e["name"] for e in _tuples(agent["logs"], ("name", "timestamp", "fields"))] == ["exception"]
    event = _tuples(first_call["logs"], ("name", "timestamp", "fields"))[0]
    assert (
        event["name"] == "exception"
        and {"key": "exception.type", "value": "RateLimitError"} in event["fields"]
    )
    assert int(event["timestamp"]) == (calls[8]["start"] + calls[8]["duration"]) // 10**6
    (link,) = _tuples(by_name["execute_tool search"]["references"], ("traceID", "spanID", "tags"))
    assert link["traceID"] == calls[6]["trace"] and link["tags"] == [
        {"key": "link.reason", "value": "follows"}
    ]
    assert by_name["chain answer"]["logs"] == [] and first_call["kind"] == "Client"


def _tuples(value, names: tuple[str, ...]) -> list[dict]:
    """Named tuples as the SQL API returns them (objects, or arrays in field order)."""
    return [v if isinstance(v, dict) else dict(zip(names, v, strict=True)) for v in value]


# -- the queries Grafana's ClickHouse data source generates --------------------------------------


def _plugin(collector, name: str, **values: str) -> list[dict]:
    return _rows(collector, expand(PLUGIN_SQL[name], FROM_S * 1000, TO_S * 1000, **values))


def test_plugin_trace_search_and_trace_view(store):
    collector, spans, calls = store["collector"], store["spans"], store["calls"]
    roots = [s for s in spans if not s.parent_span_id]
    found = _plugin(collector, "trace_search")
    assert [(r["traceID"], r["operationName"], r["duration"]) for r in found] == [
        (s.trace_id.hex(), s.name, (s.end_time_unix_nano - s.start_time_unix_nano) * 0.000001)
        for s in sorted(roots, key=lambda s: -s.start_time_unix_nano)
    ]
    trace = calls[8]["trace"]
    view = _plugin(collector, "trace_id", trace_id=trace)
    mine = [s for s in spans if s.trace_id.hex() == trace]
    assert sorted((r["spanID"], r["parentSpanID"], r["startTime"], r["duration"]) for r in view) == sorted(
        # the plugin converts nanoseconds with multiply(x, 0.000001): the same double operation here
        (s.span_id.hex(), s.parent_span_id.hex(), s.start_time_unix_nano * 0.000001,
         (s.end_time_unix_nano - s.start_time_unix_nano) * 0.000001) for s in mine
    )  # fmt: skip
    statuses = {r["operationName"]: r["statusCode"] for r in view}
    assert statuses["invoke_agent planner"] == 2 and statuses["execute_tool search"] == 0
    assert sum(len(r["logs"]) for r in view) == 2 and sum(len(r["references"]) for r in view) == 1


def test_plugin_logs_and_the_logs_of_a_trace(store):
    collector, records, calls = store["collector"], store["records"], store["calls"]
    logs = _plugin(collector, "logs")
    newest_first = sorted(records, key=lambda r: -r["ns"])
    assert [(r["body"], r["level"], r["traceID"]) for r in logs] == [
        (r["body"], r["level"], r["trace"]) for r in newest_first
    ]
    trace = calls[8]["trace"]
    of_trace = _plugin(collector, "trace_logs", trace_id=trace)
    assert [r["body"] for r in of_trace] == [r["body"] for r in records if r["trace"] == trace] == [
        "call 8 done", "call 9 done",
    ]  # fmt: skip
    assert of_trace[0]["ResourceAttributes"]["k8s.pod.name"] == "agent-0"
    # The exporter's materialized column of the layout the plugin's `latest` expects.
    assert (
        collector.scalar(
            f"SELECT uniqExact(`__otel_materialized_k8s.pod.name`) FROM otel_logs WHERE ServiceName = '{store['service']}'"
        )
        == 1
    )
    # The layout before the exporter's v0.151 had TimestampTime; the plugin's query for it fails here.
    with pytest.raises(Exception, match="TimestampTime"):
        _plugin(collector, "logs_before_v0151")


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("sum", "agent.tokens"), ("gauge", "agent.queue"), ("histogram", "agent.step.duration")],
)
def test_plugin_metric_time_series(store, kind, metric):
    collector, service = store["collector"], store["service"]
    series = _plugin(collector, f"metric_{kind}", metric=metric)
    per_minute: dict[int, list[float]] = {}
    for ns, value in store["points"][kind]:
        per_minute.setdefault(_minute(ns), []).append(value)
    aggregate = np.mean if kind == "gauge" else np.sum
    column = {"sum": "sum(Value)", "gauge": "avg(Value)", "histogram": "sum(Count)"}[kind]
    assert {(r["time"], r["ServiceName"]): r[column] for r in series} == {
        (_iso(m), service): float(aggregate(v)) for m, v in per_minute.items()
    }
