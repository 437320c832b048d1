"""Tracehouse SDK: OpenTelemetry instrumentation for LLM applications and ML experiments.

Zero-code: set TRACEHOUSE_INSTRUMENT=1 in the environment. From code:

    import tracehouse
    tracehouse.init(service_name="my-agent")

    @tracehouse.trace(kind="tool")
    def search(query): ...

    with tracehouse.context(session_id="s-1", user_id="u-7"):
        ...

In a notebook, `tracehouse.Client().runs()` (and .sql, .query, .traces, ...) reads a running
collector into pandas DataFrames (`pip install 'tracehouse[pandas]'`).

Nothing runs at import time, and importing this package imports OpenTelemetry only when one
of these names is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each is loaded on first use
    from tracehouse._annotate import annotate
    from tracehouse._auto import init
    from tracehouse._client import Client, TracehouseError
    from tracehouse._context import context
    from tracehouse._evals import EvalExample
    from tracehouse._run import Run, active_run, eval_example, run
    from tracehouse._score import score
    from tracehouse._trace import Kind, trace

    __version__: str

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
"""Where a local ``tracehouse serve`` listens for OTLP/HTTP."""

__all__ = [
    "DEFAULT_ENDPOINT",
    "Client",
    "EvalExample",
    "Kind",
    "Run",
    "__version__",
    "active_run",
    "annotate",
    "context",
    "eval_example",
    "init",
    "run",
    "score",
    "TracehouseError",
    "trace",
]

_LAZY = {
    "context": ("tracehouse._context", "context"),
    "trace": ("tracehouse._trace", "trace"),
    "init": ("tracehouse._auto", "init"),
    "score": ("tracehouse._score", "score"),
    "annotate": ("tracehouse._annotate", "annotate"),
    "eval_example": ("tracehouse._run", "eval_example"),
    "EvalExample": ("tracehouse._evals", "EvalExample"),
    "run": ("tracehouse._run", "run"),
    "active_run": ("tracehouse._run", "active_run"),
    "Run": ("tracehouse._run", "Run"),
    "Kind": ("tracehouse._trace", "Kind"),
    "Client": ("tracehouse._client", "Client"),
    "TracehouseError": ("tracehouse._client", "TracehouseError"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on demand: a metadata lookup costs more than this import
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("tracehouse")
        except PackageNotFoundError:  # a source tree that was never installed
            value = "0+unknown"
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tracehouse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
