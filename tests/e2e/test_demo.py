"""`tracehouse demo`: a real collector filled by the demo through OTLP, checked with SQL and the CLI."""

from __future__ import annotations

import json
import re

import pytest
from helpers import free_port, run_cli, wait_for
from tracehouse_collector.demo.fake_openai import MODELS


def test_summary_names_the_ui_and_commands(demo_collector):
    out = demo_collector.demo_output
    assert f"{demo_collector.http_url}/" in out
    assert f"tracehouse query latency --by model --server {demo_collector.http_url}" in out
    assert "4 sessions" in out and "1 failed on purpose" in out


def test_llm_spans_cover_three_models_and_the_past_days(demo_collector):
    rows = demo_collector.sql(
        "SELECT GenAIRequestModel AS model, count() AS n, sum(InputTokens) AS tokens, "
        "dateDiff('hour', min(Timestamp), max(Timestamp)) AS span_hours "
        "FROM otel_traces WHERE GenAIOperation = 'chat' GROUP BY model ORDER BY model"
    )
    assert [r["model"] for r in rows] == ["gpt-4o", "gpt-4o-mini", "o3-mini"]
    assert all(r["n"] >= 10 and r["tokens"] > 0 for r in rows)
    assert max(r["span_hours"] for r in rows) >= 24 * 5  # backdated history, not only "now"


def test_live_agent_spans_streaming_tool_error_sessions(demo_collector):
    c = demo_collector
    live = "ServiceName = 'demo-support-bot' AND Timestamp > now() - INTERVAL 1 HOUR"
    # Streaming through the real openai client: the instrumentor measured the first chunk.
    ttfc = c.scalar(
        f"SELECT count() FROM otel_traces WHERE {live} "
        "AND toFloat64OrZero(SpanAttributes['gen_ai.response.time_to_first_chunk']) > 0"
    )
    assert ttfc >= 2
    assert (
        c.scalar(
            f"SELECT count() FROM otel_traces WHERE {live} AND SpanAttributes['gen_ai.tool.name'] = 'get_weather'"
        )
        >= 2
    )
    assert c.scalar(f"SELECT count() FROM otel_traces WHERE {live} AND SpanName = 'retrieval support-docs'") == 9
    # The simulated outage: the chat span and its agent span both failed.
    failed = c.sql(
        f"SELECT SpanName, GenAIOperation FROM otel_traces WHERE {live} AND StatusCode = 'Error' ORDER BY SpanName"
    )
    assert {r["GenAIOperation"] for r in failed} == {"chat", "invoke_agent"}
    sessions = c.sql(
        f"SELECT SessionId, any(UserId) AS user FROM otel_traces WHERE {live} AND SessionId != '' GROUP BY SessionId"
    )
    assert {r["SessionId"] for r in sessions} == {
        "sess-onboarding",
        "sess-orders",
        "sess-travel",
        "sess-support",
    }
    assert all(r["user"].startswith("user-") for r in sessions)


def test_scores_attach_to_llm_calls_and_agent_spans(demo_collector):
    c = demo_collector
    # 9 agent turns (1 failed) score relevance and helpfulness; 2 eval runs x 8 examples, accuracy.
    # Relevance and accuracy judge LLM calls (the answer; the labelling call), helpfulness the
    # agent turn: the span each score names is of that operation.
    rows = c.sql(
        "SELECT s.Name AS name, t.GenAIOperation AS operation, count() AS n FROM otel_scores AS s "
        "LEFT JOIN otel_traces AS t ON s.TraceId = t.TraceId AND s.SpanId = t.SpanId "
        "GROUP BY name, operation ORDER BY name, operation"
    )
    # A reviewer's `human_review` feedback on each wrong label is a score of that LLM call too.
    wrong = c.scalar("SELECT count() FROM run_evals FINAL WHERE Scores['exact_match'] = 0")
    assert wrong > 0
    assert [(r["name"], r["operation"], r["n"]) for r in rows] == [
        ("accuracy", "chat", 16), ("helpfulness", "invoke_agent", 8), ("human_review", "chat", wrong),
        ("relevance", "chat", 8),
    ]  # fmt: skip
    # The relevance score is on the agent turn's last call: the answer, a child of the agent span.
    answers = c.sql(
        "SELECT count() AS n FROM otel_scores AS s JOIN otel_traces AS t "
        "ON s.TraceId = t.TraceId AND s.SpanId = t.SpanId WHERE s.Name = 'relevance' AND t.ParentSpanId IN "
        "(SELECT SpanId FROM otel_traces WHERE GenAIOperation = 'invoke_agent')"
    )
    assert answers == [{"n": 8}]


def test_accuracy_by_model_and_score_filter_find_llm_calls(demo_collector):
    """`query accuracy --by model` has a model on every numeric score, and a score filter finds
    the LLM calls it judged, with the same counts as the scores table."""
    c = demo_collector
    p = run_cli("query", "accuracy", "--by", "model", "--since", "7d", "--server", c.http_url, "--format", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    by = {(r["model"], r["evaluation"]): r["count"] for r in rows}
    expected = c.sql(
        "SELECT replaceRegexpOne(if(t.GenAIResponseModel != '', t.GenAIResponseModel, t.GenAIRequestModel), "
        "'[-@]([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8})\\z', '') AS model, s.Name AS name, count() AS n "
        "FROM otel_scores AS s JOIN otel_traces AS t ON s.TraceId = t.TraceId AND s.SpanId = t.SpanId "
        "WHERE s.Name IN ('accuracy', 'relevance') GROUP BY model, name"
    )
    assert {(r["model"], r["name"]): r["n"] for r in expected} == {
        k: v for k, v in by.items() if k[1] in ("accuracy", "relevance")
    }
    assert {m for m, name in by if name in ("accuracy", "relevance")} == set(MODELS)
    # Helpfulness rates the agent turn, an application span: no model, and no other score.
    assert {name for m, name in by if m == ""} == {"helpfulness"}
    low = c.scalar("SELECT count() FROM otel_scores WHERE Name = 'relevance' AND Value < 0.7")
    assert low > 0
    p = run_cli(
        "traces", "list", "--since", "7d", "--where", "score.relevance < 0.7 AND operation = 'chat'",
        "--server", c.http_url, "--format", "json", "--limit", "1000",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)) == low  # one trace per scored answer


def test_prompt_eval_runs_carry_their_llm_usage(demo_collector):
    """The two evaluation runs' LLM calls roll up per run (REST compare), matching the spans."""
    c = demo_collector
    runs = {
        r["name"]: r for r in c.session.get(c.http_url + "/api/v1/runs?experiment=demo-prompt-eval").json()
    }
    assert sorted(runs) == ["prompt-v1-gpt-4o-mini", "prompt-v2-gpt-4o"]
    ids = [runs["prompt-v1-gpt-4o-mini"]["id"], runs["prompt-v2-gpt-4o"]["id"]]
    compared = c.session.get(c.http_url + "/api/v1/runs/compare", params={"ids": ",".join(ids)}).json()
    for run_id in ids:
        llm = compared["llm"][run_id]
        spans = c.sql(
            "SELECT count() AS n, sum(TotalTokens) AS tokens, sum(TotalCostUSD) AS cost FROM otel_traces "
            f"WHERE RunId = '{run_id}' AND GenAIOperation = 'chat'"
        )[0]
        assert llm["calls"] == spans["n"] == 8
        assert llm["total_tokens"] == spans["tokens"] > 0
        assert llm["cost_usd"] == pytest.approx(float(spans["cost"])) and llm["cost_usd"] > 0
        # The score mean is the run's own accuracy metric, computed by the demo from the answers.
        metric = c.scalar(
            f"SELECT argMax(Value, Step) FROM run_metrics WHERE RunId = '{run_id}' AND Key = 'accuracy'"
        )
        assert llm["accuracy"] == pytest.approx(metric)
        assert runs[[n for n in runs if runs[n]["id"] == run_id][0]]["llm"] == llm
    shown = run_cli("runs", "show", ids[1], "--server", c.http_url)
    assert shown.returncode == 0, shown.stderr
    assert "llm.calls" in shown.stdout and "llm.score.accuracy" in shown.stdout
    rows = {(r[0], r[1]): r[2:] for r in compared["rows"]}
    assert rows[("llm", "calls")][:2] == [8, 8]
    assert compared["llm"][ids[1]]["cost_usd"] > compared["llm"][ids[0]]["cost_usd"]  # gpt-4o costs more


def test_runs_metrics_artifacts_and_model(demo_collector):
    c = demo_collector
    runs = c.sql("SELECT RunId, Status FROM runs FINAL WHERE Experiment = 'demo-classifier'")
    assert len(runs) == 4 and {r["Status"] for r in runs} == {"finished"}
    assert c.scalar("SELECT count() FROM runs FINAL WHERE Experiment = 'demo-prompt-eval'") == 2
    steps = c.scalar("SELECT max(Step) FROM run_metrics WHERE Key = 'train/loss'")
    assert steps == 299
    # The synthetic loss goes down.
    first, last = c.sql(
        "SELECT avgIf(Value, Step < 20) AS first, avgIf(Value, Step >= 280) AS last FROM run_metrics WHERE Key = 'train/loss'"
    )[0].values()
    assert last < first / 3
    assert c.scalar("SELECT count() FROM run_artifacts WHERE Name = 'validation_curve.csv'") == 3
    assert c.scalar("SELECT count() FROM models WHERE Name = 'demo-classifier'") == 1


def test_eval_examples_link_their_calls_and_wrong_labels_are_annotated(demo_collector):
    """Each labelling call is an eval example of its run, linked to the call's trace, with the
    accuracy score of that call as its exact_match; each wrong label carries the reviewer's
    feedback (on the call) and expectation (on the example)."""
    c = demo_collector
    examples = c.sql(
        "SELECT e.RunId AS run, e.ExampleId AS example, JSONExtractString(e.Outputs, 'label') AS label, "
        "JSONExtractString(e.References, 'label') AS truth, e.Scores['exact_match'] AS exact, l.TraceId AS trace "
        "FROM run_evals AS e FINAL JOIN run_eval_traces AS l FINAL USING (RunId, Dataset, ExampleId) "
        "WHERE e.Dataset = 'review-sentiment' ORDER BY run, example"
    )
    assert len(examples) == 16 and len({e["trace"] for e in examples}) == 16
    scores = {
        r["trace"]: r["value"]
        for r in c.sql("SELECT TraceId AS trace, Value AS value FROM otel_scores WHERE Name = 'accuracy'")
    }
    for e in examples:
        assert e["exact"] == (1.0 if e["label"] == e["truth"] else 0.0) == scores[e["trace"]]
    notes = c.sql("SELECT Target, Name, Kind, Value, TraceId, ExampleId FROM annotations FINAL ORDER BY Name")
    wrong = [e for e in examples if e["exact"] == 0]
    assert sorted((n["Target"], n["TraceId"]) for n in notes if n["Name"] == "human_review") == sorted(
        ("span", e["trace"]) for e in wrong)  # fmt: skip
    assert sorted((n["ExampleId"], n["Value"]) for n in notes if n["Name"] == "expected_label") == sorted(
        (e["example"], e["truth"]) for e in wrong)  # fmt: skip
    assert f"{len(examples)} eval examples linked to their traces, {2 * len(wrong)} annotations" in c.demo_output
    shown = re.search(r"tracehouse runs compare --evals (\w+) (\w+) --server", c.demo_output)
    assert shown and {shown.group(1), shown.group(2)} == {e["run"] for e in examples}


@pytest.mark.parametrize(
    "command",
    [("query", "latency", "--by", "model"), ("traces", "list"), ("runs", "list")],
    ids=["latency-by-model", "traces-list", "runs-list"],
)
def test_read_commands_show_the_demo(demo_collector, command):
    result = run_cli(*command, "--server", demo_collector.http_url, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) >= 3


def test_banner_hint_only_on_an_empty_store(demo_collector):
    demo_collector.stop()
    demo_collector.start()
    assert "tracehouse demo" not in demo_collector.log_text()


def test_no_collector_is_a_clear_error():
    result = run_cli("demo", "--server", f"http://127.0.0.1:{free_port()}", timeout=30)
    assert result.returncode == 1
    assert "no Tracehouse collector answers" in result.stderr and "Traceback" not in result.stderr


def test_without_openai_sends_the_history_only(start_collector, tmp_path):
    hidden = tmp_path / "hide" / "openai"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('openai is hidden for this test')\n")
    c = start_collector(name="demo-no-openai")
    result = run_cli(
        "demo",
        "--server",
        c.http_url,
        "--seed",
        "2",
        "--days",
        "2",
        env={"PYTHONPATH": str(tmp_path / "hide")},
    )
    assert result.returncode == 0, result.stderr
    assert "openai is not installed" in result.stdout
    assert wait_for(lambda: c.scalar("SELECT count() FROM models") >= 1, timeout=20)
    assert c.scalar("SELECT count() FROM otel_traces WHERE GenAIOperation = 'chat'") >= 20
    # No live agent: nothing from the last hour came from the openai instrumentor.
    assert c.scalar("SELECT count() FROM otel_traces WHERE ScopeName LIKE 'tracehouse.instrumentors.%'") == 0
    assert c.scalar("SELECT count() FROM otel_scores") == 0


def test_history_is_deterministic_per_seed():
    import random

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from tracehouse_collector.demo import llm_app
    from tracehouse_collector.demo.summary import Summary

    def history(seed: int) -> list:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        llm_app.history(provider, random.Random(seed), 3, Summary())
        return [
            (s.name, dict(s.attributes), s.end_time - s.start_time) for s in exporter.get_finished_spans()
        ]

    first = history(5)
    assert len(first) >= 2 * 3 * 12
    assert history(5) == first
    assert history(6) != first


def _where_help_examples() -> dict[str, str]:
    """The `--where` example in each command's help text ("e.g. \"…\""), by command."""
    import argparse
    import re

    from tracehouse_collector.cli.app import build_parser

    found: dict[str, str] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif "--where" in action.option_strings:
                example = re.search(r'e\.g\. "(.+?)"(?: \(|$)', action.help or "")
                assert example, f"{' '.join(path)} --where help has no example: {action.help!r}"
                found[" ".join(path)] = example.group(1)

    walk(build_parser(), [])
    return found


def test_the_where_help_examples_find_rows_on_the_demo(demo_collector):
    """Each command's `--where` help example is a filter that works as written (e.g. `model =
    'gpt-4o'` is the model identity, which the demo's dated `gpt-4o-2025-01-01` calls have)."""
    examples = _where_help_examples()
    assert {"query latency", "query cost", "traces list", "runs list"} <= set(examples), examples
    for command, where in examples.items():
        window = ["--since", "7d"] if command.split()[0] in ("query", "traces") else []
        p = run_cli(
            *command.split(), *window, "--where", where, "--server", demo_collector.http_url, "--format", "json"
        )
        assert p.returncode == 0, (command, where, p.stderr)
        rows = json.loads(p.stdout)
        rows = rows if isinstance(rows, list) else rows["rows"]
        assert [r for r in rows if r.get("count", 1)], (command, where, p.stdout)
