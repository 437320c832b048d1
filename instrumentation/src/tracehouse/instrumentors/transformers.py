"""Hugging Face transformers, zero-code: every `Trainer` gets a TracehouseCallback when it is
created (unless it has one), so each `train()` records a run; a failing `train()` marks it failed."""

from __future__ import annotations

from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors._training import TrainingInstrumentor


def _ours(trainer: Any) -> Any:
    from tracehouse.integrations.transformers import TracehouseCallback

    handler = getattr(trainer, "callback_handler", None)
    for callback in getattr(handler, "callbacks", ()):
        if isinstance(callback, TracehouseCallback):
            return callback
    return None


def _init(wrapped: Any, trainer: Any, args: tuple, kwargs: dict) -> Any:
    from tracehouse.integrations.transformers import TracehouseCallback

    result = wrapped(*args, **kwargs)
    if _ours(trainer) is None:
        trainer.add_callback(TracehouseCallback(_attach=False))
    return result


def _train(wrapped: Any, trainer: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        callback = _ours(trainer)
        if callback is not None:
            callback.finish(error=exc)
        raise


class TransformersInstrumentor(TrainingInstrumentor):
    name = "transformers"
    packages = ("transformers >= 4.30",)

    def patch(self) -> None:
        from transformers.trainer import Trainer

        wrapt.wrap_function_wrapper(Trainer, "__init__", _init)
        wrapt.wrap_function_wrapper(Trainer, "train", _train)

    def unpatch(self) -> None:
        from transformers.trainer import Trainer

        unwrap(Trainer, "__init__")
        unwrap(Trainer, "train")
