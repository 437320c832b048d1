"""The price context of a call: which of a model's price variants the provider billed it at.

genai-prices selects a model's price variants by request context (`calc_price(...,
price_context=...)`), with three keys Tracehouse fills from a span's attributes:

| context key    | span attributes, first found wins                                        | values   |
|----------------|--------------------------------------------------------------------------|----------|
| `service_tier` | `openai.response.service_tier`, `gen_ai.openai.response.service_tier`,   | priority, flex, fast, default, ... |
|                | `tracehouse.response.service_tier`, then the request's: `openai.request.` |          |
|                | `service_tier`, `gen_ai.openai.request.service_tier`,                    |          |
|                | `tracehouse.request.service_tier`, OpenInference `llm.invocation_parameters` |      |
| `processing`   | `tracehouse.request.batch` true, or a service tier of `batch`            | batch    |
| `speed`        | `tracehouse.request.speed`, `tracehouse.response.speed`                  | fast     |

The tier the provider returned wins over the one requested: OpenAI answers `auto` with the tier
it used, and may serve a `priority` request at `default`. A request of `auto` alone says
nothing. `standard`, `auto`, `default` and `on_demand` are the base price. The price module
checks every other value against the model's variants: a value no variant knows (OpenAI
`scale`, Anthropic `priority`, a tier of a model without one) is priced at the base price and
named in `PriceSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

# Semantic conventions (openai.*, v1.41.1), their deprecated gen_ai.openai.* names, then ours.
RESPONSE_TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "tracehouse.response.service_tier",
)
REQUEST_TIER_KEYS = (
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
    "tracehouse.request.service_tier",
)
BATCH_KEY = "tracehouse.request.batch"
SPEED_KEYS = ("tracehouse.response.speed", "tracehouse.request.speed")
OPENINFERENCE_PARAMS = "llm.invocation_parameters"
# Every key read here: a span with none of them (most) has the empty context, found in one
# C-level set operation instead of nine lookups.
KEYS = frozenset((*RESPONSE_TIER_KEYS, *REQUEST_TIER_KEYS, BATCH_KEY, *SPEED_KEYS, OPENINFERENCE_PARAMS))

# Tier names that mean the standard price: no variant to look for, nothing to report.
BASE_TIERS = frozenset({"", "auto", "default", "standard", "on_demand", "standard_only", "unspecified"})
_TRUE = frozenset({"true", "1", "yes"})

PriceContext = tuple[tuple[str, str], ...]  # sorted (key, value) pairs: hashable, cache-friendly


def _clean(value: object) -> str:
    return str(value).strip().lower() if value is not None else ""


def _first(get: Callable[[str], str | None], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = _clean(get(key))
        if value:
            return value
    return ""


def _openinference_tier(raw: str | None) -> str:
    # A JSON object of the request's parameters; parsed only when it names a tier.
    if not raw or "service_tier" not in raw:
        return ""
    try:
        params = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    return _clean(params.get("service_tier")) if isinstance(params, dict) else ""


def of_span(attrs: Mapping[str, str]) -> PriceContext:
    """The price context of a span's attribute map (from_attributes, with the common exit)."""
    return () if KEYS.isdisjoint(attrs) else from_attributes(attrs.get)


def from_attributes(get: Callable[[str], str | None]) -> PriceContext:
    """The price context a span's attributes state; empty for a standard call."""
    tier = _first(get, RESPONSE_TIER_KEYS)
    if not tier:
        tier = _first(get, REQUEST_TIER_KEYS) or _openinference_tier(get(OPENINFERENCE_PARAMS))
    context: dict[str, str] = {}
    if tier == "batch":  # Anthropic's usage.service_tier of a Message Batches result
        context["processing"] = "batch"
    elif tier not in BASE_TIERS:
        context["service_tier"] = tier
    if _clean(get(BATCH_KEY)) in _TRUE:
        context["processing"] = "batch"
    speed = _first(get, SPEED_KEYS)
    if speed and speed not in ("standard", "normal", "default"):
        context["speed"] = speed
    return tuple(sorted(context.items()))
