"""Provider names: any spelling a producer uses -> the `gen_ai.provider.name` vocabulary.

One vocabulary for every convention, so that `GenAIProvider` groups and prices alike whoever
wrote the span. The spellings come from producers' own enums and docs (see the comments).
"""

from __future__ import annotations

from functools import lru_cache

# The OTel gen_ai.provider.name well-known values, plus `ollama` and a few hosts OTel does not
# list yet, spelled the way OpenLLMetry's GenAISystem enum spells them (lowercase, underscores).
_CANONICAL_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "aws.bedrock",
        "azure.ai.openai",
        "azure.ai.inference",
        "gcp.gemini",
        "gcp.vertex_ai",
        "gcp.gen_ai",
        "cohere",
        "mistral_ai",
        "groq",
        "deepseek",
        "x_ai",
        "perplexity",
        "ibm.watsonx.ai",
        "moonshot_ai",
        "ollama",
        "together_ai",
        "fireworks",
        "hugging_face",
        "openrouter",
        "replicate",
        "aleph_alpha",
        "cerebras",
    }
)

# Spellings seen in the wild, keyed with '-' and ' ' folded to '_'. Sources: OTel deprecated
# gen_ai.system values (az.ai.*, vertex_ai, gemini, xai), OpenLLMetry's old GenAISystem values
# ("Azure", "AWS", "Google", "MistralAI", "TogetherAI", "Watsonx" ...), OpenInference
# llm.provider / llm.system values (azure, aws, google, vertexai, mistralai, xai, amazon),
# Vercel provider ids ("amazon-bedrock", "google.vertex.chat", "googleVertex.anthropic.messages",
# "azure.chat", "togetherai.chat" ...), LangChain ls_provider names (google_genai, bedrock_converse).
_PROVIDER_ALIASES = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "azure.inference": "azure.ai.inference",
    "azure_ai": "azure.ai.inference",
    "azureai": "azure.ai.inference",
    "azure_ai_foundry": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "amazon": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "bedrock_mantle": "aws.bedrock",
    "anthropic_aws": "aws.bedrock",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google.genai": "gcp.gemini",
    "google.generative_ai": "gcp.gemini",
    "google_generative_ai": "gcp.gemini",
    "google_generativeai": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "googleai": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "google.vertex": "gcp.vertex_ai",
    "google_vertex": "gcp.vertex_ai",
    "google_vertexai": "gcp.vertex_ai",
    "googlevertex": "gcp.vertex_ai",
    "google_vertex_ai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "gcp": "gcp.gen_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "x.ai": "x_ai",
    "grok": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "watsonx.ai": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
    "ibm_watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "together": "together_ai",
    "togetherai": "together_ai",
    "together.ai": "together_ai",
    "fireworks_ai": "fireworks",
    "fireworksai": "fireworks",
    "huggingface": "hugging_face",
    "hf": "hugging_face",
    "alephalpha": "aleph_alpha",
    "cohere_ai": "cohere",
    "deep_seek": "deepseek",
    "perplexity_ai": "perplexity",
    "pplx": "perplexity",
    "claude": "anthropic",
}


@lru_cache(maxsize=4096)
def normalize_provider(name: str) -> str:
    """Any spelling of a provider -> the gen_ai.provider.name vocabulary.

    Exact matches first, then aliases, then the longest dotted prefix that is known, so
    Vercel ids ('openai.chat', 'anthropic.messages', 'google.vertex.chat') fold to their
    provider. Unknown names come back lower-cased and stripped, otherwise kept.
    """
    s = (name or "").strip().lower()
    if not s or s in _CANONICAL_PROVIDERS:
        return s
    key = s.replace("-", "_").replace(" ", "_")
    hit = _PROVIDER_ALIASES.get(key)
    if hit:
        return hit
    if key in _CANONICAL_PROVIDERS:
        return key
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in _CANONICAL_PROVIDERS:
            return prefix
        hit = _PROVIDER_ALIASES.get(prefix)
        if hit:
            return hit
    return s


# Orchestration frameworks some instrumentations put where the provider goes (OpenLLMetry sets
# gen_ai.provider.name "langchain"/"langgraph" on chain spans and as the fallback when it cannot
# detect the vendor). They name no endpoint, so the normaliser reports no provider rather than them.
FRAMEWORKS = frozenset(
    {"langchain", "langgraph", "llama_index", "llamaindex", "crewai", "haystack", "autogen", "dspy", "_other"}
)
# Placeholders for "not known": Tracehouse's `@trace(kind="llm")` writes "unknown" when the
# caller names no provider. Read as a provider, it would be priced, grouped and filtered as one.
PLACEHOLDERS = frozenset({"unknown", "none", "null"})
# What the normaliser reports as no provider at all.
NOT_A_PROVIDER = FRAMEWORKS | PLACEHOLDERS


# Only consulted when no attribute names a provider: the endpoint host is unambiguous.
_HOST_PROVIDERS = (
    ("openai.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("models.ai.azure.com", "azure.ai.inference"),
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("bedrock-runtime", "aws.bedrock"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere", "cohere"),
    ("api.together", "together_ai"),
    ("fireworks.ai", "fireworks"),
    ("openrouter.ai", "openrouter"),
)


def provider_from_host(host: str) -> str:
    """The provider an endpoint host names unambiguously, else ''."""
    host = host.lower()
    for needle, provider in _HOST_PROVIDERS:
        if needle in host:
            return provider
    return ""
