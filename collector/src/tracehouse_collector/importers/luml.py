"""Readers for `tracehouse import`: `.luml` model files and LUML experiment exports.

Each reader yields run snapshots in the shape of `tracehouse runs export`'s `tracehouse-run.json`
(see snapshot.py), which the import command loads like its own (the registry is in __init__.py).

- A `.luml` file (an FNNX package: a tar with `manifest.json` naming a `variant`) may carry
  - Tracehouse's `tracehouse::run_snapshot:v1` entry (written by `run.log_model`): the run's id,
    experiment, params, final metrics and environment; the file itself becomes the run's model
    artifact;
  - LUML's `dataforce.studio::experiment_snapshot:v1` entry: the run's SQLite database zipped as
    `exp.db.zip` (params in `static_params`, metric points in `dynamic_metrics`) and its
    attachments as `attachments.tar`.
- A LUML experiment export: a tar whose `manifest.json` has `artifact_type: experiment`, with
  `exp.db.zip` and `attachments.tar` at its root; the manifest's payload gives the experiment
  id, status, group and tags.

LUML's span and evaluation tables are not imported (they are counted in the run's metadata).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import sqlite3
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracehouse_collector.importers.snapshot import SNAPSHOT_FORMAT

TRACEHOUSE_TAG = "tracehouse::run_snapshot:v1"
LUML_EMBEDDED_TAG = "dataforce.studio::experiment_snapshot:v1"
LUML_EXPERIMENT = "luml"  # experiment name for LUML runs (LUML keeps names in a meta.db not exported)
_LUML_STATUS = {"active": "running", "completed": "finished", "error": "failed"}
_META_MEMBER = re.compile(r"^meta(-[^/]+)?\.json$")


class LumlImportError(ValueError):  # the import command reports a ValueError as it is
    pass


# -- tar helpers -----------------------------------------------------------------------------------


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular files by name, the last copy of a repeated name (what extraction leaves)."""
    return {m.name: m for m in tar.getmembers() if m.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    return b"" if f is None else f.read()


def _manifest(path: Path) -> dict | None:
    if not tarfile.is_tarfile(path):
        return None
    with tarfile.open(path, "r:*") as tar:
        member = _members(tar).get("manifest.json")
        if member is None:
            return None
        try:
            manifest = json.loads(_read(tar, member))
        except ValueError:
            return None
    return manifest if isinstance(manifest, dict) else None


def _metadata_entries(tar: tarfile.TarFile) -> list[dict]:
    members = {n: m for n, m in _members(tar).items() if _META_MEMBER.match(n)}
    names = (["meta.json"] if "meta.json" in members else []) + sorted(
        (n for n in members if n != "meta.json"), key=lambda n: n.encode()
    )
    entries: list[dict] = []
    for name in names:
        try:
            data = json.loads(_read(tar, members[name]))
        except ValueError:
            continue
        entries.extend(e for e in (data if isinstance(data, list) else []) if isinstance(e, dict))
    return entries


def _tags(entry: dict) -> set[str]:
    return set(entry.get("tags") or []) | set(entry.get("producer_tags") or [])


def _ns(value: Any) -> int:
    """Nanoseconds since the epoch from an ISO or SQLite timestamp (UTC when no zone); 0 if none."""
    if not value:
        return 0
    if isinstance(value, int | float):
        return int(value * 1e9)
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return 0
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def _run_id(text: str) -> str:
    """A run id (32 lowercase hex) from a foreign id: itself when it is one, else a stable hash."""
    candidate = text.replace("-", "").lower()
    if re.fullmatch(r"[0-9a-f]{32}", candidate):
        return candidate
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- detection -------------------------------------------------------------------------------------


def is_luml_model(path: Path) -> bool:
    """An FNNX package (a tar whose manifest names a variant)."""
    manifest = _manifest(path)
    return manifest is not None and "variant" in manifest and manifest.get("artifact_type") in (None, "model")


def is_luml_experiment(path: Path) -> bool:
    manifest = _manifest(path)
    return manifest is not None and manifest.get("artifact_type") == "experiment"


# -- Tracehouse's own snapshot ---------------------------------------------------------------------


def _from_tracehouse_entry(path: Path, entry: dict, manifest: dict) -> dict:
    payload = entry.get("payload") or {}
    run = payload.get("run") or {}
    checksum = (payload.get("checksum") or {}).get("digest") or ""
    created = _ns(payload.get("created_at"))
    model = payload.get("model") or {}
    model_name = model.get("name") or manifest.get("name") or path.stem
    run_id = run.get("id") or _run_id(f"luml-model:{checksum or path.name}")
    experiment = run.get("experiment") or "default"
    metrics = payload.get("metrics") or {}
    steps = metrics.get("steps") or {}
    points = [
        {"key": k, "step": int(steps.get(k, 0)), "value": v, "time_unix_nano": created}
        for k, v in (metrics.get("summary") or {}).items()
    ]
    points += [
        {"key": f"{model_name}.{k}", "step": 0, "value": v, "time_unix_nano": created}
        for k, v in (metrics.get("eval") or {}).items()
        if v is not None
    ]
    env = payload.get("environment") or {}
    data = path.read_bytes()
    eval_info = payload.get("eval") or {}
    return {
        "format": SNAPSHOT_FORMAT,
        "version": 1,
        "run": {
            "id": run_id,
            "experiment": experiment,
            "name": run.get("name") or model_name,
            "parent_id": run.get("parent_id"),
            "status": "finished",
            "start_unix_nano": created,
            "end_unix_nano": created,
            "tags": {"imported.from": "luml-model"},
            "metadata": {
                "python.version": str(env.get("python") or ""),
                "os": str(env.get("platform") or ""),
                "source": str(path),
            },
            "packages": {k: str(v) for k, v in (env.get("packages") or {}).items() if v},
        },
        "params": payload.get("params") or {},
        "metrics": points,
        "artifacts": [
            {
                "name": f"{model_name}.luml",
                "kind": "model",
                "path": str(path),
                "digest": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "data": data,
                "metadata": {
                    "format": "luml",
                    "flavor": model.get("flavor"),
                    "snapshot_tag": TRACEHOUSE_TAG,
                    "checksum": checksum,
                    "metric": eval_info.get("metric"),
                    "value": eval_info.get("value"),
                },
            }
        ],
    }


# -- LUML's experiment database --------------------------------------------------------------------


def _typed(value: Any, value_type: str | None) -> Any:
    kind = (value_type or "").lower()
    if value is None:
        return None
    text = str(value)
    try:
        if kind in ("int", "integer"):
            return int(text)
        if kind in ("float", "number"):
            return float(text)
        if kind in ("bool", "boolean"):
            return text.strip().lower() in ("true", "1", "yes")
        if kind in ("json", "dict", "list"):
            return json.loads(text)
    except ValueError:
        return text
    return text


def _exp_db(zipped: bytes, origin: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".db")]
            if not names:
                raise LumlImportError(f"{origin}: exp.db.zip holds no .db file")
            return zf.read("exp.db" if "exp.db" in names else names[0])
    except zipfile.BadZipFile:
        raise LumlImportError(f"{origin}: exp.db.zip is not a zip archive") from None


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        is not None
    )


def _read_exp_db(db: bytes, origin: str) -> tuple[dict, list[dict], dict[str, int], list[tuple[str, str]]]:
    """(params, metric points, row counts of tables not imported, attachments (name, file_path))."""
    with tempfile.TemporaryDirectory(prefix="tracehouse-luml-") as tmp:
        db_path = Path(tmp) / "exp.db"
        db_path.write_bytes(db)
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise LumlImportError(f"{origin}: cannot open exp.db: {exc}") from None
        try:
            params: dict[str, Any] = {}
            if _table_exists(conn, "static_params"):
                for key, value, value_type in conn.execute(
                    "SELECT key, value, value_type FROM static_params"
                ):
                    params[str(key)] = _typed(value, value_type)
            points: list[dict] = []
            if _table_exists(conn, "dynamic_metrics"):
                rows = conn.execute(
                    "SELECT key, value, step, logged_at FROM dynamic_metrics ORDER BY key, step"
                )
                for key, value, step, logged_at in rows:
                    if value is None:
                        continue
                    points.append(
                        {
                            "key": str(key),
                            "step": int(step or 0),
                            "value": float(value),
                            "time_unix_nano": _ns(logged_at),
                        }
                    )
            counts = {
                table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in ("spans", "evals", "eval_annotations", "span_annotations")
                if _table_exists(conn, table)
            }
            attachments: list[tuple[str, str]] = []
            if _table_exists(conn, "attachments"):
                attachments = [
                    (str(n), str(p or n)) for n, p in conn.execute("SELECT name, file_path FROM attachments")
                ]
        except sqlite3.DatabaseError as exc:
            raise LumlImportError(
                f"{origin}: exp.db is not a readable LUML experiment database: {exc}"
            ) from None
        finally:
            conn.close()
    return params, points, counts, attachments


def _attachment_artifacts(tar_bytes: bytes | None, listed: list[tuple[str, str]], origin: str) -> list[dict]:
    if not tar_bytes:
        return []
    names = {path: name for name, path in listed}
    artifacts = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                data = _read(tar, member)
                artifacts.append(
                    {
                        "name": names.get(member.name, member.name),
                        "kind": "file",
                        "path": f"attachments/{member.name}",
                        "digest": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "data": data,
                        "metadata": {"source": "luml-attachment"},
                    }
                )
    except tarfile.TarError:
        raise LumlImportError(f"{origin}: attachments.tar is not a tar archive") from None
    return artifacts


def _luml_snapshot(
    origin: str,
    zipped_db: bytes,
    attachments_tar: bytes | None,
    run_id: str,
    name: str,
    status: str,
    tags: dict[str, str],
    extra_artifacts: list[dict] | None = None,
) -> dict:
    params, points, counts, listed = _read_exp_db(_exp_db(zipped_db, origin), origin)
    times = [p["time_unix_nano"] for p in points if p["time_unix_nano"]]
    start, end = (min(times), max(times)) if times else (0, 0)
    metadata = {"source": origin, **{f"luml.{table}": str(n) for table, n in counts.items()}}
    return {
        "format": SNAPSHOT_FORMAT,
        "version": 1,
        "run": {
            "id": run_id,
            "experiment": LUML_EXPERIMENT,
            "name": name,
            "parent_id": None,
            "status": status,
            "start_unix_nano": start,
            "end_unix_nano": end or None,
            "tags": tags,
            "metadata": metadata,
            "packages": {},
        },
        "params": params,
        "metrics": points,
        "artifacts": _attachment_artifacts(attachments_tar, listed, origin) + (extra_artifacts or []),
    }


# -- readers ---------------------------------------------------------------------------------------


def read_luml_model(path: Path) -> Iterable[dict]:
    """Runs carried by a `.luml` model file: Tracehouse's snapshot and/or LUML's."""
    manifest = _manifest(path) or {}
    with tarfile.open(path, "r:*") as tar:
        entries = _metadata_entries(tar)
        members = _members(tar)
        ours = [e for e in entries if TRACEHOUSE_TAG in _tags(e)]
        theirs = [e for e in entries if LUML_EMBEDDED_TAG in _tags(e)]
        if not ours and not theirs:
            found = sorted({t for e in entries for t in _tags(e)})
            raise LumlImportError(
                f"{path}: this model file carries no run snapshot ({TRACEHOUSE_TAG} or {LUML_EMBEDDED_TAG})"
                + (f"; its metadata tags: {', '.join(found)}" if found else "")
            )
        luml_runs = []
        for entry in theirs:
            prefix = f"meta_artifacts/{entry.get('id')}/"
            db_member = members.get(prefix + "exp.db.zip")
            if db_member is None:
                raise LumlImportError(f"{path}: LUML snapshot {entry.get('id')} has no {prefix}exp.db.zip")
            attachments_member = members.get(prefix + "attachments.tar")
            luml_runs.append(
                (
                    entry,
                    _read(tar, db_member),
                    _read(tar, attachments_member) if attachments_member else None,
                )
            )
    if ours:
        yield _from_tracehouse_entry(path, ours[-1], manifest)
    data = path.read_bytes() if luml_runs else b""
    for _entry, db, attachments in luml_runs:
        model_name = manifest.get("name") or path.stem
        model_artifact = {
            "name": path.name,
            "kind": "model",
            "path": str(path),
            "digest": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "data": data,
            "model_name": model_name,
            "metadata": {"format": "luml", "snapshot_tag": LUML_EMBEDDED_TAG},
        }
        yield _luml_snapshot(
            str(path),
            db,
            attachments,
            _run_id(f"luml-snapshot:{hashlib.sha256(db).hexdigest()}"),
            model_name,
            "finished",
            {"imported.from": "luml-model"},
            [model_artifact],
        )


def read_luml_experiment(path: Path) -> Iterable[dict]:
    """The run of a LUML experiment export."""
    manifest = _manifest(path) or {}
    payload = manifest.get("payload") or {}
    with tarfile.open(path, "r:*") as tar:
        members = _members(tar)
        if "exp.db.zip" not in members:
            raise LumlImportError(f"{path}: LUML experiment export without exp.db.zip")
        db = _read(tar, members["exp.db.zip"])
        attachments = _read(tar, members["attachments.tar"]) if "attachments.tar" in members else None
    local_id = str(payload.get("local_experiment_id") or "")
    tags = {"imported.from": "luml-experiment"}
    if local_id:
        tags["luml.experiment_id"] = local_id
    if payload.get("group"):
        tags["luml.group"] = str(payload["group"])
    for tag in payload.get("tags") or []:
        tags[f"luml.tag.{tag}"] = "true"
    run_id = _run_id(local_id) if local_id else _run_id(f"luml-experiment:{hashlib.sha256(db).hexdigest()}")
    status = _LUML_STATUS.get(str(payload.get("status") or "completed"), "finished")
    yield _luml_snapshot(str(path), db, attachments, run_id, manifest.get("name") or path.stem, status, tags)
