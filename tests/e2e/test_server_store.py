"""Tracehouse on a ClickHouse *server* store (`--store http://user:pass@host:8123/tracehouse`).

No ClickHouse server runs here: these tests use the chDB-backed fake ClickHouse HTTP endpoint
(tests/support/fake_clickhouse.py), which speaks the part of the HTTP interface clickhouse-connect uses.
What only a real server or cluster shows (Keeper, Distributed inserts, replicated
deduplication) is not covered here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from fake_clickhouse import FakeClickHouseProcess
from helpers import REPO, free_port, make_span, run_cli, trace_request, unique, wait_for

PASSWORD = "pw-never-shown"


@pytest.fixture
def server_store(tmp_path):
    fake = FakeClickHouseProcess(tmp_path / "ch", free_port()).start()
    yield fake, fake.dsn.replace("default@", f"default:{PASSWORD}@")
    fake.stop()


def test_a_collector_writes_to_a_server_store_that_the_cli_reads_directly_meanwhile(
    server_store, start_collector
):
    fake, dsn = server_store
    assert run_cli("schema", "--store", dsn, "--ttl", "7d").returncode == 0
    collector = start_collector(env={"TRACEHOUSE_STORE": dsn}, name="on-server")
    service = unique("server")
    spans = [
        make_span(
            "chat",
            start_ns=time.time_ns() + i,  # recent: the 7-day retention must not drop them
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10 + i,
                "gen_ai.usage.output_tokens": 1,
            },
        )
        for i in range(3)
    ]
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.text
    query = f"SELECT count() AS n FROM otel_traces WHERE ServiceName = '{service}'"
    assert wait_for(lambda: int(fake.sql(query)[0]["n"]) == 3, 30), collector.log_path.read_text()[-3000:]

    # Unlike an embedded store, a server store is not owned by `serve`: the CLI opens it too.
    proc = run_cli(
        "sql",
        "--store",
        dsn,
        "--format",
        "json",
        f"SELECT GenAIResponseModel AS model, InputTokens AS input FROM otel_traces "
        f"WHERE ServiceName = '{service}' ORDER BY input",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"model": "gpt-4o-mini", "input": n} for n in (10, 11, 12)]
    assert collector.scalar(f"SELECT sum(InputTokens) FROM otel_traces WHERE ServiceName = '{service}'") == 33
    (create,) = fake.sql("SHOW CREATE TABLE tracehouse.otel_traces")
    assert "toIntervalDay(7)" in create["statement"]
    assert PASSWORD not in collector.log_path.read_text()


@pytest.mark.slow
def test_bench_two_collectors_against_one_server_store_lose_and_duplicate_nothing(server_store):
    fake, dsn = server_store
    cmd = [sys.executable, "-m", "bench.ingest.server", "--requests", "6", "--spans", "16", "--workers", "1"]
    proc = subprocess.run([*cmd, "--store", dsn], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # One run per writer (an insert per batch, then merged inserts), each with spans of its own.
    assert proc.stdout.count("96 spans") == 2 and proc.stdout.count("lost 0, duplicated 0") == 2
    assert "json, insert per batch)" in proc.stdout and "json, merged inserts)" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    # Read back from the store itself, not through the bench's own counting.
    (row,) = fake.sql("SELECT count() AS n, uniqExact(SpanId) AS d FROM otel_traces")
    assert int(row["n"]) == int(row["d"]) == 2 * 96
