"""trace_summary_mv as migration 14 rewrote it writes, row for row and byte for byte, what
migration 11's view wrote, on spans chosen to tell the two apart: every content key alone,
several at once (empty values, duplicate keys), texts around the 16384-character cut (ASCII,
multi-byte, invalid UTF-8), ties on the first span's time, errors, spans without content.

Migration 11's view runs beside the store's own, into a plain MergeTree copy of trace_summary;
trace_summary's merges are stopped, so both hold one row per trace and insert.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from tracehouse_collector.store import ddl
from tracehouse_collector.store.client import Store

pytestmark = pytest.mark.timeout(300)

INPUT_KEYS = [
    "gen_ai.input.messages", "gen_ai.prompt", "input.value", "ai.prompt.messages", "ai.prompt",
    "traceloop.entity.input", "langfuse.observation.input", "mlflow.spanInputs",
]  # fmt: skip
OUTPUT_KEYS = [
    "gen_ai.output.messages", "gen_ai.completion", "output.value", "ai.response.text",
    "traceloop.entity.output", "langfuse.observation.output", "mlflow.spanOutputs",
]  # fmt: skip
# Texts at and around the cut: 16384 characters is the limit, bytes and characters differ for é.
TEXTS = [
    "", "hi", "x" * 16384, "x" * 16385, "é" * 9000, "é" * 16384, "é" * 16385, "é" * 20000,
    "a" * 16383 + "é", "💬" * 5000, "prompt " * 3000,
]  # fmt: skip
START = dt.datetime(2026, 1, 5, 9, 40, tzinfo=dt.UTC)


def _attributes(rng: random.Random) -> list[tuple[str, str]]:
    """A span's attributes as (key, value) pairs: some content keys, maybe empty or twice."""
    pairs = [("server.address", "api.example.com"), ("gen_ai.request.max_tokens", "512")]
    for keys in (INPUT_KEYS, OUTPUT_KEYS):
        for key in rng.sample(keys, rng.choice([0, 1, 1, 1, 2, 3])):
            pairs.append((key, rng.choice(TEXTS)))
            if rng.random() < 0.1:  # the same key again: a lookup reads its first value
                pairs.append((key, rng.choice(TEXTS)))
    rng.shuffle(pairs)
    return pairs


def _json_object(pairs: list[tuple[str, str]]) -> str:
    """A JSON object that may repeat a key (a dict could not)."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


def _span(rng: random.Random, trace: str, n: int, at: dt.datetime) -> str:
    model = rng.choice(
        ["gpt-4o-mini", "claude-sonnet-4-20250514", "gpt-4o@2024-08-06", "", "gemini-2.5-flash"]
    )
    error = rng.random() < 0.2
    events = []
    if error and rng.random() < 0.6:
        events = [{"exception.type": "TimeoutError", "exception.message": rng.choice(["", "timed out"])}]
    fields = {
        "Timestamp": at.strftime("%Y-%m-%d %H:%M:%S.%f"), "TraceId": trace, "SpanId": f"{n:016x}",
        "ParentSpanId": "" if n % 5 == 0 else "1" * 16, "SpanName": rng.choice(["chat", "tool", "agent"]),
        "ServiceName": rng.choice(["a", "b"]), "Duration": rng.randrange(1, 10**9),
        "StatusCode": "Error" if error else rng.choice(["Ok", "Unset"]),
        "StatusMessage": rng.choice(["", "failed", "é" * 17000]) if error else "",
        "Events.Name": ["exception"] * len(events), "Events.Attributes": events,
        "Events.Timestamp": [at.strftime("%Y-%m-%d %H:%M:%S.%f")] * len(events),
        "GenAIOperation": rng.choice(["chat", "execute_tool", "invoke_agent"]), "GenAIProvider": "openai",
        "GenAIRequestModel": model, "GenAIResponseModel": rng.choice([model, ""]),
        "InputTokens": rng.randrange(100), "OutputTokens": rng.randrange(50), "TotalTokens": rng.randrange(150),
        "TotalCostUSD": "0.000123", "SessionId": rng.choice(["", "s1", "s2"]), "UserId": rng.choice(["", "u1"]),
        "RunId": rng.choice(["", "r1"]),
    }  # fmt: skip
    row = json.dumps(fields)
    return row[:-1] + f', "SpanAttributes": {_json_object(_attributes(rng))}}}'


def _inserts() -> list[list[str]]:
    rng = random.Random(14)
    out: list[list[str]] = [[], [], []]
    n = 0
    for t in range(120):
        trace = f"{t + 1:032x}" if t % 40 else ""  # spans without a trace id are left out
        at = START + dt.timedelta(seconds=rng.randrange(4 * 3600))
        for _ in range(rng.randrange(1, 9)):
            n += 1
            # ties: several spans of a trace may start at the same time
            at += dt.timedelta(milliseconds=rng.choice([0, 0, 3, 2500]))
            out[rng.randrange(3)].append(_span(rng, trace, n, at))
    return out


# Spans JSON cannot carry: invalid UTF-8 in the content, over and under the cut.
RAW_INSERT = """
INSERT INTO tracehouse.otel_traces (Timestamp, TraceId, SpanId, SpanAttributes)
SELECT toDateTime64('2026-01-05 11:00:00', 9) + number, 'f' || toString(number % 3), toString(number),
    CAST((['input.value', 'gen_ai.prompt', 'output.value'],
          [repeat(unhex(arrayElement(['F09F', 'FF', '80', 'C3'], number % 4 + 1)),
                  arrayElement([3, 9000, 16384, 16385], intDiv(number, 4) % 4 + 1)),
           if(number % 2, unhex('E282'), ''), repeat(unhex('E282AC'), 6000)]), 'Map(LowCardinality(String), String)')
FROM numbers(16)
"""


def _rows(store: Store, table: str) -> list[tuple]:
    _, rows = store.query(
        f"SELECT TraceId, Hour, hex(sipHash128(*)), * EXCEPT TraceId, Hour FROM tracehouse.{table} "
        "ORDER BY TraceId, Hour, Start, Spans, 3"
    )
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('summary-view')}")
    store.migrate()
    store.command("SYSTEM STOP MERGES tracehouse.trace_summary")
    old = next(m for m in ddl.migrations() if m.file == "0011_trace_summary.sql")
    view = next(s for s in old.statements() if s.startswith("CREATE MATERIALIZED VIEW"))
    store.command(
        "CREATE TABLE tracehouse.summary_0011 AS tracehouse.trace_summary ENGINE = MergeTree ORDER BY tuple()"
    )
    store.command(
        view.replace("tracehouse.trace_summary_mv", "tracehouse.summary_0011_mv").replace(
            "TO tracehouse.trace_summary\n", "TO tracehouse.summary_0011\n"
        )
    )
    for rows in _inserts():
        store.command(
            "INSERT INTO tracehouse.otel_traces SETTINGS date_time_input_format='best_effort' "
            "FORMAT JSONEachRow\n" + "\n".join(rows)
        )
    store.command(RAW_INSERT)
    yield store
    store.close()


def test_the_store_runs_migration_14s_view(stores):
    _, rows = stores.query(
        "SELECT as_select FROM system.tables WHERE database = 'tracehouse' AND name = 'trace_summary_mv'"
    )
    assert "indexOf(SpanAttributes.keys" in rows[0][0]


def test_the_corpus_covers_what_tells_the_views_apart(stores):
    _, rows = stores.query(
        "SELECT countIf(lengthUTF8(Input.2) = 16384 AND length(Input.2) > 16384), "
        "countIf(Input.2 != ''), countIf(Output.2 != ''), countIf(FirstError.2 != ''), "
        "countIf(NOT isValidUTF8(Input.2)), count() FROM tracehouse.summary_0011"
    )
    cut_multibyte, inputs, outputs, errors, invalid, total = rows[0]
    assert cut_multibyte and invalid and errors and total > 100
    assert 0 < inputs < total and 0 < outputs < total


def test_migration_14s_view_writes_the_rows_migration_11s_wrote(stores):
    new, old = _rows(stores, "trace_summary"), _rows(stores, "summary_0011")
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        assert a == b
