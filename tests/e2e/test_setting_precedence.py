"""Which setting wins (docs/configuration.md): an explicit `--store` beats TRACEHOUSE_SERVER in
the environment for every read command and `import`; `--server` with `--store` is refused; and
files go beside the store a command was given (serve's queue and artifacts, import's artifacts),
never to ~/.tracehouse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import requests
import tracehouse
from helpers import free_port, make_span, run_cli, trace_request, tracehouse_cmd, unique, wait_for
from tracehouse import _run_transport

pytestmark = pytest.mark.timeout(300)

MODEL = "gpt-4o-mini"


def _serve_on_store(store_dir: Path, home: Path) -> tuple[subprocess.Popen, str]:
    """`tracehouse serve --store chdb:///…` with no --data-dir, HOME pointed at `home`."""
    http = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    env["HOME"] = str(home)
    log = open(store_dir.parent / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        tracehouse_cmd(
            "serve", "--store", f"chdb://{store_dir}", "--grpc-port", str(free_port()), "--http-port", str(http)
        ),
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http}"

    def healthy() -> bool:
        assert proc.poll() is None, (store_dir.parent / "serve.log").read_text()
        try:
            return requests.get(url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    assert wait_for(healthy, timeout=90)
    return proc, url


def _log_run(url: str, spool: Path, artifact: Path) -> str:
    previous = _run_transport._transport
    t = _run_transport._transport = _run_transport.Transport(url=url + "/v1/logs", spool_dir=spool)
    try:
        with tracehouse.run(experiment=unique("prec-exp"), name="one", params={"lr": 0.5}) as r:
            r.log_metric("loss", 0.25, step=1)
            r.log_artifact(artifact)
        assert t.flush(30)
    finally:
        _run_transport._transport = previous
        t.shutdown(5)
    return r.id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An embedded store at <tmp>/beside/mystore, filled by a `serve --store` that stopped:
    one LLM span in a session, and a run with an artifact."""
    root = tmp_path_factory.mktemp("precedence")
    home = root / "home"
    home.mkdir()
    (root / "beside").mkdir()
    store_dir = root / "beside" / "mystore"
    artifact = root / "report.txt"
    artifact.write_text("precedence report")
    proc, url = _serve_on_store(store_dir, home)
    try:
        service = unique("prec")
        span = make_span(
            "chat " + MODEL,
            start_ns=time.time_ns() - 60 * 10**9,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 500,
                "session.id": "prec-session",
            },
        )
        assert requests.post(
            url + "/v1/traces",
            data=trace_request(service, [span]).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        ).status_code == 200
        run_id = _log_run(url, root / "spool", artifact)
        # The queue is beside the store, not under HOME.
        assert (root / "beside" / "journal").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0
    return {
        "root": root, "home": home, "dsn": f"chdb://{store_dir}", "service": service,
        "trace_id": span.trace_id.hex(), "run_id": run_id, "artifact": artifact,
    }  # fmt: skip


def _dead_server() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _env(store) -> dict[str, str]:
    return {"TRACEHOUSE_SERVER": _dead_server(), "HOME": str(store["home"])}


def test_serve_keeps_its_files_beside_the_store(store):
    beside = store["root"] / "beside"
    digest = __import__("hashlib").sha256(store["artifact"].read_bytes()).hexdigest()
    assert (beside / "artifacts" / digest[:2] / digest).read_bytes() == store["artifact"].read_bytes()
    assert not (store["home"] / ".tracehouse").exists()


READS = {
    "sql": (["sql", "SELECT count() AS n FROM otel_traces WHERE ServiceName = {service}"], lambda r, s: r == [{"n": 1}]),
    "query cost": (["query", "cost", "--by", "service", "--service", "{service}"], lambda r, s: [x["service"] for x in r] == [s["service"]]),
    "traces list": (["traces", "list", "--service", "{service}"], lambda r, s: [x["trace_id"] for x in r] == [s["trace_id"]]),
    "traces show": (["traces", "show", "{trace_id}"], lambda r, s: r["trace_id"] == s["trace_id"]),
    "sessions list": (["sessions", "list"], lambda r, s: [x["session_id"] for x in r] == ["prec-session"]),
    "sessions show": (["sessions", "show", "prec-session"], lambda r, s: r["session_id"] == "prec-session"),
    "runs list": (["runs", "list"], lambda r, s: [x["id"] for x in r] == [s["run_id"]]),
    "runs show": (["runs", "show", "{run_id}"], lambda r, s: r[0]["params"] == {"lr": 0.5}),
    "runs metrics": (["runs", "metrics", "{run_id}", "--key", "loss"], lambda r, s: [(p["key"], p["value"]) for p in r] == [("loss", 0.25)]),
    "runs compare": (["runs", "compare", "{run_id}", "{run_id}"], lambda r, s: any(x["key"] == "lr" for x in r)),
    "models": (["models"], lambda r, s: r == []),
}  # fmt: skip


def _args(template: list[str], store) -> list[str]:
    service = "'" + store["service"] + "'"
    return [a.format(service=service if a.startswith("SELECT") else store["service"],
                     trace_id=store["trace_id"], run_id=store["run_id"]) for a in template]  # fmt: skip


@pytest.mark.parametrize("command", list(READS))
def test_explicit_store_wins_over_the_server_variable(store, command):
    template, check = READS[command]
    p = run_cli(*_args(template, store), "--store", store["dsn"], "--format", "json", env=_env(store))
    assert p.returncode == 0, p.stderr
    assert check(json.loads(p.stdout), store), p.stdout
    # Without the flag the variable applies: the (dead) server is asked.
    p = run_cli(*_args(template, store), "--format", "json", env=_env(store))
    assert p.returncode != 0 and "cannot reach the server" in p.stderr, p.stderr


@pytest.mark.parametrize("local", ["--store", "--data-dir"])
def test_server_and_store_flags_together_are_refused(store, local):
    value = store["dsn"] if local == "--store" else str(store["root"] / "beside")
    p = run_cli("sql", "SELECT 1", "--server", _dead_server(), local, value)
    assert p.returncode == 2
    assert "--server" in p.stderr and local in p.stderr and "give one" in p.stderr
    assert "Traceback" not in p.stderr


def test_export_and_import_keep_artifacts_beside_the_store(store, tmp_path):
    snap = tmp_path / "run.zip"
    p = run_cli("runs", "export", store["run_id"], "-o", str(snap), "--store", store["dsn"], env=_env(store))
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(snap) as zf:
        names = [n for n in zf.namelist() if n.startswith("artifacts/")]
        assert [zf.read(n) for n in names] == [store["artifact"].read_bytes()]

    target = tmp_path / "elsewhere" / "other"
    home = tmp_path / "home"
    env = {"TRACEHOUSE_SERVER": _dead_server(), "HOME": str(home)}
    p = run_cli("import", str(snap), "--store", f"chdb://{target}", "--format", "json", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["run"] == store["run_id"]
    digest = names[0].removeprefix("artifacts/")
    assert (target.parent / "artifacts" / digest[:2] / digest).read_bytes() == store["artifact"].read_bytes()
    assert not (home / ".tracehouse").exists()
    shown = run_cli("runs", "show", store["run_id"], "--store", f"chdb://{target}", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["artifacts"][0]["digest"] == digest
