"""API keys: when configured, every endpoint requires `Authorization: Bearer KEY`.

Keys come from TRACEHOUSE_API_KEYS (comma-separated) and/or a keys file (one key per line,
'#' starts a comment). A key in the file may be followed by its scope: `KEY ingest` may only
send data (OTLP, artifact uploads: what an application holds), `KEY read` may only read (REST,
SQL, gRPC Query, the UI's data), `KEY annotate` may add annotations (`POST /api/v1/annotations`,
from the SDK, the CLI or the UI; `KEY read,annotate` may read and annotate); a key without a
scope, and every TRACEHOUSE_API_KEYS key, may do all three. A valid key outside its scope gets 403 / PERMISSION_DENIED. One check guards both servers: an aiohttp middleware on the whole HTTP
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

INGEST = "ingest"
READ = "read"
ANNOTATE = "annotate"  # add annotations (feedback, expectations) through REST and the web UI
ALL_SCOPES = frozenset({INGEST, READ, ANNOTATE})
_SCOPE_WORDS = {
    INGEST: frozenset({INGEST}),
    READ: frozenset({READ}),
    ANNOTATE: frozenset({ANNOTATE}),
    "all": ALL_SCOPES,
}
SCOPE_MESSAGES = {
    INGEST: "this API key may not send data: use a key with scope 'ingest' (or no scope)",
    READ: "this API key may only send data: reading needs a key with scope 'read' (or no scope)",
    ANNOTATE: "this API key may not annotate: use a key with scope 'annotate' (e.g. 'read,annotate', or no scope)",
}


class ApiKey(str):
    """A key, with what it may do (`scopes`); compares and hashes as the plain string."""

    scopes: frozenset[str] = ALL_SCOPES

    def __new__(cls, value: str, scopes: frozenset[str] = ALL_SCOPES) -> ApiKey:
        key = super().__new__(cls, value)
        key.scopes = scopes
        return key


class ApiKeyError(ValueError):
    """The configured keys are unusable (unreadable file, empty key list, bad characters)."""


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _valid_key(key: str) -> bool:
    # Keys travel in HTTP headers and gRPC metadata: visible ASCII only, no separators.
    return bool(key) and all(0x21 <= ord(ch) <= 0x7E for ch in key) and "," not in key


def parse_scopes(text: str) -> frozenset[str]:
    """`ingest`, `read`, `annotate`, `all`, or a comma-separated list of them; raises ValueError."""
    scopes: frozenset[str] = frozenset()
    for word in (w.strip().lower() for w in text.split(",")):
        if word not in _SCOPE_WORDS:
            raise ValueError(f"unknown scope {word!r} (use ingest, read, annotate or all)")
        scopes |= _SCOPE_WORDS[word]
    return scopes


def parse_keys_text(text: str, source: str = "the API keys file") -> list[ApiKey]:
    """Keys in a keys file: one per line, optionally followed by a scope; blank lines and
    '#' comments are ignored. Raises ApiKeyError for an unknown scope."""
    keys: list[ApiKey] = []
    for line in text.splitlines():
        # A comment is a line starting with '#', or ' #...' after a key ('#' inside a key stays).
        line = _TRAILING_COMMENT.sub("", line).strip()
        if not line or line.startswith("#"):
            continue
        key, _, scope = line.partition(" ")
        scope = scope.strip()
        try:
            keys.append(ApiKey(key, parse_scopes(scope) if scope else ALL_SCOPES))
        except ValueError:
            # Never echo the line: it may be a key with a space in it.
            raise ApiKeyError(
                f"key {len(keys) + 1} of {source} is followed by something other than a scope "
                "(ingest, read, annotate or all); API keys must not contain spaces"
            ) from None
    return keys


def load_keys(keys: str | None, keys_file: str | None) -> list[ApiKey]:
    """The configured API keys (empty: authentication off), each with its scopes.
    Raises ApiKeyError."""
    found: list[tuple[ApiKey, str]] = []  # (key, where it came from) for error messages
    if keys is not None:
        items = [k.strip() for k in keys.split(",")]
        found += [(ApiKey(k), f"TRACEHOUSE_API_KEYS item {i + 1}") for i, k in enumerate(items) if k]
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
        from_file = parse_keys_text(text, str(path))
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
    # A key listed twice may do what either listing allows.
    scopes: dict[str, frozenset[str]] = {}
    for key, _ in found:
        scopes[key] = scopes.get(key, frozenset()) | getattr(key, "scopes", ALL_SCOPES)
    return [ApiKey(k, s) for k, s in scopes.items()]


class ApiKeys:
    """The set of accepted keys, kept only as digests, with what each may do."""

    def __init__(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._digests = [_digest(k.encode()) for k in keys]
        self._scopes = [getattr(k, "scopes", ALL_SCOPES) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def find(self, candidate: str | bytes | None) -> int | None:
        """The index of the matching key, or None."""
        if candidate is None:
            candidate = b""
        if isinstance(candidate, str):
            candidate = candidate.encode("utf-8", "surrogateescape")
        given = _digest(candidate)
        found = -1
        for i, digest in enumerate(self._digests):  # no early exit: every key is compared every time
            same = hmac.compare_digest(given, digest)
            found = i if same else found
        return found if found >= 0 and candidate else None

    def matches(self, candidate: str | bytes | None) -> bool:
        return self.find(candidate) is not None

    def identify(self, header: str | bytes | None) -> int | None:
        """Which key an Authorization header value carries (its index), or None.

        `Bearer KEY` for API and OTLP clients; `Basic base64(any-user:KEY)` for browsers.
        """
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        scheme, _, credentials = (header or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return self.find(credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return self.find(None)
            return self.find(decoded.partition(b":")[2])
        return self.find(None)  # same work as a wrong key

    def authorizes(self, header: str | bytes | None) -> bool:
        """Whether an Authorization header value carries an accepted key."""
        return self.identify(header) is not None

    def scopes(self, index: int | None) -> frozenset[str]:
        return frozenset() if index is None else self._scopes[index]


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


OTLP_HTTP_PATHS = frozenset({"/v1/traces", "/v1/metrics", "/v1/logs"})
ANNOTATIONS_PATH = "/api/v1/annotations"
ARTIFACTS_PREFIX = "/api/v1/artifacts/"
KEY_INDEX = "tracehouse.key"  # request[KEY_INDEX]: which key the request carried (per-key limits)


def http_scopes(method: str, path: str) -> frozenset[str]:
    """The scopes that may make this HTTP request (any one of them is enough)."""
    if path in OTLP_HTTP_PATHS:
        return frozenset({INGEST})
    if path == ANNOTATIONS_PATH and method == "POST":
        return frozenset({ANNOTATE})
    if path.startswith(ARTIFACTS_PREFIX):
        # The SDK asks whether an artifact is there (HEAD), then uploads it (PUT).
        if method == "PUT":
            return frozenset({INGEST})
        if method == "HEAD":
            return ALL_SCOPES
    return frozenset({READ})


def forbidden_response(needed: frozenset[str]) -> web.Response:
    message = SCOPE_MESSAGES[next((s for s in (INGEST, ANNOTATE) if s in needed), READ)]
    return web.Response(status=403, body=orjson.dumps({"error": message}), content_type="application/json")


def http_middleware(keys: ApiKeys) -> Callable:
    """An aiohttp middleware requiring a key on every route but the health probe."""

    @web.middleware
    async def require_api_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        index = keys.identify(request.headers.get("Authorization"))
        authorized = index is not None
        if request.path == HEALTH_PATH:
            response = await handler(request)
            return response if authorized else _health_status_only(response)
        if _public(request.path):
            return await handler(request)
        if not authorized:
            return unauthorized_response(request)
        needed = http_scopes(request.method, request.path)
        if not keys.scopes(index) & needed:
            return forbidden_response(needed)
        request[KEY_INDEX] = index
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


def refusing_handler(
    handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str, trailers: tuple = ()
) -> grpc.RpcMethodHandler:
    """A handler that refuses the call without receiving its request message.

    grpc.aio receives a unary request before calling the handler (up to the maximum message
    size, per call); a request-streaming handler runs first and reads only what it asks for.
    So every refusal is request-streaming, whatever the method's shape: the client cannot
    tell, and the refused bytes are never buffered.
    """

    async def refuse(context: grpc.aio.ServicerContext) -> None:
        if trailers:
            context.set_trailing_metadata(trailers)
        await context.abort(code, message)

    if handler is not None and handler.response_streaming:

        async def stream_stream(requests, context):
            await refuse(context)
            yield  # pragma: no cover - abort raises

        return grpc.stream_stream_rpc_method_handler(stream_stream)

    async def stream_unary(requests, context):
        await refuse(context)

    return grpc.stream_unary_rpc_method_handler(stream_unary)


OTLP_GRPC_PREFIX = "/opentelemetry.proto.collector."


def grpc_scopes(method: str) -> frozenset[str]:
    """The scopes that may call this gRPC method: OTLP export is ingest, the rest is reading."""
    return frozenset({INGEST}) if method.startswith(OTLP_GRPC_PREFIX) else frozenset({READ})


class GrpcApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC, on every service of the server, without a valid key (UNAUTHENTICATED)
    or with a key outside its scope (PERMISSION_DENIED), before the request is received."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def intercept_service(self, continuation, handler_call_details):
        header = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                header = value
                break
        handler = await continuation(handler_call_details)
        index = self._keys.identify(header)
        if index is None:
            return refusing_handler(handler, grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED_MESSAGE)
        needed = grpc_scopes(handler_call_details.method or "")
        if not self._keys.scopes(index) & needed:
            message = SCOPE_MESSAGES[INGEST if INGEST in needed else READ]
            return refusing_handler(handler, grpc.StatusCode.PERMISSION_DENIED, message)
        return handler


def grpc_interceptors(keys: ApiKeys) -> list[grpc.aio.ServerInterceptor]:
    return [GrpcApiKeyInterceptor(keys)] if keys else []
