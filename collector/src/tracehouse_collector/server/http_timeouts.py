"""Time limits for slow HTTP clients: a request's head, its body, and idle keep-alive.

aiohttp closes a keep-alive connection idle for `keepalive_timeout` (which also ends one
whose next request never completes), but has no limit of its own on how long the request
line and headers may take: a client sending a header line every few seconds would hold its
connection (and a file descriptor) forever. `GuardedAppRunner` serves each connection with a
request handler that starts a clock when a connection opens or the first bytes of a request
arrive, stops it when the head is complete, and closes the connection with 408 when it runs
out. The body gets its own limit in `body_timeout_middleware`, after the key check, so a
refused request's body is never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from tracehouse_collector.server.auth import ARTIFACTS_PREFIX

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _HeadTimeoutHandler(RequestHandler):
    """aiohttp's request handler with a limit on the time to receive a request's head."""

    head_timeout_s = 10.0  # set on the subclass made for each runner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._start_head_clock()  # a connection that never sends a request is slow too

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:  # a complete request head was parsed
            self._stop_head_clock()
        elif data and self._between_requests():
            self._start_head_clock()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return not self._request_in_progress and not self._messages

    def _start_head_clock(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is not None and self._between_requests():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.force_close()


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections must send each request head within `head_timeout_s`."""

    def __init__(self, app: web.Application, *, head_timeout_s: float, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._handler_class = type(
            "HeadTimeoutHandler", (_HeadTimeoutHandler,), {"head_timeout_s": head_timeout_s}
        )

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        handler_class = self._handler_class

        class _Server(type(server)):  # type: ignore[misc]
            def __call__(self) -> RequestHandler:
                return handler_class(self, loop=self._loop, **self._kwargs)

        server.__class__ = _Server  # the same server, creating guarded handlers
        return server


def body_timeout_middleware(timeout_s: float) -> Callable:
    """Reads each request body within `timeout_s` (aiohttp keeps it for the handler), else 408."""

    @web.middleware
    async def read_body_in_time(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Artifact uploads stream to disk in chunks (rest_runs); every other body is small.
        if request.body_exists and not (
            request.method == "PUT" and request.path.startswith(ARTIFACTS_PREFIX)
        ):
            try:
                async with asyncio.timeout(timeout_s):
                    await request.read()
            except TimeoutError:
                response = web.json_response(
                    {"error": f"the request body did not arrive within {timeout_s:g} s"}, status=408
                )
                response.force_close()  # the rest of a late body is not waited for
                return response
        return await handler(request)

    return read_body_in_time
