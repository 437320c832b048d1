"""Keras 3, zero-code: every `Model.fit` records a run through a TracehouseCallback added to the
call's callbacks (unless it already has one), with `batch_size` and the other fit arguments."""

from __future__ import annotations

import inspect
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors._training import TrainingInstrumentor

_FIT_PARAMS = ("batch_size", "validation_split", "shuffle", "initial_epoch", "validation_freq")


def _fit(wrapped: Any, model: Any, args: tuple, kwargs: dict) -> Any:
    from tracehouse.integrations.keras import TracehouseCallback

    try:
        bound = inspect.signature(wrapped).bind(*args, **kwargs)
    except TypeError:
        return wrapped(*args, **kwargs)  # let Keras report the bad call
    callbacks = bound.arguments.get("callbacks")
    if callbacks is not None and not isinstance(callbacks, list | tuple):
        return wrapped(*args, **kwargs)  # a CallbackList built by the caller: leave it alone
    if any(isinstance(cb, TracehouseCallback) for cb in callbacks or ()):
        return wrapped(*args, **kwargs)
    params = {k: bound.arguments[k] for k in _FIT_PARAMS if bound.arguments.get(k) is not None}
    if hasattr(bound.arguments.get("x"), "shape"):
        params.setdefault("batch_size", 32)  # Keras' own default for arrays (datasets batch themselves)
    callback = TracehouseCallback(params=params, _attach=False)
    bound.arguments["callbacks"] = [*(callbacks or ()), callback]
    try:
        return wrapped(*bound.args, **bound.kwargs)
    except BaseException as exc:
        callback.finish(error=exc)
        raise
    finally:
        callback.finish()


class KerasInstrumentor(TrainingInstrumentor):
    name = "keras"
    packages = ("keras >= 3.0",)

    def patch(self) -> None:
        import keras

        wrapt.wrap_function_wrapper(keras.Model, "fit", _fit)

    def unpatch(self) -> None:
        import keras

        unwrap(keras.Model, "fit")
