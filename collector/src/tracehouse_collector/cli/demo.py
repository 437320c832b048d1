"""`tracehouse demo`: fill a running collector with example traces, scores and runs (the demo/ package)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tracehouse_collector.cli.common import add_api_key_arg, fail
from tracehouse_collector.config import DEFAULT_SERVER


def cmd_demo(args: argparse.Namespace) -> int:
    from tracehouse_collector.demo.app import run_demo
    from tracehouse_collector.demo.summary import DemoError, format_summary

    if args.days < 1 or args.days > 90:
        return fail("--days must be between 1 and 90", 2)
    try:
        summary = run_demo(args.server, seed=args.seed, days=args.days, api_key=args.api_key)
    except DemoError as exc:
        return fail(str(exc))
    sys.stdout.write(format_summary(summary, args.server))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="send example LLM traces, scores and training runs to a running collector",
        description="Fill a running collector with realistic demo data through OTLP: an instrumented "
        "OpenAI agent against a local fake API, a few days of backdated LLM calls, and training runs.",
    )
    p.add_argument(
        "--server",
        default=os.environ.get("TRACEHOUSE_SERVER") or DEFAULT_SERVER,
        help=f"the collector's HTTP address (TRACEHOUSE_SERVER, default {DEFAULT_SERVER})",
    )
    add_api_key_arg(p)
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed sends the same content")
    p.add_argument("--days", type=int, default=7, help="days of backdated LLM call history (default 7)")
    p.set_defaults(func=cmd_demo)
