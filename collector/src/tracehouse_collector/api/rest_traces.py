"""REST endpoints for traces and sessions under /api/v1.

GET /api/v1/traces?since=&until=&service=&where=&search=&sort=&limit=&cursor=&count=
                                                    -> {"columns", "rows", "next_cursor"[, "total"]}
GET /api/v1/traces/facets?since=&until=&service=&where=&search=&size=
                                                    -> {field: [{"value", "traces"}, ...]}
GET /api/v1/traces/{trace_id}                                      -> the span tree
GET /api/v1/sessions?since=&until=&user=&sort=&limit=&cursor=      -> {"columns", "rows", "next_cursor"}
GET /api/v1/sessions/{session_id}                                  -> the session and its turns
POST with the same parameters as a JSON object is accepted too (what the CLI sends).
`sort` is a column and an optional direction (`latency_ms:asc`; descending by default), `search`
full-text words, `count=true` adds the number of traces of the whole listing as "total".
Errors: 400 (bad parameter, filter, id, cursor), 404 (unknown id), 503 (store unavailable),
each as {"error": message}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tracehouse_collector.api.http import json_response, request_params
from tracehouse_collector.api.readers import Readers
from tracehouse_collector.query import sessions, trace_list, traces
from tracehouse_collector.query.paging import Page
from tracehouse_collector.query.values import json_ready, jsonable
from tracehouse_collector.server.auth import KEY_INDEX
from tracehouse_collector.store.client import Store, StoreError, StoreUnavailableError


def _json(data: object, status: int = 200) -> web.Response:
    return json_response(jsonable(json_ready(data)), status)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _page(page: Page) -> dict[str, Any]:
    return {"columns": page.columns, "rows": page.rows, "next_cursor": page.next_cursor}


async def _params(request: web.Request) -> dict[str, Any]:
    """Query-string parameters, overlaid by a JSON object body on POST."""
    params = await request_params(request)
    raw = params.get("limit")
    if raw is None or raw == "":
        params["limit"] = None
    else:
        try:
            params["limit"] = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"limit must be a whole number, got {raw!r}") from None
    for key in ("since", "until", "service", "where", "search", "sort", "user", "cursor"):
        value = params.get(key)
        if value is not None and not isinstance(value, str):
            params[key] = str(value)
    return params


async def _answer(readers: Readers, request: web.Request, fn: Callable[[], Any]) -> web.Response:
    try:
        return _json(await readers.run(fn, key=request.get(KEY_INDEX)))
    except traces.NotFound as exc:
        return _json({"error": str(exc)}, 404)
    except StoreUnavailableError as exc:
        return _json({"error": str(exc)}, 503)
    except StoreError as exc:
        # ClickHouse's refusals carry "Code: N"; without one, the store could not be reached.
        return _json({"error": str(exc)}, 400 if "Code:" in str(exc) else 503)
    except ValueError as exc:  # ValueError includes the filter language's FilterError
        return _json({"error": str(exc)}, 400)


def add_routes(app: web.Application, store: Store, readers: Readers) -> None:
    def listing(list_fn: Callable[..., Page], filters: tuple[str, ...]) -> Handler:
        """A listing route: the time window, `filters`, limit and cursor from the request."""

        async def handler(request: web.Request) -> web.Response:
            try:
                q = await _params(request)
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            given = {key: q.get(key) or None for key in ("since", "until", *filters, "cursor")}
            return await _answer(readers, request, lambda: _page(list_fn(store, limit=q["limit"], **given)))

        return handler

    trace_filters = ("service", "where", "search")
    page_of_traces = listing(trace_list.list_traces, (*trace_filters, "sort"))
    list_sessions = listing(sessions.list_sessions, ("user", "sort"))

    async def list_traces(request: web.Request) -> web.Response:
        """The page, and with count=true the total of the listing beside it."""
        try:
            q = await _params(request)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if str(q.get("count") or "").lower() not in ("1", "true", "yes"):
            return await page_of_traces(request)
        given = {key: q.get(key) or None for key in ("since", "until", *trace_filters)}

        def both() -> dict[str, Any]:
            page = trace_list.list_traces(store, limit=q["limit"], cursor=q.get("cursor") or None, sort=q.get("sort") or None, **given)
            return {**_page(page), "total": trace_list.count_traces(store, **given)}

        return await _answer(readers, request, both)

    async def trace_facets(request: web.Request) -> web.Response:
        try:
            q = await _params(request)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            size = int(q.get("size") or trace_list.FACET_VALUES)
        except (TypeError, ValueError):
            return _json({"error": f"size must be a whole number, got {q.get('size')!r}"}, 400)
        given = {key: q.get(key) or None for key in ("since", "until", *trace_filters)}
        return await _answer(readers, request, lambda: trace_list.trace_facets(store, size=size, **given))

    async def get_trace(request: web.Request) -> web.Response:
        return await _answer(readers, request, lambda: traces.get_trace(store, request.match_info["trace_id"]))

    async def get_session(request: web.Request) -> web.Response:
        return await _answer(readers, request, lambda: sessions.get_session(store, request.match_info["session_id"]))

    for method in ("GET", "POST"):
        app.router.add_route(method, "/api/v1/traces", list_traces)
        app.router.add_route(method, "/api/v1/traces/facets", trace_facets)  # before {trace_id}
        app.router.add_route(method, "/api/v1/traces/{trace_id}", get_trace)
        app.router.add_route(method, "/api/v1/sessions", list_sessions)
        app.router.add_route(method, "/api/v1/sessions/{session_id}", get_session)
