"""Auto-instrumentors, by Tracehouse name: the module whose import triggers patching, and
the instrumentor class (also registered as an `opentelemetry_instrumentor` entry point named
`tracehouse_<name>`)."""

INSTRUMENTORS: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic", "tracehouse.instrumentors.anthropic:AnthropicInstrumentor"),
    # boto3 creates clients at run time: botocore.client holds the method every call goes through.
    "bedrock": ("botocore.client", "tracehouse.instrumentors.bedrock:BedrockInstrumentor"),
    "google_genai": ("google.genai", "tracehouse.instrumentors.google_genai:GoogleGenAIInstrumentor"),
    "litellm": ("litellm", "tracehouse.instrumentors.litellm:LiteLLMInstrumentor"),
    # mistralai 2.x and later make `mistralai` a namespace package, whose import runs no loader.
    "mistralai": ("mistralai.client", "tracehouse.instrumentors.mistralai:MistralInstrumentor"),
    "ollama": ("ollama", "tracehouse.instrumentors.ollama:OllamaInstrumentor"),
    "openai": ("openai", "tracehouse.instrumentors.openai:OpenAIInstrumentor"),
    # Training loops: each fit/train becomes a run.
    "keras": ("keras", "tracehouse.instrumentors.keras:KerasInstrumentor"),
    "lightning": ("lightning.pytorch", "tracehouse.instrumentors.lightning:LightningInstrumentor"),
    # Before any estimator module is defined: the fit decorator is replaced there.
    "sklearn": ("sklearn.base", "tracehouse.instrumentors.sklearn:SklearnInstrumentor"),
    # transformers imports lazily: the trainer module is loaded when Trainer is first used.
    "transformers": (
        "transformers.trainer",
        "tracehouse.instrumentors.transformers:TransformersInstrumentor",
    ),
}
