"""`tracehouse runs ...`, `tracehouse import FILE` and `tracehouse sync`.

Read commands work on `--store` directly or through `--server URL` (the REST API in
api/rest_runs.py). `runs export` writes a self-contained snapshot: a zip holding
`tracehouse-run.json` (the run, typed params, every metric point, the artifact list) and
`artifacts/<sha256>` for each artifact's bytes.

`tracehouse import FILE` picks an importer by looking at the file. Importers are
`(label, detect, read)` triples: `detect(path) -> bool`, `read(path) -> iterable of snapshot
dicts` in the shape of `tracehouse-run.json` (an artifact entry may carry its bytes as `data`
or as a local `file` path instead of a zip member). Ours reads Tracehouse snapshots; other
modules add theirs by defining a module-level `IMPORTERS` list in
`tracehouse_collector.cli_models` (the `.luml` and LUML experiment snapshot importers).
Snapshots are loaded through the server's OTLP endpoint with `--server`, or straight into the
store otherwise, by the same record processor either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tracehouse_collector.output import render

SNAPSHOT_FORMAT = "tracehouse.run-snapshot"
SNAPSHOT_MEMBER = "tracehouse-run.json"


def _fail(message: str, code: int = 1) -> int:
    print(f"tracehouse: {message}", file=sys.stderr)
    return code


class CliError(Exception):
    pass


# -- reaching the data: a server's REST API, or the store ----------------------------------------


def _get(server: str, path: str, api_key: str | None, raw: bool = False) -> Any:
    from tracehouse_collector.server_client import ServerError, call

    try:
        body = call(server, path, api_key)
    except ServerError as exc:
        raise CliError(str(exc)) from None
    return body if raw else json.loads(body)


def data_dir_of(args: argparse.Namespace) -> Path:
    """The state directory holding the artifact store: --data-dir, else the one an embedded
    `--store chdb:///DIR/data` lives in (as `serve` lays it out), else the default."""
    from tracehouse_collector.config import default_data_dir

    if args.data_dir:
        return Path(args.data_dir).expanduser()
    store = args.store or os.environ.get("TRACEHOUSE_STORE") or ""
    if store.startswith("chdb://"):
        path = Path(urllib.parse.unquote(store[len("chdb://") :]))
        if path.name == "data":
            return path.parent
    return Path(default_data_dir()).expanduser()


class _Source:
    """Runs read from a server (REST) or a store opened here."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server = getattr(args, "server", None)
        self.store = None
        if not self.server:
            from tracehouse_collector.config import default_store
            from tracehouse_collector.store.client import Store

            self.data_dir = data_dir_of(args)
            self.store = Store(args.store or default_store(self.data_dir))
            self.store.migrate()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def call(self, name: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if self.server:
            return _get(self.server, path, self.args.api_key)
        from tracehouse_collector.query import runs as q

        return getattr(q, name)(self.store, *args, **kwargs)

    def artifact(self, digest: str) -> bytes:
        if self.server:
            return _get(self.server, f"/api/v1/artifacts/{digest}", self.args.api_key, raw=True)
        from tracehouse_collector.api.rest_runs import artifact_root

        path = artifact_root(self.data_dir) / digest[:2] / digest
        if not path.is_file():
            raise CliError(f"artifact {digest} is not in {path.parent.parent}")
        return path.read_bytes()


def _run_command(fn: Callable[[_Source, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        from tracehouse_collector.query.filters import FilterError
        from tracehouse_collector.query.runs import RunNotFound
        from tracehouse_collector.store.client import StoreError

        try:
            source = _Source(args)
        except StoreError as exc:
            return _fail(str(exc))
        try:
            return fn(source, args)
        except (CliError, RunNotFound, FilterError, StoreError, ValueError, OSError) as exc:
            return _fail(str(exc).strip('"'))
        finally:
            source.close()

    return wrapped


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# -- runs list / show / metrics / compare ---------------------------------------------------------

LIST_COLUMNS = ["id", "experiment", "name", "status", "start", "duration_s", "params", "metrics", "parent_id"]


def _list(source: _Source, args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("experiment", args.experiment), ("where", args.where)) if v}
    query["limit"] = str(args.limit)
    runs = source.call(
        "list_runs",
        "/api/v1/runs?" + urllib.parse.urlencode(query),
        experiment=args.experiment,
        where=args.where,
        limit=args.limit,
    )
    sys.stdout.write(render(LIST_COLUMNS, [[r[c] for c in LIST_COLUMNS] for r in runs], args.format))
    return 0


def _show(source: _Source, args: argparse.Namespace) -> int:
    run = source.call("show_run", f"/api/v1/runs/{_q(args.run)}", args.run)
    if args.format == "json":
        sys.stdout.write(json.dumps([run], indent=2) + "\n")
        return 0
    rows: list[list[Any]] = []
    for field in ("id", "experiment", "name", "status", "parent_id", "start", "end", "duration_s", "service"):
        rows.append([field, run.get(field)])
    rows += [[f"tags.{k}", v] for k, v in sorted(run["tags"].items())]
    rows += [[f"metadata.{k}", v] for k, v in sorted(run["metadata"].items())]
    rows.append(["packages", f"{len(run['packages'])} installed (--format json lists them)"])
    rows += [[f"params.{k}", v] for k, v in run["params"].items()]
    for key, s in run["metrics"].items():
        rows.append(
            [
                f"metrics.{key}",
                f"last {s['last']} (step {s['last_step']})  min {s['min']}  max {s['max']}  n {s['count']}",
            ]
        )
    for key, value in (run.get("llm") or {}).items():  # the LLM calls made inside the run
        if key == "scores":
            rows += [[f"llm.score.{name}", mean] for name, mean in value.items()]
        else:
            rows.append([f"llm.{key}", value])
    for a in run["artifacts"]:
        rows.append([f"artifacts.{a['name']}", f"{a['kind']} {a['size']} bytes sha256:{a['digest']}"])
    for child in run["children"]:
        rows.append(["child", child])
    sys.stdout.write(render(["field", "value"], rows, args.format))
    return 0


def _metrics(source: _Source, args: argparse.Namespace) -> int:
    query = {"key": args.key} if args.key else {}
    if args.all:
        query["all"] = "1"
    points = source.call(
        "metric_history",
        f"/api/v1/runs/{_q(args.run)}/metrics?" + urllib.parse.urlencode(query),
        args.run,
        key=args.key,
        all_points=args.all,
    )
    columns = ["key", "step", "value", "timestamp"]
    sys.stdout.write(render(columns, [[p[c] for c in columns] for p in points], args.format))
    return 0


def _compare(source: _Source, args: argparse.Namespace) -> int:
    query = {"ids": ",".join(args.runs)}
    if args.diff_only:
        query["diff_only"] = "1"
    result = source.call(
        "compare",
        "/api/v1/runs/compare?" + urllib.parse.urlencode(query),
        args.runs,
        diff_only=args.diff_only,
    )
    sys.stdout.write(render(result["columns"], result["rows"], args.format))
    return 0


# -- export ----------------------------------------------------------------------------------------


def _export(source: _Source, args: argparse.Namespace) -> int:
    run = source.call("show_run", f"/api/v1/runs/{_q(args.run)}", args.run)
    points = source.call(
        "metric_history", f"/api/v1/runs/{run['id']}/metrics?all=1", run["id"], all_points=True
    )
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "version": 1,
        "run": {
            k: run.get(k)
            for k in (
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
        },
        "params": run["params"],
        "param_types": run.get("param_types", {}),
        "metrics": [
            {"key": p["key"], "step": p["step"], "value": p["value"], "time_unix_nano": p["time_unix_nano"]}
            for p in points
        ],
        "artifacts": [],
    }
    out = Path(args.output)
    tmp = out.with_name(out.name + ".part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for a in run["artifacts"]:
                data = source.artifact(a["digest"])
                if hashlib.sha256(data).hexdigest() != a["digest"]:
                    raise CliError(f"artifact {a['name']}: stored bytes do not match sha256 {a['digest']}")
                member = f"artifacts/{a['digest']}"
                if member not in zf.namelist():
                    zf.writestr(member, data)
                snapshot["artifacts"].append({**a, "member": member})
            zf.writestr(SNAPSHOT_MEMBER, json.dumps(snapshot, indent=1))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # only left when writing failed
    print(
        f"exported run {run['id']} ({len(points)} metric points, {len(run['artifacts'])} artifacts) to {out}",
        file=sys.stderr,
    )
    return 0


# -- import ----------------------------------------------------------------------------------------

Importer = tuple[str, Callable[[Path], bool], Callable[[Path], Iterable[dict]]]


def is_tracehouse_snapshot(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return SNAPSHOT_MEMBER in zf.namelist()


def read_tracehouse_snapshot(path: Path) -> Iterable[dict]:
    with zipfile.ZipFile(path) as zf:
        try:
            snapshot = json.loads(zf.read(SNAPSHOT_MEMBER))
        except ValueError as exc:
            raise CliError(f"{path}: {SNAPSHOT_MEMBER} is not valid JSON: {exc}") from None
        if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
            raise CliError(f"{path}: not a Tracehouse run snapshot (format {snapshot.get('format')!r})")
        for a in snapshot.get("artifacts", []):
            member = a.get("member")
            if member:
                try:
                    a["data"] = zf.read(member)
                except KeyError:
                    raise CliError(f"{path}: artifact {a.get('name')!r} is missing ({member})") from None
        yield snapshot


def importers() -> list[Importer]:
    found: list[Importer] = [("Tracehouse run snapshot", is_tracehouse_snapshot, read_tracehouse_snapshot)]
    try:
        from tracehouse_collector import cli_models

        found += list(getattr(cli_models, "IMPORTERS", []))
    except ImportError:
        pass
    return found


def _float(v: Any) -> float:
    if isinstance(v, str):
        return float(v)  # "nan", "inf" from JSON
    return float(v)


def snapshot_records(snapshot: dict) -> tuple[list[tuple], list[tuple], list[dict]]:
    """(records, metric points, artifacts with bytes) of a snapshot, as the SDK's transport sends them."""
    run = snapshot.get("run") or {}
    run_id = run.get("id")
    if not isinstance(run_id, str) or len(run_id) != 32:
        raise CliError("snapshot run id must be 32 hex digits")
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
            raise CliError(f"artifact {a.get('name')!r}: bytes do not match sha256 {digest}")
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


def _load_via_server(server: str, api_key: str | None, payloads: list[bytes], artifacts: list[dict]) -> None:
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
            raise CliError(str(exc)) from None
        left = (
            spool.files()
            + spool.blob_files()
            + (list(spool.rejected.iterdir()) if spool.rejected.exists() else [])
        )
        if left or rejected:
            raise CliError(f"the server refused part of the snapshot ({rejected} records rejected)")


def _load_into_store(args: argparse.Namespace, payloads: list[bytes], artifacts: list[dict]) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tracehouse_collector.api.rest_runs import artifact_root
    from tracehouse_collector.config import default_store
    from tracehouse_collector.processors import runs as run_records
    from tracehouse_collector.processors.pipeline import INSERT_FORMAT, encode_rows, request_key
    from tracehouse_collector.store.client import Store

    data_dir = data_dir_of(args)
    root = artifact_root(data_dir)
    for a in artifacts:
        target = root / a["digest"][:2] / a["digest"]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(a["data"])
            os.replace(tmp, target)
    store = Store(args.store or default_store(data_dir))
    try:
        store.migrate()
        with tempfile.TemporaryDirectory(prefix="tracehouse-import-") as tmp:
            for payload in payloads:
                rows = run_records.take_run_records(ExportLogsServiceRequest.FromString(payload))
                if rows.rejected:
                    raise CliError("snapshot has invalid records: " + "; ".join(rows.errors))
                key = request_key("logs", payload)
                for table, table_rows in rows.tables.items():
                    path = Path(tmp) / f"{table}.jsonl"
                    path.write_bytes(encode_rows(table_rows))
                    store.insert_files(table, str(path), INSERT_FORMAT, f"import-{key}-{table}")
    finally:
        store.close()


def _pick_importer(path: Path) -> Importer | None:
    for importer in importers():
        try:
            if importer[1](path):
                return importer
        except Exception:  # a detector that cannot read this kind of file just says no
            continue
    return None


def cmd_import(args: argparse.Namespace) -> int:
    from tracehouse._run_transport import MAX_POINTS_PER_FILE, encode_request

    from tracehouse_collector.store.client import StoreError

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    found = _pick_importer(path)
    if found is None:
        return _fail(
            f"{path}: not a file tracehouse can import (known: {', '.join(i[0] for i in importers())})"
        )
    label, _, read = found
    loaded = []
    try:
        for snapshot in read(path):
            resource = {"service.name": (snapshot.get("run") or {}).get("service") or "tracehouse-import"}
            records, points, artifacts = snapshot_records(snapshot)
            payloads = [encode_request(records, points[:MAX_POINTS_PER_FILE], resource)]
            for i in range(MAX_POINTS_PER_FILE, len(points), MAX_POINTS_PER_FILE):
                payloads.append(encode_request([], points[i : i + MAX_POINTS_PER_FILE], resource))
            if args.server:
                _load_via_server(args.server, args.api_key, payloads, artifacts)
            else:
                _load_into_store(args, payloads, artifacts)
            loaded.append((records[0][1], len(points), len(artifacts)))
    except (CliError, StoreError, OSError, ValueError, KeyError, TypeError) as exc:
        return _fail(f"{path}: {exc}")
    except Exception as exc:  # an importer's own error type: still a message, not a traceback
        return _fail(f"{path}: {type(exc).__name__}: {exc}")
    rows = [[run_id, label, n, a] for run_id, n, a in loaded]
    sys.stdout.write(render(["run", "source", "metric_points", "artifacts"], rows, args.format))
    return 0


# -- sync ------------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from tracehouse._run_transport import SendError, default_spool_dir, sync

    spool = Path(args.spool).expanduser() if args.spool else default_spool_dir()
    if not spool.is_dir():
        return _fail(f"no spool directory at {spool}")
    try:
        files, blobs = sync(spool, args.endpoint)
    except SendError as exc:
        return _fail(f"{exc}; the spool at {spool} is kept")
    print(f"sent {files} batch(es) and {blobs} artifact(s) from {spool}")
    rejected = spool / "rejected"
    if rejected.is_dir() and any(rejected.iterdir()):
        return _fail(f"some batches were refused by the collector; they are in {rejected}")
    return 0


# -- parsers ---------------------------------------------------------------------------------------


def add_parsers(sub: Any, add_read_args: Callable, add_store_args: Callable) -> None:
    runs = sub.add_parser("runs", help="experiment runs: list, show, metrics, compare, export")
    rsub = runs.add_subparsers(dest="runs_command", required=True)

    p = rsub.add_parser(
        "list", help="one row per run: id, experiment, name, status, start, duration, params, metrics"
    )
    p.add_argument("--experiment", help="only runs of this experiment")
    p.add_argument(
        "--where",
        help="filter, e.g. \"status = 'finished' AND params.lr < 0.1 AND metrics.loss < 0.3\" "
        "(fields: id, experiment, name, status, parent, start, duration_s, service, params.K, metrics.K, tags.K, "
        "metadata.K)",
    )
    p.add_argument("--limit", type=int, default=1000)
    add_read_args(p)
    p.set_defaults(func=_run_command(_list))

    p = rsub.add_parser("show", help="one run: metadata, params, metric summaries, artifacts")
    p.add_argument("run", help="run id or a unique prefix")
    add_read_args(p)
    p.set_defaults(func=_run_command(_show))

    p = rsub.add_parser(
        "metrics", help="full metric history of a run (a repeated step shows its latest value)"
    )
    p.add_argument("run", help="run id or a unique prefix")
    p.add_argument("--key", help="only this metric")
    p.add_argument("--all", action="store_true", help="every point, repeated steps included")
    add_read_args(p)
    p.set_defaults(func=_run_command(_metrics))

    p = rsub.add_parser(
        "compare", help="runs side by side: params, metric summaries, deltas against the first"
    )
    p.add_argument("runs", nargs="+", help="two or more run ids (or unique prefixes)")
    p.add_argument("--diff-only", action="store_true", help="only rows where the runs differ")
    add_read_args(p)
    p.set_defaults(func=_run_command(_compare))

    p = rsub.add_parser("export", help="write a self-contained snapshot (zip: JSON + artifacts) of a run")
    p.add_argument("run", help="run id or a unique prefix")
    p.add_argument("-o", "--output", required=True, help="the snapshot file to write")
    add_read_args(p)
    p.set_defaults(func=_run_command(_export))

    p = sub.add_parser(
        "import", help="load a run snapshot (Tracehouse export, .luml, LUML experiment snapshot)"
    )
    p.add_argument("file")
    add_read_args(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sync", help="send the SDK's spooled run data to a collector")
    p.add_argument("--spool", help="spool directory (TRACEHOUSE_SPOOL_DIR, default ~/.tracehouse/spool)")
    p.add_argument(
        "--endpoint", help="collector OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT, default local)"
    )
    p.set_defaults(func=cmd_sync)
