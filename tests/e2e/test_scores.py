"""Scores: `gen_ai.evaluation.result` as span events, as OTLP log records (also before their
span arrives), from the SDK's tracehouse.score(), and the accuracy aggregate over them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections import defaultdict

import numpy as np
import pytest
from helpers import BASE_NS, REPO, kv, make_span, new_trace_id, trace_request, unique, wait_for
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

pytestmark = pytest.mark.timeout(180)

SINCE, UNTIL = "2023-11-14T00:00:00Z", "2023-11-16T00:00:00Z"


def llm_attrs(model: str, session: str = "", run: str = "") -> dict:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model}
    if session:
        attrs["session.id"] = session
    if run:
        attrs["tracehouse.run.id"] = run
    return attrs


def log_request(service: str, records: list[dict]) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", service))
    sl = rl.scope_logs.add()
    for i, r in enumerate(records):
        rec = sl.log_records.add()
        rec.time_unix_nano = BASE_NS + 5_000_000_000 + i
        rec.trace_id = r.get("trace_id", b"")
        rec.span_id = r.get("span_id", b"")
        rec.event_name = r.get("event_name", "gen_ai.evaluation.result")
        for k, v in r["attrs"].items():
            rec.attributes.append(kv(k, v))
    return req


def accuracy(collector, **params) -> list[dict]:
    r = collector.session.post(
        collector.http_url + "/api/v1/query/accuracy",
        json={"since": SINCE, "until": UNTIL, **params},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def post_spans(collector, service, spans):
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content


def post_logs(collector, service, records):
    r = collector.post("/v1/logs", log_request(service, records).SerializeToString())
    assert r.status_code == 200, r.content


def test_log_scores_before_their_spans_and_span_event_scores(collector):
    service = unique("scores")
    evaluation = unique("relevance")
    rng = np.random.default_rng(3)
    spans, values = [], defaultdict(list)
    log_records = []
    for i in range(30):
        model = ["gpt-4o", "gpt-4o-mini"][i % 2]
        span = make_span(
            "chat", start_ns=BASE_NS + i * 1000, attributes=llm_attrs(model, session=f"s{i % 3}")
        )
        value = float(np.round(rng.uniform(0, 1), 6))
        values[model].append(value)
        if i % 3 == 0:  # as a span event on the span itself
            ev = span.events.add()
            ev.time_unix_nano = BASE_NS + i * 1000 + 10
            ev.name = "gen_ai.evaluation.result"
            ev.attributes.extend(
                [kv("gen_ai.evaluation.name", evaluation), kv("gen_ai.evaluation.score.value", value)]
            )
        else:  # as a log record carrying the span's ids
            log_records.append(
                {
                    "trace_id": span.trace_id,
                    "span_id": span.span_id,
                    "attrs": {
                        "gen_ai.evaluation.name": evaluation,
                        "gen_ai.evaluation.score.value": value,
                        "gen_ai.evaluation.explanation": "why",
                    },
                }
            )
        spans.append(span)
    # The log records arrive first: before the spans they score exist.
    post_logs(collector, service, log_records)
    assert wait_for(
        lambda: (
            collector.scalar(f"SELECT count() FROM otel_scores WHERE Name = '{evaluation}'")
            == len(log_records)
        )
    )
    rows = accuracy(collector, by=["model"], where=f"service = '{service}'")
    assert rows == []  # attributed only through the span, which is not there yet
    post_spans(collector, service, spans)

    rows = accuracy(collector, by=["model"], where=f"service = '{service}'")
    assert [(r["model"], r["evaluation"]) for r in rows] == [
        ("gpt-4o", evaluation),
        ("gpt-4o-mini", evaluation),
    ]
    for r in rows:
        assert r["count"] == len(values[r["model"]]) == r["scored"]
        assert r["mean"] == pytest.approx(np.mean(values[r["model"]]), rel=1e-12)
        assert r["labels"] == {}
    explanations = collector.sql(
        f"SELECT Source, count() AS n, countIf(Explanation = 'why') AS why FROM otel_scores "
        f"WHERE Name = '{evaluation}' GROUP BY Source ORDER BY Source"
    )
    assert explanations == [
        {"Source": "log", "n": 20, "why": 20},
        {"Source": "span_event", "n": 10, "why": 0},
    ]

    by_session = accuracy(collector, by=["session"], where=f"service = '{service}'")
    assert [r["count"] for r in by_session] == [10, 10, 10]


def test_labels_and_older_spellings(collector):
    service = unique("labels")
    name = unique("verdict")
    spans = [make_span("chat", start_ns=BASE_NS + i, attributes=llm_attrs("m-labels")) for i in range(6)]
    post_spans(collector, service, spans)
    labels = ["pass", "fail", "pass", "pass", "fail", "skip"]
    records = [
        {
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "attrs": {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.label": lab},
        }
        for s, lab in zip(spans, labels, strict=True)
    ]
    # The 2024 draft spelling: event gen_ai.evaluation.<method> with gen_ai.evaluation.score.
    records.append(
        {
            "trace_id": spans[0].trace_id,
            "span_id": spans[0].span_id,
            "event_name": f"gen_ai.evaluation.{name}",
            "attrs": {"gen_ai.evaluation.score": "0.25"},
        }
    )
    post_logs(collector, service, records)
    rows = wait_for(lambda: accuracy(collector, by=["model"], where=f"service = '{service}'"))
    assert len(rows) == 1
    row = rows[0]
    assert row["evaluation"] == name and row["count"] == 7 and row["scored"] == 1
    assert row["mean"] == 0.25
    assert row["labels"] == {"pass": 3, "fail": 2, "skip": 1}


def test_score_filter_field_selects_spans(collector):
    service = unique("scorefilter")
    name = unique("quality")
    spans = [make_span(f"s{i}", start_ns=BASE_NS + i, attributes=llm_attrs("m-filter")) for i in range(4)]
    post_spans(collector, service, spans)
    post_logs(
        collector,
        service,
        [
            {
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "attrs": {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": v},
            }
            for s, v in zip(spans, [0.1, 0.5, 0.9, 0.7], strict=True)
        ],
    )
    r = collector.session.post(
        collector.http_url + "/api/v1/query/latency",
        timeout=60,
        json={
            "since": SINCE,
            "until": UNTIL,
            "service": service,
            "by": ["span"],
            "where": f"score['{name}'] >= 0.5",
        },
    )
    assert r.status_code == 200, r.text
    assert [row[0] for row in r.json()["rows"]] == ["s1", "s2", "s3"]


SDK_SCRIPT = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    import tracehouse

    endpoint, service, name, run_id = sys.argv[1:5]
    tracehouse.init(service_name=service, endpoint=endpoint, instrument=None)
    tracer = trace.get_tracer("sdk-test")
    ids = []
    for i, model in enumerate(["sdk-a", "sdk-b", "sdk-a"]):
        with tracer.start_as_current_span("chat") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", model)
            span.set_attribute("tracehouse.run.id", run_id)
            tracehouse.score(name, value=0.5 + i / 10, explanation="current span")
            ids.append(format(span.get_span_context().trace_id, "032x"))
    # A whole trace, scored after it ended: attributed to its (first) LLM call's model.
    tracehouse.score(name, label="good", trace_id=ids[1])
    # A run.
    tracehouse.score(name, value=1.0, run=run_id)
    # Inside a run, outside any span: the run.
    with tracehouse.run(experiment="score-test", run_id=sys.argv[5]):
        tracehouse.score(name, value=0.0)
    for bad in [dict(), dict(value=float("nan")), dict(value=1, trace_id="xyz")]:
        try:
            tracehouse.score(name, **bad)
        except ValueError as exc:
            print("rejected:", exc)
    """
)


def test_sdk_score_span_trace_and_run(collector, tmp_path):
    service = unique("sdkscore")
    name = unique("helpfulness")
    run_id = unique("run")
    other_run = uuid.uuid4().hex
    script = tmp_path / "app.py"
    script.write_text(SDK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_"))}
    p = subprocess.run(
        [sys.executable, str(script), collector.http_url, service, name, run_id, other_run],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(REPO),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("rejected:") == 3, p.stdout
    assert (
        "needs a value, a label or both" in p.stdout and "finite number" in p.stdout and "32 hex" in p.stdout
    )

    def rows():
        got = accuracy(collector, by=["model", "run"], where=f"service = '{service}'", since="1h", until=None)
        return got if sum(r["count"] for r in got) == 4 else None

    got = wait_for(rows, timeout=20)
    assert got, accuracy(
        collector, by=["model", "run"], where=f"service = '{service}'", since="1h", until=None
    )
    by_model = {r["model"]: r for r in got}
    assert by_model["sdk-a"]["count"] == 2 and by_model["sdk-a"]["mean"] == pytest.approx(np.mean([0.5, 0.7]))
    assert by_model["sdk-b"]["count"] == 2  # its span's score and the trace-level label
    assert by_model["sdk-b"]["mean"] == pytest.approx(0.6) and by_model["sdk-b"]["labels"] == {"good": 1}
    assert {r["run"] for r in got} == {run_id}
    # The run-level score has no span: it counts for its run (without a --where on spans).
    runs = accuracy(collector, by=["run"], since="1h", until=None)
    run_row = [r for r in runs if r["run"] == run_id and r["evaluation"] == name]
    assert run_row and run_row[0]["count"] == 5
    assert run_row[0]["mean"] == pytest.approx(np.mean([0.5, 0.6, 0.7, 1.0]))
    other = [r for r in runs if r["run"] == other_run]
    assert [(r["evaluation"], r["count"], r["mean"]) for r in other] == [(name, 1, 0.0)]
    trace_ids = collector.sql(
        f"SELECT TraceId, SpanId FROM otel_scores WHERE Name = '{name}' AND Label = 'good'"
    )
    assert len(trace_ids) == 1 and len(trace_ids[0]["TraceId"]) == 32 and trace_ids[0]["SpanId"] == ""


def test_accuracy_trace_level_log_score_without_span_uses_first_llm_model(collector):
    service = unique("tracescore")
    name = unique("overall")
    trace_id = new_trace_id()
    root = make_span("agent", trace_id=trace_id, start_ns=BASE_NS)
    first = make_span(
        "chat",
        trace_id=trace_id,
        parent_span_id=root.span_id,
        start_ns=BASE_NS + 10,
        attributes=llm_attrs("first-model"),
    )
    second = make_span(
        "chat",
        trace_id=trace_id,
        parent_span_id=root.span_id,
        start_ns=BASE_NS + 20,
        attributes=llm_attrs("second-model"),
    )
    post_logs(
        collector,
        service,
        [
            {
                "trace_id": trace_id,
                "attrs": {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": 3},
            }
        ],
    )
    post_spans(collector, service, [root, first, second])
    rows = wait_for(lambda: accuracy(collector, by=["model", "span"], where=f"service = '{service}'"))
    assert [(r["model"], r["span"], r["count"], r["mean"]) for r in rows] == [
        ("first-model", "agent", 1, 3.0)
    ]
