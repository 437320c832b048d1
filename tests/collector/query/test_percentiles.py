"""One definition of a percentile on both plans, checked against numpy for every group size.

Random durations (continuous, and with many ties) for groups of 1, 2, 3, ... calls and a few
around the exact/sketch threshold go into a real embedded store; the rollups fill as they do
for ingested spans. For every group and level:
- the raw plan equals numpy's default percentile (linear interpolation) and says it is exact;
- the rollup plan gives the same exact answer for groups of at most EXACT_MAX_COUNT calls, and
  for larger ones an answer within the stated bound (percentiles_error, relative, of a value
  ranked between the two numpy interpolates between) that never leaves the group's [min, max];
- the same holds for time to first token.
Two large groups of tightly clustered values put the sketch's answer (its bucket's
representative value) outside their range, below the min and above the max, for the duration
and for the time to first token.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from tracehouse_collector.query import aggregates
from tracehouse_collector.store.client import Store
from tracehouse_collector.store.schema import ROLLUP_RELATIVE_ERROR

pytestmark = pytest.mark.timeout(240)

NOW = dt.datetime(2024, 5, 2, 0, 0, 0, tzinfo=dt.UTC)
# Not aligned to minutes: the rollup plan merges hourly, per-minute and raw states.
SINCE = NOW - dt.timedelta(hours=23, seconds=41)
UNTIL = NOW - dt.timedelta(seconds=13)
T = aggregates.EXACT_MAX_COUNT
SIZES = [*range(1, 41), 64, 101, T - 1, T, T + 1, 3 * T]
LEVELS = (50, 90, 95, 99)


def _values(rng: np.random.Generator, n: int, shape: str) -> np.ndarray:
    """Durations in ms, whole nanoseconds (as stored)."""
    # "ties": few distinct values, so equal percentiles and a max shared by many calls
    ties = rng.choice([12.5, 80.0, 80.0, 310.25, 2033.0], n)
    ms = ties if shape == "ties" else rng.lognormal(5.5, 1.2, n)
    return np.round(ms * 1e6) / 1e6


# Large groups of clustered values (duration, TTFT in ms) whose sketch answers lie outside the
# values: every value of 4.679 falls in a bucket answered as 4.711 (above the max), values in
# [123.4, 123.45] in one answered as 122.745 (below the min).
def _equal(value: float):
    return lambda _rng, n: np.full(n, value)


def _near(value: float):
    return lambda rng, n: rng.uniform(value, value + 0.05, n)


CLUSTERED = {"flat": (_equal(4.679), _near(123.4)), "tight": (_near(123.4), _equal(4.679))}


@pytest.fixture(scope="module", params=["lognormal", "ties"])
def store_and_groups(request, tmp_path_factory):
    rng = np.random.default_rng(15 if request.param == "lognormal" else 16)
    store = Store(f"chdb://{tmp_path_factory.mktemp('pct')}")
    store.migrate()
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    span = (UNTIL - SINCE).total_seconds()
    for model, n in [*((f"m{n:05d}", n) for n in SIZES), *((name, 2 * T + 1) for name in CLUSTERED)]:
        if model in CLUSTERED:
            ms, ttft_s = (np.round(v(rng, n) * 1e6) / 1e6 for v in CLUSTERED[model])
            ttft_s, has_ttft = ttft_s / 1000, np.full(n, True)
        else:
            ms = _values(rng, n, request.param)
            has_ttft = rng.random(n) < 0.6
            ttft_s = np.round(ms * rng.uniform(0.05, 0.9, n)) / 1000  # whole ms, in seconds
        for i in range(n):
            at = SINCE + dt.timedelta(seconds=float(rng.uniform(0, span)))
            attrs = (
                f"map('gen_ai.response.time_to_first_chunk', '{float(ttft_s[i])!r}')"
                if has_ttft[i]
                else "map()"
            )
            rows.append(
                f"('{at:%Y-%m-%d %H:%M:%S.%f}', 'pct', 'chat', 'chat', 'openai', '{model}', '{model}', "
                f"{int(round(ms[i] * 1e6))}, {attrs})"
            )
        groups[model] = (ms, ttft_s[has_ttft] * 1000)
    for i in range(0, len(rows), 2000):
        store.command(
            "INSERT INTO tracehouse.otel_traces (Timestamp, ServiceName, SpanName, GenAIOperation, "
            "GenAIProvider, GenAIRequestModel, GenAIResponseModel, Duration, SpanAttributes) VALUES "
            + ",".join(rows[i : i + 2000])
        )
    yield store, groups
    store.close()


def _rows(store, plan: str) -> dict[str, dict]:
    result = aggregates.aggregate(store, "latency", by=["model"], since=SINCE, until=UNTIL, plan=plan)
    return {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.rows}


def _within_bound(value: float, values: np.ndarray, q: int, error: float) -> bool:
    lo = np.percentile(values, q, method="lower") * (1 - error) - 1e-3
    hi = np.percentile(values, q, method="higher") * (1 + error) + 1e-3
    return lo <= value <= hi


def _check(row: dict, values: np.ndarray, prefix: str, exact: bool) -> None:
    answers = [row[f"{prefix}p{q}_ms"] for q in LEVELS]
    if len(values) == 0:
        assert answers == [None] * 4
        return
    assert answers == sorted(answers), answers  # p50 <= p90 <= p95 <= p99
    for q, got in zip(LEVELS, answers, strict=True):
        want = np.percentile(values, q)  # numpy's default: linear interpolation
        if exact:
            assert got == pytest.approx(want, abs=1.5e-3), (prefix, q, len(values))
        else:
            assert _within_bound(got, values, q, row["percentiles_error"]), (
                prefix,
                q,
                len(values),
                got,
                want,
            )
            # never outside the values (the answer is rounded to 3 decimals)
            assert values.min() - 5e-4 <= got <= values.max() + 5e-4, (prefix, q, len(values), got)


def test_raw_plan_equals_numpy_for_every_group_size(store_and_groups):
    store, groups = store_and_groups
    rows = _rows(store, "raw")
    assert sorted(rows) == sorted(groups)
    for model, (ms, ttft) in groups.items():
        row = rows[model]
        assert row["count"] == len(ms) and row["percentiles_error"] == 0
        assert row["max_ms"] == pytest.approx(ms.max(), abs=1e-3)
        _check(row, ms, "", exact=True)
        _check(row, ttft, "ttft_", exact=True)


def test_rollup_plan_is_exact_for_small_groups_and_bounded_above(store_and_groups):
    store, groups = store_and_groups
    rows, raw = _rows(store, "rollup"), _rows(store, "raw")
    assert sorted(rows) == sorted(groups)
    for model, (ms, ttft) in groups.items():
        row = rows[model]
        assert row["count"] == len(ms)
        if len(ms) <= T:
            assert row["percentiles_error"] == 0, len(ms)
            assert row == raw[model]  # the same numbers as the raw plan, to the last digit
        else:
            assert row["percentiles_error"] == ROLLUP_RELATIVE_ERROR
            assert all(row[f"p{q}_ms"] <= row["max_ms"] for q in LEVELS)  # never above the max
        _check(row, ms, "", exact=len(ms) <= T)
        _check(row, ttft, "ttft_", exact=len(ms) <= T)


def test_ungrouped_answers_on_both_plans(store_and_groups):
    """The whole range as one group (more than EXACT_MAX_COUNT calls): exact on the raw plan,
    within the bound on the rollup plan."""
    store, groups = store_and_groups
    ms = np.concatenate([v for v, _ in groups.values()])
    ttft = np.concatenate([t for _, t in groups.values()])
    for plan in ("raw", "rollup"):
        result = aggregates.aggregate(store, "latency", since=SINCE, until=UNTIL, plan=plan)
        [row] = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
        assert row["count"] == len(ms)
        assert row["percentiles_error"] == (0 if plan == "raw" else ROLLUP_RELATIVE_ERROR)
        _check(row, ms, "", exact=plan == "raw")
        _check(row, ttft, "ttft_", exact=plan == "raw")


@pytest.mark.parametrize("by", [["provider", "model"], ["model", "day"]])
def test_rollup_with_two_dimensions_and_parquet(store_and_groups, by):
    """The exact answers of small groups reach the rows when groups have two keys (a tuple of
    names, or a name and a time bucket), and the Parquet export answers the same rows."""
    import io

    import pyarrow.parquet as pq

    store, groups = store_and_groups
    kw = {"by": by, "since": SINCE, "until": UNTIL}
    raw = aggregates.aggregate(store, "latency", plan="raw", **kw)
    roll = aggregates.aggregate(store, "latency", plan="rollup", **kw)
    assert roll.columns == raw.columns
    exact = 0
    for r, k in zip(raw.rows, roll.rows, strict=True):
        row = dict(zip(roll.columns, k, strict=True))
        assert k[: len(by)] == r[: len(by)]
        if row["count"] <= T:
            assert k == r
            exact += 1
        else:
            assert row["percentiles_error"] == ROLLUP_RELATIVE_ERROR
    assert exact and exact < len(raw.rows)
    table = pq.read_table(io.BytesIO(aggregates.aggregate_parquet(store, "latency", plan="rollup", **kw)))
    assert table.column_names == roll.columns
    for name in ("count", "p50_ms", "p99_ms", "percentiles_error"):
        assert table.column(name).to_pylist() == [
            dict(zip(roll.columns, k, strict=True))[name] for k in roll.rows
        ]
