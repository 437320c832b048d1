"""Reading experiment runs: list, show, metric history, compare. Shared by the CLI and REST.

Every function takes a Store and returns plain JSON-able values. Run references may be a full
run id or a unique prefix of at least 6 hex digits.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import orjson

from tracehouse_collector.query.filters import Field, FieldSet, KeyedField, compile_filter
from tracehouse_collector.store.client import Store

MAX_COMPARE = 100
# The LLM usage of a run shown side by side by `compare` (see llm_rollups).
LLM_FIELDS = ("calls", "errors", "accuracy", "latency_p50_ms", "latency_p95_ms", "total_tokens", "cost_usd")
_REF = re.compile(r"[0-9a-f]{6,32}")


class RunNotFound(LookupError):
    pass


# The fields `runs list --where` knows. Params are compared as numbers when the literal is a
# number, as text (strings unquoted) otherwise; metrics are the last value logged.
RUN_FIELDS = FieldSet(
    fields={
        "id": Field("RunId", "string"),
        "run": Field("RunId", "string"),
        "experiment": Field("Experiment", "string"),
        "name": Field("Name", "string"),
        "status": Field("Status", "string"),
        "parent": Field("ParentId", "string"),
        "start": Field("StartTime", "datetime"),
        "duration_s": Field("Duration", "number"),
        "service": Field("ServiceName", "string"),
    },
    keyed={
        "params": KeyedField("ParamText[{key}]", "string"),
        "metrics": KeyedField("Metrics[{key}]", "number"),
        "tags": KeyedField("Tags[{key}]", "string"),
        "metadata": KeyedField("Metadata[{key}]", "string"),
    },
)

# One row per run with its latest params and last metric values, ready for filtering.
_RUNS_SQL = """
SELECT RunId, Experiment, Name, Status, StartTime, EndTime, ParentId, Tags, Metadata, ServiceName,
    if(EndTime IS NULL, NULL, dateDiff('millisecond', StartTime, assumeNotNull(EndTime)) / 1000) AS Duration,
    Params, ParamText, Metrics
FROM (SELECT * FROM tracehouse.runs FINAL {run_where}) AS r
LEFT JOIN (
    SELECT RunId, mapFromArrays(groupArray(Key), groupArray(Value)) AS Params,
        mapFromArrays(groupArray(Key), groupArray(if(Type = 'str', JSONExtractString(Value), Value))) AS ParamText
    FROM (SELECT RunId, Key, argMax(Value, Version) AS Value, argMax(Type, Version) AS Type
          FROM tracehouse.run_params {sub_where} GROUP BY RunId, Key)
    GROUP BY RunId
) AS p USING (RunId)
LEFT JOIN (
    SELECT RunId, mapFromArrays(groupArray(Key), groupArray(toNullable(Last))) AS Metrics
    FROM (SELECT RunId, Key, argMaxMerge(Last) AS Last FROM tracehouse.run_metric_summary {sub_where}
          GROUP BY RunId, Key)
    GROUP BY RunId
) AS m USING (RunId)
{where}
ORDER BY StartTime DESC, RunId
LIMIT {limit}
"""


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _param(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _runs(
    store: Store,
    where_sql: str = "",
    params: dict | None = None,
    ids: list[str] | None = None,
    limit: int = 1000,
) -> list[dict]:
    params = dict(params or {})
    run_where = sub_where = ""
    if ids is not None:
        run_where = sub_where = "WHERE RunId IN {ids:Array(String)}"
        params["ids"] = ids
    sql = _RUNS_SQL.format(
        run_where=run_where,
        sub_where=sub_where,
        where=f"WHERE {where_sql}" if where_sql else "",
        limit=int(limit),
    )
    columns, rows = store.query(sql, parameters=params)
    out = []
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        out.append(
            {
                "id": r["RunId"],
                "experiment": r["Experiment"],
                "name": r["Name"],
                "status": r["Status"],
                "start": _iso(r["StartTime"]),
                "end": _iso(r["EndTime"]),
                "duration_s": r["Duration"],
                "parent_id": r["ParentId"] or None,
                "params": {k: _param(v) for k, v in sorted((r["Params"] or {}).items())},
                "metrics": {k: _num(v) for k, v in sorted((r["Metrics"] or {}).items())},
                "tags": dict(r["Tags"] or {}),
                "metadata": dict(r["Metadata"] or {}),
                "service": r["ServiceName"],
            }
        )
    return out


def list_runs(
    store: Store, experiment: str | None = None, where: str | None = None, limit: int = 1000
) -> list[dict]:
    """Runs, newest first. `where` is a filter over RUN_FIELDS (raises filters.FilterError)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if experiment:
        clauses.append("Experiment = {experiment:String}")
        params["experiment"] = experiment
    if where:
        compiled = compile_filter(where, RUN_FIELDS, "w")
        clauses.append(compiled.sql)
        params.update(compiled.params)
    runs = _runs(store, " AND ".join(clauses), params, limit=limit)
    ids = [r["id"] for r in runs]
    llm = llm_rollups(store, runs)
    summaries = metric_summaries(store, ids) if ids else {}
    models = linked_models(store, ids) if ids else {}
    for r in runs:  # system.* samples stay in `show`; a list shows what the run itself logged
        r["metrics"] = {k: v for k, v in r["metrics"].items() if not k.startswith("system.")}
        summary = summaries.get(r["id"], {})
        r["metrics_min"] = {k: summary[k]["min"] for k in r["metrics"] if k in summary}
        r["metrics_max"] = {k: summary[k]["max"] for k in r["metrics"] if k in summary}
        r["models"] = models.get(r["id"], [])
        r["llm"] = llm[r["id"]]
    return runs


def linked_models(store: Store, ids: list[str]) -> dict[str, list[dict]]:
    """{run id: [{name, digest, size}]}: the model files (e.g. `.luml`) the runs registered."""
    _, rows = store.query(
        "SELECT RunId, Name, Digest, Size FROM tracehouse.models FINAL WHERE RunId IN {ids:Array(String)} "
        "ORDER BY RunId, Timestamp",
        parameters={"ids": ids},
    )
    out: dict[str, list[dict]] = {}
    for run_id, name, digest, size in rows:
        out.setdefault(run_id, []).append({"name": name, "digest": digest, "size": size})
    return out


def resolve(store: Store, ref: str) -> str:
    """A full run id from an id or a unique prefix."""
    ref = (ref or "").strip().lower()
    if not _REF.fullmatch(ref):
        raise RunNotFound(f"{ref!r} is not a run id (32 hex digits, or a unique prefix of at least 6)")
    _, rows = store.query(
        "SELECT DISTINCT RunId FROM tracehouse.runs WHERE startsWith(RunId, {p:String}) LIMIT 3",
        parameters={"p": ref},
    )
    if not rows:
        raise RunNotFound(f"no run {ref!r}")
    if len(rows) > 1:
        raise RunNotFound(f"run prefix {ref!r} is ambiguous; give more digits")
    return rows[0][0]


def metric_summaries(store: Store, ids: list[str]) -> dict[str, dict[str, dict]]:
    """{run id: {key: {last, last_step, min, max, count}}}."""
    _, rows = store.query(
        "SELECT RunId, Key, argMaxMerge(Last), max(LastStep), min(Min), max(Max), sum(Count) "
        "FROM tracehouse.run_metric_summary WHERE RunId IN {ids:Array(String)} GROUP BY RunId, Key ORDER BY RunId, Key",
        parameters={"ids": ids},
    )
    out: dict[str, dict[str, dict]] = {i: {} for i in ids}
    for run_id, key, last, last_step, lo, hi, count in rows:
        out[run_id][key] = {
            "last": _num(last),
            "last_step": last_step,
            "min": _num(lo),
            "max": _num(hi),
            "count": count,
        }
    return out


def param_types(store: Store, run_id: str) -> dict[str, str]:
    _, rows = store.query(
        "SELECT Key, argMax(Type, Version) FROM tracehouse.run_params WHERE RunId = {id:String} GROUP BY Key",
        parameters={"id": run_id},
    )
    return dict(rows)


def artifacts(store: Store, run_id: str) -> list[dict]:
    columns, rows = store.query(
        "SELECT Name, Kind, Digest, Size, Path, Metadata, Timestamp FROM tracehouse.run_artifacts FINAL "
        "WHERE RunId = {id:String} ORDER BY Name",
        parameters={"id": run_id},
    )
    return [
        {
            "name": r[0],
            "kind": r[1],
            "digest": r[2],
            "size": r[3],
            "path": r[4],
            "metadata": _param(r[5]),
            "time": _iso(r[6]),
        }
        for r in rows
    ]


def show_run(store: Store, ref: str) -> dict:
    run_id = resolve(store, ref)
    found = _runs(store, ids=[run_id], limit=1)
    if not found:
        raise RunNotFound(f"no run {ref!r}")
    run = found[0]
    _, packages = store.query(
        "SELECT Packages, toUnixTimestamp64Nano(StartTime), toUnixTimestamp64Nano(EndTime) "
        "FROM tracehouse.runs FINAL WHERE RunId = {id:String}",
        parameters={"id": run_id},
    )
    run["packages"] = dict(packages[0][0]) if packages else {}
    run["start_unix_nano"] = packages[0][1] if packages else None
    run["end_unix_nano"] = packages[0][2] if packages else None
    run["param_types"] = param_types(store, run_id)
    run["metrics"] = metric_summaries(store, [run_id])[run_id]
    run["artifacts"] = artifacts(store, run_id)
    _, children = store.query(
        "SELECT RunId FROM tracehouse.runs FINAL WHERE ParentId = {id:String} ORDER BY StartTime",
        parameters={"id": run_id},
    )
    run["children"] = [c[0] for c in children]
    run["llm"] = llm_rollups(store, [run])[run_id]
    return run


def _history_sql(store: Store, ref: str, key: str | None, all_points: bool) -> tuple[str, dict[str, Any]]:
    """SQL of metric_history: Key, Step, PointValue, PointTime, then the time as Unix nanoseconds."""
    run_id = resolve(store, ref)
    params: dict[str, Any] = {"id": run_id}
    key_clause = ""
    if key:
        key_clause = "AND Key = {key:String}"
        params["key"] = key
    if all_points:
        sql = (
            "SELECT Key, Step, Value AS PointValue, Timestamp AS PointTime, toUnixTimestamp64Nano(Timestamp) "
            "FROM tracehouse.run_metrics "
            f"WHERE RunId = {{id:String}} {key_clause} ORDER BY Key, Step, Timestamp"
        )
    else:
        sql = (
            "SELECT Key, Step, argMax(Value, Timestamp) AS PointValue, max(Timestamp) AS PointTime, "
            "toUnixTimestamp64Nano(PointTime) FROM tracehouse.run_metrics "
            f"WHERE RunId = {{id:String}} {key_clause} GROUP BY Key, Step ORDER BY Key, Step"
        )
    return sql, params


def metric_history(store: Store, ref: str, key: str | None = None, all_points: bool = False) -> list[dict]:
    """Every step of a run's metrics in step order; a repeated step shows its latest value
    unless all_points (then every point, oldest first within a step)."""
    sql, params = _history_sql(store, ref, key, all_points)
    _, rows = store.query(sql, parameters=params)
    return [
        {"key": k, "step": s, "value": _num(v), "timestamp": _iso(t), "time_unix_nano": ns}
        for k, s, v, t, ns in rows
    ]


def metric_history_formatted(
    store: Store, ref: str, fmt: str, key: str | None = None, all_points: bool = False
) -> bytes:
    """The same points written by ClickHouse in output format `fmt` (ArrowStream, Parquet):
    key, step, value, timestamp (DateTime64(9), UTC)."""
    sql, params = _history_sql(store, ref, key, all_points)
    return store.query_bytes(
        f"SELECT Key AS key, Step AS step, PointValue AS value, toTimeZone(PointTime, 'UTC') AS timestamp "
        f"FROM ({sql}) ORDER BY key, step, timestamp\nFORMAT {fmt}",
        parameters=params,
    )


MAX_SERIES_POINTS = 20_000

# One metric's points over a step range (the latest value of a repeated step), then per bucket of
# steps its first, last, lowest and highest point (the M4 reduction): a chart drawn from those
# looks like one drawn from every point, spikes included, however long the history.
_SERIES_SQL = """
WITH points AS (
    SELECT Step, argMax(Value, Timestamp) AS Value
    FROM tracehouse.run_metrics
    WHERE RunId = {id:String} AND Key = {key:String} AND Step BETWEEN {lo:Int64} AND {hi:Int64}
    GROUP BY Step
)
SELECT
    min(Step), argMin(Value, Step), max(Step), argMax(Value, Step),
    argMin(Step, Value), min(Value), argMax(Step, Value), max(Value), count()
FROM points
GROUP BY intDiv(Step - {lo:Int64}, {width:Int64})
"""


def metric_series(
    store: Store,
    ref: str,
    key: str,
    max_points: int = 2000,
    min_step: int | None = None,
    max_step: int | None = None,
) -> dict:
    """A metric's [step, value] points between min_step and max_step (inclusive), at most about
    max_points of them: every point when there are few enough, else the M4 reduction over
    max_points/4 step buckets (first, last, min and max of each), which keeps every peak."""
    if not key:
        raise ValueError("key is required")
    if not 4 <= max_points <= MAX_SERIES_POINTS:
        raise ValueError(f"max_points must be between 4 and {MAX_SERIES_POINTS}")
    run_id = resolve(store, ref)
    params: dict[str, Any] = {"id": run_id, "key": key}
    _, rows = store.query(
        "SELECT min(Step), max(Step), uniqExact(Step) FROM tracehouse.run_metrics "
        "WHERE RunId = {id:String} AND Key = {key:String}",
        parameters=params,
    )
    first, last, _ = rows[0]
    lo = first if min_step is None else max(min_step, first)
    hi = last if max_step is None else min(max_step, last)
    out = {"key": key, "min_step": lo, "max_step": hi, "total": 0, "downsampled": False, "points": []}
    if not rows[0][2] or lo > hi:
        return out
    params.update(lo=lo, hi=hi)
    buckets = max(1, max_points // 4)
    width = max(1, -(-(hi - lo + 1) // buckets))  # ceil
    _, rows = store.query(_SERIES_SQL, parameters={**params, "width": width})
    total = sum(r[8] for r in rows)
    out["total"] = total
    if total <= max_points:
        _, rows = store.query(
            "SELECT Step, argMax(Value, Timestamp) FROM tracehouse.run_metrics WHERE RunId = {id:String} "
            "AND Key = {key:String} AND Step BETWEEN {lo:Int64} AND {hi:Int64} GROUP BY Step ORDER BY Step",
            parameters=params,
        )
        out["points"] = [[step, _num(v)] for step, v in rows]
        return out
    points: dict[int, Any] = {}
    for f_step, f_v, l_step, l_v, lo_step, lo_v, hi_step, hi_v, _ in rows:
        for step, value in ((f_step, f_v), (l_step, l_v), (lo_step, lo_v), (hi_step, hi_v)):
            points[step] = _num(value)
    out["points"] = [[step, points[step]] for step in sorted(points)]
    out["downsampled"] = True
    return out


def llm_rollups(store: Store, runs: list[dict]) -> dict[str, dict | None]:
    """{run id: LLM usage of the calls made inside the run, or None when it made none}: calls,
    errors, tokens, cost, p50/p95 latency, and the mean of each score attributed to the run
    (`accuracy` is the score of that name). Computed by the aggregates module (exact, raw
    spans) over the runs' whole lifetime, three queries for all runs together."""
    from tracehouse_collector.query import aggregates

    out: dict[str, dict | None] = {r["id"]: None for r in runs}
    starts = [dt.datetime.fromisoformat(r["start"]) for r in runs if r.get("start")]
    if not starts:
        return out
    # Spans logged just before a run's start record (clock skew between hosts) still count.
    since = min(starts) - dt.timedelta(minutes=5)
    # Most runs (training jobs) call no model: one cheap look at the RunId index first.
    _, rows = store.query(
        "SELECT DISTINCT RunId FROM tracehouse.otel_traces WHERE RunId IN {ids:Array(String)} "
        "AND Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})",
        parameters={"ids": list(out), "since_ns": int(since.timestamp()) * 1_000_000_000},
    )
    with_spans = sorted(r[0] for r in rows)
    if not with_spans:
        return out
    where = "run IN (" + ", ".join(f"'{i}'" for i in with_spans) + ")"  # ids are hex: nothing to escape

    def records(kind: str, by: list[str]) -> list[dict]:
        res = aggregates.aggregate(store, kind, by=by, since=since, where=where, plan="raw")
        return [dict(zip(res.columns, row, strict=True)) for row in res.rows]

    for r in records("latency", ["run"]):
        out[r["run"]] = {
            "calls": r["count"],
            "errors": round(r["error_rate"] * r["count"]),
            "latency_p50_ms": r["p50_ms"],
            "latency_p95_ms": r["p95_ms"],
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "cost_usd": 0.0,
            "accuracy": None,
            "scores": {},
        }
    for r in records("cost", ["run"]):
        usage = out.get(r["run"])
        if usage is not None:
            usage.update(
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                total_tokens=r["total_tokens"],
                cost_usd=float(r["cost_usd"]),
            )
    for r in records("accuracy", ["run"]):
        usage = out.get(r["run"])
        if usage is not None and r["mean"] is not None and math.isfinite(r["mean"]):
            usage["scores"][r["evaluation"]] = round(r["mean"], 6)
    for usage in out.values():
        if usage is not None:
            usage["accuracy"] = usage["scores"].get("accuracy")
    return out


def compare(store: Store, refs: list[str], diff_only: bool = False) -> dict:
    """Params side by side, metric summaries, and deltas of each run's last value against the first run's.

    Returns {"columns": [...], "rows": [[...]]}: columns are section, key, one per run (its id's
    first 8 digits), then delta_<id8> for every run after the first.
    """
    if len(refs) < 2:
        raise ValueError("compare needs at least two runs")
    if len(refs) > MAX_COMPARE:
        raise ValueError(f"compare takes at most {MAX_COMPARE} runs")
    ids = [resolve(store, r) for r in refs]
    by_id = {r["id"]: r for r in _runs(store, ids=ids, limit=len(ids))}
    runs = [by_id[i] for i in ids]
    summaries = metric_summaries(store, ids)
    labels = [i[:8] for i in ids]
    if len(set(labels)) < len(labels):
        labels = ids
    columns = ["section", "key", *labels, *[f"delta_{lab}" for lab in labels[1:]]]
    rows: list[list[Any]] = []

    def add(section: str, key: str, values: list[Any], numeric: bool = False) -> None:
        same = all(v == values[0] for v in values)
        if diff_only and same:
            return
        deltas: list[Any] = []
        for v in values[1:]:
            base = values[0]
            ok = numeric and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (v, base))
            deltas.append(v - base if ok else None)
        rows.append([section, key, *values, *deltas])

    for field in ("experiment", "name", "status", "start", "duration_s"):
        add("run", field, [r[field] for r in runs], numeric=field == "duration_s")
    for key in sorted({k for r in runs for k in r["params"]}):
        values = [r["params"].get(key) for r in runs]
        add("param", key, values, numeric=True)
    for key in sorted({k for s in summaries.values() for k in s}):
        for stat in ("last", "min", "max", "count"):
            values = [summaries[i].get(key, {}).get(stat) for i in ids]
            add(f"metric.{stat}", key, values, numeric=True)
    llm = llm_rollups(store, runs)
    if any(llm.values()):
        for field in LLM_FIELDS:
            add("llm", field, [(llm[i] or {}).get(field) for i in ids], numeric=True)
        for name in sorted({n for u in llm.values() if u for n in u["scores"]}):
            add("llm.score", name, [(llm[i] or {}).get("scores", {}).get(name) for i in ids], numeric=True)
    return {"columns": columns, "rows": rows, "runs": ids, "llm": llm}


def export_data(store: Store, ref: str) -> dict:
    """Everything about one run, for a snapshot: the run, typed params, every metric point, artifacts."""
    run = show_run(store, ref)
    run["metric_points"] = metric_history(store, run["id"], all_points=True)
    return run
