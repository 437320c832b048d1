"""Fixtures every tier shares. The tests are arranged by distribution and tier:

- instrumentation/      the `tracehouse` SDK: instrumentors against locally served LLM APIs, runs
- collector/<package>/  the collector's modules in process (processors, query, store, receivers)
- e2e/                  a real `tracehouse serve` subprocess driven by clients, the CLI and faults
- ui/                   the web UI in a real browser
- project/              the repository as shipped: packaging, deploy files, docs

Shared helpers and fakes live in support/ (on sys.path through pytest's `pythonpath`).
`pytest tests/<tier>` runs one tier; `make test` runs them all.

Starting a collector costs about a second (chDB + decoding workers), so the common `collector`
fixture is session-scoped; tests that share it use unique service names and ids. Tests that
need special settings, or that stop / kill / restart the server, start their own with
`start_collector(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from collectors import Collector
from fake_clickhouse import FakeClickHouseProcess
from helpers import free_port, run_cli, wait_for


@pytest.fixture(scope="session")
def start_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Factory: start_collector(env=..., workers=...) -> a started Collector, cleaned up at the end."""
    started: list[Collector] = []

    def _start(env: dict[str, str] | None = None, workers: int | None = None, name: str = "collector") -> Collector:
        data_dir = tmp_path_factory.mktemp(name) / "state"
        c = Collector(data_dir, env=env, workers=workers)
        started.append(c)
        return c.start()

    yield _start
    for c in started:
        c.close()


@pytest.fixture(scope="session")
def collector(start_collector) -> Collector:
    """The shared collector for tests that only send data and read it back."""
    return start_collector(name="shared")


@pytest.fixture
def fake_store(tmp_path) -> Iterator[FakeClickHouseProcess]:
    """A ClickHouse HTTP endpoint (tests/support/fake_clickhouse.py) in its own process, with faults."""
    store = FakeClickHouseProcess(tmp_path / "clickhouse", free_port()).start()
    yield store
    store.stop()


@pytest.fixture(scope="session")
def demo_collector(start_collector):
    """A collector whose store was filled by `tracehouse demo --seed 1` through OTLP."""
    c = start_collector(name="demo")
    # A fresh store: the banner (printed before /healthz turns ready) suggests the demo.
    assert "tracehouse demo --server" in c.log_text()
    result = run_cli("demo", "--server", c.http_url, "--seed", "1", timeout=180)
    assert result.returncode == 0, result.stderr
    c.demo_output = result.stdout

    def landed() -> bool:
        # The writer batches: wait until the last things sent (the model row, the scores) are stored.
        return (
            c.scalar("SELECT count() FROM models") >= 1 and c.scalar("SELECT count() FROM otel_scores") >= 32
        )

    assert wait_for(landed, timeout=30), "the demo's data did not arrive"
    return c
