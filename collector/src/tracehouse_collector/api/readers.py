"""Where read queries run: threads of their own, a bounded number at once, a bounded queue.

Every blocking read of the APIs (REST, SQL, gRPC Query, the UI's data) goes through one
`Readers`. Its threads are not the event loop's default executor, which the writer uses to
insert and acknowledge, so however many readers wait, ingest does not wait with them. At most
`max_running` queries run (one store connection each, see Store.set_readers); up to
`max_queued` more wait; past that, and past `max_per_key` for one API key, a reader is told
"busy, retry" at once (ReadersBusy: HTTP 503 + Retry-After, gRPC RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from tracehouse_collector.api.http import error_response

T = TypeVar("T")
RETRY_AFTER_S = 1


class ReadersBusy(Exception):
    """Too many queries now; retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Readers:
    def __init__(self, max_running: int, max_queued: int, max_per_key: int = 0) -> None:
        self.max_running = max_running
        self.max_queued = max_queued
        self.max_per_key = max_per_key
        self._pool = ThreadPoolExecutor(max_running, thread_name_prefix="tracehouse-read")
        self._admitted = 0  # running or queued; counted down when the thread is done with it
        self._per_key: Counter = Counter()
        self.refused = 0

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self, fn: Callable[..., T], *args: Any, key: object = None) -> T:
        """`fn(*args)` on a reader thread; raises ReadersBusy when there is no room."""
        if self._admitted >= self.max_running + self.max_queued:
            self.refused += 1
            raise ReadersBusy(
                f"{self._admitted} queries are running or waiting (TRACEHOUSE_MAX_QUERIES="
                f"{self.max_running}, TRACEHOUSE_MAX_QUEUED_QUERIES={self.max_queued}); retry shortly"
            )
        if key is not None and self.max_per_key and self._per_key[key] >= self.max_per_key:
            self.refused += 1
            raise ReadersBusy(
                f"this API key has {self._per_key[key]} queries running or waiting "
                f"(TRACEHOUSE_MAX_QUERIES_PER_KEY={self.max_per_key}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        self._admitted += 1
        self._per_key[key] += 1
        future: Future = self._pool.submit(fn, *args)
        # Counted down when the thread finishes (or the queued job is cancelled), not when the
        # caller goes away: a query outlives a client that hung up, and still takes its slot.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._done, key))
        return await asyncio.wrap_future(future)

    def _done(self, key: object) -> None:
        self._admitted -= 1
        self._per_key[key] -= 1
        if self._per_key[key] <= 0:
            del self._per_key[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def busy_response(exc: ReadersBusy) -> web.Response:
    return error_response(str(exc), 503, headers={"Retry-After": str(exc.retry_after_s)})


@web.middleware
async def busy_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Any route whose reader was refused answers 503 + Retry-After with the reason."""
    try:
        return await handler(request)
    except ReadersBusy as exc:
        return busy_response(exc)
