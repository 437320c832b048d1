"""`tracehouse schema`: the DDL for one node, with retention, and for a cluster.

Every generated statement goes through ClickHouse's own parser (chDB's `formatQuery`); the
single-node DDL is applied to real chDB stores. The statements come from all migrations, so a
table or view added by a later migration is checked without changing this file.
ClickHouse clusters (Keeper, remote servers) are not available here: the cluster DDL is
parsed, checked for shape, and applied to chDB once its cluster-only parts are taken out.
"""

from __future__ import annotations

import hashlib
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
    return [stmt for m in ddl.migrations() for stmt in m.statements()]


def create_tables(statements: list[str]) -> dict[str, str]:
    """{table name: its last CREATE statement} for the MergeTree tables the migrations leave."""
    out = {}
    for sql in statements:
        match = re.match(r"\s*CREATE TABLE (?:IF NOT EXISTS )?(?:\w+\.)?(\w+)", sql)
        if match and re.search(r"ENGINE = \w*MergeTree", sql):
            out[match.group(1).removesuffix("_v5")] = sql
    return {name: sql for name, sql in out.items() if name in ddl.tables()}


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
            assert text.startswith(("CREATE", "ALTER", "INSERT INTO", "DROP", "EXCHANGE", "RENAME")), (
                mode,
                text,
            )


def test_cluster_ddl_has_on_cluster_replicated_local_tables_and_distributed_fronts(formatted):
    tables = create_tables(all_migration_statements())
    assert {
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_logs",
        "otel_metrics_exponential_histogram",
    } <= set(tables)
    texts = [text for _s, text in formatted["cluster"]]
    # Backfills and copies (INSERT ... SELECT) run once through the Distributed tables; all else on every node.
    ddl_texts = [t for t in texts if not t.startswith("INSERT INTO")]
    assert all(" ON CLUSTER tracehouse_cluster" in t.splitlines()[0] for t in ddl_texts), ddl_texts
    for name, single in tables.items():
        if name == "schema_migrations":
            continue
        family = re.search(r"ENGINE = (\w*MergeTree)", single).group(1)
        local = [
            t for t in texts if re.match(rf"CREATE TABLE (IF NOT EXISTS )?tracehouse\.{name}(_v5)?_local ", t)
        ]
        assert local, name
        assert (
            f"ENGINE = Replicated{family}('/clickhouse/tables/{{shard}}/{{database}}/{{table}}', '{{replica}}'"
            in local[-1]
        )
        assert "replicated_deduplication_window = 10000" in local[-1]
        assert "non_replicated_deduplication_window" not in local[-1]
        front = [
            t
            for t in texts
            if re.match(rf"CREATE (OR REPLACE )?TABLE (IF NOT EXISTS )?tracehouse\.{name} ", t)
        ]
        assert front, name
        has_trace_id = re.search(r"^\s+TraceId String", single, re.M)
        key = "if(empty(TraceId), rand(), cityHash64(TraceId))" if has_trace_id else None
        distributed = re.search(
            rf"ENGINE = Distributed\('tracehouse_cluster', 'tracehouse', '{name}_local', (.+)\)$", front[-1]
        )
        assert distributed, front[-1]
        if key:
            assert distributed.group(1) == key, (name, distributed.group(1))


def test_cluster_materialized_views_read_and_write_local_tables(formatted):
    sharded = set(ddl.tables()) - {"schema_migrations"}
    views = [t for _s, t in formatted["cluster"] if t.startswith("CREATE MATERIALIZED VIEW")]
    assert any("otel_traces_trace_id_ts_mv" in v for v in views)
    for view in views:
        referenced = set(re.findall(r"(?<!['\w])tracehouse\.(\w+)(?![.'\w])", view)) - {
            re.search(r"VIEW (?:IF NOT EXISTS )?tracehouse\.(\w+)", view).group(1)
        }
        assert referenced, view
        for table in referenced:
            assert table.removesuffix("_local") in sharded and table.endswith("_local"), (table, view)


# Partitioned by month, these expire rows in TTL merges (at most daily) rather than drop whole
# parts, which would keep a month's rows up to a month past their retention (migration 13).
ROW_TTL_TABLES = {"trace_span_docs"}


def test_retention_is_a_ttl_on_each_time_partitioned_table(formatted):
    texts = [t for _s, t in formatted["ttl"]]
    timed = {name: column for name, column in ddl.tables().items() if column}
    assert timed["otel_logs"] == "Timestamp" and timed["otel_metrics_exponential_histogram"] == "TimeUnix"
    assert "runs" not in timed and "otel_metrics_exp_histogram" not in ddl.tables()
    for name, column in timed.items():
        create = [
            t for t in texts if re.match(rf"CREATE TABLE (IF NOT EXISTS )?tracehouse\.{name}(_v5)?\n", t)
        ][-1]
        assert f"\nTTL toDateTime({column}) + toIntervalDay(30)\n" in create, create
        if name in ROW_TTL_TABLES:
            assert "ttl_only_drop_parts" not in create and "merge_with_ttl_timeout = 86400" in create, create
        else:
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


# sha256 of each released migration file. A released migration never changes: a change to the
# schema is a new migration file, whose digest is pinned here when it is released.
RELEASED = {
    "0001_otel_tables.sql": "dc42c06944805d4838396580e38b08f6f71ef0811880e774bd20b5a543779a34",
    "0002_scores_and_usage_rollups.sql": "f5343c2b0be296388730df960dbd2958ed44ccfe51171690bf34b26a60de345a",
    "0003_experiment_runs.sql": "526bbea2eb03d97ac40bf315052f54585919f26ad17919d3f0b87cf171178635",
    "0004_unpriced_usage.sql": "7cf4f195616ab0b0b5894831536084b2bc422382b83f90d94128a140fe5b7c53",
    "0005_exporter_current_layout.sql": "96a259542ce929f442089519df67141b3e0603f3763f958c346ecccd3cb6218a",
    "0006_drop_otel_metrics_exp_histogram.sql": "7bffb75f15b9cb7e99a56b138dfb4dd7510bcf3cd59049e0fb8b377bca911894",
    "0007_rollup_value_ranges.sql": "f50b2326f279686242aca559c203afa36698dd40a11cfefc896fd5cdfd57573b",
    "0008_evals_and_annotations.sql": "41650bc4c31e47f8f70313e075a32ca2da5f297b09592e3d0bce61213780e4de",
    "0009_content_text_index.sql": "bb997817fbdce8363200848319be9cf00a6c6b1173785b30b0b0458007ce025e",
    "0010_trace_index.sql": "93c6ed0ad3462be17bec644a122b241641cd2197261989aacc9c08ae04a011b7",
    "0011_trace_summary.sql": "c049fe3715cef2c1f253aee24330a20b8897e60680e7637a73198e514232d2df",
    "0012_error_type_and_ttft.sql": "6dbe2b0306cebf13f22c42b6741b14e7d0e5bc2d3b23a0ef299f00f17f42c42a",
    "0013_trace_span_docs.sql": "289180e989be82d0179fe4d51278b02db4e7fadd3c039994d01886b87a4d362d",
    "0014_trace_summary_view_cost.sql": "b4e6da9709ee351a82d87d4076cdfed367cc2f61a755ae506cb0022474becc18",
    "0015_trace_span_docs_cost.sql": "2322724b108ffbec93b4be277b6a560e8dae227b29a5271aa2f2e2b2b398c826",
}


def test_released_migrations_are_frozen():
    from importlib import resources

    folder = resources.files("tracehouse_collector.store").joinpath("migrations")
    digests = {
        m.file: hashlib.sha256(folder.joinpath(m.file).read_bytes()).hexdigest() for m in ddl.migrations()
    }
    assert [m.version for m in ddl.migrations()] == list(range(1, len(digests) + 1))
    changed = sorted(f for f, d in RELEASED.items() if digests.get(f) != d)
    assert not changed, f"released migrations changed: {changed}; add a new migration instead"
    assert set(digests) == set(RELEASED), "a new migration: pin its digest in RELEASED once released"


def test_the_database_parameter_names_tables_only():
    """{{database}}.x qualifies table names; inside a string literal (an attribute key such as
    'tracehouse.run.id') it would change what the SQL reads as soon as the database is renamed."""
    import re
    from importlib import resources

    folder = resources.files("tracehouse_collector.store").joinpath("migrations")
    for m in ddl.migrations():
        text = folder.joinpath(m.file).read_text()
        quoted = re.findall(r"'[^'\n]*\{\{database\}\}\.[^'\n]*'", text)
        assert not quoted, f"{m.file}: {quoted}"


def test_the_rollup_planner_builds_the_states_the_views_build():
    """Query code plans raw spans at a range's edges with the expressions of the rollup view
    (as the last migration that changes it left it): the two must agree, or raw and rollup
    answers drift apart."""
    changes = [
        s for s in all_migration_statements() if s.startswith("ALTER TABLE tracehouse.llm_usage_1m_mv")
    ]
    view = changes[-1]
    for expr, alias in schema.USAGE_STATES:
        assert f"{expr} AS {alias}" in view, alias
    assert "FROM tracehouse.otel_traces\n" in view


def test_templates_take_parameters_and_refuse_unknown_ones():
    single, cluster = ddl.Deployment(), ddl.Deployment("c1", ddl.Retention.parse("7d"))
    t = ddl.Template(
        "CREATE TABLE {{database}}.{{table t}}{{on_cluster}} (a DateTime)\n"
        "ENGINE = {{engine ReplacingMergeTree(a)}}\nORDER BY a\n{{ttl a}}\nSETTINGS {{dedup_window}}"
    )
    assert t.render(single) == (
        "CREATE TABLE tracehouse.t (a DateTime)\nENGINE = ReplacingMergeTree(a)\nORDER BY a\n"
        "SETTINGS non_replicated_deduplication_window = 10000"
    )
    assert t.render(cluster) == (
        "CREATE TABLE tracehouse.t_local ON CLUSTER 'c1' (a DateTime)\n"
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', a)\n"
        "ORDER BY a\nTTL toDateTime(a) + INTERVAL 7 DAY\nSETTINGS replicated_deduplication_window = 10000"
    )
    assert ddl.Template("SELECT 1", cluster_only=True).render(single) is None
    description, parsed = ddl.parse("-- what\n-- a note\n-- cluster only\nDROP TABLE x;\n\nSELECT 1;\n")
    assert description == "what" and parsed == (ddl.Template("DROP TABLE x", True), ddl.Template("SELECT 1"))
    with pytest.raises(ddl.DDLError, match="unknown template parameter"):
        ddl.Template("SELECT {{nope x}}").render(single)
    with pytest.raises(ddl.DDLError, match="cluster name"):
        ddl.Deployment("bad name'")


def _show_create(dsn: str, tables: list[str]) -> dict[str, str]:
    results = chdb_steps(dsn, [("query", f"SHOW CREATE TABLE tracehouse.{t}") for t in tables])
    return {
        t: (r[1][0][0] if r[0] == "ok" else f"ERROR {r[1]}") for t, r in zip(tables, results, strict=True)
    }


def test_single_node_ttl_applies_to_a_fresh_and_to_an_existing_store(tmp_path):
    tables = [t for t in ddl.tables() if t != "schema_migrations"]
    timed = [t for t, column in ddl.tables().items() if column]
    assert "otel_traces" in timed

    fresh = f"chdb://{tmp_path / 'fresh'}"
    proc = run_cli("schema", "--store", fresh, "--ttl", "30d")
    assert proc.returncode == 0, proc.stderr
    assert "schema created" in proc.stdout
    shown = _show_create(fresh, tables)
    for t in timed:
        assert re.search(r"TTL toDateTime\(\w+\) \+ toIntervalDay\(30\)", shown[t]), shown[t]
        assert ("ttl_only_drop_parts = 1" in shown[t]) is (t not in ROW_TTL_TABLES), shown[t]

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
        front = distributed and distributed.group(2).removesuffix("_local")
        if distributed and front in ddl.tables():  # the key must be a valid expression over the local table
            shard_keys.append(
                f"SELECT {distributed.group(3)} FROM {distributed.group(1)}.{distributed.group(2)}"
            )
        if distributed:
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
        assert versions == {m.version for m in ddl.migrations()}

        # A cluster schema is not laid over a node's single-node tables.
        proc = run_cli("schema", "--store", secret_dsn, "--cluster", "nowhere")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "already has single-node tables: " in proc.stderr and "otel_traces (MergeTree)" in proc.stderr
    finally:
        fake.stop()
    proc = run_cli("schema", "--store", secret_dsn)
    assert proc.returncode == 1 and "cannot open store http://default@127.0.0.1" in proc.stderr
    assert "hunter2secret" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def _one_shard(statements: list[str]) -> list[str]:
    """Cluster DDL for chDB, which has no Keeper and no remote servers: no ON CLUSTER, the plain
    engines, a Null engine for the Distributed tables, and copies that read and write the shard's
    local tables (what the Distributed tables would route to a one-shard cluster)."""
    out = []
    for stmt in statements:
        stmt = re.sub(
            r"ENGINE = Distributed\('c1', .*\)$", "ENGINE = Null", stmt.replace(" ON CLUSTER 'c1'", "")
        )
        stmt = re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?", r"ENGINE = \1(", stmt)
        if stmt.startswith("INSERT INTO") and "insert_distributed_sync" in stmt:
            stmt = re.sub(r"(INSERT INTO|FROM) tracehouse\.(\w+)", r"\1 tracehouse.\2_local", stmt)
        out.append(stmt)
    return out


def test_a_cluster_store_upgrades_to_migration_5_on_each_shard_without_losing_rows(tmp_path):
    deployment = ddl.Deployment("c1")
    migrations = ddl.migrations()
    before = ddl.bookkeeping_statements(deployment) + [
        s for m in migrations[:4] for s in m.statements(deployment)
    ]
    upgrade = [s for m in migrations[4:] for s in m.statements(deployment)]
    fill = [
        "INSERT INTO tracehouse.otel_logs_local (Timestamp, TraceId, Body) "
        "SELECT toDateTime64('2026-01-01 00:00:00', 9) + number, hex(number), toString(number) FROM numbers(7)",
        "INSERT INTO tracehouse.otel_metrics_exp_histogram_local (ServiceName, MetricName, TimeUnix, Count) "
        "SELECT 's', 'm', toDateTime64('2026-01-01 00:00:00.5', 9) + number, number FROM numbers(4)",
        "INSERT INTO tracehouse.otel_metrics_sum_local (ServiceName, MetricName, TimeUnix, Value) "
        "SELECT 's', 'm', toDateTime64('2026-01-01 00:00:00', 9) + number, number FROM numbers(5)",
    ]
    checks = [
        "SELECT count(), sum(toUInt64(Body)) FROM tracehouse.otel_logs_local",
        "SELECT count(), sum(Count), any(toTypeName(TimeUnix)) FROM tracehouse.otel_metrics_exponential_histogram_local",
        "SELECT count(), sum(Value), any(toTypeName(MetricName)) FROM tracehouse.otel_metrics_sum_local",
        "SELECT count() FROM system.tables WHERE database = 'tracehouse' AND name LIKE '%exp\\_histogram%'",
        "SELECT count() FROM system.tables WHERE database = 'tracehouse' AND name LIKE '%\\_v5%'",
        "SHOW CREATE TABLE tracehouse.otel_logs_local",
    ]
    steps = [("command", s) for s in _one_shard(before) + fill + _one_shard(upgrade)]
    steps += [("query", q) for q in checks]
    results = chdb_steps(f"chdb://{tmp_path / 'shard'}", steps)
    failed = [(s, r) for s, r in zip(steps, results, strict=True) if r[0] != "ok"]
    assert not failed, failed
    answers = [r[1] for r in results[-len(checks) :]]
    assert answers[:5] == [[[7, 21]], [[4, 6, "DateTime"]], [[5, 10, "LowCardinality(String)"]], [[0]], [[0]]]
    assert "ReplicatedMergeTree" not in answers[5][0][0]  # (the emulation's plain engine)
    assert "ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)" in answers[5][0][0]
    assert "replicated_deduplication_window = 10000" in answers[5][0][0]


def _llm_spans(calls: list[tuple[str, float, float | None]]) -> str:
    """INSERT of LLM calls (model, duration ms, TTFT ms or None), all in one minute."""
    values = []
    for model, ms, ttft in calls:
        attrs = (
            f"map('gen_ai.response.time_to_first_chunk', '{ttft / 1000!r}')" if ttft is not None else "map()"
        )
        values.append(
            f"('2026-01-01 10:20:30', 's', 'chat', 'chat', 'openai', '{model}', {round(ms * 1e6)}, {attrs})"
        )
    return (
        "INSERT INTO tracehouse.otel_traces (Timestamp, ServiceName, SpanName, GenAIOperation, GenAIProvider, "
        "GenAIRequestModel, Duration, SpanAttributes) VALUES " + ", ".join(values)
    )


def test_migration_7_ranges_of_rollup_rows_from_before_it_never_narrow_a_group(tmp_path):
    """Rows written before migration 7 read the widest range (0, +inf) or, without TTFT spans,
    the identities of min and max; merged with rows written after it (the same minute and hour,
    in a query and in a background merge) the group's range still holds every value."""
    migrations = ddl.migrations()
    before = ddl.bookkeeping_statements() + [s for m in migrations[:6] for s in m.statements()]
    old = _llm_spans([("a", 100, None), ("a", 120, 30), ("b", 60, None)])
    new = _llm_spans([("a", 150, 50), ("b", 5, 7), ("c", 10, 3), ("c", 20, None)])
    tables = ("llm_usage_1m", "llm_usage_1h")
    columns = "Model, sum(Spans), min(DurationMinNs), min(TtftMinMs), max(TtftMaxMs)"
    ranges = [f"SELECT {columns} FROM tracehouse.{t} GROUP BY Model ORDER BY Model" for t in tables]
    merged = [
        f"SELECT Model, Spans, DurationMinNs, TtftMinMs, TtftMaxMs FROM tracehouse.{t} ORDER BY Model"
        for t in tables
    ]
    steps = [("command", s) for s in [*before, old, *migrations[6].statements(), new]]
    steps += [("query", q) for q in ranges]
    steps += [("command", f"OPTIMIZE TABLE tracehouse.{t} FINAL") for t in tables]
    steps += [("query", q) for q in merged]
    results = chdb_steps(f"chdb://{tmp_path / 'store'}", steps)
    failed = [(s, r) for s, r in zip(steps, results, strict=True) if r[0] != "ok"]
    assert not failed, failed
    inf = float("inf")
    want = [["a", 3, 0, 0.0, inf], ["b", 2, 0, 7.0, 7.0], ["c", 2, 10_000_000, 3.0, 3.0]]
    answers = [r[1] for r in results if r[1] != ""]
    assert answers == [want] * 4, answers
