"""`tracehouse serve`: receive OTLP and store it (the server itself is in server/)."""

from __future__ import annotations

import argparse
from typing import Any

from tracehouse_collector.cli.common import add_store_args, fail
from tracehouse_collector.config import ServeSettings


def cmd_serve(args: argparse.Namespace) -> int:
    from tracehouse_collector.processors.cost import PriceFileError, Pricer
    from tracehouse_collector.query.sql import SqlLimitsError
    from tracehouse_collector.server import serve
    from tracehouse_collector.server.auth import ApiKeyError
    from tracehouse_collector.server.tls import TlsConfigError
    from tracehouse_collector.store.client import StoreError
    from tracehouse_collector.store.journal import JournalLockedError

    settings = ServeSettings.from_env(
        store=args.store,
        data_dir=args.data_dir,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        workers=args.workers,
        prices=args.prices,
        api_keys_file=args.api_keys_file,
        max_message_bytes=args.max_message_bytes,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        offer_demo=args.offer_demo or None,
    )
    try:
        if settings.prices:
            Pricer.from_file(settings.prices)  # a broken price file stops the start, with its reason
        serve.run(settings)
    except (
        StoreError,
        JournalLockedError,
        OSError,
        PriceFileError,
        ApiKeyError,
        TlsConfigError,
        SqlLimitsError,
    ) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("serve", help="receive OTLP and store it")
    add_store_args(p)
    p.add_argument("--host", help="address to bind (TRACEHOUSE_HOST, default 127.0.0.1)")
    p.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (TRACEHOUSE_GRPC_PORT, default 4317)")
    p.add_argument(
        "--http-port", type=int, help="OTLP/HTTP and API port (TRACEHOUSE_HTTP_PORT, default 4318)"
    )
    p.add_argument("--workers", type=int, help="decoding worker processes (TRACEHOUSE_WORKERS, default 2)")
    p.add_argument(
        "--prices", help="price file (YAML or JSON) adding or overriding model prices (TRACEHOUSE_PRICES)"
    )
    p.add_argument(
        "--api-keys-file",
        help="require API keys, one per line, on every endpoint (TRACEHOUSE_API_KEYS_FILE; or TRACEHOUSE_API_KEYS)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        help="largest request as sent, gRPC message or HTTP body (TRACEHOUSE_MAX_MESSAGE_BYTES, default 4 MiB)",
    )
    p.add_argument(
        "--tls-cert", help="serve gRPC and HTTP over TLS with this PEM certificate (TRACEHOUSE_TLS_CERT)"
    )
    p.add_argument("--tls-key", help="the certificate's PEM private key (TRACEHOUSE_TLS_KEY)")
    p.add_argument(
        "--offer-demo",
        action="store_true",
        help="on an empty store, ask in the terminal whether to load the demo data (make run does)",
    )
    p.set_defaults(func=cmd_serve)
