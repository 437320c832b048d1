"""PyTorch Lightning, zero-code: every `Trainer.fit` records a run through a TracehouseLogger
added for the duration of the call (unless the trainer already has one)."""

from __future__ import annotations

from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors._training import TrainingInstrumentor


def _fit(wrapped: Any, trainer: Any, args: tuple, kwargs: dict) -> Any:
    from tracehouse.integrations.lightning import logger_class

    cls = logger_class("lightning.pytorch")
    if any(isinstance(logger, cls) for logger in trainer.loggers):
        return wrapped(*args, **kwargs)
    logger = cls(_attach=False)  # a run of its own (nested under an active run)
    previous = list(trainer.loggers)
    trainer.loggers = [*previous, logger]
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        if logger._training is not None:
            logger._training.finish(error=exc)
        raise
    finally:
        if logger._training is not None:
            logger._training.finish()  # no-op when Lightning's finalize already ended it
        trainer.loggers = previous


class LightningInstrumentor(TrainingInstrumentor):
    name = "lightning"
    packages = ("lightning >= 2.0",)

    def patch(self) -> None:
        from lightning.pytorch.trainer.trainer import Trainer

        wrapt.wrap_function_wrapper(Trainer, "fit", _fit)

    def unpatch(self) -> None:
        from lightning.pytorch.trainer.trainer import Trainer

        unwrap(Trainer, "fit")
