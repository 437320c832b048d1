"""Settings of the SDK, read from the standard OpenTelemetry variables and TRACEHOUSE_* ones."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"  # a local `tracehouse serve` (OTLP/HTTP)
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
MAX_CONTENT_BYTES = 32 * 1024


def requested_instrumentors(value: str | None = None) -> set[str] | None:
    """TRACEHOUSE_INSTRUMENT: '1'/'all'/'true' -> None (all); 'openai,anthropic' -> that set."""
    raw = (os.environ.get("TRACEHOUSE_INSTRUMENT", "") if value is None else value).strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return set()
    if raw in ("1", "all", "true", "yes", "on"):
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def disabled_instrumentors() -> set[str]:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, as the OpenTelemetry distro reads it."""
    raw = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


CAPTURE_CONTENT_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True)
class ContentCapture:
    """Where message content (inputs, outputs, system instructions, tool definitions) goes:
    on the call's span as attributes, in a `gen_ai.client.inference.operation.details` event
    (an OpenTelemetry log record), both or neither."""

    span: bool
    event: bool

    @property
    def any(self) -> bool:
        return self.span or self.event


# The variable's values as opentelemetry-util-genai reads them (the enum), plus the boolean
# spelling older instrumentations document. `true` keeps its old meaning: content on the span.
_CAPTURE_MODES = {
    "span_only": ContentCapture(span=True, event=False),
    "event_only": ContentCapture(span=False, event=True),
    "span_and_event": ContentCapture(span=True, event=True),
    "no_content": ContentCapture(span=False, event=False),
    "true": ContentCapture(span=True, event=False),
    "false": ContentCapture(span=False, event=False),
}
_CAPTURE_MODES.update({word: _CAPTURE_MODES["true"] for word in ("1", "yes", "on")})
_CAPTURE_MODES.update({word: _CAPTURE_MODES["false"] for word in ("0", "no", "off")})
# Unset: on, on the span (what users of LLM observability expect; the README says how to turn
# it off). A value we do not know captures nothing: a typo must not leak content.
DEFAULT_CAPTURE = _CAPTURE_MODES["span_only"]
_NO_CONTENT = _CAPTURE_MODES["no_content"]


def content_capture() -> ContentCapture:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: NO_CONTENT, SPAN_ONLY, EVENT_ONLY,
    SPAN_AND_EVENT, or true / false (case-insensitive); unset means SPAN_ONLY."""
    raw = os.environ.get(CAPTURE_CONTENT_VAR, "").strip().lower()
    if not raw:
        return DEFAULT_CAPTURE
    mode = _CAPTURE_MODES.get(raw)
    if mode is None:
        import warnings

        warnings.warn(
            f"{CAPTURE_CONTENT_VAR}={raw!r} is not one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, "
            "SPAN_AND_EVENT, true, false: no message content is captured",
            RuntimeWarning,
            stacklevel=2,
        )
        return _NO_CONTENT
    return mode


def max_content_bytes() -> int:
    raw = os.environ.get("TRACEHOUSE_MAX_CONTENT_BYTES", "")
    try:
        return max(0, int(raw)) if raw else MAX_CONTENT_BYTES
    except ValueError:
        return MAX_CONTENT_BYTES


def inject_stream_usage() -> bool:
    """TRACEHOUSE_STREAM_USAGE=inject: ask streaming APIs for a usage chunk (and hide it from the
    application). Off by default: it changes the request the application sends."""
    return os.environ.get("TRACEHOUSE_STREAM_USAGE", "").strip().lower() == "inject"
