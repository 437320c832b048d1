"""The resolver: producers' declarations (`producers/`) applied in their precedence, per aspect.

`Conventions(producers)` turns the declarations into flat lookup tables once, at import; each
aspect is then one loop over a tuple, so a span pays for the keys it is asked about and nothing
else (the collector runs this on every span). Aspects: operation, provider, models, usage (and
the one-hour cache writes), reported cost, message text, context ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from tracehouse_collector.processors.conventions import (
    Buckets,
    CacheKeys,
    Case,
    CostKeys,
    Indexed,
    IndexedParts,
    JsonPath,
    OperationKey,
    OperationMarker,
    Producer,
    ProviderPair,
    Text,
    UsageKeys,
)
from tracehouse_collector.processors.message_text import indexed, indexed_parts, text_of
from tracehouse_collector.processors.provider_names import normalize_provider
from tracehouse_collector.processors.usage import CacheCounting, Usage
from tracehouse_collector.processors.values import count, json_object, parse_decimal, parse_int, unquote

Get = Callable[[str], str | None]
Cost = tuple[Decimal | None, Decimal | None, Decimal | None]  # (total, input, output)

# Which Producer fields each aspect is made of; an aspect's precedence covers all of them.
ASPECTS: dict[str, tuple[str, ...]] = {
    "operation": ("operation", "span_name_operations", "span_name_suffixes", "operation_fallback"),
    "model": ("provider", "request_model", "response_model"),
    "usage": ("usage", "cache_write_1h"),
    "cost": ("cost",),
    "messages": ("input_messages", "output_messages"),
    "context": ("session", "user", "run", "experiment"),
}
_NO_COST: Cost = (None, None, None)


def declares(producer: Producer, aspect: str) -> bool:
    return any(getattr(producer, f) for f in ASPECTS[aspect])


class Conventions:
    """Lookup tables for a set of producers; `aspect_precedence` reorders single aspects (it
    must name exactly the producers that declare the aspect)."""

    def __init__(self, producers: Sequence[Producer], aspect_precedence: Mapping[str, Sequence[str]] = {}) -> None:
        self.producers = tuple(producers)
        by_name = {p.name: p for p in self.producers}
        order: dict[str, tuple[Producer, ...]] = {}
        for aspect in ASPECTS:
            declaring = [p for p in self.producers if declares(p, aspect)]
            names = aspect_precedence.get(aspect)
            if names is None:
                order[aspect] = tuple(declaring)
                continue
            if sorted(names) != sorted(p.name for p in declaring):
                raise ValueError(
                    f"the precedence of {aspect!r} lists {sorted(names)}, the producers declaring it are "
                    f"{sorted(p.name for p in declaring)}"
                )
            order[aspect] = tuple(by_name[n] for n in names)

        self.markers: frozenset[str] = frozenset().union(*(p.markers for p in self.producers))
        ops = order["operation"]
        self._operation_rules = tuple(r for p in ops for rule in p.operation for r in _operation_rows(p, rule))
        self._span_name_operations = frozenset().union(*(p.span_name_operations for p in ops))
        self._span_name_suffixes = {k: v for p in reversed(ops) for k, v in p.span_name_suffixes.items()}
        self._operation_fallback = tuple((k, m.operation) for p in ops for m in p.operation_fallback for k in m.keys)

        models = order["model"]
        self._provider_rules = tuple(_provider_row(p, rule) for p in models for rule in p.provider)
        self._request_model = tuple((k, p.json_encoded) for p in models for k in p.request_model)
        self._response_model = tuple((k, p.json_encoded) for p in models for k in p.response_model)

        self._usage_readers = tuple(_usage_reader(u, p.usage_when) for p in order["usage"] for u in p.usage)
        self._cache_write_1h = tuple(k for p in order["usage"] for k in p.cache_write_1h)
        self._cost_readers = tuple(_cost_reader(c) for p in order["cost"] for c in p.cost)
        self._input_sources = tuple(_source_row(s) for p in order["messages"] for s in p.input_messages)
        self._output_sources = tuple(_source_row(s) for p in order["messages"] for s in p.output_messages)

        # key -> (field, rank): field 0..3 = session, user, run, experiment; lower rank wins.
        ctx = order["context"]
        fields = [[k for p in ctx for k in getattr(p, f)] for f in ASPECTS["context"]]
        self.context_fields = {key: (field, rank) for field, keys in enumerate(fields) for rank, key in enumerate(keys)}
        self.context_keys = frozenset(self.context_fields)
        self._context_unquoted = frozenset(k for p in ctx if p.json_encoded for f in ASPECTS["context"] for k in getattr(p, f))

    # -- operation ---------------------------------------------------------------------------

    def operation(self, get: Get, span_name: str) -> str:
        for attr, fold, values, keep_unknown, refine, constant in self._operation_rules:
            v = get(attr)
            if not v:
                continue
            if constant:
                return constant
            if fold is not None:
                v = fold(v)
            op = values.get(v)
            if op is None:
                if keep_unknown:
                    return v
                continue
            for when, if_any, becomes in refine:
                if op == when and any(get(k) for k in if_any):
                    return becomes
            if op:
                return op
        if span_name:
            head = span_name.split(" ", 1)[0]
            if head in self._span_name_operations:
                return head
            if head == span_name:
                dot = span_name.rfind(".")
                if dot > 0:
                    op = self._span_name_suffixes.get(span_name[dot + 1 :].lower())
                    if op:
                        return op
        for attr, constant in self._operation_fallback:
            if get(attr):
                return constant
        return ""

    # -- provider and models -----------------------------------------------------------------

    def provider(self, get: Get) -> str:
        """The provider as the first producer that names one spells it, in OTel's vocabulary."""
        for attr, vendor, pairs, encoded in self._provider_rules:
            if pairs is None:
                v = get(attr)
                if v:
                    return normalize_provider(unquote(v) if encoded else v)
                continue
            host = get(attr) or ""
            made_by = get(vendor) or ""
            if host or made_by:
                h, m = host.strip().lower(), made_by.strip().lower()
                return pairs.get((h, m)) or pairs.get((h, "*")) or normalize_provider(h or m)
        return ""

    def request_model(self, get: Get) -> str:
        return _first_value(get, self._request_model)

    def response_model(self, get: Get) -> str:
        return _first_value(get, self._response_model)

    # -- usage and cost ----------------------------------------------------------------------

    def usage(self, get: Get) -> Usage | None:
        """The usage of the first producer that reported one, as it reported it."""
        parsed: dict[str, Any] = {}
        for read in self._usage_readers:
            usage = read(get, parsed)
            if usage is not None:
                return usage
        return None

    def cache_write_1h(self, get: Get) -> int | None:
        return _first_count(get, self._cache_write_1h)

    def reported_cost(self, get: Get) -> Cost:
        """(total, input, output) USD of the first producer that reported a cost."""
        for read in self._cost_readers:
            total, inp, out = read(get)
            if total is not None or inp is not None or out is not None:
                if total is None:
                    total = (inp or Decimal(0)) + (out or Decimal(0))
                return total, inp, out
        return _NO_COST

    # -- message text ------------------------------------------------------------------------

    def input_text(self, get: Get) -> str:
        return _text(get, self._input_sources)

    def output_text(self, get: Get) -> str:
        return _text(get, self._output_sources)

    # -- context -----------------------------------------------------------------------------

    def scan_context(self, attrs: Mapping[str, str], out: list[str], fixed: tuple[bool, ...]) -> None:
        """Fill out[field] from the best-ranked non-empty key of `attrs`, except fixed fields."""
        ranks = [len(self.context_fields)] * 4
        for key in self.context_keys.intersection(attrs):
            field, rank = self.context_fields[key]
            if fixed[field] or rank >= ranks[field]:
                continue
            v = attrs[key]
            if v and key in self._context_unquoted:
                v = unquote(v)
            if v:
                out[field] = v
                ranks[field] = rank


# -- tables built from declarations ----------------------------------------------------------------


def _strip_lower(v: str) -> str:
    return v.strip().lower()


def _strip_upper(v: str) -> str:
    return v.strip().upper()


_FOLDS: dict[Case, Callable[[str], str] | None] = {Case.EXACT: None, Case.LOWER: _strip_lower, Case.UPPER: _strip_upper}


def _operation_rows(p: Producer, rule: OperationKey | OperationMarker) -> Iterable[tuple[Any, ...]]:
    """(attr, fold, values, keep_unknown, refine, constant) rows; a marker is a row per key."""
    if isinstance(rule, OperationMarker):
        return [(k, None, None, False, (), rule.operation) for k in rule.keys]
    fold = _FOLDS[rule.case]
    if p.json_encoded:
        case = fold or str
        fold = lambda v: case(unquote(v))  # noqa: E731
    refine = tuple((r.operation, r.if_any, r.becomes) for r in rule.refine)
    return [(rule.attr, fold, dict(rule.values), rule.keep_unknown, refine, "")]


def _provider_row(p: Producer, rule: str | ProviderPair) -> tuple[Any, ...]:
    """(attr, vendor attr, pairs, json-encoded): pairs is None for a key naming the provider."""
    if isinstance(rule, ProviderPair):
        return (rule.host, rule.vendor, dict(rule.pairs), False)
    return (rule, "", None, p.json_encoded)


def _first_value(get: Get, keys: tuple[tuple[str, bool], ...]) -> str:
    for key, encoded in keys:
        v = get(key)
        if v:
            return unquote(v) if encoded else v
    return ""


def _first_count(get: Get, keys: tuple[str, ...]) -> int | None:
    for k in keys:
        v = get(k)
        if v:
            n = parse_int(v)
            if n is not None:
                return n
    return None


def _set(get: Get, keys: tuple[str, ...]) -> bool:
    for k in keys:
        if get(k):
            return True
    return False


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def _parsed(get: Get, attr: str, parsed: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object in `attr`, parsed at most once per span."""
    if attr not in parsed:
        parsed[attr] = json_object(get(attr))
    return parsed[attr]


UsageReader = Callable[[Get, dict[str, Any]], Usage | None]


def _usage_reader(decl: UsageKeys | Buckets, producer_when: tuple[str, ...]) -> UsageReader:
    if isinstance(decl, Buckets):
        read = _buckets_usage_reader(decl)
    elif decl.json:
        read = _json_usage_reader(decl)
    else:
        read = _flat_usage_reader(decl)
    if not producer_when:
        return read
    return lambda get, parsed: read(get, parsed) if _set(get, producer_when) else None


def _flat_count_of(keys: tuple[str | JsonPath, ...]) -> Callable[[Get, dict[str, Any]], int | None]:
    """A reader of the first count among attribute keys and JSON paths into attributes."""
    if all(isinstance(k, str) for k in keys):
        plain = tuple(k for k in keys if isinstance(k, str))
        return lambda get, parsed: _first_count(get, plain)
    steps = [(k, None, None) if isinstance(k, str) else (k.attr, tuple(k.path.split(".")), k.path.rsplit(".", 1)[-1]) for k in keys]

    def read(get: Get, parsed: dict[str, Any]) -> int | None:
        for attr, path, last in steps:
            if path is None:
                n = _first_count(get, (attr,))
            else:
                raw = get(attr)
                # Parse only when the key can be in there (the text holds its last part).
                n = count(_dig(_parsed(get, attr, parsed), path)) if raw and last in raw else None
            if n is not None:
                return n
        return None

    return read


def _caches(groups: tuple[CacheKeys, ...], reader_of: Callable[[tuple[Any, ...]], Any]) -> tuple[tuple[Any, ...], ...]:
    return tuple((reader_of(g.read), reader_of(g.write), g.counting, g.only_if) for g in groups)


def _cache_counts(
    get: Get, source: Any, parsed: dict[str, Any], groups: tuple[tuple[Any, ...], ...]
) -> tuple[int | None, int | None, CacheCounting]:
    """(cache read, cache write, counting) of the first group that applies and has a count."""
    for read, write, counting, only_if in groups:
        if only_if is not None:
            value = (get(only_if[0]) or "").lower()
            if not any(s in value for s in only_if[1]):
                continue
        cr, cw = read(source, parsed), write(source, parsed)
        if cr is not None or cw is not None:
            return cr, cw, counting
    return None, None, CacheCounting.INCLUDED


def _plain(keys: tuple[str | JsonPath, ...]) -> tuple[str, ...]:
    if not all(isinstance(k, str) for k in keys):
        raise ValueError(f"JsonPath is for cache counts only: {keys}")
    return tuple(k for k in keys if isinstance(k, str))


def _flat_usage_reader(u: UsageKeys) -> UsageReader:
    inp, out, total, reasoning = _plain(u.input), _plain(u.output), _plain(u.total), _plain(u.reasoning)
    when, enough = u.when, u.when_is_enough
    caches = _caches(u.caches, _flat_count_of)

    def read(get: Get, parsed: dict[str, Any]) -> Usage | None:
        if when and not _set(get, when):
            return None
        i, o, t = _first_count(get, inp), _first_count(get, out), _first_count(get, total)
        if i is None and o is None and t is None and not enough:
            return None
        cr, cw, counting = _cache_counts(get, get, parsed, caches)
        return Usage(i, o, cr, cw, _first_count(get, reasoning), t, counting)

    return read


def _path_count_of(keys: tuple[str | JsonPath, ...]) -> Callable[[Any, dict[str, Any]], int | None]:
    """A reader of the first count among dotted paths into a parsed JSON object."""
    paths = tuple(tuple(k.split(".")) for k in _plain(keys))

    def read(d: Any, parsed: dict[str, Any]) -> int | None:
        for path in paths:
            n = count(_dig(d, path))
            if n is not None:
                return n
        return None

    return read


def _json_usage_reader(u: UsageKeys) -> UsageReader:
    attr, when, enough = u.json, u.when, u.when_is_enough
    inp, out, total = _path_count_of(u.input), _path_count_of(u.output), _path_count_of(u.total)
    reasoning = _path_count_of(u.reasoning)
    if any(g.only_if for g in u.caches):
        raise ValueError(f"{attr}: only_if is for flat usage keys")
    caches = _caches(u.caches, _path_count_of)

    def read(get: Get, parsed: dict[str, Any]) -> Usage | None:
        d = _parsed(get, attr, parsed)
        if not d or (when and not any(k in d for k in when)):
            return None
        i, o, t = inp(d, parsed), out(d, parsed), total(d, parsed)
        if i is None and o is None and t is None and not enough:
            return None
        cr, cw, counting = _cache_counts(get, d, parsed, caches)
        return Usage(i, o, cr, cw, reasoning(d, parsed), t, counting)

    return read


def _has_any(key: str, words: tuple[str, ...]) -> bool:
    for w in words:
        if w in key:
            return True
    return False


def _buckets_usage_reader(b: Buckets) -> UsageReader:
    def read(get: Get, parsed: dict[str, Any]) -> Usage | None:
        d = _parsed(get, b.json, parsed)
        if not d:
            return None
        inp = out = cr = cw = rs = total = None
        for key, value in d.items():
            n = count(value)
            if n is None:
                continue
            k = key.lower()
            if k in b.total:
                total = n
            elif _has_any(k, b.input_words):
                inp = (inp or 0) + n
                if b.cache_word in k:
                    if _has_any(k, b.write_words):
                        cw = (cw or 0) + n
                    else:
                        cr = (cr or 0) + n
            elif _has_any(k, b.output_words):
                out = (out or 0) + n
                if b.reasoning_word in k:
                    rs = (rs or 0) + n
        if inp is None and out is None and total is None:
            return None
        return Usage(inp, out, cr, cw, rs, total, CacheCounting.INCLUDED)

    return read


def _first_amount(get: Get, keys: tuple[str, ...]) -> Decimal | None:
    for k in keys:
        d = parse_decimal(get(k))
        if d is not None:
            return d
    return None


def _cost_reader(decl: CostKeys | Buckets) -> Callable[[Get], Cost]:
    if isinstance(decl, CostKeys):
        return lambda get: (
            _first_amount(get, decl.total),
            _first_amount(get, decl.input),
            _first_amount(get, decl.output),
        )

    def read(get: Get) -> Cost:
        d = json_object(get(decl.json))
        if not d:
            return _NO_COST
        total = inp = out = None
        for key, value in d.items():
            v = parse_decimal(value)
            if v is None:
                continue
            k = key.lower()
            if k in decl.total:
                total = v
            elif _has_any(k, decl.input_words):
                inp = v if inp is None else inp + v
            elif _has_any(k, decl.output_words):
                out = v if out is None else out + v
        return total, inp, out

    return read


def _source_row(source: Text | Indexed | IndexedParts) -> tuple[Any, ...]:
    if isinstance(source, Text):
        return (Text, source.keys)
    if isinstance(source, Indexed):
        return (Indexed, source.prefix, source.suffix)
    return (IndexedParts, source.prefix, source.parts, source.text, source.role)


def _text(get: Get, sources: tuple[tuple[Any, ...], ...]) -> str:
    """The text of the first source that is there."""
    out: list[str] = []
    for kind, *args in sources:
        if kind is Text:
            keys = args[0]
            if _set(get, keys):
                for k in keys:
                    text_of(get(k), out)
                break
        elif kind is Indexed:
            if indexed(get, args[0], args[1], out):
                break
        elif indexed_parts(get, *args, out):
            break
    return "\n".join(out)
