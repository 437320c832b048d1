"""Helpers the GenAI client instrumentors share: reading request params and responses, capped
JSON content that stays valid JSON, stream proxies that end a call exactly once, and the GenAI
client metrics (token usage, duration, and for streams time to first chunk and per chunk).

Nothing here imports an instrumented library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import wrapt
from opentelemetry import metrics

from tracehouse.instrumentors import _semconv as sc

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


TRUNCATION_MARK = "…[truncated]"


def capped_json(value: Any, limit: int) -> tuple[str, bool]:
    """JSON text of `value` in at most `limit` UTF-8 bytes, and whether it had to be shortened.

    Shortened JSON is still valid JSON of the same shape: the longest strings are cut (each
    ending in TRUNCATION_MARK) just enough to fit; if even empty strings do not fit, items are
    dropped from the front of the outer list (the oldest messages)."""
    text = _ENCODER.encode(value)
    if len(text) <= limit and (text.isascii() or len(text.encode("utf-8")) <= limit):
        return text, False
    low, high, best = 0, _longest_string(value), None
    while low <= high:  # the longest string length that still fits
        keep = (low + high) // 2
        candidate = _ENCODER.encode(_shorten(value, keep))
        if len(candidate.encode("utf-8")) <= limit:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    if best is not None:
        return best, True
    items = _shorten(value, 0)
    while isinstance(items, list) and items:
        items = items[1:]
        candidate = _ENCODER.encode(items)
        if len(candidate.encode("utf-8")) <= limit:
            return candidate, True
    return ("[]" if isinstance(value, list | tuple) else "{}"), True


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_string(v) for v in value), default=0)
    return len(str(value)) if value is not None and not isinstance(value, int | float | bool) else 0


def _shorten(value: Any, keep: int) -> Any:
    """`value` with every string longer than `keep` characters cut to `keep` plus the mark."""
    if isinstance(value, str):
        return value if len(value) <= keep else value[:keep] + TRUNCATION_MARK
    if isinstance(value, dict):
        return {k: _shorten(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten(v, keep) for v in value]
    if value is None or isinstance(value, int | float | bool):
        return value
    return _shorten(str(value), keep)


# json.dumps(value, ensure_ascii=False, default=str), without building an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


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
# Chunks of a stream come milliseconds apart: finer buckets than whole operations get.
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# Span attributes that the metrics carry as they are.
_METRIC_ATTRIBUTES = (
    sc.OPERATION,
    sc.PROVIDER,
    sc.REQUEST_MODEL,
    sc.RESPONSE_MODEL,
    sc.SERVER_ADDRESS,
    sc.SERVER_PORT,
    sc.ERROR_TYPE,
    sc.OPENAI_RESPONSE_SERVICE_TIER,
    sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
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
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_per_output_chunk = meter.create_histogram(
            sc.METRIC_TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time between consecutive chunks of a streamed response",
            explicit_bucket_boundaries_advisory=CHUNK_BUCKETS,
        )

    def record(
        self,
        attributes: Mapping[str, Any],
        duration_s: float,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        first_chunk_s: float | None = None,
        chunk_gaps_s: Sequence[float] = (),
    ) -> None:
        """One finished operation; `attributes` are its span's (only the metric ones are kept).
        The streaming histograms only for a streamed call (`first_chunk_s` known). Never raises."""
        try:
            if _drops(self.duration) and _drops(self.token_usage):
                return
            attrs = {k: attributes[k] for k in _METRIC_ATTRIBUTES if attributes.get(k) is not None}
            self.duration.record(max(duration_s, 0.0), attrs)
            for kind, count in (("input", input_tokens), ("output", output_tokens)):
                if isinstance(count, int) and not isinstance(count, bool):
                    self.token_usage.record(count, {**attrs, sc.TOKEN_TYPE: kind})
            if first_chunk_s is not None:
                self.time_to_first_chunk.record(max(first_chunk_s, 0.0), attrs)
                for gap in chunk_gaps_s:
                    self.time_per_output_chunk.record(max(gap, 0.0), attrs)
        except Exception:
            pass
