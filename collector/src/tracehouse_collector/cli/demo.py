"""`tracehouse demo`: fill a running collector with example traces, scores and runs (see demo.py)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    from tracehouse_collector.demo import DemoError, format_summary, run_demo

    if args.days < 1 or args.days > 90:
        print("tracehouse: --days must be between 1 and 90", file=sys.stderr)
        return 2
    try:
        summary = run_demo(args.server, seed=args.seed, days=args.days, api_key=args.api_key)
    except DemoError as exc:
        print(f"tracehouse: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_summary(summary, args.server))
    return 0


def add_parsers(sub: Any, add_read_args: Any, add_store_args: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="send example LLM traces, scores and training runs to a running collector",
        description="Fill a running collector with realistic demo data through OTLP: an instrumented "
        "OpenAI agent against a local fake API, a few days of backdated LLM calls, and training runs.",
    )
    p.add_argument(
        "--server",
        default=os.environ.get("TRACEHOUSE_SERVER") or "http://127.0.0.1:4318",
        help="the collector's HTTP address (TRACEHOUSE_SERVER, default http://127.0.0.1:4318)",
    )
    p.add_argument(
        "--api-key", default=os.environ.get("TRACEHOUSE_API_KEY"), help="API key (TRACEHOUSE_API_KEY)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed sends the same content")
    p.add_argument("--days", type=int, default=7, help="days of backdated LLM call history (default 7)")
    p.set_defaults(func=cmd_demo)
