"""Full-text search over what LLM calls said: prompts, responses, system instructions, tool
arguments and results, in whichever attribute each producer's convention puts them.

A search is a list of words; a span matches when its content holds every word as a whole token,
case-insensitively. Tokens are what ClickHouse's `splitByNonAlpha` tokenizer makes: runs of ASCII
letters and digits and of non-ASCII characters; anything else separates ("gpt-4o" is the two
tokens "gpt" and "4o", found in that order or not).

Each word becomes two conditions on a span (SQL text built only from constants here; the words
are bound as query parameters):
- `hasAnyTokens(mapValues(SpanAttributes), [word])`: answered by the text index of migration
  0009 (idx_content_text, lower-cased attribute values), it skips every granule without the word;
- `hasToken(<the span's content, lower-cased>, word)`: the exact check, so a word found only in
  another attribute (a model name, a URL) does not count.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from tracehouse_collector.query.genai_content import INPUT_KEYS, OUTPUT_KEYS, SYSTEM_INSTRUCTIONS

TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
# What `content MATCH` looks in; `input MATCH` and `output MATCH` look in one side only.
INPUT_SEARCH_KEYS = (*INPUT_KEYS, SYSTEM_INSTRUCTIONS, TOOL_ARGUMENTS)
OUTPUT_SEARCH_KEYS = (*OUTPUT_KEYS, TOOL_RESULT)
SEARCH_KEYS = (*INPUT_SEARCH_KEYS, *OUTPUT_SEARCH_KEYS)
MAX_WORDS = 32

# A token as splitByNonAlpha cuts them: ASCII letters and digits, and any non-ASCII character.
_TOKEN = re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+")


def words(text: str) -> list[str]:
    """The distinct lower-cased tokens of a search, in order. Raises ValueError when there are
    none or too many."""
    found = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text or "")))
    if not found:
        raise ValueError(f"search {text!r} has no words (letters or digits)")
    if len(found) > MAX_WORDS:
        raise ValueError(f"a search has at most {MAX_WORDS} words, got {len(found)}")
    return found


def content_sql(keys: tuple[str, ...]) -> str:
    """The lower-cased text of a span's content under `keys`, one string."""
    values = ", ".join(f"SpanAttributes['{k}']" for k in keys)
    return f"lowerUTF8(arrayStringConcat([{values}], ' '))"


def match_sql(keys: tuple[str, ...], text: str, param: Callable[[str], str]) -> str:
    """A span condition: its content under `keys` holds every word of `text`. `param(word)`
    binds a word and returns its `{name:String}` placeholder."""
    content = content_sql(keys)
    conds = []
    for word in words(text):
        p = param(word)
        conds.append(f"hasAnyTokens(mapValues(SpanAttributes), [{p}]) AND hasToken({content}, {p})")
    return "(" + " AND ".join(conds) + ")"


def search_condition(text: str, params: dict[str, object], prefix: str = "q") -> str:
    """The search box: `content MATCH text`, its words bound into `params`."""

    numbers = itertools.count()

    def bind(word: str) -> str:
        name = f"{prefix}{next(numbers)}"
        params[name] = word
        return "{" + name + ":String}"

    return match_sql(SEARCH_KEYS, text, bind)
