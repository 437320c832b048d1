"""The `tracehouse` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tracehouse_collector import __version__
from tracehouse_collector.config import ServeSettings, default_data_dir, default_store
from tracehouse_collector.output import FORMATS, render


def _fail(message: str, code: int = 1) -> int:
    print(f"tracehouse: {message}", file=sys.stderr)
    return code


# -- serve -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from tracehouse_collector import server
    from tracehouse_collector.auth import ApiKeyError
    from tracehouse_collector.processors.cost import PriceFileError, Pricer
    from tracehouse_collector.query.sql import SqlLimitsError
    from tracehouse_collector.store.client import StoreError
    from tracehouse_collector.store.journal import JournalLockedError
    from tracehouse_collector.tls import TlsConfigError

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
        server.run(settings)
    except (
        StoreError,
        JournalLockedError,
        OSError,
        PriceFileError,
        ApiKeyError,
        TlsConfigError,
        SqlLimitsError,
    ) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


# -- read commands ---------------------------------------------------------------------------


def _server_request(server: str, path: str, payload: dict, api_key: str | None) -> dict:
    from tracehouse_collector.server_client import call_json

    return call_json(server, path, api_key, payload)


def cmd_sql(args: argparse.Namespace) -> int:
    statement = args.statement if args.statement != "-" else sys.stdin.read()
    if args.server:
        try:
            result = _server_request(args.server, "/api/v1/sql", {"sql": statement}, args.api_key)
        except RuntimeError as exc:
            return _fail(str(exc))
        columns, rows = result["columns"], result["rows"]
    else:
        from tracehouse_collector.query.sql import run_readonly
        from tracehouse_collector.store.client import Store, StoreError

        try:
            store = Store(args.store or default_store(Path(args.data_dir or default_data_dir())))
            try:
                store.migrate()
                res = run_readonly(store, statement)
            finally:
                store.close()
        except (StoreError, ValueError) as exc:
            return _fail(str(exc))
        columns, rows = res.columns, res.rows
    sys.stdout.write(render(columns, rows, args.format))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from tracehouse_collector import cli_schema

    return cli_schema.run(args)


# -- parser ----------------------------------------------------------------------------------


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", help="store DSN: chdb:///dir or http(s)://user:pass@host:8123/db (TRACEHOUSE_STORE)"
    )
    p.add_argument("--data-dir", help="state directory (TRACEHOUSE_DATA_DIR, default ~/.tracehouse)")


def _add_read_args(p: argparse.ArgumentParser) -> None:
    _add_store_args(p)
    p.add_argument(
        "--server",
        default=os.environ.get("TRACEHOUSE_SERVER"),
        help="read through a running server's API instead of opening the store (TRACEHOUSE_SERVER)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("TRACEHOUSE_API_KEY"), help="API key (TRACEHOUSE_API_KEY)"
    )
    p.add_argument("--format", choices=FORMATS, default="table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracehouse", description="Tracehouse collector and query tools")
    parser.add_argument("--version", action="version", version=f"tracehouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="receive OTLP and store it")
    _add_store_args(p)
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

    p = sub.add_parser("sql", help="run a read-only SQL statement in the tracehouse database")
    p.add_argument("statement", help="the SQL statement, or - to read it from stdin")
    _add_read_args(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("schema", help="create or upgrade the schema, or print its DDL")
    _add_store_args(p)
    p.add_argument("--print", action="store_true", help="print the DDL instead of applying it")
    from tracehouse_collector.cli_schema import add_arguments as add_schema_arguments

    add_schema_arguments(p)
    p.set_defaults(func=cmd_schema)

    # Each command group lives in its own module; importing them costs a few ms, no heavy deps.
    from tracehouse_collector import cli_demo, cli_models, cli_query, cli_runs, cli_traces

    for group in (cli_query, cli_traces, cli_runs, cli_models, cli_demo):
        group.add_parsers(sub, _add_read_args, _add_store_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
