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

from typing import Any
from urllib.parse import urlparse

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tracehouse.instrumentors import _semconv as sc
from tracehouse.instrumentors._base import GenAIInstrumentor
from tracehouse.instrumentors._call import (
    AsyncCurrentSpanStream,
    CurrentSpanStream,
    LLMCall,
    function_tool,
    starter,
    traced,
)
from tracehouse.instrumentors._common import get, jsonable, seq

_MODULE = "google.genai.models"
_CLASSES = ("Models", "AsyncModels")
_GENERATE, _STREAM, _EMBED = "generate_content", "generate_content_stream", "embed_content"


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


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """A Tool's function declarations as functions, its built-in tools (google_search,
    code_execution, ...) by their field name; a Python function (automatic function calling)
    by its name and doc."""
    out = []
    for tool in seq(tools):
        if callable(tool) and not hasattr(tool, "model_dump"):
            doc = getattr(tool, "__doc__", None)
            out.append(
                function_tool(
                    getattr(tool, "__name__", type(tool).__name__),
                    doc.strip() if isinstance(doc, str) else None,
                )
            )
            continue
        for declaration in seq(get(tool, "function_declarations")):
            schema = get(declaration, "parameters_json_schema") or get(declaration, "parameters")
            out.append(
                function_tool(get(declaration, "name"), get(declaration, "description"), jsonable(schema))
            )
        fields = jsonable(tool)
        for name, value in fields.items() if isinstance(fields, dict) else ():
            if name != "function_declarations" and value is not None:
                out.append(function_tool(name, kind=name))
    return out


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


class _Call(LLMCall):
    """One generate_content or embed_content call: google-genai's shapes as the call's facts."""

    def __init__(
        self,
        inst: GoogleGenAIInstrumentor,
        instance: Any,
        kwargs: dict[str, Any],
        operation: str,
        stream: bool,
    ) -> None:
        host, port, provider = _server(instance)
        super().__init__(inst, operation, kwargs.get("model"), provider, host, port)
        self.streams = stream
        config = kwargs.get("config")
        if operation == sc.EMBEDDINGS:
            self.request(dimensions=get(config, "output_dimensionality"))
        else:
            self._request(kwargs.get("contents"), config, stream)
        # accumulated from stream chunks
        self.response_id = self.model_version = self.stream_usage = None
        self.candidates: dict[int, dict[str, Any]] = {}

    def _request(self, contents: Any, config: Any, stream: bool) -> None:
        mime = get(config, "response_mime_type")
        fmt = None
        if isinstance(mime, str) and mime:
            fmt = (
                sc.OUTPUT_JSON
                if mime.endswith("json")
                else sc.OUTPUT_TEXT
                if mime.startswith("text/")
                else mime
            )
        elif get(config, "response_schema") is not None or get(config, "response_json_schema") is not None:
            fmt = sc.OUTPUT_JSON
        self.request(
            temperature=get(config, "temperature"),
            top_p=get(config, "top_p"),
            top_k=get(config, "top_k"),
            max_tokens=get(config, "max_output_tokens"),
            presence_penalty=get(config, "presence_penalty"),
            frequency_penalty=get(config, "frequency_penalty"),
            seed=get(config, "seed"),
            choice_count=get(config, "candidate_count"),
            stop=get(config, "stop_sequences") or None,
            stream=stream,
            output_type=fmt,
        )
        # Selects the flex or priority price; the response does not echo it.
        tier = get(config, "service_tier")
        tier = getattr(tier, "value", tier)  # a ServiceTier enum or its string
        if isinstance(tier, str) and tier:
            self.attrs["tracehouse.request.service_tier"] = tier.lower()
        if self.capture:
            self.inputs(
                _input_messages(contents),
                _system(get(config, "system_instruction")),
                _tool_definitions(get(config, "tools")),
            )

    def is_stream(self, result: Any) -> bool:
        return self.streams

    def returned(self, result: Any, is_async: bool) -> Any:
        if self.streams:
            # The SDK sends the request on the first step: each step runs with the span current.
            return AsyncCurrentSpanStream(result, self) if is_async else CurrentSpanStream(result, self)
        return super().returned(result, is_async)

    def error_facts(self, exc: BaseException) -> tuple[str, int | None]:
        return type(exc).__qualname__, getattr(exc, "code", None)

    # -- results ---------------------------------------------------------------------------------

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        prompt = _int(get(usage, "prompt_token_count"))
        tool_prompt = _int(get(usage, "tool_use_prompt_token_count"))
        candidates = _int(get(usage, "candidates_token_count"))
        thoughts = _int(get(usage, "thoughts_token_count"))
        self.usage(
            None if prompt is None and tool_prompt is None else (prompt or 0) + (tool_prompt or 0),
            None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0),
            cache_read=get(usage, "cached_content_token_count"),
            reasoning=thoughts,
        )

    def _output(self, candidates: list[tuple[list[dict[str, Any]], Any]]) -> None:
        self.finish_reasons(reason for _parts, reason in candidates)
        if self.capture and candidates:
            self.outputs(
                [
                    {"role": "assistant", "parts": parts, "finish_reason": reason}
                    for parts, reason in candidates
                ]
            )

    def on_response(self, result: Any) -> None:
        if self.operation == sc.EMBEDDINGS:
            # Input tokens from an EmbedContentResponse, where the API counts them (Vertex AI).
            counts = [_num(get(get(e, "statistics"), "token_count")) for e in seq(get(result, "embeddings"))]
            if counts and all(c is not None for c in counts):
                self.usage(int(sum(counts)))  # type: ignore[arg-type]
            return
        self.response_ids(get(result, "response_id"), get(result, "model_version"))
        self._usage(get(result, "usage_metadata"))
        self._output(
            [
                ([_part(p) for p in seq(get(get(c, "content"), "parts"))], get(c, "finish_reason"))
                for c in seq(get(result, "candidates"))
            ]
        )

    def process_chunk(self, chunk: Any) -> None:
        self.response_id = get(chunk, "response_id") or self.response_id
        self.model_version = get(chunk, "model_version") or self.model_version
        self.stream_usage = get(chunk, "usage_metadata") or self.stream_usage  # cumulative: the last wins
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

    def on_stream_end(self) -> None:
        self.response_ids(self.response_id, self.model_version)
        self._usage(self.stream_usage)
        self._output(
            [(self.candidates[i]["parts"], self.candidates[i]["finish"]) for i in sorted(self.candidates)]
        )


# -- the instrumentor ----------------------------------------------------------------------------


class GoogleGenAIInstrumentor(GenAIInstrumentor):
    name = "google_genai"
    packages = ("google-genai >= 1.0",)

    def patch(self) -> None:
        import importlib

        module = importlib.import_module(_MODULE)
        self._patched: list[tuple[Any, str]] = []
        for cls_name in _CLASSES:
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            is_async = cls_name.startswith("Async")
            for method, operation in (
                (_GENERATE, sc.GENERATE_CONTENT),
                (_STREAM, sc.GENERATE_CONTENT),
                (_EMBED, sc.EMBEDDINGS),
            ):
                if not hasattr(cls, method):
                    continue
                start = starter(self._maker(operation, method == _STREAM), "google")
                wrapt.wrap_function_wrapper(cls, method, traced(start, is_async))
                self._patched.append((cls, method))

    def unpatch(self) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []

    def _maker(self, operation: str, stream: bool) -> Any:
        def make(instance: Any, args: Any, kwargs: dict[str, Any]) -> _Call:
            call = _Call(self, instance, kwargs, operation, stream)
            call.start()
            return call

        return make
