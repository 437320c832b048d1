"""Token usage as a producer reported it, and its translation to OpenTelemetry semantics.

OpenTelemetry counts cache reads and cache writes inside `input_tokens` and reasoning inside
`output_tokens`. Producers differ: Anthropic's usage object (copied verbatim by many) reports
the cache outside the input. A producer's declaration says which it does (`CacheCounting`);
`to_otel` folds what is outside in, once.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class CacheCounting(Enum):
    """How a producer's input count relates to its cache counts."""

    INCLUDED = "included"  # input already includes cache reads/writes (OTel spec, OpenAI, OpenInference)
    SEPARATE = "separate"  # input leaves them out (Anthropic's usage object, Langfuse-style buckets)
    BY_TOTAL = "by_total"  # unknown: decided from a reported total, else treated as separate


class Usage(NamedTuple):
    """Token counts as one producer reported them (None: not reported)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cache_counting: CacheCounting = CacheCounting.INCLUDED


# Module-level names: an Enum member looked up on its class costs a slow attribute access (3.11).
_SEPARATE, _BY_TOTAL = CacheCounting.SEPARATE, CacheCounting.BY_TOTAL


def to_otel(usage: Usage) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) with OTel semantics, never counting a cache or reasoning token
    twice and never dropping one.

    Cache tokens are folded into input when the producer reported them outside it:
    * always for SEPARATE producers;
    * whenever input < cache_read + cache_write (an inclusive count cannot be smaller);
    * whenever a reported total equals input + output + cache (and not input + output): the
      producer's total counts the cache tokens its input left out (Bedrock Converse's
      totalTokens, as passed on by Strands and OpenInference);
    * for BY_TOTAL producers (Anthropic-style attribute names), unless the reported total
      equals input + output, which is how OpenLLMetry reports its cache-inclusive input.
    Reasoning is folded into output only when the total proves output excluded it (Gemini's
    candidatesTokenCount vs thoughtsTokenCount, passed on by Vercel v5 and others) or when
    output < reasoning.
    A reported total smaller than the resolved input + output is replaced by the sum.
    """
    inp, out, cache_read, cache_write, reasoning, total, counting = usage
    o = out or 0
    cache = (cache_read or 0) + (cache_write or 0)
    if inp is not None and cache:
        if (total is not None and total == inp + o + cache) or inp < cache or counting is _SEPARATE:
            separate = True
        elif counting is _BY_TOTAL:
            separate = total is None or total != inp + o
        else:
            separate = False
        if separate:
            inp += cache
            cache = 0  # now inside inp, so the total check below sees it as such
    if out is not None and reasoning:
        i = inp or 0
        if out < reasoning or (
            total is not None
            and total != i + out
            and total in (i + out + reasoning, i + out + cache + reasoning)
        ):
            out += reasoning
    if inp is not None or out is not None:
        s = (inp or 0) + (out or 0)
        if total is None or total < s:
            total = s
    return inp, out, total
