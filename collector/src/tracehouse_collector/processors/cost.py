"""Cost enrichment: token usage -> USD, from the `genai-prices` data bundled in that package, or a
user price file. Nothing is fetched at run time.

Precedence: a cost the producer reported (`reported`), then the user's price file (`user`),
then genai-prices (`genai-prices <version>`). A model nobody prices gets PriceSource
`unpriced` (its cost columns stay 0, which aggregates must not read as free) and is counted
(see `Pricer.unknown`).

Price variants (batch, service tiers, fast mode) follow the call's price context
(`price_context`): genai-prices picks the variant, and PriceSource names it, e.g.
`genai-prices 0.2.3 service_tier=priority`. A context value the model has no variant for is
priced at the base price and named too: `genai-prices 0.2.3 base price, no service_tier=scale`.
User price files have no variants: their prices apply to every context.
Anthropic's one-hour cache writes (`cache_write_1h_tokens`, part of the cache writes) are
priced at the model's `cache_write_1h_mtok` where it has one.

genai-prices supplies the semantics: which usage types a model prices (input, cache read,
cache write, output), context-size tiers (a cliff: crossing a tier's start re-prices every
token) and the price valid on the span's date. Its calculation is exact but costs ~0.2 ms, too
much per span, so this module asks it once per (model price, tier) for the price of one token
of each usage type and applies those rates itself: cost is linear in the token counts within
a tier, so the result is the library's, to the last digit.

User price file (YAML or JSON), `--prices FILE` / `TRACEHOUSE_PRICES`:

    models:
      - name: my-finetuned-gpt          # exact model name ...
        prices: {input_mtok: 2.0, output_mtok: 8.0, cache_read_mtok: 0.5}
      - match: "acme-*"                 # ... or a glob pattern
        provider: openai                # optional: only for this provider
        prices:
          input_mtok: {base: 1.0, tiers: [{start: 200000, price: 2.0}]}
          output_mtok: 4.0

Prices are USD per million tokens, with genai-prices' price keys (input_mtok, output_mtok,
cache_read_mtok, cache_write_mtok, ...). Exact names win over patterns; patterns are tried in
file order. A user entry overrides genai-prices for the models it matches.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

import genai_prices
from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelPrice, Tier, TieredPrices

from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.price_context import PriceContext

GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"

# Tracehouse's provider vocabulary -> genai-prices provider ids.
PROVIDER_IDS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "cohere": "cohere",
    "mistral_ai": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "databricks": "databricks",
    "moonshotai": "moonshotai",
}
# Models served on the user's own hardware have no list price.
SELF_HOSTED = frozenset({"ollama", "vllm", "lmstudio", "llama.cpp", "localai", "huggingface_tgi"})

_ONE_MILLION = 1_000_000


class PriceFileError(ValueError):
    """The user price file cannot be used; the message says where and why."""


class Cost(NamedTuple):  # built for every priced span: a tuple costs half a frozen dataclass
    input_usd: Decimal
    output_usd: Decimal
    total_usd: Decimal
    source: str


UNPRICED_SOURCE = "unpriced"
UNPRICED = Cost(Decimal(0), Decimal(0), Decimal(0), UNPRICED_SOURCE)
_UNRESOLVED: Any = object()
_MAX_RESOLVED = 65536


@dataclass(frozen=True)
class _Rates:
    """USD per token of each usage type, for one model price within one tier."""

    uncached_input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    output: Decimal


def _tier_starts(mp: ModelPrice) -> tuple[int, ...]:
    starts = {t.start for v in vars(mp).values() if isinstance(v, TieredPrices) for t in v.tiers}
    return tuple(sorted(starts))


def _probe_rates(mp: ModelPrice, input_tokens: int) -> _Rates:
    """Rates of `mp` in the tier `input_tokens` falls in, measured with genai-prices itself."""
    n = max(input_tokens, 1)
    plain = mp.calc_price(Usage(input_tokens=n))["input_price"] / n
    read = mp.calc_price(Usage(input_tokens=n, cache_read_tokens=n))["input_price"] / n
    write = mp.calc_price(Usage(input_tokens=n, cache_write_tokens=n))["input_price"] / n
    # Without a one-hour price genai-prices charges those writes as any cache write.
    write_1h = (
        mp.calc_price(Usage(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n))["input_price"] / n
    )
    both = mp.calc_price(Usage(input_tokens=n, output_tokens=_ONE_MILLION))
    output = both["output_price"] / _ONE_MILLION
    return _Rates(plain, read, write, write_1h, output)


def _variant_keys(lib_model: Any, context: PriceContext, when: dt.datetime) -> frozenset[tuple[str, str]]:
    """The pairs of `context` that select a variant of `lib_model` on that date."""
    wanted = dict(context)
    used: set[tuple[str, str]] = set()
    for variant in lib_model.price_variants or ():
        if variant.constraint is not None and not variant.constraint.active(when):
            continue
        if all(wanted.get(k) == v for k, v in variant.when.items()):
            used.update(variant.when.items())
    return frozenset(used)


def _describe(source: str, context: PriceContext, used: frozenset[tuple[str, str]]) -> str:
    """PriceSource naming the variants applied and the context values priced at base."""
    applied = " ".join(f"{k}={v}" for k, v in context if (k, v) in used)
    missing = ", ".join(f"{k}={v}" for k, v in context if (k, v) not in used)
    out = f"{source} {applied}" if applied else source
    return f"{out}{',' if applied else ''} base price, no {missing}" if missing else out


# -- user price file ---------------------------------------------------------------------------


def _decimal(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PriceFileError(f"{where}: {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise PriceFileError(f"{where}: {value!r} must be a non-negative number")
    return d


def _price_value(value: Any, where: str) -> Decimal | TieredPrices:
    if isinstance(value, dict):
        if "base" not in value:
            raise PriceFileError(f"{where}: a tiered price needs 'base' and 'tiers'")
        tiers = []
        for i, tier in enumerate(value.get("tiers") or []):
            if not isinstance(tier, dict) or "start" not in tier or "price" not in tier:
                raise PriceFileError(f"{where}.tiers[{i}]: needs 'start' and 'price'")
            tiers.append(
                Tier(start=int(tier["start"]), price=_decimal(tier["price"], f"{where}.tiers[{i}].price"))
            )
        return TieredPrices(
            base=_decimal(value["base"], f"{where}.base"), tiers=sorted(tiers, key=lambda t: t.start)
        )
    return _decimal(value, where)


def _model_price(values: dict[str, Decimal | TieredPrices], where: str) -> ModelPrice:
    """A genai-prices ModelPrice, with genai-prices itself judging the price keys."""
    mp = ModelPrice(**values)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mp.calc_price(Usage(input_tokens=1, output_tokens=1))
        except Exception as exc:
            raise PriceFileError(f"{where}: {exc}") from None
    problems = [str(w.message) for w in caught]
    if problems:
        raise PriceFileError(
            f"{where}: {'; '.join(problems)} (use genai-prices keys such as input_mtok, output_mtok, "
            "cache_read_mtok, cache_write_mtok)"
        )
    return mp


@dataclass(frozen=True)
class _UserEntry:
    name: str
    pattern: str
    provider: str
    prices: ModelPrice
    label: str

    def matches(self, provider: str, model: str) -> bool:
        if self.provider and self.provider != provider:
            return False
        if self.name:
            return model == self.name
        return fnmatch.fnmatchcase(model, self.pattern)


def load_price_file(path: str | Path) -> list[_UserEntry]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PriceFileError(f"price file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:
        raise PriceFileError(
            f"price file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise PriceFileError(f"price file {path}: expected a mapping with a 'models' list")
    entries = []
    for i, item in enumerate(doc["models"]):
        where = f"{path.name}: models[{i}]"
        if not isinstance(item, dict):
            raise PriceFileError(f"{where}: expected a mapping")
        name, pattern = str(item.get("name") or ""), str(item.get("match") or "")
        if bool(name) == bool(pattern):
            raise PriceFileError(f"{where}: give exactly one of 'name' or 'match'")
        prices = item.get("prices")
        if not isinstance(prices, dict) or not prices:
            raise PriceFileError(f"{where}: 'prices' must map price keys to USD per million tokens")
        values = {str(k): _price_value(v, f"{where}.prices.{k}") for k, v in prices.items()}
        mp = _model_price(values, where)
        entries.append(_UserEntry(name, pattern, str(item.get("provider") or ""), mp, name or pattern))
    # Exact names first; patterns keep their file order.
    return sorted(entries, key=lambda e: 0 if e.name else 1)


# -- pricing -----------------------------------------------------------------------------------


class Pricer:
    """Prices GenAIFacts; one per decoding worker, caches everything it looks up."""

    def __init__(self, user_entries: list[_UserEntry] | None = None) -> None:
        self.user_entries = user_entries or []
        self.unknown: Counter[tuple[str, str]] = Counter()
        self._snapshot = data_snapshot.get_snapshot()
        self._models: dict[tuple[str, str], Any] = {}
        self._user_match: dict[tuple[str, str], _UserEntry | None] = {}
        self._day_prices: dict[tuple[int, dt.date, PriceContext], tuple[ModelPrice, str]] = {}
        self._own_model: dict[tuple[str, str], bool] = {}
        self._rates: dict[tuple[int, int], tuple[ModelPrice, _Rates]] = {}
        self._starts: dict[int, tuple[int, ...]] = {}  # keyed like _rates; those entries keep mp alive
        # (provider, model, request model, day, context) -> its price and PriceSource, or
        # _NOBODY: everything price() looks up before the arithmetic, in one lookup
        self._resolved: dict[tuple[str, str, str, dt.date, PriceContext], tuple[ModelPrice, str] | None] = {}

    @classmethod
    def from_file(cls, path: str | None) -> Pricer:
        return cls(load_price_file(path) if path else None)

    def _user_entry(self, provider: str, model: str) -> _UserEntry | None:
        key = (provider, model)
        if key not in self._user_match:
            self._user_match[key] = next((e for e in self.user_entries if e.matches(provider, model)), None)
        return self._user_match[key]

    def _library_model(self, provider: str, model: str) -> Any:
        key = (provider, model)
        if key not in self._models:
            provider_id = PROVIDER_IDS.get(provider)
            try:
                if provider and provider_id is None:
                    # A provider genai-prices does not know: match the model across providers.
                    found = self._snapshot.find_provider_model(model, None, None, None)
                else:
                    found = self._snapshot.find_provider_model(model, None, provider_id, None)
                self._models[key] = found[1]
                # genai-prices applies variants only to a provider's own models, not to a
                # model it found at another provider.
                self._own_model[key] = any(found[1] is m for m in found[0].models)
            except LookupError:
                self._models[key] = None
        return self._models[key]

    def _library_price(
        self, lib_model: Any, own: bool, day: dt.date, context: PriceContext
    ) -> tuple[ModelPrice, str]:
        key = (id(lib_model), day, context)
        hit = self._day_prices.get(key)
        if hit is None:
            when = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
            ctx = dict(context) if own else None
            used = _variant_keys(lib_model, context, when) if own else frozenset()
            mp = lib_model.get_prices(when, ctx)
            # The snapshot's models live as long as the process, so their id() is stable.
            hit = self._day_prices[key] = (mp, _describe(GENAI_PRICES_SOURCE, context, used))
        return hit

    def _rates_for(self, mp: ModelPrice, input_tokens: int) -> _Rates:
        starts = self._starts.get(id(mp))
        if starts is None:
            starts = self._starts[id(mp)] = _tier_starts(mp)
        tier = sum(1 for s in starts if input_tokens > s) if starts else 0
        key = (id(mp), tier)
        hit = self._rates.get(key)
        if hit is None:
            # The ModelPrice is kept in the entry so its id() cannot be reused by another object.
            hit = self._rates[key] = (mp, _probe_rates(mp, input_tokens))
        return hit[1]

    def _resolve(
        self, provider: str, model: str, request_model: str, day: dt.date, context: PriceContext
    ) -> tuple[ModelPrice, str] | None:
        """The price of a model on a day, in a context, and its PriceSource; None: nobody's."""
        entry = self._user_entry(provider, model)
        if entry is not None:
            return entry.prices, _describe("user", context, frozenset())
        lookup = (provider, model)
        lib_model = self._library_model(*lookup)
        if lib_model is None and request_model and request_model != model:
            lookup = (provider, request_model)
            lib_model = self._library_model(*lookup)
        if lib_model is None:
            return None
        return self._library_price(lib_model, self._own_model[lookup], day, context)

    def price(self, facts: GenAIFacts, day: dt.date) -> Cost | None:
        """The cost of one call; None when there is nothing to price (no model, no usage, a
        self-hosted model). A model nobody prices is UNPRICED, and counted."""
        if facts.reported_cost_usd is not None or facts.reported_input_cost_usd is not None:
            inp = facts.reported_input_cost_usd or Decimal(0)
            out = facts.reported_output_cost_usd or Decimal(0)
            total = facts.reported_cost_usd if facts.reported_cost_usd is not None else inp + out
            return Cost(inp, out, total, "reported")
        model = facts.model
        if not model or not facts.has_usage or facts.provider in SELF_HOSTED:
            return None
        key = (facts.provider, model, facts.request_model, day, facts.price_context)
        resolved = self._resolved.get(key, _UNRESOLVED)
        if resolved is _UNRESOLVED:
            if len(self._resolved) > _MAX_RESOLVED:  # keys are whatever producers send
                self._resolved.clear()
            resolved = self._resolved[key] = self._resolve(
                facts.provider, model, facts.request_model, day, facts.price_context
            )
        if resolved is None:
            self.unknown[(facts.provider, model)] += 1
            return UNPRICED
        mp, source = resolved
        input_tokens = facts.input_tokens or 0
        cache_read = facts.cache_read_tokens or 0
        cache_write = facts.cache_write_tokens or 0
        write_1h = min(facts.cache_write_1h_tokens or 0, cache_write)
        rates = self._rates_for(mp, input_tokens)
        uncached = max(input_tokens - cache_read - cache_write, 0)
        inp = (
            rates.uncached_input * uncached
            + rates.cache_read * cache_read
            + rates.cache_write * (cache_write - write_1h)
            + rates.cache_write_1h * write_1h
        )
        out = rates.output * (facts.output_tokens or 0)
        return Cost(inp, out, inp + out, source)
