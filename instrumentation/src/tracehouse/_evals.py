"""Eval examples of a run, linked to the traces made while producing them, and annotations.

    with tracehouse.run(experiment="qa") as run:
        for row in dataset:
            with run.eval_example("qa-v1", row["id"], inputs={"question": row["q"]}) as ex:
                answer = agent(row["q"])                     # LLM calls: linked to the example
                ex.record(outputs={"answer": answer}, references={"answer": row["a"]},
                          scores={"exact": float(answer == row["a"])})

Every span started inside the `with` block (in this thread or in tasks and threads that inherit
its context) adds its trace to the example, through the span processor the SDK installs
(`tracehouse._context.ContextSpanProcessor`), and carries `tracehouse.eval.dataset` and
`tracehouse.eval.example_id`. At the end of the block the example travels with the run's other
data (a `tracehouse.run.eval` record, through the same spool) to the `run_evals` and
`run_eval_traces` tables. An exception inside the block is recorded in the example's metadata
(`error`) and re-raised.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

EVAL_RECORD = "tracehouse.run.eval"
DATASET_KEY = "tracehouse.eval.dataset"
EXAMPLE_KEY = "tracehouse.eval.example_id"

class _Run(Protocol):
    """What an example needs of its run (tracehouse._run.Run): its id and its transport."""

    id: str
    _transport: Any



def current_example() -> EvalExample | None:
    """The eval example whose block is active in this context, or None."""
    from tracehouse import _context

    example: EvalExample | None = _context.current_example.get()
    return example


def _json_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError(f"{what} must be JSON-serialisable without NaN or infinity") from None


def _scores(scores: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in (scores or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"score names must be non-empty strings, got {name!r}")
        item = getattr(value, "item", None)  # numpy / torch scalars
        if callable(item):
            value = item()
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"score {name!r} must be a finite number, got {value!r}")
        out[name] = float(value)
    return out


class EvalExample:
    """One example of an evaluation: inputs, and once produced its outputs, references and scores.

    Use it as a context manager (from `Run.eval_example`); `record()` may be called more than
    once (later values win per field, scores are merged). Sent when the block ends."""

    def __init__(
        self,
        run: _Run,
        dataset: str,
        example_id: str | int,
        inputs: Any = None,
        references: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(dataset, str) or not dataset:
            raise ValueError("dataset must be a non-empty string")
        if isinstance(example_id, bool) or not isinstance(example_id, (str, int)) or example_id == "":
            raise ValueError(f"example_id must be a non-empty string or an int, got {example_id!r}")
        self.run = run
        self.dataset = dataset
        self.example_id = str(example_id)
        self.inputs = inputs
        self.outputs: Any = None
        self.references = references
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.scores: dict[str, float] = {}
        self.trace_ids: list[str] = []
        self._lock = threading.Lock()
        self._created_ns = time.time_ns()
        self._sent = False
        self._tokens: tuple[Any, Any] | None = None
        for what, value in (("inputs", inputs), ("references", references), ("metadata", self.metadata)):
            _json_text(value, what)  # fail here, not in the background thread

    def __repr__(self) -> str:
        return f"EvalExample(dataset={self.dataset!r}, example_id={self.example_id!r}, traces={len(self.trace_ids)})"

    # -- what was produced -------------------------------------------------------------------------

    def record(
        self,
        outputs: Any = None,
        references: Any = None,
        scores: Mapping[str, float | int | bool] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the outputs (and references, metadata), add scores (name -> number)."""
        checked = _scores(scores)
        for what, value in (("outputs", outputs), ("references", references), ("metadata", metadata)):
            _json_text(value, what)
        if outputs is not None:
            self.outputs = outputs
        if references is not None:
            self.references = references
        if metadata:
            self.metadata.update(metadata)
        self.scores.update(checked)

    def score(self, name: str, value: float | int | bool) -> None:
        self.scores.update(_scores({name: value}))

    def link_trace(self, trace_id: str | int) -> None:
        """Link a trace made elsewhere (e.g. in another process) to this example."""
        if isinstance(trace_id, int) and not isinstance(trace_id, bool):
            trace_id = f"{trace_id:032x}"
        if not isinstance(trace_id, str) or len(trace_id) != 32 or set(trace_id) - set("0123456789abcdef"):
            raise ValueError(f"trace_id must be 32 lowercase hex digits (or a non-zero int), got {trace_id!r}")
        self._link(trace_id)

    def _link(self, trace_id: str) -> None:
        with self._lock:
            if trace_id not in self.trace_ids:
                self.trace_ids.append(trace_id)

    def on_span_start(self, trace_id: int) -> None:
        """Called by the SDK's span processor for every span started in this example's context."""
        if trace_id:
            self._link(f"{trace_id:032x}")

    # -- the block ---------------------------------------------------------------------------------

    def __enter__(self) -> EvalExample:
        from tracehouse import _context

        attrs = dict(_context._current.get() or {})
        attrs[DATASET_KEY] = self.dataset
        attrs[EXAMPLE_KEY] = self.example_id
        self._tokens = (_context.current_example.set(self), _context._current.set(attrs))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from tracehouse import _context

        if self._tokens is not None:
            try:
                _context.current_example.reset(self._tokens[0])
                _context._current.reset(self._tokens[1])
            except ValueError:  # left from another context than the one it entered
                pass
            self._tokens = None
        if exc_type is not None:
            self.metadata.setdefault("error", f"{exc_type.__name__}: {exc}"[:1000])
        self.send()

    def send(self) -> None:
        """Queue the example for the collector (done at the end of the block; once)."""
        if self._sent:
            return
        self._sent = True
        now = time.time_ns()
        attrs = {
            DATASET_KEY: self.dataset,
            EXAMPLE_KEY: self.example_id,
            "tracehouse.eval.created_time_unix_nano": self._created_ns,
            "tracehouse.eval.updated_time_unix_nano": now,
        }
        body: dict[str, Any] = {
            "inputs": _json_text(self.inputs, "inputs"),
            "outputs": _json_text(self.outputs, "outputs"),
            "references": _json_text(self.references, "references"),
            "metadata": _json_text(self.metadata, "metadata") if self.metadata else None,
            "scores": dict(self.scores),
            "traces": list(self.trace_ids),
        }
        self.run._transport.record(EVAL_RECORD, self.run.id, attrs, {k: v for k, v in body.items() if v is not None})
