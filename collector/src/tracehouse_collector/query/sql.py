"""Read-only SQL over the Tracehouse database.

Read-only is enforced by ClickHouse itself (`readonly = 1`: no writes, no DDL, no settings
changes, no file/url table functions), never by inspecting the text of the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracehouse_collector.store.client import Store, StoreError

# Settings are applied in this order; readonly must come last, as it forbids changing others.
READONLY_SETTINGS: dict[str, Any] = {
    "max_execution_time": 60,
    "max_result_rows": 100_000,
    "result_overflow_mode": "break",
    "readonly": 1,
}


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def check_single_statement(store: Store, sql: str) -> None:
    """ClickHouse's own parser checks that `sql` is one statement.

    The embedded engine would otherwise run "SELECT 1; SELECT 2" as two statements.
    """
    try:
        store.query("SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql}, settings=dict(READONLY_SETTINGS))
    except StoreError as exc:
        # Drop the wrapper query from the message: the user never wrote it.
        raise StoreError(str(exc).split(": In scope SELECT formatQuerySingleLine", 1)[0]) from None


def run_readonly(store: Store, sql: str) -> SqlResult:
    """Run one read-only statement; raises StoreError with ClickHouse's message."""
    if not sql.strip():
        raise ValueError("empty SQL statement")
    check_single_statement(store, sql)
    columns, rows = store.query(sql.strip().rstrip(";"), settings=dict(READONLY_SETTINGS))
    return SqlResult(columns, rows)
