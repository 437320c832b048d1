"""The producers the normaliser knows, one module each, and the order they are read in.

Each module declares `PRODUCER`, a `conventions.Producer`: how its spans are recognised, what
its operation names mean, where it puts models, usage, cost, messages and context, and how it
counts cached tokens. To add one: write `producers/<name>.py` and add `<name>` to PRECEDENCE (and
to the ASPECT_PRECEDENCE entries of the aspects it declares); `tests/test_producers.py` checks
that nothing is left out.

When a span carries the attributes of several producers (instrumentations copy each other's
names, and converters such as openinference-vercel add theirs beside the original), the first
in precedence that has an answer wins, per aspect.
"""

from __future__ import annotations

import importlib

from tracehouse_collector.processors.conventions import Producer

# OTel GenAI first: its keys are the canonical ones, and others write them beside their own.
PRECEDENCE: tuple[str, ...] = (
    "otel_genai",
    "tracehouse",
    "openinference",
    "vercel_ai",
    "langfuse",
    "mlflow",
    "openllmetry",
    "pydantic_ai",
)

# Aspects read in another order than PRECEDENCE; each lists exactly the producers that declare
# that aspect.
ASPECT_PRECEDENCE: dict[str, tuple[str, ...]] = {
    # Provider and models: the Vercel AI SDK's ai.* beside OpenInference's llm.* means a span that
    # openinference-vercel converted; ai.response.model names the model that answered, where
    # llm.model_name may name the one requested.
    "model": ("otel_genai", "vercel_ai", "openinference", "langfuse", "mlflow"),
    # Usage and cost: a producer's own usage object first. The generic gen_ai.usage.* names come
    # last because producers copy them with their own cache semantics (Vercel's Anthropic input
    # leaves cache reads out), and Tracehouse's one-hour cache writes before OTel's spelling.
    "usage": ("langfuse", "mlflow", "vercel_ai", "openinference", "tracehouse", "otel_genai"),
    "cost": ("langfuse", "mlflow", "openinference", "otel_genai"),
    # Message text: OpenLLMetry's flattened gen_ai.prompt.N.* are OTel's deprecated names.
    "messages": ("otel_genai", "openllmetry", "openinference", "vercel_ai", "langfuse", "mlflow"),
}


def load(names: tuple[str, ...] | None = None) -> tuple[Producer, ...]:
    """The declarations of `names` (default: PRECEDENCE), in that order."""
    out = []
    for name in PRECEDENCE if names is None else names:
        producer = importlib.import_module(f"{__name__}.{name}").PRODUCER
        if not isinstance(producer, Producer) or producer.name != name:
            raise TypeError(f"producers/{name}.py must declare PRODUCER = Producer(name={name!r}, ...)")
        out.append(producer)
    return tuple(out)
