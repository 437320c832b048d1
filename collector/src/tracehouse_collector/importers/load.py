"""Loading run snapshots: as the run records and metric points the SDK's transport sends, through a
collector's OTLP endpoint or straight into a store, by the same record processor either way."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracehouse_collector.importers.snapshot import SnapshotError

if TYPE_CHECKING:
    from tracehouse_collector.store.artifacts import ArtifactStore
    from tracehouse_collector.store.client import Store


def _float(v: Any) -> float:
    if isinstance(v, str):
        return float(v)  # "nan", "inf" from JSON
    return float(v)


def snapshot_records(snapshot: dict) -> tuple[list[tuple], list[tuple], list[dict]]:
    """(records, metric points, artifacts with bytes) of a snapshot, as the SDK's transport sends them."""
    run = snapshot.get("run") or {}
    run_id = run.get("id")
    if not isinstance(run_id, str) or len(run_id) != 32:
        raise SnapshotError("snapshot run id must be 32 hex digits")
    experiment = run.get("experiment") or "default"
    start = int(run.get("start_unix_nano") or 0)
    end = run.get("end_unix_nano")
    # Record times are taken from the run, so importing the same snapshot twice changes nothing.
    ts = int(end or start or 1)
    records: list[tuple] = []
    attrs = {
        "tracehouse.experiment.name": experiment,
        "tracehouse.run.name": run.get("name") or "",
        "tracehouse.run.parent_id": run.get("parent_id") or None,
        "tracehouse.run.status": run.get("status") or "finished",
        "tracehouse.run.start_time_unix_nano": start,
        "tracehouse.run.end_time_unix_nano": int(end) if end else None,
    }
    body = {
        "tags": run.get("tags") or {},
        "metadata": {**(run.get("metadata") or {}), "imported": "true"},
        "packages": run.get("packages") or {},
    }
    records.append(("tracehouse.run.state", run_id, attrs, body, ts))
    params = snapshot.get("params") or {}
    if params:
        records.append(("tracehouse.run.params", run_id, {}, params, ts))
    artifacts = []
    for a in snapshot.get("artifacts") or []:
        data = a.get("data")
        if data is None and a.get("file"):
            data = Path(a["file"]).read_bytes()
        digest = a.get("digest") or (hashlib.sha256(data).hexdigest() if data is not None else None)
        if data is not None and hashlib.sha256(data).hexdigest() != digest:
            raise SnapshotError(f"artifact {a.get('name')!r}: bytes do not match sha256 {digest}")
        a_attrs = {
            "tracehouse.experiment.name": experiment,
            "tracehouse.artifact.name": a.get("name") or digest,
            "tracehouse.artifact.path": a.get("path") or "",
            "tracehouse.artifact.digest": digest,
            "tracehouse.artifact.size": int(a.get("size") or (len(data) if data is not None else 0)),
            "tracehouse.artifact.kind": a.get("kind") or "file",
        }
        if a_attrs["tracehouse.artifact.kind"] == "model":
            a_attrs["tracehouse.model.name"] = (
                a.get("model_name") or Path(str(a_attrs["tracehouse.artifact.name"])).stem
            )
        records.append(("tracehouse.run.artifact", run_id, a_attrs, a.get("metadata") or {}, ts))
        if data is not None:
            artifacts.append({"digest": digest, "data": data})
    points = [
        (run_id, p["key"], int(p["step"]), _float(p["value"]), int(p["time_unix_nano"] or ts))
        for p in snapshot.get("metrics") or []
    ]
    return records, points, artifacts


def encode_payloads(records: list[tuple], points: list[tuple], service: str) -> list[bytes]:
    """OTLP log export requests carrying the records and points, each within the SDK's size."""
    from tracehouse._run_transport import MAX_POINTS_PER_FILE, encode_request

    resource = {"service.name": service}
    payloads = [encode_request(records, points[:MAX_POINTS_PER_FILE], resource)]
    for i in range(MAX_POINTS_PER_FILE, len(points), MAX_POINTS_PER_FILE):
        payloads.append(encode_request([], points[i : i + MAX_POINTS_PER_FILE], resource))
    return payloads


def load_via_server(server: str, api_key: str | None, payloads: list[bytes], artifacts: list[dict]) -> None:
    from tracehouse._run_transport import Sender, SendError, Spool

    with tempfile.TemporaryDirectory(prefix="tracehouse-import-") as tmp:
        spool = Spool(Path(tmp))
        spool.blobs.mkdir(parents=True)
        for a in artifacts:
            (spool.blobs / a["digest"]).write_bytes(a["data"])
        for payload in payloads:
            spool.write(payload)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        sender = Sender(spool, server.rstrip("/") + "/v1/logs", headers)
        try:
            rejected = 0
            for blob in spool.blob_files():
                sender.upload_blob(blob)
            for path in spool.files():
                rejected += sender.send_file(path)
        except SendError as exc:
            raise SnapshotError(str(exc)) from None
        left = (
            spool.files()
            + spool.blob_files()
            + (list(spool.rejected.iterdir()) if spool.rejected.exists() else [])
        )
        if left or rejected:
            raise SnapshotError(f"the server refused part of the snapshot ({rejected} records rejected)")


def load_into_store(store: Store, artifacts: ArtifactStore, payloads: list[bytes], blobs: list[dict]) -> None:
    """Write the artifacts' bytes, then insert the records as the collector would have."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tracehouse_collector.processors import runs as run_records
    from tracehouse_collector.processors.pipeline import INSERT_FORMAT, encode_rows, request_key

    for a in blobs:
        artifacts.write(a["digest"], a["data"])
    with tempfile.TemporaryDirectory(prefix="tracehouse-import-") as tmp:
        for payload in payloads:
            rows = run_records.take_run_records(ExportLogsServiceRequest.FromString(payload))
            if rows.rejected:
                raise SnapshotError("snapshot has invalid records: " + "; ".join(rows.errors))
            key = request_key("logs", payload)
            for table, table_rows in rows.tables.items():
                path = Path(tmp) / f"{table}.jsonl"
                path.write_bytes(encode_rows(table_rows))
                store.insert_files(table, str(path), INSERT_FORMAT, f"import-{key}-{table}")
