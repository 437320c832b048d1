"""The FNNX `pyfunc` class inside every `.luml` package Tracehouse writes.

This file is copied verbatim into the package (as `variant_artifacts/__pyfunc__.py`) and loaded
there by the FNNX runtime on its own, so it imports nothing from Tracehouse: only numpy, fnnx and
the model's framework. `tracehouse.luml` imports the same `load_model` / `predict` functions, so a
metric computed when the model is logged and one reproduced from the package run the same code.

extra_values (variant_config.json): {"flavor": "pickle"|"torch"|"keras", "model_file": "model/…",
"keras_backend": "torch"}.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from fnnx.variants.pyfunc import PyFunc

INPUT = "x"
OUTPUT = "y"


def load_model(path: str, flavor: str, keras_backend: str | None = None) -> Any:
    if flavor == "keras":
        if keras_backend:
            os.environ.setdefault("KERAS_BACKEND", keras_backend)
        import keras

        return keras.saving.load_model(path)
    import cloudpickle

    with open(path, "rb") as f:
        return cloudpickle.load(f)


def _torch_predict(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    tensor = torch.as_tensor(np.ascontiguousarray(x))
    if tensor.is_floating_point():
        # Weights decide the dtype: float64 data into a float32 network would fail.
        param = next(iter(model.parameters()), None)
        if param is not None and param.is_floating_point():
            tensor = tensor.to(param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(tensor)
    finally:
        model.train(was_training)
    if hasattr(out, "logits"):  # transformers' ModelOutput
        out = out.logits
    elif isinstance(out, tuple | list):
        out = out[0]
    return out.detach().cpu().numpy()


def predict(model: Any, flavor: str, x: np.ndarray) -> np.ndarray:
    """The model's prediction for a batch, as a numpy array."""
    if flavor == "torch":
        return _torch_predict(model, x)
    if flavor == "keras":
        return np.asarray(model.predict(x, verbose=0))
    if hasattr(model, "predict"):
        return np.asarray(model.predict(x))
    return np.asarray(model(x))


class TracehouseModel(PyFunc):
    """Predicts `y` from the batch `x` with the model saved next to this file."""

    def warmup(self) -> None:
        flavor = self.fnnx_context.get_value("flavor")
        path = self.fnnx_context.get_filepath(self.fnnx_context.get_value("model_file"))
        if path is None:
            raise FileNotFoundError("the package holds no model file")
        self.flavor = flavor
        self.model = load_model(path, flavor, self.fnnx_context.get_value("keras_backend"))

    def compute(self, inputs: dict[str, Any], dynamic_attributes: dict[str, str]) -> dict[str, Any]:
        return {OUTPUT: predict(self.model, self.flavor, inputs[INPUT])}

    async def compute_async(
        self, inputs: dict[str, Any], dynamic_attributes: dict[str, str]
    ) -> dict[str, Any]:
        return self.compute(inputs, dynamic_attributes)
