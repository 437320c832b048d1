"""What the content of a GenAI span says, in the shapes of the GenAI semantic conventions v1.41.1,
whatever spelling its producer used: the readable text of messages, the tool calls the model
asked for (its own and the provider's server-side ones), the tools it was offered, and why it
stopped. The trace view (query/traces.py), the CLI and the UI read content through here.

Older producers, and Tracehouse's own instrumentation before it followed v1.41.1 exactly,
spell some of these their own way: OpenAI's `tool_calls` finish reason, the providers' raw
tool definitions. Each old spelling is data below; the originals stay in the span's attributes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson

SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
FINISH_REASONS = "gen_ai.response.finish_reasons"
# Where producers put the content of a call, canonical GenAI first (see processors/producers/);
# the trace view and list previews read them, full-text search looks in them.
INPUT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.prompt",
    "input.value",
    "ai.prompt.messages",
    "ai.prompt",
    "traceloop.entity.input",
    "langfuse.observation.input",
    "mlflow.spanInputs",
)
OUTPUT_KEYS = (
    "gen_ai.output.messages",
    "gen_ai.completion",
    "output.value",
    "ai.response.text",
    "traceloop.entity.output",
    "langfuse.observation.output",
    "mlflow.spanOutputs",
)

# Tracehouse's own: the content attributes its instrumentation shortened to fit its size cap
# (a JSON array); each cut string ends with TRUNCATION_MARK.
CONTENT_TRUNCATED = "tracehouse.content.truncated"
TRUNCATION_MARK = "…[truncated]"

# Part types of v1.41.1 output messages that ask for a tool: run by the application, or run by
# the provider (Anthropic's web search, OpenAI's hosted tools).
TOOL_CALL = "tool_call"
SERVER_TOOL_CALL = "server_tool_call"
TOOL_CALL_RESPONSE = "tool_call_response"
SERVER_TOOL_CALL_RESPONSE = "server_tool_call_response"

# Finish reasons as producers spell them -> v1.41.1's values (stop, length, content_filter,
# tool_call, error); Tracehouse's `incomplete` (a stream abandoned before its end) and any
# value not listed are kept as they are. Keys are lower-case.
FINISH_REASON_ALIASES: Mapping[str, str] = {
    "tool_calls": "tool_call",  # OpenAI's own spelling; Tracehouse before v1.41.1, OpenLLMetry
    "function_call": "tool_call",  # OpenAI's legacy functions
    "tool_use": "tool_call",  # Anthropic, Bedrock Converse
    "tool-calls": "tool_call",  # Vercel AI SDK
    "end_turn": "stop",  # Anthropic, Bedrock Converse
    "stop_sequence": "stop",
    "complete": "stop",
    "max_tokens": "length",  # Anthropic, Bedrock, Gemini (MAX_TOKENS)
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",  # Anthropic
    "content-filter": "content_filter",  # Vercel AI SDK
    "content_filtered": "content_filter",  # Bedrock Converse
    "guardrail_intervened": "content_filter",  # Bedrock Converse
    "safety": "content_filter",  # Gemini
    "recitation": "content_filter",  # Gemini
    "blocklist": "content_filter",  # Gemini
    "prohibited_content": "content_filter",  # Gemini
    "spii": "content_filter",  # Gemini
    "image_safety": "content_filter",  # Gemini
    "malformed_function_call": "error",  # Gemini
}


def parse(raw: str) -> Any:
    """A JSON array or object attribute as its value; anything else as the string it is."""
    if raw and raw[0] in "[{":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode() if value is not None else ""


# -- message text ------------------------------------------------------------------------------


def part_text(part: Any) -> str:
    """Readable text of one message part (tool calls as `[tool call name(arguments)]`)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = part.get("type")
    if kind == TOOL_CALL:
        return f"[tool call {part.get('name', '')}({_json_text(part.get('arguments'))})]"
    if kind == SERVER_TOOL_CALL:
        return f"[server tool call {part.get('name', '')}({_json_text(_server_arguments(part))})]"
    if kind == TOOL_CALL_RESPONSE:
        return _json_text(part.get("response", part.get("result", "")))
    if kind == SERVER_TOOL_CALL_RESPONSE:
        inner = part.get(SERVER_TOOL_CALL_RESPONSE)
        return _json_text(inner.get("content") if isinstance(inner, dict) else inner)
    for key in ("content", "text"):
        v = part.get(key)
        if isinstance(v, str):
            return v
        if isinstance(v, list):
            return " ".join(filter(None, (part_text(p) for p in v)))
    return ""


def message_text(msg: Any) -> str:
    if isinstance(msg, str):
        return msg
    if not isinstance(msg, dict):
        return ""
    if isinstance(msg.get("parts"), list):
        return " ".join(filter(None, (part_text(p) for p in msg["parts"])))
    return part_text(msg)


def content_text(raw: str, prefer_role: str | None = None) -> str:
    """Readable text of a content attribute: for message lists, the last message with
    `prefer_role` (the user's question of a prompt), else all messages; other JSON and plain
    strings as they are."""
    value = parse(raw)
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        if prefer_role:
            picked = [m for m in value if m.get("role") == prefer_role]
            if picked:
                return message_text(picked[-1])
        return "\n".join(filter(None, (message_text(m) for m in value)))
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# -- tool calls --------------------------------------------------------------------------------


def _server_arguments(part: dict[str, Any]) -> Any:
    inner = part.get(SERVER_TOOL_CALL)
    return inner.get("arguments") if isinstance(inner, dict) else part.get("arguments")


def tool_calls_of(output_raw: str) -> list[dict[str, Any]]:
    """Tool calls the model asked for, from output messages: {id, name, arguments, type}, type
    `tool_call` (the application runs it) or `server_tool_call` (the provider ran it). Messages
    in OpenAI's own shape (`tool_calls: [{id, function: {name, arguments}}]`), as hand-rolled
    producers write them, are read too."""
    value = parse(output_raw)
    calls: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return calls
    for msg in value:
        if not isinstance(msg, dict):
            continue
        for part in msg.get("parts") or ():
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == TOOL_CALL:
                calls.append(
                    {
                        "id": part.get("id"),
                        "name": part.get("name"),
                        "arguments": part.get("arguments"),
                        "type": kind,
                    }
                )
            elif kind == SERVER_TOOL_CALL:
                calls.append(
                    {
                        "id": part.get("id"),
                        "name": part.get("name"),
                        "arguments": _server_arguments(part),
                        "type": kind,
                    }
                )
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                args = fn.get("arguments")
                calls.append(
                    {
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": parse(args) if isinstance(args, str) else args,
                        "type": TOOL_CALL,
                    }
                )
    return calls


# -- tool definitions --------------------------------------------------------------------------


def _definition(kind: Any, fn: Mapping[str, Any], schema: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind if isinstance(kind, str) and kind else "function",
        "name": fn.get("name"),
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    if schema is not None:
        out["parameters"] = schema
    return out


def _definitions(tool: Any) -> list[Any]:
    """One tool in any shape -> v1.41.1 definitions {type, name, description, parameters}."""
    if not isinstance(tool, dict):
        return [tool]
    if isinstance(tool.get("tools"), list) and "name" not in tool:  # Bedrock's whole toolConfig
        return [d for t in tool["tools"] for d in _definitions(t)]
    declarations = tool.get("function_declarations", tool.get("functionDeclarations"))
    if isinstance(declarations, list):  # Gemini: one tool holds many functions
        return [
            _definition("function", d, _first(d, "parameters", "parameters_json_schema", "parametersJsonSchema"))
            for d in declarations
            if isinstance(d, dict)
        ]
    fn = tool.get("function")
    if isinstance(fn, dict):  # OpenAI, Mistral, Ollama, LiteLLM: {type, function: {...}}
        return [_definition(tool.get("type"), fn, fn.get("parameters"))]
    spec = tool.get("toolSpec")
    if isinstance(spec, dict):  # Bedrock Converse: {toolSpec: {inputSchema: {json}}}
        schema = spec.get("inputSchema")
        return [
            _definition("function", spec, schema.get("json", schema) if isinstance(schema, dict) else schema)
        ]
    if "name" in tool:  # v1.41.1 itself, Anthropic's {name, input_schema} and its server tools
        schema = tool.get("parameters", tool.get("input_schema", tool.get("inputSchema")))
        return [_definition(tool.get("type"), tool, schema)]
    return [tool]  # a shape nobody told us about: as it came


def _first(d: dict, *keys: str) -> Any:
    """The value of the first of `keys` that `d` has (None when none)."""
    return next((d[k] for k in keys if k in d), None)


def tool_definitions(raw: str) -> list[Any]:
    """The tools a call offered the model (`gen_ai.tool.definitions`), each as v1.41.1 defines
    it ({type, name, description, parameters}), from any provider's shape."""
    value = parse(raw) if raw else None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [d for tool in value for d in _definitions(tool)]


# -- finish reasons ----------------------------------------------------------------------------


def finish_reason(value: Any) -> str:
    """One finish reason in v1.41.1's values where an alias is known, else as it is."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    return FINISH_REASON_ALIASES.get(value.strip().lower(), value)


def finish_reasons(attrs: Mapping[str, str]) -> list[str]:
    """Why the model stopped, one reason per choice: `gen_ai.response.finish_reasons`, else
    the output messages' `finish_reason`, else the Vercel AI SDK's; in v1.41.1's values."""
    raw = attrs.get(FINISH_REASONS)
    if raw:
        value = parse(raw)
        reasons = value if isinstance(value, list) else [value]
    else:
        messages = parse(attrs.get(OUTPUT_MESSAGES, ""))
        reasons = (
            [m.get("finish_reason") for m in messages if isinstance(m, dict) and m.get("finish_reason")]
            if isinstance(messages, list)
            else []
        )
        if not reasons and attrs.get("ai.response.finishReason"):
            reasons = [attrs["ai.response.finishReason"]]
    return [r for r in map(finish_reason, reasons) if r]


def truncated_content(attrs: Mapping[str, str], content_keys: Collection[str]) -> list[str]:
    """The content attributes that were shortened before they were stored: by the producer
    (`tracehouse.content.truncated`), or by the collector's attribute size cap
    (`tracehouse.truncated`, which lists every attribute it cut: those of `content_keys`)."""
    out: list[str] = []
    value = parse(attrs.get(CONTENT_TRUNCATED, ""))
    if isinstance(value, list):
        out.extend(str(k) for k in value)
    elif isinstance(value, str) and value:
        out.extend(k for k in value.split(",") if k)
    cut_here = attrs.get("tracehouse.truncated", "")
    out.extend(k for k in cut_here.split(",") if k in content_keys and k not in out)
    return out
