"""The vocabulary producers are declared in (see `processors/producers/`).

A producer is data: which keys mark its spans, what its operation names mean, where it puts
the models, its usage and cost and its messages, how it counts cached tokens. The resolver
(`resolve`) applies the declarations in the precedence `producers` declares; nothing here runs
on a span.

Keys are span attribute names. Inside a JSON-valued attribute (`UsageKeys.json`, `Buckets`) they
are dotted paths into the object; `JsonPath` reaches into a JSON attribute from a flat mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from tracehouse_collector.processors.usage import CacheCounting

__all__ = [
    "Buckets",
    "CacheCounting",
    "CacheKeys",
    "Case",
    "CostKeys",
    "Indexed",
    "IndexedParts",
    "JsonPath",
    "OperationKey",
    "OperationMarker",
    "Producer",
    "ProviderPair",
    "Refine",
    "Text",
    "UsageKeys",
]

# -- operation -----------------------------------------------------------------------------------


class Case(Enum):
    """How a value is folded before it is looked up (LOWER and UPPER also strip blanks)."""

    EXACT = "exact"
    LOWER = "lower"
    UPPER = "upper"


@dataclass(frozen=True)
class Refine:
    """`operation` becomes `becomes` when any of `if_any` is set on the span."""

    operation: str
    if_any: tuple[str, ...]
    becomes: str


@dataclass(frozen=True)
class OperationKey:
    """An attribute naming the operation; `values` maps the producer's names onto OTel's (a
    value mapped to '' says "no operation here", and the next rule is tried)."""

    attr: str
    values: Mapping[str, str]
    case: Case = Case.LOWER
    keep_unknown: bool = False  # a value `values` does not know is the operation itself
    refine: tuple[Refine, ...] = ()


@dataclass(frozen=True)
class OperationMarker:
    """The presence of any of `keys` (non-empty) means `operation`."""

    keys: tuple[str, ...]
    operation: str


# -- provider ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderPair:
    """A host (`llm.provider`: azure) and a model vendor (`llm.system`: openai) that together
    name the endpoint: `pairs[(host, vendor)]`, `pairs[(host, "*")]`, else the host (or the
    vendor) spelled as a provider. Values are compared stripped and lower-cased."""

    host: str
    vendor: str
    pairs: Mapping[tuple[str, str], str]


# -- usage and cost ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonPath:
    """A value inside the JSON attribute `attr`, at the dotted `path`."""

    attr: str
    path: str


Key = str | JsonPath


@dataclass(frozen=True)
class CacheKeys:
    """Where a producer puts cache reads and writes, and whether its input count includes them.

    `only_if`: (attribute, substrings): the group applies only when that attribute's value,
    lower-cased, contains one of the substrings (Vercel's counting depends on the provider)."""

    read: tuple[Key, ...] = ()
    write: tuple[Key, ...] = ()
    counting: CacheCounting = CacheCounting.INCLUDED
    only_if: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class UsageKeys:
    """Token counts under fixed keys; the first key with a count wins in each field.

    `json`: the keys are paths in this JSON attribute's object rather than attributes.
    `when`: read only if one of these keys is set (in the object, with `json`).
    `caches`: tried in order; the first group with a cache count decides the counting.
    The span has this usage if input, output or total is there, or, with `when` and
    `when_is_enough`, as soon as `when` matches (the shape is the producer's own, so no other
    producer's usage is looked for)."""

    input: tuple[Key, ...] = ()
    output: tuple[Key, ...] = ()
    total: tuple[Key, ...] = ()
    reasoning: tuple[Key, ...] = ()
    caches: tuple[CacheKeys, ...] = ()
    json: str = ""
    when: tuple[str, ...] = ()
    when_is_enough: bool = False


@dataclass(frozen=True)
class Buckets:
    """A JSON object of disjoint named buckets (Langfuse's usage_details/cost_details), summed
    by what their key (lower-cased) contains: total keys are the total; a key containing an
    input word is input, of which a `cache_word` key is a cache read, or a write if it also
    contains a write word; a key containing an output word is output, of which a
    `reasoning_word` key is reasoning. Summed this way, input and output are inclusive."""

    json: str
    total: tuple[str, ...] = ("total", "total_tokens")
    input_words: tuple[str, ...] = ("input", "prompt", "cache")
    output_words: tuple[str, ...] = ("output", "completion", "reasoning")
    cache_word: str = "cache"
    write_words: tuple[str, ...] = ("creat", "write")
    reasoning_word: str = "reasoning"


@dataclass(frozen=True)
class CostKeys:
    """A cost the producer reported, in USD, under flat keys."""

    total: tuple[str, ...] = ()
    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()


# -- messages (read only to estimate tokens when no usage was reported) --------------------------


@dataclass(frozen=True)
class Text:
    """The content text of all of `keys` (JSON messages walked for their strings, other strings
    as they are), taken when any of them is set."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class Indexed:
    """A flattened list: `{prefix}{i}{suffix}` for i = 0, 1, ...; a message with a role and no
    content (a tool call) does not end it."""

    prefix: str
    suffix: str


@dataclass(frozen=True)
class IndexedParts:
    """A flattened list of multi-part messages: `{prefix}{i}{parts}{j}{text}`."""

    prefix: str
    parts: str
    text: str
    role: str


Source = Text | Indexed | IndexedParts


# -- the producer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Producer:
    """Everything the normaliser knows about one producer's convention.

    Fields are tuples tried in order; across producers, in the precedence of `producers`."""

    name: str
    # A span is looked at only if it has one of these keys (of any producer).
    markers: frozenset[str] = frozenset()
    # Every attribute value is JSON-encoded ('"LLM"'): values are decoded before use.
    json_encoded: bool = False
    operation: tuple[OperationKey | OperationMarker, ...] = ()
    # When no attribute names the operation: span names whose first word is one ("chat gpt-4o"),
    # or whose last dotted part maps to one ("openai.chat").
    span_name_operations: frozenset[str] = frozenset()
    span_name_suffixes: Mapping[str, str] = field(default_factory=dict)
    # Tried last of all, after the span name.
    operation_fallback: tuple[OperationMarker, ...] = ()
    provider: tuple[str | ProviderPair, ...] = ()
    request_model: tuple[str, ...] = ()
    response_model: tuple[str, ...] = ()
    usage: tuple[UsageKeys | Buckets, ...] = ()
    usage_when: tuple[str, ...] = ()  # its usage is read only if one of these keys is set
    cache_write_1h: tuple[str, ...] = ()  # the one-hour part of the cache writes (Anthropic)
    cost: tuple[CostKeys | Buckets, ...] = ()
    input_messages: tuple[Source, ...] = ()
    output_messages: tuple[Source, ...] = ()
    session: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    experiment: tuple[str, ...] = ()
