"""A CLI command that reads through a running server starts light: it loads none of the heavy
modules (chDB, clickhouse-connect, gRPC, protobuf, Arrow, numpy, ...), no TLS or urllib for a
plain http:// server, and of the collector's own modules only the CLI and a few small ones.

What each command loaded is read from sys.modules in a child process that ran it to the end
against a real collector. Nothing here is timed (`python -m bench.startup` measures the time);
this keeps what made it fast from coming back unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from traces_data import send_scenario

SOURCE_DIRS = [REPO / "collector" / "src", REPO / "instrumentation" / "src"]

# Top-level packages none of these commands may load.
HEAVY = {
    "chdb", "clickhouse_connect", "grpc", "google", "pyarrow", "numpy", "pandas", "aiohttp",
    "opentelemetry", "tracehouse", "tiktoken", "yaml", "genai_prices", "xxhash", "lz4", "zstandard",
    # loaded by http.client / urllib.request: OpenSSL and the email package, a third of the start-up
    "ssl", "_ssl", "_hashlib", "email", "http",
}  # fmt: skip
# The collector's modules a --server command may load (the command's own group is added).
LIGHT = {
    "tracehouse_collector",
    "tracehouse_collector.cli",
    "tracehouse_collector.cli.app",
    "tracehouse_collector.cli.common",
    "tracehouse_collector.cli.output",
    "tracehouse_collector.cli.server_client",
    "tracehouse_collector.formatting",
    "tracehouse_collector.query",
    "tracehouse_collector.query.values",
    "tracehouse_collector.query.trace_shape",
    "tracehouse_collector.query.genai_content",  # `traces show` reads the content of LLM calls
    "tracehouse_collector.query.dimensions",
    "tracehouse_collector.cli.evals",  # `runs` builds `runs evals` and `compare --evals` from it
    "tracehouse_collector.query.model_identity",
    "tracehouse_collector.store",
    "tracehouse_collector.store.errors",
}

# Runs the CLI as its console script does, then writes the names of the loaded modules.
DRIVER = """
import json, sys
from tracehouse_collector.cli.app import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
raise SystemExit(code)
"""


def run_and_list_modules(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([*(str(d) for d in SOURCE_DIRS), env.get("PYTHONPATH", "")])
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), *args], capture_output=True, text=True, timeout=120, env=env
    )
    return p, set(json.loads(out.read_text())) if out.exists() else set()


@pytest.fixture(scope="module")
def scenario(collector):
    return send_scenario(collector)  # LLM calls with content, tool calls, a session


def commands(collector, scenario) -> dict[str, tuple[list[str], str]]:
    """Each server-talking command, and a text its output must hold (so it really ran)."""
    trace_id = scenario.turn_ids[0]
    return {
        "traces show": (["traces", "show", trace_id], scenario.answers[0]),  # content, read from JSON
        "traces list": (["traces", "list", "--service", scenario.service, "--since", "7d"], trace_id[:12]),
        "sessions list": (
            ["sessions", "list", "--user", scenario.user_id, "--since", "7d"],
            scenario.session_id,
        ),
        "query latency": (["query", "latency", "--by", "model", "--since", "7d"], "gpt-4o-mini"),
        "query cost": (["query", "cost", "--service", scenario.service, "--since", "7d"], "cost_usd"),
        "sql": (["sql", f"SELECT '{scenario.service}' AS service"], scenario.service),
        # An experiment of its own (no runs: the header alone), so what other tests logged in
        # the shared collector (params that render as JSON) does not change what loads.
        "runs list": (["runs", "list", "--experiment", scenario.service, "--limit", "5"], "experiment"),
    }


@pytest.mark.parametrize(
    "name", ["traces show", "traces list", "sessions list", "query latency", "query cost", "sql", "runs list"]
)
def test_a_server_command_loads_only_light_modules(collector, scenario, tmp_path, name):
    args, expected = commands(collector, scenario)[name]
    p, loaded = run_and_list_modules(tmp_path, *args, "--server", collector.http_url)
    assert p.returncode == 0, p.stderr
    assert expected in p.stdout, p.stdout
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"`tracehouse {name} --server` loaded {heavy}"
    group = "tracehouse_collector.cli." + {"sessions": "traces"}.get(args[0], args[0])
    ours = sorted(m for m in loaded if m.split(".")[0] == "tracehouse_collector" and m not in LIGHT | {group})
    assert not ours, f"`tracehouse {name} --server` loaded {ours}: import them where only the store path runs"
    if name in ("query latency", "query cost", "sql", "runs list"):  # no JSON cell to render
        assert "orjson" not in loaded


def test_tls_and_urllib_load_only_for_https(tmp_path):
    """The socket path is taken for http:// only; an https:// address goes through urllib (and
    fails here, nothing listens), so the check above is not passing by never calling out."""
    p, loaded = run_and_list_modules(tmp_path, "sql", "SELECT 1", "--server", "https://127.0.0.1:9")
    assert p.returncode == 1 and "cannot reach the server" in p.stderr, p.stderr
    assert {"ssl", "urllib.request"} <= loaded


def test_the_store_path_does_load_the_store(tmp_path):
    """The other half: without --server the same command opens the store (so the lists above
    tell the two paths apart)."""
    p, loaded = run_and_list_modules(
        tmp_path, "sql", "SELECT 42 AS answer", "--data-dir", str(tmp_path / "state")
    )
    assert p.returncode == 0, p.stderr
    assert "42" in p.stdout
    assert {"chdb", "tracehouse_collector.store.client"} <= loaded


def test_the_command_table_matches_the_groups(tmp_path):
    """app.GROUPS names, for each group module, exactly the commands it adds, in the order
    `tracehouse --help` lists them; each command builds only its own group."""
    import argparse

    from tracehouse_collector.cli import app

    for group, names in app.GROUPS.items():
        root = argparse.ArgumentParser()
        app.group_module(group).add_parsers(root.add_subparsers())
        sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
        assert tuple(sub.choices) == names, group
    full = next(a for a in app.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(full.choices) == [c for names in app.GROUPS.values() for c in names]
    one = next(a for a in app.build_parser("sessions")._actions if isinstance(a, argparse._SubParsersAction))
    assert list(one.choices) == ["traces", "sessions"]
    assert app.requested_command(["--version"]) is None
    assert app.requested_command(["-h", "runs", "list"]) == "runs"
    assert app.requested_command(["nonsense", "sql"]) is None


def test_the_version_is_read_when_asked(tmp_path):
    """--version reads the installed metadata (loaded lazily, so only then), on stdout."""
    from importlib.metadata import version

    p, _ = run_and_list_modules(tmp_path, "--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"tracehouse {version('tracehouse-collector')}\n"
