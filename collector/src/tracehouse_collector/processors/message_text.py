"""The content text of messages, whatever shape a producer gave them: only used to estimate
tokens when a producer reported no usage, so it gathers strings and skips structure.

The shapes (JSON messages and parts, flattened indexed lists) are read here; which attributes
hold them is declared per producer (`input_messages`, `output_messages`).
"""

from __future__ import annotations

from typing import Any

from tracehouse_collector.processors.semconv import TRUNCATION_MARK
from tracehouse_collector.processors.values import json_value

_MARK_LENGTH = len(TRUNCATION_MARK)

# Keys whose string values are structure, not content the model read or wrote.
_SKIP_KEYS = frozenset(
    {
        "role",
        "type",
        "id",
        "tool_call_id",
        "toolCallId",
        "finish_reason",
        "finishReason",
        "model",
        "mime_type",
        "mimeType",
        "media_type",
        "modality",
        "url",
        "uri",
        "image_url",
        "data",
        "signature",
        "encrypted_content",
        "detail",
        "name",
        "provider",
        "providerOptions",
        "cache_control",
    }
)
_BINARY_PART_TYPES = frozenset(
    {"blob", "image", "image_url", "file", "audio", "input_audio", "uri", "input_image"}
)


def _collect(value: Any, out: list[str]) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if v:
                # Without the mark a producer put where it cut the string: the mark is no
                # content, and an estimate from what is left is a lower bound.
                out.append(v[:-_MARK_LENGTH] if v.endswith(TRUNCATION_MARK) else v)
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            if v.get("type") in _BINARY_PART_TYPES:
                continue
            stack.extend(reversed([x for k, x in v.items() if k not in _SKIP_KEYS]))


def text_of(raw: str | None, out: list[str]) -> None:
    """Content text of an attribute value: JSON messages/parts walked for their strings, any
    other string taken as it is."""
    if not raw:
        return
    c = raw[0]
    if c in '[{"':
        parsed = json_value(raw)
        if parsed is not None:
            _collect(parsed, out)
            return
    out.append(raw[:-_MARK_LENGTH] if raw.endswith(TRUNCATION_MARK) else raw)


def indexed(get: Any, prefix: str, suffix: str, out: list[str]) -> bool:
    """Flattened lists: gen_ai.prompt.0.content, llm.input_messages.0.message.content ...
    A message without content (a tool call) does not end the list while its role is there."""
    found = False
    for i in range(10_000):
        v = get(f"{prefix}{i}{suffix}")
        if v is not None:
            found = True
            text_of(v, out)
        elif get(f"{prefix}{i}.role") is None and get(f"{prefix}{i}.message.role") is None:
            break
    return found


def indexed_parts(get: Any, prefix: str, parts: str, text: str, role: str, out: list[str]) -> bool:
    """{prefix}N{parts}M{text}: llm.input_messages.N.message.contents.M.message_content.text
    (OpenInference's multimodal messages)."""
    found = False
    for i in range(10_000):
        if get(f"{prefix}{i}{parts}0{text}") is None:
            if get(f"{prefix}{i}{role}") is None:
                break
            continue
        for j in range(10_000):
            v = get(f"{prefix}{i}{parts}{j}{text}")
            if v is None:
                break
            found = True
            out.append(v)
    return found
