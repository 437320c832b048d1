"""`tracehouse schema`: the DDL for one node, with retention, and for a cluster.

Every generated statement goes through ClickHouse's own parser (chDB's `formatQuery`); the
single-node DDL is applied to real chDB stores. The statements come from all migrations, so a
table or view added by a later migration is checked without changing this file.
ClickHouse clusters (Keeper, remote servers) are not available here: the cluster DDL is
parsed, checked for shape, and applied to chDB once its cluster-only parts are taken out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from helpers import run_cli
from tracehouse_collector.store import ddl, schema

# chDB runs in a child process: a chDB session per test process would clash with other tests'.
_CHDB_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from tracehouse_collector.store.client import Store, StoreError
    job = json.load(sys.stdin)
    store = Store(job["dsn"])
    out = []
    for kind, sql in job["steps"]:
        try:
            if kind == "format":
                out.append(["ok", store.query("SELECT formatQuery({q:String})", parameters={"q": sql})[1][0][0]])
            elif kind == "command":
                store.command(sql)
                out.append(["ok", ""])
            else:
                out.append(["ok", [list(r) for r in store.query(sql)[1]]])
        except StoreError as exc:
            out.append(["error", str(exc)])
    store.close()
    print(json.dumps(out))
    """
)


def chdb_steps(dsn: str, steps: list[tuple[str, str]]) -> list[tuple[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHDB_SCRIPT],
        input=json.dumps({"dsn": dsn, "steps": steps}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [tuple(x) for x in json.loads(proc.stdout)]


def all_migration_statements() -> list[str]:
    return [stmt for m in schema.MIGRATIONS for stmt in m.statements]


def create_tables(statements: list[str]) -> dict[str, str]:
    """{table name: CREATE statement} for the MergeTree tables among `statements`."""
    out = {}
    for sql in statements:
        match = re.match(r"\s*CREATE TABLE (?:IF NOT EXISTS )?(?:\w+\.)?(\w+)", sql)
        if match and re.search(r"ENGINE = \w*MergeTree", sql):
            out[match.group(1)] = sql
    return out


MODES = {
    "single": (None, None),
    "ttl": (None, ddl.Retention.parse("30d")),
    "cluster": ("tracehouse_cluster", None),
    "cluster-ttl": ("tracehouse_cluster", ddl.Retention.parse("12h")),
    "ttl-off": ("main", ddl.Retention.parse("off")),
}


@pytest.fixture(scope="module")
def formatted(tmp_path_factory) -> dict[str, list[tuple[str, str]]]:
    """Every mode's script, each statement paired with ClickHouse's formatting of it."""
    dsn = f"chdb://{tmp_path_factory.mktemp('parse')}"
    scripts = {mode: ddl.script(*args) for mode, args in MODES.items()}
    steps = [("format", s) for stmts in scripts.values() for s in stmts]
    results = iter(chdb_steps(dsn, steps))
    out = {}
    for mode, stmts in scripts.items():
        out[mode] = []
        for stmt in stmts:
            status, text = next(results)
            assert status == "ok", f"{mode}: ClickHouse cannot parse:\n{stmt}\n-> {text}"
            out[mode].append((stmt, text))
    return out


def test_every_statement_of_every_mode_parses(formatted):
    for mode, pairs in formatted.items():
        assert pairs, mode
        for _stmt, text in pairs:
            assert text.startswith(("CREATE", "ALTER", "INSERT INTO")), (mode, text)


def test_cluster_ddl_has_on_cluster_replicated_local_tables_and_distributed_fronts(formatted):
    tables = create_tables(all_migration_statements())
    assert {"otel_traces", "otel_traces_trace_id_ts", "otel_logs"} <= set(tables)
    texts = [text for _s, text in formatted["cluster"]]
    # Backfills (INSERT ... SELECT) run once through the Distributed tables; all else on every node.
    ddl_texts = [t for t in texts if not t.startswith("INSERT INTO")]
    assert all(" ON CLUSTER tracehouse_cluster" in t.splitlines()[0] for t in ddl_texts), ddl_texts
    for name, single in tables.items():
        family = re.search(r"ENGINE = (\w*MergeTree)", single).group(1)
        local = [t for t in texts if t.startswith(f"CREATE TABLE IF NOT EXISTS tracehouse.{name}_local ")]
        assert len(local) == 1, name
        assert (
            f"ENGINE = Replicated{family}('/clickhouse/tables/{{shard}}/{{database}}/{{table}}', '{{replica}}'"
            in local[0]
        )
        assert "replicated_deduplication_window = 10000" in local[0]
        assert "non_replicated_deduplication_window" not in local[0]
        front = [t for t in texts if t.startswith(f"CREATE TABLE IF NOT EXISTS tracehouse.{name} ")]
        assert len(front) == 1, name
        has_trace_id = re.search(r"^\s+TraceId String", single, re.M)
        key = "if(empty(TraceId), rand(), cityHash64(TraceId))" if has_trace_id else None
        distributed = re.search(
            rf"ENGINE = Distributed\('tracehouse_cluster', 'tracehouse', '{name}_local', (.+)\)$", front[0]
        )
        assert distributed, front[0]
        if key:
            assert distributed.group(1) == key, (name, distributed.group(1))


def test_cluster_materialized_views_read_and_write_local_tables(formatted):
    sharded = set(create_tables(all_migration_statements())) - ddl.NODE_WIDE_TABLES
    views = [t for _s, t in formatted["cluster"] if t.startswith("CREATE MATERIALIZED VIEW")]
    assert any("otel_traces_trace_id_ts_mv" in v for v in views)
    for view in views:
        referenced = set(re.findall(r"(?<!['\w])tracehouse\.(\w+)(?![.'\w])", view)) - {
            re.search(r"VIEW (?:IF NOT EXISTS )?tracehouse\.(\w+)", view).group(1)
        }
        assert referenced, view
        for table in referenced:
            assert table.removesuffix("_local") in sharded and table.endswith("_local"), (table, view)


def test_retention_is_a_ttl_on_each_time_partitioned_table(formatted):
    texts = [t for _s, t in formatted["ttl"]]
    for name in create_tables(all_migration_statements()):
        if ddl.ttl_column(name, create_tables(all_migration_statements())[name]) is None:
            continue
        create = next(t for t in texts if t.startswith(f"CREATE TABLE IF NOT EXISTS tracehouse.{name}\n"))
        assert re.search(r"\nTTL toDateTime\(\w+\) \+ toIntervalDay\(30\)\n", create), create
        assert "ttl_only_drop_parts = 1" in create
        assert any(t.startswith(f"ALTER TABLE tracehouse.{name}\n") and "MODIFY TTL" in t for t in texts), (
            name
        )
    cluster = [t for _s, t in formatted["cluster-ttl"]]
    assert any(
        t.startswith("ALTER TABLE tracehouse.otel_traces_local ON CLUSTER") and "toIntervalHour(12)" in t
        for t in cluster
    )
    off = [t for _s, t in formatted["ttl-off"] if t.startswith("ALTER") and "TTL" in t]
    assert off and all("REMOVE TTL" in t for t in off)


def test_the_renderer_keeps_engine_families_and_handles_later_migrations_raw_statements(tmp_path):
    # The shapes a later migration adds: a rollup with its view, a replacing table, a plain view,
    # a column added to a sharded table, and a table that keeps its rows forever.
    later = [
        """CREATE TABLE IF NOT EXISTS tracehouse.usage_1m
(
    Minute DateTime CODEC(Delta, ZSTD(1)),
    Model LowCardinality(String),
    Requests AggregateFunction(count),
    Latency AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(Minute)
ORDER BY (Model, Minute)
SETTINGS non_replicated_deduplication_window = 10000""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS tracehouse.usage_1m_mv TO tracehouse.usage_1m AS
SELECT toStartOfMinute(Timestamp) AS Minute, GenAIResponseModel AS Model, countState() AS Requests,
       quantilesState(0.5, 0.95, 0.99)(Duration) AS Latency
FROM otel_traces GROUP BY Minute, Model""",
        """CREATE TABLE IF NOT EXISTS tracehouse.runs (RunId String, Name String, Version UInt64)
ENGINE = ReplacingMergeTree(Version) ORDER BY RunId""",
        """CREATE TABLE IF NOT EXISTS tracehouse.sessions (SessionId String, Day Date)
ENGINE = MergeTree PARTITION BY toYYYYMM(Day) ORDER BY SessionId TTL Day + INTERVAL 1 YEAR""",
        "CREATE VIEW IF NOT EXISTS tracehouse.llm_calls AS SELECT * FROM tracehouse.otel_traces WHERE GenAIOperation != ''",
        "ALTER TABLE tracehouse.otel_traces ADD COLUMN IF NOT EXISTS Score Float64 CODEC(ZSTD(1))",
        "ALTER TABLE tracehouse.otel_traces ADD INDEX IF NOT EXISTS idx_user UserId TYPE bloom_filter(0.01) GRANULARITY 1",
    ]
    context = ddl.schema_statements() + later
    rendered = ddl.render(later, "c1", ddl.Retention.parse("7d"), context=context)
    joined = "\n".join(rendered)
    assert (
        "ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
        in joined
    )
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Version)"
        in joined
    )
    assert "TO tracehouse.usage_1m_local" in joined and "FROM tracehouse.otel_traces_local" in joined
    assert (
        "ENGINE = Distributed('c1', 'tracehouse', 'runs_local', if(empty(RunId), rand(), cityHash64(RunId)))"
        in joined
    )
    assert "ENGINE = Distributed('c1', 'tracehouse', 'usage_1m_local', rand())" in joined
    assert "FROM tracehouse.otel_traces WHERE" in joined  # a plain view reads across shards
    adds = [s for s in rendered if "ADD COLUMN" in s]
    assert [s.split(" ON CLUSTER")[0] for s in adds] == [
        "ALTER TABLE tracehouse.otel_traces_local",
        "ALTER TABLE tracehouse.otel_traces",
    ]
    assert [s.split(" ON CLUSTER")[0] for s in rendered if "ADD INDEX" in s] == [
        "ALTER TABLE tracehouse.otel_traces_local"
    ]
    assert "TTL toDateTime(Minute) + INTERVAL 7 DAY" in joined
    assert "runs_local" in joined and "TTL toDateTime(RunId)" not in joined  # no time partition, no TTL
    assert "TTL Day + INTERVAL 1 YEAR" in joined and "toDateTime(Day)" not in joined  # its own TTL stays
    results = chdb_steps(f"chdb://{tmp_path / 'p'}", [("format", s) for s in rendered])
    assert all(status == "ok" for status, _ in results), results

    with pytest.raises(ddl.DDLError, match="cannot render this statement for a cluster"):
        ddl.render(["OPTIMIZE TABLE tracehouse.otel_traces FINAL"], "c1")
    with pytest.raises(ddl.DDLError, match="cluster name"):
        ddl.render(later, "bad name'")


def _show_create(dsn: str, tables: list[str]) -> dict[str, str]:
    results = chdb_steps(dsn, [("query", f"SHOW CREATE TABLE tracehouse.{t}") for t in tables])
    return {
        t: (r[1][0][0] if r[0] == "ok" else f"ERROR {r[1]}") for t, r in zip(tables, results, strict=True)
    }


def test_single_node_ttl_applies_to_a_fresh_and_to_an_existing_store(tmp_path):
    tables = list(create_tables(all_migration_statements()))
    timed = [t for t in tables if ddl.ttl_column(t, create_tables(all_migration_statements())[t])]
    assert "otel_traces" in timed

    fresh = f"chdb://{tmp_path / 'fresh'}"
    proc = run_cli("schema", "--store", fresh, "--ttl", "30d")
    assert proc.returncode == 0, proc.stderr
    assert "schema up to date" in proc.stdout
    shown = _show_create(fresh, tables)
    for t in timed:
        assert re.search(r"TTL toDateTime\(\w+\) \+ toIntervalDay\(30\)", shown[t]), shown[t]
        assert "ttl_only_drop_parts = 1" in shown[t]

    existing = f"chdb://{tmp_path / 'existing'}"
    assert run_cli("schema", "--store", existing).returncode == 0
    proc = run_cli("schema", "--store", existing, "--ttl", "2w")
    assert proc.returncode == 0, proc.stderr
    assert all("toIntervalWeek(2)" in v for v in _show_create(existing, timed).values())
    proc = run_cli("schema", "--store", existing, "--ttl", "off")
    assert proc.returncode == 0, proc.stderr
    # The TTL is gone, and a span written after all this still lands, with its trace-id row.
    steps = [("query", f"SHOW CREATE TABLE tracehouse.{t}") for t in timed]
    steps += [
        (
            "command",
            "INSERT INTO tracehouse.otel_traces (Timestamp, TraceId, SpanId, SpanName) VALUES (now64(9), 'ab', 'cd', 's')",
        ),
        ("query", "SELECT count() FROM tracehouse.otel_traces_trace_id_ts WHERE TraceId = 'ab'"),
    ]
    results = chdb_steps(existing, steps)
    assert all(status == "ok" and "TTL" not in shown[0][0] for status, shown in results[: len(timed)]), (
        results
    )
    assert results[-1] == ("ok", [[1]])


def test_cluster_ddl_without_its_cluster_parts_applies_and_routes_rows_through_local_tables(tmp_path):
    """chDB has no Keeper and no remote servers: drop ON CLUSTER, use the plain engines and a Null
    engine for the Distributed fronts, then check the local tables, settings, TTL and views work."""
    local_only, shard_keys = [], []
    for stmt in ddl.script("c1", ddl.Retention.parse("30d")):
        distributed = re.search(r"ENGINE = Distributed\('c1', '(\w+)', '(\w+)', (.*)\)$", stmt)
        if distributed:  # the sharding key must be a valid expression over the local table
            shard_keys.append(
                f"SELECT {distributed.group(3)} FROM {distributed.group(1)}.{distributed.group(2)}"
            )
            stmt = stmt[: distributed.start()] + "ENGINE = Null"
        stmt = stmt.replace(" ON CLUSTER 'c1'", "")
        stmt = re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?", r"ENGINE = \1(", stmt)
        local_only.append(stmt)
    assert len(shard_keys) >= 8
    dsn = f"chdb://{tmp_path / 'local'}"
    steps = [("command", s) for s in local_only]
    steps += [
        (
            "command",
            "INSERT INTO tracehouse.otel_traces_local (Timestamp, TraceId, SpanId, SpanName) VALUES (now64(9), 't1', 's1', 'x')",
        ),
        ("query", "SELECT TraceId FROM tracehouse.otel_traces_trace_id_ts_local"),
        ("query", "SHOW CREATE TABLE tracehouse.otel_traces_local"),
    ]
    steps += [("query", q) for q in shard_keys]
    results = chdb_steps(dsn, steps)
    failed = [(s, r) for s, r in zip(steps, results, strict=True) if r[0] != "ok"]
    assert not failed, failed
    keys_at = len(steps) - len(shard_keys)
    assert results[keys_at - 2][1] == [["t1"]]
    assert "replicated_deduplication_window = 10000" in results[keys_at - 1][1][0][0]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in results[keys_at - 1][1][0][0]


def test_schema_print_cli():
    proc = run_cli("schema", "--print")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("CREATE TABLE IF NOT EXISTS tracehouse.otel_traces\n") == 1
    assert "ON CLUSTER" not in proc.stdout and "TTL" not in proc.stdout

    proc = run_cli("schema", "--print", "--cluster", "prod", "--ttl", "90d")
    assert proc.returncode == 0, proc.stderr
    statements = [s for s in proc.stdout.split(";\n") if s.strip()]
    assert statements and all("ON CLUSTER 'prod'" in s for s in statements if "INSERT INTO" not in s)
    assert (
        "ENGINE = Distributed('prod', 'tracehouse', 'otel_traces_local', if(empty(TraceId), rand(), cityHash64(TraceId)))"
        in proc.stdout
    )
    assert "MODIFY TTL toDateTime(Timestamp) + INTERVAL 90 DAY" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--print", "--ttl", "30x"], "retention '30x': expected a number and a unit"),
        (["--print", "--ttl", "0d"], "retention '0d'"),
        (["--print", "--cluster", "a b"], "cluster name 'a b'"),
        (["--cluster", "c1"], "--cluster needs a ClickHouse server store"),
    ],
)
def test_schema_cli_bad_options_get_a_clear_error(args, message, tmp_path):
    proc = run_cli("schema", "--store", f"chdb://{tmp_path / 's'}", *args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_schema_over_http_on_a_server_store_and_credentials_never_printed(tmp_path):
    """The server path (clickhouse-connect over HTTP) against the chDB-backed fake ClickHouse."""
    from fake_clickhouse import FakeClickHouseProcess
    from helpers import free_port

    fake = FakeClickHouseProcess(tmp_path / "ch", free_port()).start()
    secret_dsn = fake.dsn.replace("default@", "default:hunter2secret@")
    try:
        # A server that cannot run cluster DDL says why; the password stays out of every message.
        proc = run_cli("schema", "--store", secret_dsn, "--cluster", "nowhere")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert (
            "cluster 'nowhere' not found" in proc.stderr and "hunter2secret" not in proc.stderr + proc.stdout
        )

        proc = run_cli("schema", "--store", secret_dsn, "--ttl", "3d")
        assert proc.returncode == 0, proc.stderr
        (row,) = fake.sql("SHOW CREATE TABLE tracehouse.otel_traces")
        assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in row["statement"]
        versions = {r["Version"] for r in fake.sql("SELECT Version FROM tracehouse.schema_migrations")}
        assert versions == {m.version for m in schema.MIGRATIONS}

        # A cluster schema is not laid over a node's single-node tables.
        proc = run_cli("schema", "--store", secret_dsn, "--cluster", "nowhere")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "already has single-node tables: " in proc.stderr and "otel_traces (MergeTree)" in proc.stderr
    finally:
        fake.stop()
    proc = run_cli("schema", "--store", secret_dsn)
    assert proc.returncode == 1 and "cannot open store http://default@127.0.0.1" in proc.stderr
    assert "hunter2secret" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
