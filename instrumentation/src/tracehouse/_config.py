"""Settings of the SDK, read from the standard OpenTelemetry variables and TRACEHOUSE_* ones."""

from __future__ import annotations

import os

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"  # a local `tracehouse serve` (OTLP/HTTP)
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
MAX_CONTENT_BYTES = 32 * 1024


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in ("0", "false", "no", "off")


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


def capture_content() -> bool:
    """Message content is captured unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false."""
    return _flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", True)


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
