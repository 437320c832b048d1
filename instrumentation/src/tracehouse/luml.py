"""`.luml` model files: an FNNX `pyfunc` package for a model, linked to the run that made it.

    with tracehouse.run(experiment="iris") as run:
        clf.fit(X, y)
        run.log_model(clf, "clf", inputs=X[:5], eval_data=(X_test, y_test), metric="accuracy")

`log_model` saves the model (cloudpickle, or Keras' own `.keras` format), the evaluation data and
the metric inside the package (the files the checksum covers), then appends a metadata entry
tagged `tracehouse::run_snapshot:v1` the way LUML appends its own: a `meta-<uuid>.json` member
holding the run id, experiment, params, final metrics, environment and a sha256 over every
member that is not metadata. The file is then uploaded as the run's `kind="model"` artifact.

`reproduce` checks the package against that checksum (a changed, added or removed file is
named), then runs the model through the FNNX runtime on the recorded evaluation data and
compares the metric with the recorded value.

Packages hold pickles: only reproduce files you trust. The checksum detects changes, it does
not prove who made the file.

Needs the `luml` extra (`pip install 'tracehouse[luml]'`: fnnx, numpy, cloudpickle).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracehouse import _luml_experiment

SNAPSHOT_TAG = "tracehouse::run_snapshot:v1"
PRODUCER = "tracehouse"
DEFAULT_TOLERANCE = 1e-6

MODEL_DIR = "variant_artifacts/extra_files/"  # where FNNX keeps a pyfunc's own files
EVAL_FILE = "eval/eval.npz"
METRIC_FILE = "eval/metric.pkl"

_META_MEMBER = re.compile(r"^meta(-[^/]+)?\.json$")


class LumlError(Exception):
    """A `.luml` file that cannot be used as asked; the message says why."""


class NotALumlFile(LumlError):
    pass


class MissingSnapshot(LumlError):
    pass


# -- metrics -----------------------------------------------------------------------------------


def _labels(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Class labels from predictions: argmax of scores, or a 0.5 threshold on one probability."""
    import numpy as np

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        y_pred = y_pred.argmax(axis=1)
    elif y_pred.ndim == 2:
        y_pred = y_pred[:, 0]
    if y_pred.dtype.kind == "f" and y_true.dtype.kind in "iub":
        y_pred = (y_pred > 0.5).astype(y_true.dtype) if set(np.unique(y_true)) <= {0, 1} else y_pred.round()
    return y_true.ravel(), y_pred.ravel()


def _values(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    import numpy as np

    return np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()


def accuracy(y_true: Any, y_pred: Any) -> float:
    t, p = _labels(y_true, y_pred)
    return float((t == p).mean())


def f1(y_true: Any, y_pred: Any) -> float:
    """Binary F1 of the positive class for 0/1 labels, else the macro average over classes."""
    import numpy as np

    t, p = _labels(y_true, y_pred)
    classes = np.unique(t)
    if set(classes.tolist()) <= {0, 1}:
        classes = np.array([1])
    scores = []
    for c in classes:
        tp = float(((p == c) & (t == c)).sum())
        fp = float(((p == c) & (t != c)).sum())
        fn = float(((p != c) & (t == c)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def mse(y_true: Any, y_pred: Any) -> float:
    t, p = _values(y_true, y_pred)
    return float(((t - p) ** 2).mean())


def rmse(y_true: Any, y_pred: Any) -> float:
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true: Any, y_pred: Any) -> float:
    t, p = _values(y_true, y_pred)
    return float(abs(t - p).mean())


def r2(y_true: Any, y_pred: Any) -> float:
    t, p = _values(y_true, y_pred)
    total = float(((t - t.mean()) ** 2).sum())
    return 1.0 - float(((t - p) ** 2).sum()) / total if total else 0.0


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mse": mse,
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
}


def _metric(metric: str | Callable | None) -> tuple[str, Callable[[Any, Any], float]]:
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    if metric in METRICS:
        return metric, METRICS[metric]
    raise ValueError(
        f"unknown metric {metric!r}: use one of {', '.join(METRICS)} or a callable(y_true, y_pred)"
    )


# -- the tar container -------------------------------------------------------------------------


def _escape(tag: str) -> str:
    return tag.replace(":", "~c~").replace("/", "~s~")


def entry_id(tag: str) -> str:
    """A metadata entry id as LUML writes them: the escaped tag, `~~et~~`, a uuid."""
    return f"{_escape(tag)}~~et~~{uuid.uuid4().hex}"


def is_metadata(name: str) -> bool:
    return bool(_META_MEMBER.match(name)) or name.startswith("meta_artifacts/")


def _open(path: str | os.PathLike) -> tarfile.TarFile:
    p = Path(path)
    if not p.is_file():
        raise NotALumlFile(f"{p}: no such file")
    try:
        tar = tarfile.open(p, "r:")  # noqa: SIM115 - returned open, closed by the caller's `with`
    except tarfile.TarError:
        raise NotALumlFile(f"{p}: not a .luml file (not an uncompressed tar archive)") from None
    if not any(m.isfile() and m.name == "manifest.json" for m in tar.getmembers()):
        tar.close()
        raise NotALumlFile(f"{p}: not a .luml file (no manifest.json)")
    return tar


def _last_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular files by name; a repeated name is its last copy, the one extraction leaves."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if member.isfile():
            members[member.name] = member
        elif member.name in members:  # a later non-file replaces the file on extraction
            del members[member.name]
    return members


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    return b"" if f is None else f.read()


def file_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of every member that is not metadata (the files a snapshot's checksum covers)."""
    with _open(path) as tar:
        return {
            name: hashlib.sha256(_read(tar, m)).hexdigest()
            for name, m in sorted(_last_members(tar).items())
            if not is_metadata(name)
        }


def combined_digest(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def read_metadata(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every metadata entry, from `meta.json` then the appended `meta-*.json` in name order.

    Entries are read as JSON (LUML's `{id, tags, payload}` as well as FNNX's fuller form)."""
    with _open(path) as tar:
        members = {n: m for n, m in _last_members(tar).items() if _META_MEMBER.match(n)}
        names = (["meta.json"] if "meta.json" in members else []) + sorted(
            (n for n in members if n != "meta.json"), key=lambda n: n.encode()
        )
        entries: list[dict[str, Any]] = []
        for name in names:
            try:
                data = json.loads(_read(tar, members[name]))
            except ValueError:
                continue  # an unreadable entry file is skipped, as FNNX's reader does
            entries.extend(e for e in (data if isinstance(data, list) else []) if isinstance(e, dict))
        return entries


def entry_tags(entry: dict[str, Any]) -> list[str]:
    return list(entry.get("tags") or []) + list(entry.get("producer_tags") or [])


def append_metadata(
    path: str | os.PathLike, tag: str, payload: dict[str, Any], files: dict[str, bytes] | None = None
) -> str:
    """Append one metadata entry (and its files) to the package; returns the entry id."""
    idx = entry_id(tag)
    entry = {
        "id": idx,
        "tags": [tag],
        # FNNX's reader wants these too; LUML's reads `tags`.
        "producer": PRODUCER,
        "producer_version": _tracehouse_version(),
        "producer_tags": [tag],
        "payload": payload,
    }
    members = {f"meta-{uuid.uuid4().hex}.json": json.dumps([entry], default=str).encode()}
    for name, data in (files or {}).items():
        members[f"meta_artifacts/{idx}/{name}"] = data
    with tarfile.open(path, "a") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(dt.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
    return idx


def find_snapshot(path: str | os.PathLike, tag: str = SNAPSHOT_TAG) -> dict[str, Any] | None:
    """The last metadata entry carrying `tag`."""
    found = None
    for entry in read_metadata(path):
        if tag in entry_tags(entry):
            found = entry
    return found


# -- building ----------------------------------------------------------------------------------


def _tracehouse_version() -> str:
    from tracehouse import __version__

    return __version__


def _require_fnnx() -> None:
    try:
        import cloudpickle  # noqa: F401
        import fnnx  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f".luml model files need the luml extra: pip install 'tracehouse[luml]' ({exc})"
        ) from None


def _is_keras(model: Any) -> bool:
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(model).__mro__)


def _is_torch(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def detect_flavor(model: Any) -> str:
    """How the model is saved and run: "keras" (its own format), "torch" (a Module), "pickle"."""
    if _is_keras(model):  # before torch: Keras 3 models on the torch backend are Modules too
        return "keras"
    if _is_torch(model):
        return "torch"
    return "pickle"


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()  # "torch", "tensorflow", "jax": also the distribution's name


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _framework_distributions(model: Any, flavor: str) -> list[str]:
    """Distributions the model needs at load time, from the modules its class hierarchy lives in."""
    from importlib import metadata

    owners = metadata.packages_distributions()
    roots = {c.__module__.split(".")[0] for c in type(model).__mro__} - {"builtins", "__main__", "abc"}
    if flavor == "keras":
        roots.add(_keras_backend())
    dists = {"numpy", "cloudpickle", "fnnx"}
    for root in roots:
        dists.update(owners.get(root, []))
    return sorted(d for d in dists if _version(d))


def _environment(dists: list[str]) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {d: _version(d) for d in dists},
    }


def _io_spec(name: str, array: Any) -> Any:
    import numpy as np
    from fnnx.extras.pydantic_models.manifest import NDJSON

    array = np.asarray(array)
    kind = "string" if array.dtype.kind in "OUS" else array.dtype.name
    return NDJSON(name=name, content_type="NDJSON", dtype=f"Array[{kind}]", shape=["batch", *array.shape[1:]])


def _as_input(array: Any, spec: Any) -> Any:
    """The array the FNNX runtime will hand the model for this input (same dtype conversion)."""
    import numpy as np

    kind = spec.dtype[6:-1]
    return np.asarray(array).astype(np.str_ if kind == "string" else kind)


def _to_numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "to_numpy"):  # pandas
        value = value.to_numpy()
    elif hasattr(value, "detach"):  # torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _save_model_file(model: Any, flavor: str, folder: Path) -> Path:
    if flavor == "keras":
        target = folder / "model.keras"
        model.save(target)
        return target
    import cloudpickle

    target = folder / "model.pkl"
    with open(target, "wb") as f:
        cloudpickle.dump(model, f)
    return target


@dataclass
class Built:
    path: Path
    flavor: str
    metric: str | None
    value: float | None
    checksum: str
    entry_id: str


def build(
    model: Any,
    path: str | os.PathLike,
    name: str,
    inputs: Any = None,
    eval_data: tuple[Any, Any] | None = None,
    metric: str | Callable | None = None,
    run: Any = None,
    flavor: str | None = None,
    description: str | None = None,
    version: str | None = None,
) -> Built:
    """Write the `.luml` package for `model` at `path` and append its run snapshot."""
    _require_fnnx()
    import cloudpickle
    import numpy as np
    from fnnx.extras.builder import PyfuncBuilder, PyFuncSpec

    from tracehouse import _luml_pyfunc

    flavor = flavor or detect_flavor(model)
    if flavor not in ("pickle", "torch", "keras"):
        raise ValueError(f"unknown flavor {flavor!r}: use pickle, torch or keras")
    if eval_data is not None and metric is None:
        raise ValueError(
            "eval_data needs a metric: metric='accuracy' (or another named metric, or a callable)"
        )
    metric_name: str | None = None
    metric_fn: Callable[[Any, Any], float] | None = None
    if metric is not None:
        metric_name, metric_fn = _metric(metric)

    sample = inputs if inputs is not None else (eval_data[0][:5] if eval_data is not None else None)
    if sample is None:
        raise ValueError(
            "log_model needs inputs= (a few example rows) or eval_data= to describe the model's input"
        )
    sample = _to_numpy(sample)
    in_spec = _io_spec(_luml_pyfunc.INPUT, sample)
    out_spec = _io_spec(_luml_pyfunc.OUTPUT, _luml_pyfunc.predict(model, flavor, _as_input(sample, in_spec)))

    value = None
    with tempfile.TemporaryDirectory(prefix="tracehouse-luml-") as tmp:
        folder = Path(tmp)
        model_file = _save_model_file(model, flavor, folder)
        builder = PyfuncBuilder(
            PyFuncSpec(_luml_pyfunc.__file__, "TracehouseModel"),
            model_name=name,
            model_version=version,
            model_description=description,
        )
        builder.set_producer_info(PRODUCER, _tracehouse_version(), [SNAPSHOT_TAG])
        builder.add_input(in_spec)
        builder.add_output(out_spec)
        builder.add_file(str(model_file), f"model/{model_file.name}")
        extra: dict[str, Any] = {"flavor": flavor, "model_file": f"model/{model_file.name}"}
        if flavor == "keras":
            extra["keras_backend"] = _keras_backend()

        eval_info: dict[str, Any] | None = None
        if eval_data is not None and metric_fn is not None:  # a metric comes with eval_data (checked above)
            x_eval, y_eval = _to_numpy(eval_data[0]), _to_numpy(eval_data[1])
            if len(x_eval) != len(y_eval):
                raise ValueError(f"eval_data: X has {len(x_eval)} rows, y has {len(y_eval)}")
            predictions = _luml_pyfunc.predict(model, flavor, _as_input(x_eval, in_spec))
            value = float(metric_fn(y_eval, predictions))
            np.savez(folder / "eval.npz", x=x_eval, y=y_eval)
            builder.add_file(str(folder / "eval.npz"), EVAL_FILE)
            eval_info = {
                "metric": metric_name,
                "value": value,
                "rows": int(len(y_eval)),
                "data_file": EVAL_FILE,
            }
            if metric_name not in METRICS or METRICS[metric_name] is not metric_fn:
                with open(folder / "metric.pkl", "wb") as f:
                    cloudpickle.dump(metric_fn, f)
                builder.add_file(str(folder / "metric.pkl"), METRIC_FILE)
                eval_info["metric_file"] = METRIC_FILE
            extra["eval"] = eval_info
        builder.set_extra_values(extra)

        dists = _framework_distributions(model, flavor)
        for dist in dists:
            # fnnx: the range LUML's SDK accepts, not this process's exact version.
            pin = _luml_experiment.FNNX_REQUIREMENT if dist == "fnnx" else f"{dist}=={_version(dist)}"
            builder.add_runtime_dependency(pin)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        builder.save(str(target))

    hashes = file_hashes(target)
    checksum = combined_digest(hashes)
    payload: dict[str, Any] = {
        "run": None,
        "params": {},
        "metrics": {"summary": {}, "eval": {metric_name: value} if eval_info else {}},
        "eval": eval_info,
        "model": {"name": name, "flavor": flavor, "file": MODEL_DIR + extra["model_file"]},
        "environment": _environment(dists),
        "checksum": {"algorithm": "sha256", "digest": checksum, "files": hashes},
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "producer": {"name": PRODUCER, "version": _tracehouse_version()},
    }
    if run is not None:
        payload["run"] = {
            "id": run.id,
            "experiment": run.experiment,
            "name": run.name,
            "parent_id": getattr(run, "parent_id", None),
        }
        payload["params"] = dict(getattr(run, "params", {}) or {})
        payload["metrics"]["summary"] = dict(getattr(run, "metrics_summary", {}) or {})
        # The step of each final value, so an import puts it where the history has it.
        payload["metrics"]["steps"] = dict(getattr(run, "_steps", {}) or {})
    idx = append_metadata(target, SNAPSHOT_TAG, payload)
    _append_luml_entries(target, run, payload)
    return Built(target, flavor, metric_name, value, checksum, idx)


def _append_luml_entries(target: Path, run: Any, payload: dict[str, Any]) -> None:
    """The entries LUML's registry reads: the metrics it lists (`registry_metrics`) and, for a
    model logged from a run, the run as LUML's embedded experiment snapshot (exp.db in LUML's
    schema: typed params, each metric's last value at its step)."""
    metrics = {
        **payload["metrics"]["summary"],
        **{k: v for k, v in payload["metrics"]["eval"].items() if v is not None},
    }
    if metrics:
        append_metadata(target, _luml_experiment.REGISTRY_METRICS_TAG, {"metrics": metrics})
    if run is None:
        return
    now = dt.datetime.fromisoformat(payload["created_at"])
    now_ns = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000
    steps = payload["metrics"].get("steps") or {}
    snapshot = _luml_experiment.Snapshot(
        params=payload["params"],
        points=[
            {"key": k, "step": int(steps.get(k, 0)), "value": v, "time_unix_nano": now_ns}
            for k, v in payload["metrics"]["summary"].items()
        ],
    )
    entry = {
        "local_experiment_id": run.id,
        "name": run.name,
        "group": run.experiment,
        _luml_experiment.RUN_ID_KEY: run.id,
        _luml_experiment.EXPERIMENT_KEY: run.experiment,
    }
    append_metadata(target, _luml_experiment.EMBEDDED_TAG, entry, _luml_experiment.snapshot_files(snapshot))


def log_model(
    run: Any,
    model: Any,
    name: str,
    inputs: Any = None,
    eval_data: tuple[Any, Any] | None = None,
    metric: str | Callable | None = None,
    **kw: Any,
) -> str:
    """Package `model` as `<name>.luml` linked to `run` and upload it as the run's model artifact.

    Keywords: `path` (also keep the file there; by default a temporary file is uploaded and
    removed), `flavor`, `description`, `version`. Returns the artifact's sha256 digest.
    """
    keep = kw.pop("path", None)
    unknown = set(kw) - {"flavor", "description", "version"}
    if unknown:
        raise TypeError(f"log_model got unexpected keywords: {', '.join(sorted(unknown))}")
    folder = None if keep else Path(tempfile.mkdtemp(prefix="tracehouse-model-"))
    target = Path(keep) if keep else folder / f"{name}.luml"  # type: ignore[operator]
    try:
        built = build(model, target, name, inputs, eval_data, metric, run=run, **kw)
        if built.value is not None:
            # The metric on the evaluation data is part of the run too.
            run.log_metric(f"{name}.{built.metric}", built.value)
        metadata = {
            "format": "luml",
            "flavor": built.flavor,
            "snapshot_tag": SNAPSHOT_TAG,
            "checksum": built.checksum,
            "metric": built.metric,
            "value": built.value,
        }
        return run.log_artifact(str(target), name=f"{name}.luml", kind="model", metadata=metadata)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


# -- checking ----------------------------------------------------------------------------------


@dataclass
class Verification:
    path: str
    ok: bool
    problems: list[str]
    snapshot: dict[str, Any]


def verify(path: str | os.PathLike) -> Verification:
    """Compare the package's files with the checksum its snapshot recorded.

    Raises NotALumlFile or MissingSnapshot; tampering is reported in `problems`."""
    entry = find_snapshot(path)
    if entry is None:
        tags = sorted({t for e in read_metadata(path) for t in entry_tags(e)})
        found = f" (metadata tags found: {', '.join(tags)})" if tags else ""
        raise MissingSnapshot(f"{path}: no Tracehouse run snapshot ({SNAPSHOT_TAG}) in this package{found}")
    payload = entry.get("payload") or {}
    recorded = (payload.get("checksum") or {}).get("files")
    if not isinstance(recorded, dict):
        raise MissingSnapshot(f"{path}: the run snapshot records no checksum")
    actual = file_hashes(path)
    problems = []
    for name in sorted(set(recorded) | set(actual)):
        if name not in actual:
            problems.append(f"{name}: missing (recorded in the snapshot)")
        elif name not in recorded:
            problems.append(f"{name}: added after the snapshot was written")
        elif actual[name] != recorded[name]:
            problems.append(
                f"{name}: content changed (sha256 {actual[name][:12]}…, recorded {recorded[name][:12]}…)"
            )
    if not problems and combined_digest(actual) != payload["checksum"].get("digest"):
        problems.append("the snapshot's combined checksum does not match its own file list")
    return Verification(str(path), not problems, problems, payload)


def _verified(path: str | os.PathLike) -> Verification:
    result = verify(path)
    if not result.ok:
        raise LumlError(
            f"{path}: the package was modified after it was logged: " + "; ".join(result.problems)
        )
    return result


def load(path: str | os.PathLike) -> Any:
    """The model object saved in the package, after checking the package against its snapshot."""
    _require_fnnx()
    from tracehouse import _luml_pyfunc

    snapshot = _verified(path).snapshot
    with tempfile.TemporaryDirectory(prefix="tracehouse-luml-") as tmp, _open(path) as tar:
        model_file = snapshot["model"]["file"]
        member = _last_members(tar).get(model_file)
        if member is None:
            raise LumlError(f"{path}: the package holds no model file {model_file}")
        target = Path(tmp) / Path(model_file).name
        target.write_bytes(_read(tar, member))
        backend = None
        if snapshot["model"]["flavor"] == "keras":
            config = json.loads(_read(tar, _last_members(tar)["variant_config.json"]))
            backend = (config.get("extra_values") or {}).get("keras_backend")
        return _luml_pyfunc.load_model(str(target), snapshot["model"]["flavor"], backend)


@dataclass
class MetricCheck:
    metric: str
    recorded: float
    reproduced: float
    delta: float
    ok: bool


@dataclass
class Report:
    path: str
    ok: bool
    verdict: str  # "pass" | "mismatch" | "tampered"
    message: str
    run: dict[str, Any] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    checks: list[MetricCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _package_file(tar: tarfile.TarFile, name: str) -> bytes:
    member = _last_members(tar).get(MODEL_DIR + name)
    if member is None:
        raise LumlError(f"the package holds no {MODEL_DIR + name}")
    return _read(tar, member)


def reproduce(path: str | os.PathLike, tolerance: float = DEFAULT_TOLERANCE) -> Report:
    """Verify the package, re-run its model on the recorded evaluation data, compare metrics."""
    result = verify(path)
    run = result.snapshot.get("run")
    if not result.ok:
        return Report(
            str(path),
            False,
            "tampered",
            "the package was modified after it was logged",
            run,
            tolerance,
            problems=result.problems,
        )
    info = result.snapshot.get("eval")
    if not info:
        return Report(
            str(path), True, "pass", "checksum verified; no evaluation data was recorded", run, tolerance
        )
    _require_fnnx()
    import cloudpickle
    import numpy as np
    from fnnx.runtime import Runtime

    from tracehouse import _luml_pyfunc

    with _open(path) as tar:
        data = np.load(io.BytesIO(_package_file(tar, info["data_file"])), allow_pickle=False)
        x_eval, y_eval = data["x"], data["y"]
        if info.get("metric_file"):
            metric_fn = cloudpickle.loads(_package_file(tar, info["metric_file"]))
        elif info["metric"] in METRICS:
            metric_fn = METRICS[info["metric"]]
        else:
            raise LumlError(
                f"{path}: unknown metric {info['metric']!r} and no metric function in the package"
            )
    runtime = Runtime(str(path))
    predictions = runtime.compute({_luml_pyfunc.INPUT: x_eval}, {})[_luml_pyfunc.OUTPUT]
    reproduced = float(metric_fn(y_eval, predictions))
    recorded = float(info["value"])
    delta = reproduced - recorded
    same = math.isclose(reproduced, recorded, rel_tol=tolerance, abs_tol=tolerance) or (
        math.isnan(recorded) and math.isnan(reproduced)
    )
    check = MetricCheck(info["metric"], recorded, reproduced, delta, same)
    if same:
        return Report(str(path), True, "pass", "reproduced the recorded metric", run, tolerance, [check])
    message = (
        f"{info['metric']} reproduced as {reproduced:.6g}, recorded {recorded:.6g} (tolerance {tolerance:g})"
    )
    return Report(str(path), False, "mismatch", message, run, tolerance, [check])
