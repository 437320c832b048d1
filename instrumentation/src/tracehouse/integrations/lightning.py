"""PyTorch Lightning: a logger that records a training as a Tracehouse run.

    from tracehouse.integrations.lightning import TracehouseLogger
    trainer = Trainer(logger=TracehouseLogger(experiment="mnist"), max_epochs=3)

Hyperparameters (`save_hyperparameters()`), the optimizer's settings, the trainer's limits and
every logged metric with its global step are recorded. Inside an active `tracehouse.run(...)`
the logger writes into that run; otherwise each `fit` (or `validate`/`test`) is a run of its own,
ended with the trainer's status. `TracehouseLogger` is built on `lightning.pytorch`; for the
older `pytorch_lightning` package use `logger_class("pytorch_lightning")(experiment=...)`.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracehouse.integrations._common import TrainingRun, flatten, param_value

_classes: dict[str, type] = {}


def logger_class(package: str) -> type:
    """The logger class built on `package`'s own Logger base (the trainer checks isinstance)."""
    if package in _classes:
        return _classes[package]
    base = importlib.import_module(f"{package}.loggers.logger").Logger

    class TracehouseLogger(base):  # type: ignore[misc, valid-type]
        def __init__(
            self,
            experiment: str | None = None,
            run_name: str | None = None,
            run: Any = None,
            tags: dict[str, str] | None = None,
            _attach: bool = True,
        ) -> None:
            super().__init__()
            self._experiment_name = experiment
            self._run_name = run_name
            self._given_run = run
            self._tags = tags
            self._attach = _attach
            self._training: TrainingRun | None = None

        # -- the run ----------------------------------------------------------------------
        @property
        def training(self) -> TrainingRun:
            if self._training is None or self._training.finished:
                self._training = TrainingRun(
                    "lightning",
                    name=self._run_name,
                    experiment=self._experiment_name,
                    tags=self._tags,
                    attach=self._attach,
                    run=self._given_run,
                )
            return self._training

        @property
        def experiment(self) -> Any:
            """The Tracehouse run."""
            return self.training.run

        @property
        def name(self) -> str:
            return self._experiment_name or "tracehouse"

        @property
        def version(self) -> str:
            return self.training.run.id

        # -- Logger API -------------------------------------------------------------------
        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            self.training.log_params(flatten(params))

        def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
            self.training.log_metrics(metrics, step=step)

        def log_graph(self, model: Any, input_array: Any = None) -> None:
            # Called once at the start of fit, after the optimizers exist: the settings that
            # `save_hyperparameters` does not see.
            params: dict[str, Any] = {
                "model": type(model).__name__,
                "model.parameters": sum(p.numel() for p in model.parameters()),
            }
            trainer = getattr(model, "_trainer", None)
            if trainer is not None:
                for key in (
                    "max_epochs",
                    "max_steps",
                    "accumulate_grad_batches",
                    "precision",
                    "gradient_clip_val",
                ):
                    params[f"trainer.{key}"] = param_value(getattr(trainer, key, None))
                optimizers = getattr(trainer, "optimizers", None) or []
                if optimizers:
                    opt = optimizers[0]
                    params["optimizer"] = type(opt).__name__
                    group = opt.param_groups[0] if opt.param_groups else {}
                    for key, value in group.items():
                        if key != "params":
                            params[f"optimizer.{key}"] = param_value(value)
            self.training.log_params(params)

        def finalize(self, status: str) -> None:
            if self._training is not None:
                self._training.finish(failed=status == "failed")

        def save(self) -> None:
            pass

    _classes[package] = TracehouseLogger
    return TracehouseLogger


def __getattr__(name: str) -> Any:
    if name == "TracehouseLogger":
        try:
            return logger_class("lightning.pytorch")
        except ImportError:
            return logger_class("pytorch_lightning")
    raise AttributeError(name)
