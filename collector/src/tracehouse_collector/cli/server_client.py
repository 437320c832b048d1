"""Calls to a running collector's REST API, for CLI commands given `--server URL`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ServerError(RuntimeError):
    """The server answered an error (its message), or could not be reached."""


def call(server: str, path: str, api_key: str | None, payload: dict | None = None, timeout: float = 120) -> bytes:
    """GET `path`, or POST `payload` as JSON to it; the response body. Errors carry the
    server's own `{"error": ...}` message."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(server.rstrip("/") + path, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            message = json.loads(body).get("error") or body.decode()
        except (ValueError, AttributeError):
            message = body.decode("utf-8", "replace")
        raise ServerError(message or f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise ServerError(f"cannot reach the server at {server}: {exc.reason}") from None


def call_json(server: str, path: str, api_key: str | None, payload: dict | None = None) -> Any:
    return json.loads(call(server, path, api_key, payload))
