"""What trace_span_docs_mv's documents cost ClickHouse, part by part (embedded chDB).

bench.ingest.store_cost measures the view inside whole inserts, where the other views, the
parsing and a loaded machine move the figures by a CPU-second per 100k spans. Here, in one
process, bench/ingest's LLM spans (encoded by the workers' pipeline) are held in a Memory
table and their documents made once; then, interleaved and repeated, it times (CPU of the
process per 100k spans):

- format: making the documents (the view's expression, or another --exprs one that must give
  the same text: rows that differ are reported);
- write: inserting the documents into trace_span_docs laid out one way (a TABLES entry), in
  8,192-row inserts with merges stopped, as the merged writer's inserts make parts;
- merge: merging those parts into one (OPTIMIZE ... FINAL).

    python -m bench.ingest.docs_cost --requests 96 --repeat 5
    python -m bench.ingest.docs_cost --tables 128k,1m,lz4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.ingest.store_cost import DOCS_FIELDS, DOCS_JSON, make_spool

DB = "tracehouse"
KEY = "PRIMARY KEY TraceId ORDER BY (TraceId, Timestamp, SpanId)"


def _settings(granules: int = 256, min_block: int = 128, max_block: int = 128, extra: str = "") -> str:
    return (
        f"index_granularity = {granules}, min_compress_block_size = {min_block << 10}, "
        f"max_compress_block_size = {max_block << 10}{extra}"
    )


# name -> (the Span column's codec, sort key, settings); "128k": as 0013 made it, "1m": as trace_span_docs_cost left it.
TABLES: dict[str, tuple[str, str, str]] = {
    "128k": ("ZSTD(3)", KEY, _settings()),
    "1m": ("ZSTD(3)", KEY, _settings(max_block=1024)),
    "1m_min1m": ("ZSTD(3)", KEY, _settings(min_block=1024, max_block=1024)),
    "256k": ("ZSTD(3)", KEY, _settings(min_block=256, max_block=256)),
    "512k": ("ZSTD(3)", KEY, _settings(min_block=512, max_block=512)),
    "zstd1": ("ZSTD(1)", KEY, _settings()),
    "lz4": ("LZ4", KEY, _settings()),
    "none": ("NONE", KEY, _settings()),
    "by_trace": ("ZSTD(3)", "ORDER BY TraceId", _settings()),
    "unsorted": ("ZSTD(3)", "ORDER BY tuple()", _settings()),
    "granules_8192": ("ZSTD(3)", KEY, _settings(granules=8192)),
    "vertical_merges": (
        "ZSTD(3)",
        KEY,
        _settings(
            extra=", vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1"
        ),
    ),
    "compact": ("ZSTD(3)", KEY, _settings(extra=", min_bytes_for_wide_part = 1000000000")),
}


def _exprs(store) -> dict[str, str]:
    """The view's expression, and the same document as toJSONString of a named tuple (the
    names and types DESCRIBE gives for the view's fields)."""
    fields = store.query(f"DESCRIBE (SELECT {DOCS_FIELDS} FROM {DB}.spans_mem)")[1]
    values = ", ".join(f.rsplit(" AS ", 1)[0].strip() for f in DOCS_FIELDS.replace("\n", " ").split(", "))
    names = ", ".join(f"`{row[0]}` {row[1]}" for row in fields)
    return {"formatRow": DOCS_JSON, "toJSONString": f"toJSONString(CAST(tuple({values}), 'Tuple({names})'))"}


def main(argv: list[str] | None = None) -> int:
    from tracehouse_collector.store.client import Store

    parser = argparse.ArgumentParser(prog="bench.ingest.docs_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=96, help="requests of 512 LLM spans (default 96)")
    parser.add_argument("--tables", default="128k,1m", help=f"comma-separated, of: {', '.join(TABLES)}")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs; min and median shown")
    parser.add_argument("--work", help="working directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="tracehouse-docs-cost-"))
    spool = work / "spool"
    if not spool.exists():
        make_spool(spool, args.requests, 512)
    store = Store(f"chdb://{tempfile.mkdtemp(prefix='store-', dir=work)}")
    store.migrate()
    store.command(f"CREATE TABLE {DB}.spans_mem AS {DB}.otel_traces ENGINE = Memory")
    store.command(f"INSERT INTO {DB}.spans_mem FROM INFILE '{spool}/*.otel_traces.jsonl' FORMAT JSONEachRow")
    store.command(
        f"CREATE TABLE {DB}.docs_mem ENGINE = Memory AS "
        f"SELECT TraceId, Timestamp, SpanId, {DOCS_JSON} AS Span FROM {DB}.spans_mem"
    )
    n, doc_bytes = store.query(f"SELECT count(), avg(length(Span)) FROM {DB}.docs_mem")[1][0]
    per = 100_000 / n
    print(f"{n} spans, documents of {doc_bytes:.0f} bytes on average")
    exprs = _exprs(store)
    for name, expr in exprs.items():
        differ = store.query(f"SELECT count() FROM {DB}.spans_mem WHERE ({expr}) != ({DOCS_JSON})")[1][0][0]
        if differ:
            print(f"{name}: {differ} documents differ from the view's")
    cpu: dict[str, list[float]] = {}
    disk: dict[str, float] = {}

    def timed(key: str, sql: str) -> None:
        t0 = time.process_time()
        store.query(sql) if sql.startswith("SELECT") else store.command(sql)
        cpu.setdefault(key, []).append((time.process_time() - t0) * per)

    one_thread = "SETTINGS max_block_size = 8192, max_threads = 1"
    for r in range(args.repeat):
        # alternate the order of the expressions, so that neither always runs first
        for name, expr in list(exprs.items())[:: 1 if r % 2 else -1]:
            timed(f"format {name}", f"SELECT sum(length({expr})) FROM {DB}.spans_mem {one_thread}")
        for name in filter(None, args.tables.split(",")):
            codec, key, settings = TABLES[name]
            table = f"{DB}.docs_{name}"
            store.command(
                f"CREATE TABLE {table} (TraceId String CODEC(ZSTD(1)), "
                "Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)), SpanId String CODEC(ZSTD(1)), "
                f"Span String CODEC({codec})) ENGINE = MergeTree PARTITION BY toYYYYMM(Timestamp) {key} "
                f"SETTINGS {settings}"
            )
            store.command(f"SYSTEM STOP MERGES {table}")
            timed(
                f"write {name}",
                f"INSERT INTO {table} SELECT * FROM {DB}.docs_mem {one_thread}, "
                "min_insert_block_size_rows = 8192, max_insert_block_size = 8192",
            )
            store.command(f"SYSTEM START MERGES {table}")
            timed(f"merge {name}", f"OPTIMIZE TABLE {table} FINAL")
            disk[name] = (
                store.query(
                    f"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{DB}' "
                    f"AND table = 'docs_{name}' AND active"
                )[1][0][0]
                / n
            )
            store.command(f"DROP TABLE {table} SYNC")
    for key, values in cpu.items():
        name = key.split(" ", 1)[1]
        extra = f"  {disk[name]:.0f} bytes/span on disk" if key.startswith("merge") else ""
        print(
            f"{key:<26} CPU-s/100k spans: min {min(values):.2f}  median {statistics.median(values):.2f}"
            f"  runs {[round(v, 2) for v in values]}{extra}"
        )
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
