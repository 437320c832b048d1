"""Reading LUML's per-run SQLite database (`exp.db`) into the parts of a run snapshot.

The tables and their columns are LUML's (docs/runs-and-models.md, "LUML files"): typed params in
`static_params`, metric points in `dynamic_metrics`, `attachments`, OpenTelemetry spans in `spans`
(ids as hex, times in nanoseconds, attributes/events/links as JSON), and the evaluation tables
`evals`, `eval_traces_bridge`, `eval_annotations`, `span_annotations`, read row for row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The evaluation tables: read row for row; luml_evals.py turns them into eval examples and annotations.
EVAL_TABLES = ("evals", "eval_traces_bridge", "eval_annotations", "span_annotations")
_JSON_COLUMNS = {"inputs", "outputs", "refs", "scores", "metadata"}
_KNOWN_TABLES = ("static_params", "dynamic_metrics", "attachments", "spans", *EVAL_TABLES)


_TIMESTAMP = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:?\d\d)?"
)


class LumlDbError(ValueError):  # the import command reports a ValueError as it is
    pass


@dataclass
class Experiment:
    params: dict[str, Any] = field(default_factory=dict)
    points: list[dict] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)  # file_path -> name
    spans: list[dict] = field(default_factory=list)
    evals: dict[str, list[dict]] = field(default_factory=dict)  # table -> rows
    digest: str = ""  # of the database's content, row by row: the experiment's identity
    # Whole-second times (metrics, attachments, evals) and nanosecond times (spans), each
    # kept at the precision LUML wrote it.
    second_times: list[int] = field(default_factory=list)
    nano_times: list[int] = field(default_factory=list)


def timestamp_ns(value: Any) -> int:
    """Nanoseconds since the epoch from a SQLite or ISO timestamp (UTC when no zone), keeping
    every digit of a fraction (LUML writes whole seconds; Tracehouse's exports, nanoseconds)."""
    if not value:
        return 0
    if isinstance(value, int | float):
        return int(value * 1e9)
    m = _TIMESTAMP.fullmatch(str(value).strip())
    if not m:
        return 0
    try:
        t = dt.datetime.fromisoformat(m["base"].replace(" ", "T") + (m["zone"] or "").replace("Z", "+00:00"))
    except ValueError:
        return 0
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    fraction = (m["fraction"] or "")[:9].ljust(9, "0")
    return int(t.timestamp()) * 1_000_000_000 + int(fraction)


def typed(value: Any, value_type: str | None) -> Any:
    """A static param as LUML logged it (its `value_type`: int, float, bool, str, json)."""
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


def unzip_db(zipped: bytes, origin: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".db")]
            if not names:
                raise LumlDbError(f"{origin}: exp.db.zip holds no .db file")
            return zf.read("exp.db" if "exp.db" in names else names[0])
    except zipfile.BadZipFile:
        raise LumlDbError(f"{origin}: exp.db.zip is not a zip archive") from None


def _json(text: Any) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _rows(conn: sqlite3.Connection, table: str) -> list[dict]:
    cur = conn.execute(f'SELECT * FROM "{table}"')
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def _digest(conn: sqlite3.Connection, tables: list[str]) -> str:
    """sha256 over every row of the known tables in a fixed order: the same experiment gives the
    same digest whichever file (export tar or `.luml`) its database came in."""
    h = hashlib.sha256()
    for table in tables:
        rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in _rows(conn, table))
        h.update(f"{table}\0{len(rows)}\n".encode())
        for r in rows:
            h.update(r.encode() + b"\n")
    return h.hexdigest()


def _span(row: dict) -> dict:
    return {
        "trace_id": str(row["trace_id"]),
        "span_id": str(row["span_id"]),
        "parent_span_id": row.get("parent_span_id") or "",
        "name": str(row.get("name") or ""),
        "kind": int(row.get("kind") or 0),
        "start_time_unix_nano": int(row.get("start_time_unix_nano") or 0),
        "end_time_unix_nano": int(row.get("end_time_unix_nano") or 0),
        "status_code": int(row.get("status_code") or 0),
        "status_message": row.get("status_message") or "",
        "attributes": _json(row.get("attributes")) or {},
        "events": _json(row.get("events")) or [],
        "links": _json(row.get("links")) or [],
        "trace_flags": int(row.get("trace_flags") or 0),
        "dfs_span_type": int(row.get("dfs_span_type") or 0),
    }


def read_experiment_db(db: bytes, origin: str) -> Experiment:
    with tempfile.TemporaryDirectory(prefix="tracehouse-luml-") as tmp:
        db_path = Path(tmp) / "exp.db"
        db_path.write_bytes(db)
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise LumlDbError(f"{origin}: cannot open exp.db: {exc}") from None
        try:
            present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            tables = [t for t in _KNOWN_TABLES if t in present]
            return _read(conn, tables)
        except sqlite3.DatabaseError as exc:
            raise LumlDbError(f"{origin}: exp.db is not a readable LUML experiment database: {exc}") from None
        finally:
            conn.close()


def _read(conn: sqlite3.Connection, tables: list[str]) -> Experiment:
    exp = Experiment(digest=_digest(conn, tables))
    if "static_params" in tables:
        for key, value, value_type in conn.execute("SELECT key, value, value_type FROM static_params"):
            exp.params[str(key)] = typed(value, value_type)
    if "dynamic_metrics" in tables:
        cursor = conn.execute("SELECT key, value, step, logged_at FROM dynamic_metrics ORDER BY key, step")
        for key, value, step, logged_at in cursor:
            if value is None:
                continue
            t = timestamp_ns(logged_at)
            exp.points.append(
                {"key": str(key), "step": int(step or 0), "value": float(value), "time_unix_nano": t}
            )
            exp.second_times.append(t)
    if "attachments" in tables:
        for row in _rows(conn, "attachments"):
            exp.attachments[str(row.get("file_path") or row["name"])] = str(row["name"])
            exp.second_times.append(timestamp_ns(row.get("created_at")))
    if "spans" in tables:
        exp.spans = [_span(r) for r in _rows(conn, "spans")]
        for s in exp.spans:
            exp.nano_times += [s["start_time_unix_nano"], s["end_time_unix_nano"]]
    for table in EVAL_TABLES:
        if table not in tables:
            continue
        rows = _rows(conn, table)
        for r in rows:
            for column in _JSON_COLUMNS & r.keys():
                r[column] = _json(r[column])
            exp.second_times += [timestamp_ns(r.get("created_at")), timestamp_ns(r.get("updated_at"))]
        exp.evals[table] = rows
    exp.second_times = [t for t in exp.second_times if t]
    exp.nano_times = [t for t in exp.nano_times if t]
    return exp
