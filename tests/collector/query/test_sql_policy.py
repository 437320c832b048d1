"""The SQL policy's own refusals, each branch by its message.

`tests/e2e/test_sql_readonly.py` attacks a running collector, where ClickHouse's readonly mode is a
second wall and often answers first; here the policy (query/sql_policy.py) judges the statement
alone, on the parse tree a real ClickHouse parser gives (`EXPLAIN AST`, through the fake
ClickHouse endpoint), so a branch that stopped working would show even with readonly behind it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tracehouse_collector.query import sql_policy
from tracehouse_collector.query.sql import check_policy
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser_store(tmp_path_factory) -> Iterator[Store]:
    from fake_clickhouse import FakeClickHouseProcess
    from helpers import free_port

    fake = FakeClickHouseProcess(tmp_path_factory.mktemp("policy") / "ch", free_port()).start()
    store = Store(fake.dsn)
    store.migrate()
    yield store
    store.close()
    fake.stop()


REFUSED = {
    "into outfile": ("SELECT 1 INTO OUTFILE 'x.csv'", "INTO OUTFILE is not allowed"),
    "into outfile after union": (
        "SELECT 1 UNION ALL SELECT 2 INTO OUTFILE 'x.csv'",
        "INTO OUTFILE is not allowed",
    ),
    "format": ("SELECT 1 FORMAT JSONEachRow", "FORMAT clauses are not allowed"),
    "format after union": ("SELECT 1 UNION ALL SELECT 2 FORMAT CSV", "FORMAT clauses are not allowed"),
    "settings": ("SELECT 1 SETTINGS max_threads = 1", "SETTINGS clauses are not allowed"),
    # A FORMAT or INTO OUTFILE inside a subquery does not parse in ClickHouse today; the
    # policy's branch for it guards against a parser that one day accepts it.
    "nested settings": ("SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)", "SETTINGS clauses are not allowed"),
    "show": ("SHOW TABLES", "SHOW TABLES is not allowed"),
    "explain insert": ("EXPLAIN INSERT INTO otel_traces SELECT * FROM otel_traces", "EXPLAIN is allowed only"),
    "insert": ("INSERT INTO otel_traces SELECT * FROM otel_traces", "statements are not allowed"),
    "system": ("SYSTEM FLUSH LOGS", "SYSTEM statements are not allowed"),
    "kill": ("KILL QUERY WHERE 1", "statements are not allowed"),
    "table function": ("SELECT * FROM file('x')", "table function file() is not allowed"),
    "denied function": ("SELECT getSetting('readonly')", "function getSetting() is not allowed"),
    "system table": ("SELECT * FROM system.users", "system table system.users is not allowed"),
    "other database": ("SELECT * FROM default.t", "outside the tracehouse database"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_policy_refuses_with_a_message_that_names_the_reason(parser_store, case):
    sql, message = REFUSED[case]
    with pytest.raises(sql_policy.SqlPolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_policy(parser_store, sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM otel_traces",
        "SELECT 1 UNION ALL SELECT 2",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "DESCRIBE TABLE otel_traces",
        "EXPLAIN SELECT 1",
        "SELECT * FROM numbers(3)",
    ],
)
def test_policy_allows_plain_reads(parser_store, sql):
    check_policy(parser_store, sql)
