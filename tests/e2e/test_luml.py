"""`.luml` model files: `run.log_model` -> a real FNNX package uploaded to a real collector,
`tracehouse reproduce` passing on it and failing clearly on a tampered, foreign or broken file,
and `tracehouse import` of `.luml` files (ours and LUML-shaped) and LUML experiment exports,
whose fixtures are built here from the documented layout (tar members, SQLite tables)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import uuid

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import luml_files
import numpy as np
import pytest
import tracehouse
from helpers import quote, run_cli, unique, wait_for
from tracehouse import _run_transport, luml


@pytest.fixture(scope="module")
def sdk(collector, tmp_path_factory):
    """This process's run transport, sending to the test collector (restored afterwards)."""
    previous = _run_transport._transport
    transport = _run_transport.Transport(
        url=collector.http_url + "/v1/logs", spool_dir=tmp_path_factory.mktemp("spool")
    )
    _run_transport._transport = transport
    yield collector
    transport.flush(10)
    _run_transport._transport = previous


def iris_split():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    return X[:100], y[:100], X[100:], y[100:]


@pytest.fixture(scope="module")
def logged(sdk, tmp_path_factory):
    """A classifier logged with its evaluation data from a run; the file kept locally too."""
    from sklearn.linear_model import LogisticRegression

    X, y, X_test, y_test = iris_split()
    path = tmp_path_factory.mktemp("models") / "iris.luml"
    exp = unique("luml")
    with tracehouse.run(experiment=exp, name="iris-lr", params={"C": 0.7}) as run:
        clf = LogisticRegression(C=0.7, max_iter=500).fit(X, y)
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            run.log_metric("loss", loss, step=step)
        digest = run.log_model(
            clf, "iris", inputs=X[:3], eval_data=(X_test, y_test), metric="accuracy", path=path
        )
    run.flush()
    return {
        "run": run,
        "path": path,
        "digest": digest,
        "clf": clf,
        "test": (X_test, y_test),
        "experiment": exp,
    }


def test_log_model_writes_an_fnnx_package_linked_to_the_run(logged, sdk):
    from fnnx.extras.reader import Reader

    path, run = logged["path"], logged["run"]
    assert logged["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    reader = Reader(str(path))  # FNNX's own reader accepts it
    assert reader.manifest.variant == "pyfunc" and reader.manifest.name == "iris"
    assert reader.manifest.inputs[0].dtype == "Array[float64]" and reader.manifest.inputs[0].shape == [
        "batch",
        4,
    ]
    from packaging.requirements import Requirement

    deps = {Requirement(d.package).name for d in reader.pyenv.dependencies}
    assert {"scikit-learn", "numpy", "cloudpickle", "fnnx"} <= deps
    (entry,) = [e for e in reader.metadata if luml.SNAPSHOT_TAG in e.producer_tags]
    assert entry.id.startswith("tracehouse~c~~c~run_snapshot~c~v1~~et~~")
    payload = entry.payload
    assert payload["run"]["id"] == run.id and payload["run"]["experiment"] == logged["experiment"]
    assert payload["params"] == {"C": 0.7}
    assert payload["metrics"]["summary"]["loss"] == 0.3 and payload["metrics"]["steps"]["loss"] == 2
    expected = logged["clf"].score(*logged["test"])
    assert payload["eval"]["metric"] == "accuracy" and payload["eval"]["value"] == pytest.approx(expected)
    assert payload["environment"]["packages"]["scikit-learn"]
    assert (
        luml.load(path).predict(logged["test"][0][:5]).tolist()
        == logged["clf"].predict(logged["test"][0][:5]).tolist()
    )

    # The collector has the file as the run's model, byte for byte.
    rows = wait_for(
        lambda: sdk.sql(f"SELECT Name, Digest, RunId FROM models FINAL WHERE RunId = {quote(run.id)}")
    )
    assert rows == [{"Name": "iris", "Digest": logged["digest"], "RunId": run.id}]
    stored = sdk.session.get(f"{sdk.http_url}/api/v1/artifacts/{logged['digest']}", timeout=30)
    assert stored.status_code == 200 and stored.content == path.read_bytes()
    history = sdk.sql(
        f"SELECT Value FROM run_metrics WHERE RunId = {quote(run.id)} AND Key = 'iris.accuracy'"
    )
    assert [r["Value"] for r in history] == [pytest.approx(expected)]


def test_reproduce_passes(logged):
    result = run_cli("reproduce", str(logged["path"]))
    assert result.returncode == 0, result.stderr
    assert "checksum: ok" in result.stdout and "PASS" in result.stdout and "accuracy" in result.stdout
    result = run_cli("reproduce", str(logged["path"]), "--format", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["verdict"] == "pass" and report["run"]["id"] == logged["run"].id
    (check,) = report["checks"]
    assert check["recorded"] == check["reproduced"] == pytest.approx(logged["clf"].score(*logged["test"]))


def test_models_list_and_reproduce_by_name_from_the_collector(logged, sdk):
    result = run_cli("models", "--name", "iris", "--server", sdk.http_url, "--format", "json")
    assert result.returncode == 0, result.stderr
    models = [m for m in json.loads(result.stdout) if m["run"] == logged["run"].id]
    assert models == [
        {
            "name": "iris",
            "digest": logged["digest"],
            "size": logged["path"].stat().st_size,
            "run": logged["run"].id,
            "experiment": logged["experiment"],
            "time": models[0]["time"],
            "metric": "accuracy",
            "value": pytest.approx(logged["clf"].score(*logged["test"])),
        }
    ]
    # By digest prefix: the bytes come from the collector's artifact store.
    result = run_cli("reproduce", logged["digest"][:16], "--server", sdk.http_url)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout and f"model iris {logged['digest'][:12]}" in result.stderr
    result = run_cli("reproduce", "no-such-model", "--server", sdk.http_url)
    assert result.returncode == 2 and "no logged model with that name or digest" in result.stderr


def _append(path, name: str, data: bytes) -> None:
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_reproduce_detects_a_replaced_model(logged, tmp_path):
    import cloudpickle
    from sklearn.dummy import DummyClassifier

    X, y, _, _ = iris_split()
    tampered = tmp_path / "tampered.luml"
    tampered.write_bytes(logged["path"].read_bytes())
    # A later member of the same name is what extraction (and FNNX) would load.
    _append(
        tampered,
        "variant_artifacts/extra_files/model/model.pkl",
        cloudpickle.dumps(DummyClassifier().fit(X, y)),
    )
    result = run_cli("reproduce", str(tampered))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "variant_artifacts/extra_files/model/model.pkl: content changed" in result.stdout
    assert "modified after it was logged" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(luml.LumlError, match="modified after it was logged"):
        luml.load(tampered)


def test_reproduce_detects_an_added_file_and_a_changed_manifest(logged, tmp_path):
    tampered = tmp_path / "edited.luml"
    with tarfile.open(logged["path"]) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                data = data.replace(b'"iris"', b'"iris2"')
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    _append(tampered, "variant_artifacts/extra_modules/evil.py", b"print('hi')")
    report = luml.reproduce(tampered)
    assert report.verdict == "tampered" and not report.ok and report.checks == []
    changed, added = report.problems
    assert changed.startswith("manifest.json: content changed (sha256 ")
    assert added == "variant_artifacts/extra_modules/evil.py: added after the snapshot was written"


def test_reproduce_reports_a_metric_mismatch(sdk, tmp_path):
    class EnvironmentSensitive:
        """Predicts class 0, or class 1 where FLIP is set: the same file, another environment."""

        def predict(self, X):
            import os

            return np.full(len(X), 1 if os.environ.get("FLIP") else 0)

    X, y, X_test, y_test = iris_split()
    path = tmp_path / "flip.luml"
    with tracehouse.run(experiment=unique("luml-mismatch")) as run:
        run.log_model(
            EnvironmentSensitive(), "flip", eval_data=(X_test, y_test), metric="accuracy", path=path
        )
    assert run_cli("reproduce", str(path)).returncode == 0
    result = run_cli("reproduce", str(path), env={"FLIP": "1"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "MISMATCH: accuracy reproduced as" in result.stdout
    assert "mismatch" in result.stderr and "Traceback" not in result.stderr


def test_reproduce_rejects_what_it_cannot_use(logged, tmp_path):
    text = tmp_path / "notes.luml"
    text.write_text("not a model")
    not_tar = run_cli("reproduce", str(text))
    assert not_tar.returncode == 2 and "not a .luml file (not an uncompressed tar archive)" in not_tar.stderr

    stripped = tmp_path / "no-snapshot.luml"
    with tarfile.open(logged["path"]) as src, tarfile.open(stripped, "w") as dst:
        for member in src.getmembers():
            if not member.name.startswith("meta-"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    no_snapshot = run_cli("reproduce", str(stripped))
    assert no_snapshot.returncode == 2 and "no Tracehouse run snapshot" in no_snapshot.stderr
    with pytest.raises(luml.NotALumlFile, match="no such file"):
        luml.reproduce(tmp_path / "missing.luml")
    assert "Traceback" not in not_tar.stderr + no_snapshot.stderr


def test_torch_module_round_trip(tmp_path):
    import torch

    torch.manual_seed(0)
    X = np.random.default_rng(1).normal(size=(40, 3))  # float64: the package feeds the weights' dtype
    y = X @ np.array([1.0, -2.0, 0.5])
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    built = luml.build(net, tmp_path / "net.luml", "net", inputs=X[:2], eval_data=(X, y), metric="rmse")
    assert built.flavor == "torch" and built.value > 0
    report = luml.reproduce(built.path)
    assert report.ok and report.checks[0].reproduced == pytest.approx(built.value, rel=1e-6)
    restored = luml.load(built.path)
    assert isinstance(restored, torch.nn.Sequential)
    assert torch.equal(restored[0].weight, net[0].weight)


def test_keras_model_saved_in_its_own_format(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    X = np.random.default_rng(2).normal(size=(30, 4)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def balanced_accuracy(y_true, y_pred):  # a callable metric travels inside the package
        labels = np.asarray(y_pred).argmax(axis=1)
        return float(np.mean([np.mean(labels[y_true == c] == c) for c in np.unique(y_true)]))

    built = luml.build(model, tmp_path / "k.luml", "k", eval_data=(X, y), metric=balanced_accuracy)
    with tarfile.open(built.path) as tar:
        names = tar.getnames()
    assert "variant_artifacts/extra_files/model/model.keras" in names
    assert "variant_artifacts/extra_files/eval/metric.pkl" in names
    report = luml.reproduce(built.path)
    assert report.ok and report.checks[0].metric == "balanced_accuracy"
    assert report.checks[0].reproduced == pytest.approx(built.value)


def test_named_metrics():
    y = np.array([0, 1, 1, 0])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])  # argmax: 0 1 0 0
    assert luml.accuracy(y, scores) == 0.75
    assert luml.f1(y, scores) == pytest.approx(2 / 3)  # positive class: tp 1, fn 1, fp 0
    assert luml.mse([1.0, 2.0], [[1.0], [4.0]]) == 2.0 and luml.rmse([1.0, 2.0], [1.0, 4.0]) == pytest.approx(
        2**0.5
    )
    assert luml.mae([1.0, 2.0], [2.0, 4.0]) == 1.5 and luml.r2([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        luml._metric("auc")


# -- import ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def import_target(start_collector):
    """A collector of its own: what is imported is all it holds."""
    return start_collector(name="luml-import")


def test_import_luml_shaped_model_file(import_target, tmp_path):
    c = import_target
    db = luml_files.write_exp_db(tmp_path / "exp.db")
    path = luml_files.model_with_snapshot(tmp_path / "luml-model.luml", luml_files.zip_db(db))
    result = run_cli("import", str(path), "--server", c.http_url, "--format", "json")
    assert result.returncode == 0, result.stderr
    (loaded,) = json.loads(result.stdout)
    run_id = loaded["run"]
    assert loaded["source"] == "LUML model file (.luml)" and loaded["metric_points"] == 3
    assert loaded["spans"] == 2
    run = wait_for(lambda: c.sql(f"SELECT * FROM runs FINAL WHERE RunId = {quote(run_id)}"))
    assert run[0]["Experiment"] == "luml" and run[0]["Name"] == "churn"
    params = {
        r["Key"]: json.loads(r["Value"])
        for r in c.sql(f"SELECT Key, Value FROM run_params FINAL WHERE RunId = {quote(run_id)}")
    }
    assert params == {
        "learning_rate": 0.01,
        "epochs": 3,
        "use_bn": True,
        "optimizer": "adam",
        "layers": [64, 32],
    }
    loss = c.sql(f"SELECT Step, Value FROM run_metrics WHERE RunId = {quote(run_id)} ORDER BY Step")
    assert [(r["Step"], r["Value"]) for r in loss] == [(0, 1.2), (1, 0.8), (2, 0.45)]
    artifacts = {
        r["Name"]: r
        for r in c.sql(
            f"SELECT Name, Kind, Path, Digest FROM run_artifacts FINAL WHERE RunId = {quote(run_id)}"
        )
    }
    assert artifacts["notes.txt"]["Kind"] == "file" and artifacts["luml-model.luml"]["Kind"] == "model"
    assert artifacts["notes.txt"]["Path"] == "notes.txt"
    assert artifacts["plots/curve.bin"]["Path"] == "plots/curve.bin"
    for name, data in (("notes.txt", luml_files.NOTES), ("plots/curve.bin", luml_files.PLOT)):
        stored = c.session.get(f"{c.http_url}/api/v1/artifacts/{artifacts[name]['Digest']}", timeout=30)
        assert stored.content == data
    assert c.sql(f"SELECT Name FROM models FINAL WHERE RunId = {quote(run_id)}") == [{"Name": "churn"}]
    spans = wait_for(
        lambda: c.sql(
            "SELECT SpanId, ParentSpanId, Duration, StatusCode FROM otel_traces"
            f" WHERE RunId = {quote(run_id)} ORDER BY SpanId"
        )
    )
    assert spans == [
        {
            "SpanId": luml_files.CHILD,
            "ParentSpanId": luml_files.ROOT,
            "Duration": 1_500_000_000,
            "StatusCode": "Error",
        },
        {"SpanId": luml_files.ROOT, "ParentSpanId": "", "Duration": 2_500_000_123, "StatusCode": "Ok"},
    ]


def test_both_luml_forms_import_as_one_run(import_target, tmp_path):
    c = import_target
    db = luml_files.write_exp_db(tmp_path / "exp.db")
    # An experiment of its own: the same database as another test's would be the same run (its
    # identity is its content), holding that test's model file too.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO static_params VALUES ('case', 'both-forms', 'str')")
    experiment_id = str(uuid.uuid4())
    export = luml_files.experiment_export(tmp_path / "experiment.tar", luml_files.zip_db(db), experiment_id)
    model = luml_files.model_with_snapshot(tmp_path / "churn.luml", luml_files.zip_db(db))
    ids = []
    for path in (model, export, model):  # in any order, and again
        result = run_cli("import", str(path), "--server", c.http_url, "--format", "json")
        assert result.returncode == 0, result.stderr
        ids.append(json.loads(result.stdout)[0]["run"])
    run_id = ids[0]
    assert ids == [run_id] * 3
    run = wait_for(lambda: c.sql(f"SELECT * FROM runs FINAL WHERE RunId = {quote(run_id)}"))
    assert len(run) == 1 and run[0]["Name"] == "baseline-lr" and run[0]["Status"] == "finished"
    assert run[0]["Tags"]["luml.group"] == "tabular" and run[0]["Tags"]["luml.experiment_id"] == experiment_id
    assert run[0]["Tags"]["luml.tag.gbt"] == "true"
    # Whole seconds in, whole seconds out: 10:00:00 to 10:00:09.
    duration = c.scalar(
        f"SELECT toFloat64(EndTime - StartTime) FROM runs FINAL WHERE RunId = {quote(run_id)}"
    )
    assert duration == 9.0
    assert c.scalar(f"SELECT count() FROM run_metrics WHERE RunId = {quote(run_id)}") == 3
    wait_for(lambda: c.scalar(f"SELECT count() FROM otel_traces WHERE RunId = {quote(run_id)}") == 2)
    assert c.scalar(f"SELECT count() FROM otel_traces WHERE RunId = {quote(run_id)}") == 2  # not 4 or 6
    names = c.sql(f"SELECT Name FROM run_artifacts FINAL WHERE RunId = {quote(run_id)} ORDER BY Name")
    assert [r["Name"] for r in names] == ["churn.luml", "notes.txt", "plots/curve.bin"]
    # LUML's evaluation tables became rows (the three forms: one run, each row once).
    assert c.scalar(f"SELECT count() FROM run_evals FINAL WHERE RunId = {quote(run_id)}") == 2
    assert c.scalar(f"SELECT count() FROM run_eval_traces FINAL WHERE RunId = {quote(run_id)}") == 1
    assert c.scalar(f"SELECT count() FROM annotations FINAL WHERE RunId = {quote(run_id)}") == 2
    # The one feedback annotation is one score, not one per form imported.
    assert c.scalar(f"SELECT count() FROM otel_scores WHERE Source = 'annotation' AND RunId = {quote(run_id)}") == 1


def test_import_our_model_file_into_another_collector(logged, import_target):
    c, run = import_target, logged["run"]
    result = run_cli("import", str(logged["path"]), "--server", c.http_url, "--format", "json")
    assert result.returncode == 0, result.stderr
    # The file carries LUML's snapshot of the same run too: still one run.
    assert [r["run"] for r in json.loads(result.stdout)] == [run.id]
    rows = wait_for(lambda: c.sql(f"SELECT Experiment, Name FROM runs FINAL WHERE RunId = {quote(run.id)}"))
    assert rows == [{"Experiment": logged["experiment"], "Name": "iris-lr"}]
    params = c.sql(f"SELECT Key, Value FROM run_params FINAL WHERE RunId = {quote(run.id)}")
    assert params == [{"Key": "C", "Value": "0.7"}]
    loss = c.sql(f"SELECT Step, Value FROM run_metrics WHERE RunId = {quote(run.id)} AND Key = 'loss'")
    assert loss == [{"Step": 2, "Value": 0.3}]  # the final value, at the step it was logged at
    models = c.sql(f"SELECT Name, Digest FROM models FINAL WHERE RunId = {quote(run.id)}")
    assert models == [{"Name": "iris", "Digest": logged["digest"]}]


def test_import_model_file_without_snapshot_says_so(logged, tmp_path, import_target):
    stripped = tmp_path / "plain.luml"
    with tarfile.open(logged["path"]) as src, tarfile.open(stripped, "w") as dst:
        for member in src.getmembers():
            if not member.name.startswith("meta-"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    result = run_cli("import", str(stripped), "--server", import_target.http_url)
    assert result.returncode != 0 and "carries no run snapshot" in result.stderr
    assert "Traceback" not in result.stderr


# -- export ----------------------------------------------------------------------------------------


def _luml_entry(path, tag):
    """(payload, files) of the last metadata entry with `tag`, read with tarfile alone."""
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        entries = [
            e
            for name in sorted(n for n in members if n.startswith("meta-"))
            for e in json.loads(tar.extractfile(members[name]).read())
        ]
        (entry,) = [e for e in entries if tag in e["tags"] and tag in e.get("producer_tags", [])]
        prefix = f"meta_artifacts/{entry['id']}/"
        files = {
            n[len(prefix) :]: tar.extractfile(m).read() for n, m in members.items() if n.startswith(prefix)
        }
    return entry, files


def _parsed(rows: list[tuple], columns: str) -> list[tuple]:
    """Rows with LUML's JSON columns parsed (the same JSON may be spaced otherwise)."""
    json_at = {i for i, c in enumerate(columns.split(", ")) if c in ("inputs", "outputs", "refs", "scores", "metadata")}
    return [tuple(json.loads(v) if i in json_at and v else v for i, v in enumerate(r)) for r in rows]


def _exp_db_rows(zipped: bytes, tmp_path, sql: str) -> list[tuple]:
    import sqlite3
    import zipfile

    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        (tmp_path / "exp.db").write_bytes(zf.read("exp.db"))
    conn = sqlite3.connect(tmp_path / "exp.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_our_luml_carries_what_lumls_registry_reads(logged, tmp_path):
    from packaging.specifiers import SpecifierSet

    path, run = logged["path"], logged["run"]
    accuracy = logged["clf"].score(*logged["test"])
    entry, _ = _luml_entry(path, "dataforce.studio::registry_metrics:v1")
    assert entry["payload"] == {"metrics": {"loss": 0.3, "accuracy": pytest.approx(accuracy)}}
    assert entry["id"].startswith("dataforce.studio~c~~c~registry_metrics~c~v1~~et~~")

    entry, files = _luml_entry(path, "dataforce.studio::experiment_snapshot:v1")
    assert set(files) == {"exp.db.zip", "attachments.tar", "attachments.index.json"}
    assert (
        entry["payload"]["local_experiment_id"] == run.id
        and entry["payload"]["group"] == logged["experiment"]
    )
    assert _exp_db_rows(
        files["exp.db.zip"], tmp_path, "SELECT key, value, value_type FROM static_params"
    ) == [("C", "0.7", "float")]
    assert _exp_db_rows(files["exp.db.zip"], tmp_path, "SELECT key, value, step FROM dynamic_metrics") == [
        ("loss", 0.3, 2)
    ]
    tables = {r[0] for r in _exp_db_rows(files["exp.db.zip"], tmp_path, "SELECT name FROM sqlite_master")}
    assert {"static_params", "dynamic_metrics", "attachments", "spans", "evals", "eval_traces_bridge",
            "eval_annotations", "span_annotations"} <= tables  # fmt: skip

    with tarfile.open(path) as tar:
        env = json.loads(tar.extractfile("env.json").read())
    pins = [
        d["package"] for d in env["python3::conda_pip"]["dependencies"] if d["package"].startswith("fnnx")
    ]
    assert pins == ["fnnx>=0.0.8,<0.1"]
    # LUML's SDK requires fnnx>=0.0.8,<0.1.0: some release satisfies both.
    assert "0.0.11" in SpecifierSet(pins[0][4:]) and "0.0.11" in SpecifierSet(">=0.0.8,<0.1.0")


def _run_state(c, run_id):
    (row,) = c.sql(
        "SELECT Experiment, Name, ParentId, Status, StartTime, EndTime, Tags, Metadata, Packages FROM runs FINAL"
        f" WHERE RunId = {quote(run_id)}"
    )
    row["Metadata"] = {k: v for k, v in row["Metadata"].items() if k not in ("imported", "source")}
    return row


def _run_contents(c, run_id):
    q = quote(run_id)
    return {
        "run": _run_state(c, run_id),
        "params": c.sql(f"SELECT Key, Value, Type FROM run_params FINAL WHERE RunId = {q} ORDER BY Key"),
        "metrics": c.sql(
            f"SELECT Key, Step, Value, Timestamp FROM run_metrics WHERE RunId = {q} ORDER BY Key, Step"
        ),
        "artifacts": c.sql(
            f"SELECT Name, Kind, Digest, Size, Path, Metadata FROM run_artifacts FINAL WHERE RunId = {q} ORDER BY Name"
        ),
        "spans": c.sql(
            "SELECT Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, SpanAttributes,"
            " Duration, StatusCode, StatusMessage, `Events.Timestamp`, `Events.Name`, `Events.Attributes`,"
            " `Links.TraceId`, `Links.SpanId`, `Links.Attributes`, RunId, InputTokens, OutputTokens, TotalCostUSD"
            f" FROM otel_traces WHERE RunId = {q} ORDER BY TraceId, SpanId"
        ),
        "evals": c.sql(f"SELECT * EXCEPT Version FROM run_evals FINAL WHERE RunId = {q} ORDER BY Dataset, ExampleId"),
        "eval_traces": c.sql(
            f"SELECT * EXCEPT Version FROM run_eval_traces FINAL WHERE RunId = {q} ORDER BY ExampleId, TraceId"
        ),
        "annotations": c.sql(
            f"SELECT * EXCEPT Version FROM annotations FINAL WHERE RunId = {q} ORDER BY AnnotationId"
        ),
    }


@pytest.fixture(scope="module")
def roundtrip_target(start_collector):
    return start_collector(name="luml-roundtrip")


def test_luml_export_round_trip_of_an_imported_luml_run(import_target, roundtrip_target, tmp_path):
    db = luml_files.write_exp_db(tmp_path / "exp.db")
    source = luml_files.experiment_export(tmp_path / "in.tar", luml_files.zip_db(db), str(uuid.uuid4()))
    result = run_cli("import", str(source), "--server", import_target.http_url, "--format", "json")
    run_id = json.loads(result.stdout)[0]["run"]
    wait_for(
        lambda: import_target.scalar(f"SELECT count() FROM otel_traces WHERE RunId = {quote(run_id)}") == 2
    )
    original = _run_contents(import_target, run_id)

    out = tmp_path / "out.tar"
    result = run_cli(
        "runs", "export", run_id, "-o", str(out), "--format", "luml", "--server", import_target.http_url
    )
    assert result.returncode == 0, result.stderr
    assert "2 spans" in result.stderr
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        assert sorted(tar.getnames()) == [
            "attachments.index.json",
            "attachments.tar",
            "exp.db.zip",
            "manifest.json",
        ]
        exp_db = tar.extractfile("exp.db.zip").read()
    assert manifest["artifact_type"] == "experiment"
    assert manifest["producer_tags"] == ["luml.ai::experiment_snapshot:v1"]
    assert manifest["payload"]["local_experiment_id"] == run_id
    # LUML's own tables hold the evals, their trace links, the annotations and the spans again,
    # row for row.
    assert _exp_db_rows(exp_db, tmp_path, "SELECT id, dataset_id, scores FROM evals ORDER BY id") == [
        ("e1", "qa", '{"exact": 1.0}'),
        ("e2", "qa", '{"exact": 0.0}'),
    ]
    for table, columns in (
        ("evals", "id, dataset_id, inputs, outputs, refs, scores, metadata, created_at, updated_at"),
        ("eval_traces_bridge", "id, eval_dataset_id, eval_id, trace_id, created_at"),
        ("eval_annotations", "id, dataset_id, eval_id, name, annotation_kind, value_type, value, user, rationale, created_at"),
        ("span_annotations", "id, trace_id, span_id, name, annotation_kind, value_type, value, user, rationale, created_at"),
    ):  # fmt: skip
        sql = f"SELECT {columns} FROM {table} ORDER BY id"
        theirs = _exp_db_rows(luml_files.zip_db(db), tmp_path, sql)
        ours = _exp_db_rows(exp_db, tmp_path, sql)
        assert _parsed(ours, columns) == _parsed(theirs, columns), table
    spans = _exp_db_rows(
        exp_db, tmp_path, "SELECT span_id, start_time_unix_nano, end_time_unix_nano FROM spans"
    )
    assert sorted(spans) == sorted(
        _exp_db_rows(
            luml_files.zip_db(db),
            tmp_path,
            "SELECT span_id, start_time_unix_nano, end_time_unix_nano FROM spans",
        )
    )

    result = run_cli("import", str(out), "--server", roundtrip_target.http_url, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["run"] == run_id
    wait_for(
        lambda: roundtrip_target.scalar(f"SELECT count() FROM otel_traces WHERE RunId = {quote(run_id)}") == 2
    )
    assert _run_contents(roundtrip_target, run_id) == original


def test_luml_export_round_trip_of_an_sdk_run(logged, sdk, roundtrip_target, tmp_path):
    run = logged["run"]
    with tracehouse.run(experiment=logged["experiment"], name="typed", params={"lr": 0.25, "n": 3, "opt": "adam",
                        "bn": False, "layers": [64, 32], "extra": {"a": None}}) as typed:  # fmt: skip
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            typed.log_metric("loss", loss, step=step)
        typed.log_metric("acc", 0.5)
        notes = tmp_path / "notes.md"
        notes.write_bytes(b"# notes\n" + bytes(range(256)))
        typed.log_artifact(str(notes), name="reports/notes.md")
    typed.flush()
    for run_id in (run.id, typed.id):
        wait_for(
            lambda run_id=run_id: sdk.sql(
                f"SELECT 1 FROM runs FINAL WHERE RunId = {quote(run_id)} AND Status = 'finished'"
            )
        )
        original = _run_contents(sdk, run_id)
        out = tmp_path / f"{run_id}.tar"
        result = run_cli(
            "runs", "export", run_id, "-o", str(out), "--format", "luml", "--server", sdk.http_url
        )
        assert result.returncode == 0, result.stderr
        result = run_cli("import", str(out), "--server", roundtrip_target.http_url, "--format", "json")
        assert result.returncode == 0, result.stderr
        copy = wait_for(
            lambda run_id=run_id: roundtrip_target.sql(
                f"SELECT 1 FROM runs FINAL WHERE RunId = {quote(run_id)}"
            )
        )
        assert copy
        assert _run_contents(roundtrip_target, run_id) == original
    params = {
        r["Key"]: (json.loads(r["Value"]), r["Type"])
        for r in _run_contents(roundtrip_target, typed.id)["params"]
    }
    assert params["n"] == (3, "int") and params["lr"] == (0.25, "float") and params["bn"] == (False, "bool")
    assert params["layers"][0] == [64, 32] and params["extra"][0] == {"a": None}
