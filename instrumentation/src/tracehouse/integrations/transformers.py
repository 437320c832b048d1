"""Hugging Face `transformers.Trainer`: a callback that records a training as a Tracehouse run.

    from tracehouse.integrations.transformers import TracehouseCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[TracehouseCallback()])

On `train` begin: the TrainingArguments (learning rate, epochs, batch sizes, seed, …) and the
model's class, size and configuration as params. Each `on_log` (every `logging_steps`): the
numeric logs (`loss`, `grad_norm`, `learning_rate`, `eval_loss`, …) at the trainer's global
step. On train end the run is finished (a failing `train` marks it failed when attached by
TRACEHOUSE_INSTRUMENT). Inside an active `tracehouse.run(...)` the callback writes there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from transformers import TrainerCallback

from tracehouse.integrations._common import TrainingRun, flatten, param_value

# Paths and hub tokens say nothing about the training, and a token must never be stored.
_SKIPPED_ARGS = {"output_dir", "logging_dir", "hub_token", "push_to_hub_token", "run_name", "report_to"}
_CONFIG_KEYS = (
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "max_position_embeddings", "num_labels", "torch_dtype", "dtype",
)  # fmt: skip


class TracehouseCallback(TrainerCallback):
    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        run: Any = None,
        tags: dict[str, str] | None = None,
        _attach: bool = True,
    ) -> None:
        self._experiment_name = experiment
        self._run_name = run_name
        self._given_run = run
        self._tags = tags
        self._attach = _attach
        self.training: TrainingRun | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.training = TrainingRun(
            "transformers",
            name=self._run_name
            or getattr(args, "run_name", None)
            or (type(model).__name__ if model else None),
            experiment=self._experiment_name,
            tags=self._tags,
            attach=self._attach,
            run=self._given_run,
        )
        params = {k: param_value(v) for k, v in args.to_dict().items() if k not in _SKIPPED_ARGS}
        params = {k: v for k, v in params.items() if v is not None and v != ""}
        if model is not None:
            params["model"] = type(model).__name__
            with contextlib.suppress(Exception):
                params["model.parameters"] = sum(p.numel() for p in model.parameters())
            config = getattr(model, "config", None)
            if config is not None:
                values = config.to_dict()
                params.update(flatten({k: values[k] for k in _CONFIG_KEYS if k in values}, "model.config."))
        self.training.log_params(params)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.training is not None and logs:
            self.training.log_metrics(logs, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.training is not None:
            self.training.finish()

    def finish(self, error: BaseException | None = None) -> None:
        if self.training is not None:
            self.training.finish(error=error)
