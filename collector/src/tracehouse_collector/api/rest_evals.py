"""REST for eval examples and annotations.

    GET  /api/v1/runs/{id}/evals[?dataset=D]                   a run's examples, with trace links
         [&limit=N&cursor=C]                                   a page: {examples, next_cursor}
                                                               and the annotations on each
    GET  /api/v1/runs/{id}/evals/export                        the same with link ids and times in
                                                               ns, and the run's annotations (what
                                                               `runs export` writes)
    GET  /api/v1/evals/compare?ids=A,B[&dataset=D&change=worse&score=S]
                                                               the examples side by side (the
                                                               regression view), deltas against A
    GET  /api/v1/annotations?trace_id=T[&span_id=S]            annotations of a trace / span
    GET  /api/v1/annotations?run_id=R[&dataset=D&example_id=E] of a run's eval examples
    POST /api/v1/annotations                                   add one (JSON: name, value, kind,
                                                               value_type, user, rationale, and
                                                               trace_id [+ span_id], or run_id +
                                                               dataset + example_id); needs a key
                                                               with the `annotate` scope
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from tracehouse_collector.api.http import error_response, json_response, request_params
from tracehouse_collector.api.readers import Readers
from tracehouse_collector.query import evals as eval_queries
from tracehouse_collector.query.runs import RunNotFound
from tracehouse_collector.store.client import Store, StoreError


def add_routes(app: web.Application, store: Store, readers: Readers) -> None:
    async def call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await readers.run(partial(fn, store, *args, **kwargs)), None
        except RunNotFound as exc:
            return None, error_response(str(exc), 404)
        except ValueError as exc:
            return None, error_response(str(exc), 400)
        except StoreError as exc:
            return None, error_response(str(exc), 503)

    async def run_evals(request: web.Request) -> web.Response:
        q, run = request.query, request.match_info["run_id"]
        if "limit" not in q and "cursor" not in q:  # the whole run, as a list (the SDK's frames)
            result, err = await call(eval_queries.list_evals, run, q.get("dataset") or None)
            return err or json_response(result)
        try:
            limit = int(q.get("limit") or 100)
        except ValueError:
            return error_response(f"limit must be an integer, got {q['limit']!r}", 400)
        result, err = await call(
            eval_queries.evals_page, run, q.get("dataset") or None, limit=limit, cursor=q.get("cursor") or None
        )
        return err or json_response(result)

    async def export(request: web.Request) -> web.Response:
        result, err = await call(eval_queries.export_evals, request.match_info["run_id"])
        return err or json_response(result)

    async def compare(request: web.Request) -> web.Response:
        q = request.query
        ids = [i for i in q.get("ids", "").split(",") if i.strip()]
        result, err = await call(
            eval_queries.compare_evals,
            ids,
            dataset=q.get("dataset") or None,
            change=q.get("change") or None,
            score=q.get("score") or None,
        )
        return err or json_response(result)

    async def annotations(request: web.Request) -> web.Response:
        q = request.query
        result, err = await call(
            eval_queries.list_annotations,
            trace_id=q.get("trace_id") or None,
            span_id=q.get("span_id") or None,
            run=q.get("run_id") or None,
            dataset=q.get("dataset") or None,
            example_id=q.get("example_id") or None,
        )
        return err or json_response(result)

    async def add_annotation(request: web.Request) -> web.Response:
        try:
            fields = await request_params(request)
        except ValueError as exc:
            return error_response(str(exc), 400)
        fields.setdefault("source", "api")
        result, err = await call(eval_queries.add_annotation, fields)
        return err or json_response(result, 201)

    app.router.add_get("/api/v1/runs/{run_id}/evals", run_evals)
    app.router.add_get("/api/v1/runs/{run_id}/evals/export", export)
    app.router.add_get("/api/v1/evals/compare", compare)
    app.router.add_get("/api/v1/annotations", annotations)
    app.router.add_post("/api/v1/annotations", add_annotation)
