"""Eval examples and annotations end to end: the SDK (a real OpenTelemetry TracerProvider, the
run transport) -> a real `tracehouse serve` -> the tables -> SQL, REST, the CLI; the regression
view's deltas checked against Decimal arithmetic; annotations from the SDK, the CLI and REST
(with the `annotate` scope); a run exported and imported again, in both snapshot formats."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import tracehouse
from helpers import run_cli, run_sdk_to, unique, wait_for
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tracehouse._context import ContextSpanProcessor
from tracehouse_collector.query.trace_shape import walk

pytestmark = pytest.mark.timeout(300)

DATASET = "capitals"
QUESTIONS = {"fr": "France", "de": "Germany", "it": "Italy", "es": "Spain"}
ANSWERS = {"fr": "Paris", "de": "Berlin", "it": "Rome", "es": "Madrid"}
# What each run answers and how it scores: the candidate gets "de" wrong (worse), "it" better
# on fluency, "es" is left out (missing), "fr" unchanged.
BASELINE = {
    "fr": ("Paris", {"exact": 1, "fluency": 0.9}),
    "de": ("Berlin", {"exact": 1, "fluency": 0.8}),
    "it": ("Rome", {"exact": 1, "fluency": 0.35}),
    "es": ("Madrid", {"exact": 1, "fluency": 0.7}),
}
CANDIDATE = {
    "fr": ("Paris", {"exact": 1, "fluency": 0.9}),
    "de": ("Bonn", {"exact": 0, "fluency": 0.85}),
    "it": ("Rome", {"exact": 1, "fluency": 0.65}),
}


def _tracer(collector, service: str):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(ContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces")))
    return provider, provider.get_tracer("tests.evals")


def _evaluate(collector, tmp_path, name: str, answers: dict) -> tuple[str, dict[str, list[str]]]:
    """One run over the dataset: each example's LLM call (a span) made inside its block.
    Returns the run id and each example's trace ids as the spans themselves say."""
    service = unique("evals")
    provider, tracer = _tracer(collector, service)
    made: dict[str, list[str]] = {}
    with (
        run_sdk_to(collector.http_url, tmp_path / f"spool-{name}"),
        tracehouse.run(experiment="capitals-eval", name=name) as run,
    ):
        for example_id, (answer, scores) in answers.items():
            with run.eval_example(DATASET, example_id, inputs={"country": QUESTIONS[example_id]},
                                  references={"capital": ANSWERS[example_id]}) as ex:  # fmt: skip
                with tracer.start_as_current_span("chat gpt-4o") as span:
                    span.set_attribute("gen_ai.operation.name", "chat")
                ids = [f"{span.get_span_context().trace_id:032x}"]
                if example_id == "de":  # a retry: a second trace for the same example
                    with tracer.start_as_current_span("chat gpt-4o retry") as retry:
                        pass
                    ids.append(f"{retry.get_span_context().trace_id:032x}")
                ex.record(outputs={"capital": answer}, scores=scores)
                made[example_id] = ids
        with tracer.start_as_current_span("outside any example") as outside:
            pass
        made["outside"] = [f"{outside.get_span_context().trace_id:032x}"]
    provider.shutdown()
    return run.id, made


@pytest.fixture(scope="module")
def two_runs(collector, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evals")
    base, base_traces = _evaluate(collector, tmp, "baseline", BASELINE)
    cand, cand_traces = _evaluate(collector, tmp, "candidate", CANDIDATE)
    landed = wait_for(
        lambda: collector.scalar(f"SELECT count() FROM run_evals WHERE RunId IN ('{base}', '{cand}')") == 7,
        timeout=30,
    )
    assert landed, "the eval examples did not arrive"
    return {"base": base, "cand": cand, "traces": {base: base_traces, cand: cand_traces}}


def test_examples_land_with_their_trace_links(collector, two_runs):
    base = two_runs["base"]
    rows = collector.sql(
        f"SELECT ExampleId, Inputs, Outputs, References, Scores FROM run_evals WHERE RunId = '{base}' ORDER BY ExampleId"
    )
    assert [r["ExampleId"] for r in rows] == sorted(BASELINE)
    for r in rows:
        answer, scores = BASELINE[r["ExampleId"]]
        assert json.loads(r["Inputs"]) == {"country": QUESTIONS[r["ExampleId"]]}
        assert json.loads(r["Outputs"]) == {"capital": answer}
        assert json.loads(r["References"]) == {"capital": ANSWERS[r["ExampleId"]]}
        assert r["Scores"] == {k: float(v) for k, v in scores.items()}
    links = collector.sql(f"SELECT ExampleId, TraceId FROM run_eval_traces WHERE RunId = '{base}'")
    linked: dict[str, set[str]] = {}
    for link in links:
        linked.setdefault(link["ExampleId"], set()).add(link["TraceId"])
    made = two_runs["traces"][base]
    assert linked == {k: set(v) for k, v in made.items() if k != "outside"}
    assert len(linked["de"]) == 2
    # The spans carry the example too, and the one made outside any example carries none.
    wait_for(lambda: len(collector.sql(f"SELECT 1 FROM otel_traces WHERE RunId = '{base}'")) == 6, timeout=20)
    spans = collector.sql(
        "SELECT TraceId, SpanAttributes['tracehouse.eval.example_id'] AS ex FROM otel_traces "
        f"WHERE RunId = '{base}'"
    )
    by_trace = {s["TraceId"]: s["ex"] for s in spans}
    for example_id, ids in made.items():
        for t in ids:
            assert by_trace[t] == ("" if example_id == "outside" else example_id)


def test_rest_and_cli_list_a_runs_examples(collector, two_runs):
    base = two_runs["base"]
    examples = collector.session.get(f"{collector.http_url}/api/v1/runs/{base[:10]}/evals", timeout=30).json()
    assert [e["example_id"] for e in examples] == sorted(BASELINE)
    for e in examples:
        answer, scores = BASELINE[e["example_id"]]
        assert e["outputs"] == {"capital": answer} and e["scores"] == {k: float(v) for k, v in scores.items()}
        assert e["trace_ids"] == sorted(two_runs["traces"][base][e["example_id"]])
    out = run_cli("runs", "evals", base, "--server", collector.http_url, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == examples
    csv = run_cli("runs", "evals", base, "--server", collector.http_url, "--format", "csv")
    header, *lines = csv.stdout.strip().splitlines()
    assert header == "dataset,example_id,inputs,outputs,references,exact,fluency,annotations,traces"
    assert len(lines) == 4 and lines[2].startswith('capitals,fr,"{""country"":""France""}"')


def test_paging_through_a_runs_examples(collector, two_runs):
    base = two_runs["base"]
    url = f"{collector.http_url}/api/v1/runs/{base}/evals"
    whole = collector.session.get(url, timeout=30).json()
    in_sql = [(r["Dataset"], r["ExampleId"]) for r in collector.sql(
        f"SELECT DISTINCT Dataset, ExampleId FROM run_evals WHERE RunId = '{base}' ORDER BY Dataset, ExampleId")]  # fmt: skip
    for limit in (1, 3, 4, 5):
        pages, cursor = [], None
        while True:
            page = collector.session.get(url, params={"limit": limit, **({"cursor": cursor} if cursor else {})},
                                         timeout=30).json()  # fmt: skip
            pages.append(page["examples"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert all(len(p) == limit for p in pages[:-1]) and 0 < len(pages[-1]) <= limit
        assert [e for p in pages for e in p] == whole
        assert [(e["dataset"], e["example_id"]) for p in pages for e in p] == in_sql
    for bad in ("nonsense!", "WyJhIl0", ""):  # not base64 JSON; a one-element key; (empty: the first page)
        answer = collector.session.get(url, params={"limit": 2, "cursor": bad}, timeout=30)
        if bad:
            assert answer.status_code == 400 and "cursor" in answer.json()["error"], answer.text
    assert collector.session.get(url, params={"limit": 0}, timeout=30).status_code == 400
    # The CLI: --limit, and the cursor it prints for the next page.
    first = run_cli("runs", "evals", base, "--limit", "3", "--server", collector.http_url, "--format", "json")
    assert first.returncode == 0, first.stderr
    cursor = first.stderr.split("more: add --cursor ")[1].strip()
    rest = run_cli("runs", "evals", base, "--limit", "3", "--cursor", cursor, "--server", collector.http_url,
                   "--format", "json")  # fmt: skip
    assert "more:" not in rest.stderr
    assert json.loads(first.stdout) + json.loads(rest.stdout) == whole
    bad = run_cli("runs", "evals", base, "--cursor", "nonsense!", "--server", collector.http_url)
    assert bad.returncode == 1 and "bad cursor" in bad.stderr


def _expected_comparison() -> dict[str, tuple[str, dict[str, Decimal]]]:
    """(change, deltas) per example, computed with Decimal from the literals above."""
    out = {}
    for example_id, (_, base) in BASELINE.items():
        if example_id not in CANDIDATE:
            out[example_id] = ("missing", {})
            continue
        cand = CANDIDATE[example_id][1]
        deltas = {n: Decimal(str(cand[n])) - Decimal(str(base[n])) for n in base}
        change = "worse" if any(d < 0 for d in deltas.values()) else (
            "better" if any(d > 0 for d in deltas.values()) else "same")  # fmt: skip
        out[example_id] = (change, deltas)
    return out


def test_regression_view_deltas_and_filters(collector, two_runs):
    base, cand = two_runs["base"], two_runs["cand"]
    expected = _expected_comparison()
    answer = collector.session.get(
        f"{collector.http_url}/api/v1/evals/compare", params={"ids": f"{base},{cand}"}, timeout=30
    ).json()
    assert answer["runs"] == [base, cand] and answer["scores"] == ["exact", "fluency"]
    got = {e["example_id"]: e for e in answer["examples"]}
    assert set(got) == set(expected)
    for example_id, (change, deltas) in expected.items():
        e = got[example_id]
        assert e["changes"] == [change], example_id
        assert set(e["deltas"][0]) == set(deltas)
        for n, d in deltas.items():  # the double's noise rounded away: 0.85 - 0.8 reads 0.05
            assert Decimal(str(e["deltas"][0][n])) == d, (example_id, n)
        assert e["runs"][0]["outputs"] == {"capital": BASELINE[example_id][0]}
        assert (e["runs"][1] is None) == (example_id not in CANDIDATE)
    counts = answer["summary"][1]["changes"]
    assert counts == {c: sum(1 for ch, _ in expected.values() if ch == c) for c in ("worse", "better", "same", "missing")}
    means = answer["summary"][1]["mean_scores"]
    assert Decimal(str(means["fluency"])).quantize(Decimal("1e-12")) == (
        sum(Decimal(str(s["fluency"])) for _, s in CANDIDATE.values()) / 3).quantize(Decimal("1e-12"))  # fmt: skip

    worse = collector.session.get(
        f"{collector.http_url}/api/v1/evals/compare", params={"ids": f"{base},{cand}", "change": "worse"}, timeout=30
    ).json()
    assert [e["example_id"] for e in worse["examples"]] == ["de"]
    # Judged by fluency alone, "de" got better.
    by_fluency = collector.session.get(
        f"{collector.http_url}/api/v1/evals/compare",
        params={"ids": f"{base},{cand}", "change": "better", "score": "fluency"},
        timeout=30,
    ).json()
    assert [e["example_id"] for e in by_fluency["examples"]] == ["de", "it"]

    out = run_cli("runs", "compare", "--evals", base, cand, "--change", "worse", "--server", collector.http_url,
                  "--format", "csv")  # fmt: skip
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.strip().splitlines()
    b8, c8 = base[:8], cand[:8]
    assert header.split(",") == ["dataset", "example_id", f"exact@{b8}", f"exact@{c8}", f"delta_exact@{c8}",
                                 f"fluency@{b8}", f"fluency@{c8}", f"delta_fluency@{c8}", f"change@{c8}"]  # fmt: skip
    values = row.split(",")
    assert values[:2] == ["capitals", "de"] and values[-1] == "worse"
    assert Decimal(values[4]) == expected["de"][1]["exact"]
    assert Decimal(values[7]) == expected["de"][1]["fluency"] == Decimal("0.05")
    assert f"{c8} against {b8}: 1 worse, 1 better, 1 same, 1 missing" in out.stderr


def test_annotations_from_sdk_cli_and_rest_join_the_aggregates(collector, two_runs):
    base = two_runs["base"]
    trace = two_runs["traces"][base]["fr"][0]
    span_id = collector.sql(f"SELECT SpanId FROM otel_traces WHERE TraceId = '{trace}'")[0]["SpanId"]
    name = unique("helpful").replace("-", "_")
    first = tracehouse.annotate(name, True, trace_id=trace, span_id=span_id, user="ana", rationale="cites it",
                                server=collector.http_url)  # fmt: skip
    out = run_cli("annotate", name, "0.25", "--trace", trace, "--user", "bo", "--server", collector.http_url,
                  "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (second,) = json.loads(out.stdout)
    assert second["target"] == "trace" and second["value"] == 0.25 and second["value_type"] == "number"
    third = collector.session.post(
        f"{collector.http_url}/api/v1/annotations",
        json={"run_id": base, "dataset": DATASET, "example_id": "it", "name": "ideal", "kind": "expectation",
              "value": "Roma", "user": "cy"},  # fmt: skip
        timeout=30,
    )
    assert third.status_code == 201, third.text
    bad = collector.session.post(
        f"{collector.http_url}/api/v1/annotations", json={"name": "x", "value": 1}, timeout=30
    )
    assert bad.status_code == 400 and "target" in bad.json()["error"]

    on_trace = collector.session.get(
        f"{collector.http_url}/api/v1/annotations", params={"trace_id": trace}, timeout=30
    ).json()
    assert [(a["id"], a["target"], a["value"], a["user"]) for a in on_trace] == [
        (first, "span", True, "ana"), (second["id"], "trace", 0.25, "bo")]  # fmt: skip
    assert on_trace[0]["rationale"] == "cites it" and on_trace[0]["span_id"] == span_id
    # Shown where the annotated thing is shown: the trace answer (the span's on its span) and
    # `traces show`, as the annotations listing gives them.
    shown = collector.session.get(f"{collector.http_url}/api/v1/traces/{trace}", timeout=30).json()
    assert shown["annotations"] == [on_trace[1]]
    on_spans = {s["span_id"]: s["annotations"] for _, s in walk(shown["spans"]) if s["annotations"]}
    assert on_spans == {span_id: [on_trace[0]]}
    cli = run_cli("traces", "show", trace, "--server", collector.http_url, "--format", "json")
    assert json.loads(cli.stdout)["annotations"] == [on_trace[1]]
    tree = run_cli("traces", "show", trace, "--server", collector.http_url).stdout
    assert f"annotation feedback {name}=0.25 by bo at {on_trace[1]['time']}" in tree
    assert f"annotation feedback {name}=true by ana at {on_trace[0]['time']}: cites it" in tree
    import grpc
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2 as pb
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2_grpc

    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        got = query_pb2_grpc.QueryStub(channel).GetTrace(pb.GetTraceRequest(trace_id=trace), timeout=30)
    assert json.loads(got.annotations_json) == [on_trace[1]]
    spans = list(got.spans)
    for s in spans:
        spans.extend(s.children)
    assert {s.span_id: json.loads(s.annotations_json) for s in spans if s.annotations_json != "[]"} == {
        span_id: [on_trace[0]]}  # fmt: skip
    examples = collector.session.get(f"{collector.http_url}/api/v1/runs/{base}/evals", timeout=30).json()
    (it,) = [e for e in examples if e["example_id"] == "it"]
    assert [(a["name"], a["kind"], a["value"]) for a in it["annotations"]] == [("ideal", "expectation", "Roma")]
    table = run_cli("runs", "evals", base, "--server", collector.http_url, "--format", "csv")
    (it_line,) = [line for line in table.stdout.splitlines() if line.startswith("capitals,it,")]
    assert "expectation ideal=Roma" in it_line

    # Feedback with a value is a score: the accuracy aggregate averages it with the others.
    rows = collector.session.post(
        f"{collector.http_url}/api/v1/query/accuracy", json={"by": ["run"], "since": "1d"}, timeout=30
    ).json()
    got = [dict(zip(rows["columns"], r, strict=True)) for r in rows["rows"]]
    (mine,) = [r for r in got if r["evaluation"] == name]
    assert mine["count"] == 2 and mine["run"] == base
    assert Decimal(str(mine["mean"])) == (Decimal(1) + Decimal("0.25")) / 2
    assert collector.scalar(f"SELECT count() FROM otel_scores WHERE Name = '{name}' AND Source = 'annotation'") == 2


@pytest.mark.parametrize("form", ["tracehouse", "luml"])
def test_export_and_import_keep_evals_and_annotations(collector, two_runs, tmp_path, form):
    base = two_runs["base"]
    note = f"exported_{form}"
    tracehouse.annotate(note, 3, run_id=base, dataset=DATASET, example_id="de", user="dee",
                        server=collector.http_url)  # fmt: skip
    original = collector.session.get(f"{collector.http_url}/api/v1/runs/{base}/evals/export", timeout=30).json()
    assert len(original["evals"]) == 4 and any(a["name"] == note for a in original["annotations"])
    out_file = tmp_path / ("run.zip" if form == "tracehouse" else "run.tar")
    exported = run_cli("runs", "export", base, "-o", str(out_file), "--format", form, "--server", collector.http_url)
    assert exported.returncode == 0, exported.stderr
    store = f"chdb://{tmp_path / 'store'}"
    imported = run_cli("import", str(out_file), "--store", store, "--data-dir", str(tmp_path / "data"))
    assert imported.returncode == 0, imported.stderr
    again = run_cli("runs", "evals", base, "--store", store, "--data-dir", str(tmp_path / "data"), "--format", "json")
    assert again.returncode == 0, again.stderr
    listed = {e["example_id"]: e for e in json.loads(again.stdout)}
    for e in original["evals"]:
        mine = listed[e["example_id"]]
        assert (mine["inputs"], mine["outputs"], mine["references"], mine["scores"]) == (
            e["inputs"], e["outputs"], e["references"], e["scores"])  # fmt: skip
        assert mine["trace_ids"] == sorted(link["trace_id"] for link in e["traces"])
    (de,) = [e for e in listed.values() if e["example_id"] == "de"]
    assert [(a["name"], a["value"], a["user"]) for a in de["annotations"] if a["name"] == note] == [
        (note, 3, "dee")]  # fmt: skip
    # Every annotation of the run came along (those on its traces too), each as it was.
    store_side = run_cli("sql", "SELECT AnnotationId, Target, TraceId, SpanId, Name, Kind, ValueType, Value, User, "
                         "Rationale, toUnixTimestamp64Nano(Timestamp) AS ns FROM annotations ORDER BY AnnotationId",
                         "--store", store, "--data-dir", str(tmp_path / "data"), "--format", "json")  # fmt: skip
    assert store_side.returncode == 0, store_side.stderr
    rows = json.loads(store_side.stdout)
    assert [(r["AnnotationId"], r["Target"], r["TraceId"], r["SpanId"], r["Name"], r["Value"], r["User"],
             r["Rationale"], int(r["ns"])) for r in rows] == sorted(
        (a["id"], a["target"], a["trace_id"], a["span_id"], a["name"], a["value"], a["user"], a["rationale"],
         a["time_unix_nano"]) for a in original["annotations"])  # fmt: skip


def test_annotating_needs_the_annotate_scope(start_collector, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("reader-key-0123456789 read\nannotator-key-0123456789 read,annotate\n")
    c = start_collector(env={"TRACEHOUSE_API_KEYS_FILE": str(keys)}, name="annotate-scope")
    body = {"trace_id": "ab" * 16, "name": "ok", "value": True}
    url = c.http_url + "/api/v1/annotations"
    refused = requests.post(url, json=body, headers={"Authorization": "Bearer reader-key-0123456789"}, timeout=30)
    assert refused.status_code == 403 and "annotate" in refused.json()["error"]
    added = requests.post(url, json=body, headers={"Authorization": "Bearer annotator-key-0123456789"}, timeout=30)
    assert added.status_code == 201, added.text
    listed = requests.get(url, params={"trace_id": "ab" * 16}, timeout=30,
                          headers={"Authorization": "Bearer reader-key-0123456789"}).json()  # fmt: skip
    assert [a["id"] for a in listed] == [added.json()["id"]]


def test_grpc_lists_and_compares_evals(collector, two_runs):
    import grpc
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2 as pb
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2_grpc

    base, cand = two_runs["base"], two_runs["cand"]
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        table = stub.ListEvals(pb.ListEvalsRequest(run_id=base[:8]), timeout=30)
        columns = [c.name for c in table.columns]
        rows = [dict(zip(columns, r.values, strict=True)) for r in table.rows]
        assert [r["example_id"].string_value for r in rows] == sorted(BASELINE)
        for r in rows:
            answer, scores = BASELINE[r["example_id"].string_value]
            assert json.loads(r["outputs"].json_value) == {"capital": answer}
            assert json.loads(r["scores"].json_value) == {k: float(v) for k, v in scores.items()}
            assert sorted(json.loads(r["trace_ids"].json_value)) == sorted(
                two_runs["traces"][base][r["example_id"].string_value])  # fmt: skip

        compared = stub.CompareEvals(pb.CompareEvalsRequest(run_ids=[base, cand], change="worse"), timeout=30)
        columns = [c.name for c in compared.columns]
        (row,) = [dict(zip(columns, r.values, strict=True)) for r in compared.rows]
        assert row["example_id"].string_value == "de" and row[f"change@{cand[:8]}"].string_value == "worse"
        assert Decimal(repr(row[f"delta_fluency@{cand[:8]}"].double_value)) == Decimal("0.05")

        with pytest.raises(grpc.RpcError) as err:
            stub.ListEvals(pb.ListEvalsRequest(run_id="0123456789abcdef0123456789abcdef"), timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        trace = two_runs["traces"][base]["fr"][0]
        notes = stub.ListAnnotations(pb.ListAnnotationsRequest(trace_id=trace), timeout=30)
        expected = collector.session.get(
            f"{collector.http_url}/api/v1/annotations", params={"trace_id": trace}, timeout=30
        ).json()
        ids = [c.name for c in notes.columns].index("id")
        assert [r.values[ids].string_value for r in notes.rows] == [a["id"] for a in expected]


def test_client_reads_evals_into_dataframes(collector, two_runs):
    base, cand = two_runs["base"], two_runs["cand"]
    client = tracehouse.Client(collector.http_url)
    frame = client.evals(base)
    assert list(frame["example_id"]) == sorted(BASELINE)
    assert [o for o in frame["outputs"]] == [{"capital": BASELINE[k][0]} for k in sorted(BASELINE)]
    assert list(frame["scores.fluency"]) == [BASELINE[k][1]["fluency"] for k in sorted(BASELINE)]
    assert [sorted(t) for t in frame["trace_ids"]] == [sorted(two_runs["traces"][base][k]) for k in sorted(BASELINE)]
    assert str(frame["created"].dtype) == "datetime64[us, UTC]"

    table = client.compare_evals([base, cand], as_="arrow")
    expected = _expected_comparison()
    c8 = cand[:8]
    rows = table.to_pylist()
    assert [r["example_id"] for r in rows] == sorted(expected)
    for r in rows:
        change, deltas = expected[r["example_id"]]
        assert r[f"change@{c8}"] == change
        for name, d in deltas.items():
            assert Decimal(repr(r[f"delta_{name}@{c8}"])) == d


def test_annotate_a_store_directly(tmp_path):
    """Without a server, `tracehouse annotate --store` writes the store itself (as `import` does)."""
    store = ["--store", f"chdb://{tmp_path / 'store'}", "--data-dir", str(tmp_path / "data")]
    trace = "0af7651916cd43dd8448eb211c80319c"
    out = run_cli("annotate", "correct", "false", "--trace", trace, "--span", "b7ad6b7169203331", "--user", "ana",
                  "--rationale", "wrong city", *store, "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (added,) = json.loads(out.stdout)
    assert (added["target"], added["value"], added["value_type"], added["source"]) == ("span", False, "bool", "cli")
    bad = run_cli("annotate", "correct", "maybe", "--type", "bool", "--trace", trace, *store)
    assert bad.returncode == 1 and "true or false" in bad.stderr
    rows = run_cli("sql", "SELECT Name, Value, NumberValue, User, Rationale FROM annotations", *store, "--format", "json")
    assert json.loads(rows.stdout) == [
        {"Name": "correct", "Value": "false", "NumberValue": 0, "User": "ana", "Rationale": "wrong city"}]  # fmt: skip
    scores = run_cli("sql", "SELECT Name, Value, Source FROM otel_scores", *store, "--format", "json")
    assert json.loads(scores.stdout) == [{"Name": "correct", "Value": 0, "Source": "annotation"}]
