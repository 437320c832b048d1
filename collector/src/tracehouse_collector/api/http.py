"""What every REST module answers with: JSON bodies, `{"error": message}`, result sets."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tracehouse_collector.query.values import jsonable


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(message: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status, headers)


def result_body(result: Any) -> dict[str, Any]:
    """A result set (columns, rows) as the API's `{"columns", "rows"}`, every value JSON-ready."""
    return {"columns": result.columns, "rows": [[jsonable(v) for v in row] for row in result.rows]}


async def request_params(request: web.Request, error: type[Exception] = ValueError) -> dict[str, Any]:
    """Query-string parameters, overlaid by a JSON object body on POST (what the CLI sends); a
    body that is not one raises `error`."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise error(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise error("request body must be a JSON object")
        params.update({k: v for k, v in body.items() if v is not None})
    return params
