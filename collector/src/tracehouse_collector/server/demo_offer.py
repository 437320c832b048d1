"""`serve` on an empty store: the banner's hint to run `tracehouse demo`, and with --offer-demo in
a terminal, the question whether to load it now (the demo itself runs as a client, in a child
process)."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from tracehouse_collector.config import DEFAULT_SERVER


def empty_store_hint(store: Any, url: str) -> str | None:
    """For `tracehouse serve`'s banner: a line suggesting the demo when the store holds nothing yet."""
    try:
        for table in ("otel_traces", "runs"):
            _, rows = store.query(f"SELECT 1 FROM {table} LIMIT 1")
            if rows:
                return None
    except Exception:  # a store that is down or not migrated yet: say nothing rather than guess
        return None
    url = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://127.0.0.1:")
    server = "" if url == DEFAULT_SERVER else f" --server {url}"
    return f"  Empty store: fill it with example data with `tracehouse demo{server}`"


DEMO_QUESTION = "The store is empty. Load the demo data into it now? [y/N] "


async def offer(url: str, api_key: str | None) -> None:
    """`serve --offer-demo` on an empty store, in a terminal: ask, and on yes run `tracehouse demo`
    against this collector in a child process (the demo's SDK setup stays out of the server)."""
    import asyncio
    import sys

    url = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://127.0.0.1:")
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()

    def read() -> None:  # a daemon thread: an unanswered question never holds up shutdown
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""
        def answer() -> None:
            if not reply.done():
                reply.set_result(line)

        with contextlib.suppress(RuntimeError):  # the server stopped before the answer came
            loop.call_soon_threadsafe(answer)

    print(DEMO_QUESTION, end="", flush=True)
    threading.Thread(target=read, name="demo-offer", daemon=True).start()
    answer = await reply
    if answer.strip().lower() not in ("y", "yes"):
        print("  No demo data. Run `tracehouse demo` later to add it.", flush=True)
        return
    env = dict(os.environ)
    if api_key:
        env["TRACEHOUSE_API_KEY"] = api_key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracehouse_collector",
        "demo",
        "--server",
        url,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    print("  Demo data loaded." if code == 0 else f"  The demo failed (exit status {code}).", flush=True)
