"""`tracehouse serve`: wires receivers -> processors -> writer -> store, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import sys

from aiohttp import web

from tracehouse_collector.api import grpc_query, rest, rest_evals, rest_query, rest_runs, rest_traces, ui
from tracehouse_collector.api.readers import Readers, busy_middleware
from tracehouse_collector.config import ServeSettings
from tracehouse_collector.query.sql import SqlLimits
from tracehouse_collector.receivers import otlp_grpc, otlp_http
from tracehouse_collector.server import auth, demo_offer, http_timeouts, memory, tls
from tracehouse_collector.server.ingest import Ingest
from tracehouse_collector.store.client import Store
from tracehouse_collector.store.journal import Journal
from tracehouse_collector.store.startup import open_store
from tracehouse_collector.store.writer import Writer

log = logging.getLogger("tracehouse.server")


def _journal_dir(settings: ServeSettings, store: Store):
    # One journal per store, so two collectors on different stores may share a data dir.
    tag = hashlib.sha1(store.dsn.display().encode()).hexdigest()[:10]
    return settings.data_dir / "journal" / tag


async def serve(settings: ServeSettings) -> None:
    # Unusable keys or certificates stop the start before anything opens or listens.
    key_list = auth.load_keys(settings.api_keys, settings.api_keys_file)
    api_keys = auth.ApiKeys(key_list)
    tls_files = tls.load_tls(settings.tls_cert, settings.tls_key)
    SqlLimits.from_env()  # a bad TRACEHOUSE_SQL_* limit stops the start, not every query
    exposure = auth.exposure_warning(settings.host, api_keys, tls_files is not None)
    if exposure:
        log.warning(exposure)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    memory.configure_allocator()  # large request buffers go back to the system when freed
    # A server store that is down does not stop the start: exports go to the on-disk queue.
    store, prepare_store = await asyncio.to_thread(open_store, settings.store)
    journal = Journal(_journal_dir(settings, store), fsync=settings.journal_fsync)
    writer = Writer(
        store,
        journal,
        batch_rows=settings.batch_rows,
        max_delay_s=settings.max_delay_ms / 1000,
        max_insert_rows=settings.max_insert_rows,
        max_pending_rows=settings.max_pending_rows,
        max_queue_bytes=settings.max_queue_bytes,
        slow_insert_s=settings.slow_insert_ms / 1000,
        ack_timeout_s=settings.ack_timeout_s,
        prepare=prepare_store,
    )
    ingest = Ingest(settings, writer)
    await writer.start()
    # Readers: their own threads and store connections, never the writer's (api/readers.py).
    store.set_readers(settings.max_queries)
    readers = Readers(settings.max_queries, settings.max_queued_queries, settings.max_queries_per_key)

    grpc_server, grpc_port = otlp_grpc.build_server(
        ingest,
        settings.host,
        settings.grpc_port,
        settings,
        interceptors=auth.grpc_interceptors(api_keys),
        credentials=tls_files.grpc_credentials() if tls_files else None,
    )
    app = web.Application(client_max_size=settings.message_limit)
    app[rest.GRPC_PORT] = grpc_port
    # Outermost first: the key check, then the bytes in flight, then the body's time limit, so
    # a body is read only for a request with a key, room for it, and within the time allowed.
    app.middlewares.append(otlp_http.inflight_middleware(ingest, settings.message_limit))
    app.middlewares.append(http_timeouts.body_timeout_middleware(settings.http_body_timeout_s))
    app.middlewares.append(busy_middleware)
    auth.protect_http(app, api_keys)
    otlp_http.add_routes(app, ingest)
    rest.add_routes(app, store, ingest, readers)
    rest_traces.add_routes(app, store, readers)
    rest_query.add_routes(app, store, readers)
    rest_runs.add_routes(app, store, settings.data_dir, readers)
    rest_evals.add_routes(app, store, readers)
    ui.add_routes(app)
    grpc_query.add_to_server(grpc_server, store, readers, api_keys.identify if api_keys else None)
    # auto_decompress off: the pipeline inflates bodies itself, with the size limit applied to
    # the inflated size, in a worker process.
    runner = http_timeouts.GuardedAppRunner(
        app,
        head_timeout_s=settings.http_header_timeout_s,
        keepalive_timeout=settings.http_idle_timeout_s,
        access_log=None,
        handle_signals=False,
        auto_decompress=False,
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.host,
        settings.http_port,
        reuse_address=True,
        ssl_context=tls_files.ssl_context() if tls_files else None,
    )
    await site.start()
    await grpc_server.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    scheme = "https" if tls_files else "http"
    hint = await asyncio.to_thread(demo_offer.empty_store_hint, store, f"{scheme}://{settings.host}:{http_port}")
    # No await from here to the banner: once /healthz answers 200, the banner is in the log.
    ingest.accepting = True
    print(
        f"tracehouse serve: store {store.dsn.display()}\n"
        f"  OTLP/gRPC  {settings.host}:{grpc_port}{' (TLS)' if tls_files else ''}\n"
        f"  OTLP/HTTP  {scheme}://{settings.host}:{http_port}/v1/traces (metrics, logs)\n"
        f"  API        {scheme}://{settings.host}:{http_port}/api/v1  health: /healthz\n"
        f"  Web UI     {scheme}://{settings.host}:{http_port}/\n"
        f"  API keys   {f'required ({len(api_keys)} configured)' if api_keys else 'not required'}",
        flush=True,
    )
    if hint:
        print(hint, flush=True)
        # Only where someone can answer: a terminal on stdin (make run), never under a supervisor.
        if settings.offer_demo and sys.stdin is not None and sys.stdin.isatty():
            offering = asyncio.create_task(  # noqa: F841 - kept referenced while serve runs
                demo_offer.offer(f"{scheme}://{settings.host}:{http_port}", _demo_key(key_list))
            )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    print("tracehouse serve: draining", file=sys.stderr, flush=True)
    # Stop taking new exports, let in-flight ones finish, flush, then close the store.
    ingest.accepting = False
    await grpc_server.stop(grace=5)
    await site.stop()
    await writer.close()
    await runner.cleanup()
    readers.close()
    ingest.trimmer.cancel()
    await asyncio.to_thread(ingest.close)
    journal.close()
    await asyncio.to_thread(store.close)
    print("tracehouse serve: stopped", file=sys.stderr, flush=True)


def _demo_key(keys: list[auth.ApiKey]) -> str | None:
    """A key that can both load the demo data and read it back, else the first one."""
    full = [k for k in keys if k.scopes == auth.ALL_SCOPES]
    return (full or keys)[0] if keys else None


def run(settings: ServeSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
