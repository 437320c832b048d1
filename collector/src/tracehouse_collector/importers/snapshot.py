"""Tracehouse run snapshots, the one format `tracehouse runs export` writes and every importer reads
into: a zip holding `tracehouse-run.json` (the run, typed params, every metric point, the
artifact list, the eval examples with their trace links, the annotations) and `artifacts/<sha256>` for each artifact's bytes.

A snapshot dict is the shape of `tracehouse-run.json`; an artifact entry may carry its bytes as
`data`, or as a local `file` path, instead of a zip member.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SNAPSHOT_FORMAT = "tracehouse.run-snapshot"
SNAPSHOT_MEMBER = "tracehouse-run.json"
# The run's fields a snapshot keeps (the rest is derived when it is loaded again).
RUN_FIELDS = (
    "id",
    "experiment",
    "name",
    "parent_id",
    "status",
    "start_unix_nano",
    "end_unix_nano",
    "tags",
    "metadata",
    "packages",
    "service",
)


class SnapshotError(ValueError):
    """A snapshot that cannot be read or written (the import command reports it as it is)."""


# -- export ----------------------------------------------------------------------------------------


def build_snapshot(
    run: dict[str, Any], points: list[dict[str, Any]], evals: dict[str, list[dict]] | None = None
) -> dict[str, Any]:
    """The snapshot of a run as the query modules show it (`show_run`), its metric points, and
    its eval examples and annotations (`query.evals.export_evals`)."""
    return {
        "format": SNAPSHOT_FORMAT,
        "version": 1,
        "run": {k: run.get(k) for k in RUN_FIELDS},
        "params": run["params"],
        "param_types": run.get("param_types", {}),
        "metrics": [
            {"key": p["key"], "step": p["step"], "value": p["value"], "time_unix_nano": p["time_unix_nano"]}
            for p in points
        ],
        "artifacts": [],
        "evals": (evals or {}).get("evals") or [],
        "annotations": (evals or {}).get("annotations") or [],
    }


def write_snapshot(out: Path, snapshot: dict[str, Any], artifacts: list[dict[str, Any]],
                   fetch: Callable[[str], bytes]) -> None:
    """Write the zip to `out` (whole or not at all), with the bytes `fetch(digest)` gives for each
    artifact, checked against its digest."""
    tmp = out.with_name(out.name + ".part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for a in artifacts:
                data = fetch(a["digest"])
                if hashlib.sha256(data).hexdigest() != a["digest"]:
                    raise SnapshotError(f"artifact {a['name']}: stored bytes do not match sha256 {a['digest']}")
                member = f"artifacts/{a['digest']}"
                if member not in zf.namelist():
                    zf.writestr(member, data)
                snapshot["artifacts"].append({**a, "member": member})
            zf.writestr(SNAPSHOT_MEMBER, json.dumps(snapshot, indent=1))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # only left when writing failed


# -- import ----------------------------------------------------------------------------------------


def is_snapshot(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return SNAPSHOT_MEMBER in zf.namelist()


def read_snapshot(path: Path) -> Iterable[dict]:
    with zipfile.ZipFile(path) as zf:
        try:
            snapshot = json.loads(zf.read(SNAPSHOT_MEMBER))
        except ValueError as exc:
            raise SnapshotError(f"{path}: {SNAPSHOT_MEMBER} is not valid JSON: {exc}") from None
        if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"{path}: not a Tracehouse run snapshot (format {snapshot.get('format')!r})")
        for a in snapshot.get("artifacts", []):
            member = a.get("member")
            if member:
                try:
                    a["data"] = zf.read(member)
                except KeyError:
                    raise SnapshotError(f"{path}: artifact {a.get('name')!r} is missing ({member})") from None
        yield snapshot
