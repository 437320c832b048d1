"""The resolver: producers' declarations (`producers/`) applied in their precedence, per aspect.

`Conventions(producers)` does all the work a declaration needs once, at import: lookup tables,
and for the aspects read on every model span (operation, provider, models, usage, reported
cost) a generated straight-line function, so a span pays for the keys it is asked about and
nothing else (the collector runs this on ~100k spans/s). The other aspects (one-hour cache
writes, message text, context ids) are short loops over tuples. Nothing here knows a producer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from tracehouse_collector.processors.conventions import (
    Buckets,
    Case,
    CostKeys,
    Indexed,
    IndexedParts,
    JsonPath,
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
    """The declarations of a set of producers, ready to apply to spans; `aspect_precedence`
    reorders single aspects (it must name exactly the producers that declare the aspect).

    The aspects that run on every model span are generated at construction as straight-line
    functions, the way dataclasses generates `__init__`: the if-chain one would write by hand,
    written from the declarations, in their precedence (see each one's `generated_source`):

    * `operation(get, span_name) -> str`
    * `provider(get) -> str` (in the gen_ai.provider.name vocabulary)
    * `usage(get) -> Usage | None` (the first producer's that reported one, as it did)
    * `reported_cost(get) -> (total, input, output)` USD, Nones where not reported
    * `request_model(get) -> str`, `response_model(get) -> str`
    """

    def __init__(
        self, producers: Sequence[Producer], aspect_precedence: Mapping[str, Sequence[str]] = {}
    ) -> None:
        self.producers = tuple(producers)
        order = _aspect_order(self.producers, aspect_precedence)
        self.markers: frozenset[str] = frozenset().union(*(p.markers for p in self.producers))
        self.operation: Callable[[Get, str], str] = _operation_function(order["operation"])
        self.provider: Callable[[Get], str] = _provider_function(order["model"])
        self.usage: Callable[[Get], Usage | None] = _usage_function(order["usage"])
        self.reported_cost: Callable[[Get], Cost] = _cost_function(order["cost"])
        # The keys reported_cost looks at: a span with none of them reported no cost.
        self.cost_keys = frozenset(k for p in order["cost"] for decl in p.cost for k in _guard(decl))
        self.request_model: Callable[[Get], str] = _first_value_function("request_model", order["model"])
        self.response_model: Callable[[Get], str] = _first_value_function("response_model", order["model"])
        self._cache_write_1h = tuple(k for p in order["usage"] for k in p.cache_write_1h)
        self._input_sources = tuple(s for p in order["messages"] for s in p.input_messages)
        self._output_sources = tuple(s for p in order["messages"] for s in p.output_messages)

        # Context: key -> (field, rank): field 0..3 = session, user, run, experiment; lower rank wins.
        ctx = order["context"]
        fields = [[k for p in ctx for k in getattr(p, f)] for f in ASPECTS["context"]]
        self.context_fields = {
            key: (field, rank) for field, keys in enumerate(fields) for rank, key in enumerate(keys)
        }
        self.context_keys = frozenset(self.context_fields)
        self._context_unquoted = frozenset(
            k for p in ctx if p.json_encoded for f in ASPECTS["context"] for k in getattr(p, f)
        )

    def cache_write_1h(self, get: Get) -> int | None:
        return _first_count(get, self._cache_write_1h)

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


def _aspect_order(
    producers: tuple[Producer, ...], precedence: Mapping[str, Sequence[str]]
) -> dict[str, tuple[Producer, ...]]:
    """The producers declaring each aspect, in the order it is read in."""
    by_name = {p.name: p for p in producers}
    order = {}
    for aspect in ASPECTS:
        declaring = [p for p in producers if declares(p, aspect)]
        names = precedence.get(aspect)
        if names is None:
            order[aspect] = tuple(declaring)
        elif sorted(names) == sorted(p.name for p in declaring):
            order[aspect] = tuple(by_name[n] for n in names)
        else:
            raise ValueError(
                f"the precedence of {aspect!r} lists {sorted(names)}, "
                f"the producers declaring it are {sorted(p.name for p in declaring)}"
            )
    return order


class _Code:
    """A function's source written line by line, with the values it refers to."""

    def __init__(self, signature: str, **env: Any) -> None:
        self.lines = [f"def {signature}:"]
        self.env: dict[str, Any] = dict(env)

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def value(self, value: Any, name: str) -> str:
        """A name for `value` in the generated code."""
        name = f"{name}{len(self.env)}"
        self.env[name] = value
        return name

    def any_set(self, keys: tuple[str, ...]) -> str:
        return " or ".join(f"get({k!r})" for k in keys)

    def function(self) -> Any:
        source = "\n".join(self.lines) + "\n"
        name = self.lines[0][4 : self.lines[0].index("(")]
        exec(compile(source, f"<{name} generated by resolve>", "exec"), self.env)  # noqa: S102 - from declarations
        function = self.env[name]
        function.generated_source = source
        return function


def _operation_function(producers: tuple[Producer, ...]) -> Callable[[Get, str], str]:
    code = _Code("operation(get, span_name)", unquote=unquote)
    seen: set[str] = set()
    for p in producers:
        for rule in p.operation:
            if isinstance(rule, OperationMarker):
                code.add(1, f"if {code.any_set(rule.keys)}:")
                code.add(2, f"return {rule.operation!r}")
                continue
            if rule.attr in seen:
                raise ValueError(f"{rule.attr} names the operation twice")
            seen.add(rule.attr)
            code.add(1, f"v = get({rule.attr!r})")
            code.add(1, "if v:")
            if p.json_encoded:
                code.add(2, "v = unquote(v)")
            if rule.case is not Case.EXACT:
                code.add(2, f"v = v.strip().{rule.case.value}()")
            code.add(2, f"op = {code.value(dict(rule.values), 'values')}.get(v)")
            if rule.keep_unknown:
                code.add(2, "if op is None:")
                code.add(3, "return v")
            for r in rule.refine:
                code.add(2, f"if op == {r.operation!r} and ({code.any_set(r.if_any)}):")
                code.add(3, f"return {r.becomes!r}")
            code.add(2, "if op:")
            code.add(3, "return op")
    heads = frozenset().union(*(p.span_name_operations for p in producers))
    suffixes = {k: v for p in reversed(producers) for k, v in p.span_name_suffixes.items()}
    code.add(1, "if span_name:")
    code.add(2, "head = span_name.split(' ', 1)[0]")
    code.add(2, f"if head in {code.value(heads, 'heads')}:")
    code.add(3, "return head")
    code.add(2, "if head == span_name:")
    code.add(3, "dot = span_name.rfind('.')")
    code.add(3, "if dot > 0:")
    code.add(4, f"op = {code.value(suffixes, 'suffixes')}.get(span_name[dot + 1 :].lower())")
    code.add(4, "if op:")
    code.add(5, "return op")
    for p in producers:
        for marker in p.operation_fallback:
            code.add(1, f"if {code.any_set(marker.keys)}:")
            code.add(2, f"return {marker.operation!r}")
    code.add(1, "return ''")
    return code.function()  # type: ignore[no-any-return]


def _provider_function(producers: tuple[Producer, ...]) -> Callable[[Get], str]:
    code = _Code("provider(get)", unquote=unquote, normalize_provider=normalize_provider)
    for p in producers:
        for rule in p.provider:
            if isinstance(rule, ProviderPair):
                pairs = code.value(dict(rule.pairs), "pairs")
                code.add(1, f"host, made_by = get({rule.host!r}) or '', get({rule.vendor!r}) or ''")
                code.add(1, "if host or made_by:")
                code.add(2, "host, made_by = host.strip().lower(), made_by.strip().lower()")
                code.add(2, f"hit = {pairs}.get((host, made_by)) or {pairs}.get((host, '*'))")
                code.add(2, "return hit or normalize_provider(host or made_by)")
                continue
            code.add(1, f"v = get({rule!r})")
            code.add(1, "if v:")
            code.add(2, f"return normalize_provider({'unquote(v)' if p.json_encoded else 'v'})")
    code.add(1, "return ''")
    return code.function()  # type: ignore[no-any-return]


def _first_value_function(field: str, producers: tuple[Producer, ...]) -> Callable[[Get], str]:
    """The first non-empty value of the producers' `field` keys (decoded where JSON-encoded)."""
    code = _Code(f"{field}(get)", unquote=unquote)
    for p in producers:
        for key in getattr(p, field):
            code.add(1, f"v = get({key!r})")
            code.add(1, "if v:")
            code.add(2, "return unquote(v)" if p.json_encoded else "return v")
    code.add(1, "return ''")
    return code.function()  # type: ignore[no-any-return]


def _usage_function(producers: tuple[Producer, ...]) -> Callable[[Get], Usage | None]:
    """Each producer's readers, tried only when one of the keys they need is set."""
    code = _Code("usage(get)")
    code.add(1, "parsed = {}")
    for p in producers:
        if not p.usage:
            continue
        guard = p.usage_when or tuple(dict.fromkeys(k for u in p.usage for k in _guard(u)))
        code.add(1, f"if {code.any_set(guard)}:")
        for decl in p.usage:
            code.add(2, f"usage = {code.value(_usage_reader(decl), 'read')}(get, parsed)")
            code.add(2, "if usage is not None:")
            code.add(3, "return usage")
    code.add(1, "return None")
    return code.function()  # type: ignore[no-any-return]


def _cost_function(producers: tuple[Producer, ...]) -> Callable[[Get], Cost]:
    code = _Code("reported_cost(get)", Decimal=Decimal)
    for p in producers:
        for decl in p.cost:
            code.add(1, f"if {code.any_set(_guard(decl))}:")
            code.add(2, f"total, inp, out = {code.value(_cost_reader(decl), 'read')}(get)")
            code.add(2, "if total is not None or inp is not None or out is not None:")
            code.add(3, "if total is None:")
            code.add(4, "total = (inp or Decimal(0)) + (out or Decimal(0))")
            code.add(3, "return total, inp, out")
    code.add(1, "return None, None, None")
    return code.function()  # type: ignore[no-any-return]


def _guard(decl: UsageKeys | Buckets | CostKeys) -> tuple[str, ...]:
    """Keys one of which a reader needs set to find anything: the others are not asked."""
    if isinstance(decl, Buckets) or (isinstance(decl, UsageKeys) and decl.json):
        return (decl.json,)
    if isinstance(decl, CostKeys):
        return decl.total + decl.input + decl.output
    keys = _plain(decl.input + decl.output + decl.total)
    return keys + decl.when if decl.when_is_enough else keys


def _first_count(get: Get, keys: tuple[str, ...]) -> int | None:
    for k in keys:
        v = get(k)
        if v:
            n = parse_int(v)
            if n is not None:
                return n
    return None


def _first_count_expression(keys: tuple[str, ...]) -> str:
    """_first_count(get, keys) written out inline: most of these keys are absent from most
    spans, and a lookup costs less than the call that would make it."""
    *heads, last = keys
    expression = f"(parse_int(_v) if (_v := get({last!r})) else None)"
    for key in reversed(heads):
        expression = f"(_n if (_v := get({key!r})) and (_n := parse_int(_v)) is not None else {expression})"
    return expression


def _set(get: Get, keys: tuple[str, ...]) -> bool:
    return any(map(get, keys))


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


def _plain(keys: tuple[str | JsonPath, ...]) -> tuple[str, ...]:
    if not all(isinstance(k, str) for k in keys):
        raise ValueError(f"JsonPath is for cache counts only: {keys}")
    return tuple(k for k in keys if isinstance(k, str))


UsageReader = Callable[[Get, dict[str, Any]], Usage | None]
CountReader = Callable[[Any, dict[str, Any]], int | None]

# Usage(...) goes through a Python-level __new__; this builds the same tuple in C. Enum members
# are bound to module names: looked up on their class they cost a slow attribute access (3.11).
_new_tuple = tuple.__new__
_INCLUDED = CacheCounting.INCLUDED


def _usage_reader(decl: UsageKeys | Buckets) -> UsageReader:
    return _buckets_usage_reader(decl) if isinstance(decl, Buckets) else _usage_keys_reader(decl)


def _attr_counts(keys: tuple[str | JsonPath, ...]) -> tuple[str, ...] | CountReader:
    """Attribute keys as they are, or with JsonPaths among them a reader."""
    if all(isinstance(k, str) for k in keys):
        return _plain(keys)
    steps = [
        (k, None, "") if isinstance(k, str) else (k.attr, tuple(k.path.split(".")), k.path.rsplit(".", 1)[-1])
        for k in keys
    ]

    def read(get: Get, parsed: dict[str, Any]) -> int | None:
        for attr, path, last in steps:
            if path is None:
                n = parse_int(get(attr))
            else:
                raw = get(attr)
                # Parse only when the key can be in there (the text holds its last part).
                n = count(_dig(_parsed(get, attr, parsed), path)) if raw and last in raw else None
            if n is not None:
                return n
        return None

    return read


def _usage_keys_reader(u: UsageKeys) -> UsageReader:
    """The reader of one UsageKeys declaration, generated like the aspects (see Conventions)."""
    code = _Code(
        "read(get, parsed)",
        parse_int=parse_int,
        count=count,
        _first_count=_first_count,
        _first_path_count=_first_path_count,
        _dig=_dig,
        _parsed=_parsed,
        _new_tuple=_new_tuple,
        Usage=Usage,
        _INCLUDED=_INCLUDED,
    )

    def first_count(keys: tuple[str | JsonPath, ...]) -> str:
        """An expression for the first count among `keys`."""
        if not keys:
            return "None"
        if u.json:  # dotted paths into the object `d`
            paths = tuple(tuple(k.split(".")) for k in _plain(keys))
            if len(paths) == 1:
                return (
                    f"count(d.get({paths[0][0]!r}))"
                    if len(paths[0]) == 1
                    else f"count(_dig(d, {paths[0]!r}))"
                )
            return f"_first_path_count(d, {code.value(paths, 'paths')})"
        counts = _attr_counts(keys)
        if isinstance(counts, tuple):
            return _first_count_expression(counts)
        return f"{code.value(counts, 'read')}(get, parsed)"

    if u.json:
        code.add(1, f"d = _parsed(get, {u.json!r}, parsed)")
        code.add(1, "if not d:")
        code.add(2, "return None")
    if u.when:
        where = " or ".join(f"{k!r} in d" for k in u.when) if u.json else code.any_set(u.when)
        code.add(1, f"if not ({where}):")
        code.add(2, "return None")
    for var, keys in (("i", u.input), ("o", u.output), ("t", u.total)):
        code.add(1, f"{var} = {first_count(_plain(keys))}")
    if not u.when_is_enough:
        code.add(1, "if i is None and o is None and t is None:")
        code.add(2, "return None")
    # The first cache group that applies and has a count decides the counting.
    code.add(1, "cr = cw = None")
    code.add(1, "counting = _INCLUDED")
    for g in u.caches:
        applies = "cr is None and cw is None"
        if g.only_if is not None:
            if u.json:
                raise ValueError(f"{u.json}: only_if is for flat usage keys")
            attr, parts = g.only_if
            contains = " or ".join(f"{part!r} in value" for part in parts)
            applies += f" and ((value := (get({attr!r}) or '').lower()) and ({contains}))"
        code.add(1, f"if {applies}:")
        code.add(2, f"cr = {first_count(g.read)}")
        code.add(2, f"cw = {first_count(g.write)}")
        code.add(2, "if cr is not None or cw is not None:")
        code.add(3, f"counting = {code.value(g.counting, 'counting')}")
    code.add(1, f"r = {first_count(_plain(u.reasoning))}")
    code.add(1, "return _new_tuple(Usage, (i, o, cr, cw, r, t, counting))")
    return code.function()  # type: ignore[no-any-return]


def _has_any(text: str, parts: tuple[str, ...]) -> bool:
    return any(map(text.__contains__, parts))


def _first_path_count(d: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> int | None:
    for path in paths:
        n = count(_dig(d, path))
        if n is not None:
            return n
    return None


# What a bucket key counts towards (see Buckets).
_TOTAL, _INPUT, _CACHE_READ, _CACHE_WRITE, _OUTPUT, _REASONING, _NOTHING = range(7)


_Classifier = tuple[Callable[[str], int], dict[str, int]]


def _bucket_classifier(b: Buckets) -> _Classifier:
    """key -> what it counts towards, and the keys seen so far (they repeat from span to span)."""
    seen: dict[str, int] = {}

    def classify(key: str) -> int:
        kind = seen.get(key)
        if kind is not None:
            return kind
        k = key.lower()
        if k in b.total:
            kind = _TOTAL
        elif _has_any(k, b.input_words):
            if b.cache_word not in k:
                kind = _INPUT
            else:
                kind = _CACHE_WRITE if _has_any(k, b.write_words) else _CACHE_READ
        elif _has_any(k, b.output_words):
            kind = _REASONING if b.reasoning_word in k else _OUTPUT
        else:
            kind = _NOTHING
        if len(seen) < 4096:  # bounded: keys are whatever producers send
            seen[key] = kind
        return kind

    return classify, seen


def _sum_buckets(d: dict[str, Any], parse: Callable[[Any], Any], classifier: _Classifier) -> tuple[Any, ...]:
    """(total, input, cache read, cache write, output, reasoning) of a bucket object, summed
    (None where no bucket counts towards it); `parse` reads one value (count or amount)."""
    classify, seen = classifier
    total = inp = cr = cw = out = rs = None
    for key, value in d.items():
        n = parse(value)
        if n is None:
            continue
        kind = seen.get(key)
        if kind is None:
            kind = classify(key)
        if kind == _TOTAL:
            total = n
        elif kind <= _CACHE_WRITE:
            inp = n if inp is None else inp + n
            if kind == _CACHE_READ:
                cr = n if cr is None else cr + n
            elif kind == _CACHE_WRITE:
                cw = n if cw is None else cw + n
        elif kind <= _REASONING:
            out = n if out is None else out + n
            if kind == _REASONING:
                rs = n if rs is None else rs + n
    return total, inp, cr, cw, out, rs


def _buckets_usage_reader(b: Buckets) -> UsageReader:
    classifier = _bucket_classifier(b)

    def read(get: Get, parsed: dict[str, Any]) -> Usage | None:
        d = _parsed(get, b.json, parsed)
        if not d:
            return None
        total, inp, cr, cw, out, rs = _sum_buckets(d, count, classifier)
        if inp is None and out is None and total is None:
            return None
        return _new_tuple(Usage, (inp, out, cr, cw, rs, total, _INCLUDED))

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
    classifier = _bucket_classifier(decl)

    def read(get: Get) -> Cost:
        d = json_object(get(decl.json))
        if not d:
            return _NO_COST
        total, inp, _cr, _cw, out, _rs = _sum_buckets(d, parse_decimal, classifier)
        return total, inp, out

    return read


def _text(get: Get, sources: tuple[Text | Indexed | IndexedParts, ...]) -> str:
    """The text of the first source that is there."""
    out: list[str] = []
    for source in sources:
        if isinstance(source, Text):
            if _set(get, source.keys):
                for k in source.keys:
                    text_of(get(k), out)
                break
        elif isinstance(source, Indexed):
            if indexed(get, source.prefix, source.suffix, out):
                break
        elif indexed_parts(get, source.prefix, source.parts, source.text, source.role, out):
            break
    return "\n".join(out)
