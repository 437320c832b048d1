"""Loading run snapshots: as the run records and metric points the SDK's transport sends, through a
collector's OTLP endpoint or straight into a store, by the same record processor either way."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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
    # A reader may set a record time of its own: one that knows less about the run yields (a
    # lower version) to another form of the same run read later or earlier.
    ts = int(run.get("record_time_unix_nano") or end or start or 1)
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
    records += eval_records(run_id, snapshot.get("evals") or [], snapshot.get("annotations") or [], ts)
    points = [
        (run_id, p["key"], int(p["step"]), _float(p["value"]), int(p["time_unix_nano"] or ts))
        for p in snapshot.get("metrics") or []
    ]
    return records, points, artifacts


def _json_or_empty(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)


EVAL_EVENTS = ("tracehouse.run.eval", "tracehouse.run.annotation")


def eval_records(run_id: str, evals: list[dict], annotations: list[dict], ts: int) -> list[tuple]:
    """The run records (as the SDK's transport sends them) of a snapshot's evals and annotations,
    each timed by its own time (`ts` where it has none), whatever form of the run it came from."""
    records: list[tuple] = []
    for e in evals:
        attrs = {
            "tracehouse.eval.dataset": e["dataset"],
            "tracehouse.eval.example_id": e["example_id"],
            "tracehouse.eval.created_time_unix_nano": int(e.get("created_unix_nano") or ts),
            "tracehouse.eval.updated_time_unix_nano": int(e.get("updated_unix_nano") or ts),
        }
        body = {
            "inputs": _json_or_empty(e.get("inputs")),
            "outputs": _json_or_empty(e.get("outputs")),
            "references": _json_or_empty(e.get("references")),
            "metadata": _json_or_empty(e.get("metadata")),
            "scores": {k: float(v) for k, v in (e.get("scores") or {}).items()},
            "traces": [
                {k: v for k, v in link.items() if v not in (None, "")} for link in e.get("traces") or []
            ],
        }
        records.append(("tracehouse.run.eval", run_id, attrs, body, attrs["tracehouse.eval.updated_time_unix_nano"]))
    for a in annotations:
        fields = {**a, "time_unix_nano": int(a.get("time_unix_nano") or ts)}
        if fields.get("target") != "eval":
            fields.pop("dataset", None)
            fields.pop("example_id", None)
        fields.pop("target", None)
        attrs = {f"tracehouse.annotation.{k}": v for k, v in fields.items() if v not in (None, "")}
        records.append(("tracehouse.run.annotation", run_id, attrs, None, fields["time_unix_nano"]))
    return records


def _any_value(value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[_any_value(v) for v in value]))
    return AnyValue(string_value=value if isinstance(value, str) else json.dumps(value, default=str))


def _key_values(attrs: dict[str, Any] | None) -> list:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=str(k), value=_any_value(v)) for k, v in (attrs or {}).items() if v is not None]


def _hex_bytes(text: str | None, size: int) -> bytes:
    raw = bytes.fromhex(text) if text else b""
    if raw and len(raw) != size:
        raise SnapshotError(f"span id {text!r} is not {size} bytes of hex")
    return raw


SPANS_PER_REQUEST = 2000


def spans_payloads(snapshot: dict, service: str) -> list[bytes]:
    """OTLP trace export requests with the snapshot's spans (LUML's span rows: hex ids,
    nanosecond times, OTLP's kind and status numbers, JSON attributes/events/links), a fixed
    number per request so the same spans always make the same requests."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    spans = snapshot.get("spans") or []
    out = []
    for s in spans:
        out.append(
            Span(
                trace_id=_hex_bytes(s["trace_id"], 16),
                span_id=_hex_bytes(s["span_id"], 8),
                parent_span_id=_hex_bytes(s.get("parent_span_id"), 8),
                name=s.get("name") or "",
                kind=cast(Any, int(s.get("kind") or 0)),  # OTLP's SpanKind numbers, as LUML's
                start_time_unix_nano=int(s.get("start_time_unix_nano") or 0),
                end_time_unix_nano=int(s.get("end_time_unix_nano") or 0),
                attributes=_key_values(s.get("attributes")),
                events=[
                    Span.Event(
                        name=str(e.get("name") or ""),
                        time_unix_nano=int(e.get("timestamp") or e.get("time_unix_nano") or 0),
                        attributes=_key_values(e.get("attributes")),
                    )
                    for e in s.get("events") or []
                ],
                links=[
                    Span.Link(
                        trace_id=_hex_bytes(link.get("trace_id"), 16),
                        span_id=_hex_bytes(link.get("span_id"), 8),
                        attributes=_key_values(link.get("attributes")),
                        flags=int(link.get("trace_flags") or 0),
                    )
                    for link in s.get("links") or []
                ],
                status=Status(
                    code=cast(Any, int(s.get("status_code") or 0)), message=s.get("status_message") or ""
                ),
                flags=int(s.get("trace_flags") or 0),
            )
        )
    resource = Resource(attributes=_key_values({"service.name": service}))
    return [
        ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=resource, scope_spans=[ScopeSpans(spans=out[i : i + SPANS_PER_REQUEST])]
                )
            ]
        ).SerializeToString()
        for i in range(0, len(out), SPANS_PER_REQUEST)
    ]


def send_spans(server: str, api_key: str | None, payload: bytes) -> None:
    """POST the spans to the server's OTLP/HTTP traces endpoint; every span must be accepted."""
    import urllib.error
    import urllib.request

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    headers = {
        "Content-Type": "application/x-protobuf",
        **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
    }
    req = urllib.request.Request(
        server.rstrip("/") + "/v1/traces", data=payload, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise SnapshotError(f"the server refused the spans: HTTP {exc.code} {exc.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SnapshotError(f"cannot reach {server}: {getattr(exc, 'reason', exc)}") from None
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    if partial.rejected_spans:
        raise SnapshotError(f"the server rejected {partial.rejected_spans} spans: {partial.error_message}")


def encode_payloads(records: list[tuple], points: list[tuple], service: str) -> list[bytes]:
    """OTLP log export requests carrying the records and points, each within the SDK's size."""
    from tracehouse._run_transport import MAX_POINTS_PER_FILE, encode_request

    resource = {"service.name": service}
    # The points, and the eval examples and annotations, travel apart from the run's own records:
    # the same ones read from another form of the same run (a LUML export and its `.luml`) make
    # the same requests, which the collector recognises as already stored (so a feedback
    # annotation is not copied into otel_scores twice).
    own = [r for r in records if r[0] not in EVAL_EVENTS]
    evals = [r for r in records if r[0] in EVAL_EVENTS]
    payloads = [encode_request(own, [], resource)]
    if evals:
        payloads.append(encode_request(evals, [], resource))
    for i in range(0, len(points), MAX_POINTS_PER_FILE):
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


def load_spans_into_store(store: Store, payload: bytes) -> None:
    """Insert the spans through the collector's own trace pipeline (normalise, enrich)."""
    from tracehouse_collector.processors import pipeline
    from tracehouse_collector.processors.encoding import insert_format

    limit = 1 << 40
    with tempfile.TemporaryDirectory(prefix="tracehouse-import-") as tmp:
        encoded = pipeline.process(
            "traces", payload, "application/x-protobuf", "", limit, limit, tmp, fsync=False
        )
        if encoded.rejected:
            raise SnapshotError(f"spans rejected: {encoded.error_message}")
        for table, path in encoded.files.items():
            store.insert_files(table, path, insert_format(path), f"import-{encoded.key}-{table}")


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
