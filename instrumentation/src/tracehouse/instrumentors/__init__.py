"""Auto-instrumentors, by Tracehouse name: the module whose import triggers patching, and
the instrumentor class (also registered as an `opentelemetry_instrumentor` entry point named
`tracehouse_<name>`)."""

INSTRUMENTORS: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic", "tracehouse.instrumentors.anthropic:AnthropicInstrumentor"),
    "google_genai": ("google.genai", "tracehouse.instrumentors.google_genai:GoogleGenAIInstrumentor"),
    "openai": ("openai", "tracehouse.instrumentors.openai:OpenAIInstrumentor"),
}
