"""`@tracehouse.trace`: spans for the application's own steps (agents, tools, retrievals, ...)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, overload

from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracehouse import __version__
from tracehouse._setup import ensure_tracing

F = TypeVar("F", bound=Callable[..., Any])

Kind = Literal["agent", "tool", "retrieval", "workflow", "embedding", "llm", "chain", "task"]
"""What a traced step is; sets `gen_ai.operation.name` (see KINDS)."""

# Span kinds of GenAI applications -> gen_ai.operation.name.
KINDS: dict[str, str] = {
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "retrieval": "retrieval",
    "workflow": "invoke_workflow",
    "embedding": "embeddings",
    "llm": "chat",
    "chain": "chain",
    "task": "",
}


# A kind="llm" span without a provider in its attributes (the conventions require one).
UNKNOWN_PROVIDER = "unknown"


def _span_name_and_attributes(
    kind: str, name: str, attributes: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The span name and attributes the GenAI conventions give a step of this kind: tools are
    `execute_tool {name}`, agents `invoke_agent {name}`, LLM calls `chat {model}`."""
    attrs = dict(attributes or {})
    operation = KINDS[kind]
    if operation:
        attrs["gen_ai.operation.name"] = operation
    if kind == "tool":
        tool = attrs.setdefault("gen_ai.tool.name", name)
        attrs.setdefault("gen_ai.tool.type", "function")
        return f"{operation} {tool}", attrs
    if kind == "agent":
        return f"{operation} {attrs.setdefault('gen_ai.agent.name', name)}", attrs
    if kind == "llm":
        attrs.setdefault("gen_ai.provider.name", UNKNOWN_PROVIDER)
        model = attrs.get("gen_ai.request.model")
        return (f"{operation} {model}" if isinstance(model, str) and model else operation), attrs
    return name, attrs


def _tracer() -> otel_trace.Tracer:
    ensure_tracing()
    return otel_trace.get_tracer("tracehouse", __version__)


def _record_error(span: otel_trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))
    span.set_attribute("error.type", type(exc).__qualname__)


assert set(get_args(Kind)) == set(KINDS), "Kind and KINDS name the same kinds"


@overload
def trace(func: F, /) -> F: ...


@overload
def trace(
    *, name: str | None = None, kind: Kind = "task", attributes: Mapping[str, Any] | None = None
) -> Callable[[F], F]: ...


def trace(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    kind: Kind = "task",
    attributes: Mapping[str, Any] | None = None,
) -> F | Callable[[F], F]:
    """Decorate a function (sync, async, generator or async generator) to run inside a span.

    `kind` is one of agent, tool, retrieval, workflow, embedding, llm, chain, task; it sets
    `gen_ai.operation.name` so Tracehouse shows the step with its type. As the GenAI conventions
    name them, a tool's span is `execute_tool {name}` (with `gen_ai.tool.name`), an agent's
    `invoke_agent {name}` (with `gen_ai.agent.name`), `name` defaulting to the function's; an
    llm step is a CLIENT span `chat {model}` whose model and provider come from `attributes`
    (`gen_ai.request.model`, `gen_ai.provider.name`, else "unknown"). A generator's span
    covers its whole iteration and ends exactly once, also when the consumer stops early.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")

    def decorate(fn: F) -> F:
        default = name or (fn.__name__ if kind in ("tool", "agent") else fn.__qualname__)
        span_name, attrs = _span_name_and_attributes(kind, default, attributes)
        # An LLM call leaves the process (a CLIENT span, as the instrumentors' calls are).
        span_kind = SpanKind.CLIENT if kind == "llm" else SpanKind.INTERNAL

        def start():
            return _tracer().start_as_current_span(
                span_name,
                kind=span_kind,
                attributes=attrs,
                record_exception=False,
                set_status_on_exception=False,
            )

        # Generators suspend: their span is made current only while their body runs, never
        # across a yield (that would leak it into the consumer's context).
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                span = _tracer().start_span(span_name, kind=span_kind, attributes=attrs)
                try:
                    with otel_trace.use_span(span, end_on_exit=False):
                        agen = fn(*args, **kwargs)
                    while True:
                        with otel_trace.use_span(
                            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                        ):
                            try:
                                item = await agen.__anext__()
                            except StopAsyncIteration:
                                return
                        yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    _record_error(span, exc)
                    raise
                finally:
                    span.end()

            return agen_wrapper  # type: ignore[return-value]

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                span = _tracer().start_span(span_name, kind=span_kind, attributes=attrs)
                try:
                    with otel_trace.use_span(span, end_on_exit=False):
                        gen = fn(*args, **kwargs)
                    sent: Any = None
                    while True:
                        with otel_trace.use_span(
                            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                        ):
                            try:
                                item = gen.send(sent)
                            except StopIteration as stop:
                                return stop.value
                        sent = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:
                    _record_error(span, exc)
                    raise
                finally:
                    span.end()

            return gen_wrapper  # type: ignore[return-value]

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with start() as span:
                    try:
                        return await fn(*args, **kwargs)
                    except BaseException as exc:
                        _record_error(span, exc)
                        raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with start() as span:
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    _record_error(span, exc)
                    raise

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
