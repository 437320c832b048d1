"""A SQL result into pandas: tracehouse.Client (Arrow IPC written by ClickHouse) against the
REST JSON answer a user would otherwise parse (`requests` + pandas).

One collector on an empty store answers a generated statement of N rows with the column types
of span data (UInt64, DateTime64(9), String, Decimal64(12), Float64). Each way runs `--rounds`
times, interleaved; printed: the median seconds from request to DataFrame, the bytes on the
wire, and the ratio. The JSON way is timed twice: the DataFrame as JSON leaves it (times and
costs as text), and with the types the client gives (datetime64 UTC, exact Decimal).

    make bench-client                       # 1,000,000 rows
    make bench-client ARGS="--rows 200000"
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bench.runs.run import start_collector

STATEMENT = (
    "SELECT number AS id, toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalNanosecond(number * 1000) AS ts, "
    "concat('span-', toString(number % 1000)) AS name, number % 4096 AS tokens, "
    "toDecimal64(number % 1000, 12) / 1000000 AS cost_usd, number / 7 AS latency_ms FROM numbers({rows})"
)


def _client_frame(url: str, statement: str):  # type: ignore[no-untyped-def]
    import tracehouse

    return tracehouse.Client(url).sql(statement)


def _json_frame(url: str, statement: str, typed: bool):  # type: ignore[no-untyped-def]
    import pandas as pd
    import requests

    answer = requests.post(f"{url}/api/v1/sql", json={"sql": statement}, timeout=600)
    answer.raise_for_status()
    body = answer.json()
    frame = pd.DataFrame(body["rows"], columns=body["columns"])
    if typed:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frame["cost_usd"] = [Decimal(v) for v in frame["cost_usd"]]
    return frame, len(answer.content)


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["TRACEHOUSE_SQL_MAX_ROWS"] = str(args.rows)  # the default limit is 100,000 rows
    data_dir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-client-"))
    proc, url = start_collector(data_dir)
    statement = STATEMENT.format(rows=args.rows)
    times: dict[str, list[float]] = {"client (Arrow)": [], "JSON, untyped": [], "JSON, typed": []}
    try:
        import pyarrow as pa
        import requests

        arrow_bytes = len(
            requests.post(f"{url}/api/v1/sql?format=arrow", json={"sql": statement}, timeout=600).content
        )
        _client_frame(url, STATEMENT.format(rows=10))  # imports and first connection, untimed
        _json_frame(url, STATEMENT.format(rows=10), typed=True)
        for _ in range(args.rounds):
            seconds, frame = _timed(lambda: _client_frame(url, statement))
            assert len(frame) == args.rows
            times["client (Arrow)"].append(seconds)
            for typed, label in ((False, "JSON, untyped"), (True, "JSON, typed")):
                seconds, (frame, json_bytes) = _timed(lambda typed=typed: _json_frame(url, statement, typed))
                assert len(frame) == args.rows
                times[label].append(seconds)
        base = statistics.median(times["client (Arrow)"])
        print(f"{args.rows:,} rows, 6 columns, median of {args.rounds} (pyarrow {pa.__version__})")
        print(f"{'way':<16}{'seconds':>10}{'vs client':>12}{'MB on the wire':>17}")
        for label, values in times.items():
            wire = arrow_bytes if label.startswith("client") else json_bytes
            median = statistics.median(values)
            print(f"{label:<16}{median:>10.2f}{median / base:>11.1f}x{wire / 1e6:>17.1f}")
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0
