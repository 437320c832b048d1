"""Reading eval examples and annotations, comparing examples across runs, adding annotations.

Shared by the CLI, REST and gRPC. Every function takes a Store and returns plain JSON-able
values. An example is named by (run, dataset, example id); the latest record of it wins.

The per-example comparison (`compare_evals`, the regression view) lines up the examples of
several runs by (dataset, example id): each run's outputs and scores, and for every run after
the first the delta of each score against the first run and the example's change:
`worse` (some score went down), `better` (some went up, none down), `same`, or `missing`
(the example is not in one of the two runs). Scores are "higher is better".
"""

from __future__ import annotations

import base64
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tracehouse_collector.processors.evals import BadEvalRecord, annotation_row
from tracehouse_collector.query.runs import _iso, _param, resolve
from tracehouse_collector.store.client import Store

MAX_COMPARE = 20
MAX_ANNOTATIONS = 10_000
CHANGES = ("worse", "better", "same", "missing")

_EVALS_SQL = """
SELECT e.Dataset, e.ExampleId, e.Inputs, e.Outputs, e.References, e.Scores, e.Metadata,
       e.CreatedTime, e.UpdatedTime, t.TraceIds
FROM (
    SELECT * FROM tracehouse.run_evals WHERE RunId = {run:String} {dataset_cond}
    ORDER BY Version DESC LIMIT 1 BY Dataset, ExampleId
) AS e
LEFT JOIN (
    SELECT Dataset, ExampleId, groupArray(TraceId) AS TraceIds FROM (
        SELECT Dataset, ExampleId, TraceId, Timestamp FROM tracehouse.run_eval_traces
        WHERE RunId = {run:String} {dataset_cond}
        ORDER BY Version DESC LIMIT 1 BY Dataset, ExampleId, TraceId
    ) GROUP BY Dataset, ExampleId
) AS t USING (Dataset, ExampleId)
ORDER BY e.Dataset, e.ExampleId
{limit}
"""
# A page starts after the cursor's (dataset, example id): keyset paging on the table's order.
_AFTER_COND = "AND (Dataset, ExampleId) > ({after_dataset:String}, {after_example:String})"
MAX_EVALS_PAGE = 1000

# A run's annotations: on its examples, and on the traces it made (an annotation added to a
# span through REST does not know the span's run).
_RUN_ANNOTATIONS = (
    "(RunId = {run:String} OR TraceId IN "
    "(SELECT DISTINCT TraceId FROM tracehouse.otel_traces WHERE RunId = {run:String}))"
)
_ANNOTATION_COLUMNS = (
    "AnnotationId, Timestamp, Target, TraceId, SpanId, RunId, Dataset, ExampleId, Name, Kind, "
    "ValueType, Value, NumberValue, User, Rationale, Source"
)

# An annotation's fields (but span id, name and number value) as strings, keyed as
# `annotation_from_fields` reads them: for a statement that returns them in one map column.
ANNOTATIONS_TABLE = "tracehouse.annotations"
ANNOTATION_FIELDS = {
    "id": "AnnotationId",
    "time": "toString(toUnixTimestamp64Nano(Timestamp))",
    **{k: f"toString({c})" for k, c in (("target", "Target"), ("trace_id", "TraceId"), ("run_id", "RunId"),
       ("dataset", "Dataset"), ("example_id", "ExampleId"), ("kind", "Kind"), ("value_type", "ValueType"),
       ("value", "Value"), ("user", "User"), ("rationale", "Rationale"), ("source", "Source"))},
}  # fmt: skip


def _example_content(r: tuple) -> dict[str, Any]:
    """An example row's inputs, outputs, references, scores and metadata (columns 2-6 of the
    listing and export reads), as both answers give them."""
    return {
        "inputs": _json(r[2]),
        "outputs": _json(r[3]),
        "references": _json(r[4]),
        "scores": dict(sorted(r[5].items())),
        "metadata": _json(r[6]),
    }


def _json(text: str) -> Any:
    return _param(text) if text else None


def _evals_cursor(dataset: str, example_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([dataset, example_id])).decode().rstrip("=")


def _decode_evals_cursor(cursor: str) -> tuple[str, str]:
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key):
            return key[0], key[1]
    except (ValueError, TypeError):
        pass
    raise ValueError(f"bad cursor {cursor!r}: pass the next_cursor of the previous page unchanged")


def evals_page(
    store: Store, ref: str, dataset: str | None = None, limit: int = 100, cursor: str | None = None
) -> dict:
    """One page of `list_evals`, in (dataset, example id) order: {"examples": [...],
    "next_cursor": the cursor of the next page, or None on the last}. Raises ValueError for a
    bad limit or cursor."""
    if not 1 <= int(limit) <= MAX_EVALS_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_EVALS_PAGE}, got {limit}")
    after = _decode_evals_cursor(cursor) if cursor else None
    examples = list_evals(store, ref, dataset, limit=int(limit) + 1, after=after)
    more = len(examples) > int(limit)
    examples = examples[: int(limit)]
    last = examples[-1] if more else None
    return {"examples": examples, "next_cursor": _evals_cursor(last["dataset"], last["example_id"]) if last else None}


def list_evals(
    store: Store,
    ref: str,
    dataset: str | None = None,
    annotations: bool = True,
    limit: int | None = None,
    after: tuple[str, str] | None = None,
) -> list[dict]:
    """A run's eval examples in (dataset, example id) order: inputs, outputs, references,
    scores, metadata, linked trace ids, and (with `annotations`) the annotations on each
    example. `limit` and `after` (a (dataset, example id) to start after) make a page."""
    run_id = resolve(store, ref)
    cond = "AND Dataset = {dataset:String}" if dataset else ""
    params: dict[str, Any] = {"run": run_id, "dataset": dataset or ""}
    if after is not None:
        cond += " " + _AFTER_COND
        params.update(after_dataset=after[0], after_example=after[1])
    sql = _EVALS_SQL.replace("{dataset_cond}", cond).replace("{limit}", f"LIMIT {int(limit)}" if limit else "")
    _, rows = store.query(sql, parameters=params)
    notes: dict[tuple[str, str], list[dict]] = {}
    if annotations and rows:
        for a in list_annotations(store, run=run_id, target="eval"):
            notes.setdefault((a["dataset"], a["example_id"]), []).append(a)
    return [
        {
            "run_id": run_id,
            "dataset": r[0],
            "example_id": r[1],
            **_example_content(r),
            "created": _iso(r[7]),
            "updated": _iso(r[8]),
            "trace_ids": sorted(r[9] or []),
            **({"annotations": notes.get((r[0], r[1]), [])} if annotations else {}),
        }
        for r in rows
    ]


def evals_table(examples: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """`runs evals` as a table: one row per example, a column per score name, its annotations."""
    names = sorted({n for e in examples for n in e["scores"]})
    columns = ["dataset", "example_id", "inputs", "outputs", "references", *names, "annotations", "traces"]
    rows = [
        [
            e["dataset"],
            e["example_id"],
            _compact(e["inputs"]),
            _compact(e["outputs"]),
            _compact(e["references"]),
            *[e["scores"].get(n) for n in names],
            "; ".join(f"{a['kind']} {a['name']}={_compact(a['value'])}" for a in e.get("annotations") or []),
            ",".join(e["trace_ids"]),
        ]
        for e in examples
    ]
    return columns, rows


def _compact(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _difference(a: float, b: float) -> float:
    """a - b of the scores as they read (their shortest decimal forms): 0.85 - 0.8 is 0.05, where
    the doubles' own difference is 0.04999999999999993."""
    return float(Decimal(repr(a)) - Decimal(repr(b)))


def _change(base: dict[str, float] | None, other: dict[str, float] | None, score: str | None) -> tuple[str, dict]:
    """(change, {score name: delta}) of one example in `other` against `base`."""
    if base is None or other is None:
        return "missing", {}
    names = [score] if score else sorted(base.keys() & other.keys())
    deltas = {n: _difference(other[n], base[n]) for n in names if n in base and n in other}
    if any(d < 0 for d in deltas.values()):
        return "worse", deltas
    if any(d > 0 for d in deltas.values()):
        return "better", deltas
    return "same", deltas


def compare_evals(
    store: Store,
    refs: list[str],
    dataset: str | None = None,
    change: str | None = None,
    score: str | None = None,
) -> dict:
    """The examples of several runs side by side (the regression view).

    Returns {"runs": [ids], "labels": [id8], "scores": [names], "examples": [...], "summary": [...]}:
    each example has dataset, example_id, inputs, references (the first run's that has it), and
    per run `{outputs, scores, trace_ids}` or None; for each run after the first its `deltas`
    (score -> this run's minus the first run's) and its `change`. `change` keeps the examples
    with that change in at least one later run; `score` judges changes by that score alone.
    `summary` counts the changes per later run and gives each run's mean of each score."""
    if len(refs) < 2:
        raise ValueError("comparing evals needs at least two runs")
    if len(refs) > MAX_COMPARE:
        raise ValueError(f"evals compare takes at most {MAX_COMPARE} runs")
    if change is not None and change not in CHANGES:
        raise ValueError(f"change must be one of {', '.join(CHANGES)}, got {change!r}")
    ids = [resolve(store, r) for r in refs]
    if len(set(ids)) < len(ids):
        raise ValueError("compare each run once")
    per_run = [
        {(e["dataset"], e["example_id"]): e for e in list_evals(store, i, dataset, annotations=False)}
        for i in ids
    ]
    names = sorted({n for run in per_run for e in run.values() for n in e["scores"]})
    if score is not None and score not in names:
        raise ValueError(f"no score {score!r} in these runs (scores: {', '.join(names) or 'none'})")
    keys = sorted({k for run in per_run for k in run})
    labels = [i[:8] for i in ids] if len({i[:8] for i in ids}) == len(ids) else ids
    counts = [dict.fromkeys(CHANGES, 0) for _ in ids[1:]]
    examples = []
    for key in keys:
        found = [run.get(key) for run in per_run]
        first = next(e for e in found if e is not None)
        base = found[0]["scores"] if found[0] is not None else None
        changes, deltas = [], []
        for i, e in enumerate(found[1:]):
            c, d = _change(base, e["scores"] if e is not None else None, score)
            changes.append(c)
            deltas.append(d)
            counts[i][c] += 1
        if change is not None and change not in changes:
            continue
        examples.append(
            {
                "dataset": key[0],
                "example_id": key[1],
                "inputs": first["inputs"],
                "references": first["references"],
                "runs": [
                    None if e is None else {k: e[k] for k in ("outputs", "scores", "trace_ids", "metadata")}
                    for e in found
                ],
                "deltas": deltas,
                "changes": changes,
            }
        )
    means = []
    for run in per_run:
        values: dict[str, list[float]] = {}
        for e in run.values():
            for n, v in e["scores"].items():
                values.setdefault(n, []).append(v)
        means.append({n: sum(v) / len(v) for n, v in sorted(values.items())})
    summary = [
        {"run_id": i, "label": lab, "examples": len(run), "mean_scores": m, **({"changes": counts[n - 1]} if n else {})}
        for n, (i, lab, run, m) in enumerate(zip(ids, labels, per_run, means, strict=True))
    ]
    return {"runs": ids, "labels": labels, "scores": names, "examples": examples, "summary": summary}


def compare_table(result: dict) -> tuple[list[str], list[list[Any]]]:
    """`runs compare --evals` as a table: one row per example; per score each run's value, then
    the deltas of the later runs; then each later run's change."""
    labels, names = result["labels"], result["scores"]
    columns = ["dataset", "example_id"]
    for n in names:
        columns += [f"{n}@{lab}" for lab in labels] + [f"delta_{n}@{lab}" for lab in labels[1:]]
    columns += [f"change@{lab}" for lab in labels[1:]]
    rows = []
    for e in result["examples"]:
        row: list[Any] = [e["dataset"], e["example_id"]]
        for n in names:
            row += [None if r is None else r["scores"].get(n) for r in e["runs"]]
            row += [d.get(n) for d in e["deltas"]]
        rows.append(row + e["changes"])
    return columns, rows


# -- annotations ------------------------------------------------------------------------------------


def _annotation(r: tuple) -> dict:
    value: Any = r[11]
    if r[10] == "bool":
        value = r[11] == "true"
    elif r[10] == "number":
        value = int(r[11]) if r[11].lstrip("-").isdigit() else r[12]
    return {
        "id": r[0],
        "time": _iso(r[1]),
        "target": r[2],
        "trace_id": r[3],
        "span_id": r[4],
        "run_id": r[5],
        "dataset": r[6],
        "example_id": r[7],
        "name": r[8],
        "kind": r[9],
        "value_type": r[10],
        "value": value,
        "user": r[13],
        "rationale": r[14],
        "source": r[15],
    }


def annotation_from_fields(fields: dict[str, str], span_id: str, name: str, number: float | None) -> dict:
    """An annotation as list_annotations gives it, from ANNOTATION_FIELDS' map (its "time"
    already in ISO form) and the span id, name and number value read beside it."""
    f = fields
    return _annotation(
        (f["id"], f["time"], f["target"], f["trace_id"], span_id, f["run_id"], f["dataset"], f["example_id"],
         name, f["kind"], f["value_type"], f["value"], number, f["user"], f["rationale"], f["source"])
    )  # fmt: skip


def list_annotations(
    store: Store,
    trace_id: str | None = None,
    span_id: str | None = None,
    run: str | None = None,
    dataset: str | None = None,
    example_id: str | None = None,
    target: str | None = None,
    limit: int = MAX_ANNOTATIONS,
) -> list[dict]:
    """Annotations, oldest first: of a trace (with its spans' ones; `span_id` narrows to one
    span), of a run (on its eval examples and its traces; `dataset`, `example_id` and
    `target` narrow), or all."""
    cond, params = [], {}
    for column, value, name in (
        ("TraceId", trace_id, "trace"),
        ("SpanId", span_id, "span"),
        ("Dataset", dataset, "dataset"),
        ("ExampleId", example_id, "example"),
        ("Target", target, "target"),
    ):
        if value:
            cond.append(f"{column} = {{{name}:String}}")
            params[name] = value
    if run:
        params["run"] = resolve(store, run) if len(run) != 32 else run
        # An example's annotations carry its run; a trace's may not (REST does not know it).
        cond.append("RunId = {run:String}" if target == "eval" else _RUN_ANNOTATIONS)
    where = f"WHERE {' AND '.join(cond)}" if cond else ""
    _, rows = store.query(
        f"SELECT {_ANNOTATION_COLUMNS} FROM tracehouse.annotations {where} "
        f"ORDER BY Version DESC LIMIT 1 BY AnnotationId "
        f"LIMIT {max(1, min(int(limit), MAX_ANNOTATIONS))}",
        parameters=params,
    )
    return sorted((_annotation(r) for r in rows), key=lambda a: (a["time"], a["id"]))


def add_annotation(store: Store, fields: dict[str, Any]) -> dict:
    """Check an annotation (processors/evals.annotation_row) and insert it; returns it as read
    back by list_annotations. Raises ValueError for a bad one."""
    if fields.get("run_id") and len(str(fields["run_id"])) != 32:
        fields = {**fields, "run_id": resolve(store, str(fields["run_id"]))}
    try:
        row = annotation_row(fields, time.time_ns())
    except BadEvalRecord as exc:
        raise ValueError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="tracehouse-annotation-") as tmp:
        path = Path(tmp) / "annotation.jsonl"
        path.write_bytes(orjson.dumps(row) + b"\n")
        store.insert_files("annotations", str(path), "JSONEachRow", f"annotation-{row['AnnotationId']}-{row['Version']}")
    _, rows = store.query(
        f"SELECT {_ANNOTATION_COLUMNS} FROM tracehouse.annotations WHERE AnnotationId = {{id:String}} "
        "ORDER BY Version DESC LIMIT 1",
        parameters={"id": row["AnnotationId"]},
    )
    return _annotation(rows[0])


# -- export ----------------------------------------------------------------------------------------


def export_evals(store: Store, ref: str) -> dict[str, list[dict]]:
    """A run's eval examples (with each trace link's id and time) and its annotations (on its
    examples and on its traces) as a run snapshot keeps them: times in nanoseconds."""
    run_id = resolve(store, ref)
    params = {"run": run_id}
    _, rows = store.query(
        "SELECT Dataset, ExampleId, Inputs, Outputs, References, Scores, Metadata, "
        "toUnixTimestamp64Nano(CreatedTime), toUnixTimestamp64Nano(UpdatedTime) "
        "FROM tracehouse.run_evals WHERE RunId = {run:String} "
        "ORDER BY Version DESC LIMIT 1 BY Dataset, ExampleId",
        parameters=params,
    )
    _, link_rows = store.query(
        "SELECT Dataset, ExampleId, TraceId, LinkId, toUnixTimestamp64Nano(Timestamp) "
        "FROM tracehouse.run_eval_traces WHERE RunId = {run:String} "
        "ORDER BY Version DESC LIMIT 1 BY Dataset, ExampleId, TraceId",
        parameters=params,
    )
    links: dict[tuple[str, str], list[dict]] = {}
    for dataset, example, trace, link_id, ts in sorted(link_rows, key=lambda r: (r[4], r[2])):
        links.setdefault((dataset, example), []).append(
            {"trace_id": trace, "link_id": link_id, "time_unix_nano": int(ts)}
        )
    evals = [
        {
            "dataset": r[0],
            "example_id": r[1],
            **_example_content(r),
            "created_unix_nano": int(r[7]),
            "updated_unix_nano": int(r[8]),
            "traces": links.get((r[0], r[1]), []),
        }
        for r in sorted(rows, key=lambda r: (r[0], r[1]))
    ]
    _, rows = store.query(
        "SELECT AnnotationId, toUnixTimestamp64Nano(Timestamp), Target, TraceId, SpanId, Dataset, "
        "ExampleId, Name, Kind, ValueType, Value, User, Rationale, Source FROM tracehouse.annotations "
        f"WHERE {_RUN_ANNOTATIONS} ORDER BY Version DESC LIMIT 1 BY AnnotationId",
        parameters=params,
    )
    keys = ("id", "time_unix_nano", "target", "trace_id", "span_id", "dataset", "example_id", "name",
            "kind", "value_type", "value", "user", "rationale", "source")  # fmt: skip
    annotations = [dict(zip(keys, (*r[:1], int(r[1]), *r[2:]), strict=True)) for r in rows]
    annotations.sort(key=lambda a: (a["time_unix_nano"], a["id"]))
    return {"evals": evals, "annotations": annotations}
