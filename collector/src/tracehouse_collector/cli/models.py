"""`tracehouse models` and `tracehouse reproduce MODEL`: the `.luml` files runs logged.

`models` lists them (newest first): name, digest, size, run, experiment, time, and the metric
recorded on the evaluation data. `reproduce` checks a model file against its run snapshot and
re-runs it; MODEL is a `.luml` path, or a model name (its newest version) or digest prefix,
fetched from the collector (`--server`) or the local store's artifact directory.

Exit status of `reproduce`: 0 the recorded metric was reproduced (or, with no evaluation data
recorded, the checksum matched); 1 the metric differs beyond the tolerance; 2 the model cannot
be used (not found, not a `.luml` file, no Tracehouse snapshot, cannot be loaded); 3 the package
was modified after it was logged. `--format json` prints the whole report as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from tracehouse_collector.cli.common import add_read_args, data_dir, fail, open_store, server_json
from tracehouse_collector.cli.output import render

EXIT_PASS, EXIT_MISMATCH, EXIT_UNUSABLE, EXIT_TAMPERED = 0, 1, 2, 3
_COLUMNS = ["name", "digest", "size", "run", "experiment", "time", "metric", "value"]


class ModelNotFound(Exception):
    pass


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _models_sql(name: str | None = None, ref: str | None = None, limit: int = 1000) -> str:
    where = []
    if name:
        where.append(f"Name = {_literal(name)}")
    if ref:
        digest = ref.lower() if re.fullmatch(r"[0-9a-fA-F]{6,64}", ref) else None
        match = f"Name = {_literal(ref)}"
        if digest:
            match += f" OR startsWith(Digest, {_literal(digest)})"
        where.append(f"({match})")
    return (
        "SELECT Name, Digest, Size, RunId, Experiment, Timestamp, Metadata FROM models FINAL"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY Timestamp DESC LIMIT {int(limit)}"
    )


def _query(args: argparse.Namespace, sql: str) -> list[list[Any]]:
    """Rows of a read-only statement, through the server's SQL API or the local store."""
    if args.server:
        return server_json(args, "/api/v1/sql", {"sql": sql})["rows"]
    from tracehouse_collector.query.sql import run_readonly

    with open_store(args) as store:
        return [list(row) for row in run_readonly(store, sql).rows]


def _row(row: list[Any]) -> list[Any]:
    name, digest, size, run, experiment, ts, metadata = row
    try:
        meta = json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {})
    except ValueError:
        meta = {}
    return [name, digest, size, run, experiment, ts, meta.get("metric"), meta.get("value")]


def _fetch(args: argparse.Namespace, digest: str, target: Path) -> None:
    if args.server:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"{args.server.rstrip('/')}/api/v1/artifacts/{digest}")
        if args.api_key:
            req.add_header("Authorization", f"Bearer {args.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=300) as resp, open(target, "wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise ModelNotFound(f"the server has no bytes for model {digest} (HTTP {exc.code})") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"cannot reach the server at {args.server}: {exc.reason}") from None
        return
    from tracehouse_collector.store.artifacts import artifact_store

    store = artifact_store(data_dir(args))
    if not store.has(digest):
        raise ModelNotFound(
            f"model {digest} is listed but its bytes are not in {store.path(digest).parent.parent}"
        )
    target.write_bytes(store.path(digest).read_bytes())


def _resolve(args: argparse.Namespace, tmp: Path) -> Path:
    """The local file for MODEL: the path itself, or the named model fetched into tmp."""
    given = Path(args.model)
    if given.is_file():
        return given
    if "/" in args.model or args.model.endswith((".luml", ".tar")):
        raise ModelNotFound(f"{args.model}: no such file")
    rows = _query(args, _models_sql(ref=args.model, limit=2))
    if not rows:
        raise ModelNotFound(f"{args.model}: no such file, and no logged model with that name or digest")
    digests = {r[1] for r in rows}
    if len(digests) > 1 and args.model not in {r[0] for r in rows}:
        raise ModelNotFound(f"{args.model}: digest prefix matches more than one model; give more digits")
    name, digest = rows[0][0], rows[0][1]
    target = tmp / f"{name}.luml"
    _fetch(args, digest, target)
    print(f"model {name} {digest[:12]} (run {rows[0][3]})", file=sys.stderr)
    return target


def cmd_models(args: argparse.Namespace) -> int:
    try:
        rows = [_row(r) for r in _query(args, _models_sql(name=args.name, limit=args.limit))]
    except Exception as exc:  # StoreError, an unreachable server: the message says which
        return fail(str(exc), 1)
    sys.stdout.write(render(_COLUMNS, rows, args.format))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    try:
        from tracehouse import luml
    except ImportError:
        return fail(
            "reproduce needs the tracehouse SDK with the luml extra: pip install 'tracehouse[luml]'", 2
        )
    if args.tolerance < 0:
        return fail("--tolerance must be 0 or more", EXIT_UNUSABLE)
    with tempfile.TemporaryDirectory(prefix="tracehouse-reproduce-") as tmp:
        try:
            path = _resolve(args, Path(tmp))
        except ModelNotFound as exc:
            return fail(str(exc), EXIT_UNUSABLE)
        except Exception as exc:  # StoreError, an unreachable server
            return fail(f"{args.model}: {exc}", EXIT_UNUSABLE)
        try:
            report = luml.reproduce(path, tolerance=args.tolerance)
        except (luml.LumlError, ImportError) as exc:
            return fail(str(exc), EXIT_UNUSABLE)
        except Exception as exc:  # the model itself failed to load or run
            return fail(
                f"{args.model}: could not re-run the model: {type(exc).__name__}: {exc}", EXIT_UNUSABLE
            )
    _print_report(report, args.format)
    if report.ok:
        return EXIT_PASS
    print(f"tracehouse: {args.model}: {report.verdict}: {report.message}", file=sys.stderr)
    return EXIT_TAMPERED if report.verdict == "tampered" else EXIT_MISMATCH


def _print_report(report: Any, fmt: str) -> None:
    import orjson

    if fmt == "json":
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    run = report.run or {}
    if run:
        print(f"run {run.get('id')}  experiment {run.get('experiment')}  name {run.get('name')}")
    print("checksum: " + ("modified" if report.verdict == "tampered" else "ok"))
    for problem in report.problems:
        print(f"  {problem}")
    if report.checks:
        rows = [
            [c.metric, c.recorded, c.reproduced, c.delta, "pass" if c.ok else "FAIL"] for c in report.checks
        ]
        sys.stdout.write(render(["metric", "recorded", "reproduced", "delta", "result"], rows, fmt))
    print(f"{report.verdict.upper()}: {report.message}")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("models", help="model files (.luml) logged by runs, newest first")
    p.add_argument("--name", help="only versions of this model")
    p.add_argument("--limit", type=int, default=1000)
    add_read_args(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "reproduce",
        help="verify a .luml model file against its run snapshot and re-run its recorded evaluation",
    )
    p.add_argument("model", help="a .luml file, or a logged model's name (newest version) or digest prefix")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-6,
        help="largest accepted difference, absolute or relative (default 1e-6)",
    )
    add_read_args(p)
    p.set_defaults(func=cmd_reproduce)
