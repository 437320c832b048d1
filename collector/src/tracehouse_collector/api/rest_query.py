"""REST endpoints for the aggregates: GET or POST /api/v1/query/{latency|cost|accuracy|errors}.

Parameters (query string on GET, a JSON object on POST; the same names as the CLI):
by (comma-separated or a JSON list), since, until, service, where, all_spans, plan
(auto|raw|rollup), format (json, the default: {"columns", "rows"}; parquet: the file; arrow: an
Arrow IPC stream, also chosen by `Accept: application/vnd.apache.arrow.stream`).
Errors: 400 {"error": message} for a bad parameter or filter, 503 when the store is away.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from tracehouse_collector.api.columnar import ARROW_FORMAT, ARROW_STREAM, wants_arrow, with_timestamps
from tracehouse_collector.api.http import error_response, json_response, request_params, result_body
from tracehouse_collector.api.readers import Readers
from tracehouse_collector.query import aggregates
from tracehouse_collector.server.auth import KEY_INDEX
from tracehouse_collector.store.client import Store, StoreError, StoreUnavailableError

PARQUET_TYPE = "application/vnd.apache.parquet"
_TRUE = ("1", "true", "yes", "on")


async def _params(request: web.Request) -> dict[str, Any]:
    params = await request_params(request, aggregates.QueryError)
    known = {"by", "since", "until", "service", "where", "all_spans", "plan", "format", "unpriced"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise aggregates.QueryError(
            f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
        )
    by = params.get("by") or []
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or not all(isinstance(b, str) for b in by):
        raise aggregates.QueryError("by: expected dimension names, comma-separated or as a list")
    all_spans, unpriced = params.get("all_spans", False), params.get("unpriced", False)
    if isinstance(all_spans, str):
        all_spans = all_spans.strip().lower() in _TRUE
    if isinstance(unpriced, str):
        unpriced = unpriced.strip().lower() in _TRUE
    for key in ("since", "until", "service", "where", "plan", "format"):
        if params.get(key) is not None and not isinstance(params[key], str):
            raise aggregates.QueryError(f"{key}: expected text, got {params[key]!r}")
    return {
        "by": by,
        "since": params.get("since"),
        "until": params.get("until"),
        "service": params.get("service"),
        "where": params.get("where"),
        "all_spans": bool(all_spans),
        "unpriced": bool(unpriced),
        "plan": params.get("plan") or "auto",
        "format": params["format"].strip().lower() if params.get("format") else None,
    }


def _formatted(store: Store, kind: str, fmt: str, **params: Any) -> bytes:
    body = aggregates.aggregate_formatted(store, kind, fmt, **params)
    return with_timestamps(body, aggregates.column_types) if fmt == ARROW_FORMAT else body


def add_routes(app: web.Application, store: Store, readers: Readers) -> None:
    async def query(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in aggregates.KINDS:
            return error_response(f"unknown aggregate {kind!r}; use one of {', '.join(aggregates.KINDS)}", 404)
        try:
            params = await _params(request)
            fmt = params.pop("format")
            if fmt is None:
                fmt = "arrow" if wants_arrow(request) else "json"
            if fmt in ("parquet", "arrow"):
                ch_format, content_type = ("Parquet", PARQUET_TYPE) if fmt == "parquet" else (ARROW_FORMAT, ARROW_STREAM)
                written = await readers.run(
                    partial(_formatted, store, kind, ch_format, **params), key=request.get(KEY_INDEX)
                )
                return web.Response(body=written, content_type=content_type)
            if fmt != "json":
                raise aggregates.QueryError(f"format: use json, parquet or arrow, got {fmt!r}")
            result = await readers.run(partial(aggregates.aggregate, store, kind, **params), key=request.get(KEY_INDEX))
        except ValueError as exc:  # QueryError, FilterError
            return error_response(str(exc))
        except StoreUnavailableError as exc:
            return error_response(str(exc), 503)
        except StoreError as exc:
            return error_response(str(exc), 400)
        return json_response(result_body(result))

    app.router.add_route("GET", "/api/v1/query/{kind}", query)
    app.router.add_route("POST", "/api/v1/query/{kind}", query)
