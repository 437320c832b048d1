"""Calls to a running collector's REST API, for CLI commands given `--server URL`.

A call to an `http://` server is one HTTP/1.1 exchange on a socket, written here: http.client
and urllib.request would load OpenSSL and the email package first, which took a third of the
start-up of a command that does nothing else (docs/benchmarks.md, "CLI start-up"). `https://`
servers, a proxy configured in the environment (`http_proxy`, `no_proxy`, ...) and redirects go
through urllib.request, as every call did before.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

REDIRECTS = frozenset((301, 302, 303, 307, 308))


class ServerError(RuntimeError):
    """The server answered an error (its message), or could not be reached."""


def call(
    server: str, path: str, api_key: str | None, payload: dict | None = None, timeout: float = 120
) -> bytes:
    """GET `path`, or POST `payload` as JSON to it; the response body. Errors carry the
    server's own `{"error": ...}` message."""
    url = server.rstrip("/") + path
    data = None if payload is None else json.dumps(payload).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        answer = None
        if url.startswith("http://") and not _proxy_configured():
            answer = _plain_http(url, data, headers, timeout)
        if answer is None or answer[0] in REDIRECTS:
            answer = _through_urllib(url, data, headers, timeout)
    except OSError as exc:  # refused, unreachable, timed out, TLS failed
        raise ServerError(f"cannot reach the server at {server}: {exc}") from None
    status, body = answer
    if status >= 400:
        raise ServerError(_error_message(status, body))
    return body


def call_json(server: str, path: str, api_key: str | None, payload: dict | None = None) -> Any:
    return json.loads(call(server, path, api_key, payload))


def _proxy_configured() -> bool:
    return any(name.lower().endswith("_proxy") and value for name, value in os.environ.items())


def _plain_http(url: str, data: bytes | None, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """(status, body) of one request on its own connection, which the server closes after
    answering (`Connection: close`), so the answer is everything read until then."""
    import socket

    parts = urlsplit(url)
    if not parts.hostname:
        raise ServerError(f"no host in the server address {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"{'GET' if data is None else 'POST'} {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: close",
        "Accept-Encoding: identity",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if data is not None:
        lines.append(f"Content-Length: {len(data)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (data or b"")
    received = []
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        while chunk := sock.recv(1 << 16):
            received.append(chunk)
    return _parse_response(b"".join(received))


def _parse_response(raw: bytes) -> tuple[int, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not sep or not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ServerError(f"the server's answer is not HTTP/1.x: {raw[:80]!r}")
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif fields.get("content-length", "").isdigit():
        length = int(fields["content-length"])
        if len(body) < length:
            raise ServerError(f"the server closed the connection after {len(body)} of {length} bytes")
        body = body[:length]
    return int(rest[:3]), body


def _dechunk(body: bytes) -> bytes:
    """The body of a chunked transfer (RFC 9112 section 7.1): size lines, each chunk, a 0 size."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ServerError("the server's chunked answer ends early")
        try:
            size = int(body[pos:eol].split(b";", 1)[0], 16)  # chunk extensions are ignored
        except ValueError:
            raise ServerError(
                f"the server's chunked answer has a bad size line {body[pos:eol][:40]!r}"
            ) from None
        if size == 0:
            return b"".join(out)
        start = eol + 2
        if len(body) < start + size + 2:
            raise ServerError("the server's chunked answer ends early")
        out.append(body[start : start + size])
        pos = start + size + 2


def _through_urllib(
    url: str, data: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(exc.reason) from None


def _error_message(status: int, body: bytes) -> str:
    try:
        message = json.loads(body).get("error") or body.decode()
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    return message or f"HTTP {status}"
