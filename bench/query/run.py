"""Query benchmark: aggregates on raw spans and on the per-minute rollup, trace lookup, traces list.

Loads N generated LLM spans (default 10 million) into a fresh embedded store, generated inside
ClickHouse (INSERT ... SELECT FROM numbers(), so Python never touches a row) with realistic
shapes: 4 spans per trace (an agent root and 3 LLM calls), 8 models with weights and prices,
5 services, 200k sessions, log-normal latencies and token counts, 3% errors, time to first
token on 30% of calls, spread evenly over the last 30 days. The materialized views (trace-id
table, usage rollup) run as they do for ingested data. Then it times, as the median of
repeated runs after one warm-up:

- latency by model over 24 h and cost by day over 30 days, raw plan and rollup plan side by side;
- errors by model over 24 h (raw only);
- trace lookup by id (query/traces.get_trace: the trace's span documents, trace_span_docs);
- one page (50) of the traces list over 24 h;
- the traces list sorted (latency over 24 h, cost over 7 d), its count and facets, and full-text
  search of one rare word in the prompts of 30 days (list_cases);
- then, through a `tracehouse serve` on the same store (bench/query/api.py): trace lookup by REST
  and gRPC, and latency/cost/errors by model over 2 h (24 h from 5M spans on) by REST and gRPC,
  each beside the same call in-process and issue 19's target.

LLM calls carry a prompt of 24 and a reply of 40 words drawn from 20,000, as GenAI JSON
messages; one prompt holds the rare word RARE_WORD.

    make bench-query                          # 10M spans
    make bench-query ARGS="--spans 2000000 --repeat 5"
    python -m bench.query --dir DIR --reuse    # measure a store an earlier --dir run kept

Targets on a 2-core machine: aggregates under 500 ms, trace lookup under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from tracehouse_collector.config import ServeSettings
from tracehouse_collector.query import aggregates
from tracehouse_collector.store.client import Store

# (model, provider, weight, USD per million input tokens, USD per million output tokens)
MODELS = [
    ("gpt-4o-mini", "openai", 30, 0.15, 0.6),
    ("gpt-4o", "openai", 15, 2.5, 10.0),
    ("gpt-4.1", "openai", 8, 2.0, 8.0),
    ("claude-sonnet-4", "anthropic", 15, 3.0, 15.0),
    ("claude-haiku-3.5", "anthropic", 10, 0.8, 4.0),
    ("gemini-2.5-flash", "gcp.gemini", 12, 0.3, 2.5),
    ("mistral-large-latest", "mistral_ai", 5, 2.0, 6.0),
    ("llama3.1:8b", "ollama", 5, 0.0, 0.0),
]
SERVICES = ["support-bot", "search-api", "summarizer", "agent-worker", "eval-runner"]
DAYS = 30
CHUNK = 1_000_000
TARGET_AGG_MS = 500
TARGET_LOOKUP_MS = 50
TARGET_LIST_MS = 1000


VOCABULARY = 20_000
RARE_WORD = "zanzibarquokka"
RARE_SPAN = 4 * 12_345 + 2  # an LLM call's span number: its prompt holds RARE_WORD


def _words_sql(seed: str, n: int, salt: int) -> str:
    """n words 'w0'..'w19999' drawn by hash of `seed`, space-separated."""
    return (
        f"arrayStringConcat(arrayMap(i -> 'w' || toString(cityHash64({seed}, i + {salt}) % {VOCABULARY}), "
        f"range({n})), ' ')"
    )


def _array(values) -> str:
    return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) + "]"


def load_sql(start: int, rows: int, now_s: int) -> str:
    """An INSERT ... SELECT making spans number start..start+rows-1 (deterministic per number)."""
    weights = []
    for i, m in enumerate(MODELS):
        weights += [i + 1] * m[2]
    models = _array(m[0] for m in MODELS)
    providers = _array(m[1] for m in MODELS)
    price_in = _array(m[3] for m in MODELS)
    price_out = _array(m[4] for m in MODELS)
    span_s = DAYS * 86400
    return f"""
INSERT INTO tracehouse.otel_traces
    (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, ResourceAttributes,
     ScopeName, SpanAttributes, Duration, StatusCode, GenAIOperation, GenAIProvider, GenAIRequestModel,
     GenAIResponseModel, InputTokens, OutputTokens, CacheReadTokens, TotalTokens, TokensEstimated,
     InputCostUSD, OutputCostUSD, TotalCostUSD, PriceSource, SessionId, UserId)
SELECT
    toDateTime64({now_s - span_s}, 9, 'UTC')
        + toIntervalMillisecond(cityHash64(trace, 1) % {span_s * 1000} + pos * 700) AS Timestamp,
    lower(hex(MD5(toString(trace)))) AS TraceId,
    substring(lower(hex(MD5(toString(number)))), 1, 16) AS SpanId,
    if(pos = 0, '', substring(lower(hex(MD5(toString(trace * 4)))), 1, 16)) AS ParentSpanId,
    if(llm, 'chat ' || model, 'agent run') AS SpanName,
    if(llm, 'Client', 'Internal') AS SpanKind,
    {_array(SERVICES)}[1 + cityHash64(trace, 3) % {len(SERVICES)}] AS ServiceName,
    map('service.name', ServiceName, 'deployment.environment', 'prod') AS ResourceAttributes,
    'bench' AS ScopeName,
    if(llm, mapConcat(map('gen_ai.request.model', model, 'gen_ai.input.messages', prompt,
        'gen_ai.output.messages', reply), if(has_ttft, map('gen_ai.response.time_to_first_chunk',
        toString(round(dur_ms * 0.2 / 1000, 4))), map())), map()) AS SpanAttributes,
    toUInt64(dur_ms * 1e6) AS Duration,
    if(rand(5) % 100 < 3, 'Error', 'Ok') AS StatusCode,
    if(llm, 'chat', '') AS GenAIOperation,
    if(llm, {providers}[mi], '') AS GenAIProvider,
    if(llm, model, '') AS GenAIRequestModel,
    if(llm, model || '-2025', '') AS GenAIResponseModel,
    if(llm, toUInt64(randLogNormal(6.5, 1.0)), 0) AS InputTokens,
    if(llm, toUInt64(randLogNormal(5.0, 0.8)), 0) AS OutputTokens,
    if(llm AND rand(6) % 4 = 0, intDiv(InputTokens, 2), 0) AS CacheReadTokens,
    InputTokens + OutputTokens AS TotalTokens,
    llm AND rand(7) % 50 = 0 AS TokensEstimated,
    toDecimal64(InputTokens * {price_in}[mi] / 1e6, 12) AS InputCostUSD,
    toDecimal64(OutputTokens * {price_out}[mi] / 1e6, 12) AS OutputCostUSD,
    InputCostUSD + OutputCostUSD AS TotalCostUSD,
    if(llm, 'genai-prices bench', '') AS PriceSource,
    'sess-' || toString(cityHash64(trace, 4) % 200000) AS SessionId,
    'user-' || toString(cityHash64(trace, 8) % 5000) AS UserId
FROM (
    SELECT number, intDiv(number, 4) AS trace, number % 4 AS pos, pos != 0 AS llm,
        {_array(weights)}[1 + cityHash64(number, 2) % {len(weights)}] AS mi,
        {models}[mi] AS model,
        if(llm, randLogNormal(6.3, 0.7), randLogNormal(7.5, 0.6)) AS dur_ms,
        rand(9) % 10 < 3 AS has_ttft,
        {_words_sql("number", 24, 0)} || if(number = {RARE_SPAN}, ' {RARE_WORD}', '') AS prompt_text,
        '[{{"role":"user","parts":[{{"type":"text","content":"' || prompt_text || '"}}]}}]' AS prompt,
        '[{{"role":"assistant","parts":[{{"type":"text","content":"' || {_words_sql("number", 40, 100)}
            || '"}}]}}]' AS reply
    FROM numbers({start}, {rows})
)
SETTINGS max_partitions_per_insert_block = 0
"""


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to load (default 10M)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per query (median reported)")
    parser.add_argument("--dir", help="store directory (default: a temporary one, removed at the end)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the spans an earlier run loaded into --dir (load nothing; pending migrations still run)",
    )
    parser.add_argument(
        "--no-api", action="store_true", help="skip the REST and gRPC cases (bench/query/api.py)"
    )
    args = parser.parse_args(argv)
    if args.reuse and not args.dir:
        parser.error("--reuse needs --dir (a store an earlier run loaded and kept)")

    tmp = args.dir or tempfile.mkdtemp(prefix="tracehouse-bench-query-")
    # As many read connections as `tracehouse serve` opens by default (TRACEHOUSE_MAX_QUERIES), so
    # in-process figures compare with the API's (a trace lookup reads its extras on a second one).
    store = Store(f"chdb://{tmp}", readers=ServeSettings.max_queries)
    try:
        store.migrate()  # a kept store gets the migrations added since it was loaded
        if args.reuse:
            print(f"measuring the spans already loaded in chdb://{tmp} ({os.cpu_count()} CPUs)", flush=True)
            load_s = None
        else:
            load_s = _load(store, tmp, args.spans)
        _, rows = store.query(
            "SELECT (SELECT count() FROM otel_traces), (SELECT count() FROM llm_usage_1m), "
            "(SELECT count() FROM llm_usage_1h), (SELECT count() FROM otel_traces_trace_id_ts)"
        )
        spans, minute_rows, hour_rows, trace_rows = rows[0]
        loaded = (
            f"loaded in {load_s:.1f} s ({spans / load_s:,.0f} spans/s, including the materialized views)"
            if load_s
            else "(kept from an earlier load)"
        )
        print(
            f"{spans:,} spans {loaded}; rollup rows {minute_rows:,} per minute, {hour_rows:,} per hour, "
            f"trace-id rows {trace_rows:,}\n",
            flush=True,
        )

        results: list[tuple[str, float | None, float | None, int]] = []
        # The floor under every query: one round trip through clickhouse-connect into chDB.
        results.append(
            (
                "store round trip (SELECT 1)",
                timed(lambda: store.query("SELECT 1"), args.repeat),
                None,
                TARGET_LOOKUP_MS,
            )
        )

        def agg(kind: str, by: list[str], since: str, plan: str) -> Callable[[], object]:
            return lambda: aggregates.aggregate(store, kind, by=by, since=since, plan=plan)

        for label, kind, by, since in (
            ("latency by model, 24 h", "latency", ["model"], "24h"),
            ("cost by day, 30 d", "cost", ["day"], "30d"),
        ):
            raw = timed(agg(kind, by, since, "raw"), args.repeat)
            roll = timed(agg(kind, by, since, "rollup"), args.repeat)
            results.append((label, raw, roll, TARGET_AGG_MS))
        results.append(
            (
                "errors by model, 24 h",
                timed(agg("errors", ["model"], "24h", "raw"), args.repeat),
                None,
                TARGET_AGG_MS,
            )
        )

        rng = random.Random(1)
        _, id_rows = store.query(
            "SELECT lower(hex(MD5(toString(number)))) FROM numbers({n:UInt64}) ORDER BY rand() LIMIT 100",
            parameters={"n": max(1, spans // 4)},
        )
        ids = [r[0] for r in id_rows]
        try:
            from tracehouse_collector.query import trace_list, traces

            def lookup() -> object:
                return traces.get_trace(store, rng.choice(ids))

            def page() -> object:
                return trace_list.list_traces(store, since="24h", limit=50)

            results.append(
                ("trace lookup by id (get_trace)", timed(lookup, args.repeat * 3), None, TARGET_LOOKUP_MS)
            )
            results.append(
                ("traces list, one page of 50, 24 h", timed(page, args.repeat), None, TARGET_AGG_MS)
            )
            results += list_cases(store, args.repeat)
        except ImportError:
            print("(query/traces.py not available: trace lookup and list not timed)")

        in_process = _api_cases_in_process(store, ids, spans, args.repeat)
        print(f"{'query':<38} {'raw ms':>9} {'rollup ms':>10} {'raw/rollup':>11} {'target':>8}  ok")
        print("-" * 84)
        for label, raw, roll, target in results:
            best = min(x for x in (raw, roll) if x is not None)
            ratio = f"{raw / roll:10.1f}x" if raw and roll else f"{'':>11}"
            roll_s = f"{roll:10.1f}" if roll is not None else f"{'-':>10}"
            ok = "yes" if best < target else "NO"
            print(f"{label:<38} {raw:9.1f} {roll_s} {ratio} {'<' + str(target):>8}  {ok}")
        print(
            f"\n{spans:,} spans; median of {args.repeat} runs (trace lookup: {args.repeat * 3}, random ids) "
            "after one warm-up; 'ok' judges the faster plan, the one the planner picks for these ranges."
        )
        store.close()
        if not args.no_api:
            from bench.query import api

            api.report(api.measure(tmp, ids, spans, args.repeat, in_process), spans, args.repeat)
    finally:
        store.close()
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp + "-serve", ignore_errors=True)
    return 0


def _load(store: Store, path: str, spans: int) -> float:
    """Load `spans` generated spans into the store; returns the seconds taken."""
    now_s = int(time.time())
    print(f"loading {spans:,} spans over {DAYS} days into chdb://{path} ({os.cpu_count()} CPUs) ...", flush=True)
    t0 = time.perf_counter()
    for start in range(0, spans, CHUNK):
        store.command(load_sql(start, min(CHUNK, spans - start), now_s))
    return time.perf_counter() - t0


def list_cases(store: Store, repeat: int) -> list[tuple[str, float | None, float | None, int]]:
    """The traces list sorted, counted, faceted and searched (query/trace_list.py) and sessions
    sorted (query/sessions.py); the search must find the one trace whose prompt holds RARE_WORD
    (when the store holds that span)."""
    from tracehouse_collector.query import sessions, trace_list

    found = trace_list.list_traces(store, since="30d", search=RARE_WORD).records()
    _, rows = store.query("SELECT count() FROM otel_traces WHERE SpanAttributes['gen_ai.input.messages'] LIKE {w:String}",
                          parameters={"w": f"%{RARE_WORD}%"})  # fmt: skip
    assert len(found) == rows[0][0] <= 1, (len(found), rows[0][0])
    cases = (
        ("search: rare word, 30 d, a page", lambda: trace_list.list_traces(store, since="30d", search=RARE_WORD)),
        ("search: rare word, 30 d, count", lambda: trace_list.count_traces(store, since="30d", search=RARE_WORD)),
        ("search: 2 common words, 24 h, a page", lambda: trace_list.list_traces(store, since="24h", search="w17 w42")),
        ("sorted page: latency desc, 24 h", lambda: trace_list.list_traces(store, since="24h", sort="latency_ms")),
        ("sorted page: cost desc, 7 d", lambda: trace_list.list_traces(store, since="7d", sort="cost_usd")),
        ("traces count, 24 h", lambda: trace_list.count_traces(store, since="24h")),
        ("traces facets, 24 h", lambda: trace_list.trace_facets(store, since="24h")),
        ("sessions sorted by cost, 24 h", lambda: sessions.list_sessions(store, since="24h", sort="cost_usd")),
    )
    return [(label, timed(fn, repeat), None, TARGET_LIST_MS) for label, fn in cases]


def _api_cases_in_process(store: Store, ids: list[str], spans: int, repeat: int) -> dict[str, float]:
    """The API cases of bench/query/api.py called in-process (the query modules alone), by
    case name: the lookup, and latency/cost/errors by model over the window of the store's size."""
    from tracehouse_collector.query import traces

    from bench.query import api

    rng = random.Random(3)
    window = "24h" if spans >= api.LARGE_SPANS else "2h"
    out = {"lookup": timed(lambda: traces.get_trace(store, rng.choice(ids)), repeat * 3)}
    for kind in api.AGGREGATES:
        out[f"{kind} {window}"] = timed(
            lambda k=kind: aggregates.aggregate(store, k, by=["model"], since=window), repeat
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
