"""`tracehouse.score(...)`: record an evaluation result for a span, a trace or a run.

A score travels as an OpenTelemetry log record named `gen_ai.evaluation.result` (the GenAI
semantic conventions' evaluation event), with `gen_ai.evaluation.name`,
`gen_ai.evaluation.score.value`, `gen_ai.evaluation.score.label` and
`gen_ai.evaluation.explanation`, carrying the evaluated span's trace and span ids. The
collector attributes it to that span's model, run and session when it is queried, so a score
may be sent before or after the span itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from tracehouse._run import Run

EVENT_NAME = "gen_ai.evaluation.result"
RUN_ID = "tracehouse.run.id"


def _get_logger() -> Any:
    from tracehouse import _setup

    return _setup.event_logger()


def _hex_id(value: Any, digits: int, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) == digits:
        try:
            number = int(value, 16)
        except ValueError:
            number = 0
    else:
        number = 0
    if not 0 < number < 16**digits:
        raise ValueError(f"{what} must be {digits} hex digits (or a non-zero int), got {value!r}")
    return number


def _response_id(response: Any) -> str:
    """The provider's id of a response object (OpenAI, Anthropic, Mistral: `id`; google-genai:
    `response_id`), or the id itself."""
    if isinstance(response, str):
        rid: Any = response
    elif isinstance(response, Mapping):
        rid = response.get("id") or response.get("response_id")
    else:
        rid = getattr(response, "id", None) or getattr(response, "response_id", None)
    if not isinstance(rid, str) or not rid:
        raise ValueError(f"response must be a response object with an id, or the id, got {response!r}")
    return rid


def _llm_call(response: Any, last_llm_call: bool) -> tuple[int, int, str | None]:
    """(trace id, span id, response id) of the instrumented LLM call being scored."""
    from tracehouse import _calls

    if response is not None:
        rid = _response_id(response)
        context = _calls.by_response_id(rid)
        if context is None:
            raise ValueError(f"no LLM call that returned response id {rid!r} was traced in this process")
        return context.trace_id, context.span_id, rid
    last = _calls.last()
    if last is None:
        raise ValueError("nothing to score: no instrumented LLM call has finished in this context")
    context, last_id = last
    return context.trace_id, context.span_id, last_id


def _subject(span: Any, trace_id: Any, span_id: Any, run: Any) -> tuple[int, int, str]:
    """(trace id, span id, run id) of what is scored; 0 / '' where not applicable."""
    from opentelemetry import trace

    if run is not None:
        run_id = getattr(run, "id", run)
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run must be a run id or a Run, got {run!r}")
        return 0, 0, run_id
    if trace_id is not None:
        sid = _hex_id(span_id, 16, "span_id") if span_id is not None else 0
        return _hex_id(trace_id, 32, "trace_id"), sid, ""
    if span_id is not None:
        raise ValueError("span_id needs trace_id")
    target = span if span is not None else trace.get_current_span()
    ctx = target.get_span_context() if hasattr(target, "get_span_context") else None
    if ctx is None or not ctx.is_valid:
        if span is None:
            active = _active_run()
            if active is not None:  # outside any span but inside `with tracehouse.run(...)`
                return 0, 0, active.id
        raise ValueError("nothing to score: no span is active; pass span=, trace_id= (and span_id=) or run=")
    return ctx.trace_id, ctx.span_id, ""


def _active_run() -> Any:
    try:
        from tracehouse._run import active_run
    except ImportError:  # a build without runs
        return None
    return active_run()


def score(
    name: str,
    value: float | int | bool | None = None,
    label: str | None = None,
    explanation: str | None = None,
    *,
    span: Span | None = None,
    trace_id: str | int | None = None,
    span_id: str | int | None = None,
    run: Run | str | None = None,
    response: Any = None,
    last_llm_call: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """Record an evaluation result named `name` with a numeric `value` and/or a `label`.

    What is scored: `response` (a response object an instrumented client returned, or its
    id: that LLM call's span, with `gen_ai.response.id`), else with `last_llm_call=True` the
    last instrumented LLM call finished in this context, else `span` (an OpenTelemetry span),
    else `trace_id` (32 hex digits; with `span_id` one span of it), else `run` (a run id or
    Run), else the current span, else the active run. Raises ValueError for a bad argument or
    when there is nothing to score.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("score name must be a non-empty string")
    if value is None and label is None:
        raise ValueError("a score needs a value, a label or both")
    attrs: dict[str, Any] = {"gen_ai.evaluation.name": name}
    if value is not None:
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"score value must be a finite number, got {value!r}")
        attrs["gen_ai.evaluation.score.value"] = float(value)
    if label is not None:
        attrs["gen_ai.evaluation.score.label"] = str(label)
    if explanation is not None:
        attrs["gen_ai.evaluation.explanation"] = str(explanation)
    if response is not None or last_llm_call:
        tid, sid, response_id = _llm_call(response, last_llm_call)
        run_id = ""
        if response_id:
            attrs["gen_ai.response.id"] = response_id
    else:
        tid, sid, run_id = _subject(span, trace_id, span_id, run)
    if run_id:
        attrs[RUN_ID] = run_id
    for key, val in (attributes or {}).items():
        attrs.setdefault(str(key), val)
    _emit(_get_logger(), tid, sid, attrs)


def _emit(logger: Any, trace_id: int, span_id: int, attrs: dict[str, Any]) -> None:
    import warnings

    from opentelemetry.context import Context

    now = time.time_ns()
    fields: dict[str, Any] = {
        "timestamp": now,
        "observed_timestamp": now,
        "trace_id": trace_id,
        "span_id": span_id,
        "body": f"{attrs['gen_ai.evaluation.name']} evaluation result",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:  # OpenTelemetry SDK 1.35+: the API record, with the OTLP event_name field.
            from opentelemetry._logs import LogRecord

            # An empty context: a trace-level score must not pick up the current span's id.
            record = LogRecord(context=Context(), event_name=EVENT_NAME, attributes=attrs, **fields)
        except (ImportError, TypeError):  # older SDKs: the event name as an attribute
            from opentelemetry.sdk._logs import LogRecord as SdkLogRecord  # type: ignore[attr-defined]  # SDK < 1.35

            record = SdkLogRecord(attributes={**attrs, "event.name": EVENT_NAME}, **fields)
    logger.emit(record)


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Send scores recorded so far (they are also flushed at exit)."""
    from opentelemetry import _logs

    provider = _logs.get_logger_provider()
    flush = getattr(provider, "force_flush", None)
    return bool(flush(timeout_millis)) if flush else True
