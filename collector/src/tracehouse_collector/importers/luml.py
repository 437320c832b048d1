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

Both LUML forms give the same run (luml_db.py reads the database): its spans go to `otel_traces`,
its evaluation tables become the run's eval examples, trace links and annotations
(luml_evals.py). `luml_export.py` writes the other direction.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracehouse import _luml_experiment as luml_experiment

from tracehouse_collector.importers import luml_db, luml_evals
from tracehouse_collector.importers.snapshot import SNAPSHOT_FORMAT

TRACEHOUSE_TAG = "tracehouse::run_snapshot:v1"
LUML_EMBEDDED_TAG = "dataforce.studio::experiment_snapshot:v1"
LUML_EXPERIMENT = "luml"  # experiment name for LUML runs (LUML keeps names in a meta.db not exported)
LUML_SERVICE = "luml-import"
RUN_ID_ATTR = "tracehouse.run.id"
# Keys Tracehouse adds to the payloads it writes (export manifest, embedded entry).
TRACEHOUSE_RUN_ID = luml_experiment.RUN_ID_KEY
TRACEHOUSE_EXPERIMENT = luml_experiment.EXPERIMENT_KEY
TRACEHOUSE_EXTRA = luml_experiment.EXTRA_KEY
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
    created = luml_db.timestamp_ns(payload.get("created_at"))
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


def _attachment_artifacts(tar_bytes: bytes | None, names: dict[str, str], origin: str) -> list[dict]:
    """The attachments as LUML wrote them: LUML tars its run's `attachments/` folder, so members
    are `attachments/<file_path>`; an artifact keeps the name and the file_path LUML recorded."""
    if not tar_bytes:
        return []
    artifacts = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                head, _, rest = member.name.partition("/")
                file_path = rest if head == "attachments" and rest else member.name
                data = _read(tar, member)
                artifacts.append(
                    {
                        "name": names.get(file_path, file_path),
                        "kind": "file",
                        "path": file_path,
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
    identity: dict[str, Any],
    tags: dict[str, str],
    extra_artifacts: list[dict] | None = None,
) -> dict:
    """The run of one LUML experiment database. `identity`: the run's id, name, experiment and
    status where the file states them (else the database's content decides the id)."""
    exp = luml_db.read_experiment_db(luml_db.unzip_db(zipped_db, origin), origin)
    run_id = identity.get("id") or _run_id(f"luml-experiment:{exp.digest}")
    # Spans have nanosecond times; everything else LUML stamps in whole seconds. The run spans
    # all of them, and says at which precision its bounds are known.
    times = exp.second_times + exp.nano_times
    start, end = (min(times), max(times)) if times else (0, 0)
    metadata = {
        "source": origin,
        "luml.experiment_digest": exp.digest,
        "luml.time_resolution": "ns" if exp.nano_times and not exp.second_times else "1s",
    }
    spans = [{**s, "attributes": {**s["attributes"], RUN_ID_ATTR: run_id}} for s in exp.spans]
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "version": 1,
        "run": {
            "id": run_id,
            "experiment": identity.get("experiment") or LUML_EXPERIMENT,
            "name": identity.get("name") or "",
            "parent_id": None,
            "status": identity.get("status") or "finished",
            "start_unix_nano": start,
            "end_unix_nano": end or None,
            "tags": tags,
            "metadata": metadata,
            "packages": {},
            "service": LUML_SERVICE,
        },
        "params": exp.params,
        "metrics": exp.points,
        "spans": spans,
        "artifacts": _attachment_artifacts(attachments_tar, exp.attachments, origin) + (extra_artifacts or []),
    }
    snapshot["evals"], snapshot["annotations"] = luml_evals.from_luml(exp.evals)
    _restore_tracehouse_fields(snapshot, identity.get("extra") or {})
    return snapshot


def _restore_tracehouse_fields(snapshot: dict, extra: dict) -> None:
    """What a run Tracehouse exported carries beyond LUML's tables (exact status, bounds, tags,
    metadata; each artifact's kind, path and metadata), put back."""
    run = snapshot["run"]
    for key in ("name", "parent_id", "status", "start_unix_nano", "end_unix_nano", "tags", "metadata",
                "packages", "service"):  # fmt: skip
        if key in extra:
            run[key] = extra[key]
    by_name = extra.get("artifacts") or {}
    for a in snapshot["artifacts"]:
        saved = by_name.get(a["name"])
        if saved:
            a.update({k: saved[k] for k in ("kind", "path", "metadata", "model_name") if k in saved})


def _identity(payload: dict) -> dict[str, Any]:
    """What an experiment's payload (export manifest or embedded entry) says about its run: a
    Tracehouse run id when Tracehouse wrote it; LUML's own payloads carry no run id we can reuse
    for both forms, so theirs is kept as a tag and the database's content decides."""
    ours = str(payload.get(TRACEHOUSE_RUN_ID) or "")
    extra = payload.get(TRACEHOUSE_EXTRA)
    return {
        "id": ours if re.fullmatch(r"[0-9a-f]{32}", ours) else None,
        "extra": extra if isinstance(extra, dict) else {},
        "experiment": payload.get(TRACEHOUSE_EXPERIMENT),
        "name": payload.get("name"),
        "status": _LUML_STATUS.get(str(payload.get("status") or "completed"), "finished"),
    }


def _payload_tags(payload: dict, source: str) -> dict[str, str]:
    tags = {"imported.from": source}
    if payload.get("local_experiment_id"):
        tags["luml.experiment_id"] = str(payload["local_experiment_id"])
    if payload.get("group"):
        tags["luml.group"] = str(payload["group"])
    for tag in payload.get("tags") or []:
        tags[f"luml.tag.{tag}"] = "true"
    return tags


# -- readers ---------------------------------------------------------------------------------------


def read_luml_model(path: Path) -> Iterable[dict]:
    """Runs carried by a `.luml` model file: Tracehouse's snapshot and/or LUML's.

    A file Tracehouse wrote carries both (LUML's for LUML's registry): the LUML entry naming the
    same run is then the same run, read once from Tracehouse's own entry."""
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
        our_runs = {((e.get("payload") or {}).get("run") or {}).get("id") for e in ours}
        luml_runs = []
        for entry in theirs:
            payload = entry.get("payload") or {}
            if ours and payload.get(TRACEHOUSE_RUN_ID) in our_runs:
                continue
            prefix = f"meta_artifacts/{entry.get('id')}/"
            db_member = members.get(prefix + "exp.db.zip")
            if db_member is None:
                raise LumlImportError(f"{path}: LUML snapshot {entry.get('id')} has no {prefix}exp.db.zip")
            attachments_member = members.get(prefix + "attachments.tar")
            luml_runs.append(
                (
                    payload,
                    _read(tar, db_member),
                    _read(tar, attachments_member) if attachments_member else None,
                )
            )
    if ours:
        yield _from_tracehouse_entry(path, ours[-1], manifest)
    data = path.read_bytes() if luml_runs else b""
    for payload, db, attachments in luml_runs:
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
        identity = _identity(payload)
        snapshot = _luml_snapshot(
            str(path), db, attachments, identity, _payload_tags(payload, "luml-model"), [model_artifact]
        )
        run = snapshot["run"]
        if not identity.get("name"):
            # LUML's embedded entry names no experiment, group or name: the export form of the
            # same experiment, which does, wins whichever is imported first.
            run["name"] = model_name
            run["record_time_unix_nano"] = max(
                1, int(run["end_unix_nano"] or run["start_unix_nano"] or 2) - 1
            )
        yield snapshot


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
    identity = {**_identity(payload), "name": manifest.get("name") or payload.get("name")}
    yield _luml_snapshot(str(path), db, attachments, identity, _payload_tags(payload, "luml-experiment"))
