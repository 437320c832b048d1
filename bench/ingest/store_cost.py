"""Where ClickHouse's CPU goes when the collector inserts spans (embedded chDB).

The collector's workers encode bench.ingest's LLM spans into spool files exactly as they do
in service; each variant then inserts those files into a fresh, migrated store, in groups of
a given number of requests (one insert each, as the merged writer does), with merges stopped,
and reports the CPU of the process (chDB runs in it) per 100k spans. A variant changes one
thing: a materialized view or skip index dropped, a MATERIALIZED column made plain, another
input format, a Null table (parsing only), other codecs. Merges are measured afterwards, by
letting them run to completion.

    python -m bench.ingest.store_cost                      # the default variants
    python -m bench.ingest.store_cost --variants baseline,bare,null --groups 16,192

Each variant runs in a process of its own (chDB opens one store per process). Small sizes:
about 3 s of CPU per variant and 100k spans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB = "tracehouse"
TABLE = "otel_traces"

# Materialized views that read otel_traces (dropping llm_usage_1m_mv also idles llm_usage_1h_mv).
TRACE_VIEWS = [
    "trace_index_mv",
    "otel_traces_trace_id_ts_mv",
    "trace_summary_mv",
    "llm_usage_1m_mv",
    "llm_usage_1h_mv",
    "otel_scores_from_spans_mv",
    "trace_span_docs_mv",
]
SKIP_INDEXES = [
    "idx_trace_id",
    "idx_res_attr_key",
    "idx_res_attr_value",
    "idx_span_attr_key",
    "idx_duration",
    "idx_genai_model",
    "idx_run_id",
    "idx_session_id",
]
TEXT_INDEX = "idx_content_text"
MATERIALIZED = ["ErrorType", "TimeToFirstTokenMs"]


def _drop_views(views: list[str]) -> list[str]:
    return [f"DROP VIEW {DB}.{v}" for v in views]


def _drop_indexes(names: list[str]) -> list[str]:
    return [f"ALTER TABLE {DB}.{TABLE} DROP INDEX {n}" for n in names]


def _plain_columns() -> list[str]:
    return [f"ALTER TABLE {DB}.{TABLE} MODIFY COLUMN {c} REMOVE MATERIALIZED" for c in MATERIALIZED]


# trace_span_docs (migration 13) rebuilt with one thing changed, to see what its view costs:
# the document's expression, the table's sort key, granules, codec, block size or engine.
# DOCS_SETTINGS: the table's settings as migrated (0013, then trace_span_docs_cost's 1 MiB blocks).
def _docs_fields() -> str:
    """The document's fields as migration 0013's view names them (read from the file)."""
    from importlib import resources

    sql = (
        resources.files("tracehouse_collector.store")
        .joinpath("migrations/0013_trace_span_docs.sql")
        .read_text()
    )
    return sql.split("formatRowNoNewline('JSONEachRow',", 1)[1].split(") AS Span", 1)[0].strip()


DOCS_FIELDS = _docs_fields()
DOCS_JSON = f"formatRowNoNewline('JSONEachRow', {DOCS_FIELDS})"
DOCS_SETTINGS = "index_granularity = 256, min_compress_block_size = 131072, max_compress_block_size = 1048576"


def _docs(
    span: str = DOCS_JSON,
    order: str = "PRIMARY KEY TraceId ORDER BY (TraceId, Timestamp, SpanId)",
    settings: str = DOCS_SETTINGS,
    codec: str = "ZSTD(3)",
    engine: str = "MergeTree PARTITION BY toYYYYMM(Timestamp)",
) -> list[str]:
    table = f"{DB}.trace_span_docs"
    return [
        f"DROP VIEW {DB}.trace_span_docs_mv",
        f"DROP TABLE {table}",
        f"CREATE TABLE {table} (TraceId String CODEC(ZSTD(1)), Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)), "
        f"SpanId String CODEC(ZSTD(1)), Span String CODEC({codec})) ENGINE = {engine}"
        + ("" if engine == "Null" else f" {order} SETTINGS {settings}"),
        f"CREATE MATERIALIZED VIEW {DB}.trace_span_docs_mv TO {table} AS SELECT TraceId, Timestamp, SpanId, "
        f"{span} AS Span FROM {DB}.{TABLE} WHERE TraceId != ''",
    ]


# trace_summary_mv's cost, column by column: the view re-created (from migration 11's own text)
# with some of its columns made constants of their type, or its model regex left out.
SUMMARY_VIEW = "trace_summary_mv"
SUMMARY_CONSTANTS = {
    "Errors": "toUInt64(0)",
    "LlmCalls": "toUInt64(0)",
    "InputTokens": "toUInt64(0)",
    "OutputTokens": "toUInt64(0)",
    "TotalTokens": "toUInt64(0)",
    "CostUSD": "toDecimal128(0, 12)",
    "Facets": "CAST([], 'Array(Tuple(String, String))')",
    "SessionLast": "CAST(([], []), 'Tuple(Array(String), Array(Int64))')",
    "Root": "CAST((0, 0, '', ''), 'Tuple(UInt8, DateTime64(9), String, String)')",
    "Models": "CAST([], 'Array(String)')",
    "Input": "(toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), '')",
    "Output": "(toInt64(0), '')",
    "FirstError": "(toDateTime64('2262-04-11 00:00:00', 9, 'UTC'), '')",
}
MODEL_REGEX = (
    "replaceRegexpOne(if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel), "
    "'[-@]([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])\\\\z', '')"
)


def _summary_view_sql() -> str:
    from tracehouse_collector.store import ddl

    migration = next(m for m in ddl.migrations() if m.file == "0011_trace_summary.sql")
    return next(s for s in migration.statements() if s.startswith("CREATE MATERIALIZED VIEW"))


def _split_select(sql: str) -> tuple[str, list[str], str]:
    """(`CREATE ... AS SELECT`, its columns, `FROM ...`), columns split at top-level commas."""
    head, _, rest = sql.partition("AS SELECT")
    body, _, tail = rest.rpartition("\nFROM ")
    cols, depth, quoted, cur = [], 0, False, ""
    for i, ch in enumerate(body):
        if quoted:
            quoted = not (ch == "'" and body[i - 1] != "\\")
        elif ch == "'":
            quoted = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            cols.append(cur.strip())
            cur = ""
            continue
        cur += ch
    cols.append(cur.strip())
    return head + "AS SELECT", cols, "FROM " + tail


def _summary_partial(constant: list[str], no_regex: bool = False) -> list[str]:
    """trace_summary_mv re-created with the named columns constant (and without its regex)."""
    head, cols, tail = _split_select(_summary_view_sql())
    out = []
    for col in cols:
        name = col.rsplit(" AS ", 1)[-1]
        out.append(f"{SUMMARY_CONSTANTS[name]} AS {name}" if name in constant else col)
    sql = f"{head}\n    " + ",\n    ".join(out) + f"\n{tail}"
    if no_regex:
        if MODEL_REGEX not in sql:  # else the variant would measure the view with its regex
            raise ValueError("trace_summary_mv's model regex not found")
        sql = sql.replace(MODEL_REGEX, "if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel)")
    return [f"DROP VIEW {DB}.{SUMMARY_VIEW}", sql]


def _summary_indexof() -> list[str]:
    """trace_summary_mv as migration 14 left it (each content text found by key index: the same
    rows as migration 11's view, tests/collector/store/test_trace_summary_view.py), re-created
    from that migration's own query."""
    from tracehouse_collector.store import ddl

    migration = next(m for m in ddl.migrations() if m.file == "0014_trace_summary_view_cost.sql")
    query = next(s for s in migration.statements() if "MODIFY QUERY" in s).split("MODIFY QUERY", 1)[1]
    head = _summary_view_sql().partition("AS SELECT")[0]  # CREATE MATERIALIZED VIEW ... TO ...
    return [f"DROP VIEW {DB}.{SUMMARY_VIEW}", f"{head}AS {query.strip()}"]


SUMMARY_PARTS = {
    "content": ["Input", "Output"],
    "input": ["Input"],
    "output": ["Output"],
    "facets": ["Facets"],
    "session_last": ["SessionLast"],
    "models": ["Models"],
    "root": ["Root"],
    "first_error": ["FirstError"],
    "sums": ["Errors", "LlmCalls", "InputTokens", "OutputTokens", "TotalTokens", "CostUSD"],
    # what is left: the GROUP BY with Hour, Start, End and Spans
    "all_but_times": list(SUMMARY_CONSTANTS),
}


BARE = _drop_views(TRACE_VIEWS) + _drop_indexes([*SKIP_INDEXES, TEXT_INDEX]) + _plain_columns()

# name -> (statements run after migrating, target table, input format)
VARIANTS: dict[str, tuple[list[str], str, str]] = {
    "baseline": ([], TABLE, "JSONEachRow"),
    **{f"-{v}": (_drop_views([v]), TABLE, "JSONEachRow") for v in TRACE_VIEWS},
    "-all_views": (_drop_views(TRACE_VIEWS), TABLE, "JSONEachRow"),
    f"-{TEXT_INDEX}": (_drop_indexes([TEXT_INDEX]), TABLE, "JSONEachRow"),
    "-skip_indexes": (_drop_indexes(SKIP_INDEXES), TABLE, "JSONEachRow"),
    **{f"-{i}": (_drop_indexes([i]), TABLE, "JSONEachRow") for i in SKIP_INDEXES},
    "-materialized_cols": (_plain_columns(), TABLE, "JSONEachRow"),
    "bare": (BARE, TABLE, "JSONEachRow"),
    "bare_lz4": (
        [*BARE, "__codec LZ4"],
        TABLE,
        "JSONEachRow",
    ),
    "bare_nocodec": ([*BARE, "__codec NONE"], TABLE, "JSONEachRow"),
    "null": ([f"CREATE TABLE {DB}.spans_null AS {DB}.{TABLE} ENGINE = Null"], "spans_null", "JSONEachRow"),
    "null_native": ([f"CREATE TABLE {DB}.spans_null AS {DB}.{TABLE} ENGINE = Null"], "spans_null", "Native"),
    "null_rowbinary": (
        [f"CREATE TABLE {DB}.spans_null AS {DB}.{TABLE} ENGINE = Null"],
        "spans_null",
        "RowBinary",
    ),
    "null_arrow": (
        [f"CREATE TABLE {DB}.spans_null AS {DB}.{TABLE} ENGINE = Null"],
        "spans_null",
        "ArrowStream",
    ),
    "bare_native": (BARE, TABLE, "Native"),
    "baseline_native": ([], TABLE, "Native"),
    "baseline_rowbinary": ([], TABLE, "RowBinary"),
    "baseline_arrow": ([], TABLE, "ArrowStream"),
    "bare_arrow": (BARE, TABLE, "ArrowStream"),
    # New parts of otel_traces under 131072 rows written compact (19 files) instead of wide (~200).
    "compact_parts": (
        [f"ALTER TABLE {DB}.{TABLE} MODIFY SETTING min_rows_for_wide_part = 131072"],
        TABLE,
        "JSONEachRow",
    ),
    # trace_span_docs_mv's cost by part (_docs): "docs_same" is the view rebuilt as migrated.
    "docs_same": (_docs(), TABLE, "JSONEachRow"),
    "docs_null": (_docs(engine="Null"), TABLE, "JSONEachRow"),  # the documents made, not stored
    "docs_empty": (_docs(span="''"), TABLE, "JSONEachRow"),  # stored rows, without the document
    "docs_by_trace": (_docs(order="ORDER BY TraceId"), TABLE, "JSONEachRow"),
    "docs_granules_8192": (
        _docs(settings=DOCS_SETTINGS.replace("index_granularity = 256", "index_granularity = 8192")),
        TABLE,
        "JSONEachRow",
    ),
    "docs_zstd1": (_docs(codec="ZSTD(1)"), TABLE, "JSONEachRow"),
    "docs_lz4": (_docs(codec="LZ4"), TABLE, "JSONEachRow"),
    # as 0013 migrated it (128 KiB compressed blocks; docs_same has trace_span_docs_cost's 1 MiB)
    "docs_blocks_128k": (
        _docs(
            settings=DOCS_SETTINGS.replace(
                "max_compress_block_size = 1048576", "max_compress_block_size = 131072"
            )
        ),
        TABLE,
        "JSONEachRow",
    ),
    "docs_default_blocks": (_docs(settings="index_granularity = 256"), TABLE, "JSONEachRow"),
    "docs_compact": (
        _docs(settings=DOCS_SETTINGS + ", min_bytes_for_wide_part = 1000000000"),
        TABLE,
        "JSONEachRow",
    ),
    # trace_summary_mv without some of its columns (computed as constants) or without its regex.
    **{f"summary-{k}": (_summary_partial(v), TABLE, "JSONEachRow") for k, v in SUMMARY_PARTS.items()},
    "summary-regex": (_summary_partial([], no_regex=True), TABLE, "JSONEachRow"),
    # the view as migration 11 made it, and its content found by key index (the same rows)
    "summary-0011": (_summary_partial([]), TABLE, "JSONEachRow"),
    "summary-indexof": (_summary_indexof(), TABLE, "JSONEachRow"),
}
# Variants that change only the insert's settings: name -> (base variant, settings).
SETTINGS_VARIANTS: dict[str, tuple[str, dict]] = {
    "serial_parsing": ("baseline", {"input_format_parallel_parsing": 0}),
    "null_serial_parsing": ("null", {"input_format_parallel_parsing": 0}),
    "no_view_dedup": ("baseline", {"deduplicate_blocks_in_dependent_materialized_views": 0}),
    "no_optimize_on_insert": ("baseline", {"optimize_on_insert": 0}),
    "parallel_views": ("baseline", {"parallel_view_processing": 1}),
}
DEFAULT_VARIANTS = [
    "baseline",
    *[f"-{v}" for v in TRACE_VIEWS],
    "-all_views",
    f"-{TEXT_INDEX}",
    "-skip_indexes",
    "-materialized_cols",
    "bare",
    "bare_lz4",
    "bare_nocodec",
    "null",
    "null_native",
    "null_rowbinary",
    "baseline_native",
]
EXT = {"JSONEachRow": "jsonl", "Native": "native", "RowBinary": "rowbinary", "ArrowStream": "arrows"}


def make_spool(directory: Path, requests: int, spans: int) -> float:
    """Encode bench.ingest's requests with the collector's own pipeline; returns its CPU-s."""
    from tracehouse_collector.processors.pipeline import process

    from bench.ingest.run import build_requests

    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    for body in build_requests(requests, spans):
        process("traces", body, "application/x-protobuf", "", 256 << 20, 1 << 20, str(directory), fsync=False)
    return time.process_time() - t0


def _groups(spool: Path, table: str, per_insert: int, work: Path) -> list[Path]:
    """Directories of `per_insert` requests' files each (hard links), as a merged batch has."""
    files = sorted(spool.glob(f"*.{table}.jsonl"))
    out = []
    for g in range(len(files) // per_insert):
        d = work / f"{table}-{per_insert}-{g:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for f in files[g * per_insert : (g + 1) * per_insert]:
            os.link(f, d / f.name)
        out.append(d)
    return out


def _with_codec(store, codec: str) -> None:
    """Re-create otel_traces with every column's codec replaced (measuring only)."""
    cols = store.query(
        f"SELECT name, type FROM system.columns WHERE database = '{DB}' AND table = '{TABLE}' ORDER BY position"
    )[1]
    defs = ", ".join(f"`{n}` {t} CODEC({codec})" for n, t in cols)
    key = store.query(
        f"SELECT partition_key, sorting_key FROM system.tables WHERE database='{DB}' AND name='{TABLE}'"
    )[1][0]
    store.command(f"DROP TABLE {DB}.{TABLE}")
    store.command(
        f"CREATE TABLE {DB}.{TABLE} ({defs}) ENGINE = MergeTree PARTITION BY {key[0]} ORDER BY ({key[1]}) "
        "SETTINGS index_granularity = 8192"
    )


def _convert(store, groups: list[Path], fmt: str) -> list[str]:
    """The groups' JSON rows re-encoded by ClickHouse in `fmt`, one file per group."""
    cols = store.query(
        f"SELECT name, type FROM system.columns WHERE database = '{DB}' AND table = '{TABLE}' "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position"
    )[1]
    structure = ", ".join(f"`{n}` {t}" for n, t in cols)
    out = []
    for d in groups:
        target = str(d) + "." + EXT[fmt]
        if not os.path.exists(target):
            store.command(
                f"INSERT INTO FUNCTION file('{target}', '{fmt}', '{structure}') "
                f"SELECT * FROM file('{d}/*.jsonl', 'JSONEachRow', '{structure}')"
            )
        out.append(target)
    return out


def child(args: argparse.Namespace) -> dict:
    from tracehouse_collector.store.client import Store

    base, settings = SETTINGS_VARIANTS.get(args.variant, (args.variant, {}))
    statements, target, fmt = VARIANTS[base]
    store_dir = Path(tempfile.mkdtemp(prefix="store-", dir=args.work))
    store = Store(f"chdb://{store_dir}")
    store.migrate()
    for sql in statements:
        if sql.startswith("__codec "):
            _with_codec(store, sql.split(" ", 1)[1])
        else:
            store.command(sql)
    groups = sorted(Path(args.work).glob(f"{TABLE}-{args.per_insert}-*[0-9]"))
    paths = [f"{d}/*.{TABLE}.jsonl" for d in groups] if fmt == "JSONEachRow" else _convert(store, groups, fmt)
    store.command("SYSTEM STOP MERGES")
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for i, path in enumerate(paths):
        store.insert_files(target, path, fmt, f"bench-{i}", settings)
    insert_cpu, insert_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    rows = int(store.query(f"SELECT count() FROM {DB}.{target}")[1][0][0]) if target == TABLE else -1
    parts = int(store.query(f"SELECT count() FROM system.parts WHERE database='{DB}' AND active")[1][0][0])
    # Merges: let them run (as they would in service) until none is left to do.
    store.command("SYSTEM START MERGES")
    t_cpu = time.process_time()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = store.query("SELECT count() FROM system.merges")[1][0][0]
        if not busy:
            time.sleep(1.0)
            if not store.query("SELECT count() FROM system.merges")[1][0][0]:
                break
        time.sleep(0.2)
    merge_cpu = time.process_time() - t_cpu
    parts_after = int(
        store.query(f"SELECT count() FROM system.parts WHERE database='{DB}' AND active")[1][0][0]
    )
    t_cpu = time.process_time()
    if target == TABLE:
        store.command(f"OPTIMIZE TABLE {DB}.{target} FINAL")
    optimize_cpu = time.process_time() - t_cpu
    disk = int(
        store.query(
            f"SELECT sum(bytes_on_disk) FROM system.parts WHERE database='{DB}' AND table='{TABLE}' AND active"
        )[1][0][0]
        or 0
    )
    # The store is removed by the parent at the end: files deleted in the last ~35 s make
    # creating files slower on ext4 (find_inode_bit skips recently deleted inodes), which would
    # charge one variant for the clean-up of the one before.
    store.close()
    return {
        "variant": args.variant,
        "per_insert_requests": args.per_insert,
        "inserts": len(paths),
        "rows": rows,
        "insert_cpu_s": round(insert_cpu, 3),
        "insert_wall_s": round(insert_wall, 3),
        "parts_before_merge": parts,
        "merge_cpu_s": round(merge_cpu, 3),
        "parts_after_merge": parts_after,
        "optimize_final_cpu_s": round(optimize_cpu, 3),
        "otel_traces_bytes": disk,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest.store_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=192, help="requests of 512 LLM spans to encode (default 192)"
    )
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument(
        "--groups", default="16", help="requests per insert, comma-separated (default 16 = 8192 spans)"
    )
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated; see VARIANTS"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each variant, interleaved; the least CPU is shown"
    )
    parser.add_argument("--work", help="working directory (default: a new temporary one, removed after)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--per-insert", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(child(args)))
        return 0
    keep = bool(args.work)
    work = Path(args.work or tempfile.mkdtemp(prefix="tracehouse-store-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    spool = work / "spool"
    if not spool.exists():
        cpu = make_spool(spool, args.requests, args.spans)
        print(
            f"encoded {args.requests} requests in {cpu:.1f} CPU-s (workers' pipeline, one process)",
            file=sys.stderr,
        )
    results = []
    try:
        for per_insert in [int(g) for g in args.groups.split(",")]:
            if not list(work.glob(f"{TABLE}-{per_insert}-*[0-9]")):
                _groups(spool, TABLE, per_insert, work)
            runs: dict[str, list[dict]] = {}
            for variant in [v for _ in range(args.repeat) for v in args.variants.split(",")]:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.ingest.store_cost",
                        f"--variant={variant}",
                        "--per-insert",
                        str(per_insert),
                        "--work",
                        str(work),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode:
                    print(f"{variant}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                runs.setdefault(variant, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            for rs in runs.values():
                r = min(rs, key=lambda r: r["insert_cpu_s"])
                r["insert_cpu_s_all"] = [x["insert_cpu_s"] for x in rs]
                r["merge_cpu_s"] = min(x["merge_cpu_s"] for x in rs)
                results.append(r)
                r["spans_per_request"] = args.spans
                if not args.json:
                    _print_row(r)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        for store_dir in work.glob("store-*"):
            shutil.rmtree(store_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _print_row(r: dict) -> None:
    rows_per_insert = r["per_insert_requests"] * r["spans_per_request"]
    n = r["inserts"] * rows_per_insert
    per = 100_000 / n if n else 0
    print(
        f"{r['variant']:<30} {rows_per_insert:>7} rows/insert  insert {r['insert_cpu_s'] * per:6.2f} CPU-s/100k "
        f"(wall {r['insert_wall_s'] * per:5.2f})  merges {r['merge_cpu_s'] * per:5.2f}  parts {r['parts_before_merge']}->{r['parts_after_merge']}  "
        f"disk {r['otel_traces_bytes'] / 1e6:.0f} MB  runs {r['insert_cpu_s_all']}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
