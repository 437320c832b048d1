"""REST for experiment runs and the content-addressed artifact store.

    GET  /api/v1/runs?experiment=E&where=F&limit=N      runs, newest first
    GET  /api/v1/runs/compare?ids=A,B[&diff_only=1]      side by side
    GET  /api/v1/runs/{id}                               one run (id or unique prefix)
    GET  /api/v1/runs/{id}/metrics?key=K[&all=1]         metric history (format=arrow: an Arrow
                                                         stream of key, step, value, timestamp)
    GET  /api/v1/runs/{id}/series?key=K[&max_points=N&min_step=A&max_step=B]
                                                         one metric for a chart: every point,
                                                         or a peak-keeping reduction to ~N
    PUT  /api/v1/artifacts/{sha256}                      upload bytes; the digest is verified
    HEAD /api/v1/artifacts/{sha256}                      200 if stored, 404 if not
    GET  /api/v1/artifacts/{sha256}                      download

Artifacts live in the content-addressed store of store/artifacts.py: the path comes only from
a digest the server checked against the bytes, never from the client. An upload streams
to a temporary file while hashing, is refused past TRACEHOUSE_MAX_ARTIFACT_BYTES (default
4 GiB), and is renamed into place only when its sha256 matches the URL, so a repeated or
concurrent upload of the same content is harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import re
import uuid
from functools import partial
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from tracehouse_collector.api.columnar import ARROW_FORMAT, arrow_response, wants_arrow
from tracehouse_collector.api.http import error_response, json_response
from tracehouse_collector.api.readers import Readers
from tracehouse_collector.query import runs as run_queries
from tracehouse_collector.query.filters import FilterError
from tracehouse_collector.store.artifacts import artifact_store
from tracehouse_collector.store.client import Store, StoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")


def add_routes(app: web.Application, store: Store, data_dir: Path, readers: Readers) -> None:
    artifacts = artifact_store(data_dir)

    async def query(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await readers.run(partial(fn, store, *args, **kwargs)), None
        except run_queries.RunNotFound as exc:
            return None, error_response(str(exc), 404)
        except (FilterError, ValueError) as exc:
            return None, error_response(str(exc), 400)
        except StoreError as exc:
            return None, error_response(str(exc), 503)

    async def list_runs(request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "1000"))
        except ValueError:
            return error_response("limit must be an integer", 400)
        result, err = await query(
            run_queries.list_runs,
            experiment=q.get("experiment") or None,
            where=q.get("where") or None,
            limit=limit,
        )
        return err or json_response(result)

    async def show_run(request: web.Request) -> web.Response:
        result, err = await query(run_queries.show_run, request.match_info["run_id"])
        return err or json_response(result)

    async def metrics(request: web.Request) -> web.Response:
        q = request.query
        options = {"key": q.get("key") or None, "all_points": q.get("all", "") in ("1", "true")}
        if wants_arrow(request):
            body, err = await query(
                run_queries.metric_history_formatted, request.match_info["run_id"], ARROW_FORMAT, **options
            )
            return err or arrow_response(body)
        result, err = await query(run_queries.metric_history, request.match_info["run_id"], **options)
        return err or json_response(result)

    async def series(request: web.Request) -> web.Response:
        q = request.query
        try:
            bounds = {k: int(q[k]) if q.get(k) else None for k in ("min_step", "max_step")}
            max_points = int(q.get("max_points") or 2000)
        except ValueError:
            return error_response("max_points, min_step and max_step must be integers", 400)
        result, err = await query(
            run_queries.metric_series, request.match_info["run_id"], q.get("key", ""), max_points, **bounds
        )
        return err or json_response(result)

    async def compare(request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i.strip()]
        diff_only = request.query.get("diff_only", "") in ("1", "true")
        result, err = await query(run_queries.compare, ids, diff_only=diff_only)
        return err or json_response(result)

    def _digest(request: web.Request) -> str | None:
        digest = request.match_info["digest"].lower()
        return digest if _SHA256.fullmatch(digest) else None

    async def head_artifact(request: web.Request) -> web.Response:
        digest = _digest(request)
        if digest is None:
            return web.Response(status=400)
        return web.Response(status=200 if artifacts.has(digest) else 404)

    async def get_artifact(request: web.Request) -> web.StreamResponse:
        digest = _digest(request)
        if digest is None:
            return error_response("artifact address must be a sha256 digest (64 hex digits)", 400)
        if not artifacts.has(digest):
            return error_response(f"no artifact {digest}", 404)
        # The type comes from the name the caller gives (the run's artifact name), for previews;
        # nosniff and an attachment disposition keep the browser from running what it fetched.
        name = request.query.get("name", "")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type in (
            "text/html",
            "application/xhtml+xml",
            "text/javascript",
            "application/javascript",
        ):
            content_type = "text/plain"  # never a page or script of this origin
        headers = {
            "Content-Type": content_type,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            "Content-Disposition": "attachment" + (f"; filename*=UTF-8''{quote(name)}" if name else ""),
        }
        return web.FileResponse(artifacts.path(digest), headers=headers)

    async def put_artifact(request: web.Request) -> web.Response:
        digest = _digest(request)
        if digest is None:
            return error_response("artifact address must be a sha256 digest (64 hex digits)", 400)
        if request.content_length is not None and request.content_length > artifacts.max_bytes:
            return error_response(f"artifact larger than the limit of {artifacts.max_bytes} bytes", 413)
        if artifacts.has(digest):  # content-addressed: the same bytes are already there
            return json_response({"digest": digest, "stored": False})
        target = artifacts.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{digest}.{uuid.uuid4().hex}.part"
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as fh:
                async for chunk in request.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > artifacts.max_bytes:
                        return error_response(f"artifact larger than the limit of {artifacts.max_bytes} bytes", 413)
                    h.update(chunk)
                    await asyncio.to_thread(fh.write, chunk)
                fh.flush()
                os.fsync(fh.fileno())
            actual = h.hexdigest()
            if actual != digest:
                return error_response(f"content digest is sha256 {actual}, not the {digest} in the URL", 400)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return json_response({"digest": digest, "size": size, "stored": True}, 201)

    app.router.add_get("/api/v1/runs", list_runs)
    app.router.add_get("/api/v1/runs/compare", compare)
    app.router.add_get("/api/v1/runs/{run_id}", show_run)
    app.router.add_get("/api/v1/runs/{run_id}/metrics", metrics)
    app.router.add_get("/api/v1/runs/{run_id}/series", series)
    app.router.add_route("HEAD", "/api/v1/artifacts/{digest}", head_artifact)
    app.router.add_get("/api/v1/artifacts/{digest}", get_artifact, allow_head=False)
    app.router.add_put("/api/v1/artifacts/{digest}", put_artifact)
