"""Tracehouse SDK: OpenTelemetry instrumentation for LLM applications and ML experiments.

Nothing runs at import time; instrumentation is switched on explicitly.
"""

__version__ = "0.1.0"

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
"""Where a local ``tracehouse serve`` listens for OTLP/HTTP."""
