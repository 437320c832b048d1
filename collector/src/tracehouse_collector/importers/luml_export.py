"""`tracehouse runs export --format luml`: a run as LUML's standalone experiment export.

LUML's tables get what they can hold: typed params, metric points (a step logged twice keeps
its last value: LUML's key is (key, step)), every artifact's bytes as an attachment, the run's
spans from `otel_traces`, and its eval examples, trace links and annotations (luml_evals.py).
What LUML has no column for (exact status and bounds, tags, metadata, each artifact's kind, path
and metadata) rides in the manifest's payload under `tracehouse`, which importers/luml.py puts
back, so an exported run imported again is the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracehouse import _luml_experiment as lx

from tracehouse_collector.importers import luml_evals
from tracehouse_collector.importers.luml_db import timestamp_ns
from tracehouse_collector.processors.rows import SPAN_KINDS, STATUS_CODES

_LUML_STATUS = {"running": "active", "finished": "completed", "failed": "error", "killed": "error"}


def spans_sql(run_id: str) -> str:
    """The run's spans, one row each, every value as text (the same through a server or a store)."""
    if not all(c in "0123456789abcdef" for c in run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return f"""
SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, StatusCode, StatusMessage,
       toString(toUnixTimestamp64Nano(Timestamp)) AS start, toString(Duration) AS duration,
       toJSONString(SpanAttributes) AS attributes,
       toJSONString(`Events.Name`) AS event_names,
       toJSONString(arrayMap(t -> toString(toUnixTimestamp64Nano(t)), `Events.Timestamp`)) AS event_times,
       toJSONString(`Events.Attributes`) AS event_attributes,
       toJSONString(`Links.TraceId`) AS link_traces, toJSONString(`Links.SpanId`) AS link_spans,
       toJSONString(`Links.Attributes`) AS link_attributes
FROM otel_traces WHERE RunId = '{run_id}'
ORDER BY Timestamp, TraceId, SpanId
LIMIT 1 BY TraceId, SpanId"""


def luml_spans(columns: list[str], rows: list[list[Any]]) -> list[dict]:
    """LUML span rows from the result of spans_sql."""
    out = []
    for values in rows:
        r = dict(zip(columns, values, strict=True))
        start = int(r["start"])
        events = [
            {"name": n, "timestamp": int(t), **({"attributes": a} if a else {})}
            for n, t, a in zip(json.loads(r["event_names"]), json.loads(r["event_times"]),
                               json.loads(r["event_attributes"]), strict=True)
        ]  # fmt: skip
        links = [
            {"trace_id": t, "span_id": s, "trace_flags": 1, **({"attributes": a} if a else {})}
            for t, s, a in zip(json.loads(r["link_traces"]), json.loads(r["link_spans"]),
                               json.loads(r["link_attributes"]), strict=True)
        ]  # fmt: skip
        out.append(
            {
                "trace_id": r["TraceId"],
                "span_id": r["SpanId"],
                "parent_span_id": r["ParentSpanId"] or None,
                "name": r["SpanName"],
                "kind": SPAN_KINDS.index(r["SpanKind"]) if r["SpanKind"] in SPAN_KINDS else 0,
                "dfs_span_type": 0,
                "start_time_unix_nano": start,
                "end_time_unix_nano": start + int(r["duration"]),
                "status_code": STATUS_CODES.index(r["StatusCode"]) if r["StatusCode"] in STATUS_CODES else 0,
                "status_message": r["StatusMessage"] or None,
                "attributes": json.loads(r["attributes"]) or None,
                "events": events or None,
                "links": links or None,
                "trace_flags": 1,
            }
        )
    return out


def _is_eval_tables(artifact: dict) -> bool:
    return (
        artifact["name"] == lx.EVALS_ARTIFACT
        and (artifact.get("metadata") or {}).get("source") == "luml-evals"
    )


def build(
    run: dict,
    points: list[dict],
    spans: list[dict],
    fetch: Callable[[str], bytes],
    evals: dict[str, list[dict]] | None = None,
) -> tuple[dict, lx.Snapshot]:
    """(manifest payload, snapshot) of a run as the query modules show it (`show_run`), with its
    eval examples and annotations (`query.evals.export_evals`) in LUML's evaluation tables."""
    snapshot = lx.Snapshot(
        params=dict(run["params"]),
        points=[{k: p[k] for k in ("key", "step", "value", "time_unix_nano")} for p in points],
        spans=spans,
    )
    if evals and (evals.get("evals") or evals.get("annotations")):
        snapshot.evals = luml_evals.to_luml(evals["evals"], evals["annotations"])
    artifacts: dict[str, dict] = {}
    for a in run["artifacts"]:
        data = fetch(a["digest"])
        if _is_eval_tables(a):  # a run imported before the evals tables existed
            snapshot.evals = snapshot.evals or json.loads(data).get("tables") or {}
        else:
            created = timestamp_ns(a.get("time"))
            snapshot.attachments.append(lx.Attachment(a["name"], data, lx.safe_path(a["name"]), created))
        artifacts[a["name"]] = {
            "kind": a.get("kind") or "file",
            "path": a.get("path") or "",
            "metadata": a.get("metadata") or {},
            **({"model_name": a["model_name"]} if a.get("model_name") else {}),
        }
    extra = {
        "name": run.get("name") or "",
        "parent_id": run.get("parent_id"),
        "status": run.get("status") or "finished",
        "start_unix_nano": run.get("start_unix_nano"),
        "end_unix_nano": run.get("end_unix_nano"),
        "tags": run.get("tags") or {},
        "metadata": run.get("metadata") or {},
        "packages": run.get("packages") or {},
        "service": run.get("service") or "",
        "artifacts": artifacts,
    }
    payload = {
        "local_experiment_id": run["id"],
        "status": _LUML_STATUS.get(run.get("status") or "", "completed"),
        "group": run.get("experiment") or "default",
        "tags": [f"{k}={v}" for k, v in sorted((run.get("tags") or {}).items())],
        lx.RUN_ID_KEY: run["id"],
        lx.EXPERIMENT_KEY: run.get("experiment") or "default",
        lx.EXTRA_KEY: extra,
    }
    return payload, snapshot


def write(
    out: Path,
    run: dict,
    points: list[dict],
    spans: list[dict],
    fetch: Callable[[str], bytes],
    evals: dict[str, list[dict]] | None = None,
) -> None:
    from tracehouse import __version__

    payload, snapshot = build(run, points, spans, fetch, evals)
    lx.write_export(out, run.get("name") or run["id"], payload, snapshot, __version__)
