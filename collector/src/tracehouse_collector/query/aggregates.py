"""Latency, cost, error and accuracy aggregates, grouped by any of a fixed set of dimensions.

    aggregate(store, "latency", by=["model"], since="24h")

Two plans answer latency and cost (see `plan_for`):
- raw: scan `otel_traces`. Percentiles are exact (quantileExactInclusive, the same linear
  interpolation as numpy's default).
- rollup: read `llm_usage_1h` for the whole hours of the range, `llm_usage_1m` for the whole
  minutes at its edges, and make the same aggregate states from raw spans for the partial
  minutes left, then merge them all (`split_range`). Counts, token sums and costs are exact;
  percentiles come from DDSketch states (quantilesDD): each is within 1% (relative) of a
  value ranked at the quantile (between the two values the exact interpolation uses).
Errors and accuracy always read raw rows (errors need `error.type`; scores are few).

Cost rows carry `unpriced_calls` and `unpriced_tokens`: calls of models nobody prices
(PriceSource 'unpriced'), whose cost is missing rather than 0. A group with unpriced calls and
no priced spend has a null `cost_usd`, never a 0 that reads as free. `unpriced=True`
(`tracehouse query cost --unpriced`) lists those models instead, with their calls and tokens,
so a user can add them to a price file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from tracehouse_collector.processors.normalize import NON_MODEL_OPERATIONS
from tracehouse_collector.query.filters import (
    MODEL_SQL,
    SPAN_FIELDS,
    Compiled,
    Field,
    FieldSet,
    FilterError,
    compile_filter,
)
from tracehouse_collector.query.sql import READONLY_SETTINGS, SqlResult, settings_clause
from tracehouse_collector.store import schema

QueryResult = SqlResult

KINDS = ("latency", "cost", "accuracy", "errors")
LEVELS = schema.ROLLUP_LEVELS
LEVEL_NAMES = tuple(f"p{round(q * 100)}" for q in LEVELS)  # p50 p90 p95 p99
# Ranges at least this long go to the rollup when it can answer them: a short range scans few
# raw spans and keeps percentiles exact.
ROLLUP_MIN_RANGE = dt.timedelta(hours=6)
DEFAULT_SINCE = "24h"
DB = schema.DATABASE


@dataclass(frozen=True)
class Dim:
    raw: str  # expression over otel_traces
    rollup: str | None  # expression over the rollup tables, None if they cannot group by it
    time: bool = False


DIMENSIONS: dict[str, Dim] = {
    "model": Dim(MODEL_SQL, "Model"),
    "provider": Dim("GenAIProvider", "GenAIProvider"),
    "operation": Dim("GenAIOperation", "GenAIOperation"),
    "service": Dim("ServiceName", "ServiceName"),
    "span": Dim("SpanName", "SpanName"),
    "experiment": Dim("ExperimentName", "ExperimentName"),
    "run": Dim("RunId", None),
    "session": Dim("SessionId", None),
    "user": Dim("UserId", None),
    "minute": Dim("toStartOfMinute(toDateTime(Timestamp, 'UTC'))", "toDateTime(Start, 'UTC')", True),
    "hour": Dim(
        "toStartOfHour(toDateTime(Timestamp, 'UTC'))", "toStartOfHour(toDateTime(Start, 'UTC'))", True
    ),
    "day": Dim("toStartOfDay(toDateTime(Timestamp, 'UTC'))", "toStartOfDay(toDateTime(Start, 'UTC'))", True),
}

# The filter fields the rollup keeps, as its own columns.
ROLLUP_FIELDS = FieldSet(
    fields={
        "model": Field("Model", "string"),
        "provider": Field("GenAIProvider", "string"),
        "operation": Field("GenAIOperation", "string"),
        "service": Field("ServiceName", "string"),
        "span": Field("SpanName", "string"),
        "experiment": Field("ExperimentName", "string"),
    }
)


class QueryError(ValueError):
    """A bad query parameter (dimension, kind, time); the message says which and why."""


# -- time ------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: object, now: dt.datetime | None = None, what: str = "time") -> dt.datetime | None:
    """`24h`, `30d`, `15m` (that long before now), an ISO 8601 timestamp (UTC unless it says
    otherwise), or a datetime; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        raise QueryError(f"{what}: expected a duration such as 24h or an ISO timestamp, got {value!r}")
    now = now or dt.datetime.now(dt.UTC)
    m = _DURATION.match(value)
    if m:
        return now - dt.timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(
            f"{what}: {value!r} is neither a duration (15m, 24h, 30d) nor an ISO timestamp "
            "(2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- the query ------------------------------------------------------------------------------


@dataclass
class Request:
    kind: str
    by: list[str]
    since: dt.datetime | None
    until: dt.datetime | None
    service: str | None
    where: str | None
    all_spans: bool

    @classmethod
    def make(cls, kind, by, since, until, service, where, all_spans, now=None) -> Request:
        if kind not in KINDS:
            raise QueryError(f"unknown aggregate {kind!r}; use one of {', '.join(KINDS)}")
        if isinstance(by, str):
            by = [by]
        dims = [d.strip().lower() for part in (by or []) for d in str(part).split(",") if d.strip()]
        for d in dims:
            if d not in DIMENSIONS:
                raise QueryError(f"unknown dimension {d!r}; use any of {', '.join(DIMENSIONS)}")
        if len(set(dims)) != len(dims):
            raise QueryError(f"a dimension is repeated in --by {','.join(dims)}")
        now = now or dt.datetime.now(dt.UTC)
        since_t = parse_time(DEFAULT_SINCE if since is None else since, now, "since")
        until_t = parse_time(until, now, "until")
        if since_t and until_t and until_t <= since_t:
            raise QueryError(f"until ({_ts(until_t)}) must be after since ({_ts(since_t)})")
        if where is not None and not isinstance(where, str):
            raise QueryError("where: expected a filter expression as text")
        return cls(kind, dims, since_t, until_t, service or None, where or None, bool(all_spans))


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, name: str, value: object, ch_type: str) -> str:
        self.values[name] = value
        return "{" + name + ":" + ch_type + "}"


def _time_range(
    col: str, lo: dt.datetime | None, hi: dt.datetime | None, params: _Params, tag: str
) -> list[str]:
    out = []
    if lo is not None:
        out.append(f"{col} >= toDateTime64({params.add(tag + '_lo', _ts(lo), 'String')}, 9, 'UTC')")
    if hi is not None:
        out.append(f"{col} < toDateTime64({params.add(tag + '_hi', _ts(hi), 'String')}, 9, 'UTC')")
    return out


# "LLM spans": calls of a model. Agent, workflow and tool steps carry a GenAI operation too, but
# no tokens of their own; counting them would add a model-less row and skew latencies.
MODEL_CALL = "GenAIOperation != '' AND GenAIOperation NOT IN ({})".format(
    ", ".join(f"'{op}'" for op in sorted(NON_MODEL_OPERATIONS))
)


def _raw_conditions(req: Request, params: _Params, compiled: Compiled | None, *, llm_only: bool) -> list[str]:
    cond = []
    if llm_only and not req.all_spans:
        cond.append(MODEL_CALL)
    if req.service:
        cond.append(f"ServiceName = {params.add('service', req.service, 'String')}")
    if compiled is not None:
        cond.append(compiled.sql)
        params.values.update(compiled.params)
    return cond


def _where(conditions: list[str]) -> str:
    return ("WHERE " + "\n  AND ".join(conditions)) if conditions else ""


def _dim_select(dims: list[str], which: str) -> list[str]:
    return [f"{getattr(DIMENSIONS[d], which)} AS {d}" for d in dims]


def _group_order(dims: list[str]) -> str:
    if not dims:
        return ""
    keys = ", ".join(dims)
    return f"GROUP BY {keys}\nORDER BY {keys}"


def _qcols(prefix: str, array: str) -> list[str]:
    return [f"round({array}[{i + 1}], 3) AS {prefix}{name}_ms" for i, name in enumerate(LEVEL_NAMES)]


def _levels() -> str:
    return ", ".join(str(q) for q in LEVELS)


# -- plans -----------------------------------------------------------------------------------


def rollup_can_answer(req: Request) -> bool:
    """Latency or cost, and every dimension and filter field is a column of the rollup."""
    if req.kind not in ("latency", "cost"):
        return False
    if any(DIMENSIONS[d].rollup is None for d in req.by):
        return False
    if req.where:
        try:
            compile_filter(req.where, ROLLUP_FIELDS)
        except FilterError:
            return False
    return True


def plan_for(req: Request, now: dt.datetime | None = None) -> str:
    """'rollup' when the rollup can answer and the range is at least ROLLUP_MIN_RANGE long;
    else 'raw'."""
    if not rollup_can_answer(req):
        return "raw"
    if req.since is None:
        return "rollup"
    until = req.until or now or dt.datetime.now(dt.UTC)
    return "rollup" if until - req.since >= ROLLUP_MIN_RANGE else "raw"


def _latency_raw(req: Request, params: _Params, compiled: Compiled | None) -> str:
    ttft = schema.TTFT_MS_SQL
    cond = _raw_conditions(req, params, compiled, llm_only=True)
    cond += _time_range("Timestamp", req.since, req.until, params, "t")
    inner = [
        *_dim_select(req.by, "raw"),
        "count() AS count",
        f"quantilesExactInclusive({_levels()})(Duration / 1e6) AS q",
        "avg(Duration) / 1e6 AS mean_ms",
        "max(Duration) / 1e6 AS max_ms",
        "countIf(StatusCode = 'Error') / count() AS error_rate",
        f"countIf(isNotNull({ttft})) AS ttft_count",
        f"quantilesExactInclusiveIf({_levels()})(assumeNotNull({ttft}), isNotNull({ttft})) AS tq",
    ]
    return _latency_outer(req, inner, f"{DB}.otel_traces", cond)


def _latency_outer(req: Request, inner: list[str], source: str, cond: list[str]) -> str:
    cols = [
        *req.by,
        "count",
        *_qcols("", "q"),
        "round(mean_ms, 3) AS mean_ms",
        "round(max_ms, 3) AS max_ms",
        "error_rate",
        "ttft_count",
        *[
            f"if(ttft_count > 0, round(tq[{i + 1}], 3), NULL) AS ttft_{n}_ms"
            for i, n in enumerate(LEVEL_NAMES)
        ],
    ]
    group = f"GROUP BY {', '.join(req.by)}" if req.by else ""
    order = f"ORDER BY {', '.join(req.by)}" if req.by else ""
    return (
        f"SELECT {', '.join(cols)}\nFROM (\nSELECT {', '.join(inner)}\nFROM {source}\n{_where(cond)}\n{group}\n)"
        f"\n{order}"
    )


def _cost(total: str) -> str:
    # Null when the group has unpriced calls and no priced spend: unknown, not free.
    return f"if(unpriced_calls > 0 AND {total} = 0, NULL, {total})"


def _cost_raw(req: Request, params: _Params, compiled: Compiled | None) -> str:
    cond = _raw_conditions(req, params, compiled, llm_only=True)
    cond += _time_range("Timestamp", req.since, req.until, params, "t")
    cols = [
        *_dim_select(req.by, "raw"),
        "count() AS count",
        "sum(InputTokens) AS input_tokens",
        "sum(OutputTokens) AS output_tokens",
        "sum(CacheReadTokens) AS cache_read_tokens",
        "sum(CacheWriteTokens) AS cache_write_tokens",
        "sum(ReasoningTokens) AS reasoning_tokens",
        "sum(TotalTokens) AS total_tokens",
        f"{_cost('sum(TotalCostUSD)')} AS cost_usd",
        "if(total_tokens > 0, sumIf(TotalTokens, TokensEstimated) / total_tokens, 0) AS estimated_share",
        f"countIf({schema.UNPRICED_SQL}) AS unpriced_calls",
        f"sumIf(TotalTokens, {schema.UNPRICED_SQL}) AS unpriced_tokens",
    ]
    return f"SELECT {', '.join(cols)}\nFROM {DB}.otel_traces\n{_where(cond)}\n{_group_order(req.by)}"


# Which models lack a price: grouped by provider and model unless --by says otherwise.
UNPRICED_DIMS = ["provider", "model"]
UNPRICED_COLUMNS = ["calls", "input_tokens", "output_tokens", "total_tokens", "first_seen", "last_seen"]


def _unpriced(req: Request, params: _Params, compiled: Compiled | None) -> str:
    cond = _raw_conditions(req, params, compiled, llm_only=True) + [schema.UNPRICED_SQL]
    cond += _time_range("Timestamp", req.since, req.until, params, "t")
    dims = req.by or UNPRICED_DIMS
    cols = [
        *_dim_select(dims, "raw"),
        "count() AS calls",
        "sum(InputTokens) AS input_tokens",
        "sum(OutputTokens) AS output_tokens",
        "sum(TotalTokens) AS total_tokens",
        "min(Timestamp) AS first_seen",
        "max(Timestamp) AS last_seen",
    ]
    order = ", ".join(["calls DESC", *dims])
    return f"SELECT {', '.join(cols)}\nFROM {DB}.otel_traces\n{_where(cond)}\nGROUP BY {', '.join(dims)}\nORDER BY {order}"


Segment = tuple[str, "dt.datetime | None", "dt.datetime | None"]  # (source table, from, until)
_MINUTE = dt.timedelta(minutes=1)
_HOUR = dt.timedelta(hours=1)


def _floor(t: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return t - (t - epoch) % step


def _ceil(t: dt.datetime, step: dt.timedelta) -> dt.datetime:
    floor = _floor(t, step)
    return floor if floor == t else floor + step


def split_range(
    lo: dt.datetime | None, hi: dt.datetime | None, levels: list[tuple[str, dt.timedelta]]
) -> list[Segment]:
    """Cover [lo, hi) with the coarsest rollup that fits whole periods, finer ones at the
    edges and raw spans (`otel_traces`) for the partial minutes left over."""
    if not levels:
        return [("otel_traces", lo, hi)] if lo is None or hi is None or lo < hi else []
    (table, step), finer = levels[0], levels[1:]
    a = _ceil(lo, step) if lo is not None else None
    b = _floor(hi, step) if hi is not None else None
    if a is not None and b is not None and b <= a:  # no whole period inside
        return split_range(lo, hi, finer)
    out: list[Segment] = []
    if lo is not None and a is not None and a > lo:
        out += split_range(lo, a, finer)
    out.append((table, a, b))
    if hi is not None and b is not None and b < hi:
        out += split_range(b, hi, finer)
    return out


def _rollup_source(
    req: Request, params: _Params, raw_filter: Compiled | None, roll_filter: Compiled | None
) -> str:
    """UNION ALL of rollup rows for the whole hours (or minutes) of the range and the same
    states made from raw spans in the partial minutes at its edges."""
    levels = [("llm_usage_1m", _MINUTE)]
    if "minute" not in req.by:
        levels.insert(0, ("llm_usage_1h", _HOUR))
    state_cols = [f"{expr} AS {alias}" for expr, alias in schema.USAGE_STATES]
    keep = [alias for _, alias in schema.USAGE_STATES]
    group = f"GROUP BY {', '.join(req.by)}" if req.by else ""
    parts = []
    for i, (table, a, b) in enumerate(split_range(req.since, req.until, levels)):
        if table == "otel_traces":
            cond = _raw_conditions(req, params, raw_filter, llm_only=True)
            cond += _time_range("Timestamp", a, b, params, f"s{i}")
            select = ", ".join(_dim_select(req.by, "raw") + state_cols)
            parts.append(f"SELECT {select}\nFROM {DB}.otel_traces\n{_where(cond)}\n{group}")
        else:
            cond = _raw_conditions(req, params, roll_filter, llm_only=True)
            cond += _time_range("Start", a, b, params, f"s{i}")
            select = ", ".join(_dim_select(req.by, "rollup") + keep)
            parts.append(f"SELECT {select}\nFROM {DB}.{table}\n{_where(cond)}")
    return "(\n" + "\nUNION ALL\n".join(parts) + "\n)"


def _dd_merge(column: str) -> str:
    return f"quantilesDDMerge({schema.ROLLUP_RELATIVE_ERROR}, {_levels()})({column})"


def _latency_rollup(req: Request, params: _Params, raw_f: Compiled | None, roll_f: Compiled | None) -> str:
    inner = [
        *req.by,
        "sum(Spans) AS count",
        f"{_dd_merge('DurationMs')} AS q",
        "sum(DurationSumNs) / count / 1e6 AS mean_ms",
        "max(DurationMaxNs) / 1e6 AS max_ms",
        "sum(Errors) / count AS error_rate",
        "sum(TtftSpans) AS ttft_count",
        f"{_dd_merge('TtftMs')} AS tq",
    ]
    return _latency_outer(req, inner, _rollup_source(req, params, raw_f, roll_f), [])


def _cost_rollup(req: Request, params: _Params, raw_f: Compiled | None, roll_f: Compiled | None) -> str:
    cols = [
        *req.by,
        "sum(Spans) AS count",
        "sum(InputTokens) AS input_tokens",
        "sum(OutputTokens) AS output_tokens",
        "sum(CacheReadTokens) AS cache_read_tokens",
        "sum(CacheWriteTokens) AS cache_write_tokens",
        "sum(ReasoningTokens) AS reasoning_tokens",
        "sum(TotalTokens) AS total_tokens",
        f"{_cost('sum(CostUSD)')} AS cost_usd",
        "if(total_tokens > 0, sum(EstimatedTokens) / total_tokens, 0) AS estimated_share",
        "sum(UnpricedSpans) AS unpriced_calls",
        "sum(UnpricedTokens) AS unpriced_tokens",
    ]
    source = _rollup_source(req, params, raw_f, roll_f)
    return f"SELECT {', '.join(cols)}\nFROM {source}\n{_group_order(req.by)}"


def _errors(req: Request, params: _Params, compiled: Compiled | None) -> str:
    cond = _raw_conditions(req, params, compiled, llm_only=True)
    cond += _time_range("Timestamp", req.since, req.until, params, "t")
    error_type = (
        "multiIf(SpanAttributes['error.type'] != '', SpanAttributes['error.type'], "
        "StatusCode = 'Error', if(StatusMessage != '', 'status: ' || left(StatusMessage, 80), '_OTHER'), '')"
    )
    inner = [*_dim_select(req.by, "raw"), f"{error_type} AS error_type", "count() AS n"]
    keys = [*req.by, "error_type"]
    partition = f"PARTITION BY {', '.join(req.by)}" if req.by else ""
    return (
        f"SELECT {', '.join(keys)}, errors, spans, errors / spans AS error_rate\nFROM (\n"
        f"SELECT {', '.join(keys)}, n AS errors, sum(n) OVER ({partition}) AS spans\nFROM (\n"
        f"SELECT {', '.join(inner)}\nFROM {DB}.otel_traces\n{_where(cond)}\nGROUP BY {', '.join(keys)}\n))\n"
        f"WHERE error_type != ''\nORDER BY {', '.join(req.by + ['errors DESC', 'error_type'])}"
    )


# Dimensions of a score's subject: the evaluated span, or for a trace-level score (no span id)
# the trace (its first LLM call's model, provider and operation, its root span's service and
# name, any run/session/user it carries).
_TRACE_DIMS = {
    "model": f"argMinIf({MODEL_SQL}, Timestamp, {MODEL_SQL} != '')",
    "provider": "argMinIf(GenAIProvider, Timestamp, GenAIProvider != '')",
    "operation": "argMinIf(GenAIOperation, Timestamp, GenAIOperation != '')",
    "service": "argMin(ServiceName, Timestamp)",
    "span": "argMin(SpanName, Timestamp)",
    "experiment": "anyIf(ExperimentName, ExperimentName != '')",
    "run": "anyIf(RunId, RunId != '')",
    "session": "anyIf(SessionId, SessionId != '')",
    "user": "anyIf(UserId, UserId != '')",
}
_SUBJECT_DIMS = tuple(_TRACE_DIMS)


def _accuracy(req: Request, params: _Params, compiled: Compiled | None) -> str:
    score_cond = _time_range("Timestamp", req.since, req.until, params, "t")
    scored = _where([*score_cond, "TraceId != ''"])
    scored_traces = f"SELECT TraceId FROM {DB}.otel_scores {scored}"
    span_cond = [f"TraceId IN ({scored_traces})"] + _raw_conditions(req, params, compiled, llm_only=False)
    span_dims = ", ".join(f"{DIMENSIONS[d].raw} AS {d}" for d in _SUBJECT_DIMS)
    trace_dims = ", ".join(f"{_TRACE_DIMS[d]} AS {d}" for d in _SUBJECT_DIMS)
    subject = (
        f"SELECT TraceId, SpanId, {span_dims}, 1 AS matched FROM {DB}.otel_traces {_where(span_cond)}\n"
        f"UNION ALL\nSELECT TraceId, '' AS SpanId, {trace_dims}, 1 AS matched FROM {DB}.otel_traces "
        f"{_where(span_cond)} GROUP BY TraceId"
    )
    dims = []
    for d in req.by:
        if DIMENSIONS[d].time:
            dims.append(DIMENSIONS[d].raw.replace("Timestamp", "s.Timestamp") + f" AS {d}")
        elif d == "run":
            dims.append("if(s.RunId != '', s.RunId, t.run) AS run")
        else:
            dims.append(f"t.{d} AS {d}")
    outer_cond = score_cond_s = [c.replace("Timestamp", "s.Timestamp") for c in score_cond]
    if compiled is not None or req.service:
        outer_cond = score_cond_s + ["t.matched = 1"]
    cols = [
        *dims,
        "s.Name AS evaluation",
        "count() AS count",
        "avg(s.Value) AS mean",
        "countIf(isNotNull(s.Value)) AS scored",
        "CAST(sumMapIf([s.Label], [toUInt64(1)], s.Label != '') AS Map(String, UInt64)) AS labels",
    ]
    keys = [*req.by, "evaluation"]
    return (
        f"SELECT {', '.join(cols)}\nFROM {DB}.otel_scores AS s\nLEFT JOIN (\n{subject}\n) AS t\n"
        f"ON s.TraceId = t.TraceId AND s.SpanId = t.SpanId\n{_where(outer_cond)}\n"
        f"GROUP BY {', '.join(keys)}\nORDER BY {', '.join(keys)}"
    )


def build(
    kind: str,
    by: list[str] | str | None = None,
    since=None,
    until=None,
    service: str | None = None,
    where: str | None = None,
    all_spans: bool = False,
    plan: str = "auto",
    now: dt.datetime | None = None,
    unpriced: bool = False,
) -> tuple[str, dict[str, object], str]:
    """(SQL, parameters, plan used) for an aggregate; raises QueryError or FilterError."""
    req = Request.make(kind, by, since, until, service, where, all_spans, now)
    compiled = compile_filter(req.where, SPAN_FIELDS) if req.where else None
    if unpriced:
        if kind != "cost":
            raise QueryError(f"unpriced: only the cost aggregate lists unpriced models, not {kind}")
        if plan == "rollup":
            raise QueryError("unpriced: the list of unpriced models reads raw spans; use plan auto or raw")
        params = _Params()
        return _unpriced(req, params, compiled), params.values, "raw"
    chosen = plan_for(req, now) if plan == "auto" else plan
    if chosen not in ("raw", "rollup"):
        raise QueryError(f"unknown plan {plan!r}; use auto, raw or rollup")
    if chosen == "rollup" and not rollup_can_answer(req):
        raise QueryError(f"the rollup cannot answer this {kind} query (dimension or filter field not in it)")
    params = _Params()
    if chosen == "rollup":
        roll = compile_filter(req.where, ROLLUP_FIELDS) if req.where else None
        fn = _latency_rollup if kind == "latency" else _cost_rollup
        sql = fn(req, params, compiled, roll)
    else:
        sql = {"latency": _latency_raw, "cost": _cost_raw, "errors": _errors, "accuracy": _accuracy}[kind](
            req, params, compiled
        )
    return sql, params.values, chosen


def aggregate(
    store,
    kind: str,
    by: list[str] | str | None = None,
    since=None,
    until=None,
    service: str | None = None,
    where: str | None = None,
    all_spans: bool = False,
    plan: str = "auto",
    unpriced: bool = False,
) -> QueryResult:
    """Run an aggregate; rows are tuples in `columns` order. Raises QueryError/FilterError
    (both ValueError) for bad parameters and StoreError for store failures."""
    sql, params, _ = build(kind, by, since, until, service, where, all_spans, plan, unpriced=unpriced)
    columns, rows = store.query(sql, parameters=params, settings=dict(READONLY_SETTINGS))
    if not rows:  # the embedded engine names no columns for an empty result
        dims = Request.make(kind, by, since, until, service, where, all_spans).by
        columns = output_columns(kind, dims, unpriced)
    return QueryResult(columns, rows)


def output_columns(kind: str, by: list[str], unpriced: bool = False) -> list[str]:
    if unpriced:
        return [*(by or UNPRICED_DIMS), *UNPRICED_COLUMNS]
    tail = {
        "latency": [
            "count",
            *[f"{n}_ms" for n in LEVEL_NAMES],
            "mean_ms",
            "max_ms",
            "error_rate",
            "ttft_count",
            *[f"ttft_{n}_ms" for n in LEVEL_NAMES],
        ],
        "cost": [
            "count",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "estimated_share",
            "unpriced_calls",
            "unpriced_tokens",
        ],
        "errors": ["error_type", "errors", "spans", "error_rate"],
        "accuracy": ["evaluation", "count", "mean", "scored", "labels"],
    }
    return [*by, *tail[kind]]


def aggregate_parquet(store, kind: str, **kwargs) -> bytes:
    """The same result as a Parquet file, written by ClickHouse itself."""
    return aggregate_formatted(store, kind, "Parquet", **kwargs)


def aggregate_formatted(store, kind: str, fmt: str, **kwargs) -> bytes:
    """The same result in ClickHouse output format `fmt` (Parquet, ArrowStream); the time
    dimensions (minute, hour, day) are DateTime columns (see column_types)."""
    sql, params, _ = build(kind, **kwargs)
    # In the statement itself: settings passed beside a raw query would stay on the connection.
    return store.query_bytes(
        f"{sql}\nSETTINGS {settings_clause(READONLY_SETTINGS)}\nFORMAT {fmt}", parameters=params
    )


def column_types(names) -> list[str]:
    """The ClickHouse type of the time dimensions among an aggregate's columns ("" for others)."""
    return ["DateTime" if name in DIMENSIONS and DIMENSIONS[name].time else "" for name in names]

