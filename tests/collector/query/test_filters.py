"""The --where filter language: parsing, precedence, every operator, errors, and injection.

Compiled filters are checked two ways: the SQL shape (parameters, never pasted values) and,
against a real collector, which spans they select.
"""

from __future__ import annotations

import pytest
from helpers import BASE_NS, make_span, trace_request, unique
from tracehouse_collector.query.filters import (
    SPAN_FIELDS,
    Field,
    FieldSet,
    FilterError,
    KeyedField,
    compile_filter,
)

pytestmark = pytest.mark.timeout(120)

FIELDS = FieldSet(
    fields={
        "a": Field("A", "number"),
        "s": Field("S", "string"),
        "b": Field("B", "bool"),
        "t": Field("T", "datetime"),
    },
    keyed={"attributes": KeyedField("M[{key}]", "string"), "params": KeyedField("P[{key}]", "string")},
)


def c(text: str):
    return compile_filter(text, FIELDS)


# -- shape -----------------------------------------------------------------------------------


def test_comparison_is_parameterised():
    out = c("s = 'x'")
    assert out.sql == "(S = {f0:String})"
    assert out.params == {"f0": "x"}
    assert out.fields == frozenset({"s"})


@pytest.mark.parametrize(
    "op,sql_op",
    [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
)
def test_every_comparison_operator(op, sql_op):
    out = c(f"a {op} 3")
    assert out.sql == f"(A {sql_op} {{f0:Float64}})"
    assert out.params == {"f0": 3.0}


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    out = c("a = 1 OR a = 2 AND NOT a = 3")
    assert out.sql == "((A = {f0:Float64}) OR ((A = {f1:Float64}) AND (NOT (A = {f2:Float64}))))"
    out = c("(a = 1 OR a = 2) AND a = 3")
    assert out.sql == "(((A = {f0:Float64}) OR (A = {f1:Float64})) AND (A = {f2:Float64}))"


def test_keywords_are_case_insensitive():
    assert c("a = 1 and not a = 2 or a in (3)").sql == c("a = 1 AND NOT a = 2 OR a IN (3)").sql


def test_in_not_in_like_between():
    assert c("s IN ('x', 'y')").sql == "(S IN ({f0:String}, {f1:String}))"
    assert c("s NOT IN ('x')").sql == "(S NOT IN ({f0:String}))"
    assert c("s LIKE 'gpt%'").sql == "(S LIKE {f0:String})"
    assert c("s NOT LIKE 'gpt%'").sql == "(S NOT LIKE {f0:String})"
    assert c("s ILIKE 'GPT%'").sql == "(S ILIKE {f0:String})"
    out = c("a BETWEEN 1 AND 2.5")
    assert out.sql == "(A BETWEEN {f0:Float64} AND {f1:Float64})"
    assert out.params == {"f0": 1.0, "f1": 2.5}
    assert c("a NOT BETWEEN 1 AND 2").sql == "(A NOT BETWEEN {f0:Float64} AND {f1:Float64})"


def test_literals_numbers_durations_bools_strings():
    assert c("a > -1.5e3").params == {"f0": -1500.0}
    assert c("a > 250ms").params == {"f0": 250.0}
    assert c("a > 2s").params == {"f0": 2000.0}
    assert c("a < 1.5m").params == {"f0": 90000.0}
    assert c("a < 1h").params == {"f0": 3600000.0}
    assert c("b = true").params == {"f0": True}
    assert c("b != FALSE").sql == "(B != {f0:Bool})"
    assert c("s = 'it''s'").params == {"f0": "it's"}
    assert c('s = "say \\"hi\\""').params == {"f0": 'say "hi"'}
    assert c("s = 'back\\\\slash'").params == {"f0": "back\\slash"}
    assert c("t > '2024-05-01T00:00:00Z'").sql == "(T > parseDateTime64BestEffort({f0:String}, 9, 'UTC'))"


def test_keyed_fields_bind_the_key_too():
    out = c("attributes['http.route'] = '/x'")
    assert out.sql == "(M[{f0:String}] = {f1:String})"
    assert out.params == {"f0": "http.route", "f1": "/x"}
    out = c("params.lr.decay > 0.5")
    assert out.sql == "(toFloat64OrNull(P[{f0:String}]) > {f1:Float64})"
    assert out.params == {"f0": "lr.decay", "f1": 0.5}
    assert out.fields == frozenset({"params[]"})


def test_param_prefix():
    out = compile_filter("s = 'x'", FIELDS, param_prefix="w")
    assert out.sql == "(S = {w0:String})" and out.params == {"w0": "x"}


def test_injection_attempts_stay_parameters():
    nasty = ["x'; DROP TABLE otel_traces; --", "a\\'b", "}{f0:String}", "') OR 1=1 --", "%_\\"]
    for value in nasty:
        quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out = c(f"s = {quoted} AND attributes[{quoted}] = {quoted}")
        assert out.params == {"f0": value, "f1": value, "f2": value}
        assert value not in out.sql
        assert "DROP" not in out.sql and ";" not in out.sql


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,col,message",
    [
        ("", 1, "expected a condition"),
        ("s =", 4, "expected a value"),
        ("nope = 1", 1, "unknown field 'nope'"),
        ("s = 'x' AND", 12, "expected a field name, got end of filter"),
        ("s = 'x' a = 1", 9, "expected AND, OR or the end of the filter, got 'a'"),
        ("(s = 'x'", 9, "expected ')'"),
        ("s = 'open", 5, "string is not closed"),
        ("s = 1", 5, "s is text: quote the value"),
        ("a = 'x'", 5, "a is a number; got 'x'"),
        ("b > true", 1, "b is true or false: use = or !="),
        ("a LIKE 'x'", 1, "LIKE needs a text field"),
        ("s IN ('a' 'b')", 11, "expected ',' or ')'"),
        ("a > 5parsecs", 6, "unknown unit 'parsecs'"),
        ("s = 'x' ; DROP", 9, "unexpected character ';'"),
        ("attributes = 'x'", 12, "expected a key"),
        ("attributes[k] = 'x'", 12, "expected a quoted key"),
        ("s NOT = 'x'", 7, "expected IN, LIKE, ILIKE or BETWEEN after NOT"),
        ("a BETWEEN 1 OR 2", 13, "expected AND in BETWEEN"),
    ],
)
def test_errors_point_at_the_position(text, col, message):
    with pytest.raises(FilterError) as info:
        c(text)
    err = info.value
    assert err.position == col - 1
    text_out = str(err)
    assert text_out.startswith(f"col {col}: "), text_out
    assert message in text_out
    lines = text_out.splitlines()
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * (col - 1) + "^"


def test_filter_error_is_a_value_error():
    assert issubclass(FilterError, ValueError)


def test_span_fields_cover_the_documented_names():
    for name in (
        "model",
        "provider",
        "operation",
        "service",
        "status",
        "span",
        "duration_ms",
        "cost_usd",
        "tokens",
        "session",
        "user",
        "run",
        "experiment",
        "trace_id",
    ):
        assert name in SPAN_FIELDS.fields
    for name in ("attributes", "resource", "score"):
        assert name in SPAN_FIELDS.keyed
    out = compile_filter("score.relevance >= 0.5", SPAN_FIELDS)
    assert "otel_scores" in out.sql and out.params == {"f0": "relevance", "f1": 0.5}
    out = compile_filter("score.verdict = 'pass'", SPAN_FIELDS)
    assert "Label = {f1:String}" in out.sql


# -- against a real collector ----------------------------------------------------------------

NASTY = ["plain", "it's", 'say "hi"', "semi;colon --", "back\\slash", "x' OR '1'='1", "percent%_"]


@pytest.fixture(scope="module")
def spans(collector):
    service = unique("filters")
    spans = []
    for i, value in enumerate(NASTY):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": f"m{i % 2}",
            "k": value,
            value: "key",
        }
        spans.append(
            make_span(
                f"span{i}", start_ns=BASE_NS + i * 1000, duration_ns=(i + 1) * 1_000_000, attributes=attrs
            )
        )
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.content
    return service


def count(collector, service, where):
    r = collector.session.post(
        collector.http_url + "/api/v1/query/latency",
        json={
            "since": "2023-11-14T00:00:00Z",
            "until": "2023-11-15T00:00:00Z",
            "service": service,
            "where": where,
            "by": ["span"],
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return {row[0]: row[1] for row in body["rows"]}


def lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_hostile_values_and_keys_match_exactly_one_span(collector, spans):
    for i, value in enumerate(NASTY):
        assert count(collector, spans, f"attributes['k'] = {lit(value)}") == {f"span{i}": 1}, value
        assert count(collector, spans, f"attributes[{lit(value)}] = 'key'") == {f"span{i}": 1}, value


def test_operators_select_the_right_spans(collector, spans):
    assert set(count(collector, spans, "duration_ms > 5")) == {"span5", "span6"}
    assert set(count(collector, spans, "duration_ms BETWEEN 2 AND 3")) == {"span1", "span2"}
    assert set(count(collector, spans, "model = 'm1' AND NOT duration_ms >= 4")) == {"span1"}
    assert set(count(collector, spans, "model = 'm1' AND duration_ms < 3 OR span = 'span6'")) == {
        "span1",
        "span6",
    }
    assert set(count(collector, spans, "span IN ('span0', 'span3') AND span NOT IN ('span3')")) == {"span0"}
    assert set(count(collector, spans, "attributes['k'] LIKE '%;%' OR attributes['k'] ILIKE 'SAY%'")) == {
        "span2",
        "span3",
    }
    assert set(count(collector, spans, "span NOT LIKE 'span%'")) == set()


def test_bad_filter_through_rest_is_a_400_with_the_position(collector, spans):
    r = collector.session.post(
        collector.http_url + "/api/v1/query/latency", json={"where": "model = 'x' AND"}, timeout=30
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("col 16: expected a field name")


def test_deep_nesting_and_huge_filters_are_refused_cleanly():
    with pytest.raises(FilterError, match="nested more than 50 levels"):
        c("(" * 200 + "a = 1" + ")" * 200)
    with pytest.raises(FilterError, match="nested more than 50 levels"):
        c("NOT " * 100 + "a = 1")
    assert c("(" * 20 + "a = 1" + ")" * 20).params == {"f0": 1.0}
    with pytest.raises(FilterError, match="longer than 10000 characters"):
        c("s IN (" + ", ".join(["'x'"] * 5000) + ")")
