"""Eval and annotation run records through the collector's record processor (processors/runs.py,
processors/evals.py), encoded by the SDK's own transport: good ones become rows of
`run_evals`, `run_eval_traces` and `annotations`; bad ones are rejected with their reason (OTLP
partial success) while the rest of the request is kept."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from tracehouse._run_transport import encode_request
from tracehouse_collector.processors import evals, runs

RUN = "ab" * 16
TRACE = "cd" * 16
T0 = 1_750_000_000_123_456_789


def _process(*records: tuple[str, dict, object]):
    payload = encode_request([(event, RUN, attrs, body, T0) for event, attrs, body in records], [], {})
    return runs.take_run_records(ExportLogsServiceRequest.FromString(payload))


def _eval(example: str = "e1", **body) -> tuple[str, dict, object]:
    attrs = {evals.DATASET: "qa", evals.EXAMPLE_ID: example}
    return (evals.EVAL_RECORD, attrs, {"inputs": json.dumps({"q": "2+2"}), **body})


def test_an_example_with_links_becomes_rows():
    rows = _process(_eval(outputs='"4"', scores={"exact": 1, "judge": 0.75, "ok": True}, traces=[TRACE, "ef" * 16]))
    assert rows.rejected == 0
    (row,) = rows.tables["run_evals"]
    assert (row["RunId"], row["Dataset"], row["ExampleId"], row["Outputs"]) == (RUN, "qa", "e1", '"4"')
    assert row["Scores"] == {"exact": 1.0, "judge": 0.75, "ok": 1.0}
    assert row["CreatedTime"] == row["UpdatedTime"] == "2025-06-15 15:06:40.123456789"
    assert [link["TraceId"] for link in rows.tables["run_eval_traces"]] == [TRACE, "ef" * 16]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ((evals.EVAL_RECORD, {evals.DATASET: "qa"}, {}), "missing tracehouse.eval.example_id"),
        (_eval(inputs="{not json"), "inputs must be JSON text"),
        (_eval(scores={"exact": "high"}), "score 'exact' must be a finite number"),
        (_eval(scores={"exact": float("nan")}), "score 'exact' must be a finite number"),
        (_eval(traces=["not-a-trace-id"]), "a linked trace id must be 32 lowercase hex digits"),
        ((evals.ANNOTATION_RECORD, {"tracehouse.annotation.value": 1}, None), "missing annotation name"),
        ((evals.ANNOTATION_RECORD, {"tracehouse.annotation.name": "n", "tracehouse.annotation.value": 1}, None),
         "an annotation needs a target"),
        ((evals.ANNOTATION_RECORD, {"tracehouse.annotation.name": "n", "tracehouse.annotation.value": "yes",
                                    "tracehouse.annotation.value_type": "bool", "tracehouse.annotation.trace_id": TRACE},
          None), "a bool annotation's value must be true or false"),
        ((evals.ANNOTATION_RECORD, {"tracehouse.annotation.name": "n", "tracehouse.annotation.value": 1,
                                    "tracehouse.annotation.kind": "vote", "tracehouse.annotation.trace_id": TRACE},
          None), "annotation kind 'vote' is not one of feedback, expectation"),
    ],
)  # fmt: skip
def test_a_bad_record_is_rejected_with_its_reason_and_the_rest_kept(record, reason):
    rows = _process(record, _eval("kept"))
    assert rows.rejected == 1
    assert any(reason in e for e in rows.errors), rows.errors
    assert [r["ExampleId"] for r in rows.tables["run_evals"]] == ["kept"]


@pytest.mark.parametrize(
    ("value_type", "value", "text", "number"),
    [
        ("number", 4, "4", 4.0),
        ("number", "0.25", "0.25", 0.25),
        ("number", -3, "-3", -3.0),
        ("bool", True, "true", 1.0),
        ("bool", "False", "false", 0.0),
        ("text", "Canberra", "Canberra", None),
    ],
)
def test_annotation_values_keep_their_type(value_type, value, text, number):
    row = evals.annotation_row({"name": "n", "value": value, "value_type": value_type, "trace_id": TRACE}, T0)
    assert (row["ValueType"], row["Value"], row["NumberValue"]) == (value_type, text, number)
    assert row["Target"] == "trace" and row["Kind"] == "feedback"


def test_annotation_targets():
    span = evals.annotation_row({"name": "n", "value": 1, "trace_id": TRACE, "span_id": "12" * 8}, T0)
    example = evals.annotation_row({"name": "n", "value": 1, "run_id": RUN, "dataset": "qa", "example_id": "e1"}, T0)
    assert (span["Target"], span["SpanId"]) == ("span", "12" * 8)
    assert (example["Target"], example["RunId"], example["Dataset"], example["ExampleId"]) == ("eval", RUN, "qa", "e1")
    with pytest.raises(evals.BadEvalRecord, match="not both"):
        evals.annotation_row({"name": "n", "value": 1, "trace_id": TRACE, "run_id": RUN, "dataset": "qa",
                              "example_id": "e1"}, T0)  # fmt: skip
