"""What the training-loop integrations share: the run a training logs into, and turning framework
values (tensors, numpy scalars, nested configs, namespaces) into params and metric values."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

MAX_PARAM_CHARS = 500


class TrainingRun:
    """The run one training logs into.

    With `attach=True` (an integration object the user added by hand) an active run is used as
    it is and left open; otherwise a run is started for the training, made the active one (so
    LLM spans and nested runs link to it) and ended by `finish`.
    """

    def __init__(
        self,
        integration: str,
        name: str | None = None,
        experiment: str | None = None,
        tags: dict[str, str] | None = None,
        attach: bool = True,
        run: Any = None,
    ) -> None:
        import tracehouse

        self.owned = False
        self.finished = False
        if run is None and attach:
            run = tracehouse.active_run()
        if run is None:
            kwargs: dict[str, Any] = {
                "name": name,
                "tags": {"tracehouse.integration": integration, **(tags or {})},
            }
            # Zero-code runs have no code to name their experiment: TRACEHOUSE_EXPERIMENT does.
            experiment = experiment or os.environ.get("TRACEHOUSE_EXPERIMENT")
            if experiment:
                kwargs["experiment"] = experiment
            run = tracehouse.run(**kwargs)  # the active run (in this context) until finish()
            self.owned = True
        self.run = run

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = {k: v for k, v in params.items() if v is not None}
        if clean:
            self.run.log_params(clean)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, prefix: str = "") -> None:
        values = numeric(metrics)
        if values:
            self.run.log_metrics({prefix + k: v for k, v in values.items()}, step=step)

    def finish(self, error: BaseException | None = None, failed: bool = False) -> None:
        """End the run if this training started it (once); `error`/`failed` mark it failed."""
        if not self.owned or self.finished:
            return
        self.finished = True
        if error is None and failed:
            error = RuntimeError("training failed")
        if error is None:
            self.run.__exit__(None, None, None)
        else:
            self.run.__exit__(type(error), error, error.__traceback__)


def scalar(value: Any) -> float | None:
    """A finite-or-not float from a Python number, numpy scalar or one-element tensor; else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    item = getattr(value, "item", None)
    if item is not None:
        try:
            if getattr(value, "ndim", 0) == 0 or getattr(value, "size", 1) == 1:
                v = item()
                return float(v) if isinstance(v, int | float | bool) else None
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        v = scalar(value)
        if v is not None:  # NaN kept: a diverging loss is worth seeing
            out[str(key)] = v
    return out


def param_value(value: Any) -> Any:
    """A value the run's params keep as typed: bool, int, float, str; anything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    v = scalar(value)
    if v is not None:
        return v
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, list | tuple) and all(isinstance(x, bool | int | float | str) for x in value):
        return list(value)
    text = repr(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"


def flatten(params: Any, prefix: str = "", depth: int = 4) -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}; namespaces and dataclass-likes too."""
    if not isinstance(params, Mapping):
        params = vars(params) if hasattr(params, "__dict__") and not isinstance(params, type) else {}
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth > 0:
            out.update(flatten(value, name + ".", depth - 1))
        else:
            out[name] = param_value(value)
    return out


def warn(message: str) -> None:
    print(f"tracehouse: {message}", file=sys.stderr, flush=True)
