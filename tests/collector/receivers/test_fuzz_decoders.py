"""Fuzzing the OTLP decoders (protobuf and JSON; traces, metrics, logs) with hypothesis.

The target is the whole worker pipeline (`pipeline.process`: decompress, parse, build rows,
LLM processor, encode): for any input it must either return rows that fit the ClickHouse
columns they are meant for, or raise InvalidRequest with a message; never anything else,
never hang. Inputs are valid requests built from extreme values (ids of any length, the
largest timestamps, NaN and infinities, huge and unusual strings, deep nesting) and then
mutated: truncated, bit-flipped, spliced, re-typed (JSON).

The module runs in a bounded time (TRACEHOUSE_FUZZ_EXAMPLES raises the example counts for a
longer local run; the default is deterministic so CI does not flake). A last test sends a
handful of fuzzed payloads to a running collector: ClickHouse itself must accept whatever is
acknowledged, and the collector must stay healthy.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf import json_format
from helpers import make_span, quote, trace_request, unique
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from tracehouse_collector.processors import otlp_decode, pipeline

pytestmark = pytest.mark.timeout(240)

_EXAMPLES = int(os.environ.get("TRACEHOUSE_FUZZ_EXAMPLES") or 0)
FUZZ = settings(
    max_examples=_EXAMPLES or 40,
    deadline=None,  # a hang is caught by the timeout above; slow CI runners must not flake
    derandomize=not _EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
    # Shrinking multi-kilobyte requests can take minutes; a failure prints its unshrunk input.
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if _EXAMPLES else []),
)
MAX_REQUEST = 4 * 1024 * 1024
MAX_ATTRIBUTE = 1024

# -- checking the result ---------------------------------------------------------------------

_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}$")
_INT = re.compile(r"^(U?)Int(\d+)$")


def _split_args(inner: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    return [*out, cur.strip()]


def fits(value: Any, type_: str) -> bool:
    """Whether a JSONEachRow value can go into a column of this ClickHouse type (the parts our
    rows use; unknown types pass)."""
    m = re.match(r"^(\w+)\((.*)\)$", type_)
    if m and m.group(1) in ("LowCardinality", "Nullable"):
        return (value is None and m.group(1) == "Nullable") or fits(value, m.group(2))
    if m and m.group(1) == "Array":
        return isinstance(value, list) and all(fits(v, m.group(2)) for v in value)
    if m and m.group(1) == "Map":
        k, v = _split_args(m.group(2))
        return isinstance(value, dict) and all(fits(a, k) and fits(b, v) for a, b in value.items())
    if type_ == "String":
        return isinstance(value, str)
    if type_.startswith("DateTime"):  # DateTime64(9), or DateTime (the fraction is dropped)
        return isinstance(value, str) and bool(_TS.match(value)) and "0000-" not in value[:5]
    if type_ in ("Bool",):
        return isinstance(value, bool)
    if type_.startswith("Float"):
        return isinstance(value, (int, float)) or value in ("nan", "inf", "-inf", "NaN", "+Inf", "-Inf")
    im = _INT.match(type_)
    if im:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        bits = int(im.group(2))
        lo, hi = (0, 2**bits - 1) if im.group(1) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return lo <= value <= hi
    return True


_COLUMNS_SCRIPT = """
import json, sys
from tracehouse_collector.store.client import Store
store = Store(sys.argv[1])
store.migrate()
rows = store.query("SELECT table, name, type FROM system.columns WHERE database = 'tracehouse' "
                   "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')")[1]
store.close()
print(json.dumps(rows))
"""


@functools.cache
def _store_columns() -> dict[str, dict[str, str]]:
    """Column name -> type of every table, as the migrations make them in a real chDB store
    (Nested columns appear as their Array sub-columns, Events.Name...)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _COLUMNS_SCRIPT, f"chdb://{tmp}/store"],
            capture_output=True, text=True, timeout=120, check=True,
        )
    out: dict[str, dict[str, str]] = {}
    for table, name, type_ in json.loads(proc.stdout.strip().splitlines()[-1]):
        out.setdefault(table, {})[name] = type_
    return out


def table_columns(table: str) -> dict[str, str]:
    return _store_columns()[table]


def check_outcome(
    signal: str, body: bytes, content_type: str, spool: str, keep: bool = False
) -> pipeline.EncodedRequest | None:
    """Decode a request: refused with a message, or rows that fit their columns (whose spool
    files are removed unless `keep`)."""
    try:
        out = pipeline.process(signal, body, content_type, "", MAX_REQUEST, MAX_ATTRIBUTE, spool, fsync=False)
    except otlp_decode.InvalidRequest as exc:
        message = str(exc)
        assert message and len(message) < 4000, message
        assert "Traceback" not in message
        return None
    assert out.rejected >= 0
    if out.rejected:
        assert out.error_message
    written = 0
    for table, path in out.files.items():
        columns = table_columns(table)
        with open(path, "rb") as fh:
            rows = orjson.loads(b"[" + fh.read().rstrip(b"\n") + b"]")  # JSONEachRow, comma-separated
            written += len(rows)
            for row in rows:
                for key, value in row.items():
                    assert key in columns, (table, key)
                    assert fits(value, columns[key]), (table, key, columns[key], value)
        if not keep:
            os.unlink(path)
    assert out.rows == written, "the row count reported for the request is not what was written"
    return out


@pytest.fixture
def spool():
    d = tempfile.mkdtemp(prefix="fuzz-spool-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- strategies: valid requests built from extreme values --------------------------------------

HUGE = "ä" * 5000  # over the attribute limit, in two-byte characters
U64 = st.one_of(
    st.sampled_from([0, 1, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1)
)
I64 = st.one_of(st.sampled_from([-(2**63), -1, 0, 2**63 - 1]), st.integers(-(2**63), 2**63 - 1))
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "\U0010ffff", 'a\nb"c\\', HUGE, "{not json", "gen_ai.usage.input_tokens"]),
)
IDS = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"\x00" * 16, b"\x00" * 8, b"\xff" * 16, b"\xff" * 8]),
)
# Keys the LLM processor reads: values of any type must not confuse it.
KEYS = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.system",
            "gen_ai.provider.name",
            "gen_ai.usage.cost",
            "llm.token_count.prompt",
            "session.id",
            "service.name",
        ]
    ),
)


def _any_value(scalar: Any) -> AnyValue:
    v = AnyValue()
    kind, value = scalar
    setattr(v, kind, value)
    return v


SCALARS = st.one_of(
    st.tuples(st.just("string_value"), TEXT),
    st.tuples(st.just("int_value"), I64),
    st.tuples(st.just("double_value"), DOUBLES),
    st.tuples(st.just("bool_value"), st.booleans()),
    st.tuples(st.just("bytes_value"), st.binary(max_size=30)),
).map(_any_value)


def _array(values: list[AnyValue]) -> AnyValue:
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    v = AnyValue()
    v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs)
    return v


ANY_VALUES = st.recursive(
    SCALARS | st.just(AnyValue()),
    lambda inner: (
        st.lists(inner, max_size=4).map(_array) | st.lists(st.tuples(KEYS, inner), max_size=4).map(_kvlist)
    ),
    max_leaves=12,
)
ATTRS = st.lists(st.tuples(KEYS, ANY_VALUES), max_size=6)


def _set_attrs(target, attrs) -> None:
    for key, value in attrs:
        target.append(KeyValue(key=key, value=value))


@st.composite
def trace_requests(draw) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = req.resource_spans.add()
        _set_attrs(rs.resource.attributes, draw(ATTRS))
        ss = rs.scope_spans.add()
        ss.scope.name = draw(TEXT)
        ss.scope.version = draw(TEXT)
        for _ in range(draw(st.integers(0, 3))):
            span = ss.spans.add()
            span.trace_id = draw(IDS | st.binary(min_size=16, max_size=16))
            span.span_id = draw(IDS | st.binary(min_size=8, max_size=8))
            span.parent_span_id = draw(IDS)
            span.name = draw(TEXT)
            span.kind = draw(st.integers(-5, 10))
            span.start_time_unix_nano = draw(U64)
            span.end_time_unix_nano = draw(U64)
            span.status.code = draw(st.integers(-2, 5))
            span.status.message = draw(TEXT)
            span.trace_state = draw(TEXT)
            span.flags = draw(st.integers(0, 2**32 - 1))
            _set_attrs(span.attributes, draw(ATTRS))
            for _ in range(draw(st.integers(0, 2))):
                ev = span.events.add()
                ev.name = draw(TEXT)
                ev.time_unix_nano = draw(U64)
                _set_attrs(ev.attributes, draw(ATTRS))
            for _ in range(draw(st.integers(0, 1))):
                link = span.links.add()
                link.trace_id = draw(IDS)
                link.span_id = draw(IDS)
                _set_attrs(link.attributes, draw(ATTRS))
    return req


@st.composite
def log_requests(draw) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _set_attrs(rl.resource.attributes, draw(ATTRS))
    sl = rl.scope_logs.add()
    sl.scope.name = draw(TEXT)
    for _ in range(draw(st.integers(0, 3))):
        rec = sl.log_records.add()
        rec.time_unix_nano = draw(U64)
        rec.observed_time_unix_nano = draw(U64)
        rec.severity_number = draw(st.integers(-3, 30))
        rec.severity_text = draw(TEXT)
        rec.body.CopyFrom(draw(ANY_VALUES))
        rec.trace_id = draw(IDS)
        rec.span_id = draw(IDS)
        rec.flags = draw(st.integers(0, 2**32 - 1))
        rec.event_name = draw(TEXT)
        _set_attrs(rec.attributes, draw(ATTRS))
    return req


@st.composite
def metric_requests(draw) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _set_attrs(rm.resource.attributes, draw(ATTRS))
    sm = rm.scope_metrics.add()
    for _ in range(draw(st.integers(0, 3))):
        m = sm.metrics.add()
        m.name = draw(TEXT)
        m.unit = draw(TEXT)
        kind = draw(
            st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary", "none"])
        )
        if kind == "none":
            continue
        data = getattr(m, kind)
        if kind in ("sum", "histogram", "exponential_histogram"):
            data.aggregation_temporality = draw(st.integers(-1, 5))
        if kind == "sum":
            data.is_monotonic = draw(st.booleans())
        for _ in range(draw(st.integers(0, 2))):
            dp = data.data_points.add()
            dp.time_unix_nano = draw(U64)
            dp.start_time_unix_nano = draw(U64)
            _set_attrs(dp.attributes, draw(ATTRS))
            if kind in ("gauge", "sum"):
                if draw(st.booleans()):
                    dp.as_double = draw(DOUBLES)
                else:
                    dp.as_int = draw(I64)
                for _ in range(draw(st.integers(0, 1))):
                    ex = dp.exemplars.add()
                    ex.trace_id = draw(IDS)
                    ex.span_id = draw(IDS)
                    ex.as_double = draw(DOUBLES)
                    ex.time_unix_nano = draw(U64)
            elif kind == "histogram":
                dp.count = draw(U64)
                dp.sum = draw(DOUBLES)
                dp.bucket_counts.extend(draw(st.lists(U64, max_size=5)))
                dp.explicit_bounds.extend(draw(st.lists(DOUBLES, max_size=5)))
                dp.min = draw(DOUBLES)
                dp.max = draw(DOUBLES)
            elif kind == "exponential_histogram":
                dp.count = draw(U64)
                dp.scale = draw(st.integers(-(2**31), 2**31 - 1))
                dp.zero_count = draw(U64)
                dp.positive.offset = draw(st.integers(-(2**31), 2**31 - 1))
                dp.positive.bucket_counts.extend(draw(st.lists(U64, max_size=4)))
                dp.negative.bucket_counts.extend(draw(st.lists(U64, max_size=4)))
            else:
                dp.count = draw(U64)
                dp.sum = draw(DOUBLES)
                for _ in range(draw(st.integers(0, 2))):
                    q = dp.quantile_values.add()
                    q.quantile = draw(DOUBLES)
                    q.value = draw(DOUBLES)
    return req


REQUESTS = {"traces": trace_requests(), "metrics": metric_requests(), "logs": log_requests()}


# -- mutations -------------------------------------------------------------------------------


@st.composite
def mutated_bytes(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "splice", "random"]))
        pos = draw(st.integers(0, max(0, len(data))))
        if op == "truncate":
            del data[pos:]
        elif op == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "splice" and data:
            a = draw(st.integers(0, len(data)))
            data[pos:pos] = data[a : a + draw(st.integers(1, 32))]
        elif op == "random":
            data = bytearray(draw(st.binary(max_size=64)))
    return bytes(data)


_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def to_otlp_json(message) -> Any:
    """The OTLP/JSON form of a message: protobuf JSON with hex instead of base64 ids."""
    doc = json_format.MessageToDict(message)

    def fix(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in _ID_KEYS and isinstance(v, str):
                    node[k] = base64.b64decode(v).hex()
                else:
                    fix(v)
        elif isinstance(node, list):
            for x in node:
                fix(x)

    fix(doc)
    return doc


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["NaN", "Infinity", "-1", "18446744073709551616", "zz", "0x10", "1e400"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_json(draw, doc: Any) -> Any:
    """Replace, drop or re-type values at random places in an OTLP/JSON document."""
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["replace", "drop", "stringify", "badid"]))
        if op == "drop":
            del parent[path[-1]]
        elif op == "stringify":
            parent[path[-1]] = str(parent[path[-1]])
        elif op == "badid":
            parent[path[-1]] = draw(st.sampled_from(["", "zz", "0" * 32, "ab" * 9, "g" * 16, "Ab" * 8]))
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return doc


# -- the fuzz tests --------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(REQUESTS))
def test_valid_extreme_requests_give_insertable_rows(signal, spool):
    @FUZZ
    @given(REQUESTS[signal])
    def run(message):
        body = message.SerializeToString()
        check_outcome(signal, body, "protobuf", spool)
        check_outcome(signal, orjson.dumps(to_otlp_json(message)), "json", spool)

    run()


# -- valid requests must give their rows --------------------------------------------------------
# The generators above mix valid and invalid parts, so most of their requests are refused or
# rejected whole. These build only what OTLP allows and Tracehouse must store: every span and
# log record must come out as exactly one row, with the values an independent computation
# (numpy's datetime64 for timestamps, bytes.hex for ids) gives, through both decoders alike.

MAX_NS = 2**63 - 1  # ClickHouse DateTime64(9) ends in 2262
VALID_TS = st.one_of(st.sampled_from([0, 1, 10**18, MAX_NS]), st.integers(0, MAX_NS))
TRACE_IDS = st.binary(min_size=16, max_size=16).filter(any)
SPAN_IDS = st.binary(min_size=8, max_size=8).filter(any)
SERVICES = st.text(max_size=40)


@st.composite
def valid_trace_requests(draw) -> tuple[ExportTraceServiceRequest, list[dict]]:
    """A valid request and, per span, the values its row must carry."""
    req = ExportTraceServiceRequest()
    expected = []
    for _ in range(draw(st.integers(1, 2))):
        rs = req.resource_spans.add()
        _set_attrs(rs.resource.attributes, draw(ATTRS))
        service = draw(SERVICES)
        rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
        ss = rs.scope_spans.add()
        ss.scope.name = draw(TEXT)
        for _ in range(draw(st.integers(1, 3))):
            span = ss.spans.add()
            span.trace_id = draw(TRACE_IDS)
            span.span_id = draw(SPAN_IDS)
            span.parent_span_id = draw(st.just(b"") | SPAN_IDS)
            span.name = draw(TEXT)
            span.kind = draw(st.integers(0, 5))
            span.start_time_unix_nano = draw(VALID_TS)
            span.end_time_unix_nano = draw(st.integers(span.start_time_unix_nano, MAX_NS))  # never before start
            span.status.code = draw(st.integers(0, 2))
            _set_attrs(span.attributes, draw(ATTRS))
            for _ in range(draw(st.integers(0, 2))):
                ev = span.events.add()
                ev.name = draw(TEXT)
                ev.time_unix_nano = draw(VALID_TS)
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            expected.append(
                {
                    "TraceId": span.trace_id.hex(),
                    "SpanId": span.span_id.hex(),
                    "ParentSpanId": span.parent_span_id.hex(),
                    "SpanName": span.name,
                    "ServiceName": service,
                    "ScopeName": ss.scope.name,
                    "Timestamp": _iso_ns(start),
                    "Duration": end - start,
                    "SpanKind": ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"][span.kind],
                    "StatusCode": ["Unset", "Ok", "Error"][span.status.code],
                    "Events.Timestamp": [_iso_ns(e.time_unix_nano) for e in span.events],
                    "Events.Name": [e.name for e in span.events],
                }
            )
    return req, expected


@st.composite
def valid_log_requests(draw) -> tuple[ExportLogsServiceRequest, list[dict]]:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    service = draw(SERVICES)
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    sl = rl.scope_logs.add()
    expected = []
    for _ in range(draw(st.integers(1, 4))):
        rec = sl.log_records.add()
        rec.time_unix_nano = draw(VALID_TS)
        rec.severity_number = draw(st.integers(0, 24))
        rec.severity_text = draw(TEXT)
        body = draw(st.text(max_size=200))
        rec.body.string_value = body
        rec.trace_id = draw(st.just(b"") | TRACE_IDS)
        rec.span_id = draw(st.just(b"") | SPAN_IDS)
        _set_attrs(rec.attributes, draw(ATTRS))
        expected.append(
            {
                "Timestamp": _iso_ns(rec.time_unix_nano or rec.observed_time_unix_nano),
                "TraceId": rec.trace_id.hex(),
                "SpanId": rec.span_id.hex(),
                "SeverityNumber": rec.severity_number,
                "SeverityText": rec.severity_text,
                "ServiceName": service,
                "Body": body,
            }
        )
    return req, expected


def _iso_ns(ns: int) -> str:
    return str(np.datetime64(ns, "ns")).replace("T", " ")


def _decoded_rows(signal: str, body: bytes, content_type: str, spool: str) -> dict[str, list[dict]]:
    out = check_outcome(signal, body, content_type, spool, keep=True)
    assert out is not None, "a valid request was refused"
    assert out.rejected == 0, out.error_message
    tables = {}
    for table, path in out.files.items():
        with open(path, "rb") as fh:
            tables[table] = orjson.loads(b"[" + fh.read().rstrip(b"\n") + b"]")
        os.unlink(path)
    assert out.rows == sum(len(rows) for rows in tables.values())
    return tables


VALID = {"traces": (valid_trace_requests(), "otel_traces"), "logs": (valid_log_requests(), "otel_logs")}


@pytest.mark.parametrize("signal", list(VALID))
def test_valid_requests_give_one_row_per_item_with_the_sent_values(signal, spool):
    strategy, table = VALID[signal]

    @FUZZ
    @given(strategy)
    def run(case):
        message, expected = case
        from_proto = _decoded_rows(signal, message.SerializeToString(), "protobuf", spool)
        rows = from_proto.get(table, [])
        assert len(rows) == len(expected)
        for row, want in zip(rows, expected, strict=True):
            got = {k: row.get(k, [] if k.startswith("Events.") else "") for k in want}
            got = {k: int(v) if k in ("Duration", "SeverityNumber") else v for k, v in got.items()}
            assert got == want
        # The JSON decoder reads the same request to the same rows.
        from_json = _decoded_rows(signal, orjson.dumps(to_otlp_json(message)), "json", spool)
        assert from_json == from_proto

    run()


@pytest.mark.parametrize("signal", list(REQUESTS))
def test_mutated_protobuf(signal, spool):
    @FUZZ
    @given(st.data())
    def run(data):
        base = data.draw(REQUESTS[signal]).SerializeToString()
        check_outcome(signal, data.draw(mutated_bytes(base)), "protobuf", spool)

    run()


@pytest.mark.parametrize("signal", list(REQUESTS))
def test_mutated_json(signal, spool):
    @FUZZ
    @given(st.data())
    def run(data):
        doc = to_otlp_json(data.draw(REQUESTS[signal]))
        raw = orjson.dumps(doc)
        # stdlib json: the mutations include integers past 64 bits, which orjson cannot write
        check_outcome(signal, json.dumps(data.draw(mutated_json(doc))).encode(), "json", spool)
        # and byte-level damage to the JSON text (invalid UTF-8, truncation)
        check_outcome(signal, data.draw(mutated_bytes(raw)), "json", spool)

    run()


@FUZZ
@given(st.binary(max_size=256), st.sampled_from(list(REQUESTS)), st.sampled_from(["protobuf", "json"]))
def test_random_bytes(body, signal, content_type):
    spool = tempfile.mkdtemp(prefix="fuzz-spool-")
    try:
        check_outcome(signal, body, content_type, spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _deep_json_value(depth: int, kind: str) -> bytes:
    """An AnyValue in OTLP/JSON nesting `depth` arrays or kvlists, as text (orjson and json
    refuse to write what is this deep)."""
    if kind == "array":
        head, tail = b'{"arrayValue":{"values":[', b"]}}"
    else:
        head, tail = b'{"kvlistValue":{"values":[{"key":"k","value":', b"}]}}"
    return head * depth + b'{"stringValue":"leaf"}' + tail * depth


def _with_attribute_json(doc: dict, value_json: bytes) -> bytes:
    """`doc` (a one-span trace request) with one attribute whose value is `value_json`."""
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [{"key": "deep", "value": "@@"}]
    return orjson.dumps(doc).replace(b'"@@"', value_json)


def _ld(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, encoded by hand."""
    size, n = b"", len(payload)
    while True:
        byte, n = n & 0x7F, n >> 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return bytes([field_number << 3 | 2]) + size + payload


def _deep_proto_request(depth: int) -> bytes:
    """A trace request whose one attribute nests `depth` arrays (the protobuf runtime refuses
    to build such a message, so it is encoded by hand)."""
    value = _ld(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        value = _ld(5, _ld(1, value))  # AnyValue.array_value -> ArrayValue.values
    span = make_span("deep").SerializeToString() + _ld(9, _ld(1, b"deep") + _ld(2, value))
    return _ld(1, _ld(2, _ld(2, span)))  # request.resource_spans -> scope_spans -> spans


@pytest.mark.parametrize("depth", [10, 60, 90, 200, 260, 335, 400])
@pytest.mark.parametrize("kind", ["array", "kvlist"])
def test_deep_nesting(spool, depth, kind):
    span = make_span("deep")
    doc = to_otlp_json(trace_request("deep", [span]))
    out = check_outcome("traces", _with_attribute_json(doc, _deep_json_value(depth, kind)), "json", spool)
    if depth <= 10:
        assert out is not None and out.rows == 1
    # Raw JSON nesting past any parser's limit.
    check_outcome("traces", b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}", "json", spool)
    # Protobuf nesting: deeper than the protobuf runtime's recursion limit must be a clean error.
    out = check_outcome("traces", _deep_proto_request(depth), "protobuf", spool)
    if depth <= 10:
        assert out is not None and out.rows == 1


def test_huge_and_invalid_strings(spool):
    doc = to_otlp_json(trace_request("strings", [make_span("s", attributes={"k": "v"})]))
    raw = orjson.dumps(doc)
    for bad in (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\\ud800", b"\x00"):
        check_outcome("traces", raw.replace(b'"v"', b'"' + bad + b'"'), "json", spool)
    big = {"k": "x" * (MAX_ATTRIBUTE * 10), "e": "é" * MAX_ATTRIBUTE}
    out = check_outcome(
        "traces",
        trace_request("big", [make_span("s", attributes=big)]).SerializeToString(),
        "protobuf",
        spool,
    )
    assert out is not None and out.rows == 1


# -- end to end: fuzzed payloads against a running collector ----------------------------------


def _e2e_payloads(seed: int = 1234) -> list[tuple[str, bytes, str]]:
    rng = random.Random(seed)
    base = trace_request("fuzz-e2e", [make_span(f"s{i}", attributes={"i": i, "f": 1.5}) for i in range(3)])
    body = base.SerializeToString()
    doc_raw = orjson.dumps(to_otlp_json(base))
    out: list[tuple[str, bytes, str]] = []
    for _ in range(4):
        b = bytearray(body)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        out.append(("traces", bytes(b), "application/x-protobuf"))
    out.append(("traces", body[: rng.randrange(1, len(body))], "application/x-protobuf"))
    out.append(("metrics", bytes(rng.getrandbits(8) for _ in range(200)), "application/x-protobuf"))
    out.append(("logs", bytes(rng.getrandbits(8) for _ in range(200)), "application/json"))
    out.append(("traces", doc_raw[: len(doc_raw) // 2], "application/json"))
    out.append(("traces", doc_raw.replace(b'"s1"', b'"\xff\xfe"'), "application/json"))
    out.append(
        (
            "traces",
            doc_raw.replace(b'"startTimeUnixNano":', b'"startTimeUnixNano":[],"x":'),
            "application/json",
        )
    )
    out.append(("logs", b"[" * 3000 + b"]" * 3000, "application/json"))
    deep = _with_attribute_json(orjson.loads(doc_raw), _deep_json_value(320, "array"))
    out.append(("traces", deep, "application/json"))
    return out


def test_fuzzed_payloads_against_a_running_collector(collector):
    for signal, body, content_type in _e2e_payloads():
        r = collector.post(f"/v1/{signal}", body, content_type)
        assert r.status_code in (200, 400), (r.status_code, r.content[:300])
        if r.status_code == 400:
            if content_type == "application/json":
                assert r.json()["message"]
            else:
                from google.rpc import status_pb2

                assert status_pb2.Status.FromString(r.content).message
        assert collector.health().status_code == 200
    health = collector.health().json()
    assert health.get("store_error") in (None, ""), health

    # Non-finite and extreme metric values are stored, not refused (ClickHouse reads them).
    service = unique("fuzz-metrics")
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    metric = rm.scope_metrics.add().metrics.add(name="odd")
    for i, value in enumerate([float("nan"), float("inf"), float("-inf"), 1.7976931348623157e308, -0.0]):
        dp = metric.gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000 + i, as_double=value)
        ex = dp.exemplars.add(as_double=value, time_unix_nano=2**63 - 1)
        ex.trace_id, ex.span_id = b"\x01" * 16, b"\x02" * 8
    r = collector.post("/v1/metrics", req.SerializeToString())
    assert r.status_code == 200, r.content
    values = collector.sql(
        "SELECT toString(Value) AS v, toString(Exemplars.Value[1]) AS e FROM otel_metrics_gauge "
        f"WHERE ServiceName = {quote(service)} ORDER BY TimeUnix"
    )
    expected = ["nan", "inf", "-inf", "1.7976931348623157e308", "-0"]
    assert [row["v"] for row in values] == expected
    assert [row["e"] for row in values] == expected  # exemplars too, not turned into 0

    # A request mixing valid spans with broken ones: the valid ones are kept, the others counted.
    service = unique("fuzz-partial")
    good = [make_span(f"good{i}") for i in range(3)]
    bad = [
        make_span("short-id", trace_id=b"\x01" * 5),
        make_span("zero-id", span_id=b"\x00" * 8),
        make_span("far-future", start_ns=2**64 - 10**7),
    ]
    r = collector.post("/v1/traces", trace_request(service, good[:2] + bad + good[2:]).SerializeToString())
    assert r.status_code == 200, r.content
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 3 and reply.partial_success.error_message
    rows = collector.sql(
        f"SELECT SpanName FROM otel_traces WHERE ServiceName = {quote(service)} ORDER BY SpanName"
    )
    assert [row["SpanName"] for row in rows] == ["good0", "good1", "good2"]
