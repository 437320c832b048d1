"""Latency, cost, error and accuracy aggregates, grouped by any of a fixed set of dimensions.

    aggregate(store, "latency", by=["model"], since="24h")

Two plans answer latency and cost (see `plan_for`):
- raw: scan `otel_traces`.
- rollup: read `llm_usage_1h` for the whole hours of the range, `llm_usage_1m` for the whole
  minutes at its edges, and make the same aggregate states from raw spans for the partial
  minutes left, then merge them all (`split_range`). Counts, token sums and costs are exact.

Percentiles have one definition on both plans: numpy's default, linear interpolation between
the values ranked floor(h) and ceil(h), h = q * (n - 1) (quantileExactInclusive). The raw plan
computes it exactly; so does the rollup plan for groups of at most EXACT_MAX_COUNT calls (from
their raw spans). Larger groups on the rollup plan read DDSketch states (quantilesDD): the
answer is within ROLLUP_RELATIVE_ERROR (relative) of a value ranked between floor(h) and
ceil(h), clamped to the group's [min, max] (a sketch's bucket may lie just outside the
values it holds). Every latency row says which it is:
`percentiles_error` is 0 for exact answers, else the relative error bound.
Errors and accuracy always read raw rows (errors by their ErrorType column; scores are few).

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
from tracehouse_collector.query.dimensions import DIMENSIONS, KINDS
from tracehouse_collector.query.filters import (
    SPAN_FIELDS,
    Compiled,
    Field,
    FieldSet,
    FilterError,
    compile_filter,
)
from tracehouse_collector.query.model_identity import MODEL_SQL, ROLLUP_MODEL_SQL
from tracehouse_collector.query.sql import READONLY_SETTINGS, SqlResult, settings_clause
from tracehouse_collector.store import schema

QueryResult = SqlResult

LEVELS = schema.ROLLUP_LEVELS
LEVEL_NAMES = tuple(f"p{round(q * 100)}" for q in LEVELS)  # p50 p90 p95 p99
# Ranges at least this long go to the rollup when it can answer them: a short range scans few
# raw spans and keeps percentiles exact.
ROLLUP_MIN_RANGE = dt.timedelta(hours=6)
DEFAULT_SINCE = "24h"
DB = schema.DATABASE


# The filter fields the rollup keeps, as its own columns.
ROLLUP_FIELDS = FieldSet(
    fields={
        "model": Field(ROLLUP_MODEL_SQL, "string"),
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


def _exact_percentiles() -> list[str]:
    """Exact percentiles of duration (eq) and time to first token (etq) over raw spans:
    quantileExactInclusive, numpy's default linear interpolation."""
    ttft = schema.TTFT_MS_COLUMN
    return [
        f"quantilesExactInclusive({_levels()})(Duration / 1e6) AS eq",
        f"quantilesExactInclusiveIf({_levels()})(assumeNotNull({ttft}), isNotNull({ttft})) AS etq",
    ]


def _exact_states(req: Request, params: _Params, compiled: Compiled | None, extra: list[str]) -> str:
    """Per group of raw LLM spans in the range (and `extra` conditions): the count and the
    exact percentiles."""
    cond = _raw_conditions(req, params, compiled, llm_only=True)
    cond += _time_range("Timestamp", req.since, req.until, params, "t") + extra
    cols = [*(_dim_select(req.by, "raw") or ["1 AS _all"]), "count() AS exact_count", *_exact_percentiles()]
    group = f"\nGROUP BY {', '.join(req.by)}" if req.by else ""
    return f"SELECT {', '.join(cols)}\nFROM {DB}.otel_traces\n{_where(cond)}{group}"


def _keys(req: Request) -> list[str]:
    return req.by or ["_all"]


def _latency_raw(req: Request, params: _Params, compiled: Compiled | None) -> str:
    cond = _raw_conditions(req, params, compiled, llm_only=True)
    cond += _time_range("Timestamp", req.since, req.until, params, "t")
    inner = [
        *_dim_select(req.by, "raw"),
        "count() AS count",
        "avg(Duration) / 1e6 AS mean_ms",
        "max(Duration) / 1e6 AS max_ms",
        "countIf(StatusCode = 'Error') / count() AS error_rate",
        f"countIf(isNotNull({schema.TTFT_MS_COLUMN})) AS ttft_count",
        *_exact_percentiles(),
    ]
    group = f"GROUP BY {', '.join(req.by)}" if req.by else ""
    source = f"(\nSELECT {', '.join(inner)}\nFROM {DB}.otel_traces\n{_where(cond)}\n{group}\n)"
    return _latency_outer(req, source, exact="1")


def _latency_outer(req: Request, source: str, exact: str, extra: list[str] | None = None) -> str:
    """The latency columns from `source`, which has count, max_ms, mean_ms, error_rate,
    ttft_count, exact percentile arrays eq/etq and, where `exact` can be false, sketch arrays
    q/tq with the groups' ranges (min_ms, max_ms, ttft_min_ms, ttft_max_ms). A sketch's answer
    is kept inside its group's range and its row says how far it may be off
    (percentiles_error)."""

    def pick(i: int, exact_arr: str, sketch_arr: str, lo: str, hi: str) -> str:
        sketch = f"least(greatest({sketch_arr}[{i}], {lo}), {hi})"
        if exact in ("0", "1"):
            return sketch if exact == "0" else f"{exact_arr}[{i}]"
        return f"if({exact}, {exact_arr}[{i}], {sketch})"

    cols = [
        *req.by,
        "count",
        *[
            f"round({pick(i + 1, 'eq', 'q', 'min_ms', 'max_ms')}, 3) AS {n}_ms"
            for i, n in enumerate(LEVEL_NAMES)
        ],
        "round(mean_ms, 3) AS mean_ms",
        "round(max_ms, 3) AS max_ms",
        "error_rate",
        "ttft_count",
        *[
            f"if(ttft_count > 0, round({pick(i + 1, 'etq', 'tq', 'ttft_min_ms', 'ttft_max_ms')}, 3), NULL) AS ttft_{n}_ms"
            for i, n in enumerate(LEVEL_NAMES)
        ],
        f"if({exact}, 0, {schema.ROLLUP_RELATIVE_ERROR}) AS percentiles_error",
        *(extra or []),
    ]
    order = f"\nORDER BY {', '.join(req.by)}" if req.by else ""
    return f"SELECT {', '.join(cols)}\nFROM {source}{order}"


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
    req: Request,
    params: _Params,
    raw_filter: Compiled | None,
    roll_filter: Compiled | None,
    *,
    window: bool = False,
) -> str:
    """UNION ALL of rollup rows for the whole hours (or minutes) of the range and the same
    states made from raw spans in the partial minutes at its edges. `window` adds the time
    window each row covers (FirstAt, LastAt: Unix seconds)."""
    levels = [("llm_usage_1m", _MINUTE)]
    if "minute" not in req.by:
        levels.insert(0, ("llm_usage_1h", _HOUR))
    # The rollup's states, made from raw spans' stored TTFT column rather than their attributes.
    state_cols = [
        f"{expr.replace(schema.TTFT_MS_SQL, schema.TTFT_MS_COLUMN)} AS {alias}" for expr, alias in schema.USAGE_STATES
    ]
    keep = [alias for _, alias in schema.USAGE_STATES]
    if window:
        state_cols += [
            "toUInt32(toUnixTimestamp(min(Timestamp))) AS FirstAt",
            "toUInt32(toUnixTimestamp(max(Timestamp))) + 1 AS LastAt",
        ]
    group = f"GROUP BY {', '.join(req.by)}" if req.by else ""
    parts = []
    for i, (table, a, b) in enumerate(split_range(req.since, req.until, levels)):
        if table == "otel_traces":
            cond = _raw_conditions(req, params, raw_filter, llm_only=True)
            cond += _time_range("Timestamp", a, b, params, f"s{i}")
            select = _dim_select(req.by, "raw") + state_cols
            parts.append(f"SELECT {', '.join(select)}\nFROM {DB}.otel_traces\n{_where(cond)}\n{group}")
        else:
            cond = _raw_conditions(req, params, roll_filter, llm_only=True)
            cond += _time_range("Start", a, b, params, f"s{i}")
            select = _dim_select(req.by, "rollup") + keep
            if window:
                step = int((_HOUR if table == "llm_usage_1h" else _MINUTE).total_seconds())
                start = "toUInt32(toUnixTimestamp(Start))"
                select += [f"{start} AS FirstAt", f"{start} + {step} AS LastAt"]
            parts.append(f"SELECT {', '.join(select)}\nFROM {DB}.{table}\n{_where(cond)}")
    return "(\n" + "\nUNION ALL\n".join(parts) + "\n)"


# Groups of at most this many calls get exact percentiles on the rollup plan too, from their raw
# spans. Measured (docs/benchmarks.md, "Percentile threshold"): below ~500 calls the sketch's
# answer can be far (up to 90%) from the interpolated percentile, since neighbouring values lie
# far apart; from 1,000 calls on it stays within ~1.3%, the sketch's own error.
EXACT_MAX_COUNT = 1000
# The keys of at most this many small groups go into the raw read's filter (beyond, the time
# window alone limits it).
_MAX_KEYED_GROUPS = 500
WINDOW_COLUMNS = ("first_at", "last_at")


@dataclass(frozen=True)
class SmallGroups:
    """What the first (sketch-only) rollup answer said about the groups that need exact
    percentiles: the time window their calls lie in and their keys (None: too many to list)."""

    first_at: int
    last_at: int
    keys: list[tuple] | None
    every: bool = False  # every group is small: the raw plan answers them all at once

    @classmethod
    def of(cls, columns: list[str], rows: list[tuple], by: list[str]) -> SmallGroups:
        i_count, i_first, i_last = (columns.index(c) for c in ("count", *WINDOW_COLUMNS))
        small = [r for r in rows if 0 < r[i_count] <= EXACT_MAX_COUNT]
        if not small:
            return NO_SMALL_GROUPS
        keys = [tuple(r[columns.index(d)] for d in by if not DIMENSIONS[d].time) for r in small]
        return cls(
            min(r[i_first] for r in small),
            max(r[i_last] for r in small),
            sorted(set(keys)) if len(keys) <= _MAX_KEYED_GROUPS else None,
            every=len(small) == len(rows),
        )


NO_SMALL_GROUPS = SmallGroups(0, 0, [])


def _dd_merge(column: str) -> str:
    return f"quantilesDDMerge({schema.ROLLUP_RELATIVE_ERROR}, {_levels()})({column})"


def _small_exact(req: Request, params: _Params, raw_f: Compiled | None, small: SmallGroups) -> str:
    """Exact percentiles of the small groups from their raw spans: the read limited to their
    keys and, through the primary key, to the time window their calls lie in."""
    window = [
        f"Timestamp >= toDateTime({params.add('small_lo', small.first_at, 'UInt32')}, 'UTC')",
        f"Timestamp < toDateTime({params.add('small_hi', small.last_at, 'UInt32')}, 'UTC')",
    ]
    named = [d for d in req.by if not DIMENSIONS[d].time]
    if named and small.keys is not None:
        values = [
            [params.add(f"small_{i}_{j}", v, "String") for j, v in enumerate(k)]
            for i, k in enumerate(small.keys)
        ]
        if len(named) == 1:
            window.append(f"{DIMENSIONS[named[0]].raw} IN ({', '.join(v[0] for v in values)})")
        else:
            listed = ", ".join(f"({', '.join(v)})" for v in values)
            window.append(f"tuple({', '.join(DIMENSIONS[d].raw for d in named)}) IN ({listed})")
    return _exact_states(req, params, raw_f, window)


def _latency_rollup(
    req: Request, params: _Params, raw_f: Compiled | None, roll_f: Compiled | None, small: SmallGroups | None
) -> str:
    """Without `small`: sketch percentiles for every group, plus each group's time window
    (first_at, last_at) so the caller can find the small groups. With it: the same, and exact
    percentiles joined from the raw spans of the small groups, the raw read limited to their
    keys and (through the primary key) to their time window."""
    keys = _keys(req)
    inner = [
        *(req.by or ["1 AS _all"]),
        "sum(Spans) AS count",
        f"{_dd_merge('DurationMs')} AS q",
        "sum(DurationSumNs) / count / 1e6 AS mean_ms",
        "max(DurationMaxNs) / 1e6 AS max_ms",
        "min(DurationMinNs) / 1e6 AS min_ms",
        "sum(Errors) / count AS error_rate",
        "sum(TtftSpans) AS ttft_count",
        f"{_dd_merge('TtftMs')} AS tq",
        "min(TtftMinMs) AS ttft_min_ms",
        "max(TtftMaxMs) AS ttft_max_ms",
    ]
    if small is None:
        inner += ["min(FirstAt) AS first_at", "max(LastAt) AS last_at"]
    if small is not None and small.every:  # nothing left for the sketches: scan once, as the raw plan
        return _latency_raw(req, params, raw_f)
    source = _rollup_source(req, params, raw_f, roll_f, window=small is None)
    group = f"\nGROUP BY {', '.join(req.by)}" if req.by else ""
    rollup = f"(\nSELECT {', '.join(inner)}\nFROM {source}{group}\n)"
    if small is None:
        return _latency_outer(req, rollup, exact="0", extra=list(WINDOW_COLUMNS))
    if small == NO_SMALL_GROUPS:
        return _latency_outer(req, rollup, exact="0")
    exact = _small_exact(req, params, raw_f, small)
    joined = f"{rollup} AS r\nLEFT JOIN (\n{exact}\n) AS e USING ({', '.join(keys)})"
    return _latency_outer(req, joined, exact="e.exact_count = r.count")


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
    # ErrorType (migration 12) is computed at insert from `error.type`, the status and its
    # message; reading it leaves the spans' attribute maps (prompts, replies) on disk.
    inner = [*_dim_select(req.by, "raw"), "ErrorType AS error_type", "count() AS n"]
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
    small: SmallGroups | None = None,
) -> tuple[str, dict[str, object], str]:
    """(SQL, parameters, plan used) for an aggregate; raises QueryError or FilterError.

    Latency on the rollup plan takes two steps (see `aggregate`): without `small`, the SQL
    answers from the sketches and adds each group's time window (WINDOW_COLUMNS); `small`
    (SmallGroups.of that answer) makes the final SQL, exact for the small groups."""
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
        if kind == "latency":
            sql = _latency_rollup(req, params, compiled, roll, small)
        else:
            sql = _cost_rollup(req, params, compiled, roll)
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
    args = (kind, by, since, until, service, where, all_spans, plan)
    sql, params, chosen = build(*args, unpriced=unpriced)
    columns, rows = store.query(sql, parameters=params, settings=dict(READONLY_SETTINGS))
    dims = Request.make(kind, by, since, until, service, where, all_spans).by
    if rows and kind == "latency" and chosen == "rollup":
        small = SmallGroups.of(columns, rows, dims)
        if small.every:  # nothing left for the sketches: one raw scan answers them all
            sql, params, _ = build(*args, small=small)
            columns, rows = store.query(sql, parameters=params, settings=dict(READONLY_SETTINGS))
        else:
            if small != NO_SMALL_GROUPS:
                rows = _with_exact(store, columns, rows, small, *args[:7])
            keep = [i for i, c in enumerate(columns) if c not in WINDOW_COLUMNS]
            columns, rows = [columns[i] for i in keep], [tuple(r[i] for i in keep) for r in rows]
    if not rows:  # the embedded engine names no columns for an empty result
        columns = output_columns(kind, dims, unpriced)
    return QueryResult(columns, rows)


def _with_exact(store, columns: list[str], rows: list[tuple], small: SmallGroups, *args) -> list[tuple]:
    """The sketch rows with the small groups' percentiles replaced by exact ones, read from their
    raw spans (the same values the SQL join of `build(..., small=small)` gives, which
    aggregate_parquet uses; here the rollup is not read twice)."""
    req = Request.make(*args)
    params = _Params()
    compiled = compile_filter(req.where, SPAN_FIELDS) if req.where else None
    exact_sql = _small_exact(req, params, compiled, small)
    rounded = "arrayMap(x -> round(x, 3), eq), arrayMap(x -> round(x, 3), etq)"
    sql = f"SELECT {', '.join(_keys(req))}, exact_count, {rounded}\nFROM (\n{exact_sql}\n)"
    _, exact_rows = store.query(sql, parameters=params.values, settings=dict(READONLY_SETTINGS))
    n = len(req.by)
    exact = {tuple(r[:n]): r[len(_keys(req)) :] for r in exact_rows}  # keys: `_all` when ungrouped
    count = columns.index("count")
    levels = [columns.index(f"{name}_ms") for name in LEVEL_NAMES]
    ttft_levels = [columns.index(f"ttft_{name}_ms") for name in LEVEL_NAMES]
    error, ttft_count = columns.index("percentiles_error"), columns.index("ttft_count")
    out = []
    for row in rows:
        found = exact.get(tuple(row[:n]))
        if found is None or found[0] != row[count]:
            out.append(row)
            continue
        cells = list(row)
        for i, eq, etq in zip(range(len(LEVEL_NAMES)), found[1], found[2], strict=True):
            cells[levels[i]] = eq
            cells[ttft_levels[i]] = etq if row[ttft_count] else None
        cells[error] = 0.0
        out.append(tuple(cells))
    return out


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
            "percentiles_error",
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
    sql, params, chosen = build(kind, **kwargs)
    if kind == "latency" and chosen == "rollup":  # the first step finds the small groups
        columns, rows = store.query(sql, parameters=params, settings=dict(READONLY_SETTINGS))
        by = Request.make(kind, kwargs.get("by"), kwargs.get("since"), None, None, None, False).by
        small = SmallGroups.of(columns, rows, by) if rows else NO_SMALL_GROUPS
        sql, params, _ = build(kind, **kwargs, small=small)
    # In the statement itself: settings passed beside a raw query would stay on the connection.
    return store.query_bytes(
        f"{sql}\nSETTINGS {settings_clause(READONLY_SETTINGS)}\nFORMAT {fmt}", parameters=params
    )


def column_types(names) -> list[str]:
    """The ClickHouse type of the time dimensions among an aggregate's columns ("" for others)."""
    return ["DateTime" if name in DIMENSIONS and DIMENSIONS[name].time else "" for name in names]
