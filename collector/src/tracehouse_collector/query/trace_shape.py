"""What a reader of a trace or session needs without a store: the trace id check, previews of
content, the depth-first walk of a span tree and the columns of a session's turns.

query/traces.py, trace_list.py and sessions.py build the answers and use these; the CLI uses them on answers a server sent,
so its `--server` path imports only this (no store, no normaliser: tests/project/test_cli_startup.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PREVIEW_CHARS = 200  # first input / last output in lists

TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")

TURN_COLUMNS = [
    "turn",
    "trace_id",
    "start_time",
    "status",
    "latency_ms",
    "models",
    "total_tokens",
    "cost_usd",
    "input",
    "output",
]


def check_trace_id(trace_id: str) -> str:
    tid = (trace_id or "").strip().lower()
    if not TRACE_ID_RE.match(tid):
        raise ValueError(f"trace id {trace_id!r} is not 32 hexadecimal digits")
    return tid


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def walk(spans: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(depth, span) for every span of a tree, depth first in start order (no recursion:
    agent loops can nest deeply)."""
    stack = [(0, s) for s in reversed(spans)]
    while stack:
        depth, s = stack.pop()
        yield depth, s
        stack.extend((depth + 1, c) for c in reversed(s["children"]))
