"""Experiment-run records (OTLP log records named `tracehouse.run.*`) -> the run tables.

The SDK's `tracehouse.run()` sends everything about a run as OTLP log records; their
conventions are in docs/runs-and-models.md ("OTLP conventions"). This module takes those
records out of a logs request before the ordinary log rows are built, so they land in `runs`,
`run_params`, `run_metrics`, `run_artifacts` and `models` and never in `otel_logs`. A record
whose event name starts with `tracehouse.run.` but that cannot be stored (unknown kind, bad
run id, arrays of different lengths, ...) is rejected with its reason, which reaches the
client as OTLP partial success; the rest of the request is kept.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import orjson

from tracehouse_collector.processors import evals
from tracehouse_collector.processors.rows import MAX_TIMESTAMP_NS, Rows, any_value_to_py, format_timestamp

PREFIX = "tracehouse.run."
RUN_ID = "tracehouse.run.id"
STATUSES = frozenset({"running", "finished", "failed", "killed"})
MAX_POINTS_PER_RECORD = 1_000_000
_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INT64 = (-(2**63), 2**63 - 1)


class BadRecord(ValueError):
    pass


def _event_name(rec: Any, attrs: dict[str, Any]) -> str:
    return getattr(rec, "event_name", "") or str(attrs.get("event.name", ""))


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value_to_py(kv.value) for kv in kvs}


def _body(rec: Any) -> Any:
    return any_value_to_py_raw(rec.body) if rec.HasField("body") else None


def any_value_to_py_raw(v: Any) -> Any:
    """Like rows.any_value_to_py, but bytes stay bytes (packed metric columns)."""
    kind = v.WhichOneof("value")
    if kind == "bytes_value":
        return v.bytes_value
    if kind == "kvlist_value":
        return {kv.key: any_value_to_py_raw(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [any_value_to_py_raw(x) for x in v.array_value.values]
    return any_value_to_py(v)


def _text(attrs: dict[str, Any], key: str, required: bool = False) -> str:
    v = attrs.get(key)
    if v is None or v == "":
        if required:
            raise BadRecord(f"missing {key}")
        return ""
    if not isinstance(v, str):
        raise BadRecord(f"{key} must be a string")
    return v


def _int(attrs: dict[str, Any], key: str, default: int | None = None) -> int:
    v = attrs.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, str) and v.lstrip("-").isdigit():
            return int(v)
        raise BadRecord(f"{key} must be an integer")
    return v


def _time(ns: int, what: str) -> str:
    if not 0 <= ns <= MAX_TIMESTAMP_NS:
        raise BadRecord(f"{what} out of range")
    return format_timestamp(ns)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord(f"{what} must be a key-value list")
    return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}


# -- one function per record kind ----------------------------------------------------------------


def _state(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    status = _text(attrs, "tracehouse.run.status", required=True)
    if status not in STATUSES:
        raise BadRecord(f"status {status!r} is not one of {', '.join(sorted(STATUSES))}")
    body = body if isinstance(body, dict) else {}
    end = attrs.get("tracehouse.run.end_time_unix_nano")
    parent_id = _text(attrs, "tracehouse.run.parent_id")
    row = {
        "RunId": run_id,
        "Experiment": _text(attrs, "tracehouse.experiment.name") or "default",
        "Name": _text(attrs, "tracehouse.run.name"),
        "ParentId": parent_id,
        "Status": status,
        "StartTime": _time(_int(attrs, "tracehouse.run.start_time_unix_nano", ts), "start time"),
        "EndTime": _time(_int(attrs, "tracehouse.run.end_time_unix_nano"), "end time") if end else None,
        "Tags": _string_map(body.get("tags"), "tags"),
        "Metadata": _string_map(body.get("metadata"), "metadata"),
        "Packages": _string_map(body.get("packages"), "packages"),
        "ServiceName": service,
        "Version": ts,
    }
    if parent_id and not _ID.fullmatch(parent_id):
        raise BadRecord("tracehouse.run.parent_id must be 32 lowercase hex digits")
    rows.add("runs", row)


def param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _params(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    if not isinstance(body, dict):
        raise BadRecord("params body must be a key-value list")
    for key, value in body.items():
        if not key:
            raise BadRecord("empty param key")
        if isinstance(value, float) and not math.isfinite(value):
            text = orjson.dumps(repr(value)).decode()  # JSON has no NaN: keep it as text
        else:
            text = orjson.dumps(value).decode()
        rows.add(
            "run_params",
            {"RunId": run_id, "Key": key, "Value": text, "Type": param_type(value), "Version": ts},
        )


def _column(body: dict, name: str, fmt: str) -> list:
    v = body.get(name)
    if isinstance(v, bytes):
        if len(v) % 8:
            raise BadRecord(f"packed {name} must be a multiple of 8 bytes")
        return list(struct.unpack(f"<{len(v) // 8}{fmt}", v))
    if isinstance(v, list):
        if fmt == "d":
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise BadRecord(f"{name} must hold numbers")
            return [float(x) for x in v]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise BadRecord(f"{name} must hold integers")
        return v
    raise BadRecord(f"metrics body needs {name} (packed bytes or an array)")


def _finite(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _metrics(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    key = _text(attrs, "tracehouse.metric.key", required=True)
    if not isinstance(body, dict):
        raise BadRecord("metrics body must be a key-value list with step, value and time_unix_nano")
    steps = _column(body, "step", "q")
    values = _column(body, "value", "d")
    times = _column(body, "time_unix_nano", "q")
    if not len(steps) == len(values) == len(times):
        raise BadRecord(f"metric {key!r}: step, value and time_unix_nano differ in length")
    if len(steps) > MAX_POINTS_PER_RECORD:
        raise BadRecord(f"metric {key!r}: more than {MAX_POINTS_PER_RECORD} points in one record")
    for s, t in zip(steps, times, strict=True):
        if not _INT64[0] <= s <= _INT64[1]:
            raise BadRecord(f"metric {key!r}: step out of the Int64 range")
        if not 0 <= t <= MAX_TIMESTAMP_NS:
            raise BadRecord(f"metric {key!r}: timestamp out of range")
    out = rows.tables.setdefault("run_metrics", [])
    fmt = format_timestamp
    out.extend(
        {"RunId": run_id, "Key": key, "Step": s, "Value": _finite(v), "Timestamp": fmt(t)}
        for s, v, t in zip(steps, values, times, strict=True)
    )


def _artifact(rows: Rows, run_id: str, attrs: dict, body: Any, ts: int, service: str) -> None:
    digest = _text(attrs, "tracehouse.artifact.digest", required=True)
    if not _SHA256.fullmatch(digest):
        raise BadRecord("tracehouse.artifact.digest must be 64 lowercase hex digits (sha256)")
    name = _text(attrs, "tracehouse.artifact.name", required=True)
    kind = _text(attrs, "tracehouse.artifact.kind") or "file"
    size = _int(attrs, "tracehouse.artifact.size", 0)
    if size < 0:
        raise BadRecord("tracehouse.artifact.size must not be negative")
    metadata = orjson.dumps(body if isinstance(body, dict) else {}).decode()
    row = {
        "RunId": run_id,
        "Name": name,
        "Path": _text(attrs, "tracehouse.artifact.path"),
        "Digest": digest,
        "Size": size,
        "Kind": kind,
        "Metadata": metadata,
        "Timestamp": _time(ts, "artifact time"),
        "Version": ts,
    }
    rows.add("run_artifacts", row)
    if kind == "model":
        rows.add(
            "models",
            {
                "Name": _text(attrs, "tracehouse.model.name") or name,
                "Digest": digest,
                "Size": size,
                "RunId": run_id,
                "Experiment": _text(attrs, "tracehouse.experiment.name"),
                "Metadata": metadata,
                "Timestamp": row["Timestamp"],
                "Version": ts,
            },
        )


HANDLERS = {
    "tracehouse.run.state": _state,
    "tracehouse.run.params": _params,
    "tracehouse.run.metrics": _metrics,
    "tracehouse.run.artifact": _artifact,
    **evals.HANDLERS,  # eval examples and annotations (processors/evals.py)
}


def take_run_records(request: Any) -> Rows:
    """Move the run records of a logs request into run-table rows (removing them from the request)."""
    rows = Rows()
    for rl in request.resource_logs:
        service = ""
        for kv in rl.resource.attributes:
            if kv.key == "service.name":
                service = kv.value.string_value
        for sl in rl.scope_logs:
            taken: list[int] = []
            for i, rec in enumerate(sl.log_records):
                name = getattr(rec, "event_name", "")
                if not name.startswith(PREFIX) and (
                    name or not any(kv.key == "event.name" for kv in rec.attributes)
                ):
                    continue
                attrs = _attrs(rec.attributes)
                name = _event_name(rec, attrs)
                if not name.startswith(PREFIX):
                    continue
                taken.append(i)
                try:
                    handler = HANDLERS.get(name)
                    if handler is None:
                        raise BadRecord(f"unknown run record {name!r} (known: {', '.join(sorted(HANDLERS))})")
                    run_id = _text(attrs, RUN_ID, required=True)
                    if not _ID.fullmatch(run_id):
                        raise BadRecord(f"{RUN_ID} must be 32 lowercase hex digits, got {run_id[:40]!r}")
                    ts = rec.time_unix_nano or rec.observed_time_unix_nano
                    if ts > MAX_TIMESTAMP_NS:
                        raise BadRecord("record time beyond the year 2262")
                    staged = Rows()
                    handler(staged, run_id, attrs, _body(rec), ts, service)
                    for table, table_rows in staged.tables.items():
                        rows.tables.setdefault(table, []).extend(table_rows)
                except (BadRecord, evals.BadEvalRecord) as exc:
                    rows.reject(f"{name}: {exc}")
            for i in reversed(taken):
                del sl.log_records[i]
    return rows
