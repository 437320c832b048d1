"""The Native and Arrow encodings of spans store exactly what the JSONEachRow encoding stores.

Rich OTLP requests (every AnyValue kind, unicode, NaN and infinities, truncated huge values,
nanosecond and extreme timestamps, events and links, LLM spans priced, unpriced, estimated
and failed) go through the real pipeline twice, once per encoding, and are inserted into a
real ClickHouse (chDB), embedded and behind the server path. Every table the spans reach
(otel_traces and the tables its materialized views fill) must hold the same bytes whichever
encoding carried them.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_clickhouse import FakeClickHouseProcess
from helpers import kv, make_span, new_span_id, new_trace_id, trace_request
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from tracehouse_collector.config import INSERT_FORMATS
from tracehouse_collector.processors import encoding, pipeline
from tracehouse_collector.processors.rows import MAX_TIMESTAMP_NS
from tracehouse_collector.store.client import Store

pytestmark = [pytest.mark.timeout(300)]

# TRACEHOUSE_INSERT_FORMAT -> the ClickHouse format its span files are read in
FORMATS = {"json": "JSONEachRow", "native": "Native", "arrow": "ArrowStream"}

LIMIT = 4096  # max_attribute_bytes: values above it are cut (at a UTF-8 boundary) and marked
BASE = 1_700_000_000_123_456_789

# Tables the span rows end in (directly or through materialized views), each dumped in a fixed order.
DUMPS = {
    "otel_traces": "SELECT * FROM otel_traces ORDER BY SpanId",
    "otel_traces_trace_id_ts": "SELECT * FROM otel_traces_trace_id_ts ORDER BY TraceId",
    "otel_scores": "SELECT * FROM otel_scores ORDER BY SpanId, Name",
    "llm_usage_1m": "SELECT * FROM llm_usage_1m FINAL ORDER BY Start, ServiceName, SpanName, Model",
}


def _llm(model: str, **extra) -> dict:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model, **extra}


def _spans() -> list[Span]:
    huge = "é" * LIMIT + "tail"  # 2 bytes a character: cut in the middle of the value
    odd = {
        "unicode": "naïve 日本語 🤖 \u200d\u0301 \t\n\"quoted\" \\ back",
        "nul": "a\x00b",
        "padded": "  spaces and a newline \n",
        "int.max": 2**63 - 1,
        "int.min": -(2**63),
        "double.nan": math.nan,
        "double.inf": math.inf,
        "double.ninf": -math.inf,
        "double.tiny": 5e-324,
        "double.neg0": -0.0,
        "double.frac": 0.1,
        "double.big": 1e300,
        "bool": True,
        "bytes": b"\x00\xff\xfe",
        "array": [1, "two", 3.5, False, [math.nan, math.inf], {"k": "v"}],
        "kvlist": {"a": {"b": [1, 2]}, "empty": [], "s": "ü"},
        "empty": "",
        "huge": huge,
        "ключ": "значение",
    }
    spans = [
        make_span("plain", start_ns=BASE, duration_ns=1, attributes=odd),
        make_span("epoch", start_ns=0, duration_ns=0),
        make_span("far future", start_ns=MAX_TIMESTAMP_NS - 5, duration_ns=5, kind=Span.SPAN_KIND_SERVER),
        make_span(
            "chat gpt-4o-mini",
            start_ns=BASE + 7,
            duration_ns=2_500_000_001,
            kind=Span.SPAN_KIND_CLIENT,
            attributes=_llm(
                "gpt-4o-mini",
                **{
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 345,
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.usage.reasoning.output_tokens": 45,
                    "session.id": "sess-1",
                    "user.id": "user-ü",
                    "tracehouse.run.id": "run-7",
                },
            ),
        ),
        make_span(
            "chat mystery",
            start_ns=BASE + 8,
            attributes=_llm("no-such-model-xyz", **{"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}),
        ),
        make_span(  # no usage reported: tokens estimated from the messages
            "chat estimated",
            start_ns=BASE + 9,
            attributes=_llm(
                "gpt-4o",
                **{
                    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Hello 🌍, how are you?"}]}]',
                    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"Fine."}]}]',
                },
            ),
        ),
        make_span(  # a reported cost wins over the price table
            "chat reported cost",
            start_ns=BASE + 10,
            attributes=_llm("gpt-4o", **{"gen_ai.usage.input_tokens": 3, "gen_ai.usage.cost": 0.123456789012345}),
        ),
        make_span(
            "chat embeddings",
            start_ns=BASE + 11,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 9_000_000_000,
            },
        ),
    ]
    failed = make_span("chat failed", start_ns=BASE + 12, attributes=_llm("gpt-4o"))
    failed.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="rate limited ⏳"))
    failed.trace_state = "vendor=a,other=b"
    failed.parent_span_id = new_span_id()
    spans.append(failed)
    rich = make_span("with events and links", start_ns=BASE + 13, duration_ns=10)
    for i, (name, attrs) in enumerate(
        [
            ("exception", {"exception.message": "boom ✗", "exception.type": "ValueError"}),
            ("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.75}),
            ("empty", {}),
        ]
    ):
        ev = rich.events.add(name=name, time_unix_nano=BASE + 13 + i)
        ev.attributes.extend(kv(k, v) for k, v in attrs.items())
    link = rich.links.add(trace_id=new_trace_id(), span_id=new_span_id(), trace_state="k=v")
    link.attributes.append(kv("link.kind", "follows ➜"))
    rich.links.add(trace_id=new_trace_id(), span_id=new_span_id())
    spans.append(rich)
    return spans


@functools.cache
def _requests() -> tuple[bytes, ...]:
    """Built once: every encoding must see the same ids."""
    spans = _spans()
    first = trace_request("formats-svc", spans[:5])
    first.resource_spans[0].resource.attributes.extend([kv("deployment.environment", "tést"), kv("session.id", "from-resource")])
    second = trace_request("formats-svc-ü", spans[5:], scope="scope ✓")
    second.resource_spans[0].scope_spans[0].scope.version = "1.0-β"
    return first.SerializeToString(), second.SerializeToString()


def _encode(tmp: Path, insert_format: str) -> list[dict[str, str]]:
    spool = tmp / insert_format
    spool.mkdir()
    out = []
    for body in _requests():
        encoded = pipeline.process(
            "traces", body, "protobuf", "", 1 << 26, LIMIT, str(spool), False, None, True, insert_format
        )
        assert encoded.rejected == 0, encoded.error_message
        out.append(encoded.files)
    return out


def _dump(store: Store) -> dict[str, bytes]:
    return {table: store.query_bytes(sql + " FORMAT RowBinaryWithNamesAndTypes") for table, sql in DUMPS.items()}


def _truncate(store: Store) -> None:
    for table in DUMPS:
        store.command(f"TRUNCATE TABLE {table}")


def _stored_by_each_format(store: Store, tmp: Path) -> dict[str, dict[str, bytes]]:
    dumps = {}
    for insert_format, clickhouse_format in FORMATS.items():
        _truncate(store)
        requests = _encode(tmp, insert_format)
        spans_file = requests[0]["otel_traces"]
        assert encoding.insert_format(spans_file) == clickhouse_format
        for table in {t for files in requests for t in files}:
            # One insert per table of every request's file, as the writer inserts a batch.
            pattern = str(Path(spans_file).parent / f"*.{table}.{Path(requests[0][table]).suffix[1:]}")
            store.insert_files(table, pattern, encoding.insert_format(pattern), f"formats-{insert_format}-{table}")
        dumps[insert_format] = _dump(store)
    return dumps


def _assert_same(dumps: dict[str, dict[str, bytes]]) -> None:
    for table in DUMPS:
        for insert_format in ("native", "arrow"):
            assert dumps[insert_format][table] == dumps["json"][table], f"{table} differs in {insert_format}"
    assert dumps["json"]["otel_traces"].count(b"formats-svc") >= 10  # the rows are there at all
    assert b"relevance" in dumps["json"]["otel_scores"]  # the evaluation event reached its view
    assert b"gpt-4o-mini" in dumps["json"]["llm_usage_1m"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"chdb://{tmp_path_factory.mktemp('formats') / 'store'}")
    store.migrate()
    yield store
    store.close()


def test_every_encoding_stores_the_same_values_in_the_embedded_store(embedded: Store, tmp_path: Path) -> None:
    _assert_same(_stored_by_each_format(embedded, tmp_path))
    # Spot checks against values computed here, so that "the same" is not "the same mistake".
    columns, rows = embedded.query(
        "SELECT SpanName, toUnixTimestamp64Nano(Timestamp), Duration, SpanAttributes['huge'], "
        "SpanAttributes['double.nan'], SpanAttributes['tracehouse.truncated'], InputTokens, "
        "TotalCostUSD, toUnixTimestamp64Nano(Events.Timestamp[2]) FROM otel_traces ORDER BY SpanName"
    )
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["plain"][0] == BASE and by_name["plain"][1] == 1
    assert by_name["epoch"][0] == 0
    assert by_name["far future"][0] == MAX_TIMESTAMP_NS - 5
    assert by_name["plain"][2] == "é" * (LIMIT // 2) and by_name["plain"][4] == "huge"
    assert by_name["plain"][3] == "NaN"
    assert by_name["chat gpt-4o-mini"][5] == 1200
    assert by_name["chat gpt-4o-mini"][6] > 0
    assert by_name["with events and links"][7] == BASE + 14


def test_every_encoding_stores_the_same_values_through_a_server(tmp_path: Path) -> None:
    from helpers import free_port

    fake = FakeClickHouseProcess(tmp_path / "ch", free_port()).start()
    try:
        store = Store(fake.dsn)
        store.migrate()
        try:
            _assert_same(_stored_by_each_format(store, tmp_path))
        finally:
            store.close()
    finally:
        fake.stop()


@pytest.mark.parametrize("insert_format", ["native", "arrow"])
def test_a_column_the_table_does_not_declare_is_refused(insert_format: str) -> None:
    with pytest.raises(encoding.UnknownColumn, match="NotAColumn"):
        encoding.encode("otel_traces", [{"SpanId": "a"}, {"NotAColumn": "b"}], insert_format)


def test_the_declared_columns_are_the_tables_own(embedded: Store) -> None:
    """A Native block declares each column's type: it must be the table's, and every column a
    row can fill must be declared (a column added by a migration and not here would fail)."""
    _, rows = embedded.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_traces' "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')"
    )
    assert {name: column.clickhouse for name, column in encoding.TABLE_COLUMNS["otel_traces"].items()} == dict(rows)


def test_the_supported_formats_are_the_settings_own() -> None:
    assert set(FORMATS) == set(INSERT_FORMATS)


def test_native_without_its_encoder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    encoding._native_encoder.cache_clear()
    monkeypatch.setitem(sys.modules, "_ch_core", None)  # as if the wheel were not installed
    try:
        with pytest.raises(RuntimeError, match="clickhouse-connect-core"):
            encoding.warm_up("native")
    finally:
        encoding._native_encoder.cache_clear()
