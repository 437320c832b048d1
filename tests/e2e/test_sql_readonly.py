"""Read-only SQL against every trick, and its resource limits, over REST, the CLI and gRPC.

The collector here runs with small limits (TRACEHOUSE_SQL_*), so each one can be hit in well
under a second. Each refused trick must leave no trace: no file read or written, no
connection attempted, no data changed, no session state left behind.
"""

from __future__ import annotations

import json
import socket
import threading

import grpc
import pytest
from collectors import SqlError
from helpers import make_span, quote, run_cli, trace_request, unique
from tracehouse_collector.query import sql_policy

pytestmark = pytest.mark.timeout(180)

LIMITS = {
    "TRACEHOUSE_SQL_MAX_SECONDS": "1",
    "TRACEHOUSE_SQL_MAX_ROWS": "1000",
    "TRACEHOUSE_SQL_MAX_MEMORY": "64M",
    "TRACEHOUSE_SQL_MAX_ROWS_TO_READ": "50000000",
}


class Listener:
    """A TCP port that counts connection attempts: table functions must never reach it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.sock.close()


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text("CANARY-4f1d2e\n")
    return path


@pytest.fixture(scope="module")
def server(start_collector):
    c = start_collector(env=LIMITS, name="sql-readonly")
    service = unique("ro")
    spans = [make_span(f"s{i}") for i in range(3)]
    assert c.post("/v1/traces", trace_request(service, spans).SerializeToString()).status_code == 200
    c.service = service  # type: ignore[attr-defined]
    return c


def refused(c, statement: str) -> str:
    with pytest.raises(SqlError) as err:
        c.sql_raw(statement)
    assert err.value.status == 400
    return err.value.message


def assert_untouched(c) -> None:
    assert c.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(c.service)}") == 3
    assert c.scalar("SELECT currentDatabase()") == "tracehouse"


# -- statements --------------------------------------------------------------------------------

STATEMENTS = {
    "multi": "SELECT 1; SELECT 2",
    "multi-drop": "SELECT 1; DROP TABLE otel_traces",
    "multi-comment": "SELECT 1 -- first\n; DROP TABLE otel_traces",
    "set": "SET max_result_rows = 0",
    "settings-clause": "SELECT 1 SETTINGS max_execution_time = 1000",
    "settings-readonly": "SELECT 1 SETTINGS readonly = 0",
    "settings-subquery": "SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)",
    "insert": "INSERT INTO otel_traces (TraceId, SpanId) VALUES ('a', 'b')",
    "insert-select": "INSERT INTO otel_logs SELECT * FROM otel_logs",
    "alter": "ALTER TABLE otel_traces DELETE WHERE 1",
    "alter-update": "ALTER TABLE otel_traces UPDATE SpanName = 'x' WHERE 1",
    "delete": "DELETE FROM otel_traces WHERE 1",
    "drop": "DROP TABLE otel_traces",
    "drop-database": "DROP DATABASE tracehouse",
    "truncate": "TRUNCATE TABLE otel_logs",
    "rename": "RENAME TABLE otel_logs TO gone",
    "exchange": "EXCHANGE TABLES otel_logs AND otel_traces",
    "create": "CREATE TABLE evil (a Int8) ENGINE = Memory",
    "create-view": "CREATE VIEW evil AS SELECT 1",
    "create-dictionary": "CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k "
    "SOURCE(FILE(path '/etc/passwd' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
    "create-function": "CREATE FUNCTION evil AS (x) -> x",
    "attach": "ATTACH TABLE evil FROM '/tmp/evil' (a Int8) ENGINE = Memory",
    "detach": "DETACH TABLE otel_traces",
    "undrop": "UNDROP TABLE otel_traces",
    "optimize": "OPTIMIZE TABLE otel_traces FINAL",
    "system": "SYSTEM FLUSH LOGS",
    "system-shutdown": "SYSTEM SHUTDOWN",
    "kill": "KILL QUERY WHERE 1",
    "grant": "GRANT ALL ON *.* TO default",
    "revoke": "REVOKE SELECT ON tracehouse.* FROM default",
    "create-user": "CREATE USER evil IDENTIFIED WITH plaintext_password BY 'x'",
    "use": "USE system",
    "show-grants": "SHOW GRANTS",
    "show-users": "SHOW USERS",
    "show-processlist": "SHOW PROCESSLIST",
    "show-settings": "SHOW SETTINGS LIKE '%path%'",
    "show-create-user": "SHOW CREATE USER default",
    "check": "CHECK TABLE otel_traces",
    "backup": "BACKUP TABLE otel_traces TO File('/tmp/evil-backup')",
    "explain-insert": "EXPLAIN SYNTAX INSERT INTO otel_logs SELECT * FROM otel_logs",
}


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_statement_refused(server, statement):
    message = refused(server, statement)
    if statement.startswith("SELECT 1;") or "\n;" in statement:
        assert "Syntax error" in message or "Multi-statements" in message, message
    else:
        assert "Code: 164. READONLY" in message, message
    assert_untouched(server)


# -- table functions, files, network -----------------------------------------------------------


def table_functions(port: int, canary: str) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}/x"
    hostport = f"127.0.0.1:{port}"
    return {
        "file": f"SELECT * FROM file('{canary}', 'LineAsString')",
        "file-glob": "SELECT * FROM file('*', 'LineAsString')",
        "url": f"SELECT * FROM url('{url}', 'LineAsString')",
        "remote": f"SELECT * FROM remote('{hostport}', system.one)",
        "remote-secure": f"SELECT * FROM remoteSecure('{hostport}', system.one)",
        "cluster": "SELECT * FROM cluster('default', system.one)",
        "cluster-all": "SELECT * FROM clusterAllReplicas('default', system.one)",
        "s3": f"SELECT * FROM s3('{url}', 'CSV', 'a String')",
        "hdfs": f"SELECT * FROM hdfs('hdfs://{hostport}/x', 'CSV', 'a String')",
        "mysql": f"SELECT * FROM mysql('{hostport}', 'db', 't', 'u', 'p')",
        "postgresql": f"SELECT * FROM postgresql('{hostport}', 'db', 't', 'u', 'p')",
        "jdbc": f"SELECT * FROM jdbc('jdbc:mysql://{hostport}/db', 't')",
        "odbc": "SELECT * FROM odbc('DSN=x', 't')",
        "mongodb": f"SELECT * FROM mongodb('{hostport}', 'db', 'c', 'u', 'p', 'a String')",
        "redis": f"SELECT * FROM redis('{hostport}', 'k', 'k String')",
        "sqlite": f"SELECT * FROM sqlite('{canary}', 't')",
        "executable": "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')",
        "input": "SELECT * FROM input('a String')",
        "merge": "SELECT * FROM merge('system', '^users$')",
        "dictionary": "SELECT * FROM dictionary('d')",
        "python": "SELECT * FROM python('os')",
        "view": "SELECT * FROM view(SELECT * FROM system.users)",
        "view-harmless": "SELECT * FROM view(SELECT 1)",
        "iceberg": f"SELECT * FROM iceberg('{url}')",
        "azure": f"SELECT * FROM azureBlobStorage('{url}', 'c', 'b')",
        "join-url": f"SELECT * FROM otel_traces AS t JOIN url('{url}', 'CSV', 'SpanId String') AS u USING SpanId",
        "in-subquery-url": f"SELECT 1 WHERE 'x' IN (SELECT * FROM url('{url}', 'LineAsString'))",
        "describe-file": f"DESCRIBE TABLE file('{canary}', 'LineAsString')",
        "explain-url": f"EXPLAIN SELECT * FROM url('{url}', 'LineAsString')",
        "insert-function": f"INSERT INTO FUNCTION file('{canary}.out', 'LineAsString') SELECT 'x'",
        "outfile": f"SELECT 'x' INTO OUTFILE '{canary}.out2'",
        "outfile-union": f"SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{canary}.out3'",
        "format": "SELECT 1 FORMAT JSON",
    }


TABLE_FUNCTION_IDS = list(table_functions(1, "/x"))


@pytest.mark.parametrize("trick", TABLE_FUNCTION_IDS)
def test_table_functions_and_files_refused(server, listener, canary, trick):
    message = refused(server, table_functions(listener.port, str(canary))[trick])
    assert "CANARY" not in message
    assert "READONLY" in message, message
    assert listener.connections == 0
    assert not any(canary.parent.glob("secret.txt.out*"))
    assert_untouched(server)


# -- functions reaching files, settings, the server, dictionaries -------------------------------

FUNCTIONS = {
    "file": "SELECT file('{canary}')",
    "file-case": "SELECT fIlE('{canary}')",
    "file-in-where": "SELECT count() FROM otel_traces WHERE SpanName = file('{canary}')",
    "file-in-subquery": "SELECT (SELECT file('{canary}'))",
    "file-in-lambda": "SELECT arrayMap(x -> file(x), ['{canary}'])",
    "getSetting": "SELECT getSetting('max_memory_usage')",
    "getServerSetting": "SELECT getServerSetting('path')",
    "getMacro": "SELECT getMacro('replica')",
    "hostName": "SELECT hostName()",
    "fqdn": "SELECT FQDN()",
    "filesystem": "SELECT filesystemAvailable()",
    "profiles": "SELECT currentProfiles()",
    "roles": "SELECT enabledRoles()",
    "dictGet": "SELECT dictGet('d', 'v', toUInt64(1))",
    "dictGetString": "SELECT dictGetString('d', 'v', toUInt64(1))",
    "dictHas": "SELECT dictHas('d', toUInt64(1))",
    "joinGet": "SELECT joinGet('system.users', 'name', 1)",
    "hasColumnInTable": "SELECT hasColumnInTable('system', 'users', 'name')",
    "catboost": "SELECT catboostEvaluate('{canary}', 1)",
    "serverPort": "SELECT getServerPort('tcp_port')",
}


@pytest.mark.parametrize("trick", list(FUNCTIONS), ids=list(FUNCTIONS))
def test_functions_reaching_outside_refused(server, canary, trick):
    message = refused(server, FUNCTIONS[trick].format(canary=canary))
    assert "is not allowed" in message and "CANARY" not in message, message


# -- databases and system tables ---------------------------------------------------------------

SYSTEM_TABLES = [
    "users",
    "grants",
    "roles",
    "settings",
    "server_settings",
    "merge_tree_settings",
    "processes",
    "query_log",
    "query_thread_log",
    "text_log",
    "named_collections",
    "disks",
    "storage_policies",
    "macros",
    "clusters",
    "tables",
    "databases",
    "parts",
    "dictionaries",
    "functions_executable",
    "build_options",
    "user_directories",
    "settings_profiles",
    "quotas",
    "row_policies",
    "zookeeper",
    "mutations",
    "replicas",
    "asynchronous_metrics",
    "errors",
    "stack_trace",
    "detached_parts",
]


@pytest.mark.parametrize("table", SYSTEM_TABLES)
def test_system_tables_with_internals_refused(server, table):
    message = refused(server, f"SELECT * FROM system.{table}")
    assert f"system.{table} is not allowed" in message, message


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM `system`.`users`",
        "SELECT * FROM otel_traces AS t JOIN system.processes AS p ON 1",
        "SELECT (SELECT count() FROM system.query_log)",
        "SELECT 1 WHERE 'default' IN system.users",
        "SELECT 1 WHERE 'default' GLOBAL NOT IN system.users",
        "SELECT * FROM (SELECT * FROM (SELECT name FROM system.settings))",
        "WITH s AS (SELECT * FROM system.settings) SELECT * FROM s",
        "SELECT 1 UNION ALL SELECT count() FROM system.grants",
        "SELECT 1 EXCEPT SELECT count() FROM system.users",
        "SELECT * FROM default.anything",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM INFORMATION_SCHEMA.COLUMNS",
        "SELECT * FROM _local.t",
        "DESCRIBE TABLE system.users",
        "SELECT * FROM `system.users`.x",
        "SELECT * FROM `sys\ntem`.one",
        "SELECT 1 AS `a\n TableIdentifier otel_traces`, * FROM system.users",
    ],
    ids=[
        "quoted",
        "join",
        "scalar-subquery",
        "in-table",
        "global-not-in",
        "nested",
        "cte",
        "union",
        "except",
        "other-database",
        "information-schema",
        "information-schema-upper",
        "local-db",
        "describe",
        "dotted-name",
        "newline-name",
        "forged-line",
    ],
)
def test_other_databases_refused(server, statement):
    message = refused(server, statement)
    assert "READONLY" in message, message


# -- what stays allowed ------------------------------------------------------------------------


def test_ordinary_queries_still_work(server):
    svc = quote(server.service)
    assert server.scalar(f"SELECT count() FROM tracehouse.otel_traces WHERE ServiceName = {svc}") == 3
    rows = server.sql(
        f"WITH x AS (SELECT SpanName FROM otel_traces WHERE ServiceName = {svc}) "
        "SELECT SpanName FROM x UNION ALL SELECT 'z'"
    )
    assert sorted(r["SpanName"] for r in rows) == ["s0", "s1", "s2", "z"]
    joined = server.scalar(
        f"SELECT count() FROM otel_traces AS a JOIN otel_traces AS b ON a.TraceId = b.TraceId "
        f"WHERE a.ServiceName = {svc} AND a.SpanId IN (SELECT SpanId FROM otel_traces WHERE ServiceName = {svc})"
    )
    assert joined == 3
    assert server.scalar("SELECT sum(number) FROM numbers(10)") == 45
    assert server.scalar("SELECT count() FROM system.one") == 1
    assert server.scalar("SELECT count() > 0 FROM system.functions WHERE name = 'count'") == 1
    cols = server.sql(
        "SELECT name FROM system.columns WHERE database = 'tracehouse' AND table = 'otel_traces'"
    )
    assert {"TraceId", "SpanName"} <= {r["name"] for r in cols}
    nested = server.sql_raw(f"SELECT Events.Name FROM otel_traces WHERE ServiceName = {svc}")["rows"]
    assert nested == [[[]]] * 3
    assert "TraceId" in [r[0] for r in server.sql_raw("DESCRIBE TABLE otel_traces")["rows"]]
    assert server.sql_raw("EXPLAIN SELECT count() FROM otel_traces")["rows"]
    assert server.scalar("SELECT 'a;b' || '-- not a comment'") == "a;b-- not a comment"
    assert server.scalar("SELECT 1;") == 1


# -- resource limits ---------------------------------------------------------------------------

LIMIT_CASES = {
    "seconds": (
        # A billion pairs from 110 thousand rows read, in little memory: only time runs out.
        "SELECT count() FROM numbers(10000) AS a CROSS JOIN numbers(100000) AS b "
        "WHERE NOT ignore(sipHash64(a.number, b.number))",
        ["TRACEHOUSE_SQL_MAX_SECONDS", "longer than 1 s", "TIMEOUT_EXCEEDED"],
    ),
    "result-rows": (
        "SELECT number FROM numbers(5000)",
        ["TRACEHOUSE_SQL_MAX_ROWS", "more than 1000 rows", "add a LIMIT"],
    ),
    "memory": (
        "SELECT groupArray(number) FROM numbers(30000000)",
        ["TRACEHOUSE_SQL_MAX_MEMORY", str(64 * 1024 * 1024), "MEMORY_LIMIT_EXCEEDED"],
    ),
    "rows-to-read": (
        "SELECT count() FROM numbers(60000000)",
        ["TRACEHOUSE_SQL_MAX_ROWS_TO_READ", "more than 50000000 rows", "TOO_MANY_ROWS"],
    ),
}


@pytest.mark.parametrize("case", list(LIMIT_CASES))
def test_limit_hit_gives_clear_error(server, case):
    statement, expected = LIMIT_CASES[case]
    message = refused(server, statement)
    assert message.startswith("SQL limit reached"), message
    for text in expected:
        assert text in message, (text, message)
    assert server.scalar("SELECT 1") == 1  # the server is fine afterwards


def test_limits_cannot_be_raised_by_the_query(server):
    for statement in (
        "SELECT number FROM numbers(5000) SETTINGS max_result_rows = 0",
        "SELECT number FROM numbers(5000) SETTINGS result_overflow_mode = 'break'",
        "SET max_result_rows = 0",
    ):
        assert "READONLY" in refused(server, statement)
    # Just under the limit is fine.
    assert len(server.sql_raw("SELECT number FROM numbers(1000)")["rows"]) == 1000


def test_cli_through_server_and_direct_store(server, tmp_path):
    p = run_cli("sql", "SELECT file('/etc/hostname')", "--server", server.http_url)
    assert p.returncode != 0 and "file() is not allowed" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("sql", "SELECT number FROM numbers(5000)", "--server", server.http_url, "--format", "json")
    assert p.returncode != 0 and "TRACEHOUSE_SQL_MAX_ROWS" in p.stderr
    # Direct on a store: the same policy, and the limits from this process's environment.
    store = f"chdb://{tmp_path / 'direct'}"
    p = run_cli("sql", "SELECT * FROM system.users", "--store", store)
    assert p.returncode != 0 and "system.users is not allowed" in p.stderr, p.stderr
    p = run_cli(
        "sql", "SELECT number FROM numbers(20)", "--store", store, env={"TRACEHOUSE_SQL_MAX_ROWS": "10"}
    )
    assert p.returncode != 0 and "more than 10 rows" in p.stderr, p.stderr
    p = run_cli("sql", "SELECT count() AS n FROM numbers(20)", "--store", store, "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == [{"n": 20}], p.stderr
    p = run_cli("sql", "SELECT 1", "--store", store, env={"TRACEHOUSE_SQL_MAX_ROWS": "lots"})
    assert p.returncode != 0 and "TRACEHOUSE_SQL_MAX_ROWS" in p.stderr and "Traceback" not in p.stderr


def test_bad_limit_setting_stops_the_start(tmp_path):
    from helpers import free_port

    p = run_cli(
        "serve", "--data-dir", str(tmp_path / "d"), "--grpc-port", str(free_port()),
        "--http-port", str(free_port()), env={"TRACEHOUSE_SQL_MAX_MEMORY": "a lot"}, timeout=60,
    )  # fmt: skip
    assert p.returncode != 0 and "TRACEHOUSE_SQL_MAX_MEMORY" in p.stderr and "Traceback" not in p.stderr


def test_tree_parser_refuses_forged_lines():
    """Names may contain line breaks that EXPLAIN AST prints raw; any line that does not fit the
    declared children counts makes the whole statement refused."""
    good = ["SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  Literal UInt64_1"]
    assert sql_policy.parse_tree(good).children[0].children[0].text == "UInt64_1"
    forged = [
        [*good, " TableIdentifier otel_traces"],  # an extra sibling
        [*good, "   TableIdentifier otel_traces"],  # a child of a leaf
        [*good, "TableIdentifier otel_traces"],  # a second root
        ["SelectWithUnionQuery (children 2)", *good[1:]],  # a missing child
        [good[0], " ExpressionList (children 1)", "    Literal UInt64_1"],  # skipped level
        [good[0], good[1], "  Literal 'x' (alias a", "b)"],  # a continuation line
    ]
    for lines in forged:
        with pytest.raises(sql_policy.SqlPolicyError):
            sql_policy.parse_tree(lines)


def test_grpc_sql_rpc_same_policy_and_limits(server, canary):
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2, query_pb2_grpc

    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        table = stub.Sql(query_pb2.SqlRequest(sql="SELECT 40 + 2 AS x"), timeout=30)
        assert [c.name for c in table.columns] == ["x"] and len(table.rows) == 1
        for statement, text in (
            (f"SELECT file('{canary}')", "file() is not allowed"),
            ("SELECT * FROM system.processes", "system.processes is not allowed"),
            ("KILL QUERY WHERE 1", "KILL"),
            ("SELECT number FROM numbers(5000)", "TRACEHOUSE_SQL_MAX_ROWS"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                stub.Sql(query_pb2.SqlRequest(sql=statement), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, statement
            assert text in err.value.details() and "CANARY" not in err.value.details()
