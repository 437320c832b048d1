"""The producers' declarations (processors/producers/) are well-formed, all registered, read in
their declared precedence, and a new producer needs nothing but its file and its name."""

from __future__ import annotations

import dataclasses
import pkgutil
import textwrap
from pathlib import Path

import pytest
from tracehouse_collector.processors import normalize, producers, semconv
from tracehouse_collector.processors.conventions import (
    Buckets,
    CacheKeys,
    JsonPath,
    OperationKey,
    OperationMarker,
    Producer,
    UsageKeys,
)
from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.resolve import ASPECTS, Conventions, declares

ALL = producers.load()
OPERATIONS = {
    v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str) and "." not in v and v
}


def _modules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(producers.__path__)}


def test_precedence_lists_every_producer_module_once_and_nothing_else():
    assert len(producers.PRECEDENCE) == len(set(producers.PRECEDENCE))
    assert set(producers.PRECEDENCE) == _modules()
    assert [p.name for p in ALL] == list(producers.PRECEDENCE)


@pytest.mark.parametrize("aspect", sorted(producers.ASPECT_PRECEDENCE))
def test_an_aspect_precedence_lists_exactly_the_producers_declaring_it(aspect):
    names = producers.ASPECT_PRECEDENCE[aspect]
    assert aspect in ASPECTS
    assert len(names) == len(set(names))
    assert set(names) == {p.name for p in ALL if declares(p, aspect)}


def _keys(value: object) -> list[str]:
    """Every attribute key a declaration field names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, JsonPath):
        return [value.attr]
    if isinstance(value, OperationKey):
        return [value.attr]
    if isinstance(value, OperationMarker):
        return list(value.keys)
    if isinstance(value, (tuple, frozenset)):
        return [k for v in value for k in _keys(v)]
    return []


@pytest.mark.parametrize("producer", ALL, ids=lambda p: p.name)
def test_a_declaration_is_well_formed(producer: Producer):
    for f in dataclasses.fields(Producer):
        value = getattr(producer, f.name)
        if isinstance(value, tuple):
            keys = _keys(value)
            assert len(keys) == len(set(keys)), f"{producer.name}.{f.name} names a key twice"
            assert all(k and k == k.strip() for k in keys), f"{producer.name}.{f.name}"
    for rule in producer.operation + producer.operation_fallback:
        ops = set(rule.values.values()) if isinstance(rule, OperationKey) else {rule.operation}
        assert ops <= OPERATIONS | {""}, f"{producer.name}: not an operation of semconv: {ops - OPERATIONS}"
        if isinstance(rule, OperationKey):
            assert len({k.lower() for k in rule.values}) == len(rule.values)
    assert set(producer.span_name_suffixes.values()) <= OPERATIONS
    for usage in producer.usage:
        assert isinstance(usage, (UsageKeys, Buckets))
        if isinstance(usage, UsageKeys):
            assert usage.input or usage.output or usage.total, f"{producer.name}: usage with no counts"
            assert all(isinstance(c, CacheKeys) and (c.read or c.write) for c in usage.caches)
            assert not usage.when_is_enough or usage.when


@pytest.mark.parametrize(
    "field", ["provider", "request_model", "response_model", "session", "user", "run", "experiment"]
)
def test_no_key_is_claimed_by_two_producers(field):
    owners: dict[str, str] = {}
    for p in ALL:
        for key in _keys(getattr(p, field)):
            assert key not in owners, f"{key} is declared by {owners[key]} and {p.name}"
            owners[key] = p.name


def test_the_resolver_applies_the_declared_precedence():
    # gen_ai.operation.name and openinference.span.kind disagree: the earlier producer wins.
    attrs = {"gen_ai.operation.name": "chat", "openinference.span.kind": "AGENT"}
    assert normalize.extract(attrs, {}).operation == "chat"
    reversed_order = Conventions(tuple(reversed(ALL)))
    assert normalize.extract(attrs, {}, conventions=reversed_order).operation == "invoke_agent"


def test_an_aspect_precedence_that_leaves_a_producer_out_is_refused():
    usage = tuple(n for n in producers.ASPECT_PRECEDENCE["usage"] if n != "mlflow")
    with pytest.raises(ValueError, match="'usage'"):
        Conventions(ALL, {**producers.ASPECT_PRECEDENCE, "usage": usage})


ACME = '''
"""Acme's SDK: acme.* attributes, an input count without its cache reads."""
from tracehouse_collector.processors.conventions import (
    CacheCounting, CacheKeys, OperationKey, Producer, Text, UsageKeys,
)

PRODUCER = Producer(
    name="acme_llm",
    markers=frozenset({"acme.kind"}),
    operation=(OperationKey("acme.kind", values={"completion": "chat", "tool": "execute_tool"}),),
    provider=("acme.vendor",),
    request_model=("acme.model",),
    usage=(
        UsageKeys(
            input=("acme.tokens.in",),
            output=("acme.tokens.out",),
            caches=(CacheKeys(read=("acme.tokens.cached",), counting=CacheCounting.SEPARATE),),
        ),
    ),
    input_messages=(Text(("acme.prompt",)),),
    session=("acme.conversation",),
)
'''


def test_a_new_producer_is_one_file_and_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "acme_llm.py").write_text(textwrap.dedent(ACME))
    monkeypatch.setattr(producers, "__path__", [*producers.__path__, str(tmp_path)])
    monkeypatch.setattr(producers, "PRECEDENCE", (*producers.PRECEDENCE, "acme_llm"))
    order = dict(producers.ASPECT_PRECEDENCE)
    order["model"] += ("acme_llm",)
    order["usage"] += ("acme_llm",)
    order["messages"] += ("acme_llm",)
    monkeypatch.setattr(producers, "ASPECT_PRECEDENCE", order)

    conventions = Conventions(producers.load(), producers.ASPECT_PRECEDENCE)
    attrs = {
        "acme.kind": "Completion",
        "acme.vendor": "Mistral",
        "acme.model": "mistral-large-2411",
        "acme.tokens.in": "2000",
        "acme.tokens.cached": "1800",
        "acme.tokens.out": "40",
        "acme.conversation": "conv-9",
    }
    assert normalize.extract(attrs, {}) is None  # unknown to the built-in conventions
    facts = normalize.extract(attrs, {}, "acme call", conventions=conventions)
    assert facts == GenAIFacts(
        operation="chat",
        provider="mistral_ai",
        request_model="mistral-large-2411",
        input_tokens=2000 + 1800,  # cache reads reported outside the input: folded in once
        output_tokens=40,
        cache_read_tokens=1800,
        total_tokens=2000 + 1800 + 40,
    )
    assert normalize.context_ids(attrs, {}, conventions=conventions) == ("conv-9", "", "", "")
    # Without usage, the declared message attribute is the text tokens are estimated from.
    stream = {
        "acme.kind": "completion",
        "acme.model": "m",
        "acme.prompt": '[{"role": "user", "content": "Hi"}]',
    }
    assert normalize.extract(stream, {}, conventions=conventions).input_text == "Hi"
    assert normalize.extract({**attrs, "acme.kind": "tool"}, {}, conventions=conventions).input_tokens is None
