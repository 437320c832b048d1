"""REST API under /api/v1 on the HTTP port, plus /healthz."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from tracehouse_collector import __version__
from tracehouse_collector.api.columnar import ARROW_FORMAT, arrow_response, wants_arrow, with_timestamps
from tracehouse_collector.api.http import error_response, json_response, result_body
from tracehouse_collector.api.readers import Readers
from tracehouse_collector.query.sql import result_types, run_readonly, run_readonly_formatted
from tracehouse_collector.server.auth import KEY_INDEX
from tracehouse_collector.store.client import Store, StoreError

if TYPE_CHECKING:
    from tracehouse_collector.server.ingest import Ingest


def _sql_arrow(store: Store, statement: str) -> bytes:
    body = run_readonly_formatted(store, statement, ARROW_FORMAT)
    return with_timestamps(body, lambda _names: result_types(store, statement))


# The port the OTLP/gRPC receiver listens on, set by `serve` (server.py) on the application.
GRPC_PORT = web.AppKey("grpc_port", int)


def add_routes(app: web.Application, store: Store, ingest: Ingest, readers: Readers) -> None:
    async def healthz(request: web.Request) -> web.Response:
        writer = ingest.writer
        body = {
            "status": "ok" if ingest.accepting else "starting",
            "version": __version__,
            "store": store.dsn.display(),
            # where OTLP goes: the web UI's empty states name this port (OTLP/HTTP is this server)
            "grpc_port": request.app.get(GRPC_PORT),
            "queued_rows": writer.queued_rows,
            "store_status": writer.store_status(),
            "store_error": writer.store_error or None,
            "queue": writer.queue_status(),
            "writer": dataclasses.asdict(writer.stats),
            "inflight_bytes": ingest.budget.used,
            "refused_for_inflight_bytes": ingest.budget.refused,
            "queries": readers.admitted,
            "refused_queries": readers.refused,
        }
        return json_response(body, 200 if ingest.accepting else 503)

    async def sql(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await request.read()
            # A JSON object whatever the Content-Type says: `curl -d '{"sql": ...}'` sends it
            # as a form, and no SQL statement starts with "{".
            if request.content_type == "application/json" or body.lstrip().startswith(b"{"):
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    return error_response(f"request body is not JSON: {exc}")
                statement = payload.get("sql") if isinstance(payload, dict) else None
            else:
                statement = body.decode(request.charset or "utf-8", errors="replace")
        else:
            statement = request.query.get("q")
        if not isinstance(statement, str) or not statement.strip():
            return error_response('send {"sql": "SELECT ..."} (or ?q= on GET)')
        try:
            if wants_arrow(request):
                return arrow_response(await readers.run(_sql_arrow, store, statement, key=request.get(KEY_INDEX)))
            result = await readers.run(run_readonly, store, statement, key=request.get(KEY_INDEX))
        except (StoreError, ValueError) as exc:
            return error_response(str(exc))
        return json_response(result_body(result))

    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/api/v1/sql", sql)
