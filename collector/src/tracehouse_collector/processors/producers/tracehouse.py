"""Tracehouse's own additions (`tracehouse.*`), written by its SDK beside the OTel GenAI names."""

from __future__ import annotations

from tracehouse_collector.processors.conventions import Producer

PRODUCER = Producer(
    name="tracehouse",
    cache_write_1h=("tracehouse.usage.cache_creation_1h.input_tokens",),  # Anthropic's 1h cache writes
    run=("tracehouse.run.id",),
    experiment=("tracehouse.experiment.name",),
)
