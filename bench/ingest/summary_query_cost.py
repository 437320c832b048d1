"""The CPU of trace_summary_mv's query alone, per variant of bench.ingest.store_cost (summary-*).

store_cost measures whole inserts, in a process per variant: on a busy machine their spread
hides differences of a few tenths of a CPU-s per 100k spans. Here each variant's query runs
over the same spans, held in a Memory table, in one thread and one process, the variants
interleaved round after round; the least CPU of the rounds is shown, with the median. What it
leaves out (writing trace_summary's parts, the insert itself) is the same for every variant.

With --inserts it times inserts instead: groups of 16 requests (8192 spans) inserted into a
Null table that only the variant's view reads (writing trace_summary), against no view at all:
the view's whole insert cost without that of otel_traces' own parts.

    python -m bench.ingest.summary_query_cost --variants summary-0011,summary-indexof
    python -m bench.ingest.summary_query_cost --inserts --variants summary-0011,summary-indexof
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.ingest import store_cost

SOURCE = f"{store_cost.DB}.{store_cost.TABLE}"
HELD = "bench_query.otel_traces"


def _query(variant: str) -> str:
    """The variant's view query (what follows `AS` in its CREATE), reading the held spans."""
    create = next(s for s in store_cost.VARIANTS[variant][0] if s.startswith("CREATE MATERIALIZED VIEW"))
    return create.split("\nAS ", 1)[1].replace(f"FROM {SOURCE}\n", f"FROM {HELD}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.ingest.summary_query_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=96, help="requests of 512 LLM spans (default 96)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--variants",
        default="summary-0011,summary-indexof,summary-content,summary-all_but_times",
        help="comma-separated summary-* variants of bench.ingest.store_cost",
    )
    parser.add_argument("--inserts", action="store_true", help="time inserts through each view, not queries")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracehouse-summary-query-"))
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    from chdb import session
    from tracehouse_collector.store import ddl

    store_cost.make_spool(work / "spool", args.requests, 512)
    sess = session.Session(str(work / "store"))
    for stmt in ddl.script():
        sess.query(stmt)
    sess.query("CREATE DATABASE bench_query")
    sess.query(f"CREATE TABLE {HELD} AS {SOURCE} ENGINE = Memory")
    # blocks of 8192 spans, as a merged insert hands the view
    sess.query(
        f"INSERT INTO {HELD} FROM INFILE '{work}/spool/*.otel_traces.jsonl' SETTINGS max_insert_block_size = 8192, "
        "min_insert_block_size_rows = 8192, min_insert_block_size_bytes = 0 FORMAT JSONEachRow"
    )
    spans = int(sess.query(f"SELECT count() FROM {HELD}", "CSV").bytes())
    if args.inserts:
        return _inserts(sess, work, args, spans)
    queries = {
        v: _query(v) + " SETTINGS max_threads = 1, max_block_size = 8192 FORMAT Null"
        for v in args.variants.split(",")
    }
    cpu: dict[str, list[float]] = {v: [] for v in queries}
    for _ in range(args.rounds):
        for v, q in queries.items():
            t = time.process_time()
            sess.query(q)
            cpu[v].append(time.process_time() - t)
    per = 100_000 / spans
    for v, ts in cpu.items():
        print(
            f"{v:<28} query {min(ts) * per:5.2f} CPU-s/100k spans (median {statistics.median(ts) * per:5.2f}, "
            f"{args.rounds} rounds, {spans} spans)",
            flush=True,
        )
    sess.close()
    return 0


def _inserts(sess, work: Path, args: argparse.Namespace, spans: int) -> int:
    null = "bench_query.spans_null"
    sess.query(f"CREATE TABLE {null} AS {SOURCE} ENGINE = Null")
    sess.query("SYSTEM STOP MERGES")
    groups = store_cost._groups(work / "spool", store_cost.TABLE, 16, work)
    views = {"no view": None}
    for v in args.variants.split(","):
        create = next(s for s in store_cost.VARIANTS[v][0] if s.startswith("CREATE MATERIALIZED VIEW"))
        views[v] = create.replace(f"{store_cost.DB}.trace_summary_mv", "bench_query.summary_mv").replace(
            f"FROM {SOURCE}\n", f"FROM {null}\n"
        )
    cpu: dict[str, list[float]] = {v: [] for v in views}
    n = 0
    for _ in range(args.rounds):
        for v, create in views.items():
            if create:
                sess.query(create)
            for g in groups:
                n += 1
                t = time.process_time()
                sess.query(
                    f"INSERT INTO {null} FROM INFILE '{g}/*.otel_traces.jsonl' SETTINGS "
                    f"insert_deduplication_token = 'g{n}' FORMAT JSONEachRow"
                )
                cpu[v].append(time.process_time() - t)
            sess.query("DROP VIEW IF EXISTS bench_query.summary_mv")
            sess.query(f"TRUNCATE TABLE {store_cost.DB}.trace_summary")
    per = 100_000 / (8192 if groups else spans)
    for v, ts in cpu.items():
        ts.sort()
        print(
            f"{v:<28} insert {ts[0] * per:5.2f} CPU-s/100k spans (quartile {ts[len(ts) // 4] * per:5.2f}, "
            f"median {statistics.median(ts) * per:5.2f}; {len(ts)} inserts of 8192)",
            flush=True,
        )
    sess.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
