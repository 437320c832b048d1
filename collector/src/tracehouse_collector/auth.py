"""API keys: when configured, every endpoint requires `Authorization: Bearer KEY`.

Keys come from TRACEHOUSE_API_KEYS (comma-separated) and/or a keys file (one key per line,
'#' starts a comment). One check guards both servers: an aiohttp middleware on the whole HTTP
app (OTLP/HTTP, REST, UI and static files, including routes added later) and a gRPC server
interceptor (every service on the port). `/healthz` stays open for probes, but without a
valid key it answers only its status. The web UI's shell (`/` and the static files under
`/ui/`) holds no data and loads without a key; the UI then asks for one and sends it on
every API call.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every key without
an early exit, so neither timing nor length says how close a guess was or which key matched.
Keys never appear in logs or error messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import grpc
import orjson
from aiohttp import web

log = logging.getLogger("tracehouse.auth")

UNAUTHORIZED_MESSAGE = "missing or invalid API key: send the header 'Authorization: Bearer KEY'"
HEALTH_PATH = "/healthz"
# Browsers cannot add a Bearer header to a page load; the Basic challenge makes them ask for
# the key (as the password, any user name) when someone opens an API URL directly. The web UI's
# own fetch() calls get only the Bearer challenge, so the UI's sign-in form asks instead of the
# browser's prompt (see unauthorized_response).
BEARER_CHALLENGE = 'Bearer realm="tracehouse"'
BASIC_CHALLENGE = 'Basic realm="tracehouse", charset="UTF-8"'
CHALLENGES = (BEARER_CHALLENGE, BASIC_CHALLENGE)
UI_SHELL = "/"
UI_STATIC_PREFIX = "/ui/"
_SHORT_KEY = 16
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


class ApiKeyError(ValueError):
    """The configured keys are unusable (unreadable file, empty key list, bad characters)."""


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _valid_key(key: str) -> bool:
    # Keys travel in HTTP headers and gRPC metadata: visible ASCII only, no separators.
    return bool(key) and all(0x21 <= ord(ch) <= 0x7E for ch in key) and "," not in key


def parse_keys_text(text: str) -> list[str]:
    """Keys in a keys file: one per line; blank lines and '#' comments are ignored."""
    keys = []
    for line in text.splitlines():
        # A comment is a line starting with '#', or ' #...' after a key ('#' inside a key stays).
        line = _TRAILING_COMMENT.sub("", line).strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


def load_keys(keys: str | None, keys_file: str | None) -> list[str]:
    """The configured API keys (empty: authentication off). Raises ApiKeyError."""
    found: list[tuple[str, str]] = []  # (key, where it came from) for error messages
    if keys is not None:
        items = [k.strip() for k in keys.split(",")]
        found += [(k, f"TRACEHOUSE_API_KEYS item {i + 1}") for i, k in enumerate(items) if k]
        if not found:
            raise ApiKeyError("TRACEHOUSE_API_KEYS is set but holds no key")
    if keys_file is not None:
        if not keys_file.strip():
            raise ApiKeyError(
                "the API keys file setting (TRACEHOUSE_API_KEYS_FILE, --api-keys-file) is empty"
            )
        path = Path(keys_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiKeyError(f"cannot read the API keys file {path}: {exc}") from None
        from_file = parse_keys_text(text)
        if not from_file:
            raise ApiKeyError(f"the API keys file {path} holds no key")
        found += [(k, f"key {i + 1} of {path}") for i, k in enumerate(from_file)]
    for key, where in found:
        if not _valid_key(key):
            # Say where the bad key is, never what it is.
            raise ApiKeyError(f"{where} contains spaces, commas or non-ASCII characters; API keys must not")
    short = sum(1 for key, _ in found if len(key) < _SHORT_KEY)
    if short:
        log.warning("%d API key(s) are shorter than %d characters; use long random keys", short, _SHORT_KEY)
    return list(dict.fromkeys(k for k, _ in found))


class ApiKeys:
    """The set of accepted keys, kept only as digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k.encode()) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def matches(self, candidate: str | bytes | None) -> bool:
        if candidate is None:
            candidate = b""
        if isinstance(candidate, str):
            candidate = candidate.encode("utf-8", "surrogateescape")
        given = _digest(candidate)
        ok = False
        for digest in self._digests:  # no early exit: every key is compared every time
            ok |= hmac.compare_digest(given, digest)
        return ok and bool(candidate)

    def authorizes(self, header: str | bytes | None) -> bool:
        """Whether an Authorization header value carries an accepted key.

        `Bearer KEY` for API and OTLP clients; `Basic base64(any-user:KEY)` for browsers.
        """
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        scheme, _, credentials = (header or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return self.matches(credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return self.matches(None)
            return self.matches(decoded.partition(b":")[2])
        return self.matches(None)  # same work as a wrong key


def exposure_warning(host: str, keys: ApiKeys, tls: bool) -> str | None:
    """What is unsafe about listening on `host` with these settings, or None."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    if not keys:
        return (
            f"listening on {host} without API keys: anyone who can reach it can send and read data "
            "(set TRACEHOUSE_API_KEYS or --api-keys-file)"
        )
    if not tls:
        return f"listening on {host} without TLS: API keys cross the network in plain text (set --tls-cert/--tls-key)"
    return None


# -- HTTP -------------------------------------------------------------------------------------


def unauthorized_response(request: web.Request | None = None) -> web.Response:
    response = web.Response(
        status=401,
        body=orjson.dumps({"error": UNAUTHORIZED_MESSAGE}),
        content_type="application/json",
    )
    # A script's fetch() says so in Sec-Fetch-Mode (cors, same-origin, no-cors); a Basic
    # challenge there would pop up the browser's own password prompt over the UI's form.
    from_script = request is not None and request.headers.get("Sec-Fetch-Mode", "navigate") != "navigate"
    for challenge in (BEARER_CHALLENGE,) if from_script else CHALLENGES:
        response.headers.add("WWW-Authenticate", challenge)
    return response


def _public(path: str) -> bool:
    """The UI shell and its static files: no data in them, and the sign-in form lives there."""
    return path == UI_SHELL or path.startswith(UI_STATIC_PREFIX)


def http_middleware(keys: ApiKeys) -> Callable:
    """An aiohttp middleware requiring a key on every route but the health probe."""

    @web.middleware
    async def require_api_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        authorized = keys.authorizes(request.headers.get("Authorization"))
        if request.path == HEALTH_PATH:
            response = await handler(request)
            return response if authorized else _health_status_only(response)
        if not authorized and not _public(request.path):
            return unauthorized_response(request)
        return await handler(request)

    return require_api_key


def _health_status_only(response: web.StreamResponse) -> web.StreamResponse:
    """The health answer without the store address, version and counters."""
    status = "unknown"
    body = getattr(response, "body", None)
    if isinstance(body, bytes):
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            status = orjson.loads(body).get("status", status)
    return web.Response(
        status=response.status, body=orjson.dumps({"status": status}), content_type="application/json"
    )


def protect_http(app: web.Application, keys: ApiKeys) -> None:
    """Install the middleware in front of every other one (call before the app starts)."""
    if keys:
        app.middlewares.insert(0, http_middleware(keys))


# -- gRPC -------------------------------------------------------------------------------------


async def _deny(context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED_MESSAGE)


def _denying_handler(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as `handler` that refuses the call."""
    if handler is not None and handler.request_streaming and handler.response_streaming:

        async def stream_stream(requests, context):
            await _deny(context)
            yield  # pragma: no cover - abort raises

        return grpc.stream_stream_rpc_method_handler(stream_stream)
    if handler is not None and handler.request_streaming:

        async def stream_unary(requests, context):
            await _deny(context)

        return grpc.stream_unary_rpc_method_handler(stream_unary)
    if handler is not None and handler.response_streaming:

        async def unary_stream(request, context):
            await _deny(context)
            yield  # pragma: no cover - abort raises

        return grpc.unary_stream_rpc_method_handler(unary_stream)

    async def unary_unary(request, context):
        await _deny(context)

    # No deserializer: the refused request's bytes are never parsed.
    return grpc.unary_unary_rpc_method_handler(unary_unary)


class GrpcApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC, on every service of the server, without a valid key (UNAUTHENTICATED)."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def intercept_service(self, continuation, handler_call_details):
        header = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                header = value
                break
        handler = await continuation(handler_call_details)
        if self._keys.authorizes(header):
            return handler
        return _denying_handler(handler)


def grpc_interceptors(keys: ApiKeys) -> list[grpc.aio.ServerInterceptor]:
    return [GrpcApiKeyInterceptor(keys)] if keys else []
