"""The filter language behind every `--where`: parsed by hand, compiled to parameterised SQL.

    model = 'gpt-4o' AND (duration_ms > 2s OR status = 'error')
    provider IN ('openai', 'anthropic') AND NOT span LIKE 'embed%'
    attributes['http.route'] != '/health' AND cost_usd BETWEEN 0.01 AND 1 AND score.relevance < 0.5

Grammar (keywords are case-insensitive):

    expr      := and_expr (OR and_expr)*
    and_expr  := not_expr (AND not_expr)*
    not_expr  := NOT not_expr | '(' expr ')' | predicate
    predicate := field op literal
               | field [NOT] IN '(' literal (',' literal)* ')'
               | field [NOT] LIKE|ILIKE string
               | field [NOT] BETWEEN literal AND literal
               | text_field MATCH string
    field     := name | keyed '[' string ']' | keyed '.' name ('.' name)*
    op        := = | == | != | <> | < | <= | > | >=
    literal   := string | number | duration (250ms, 2s, 5m, 1h: in milliseconds) | TRUE | FALSE

`MATCH` is full-text search (query/search.py) on the text fields `content` (prompts, responses,
system instructions, tool arguments and results), `input` and `output`: the span's text holds
every word of the string as a whole word, case-insensitively (`content MATCH 'refund broken'`).

Safety: the SQL text is built only from the FieldSet's own expressions, operators and
placeholder names. Every literal and every map key is a ClickHouse `{name:Type}` query
parameter, bound by the server, so user input never becomes SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehouse_collector.query import search
from tracehouse_collector.query.model_identity import MODEL_SQL

# -- fields ----------------------------------------------------------------------------------

TYPES = ("string", "number", "bool", "datetime")


@dataclass(frozen=True)
class Field:
    """A named field: its ClickHouse expression and its type."""

    sql: str
    type: str
    search_keys: tuple[str, ...] = ()  # a text field: the attributes MATCH searches



@dataclass(frozen=True)
class KeyedField:
    """A map-like field (`attributes['k']`, `params.k`): `template` has `{key}` where the bound
    key goes. With `wrap`, the comparison becomes `{cond}` inside that template (used for
    facts kept in another table, such as scores); `text_template` is compared instead of
    `template` when the literal is a string (a score's label rather than its value)."""

    template: str
    type: str
    wrap: str = ""
    text_template: str = ""


@dataclass(frozen=True)
class FieldSet:
    fields: dict[str, Field]
    keyed: dict[str, KeyedField] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.fields) + [f"{k}[...]" for k in sorted(self.keyed)]


@dataclass(frozen=True)
class Compiled:
    sql: str
    params: dict[str, object]
    fields: frozenset[str] = frozenset()  # the field names used (keyed ones as "attributes[]")


class FilterError(ValueError):
    """A filter that does not parse or does not fit its fields; str() points at the position."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.message = message
        self.text = text
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"col {position + 1}: {message}\n  {text}\n  {caret}")


# -- tokens ----------------------------------------------------------------------------------

KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "BETWEEN", "MATCH", "TRUE", "FALSE"})
OPERATORS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">")
PUNCTUATION = "()[],."
DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_LENGTH = 10_000  # characters in a filter
MAX_DEPTH = 50  # nested parentheses / NOTs


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "keyword", "string", "number", "op", "punct", "end"
    value: object
    pos: int
    text: str  # as written, for messages

    def describe(self) -> str:
        return "end of filter" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "'\"":
            string, end = _read_string(text, i)
            tokens.append(Token("string", string, i, text[i:end]))
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            number, end = _read_number(text, i)
            tokens.append(Token("number", number, i, text[i:end]))
            i = end
        elif c.isalpha() or c == "_":
            end = i
            while end < n and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[i:end]
            if word.upper() in KEYWORDS:
                tokens.append(Token("keyword", word.upper(), i, word))
            else:
                tokens.append(Token("name", word, i, word))
            i = end
        elif c in PUNCTUATION:
            tokens.append(Token("punct", c, i, c))
            i += 1
        else:
            op = next((o for o in OPERATORS if text.startswith(o, i)), None)
            if op is None:
                if c == "-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == "."):
                    number, end = _read_number(text, i + 1)
                    tokens.append(Token("number", -number, i, text[i:end]))
                    i = end
                    continue
                raise FilterError(f"unexpected character {c!r}", text, i)
            tokens.append(Token("op", "=" if op == "==" else "!=" if op == "<>" else op, i, op))
            i += len(op)
    tokens.append(Token("end", None, n, ""))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string: backslash escapes the next character; a doubled quote is one quote."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        elif c == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise FilterError("string is not closed", text, start)


def _read_number(text: str, start: int) -> tuple[float | int, int]:
    """Digits with an optional fraction and exponent, optionally followed by a duration unit."""
    i = start
    n = len(text)
    while i < n and text[i].isdigit():
        i += 1
    is_float = False
    if i < n and text[i] == "." and i + 1 < n and text[i + 1].isdigit():
        is_float = True
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            is_float = True
            i = j
            while i < n and text[i].isdigit():
                i += 1
    number: float | int = float(text[start:i]) if is_float else int(text[start:i])
    unit_end = i
    while unit_end < n and text[unit_end].isalpha():
        unit_end += 1
    unit = text[i:unit_end]
    if unit:
        if unit.lower() not in DURATION_MS:
            raise FilterError(f"unknown unit {unit!r} (durations: ms, s, m, h, d)", text, i)
        number = number * DURATION_MS[unit.lower()]
    return number, unit_end


# -- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    name: str
    key: str | None
    pos: int


@dataclass(frozen=True)
class Literal:
    value: object  # str, int, float, bool
    pos: int


@dataclass(frozen=True)
class Compare:
    field: FieldRef
    op: str  # = != < <= > >= IN NOT IN LIKE NOT LIKE ILIKE NOT ILIKE BETWEEN NOT BETWEEN
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    items: tuple[object, ...]


@dataclass(frozen=True)
class Not:
    item: object


class Parser:
    def __init__(self, text: str, keyed_names: frozenset[str]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.keyed_names = keyed_names
        self.depth = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, expected: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        return FilterError(f"expected {expected}, got {tok.describe()}", self.text, tok.pos)

    def accept(self, kind: str, value: object = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, value: object, expected: str) -> Token:
        tok = self.accept(kind, value)
        if tok is None:
            raise self.error(expected)
        return tok

    # grammar
    def parse(self) -> object:
        if self.tok.kind == "end":
            raise self.error("a condition such as model = 'gpt-4o'")
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.error("AND, OR or the end of the filter")
        return node

    def parse_or(self) -> object:
        items = [self.parse_and()]
        while self.accept("keyword", "OR"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def parse_and(self) -> object:
        items = [self.parse_not()]
        while self.accept("keyword", "AND"):
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def parse_not(self) -> object:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"nested more than {MAX_DEPTH} levels deep", self.text, self.tok.pos)
        try:
            if self.accept("keyword", "NOT"):
                return Not(self.parse_not())
            if self.accept("punct", "("):
                node = self.parse_or()
                self.expect("punct", ")", "')'")
                return node
            return self.parse_predicate()
        finally:
            self.depth -= 1

    def parse_field(self) -> FieldRef:
        tok = self.accept("name")
        if tok is None:
            raise self.error("a field name")
        name = str(tok.value)
        if name.lower() in self.keyed_names:
            name = name.lower()
            if self.accept("punct", "["):
                key_tok = self.accept("string")
                if key_tok is None:
                    raise self.error(f"a quoted key, as in {name}['key']")
                self.expect("punct", "]", "']'")
                return FieldRef(name, str(key_tok.value), tok.pos)
            if self.tok.kind == "punct" and self.tok.value == ".":
                return FieldRef(name, self.parse_dotted_key(), tok.pos)
            raise self.error(f"a key, as in {name}['key'] or {name}.key")
        return FieldRef(name.lower(), None, tok.pos)

    def parse_dotted_key(self) -> str:
        parts = []
        while self.accept("punct", "."):
            part = self.accept("name") or self.accept("keyword") or self.accept("number")
            if part is None:
                raise self.error("a key name after '.'")
            parts.append(part.text)
        return ".".join(parts)

    def parse_literal(self) -> Literal:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.i += 1
            return Literal(tok.value, tok.pos)
        if tok.kind == "keyword" and tok.value in ("TRUE", "FALSE"):
            self.i += 1
            return Literal(tok.value == "TRUE", tok.pos)
        raise self.error("a value (a quoted string, a number or true/false)")

    def parse_predicate(self) -> Compare:
        ref = self.parse_field()
        tok = self.tok
        if tok.kind == "op":
            self.i += 1
            return Compare(ref, str(tok.value), (self.parse_literal(),))
        negated = bool(self.accept("keyword", "NOT"))
        prefix = "NOT " if negated else ""
        if self.accept("keyword", "IN"):
            self.expect("punct", "(", "'(' after IN")
            values = [self.parse_literal()]
            while self.accept("punct", ","):
                values.append(self.parse_literal())
            self.expect("punct", ")", "',' or ')'")
            return Compare(ref, prefix + "IN", tuple(values))
        for like in ("LIKE", "ILIKE"):
            if self.accept("keyword", like):
                pattern = self.parse_literal()
                if not isinstance(pattern.value, str):
                    raise FilterError(f"{like} needs a quoted pattern", self.text, pattern.pos)
                return Compare(ref, prefix + like, (pattern,))
        if not negated and self.accept("keyword", "MATCH"):
            words = self.parse_literal()
            if not isinstance(words.value, str):
                raise FilterError("MATCH needs quoted words, as in content MATCH 'refund'", self.text, words.pos)
            return Compare(ref, "MATCH", (words,))
        if self.accept("keyword", "BETWEEN"):
            low = self.parse_literal()
            self.expect("keyword", "AND", "AND in BETWEEN low AND high")
            high = self.parse_literal()
            return Compare(ref, prefix + "BETWEEN", (low, high))
        expected = (
            "IN, LIKE, ILIKE or BETWEEN after NOT"
            if negated
            else "an operator (=, !=, <, <=, >, >=, IN, LIKE, BETWEEN, MATCH)"
        )
        raise self.error(expected)


# -- compiler --------------------------------------------------------------------------------

_PARAM_TYPES = {"string": "String", "number": "Float64", "bool": "Bool", "datetime": "String"}


class _Compiler:
    def __init__(self, text: str, fields: FieldSet, prefix: str) -> None:
        self.text = text
        self.fields = fields
        self.prefix = prefix
        self.params: dict[str, object] = {}
        self.used: set[str] = set()

    def param(self, value: object, ch_type: str) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return "{" + name + ":" + ch_type + "}"

    def node(self, node: object) -> str:
        if isinstance(node, BoolOp):
            return "(" + f" {node.op} ".join(self.node(n) for n in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        assert isinstance(node, Compare)
        return self.compare(node)

    def resolve(self, ref: FieldRef, literal: Literal) -> tuple[str, str, str]:
        """(SQL expression, type, wrap template or '') of a field for the given literal."""
        if ref.key is None:
            f = self.fields.fields.get(ref.name)
            if f is None:
                known = ", ".join(self.fields.names())
                raise FilterError(f"unknown field {ref.name!r} (known: {known})", self.text, ref.pos)
            self.used.add(ref.name)
            return f.sql, f.type, ""
        kf = self.fields.keyed[ref.name]
        self.used.add(ref.name + "[]")
        key = self.param(ref.key, "String")
        template = kf.template
        type_ = kf.type
        if kf.text_template and isinstance(literal.value, str):
            template, type_ = kf.text_template, "string"
        expr = template.replace("{key}", key)
        wrap = kf.wrap.replace("{key}", key) if kf.wrap else ""
        if (
            type_ == "string"
            and isinstance(literal.value, (int, float))
            and not isinstance(literal.value, bool)
        ):
            # Map values are text: compare them as numbers when the filter gives a number.
            return f"toFloat64OrNull({expr})", "number", wrap
        return expr, type_, wrap

    def value(self, literal: Literal, type_: str, ref: FieldRef) -> str:
        v = literal.value
        if type_ == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise FilterError(f"{_label(ref)} is a number; got {_show(v)}", self.text, literal.pos)
            return self.param(float(v), "Float64")
        if type_ == "bool":
            if not isinstance(v, bool):
                raise FilterError(f"{_label(ref)} is true or false; got {_show(v)}", self.text, literal.pos)
            return self.param(v, "Bool")
        if not isinstance(v, str):
            raise FilterError(f"{_label(ref)} is text: quote the value, as in '{v}'", self.text, literal.pos)
        if type_ == "datetime":
            return f"parseDateTime64BestEffort({self.param(v, 'String')}, 9, 'UTC')"
        return self.param(v, "String")

    def compare(self, node: Compare) -> str:
        ref, op, values = node.field, node.op, node.values
        if op == "MATCH":
            return self.match(ref, values[0])
        expr, type_, wrap = self.resolve(ref, values[0])
        if op.endswith("LIKE") and type_ != "string":
            raise FilterError(f"{op} needs a text field; {_label(ref)} is a {type_}", self.text, ref.pos)
        if op in ("<", "<=", ">", ">=") and type_ == "bool":
            raise FilterError(f"{_label(ref)} is true or false: use = or !=", self.text, ref.pos)
        rendered = [self.value(v, type_, ref) for v in values]
        if op.endswith("IN"):
            cond = f"{expr} {op} ({', '.join(rendered)})"
        elif op.endswith("BETWEEN"):
            cond = f"{expr} {op} {rendered[0]} AND {rendered[1]}"
        else:
            cond = f"{expr} {op} {rendered[0]}"
        if wrap:
            return "(" + wrap.replace("{cond}", cond) + ")"
        return f"({cond})"


    def match(self, ref: FieldRef, literal: Literal) -> str:
        f = self.fields.fields.get(ref.name) if ref.key is None else None
        if f is None or not f.search_keys:
            texts = ", ".join(n for n, x in sorted(self.fields.fields.items()) if x.search_keys) or "none here"
            raise FilterError(f"MATCH searches the text fields ({texts})", self.text, ref.pos)
        self.used.add(ref.name)
        try:
            return search.match_sql(f.search_keys, str(literal.value), lambda w: self.param(w, "String"))
        except ValueError as exc:
            raise FilterError(str(exc), self.text, literal.pos) from None


def _label(ref: FieldRef) -> str:
    return ref.name if ref.key is None else f"{ref.name}[{ref.key!r}]"


def _show(v: object) -> str:
    return repr(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)


def parse_filter(text: str, fields: FieldSet) -> object:
    return Parser(text, frozenset(fields.keyed)).parse()


def compile_filter(text: str, fields: FieldSet, param_prefix: str = "f") -> Compiled:
    """Compile a filter to a SQL boolean expression with `{name:Type}` parameters.

    Raises FilterError (a ValueError) whose message shows the filter and points at the error.
    """
    if not isinstance(text, str):
        raise FilterError("the filter must be text", "", 0)
    if len(text) > MAX_LENGTH:
        raise FilterError(f"the filter is longer than {MAX_LENGTH} characters", "", 0)
    tree = parse_filter(text, fields)
    compiler = _Compiler(text, fields, param_prefix)
    sql = compiler.node(tree)
    return Compiled(sql, compiler.params, frozenset(compiler.used))


# -- the fields of spans ---------------------------------------------------------------------

SCORES_TABLE = "tracehouse.otel_scores"

SPAN_FIELDS = FieldSet(
    fields={
        "model": Field(MODEL_SQL, "string"),
        "request_model": Field("GenAIRequestModel", "string"),
        "response_model": Field("GenAIResponseModel", "string"),
        "provider": Field("GenAIProvider", "string"),
        "operation": Field("GenAIOperation", "string"),
        "service": Field("ServiceName", "string"),
        "span": Field("SpanName", "string"),
        "kind": Field("lower(SpanKind)", "string"),
        "status": Field("lower(StatusCode)", "string"),  # ok | error | unset
        "error_type": Field("SpanAttributes['error.type']", "string"),
        "duration_ms": Field("Duration / 1e6", "number"),
        "cost_usd": Field("TotalCostUSD", "number"),
        "tokens": Field("TotalTokens", "number"),
        "input_tokens": Field("InputTokens", "number"),
        "output_tokens": Field("OutputTokens", "number"),
        "estimated": Field("TokensEstimated", "bool"),
        "session": Field("SessionId", "string"),
        "user": Field("UserId", "string"),
        "run": Field("RunId", "string"),
        "experiment": Field("ExperimentName", "string"),
        "trace_id": Field("TraceId", "string"),
        "span_id": Field("SpanId", "string"),
        "time": Field("Timestamp", "datetime"),
        # Text fields (lower-cased), for MATCH and LIKE.
        "content": Field(search.content_sql(search.SEARCH_KEYS), "string", search.SEARCH_KEYS),
        "input": Field(search.content_sql(search.INPUT_SEARCH_KEYS), "string", search.INPUT_SEARCH_KEYS),
        "output": Field(search.content_sql(search.OUTPUT_SEARCH_KEYS), "string", search.OUTPUT_SEARCH_KEYS),
    },
    keyed={
        "attributes": KeyedField("SpanAttributes[{key}]", "string"),
        "resource": KeyedField("ResourceAttributes[{key}]", "string"),
        # A span matches when it, or its whole trace, has a score of that name that matches.
        "score": KeyedField(
            "Value",
            "number",
            wrap=(
                f"(TraceId, SpanId) IN (SELECT TraceId, SpanId FROM {SCORES_TABLE} "
                "WHERE Name = {key} AND {cond}) OR TraceId IN (SELECT TraceId FROM "
                f"{SCORES_TABLE} WHERE SpanId = '' AND TraceId != '' AND Name = {{key}} AND {{cond}})"
            ),
            text_template="Label",
        ),
    },
)
