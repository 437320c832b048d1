"""Run-logging benchmark.

1. Overhead: the same small training loop (a numpy MLP, forward + backward + update per step)
   run with and without `run.log_metric` on every step, interleaved over several rounds, while
   the SDK's transport really sends to a local collector. Printed: wall and CPU seconds of the
   training process (its SDK thread included), their ratios, and the CPU cost per point, which
   says what the overhead is for a loop of any other step time.
2. Throughput: points logged as fast as the SDK takes them, timed from the first point until
   every point is queryable in the collector (points/s end to end).
3. Reads: runs list, list --where, compare of 50 runs, one metric's history and show, on an
   embedded store generated with 200 runs and 20,000,000 points (medians of 5).

    make bench-runs                              # 100,000 steps, 1,000,000 points
    make bench-runs ARGS="--steps 20000 --points 200000"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

LONG_HISTORY = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sql(http: str, query: str) -> list[list]:
    req = urllib.request.Request(
        f"{http}/api/v1/sql",
        data=json.dumps({"sql": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["rows"]


def start_collector(data_dir: Path) -> tuple[subprocess.Popen, str]:
    grpc_port, http_port = free_port(), free_port()
    http = f"http://127.0.0.1:{http_port}"
    cmd = [
        sys.executable, "-m", "tracehouse_collector", "serve", "--data-dir", str(data_dir),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port),
    ]  # fmt: skip
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - the collector writes it until the end
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{http}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, http
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit(f"collector did not start; see {data_dir / 'serve.log'}")
        time.sleep(0.2)


def training_loop(steps: int, run=None) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """A small model trained with plain numpy: a 32-128-1 MLP, batch 64, forward, backward and an
    SGD update per step, the loss logged every step when given a run. Returns (wall s, CPU s)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32))
    y = np.tanh(x @ rng.standard_normal(32))[:, None]
    w1 = rng.standard_normal((32, 128)) * 0.1
    w2 = rng.standard_normal((128, 1)) * 0.1
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        h = np.maximum(x @ w1, 0.0)
        err = h @ w2 - y
        grad_w2 = h.T @ err / 64
        grad_w1 = x.T @ ((err @ w2.T) * (h > 0)) / 64
        w1 -= 0.01 * grad_w1
        w2 -= 0.01 * grad_w2
        loss = float((err * err).mean())  # computed either way: only the logging differs
        if run is not None:
            run.log_metric("loss", loss, step=step)
    return time.perf_counter() - t0, time.process_time() - c0


def overhead(steps: int, rounds: int) -> dict:
    import tracehouse

    base, logged, base_cpu, logged_cpu = [], [], [], []
    for _ in range(rounds):
        wall, cpu = training_loop(steps)
        base.append(wall)
        base_cpu.append(cpu)
        with tracehouse.run(experiment="bench-overhead") as run:
            wall, cpu = training_loop(steps, run)
        logged.append(wall)
        logged_cpu.append(cpu)  # this process, the SDK's background thread included
    b, w = statistics.median(base), statistics.median(logged)
    bc, wc = statistics.median(base_cpu), statistics.median(logged_cpu)
    return {
        "steps": steps,
        "rounds": rounds,
        "baseline_s": b,
        "with_logging_s": w,
        "ratio": w / b,
        "baseline_cpu_s": bc,
        "with_logging_cpu_s": wc,
        "cpu_ratio": wc / bc,
        "cpu_us_per_point": (wc - bc) / steps * 1e6,
        "step_us": b / steps * 1e6,
    }


def cost_per_point(points: int) -> dict:
    """CPU per logged point on each side: the caller's thread (log_metric) and the SDK's thread
    (queue -> OTLP -> spool file -> POST), each measured with its own thread CPU clock."""
    import tracehouse
    from tracehouse import _run_transport

    transport = _run_transport.get()
    with tracehouse.run(experiment="bench-cost") as run:
        cpu0, spooled0, thread0 = time.thread_time(), transport.points_spooled, transport.thread_cpu_s
        for step in range(points):
            run.log_metric("loss", 0.5, step=step)
        caller = time.thread_time() - cpu0
    run.flush(600)
    return {
        "points": points,
        "caller_us_per_point": caller / points * 1e6,
        "sdk_thread_us_per_point": (transport.thread_cpu_s - thread0)
        / max(1, transport.points_spooled - spooled0)
        * 1e6,
    }


def throughput(points: int, http: str) -> dict:
    import tracehouse

    t0 = time.perf_counter()
    with tracehouse.run(experiment="bench-throughput") as run:
        for step in range(points):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    logged_at = time.perf_counter()
    run.flush(600)
    sent_at = time.perf_counter()
    while True:
        n = int(
            _sql(http, f"SELECT count() FROM run_metrics WHERE RunId = '{run.id}' AND Key = 'loss'")[0][0]
        )
        if n >= points:
            break
        if time.perf_counter() - sent_at > 120:
            raise SystemExit(f"only {n} of {points} points became queryable")
        time.sleep(0.05)
    done = time.perf_counter()
    return {
        "points": points,
        "log_calls_s": logged_at - t0,
        "end_to_end_s": done - t0,
        "points_per_s": points / (done - t0),
        "stored": n,
    }


def queries(n_runs: int, n_points: int, repeats: int = 5) -> dict:
    """Read times on a generated store: n_runs runs, 10 params and 10 metric keys each, n_points
    points in all (INSERT ... SELECT FROM numbers(), through the real tables and view)."""
    from tracehouse_collector.query import runs as q
    from tracehouse_collector.store.client import Store

    folder = Path(tempfile.mkdtemp(prefix="tracehouse-bench-runs-q-"))
    store = Store(f"chdb://{folder}")
    try:
        store.migrate()
        run_id = f"lower(hex(MD5(toString(number % {n_runs}))))"
        t0 = time.perf_counter()
        store.command(
            "INSERT INTO tracehouse.runs (RunId, Experiment, Name, Status, StartTime, EndTime, Version) "
            f"SELECT {run_id}, 'scale', concat('run-', toString(number)), 'finished', now64(9) - number, "
            f"now64(9), 1 FROM numbers({n_runs})"
        )
        store.command(
            "INSERT INTO tracehouse.run_params (RunId, Key, Value, Type, Version) "
            f"SELECT {run_id}, concat('p', toString(intDiv(number, {n_runs}))), toString(number / {n_runs * 10}), "
            f"'float', 1 FROM numbers({n_runs * 10})"
        )
        store.command(
            "INSERT INTO tracehouse.run_metrics (RunId, Key, Step, Value, Timestamp) "
            f"SELECT {run_id}, concat('m', toString(intDiv(number, {n_runs}) % 10)), intDiv(number, {n_runs * 10}), "
            f"rand() / 4294967296, now64(9) FROM numbers({n_points})"
        )
        # One long history for the chart read: 100,000 steps of a single key.
        store.command(
            "INSERT INTO tracehouse.run_metrics (RunId, Key, Step, Value, Timestamp) "
            f"SELECT lower(hex(MD5('0'))), 'long', number, sin(number / 500) + rand() / 4294967296, now64(9) "
            f"FROM numbers({LONG_HISTORY})"
        )
        load_s = time.perf_counter() - t0
        ids = [r[0] for r in store.query("SELECT RunId FROM tracehouse.runs ORDER BY RunId LIMIT 50")[1]]
        long_id = store.query("SELECT lower(hex(MD5('0')))")[1][0][0]
        cases = {
            f"runs list ({n_runs} runs)": lambda: q.list_runs(store, experiment="scale"),
            "runs list --where params/metrics": lambda: q.list_runs(
                store, where="params.p3 > 0.5 AND metrics.m1 < 0.5"
            ),
            "runs compare (50 runs)": lambda: q.compare(store, ids),
            "runs metrics --key (one history)": lambda: q.metric_history(store, ids[0], key="m3"),
            "runs show": lambda: q.show_run(store, ids[0]),
            # The run page's chart: every point (baseline) vs the server-side M4 reduction.
            f"chart of {LONG_HISTORY:,} points, all of them": lambda: q.metric_history(
                store, long_id, key="long"
            ),
            f"chart of {LONG_HISTORY:,} points, series max 2000": lambda: q.metric_series(
                store, long_id, "long", max_points=2000
            ),
        }
        out = {}
        for name, fn in cases.items():
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times) * 1000
        return {"runs": n_runs, "points": n_points, "load_s": load_s, "median_ms": out}
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="training steps, one point each (100,000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported (5)")
    parser.add_argument(
        "--points", type=int, default=1_000_000, help="points for the throughput run (1,000,000)"
    )
    parser.add_argument("--query-runs", type=int, default=200, help="runs in the read benchmark (200)")
    parser.add_argument(
        "--query-points",
        type=int,
        default=20_000_000,
        help="metric points in the read benchmark (20,000,000)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="tracehouse-bench-runs-"))
    proc, http = start_collector(data_dir)
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = http
    os.environ["TRACEHOUSE_SPOOL_DIR"] = str(data_dir / "spool")
    try:
        over = overhead(args.steps, args.rounds)
        cost = cost_per_point(min(args.points, 200_000))
        thr = throughput(args.points, http)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    reads = queries(args.query_runs, args.query_points)
    if args.json:
        print(json.dumps({"overhead": over, "cost": cost, "throughput": thr, "queries": reads}, indent=2))
        return 0
    print(
        f"training loop, {over['steps']:,} steps ({over['step_us']:.0f} us/step), median of {over['rounds']} rounds"
    )
    print(f"  without logging   {over['baseline_s']:8.3f} s wall  {over['baseline_cpu_s']:8.3f} s CPU")
    print(
        f"  log_metric/step   {over['with_logging_s']:8.3f} s wall  {over['with_logging_cpu_s']:8.3f} s CPU"
        f"   ratio {over['ratio']:.3f} wall, {over['cpu_ratio']:.3f} CPU"
        f"  ({over['cpu_us_per_point']:.2f} us CPU per point)"
    )
    print(f"CPU per point, {cost['points']:,} points logged back to back")
    print(f"  caller's thread   {cost['caller_us_per_point']:8.2f} us   (run.log_metric)")
    print(
        f"  SDK thread        {cost['sdk_thread_us_per_point']:8.2f} us   (OTLP encoding, spool file, POST)"
    )
    print(f"end to end, {thr['points']:,} points into a local collector")
    print(f"  log calls         {thr['log_calls_s']:8.3f} s")
    print(f"  all queryable     {thr['end_to_end_s']:8.3f} s   {thr['points_per_s']:,.0f} points/s")
    print(
        f"reads on {reads['runs']} runs with {reads['points']:,} points (embedded store, loaded in {reads['load_s']:.1f} s)"
    )
    for name, ms in reads["median_ms"].items():
        print(f"  {name:34s} {ms:8.1f} ms")
    return 0
