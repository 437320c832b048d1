"""The run API end to end: SDK -> spool -> OTLP/HTTP -> a real `tracehouse serve` -> run tables.

Most tests log from this process through a transport pointed at the shared collector; the
ones about interpreter exit, uncaught exceptions and spans run a small script in a
subprocess, as an application would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import requests
import tracehouse
from collectors import Collector
from helpers import REPO, run_cli, unique, wait_for
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from tracehouse import _run_transport


@pytest.fixture()
def transport(collector, tmp_path):
    """This process's run transport, sending to the shared collector (restored afterwards)."""
    previous = _run_transport._transport
    t = _run_transport._transport = _run_transport.Transport(
        url=collector.http_url + "/v1/logs", spool_dir=tmp_path / "spool"
    )
    yield t
    t.shutdown(10)
    _run_transport._transport = previous


def _rows(collector, sql: str) -> list[dict]:
    return collector.sql(sql)


def _wait_rows(collector, sql: str, n: int, timeout: float = 20) -> list[dict]:
    rows = wait_for(lambda: (r := collector.sql(sql)) and len(r) >= n and r, timeout=timeout)
    assert rows and len(rows) >= n, (sql, rows)
    return rows


def test_params_metrics_nesting_and_status(collector, transport):
    exp = unique("exp")
    with tracehouse.run(
        experiment=exp,
        name="outer",
        params={"lr": 0.01, "batch": 64, "bn": True, "opt": "adam", "sched": {"steps": [10, 20]}},
        tags={"team": "cv"},
    ) as outer:
        assert tracehouse.active_run() is outer
        for step in range(500):
            outer.log_metric("loss", 1.0 / (step + 1), step=step)
        outer.log_metric("loss", 99.0, step=499)  # a repeated step: kept, and the later one wins
        outer.log_metrics({"acc": 0.5, "f1": 0.25}, step=7)
        outer.log_metric("auto", 1.0)
        outer.log_metric("auto", 2.0)
        outer.log_param("seed", 7)
        with tracehouse.run(experiment=exp, name="inner") as inner:
            assert tracehouse.active_run() is inner
            inner.log_metric("x", 3)
        assert tracehouse.active_run() is outer
        assert outer.metrics_summary["loss"] == 99.0
        assert outer.params["seed"] == 7
    assert tracehouse.active_run() is None
    assert transport.flush(20)

    runs = collector.sql(
        f"SELECT RunId, Name, Status, ParentId, Tags, EndTime IS NOT NULL AS ended, Metadata "
        f"FROM runs FINAL WHERE Experiment = '{exp}' ORDER BY StartTime"
    )
    assert [(r["Name"], r["Status"]) for r in runs] == [("outer", "finished"), ("inner", "finished")]
    assert runs[0]["RunId"] == outer.id and runs[1]["ParentId"] == outer.id and runs[0]["ParentId"] == ""
    assert runs[0]["Tags"] == {"team": "cv"} and runs[0]["ended"] == 1
    meta = runs[0]["Metadata"]
    assert meta["python.version"].startswith("3.") and meta["host.name"] and "command" in meta
    assert meta["git.commit"] and len(meta["git.commit"]) == 40 and meta["git.dirty"] in ("true", "false")

    params = {
        r["Key"]: (r["Value"], r["Type"])
        for r in collector.sql(f"SELECT Key, Value, Type FROM run_params FINAL WHERE RunId = '{outer.id}'")
    }
    assert params == {
        "lr": ("0.01", "float"),
        "batch": ("64", "int"),
        "bn": ("true", "bool"),
        "opt": ('"adam"', "str"),
        "sched": ('{"steps":[10,20]}', "json"),
        "seed": ("7", "int"),
    }
    loss = collector.sql(
        f"SELECT Step, Value FROM run_metrics WHERE RunId = '{outer.id}' AND Key = 'loss' ORDER BY Step, Timestamp"
    )
    assert len(loss) == 501  # every point, the repeated step included
    assert loss[0] == {"Step": 0, "Value": 1.0} and loss[-2:] == [
        {"Step": 499, "Value": 1 / 500},
        {"Step": 499, "Value": 99.0},
    ]
    auto = collector.sql(
        f"SELECT Step FROM run_metrics WHERE RunId = '{outer.id}' AND Key = 'auto' ORDER BY Step"
    )
    assert [r["Step"] for r in auto] == [0, 1]
    last = collector.scalar(
        f"SELECT argMaxMerge(Last) FROM run_metric_summary WHERE RunId = '{outer.id}' AND Key = 'loss'"
    )
    assert last == 99.0


def test_exception_marks_run_failed_and_is_reraised(collector, transport):
    exp = unique("exp")
    with pytest.raises(ZeroDivisionError), tracehouse.run(experiment=exp) as r:
        r.log_metric("before", 1.0)
        1 / 0  # noqa: B018
    assert transport.flush(20)
    row = collector.sql(f"SELECT Status, Tags FROM runs FINAL WHERE RunId = '{r.id}'")[0]
    assert row["Status"] == "failed" and "ZeroDivisionError" in row["Tags"]["error"]
    with pytest.raises(RuntimeError, match="has ended"):
        r.log_metric("after", 1.0)


def test_artifacts_file_and_folder_round_trip_by_digest(collector, transport, tmp_path):
    exp = unique("exp")
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(300_000))
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    with tracehouse.run(experiment=exp) as r:
        d_file = r.log_artifact(f)
        d_folder = r.log_artifact(folder)
        d_model = r.log_artifact(f, name="clf.bin", kind="model", metadata={"framework": "none"})
        # The same folder content gives the same digest (the tar is reproducible).
        assert r.log_artifact(folder, name="plots-again") == d_folder
        ckpt = tmp_path / "ckpt.txt"
        ckpt.write_text("epoch 1")
        d_ckpt = r.log_artifact(ckpt)
        with open(ckpt, "r+") as fh:  # rewritten in place before the upload happened
            fh.write("epoch 2")
    assert d_file == hashlib.sha256(f.read_bytes()).hexdigest() == d_model
    assert transport.flush(20)

    got = requests.get(f"{collector.http_url}/api/v1/artifacts/{d_file}", timeout=10)
    assert got.status_code == 200 and got.content == f.read_bytes()
    ckpt_got = requests.get(f"{collector.http_url}/api/v1/artifacts/{d_ckpt}", timeout=10)
    assert ckpt_got.content == b"epoch 1"
    tar_bytes = requests.get(f"{collector.http_url}/api/v1/artifacts/{d_folder}", timeout=10).content
    assert hashlib.sha256(tar_bytes).hexdigest() == d_folder
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert tar.extractfile("sub/b.txt").read() == b"beta"
        assert tar.extractfile("a.txt").read() == b"alpha"

    arts = {
        a["Name"]: a
        for a in collector.sql(
            f"SELECT Name, Kind, Digest, Size FROM run_artifacts FINAL WHERE RunId = '{r.id}'"
        )
    }
    assert arts["weights.bin"]["Kind"] == "file" and arts["weights.bin"]["Size"] == 300_000
    assert arts["plots"]["Kind"] == "folder" and arts["plots"]["Digest"] == d_folder
    model = collector.sql(
        f"SELECT Name, Digest, Experiment, Metadata FROM models FINAL WHERE RunId = '{r.id}'"
    )
    assert model == [
        {"Name": "clf", "Digest": d_model, "Experiment": exp, "Metadata": '{"framework":"none"}'}
    ]


def test_artifact_endpoint_verifies_digest_and_never_takes_a_path(collector):
    data = b"some bytes " + os.urandom(16)
    good = hashlib.sha256(data).hexdigest()
    url = f"{collector.http_url}/api/v1/artifacts/"
    wrong = requests.put(url + "0" * 64, data=data, timeout=10)
    assert wrong.status_code == 400 and good in wrong.json()["error"]
    assert requests.head(url + "0" * 64, timeout=10).status_code == 404
    assert requests.put(url + "..%2F..%2Fetc%2Fpasswd", data=data, timeout=10).status_code == 400
    first = requests.put(url + good, data=data, timeout=10)
    again = requests.put(url + good, data=data, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert requests.head(url + good, timeout=10).status_code == 200
    assert requests.get(url + good, timeout=10).content == data


def test_malformed_run_records_get_partial_success(collector):
    from helpers import kv

    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()

    def rec(event: str, run_id: str, **attrs):
        r = sl.log_records.add(time_unix_nano=time.time_ns(), event_name=event)
        r.attributes.append(kv("tracehouse.run.id", run_id))
        for k, v in attrs.items():
            r.attributes.append(kv(k, v))
        return r

    good_id = os.urandom(16).hex()
    rec("tracehouse.run.state", good_id, **{"tracehouse.run.status": "finished"})
    rec("tracehouse.run.bogus", good_id)
    rec("tracehouse.run.state", "not-an-id", **{"tracehouse.run.status": "finished"})
    bad_metrics = rec("tracehouse.run.metrics", good_id, **{"tracehouse.metric.key": "loss"})
    bad_metrics.body.kvlist_value.values.extend(
        [kv("step", b"\0" * 16), kv("value", b"\0" * 8), kv("time_unix_nano", b"\0" * 16)]
    )
    resp = collector.post("/v1/logs", req.SerializeToString())
    assert resp.status_code == 200
    partial = ExportLogsServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_log_records == 3
    msg = partial.error_message
    assert "unknown run record 'tracehouse.run.bogus'" in msg
    assert "32 lowercase hex" in msg and "differ in length" in msg
    assert collector.scalar(f"SELECT Status FROM runs FINAL WHERE RunId = '{good_id}'") == "finished"
    assert collector.scalar("SELECT count() FROM otel_logs WHERE EventName LIKE 'tracehouse.run.%'") == 0


def test_spool_while_collector_down_then_delivered(tmp_path):
    """Logged with no collector listening; the same process delivers once one starts on the endpoint."""
    late = Collector(tmp_path / "late")
    spool = tmp_path / "spool"
    previous = _run_transport._transport
    t = _run_transport._transport = _run_transport.Transport(url=late.http_url + "/v1/logs", spool_dir=spool)
    try:
        art = tmp_path / "notes.txt"
        art.write_text("kept while offline")
        with tracehouse.run(experiment=unique("offline")) as r:
            for i in range(2000):
                r.log_metric("loss", float(i), step=i)
            digest = r.log_artifact(art)
        assert not t.flush(1.5)  # nobody listening: everything waits on disk
        assert list(spool.glob("*.otlp-logs.pb")) and (spool / "blobs" / digest).exists()
        late.start()
        assert t.flush(30)
        assert not list(spool.glob("*.otlp-logs.pb")) and not (spool / "blobs" / digest).exists()
        assert late.scalar(f"SELECT count() FROM run_metrics WHERE RunId = '{r.id}' AND Key = 'loss'") == 2000
        assert late.scalar(f"SELECT Status FROM runs FINAL WHERE RunId = '{r.id}'") == "finished"
        got = requests.get(f"{late.http_url}/api/v1/artifacts/{digest}", timeout=10)
        assert got.content == b"kept while offline"
    finally:
        _run_transport._transport = previous
        t.shutdown(0)
        late.close()


SCRIPT = """
import sys, tracehouse
from opentelemetry import trace
name, mode = sys.argv[1], sys.argv[2]
if mode != "offline":
    tracehouse.init(service_name=name, instrument=None)
run = tracehouse.run(experiment=name, name="script")  # no `with`: ended at exit
run.log_param("k", 1)
with trace.get_tracer("t").start_as_current_span("chat gpt-4o") as span:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.request.model", "gpt-4o")
print(run.id, flush=True)
if mode == "crash":
    raise RuntimeError("boom")
"""


def _script(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(SCRIPT))
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    full.update(env, TRACEHOUSE_SYSTEM_METRICS_INTERVAL="0")
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=str(REPO),
        timeout=60,
    )


def test_script_span_carries_run_id_and_uncaught_exception_fails_run(collector, tmp_path):
    svc = unique("runsvc")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_url, "TRACEHOUSE_SPOOL_DIR": str(tmp_path / "spool")}
    ok = _script(tmp_path, env, svc, "ok")
    assert ok.returncode == 0, ok.stderr
    crashed = _script(tmp_path, env, svc + "-c", "crash")
    assert crashed.returncode == 1 and "boom" in crashed.stderr
    ok_id, crash_id = ok.stdout.split()[0], crashed.stdout.split()[0]
    assert not list((tmp_path / "spool").glob("*.pb"))  # flushed at exit

    assert collector.scalar(f"SELECT Status FROM runs FINAL WHERE RunId = '{ok_id}'") == "finished"
    assert collector.scalar(f"SELECT Status FROM runs FINAL WHERE RunId = '{crash_id}'") == "failed"
    span = _wait_rows(
        collector, f"SELECT RunId, ExperimentName FROM otel_traces WHERE ServiceName = '{svc}'", 1
    )[0]
    assert span == {"RunId": ok_id, "ExperimentName": svc}


def test_sync_command_sends_a_spool_left_by_a_dead_collector(collector, tmp_path):
    svc = unique("syncsvc")
    spool = tmp_path / "spool"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
        "TRACEHOUSE_SPOOL_DIR": str(spool),
        "TRACEHOUSE_FLUSH_TIMEOUT": "1",
    }
    out = _script(tmp_path, env, svc, "offline")
    run_id = out.stdout.split()[0]
    assert "kept in" in out.stderr and list(spool.glob("*.otlp-logs.pb"))
    bad = run_cli("sync", "--spool", str(spool), "--endpoint", "http://127.0.0.1:9")
    assert bad.returncode == 1 and "spool" in bad.stderr and list(spool.glob("*.otlp-logs.pb"))
    sent = subprocess.run(
        [sys.executable, "-m", "tracehouse", "sync", "--spool", str(spool), "--endpoint", collector.http_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert not list(spool.glob("*.otlp-logs.pb"))
    assert collector.scalar(f"SELECT Status FROM runs FINAL WHERE RunId = '{run_id}'") == "finished"
    assert (
        collector.scalar(f"SELECT Value FROM run_params FINAL WHERE RunId = '{run_id}' AND Key = 'k'") == "1"
    )


def test_readable_metric_arrays_over_otlp_json(collector):
    """The conventions also take plain arrays (any OTLP producer can write them), here as OTLP/JSON."""
    run_id = os.urandom(16).hex()
    now = time.time_ns()

    def arr(kind: str, values: list) -> dict:
        return {"arrayValue": {"values": [{kind: v} for v in values]}}

    body = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(now),
                                "eventName": "tracehouse.run.metrics",
                                "attributes": [
                                    {"key": "tracehouse.run.id", "value": {"stringValue": run_id}},
                                    {"key": "tracehouse.metric.key", "value": {"stringValue": "acc"}},
                                ],
                                "body": {
                                    "kvlistValue": {
                                        "values": [
                                            {"key": "step", "value": arr("intValue", ["1", "2", "2"])},
                                            {"key": "value", "value": arr("doubleValue", [0.5, 0.6, 0.7])},
                                            {
                                                "key": "time_unix_nano",
                                                "value": arr(
                                                    "intValue", [str(now), str(now + 1), str(now + 2)]
                                                ),
                                            },
                                        ]
                                    }
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    resp = collector.post("/v1/logs", json.dumps(body).encode(), "application/json")
    assert resp.status_code == 200 and "rejected" not in resp.text.lower(), resp.text
    rows = collector.sql(
        f"SELECT Step, Value FROM run_metrics WHERE RunId = '{run_id}' ORDER BY Step, Timestamp"
    )
    assert rows == [{"Step": 1, "Value": 0.5}, {"Step": 2, "Value": 0.6}, {"Step": 2, "Value": 0.7}]


def test_api_key_protected_collector(start_collector, tmp_path, monkeypatch):
    """With API keys on the server, the SDK sends TRACEHOUSE_API_KEY on OTLP and artifact uploads;
    without it the data waits in the spool rather than being dropped."""
    secured = start_collector(env={"TRACEHOUSE_API_KEYS": "run-key-1"}, name="secured")
    art = tmp_path / "a.txt"
    art.write_text("secret artifact")
    previous = _run_transport._transport
    try:
        monkeypatch.delenv("TRACEHOUSE_API_KEY", raising=False)
        keyless = _run_transport._transport = _run_transport.Transport(
            url=secured.http_url + "/v1/logs", spool_dir=tmp_path / "keyless"
        )
        with tracehouse.run(experiment="secured") as refused:
            refused.log_metric("m", 1.0)
        assert not keyless.flush(1.5)
        assert list((tmp_path / "keyless").glob("*.otlp-logs.pb"))  # 401: kept, not dropped

        monkeypatch.setenv("TRACEHOUSE_API_KEY", "run-key-1")
        keyed = _run_transport._transport = _run_transport.Transport(
            url=secured.http_url + "/v1/logs", spool_dir=tmp_path / "keyed"
        )
        with tracehouse.run(experiment="secured") as r:
            r.log_metric("m", 2.0)
            digest = r.log_artifact(art)
        assert keyed.flush(20)
        keyless.shutdown(0)
    finally:
        _run_transport._transport = previous
    auth = {"Authorization": "Bearer run-key-1"}
    assert requests.get(f"{secured.http_url}/api/v1/artifacts/{digest}", timeout=10).status_code == 401
    got = requests.get(f"{secured.http_url}/api/v1/artifacts/{digest}", headers=auth, timeout=10)
    assert got.content == b"secret artifact"
    shown = requests.get(f"{secured.http_url}/api/v1/runs/{r.id}", headers=auth, timeout=10).json()
    assert shown["metrics"]["m"]["last"] == 2.0
    out = run_cli(
        "runs", "show", r.id, "--server", secured.http_url, "--api-key", "run-key-1", "--format", "json"
    )
    assert out.returncode == 0 and json.loads(out.stdout)[0]["id"] == r.id
