"""LUML's evaluation tables <-> a run snapshot's `evals` and `annotations`.

LUML keeps, in a run's `exp.db`: `evals` (id, dataset_id, inputs, outputs, refs, scores,
metadata as JSON, created_at, updated_at), `eval_traces_bridge` (id, eval_dataset_id, eval_id,
trace_id, created_at), `eval_annotations` (on an example) and `span_annotations` (on a span):
name, annotation_kind feedback|expectation, value_type int|bool|string, value as text, user,
rationale, created_at. A snapshot keeps the same facts in Tracehouse's terms (the rows of
`run_evals`, `run_eval_traces` and `annotations`), ids and times included, so a LUML file
imported and exported again gives LUML the same rows.

A trace-level annotation (LUML has none) is written as a span annotation with an empty span id,
and read back as one on the trace.
"""

from __future__ import annotations

from typing import Any

from tracehouse_collector.importers.luml_db import timestamp_ns

_TO_OURS = {"int": "number", "bool": "bool", "string": "text"}
_TO_LUML = {v: k for k, v in _TO_OURS.items()}


def _value(text: Any, luml_type: str) -> tuple[str, str]:
    """(our value type, the value as text) of a LUML annotation value."""
    ours = _TO_OURS.get(luml_type, "text")
    text = "" if text is None else str(text)
    if ours == "bool":
        text = text.strip().lower()
    return ours, text


def from_luml(tables: dict[str, list[dict]]) -> tuple[list[dict], list[dict]]:
    """(snapshot evals, snapshot annotations) of LUML's evaluation tables (JSON columns parsed)."""
    links: dict[tuple[str, str], list[dict]] = {}
    for b in tables.get("eval_traces_bridge") or []:
        links.setdefault((str(b["eval_dataset_id"]), str(b["eval_id"])), []).append(
            {
                "trace_id": str(b["trace_id"]),
                "link_id": str(b.get("id") or ""),
                "time_unix_nano": timestamp_ns(b.get("created_at")),
            }
        )
    evals = []
    for e in tables.get("evals") or []:
        key = (str(e["dataset_id"]), str(e["id"]))
        created = timestamp_ns(e.get("created_at"))
        evals.append(
            {
                "dataset": key[0],
                "example_id": key[1],
                "inputs": e.get("inputs"),
                "outputs": e.get("outputs"),
                "references": e.get("refs"),
                "scores": e.get("scores") or {},
                "metadata": e.get("metadata"),
                "created_unix_nano": created,
                "updated_unix_nano": timestamp_ns(e.get("updated_at")) or created,
                "traces": links.pop(key, []),
            }
        )
    annotations = []
    for table, target in (("eval_annotations", "eval"), ("span_annotations", "span")):
        for a in tables.get(table) or []:
            value_type, value = _value(a.get("value"), str(a.get("value_type") or ""))
            span = str(a.get("span_id") or "")
            annotations.append(
                {
                    "id": str(a["id"]),
                    "time_unix_nano": timestamp_ns(a.get("created_at")),
                    "target": target if target == "eval" or span else "trace",
                    "trace_id": str(a.get("trace_id") or ""),
                    "span_id": span,
                    "dataset": str(a.get("dataset_id") or ""),
                    "example_id": str(a.get("eval_id") or ""),
                    "name": str(a["name"]),
                    "kind": str(a.get("annotation_kind") or "feedback"),
                    "value_type": value_type,
                    "value": value,
                    "user": str(a.get("user") or ""),
                    "rationale": str(a.get("rationale") or ""),
                    "source": "luml",
                }
            )
    return evals, annotations


def to_luml(evals: list[dict], annotations: list[dict]) -> dict[str, list[dict]]:
    """LUML's evaluation tables (JSON columns as values) from a snapshot's evals and annotations."""
    from tracehouse._luml_experiment import timestamp_text

    tables: dict[str, list[dict]] = {t: [] for t in ("evals", "eval_traces_bridge", "eval_annotations", "span_annotations")}
    for e in evals:
        tables["evals"].append(
            {
                "id": e["example_id"],
                "dataset_id": e["dataset"],
                "inputs": e.get("inputs") if e.get("inputs") is not None else {},
                "outputs": e.get("outputs"),
                "refs": e.get("references"),
                "scores": e.get("scores") or {},
                "metadata": e.get("metadata"),
                "created_at": timestamp_text(e["created_unix_nano"]),
                "updated_at": timestamp_text(e["updated_unix_nano"]),
            }
        )
        for n, link in enumerate(e.get("traces") or []):
            tables["eval_traces_bridge"].append(
                {
                    "id": link.get("link_id") or f"{e['dataset']}/{e['example_id']}/{n}",
                    "eval_dataset_id": e["dataset"],
                    "eval_id": e["example_id"],
                    "trace_id": link["trace_id"],
                    "created_at": timestamp_text(link.get("time_unix_nano") or e["created_unix_nano"]),
                }
            )
    for a in annotations:
        common = {
            "id": a["id"],
            "name": a["name"],
            "annotation_kind": a["kind"],
            "value_type": _TO_LUML.get(a["value_type"], "string"),
            "value": a["value"],
            "user": a.get("user") or "",
            "rationale": a.get("rationale") or None,
            "created_at": timestamp_text(a["time_unix_nano"]),
        }
        if a["target"] == "eval":
            tables["eval_annotations"].append(
                {**common, "dataset_id": a["dataset"], "eval_id": a["example_id"]}
            )
        else:
            tables["span_annotations"].append({**common, "trace_id": a["trace_id"], "span_id": a["span_id"]})
    return tables

