"""The `tracehouse` command line: the root parser, built from the command groups, and dispatch."""

from __future__ import annotations

import argparse

from tracehouse_collector import __version__

# Each command group lives in its own module; importing them costs a few ms, no heavy deps
# (each imports the store, servers and query engines only when its command runs).
from tracehouse_collector.cli import demo, evals, models, query, runs, schema, serve, sql, traces
from tracehouse_collector.cli.common import fail

GROUPS = (serve, sql, schema, query, traces, runs, evals, models, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracehouse", description="Tracehouse collector and query tools")
    parser.add_argument("--version", action="version", version=f"tracehouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settle = getattr(args, "settle", None)  # read commands: --server or the store (common.py)
    error = settle(args) if settle else None
    if error:
        return fail(error, 2)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
