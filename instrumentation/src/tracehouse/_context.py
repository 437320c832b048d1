"""`tracehouse.context(...)`: session, user and metadata on every span started inside it. The
session id is written as `session.id` and as the GenAI conventions' `gen_ai.conversation.id`."""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

_current: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tracehouse_context", default=None
)
# The eval example (tracehouse._evals.EvalExample) whose block is active: spans started in it
# link their traces to it.
current_example: contextvars.ContextVar[Any] = contextvars.ContextVar("tracehouse_eval_example", default=None)

SESSION_ID = "session.id"
CONVERSATION_ID = "gen_ai.conversation.id"  # the GenAI conventions' name for the same session
USER_ID = "user.id"
METADATA_PREFIX = "tracehouse.metadata."


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


@contextlib.contextmanager
def context(*, session_id: str | None = None, user_id: str | None = None, **metadata: Any) -> Iterator[None]:
    """Attach a session, a user and metadata to every span started inside the block.

    Nested blocks add to (and may override) the outer ones; threads and asyncio tasks started
    inside inherit them, as they inherit any contextvars.
    """
    attrs = dict(_current.get() or {})
    if session_id is not None:
        attrs[SESSION_ID] = attrs[CONVERSATION_ID] = str(session_id)
    if user_id is not None:
        attrs[USER_ID] = str(user_id)
    for key, value in metadata.items():
        attrs[METADATA_PREFIX + key] = _text(value)
    token = _current.set(attrs)
    try:
        yield
    finally:
        _current.reset(token)


def current_attributes() -> dict[str, str]:
    return _current.get() or {}


class ContextSpanProcessor(SpanProcessor):
    """Copies the active `tracehouse.context` onto spans as they start."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attrs = _current.get()
        if attrs:
            span.set_attributes(attrs)
            example = current_example.get()  # only ever set together with attrs
            if example is not None:
                example.on_span_start(span.get_span_context().trace_id)

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
