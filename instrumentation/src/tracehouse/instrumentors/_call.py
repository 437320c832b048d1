"""One GenAI client call's life, shared by every provider instrumentor.

`LLMCall` owns what is the same for every provider: the span (named `{operation} {model}`,
kind CLIENT, request attributes at its start), the types and enum values of the semantic
conventions, where message content goes (span, event, both or neither), truncation that keeps
JSON valid, the error, the GenAI client metrics, and ending exactly once. A provider's subclass
only maps its request, response and stream chunks to facts, through the setters below and three
stream hooks (as `opentelemetry-util-genai` separates the handler from its stream wrapper):

- `process_chunk(chunk)`: take one streamed chunk in (True hides it from the application);
- `on_stream_end()`: turn what the chunks said into facts, however the stream ended;
- `on_stream_error(exc)`: anything a provider reads from a mid-stream error.

`traced(start, is_async)` is the wrapper every patched method gets.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracehouse import _calls
from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._common import AsyncStreamProxy, StreamProxy, capped_json, get, jsonable, seq

if TYPE_CHECKING:
    from tracehouse.instrumentors._base import GenAIInstrumentor

# Set while a Tracehouse LLM call runs: a client library that another instrumented one calls
# inside (litellm -> openai, anthropic's own SDK spans) makes no second span for the same call.
IN_CALL = otel_context.create_key("tracehouse-llm-call")

# Providers' finish reasons -> the conventions' enum; a reason not listed is kept as the
# provider wrote it (the schema allows other strings).
FINISH_REASONS: dict[str, str] = {
    # OpenAI, Mistral, Ollama, LiteLLM
    "stop": sc.FINISH_STOP,
    "length": sc.FINISH_LENGTH,
    "tool_calls": sc.FINISH_TOOL_CALL,
    "function_call": sc.FINISH_TOOL_CALL,
    "content_filter": sc.FINISH_CONTENT_FILTER,
    "model_length": sc.FINISH_LENGTH,
    "error": sc.FINISH_ERROR,
    # Anthropic, Bedrock Converse
    "end_turn": sc.FINISH_STOP,
    "stop_sequence": sc.FINISH_STOP,
    "max_tokens": sc.FINISH_LENGTH,
    "tool_use": sc.FINISH_TOOL_CALL,
    "refusal": sc.FINISH_CONTENT_FILTER,
    "guardrail_intervened": sc.FINISH_CONTENT_FILTER,
    "content_filtered": sc.FINISH_CONTENT_FILTER,
    # OpenAI Responses incomplete_details
    "max_output_tokens": sc.FINISH_LENGTH,
    # Gemini (upper case; lower-cased before the look-up)
    "safety": sc.FINISH_CONTENT_FILTER,
    "recitation": sc.FINISH_CONTENT_FILTER,
    "blocklist": sc.FINISH_CONTENT_FILTER,
    "prohibited_content": sc.FINISH_CONTENT_FILTER,
    "spii": sc.FINISH_CONTENT_FILTER,
    "image_safety": sc.FINISH_CONTENT_FILTER,
    "malformed_function_call": sc.FINISH_ERROR,
    # Bedrock model bodies (Titan, Nova)
    "finish": sc.FINISH_STOP,
    "stop_criteria_met": sc.FINISH_STOP,
}

# An output message's finish_reason when the provider gave none: the call failed, or the
# application stopped reading the stream before the model finished (a Tracehouse value).
FINISH_INCOMPLETE = "incomplete"

_PLAIN_NUMBER = (int, float)


def finish_reason(raw: Any) -> str | None:
    """A provider's finish reason as the conventions spell it; None when there is none."""
    raw = getattr(raw, "value", raw)  # SDK enums
    if not isinstance(raw, str) or not raw:
        return None
    reason = FINISH_REASONS.get(raw)
    if reason is None:
        reason = FINISH_REASONS.get(raw.lower(), raw.lower() if raw.isupper() else raw)
    return reason


def function_tool(
    name: Any, description: Any = None, parameters: Any = None, kind: str = "function"
) -> dict[str, Any]:
    """A tool definition as the conventions' schema has it: top-level type and name."""
    tool: dict[str, Any] = {"type": kind, "name": name if isinstance(name, str) else str(name)}
    if isinstance(description, str) and description:
        tool["description"] = description
    if parameters is not None:
        tool["parameters"] = parameters
    return tool


def output_type(response_format: Any) -> str | None:
    """gen_ai.output.type from a `response_format` / `output_format` ({type: json_object |
    json_schema | text}, or a pydantic model class the SDK turns into a JSON schema)."""
    if isinstance(response_format, type):
        return sc.OUTPUT_JSON
    kind = get(response_format, "type")
    if kind in ("json_object", "json_schema", "json"):
        return sc.OUTPUT_JSON
    if kind == "text":
        return sc.OUTPUT_TEXT
    return None


def openai_tools(tools: Any) -> list[dict[str, Any]]:
    """Tool definitions in OpenAI's shapes (chat `{type: function, function: {name, ...}}`,
    Responses `{type: function, name, ...}`; Mistral, Ollama and LiteLLM take them too) in the
    conventions' shape; a built-in tool keeps its type as its name."""
    out = []
    for tool in seq(tools):
        kind = get(tool, "type", "function")
        function = get(tool, "function")
        source = function if function is not None else tool
        name = get(source, "name")
        out.append(
            function_tool(
                name if name is not None else kind,
                get(source, "description"),
                jsonable(get(source, "parameters")),
                str(kind),
            )
        )
    return out


def _double(value: Any) -> float | None:
    return float(value) if isinstance(value, _PLAIN_NUMBER) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class LLMCall:
    """One GenAI client operation and its span. Subclasses set request facts in `__init__`
    before calling `start()`, response facts in `on_response` / `on_stream_end`."""

    def __init__(
        self,
        inst: GenAIInstrumentor,
        operation: str,
        model: Any,
        provider: str | None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.inst = inst
        content = inst.content
        self.capture = content.span or content.event  # build content at all
        self.operation = operation
        attrs: dict[str, Any] = {sc.OPERATION: operation}
        if provider:
            attrs[sc.PROVIDER] = provider
        if isinstance(model, str) and model:
            attrs[sc.REQUEST_MODEL] = model
            self.name = f"{operation} {model}"
        else:
            self.name = operation
        if host:
            attrs[sc.SERVER_ADDRESS] = host
            if port:
                attrs[sc.SERVER_PORT] = port
        self.metric_attrs = dict(attrs)
        self.attrs = attrs  # the span's attributes at its start
        self.facts: dict[str, Any] = {}  # attributes known later, set on the span at its end
        self.event_content: dict[str, Any] | None = {} if content.event else None
        self.truncated: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.first_chunk: float | None = None  # seconds from the request to the first chunk
        self.chunk_gaps: list[float] = []
        self.last_chunk = 0.0
        self.error: BaseException | None = None
        self.ended = False
        self.span: Any = None
        self.started = 0.0

    # -- request facts (before start) --------------------------------------------------------------

    def request(
        self,
        *,
        max_tokens: Any = None,
        temperature: Any = None,
        top_p: Any = None,
        top_k: Any = None,
        frequency_penalty: Any = None,
        presence_penalty: Any = None,
        seed: Any = None,
        choice_count: Any = None,
        stop: Any = None,
        stream: bool = False,
        output_type: str | None = None,
        encoding_format: Any = None,
        dimensions: Any = None,
        conversation_id: Any = None,
    ) -> None:
        """Request parameters, typed as the conventions say (doubles stay doubles when the
        caller passed ints; a sentinel or None is left out)."""
        attrs = self.attrs
        for key, value in (
            (sc.REQUEST_TEMPERATURE, temperature),
            (sc.REQUEST_TOP_P, top_p),
            (sc.REQUEST_TOP_K, top_k),
            (sc.REQUEST_FREQUENCY_PENALTY, frequency_penalty),
            (sc.REQUEST_PRESENCE_PENALTY, presence_penalty),
        ):
            number = _double(value)
            if number is not None:
                attrs[key] = number
        for key, value in ((sc.REQUEST_MAX_TOKENS, max_tokens), (sc.REQUEST_SEED, seed)):
            number = _integer(value)
            if number is not None:
                attrs[key] = number
        count = _integer(choice_count)
        if count is not None and count != 1:
            attrs[sc.REQUEST_CHOICE_COUNT] = count
        if isinstance(stop, str):
            attrs[sc.REQUEST_STOP_SEQUENCES] = [stop]
        elif isinstance(stop, list | tuple) and stop:
            attrs[sc.REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
        if stream:
            attrs[sc.REQUEST_STREAM] = True
        if output_type:
            attrs[sc.OUTPUT_TYPE] = output_type
        if isinstance(encoding_format, str) and encoding_format:
            attrs[sc.REQUEST_ENCODING_FORMATS] = [encoding_format]
        dims = _integer(dimensions)
        if dims is not None:
            attrs[sc.EMBEDDINGS_DIMENSION_COUNT] = dims
        if isinstance(conversation_id, str) and conversation_id:
            attrs[sc.CONVERSATION_ID] = conversation_id

    def inputs(self, messages: Any = None, system: Any = None, tools: Any = None) -> None:
        """Content of the request (plain lists of dicts in the conventions' shapes); call only
        when `self.capture`."""
        for key, value in (
            (sc.INPUT_MESSAGES, messages),
            (sc.SYSTEM_INSTRUCTIONS, system),
            (sc.TOOL_DEFINITIONS, tools),
        ):
            if value:
                self._content(self.attrs, key, value)

    def _content(self, target: dict[str, Any], key: str, value: Any) -> None:
        limit = self.inst.max_content_bytes
        text, cut = capped_json(value, limit)
        if cut:
            self.truncated.append(key)
        if self.inst.content.span:
            target[key] = text
        if self.event_content is not None:
            self.event_content[key] = json.loads(text) if cut else value

    def start(self) -> None:
        self.span = self.inst.tracer.start_span(self.name, kind=SpanKind.CLIENT, attributes=self.attrs)
        self.started = time.monotonic()

    def run(self, send: Callable[[], Any]) -> Any:
        """`send()` (the request) with this call's span current; its failure ends the call."""
        token = self.attach()
        try:
            return send()
        except BaseException as exc:
            self.end(exc)
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]

    async def run_async(self, send: Callable[[], Any]) -> Any:
        """`await send()` with this call's span current; its failure ends the call."""
        token = self.attach()
        try:
            return await send()
        except BaseException as exc:
            self.end(exc)
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]

    def attach(self) -> object:
        """Make this call's span current (and mark the context as inside an LLM call)."""
        return otel_context.attach(
            otel_context.set_value(IN_CALL, True, trace.set_span_in_context(self.span))
        )

    # -- response facts ------------------------------------------------------------------------------

    def response_ids(self, response_id: Any = None, model: Any = None) -> None:
        if isinstance(response_id, str) and response_id:
            self.facts[sc.RESPONSE_ID] = response_id
        if isinstance(model, str) and model:
            self.facts[sc.RESPONSE_MODEL] = model
            self.metric_attrs[sc.RESPONSE_MODEL] = model

    def usage(
        self,
        input_tokens: Any = None,
        output_tokens: Any = None,
        cache_read: Any = None,
        cache_creation: Any = None,
        reasoning: Any = None,
    ) -> None:
        """Token counts as the conventions count them (input includes cached input)."""
        facts = self.facts
        inp = _integer(input_tokens)
        if inp is not None:
            self.input_tokens = facts[sc.USAGE_INPUT_TOKENS] = inp
        out = _integer(output_tokens)
        if out is not None:
            self.output_tokens = facts[sc.USAGE_OUTPUT_TOKENS] = out
        for key, value in (
            (sc.USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
            (sc.USAGE_CACHE_CREATION_INPUT_TOKENS, cache_creation),
            (sc.USAGE_REASONING_OUTPUT_TOKENS, reasoning),
        ):
            count = _integer(value)
            if count is not None:
                facts[key] = count

    def finish_reasons(self, raw: Iterable[Any]) -> None:
        reasons = [r for r in map(finish_reason, raw) if r]
        if reasons:
            self.facts[sc.RESPONSE_FINISH_REASONS] = reasons

    def outputs(self, messages: list[dict[str, Any]]) -> None:
        """The output messages ({role, parts, finish_reason: the provider's}); call only when
        `self.capture`. Each gets a finish reason of the conventions, never null."""
        if not messages:
            return
        missing = sc.FINISH_ERROR if self.error is not None else FINISH_INCOMPLETE
        for message in messages:
            message["finish_reason"] = finish_reason(message.get("finish_reason")) or missing
        self._content(self.facts, sc.OUTPUT_MESSAGES, messages)

    # -- hooks ---------------------------------------------------------------------------------------

    def prepare(self, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The arguments the method is called with (a provider may ask for more, e.g. usage)."""
        return args, kwargs

    def on_response(self, result: Any) -> None:
        """Facts from a non-streamed result."""

    def process_chunk(self, chunk: Any) -> bool | None:
        """Take one streamed chunk in; True hides it from the application."""
        return None

    def on_stream_end(self) -> None:
        """Facts from what the chunks said, however the stream ended."""

    def on_stream_error(self, exc: BaseException) -> None:
        """What a provider reads from an error raised mid-stream (before on_stream_end)."""

    def error_facts(self, exc: BaseException) -> tuple[str, int | None]:
        """(error.type, HTTP status) of a failed call: the exception's class name, and the status
        an SDK exception carries."""
        return type(exc).__qualname__, getattr(exc, "status_code", None)

    # -- life cycle ----------------------------------------------------------------------------------

    def response(self, result: Any) -> None:
        with contextlib.suppress(Exception):  # telemetry must never break the call
            self.on_response(result)

    def chunk(self, chunk: Any) -> bool | None:
        now = time.monotonic()
        if self.first_chunk is None:
            self.first_chunk = now - self.started
        else:
            self.chunk_gaps.append(now - self.last_chunk)
        self.last_chunk = now
        try:
            return self.process_chunk(chunk)
        except Exception:
            return None

    def returned(self, result: Any, is_async: bool) -> Any:
        """What the application gets back: a stream behind a proxy that ends this call, or the
        result itself once the call has ended."""
        if self.is_stream(result):
            return AsyncStreamProxy(result, self) if is_async else StreamProxy(result, self)
        self.response(result)
        self.end()
        return result

    def is_stream(self, result: Any) -> bool:
        return False

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        self.error = exc
        span = self.span
        facts = self.facts
        try:
            if streamed:
                if exc is not None:
                    self.on_stream_error(exc)
                self.on_stream_end()
                if self.first_chunk is not None:
                    facts[sc.RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk
            if exc is not None:
                self._record_error(exc)
        except Exception:
            pass
        finally:
            if self.truncated:
                facts[sc.CONTENT_TRUNCATED] = self.truncated
            if facts:
                span.set_attributes(facts)
            span.end()
            if self.event_content is not None:
                self._emit_details()
            _calls.remember(span, facts.get(sc.RESPONSE_ID))
            self.inst.metrics.record(
                self.metric_attrs,
                time.monotonic() - self.started,
                self.input_tokens,
                self.output_tokens,
                self.first_chunk if streamed else None,
                self.chunk_gaps,
            )

    def _record_error(self, exc: BaseException) -> None:
        kind, status = self.error_facts(exc)
        span = self.span
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
        self.facts[sc.ERROR_TYPE] = self.metric_attrs[sc.ERROR_TYPE] = kind
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            self.facts[sc.HTTP_STATUS_CODE] = status

    def _emit_details(self) -> None:
        """The `gen_ai.client.inference.operation.details` event: the call's attributes with its
        content as structured values, on the call's span."""
        try:
            attrs = {k: v for k, v in {**self.attrs, **self.facts}.items() if k not in sc.CONTENT_ATTRIBUTES}
            attrs.update(self.event_content or {})
            self.inst.emit_event(sc.EVENT_OPERATION_DETAILS, attrs, self.span)
        except Exception:
            pass


class CurrentSpanStream(StreamProxy):
    """A stream whose every step runs with the call's span current: libraries that send the
    request on the first step (ollama, google-genai) then make their HTTP span its child."""

    def __next__(self) -> Any:
        token = self._self_call.attach()  # type: ignore[attr-defined]
        try:
            return super().__next__()
        finally:
            otel_context.detach(token)


class AsyncCurrentSpanStream(AsyncStreamProxy):
    """An async generator of chunks (see CurrentSpanStream); `aclose()` ends the call too."""

    async def __anext__(self) -> Any:
        token = self._self_call.attach()  # type: ignore[attr-defined]
        try:
            return await super().__anext__()
        finally:
            otel_context.detach(token)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_call.end(streamed=True)


def already_traced(scope_fragment: str, model: Any, own_scopes: tuple[str, ...] = ()) -> bool:
    """True inside a Tracehouse LLM call (this same call, or a routing library's call around
    it), or inside another instrumentation's GenAI client span for the same call: a CLIENT span
    with `gen_ai.operation.name` from a scope naming this library (not one of `own_scopes`, the
    library's own spans) and the same model."""
    if otel_context.get_value(IN_CALL):
        return True
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) != SpanKind.CLIENT:
        return False
    attrs = getattr(span, "attributes", None) or {}
    if sc.OPERATION not in attrs:
        return False
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", "") or ""
    if scope_fragment not in scope.lower() or scope in own_scopes:
        return False
    other = attrs.get(sc.REQUEST_MODEL)
    return other is None or not isinstance(model, str) or other == model


def traced(start: Callable[[Any, Any, Any], LLMCall | None], is_async: bool) -> Callable[..., Any]:
    """The wrapper of a patched method: `start(instance, args, kwargs)` makes the call (None: not
    traced), which then sees the method run and decides what the application gets back."""
    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = start(instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            args, kwargs = call.prepare(args, kwargs)
            result = await call.run_async(lambda: wrapped(*args, **kwargs))
            return call.returned(result, True)

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = start(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        args, kwargs = call.prepare(args, kwargs)
        return call.returned(call.run(lambda: wrapped(*args, **kwargs)), False)

    return wrapper


def starter(
    make: Callable[..., LLMCall], scope_fragment: str | None = None, own_scopes: tuple[str, ...] = ()
) -> Callable[..., LLMCall | None]:
    """`make(instance, args, kwargs)` guarded: nothing when instrumentation is suppressed or the
    call is already traced, and never an exception from telemetry."""

    def start(instance: Any, args: Any, kwargs: Any) -> LLMCall | None:
        if not is_instrumentation_enabled():
            return None
        if scope_fragment is None:
            if otel_context.get_value(IN_CALL):
                return None
        elif already_traced(scope_fragment, kwargs.get("model"), own_scopes):
            return None
        try:
            return make(instance, args, kwargs)
        except Exception:
            return None

    return start
