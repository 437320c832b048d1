"""Keras 3: a callback that records `Model.fit` as a Tracehouse run.

    from tracehouse.integrations.keras import TracehouseCallback
    model.fit(x, y, epochs=5, batch_size=32, callbacks=[TracehouseCallback(experiment="mnist")])

Params: epochs, steps per epoch, the optimizer's configuration (`optimizer.learning_rate`, …),
the loss, the model's name and size, and anything passed as `params=` (the zero-code patch
passes `batch_size` and the other `fit` arguments). Metrics: each epoch's logs with the epoch as
step (`loss`, `val_loss`, …), and with `log_batches=True` (the default) the running batch values
as `batch.<name>` with the global batch number as step. Inside an active `tracehouse.run(...)`
the callback writes into that run, otherwise the training is a run of its own.
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras

from tracehouse.integrations._common import TrainingRun, flatten, param_value


class TracehouseCallback(keras.callbacks.Callback):
    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        run: Any = None,
        params: dict[str, Any] | None = None,
        log_batches: bool = True,
        tags: dict[str, str] | None = None,
        _attach: bool = True,
    ) -> None:
        super().__init__()
        self._experiment_name = experiment
        self._run_name = run_name
        self._given_run = run
        self._extra_params = dict(params or {})
        self._log_batches = log_batches
        self._tags = tags
        self._attach = _attach
        self.training: TrainingRun | None = None
        self._batches = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._batches = 0
        self.training = TrainingRun(
            "keras",
            name=self._run_name or getattr(self.model, "name", None),
            experiment=self._experiment_name,
            tags=self._tags,
            attach=self._attach,
            run=self._given_run,
        )
        params: dict[str, Any] = {}
        fit = self.params or {}
        params["epochs"] = fit.get("epochs")
        params["steps_per_epoch"] = fit.get("steps")
        model = self.model
        params["model"] = getattr(model, "name", type(model).__name__)
        with contextlib.suppress(Exception):  # an unbuilt model has no weights to count yet
            params["model.parameters"] = int(model.count_params())
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = type(optimizer).__name__
            with contextlib.suppress(Exception):
                params.update(flatten(optimizer.get_config(), "optimizer."))
            lr = getattr(optimizer, "learning_rate", None)
            if lr is not None:
                params["optimizer.learning_rate"] = param_value(_lr_value(lr))
        loss = getattr(model, "loss", None)
        if loss is not None:
            params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
        params.update(flatten(self._extra_params))
        self.training.log_params(params)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self._log_batches and logs and self.training is not None:
            self.training.log_metrics(logs, step=self._batches, prefix="batch.")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and self.training is not None:
            self.training.log_metrics(logs, step=epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.training is not None:
            self.training.finish()

    def finish(self, error: BaseException | None = None) -> None:
        """End a run this callback started, when `fit` stopped without `on_train_end` (an error)."""
        if self.training is not None:
            self.training.finish(error=error)


def _lr_value(lr: Any) -> Any:
    """A learning rate variable's value; a schedule's configuration."""
    if hasattr(lr, "get_config") and not hasattr(lr, "numpy"):
        return {"schedule": type(lr).__name__, **lr.get_config()}
    try:
        return float(keras.ops.convert_to_numpy(lr))
    except Exception:
        return lr
