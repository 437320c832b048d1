"""Eval examples and annotations -> rows of `run_evals`, `run_eval_traces` and `annotations`.

Both reach the collector as run records (processors/runs.py takes them out of a logs request):

- `tracehouse.run.eval`: one example of a run's evaluation. Attributes
  `tracehouse.eval.dataset`, `tracehouse.eval.example_id` and optionally
  `tracehouse.eval.created_time_unix_nano` / `tracehouse.eval.updated_time_unix_nano`; the body
  a key-value list with `inputs`, `outputs`, `references` and `metadata` as JSON text, `scores`
  (name -> number) and `traces` (trace ids, or {trace_id, link_id, time_unix_nano} entries).
- `tracehouse.run.annotation`: an annotation, its fields as `tracehouse.annotation.*` attributes.

Annotations also arrive through REST (`POST /api/v1/annotations`); `annotation_row` checks them
the same way whichever road they took.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from tracehouse_collector.processors.rows import MAX_TIMESTAMP_NS, Rows, format_timestamp

EVAL_RECORD = "tracehouse.run.eval"
ANNOTATION_RECORD = "tracehouse.run.annotation"
DATASET = "tracehouse.eval.dataset"
EXAMPLE_ID = "tracehouse.eval.example_id"
CREATED = "tracehouse.eval.created_time_unix_nano"
UPDATED = "tracehouse.eval.updated_time_unix_nano"
ANNOTATION_PREFIX = "tracehouse.annotation."

TARGETS = ("span", "trace", "eval")
KINDS = ("feedback", "expectation")
VALUE_TYPES = ("number", "bool", "text")
MAX_TEXT = 1 << 20  # one JSON field of an example, or an annotation's text

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


class BadEvalRecord(ValueError):
    """An eval example or annotation that cannot be stored; the message says why."""


def _string(value: Any, what: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise BadEvalRecord(f"missing {what}")
        return ""
    if not isinstance(value, str):
        raise BadEvalRecord(f"{what} must be a string")
    if len(value) > MAX_TEXT:
        raise BadEvalRecord(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _nanos(value: Any, default: int, what: str) -> int:
    if value is None or value == "" or value == 0:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP_NS:
        raise BadEvalRecord(f"{what} must be nanoseconds since the epoch")
    return value


def _json_text(value: Any, what: str) -> str:
    """A JSON text field: '' when absent, else it must parse."""
    text = _string(value, what)
    if text:
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            raise BadEvalRecord(f"{what} must be JSON text") from None
    return text


def _scores(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadEvalRecord("scores must be a key-value list of numbers")
    out = {}
    for name, v in value.items():
        if not name:
            raise BadEvalRecord("a score needs a name")
        if isinstance(v, bool):
            v = 1.0 if v else 0.0
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BadEvalRecord(f"score {name!r} must be a finite number")
        out[str(name)] = float(v)
    return out


def trace_id(value: Any, what: str = "trace id") -> str:
    text = _string(value, what, required=True)
    if not _TRACE_ID.fullmatch(text):
        raise BadEvalRecord(f"{what} must be 32 lowercase hex digits")
    return text


def eval_rows(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    """A `tracehouse.run.eval` record -> one `run_evals` row and a `run_eval_traces` row per link."""
    if not isinstance(body, Mapping):
        raise BadEvalRecord("eval body must be a key-value list")
    dataset = _string(attrs.get(DATASET), DATASET, required=True)
    example = _string(attrs.get(EXAMPLE_ID), EXAMPLE_ID, required=True)
    created = _nanos(attrs.get(CREATED), ts, CREATED)
    key = {"RunId": run_id, "Dataset": dataset, "ExampleId": example}
    rows.add(
        "run_evals",
        {
            **key,
            "Inputs": _json_text(body.get("inputs"), "inputs"),
            "Outputs": _json_text(body.get("outputs"), "outputs"),
            "References": _json_text(body.get("references"), "references"),
            "Scores": _scores(body.get("scores")),
            "Metadata": _json_text(body.get("metadata"), "metadata"),
            "CreatedTime": format_timestamp(created),
            "UpdatedTime": format_timestamp(_nanos(attrs.get(UPDATED), created, UPDATED)),
            "Version": ts,
        },
    )
    links = body.get("traces") or []
    if not isinstance(links, list):
        raise BadEvalRecord("traces must be an array")
    for link in links:
        entry = link if isinstance(link, Mapping) else {"trace_id": link}
        tid = trace_id(entry.get("trace_id"), "a linked trace id")
        rows.add(
            "run_eval_traces",
            {
                **key,
                "TraceId": tid,
                "LinkId": _string(entry.get("link_id"), "link id"),
                "Timestamp": format_timestamp(_nanos(entry.get("time_unix_nano"), created, "link time")),
                "Version": ts,
            },
        )


def annotation_value(value_type: str, value: Any) -> tuple[str, float | None]:
    """(the value as text, as a number or None) for an annotation of `value_type`."""
    if value_type == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise BadEvalRecord("a bool annotation's value must be true or false")
        return ("true" if value else "false"), (1.0 if value else 0.0)
    if value_type == "number":
        if isinstance(value, str):
            try:
                value = int(value) if re.fullmatch(r"-?\d+", value.strip()) else float(value)
            except ValueError:
                raise BadEvalRecord(f"a number annotation's value must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadEvalRecord("a number annotation's value must be a finite number")
        return (str(value) if isinstance(value, int) else repr(float(value))), float(value)
    if value_type == "text":
        return _string(value if isinstance(value, str) else None, "a text annotation's value", True), None
    raise BadEvalRecord(f"value type {value_type!r} is not one of {', '.join(VALUE_TYPES)}")


def annotation_row(fields: Mapping[str, Any], now_ns: int) -> dict[str, Any]:
    """An annotation (name, kind, value_type, value, user, rationale, and its target: trace_id
    with or without span_id, or run_id + dataset + example_id) -> its `annotations` row."""
    name = _string(fields.get("name"), "annotation name", required=True).strip()
    if not name:
        raise BadEvalRecord("missing annotation name")
    kind = fields.get("kind") or "feedback"
    if kind not in KINDS:
        raise BadEvalRecord(f"annotation kind {kind!r} is not one of {', '.join(KINDS)}")
    value_type = fields.get("value_type") or _value_type(fields.get("value"))
    text, number = annotation_value(str(value_type), fields.get("value"))
    trace = fields.get("trace_id") or ""
    span = fields.get("span_id") or ""
    example = fields.get("example_id") or ""
    run_id = _string(fields.get("run_id"), "run id")
    if run_id and not _TRACE_ID.fullmatch(run_id):
        raise BadEvalRecord("run id must be 32 lowercase hex digits")
    if example:
        if trace or span:
            raise BadEvalRecord("annotate an eval example or a trace/span, not both")
        if not run_id:
            raise BadEvalRecord("an eval example is named by run id, dataset and example id")
        target = "eval"
        dataset = _string(fields.get("dataset"), "dataset", required=True)
    elif trace:
        trace = trace_id(trace)
        if span and not _SPAN_ID.fullmatch(str(span)):
            raise BadEvalRecord("span id must be 16 lowercase hex digits")
        target, dataset = ("span" if span else "trace"), ""
    else:
        raise BadEvalRecord("an annotation needs a target: trace_id (and span_id), or run_id, dataset and example_id")
    annotation_id = _string(fields.get("id"), "annotation id") or uuid.uuid4().hex
    ts = _nanos(fields.get("time_unix_nano"), now_ns, "annotation time")
    return {
        "AnnotationId": annotation_id,
        "Timestamp": format_timestamp(ts),
        "Target": target,
        "TraceId": trace,
        "SpanId": str(span),
        "RunId": run_id,
        "Dataset": dataset,
        "ExampleId": _string(example, "example id"),
        "Name": name,
        "Kind": kind,
        "ValueType": value_type,
        "Value": text,
        "NumberValue": number,
        "User": _string(fields.get("user"), "user"),
        "Rationale": _string(fields.get("rationale"), "rationale"),
        "Source": _string(fields.get("source"), "source") or "api",
        "Version": now_ns,
    }


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "text"


def _annotation(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    fields = {k[len(ANNOTATION_PREFIX) :]: v for k, v in attrs.items() if k.startswith(ANNOTATION_PREFIX)}
    if fields.get("target") == "eval" or fields.get("example_id"):
        fields["run_id"] = run_id  # an example is always the record's run's
    elif "run_id" not in fields:
        fields["run_id"] = run_id
    fields.setdefault("source", "sdk")
    row = annotation_row(fields, ts)
    rows.add("annotations", row)


HANDLERS = {EVAL_RECORD: eval_rows, ANNOTATION_RECORD: _annotation}
