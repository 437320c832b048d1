"""`tracehouse runs ...`, `tracehouse import FILE` and `tracehouse sync`.

Read commands work on `--store` directly or through `--server URL` (the REST API in
api/rest_runs.py). `runs export` writes a self-contained snapshot: Tracehouse's (importers/snapshot.py)
or, with `--format luml`, LUML's experiment export (importers/luml_export.py).

`tracehouse import FILE` asks the importers' registry (importers/__init__.py) which format the
file is: a Tracehouse snapshot, a `.luml` model file or a LUML experiment export. Snapshots are
loaded through the server's OTLP endpoint with `--server`, or straight into the store otherwise,
by the same record processor either way (importers/load.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracehouse_collector.cli import evals
from tracehouse_collector.cli.common import (
    add_read_args,
    add_target_args,
    data_dir,
    fail,
    open_store,
    server_call,
    server_json,
)
from tracehouse_collector.cli.output import render
from tracehouse_collector.cli.server_client import ServerError
from tracehouse_collector.store.errors import StoreError

if TYPE_CHECKING:
    from tracehouse_collector.store.client import Store


# -- reaching the data: a server's REST API, or the store ----------------------------------------


class _Source:
    """Runs read from a server (REST) or a store opened here."""

    def __init__(self, args: argparse.Namespace, store: Store | None) -> None:
        self.args = args
        self.server = args.server
        self.store = store

    def call(self, name: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if self.server:
            return json.loads(server_call(self.args, path))
        from tracehouse_collector.query import runs as q

        return getattr(q, name)(self.store, *args, **kwargs)

    def call_evals(self, name: str, path: str, *args: Any) -> Any:
        """The same, from the evals query module (query/evals.py)."""
        if self.server:
            return json.loads(server_call(self.args, path))
        from tracehouse_collector.query import evals as q

        return getattr(q, name)(self.store, *args)

    def artifact(self, digest: str) -> bytes:
        if self.server:
            return server_call(self.args, f"/api/v1/artifacts/{digest}")
        from tracehouse_collector.store.artifacts import artifact_store

        path = artifact_store(data_dir(self.args)).path(digest)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {digest} is not in {path.parent.parent}")
        return path.read_bytes()


def _run_command(fn: Callable[[_Source, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        # ServerError, FilterError (a ValueError) and OSError on either path; the store's own
        # errors only where it is opened (query/runs.py loads the store: not for --server).
        errors: tuple[type[Exception], ...] = (ServerError, StoreError, ValueError, OSError)
        with contextlib.ExitStack() as opened:
            try:
                store = None if args.server else opened.enter_context(open_store(args))
            except StoreError as exc:
                return fail(str(exc))
            if store is not None:
                from tracehouse_collector.query.runs import RunNotFound

                errors += (RunNotFound,)
            try:
                return fn(_Source(args, store), args)
            except errors as exc:
                return fail(str(exc).strip('"'))

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
    if args.evals:
        evals.compare(args, source.store)
        return 0
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
    from tracehouse_collector.importers import luml_export
    from tracehouse_collector.importers.snapshot import build_snapshot, write_snapshot

    run = source.call("show_run", f"/api/v1/runs/{_q(args.run)}", args.run)
    points = source.call(
        "metric_history", f"/api/v1/runs/{run['id']}/metrics?all=1", run["id"], all_points=True
    )
    out = Path(args.output)
    spans = 0
    evals = source.call_evals("export_evals", f"/api/v1/runs/{run['id']}/evals/export", run["id"])
    if args.format == "luml":
        rows = luml_export.luml_spans(*_sql(source, luml_export.spans_sql(run["id"])))
        spans = len(rows)
        luml_export.write(out, run, points, rows, source.artifact, evals)
    else:
        write_snapshot(out, build_snapshot(run, points, evals), run["artifacts"], source.artifact)
    print(
        f"exported run {run['id']} ({len(points)} metric points, {len(run['artifacts'])} artifacts, "
        f"{len(evals['evals'])} eval examples, {len(evals['annotations'])} annotations"
        + (f", {spans} spans" if args.format == "luml" else "")
        + f") to {out} ({args.format})",
        file=sys.stderr,
    )
    return 0


def _sql(source: _Source, statement: str) -> tuple[list[str], list[list[Any]]]:
    if source.server:
        result = server_json(source.args, "/api/v1/sql", {"sql": statement})
        return result["columns"], result["rows"]
    from tracehouse_collector.query.sql import run_readonly

    res = run_readonly(source.store, statement)  # type: ignore[arg-type]
    return res.columns, [list(r) for r in res.rows]


# -- import ----------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from tracehouse_collector import importers
    from tracehouse_collector.importers import load
    from tracehouse_collector.store.artifacts import artifact_store

    path = Path(args.file)
    if not path.is_file():
        return fail(f"{path}: no such file")
    found = importers.detect(path)
    if found is None:
        known = ", ".join(f.label for f in importers.FORMATS.values())
        return fail(f"{path}: not a file tracehouse can import (known: {known})")
    loaded = []
    try:
        for snapshot in found.read(path):
            service = (snapshot.get("run") or {}).get("service") or "tracehouse-import"
            records, points, artifacts = load.snapshot_records(snapshot)
            payloads = load.encode_payloads(records, points, service)
            span_payloads = load.spans_payloads(snapshot, service)
            if args.server:
                load.load_via_server(args.server, args.api_key, payloads, artifacts)
                for spans in span_payloads:
                    load.send_spans(args.server, args.api_key, spans)
            else:
                with open_store(args) as store:
                    load.load_into_store(store, artifact_store(data_dir(args)), payloads, artifacts)
                    for spans in span_payloads:
                        load.load_spans_into_store(store, spans)
            loaded.append((records[0][1], len(points), len(artifacts), len(snapshot.get("spans") or [])))
    except (StoreError, OSError, ValueError, KeyError, TypeError) as exc:
        return fail(f"{path}: {exc}")
    except Exception as exc:  # an importer's own error type: still a message, not a traceback
        return fail(f"{path}: {type(exc).__name__}: {exc}")
    rows = [[run_id, found.label, n, a, s] for run_id, n, a, s in loaded]
    sys.stdout.write(render(["run", "source", "metric_points", "artifacts", "spans"], rows, args.format))
    return 0


# -- sync ------------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from tracehouse._run_transport import SendError, default_spool_dir, sync

    spool = Path(args.spool).expanduser() if args.spool else default_spool_dir()
    if not spool.is_dir():
        return fail(f"no spool directory at {spool}")
    try:
        files, blobs = sync(spool, args.endpoint)
    except SendError as exc:
        return fail(f"{exc}; the spool at {spool} is kept")
    print(f"sent {files} batch(es) and {blobs} artifact(s) from {spool}")
    rejected = spool / "rejected"
    if rejected.is_dir() and any(rejected.iterdir()):
        return fail(f"some batches were refused by the collector; they are in {rejected}")
    return 0


# -- parsers ---------------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    runs = sub.add_parser("runs", help="experiment runs: list, show, metrics, compare, export")
    rsub = runs.add_subparsers(dest="runs_command", required=True)

    p = rsub.add_parser(
        "list", help="one row per run: id, experiment, name, status, start, duration, params, metrics"
    )
    p.add_argument("--experiment", help="only runs of this experiment")
    p.add_argument(
        "--where",
        help="filter, e.g. \"status = 'finished' AND params.learning_rate < 0.05 AND metrics['val/loss'] < 0.2\" "
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
    evals.add_compare_args(p)
    add_read_args(p)
    p.set_defaults(func=_run_command(_compare))

    evals.add_run_parsers(rsub)

    p = rsub.add_parser(
        "export",
        help="write a self-contained snapshot of a run: Tracehouse's (zip: JSON + artifacts) or "
        "LUML's experiment export (--format luml)",
    )
    p.add_argument("run", help="run id or a unique prefix")
    p.add_argument("-o", "--output", required=True, help="the snapshot file to write")
    add_target_args(p)
    p.add_argument(
        "--format",
        choices=["tracehouse", "luml"],
        default="tracehouse",
        help="tracehouse: a zip `tracehouse import` reads; luml: LUML's standalone experiment export "
        "(a tar LUML and `tracehouse import` read)",
    )
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
