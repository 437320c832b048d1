"""LUML-format files built from LUML's documented layout (LUML's SDK is not on the package index):
the per-run SQLite database with LUML's tables, its attachments tar (LUML tars the run's
`attachments/` folder, so members are `attachments/<file_path>`), the standalone experiment
export, and an FNNX package carrying the embedded experiment snapshot."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import uuid
import zipfile
from pathlib import Path

LUML_SCHEMA = """
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
CREATE TABLE evals (id TEXT NOT NULL, dataset_id TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT, refs TEXT,
    scores TEXT, metadata TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (dataset_id, id));
CREATE TABLE eval_traces_bridge (id TEXT PRIMARY KEY, eval_dataset_id TEXT NOT NULL, eval_id TEXT NOT NULL,
    trace_id TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE eval_annotations (id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL, eval_id TEXT NOT NULL,
    name TEXT NOT NULL, annotation_kind TEXT NOT NULL, value_type TEXT NOT NULL, value TEXT NOT NULL,
    user TEXT NOT NULL, rationale TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE span_annotations (id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
    name TEXT NOT NULL, annotation_kind TEXT NOT NULL, value_type TEXT NOT NULL, value TEXT NOT NULL,
    user TEXT NOT NULL, rationale TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
"""

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, CHILD = "eee19b7ec3c1b174", "eee19b7ec3c1b173"
LINKED_TRACE, LINKED_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
T0 = 1_740_823_200_000_000_000  # 2025-03-01 10:00:00 UTC, in ns

PARAMS = [
    ("learning_rate", "0.01", "float"),
    ("epochs", "3", "int"),
    ("use_bn", "True", "bool"),
    ("optimizer", "adam", "str"),
    ("layers", "[64, 32]", "json"),
]
NOTES = b"trained on the March data"
PLOT = bytes(range(256)) * 3  # binary, in a subfolder


def write_exp_db(path: Path) -> Path:
    """A run's database as LUML's SDK leaves it: typed params, a metric whose step 2 was
    re-logged, two attachments, two spans (one with an event, one with a link and an error),
    two evals (one linked to the trace) and one annotation of each kind."""
    conn = sqlite3.connect(path)
    conn.executescript(LUML_SCHEMA)
    conn.executemany("INSERT INTO static_params VALUES (?, ?, ?)", PARAMS)
    for step, loss in enumerate([1.2, 0.8, 0.5]):
        conn.execute(
            "INSERT INTO dynamic_metrics VALUES ('loss', ?, ?, ?)", (loss, step, f"2025-03-01 10:00:0{step}")
        )
    conn.execute("INSERT OR REPLACE INTO dynamic_metrics VALUES ('loss', 0.45, 2, '2025-03-01 10:00:09')")
    conn.executemany(
        "INSERT INTO attachments VALUES (?, ?, ?, ?, ?)",
        [
            ("a1", "notes.txt", "notes.txt", "2025-03-01 10:00:01", len(NOTES)),
            ("a2", "plots/curve.bin", "plots/curve.bin", "2025-03-01 10:00:02", len(PLOT)),
        ],
    )
    spans = [
        (TRACE, ROOT, None, "agent", 1, 0, T0 + 1_250_000_000, T0 + 3_750_000_123, 1, None,
         {"gen_ai.operation.name": "invoke_agent", "retries": 2, "score": 0.5, "ok": True, "tags": ["a", "b"]},
         [{"name": "step", "timestamp": T0 + 2_000_000_000, "attributes": {"n": 1}}], None),
        (TRACE, CHILD, ROOT, "chat gpt-4o", 3, 0, T0 + 1_500_000_000, T0 + 3_000_000_000, 2, "rate limited",
         {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12,
          "gen_ai.usage.output_tokens": 5},
         None, [{"trace_id": LINKED_TRACE, "span_id": LINKED_SPAN, "trace_flags": 1, "attributes": {"why": "retry"}}]),
    ]  # fmt: skip
    for t, s, p, name, kind, typ, start, end, code, msg, attrs, events, links in spans:
        conn.execute(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, dfs_span_type, start_time_unix_nano,"
            " end_time_unix_nano, status_code, status_message, attributes, events, links, trace_flags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (t, s, p, name, kind, typ, start, end, code, msg, json.dumps(attrs),
             json.dumps(events) if events else None, json.dumps(links) if links else None),
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("e1", "qa", json.dumps({"q": "2+2?"}), json.dumps({"a": "4"}), json.dumps({"a": "4"}),
             json.dumps({"exact": 1.0}), json.dumps({"split": "test"}), "2025-03-01 10:00:03", "2025-03-01 10:00:04"),
            ("e2", "qa", json.dumps({"q": "capital of France?"}), json.dumps({"a": "Lyon"}), json.dumps({"a": "Paris"}),
             json.dumps({"exact": 0.0}), None, "2025-03-01 10:00:05", "2025-03-01 10:00:05"),
        ],
    )  # fmt: skip
    conn.execute(
        "INSERT INTO eval_traces_bridge VALUES ('b1', 'qa', 'e1', ?, '2025-03-01 10:00:04')", (TRACE,)
    )
    conn.execute(
        "INSERT INTO eval_annotations VALUES ('n1', 'qa', 'e2', 'correct', 'feedback', 'bool', 'false', 'ana',"
        " 'Lyon is not the capital', '2025-03-01 10:00:06')"
    )
    conn.execute(
        "INSERT INTO span_annotations VALUES ('n2', ?, ?, 'helpful', 'expectation', 'int', '4', 'bo', NULL,"
        " '2025-03-01 10:00:07')",
        (TRACE, CHILD),
    )
    conn.commit()
    conn.close()
    return path


def zip_db(db: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(db, "exp.db")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def attachments_tar() -> tuple[bytes, bytes]:
    """LUML's `attachments.tar` (the folder itself, then its files) and its index."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in ("attachments", "attachments/plots"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        _add(tar, "attachments/notes.txt", NOTES)
        _add(tar, "attachments/plots/curve.bin", PLOT)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        index = {m.name: [m.offset_data, m.size] for m in tar.getmembers() if m.isfile()}
    return buf.getvalue(), json.dumps(index).encode()


def experiment_export(path: Path, db_zip: bytes, experiment_id: str, name: str = "baseline-lr",
                      group: str = "tabular") -> Path:  # fmt: skip
    manifest = {
        "artifact_type": "experiment", "variant": "default", "name": name, "version": "1",
        "producer_name": "luml.ai", "producer_version": "0.1", "producer_tags": ["luml.ai::experiment_snapshot:v1"],
        "payload": {"local_experiment_id": experiment_id, "status": "completed", "group": group, "tags": ["gbt"]},
    }  # fmt: skip
    att, index = attachments_tar()
    with tarfile.open(path, "w") as tar:
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        _add(tar, "exp.db.zip", db_zip)
        _add(tar, "attachments.tar", att)
        _add(tar, "attachments.index.json", index)
    return path


def model_with_snapshot(path: Path, db_zip: bytes, model_name: str = "churn") -> Path:
    """An FNNX package with LUML's embedded experiment snapshot appended as LUML appends it
    (payload `{}`: LUML's entry names no experiment)."""
    manifest = {
        "variant": "pyfunc", "name": model_name, "version": "1", "description": "", "producer_name": "luml.ai",
        "producer_version": "0.1", "producer_tags": [], "inputs": [], "outputs": [],
        "dynamic_attributes": [], "env_vars": [],
    }  # fmt: skip
    tag = "dataforce.studio::experiment_snapshot:v1"
    entry_id = tag.replace(":", "~c~").replace("/", "~s~") + "~~et~~" + uuid.uuid4().hex
    att, index = attachments_tar()
    with tarfile.open(path, "w") as tar:
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        _add(tar, "meta.json", b"[]")
    with tarfile.open(path, "a") as tar:
        _add(
            tar,
            f"meta-{uuid.uuid4().hex}.json",
            json.dumps([{"id": entry_id, "tags": [tag], "payload": {}}]).encode(),
        )
        for name, data in (
            ("exp.db.zip", db_zip),
            ("attachments.tar", att),
            ("attachments.index.json", index),
        ):
            _add(tar, f"meta_artifacts/{entry_id}/{name}", data)
    return path
