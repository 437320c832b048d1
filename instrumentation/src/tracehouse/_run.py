"""`tracehouse.run(...)`: an experiment run with typed params, step metrics and artifacts.

    with tracehouse.run(experiment="mnist", params={"lr": 0.01}) as run:
        for step in range(1000):
            run.log_metric("loss", loss, step=step)
        run.log_artifact("confusion.png")

Logging a metric appends a tuple to an in-memory queue; the transport thread
(`_run_transport`) turns queued data into OTLP and sends it. Spans started inside a run carry
`tracehouse.run.id` and `tracehouse.experiment.name`, which the collector maps to the
`RunId` and `ExperimentName` columns of `otel_traces`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracehouse import _run_transport

if TYPE_CHECKING:
    from tracehouse._evals import EvalExample

STATUSES = ("running", "finished", "failed", "killed")
RUN_ID_KEY = "tracehouse.run.id"
EXPERIMENT_KEY = "tracehouse.experiment.name"

_active: contextvars.ContextVar[Run | None] = contextvars.ContextVar("tracehouse_run", default=None)
_unfinished: dict[str, Run] = {}
_unfinished_lock = threading.Lock()
_uncaught = False


def active_run() -> Run | None:
    """The innermost run active in this context (thread or task), or None."""
    return _active.get()


def eval_example(
    dataset: str,
    example_id: str | int,
    inputs: Any = None,
    references: Any = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    run: Run | None = None,
) -> EvalExample:
    """An eval example of `run` (default: the active run); see `Run.eval_example`."""
    owner = run or active_run()
    if owner is None:
        raise ValueError("an eval example belongs to a run: call it inside `with tracehouse.run(...)` or pass run=")
    return owner.eval_example(dataset, example_id, inputs, references, metadata)


def run(
    experiment: str = "default",
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Run:
    """Start a run. Use it as a context manager, or call `.end()` yourself."""
    return Run(experiment, name, params, tags, run_id)


# -- captured environment (once per process) -------------------------------------------------------

_environment: tuple[dict[str, str], dict[str, str]] | None = None


def _git(cwd: str) -> dict[str, str]:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=3,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {}  # no git, not a repository, or too slow
    return {"git.commit": commit, "git.dirty": "true" if dirty else "false", "git.branch": branch}


def environment() -> tuple[dict[str, str], dict[str, str]]:
    """(metadata, installed packages) of this process: git, command line, source, Python, host."""
    global _environment
    if _environment is None:
        import importlib.metadata

        main = sys.modules.get("__main__")
        source = os.path.abspath(getattr(main, "__file__", "") or sys.argv[0] or "") if sys.argv else ""
        meta = {
            "command": " ".join([sys.executable, *sys.argv]),
            "source": source,
            "cwd": os.getcwd(),
            "python.version": platform.python_version(),
            "python.implementation": platform.python_implementation(),
            "host.name": socket.gethostname(),
            "os": platform.platform(),
            "pid": str(os.getpid()),
        }
        meta.update(_git(os.path.dirname(source) if source and os.path.exists(source) else os.getcwd()))
        packages: dict[str, str] = {}
        for dist in importlib.metadata.distributions():
            dist_name = dist.name
            if dist_name:
                packages[dist_name] = dist.version
        _environment = (meta, packages)
    return _environment


# -- values ---------------------------------------------------------------------------------------


def param_value(value: Any) -> Any:
    """A param as one of int, float, bool, str or a JSON value (dicts, lists, None)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return param_value(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (list, tuple)):
        return [param_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): param_value(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _folder_tar(folder: Path, target: Path) -> None:
    """A reproducible tar of a folder: same content -> same bytes -> same digest."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() or path.is_dir():
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False, filter=clean)


# -- the run --------------------------------------------------------------------------------------


class Run:
    def __init__(
        self,
        experiment: str = "default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        if not isinstance(experiment, str) or not experiment:
            raise ValueError("experiment must be a non-empty string")
        if run_id is not None and (
            not isinstance(run_id, str) or len(run_id) != 32 or set(run_id) - set("0123456789abcdef")
        ):
            raise ValueError("run_id must be 32 lowercase hex digits")
        parent = _active.get()
        self.id: str = run_id or uuid.uuid4().hex
        self.experiment = experiment
        self.name: str = name or f"{experiment}-{self.id[:8]}"
        self.parent_id: str | None = parent.id if parent is not None else None
        self.status = "running"
        self.start_time_ns = time.time_ns()
        self.end_time_ns: int | None = None
        self.tags: dict[str, str] = {}
        self._params: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._steps: dict[str, int] = {}
        self._ended = False
        self._transport = _run_transport.get()
        self._transport.on_close(end_unfinished_runs)  # runs left open are ended at exit
        self._push = self._transport.points.append
        self._metadata, self._packages = environment()
        for k, v in (tags or {}).items():
            self.tags[str(k)] = str(v)
        self._send_state()
        if params:
            self.log_params(params)
        self._install_hooks()
        # Active for this context: nested runs find their parent, spans carry the run's id.
        from tracehouse import _context

        self._token = _active.set(self)
        ctx = dict(_context._current.get() or {})
        ctx[RUN_ID_KEY] = self.id
        ctx[EXPERIMENT_KEY] = self.experiment
        self._ctx_token = _context._current.set(ctx)
        with _unfinished_lock:
            _unfinished[self.id] = self
        self._sampler = None
        interval = _sysmetrics_interval()
        if parent is None and interval > 0:
            from tracehouse._sysmetrics import Sampler

            self._sampler = Sampler(self._log_system, interval)

    def __repr__(self) -> str:
        return (
            f"Run(id={self.id!r}, experiment={self.experiment!r}, name={self.name!r}, status={self.status!r})"
        )

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.end("finished")
        else:
            self.set_tag("error", f"{exc_type.__name__}: {exc}"[:1000])
            self.end("killed" if issubclass(exc_type, KeyboardInterrupt) else "failed")
        # returning None re-raises the exception

    # -- params, tags ------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def metrics_summary(self) -> dict[str, float]:
        """The last value logged for each metric key."""
        return dict(self._last)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not isinstance(params, dict):
            raise TypeError("params must be a dict")
        typed = {}
        for key, value in params.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"param keys must be non-empty strings, got {key!r}")
            typed[key] = param_value(value)
        json.dumps(typed, default=str)  # fail here, not in the background thread
        self._params.update(typed)
        self._transport.record("tracehouse.run.params", self.id, {}, typed)

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[str(key)] = str(value)
        if not self._ended:
            self._send_state()

    # -- metrics -----------------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Queue one point. step defaults to the key's previous step + 1 (0 for the first)."""
        if self._ended:
            raise RuntimeError(f"run {self.id} has ended; metrics can no longer be logged to it")
        if key.__class__ is not str or not key:
            raise ValueError(f"metric keys must be non-empty strings, got {key!r}")
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif step.__class__ is not int:
            step = int(step)
        if value.__class__ is not float:
            value = float(value)
        self._steps[key] = step
        self._last[key] = value
        self._push((self.id, key, step, value, time.time_ns() if timestamp is None else int(timestamp * 1e9)))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        ts = time.time_ns()
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts / 1e9)

    def _log_system(self, values: dict[str, float], step: int) -> None:
        if not self._ended:
            for key, value in values.items():
                if math.isfinite(value):
                    self._push((self.id, key, step, float(value), time.time_ns()))

    # -- artifacts ---------------------------------------------------------------------------------

    def log_artifact(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        kind: str = "file",
        metadata: dict | None = None,
    ) -> str:
        """Upload a file or a folder (as a tar); returns its sha256 digest.

        kind="model" also registers it in the collector's models table.
        """
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"artifact {str(source)!r} does not exist")
        meta = param_value(dict(metadata or {}))
        artifact_name = name or source.name
        tmp = None
        try:
            if source.is_dir():
                fd, tmp_name = tempfile.mkstemp(prefix="tracehouse-artifact-", suffix=".tar")
                os.close(fd)
                tmp = Path(tmp_name)
                _folder_tar(source, tmp)
                blob = tmp
                if kind == "file":
                    kind = "folder"
                meta.setdefault("format", "tar")
            else:
                blob = source
            digest, size = self._transport.spool.add_blob(blob)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        attrs = {
            "tracehouse.experiment.name": self.experiment,
            "tracehouse.artifact.name": artifact_name,
            "tracehouse.artifact.path": str(source.resolve()),
            "tracehouse.artifact.digest": digest,
            "tracehouse.artifact.size": size,
            "tracehouse.artifact.kind": kind,
        }
        if kind == "model":
            attrs["tracehouse.model.name"] = str(meta.get("model_name") or Path(artifact_name).stem)
        self._transport.record("tracehouse.run.artifact", self.id, attrs, meta)
        return digest

    def log_model(
        self, model: Any, name: str, inputs: Any = None, eval_data: Any = None, metric: Any = None, **kw: Any
    ) -> str:
        from tracehouse import luml

        return luml.log_model(self, model, name, inputs=inputs, eval_data=eval_data, metric=metric, **kw)

    # -- evals -------------------------------------------------------------------------------------

    def eval_example(
        self,
        dataset: str,
        example_id: str | int,
        inputs: Any = None,
        references: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> EvalExample:
        """One example of an evaluation of this run, as a context manager: spans started in
        the block link their traces to it; `ex.record(outputs=..., scores=...)` inside it."""
        from tracehouse._evals import EvalExample

        return EvalExample(self, dataset, example_id, inputs, references, metadata)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _send_state(self) -> None:
        attrs = {
            "tracehouse.experiment.name": self.experiment,
            "tracehouse.run.name": self.name,
            "tracehouse.run.parent_id": self.parent_id,
            "tracehouse.run.status": self.status,
            "tracehouse.run.start_time_unix_nano": self.start_time_ns,
            "tracehouse.run.end_time_unix_nano": self.end_time_ns,
        }
        body = {"tags": dict(self.tags), "metadata": self._metadata, "packages": self._packages}
        self._transport.record("tracehouse.run.state", self.id, attrs, body)

    def end(self, status: str = "finished") -> None:
        if status not in STATUSES or status == "running":
            raise ValueError(f"status must be one of finished, failed, killed; got {status!r}")
        if self._ended:
            return
        if self._sampler is not None:
            self._sampler.stop()
        self._ended = True
        self.status = status
        self.end_time_ns = time.time_ns()
        self._send_state()
        with _unfinished_lock:
            _unfinished.pop(self.id, None)
        from tracehouse import _context

        try:
            _active.reset(self._token)
            _context._current.reset(self._ctx_token)
        except ValueError:  # ended from another context than the one it started in: leave that one be
            pass

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far reached the collector (or the spool, on failure)."""
        return self._transport.flush(timeout)

    def _install_hooks(self) -> None:
        global _hook_installed
        if not _hook_installed:
            _hook_installed = True
            previous = sys.excepthook

            def hook(exc_type: Any, exc: Any, tb: Any) -> None:
                global _uncaught
                _uncaught = True
                previous(exc_type, exc, tb)

            sys.excepthook = hook


_hook_installed = False


def _sysmetrics_interval() -> float:
    from tracehouse._sysmetrics import interval_s

    return interval_s()


def end_unfinished_runs() -> None:
    """At exit: runs never ended are marked failed after an uncaught exception, else finished."""
    with _unfinished_lock:
        runs = list(_unfinished.values())
    for r in reversed(runs):
        with contextlib.suppress(Exception):
            r.end("failed" if _uncaught else "finished")


def flush(timeout: float = 10.0) -> bool:
    return _run_transport.get().flush(timeout)
