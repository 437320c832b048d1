"""The LLM calls the instrumentors finished last, for `tracehouse.score()` to find the call it
judges: the last one in the current context, or the one that returned a given response id."""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from typing import Any

_last: contextvars.ContextVar[Any] = contextvars.ContextVar("tracehouse_last_llm_call", default=None)
_by_response_id: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()
_KEEP = 4096  # response ids remembered (their span contexts only)


def remember(span: Any, response_id: Any) -> None:
    context = span.get_span_context()
    _last.set((context, response_id))
    if isinstance(response_id, str) and response_id:
        with _lock:
            _by_response_id[response_id] = context
            if len(_by_response_id) > _KEEP:
                _by_response_id.popitem(last=False)


def last() -> tuple[Any, str | None] | None:
    """(span context, response id) of the last LLM call finished in this context."""
    return _last.get()


def by_response_id(response_id: str) -> Any:
    """The span context of the call that returned `response_id`, while it is remembered."""
    with _lock:
        return _by_response_id.get(response_id)
