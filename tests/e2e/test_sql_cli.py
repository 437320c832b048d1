"""`tracehouse sql` (through a server and directly on a store) and `tracehouse schema`."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import textwrap

import pytest
from helpers import BASE_NS, make_span, quote, run_cli, trace_request, unique
from tracehouse_collector.store import ddl as store_ddl

pytestmark = pytest.mark.timeout(180)

NAMES = ["alpha", "beta, with comma", 'gamma "quoted"\nand a newline']
ATTRS = ["a", "x,y", "ünï ✓"]


@pytest.fixture(scope="module")
def data(collector):
    service = unique("sql-cli")
    spans = [
        make_span(name, start_ns=BASE_NS + i, duration_ns=(i + 1) * 10, attributes={"k": ATTRS[i], "n": i})
        for i, name in enumerate(NAMES)
    ]
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content
    return service, spans


def sql_cli(collector, statement: str, *extra: str, **kw) -> subprocess.CompletedProcess:
    return run_cli("sql", statement, "--server", collector.http_url, *extra, **kw)


def select_for(service: str) -> str:
    return (
        "SELECT SpanName, Duration, SpanAttributes['k'] AS k FROM otel_traces "
        f"WHERE ServiceName = {quote(service)} ORDER BY Duration"
    )


def test_sql_json_format(collector, data):
    service, spans = data
    stmt = (
        "SELECT SpanName, SpanId, Duration, SpanAttributes AS attrs, toUnixTimestamp64Nano(Timestamp) AS ns, "
        f"Timestamp FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY Duration"
    )
    p = sql_cli(collector, stmt, "--format", "json")
    assert p.returncode == 0, p.stderr
    records = json.loads(p.stdout)
    assert isinstance(records, list) and len(records) == 3
    assert [list(r) for r in records] == [["SpanName", "SpanId", "Duration", "attrs", "ns", "Timestamp"]] * 3
    for i, (rec, span) in enumerate(zip(records, spans, strict=True)):
        assert rec["SpanName"] == NAMES[i]
        assert rec["SpanId"] == span.span_id.hex()
        assert rec["Duration"] == (i + 1) * 10
        assert rec["attrs"] == {"k": ATTRS[i], "n": str(i)}
        assert rec["ns"] == BASE_NS + i
        assert rec["Timestamp"].startswith("2023-11-14T22:13:20")


def test_sql_json_empty_result_is_empty_array(collector):
    p = sql_cli(collector, "SELECT SpanId FROM otel_traces WHERE ServiceName = 'no-such-service'", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_sql_csv_format(collector, data):
    service, _ = data
    p = sql_cli(collector, select_for(service), "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows == [
        ["SpanName", "Duration", "k"],
        [NAMES[0], "10", ATTRS[0]],
        [NAMES[1], "20", ATTRS[1]],
        [NAMES[2], "30", ATTRS[2]],
    ]


def test_sql_table_format_is_default(collector, data):
    service, _ = data
    p = sql_cli(collector, select_for(service))
    assert p.returncode == 0, p.stderr
    explicit = sql_cli(collector, select_for(service), "--format", "table")
    assert explicit.stdout == p.stdout
    lines = p.stdout.rstrip("\n").split("\n")
    assert lines[0].split() == ["SpanName", "Duration", "k"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[-1] == "(3 rows)"
    assert len(lines) == 6  # header, rule, 3 rows (the newline in a value is escaped), count
    assert lines[2].split() == ["alpha", "10", "a"]
    assert "beta, with comma" in lines[3] and "x,y" in lines[3]
    assert 'gamma "quoted"\\nand a newline' in lines[4]


def test_sql_without_database_prefix_and_with_it(collector, data):
    service, _ = data
    for table in ("otel_traces", "tracehouse.otel_traces"):
        p = sql_cli(collector, f"SELECT count() AS n FROM {table} WHERE ServiceName = {quote(service)}", "--format", "json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == [{"n": 3}]


def test_sql_from_stdin_and_env_server(collector, data):
    service, _ = data
    p = run_cli(
        "sql",
        "-",
        "--format",
        "json",
        env={"TRACEHOUSE_SERVER": collector.http_url},
        input_text=f"SELECT count() AS n FROM otel_traces WHERE ServiceName = {quote(service)};\n",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"n": 3}]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO otel_traces (TraceId, SpanId) VALUES ('a', 'b')",
        "DROP TABLE otel_traces",
        "CREATE TABLE evil (a Int8) ENGINE = Memory",
        "TRUNCATE TABLE otel_logs",
        "ALTER TABLE otel_traces DELETE WHERE 1",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
        "INSERT INTO FUNCTION file('/tmp/tracehouse-evil.txt', 'LineAsString') SELECT 'x'",
    ],
    ids=["insert", "drop", "create", "truncate", "alter", "settings", "file", "url", "insert-file"],
)
def test_sql_is_read_only(collector, data, statement):
    service, _ = data
    p = sql_cli(collector, statement, "--format", "json")
    assert p.returncode != 0
    assert p.stdout == ""
    assert "readonly" in p.stderr.lower(), p.stderr
    assert p.stderr.startswith("tracehouse: ")
    # nothing was changed
    assert collector.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 3


@pytest.fixture
def private_server(start_collector):
    """A collector of this test's own: the SQL tests below may leave its read connection in a bad state."""
    c = start_collector(name="sql-private")
    yield c
    c.close()


def test_sql_failed_multi_statement_does_not_leak_into_next_query(private_server):
    c = private_server
    service = unique("multi")
    assert c.post("/v1/traces", trace_request(service, [make_span()]).SerializeToString()).status_code == 200
    p = sql_cli(c, "SELECT 1; DROP TABLE otel_traces")
    assert p.returncode != 0, p.stdout
    assert p.stderr.startswith("tracehouse: ")
    # The next statement, from anyone, gets its own result and nothing else.
    assert c.sql_raw("SELECT 42 AS answer") == {"columns": ["answer"], "rows": [[42]]}
    assert c.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == 1


def test_sql_multi_statement_rejected(private_server):
    """`tracehouse sql` runs one statement; two are an error, not rows of both under the first's header."""
    p = sql_cli(private_server, "SELECT 1 AS a; SELECT 2 AS b", "--format", "json")
    assert p.returncode != 0, f"exit 0 with {p.stdout!r}"
    assert private_server.sql_raw("SELECT 7 AS seven") == {"columns": ["seven"], "rows": [[7]]}


def test_sql_readonly_message_is_clickhouses(collector):
    p = sql_cli(collector, "INSERT INTO otel_traces (TraceId) VALUES ('x')")
    assert p.returncode != 0
    assert "Code: 164" in p.stderr and "READONLY" in p.stderr, p.stderr


def test_sql_rest_endpoint_errors(collector):
    r = collector.session.post(collector.http_url + "/api/v1/sql", json={"sql": "DROP TABLE otel_logs"}, timeout=30)
    assert r.status_code == 400
    assert "READONLY" in r.json()["error"]
    r = collector.session.post(collector.http_url + "/api/v1/sql", json={"query": "SELECT 1"}, timeout=30)
    assert r.status_code == 400 and "error" in r.json()
    r = collector.session.post(collector.http_url + "/api/v1/sql", json={"sql": "SELECT 41 + 1 AS x"}, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"columns": ["x"], "rows": [[42]]}


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain"],  # None: as `curl -d` without -H sends it
)
def test_sql_rest_json_body_whatever_the_content_type(collector, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"sql": "SELECT 6 * 7 AS x"}'
    r = collector.session.post(collector.http_url + "/api/v1/sql", data=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"columns": ["x"], "rows": [[42]]}
    # A plain statement in the body still works, as it did.
    r = collector.session.post(collector.http_url + "/api/v1/sql", data=b"SELECT 6 * 7 AS x", headers=headers, timeout=30)
    assert r.json() == {"columns": ["x"], "rows": [[42]]}


def test_sql_syntax_error(collector):
    p = sql_cli(collector, "SELEC count() FROM otel_traces")
    assert p.returncode != 0
    assert p.stdout == ""
    assert "Syntax error" in p.stderr and "Code: 62" in p.stderr, p.stderr


def test_sql_unknown_table(collector):
    p = sql_cli(collector, "SELECT * FROM no_such_table", "--format", "csv")
    assert p.returncode != 0
    assert "no_such_table" in p.stderr and "UNKNOWN_TABLE" in p.stderr, p.stderr


def test_sql_unreachable_server():
    from helpers import free_port

    p = run_cli("sql", "SELECT 1", "--server", f"http://127.0.0.1:{free_port()}")
    assert p.returncode != 0
    assert "cannot reach the server" in p.stderr


def test_sql_direct_store_refused_while_server_runs(collector):
    for args in (["--data-dir", str(collector.data_dir)], ["--store", collector.store_dsn]):
        p = run_cli("sql", "SELECT 1", *args)
        assert p.returncode != 0
        assert "--server" in p.stderr, p.stderr
        assert "in use" in p.stderr
    # the attempt did not disturb the running server
    assert collector.health().status_code == 200
    assert collector.scalar("SELECT 1") == 1


def test_second_server_on_the_same_data_dir_refused(collector):
    from helpers import free_port

    p = run_cli(
        "serve", "--data-dir", str(collector.data_dir),
        "--grpc-port", str(free_port()), "--http-port", str(free_port()),
        timeout=60,
    )
    assert p.returncode != 0
    assert "in use" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert collector.health().status_code == 200
    assert collector.scalar("SELECT 1") == 1


def test_sql_direct_store_after_server_stopped(start_collector):
    c = start_collector(name="direct-store")
    service = unique("direct")
    spans = [make_span(f"d{i}", duration_ns=i + 1) for i in range(4)]
    assert c.post("/v1/traces", trace_request(service, spans).SerializeToString()).status_code == 200
    assert c.stop() == 0
    stmt = f"SELECT SpanName, Duration FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY Duration"
    expected = [{"SpanName": f"d{i}", "Duration": i + 1} for i in range(4)]
    p = run_cli("sql", stmt, "--data-dir", str(c.data_dir), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == expected
    p = run_cli("sql", stmt, "--store", c.store_dsn, "--format", "csv")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["SpanName,Duration"] + [f"d{i},{i + 1}" for i in range(4)]
    # read-only on the direct path too
    p = run_cli("sql", "DROP TABLE otel_traces", "--store", c.store_dsn)
    assert p.returncode != 0 and "readonly" in p.stderr.lower(), p.stderr
    p = run_cli("sql", "SELEC 1", "--store", c.store_dsn)
    assert p.returncode != 0 and "Syntax error" in p.stderr
    # and the server starts again on the same directory with the data intact
    c.start()
    assert c.sql(stmt) == expected
    assert c.stop() == 0


# -- schema ----------------------------------------------------------------------------------

# What the schema module defines: every table, plus the materialized views the migrations create.
EXPECTED_TABLES = set(store_ddl.tables()) | {
    m.group(1)
    for stmt in store_ddl.script()
    if (m := re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse\.(\w+)", stmt))
}
# The exporter-compatible tables a Grafana dashboard expects, whatever Tracehouse adds.
OTEL_TABLES = {
    "otel_traces",
    "otel_traces_trace_id_ts",
    "otel_traces_trace_id_ts_mv",
    "otel_logs",
    "otel_metrics_gauge",
    "otel_metrics_sum",
    "otel_metrics_histogram",
    "otel_metrics_exponential_histogram",
    "otel_metrics_summary",
}

APPLY_DDL = textwrap.dedent(
    """
    import json, sys
    from chdb import session
    ddl = sys.stdin.read()
    statements = [s.strip() for s in ddl.split(";\\n") if s.strip()]
    sess = session.Session(sys.argv[1])
    for s in statements:
        sess.query(s)
    cols = sess.query(
        "SELECT table, name, type FROM system.columns WHERE database = 'tracehouse' ORDER BY table, position",
        "JSONEachRow",
    )
    tables = sess.query("SELECT name, engine FROM system.tables WHERE database = 'tracehouse'", "JSONEachRow")
    print(json.dumps({
        "statements": len(statements),
        "columns": [json.loads(l) for l in str(cols).splitlines() if l.strip()],
        "tables": [json.loads(l) for l in str(tables).splitlines() if l.strip()],
    }))
    sess.close()
    """
)


def test_schema_print_applies_to_a_fresh_chdb(tmp_path):
    printed = run_cli("schema", "--print")
    assert printed.returncode == 0, printed.stderr
    ddl = printed.stdout
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse.otel_traces_trace_id_ts_mv" in ddl

    applied = subprocess.run(
        [sys.executable, "-c", APPLY_DDL, str(tmp_path / "printed")],
        input=ddl, capture_output=True, text=True, timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    from_print = json.loads(applied.stdout.strip().splitlines()[-1])
    assert from_print["statements"] == len(store_ddl.script())
    assert {t["name"] for t in from_print["tables"]} == EXPECTED_TABLES
    assert OTEL_TABLES <= EXPECTED_TABLES
    engines = {t["name"]: t["engine"] for t in from_print["tables"]}
    assert engines["otel_traces_trace_id_ts_mv"] == "MaterializedView"
    assert engines["otel_traces"] == "MergeTree"

    # `tracehouse schema --store` builds the very same tables
    store = f"chdb://{tmp_path / 'migrated'}"
    first = run_cli("schema", "--store", store)
    assert first.returncode == 0, first.stderr
    versions = [m.version for m in store_ddl.migrations()]
    assert first.stdout == (
        f"schema created: version {versions[-1]} (migrations {versions[0]}-{versions[-1]} applied)\n"
    )
    again = run_cli("schema", "--store", store)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"schema up to date: version {versions[-1]}, nothing to apply\n"
    # A store that lacks the latest migration (it is re-runnable) is migrated to it.
    from tracehouse_collector.store.client import Store

    older = Store(store)
    try:
        older.command(f"DELETE FROM tracehouse.schema_migrations WHERE Version = {versions[-1]}")
    finally:
        older.close()
    upgraded = run_cli("schema", "--store", store)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"schema migrated to version {versions[-1]} (migrations {versions[-1]} applied)\n"
    p = run_cli(
        "sql",
        "SELECT table, name, type FROM system.columns WHERE database = 'tracehouse' ORDER BY table, position",
        "--store", store, "--format", "json",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == from_print["columns"]


# The columns of the OpenTelemetry Collector's ClickHouse exporter, in its order.
EXPORTER_TRACE_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
]
EXPORTER_LOG_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("TraceFlags", "UInt8"),
    ("SeverityText", "LowCardinality(String)"),
    ("SeverityNumber", "UInt8"),
    ("ServiceName", "LowCardinality(String)"),
    ("Body", "String"),
    ("ResourceSchemaUrl", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeSchemaUrl", "LowCardinality(String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "LowCardinality(String)"),
    ("ScopeAttributes", "Map(LowCardinality(String), String)"),
    ("LogAttributes", "Map(LowCardinality(String), String)"),
    ("EventName", "String"),
    *(
        (f"__otel_materialized_{key}", "LowCardinality(String)")
        for key in (
            "k8s.cluster.name", "k8s.container.name", "k8s.deployment.name", "k8s.namespace.name",
            "k8s.node.name", "k8s.pod.name", "k8s.pod.uid", "deployment.environment.name",
        )
    ),
]
# The head every metric table of the exporter starts with (its v0.152+ types).
EXPORTER_METRIC_HEAD = [
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ResourceSchemaUrl", "String"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("ScopeAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeDroppedAttrCount", "UInt32"),
    ("ScopeSchemaUrl", "String"),
    ("ServiceName", "LowCardinality(String)"),
    ("MetricName", "LowCardinality(String)"),
    ("MetricDescription", "String"),
    ("MetricUnit", "String"),
    ("Attributes", "Map(LowCardinality(String), String)"),
    ("StartTimeUnix", "DateTime"),
    ("TimeUnix", "DateTime"),
]
LLM_COLUMNS = {
    "GenAIOperation": "LowCardinality(String)",
    "GenAIProvider": "LowCardinality(String)",
    "GenAIRequestModel": "LowCardinality(String)",
    "GenAIResponseModel": "LowCardinality(String)",
    "InputTokens": "UInt64",
    "OutputTokens": "UInt64",
    "CacheReadTokens": "UInt64",
    "CacheWriteTokens": "UInt64",
    "ReasoningTokens": "UInt64",
    "TotalTokens": "UInt64",
    "TokensEstimated": "Bool",
    "InputCostUSD": "Decimal(18, 12)",
    "OutputCostUSD": "Decimal(18, 12)",
    "TotalCostUSD": "Decimal(18, 12)",
    "PriceSource": "LowCardinality(String)",
    "RunId": "String",
    "SessionId": "String",
    "UserId": "String",
    "ExperimentName": "LowCardinality(String)",
}

# Computed from other columns at insert (migration 0012), for the errors and latency aggregates.
MATERIALIZED_COLUMNS = {
    "otel_traces.ErrorType": "LowCardinality(String)",
    "otel_traces.TimeToFirstTokenMs": "Nullable(Float64)",
}


def test_exporter_compatible_columns(collector):
    p = sql_cli(
        collector,
        "SELECT table, name, type, default_kind FROM system.columns WHERE database = 'tracehouse' "
        "AND (table IN ('otel_traces', 'otel_logs') OR table LIKE 'otel_metrics_%') ORDER BY table, position",
        "--format", "json",
    )
    assert p.returncode == 0, p.stderr
    cols: dict[str, list[tuple[str, str]]] = {}
    computed: dict[str, str] = {}
    for r in json.loads(p.stdout):
        if r["table"] == "otel_traces" and r["default_kind"] == "MATERIALIZED":
            computed[f"{r['table']}.{r['name']}"] = r["type"]
        else:
            cols.setdefault(r["table"], []).append((r["name"], r["type"]))
    traces = cols["otel_traces"]
    assert traces[: len(EXPORTER_TRACE_COLUMNS)] == EXPORTER_TRACE_COLUMNS
    assert dict(traces[len(EXPORTER_TRACE_COLUMNS):]) == LLM_COLUMNS
    # Columns ClickHouse computes at insert are not in `SELECT *` and no writer names them, so the
    # exporter's inserts and Grafana's reads see exactly the columns above.
    assert computed == MATERIALIZED_COLUMNS
    assert cols["otel_logs"] == EXPORTER_LOG_COLUMNS
    metric_tables = {f"otel_metrics_{k}" for k in ("gauge", "sum", "histogram", "exponential_histogram", "summary")}
    assert set(cols) - {"otel_traces", "otel_logs"} == metric_tables
    for table in metric_tables:
        assert cols[table][: len(EXPORTER_METRIC_HEAD)] == EXPORTER_METRIC_HEAD, table
        if table != "otel_metrics_summary":
            assert ("Exemplars.TimeUnix", "Array(DateTime)") in cols[table], table


@pytest.mark.parametrize("taken", ["grpc", "http"])
def test_serve_on_a_taken_port_says_so_without_a_traceback(tmp_path, taken):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        ports = {"grpc": "0", "http": "0", taken: port}
        p = run_cli(
            "serve", "--store", f"chdb://{tmp_path / 'store'}", "--data-dir", str(tmp_path),
            "--grpc-port", ports["grpc"], "--http-port", ports["http"], timeout=90,
        )
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert port in p.stderr and ("in use" in p.stderr or "address already" in p.stderr)
