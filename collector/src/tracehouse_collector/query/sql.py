"""Read-only SQL over the Tracehouse database.

Read-only is enforced by ClickHouse itself (`readonly = 1`: no writes, no DDL, no settings
changes, no file/url table functions), never by inspecting the text of the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracehouse_collector.store.client import Store

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


def run_readonly(store: Store, sql: str) -> SqlResult:
    """Run one read-only statement; raises StoreError with ClickHouse's message."""
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise ValueError("empty SQL statement")
    columns, rows = store.query(sql, settings=dict(READONLY_SETTINGS))
    return SqlResult(columns, rows)
