"""LUML's experiment snapshot, written from a Tracehouse run: the run's SQLite database in LUML's
schema (`exp.db`, zipped), its attachments tar and index, and the standalone experiment export
(a tar whose manifest has `artifact_type: experiment`).

`tracehouse.luml` embeds the snapshot in every `.luml` it writes (so LUML's registry sees the
run); `tracehouse runs export --format luml` writes the standalone export. Only the standard
library: the SDK stays light.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

EMBEDDED_TAG = "dataforce.studio::experiment_snapshot:v1"  # a snapshot inside a `.luml`
EXPORT_TAG = "luml.ai::experiment_snapshot:v1"  # the standalone export's manifest
REGISTRY_METRICS_TAG = "dataforce.studio::registry_metrics:v1"  # what LUML's registry lists
# LUML's SDK requires fnnx>=0.0.8,<0.1.0; a package it runs must not pin another fnnx.
FNNX_REQUIREMENT = "fnnx>=0.0.8,<0.1"
# Keys Tracehouse adds to the payloads it writes, so its importer gets the run back whole.
RUN_ID_KEY = "tracehouse_run_id"
EXPERIMENT_KEY = "tracehouse_experiment"
EXTRA_KEY = "tracehouse"
# LUML's evaluation tables travel in Tracehouse as this JSON artifact (collector importer).
EVALS_ARTIFACT = "luml-evals.json"

# LUML's per-run tables (its experiment DDL, version 2).
SCHEMA = """
CREATE TABLE static_params (key TEXT PRIMARY KEY, value TEXT, value_type TEXT);
CREATE TABLE dynamic_metrics (key TEXT, value REAL, step INTEGER,
    logged_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (key, step));
CREATE TABLE attachments (id TEXT PRIMARY KEY, name TEXT NOT NULL, file_path TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, size INTEGER);
CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind INTEGER, dfs_span_type INTEGER NOT NULL DEFAULT 0, start_time_unix_nano BIGINT NOT NULL,
    end_time_unix_nano BIGINT NOT NULL, status_code INTEGER, status_message TEXT, attributes TEXT,
    events TEXT, links TEXT, trace_flags INTEGER, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (trace_id, span_id));
CREATE TABLE evals (id TEXT NOT NULL, dataset_id TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT,
    refs TEXT, scores TEXT, metadata TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (dataset_id, id));
CREATE TABLE eval_traces_bridge (id TEXT PRIMARY KEY, eval_dataset_id TEXT NOT NULL, eval_id TEXT NOT NULL,
    trace_id TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE eval_annotations (id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL, eval_id TEXT NOT NULL,
    name TEXT NOT NULL, annotation_kind TEXT NOT NULL CHECK(annotation_kind IN ('feedback', 'expectation')),
    value_type TEXT NOT NULL CHECK(value_type IN ('int', 'bool', 'string')), value TEXT NOT NULL,
    user TEXT NOT NULL, rationale TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE span_annotations (id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
    name TEXT NOT NULL, annotation_kind TEXT NOT NULL CHECK(annotation_kind IN ('feedback', 'expectation')),
    value_type TEXT NOT NULL CHECK(value_type IN ('int', 'bool', 'string')), value TEXT NOT NULL,
    user TEXT NOT NULL, rationale TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
PRAGMA user_version = 2;
"""
_JSON_COLUMNS = {"inputs", "outputs", "refs", "scores", "metadata", "attributes", "events", "links"}


@dataclass
class Attachment:
    name: str
    data: bytes
    file_path: str = ""  # relative, inside the run's attachments folder; the name by default
    created_unix_nano: int = 0


@dataclass
class Snapshot:
    """What LUML's per-run database holds, in Tracehouse's terms."""

    params: dict[str, Any] = field(default_factory=dict)
    points: list[dict] = field(default_factory=list)  # {key, step, value, time_unix_nano}
    attachments: list[Attachment] = field(default_factory=list)
    spans: list[dict] = field(default_factory=list)  # LUML span rows, JSON columns as values
    evals: dict[str, list[dict]] = field(default_factory=dict)  # LUML table -> rows


def timestamp_text(ns: int) -> str:
    """A SQLite timestamp (UTC) to the nanosecond: LUML writes whole seconds in the same form."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{frac:09d}" if frac else text


def param_row(value: Any) -> tuple[str, str]:
    """(value, value_type) as LUML's log_static stores a param."""
    if isinstance(value, str | int | float | bool):
        return str(value), type(value).__name__
    return json.dumps(value), "json"


def safe_path(name: str) -> str:
    """A relative path inside the attachments folder (no root, no `..`)."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
    return "/".join(parts) or "attachment"


def _json_text(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return json.dumps(value)


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[dict]) -> None:
    for row in rows:
        columns = list(row)
        values = [_json_text(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns]
        names = ", ".join(f'"{c}"' for c in columns)
        conn.execute(
            f'INSERT OR REPLACE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', values
        )


def exp_db(snapshot: Snapshot) -> bytes:
    """The run's `exp.db` in LUML's schema. A step logged twice keeps its last value (LUML's key
    is (key, step))."""
    with tempfile.TemporaryDirectory(prefix="tracehouse-luml-") as tmp:
        path = os.path.join(tmp, "exp.db")
        conn = sqlite3.connect(path)
        try:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT INTO static_params VALUES (?, ?, ?)",
                [(k, *param_row(v)) for k, v in snapshot.params.items()],
            )
            for p in sorted(snapshot.points, key=lambda p: int(p.get("time_unix_nano") or 0)):
                conn.execute(
                    "INSERT OR REPLACE INTO dynamic_metrics VALUES (?, ?, ?, ?)",
                    (
                        p["key"],
                        float(p["value"]),
                        int(p["step"]),
                        timestamp_text(int(p.get("time_unix_nano") or 0)),
                    ),
                )
            for i, a in enumerate(snapshot.attachments):
                conn.execute(
                    "INSERT INTO attachments VALUES (?, ?, ?, ?, ?)",
                    (f"{i:08d}-{a.name}", a.name, a.file_path or safe_path(a.name),
                     timestamp_text(a.created_unix_nano), len(a.data)),
                )  # fmt: skip
            _insert(conn, "spans", snapshot.spans)
            for table in ("evals", "eval_traces_bridge", "eval_annotations", "span_annotations"):
                _insert(conn, table, snapshot.evals.get(table) or [])
            conn.commit()
        finally:
            conn.close()
        with open(path, "rb") as f:
            return f.read()


def zipped(db: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("exp.db", db)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def attachments_tar(attachments: list[Attachment]) -> tuple[bytes, bytes]:
    """LUML's `attachments.tar` (the run's `attachments/` folder) and its index
    (`{member: [data offset, size]}`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("attachments")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        for a in attachments:
            _add(
                tar,
                "attachments/" + (a.file_path or safe_path(a.name)),
                a.data,
                a.created_unix_nano // 1_000_000_000,
            )
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        index = {m.name: [m.offset_data, m.size] for m in tar.getmembers() if m.isfile()}
    return data, json.dumps(index).encode()


def snapshot_files(snapshot: Snapshot) -> dict[str, bytes]:
    """The files of an experiment snapshot: `exp.db.zip`, `attachments.tar`, `attachments.index.json`."""
    att, index = attachments_tar(snapshot.attachments)
    return {"exp.db.zip": zipped(exp_db(snapshot)), "attachments.tar": att, "attachments.index.json": index}


def write_export(path: str | os.PathLike, name: str, payload: dict[str, Any], snapshot: Snapshot,
                 producer_version: str) -> None:  # fmt: skip
    """LUML's standalone experiment export, written whole or not at all."""
    manifest = {
        "artifact_type": "experiment",
        "variant": "default",
        "name": name,
        "description": None,
        "version": "1",
        "producer_name": "tracehouse",
        "producer_version": producer_version,
        "producer_tags": [EXPORT_TAG],
        "payload": payload,
    }
    tmp = f"{os.fspath(path)}.part"
    try:
        with tarfile.open(tmp, "w") as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            for member, data in snapshot_files(snapshot).items():
                _add(tar, member, data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
