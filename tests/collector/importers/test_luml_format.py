"""LUML's files read in process: both forms of one experiment (the standalone export and the
`.luml` with the embedded snapshot) give one run, with every param, metric point, attachment
byte, span and evaluation row LUML wrote. The fixtures are built from LUML's documented layout
(support/luml_files.py); expected values are read back from the SQLite file independently."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import luml_files as lf
import pytest
from tracehouse_collector.importers import load, luml
from tracehouse_collector.processors import pipeline


@pytest.fixture
def both_forms(tmp_path: Path) -> dict:
    db = lf.write_exp_db(tmp_path / "exp.db")
    experiment_id = str(uuid.uuid4())
    export = lf.experiment_export(tmp_path / "experiment.tar", lf.zip_db(db), experiment_id)
    # The same database zipped again (other bytes), as LUML's link_to_model does.
    model = lf.model_with_snapshot(tmp_path / "churn.luml", lf.zip_db(db))
    (from_export,) = luml.read_luml_experiment(export)
    (from_model,) = luml.read_luml_model(model)
    return {"db": db, "id": experiment_id, "export": from_export, "model": from_model}


def _sqlite(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_both_forms_are_one_run(both_forms):
    export, model = both_forms["export"], both_forms["model"]
    assert export["run"]["id"] == model["run"]["id"]
    assert len(export["run"]["id"]) == 32
    assert export["run"]["experiment"] == model["run"]["experiment"] == "luml"
    assert export["params"] == model["params"]
    assert export["metrics"] == model["metrics"]
    assert export["spans"] == model["spans"]
    assert [a["digest"] for a in export["artifacts"]] == [a["digest"] for a in model["artifacts"][:-1]]
    # The export names the experiment, its group and LUML's id; the `.luml` form knows none of
    # them and yields to the export: a lower record version, whichever is loaded first.
    assert export["run"]["name"] == "baseline-lr"
    tags = export["run"]["tags"]
    assert tags["luml.group"] == "tabular" and tags["luml.experiment_id"] == both_forms["id"]
    export_version = load.snapshot_records(export)[0][0][4]
    model_version = load.snapshot_records(model)[0][0][4]
    assert model_version < export_version


def test_params_keep_their_types_and_every_metric_point(both_forms):
    run = both_forms["export"]
    assert run["params"] == {"learning_rate": 0.01, "epochs": 3, "use_bn": True, "optimizer": "adam",
                             "layers": [64, 32]}  # fmt: skip
    expected = _sqlite(both_forms["db"], "SELECT key, step, value FROM dynamic_metrics ORDER BY key, step")
    assert [(p["key"], p["step"], p["value"]) for p in run["metrics"]] == expected
    assert expected[-1] == ("loss", 2, 0.45)  # the re-logged step, as LUML keeps it


def test_durations_at_the_precision_luml_wrote(both_forms, tmp_path):
    run = both_forms["export"]["run"]
    # Metrics and evals are stamped in whole seconds (10:00:00 .. 10:00:09); the spans' own
    # nanoseconds lie inside that window: the run spans exactly 9 s and says "1s".
    assert run["start_unix_nano"] == lf.T0 and run["end_unix_nano"] == lf.T0 + 9_000_000_000
    assert run["metadata"]["luml.time_resolution"] == "1s"

    # Spans alone: nanosecond bounds, nothing rounded or invented.
    db = tmp_path / "spans-only.db"
    lf.write_exp_db(db)
    conn = sqlite3.connect(db)
    for table in ("dynamic_metrics", "attachments", "evals", "eval_traces_bridge", "eval_annotations",
                  "span_annotations"):  # fmt: skip
        conn.execute(f"DELETE FROM {table}")
    conn.commit()
    conn.close()
    (only,) = luml.read_luml_experiment(lf.experiment_export(tmp_path / "s.tar", lf.zip_db(db), "x"))
    starts_ends = _sqlite(db, "SELECT min(start_time_unix_nano), max(end_time_unix_nano) FROM spans")
    assert (only["run"]["start_unix_nano"], only["run"]["end_unix_nano"]) == starts_ends[0]
    assert starts_ends[0][1] - starts_ends[0][0] == 2_500_000_123
    assert only["run"]["metadata"]["luml.time_resolution"] == "ns"


def test_attachments_named_as_luml_wrote_them(both_forms):
    files = {
        a["name"]: a
        for a in both_forms["export"]["artifacts"]
        if a["metadata"].get("source") == "luml-attachment"
    }
    assert set(files) == {"notes.txt", "plots/curve.bin"}
    assert files["notes.txt"]["path"] == "notes.txt" and files["notes.txt"]["data"] == lf.NOTES
    assert (
        files["plots/curve.bin"]["path"] == "plots/curve.bin" and files["plots/curve.bin"]["data"] == lf.PLOT
    )
    assert not any("attachments/" in a["path"] for a in both_forms["model"]["artifacts"][:-1])


def _luml_table(db: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
    finally:
        conn.close()
    for r in rows:  # LUML's JSON columns, parsed
        for c in {"inputs", "outputs", "refs", "scores", "metadata"} & r.keys():
            r[c] = json.loads(r[c]) if r[c] else None
    return rows


def _record_rows(snapshot: dict) -> dict[str, list[dict]]:
    """The table rows the collector's record processor makes of a snapshot's records."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from tracehouse_collector.processors import runs as run_records

    records, points, _ = load.snapshot_records(snapshot)
    tables: dict[str, list[dict]] = {}
    for payload in load.encode_payloads(records, points, "luml-import"):
        rows = run_records.take_run_records(ExportLogsServiceRequest.FromString(payload))
        assert rows.rejected == 0, rows.errors
        for table, table_rows in rows.tables.items():
            tables.setdefault(table, []).extend(table_rows)
    return tables


def test_evals_travel_apart_in_the_same_requests_from_both_forms(both_forms):
    """Read from the export or from the `.luml`, a run's evals and annotations make the same
    request, which the collector stores once."""

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    def eval_payload(snapshot: dict) -> bytes:
        records, points, _ = load.snapshot_records(snapshot)
        found = []
        for payload in load.encode_payloads(records, points, "luml-import"):
            request = ExportLogsServiceRequest.FromString(payload)
            names = {r.event_name for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records}
            if names & set(load.EVAL_EVENTS):
                assert names == set(load.EVAL_EVENTS), names  # nothing else in that request
                found.append(payload)
        (payload,) = found
        return payload

    assert eval_payload(both_forms["export"]) == eval_payload(both_forms["model"])


def test_evals_links_and_annotations_become_rows(both_forms):
    run = both_forms["export"]
    run_id = run["run"]["id"]
    db = both_forms["db"]
    tables = _record_rows(run)
    evals = {r["ExampleId"]: r for r in tables["run_evals"]}
    luml_evals = _luml_table(db, "evals")
    assert sorted(evals) == [e["id"] for e in luml_evals] == ["e1", "e2"]
    for e in luml_evals:
        row = evals[e["id"]]
        assert row["RunId"] == run_id and row["Dataset"] == e["dataset_id"]
        for ours, theirs in (("Inputs", "inputs"), ("Outputs", "outputs"), ("References", "refs"),
                             ("Metadata", "metadata")):  # fmt: skip
            assert (json.loads(row[ours]) if row[ours] else None) == e[theirs], (e["id"], ours)
        assert row["Scores"] == e["scores"]
        assert row["CreatedTime"].startswith(e["created_at"].replace("T", " "))
        assert row["UpdatedTime"].startswith(e["updated_at"].replace("T", " "))
    (bridge,) = _luml_table(db, "eval_traces_bridge")
    (link,) = tables["run_eval_traces"]
    assert (link["RunId"], link["Dataset"], link["ExampleId"], link["TraceId"], link["LinkId"]) == (
        run_id, bridge["eval_dataset_id"], bridge["eval_id"], lf.TRACE, bridge["id"])  # fmt: skip
    notes = {r["AnnotationId"]: r for r in tables["annotations"]}
    (on_eval,) = _luml_table(db, "eval_annotations")
    (on_span,) = _luml_table(db, "span_annotations")
    n1, n2 = notes[on_eval["id"]], notes[on_span["id"]]
    assert (n1["Target"], n1["RunId"], n1["Dataset"], n1["ExampleId"]) == ("eval", run_id, "qa", "e2")
    assert (n1["Name"], n1["Kind"], n1["ValueType"], n1["Value"], n1["NumberValue"]) == (
        "correct", "feedback", "bool", "false", 0.0)  # fmt: skip
    assert (n1["User"], n1["Rationale"]) == ("ana", on_eval["rationale"]) and n1["Rationale"]
    assert (n2["Target"], n2["TraceId"], n2["SpanId"]) == ("span", lf.TRACE, lf.CHILD)
    assert (n2["Kind"], n2["ValueType"], n2["Value"], n2["NumberValue"], n2["User"]) == (
        "expectation", "number", "4", 4.0, "bo")  # fmt: skip
    assert n2["Timestamp"].startswith(on_span["created_at"])


def test_luml_evaluation_tables_round_trip(both_forms):
    """LUML's rows -> a snapshot's evals and annotations -> LUML's rows again: the same rows."""
    from tracehouse_collector.importers import luml_evals

    run = both_forms["export"]
    back = luml_evals.to_luml(run["evals"], run["annotations"])
    for table in ("evals", "eval_traces_bridge", "eval_annotations", "span_annotations"):
        assert sorted(back[table], key=lambda r: r["id"]) == _luml_table(both_forms["db"], table), table


def test_spans_become_otel_traces_rows(both_forms, tmp_path):
    run = both_forms["export"]
    (payload,) = load.spans_payloads(run, "luml-import")
    encoded = pipeline.process("traces", payload, "application/x-protobuf", "", 1 << 30, 1 << 30, str(tmp_path),
                               fsync=False, insert_format="json")  # fmt: skip  (rows read back as JSON)
    assert encoded.rejected == 0
    rows = json.loads("[" + Path(encoded.files["otel_traces"]).read_text().strip() + "]")
    spans = {r["SpanId"]: r for r in rows}
    expected = _sqlite(both_forms["db"], "SELECT span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano,"
                                         " status_message FROM spans")  # fmt: skip
    for span_id, parent, start, end, message in expected:
        r = spans[span_id]
        assert r["TraceId"] == lf.TRACE and r.get("ParentSpanId", "") == (parent or "")
        assert r["Duration"] == end - start and r["RunId"] == run["run"]["id"]
        assert r["Timestamp"].replace(" ", "T").startswith("2025-03-01T10:00:01")
        assert r.get("StatusMessage", "") == (message or "")
    root, child = spans[lf.ROOT], spans[lf.CHILD]
    assert root["Timestamp"] == "2025-03-01 10:00:01.250000000" and root["StatusCode"] == "Ok"
    assert root["SpanKind"] == "Internal" and root["SpanAttributes"]["retries"] == "2"
    assert root["Events.Name"] == ["step"] and root["Events.Timestamp"] == ["2025-03-01 10:00:02.000000000"]
    assert root["Events.Attributes"] == [{"n": "1"}]
    assert child["SpanKind"] == "Client" and child["StatusCode"] == "Error"
    assert child["Links.TraceId"] == [lf.LINKED_TRACE] and child["Links.SpanId"] == [lf.LINKED_SPAN]
    assert child["Links.Attributes"] == [{"why": "retry"}]
    assert child["InputTokens"] == 12 and child["OutputTokens"] == 5


def test_many_spans_go_in_fixed_size_requests():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    n = load.SPANS_PER_REQUEST + 7
    spans = [
        {"trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "name": f"s{i}",
         "start_time_unix_nano": lf.T0 + i, "end_time_unix_nano": lf.T0 + 2 * i + 1}
        for i in range(n)
    ]  # fmt: skip
    payloads = load.spans_payloads({"spans": spans}, "svc")
    assert payloads == load.spans_payloads({"spans": spans}, "svc")  # the same spans, the same requests
    decoded = [
        ExportTraceServiceRequest.FromString(p).resource_spans[0].scope_spans[0].spans for p in payloads
    ]
    assert [len(d) for d in decoded] == [load.SPANS_PER_REQUEST, 7]
    names = [s.name for d in decoded for s in d]
    assert names == [f"s{i}" for i in range(n)]
    last = decoded[1][-1]
    assert last.end_time_unix_nano - last.start_time_unix_nano == n  # i + 1 for i = n - 1
    assert load.spans_payloads({"spans": []}, "svc") == []
