"""`tracehouse runs list/show/metrics/compare/export`, `tracehouse import`: through a running
server (`--server`) and straight on a store (`--store`), with runs logged by the real SDK."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
import requests
import tracehouse
from helpers import run_cli, unique
from tracehouse import _run_transport

RUN_AT_LEAST_S = 0.2


@pytest.fixture(scope="module")
def logged(collector, tmp_path_factory):
    """Three runs of one experiment logged through the SDK to the shared collector."""
    previous = _run_transport._transport
    t = _run_transport._transport = _run_transport.Transport(
        url=collector.http_url + "/v1/logs", spool_dir=tmp_path_factory.mktemp("spool")
    )
    exp = unique("cli-exp")
    art = tmp_path_factory.mktemp("art") / "report.txt"
    art.write_text("accuracy report")
    runs = []
    try:
        for i, lr in enumerate((0.1, 0.01, 0.001)):
            outside = time.monotonic()
            with tracehouse.run(
                experiment=exp, name=f"lr-{lr}", params={"lr": lr, "opt": "sgd", "epochs": 3}
            ) as r:
                time.sleep(RUN_AT_LEAST_S)  # a known least duration, to bound what is reported
                for step in range(100):
                    r.log_metric("loss", (1 + i) / (step + 1), step=step)
                r.log_metric("loss", 7.0 + i, step=99)  # repeated step: the later value is the one read
                r.log_metric("acc", 0.5 + i / 10, step=99)
                if i == 0:
                    r.log_artifact(art)
            r.wall_s = time.monotonic() - outside  # type: ignore[attr-defined]
            runs.append(r)
        assert t.flush(30)
    finally:
        _run_transport._transport = previous
        t.shutdown(5)
    return exp, runs, art


def _json(*args: str) -> list[dict]:
    out = run_cli(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_list_with_experiment_and_where(collector, logged):
    exp, runs, _ = logged
    rows = _json("runs", "list", "--experiment", exp, "--server", collector.http_url)
    assert [r["id"] for r in rows] == [r.id for r in reversed(runs)]  # newest first
    first = rows[-1]
    assert first["name"] == "lr-0.1" and first["status"] == "finished"
    # The store keeps start and end to the millisecond: allow that rounding above the wall time.
    assert RUN_AT_LEAST_S <= first["duration_s"] <= runs[0].wall_s + 0.001, (first["duration_s"], runs[0].wall_s)
    assert first["params"] == {"epochs": 3, "lr": 0.1, "opt": "sgd"}
    assert first["metrics"] == {"acc": 0.5, "loss": 7.0}
    picked = _json(
        "runs",
        "list",
        "--server",
        collector.http_url,
        "--where",
        f"experiment = '{exp}' AND params.lr < 0.05 AND params.opt = 'sgd' AND metrics.loss > 7.5",
    )
    assert [r["id"] for r in picked] == [runs[1].id, runs[2].id][::-1]
    bad = run_cli("runs", "list", "--server", collector.http_url, "--where", "params.lr <")
    assert bad.returncode == 1 and "col " in bad.stderr and "Traceback" not in bad.stderr


def test_show_metrics_compare(collector, logged):
    exp, runs, art = logged
    s = ["--server", collector.http_url]
    shown = _json("runs", "show", runs[0].id[:10], *s)[0]
    assert shown["id"] == runs[0].id and shown["experiment"] == exp
    assert shown["param_types"] == {"epochs": "int", "lr": "float", "opt": "str"}
    assert shown["metrics"]["loss"] == {"last": 7.0, "last_step": 99, "min": 0.01, "max": 7.0, "count": 101}
    assert [a["name"] for a in shown["artifacts"]] == ["report.txt"]
    table = run_cli("runs", "show", runs[0].id, *s)
    assert table.returncode == 0 and "params.lr" in table.stdout and "report.txt" in table.stdout

    hist = _json("runs", "metrics", runs[0].id, "--key", "loss", *s)
    assert len(hist) == 100 and hist[0]["step"] == 0 and hist[-1] == {**hist[-1], "step": 99, "value": 7.0}
    every = _json("runs", "metrics", runs[0].id, "--key", "loss", "--all", *s)
    assert len(every) == 101 and [p["value"] for p in every[-2:]] == [0.01, 7.0]

    out = run_cli("runs", "compare", runs[0].id, runs[1].id, runs[2].id, "--format", "csv", *s)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    by_key = {(r["section"], r["key"]): r for r in rows}
    lr = by_key[("param", "lr")]
    assert (lr[runs[0].id[:8]], lr[runs[2].id[:8]]) == ("0.1", "0.001")
    assert float(lr[f"delta_{runs[2].id[:8]}"]) == pytest.approx(-0.099)
    last = by_key[("metric.last", "loss")]
    assert float(last[f"delta_{runs[1].id[:8]}"]) == 1.0
    diff = _json("runs", "compare", runs[0].id, runs[1].id, "--diff-only", *s)
    keys = {(r["section"], r["key"]) for r in diff}
    assert ("param", "lr") in keys and ("param", "opt") not in keys and ("param", "epochs") not in keys

    missing = run_cli("runs", "show", "0" * 32, *s)
    assert missing.returncode == 1 and "no run" in missing.stderr
    junk = run_cli("runs", "show", "not-a-run", *s)
    assert junk.returncode == 1 and "not a run id" in junk.stderr


def test_export_import_round_trip_into_a_store_and_a_server(collector, logged, tmp_path, start_collector):
    _, runs, art = logged
    snap = tmp_path / "run.zip"
    out = run_cli("runs", "export", runs[0].id, "-o", str(snap), "--server", collector.http_url)
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(snap) as zf:
        doc = json.loads(zf.read("tracehouse-run.json"))
        assert (
            doc["run"]["id"] == runs[0].id and sum(m["key"] in ("loss", "acc") for m in doc["metrics"]) == 102
        )
        assert zf.read(f"artifacts/{doc['artifacts'][0]['digest']}") == art.read_bytes()

    # Straight into a fresh embedded store, twice: the second import changes nothing.
    store = tmp_path / "state"
    for _ in range(2):
        imp = run_cli("import", str(snap), "--data-dir", str(store), "--format", "json")
        assert imp.returncode == 0, imp.stderr
        assert json.loads(imp.stdout)[0]["run"] == runs[0].id
    local = ["--data-dir", str(store)]
    every = _json("runs", "metrics", runs[0].id, "--all", "--key", "loss", *local)
    assert [(p["step"], p["value"]) for p in every][-3:] == [(98, 1 / 99), (99, 0.01), (99, 7.0)]
    assert len(every) == 101
    shown = _json("runs", "show", runs[0].id, *local)[0]
    assert shown["params"] == {"epochs": 3, "lr": 0.1, "opt": "sgd"} and shown["status"] == "finished"
    assert shown["param_types"]["lr"] == "float"

    # Through another server's OTLP endpoint, artifacts uploaded to it.
    other = start_collector(name="import-target")
    imp = run_cli("import", str(snap), "--server", other.http_url)
    assert imp.returncode == 0, imp.stderr
    shown = _json("runs", "show", runs[0].id, "--server", other.http_url)[0]
    assert shown["metrics"]["loss"]["count"] == 101 and shown["name"] == "lr-0.1"
    digest = shown["artifacts"][0]["digest"]
    got = requests.get(f"{other.http_url}/api/v1/artifacts/{digest}", timeout=10)
    assert got.status_code == 200 and got.content == art.read_bytes()


def test_import_refuses_what_it_cannot_read(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00not a snapshot")
    out = run_cli("import", str(junk), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 1 and "not a file tracehouse can import" in out.stderr
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("tracehouse-run.json", "{not json")
    out = run_cli("import", str(bad), "--data-dir", str(tmp_path / "s"))
    assert out.returncode == 1 and "not valid JSON" in out.stderr and "Traceback" not in out.stderr
    assert run_cli("import", str(tmp_path / "missing.zip")).returncode == 1
