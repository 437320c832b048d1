"""pydantic-ai (through logfire): OTel GenAI names, plus agent-run spans that name no operation
but carry the run's messages. Its usage details are read with OTel's (`otel_genai`)."""

from __future__ import annotations

from tracehouse_collector.processors import semconv as sc
from tracehouse_collector.processors.conventions import OperationMarker, Producer

PRODUCER = Producer(
    name="pydantic_ai",
    operation=(OperationMarker(("pydantic_ai.all_messages", "all_messages_events"), sc.INVOKE_AGENT),),
)
