"""Read-only SQL over the Tracehouse database, with resource limits.

Two layers, both ClickHouse's own: the statement is parsed by ClickHouse (`EXPLAIN AST`) and
checked against the policy in `sql_policy` (which tables, functions and statements a user may
reach) before it runs; then it runs with `readonly = 1` and the limits below, which the
statement cannot raise (readonly forbids changing settings). Nothing inspects SQL text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracehouse_collector.query import sql_policy
from tracehouse_collector.server import memory
from tracehouse_collector.store.errors import StoreError

if TYPE_CHECKING:
    from tracehouse_collector.store.client import Store

_MIB = 1024**2


def default_query_memory(max_queries: int = 4) -> int:
    """Memory one query may use by default: half of what the container (cgroup memory.max) or
    the machine allows, shared by the queries that may run at once, between 256 MiB and 4 GiB.
    The other half is for ingest, the decoding workers and the store's own caches."""
    share = memory.available_bytes() // (2 * max(1, max_queries))
    return max(256 * _MIB, min(4 * 1024 * _MIB, share))


def _max_queries_setting() -> int:
    raw = (os.environ.get("TRACEHOUSE_MAX_QUERIES") or "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 4


# Settings for the server's own read queries (aggregates, traces). Applied in this order;
# readonly must come last, as it forbids changing others.
READONLY_SETTINGS: dict[str, Any] = {
    "max_execution_time": 60,
    "max_result_rows": 100_000,
    "result_overflow_mode": "break",
    "max_memory_usage": default_query_memory(_max_queries_setting()),
    "readonly": 1,
}


class SqlLimitsError(ValueError):
    """A TRACEHOUSE_SQL_* variable is not a usable limit."""


def _env_size(name: str, default: int) -> int:
    """A non-negative integer from the environment; K/M/G/T suffixes (powers of 1024) allowed."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    m = re.fullmatch(r"(\d+)\s*([kKmMgGtT]?)i?[bB]?", raw)
    if m is None:
        raise SqlLimitsError(f"{name}={raw!r} is not a whole number (optionally with K, M, G or T)")
    return int(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")


@dataclass(frozen=True)
class SqlLimits:
    """Limits for user SQL; 0 turns one off."""

    max_seconds: int = 60  # TRACEHOUSE_SQL_MAX_SECONDS
    max_rows: int = 100_000  # TRACEHOUSE_SQL_MAX_ROWS: rows in the result
    max_memory_bytes: int = 4 * 1024**3  # TRACEHOUSE_SQL_MAX_MEMORY; from_env: default_query_memory
    max_rows_to_read: int = 0  # TRACEHOUSE_SQL_MAX_ROWS_TO_READ: rows scanned

    @classmethod
    def from_env(cls) -> SqlLimits:
        d = cls()
        return cls(
            max_seconds=_env_size("TRACEHOUSE_SQL_MAX_SECONDS", d.max_seconds),
            max_rows=_env_size("TRACEHOUSE_SQL_MAX_ROWS", d.max_rows),
            max_memory_bytes=_env_size("TRACEHOUSE_SQL_MAX_MEMORY", default_query_memory(_max_queries_setting())),
            max_rows_to_read=_env_size("TRACEHOUSE_SQL_MAX_ROWS_TO_READ", d.max_rows_to_read),
        )

    def settings(self) -> dict[str, Any]:
        return {
            "max_execution_time": self.max_seconds,
            "timeout_overflow_mode": "throw",
            "max_result_rows": self.max_rows,
            "result_overflow_mode": "throw",  # an error, never a silently cut result
            "max_memory_usage": self.max_memory_bytes,
            "max_rows_to_read": self.max_rows_to_read,
            "read_overflow_mode": "throw",
            "readonly": 1,
        }


# ClickHouse error code -> which limit it was and how to change it.
_LIMIT_HINTS = {
    159: ("TRACEHOUSE_SQL_MAX_SECONDS", "the query ran longer than {} s", "max_seconds"),
    396: ("TRACEHOUSE_SQL_MAX_ROWS", "the result has more than {} rows; add a LIMIT", "max_rows"),
    241: ("TRACEHOUSE_SQL_MAX_MEMORY", "the query needed more than {} bytes of memory", "max_memory_bytes"),
    158: ("TRACEHOUSE_SQL_MAX_ROWS_TO_READ", "the query would read more than {} rows", "max_rows_to_read"),
}
_CODE = re.compile(r"Code: (\d+)")


def _explain_limit(exc: StoreError, limits: SqlLimits) -> StoreError:
    m = _CODE.search(str(exc))
    hint = _LIMIT_HINTS.get(int(m.group(1))) if m else None
    if hint is None:
        return exc
    env, what, attr = hint
    return StoreError(
        f"SQL limit reached: {what.format(getattr(limits, attr))} (set by {env} on the server). {exc}"
    )


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# Parsing checks get a short leash of their own: they never touch data.
_CHECK_SETTINGS = {"max_execution_time": 10, "readonly": 1}


def check_single_statement(store: Store, sql: str) -> None:
    """ClickHouse's own parser checks that `sql` is one statement.

    The embedded engine would otherwise run "SELECT 1; SELECT 2" as two statements.
    """
    try:
        store.query(
            "SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql}, settings=dict(_CHECK_SETTINGS)
        )
    except StoreError as exc:
        # Drop the wrapper query from the message: the user never wrote it.
        raise StoreError(str(exc).split(": In scope SELECT formatQuerySingleLine", 1)[0]) from None


def check_policy(store: Store, sql: str) -> None:
    """Raises sql_policy.SqlPolicyError unless `sql` (one statement) is within the policy."""
    # No per-query settings here: they would show up in the tree as a SETTINGS clause.
    try:
        columns, rows = store.query("EXPLAIN AST " + sql)
    except StoreError:
        # It parsed alone (check_single_statement) but not as a query with an output format:
        # a command such as SYSTEM or KILL, never a SELECT.
        raise sql_policy.SqlPolicyError("only SELECT, DESCRIBE and EXPLAIN statements are allowed") from None
    sql_policy.check_tree(sql_policy.parse_tree([str(r[0]) for r in rows]))


def settings_clause(settings: dict[str, Any]) -> str:
    """`settings` as the text of a SETTINGS clause (in order: readonly must stay last)."""
    return ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items())


def _checked(store: Store, sql: str) -> str:
    """The statement, trimmed, once ClickHouse's parser and the policy have passed it."""
    if not sql.strip():
        raise ValueError("empty SQL statement")
    statement = sql.strip().rstrip(";").strip()
    check_single_statement(store, statement)
    check_policy(store, statement)
    return statement


def run_readonly(store: Store, sql: str, limits: SqlLimits | None = None) -> SqlResult:
    """Run one read-only statement; raises StoreError with ClickHouse's message (and
    sql_policy.SqlPolicyError, a StoreError, for statements outside the policy).

    `limits` defaults to the TRACEHOUSE_SQL_* variables of this process.
    """
    limits = limits or SqlLimits.from_env()
    statement = _checked(store, sql)
    try:
        columns, rows = store.query(statement, settings=limits.settings())
    except StoreError as exc:
        raise _explain_limit(exc, limits) from None
    return SqlResult(columns, rows)


def run_readonly_formatted(store: Store, sql: str, fmt: str, limits: SqlLimits | None = None) -> bytes:
    """The same checks and limits as run_readonly, the result written by ClickHouse itself in
    output format `fmt` (ArrowStream, Parquet): no row is decoded in Python.

    The policy refuses FORMAT and SETTINGS clauses in `sql`, so the ones added here are the
    only ones; after FORMAT they apply to the whole statement, a UNION's parts included. The
    line break ends a trailing `--` comment.
    """
    limits = limits or SqlLimits.from_env()
    statement = _checked(store, sql)
    try:
        return store.query_bytes(f"{statement}\nFORMAT {fmt}\nSETTINGS {settings_clause(limits.settings())}")
    except StoreError as exc:
        raise _explain_limit(exc, limits) from None


def result_types(store: Store, sql: str, limits: SqlLimits | None = None) -> list[str]:
    """ClickHouse's type of each column of a SELECT's result, in order (it is not run: DESCRIBE
    of it as a subquery); only for a statement run_readonly_formatted already let through."""
    limits = limits or SqlLimits.from_env()
    statement = sql.strip().rstrip(";").strip()
    _, rows = store.query(f"DESCRIBE TABLE ({statement}\n)", settings=limits.settings())
    return [str(r[1]) for r in rows]

