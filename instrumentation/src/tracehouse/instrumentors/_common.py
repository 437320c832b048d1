"""Helpers the GenAI client instrumentors share: reading request params and responses, capped
JSON content, the error type, stream proxies that end a call's span exactly once, and the GenAI
client metrics (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`).

Nothing here imports an instrumented library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

# -- reading params and responses ----------------------------------------------------------------


_PLAIN = frozenset({str, int, float, bool, list, tuple, dict})
_SENTINELS = ("NotGiven", "Omit")


def given(value: Any) -> bool:
    """False for None and for the SDKs' NotGiven / Omit sentinels."""
    if value is None:
        return False
    t = type(value)
    return t in _PLAIN or t.__name__ not in _SENTINELS


def get(obj: Any, key: str, default: Any = None) -> Any:
    """Attribute or mapping key: request params are dicts, responses are models."""
    if obj is None:
        return default
    value = obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)
    if value is None:
        return default
    t = type(value)  # given(), inlined: this runs dozens of times a call
    return value if t in _PLAIN or t.__name__ not in _SENTINELS else default


def seq(value: Any) -> list | tuple:
    """Only lists and tuples are read: an iterator the application passed must reach the SDK whole."""
    return value if isinstance(value, list | tuple) else ()


def args_json(raw: Any) -> Any:
    """Tool-call arguments as JSON when they parse, else as given."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_unset=True)
        except Exception:
            return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if given(v)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def capped_json(value: Any, limit: int) -> str:
    """JSON text of `value`, cut to at most `limit` UTF-8 bytes (never inside a character)."""
    text = _ENCODER.encode(value)
    if len(text) <= limit and text.isascii():  # as many bytes as characters: nothing to cut
        return text
    raw = text.encode("utf-8")
    if len(raw) > limit:
        text = raw[:limit].decode("utf-8", "ignore")
    return text


# json.dumps(value, ensure_ascii=False, default=str), without building an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


def record_error(
    span: Any, exc: BaseException, metric_attrs: dict[str, Any], status_code: Any = None
) -> None:
    """Mark a call's span (and its metric attributes) failed with `exc`, plus the HTTP status
    when the SDK's exception carries a real one."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
    kind = error_type(exc)
    span.set_attribute("error.type", kind)
    metric_attrs["error.type"] = kind
    if isinstance(status_code, int) and not isinstance(status_code, bool) and 100 <= status_code <= 599:
        span.set_attribute("http.response.status_code", status_code)


# -- one LLM call, one span -----------------------------------------------------------------------

# Set while a routing library's call (litellm) is traced: the provider SDK call it makes inside is
# the same LLM call, so the SDK instrumentors make no span of their own for it.
_ROUTED_CALL_KEY = otel_context.create_key("tracehouse-routed-llm-call")


def routed_call_context(span: trace.Span) -> otel_context.Context:
    """The context to run a routed call in: `span` current, nested GenAI client spans suppressed."""
    return otel_context.set_value(_ROUTED_CALL_KEY, True, trace.set_span_in_context(span))


def inside_routed_call() -> bool:
    return otel_context.get_value(_ROUTED_CALL_KEY) is True


# -- streams -------------------------------------------------------------------------------------


class StreamedCall(Protocol):
    def chunk(self, chunk: Any) -> bool | None:
        """Take a chunk in; True hides it from the application (a chunk we asked for)."""
        ...

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None: ...


class StreamProxy(wrapt.ObjectProxy):
    """A sync SDK stream as the application knows it; `call.end()` runs once, however it ends:
    exhausted, failed mid-stream, closed, left through its context manager, or collected."""

    def __init__(self, stream: Any, call: StreamedCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        call = self._self_call
        while True:
            try:
                chunk = self.__wrapped__.__next__()
            except StopIteration:
                call.end(streamed=True)
                raise
            except BaseException as exc:
                call.end(exc, streamed=True)
                raise
            if call.chunk(chunk) is not True:
                return chunk

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_call.end(exc, streamed=True)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.end(streamed=True)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None:
            call.end(streamed=True)


class AsyncStreamProxy(wrapt.ObjectProxy):
    """An async SDK stream as the application knows it; `call.end()` runs once."""

    def __init__(self, stream: Any, call: StreamedCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        call = self._self_call
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                call.end(streamed=True)
                raise
            except BaseException as exc:
                call.end(exc, streamed=True)
                raise
            if call.chunk(chunk) is not True:
                return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_call.end(exc, streamed=True)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_call.end(streamed=True)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None:
            call.end(streamed=True)


# -- metrics -------------------------------------------------------------------------------------

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# Span attributes that the metrics carry as they are.
_METRIC_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
)


_UNSET = object()


def _drops(instrument: Any) -> bool:
    """True for an instrument that records nothing: a no-op one, or the API's proxy one while
    no meter provider is set (checked at every call: a provider may be set later)."""
    real = getattr(instrument, "_real_instrument", _UNSET)
    if real is not _UNSET:
        if real is None:
            return True
        instrument = real
    return isinstance(instrument, metrics.NoOpHistogram)


class GenAIMetrics:
    """The GenAI client histograms of one instrumentor's meter."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def record(
        self,
        attributes: Mapping[str, Any],
        duration_s: float,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """One finished operation; `attributes` are its span's (only the metric ones are kept).
        Never raises."""
        try:
            if _drops(self.duration) and _drops(self.token_usage):
                return
            attrs = {k: attributes[k] for k in _METRIC_ATTRIBUTES if attributes.get(k) is not None}
            self.duration.record(max(duration_s, 0.0), attrs)
            for kind, count in (("input", input_tokens), ("output", output_tokens)):
                if isinstance(count, int) and not isinstance(count, bool):
                    self.token_usage.record(count, {**attrs, "gen_ai.token.type": kind})
        except Exception:
            pass
