"""Training-loop integrations end to end: a real tiny training per framework (CPU, a few steps),
its run sent by the SDK to a real `tracehouse serve`, params and metric histories read back from
the run tables; and zero-code attach with only TRACEHOUSE_INSTRUMENT=1 in a subprocess."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import tracehouse
from helpers import REPO, quote, unique, wait_for
from tracehouse import _run_transport


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


# -- reading back ------------------------------------------------------------------------------


def runs_of(collector, experiment: str, count: int) -> list[dict]:
    sql = (
        "SELECT RunId, Name, ParentId, Status, Tags FROM runs FINAL "
        f"WHERE Experiment = {quote(experiment)} ORDER BY StartTime"
    )
    rows = wait_for(
        lambda: (
            (r := collector.sql(sql)) and len(r) >= count and all(x["Status"] != "running" for x in r) and r
        ),
        timeout=20,
    )
    assert rows and len(rows) == count, collector.sql(sql)
    return rows


def params_of(collector, run_id: str) -> dict:
    rows = collector.sql(f"SELECT Key, Value FROM run_params FINAL WHERE RunId = {quote(run_id)}")
    return {r["Key"]: json.loads(r["Value"]) for r in rows}


def history(collector, run_id: str, key: str) -> list[tuple[int, float]]:
    rows = collector.sql(
        f"SELECT Step, Value FROM run_metrics WHERE RunId = {quote(run_id)} AND Key = {quote(key)} "
        "ORDER BY Step, Timestamp"
    )
    return [(int(r["Step"]), float(r["Value"])) for r in rows]


def wait_params(collector, run_id: str, *keys: str) -> dict:
    params = wait_for(
        lambda: (p := params_of(collector, run_id)) and all(k in p for k in keys) and p, timeout=20
    )
    assert params, params_of(collector, run_id)
    return params


def classification_data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 1).astype("int64")
    return X, y


# -- scikit-learn ------------------------------------------------------------------------------


def test_sklearn_log_fit_into_active_run(sdk):
    from sklearn.linear_model import LogisticRegression
    from tracehouse.integrations.sklearn import log_fit

    exp = unique("sk")
    X, y = classification_data()
    with tracehouse.run(experiment=exp, name="explicit") as run:
        clf = LogisticRegression(C=0.5, max_iter=300).fit(X, y)
        assert log_fit(clf, X, y) is run  # the active run, left open
        run.log_metric("after", 1.0)
    (row,) = runs_of(sdk, exp, 1)
    assert row["RunId"] == run.id and row["Status"] == "finished"
    params = wait_params(sdk, run.id, "C", "sklearn.estimator")
    assert (
        params["C"] == 0.5
        and params["max_iter"] == 300
        and params["sklearn.estimator"] == "LogisticRegression"
    )
    accuracy = wait_for(lambda: history(sdk, run.id, "training_accuracy"), timeout=20)
    assert accuracy == [(0, pytest.approx(clf.score(X, y)))]
    assert 0 < history(sdk, run.id, "training_f1")[0][1] <= 1


# -- PyTorch Lightning -------------------------------------------------------------------------


def _lightning_module():
    import lightning.pytorch as pl
    import torch

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    return Tiny


def _loader(batch_size: int = 12):
    import torch

    X, y = classification_data()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=batch_size
    )


def test_lightning_logger(sdk, tmp_path):
    import lightning.pytorch as pl
    from tracehouse.integrations.lightning import TracehouseLogger

    exp = unique("pl")
    logger = TracehouseLogger(experiment=exp, run_name="tiny")
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(_lightning_module()(lr=0.05), _loader())
    (row,) = runs_of(sdk, exp, 1)
    assert row["Name"] == "tiny" and row["Status"] == "finished"
    params = wait_params(sdk, row["RunId"], "lr", "optimizer.lr", "trainer.max_epochs")
    assert params["lr"] == 0.05 and params["hidden"] == 8
    assert params["optimizer"] == "SGD" and params["optimizer.momentum"] == 0.9
    assert params["trainer.max_epochs"] == 2 and params["model"] == "Tiny"
    points = wait_for(lambda: len(h := history(sdk, row["RunId"], "train_loss")) == 8 and h, timeout=20)
    assert points, history(sdk, row["RunId"], "train_loss")  # 4 batches x 2 epochs
    steps = [s for s, _ in points]
    assert steps == sorted(steps) and len(set(steps)) == 8
    assert all(math.isfinite(v) and v > 0 for _, v in points)


# -- Keras 3 (torch backend) -------------------------------------------------------------------


def test_keras_callback(sdk):
    import keras
    from tracehouse.integrations.keras import TracehouseCallback

    keras.utils.set_random_seed(0)
    exp = unique("keras")
    X, y = classification_data()
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callback = TracehouseCallback(experiment=exp, params={"batch_size": 16})
    fitted = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[callback])
    (row,) = runs_of(sdk, exp, 1)
    run_id = row["RunId"]
    params = wait_params(sdk, run_id, "epochs", "optimizer.learning_rate", "batch_size")
    assert params["epochs"] == 3 and params["batch_size"] == 16 and params["steps_per_epoch"] == 3
    assert params["optimizer"] == "SGD" and params["optimizer.learning_rate"] == pytest.approx(0.1)
    assert params["model.parameters"] == model.count_params()
    loss = wait_for(lambda: len(h := history(sdk, run_id, "loss")) == 3 and h, timeout=20)
    assert [s for s, _ in loss] == [0, 1, 2]
    assert [v for _, v in loss] == pytest.approx(fitted.history["loss"])
    assert [v for _, v in history(sdk, run_id, "val_loss")] == pytest.approx(fitted.history["val_loss"])
    batches = wait_for(lambda: len(h := history(sdk, run_id, "batch.loss")) == 9 and h, timeout=20)
    assert [s for s, _ in batches] == list(range(1, 10))  # 36 rows / 16 = 3 batches x 3 epochs


# -- Hugging Face transformers -----------------------------------------------------------------


def test_transformers_trainer_callback(sdk, tmp_path):
    import torch
    from tracehouse.integrations.transformers import TracehouseCallback
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)  # random weights: nothing from the hub
    data = [
        {
            "input_ids": torch.randint(1, 40, (8,)),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": i % 2,
        }
        for i in range(16)
    ]
    exp = unique("hf")
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(
        model=model, args=args, train_dataset=data, callbacks=[TracehouseCallback(experiment=exp)]
    ).train()
    (row,) = runs_of(sdk, exp, 1)
    params = wait_params(sdk, row["RunId"], "learning_rate", "max_steps", "model")
    assert params["learning_rate"] == 1e-3 and params["max_steps"] == 4
    assert params["model"] == "BertForSequenceClassification" and params["model.config.hidden_size"] == 16
    loss = wait_for(lambda: len(h := history(sdk, row["RunId"], "loss")) == 4 and h, timeout=20)
    assert [s for s, _ in loss] == [1, 2, 3, 4]


# -- zero-code ---------------------------------------------------------------------------------


def run_script(collector, tmp_path, script: str, experiment: str, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(script))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    full_env.update(
        TRACEHOUSE_INSTRUMENT="1",
        TRACEHOUSE_EXPERIMENT=experiment,
        TRACEHOUSE_SPOOL_DIR=str(tmp_path / "spool"),
        TRACEHOUSE_SYSTEM_METRICS_INTERVAL="0",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_url,
        **env,
    )
    proc = subprocess.run(
        [sys.executable, str(path)], env=full_env, cwd=str(REPO), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_zero_code_sklearn_outermost_fits_only(collector, tmp_path):
    exp = unique("zc-sk")
    run_script(
        collector,
        tmp_path,
        """
        import numpy as np
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 3))
        y = (X[:, 0] > 0).astype(int)
        pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
        search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=2, n_jobs=2).fit(X, y)
        LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
        try:
            LogisticRegression(C=-1.0).fit(X, y)   # invalid: the run is marked failed
        except ValueError:
            pass
        print("best", search.best_params_["clf__C"])
        """,
        exp,
    )
    rows = runs_of(collector, exp, 3)  # not one per Pipeline / LogisticRegression / CV fold
    assert [(r["Name"], r["Status"]) for r in rows] == [
        ("GridSearchCV", "finished"),
        ("LinearRegression", "finished"),
        ("LogisticRegression", "failed"),
    ]
    assert rows[0]["Tags"]["tracehouse.integration"] == "sklearn"
    search = wait_params(collector, rows[0]["RunId"], "best.clf__C", "cv")
    assert search["cv"] == 2 and search["sklearn.estimator"] == "GridSearchCV"
    assert search["best.clf__C"] in (0.1, 1.0) and search["estimator__clf__C"] == 1.0
    assert wait_for(lambda: history(collector, rows[0]["RunId"], "best_cv_score"), timeout=20)
    r2 = wait_for(lambda: history(collector, rows[1]["RunId"], "training_r2"), timeout=20)
    assert r2 == [(0, pytest.approx(1.0))]
    assert wait_params(collector, rows[2]["RunId"], "C")["C"] == -1.0


def test_zero_code_lightning(collector, tmp_path):
    exp = unique("zc-pl")
    run_script(
        collector,
        tmp_path,
        """
        import torch
        import lightning.pytorch as pl

        class Tiny(pl.LightningModule):
            def __init__(self, lr=0.1):
                super().__init__()
                self.save_hyperparameters()
                self.net = torch.nn.Linear(4, 2)

            def training_step(self, batch, batch_idx):
                x, y = batch
                loss = torch.nn.functional.cross_entropy(self.net(x), y)
                self.log("loss", loss)
                return loss

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

        torch.manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(24, 4), torch.randint(0, 2, (24,)))
        trainer = pl.Trainer(max_epochs=2, logger=False, log_every_n_steps=1, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
        trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
        assert trainer.loggers == []   # ours was only there during fit
        """,
        exp,
    )
    (row,) = runs_of(collector, exp, 1)
    assert row["Status"] == "finished" and row["Tags"]["tracehouse.integration"] == "lightning"
    params = wait_params(collector, row["RunId"], "lr", "optimizer")
    assert params["lr"] == 0.1 and params["optimizer"] == "Adam"
    assert wait_for(lambda: len(history(collector, row["RunId"], "loss")) == 6, timeout=20)
