"""Google Gen AI SDK (`google-genai`, module `google.genai`) instrumentation: `generate_content`,
`generate_content_stream` and `embed_content` of `client.models` and `client.aio.models`, as
OpenTelemetry GenAI client spans (current conventions) and GenAI client metrics.

Importing this module does not import google.genai; patch() does, once BaseInstrumentor has
checked that it is installed. The objects the application receives are the ones the SDK returns;
streams (a generator, or for `aio` an async generator that the awaited call returns) are wrapped
in a transparent proxy that ends the span exactly once, however the stream ends. The stream's
HTTP request is made on its first chunk: our span is the current span while each chunk is read.

Provider: `gcp.vertex_ai` for a client in Vertex mode, else `gcp.gemini` (Gemini Developer API).

Usage follows the OTel conventions: Gemini's `prompt_token_count` already includes
`cached_content_token_count` (-> `gen_ai.usage.cache_read.input_tokens`); tool-use prompt tokens
(built-in tools' results, which Gemini counts apart) are input too. Output tokens INCLUDE
reasoning: `candidates_token_count + thoughts_token_count`, with the thoughts also as
`gen_ai.usage.reasoning.output_tokens`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind

from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._common import (
    AsyncStreamProxy,
    GenAIMetrics,
    StreamProxy,
    capped_json,
    get,
    inside_routed_call,
    jsonable,
    record_error,
    seq,
)

_CALL_KEY = otel_context.create_key("tracehouse-google-genai-call")

_MODULE = "google.genai.models"
_CLASSES = ("Models", "AsyncModels")
_GENERATE, _STREAM, _EMBED = "generate_content", "generate_content_stream", "embed_content"

# Gemini FinishReason -> the conventions' finish reasons; others are lower-cased.
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}

TTFC = "tracehouse.response.time_to_first_chunk"


def _enum(value: Any) -> Any:
    return getattr(value, "value", value)


def _finish(reason: Any) -> str | None:
    reason = _enum(reason)
    if not reason or not isinstance(reason, str):
        return None
    return _FINISH.get(reason.upper(), reason.lower())


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _server(instance: Any) -> tuple[str | None, int | None, str]:
    client = getattr(instance, "_api_client", None)
    provider = "gcp.vertex_ai" if getattr(client, "vertexai", False) is True else "gcp.gemini"
    host = port = None
    try:
        url = urlparse(str(client._http_options.base_url))  # type: ignore[union-attr]
        host = url.hostname or None
        port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    except Exception:
        pass
    return host, port, provider


def _get2(obj: Any, snake: str, camel: str) -> Any:
    """A field of an SDK model, or of a dict in either of the spellings the SDK accepts."""
    value = get(obj, snake)
    return get(obj, camel) if value is None and isinstance(obj, dict) else value


def _already_traced(model: Any) -> bool:
    """True inside a call we are already tracing, or inside another instrumentor's GenAI client
    span for this same google-genai call (it wrapped the method outside ours), or inside a
    routed call (litellm) that is this call's span."""
    if otel_context.get_value(_CALL_KEY) or inside_routed_call():
        return True
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) != SpanKind.CLIENT:
        return False
    attrs = getattr(span, "attributes", None) or {}
    if "gen_ai.operation.name" not in attrs:
        return False
    scope = (getattr(getattr(span, "instrumentation_scope", None), "name", "") or "").lower()
    if "google_genai" not in scope and "google-genai" not in scope and "google.genai" not in scope:
        return False
    other = attrs.get("gen_ai.request.model")
    return other is None or not isinstance(model, str) or other == model


# -- content (current GenAI conventions: role + parts) -------------------------------------------


def _modality(mime: Any) -> str | None:
    if isinstance(mime, str):
        for kind in ("image", "audio", "video"):
            if mime.startswith(kind + "/"):
                return kind
    return None


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    text = get(part, "text")
    if isinstance(text, str):
        return {"type": "reasoning" if get(part, "thought") is True else "text", "content": text}
    call = _get2(part, "function_call", "functionCall")
    if call is not None:
        return {
            "type": "tool_call",
            "id": get(call, "id"),
            "name": get(call, "name"),
            "arguments": jsonable(get(call, "args")),
        }
    result = _get2(part, "function_response", "functionResponse")
    if result is not None:
        return {
            "type": "tool_call_response",
            "id": get(result, "id"),
            "name": get(result, "name"),
            "response": jsonable(get(result, "response")),
        }
    blob = _get2(part, "inline_data", "inlineData")
    if blob is not None:
        mime = _get2(blob, "mime_type", "mimeType")
        out: dict[str, Any] = {"type": "blob"}  # the bytes themselves are not captured
        if _modality(mime):
            out["modality"] = _modality(mime)
        if isinstance(mime, str):
            out["mime_type"] = mime
        return out
    file = _get2(part, "file_data", "fileData")
    if file is not None:
        mime = _get2(file, "mime_type", "mimeType")
        out = {"type": "uri", "uri": _get2(file, "file_uri", "fileUri")}
        if _modality(mime):
            out["modality"] = _modality(mime)
        if isinstance(mime, str):
            out["mime_type"] = mime
        return out
    code = _get2(part, "executable_code", "executableCode")
    if code is not None:
        return {"type": "executable_code", "content": get(code, "code")}
    ran = _get2(part, "code_execution_result", "codeExecutionResult")
    if ran is not None:
        return {"type": "code_execution_result", "content": get(ran, "output")}
    if type(part).__module__.startswith("PIL."):
        return {"type": "blob", "modality": "image"}  # a PIL image the SDK sends inline
    uri = get(part, "uri")
    if isinstance(uri, str) and uri:  # an uploaded File
        return {
            "type": "uri",
            "uri": uri,
            **({"mime_type": m} if isinstance(m := get(part, "mime_type"), str) else {}),
        }
    return {"type": type(part).__name__.lower() if not isinstance(part, dict) else "unknown"}


def _tool(tool: Any) -> Any:
    """A tool definition; a Python function (automatic function calling) by its name and doc."""
    if callable(tool) and not hasattr(tool, "model_dump"):
        out = {"type": "function", "name": getattr(tool, "__name__", type(tool).__name__)}
        doc = getattr(tool, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            out["description"] = doc.strip()
        return out
    return jsonable(tool)


def _is_content(item: Any) -> bool:
    if isinstance(item, dict):
        return "parts" in item or "role" in item
    return any(cls.__name__ == "Content" for cls in type(item).__mro__)  # UserContent, ModelContent too


def _message(role: Any, parts: list[dict[str, Any]]) -> dict[str, Any]:
    role = "assistant" if role == "model" else (role if isinstance(role, str) and role else "user")
    if role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
        role = "tool"  # Gemini sends function responses as user turns
    return {"role": role, "parts": parts}


def _input_messages(contents: Any) -> list[dict[str, Any]]:
    """`contents` as the SDK takes it: a string, a Part, a Content, or a list of them (Contents
    and dicts alike); loose parts in a row make one user turn, as the SDK sends them."""
    items = contents if isinstance(contents, list | tuple) else [contents]
    out: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    for item in items:
        if item is None:
            continue
        if _is_content(item):
            if loose:
                out.append(_message("user", loose))
                loose = []
            out.append(_message(get(item, "role"), [_part(p) for p in seq(get(item, "parts"))]))
        else:
            loose.append(_part(item))
    if loose:
        out.append(_message("user", loose))
    return out


def _system(instruction: Any) -> list[dict[str, Any]] | None:
    if instruction is None:
        return None
    if isinstance(instruction, str):
        return [{"type": "text", "content": instruction}] if instruction else None
    if _is_content(instruction):
        parts = [_part(p) for p in seq(get(instruction, "parts"))]
    else:
        items = instruction if isinstance(instruction, list | tuple) else [instruction]
        parts = [_part(p) for p in items]
    return parts or None


# -- one traced call -----------------------------------------------------------------------------


class _Call:
    """A span for one call: request attributes at start, response attributes at the end."""

    def __init__(
        self,
        inst: GoogleGenAIInstrumentor,
        instance: Any,
        kwargs: dict[str, Any],
        operation: str,
        stream: bool,
    ) -> None:
        self.inst = inst
        self.capture = inst.capture_content
        self.ended = False
        self.first_chunk: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        model = kwargs.get("model")
        host, port, provider = _server(instance)
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider}
        if isinstance(model, str) and model:
            attrs["gen_ai.request.model"] = model
        if host:
            attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        self.metric_attrs = dict(attrs)
        config = kwargs.get("config")
        if operation == "embeddings":
            dims = _int(get(config, "output_dimensionality"))
            if dims is not None:
                attrs["gen_ai.embeddings.dimension.count"] = dims
        else:
            self._request_attributes(attrs, kwargs.get("contents"), config, stream)
        name = f"{operation} {model}" if isinstance(model, str) and model else operation
        self.span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.started = time.monotonic()
        self.context = otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(self.span))
        # accumulated from stream chunks
        self.response_id = self.model_version = self.usage = None
        self.candidates: dict[int, dict[str, Any]] = {}

    def _request_attributes(self, attrs: dict[str, Any], contents: Any, config: Any, stream: bool) -> None:
        for key, attr in (
            ("temperature", "gen_ai.request.temperature"),
            ("top_p", "gen_ai.request.top_p"),
            ("top_k", "gen_ai.request.top_k"),
            ("max_output_tokens", "gen_ai.request.max_tokens"),
            ("presence_penalty", "gen_ai.request.presence_penalty"),
            ("frequency_penalty", "gen_ai.request.frequency_penalty"),
            ("seed", "gen_ai.request.seed"),
        ):
            value = _num(get(config, key))
            if value is not None:
                attrs[attr] = value
        count = _int(get(config, "candidate_count"))
        if count is not None and count != 1:
            attrs["gen_ai.request.choice.count"] = count
        stop = get(config, "stop_sequences")
        if isinstance(stop, list | tuple) and stop:
            attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        mime = get(config, "response_mime_type")
        if isinstance(mime, str) and mime:
            attrs["gen_ai.output.type"] = (
                "json" if mime.endswith("json") else "text" if mime.startswith("text/") else mime
            )
        if stream:
            attrs["gen_ai.request.stream"] = True
        # Selects the flex or priority price; the response does not echo it.
        tier = get(config, "service_tier")
        tier = getattr(tier, "value", tier)  # a ServiceTier enum or its string
        if isinstance(tier, str) and tier:
            attrs["tracehouse.request.service_tier"] = tier.lower()
        if not self.capture:
            return
        messages = _input_messages(contents)
        if messages:
            attrs["gen_ai.input.messages"] = self._json(messages)
        system = _system(get(config, "system_instruction"))
        if system:
            attrs["gen_ai.system_instructions"] = self._json(system)
        tools = seq(get(config, "tools"))
        if tools:
            attrs["gen_ai.tool.definitions"] = self._json([_tool(t) for t in tools])

    def _json(self, value: Any) -> str:
        return capped_json(value, self.inst.max_content_bytes)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        prompt = _int(get(usage, "prompt_token_count"))
        tool_prompt = _int(get(usage, "tool_use_prompt_token_count"))
        cached = _int(get(usage, "cached_content_token_count"))
        candidates = _int(get(usage, "candidates_token_count"))
        thoughts = _int(get(usage, "thoughts_token_count"))
        span = self.span
        if prompt is not None or tool_prompt is not None:
            self.input_tokens = (prompt or 0) + (tool_prompt or 0)
            span.set_attribute("gen_ai.usage.input_tokens", self.input_tokens)
        if cached is not None:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
        if candidates is not None or thoughts is not None:
            self.output_tokens = (candidates or 0) + (thoughts or 0)
            span.set_attribute("gen_ai.usage.output_tokens", self.output_tokens)
        if thoughts is not None:
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", thoughts)

    def _ids(self, rid: Any, model: Any) -> None:
        if isinstance(rid, str) and rid:
            self.span.set_attribute("gen_ai.response.id", rid)
        if isinstance(model, str) and model:
            self.span.set_attribute("gen_ai.response.model", model)
            self.metric_attrs["gen_ai.response.model"] = model

    def _output(self, candidates: list[tuple[list[dict[str, Any]], Any]]) -> None:
        finishes = [_finish(reason) for _parts, reason in candidates]
        if any(finishes):
            self.span.set_attribute("gen_ai.response.finish_reasons", [f for f in finishes if f])
        if self.capture and candidates:
            messages = [
                {"role": "assistant", "parts": parts, "finish_reason": finish}
                for (parts, _reason), finish in zip(candidates, finishes, strict=True)
            ]
            self.span.set_attribute("gen_ai.output.messages", self._json(messages))

    def response(self, result: Any) -> None:
        """Attributes from a GenerateContentResponse."""
        try:
            self._ids(get(result, "response_id"), get(result, "model_version"))
            self._usage(get(result, "usage_metadata"))
            candidates = [
                ([_part(p) for p in seq(get(get(c, "content"), "parts"))], get(c, "finish_reason"))
                for c in seq(get(result, "candidates"))
            ]
            self._output(candidates)
        except Exception:  # telemetry must never break the call
            pass

    def embed_response(self, result: Any) -> None:
        """Input tokens from an EmbedContentResponse, where the API counts them (Vertex AI)."""
        try:
            counts = [_num(get(get(e, "statistics"), "token_count")) for e in seq(get(result, "embeddings"))]
            if counts and all(c is not None for c in counts):
                self.input_tokens = int(sum(counts))  # type: ignore[arg-type]
                self.span.set_attribute("gen_ai.usage.input_tokens", self.input_tokens)
        except Exception:
            pass

    def chunk(self, chunk: Any) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.monotonic() - self.started
        try:
            self.response_id = get(chunk, "response_id") or self.response_id
            self.model_version = get(chunk, "model_version") or self.model_version
            self.usage = get(chunk, "usage_metadata") or self.usage  # cumulative: the last wins
            for position, candidate in enumerate(seq(get(chunk, "candidates"))):
                index = _int(get(candidate, "index"))
                slot = self.candidates.setdefault(
                    position if index is None else index, {"parts": [], "finish": None}
                )
                slot["finish"] = get(candidate, "finish_reason") or slot["finish"]
                for part in seq(get(get(candidate, "content"), "parts")):
                    new = _part(part)
                    last = slot["parts"][-1] if slot["parts"] else None
                    if last and new["type"] in ("text", "reasoning") and last["type"] == new["type"]:
                        last["content"] += new["content"]
                    else:
                        slot["parts"].append(new)
        except Exception:
            pass

    def _stream_results(self) -> None:
        if self.first_chunk is not None:
            self.span.set_attribute(TTFC, self.first_chunk)
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_chunk)
        self._ids(self.response_id, self.model_version)
        self._usage(self.usage)
        self._output(
            [(self.candidates[i]["parts"], self.candidates[i]["finish"]) for i in sorted(self.candidates)]
        )

    def end(self, exc: BaseException | None = None, streamed: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if streamed:
                self._stream_results()
            if exc is not None:
                record_error(self.span, exc, self.metric_attrs, getattr(exc, "code", None))
        except Exception:
            pass
        finally:
            self.span.end()
            self.inst.metrics.record(
                self.metric_attrs, time.monotonic() - self.started, self.input_tokens, self.output_tokens
            )


# -- streams: the span is current while each chunk (and the request, on the first) is read --------


class _Stream(StreamProxy):
    _self_call: _Call

    def __next__(self) -> Any:
        token = otel_context.attach(self._self_call.context)
        try:
            return super().__next__()
        finally:
            otel_context.detach(token)


class _AsyncStream(AsyncStreamProxy):
    _self_call: _Call

    async def __anext__(self) -> Any:
        token = otel_context.attach(self._self_call.context)
        try:
            return await super().__anext__()
        finally:
            otel_context.detach(token)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_call.end(streamed=True)


# -- the instrumentor ----------------------------------------------------------------------------


class GoogleGenAIInstrumentor(GenAIInstrumentor):
    name = "google_genai"
    packages = ("google-genai >= 1.0",)

    def patch(self) -> None:
        import importlib

        module = importlib.import_module(_MODULE)
        self.metrics = GenAIMetrics(self.meter)
        self._patched: list[tuple[Any, str]] = []
        for cls_name in _CLASSES:
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            is_async = cls_name.startswith("Async")
            for method, operation in (
                (_GENERATE, "generate_content"),
                (_STREAM, "generate_content"),
                (_EMBED, "embeddings"),
            ):
                if not hasattr(cls, method):
                    continue
                stream = method == _STREAM
                make = self._async_wrapper if is_async else self._sync_wrapper
                wrapt.wrap_function_wrapper(cls, method, make(operation, stream))
                self._patched.append((cls, method))

    def unpatch(self) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []

    def _start(self, instance: Any, kwargs: dict[str, Any], operation: str, stream: bool) -> _Call | None:
        if not is_instrumentation_enabled() or _already_traced(kwargs.get("model")):
            return None
        try:
            return _Call(self, instance, kwargs, operation, stream)
        except Exception:
            return None

    def _sync_wrapper(self, operation: str, stream: bool) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kwargs, operation, stream)
            if call is None:
                return wrapped(*args, **kwargs)
            token = otel_context.attach(call.context)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if stream:
                return _Stream(result, call)
            if operation == "embeddings":
                call.embed_response(result)
            else:
                call.response(result)
            call.end()
            return result

        return wrapper

    def _async_wrapper(self, operation: str, stream: bool) -> Any:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = self._start(instance, kwargs, operation, stream)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = otel_context.attach(call.context)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                otel_context.detach(token)
            if stream:
                return _AsyncStream(result, call)
            if operation == "embeddings":
                call.embed_response(result)
            else:
                call.response(result)
            call.end()
            return result

        return wrapper
